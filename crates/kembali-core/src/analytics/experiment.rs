//! Holdout experiments: which customers a campaign leaves out, whether the split came out as
//! planned, and what the campaign caused (treatment vs holdout) with its uncertainty.
//!
//! The assignment is a pure function of (salt, customer id): no randomness is drawn here,
//! and the same customer lands in the same arm in every release, on every replica.

use crate::ids::CustomerId;
use crate::money::BasisPoints;
use sha2::{Digest, Sha256};
use statrs::distribution::{ChiSquared, ContinuousCDF, StudentsT};

/// Number of buckets a customer can fall in: one per basis point of share.
pub const BUCKETS: u16 = 10_000;

/// A sample-ratio mismatch is flagged below this p-value. An SRM check runs on every
/// experiment read, so a strict threshold keeps false alarms rare; a real mismatch (a broken
/// assignment, a channel that drops holdout customers) gives far smaller p-values.
pub const SRM_ALPHA: f64 = 0.001;

/// The arm of an experiment a customer is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arm {
    /// Gets the campaign.
    Treatment,
    /// Held out: does not get the campaign.
    Holdout,
}

impl Arm {
    /// The arm's stored name: `treatment` or `holdout`.
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Treatment => "treatment",
            Arm::Holdout => "holdout",
        }
    }

    pub fn parse(raw: &str) -> Option<Arm> {
        [Arm::Treatment, Arm::Holdout]
            .into_iter()
            .find(|a| a.as_str() == raw)
    }
}

/// The customer's bucket in 0..10,000 for an experiment's salt:
///
/// bucket = (first 8 bytes of SHA-256(len ‖ salt ‖ id), read as a big-endian u64) mod 10,000
///
/// where `len` is the salt's length in bytes as an 8-byte big-endian integer, and salt and
/// id are their UTF-8 bytes. The length prefix keeps ("ab", "c") and ("a", "bc") apart.
/// SHA-256 is fixed by standard (FIPS 180-4), unlike a language's default hasher, so the
/// bucket never changes between releases. The modulo bias is below 10⁻¹⁵.
pub fn bucket(salt: &str, customer: &CustomerId) -> u16 {
    let mut hasher = Sha256::new();
    hasher.update((salt.len() as u64).to_be_bytes());
    hasher.update(salt.as_bytes());
    hasher.update(customer.as_str().as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(BUCKETS)) as u16
}

/// The customer's arm: [`Arm::Holdout`] when `bucket(salt, customer) < holdout_share` (in
/// basis points), else [`Arm::Treatment`]. Growing the share only moves customers from
/// treatment to holdout, never back.
pub fn assign(salt: &str, customer: &CustomerId, holdout_share: BasisPoints) -> Arm {
    if u32::from(bucket(salt, customer)) < holdout_share.0 {
        Arm::Holdout
    } else {
        Arm::Treatment
    }
}

/// Why an experiment statistic could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExperimentError {
    #[error("a sample needs at least 2 observations, it has {0}")]
    TooFewObservations(u64),
    #[error("a sample's mean and variance must be finite and its variance not negative")]
    InvalidSummary,
    #[error("both samples have zero variance: the difference has no standard error")]
    NoVariance,
    #[error("confidence level {0} must lie strictly between 0 and 1")]
    InvalidConfidence(f64),
    #[error("the holdout share must lie strictly between 0 and 100 %")]
    InvalidShare,
    #[error("there are no customers in either arm")]
    NoCustomers,
    #[error("the cashback cost must be positive, it is {0} minor units")]
    NonPositiveCost(i64),
}

/// A sample summarised by its size, mean and unbiased variance
/// s² = Σ (yᵢ − ȳ)² / (n − 1): enough for a Welch test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleStats {
    n: u64,
    mean: f64,
    variance: f64,
}

impl SampleStats {
    /// From sufficient statistics; n ≥ 2, finite mean, finite variance ≥ 0.
    pub fn new(n: u64, mean: f64, variance: f64) -> Result<Self, ExperimentError> {
        if n < 2 {
            return Err(ExperimentError::TooFewObservations(n));
        }
        if !(mean.is_finite() && variance.is_finite() && variance >= 0.0) {
            return Err(ExperimentError::InvalidSummary);
        }
        Ok(SampleStats { n, mean, variance })
    }

    /// From the observations themselves (e.g. each customer's spend in minor units), with
    /// Welford's one-pass update, which does not lose precision on large means.
    pub fn from_samples(samples: &[f64]) -> Result<Self, ExperimentError> {
        let (mut mean, mut m2) = (0.0, 0.0);
        for (i, y) in samples.iter().enumerate() {
            let delta = y - mean;
            mean += delta / (i + 1) as f64;
            m2 += delta * (y - mean);
        }
        let n = samples.len() as u64;
        if n < 2 {
            return Err(ExperimentError::TooFewObservations(n));
        }
        SampleStats::new(n, mean, m2 / (n - 1) as f64)
    }

    /// The number of observations.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Their mean ȳ.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Their unbiased variance s².
    pub fn variance(&self) -> f64 {
        self.variance
    }
}

/// Welch's two-sample t test of treatment against holdout. With vᵢ = sᵢ² / nᵢ:
/// - `difference` = ȳ_treatment − ȳ_holdout;
/// - `standard_error` = √(v_t + v_h);
/// - `degrees_of_freedom` (Welch–Satterthwaite) = (v_t + v_h)² / (v_t²/(n_t−1) + v_h²/(n_h−1));
/// - `t_statistic` = difference / standard_error;
/// - `p_value` = 2 · P(T_df > |t|), two-sided, T_df Student's t;
/// - `ci_low`, `ci_high` = difference ∓ t* · standard_error, with t* the (1+level)/2
///   quantile of T_df: the `confidence` (e.g. 0.95) interval of the difference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WelchTest {
    /// ȳ_treatment − ȳ_holdout.
    pub difference: f64,
    /// √(s_t²/n_t + s_h²/n_h).
    pub standard_error: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub degrees_of_freedom: f64,
    /// difference / standard_error.
    pub t_statistic: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// The interval's confidence level, e.g. 0.95.
    pub confidence: f64,
    /// Lower end of the interval of the difference.
    pub ci_low: f64,
    /// Upper end of the interval of the difference.
    pub ci_high: f64,
}

/// Runs [`WelchTest`] at the given confidence level (0.95 for a 95 % interval).
pub fn welch(
    treatment: &SampleStats,
    holdout: &SampleStats,
    confidence: f64,
) -> Result<WelchTest, ExperimentError> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(ExperimentError::InvalidConfidence(confidence));
    }
    let vt = treatment.variance / treatment.n as f64;
    let vh = holdout.variance / holdout.n as f64;
    let se2 = vt + vh;
    if se2 <= 0.0 {
        return Err(ExperimentError::NoVariance);
    }
    let df = se2 * se2 / (vt * vt / (treatment.n - 1) as f64 + vh * vh / (holdout.n - 1) as f64);
    let standard_error = se2.sqrt();
    let difference = treatment.mean - holdout.mean;
    let t_statistic = difference / standard_error;
    let t = StudentsT::new(0.0, 1.0, df).map_err(|_| ExperimentError::NoVariance)?;
    // The survival function keeps tiny p-values accurate where 1 − cdf would round to 0.
    let p_value = (2.0 * t.sf(t_statistic.abs())).min(1.0);
    let t_star = t.inverse_cdf(0.5 + confidence / 2.0);
    Ok(WelchTest {
        difference,
        standard_error,
        degrees_of_freedom: df,
        t_statistic,
        p_value,
        confidence,
        ci_low: difference - t_star * standard_error,
        ci_high: difference + t_star * standard_error,
    })
}

/// A sample-ratio-mismatch check: Pearson's chi-squared goodness-of-fit test (1 degree of
/// freedom) of the observed arm sizes against the planned split. With N = treatment +
/// holdout and s the holdout share:
/// - `expected_holdout` = N s, `expected_treatment` = N (1 − s);
/// - `chi_squared` = Σ (observed − expected)² / expected over the two arms;
/// - `p_value` = P(χ²₁ > chi_squared);
/// - `mismatch` = p_value < [`SRM_ALPHA`]: the split is not what was planned, and the
///   experiment's effects should not be trusted until the cause is found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRatioCheck {
    /// N (1 − s): treated customers expected.
    pub expected_treatment: f64,
    /// N s: held-out customers expected.
    pub expected_holdout: f64,
    /// Pearson's statistic.
    pub chi_squared: f64,
    /// P(χ²₁ > chi_squared).
    pub p_value: f64,
    /// p_value < [`SRM_ALPHA`].
    pub mismatch: bool,
}

/// Runs [`SampleRatioCheck`] on the observed arm sizes.
pub fn sample_ratio_mismatch(
    treatment: u64,
    holdout: u64,
    holdout_share: BasisPoints,
) -> Result<SampleRatioCheck, ExperimentError> {
    if holdout_share.0 == 0 || holdout_share.0 >= 10_000 {
        return Err(ExperimentError::InvalidShare);
    }
    let total = treatment as f64 + holdout as f64;
    if total == 0.0 {
        return Err(ExperimentError::NoCustomers);
    }
    let share = f64::from(holdout_share.0) / 10_000.0;
    let expected_holdout = total * share;
    let expected_treatment = total - expected_holdout;
    let term = |observed: u64, expected: f64| (observed as f64 - expected).powi(2) / expected;
    let chi_squared = term(treatment, expected_treatment) + term(holdout, expected_holdout);
    let chi = ChiSquared::new(1.0).expect("one degree of freedom is valid");
    let p_value = chi.sf(chi_squared);
    Ok(SampleRatioCheck {
        expected_treatment,
        expected_holdout,
        chi_squared,
        p_value,
        mismatch: p_value < SRM_ALPHA,
    })
}

/// Return on the cashback spent, with its interval.
///
/// Definitions, per experiment period:
/// - Δ = incremental spend per treated customer: the Welch difference of mean spend
///   (treatment − holdout) in minor units, with its interval [Δ_lo, Δ_hi];
/// - incremental gross margin M = Δ × N_t × m, with N_t the treated customers and m the
///   gross margin (bp / 10,000);
/// - cost C = the cashback granted to the treated customers (minor units; the holdout gets
///   none);
/// - ROI = (M − C) / C: 0 breaks even, 1 returns the cost twice.
///
/// The interval: N_t, m and C are known amounts, not estimates, so ROI is an increasing
/// affine function of Δ alone, ROI(Δ) = Δ N_t m / C − 1, and the Welch interval of Δ maps
/// to [ROI(Δ_lo), ROI(Δ_hi)] with the same confidence level. Uncertainty in the cost (e.g.
/// cashback that may still be clawed back) is not included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoiEstimate {
    /// M rounded half to even to a whole minor unit.
    pub incremental_margin_minor: i64,
    /// (M − C) / C at the estimated Δ.
    pub roi: f64,
    /// ROI at the lower end of Δ's interval.
    pub ci_low: f64,
    /// ROI at the upper end of Δ's interval.
    pub ci_high: f64,
    /// The confidence level of the Welch interval it comes from.
    pub confidence: f64,
}

/// Computes [`RoiEstimate`] from the Welch test of spend per customer.
pub fn roi(
    incremental_spend: &WelchTest,
    treated_customers: u64,
    gross_margin: BasisPoints,
    cashback_cost_minor: i64,
) -> Result<RoiEstimate, ExperimentError> {
    if cashback_cost_minor <= 0 {
        return Err(ExperimentError::NonPositiveCost(cashback_cost_minor));
    }
    let per_unit_of_delta = treated_customers as f64 * f64::from(gross_margin.0) / 10_000.0;
    let cost = cashback_cost_minor as f64;
    let at = |delta: f64| delta * per_unit_of_delta / cost - 1.0;
    let margin = incremental_spend.difference * per_unit_of_delta;
    Ok(RoiEstimate {
        // Saturating cast: a margin beyond ±9.2 × 10^18 minor units is not a real case.
        incremental_margin_minor: margin.round_ties_even() as i64,
        roi: at(incremental_spend.difference),
        ci_low: at(incremental_spend.ci_low),
        ci_high: at(incremental_spend.ci_high),
        confidence: incremental_spend.confidence,
    })
}
