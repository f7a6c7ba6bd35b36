//! The BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005, "Counting Your Customers
//! the Easy Way", Marketing Science 24(2)): fitting it by maximum likelihood, and asking it
//! how many purchases a customer will make and whether the customer is still active.
//!
//! The model: while active, a customer buys as a Poisson process with rate λ; after every
//! purchase the customer drops out for good with probability p. Across customers
//! λ ~ Gamma(shape r, rate α) and p ~ Beta(a, b). Times are in the model's period (see
//! [`super::rfm::TimeUnit`]); α is in periods, r, a and b have no unit.

use super::optimize::{minimise, Tolerance};
use super::special::hypergeometric_series;
use statrs::function::gamma::ln_gamma;
use std::collections::HashMap;

/// What the model knows about one customer at the end of the calibration period:
/// x repeat purchases, the last at t_x periods after the first purchase, and T periods from
/// the first purchase to the end of the period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrequencyRecency {
    x: u32,
    t_x: f64,
    t: f64,
}

impl FrequencyRecency {
    /// Requires finite times with 0 ≤ t_x ≤ T, and t_x = 0 when x = 0.
    pub fn new(x: u32, t_x: f64, t: f64) -> Result<Self, BgNbdError> {
        let valid =
            t_x.is_finite() && t.is_finite() && (0.0..=t).contains(&t_x) && (x > 0 || t_x == 0.0);
        if valid {
            Ok(FrequencyRecency { x, t_x, t })
        } else {
            Err(BgNbdError::InvalidHistory { x, t_x, t })
        }
    }

    /// x: the number of repeat purchases.
    pub fn x(&self) -> u32 {
        self.x
    }

    /// t_x: periods from the first purchase to the last one.
    pub fn t_x(&self) -> f64 {
        self.t_x
    }

    /// T: periods from the first purchase to the end of the calibration period.
    pub fn t(&self) -> f64 {
        self.t
    }
}

/// The four BG/NBD parameters, all finite and positive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbdParams {
    r: f64,
    alpha: f64,
    a: f64,
    b: f64,
}

impl BgNbdParams {
    /// Checks that every parameter is finite and positive.
    pub fn new(r: f64, alpha: f64, a: f64, b: f64) -> Result<Self, BgNbdError> {
        if [r, alpha, a, b].iter().all(|p| p.is_finite() && *p > 0.0) {
            Ok(BgNbdParams { r, alpha, a, b })
        } else {
            Err(BgNbdError::InvalidParameters { r, alpha, a, b })
        }
    }

    /// Shape of the Gamma distribution of purchase rates.
    pub fn r(&self) -> f64 {
        self.r
    }

    /// Rate (inverse scale) of the Gamma distribution of purchase rates, in periods.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// First shape of the Beta distribution of drop-out probabilities.
    pub fn a(&self) -> f64 {
        self.a
    }

    /// Second shape of the Beta distribution of drop-out probabilities.
    pub fn b(&self) -> f64 {
        self.b
    }
}

/// Why a BG/NBD computation could not be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BgNbdError {
    #[error(
        "history x = {x}, t_x = {t_x}, T = {t} needs finite 0 ≤ t_x ≤ T and t_x = 0 when x = 0"
    )]
    InvalidHistory { x: u32, t_x: f64, t: f64 },
    #[error("parameters r = {r}, α = {alpha}, a = {a}, b = {b} must be finite and positive")]
    InvalidParameters { r: f64, alpha: f64, a: f64, b: f64 },
    #[error("there are no customers to fit the model on")]
    NoCustomers,
    #[error("the likelihood maximisation did not converge")]
    DidNotConverge,
    #[error("horizon {0} must be finite and not negative")]
    InvalidHorizon(f64),
    #[error("the hypergeometric series did not converge (horizon too long for the history)")]
    SeriesDidNotConverge,
}

/// The result of [`fit`]: the maximum-likelihood parameters and the log-likelihood there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbdFit {
    /// The maximum-likelihood (r, α, a, b).
    pub params: BgNbdParams,
    /// Σ over customers of ln L(r, α, a, b | x, t_x, T), with L as in [`log_likelihood`].
    pub log_likelihood: f64,
    /// Likelihood evaluations the optimiser made.
    pub evaluations: u32,
}

/// The log-likelihood of the customers' histories (equation 6 of the paper), summed:
///
/// ln L = ln Γ(r+x) − ln Γ(r) + r ln α + ln B(a, b+x) − ln B(a, b)
///        + ln[ (α+T)^−(r+x) + 1{x>0} · a/(b+x−1) · (α+t_x)^−(r+x) ].
pub fn log_likelihood(params: &BgNbdParams, data: &[FrequencyRecency]) -> f64 {
    Cells::new(data).log_likelihood(params)
}

/// Fits the model by maximum likelihood.
///
/// The search runs over (ln r, ln α, ln a, ln b), so every point it tries is a valid
/// parameter set, with the deterministic Nelder–Mead minimiser (restarted until a restart no
/// longer improves) on −ln L / n. It starts from r = a = b = 1 and α = the mean T. Customers
/// with the same (x, t_x, T) are counted once with a weight, which makes a likelihood
/// evaluation cost the number of distinct histories rather than of customers.
pub fn fit(data: &[FrequencyRecency]) -> Result<BgNbdFit, BgNbdError> {
    if data.is_empty() {
        return Err(BgNbdError::NoCustomers);
    }
    let cells = Cells::new(data);
    let n = data.len() as f64;
    let mean_t = data.iter().map(|h| h.t).sum::<f64>() / n;
    let start = [0.0, mean_t.max(1.0).ln(), 0.0, 0.0];
    let objective = |theta: &[f64; 4]| {
        let [r, alpha, a, b] = theta.map(f64::exp);
        match BgNbdParams::new(r, alpha, a, b) {
            Ok(params) => -cells.log_likelihood(&params) / n,
            Err(_) => f64::INFINITY,
        }
    };
    let tolerance = Tolerance {
        value: 1e-11,
        point: 1e-7,
        step: 0.5,
        max_evaluations: 20_000,
    };
    let best = minimise(objective, start, tolerance).ok_or(BgNbdError::DidNotConverge)?;
    let [r, alpha, a, b] = best.point.map(f64::exp);
    let params = BgNbdParams::new(r, alpha, a, b).map_err(|_| BgNbdError::DidNotConverge)?;
    Ok(BgNbdFit {
        params,
        log_likelihood: cells.log_likelihood(&params),
        evaluations: best.evaluations,
    })
}

/// P(alive | x, t_x, T): the probability that the customer has not dropped out by T
/// (equation 13 of the paper):
///
/// P = 1 / (1 + 1{x>0} · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)).
///
/// In BG/NBD a customer can only drop out right after a repeat purchase, so a customer with
/// x = 0 is alive with probability 1.
pub fn probability_alive(params: &BgNbdParams, history: &FrequencyRecency) -> f64 {
    1.0 / (1.0 + dropout_odds(params, history))
}

/// E[Y(t) | x, t_x, T]: the expected number of purchases in the next `horizon` periods
/// after T (equation 10 of the paper):
///
/// E = [(a+b+x−1)/(a−1)] · [1 − ((α+T)/(α+T+t))^(r+x) · ₂F₁(r+x, b+x; a+b+x−1; z)]
///     / (1 + 1{x>0} · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)),   z = t/(α+T+t).
///
/// How it is evaluated, exactly equal to the formula but without its cancellations: Euler's
/// transformation gives (1−z)^(r+x) ₂F₁(r+x, b+x; C; z) = (1−z)^ε ₂F₁(c′, ε; C; z) with
/// C = a+b+x−1, c′ = a+b−1−r and ε = a−1, and ₂F₁(c′, ε; C; z) = 1 + ε S with
/// S = Σ_{n≥1} (c′)ₙ (1+ε)ₙ₋₁ / ((C)ₙ n!) zⁿ. So the numerator is
/// C · [(1 − (1−z)^ε)/ε − (1−z)^ε S], which stays finite as a → 1 (where (1 − (1−z)^ε)/ε
/// tends to −ln(1−z)). The terms of S shrink like n^(a−r−x−2) zⁿ, so the series converges
/// for every horizon and fast for customers with repeat purchases. The formula needs
/// C ≠ 0, −1, −2, …, which only fails for x = 0 with a + b = 1 exactly.
pub fn expected_purchases(
    params: &BgNbdParams,
    history: &FrequencyRecency,
    horizon: f64,
) -> Result<f64, BgNbdError> {
    if !(horizon.is_finite() && horizon >= 0.0) {
        return Err(BgNbdError::InvalidHorizon(horizon));
    }
    let BgNbdParams { r, alpha, a, b } = *params;
    let x = f64::from(history.x);
    let z = horizon / (alpha + history.t + horizon);
    let ln_one_minus_z = -(horizon / (alpha + history.t)).ln_1p();
    let epsilon = a - 1.0;
    let c = a + b + x - 1.0;
    let c_prime = a + b - 1.0 - r;
    let s = hypergeometric_series(c_prime, epsilon, c, z, 1, c_prime * z / c)
        .ok_or(BgNbdError::SeriesDidNotConverge)?;
    let growth = if epsilon == 0.0 {
        -ln_one_minus_z
    } else {
        -(epsilon * ln_one_minus_z).exp_m1() / epsilon
    };
    let numerator = c * (growth - (epsilon * ln_one_minus_z).exp() * s);
    Ok(numerator / (1.0 + dropout_odds(params, history)))
}

/// a/(b+x−1) · ((α+T)/(α+t_x))^(r+x) for x > 0, else 0: the odds that the customer dropped
/// out after the last purchase, against being alive.
fn dropout_odds(params: &BgNbdParams, history: &FrequencyRecency) -> f64 {
    if history.x == 0 {
        return 0.0;
    }
    let BgNbdParams { r, alpha, a, b } = *params;
    let x = f64::from(history.x);
    let ln_odds =
        a.ln() - (b + x - 1.0).ln() + (r + x) * ((alpha + history.t) / (alpha + history.t_x)).ln();
    ln_odds.exp()
}

/// The customers grouped by identical histories, with the distinct values of x, T and t_x
/// numbered so that each evaluation computes every logarithm of α + time once.
struct Cells {
    xs: Vec<u32>,
    ages: Vec<f64>,
    recencies: Vec<f64>,
    /// (index into `ages`, customers) for x = 0.
    once: Vec<(usize, f64)>,
    /// (index into `xs`, into `ages`, into `recencies`, customers) for x > 0.
    repeat: Vec<(usize, usize, usize, f64)>,
}

impl Cells {
    fn new(data: &[FrequencyRecency]) -> Cells {
        fn index<K: std::hash::Hash + Eq + Copy>(
            map: &mut HashMap<K, usize>,
            values: &mut Vec<K>,
            key: K,
        ) -> usize {
            *map.entry(key).or_insert_with(|| {
                values.push(key);
                values.len() - 1
            })
        }
        let (mut xs, mut ages, mut recencies) = (Vec::new(), Vec::new(), Vec::new());
        let (mut x_ix, mut age_ix, mut rec_ix) = (HashMap::new(), HashMap::new(), HashMap::new());
        let mut once: HashMap<usize, f64> = HashMap::new();
        let mut repeat: HashMap<(usize, usize, usize), f64> = HashMap::new();
        for h in data {
            let age = index(&mut age_ix, &mut ages, h.t.to_bits());
            if h.x == 0 {
                *once.entry(age).or_default() += 1.0;
            } else {
                let x = index(&mut x_ix, &mut xs, h.x);
                let rec = index(&mut rec_ix, &mut recencies, h.t_x.to_bits());
                *repeat.entry((x, age, rec)).or_default() += 1.0;
            }
        }
        // Sorted so that the sum is taken in the same order on every run.
        let mut once: Vec<(usize, f64)> = once.into_iter().collect();
        once.sort_by_key(|c| c.0);
        let mut repeat: Vec<(usize, usize, usize, f64)> = repeat
            .into_iter()
            .map(|((x, age, rec), n)| (x, age, rec, n))
            .collect();
        repeat.sort_by_key(|c| (c.0, c.1, c.2));
        Cells {
            xs,
            ages: ages.into_iter().map(f64::from_bits).collect(),
            recencies: recencies.into_iter().map(f64::from_bits).collect(),
            once,
            repeat,
        }
    }

    fn log_likelihood(&self, params: &BgNbdParams) -> f64 {
        let BgNbdParams { r, alpha, a, b } = *params;
        let ln_age: Vec<f64> = self.ages.iter().map(|t| (alpha + t).ln()).collect();
        let ln_rec: Vec<f64> = self.recencies.iter().map(|t| (alpha + t).ln()).collect();
        // Terms that depend on x only: ln Γ(r+x) − ln Γ(r) + r ln α + ln B(a, b+x) − ln B(a, b),
        // and ln(a/(b+x−1)).
        let common = r * alpha.ln() - ln_gamma(r) - ln_gamma(b) + ln_gamma(a + b);
        let base = |x: f64| common + ln_gamma(r + x) + ln_gamma(b + x) - ln_gamma(a + b + x);
        let per_x: Vec<(f64, f64, f64)> = self
            .xs
            .iter()
            .map(|&x| {
                let x = f64::from(x);
                (r + x, base(x), a.ln() - (b + x - 1.0).ln())
            })
            .collect();
        let base_once = base(0.0);
        let once: f64 = self
            .once
            .iter()
            .map(|&(age, n)| n * (base_once - r * ln_age[age]))
            .sum();
        let repeat: f64 = self
            .repeat
            .iter()
            .map(|&(x, age, rec, n)| {
                let (rx, base, ln_ratio) = per_x[x];
                let alive = -rx * ln_age[age];
                let dropped = ln_ratio - rx * ln_rec[rec];
                let (hi, lo) = if alive > dropped {
                    (alive, dropped)
                } else {
                    (dropped, alive)
                };
                n * (base + hi + (lo - hi).exp().ln_1p())
            })
            .sum();
        once + repeat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(x: u32, t_x: f64, t: f64) -> FrequencyRecency {
        FrequencyRecency::new(x, t_x, t).unwrap()
    }

    #[test]
    fn histories_must_have_recency_within_age() {
        assert!(FrequencyRecency::new(0, 1.0, 5.0).is_err());
        assert!(FrequencyRecency::new(2, 6.0, 5.0).is_err());
        assert!(FrequencyRecency::new(2, -1.0, 5.0).is_err());
        assert!(FrequencyRecency::new(2, 1.0, f64::INFINITY).is_err());
        assert!(FrequencyRecency::new(2, 5.0, 5.0).is_ok());
        assert!(FrequencyRecency::new(0, 0.0, 0.0).is_ok());
    }

    #[test]
    fn parameters_must_be_positive_and_finite() {
        assert!(BgNbdParams::new(0.0, 1.0, 1.0, 1.0).is_err());
        assert!(BgNbdParams::new(1.0, f64::NAN, 1.0, 1.0).is_err());
        assert!(BgNbdParams::new(1.0, 1.0, -1.0, 1.0).is_err());
        assert!(BgNbdParams::new(1.0, 1.0, 1.0, f64::INFINITY).is_err());
    }

    #[test]
    fn hand_computed_expectation_and_probability_alive() {
        // With a = 2 and r = b + 1, c′ = a+b−1−r = 0, so ₂F₁(c′, ε; C; z) = 1 and
        // E = (a+b+x−1)/(a−1) · (1 − (1−z)^(a−1)) / D = (a+b+x−1) z / D.
        // r = 2, α = 6, a = 2, b = 1; x = 2, t_x = T = 10, horizon 16:
        // z = 16/(6+10+16) = 0.5; D = 1 + (2/(1+2−1)) · (16/16)^4 = 2;
        // E = (2+1+2−1) · 0.5 / 2 = 1 and P(alive) = 1/2.
        let params = BgNbdParams::new(2.0, 6.0, 2.0, 1.0).unwrap();
        let h = history(2, 10.0, 10.0);
        let e = expected_purchases(&params, &h, 16.0).unwrap();
        assert!((e - 1.0).abs() < 1e-14, "{e}");
        assert!((probability_alive(&params, &h) - 0.5).abs() < 1e-15);
        // x = 0, T = 2, horizon 8: z = 8/16 = 0.5, D = 1, E = (2+1−1) · 0.5 = 1.
        let new = history(0, 0.0, 2.0);
        let e = expected_purchases(&params, &new, 8.0).unwrap();
        assert!((e - 1.0).abs() < 1e-14, "{e}");
        assert_eq!(probability_alive(&params, &new), 1.0);
    }

    #[test]
    fn nothing_is_expected_over_no_time_and_bad_horizons_are_refused() {
        let params = BgNbdParams::new(0.243, 4.414, 0.793, 2.426).unwrap();
        let h = history(3, 20.0, 30.0);
        assert_eq!(expected_purchases(&params, &h, 0.0).unwrap(), 0.0);
        assert_eq!(
            expected_purchases(&params, &h, -1.0),
            Err(BgNbdError::InvalidHorizon(-1.0))
        );
    }

    #[test]
    fn the_expectation_is_continuous_through_a_equal_to_one() {
        let h = history(1, 5.0, 20.0);
        let at = |a: f64| {
            let p = BgNbdParams::new(0.5, 4.0, a, 2.0).unwrap();
            expected_purchases(&p, &h, 52.0).unwrap()
        };
        let (below, one, above) = (at(1.0 - 1e-9), at(1.0), at(1.0 + 1e-9));
        assert!(one.is_finite() && one > 0.0);
        assert!((below - one).abs() < 1e-7 && (above - one).abs() < 1e-7);
    }

    #[test]
    fn grouped_likelihood_equals_the_sum_of_single_customer_likelihoods() {
        let params = BgNbdParams::new(0.3, 5.0, 0.8, 2.5).unwrap();
        let data = [
            history(0, 0.0, 30.0),
            history(2, 10.0, 30.0),
            history(0, 0.0, 30.0),
            history(2, 10.0, 30.0),
            history(5, 29.0, 35.0),
        ];
        let each: f64 = data
            .iter()
            .map(|h| log_likelihood(&params, std::slice::from_ref(h)))
            .sum();
        assert!((log_likelihood(&params, &data) - each).abs() < 1e-10);
        // Customer 3 by the formula directly.
        let (r, al, a, b, x, tx, t) = (0.3f64, 5.0f64, 0.8f64, 2.5f64, 5.0, 29.0, 35.0);
        let ln_beta = |p: f64, q: f64| ln_gamma(p) + ln_gamma(q) - ln_gamma(p + q);
        let direct = ln_gamma(r + x) - ln_gamma(r) + r * al.ln() + ln_beta(a, b + x)
            - ln_beta(a, b)
            + ((al + t).powf(-(r + x)) + a / (b + x - 1.0) * (al + tx).powf(-(r + x))).ln();
        assert!((log_likelihood(&params, &data[4..]) - direct).abs() < 1e-12);
    }

    #[test]
    fn fitting_nothing_is_refused() {
        assert_eq!(fit(&[]), Err(BgNbdError::NoCustomers));
    }
}
