//! Acceptance of issue 5 on real data: `kembali import` (the real binary) loads the CDNOW
//! sample into a SQLite file, and summarising the calibration period FROM THAT DATABASE
//! (the store's metric reads and the lifetime-value report) reproduces the published
//! per-customer summaries exactly and the published BG/NBD and Gamma-Gamma fits.

mod common;

use chrono::{NaiveDate, TimeZone, Utc};
use common::*;
use kembali_app::clock::TestClock;
use kembali_app::store::{job, Store};
use kembali_app::Engine;
use kembali_core::analytics::metrics::{
    calibration_summaries, Facts, Filter, Measurable, ReportContext,
};
use kembali_store_sqlite::SqliteStore;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The copy of the CDNOW sample and its published summaries kept beside the core's tests
/// (MIT, from the `lifetimes` package; see LICENSE-lifetimes.txt there).
fn cdnow(name: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kembali-core/tests/data/cdnow");
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// The published CSV's data rows, by their first column (the sample id).
fn published(name: &str) -> BTreeMap<u32, Vec<String>> {
    cdnow(name)
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let row: Vec<String> = l.trim().split(',').map(str::to_string).collect();
            (row[0].parse().unwrap(), row)
        })
        .collect()
}

fn within(got: f64, published: f64, relative: f64) -> bool {
    (got - published).abs() <= relative * published.abs()
}

/// Weeks in hundredths, as published (weeks are days / 7: never a tie at two decimals).
fn hundredths(weeks: f64) -> i64 {
    (weeks * 100.0).round() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_cdnow_and_summarising_from_the_database_reproduces_the_published_results() {
    let dir = scratch_dir();
    let file = dir.join("CDNOW_sample.txt");
    std::fs::write(&file, cdnow("CDNOW_sample.txt")).unwrap();
    let db = dir.join("kembali.db");
    let db_url = format!("sqlite://{}", db.display());
    let out = kembali(&[
        "import",
        file.to_str().unwrap(),
        "--format",
        "cdnow",
        "--db",
        &db_url,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("imported 6919 orders (6919 lines)"),
        "{stdout}"
    );
    assert!(stdout.contains("6919 new, 0 already there"), "{stdout}");

    // The file's customer ids (the full data set's) and their ids in the sample (the
    // published summaries' `ID`), from the file itself.
    let sample_id: BTreeMap<String, u32> = cdnow("CDNOW_sample.txt")
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (full, sample) = (f.next()?, f.next()?);
            Some((full.parse::<u32>().ok()?.to_string(), sample.parse().ok()?))
        })
        .collect();

    let store = Arc::new(SqliteStore::open(&db).unwrap());
    let clock = Arc::new(TestClock::new(
        Utc.with_ymd_and_hms(2026, 1, 5, 12, 0, 0).unwrap(),
    ));
    let engine = Engine::new(store.clone(), clock);
    // The published calibration period: 1997-01-01 to 1997-09-30, in weeks.
    let filter = Filter {
        from: NaiveDate::from_ymd_opt(1997, 1, 1),
        to: NaiveDate::from_ymd_opt(1997, 9, 30),
        ..Filter::default()
    };

    // Per customer, from the store's metric reads (the facts every report reads).
    let facts = store
        .read(job(|tx| {
            Box::pin(async move {
                let mut facts = Facts::default();
                tx.metric_customers(&mut facts).await?;
                tx.metric_orders(&mut facts).await?;
                Ok(facts)
            })
        }))
        .await
        .unwrap();
    assert_eq!(facts.orders.len(), 6_919);
    let ctx = ReportContext {
        zone: kembali_core::campaign::parse_zone("UTC").unwrap(),
        as_of: engine.now(),
        gross_margin: kembali_core::money::BasisPoints(3_000),
    };
    let ours: BTreeMap<u32, _> = calibration_summaries(&facts, &filter, &ctx)
        .unwrap()
        .into_iter()
        .map(|(ix, s)| {
            let id = facts.customers[ix as usize].id.as_str();
            (sample_id[id], s)
        })
        .collect();
    let summary = published("cdnow_customers_summary.csv");
    let with_value = published("cdnow_customers_summary_with_transactions.csv");
    assert_eq!(summary.len(), 2_357);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        summary.keys().collect::<Vec<_>>()
    );
    for (id, s) in &ours {
        let (row, value) = (&summary[id], &with_value[id]);
        // z̄ in cents, half away from zero like the published dollars (an integer over a
        // small integer ending in .5 is exact in f64).
        let cents = s.zbar_minor().round() as i64;
        let zbar = format!("{}.{:02}", cents / 100, cents % 100);
        let got = (s.x(), hundredths(s.t_x()), hundredths(s.t()), zbar);
        let want = (
            row[1].parse().unwrap(),
            hundredths(row[2].parse().unwrap()),
            hundredths(row[3].parse().unwrap()),
            value[4].clone(),
        );
        assert_eq!(got, want, "frequency, recency, T and z̄ of customer {id}");
    }

    // The lifetime-value report on the database fits the published models: Fader, Hardie &
    // Lee, r = 0.243, α = 4.414, a = 0.793, b = 2.426, LL = −9582.4; Gamma-Gamma p = 6.25,
    // q = 3.74, γ = 15.44 dollars (1544 cents).
    let ltv = engine.metrics_ltv(filter).await.unwrap();
    assert_eq!(ltv.report.historical.customers, 2_357);
    let Measurable::Measured(p) = &ltv.report.predicted else {
        panic!("{:?}", ltv.report.predicted)
    };
    for (name, want) in [("r", 0.243), ("alpha", 4.414), ("a", 0.793), ("b", 2.426)] {
        let got = p.bgnbd.params[name];
        assert!(within(got, want, 0.005), "{name} = {got}, published {want}");
    }
    let ll = p.bgnbd.log_likelihood;
    assert!((ll - -9582.4).abs() <= 0.1, "log-likelihood {ll}");
    for (name, want) in [("p", 6.25), ("q", 3.74), ("gamma", 1544.0)] {
        let got = p.gamma_gamma.params[name];
        assert!(within(got, want, 0.005), "{name} = {got}, published {want}");
    }
    assert_eq!((p.bgnbd.customers, p.gamma_gamma.customers), (2_357, 946));
}
