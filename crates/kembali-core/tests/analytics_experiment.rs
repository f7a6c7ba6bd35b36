//! Holdout assignment, Welch test, sample-ratio mismatch and ROI.
//!
//! Reference values were computed once with Python 3 (hashlib) and SciPy 1.17
//! (`scipy.stats.ttest_ind(..., equal_var=False)` and its `confidence_interval(0.95)`,
//! `ttest_ind_from_stats`, `t.ppf`, `chisquare`) and pasted here as literals; the project
//! does not depend on Python.

use kembali_core::analytics::experiment::{
    assign, bucket, roi, sample_ratio_mismatch, welch, Arm, ExperimentError, SampleStats, BUCKETS,
};
use kembali_core::ids::CustomerId;
use kembali_core::money::BasisPoints;
use proptest::prelude::*;

fn id(raw: &str) -> CustomerId {
    CustomerId::parse(raw).unwrap()
}

fn close(got: f64, want: f64, relative: f64) -> bool {
    (got - want).abs() <= relative * want.abs()
}

#[test]
fn buckets_are_pinned_so_that_no_release_moves_a_customer() {
    // int.from_bytes(sha256(len(salt).to_bytes(8, 'big') + salt + id).digest()[:8], 'big')
    // % 10000, in Python.
    assert_eq!(bucket("spring-2025", &id("cust-1")), 6789);
    assert_eq!(bucket("spring-2025", &id("cust-2")), 1672);
    assert_eq!(bucket("eco-week", &id("00042")), 7363);
    assert_eq!(bucket("", &id("a")), 361);
    assert_eq!(
        assign("spring-2025", &id("cust-2"), BasisPoints(1673)),
        Arm::Holdout
    );
    assert_eq!(
        assign("spring-2025", &id("cust-2"), BasisPoints(1672)),
        Arm::Treatment
    );
}

#[test]
fn welch_from_samples_matches_scipy() {
    let treatment = [
        2502.0, 2006.0, 1719.0, 2618.0, 1663.0, 3574.0, 2710.0, 2444.0, 696.0, 361.0, 761.0,
        2816.0, 2407.0, 553.0, 2795.0, 1238.0, 1240.0, 4633.0, 2290.0, 2626.0, 2650.0, 541.0,
        2738.0, 8719.0, 823.0, 3791.0, 4069.0, 4028.0, 1407.0, 1706.0, 834.0, 2139.0, 5438.0,
        1255.0, 286.0, 2316.0, 4087.0, 1852.0, 6763.0, 1957.0,
    ];
    let holdout = [
        1970.0, 783.0, 1504.0, 3458.0, 3493.0, 4456.0, 3301.0, 2802.0, 231.0, 980.0, 8539.0,
        1279.0, 3104.0, 1839.0, 3162.0, 2036.0, 835.0, 1022.0, 2507.0, 1318.0, 246.0, 2834.0,
        3921.0, 3701.0, 3755.0, 476.0, 5599.0, 1739.0, 908.0, 1377.0,
    ];
    let t = SampleStats::from_samples(&treatment).unwrap();
    let h = SampleStats::from_samples(&holdout).unwrap();
    assert!(close(t.mean(), 2476.275, 1e-14));
    assert!(close(t.variance(), 3038464.4096153844, 1e-12));
    assert!(close(h.variance(), 3176022.4195402297, 1e-12));
    let w = welch(&t, &h, 0.95).unwrap();
    assert!(close(w.difference, 2476.275 - 2439.1666666666665, 1e-12));
    assert!(close(w.t_statistic, 0.08702416101616171, 1e-10));
    assert!(close(w.degrees_of_freedom, 61.86335425310756, 1e-10));
    assert!(close(w.p_value, 0.9309333795425812, 1e-10));
    assert!(close(w.ci_low, -815.3188537131656, 1e-9));
    assert!(close(w.ci_high, 889.5355203798327, 1e-9));
}

#[test]
fn welch_from_sufficient_statistics_matches_scipy() {
    // Spend per customer in cents: 9000 treated, mean 5230, variance 4.1e7; 1000 held
    // out, mean 4710, variance 3.6e7.
    let t = SampleStats::new(9000, 5230.0, 4.1e7).unwrap();
    let h = SampleStats::new(1000, 4710.0, 3.6e7).unwrap();
    let w = welch(&t, &h, 0.95).unwrap();
    assert_eq!(w.difference, 520.0);
    assert!(close(w.standard_error, 201.38409955990954, 1e-13));
    assert!(close(w.degrees_of_freedom, 1265.580730686283, 1e-12));
    assert!(close(w.t_statistic, 2.582130372439388, 1e-12));
    assert!(close(w.p_value, 0.009930784789372357, 1e-9));
    assert!(close(w.ci_low, 124.91657770023937, 1e-9));
    assert!(close(w.ci_high, 915.0834222997606, 1e-9));
    // A large effect: the p-value stays accurate far below 1e-16.
    let far = SampleStats::new(1000, 3000.0, 3.6e7).unwrap();
    let w = welch(&t, &far, 0.95).unwrap();
    assert!(close(w.t_statistic, 11.073366789499683, 1e-12));
    assert!(
        close(w.p_value, 2.8834199963540647e-27, 1e-6),
        "{}",
        w.p_value
    );
}

#[test]
fn welch_refuses_what_it_cannot_test() {
    assert_eq!(
        SampleStats::from_samples(&[1.0]),
        Err(ExperimentError::TooFewObservations(1))
    );
    assert_eq!(
        SampleStats::new(10, 1.0, -1.0),
        Err(ExperimentError::InvalidSummary)
    );
    let flat = SampleStats::from_samples(&[5.0, 5.0, 5.0]).unwrap();
    assert_eq!(welch(&flat, &flat, 0.95), Err(ExperimentError::NoVariance));
    let t = SampleStats::new(10, 1.0, 1.0).unwrap();
    assert_eq!(
        welch(&t, &t, 1.0),
        Err(ExperimentError::InvalidConfidence(1.0))
    );
}

#[test]
fn sample_ratio_mismatch_matches_scipy_and_flags_only_small_p_values() {
    // (treatment, holdout, holdout share) → (χ², p) from scipy.stats.chisquare.
    let cases = [
        (9000, 1000, 1000, 0.0, 1.0, false),
        (8850, 1150, 1000, 25.0, 5.733031437583875e-07, true),
        (5050, 4950, 5000, 1.0, 0.31731050786291115, false),
        (90210, 9790, 1000, 4.9, 0.02685669550752441, false),
    ];
    for (treatment, holdout, share, chi2, p, flagged) in cases {
        let c = sample_ratio_mismatch(treatment, holdout, BasisPoints(share)).unwrap();
        assert!((c.chi_squared - chi2).abs() < 1e-9, "{c:?}");
        assert!((c.p_value - p).abs() <= 1e-9 * p.max(1e-300), "{c:?}");
        assert_eq!(c.mismatch, flagged, "{c:?}");
    }
    assert_eq!(
        sample_ratio_mismatch(10, 0, BasisPoints(0)),
        Err(ExperimentError::InvalidShare)
    );
    assert_eq!(
        sample_ratio_mismatch(0, 0, BasisPoints(1000)),
        Err(ExperimentError::NoCustomers)
    );
}

#[test]
fn roi_maps_the_welch_interval_of_incremental_spend() {
    // Δ = 220 cents per treated customer, 95 % interval [−175.0834…, 615.0834…] (SciPy:
    // n 9000/1000, means 5230/5010, variances 4.1e7/3.6e7). 9000 treated at a 40 % margin:
    // M = 220 × 9000 × 0.4 = 792,000 cents; cost 500,000 cents: ROI = 792,000/500,000 − 1
    // = 0.584; ends: Δ × 9000 × 0.4 / 500,000 − 1 = −2.2606… and 3.4286….
    let t = SampleStats::new(9000, 5230.0, 4.1e7).unwrap();
    let h = SampleStats::new(1000, 5010.0, 3.6e7).unwrap();
    let w = welch(&t, &h, 0.95).unwrap();
    assert!(close(w.ci_low, -175.08342229976063, 1e-9));
    let r = roi(&w, 9000, BasisPoints(4000), 500_000).unwrap();
    assert_eq!(r.incremental_margin_minor, 792_000);
    assert!(close(r.roi, 0.584, 1e-12));
    assert!(close(r.ci_low, -2.260600640558277, 1e-9));
    assert!(close(r.ci_high, 3.428600640558276, 1e-9));
    assert_eq!(r.confidence, 0.95);
    assert_eq!(
        roi(&w, 9000, BasisPoints(4000), 0),
        Err(ExperimentError::NonPositiveCost(0))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn holdout_share_converges_to_the_planned_share(
        salt in "[a-z0-9-]{0,16}",
        share in 1u32..10_000,
    ) {
        let n = 10_000u32;
        let held = (0..n)
            .filter(|i| assign(&salt, &id(&format!("c{i}")), BasisPoints(share)) == Arm::Holdout)
            .count();
        let p = f64::from(share) / f64::from(BUCKETS);
        let sd = (p * (1.0 - p) / f64::from(n)).sqrt();
        // Six standard deviations: a false alarm about once in 500 million cases.
        prop_assert!((held as f64 / f64::from(n) - p).abs() <= 6.0 * sd + 1e-9,
            "{held} of {n} held out at a share of {p}");
    }
}

proptest! {
    #[test]
    fn assignment_is_deterministic_and_a_larger_share_only_adds_to_the_holdout(
        salt in "\\PC{0,20}",
        customer in "[A-Za-z0-9_.:-]{1,40}",
        share in 0u32..=10_000,
        more in 0u32..=10_000,
    ) {
        let c = id(&customer);
        let b = bucket(&salt, &c);
        prop_assert!(b < BUCKETS);
        prop_assert_eq!(b, bucket(&salt, &c));
        let smaller = assign(&salt, &c, BasisPoints(share));
        let larger = assign(&salt, &c, BasisPoints((share + more).min(10_000)));
        if smaller == Arm::Holdout {
            prop_assert_eq!(larger, Arm::Holdout);
        }
        prop_assert_eq!(assign(&salt, &c, BasisPoints(0)), Arm::Treatment);
        prop_assert_eq!(assign(&salt, &c, BasisPoints::FULL), Arm::Holdout);
    }

    #[test]
    fn welch_interval_contains_the_difference_and_widens_with_confidence(
        nt in 2u64..100_000,
        nh in 2u64..100_000,
        mt in -1e6f64..1e6,
        mh in -1e6f64..1e6,
        vt in 0.0f64..1e9,
        vh in 1e-3f64..1e9,
    ) {
        let t = SampleStats::new(nt, mt, vt).unwrap();
        let h = SampleStats::new(nh, mh, vh).unwrap();
        let w95 = welch(&t, &h, 0.95).unwrap();
        let w99 = welch(&t, &h, 0.99).unwrap();
        prop_assert!(w95.ci_low < w95.difference && w95.difference < w95.ci_high);
        prop_assert!(w99.ci_low < w95.ci_low && w95.ci_high < w99.ci_high);
        prop_assert!((0.0..=1.0).contains(&w95.p_value));
        let df_min = ((nt.min(nh)) - 1) as f64;
        prop_assert!(w95.degrees_of_freedom >= df_min * (1.0 - 1e-9));
        prop_assert!(w95.degrees_of_freedom <= (nt + nh - 2) as f64 * (1.0 + 1e-9));
        // Swapping the arms flips the difference and keeps the p-value.
        let swapped = welch(&h, &t, 0.95).unwrap();
        prop_assert_eq!(swapped.difference, -w95.difference);
        prop_assert!((swapped.p_value - w95.p_value).abs() < 1e-12);
        // The p-value is below 5 % exactly when the 95 % interval excludes zero.
        let excludes_zero = w95.ci_low > 0.0 || w95.ci_high < 0.0;
        if (w95.p_value - 0.05).abs() > 1e-9 {
            prop_assert_eq!(w95.p_value < 0.05, excludes_zero);
        }
    }
}
