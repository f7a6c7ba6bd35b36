//! The Gamma-Gamma model of spend per purchase (Fader, Hardie & Lee 2005, "RFM and CLV:
//! Using Iso-Value Curves for Customer Base Analysis", Journal of Marketing Research 42(4),
//! after Colombo & Jiang 1999).
//!
//! The model: a customer's purchase values are Gamma(shape p, rate ν) around the customer's
//! mean p/ν, and across customers ν ~ Gamma(shape q, rate γ). Values are in minor units, so
//! γ is in minor units too (the published γ = 15.44 dollars is 1544 cents); p and q have no
//! unit. It assumes spend is independent of purchase frequency: check that on the data
//! before trusting predictions.

use super::optimize::{minimise, Tolerance};
use statrs::function::gamma::ln_gamma;

/// A customer with at least one repeat purchase: x repeat purchases with mean value z̄
/// (minor units, a statistic).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpendHistory {
    x: u32,
    zbar_minor: f64,
}

impl SpendHistory {
    /// Requires x ≥ 1 and a finite z̄ > 0 (the likelihood is not defined at z̄ = 0).
    pub fn new(x: u32, zbar_minor: f64) -> Result<Self, GammaGammaError> {
        if x >= 1 && zbar_minor.is_finite() && zbar_minor > 0.0 {
            Ok(SpendHistory { x, zbar_minor })
        } else {
            Err(GammaGammaError::InvalidHistory { x, zbar_minor })
        }
    }

    /// x: the number of repeat purchases.
    pub fn x(&self) -> u32 {
        self.x
    }

    /// z̄: their mean value, in minor units.
    pub fn zbar_minor(&self) -> f64 {
        self.zbar_minor
    }
}

/// The three Gamma-Gamma parameters, finite and positive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGammaParams {
    p: f64,
    q: f64,
    gamma_minor: f64,
}

impl GammaGammaParams {
    /// Checks that every parameter is finite and positive; γ in minor units.
    pub fn new(p: f64, q: f64, gamma_minor: f64) -> Result<Self, GammaGammaError> {
        if [p, q, gamma_minor]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0)
        {
            Ok(GammaGammaParams { p, q, gamma_minor })
        } else {
            Err(GammaGammaError::InvalidParameters { p, q, gamma_minor })
        }
    }

    /// Shape of a customer's purchase values.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// Shape of the distribution of the customers' rates ν.
    pub fn q(&self) -> f64 {
        self.q
    }

    /// Rate of the distribution of the customers' rates ν, in minor units.
    pub fn gamma_minor(&self) -> f64 {
        self.gamma_minor
    }

    /// The population's mean value of a purchase, E[Z] = p γ / (q − 1) minor units; `None`
    /// when q ≤ 1 (the mean is infinite).
    pub fn population_mean_spend_minor(&self) -> Option<f64> {
        (self.q > 1.0).then(|| self.p * self.gamma_minor / (self.q - 1.0))
    }
}

/// Why a Gamma-Gamma computation could not be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GammaGammaError {
    #[error("spend history x = {x}, z̄ = {zbar_minor} needs x ≥ 1 and a finite z̄ > 0")]
    InvalidHistory { x: u32, zbar_minor: f64 },
    #[error("parameters p = {p}, q = {q}, γ = {gamma_minor} must be finite and positive")]
    InvalidParameters { p: f64, q: f64, gamma_minor: f64 },
    #[error("there are no customers with repeat purchases to fit the model on")]
    NoCustomers,
    #[error("the likelihood maximisation did not converge")]
    DidNotConverge,
    #[error("the expected spend is infinite (p·x + q ≤ 1)")]
    InfiniteMean,
}

/// The result of [`fit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGammaFit {
    /// The maximum-likelihood (p, q, γ).
    pub params: GammaGammaParams,
    /// Σ ln f(z̄ | x) with f as in [`log_likelihood`], z̄ in minor units.
    pub log_likelihood: f64,
    /// Likelihood evaluations the optimiser made.
    pub evaluations: u32,
}

/// The log-likelihood of the customers' mean repeat values, summed. For one customer, the
/// density of z̄ given x (the mean of x Gamma(p, ν) values, with ν ~ Gamma(q, γ)) is
///
/// f(z̄ | x) = Γ(px+q) / (Γ(px) Γ(q)) · γ^q · z̄^(px−1) · x^(px) / (γ + x z̄)^(px+q).
pub fn log_likelihood(params: &GammaGammaParams, data: &[SpendHistory]) -> f64 {
    let GammaGammaParams { p, q, gamma_minor } = *params;
    let common = q * gamma_minor.ln() - ln_gamma(q);
    data.iter()
        .map(|h| {
            let x = f64::from(h.x);
            let px = p * x;
            common + ln_gamma(px + q) - ln_gamma(px) + (px - 1.0) * h.zbar_minor.ln() + px * x.ln()
                - (px + q) * (gamma_minor + x * h.zbar_minor).ln()
        })
        .sum()
}

/// Fits the model by maximum likelihood over (ln p, ln q, ln γ) with the same deterministic
/// Nelder–Mead search as BG/NBD, on −ln L / n, starting from p = 1, q = 2 and γ = the mean
/// z̄ (which makes the starting population mean spend equal to the mean z̄).
pub fn fit(data: &[SpendHistory]) -> Result<GammaGammaFit, GammaGammaError> {
    if data.is_empty() {
        return Err(GammaGammaError::NoCustomers);
    }
    let n = data.len() as f64;
    let mean_zbar = data.iter().map(|h| h.zbar_minor).sum::<f64>() / n;
    let start = [0.0, 2f64.ln(), mean_zbar.ln()];
    let objective = |theta: &[f64; 3]| {
        let [p, q, g] = theta.map(f64::exp);
        match GammaGammaParams::new(p, q, g) {
            Ok(params) => -log_likelihood(&params, data) / n,
            Err(_) => f64::INFINITY,
        }
    };
    let tolerance = Tolerance {
        value: 1e-12,
        point: 1e-8,
        step: 0.5,
        max_evaluations: 20_000,
    };
    let best = minimise(objective, start, tolerance).ok_or(GammaGammaError::DidNotConverge)?;
    let [p, q, g] = best.point.map(f64::exp);
    let params = GammaGammaParams::new(p, q, g).map_err(|_| GammaGammaError::DidNotConverge)?;
    Ok(GammaGammaFit {
        params,
        log_likelihood: log_likelihood(&params, data),
        evaluations: best.evaluations,
    })
}

/// E[Z | x, z̄]: the expected value of the customer's future purchases, in minor units
/// (a statistic, unrounded):
///
/// E[Z | x, z̄] = p (γ + x z̄) / (p x + q − 1)
///            = w · p γ/(q−1) + (1 − w) · z̄,   w = (q−1)/(p x + q − 1),
///
/// a weighted mean of the population mean and the customer's own mean. With x = 0 (no
/// repeat purchase yet) `zbar_minor` is ignored and the result is the population mean
/// p γ/(q−1). Errors when p x + q ≤ 1, where the mean is infinite.
pub fn expected_spend_minor(
    params: &GammaGammaParams,
    x: u32,
    zbar_minor: f64,
) -> Result<f64, GammaGammaError> {
    let GammaGammaParams { p, q, gamma_minor } = *params;
    let x = f64::from(x);
    let denominator = p * x + q - 1.0;
    if denominator <= 0.0 {
        return Err(GammaGammaError::InfiniteMean);
    }
    let own = if x == 0.0 { 0.0 } else { x * zbar_minor };
    Ok(p * (gamma_minor + own) / denominator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_expected_spend() {
        // p = 1, q = 3, γ = 1000: population mean 1·1000/2 = 500. A customer with x = 2,
        // z̄ = 3000: (1000 + 2·3000)/(2 + 3 − 1) = 7000/4 = 1750 = ½·500 + ½·3000.
        let params = GammaGammaParams::new(1.0, 3.0, 1000.0).unwrap();
        assert_eq!(params.population_mean_spend_minor(), Some(500.0));
        assert_eq!(expected_spend_minor(&params, 2, 3000.0).unwrap(), 1750.0);
        assert_eq!(expected_spend_minor(&params, 0, 99.0).unwrap(), 500.0);
    }

    #[test]
    fn an_infinite_mean_is_refused() {
        let params = GammaGammaParams::new(0.5, 0.8, 1000.0).unwrap();
        assert_eq!(params.population_mean_spend_minor(), None);
        assert_eq!(
            expected_spend_minor(&params, 0, 0.0),
            Err(GammaGammaError::InfiniteMean)
        );
        // p·x + q − 1 = 0.5 + 0.8 − 1 > 0: one purchase is enough.
        assert!(expected_spend_minor(&params, 1, 100.0).is_ok());
    }

    #[test]
    fn spend_histories_need_a_repeat_purchase_and_a_positive_mean() {
        assert!(SpendHistory::new(0, 10.0).is_err());
        assert!(SpendHistory::new(1, 0.0).is_err());
        assert!(SpendHistory::new(1, f64::NAN).is_err());
        assert!(SpendHistory::new(1, 0.01).is_ok());
    }

    #[test]
    fn the_likelihood_is_a_density_of_the_mean() {
        // For x = 1 the density of z̄ is the Gamma-Gamma (compound) density; it integrates
        // to 1 over z̄ > 0. Midpoint rule on a substitution z = u/(1−u) to cover (0, ∞).
        let params = GammaGammaParams::new(2.0, 3.0, 50.0).unwrap();
        let steps = 200_000;
        let mut total = 0.0;
        for i in 0..steps {
            let u = (i as f64 + 0.5) / steps as f64;
            let z = u / (1.0 - u);
            let dz = 1.0 / ((1.0 - u) * (1.0 - u)) / steps as f64;
            let h = SpendHistory::new(1, z).unwrap();
            total += log_likelihood(&params, &[h]).exp() * dz;
        }
        assert!((total - 1.0).abs() < 1e-6, "{total}");
    }

    #[test]
    fn fitting_nothing_is_refused() {
        assert_eq!(fit(&[]), Err(GammaGammaError::NoCustomers));
    }
}
