//! Predicted customer lifetime value over a horizon: BG/NBD for how often, Gamma-Gamma for
//! how much, the retailer's gross margin for what it is worth.
//!
//! The definition is deliberately simple and discount-free: the value of the purchases
//! expected in the next `horizon` periods, with no discounting of later purchases and
//! nothing after the horizon. Over a year the discount a finance team would apply is a few
//! percent, well inside the models' own uncertainty; a discounted variant can be added when
//! someone needs it.

use super::bgnbd::{expected_purchases, BgNbdError, BgNbdParams, FrequencyRecency};
use super::gamma_gamma::{expected_spend_minor, GammaGammaError, GammaGammaParams};
use crate::money::BasisPoints;

/// A customer's predicted value over a horizon.
///
/// - `expected_purchases` = E[Y(h) | x, t_x, T] (BG/NBD, [`expected_purchases`]);
/// - `expected_spend_minor` = E[Z | x, z̄] (Gamma-Gamma, [`expected_spend_minor`]), a mean in
///   minor units, unrounded;
/// - `expected_revenue_minor` = expected purchases × expected spend, rounded half to even to
///   a whole minor unit;
/// - `expected_margin_minor` = expected purchases × expected spend × margin bp / 10,000,
///   rounded half to even to a whole minor unit: the predicted CLV.
///
/// Both money results are rounded once, from the unrounded product.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClvPrediction {
    /// E[Y(h) | x, t_x, T].
    pub expected_purchases: f64,
    /// E[Z | x, z̄] in minor units, unrounded.
    pub expected_spend_minor: f64,
    /// Purchases × spend, rounded half to even to a minor unit.
    pub expected_revenue_minor: i64,
    /// Purchases × spend × margin, rounded half to even to a minor unit: the predicted CLV.
    pub expected_margin_minor: i64,
}

/// Why a prediction could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClvError {
    #[error(transparent)]
    Purchases(#[from] BgNbdError),
    #[error(transparent)]
    Spend(#[from] GammaGammaError),
    #[error("the predicted value does not fit in an i64 of minor units")]
    OutOfRange,
}

/// Combines the two parts into a prediction (see [`ClvPrediction`] for the definitions).
pub fn combine(
    expected_purchases: f64,
    expected_spend_minor: f64,
    gross_margin: BasisPoints,
) -> Result<ClvPrediction, ClvError> {
    let revenue = expected_purchases * expected_spend_minor;
    let margin = revenue * f64::from(gross_margin.0) / 10_000.0;
    Ok(ClvPrediction {
        expected_purchases,
        expected_spend_minor,
        expected_revenue_minor: to_minor(revenue)?,
        expected_margin_minor: to_minor(margin)?,
    })
}

/// Predicts a customer's value over the next `horizon` periods from the two fitted models,
/// the customer's (x, t_x, T) and mean repeat value z̄ (ignored when x = 0).
pub fn predict(
    purchases: &BgNbdParams,
    spend: &GammaGammaParams,
    history: &FrequencyRecency,
    zbar_minor: f64,
    horizon: f64,
    gross_margin: BasisPoints,
) -> Result<ClvPrediction, ClvError> {
    let n = expected_purchases(purchases, history, horizon)?;
    let z = expected_spend_minor(spend, history.x(), zbar_minor)?;
    combine(n, z, gross_margin)
}

/// Half-to-even rounding to a whole minor unit, refusing what an i64 cannot hold (the
/// bound stays below 2^63 so that the cast is exact).
fn to_minor(value: f64) -> Result<i64, ClvError> {
    let rounded = value.round_ties_even();
    if rounded.is_finite() && rounded.abs() < 9.0e18 {
        Ok(rounded as i64)
    } else {
        Err(ClvError::OutOfRange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_clv() {
        // BG/NBD r = 2, α = 6, a = 2, b = 1 for x = 2, t_x = T = 10 over 16 periods: 1
        // purchase expected (worked in bgnbd's tests). Gamma-Gamma p = 1, q = 3, γ = 1000
        // with z̄ = 3000: 1750 per purchase. Revenue 1 × 1750 = 1750; at a 30 % margin
        // 1750 × 3000 / 10,000 = 525 minor units.
        let purchases = BgNbdParams::new(2.0, 6.0, 2.0, 1.0).unwrap();
        let spend = GammaGammaParams::new(1.0, 3.0, 1000.0).unwrap();
        let history = FrequencyRecency::new(2, 10.0, 10.0).unwrap();
        let clv = predict(
            &purchases,
            &spend,
            &history,
            3000.0,
            16.0,
            BasisPoints(3000),
        )
        .unwrap();
        assert!((clv.expected_purchases - 1.0).abs() < 1e-14);
        assert_eq!(clv.expected_spend_minor, 1750.0);
        assert_eq!(clv.expected_revenue_minor, 1750);
        assert_eq!(clv.expected_margin_minor, 525);
    }

    #[test]
    fn money_results_are_rounded_half_to_even_once() {
        // 2.5 purchases × 101 = 252.5 → 252 (even); margin 50 %: 126.25 → 126.
        let c = combine(2.5, 101.0, BasisPoints(5000)).unwrap();
        assert_eq!(
            (c.expected_revenue_minor, c.expected_margin_minor),
            (252, 126)
        );
        // 3.5 × 101 = 353.5 → 354; at 10 %: 35.35 → 35.
        let c = combine(3.5, 101.0, BasisPoints(1000)).unwrap();
        assert_eq!(
            (c.expected_revenue_minor, c.expected_margin_minor),
            (354, 35)
        );
    }

    #[test]
    fn values_beyond_i64_are_refused() {
        assert_eq!(
            combine(1e10, 1e10, BasisPoints::FULL),
            Err(ClvError::OutOfRange)
        );
        assert_eq!(
            combine(f64::NAN, 1.0, BasisPoints::FULL),
            Err(ClvError::OutOfRange)
        );
    }
}
