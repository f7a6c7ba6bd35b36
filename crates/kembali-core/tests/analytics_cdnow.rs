//! The models against the published CDNOW results (see tests/data/cdnow/README.md): the
//! summaries reproduce the published ones for every customer, and the fits reproduce the
//! papers' parameters.

use chrono::NaiveDate;
use kembali_core::analytics::{bgnbd, cdnow, gamma_gamma, rfm};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A copy of the CDNOW sample and its published summaries (MIT, from the `lifetimes`
/// package; see LICENSE-lifetimes.txt there), kept in the repository so the tests run on any
/// checkout.
fn cdnow_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cdnow")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(cdnow_dir().join(name)).unwrap()
}

/// Each customer of the sample summarised over 1997-01-01 .. 1997-09-30 in weeks, by
/// sample id (the `ID` of the published summaries).
fn summaries() -> BTreeMap<u32, rfm::RfmSummary> {
    let records = cdnow::parse(&read("CDNOW_sample.txt")).unwrap();
    assert_eq!(records.len(), 6_919);
    let mut purchases: BTreeMap<u32, Vec<rfm::Purchase>> = BTreeMap::new();
    for r in &records {
        purchases.entry(r.sample_id).or_default().push(r.purchase());
    }
    let end = NaiveDate::from_ymd_opt(1997, 9, 30).unwrap();
    purchases
        .into_iter()
        .map(|(id, p)| (id, rfm::summarise(&p, end, rfm::TimeUnit::WEEK).unwrap()))
        .collect()
}

/// The data rows of a published CSV, split on commas.
fn csv_rows(name: &str) -> Vec<Vec<String>> {
    read(name)
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().split(',').map(str::to_string).collect())
        .collect()
}

fn hundredths(text: &str) -> i64 {
    (text.parse::<f64>().unwrap() * 100.0).round() as i64
}

fn within(got: f64, published: f64, relative: f64) -> bool {
    (got - published).abs() <= relative * published.abs()
}

#[test]
fn summaries_reproduce_the_published_frequency_recency_and_age_of_every_customer() {
    let ours = summaries();
    let published = csv_rows("cdnow_customers_summary.csv");
    assert_eq!(published.len(), 2_357);
    assert_eq!(ours.len(), published.len());
    for row in &published {
        let id: u32 = row[0].parse().unwrap();
        let s = &ours[&id];
        assert_eq!(s.x().to_string(), row[1], "frequency of customer {id}");
        // Weeks are days / 7, never a tie at two decimals, so rounding is unambiguous.
        assert_eq!(
            (s.t_x() * 100.0).round() as i64,
            hundredths(&row[2]),
            "recency of customer {id}"
        );
        assert_eq!(
            (s.t() * 100.0).round() as i64,
            hundredths(&row[3]),
            "T of customer {id}"
        );
    }
    // The README's worked example: customer 1 (00004) has x = 2, 213 and 272 days.
    assert_eq!(
        (ours[&1].x(), ours[&1].recency_days, ours[&1].age_days),
        (2, 213, 272)
    );
}

#[test]
fn summaries_reproduce_the_published_mean_repeat_value_of_every_customer() {
    let ours = summaries();
    let published = csv_rows("cdnow_customers_summary_with_transactions.csv");
    assert_eq!(published.len(), 2_357);
    for row in &published {
        let id: u32 = row[0].parse().unwrap();
        // z̄ in cents, rounded half away from zero like the published dollars (140 customers
        // have a mean ending in exactly half a cent, e.g. customer 1: 4469 / 2 = 2234.5 →
        // 22.35). An integer over a small integer that ends in .5 is exact in f64.
        let cents = ours[&id].zbar_minor().round() as i64;
        assert_eq!(
            format!("{}.{:02}", cents / 100, cents % 100),
            row[4],
            "z̄ of customer {id}"
        );
    }
}

#[test]
fn bgnbd_fit_reproduces_the_published_parameters_and_log_likelihood() {
    let data: Vec<bgnbd::FrequencyRecency> = summaries()
        .values()
        .map(|s| s.frequency_recency())
        .collect();
    let fit = bgnbd::fit(&data).unwrap();
    let p = fit.params;
    let published = [
        ("r", p.r(), 0.243),
        ("α", p.alpha(), 4.414),
        ("a", p.a(), 0.793),
        ("b", p.b(), 2.426),
    ];
    for (name, got, want) in published {
        assert!(within(got, want, 0.005), "{name} = {got}, published {want}");
    }
    assert!(
        (fit.log_likelihood - -9582.4).abs() <= 0.1,
        "log-likelihood {}",
        fit.log_likelihood
    );
    // The maximum is a maximum: nudging any parameter lowers the likelihood.
    let ll = |r: f64, al: f64, a: f64, b: f64| {
        bgnbd::log_likelihood(&bgnbd::BgNbdParams::new(r, al, a, b).unwrap(), &data)
    };
    let (r, al, a, b) = (p.r(), p.alpha(), p.a(), p.b());
    for k in [1.01, 0.99] {
        assert!(ll(r * k, al, a, b) < fit.log_likelihood);
        assert!(ll(r, al * k, a, b) < fit.log_likelihood);
        assert!(ll(r, al, a * k, b) < fit.log_likelihood);
        assert!(ll(r, al, a, b * k) < fit.log_likelihood);
    }
}

#[test]
fn gamma_gamma_fit_reproduces_the_published_parameters() {
    let data: Vec<gamma_gamma::SpendHistory> =
        summaries().values().filter_map(|s| s.spend()).collect();
    // Every customer with a repeat purchase spent something on them.
    assert_eq!(data.len(), 946);
    let fit = gamma_gamma::fit(&data).unwrap();
    let p = fit.params;
    // γ comes out in cents; the paper's is in dollars.
    let published = [
        ("p", p.p(), 6.25),
        ("q", p.q(), 3.74),
        ("γ", p.gamma_minor() / 100.0, 15.44),
    ];
    for (name, got, want) in published {
        assert!(within(got, want, 0.005), "{name} = {got}, published {want}");
    }
}
