//! Predicted lifetime value from order facts, on the CDNOW sample: the report's fits are the
//! published BG/NBD and Gamma-Gamma fits, and its prediction is their product times margin.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use kembali_core::analytics::metrics::{
    lifetime_value, Facts, Filter, Measurable, OrderFact, ReportContext,
};
use kembali_core::analytics::{bgnbd, cdnow, clv, gamma_gamma, rfm};
use kembali_core::ids::Channel;
use kembali_core::money::BasisPoints;
use std::collections::BTreeMap;
use std::path::Path;

fn within(got: f64, published: f64, relative: f64) -> bool {
    (got - published).abs() <= relative * published.abs()
}

#[test]
fn lifetime_value_on_cdnow_fits_the_published_models_and_predicts_with_them() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cdnow/CDNOW_sample.txt"),
    )
    .unwrap();
    let records = cdnow::parse(&text).unwrap();
    let mut facts = Facts::default();
    let mut purchases: BTreeMap<u32, Vec<rfm::Purchase>> = BTreeMap::new();
    for r in &records {
        let customer = facts.customer(&format!("c{}", r.sample_id)).unwrap();
        let noon: DateTime<Utc> = Utc.from_utc_datetime(&r.date.and_hms_opt(12, 0, 0).unwrap());
        facts.orders.push(OrderFact {
            customer,
            channel: Channel::Web,
            store: None,
            placed_at: noon,
            total_minor: r.value_minor,
            returned_minor: 0,
            cashback_minor: 0,
            clawed_back_minor: 0,
            lot_id: None,
        });
        purchases.entry(r.sample_id).or_default().push(r.purchase());
    }
    // The published calibration period: 1997-01-01 to 1997-09-30.
    let end = NaiveDate::from_ymd_opt(1997, 9, 30).unwrap();
    let filter = Filter {
        from: NaiveDate::from_ymd_opt(1997, 1, 1),
        to: Some(end),
        ..Filter::default()
    };
    let ctx = ReportContext {
        zone: Tz::UTC,
        as_of: Utc.with_ymd_and_hms(1999, 1, 1, 0, 0, 0).unwrap(),
        gross_margin: BasisPoints(3_000),
    };
    let report = lifetime_value(&facts, &filter, &ctx).unwrap();
    assert_eq!(report.historical.customers, 2_357);
    let Measurable::Measured(p) = &report.predicted else {
        panic!("{:?}", report.predicted)
    };
    // Fader, Hardie & Lee: r = 0.243, α = 4.414, a = 0.793, b = 2.426, LL = −9582.4;
    // Gamma-Gamma p = 6.25, q = 3.74, γ = 15.44 dollars = 1544 cents.
    for (name, want) in [("r", 0.243), ("alpha", 4.414), ("a", 0.793), ("b", 2.426)] {
        assert!(within(p.bgnbd.params[name], want, 0.005), "{name}");
    }
    assert!((p.bgnbd.log_likelihood - -9582.4).abs() < 0.1);
    for (name, want) in [("p", 6.25), ("q", 3.74), ("gamma", 1544.0)] {
        assert!(within(p.gamma_gamma.params[name], want, 0.005), "{name}");
    }
    assert_eq!((p.bgnbd.customers, p.gamma_gamma.customers), (2_357, 946));
    // The prediction is Σ over customers of E[purchases in 365 days] × E[spend] × 30 %,
    // each rounded once, with the report's own fitted parameters.
    let summaries: Vec<rfm::RfmSummary> = purchases
        .values()
        .map(|ps| rfm::summarise(ps, end, rfm::TimeUnit::WEEK).unwrap())
        .collect();
    let histories: Vec<_> = summaries.iter().map(|s| s.frequency_recency()).collect();
    let spends: Vec<_> = summaries.iter().filter_map(|s| s.spend()).collect();
    let fit = bgnbd::fit(&histories).unwrap();
    let gg = gamma_gamma::fit(&spends).unwrap();
    let expected: i64 = summaries
        .iter()
        .map(|s| {
            clv::predict(
                &fit.params,
                &gg.params,
                &s.frequency_recency(),
                s.zbar_minor(),
                365.0 / 7.0,
                BasisPoints(3_000),
            )
            .unwrap()
            .expected_margin_minor
        })
        .sum();
    assert_eq!(p.total_minor, expected);
    assert!(p.total_minor > 0);
}
