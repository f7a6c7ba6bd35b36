//! `kembali demo` end to end at a small size: it loads a chain, serves it, and every metric
//! of `kembali report` over its database has a real value.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

/// Report fields the demo's data makes zero or false by construction (path suffix, why).
const ZERO_BY_CONSTRUCTION: [(&str, &str); 4] = [
    // Every customer is assigned under the holdout share the program has had all along.
    (
        "program_experiment.other_share_customers",
        "one share all year",
    ),
    // The arms are drawn by the program's own hash at the planned share.
    (
        "program_experiment.sample_ratio.mismatch",
        "no sample-ratio mismatch",
    ),
    // Green cashback's holdout, likewise: one share, drawn by the hash.
    (
        "campaign_experiments.0.other_share_customers",
        "one share all along",
    ),
    (
        "campaign_experiments.0.sample_ratio.mismatch",
        "no sample-ratio mismatch",
    ),
];

/// Every leaf of the report that is null, zero, false, empty or not measured (paths joined
/// with dots; a series of numbers counts as one value, empty only when all are zero).
fn trivial_values(path: &str, v: &Value, out: &mut Vec<String>) {
    let trivial = match v {
        Value::Null | Value::Bool(false) => true,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty() || (path.ends_with(".status") && s != "measured"),
        Value::Array(items) if items.iter().all(Value::is_number) => {
            items.iter().all(|n| n.as_f64() == Some(0.0))
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                trivial_values(&format!("{path}.{i}"), item, out);
            }
            items.is_empty()
        }
        Value::Object(map) => {
            for (k, item) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                trivial_values(&p, item, out);
            }
            map.is_empty()
        }
        Value::Bool(true) => false,
    };
    if trivial {
        out.push(format!("{path} = {v}"));
    }
}

#[tokio::test]
async fn the_demo_serves_a_program_whose_report_has_a_value_for_every_metric() {
    let dir = scratch_dir();
    let file = dir.join("demo.db");
    let path = file.to_str().expect("a UTF-8 path");
    // 600 customers; the last 150 days live through the engine (over 90, so the 90-day
    // buy-again rate has customers; over 30 days of expiry, so cashback expires).
    let server = Server::spawn(
        &[
            "demo",
            "--db",
            path,
            "--customers",
            "600",
            "--seed",
            "7",
            "--live-days",
            "150",
            "--listen",
            "127.0.0.1:0",
        ],
        Duration::from_secs(600),
    );
    assert_eq!(server.get("/readyz").await.0, 200);
    let (status, totals) = server.get("/v1/program/totals").await;
    assert_eq!(status, 200, "{totals}");
    assert_eq!(totals["balanced"], true, "{totals}");
    assert!(server.terminate().success());

    let out = kembali(&[
        "report",
        "--db",
        &format!("sqlite://{path}"),
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for (field, why) in ZERO_BY_CONSTRUCTION {
        let pointer = format!("/{}", field.replace('.', "/"));
        let v = report.pointer(&pointer);
        assert!(
            matches!(v, Some(v) if v == 0 || v == false),
            "{field} ({why}): {v:?}"
        );
    }
    let mut trivial = Vec::new();
    trivial_values("", &report, &mut trivial);
    trivial.retain(|t| !ZERO_BY_CONSTRUCTION.iter().any(|(f, _)| t.starts_with(f)));
    assert!(
        trivial.is_empty(),
        "metrics without a value on the demo:\n{}",
        trivial.join("\n")
    );
    // Green cashback's experiment is there.
    assert_eq!(
        report["campaign_experiments"][0]["experiment_id"], "campaign:green-cashback",
        "{}",
        report["campaign_experiments"]
    );
    // The intervals of the program experiment are real intervals around the difference.
    let e = &report["program_experiment"];
    for metric in [
        "spend_per_customer",
        "orders_per_customer",
        "conversion",
        "retention",
    ] {
        let m = &e[metric];
        let (lo, d, hi) = (
            m["ci_low"].as_f64().unwrap(),
            m["difference"].as_f64().unwrap(),
            m["ci_high"].as_f64().unwrap(),
        );
        assert!(lo < d && d < hi, "{metric}: {m}");
    }
}
