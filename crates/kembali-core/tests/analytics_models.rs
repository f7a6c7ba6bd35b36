//! ₂F₁, expected purchases and P(alive) against reference values computed independently,
//! and their properties.
//!
//! Reference values were computed once with Python 3 and SciPy 1.17
//! (`scipy.special.hyp2f1`, double precision) and pasted here as literals; the project does
//! not depend on Python. Expected purchases were computed straight from equation 10 of the
//! BG/NBD paper with SciPy's ₂F₁ (no transformation), P(alive) from equation 13:
//!
//! ```python
//! def ey(x, tx, T, t):
//!     z = t / (al + T + t)
//!     num = (a+b+x-1)/(a-1) * (1 - ((al+T)/(al+T+t))**(r+x) * hyp2f1(r+x, b+x, a+b+x-1, z))
//!     return num / (1 + (x > 0) * (a/(b+x-1)) * ((al+T)/(al+tx))**(r+x))
//! ```

use kembali_core::analytics::bgnbd::{
    expected_purchases, probability_alive, BgNbdParams, FrequencyRecency,
};
use kembali_core::analytics::clv;
use kembali_core::analytics::gamma_gamma::GammaGammaParams;
use kembali_core::analytics::special::hyp2f1;
use kembali_core::money::BasisPoints;
use proptest::prelude::*;

fn relative_error(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs()
}

/// The published CDNOW parameters (r, α, a, b).
fn cdnow() -> BgNbdParams {
    BgNbdParams::new(0.243, 4.414, 0.793, 2.426).unwrap()
}

#[test]
fn hyp2f1_matches_scipy() {
    let cases = [
        ((0.5, 2.5, 1.5, 0.3), 1.3659755535250215),
        ((3.2, 1.7, 2.1, 0.9), 514.9669277454059),
        ((10.5, 12.3, 4.2, 0.95), 2.242692794678853e26),
        ((0.243, 2.426, 2.219, -0.7), 0.8702190928299113),
        ((1.5, -0.5, 3.0, -4.0), 1.7060162788339537),
        ((20.0, 22.0, 21.7, 0.6), 117991386.45028561),
        ((0.7, 0.3, 1.2, 0.999), 1.8801497197449168),
    ];
    for ((a, b, c, z), want) in cases {
        let got = hyp2f1(a, b, c, z).unwrap();
        assert!(
            relative_error(got, want) < 1e-12,
            "2F1({a}, {b}; {c}; {z}) = {got}, SciPy {want}"
        );
    }
}

#[test]
fn expected_purchases_and_probability_alive_match_the_papers_formulas() {
    // (x, t_x, T, horizon) → (E[Y(horizon)], P(alive)), with the published parameters.
    let cases = [
        (
            (2, 30.43, 38.86, 52.0),
            1.5587208064320937,
            0.726578570080673,
        ),
        ((0, 0.0, 38.86, 52.0), 0.2520730222824504, 1.0),
        (
            (7, 35.0, 38.86, 39.0),
            4.387487854487876,
            0.8437678219280121,
        ),
        (
            (1, 1.71, 38.86, 10.0),
            0.05818583967862392,
            0.2121009853773791,
        ),
        ((0, 0.0, 0.5, 520.0), 4.7397394829341835, 1.0),
        (
            (25, 38.0, 38.86, 52.0),
            20.989888494796784,
            0.9525544784736308,
        ),
        (
            (3, 5.0, 38.86, 52.0),
            0.11604929530197296,
            0.03815138968982289,
        ),
    ];
    for ((x, t_x, t, horizon), want_e, want_alive) in cases {
        let h = FrequencyRecency::new(x, t_x, t).unwrap();
        let e = expected_purchases(&cdnow(), &h, horizon).unwrap();
        // SciPy evaluates the untransformed formula, whose 1 − (…)·₂F₁ cancels a few digits.
        assert!(
            relative_error(e, want_e) < 1e-10,
            "E for {h:?} = {e}, reference {want_e}"
        );
        let alive = probability_alive(&cdnow(), &h);
        assert!(
            relative_error(alive, want_alive) < 1e-12,
            "P(alive) {alive}"
        );
    }
}

#[test]
fn clv_of_cdnow_customer_one_over_a_year() {
    // Customer 1: x = 2, t_x = 30.43, T = 38.86, z̄ = $22.345. E[Y(52)] = 1.5587208064320937
    // (SciPy, above). Gamma-Gamma at the published p = 6.25, q = 3.74, γ = 1544 cents:
    // E[Z] = 6.25 (1544 + 2 · 2234.5) / (6.25 · 2 + 3.74 − 1) = 37581.25 / 15.24
    //      = 2465.961286… cents. Revenue 1.5587208… × 2465.961… = 3843.745… → 3844 cents;
    // at a 25 % margin 960.936… → 961 cents.
    let spend = GammaGammaParams::new(6.25, 3.74, 1544.0).unwrap();
    let h = FrequencyRecency::new(2, 30.43, 38.86).unwrap();
    let c = clv::predict(&cdnow(), &spend, &h, 2234.5, 52.0, BasisPoints(2500)).unwrap();
    assert!(relative_error(c.expected_spend_minor, 37581.25 / 15.24) < 1e-14);
    assert_eq!(c.expected_revenue_minor, 3844);
    assert_eq!(c.expected_margin_minor, 961);
}

/// Σ (a)ₙ (b)ₙ / ((c)ₙ n!) zⁿ summed naively for 400 terms: plenty for |z| ≤ ½ and
/// parameters below 5, where the terms fall at least geometrically after the first few.
/// Returns the sum and the sum of the terms' magnitudes: for z < 0 the terms alternate, and
/// when they grow large before they fall (small c) the sum cancels, so the naive series is
/// only as accurate as ε · Σ|term| / |Σ term| allows.
fn direct_series(a: f64, b: f64, c: f64, z: f64) -> (f64, f64) {
    let (mut term, mut sum, mut magnitude) = (1.0f64, 1.0f64, 1.0f64);
    for n in 0..400 {
        let n = f64::from(n);
        term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        sum += term;
        magnitude += term.abs();
    }
    (sum, magnitude)
}

#[test]
fn hyp2f1_is_exact_where_the_direct_series_cancels() {
    // Found by the property below: the alternating terms peak near 1,066 and their magnitudes
    // add up to about 10,600 while the sum is 0.0223, so the naive series keeps only about 11
    // digits. ₂F₁ here must not inherit that.
    // Reference from mpmath 1.3 at 40 digits: mpmath.hyp2f1(a, b, c, z).
    let (a, b, c, z) = (
        4.865846112069061,
        4.484015925863799,
        0.7202916138339522,
        -0.49657500147853234,
    );
    let got = hyp2f1(a, b, c, z).unwrap();
    assert!(
        relative_error(got, 0.022_288_747_857_443_586) < 1e-13,
        "{got}"
    );
}

proptest! {
    #[test]
    fn hyp2f1_matches_a_direct_series_for_small_arguments(
        a in 0.05f64..5.0,
        b in 0.05f64..5.0,
        c in 0.2f64..5.0,
        z in -0.5f64..0.5,
    ) {
        let (want, magnitude) = direct_series(a, b, c, z);
        let got = hyp2f1(a, b, c, z).unwrap();
        // The reference's own rounding grows with its cancellation (see direct_series).
        let tolerance = 1e-11 + 64.0 * f64::EPSILON * magnitude / want.abs();
        prop_assert!(relative_error(got, want) < tolerance, "{got} vs {want} (±{tolerance:e})");
    }

    #[test]
    fn expected_purchases_equal_the_untransformed_formula(
        r in 0.1f64..3.0,
        alpha in 0.5f64..20.0,
        a in 0.2f64..4.0,
        b in 0.2f64..6.0,
        x in 0u32..15,
        recency_share in 0.0f64..1.0,
        t in 1.0f64..60.0,
        horizon in 0.5f64..60.0,
    ) {
        // Away from a = 1, where the untransformed formula is 0/0.
        prop_assume!((a - 1.0).abs() > 0.05);
        let t_x = if x == 0 { 0.0 } else { recency_share * t };
        let (xf, c) = (f64::from(x), a + b + f64::from(x) - 1.0);
        prop_assume!(c > 0.05);
        let z = horizon / (alpha + t + horizon);
        let f = hyp2f1(r + xf, b + xf, c, z).unwrap();
        let numerator = c / (a - 1.0) * (1.0 - ((alpha + t) / (alpha + t + horizon)).powf(r + xf) * f);
        let odds = if x == 0 { 0.0 } else {
            a / (b + xf - 1.0) * ((alpha + t) / (alpha + t_x)).powf(r + xf)
        };
        let want = numerator / (1.0 + odds);
        let params = BgNbdParams::new(r, alpha, a, b).unwrap();
        let h = FrequencyRecency::new(x, t_x, t).unwrap();
        let got = expected_purchases(&params, &h, horizon).unwrap();
        prop_assert!(got > 0.0);
        // The untransformed formula loses digits to cancellation as a → 1.
        prop_assert!(relative_error(got, want) < 1e-8 / (a - 1.0).abs(), "{got} vs {want}");
    }

    #[test]
    fn expected_purchases_grow_with_the_horizon_and_probability_alive_is_a_probability(
        x in 0u32..30,
        recency_share in 0.0f64..1.0,
        t in 0.0f64..100.0,
        horizon in 0.0f64..200.0,
        more in 0.01f64..50.0,
    ) {
        let t_x = if x == 0 { 0.0 } else { recency_share * t };
        let h = FrequencyRecency::new(x, t_x, t).unwrap();
        let shorter = expected_purchases(&cdnow(), &h, horizon).unwrap();
        let longer = expected_purchases(&cdnow(), &h, horizon + more).unwrap();
        prop_assert!(shorter >= 0.0 && longer > shorter, "{shorter} then {longer}");
        let alive = probability_alive(&cdnow(), &h);
        prop_assert!((0.0..=1.0).contains(&alive));
    }
}
