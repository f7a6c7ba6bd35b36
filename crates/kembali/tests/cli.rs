//! End-to-end tests of the binary: real processes, a fresh SQLite file per test, a real
//! port (port 0, read back from the `listening on` log line).

mod common;

use common::*;
use serde_json::json;

#[test]
fn keys_create_prints_the_secret_as_its_last_line() {
    let dir = scratch_dir();
    let db = db_url(&dir);
    let out = kembali(&[
        "keys",
        "create",
        "--db",
        &db,
        "--role",
        "channel",
        "--channel",
        "store",
        "--store",
        "s1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().expect("a line");
    assert!(last.starts_with("kb_") && !last.contains(' '), "{stdout}");
}

#[test]
fn keys_create_refuses_a_channel_on_a_non_channel_key() {
    let dir = scratch_dir();
    let out = kembali(&[
        "keys",
        "create",
        "--db",
        &db_url(&dir),
        "--role",
        "analyst",
        "--channel",
        "web",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("channel"));
}

#[tokio::test]
async fn migrate_creates_either_database_and_an_unknown_scheme_is_refused_clearly() {
    let dir = scratch_dir();
    let out = kembali(&["migrate", "--db", &db_url(&dir)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("kembali.db").exists());
    let pg = kembali_store_postgres::testing::TestDatabase::create().await;
    let out = kembali(&["migrate", "--db", &pg.url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = kembali(&["keys", "create", "--db", &pg.url, "--role", "analyst"]);
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    let other = kembali(&["migrate", "--db", "mysql://localhost/kembali"]);
    assert!(!other.status.success());
    let why = String::from_utf8_lossy(&other.stderr);
    assert!(why.contains("use sqlite://PATH or postgres://"), "{why}");
}

#[tokio::test]
async fn a_server_on_a_test_clock_earns_matures_and_stops_on_sigterm() {
    let dir = scratch_dir();
    let server = Server::start(&db_url(&dir), &["--test-clock", "2025-01-06T12:00:00Z"]);
    let url = |p: &str| format!("{}{p}", server.base);
    let health = reqwest::get(url("/healthz")).await.expect("healthz");
    assert_eq!(health.status(), 200);
    let order = json!({
        "order_id": "o1", "channel": "web", "customer_id": "ana", "currency": "BRL",
        "lines": [{"line_id": "l1", "sku": "s", "category": "c", "quantity": 1, "unit_price_minor": 10_000}]
    });
    let (status, receipt) = call(
        reqwest::Method::POST,
        &url("/v1/orders"),
        ADMIN,
        Some(order),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["cashback_minor"], 500);
    let (status, moved) = call(
        reqwest::Method::POST,
        &url("/v1/test/clock"),
        ADMIN,
        Some(json!({"advance_secs": 8 * 86_400})),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["now"], "2025-01-14T12:00:00Z");
    let (_, wallet) = call(
        reqwest::Method::GET,
        &url("/v1/customers/ana/wallet"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(wallet["available_minor"], 500, "{wallet}");
    let (status, _) = call(reqwest::Method::GET, &url("/v1/program"), "kb_wrong", None).await;
    assert_eq!(status, 401);
    assert!(server.terminate().success());
}

#[tokio::test]
async fn a_server_on_the_real_clock_has_no_test_clock_route() {
    let dir = scratch_dir();
    let server = Server::start(&db_url(&dir), &[]);
    let url = format!("{}/v1/test/clock", server.base);
    let (status, problem) = call(
        reqwest::Method::POST,
        &url,
        ADMIN,
        Some(json!({"advance_secs": 60})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(problem["code"], "not_found");
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(server.terminate().success());
}

#[test]
fn a_server_signalled_as_soon_as_it_announces_its_address_shuts_down_cleanly() {
    // A supervisor may stop a server the moment it is up: the signal must be heard (not
    // kill it outright, nor be lost) however late the runtime gets to the shutdown task.
    for _ in 0..3 {
        let dir = scratch_dir();
        let server = Server::start(&db_url(&dir), &[]);
        assert!(server.terminate().success());
    }
}

#[tokio::test]
async fn backtest_reports_a_draft_set_against_the_stored_history() {
    use kembali_app::clock::SystemClock;
    use kembali_app::model::{Caller, OrderLineRequest, OrderRequest};
    use kembali_app::Engine;
    use kembali_core::ids::Channel;
    use std::sync::Arc;

    let dir = scratch_dir();
    let db = db_url(&dir);
    {
        let store = kembali_store_sqlite::SqliteStore::open(&dir.join("kembali.db")).unwrap();
        let engine = Engine::new(Arc::new(store), Arc::new(SystemClock));
        engine.init().await.unwrap();
        for i in 0..5 {
            let req = OrderRequest {
                order_id: format!("o{i}"),
                channel: Some(Channel::Web),
                store_id: None,
                customer_id: format!("c{}", i % 2),
                currency: "BRL".into(),
                placed_at: None,
                lines: vec![OrderLineRequest {
                    line_id: "1".into(),
                    sku: "sku-1".into(),
                    category: "books".into(),
                    tags: vec![],
                    quantity: 1,
                    unit_price_minor: 10_000,
                    discount_minor: 0,
                }],
                redemption_id: None,
                partner_id: None,
            };
            engine
                .post_order(req.parse(&Caller::default()).unwrap(), None)
                .await
                .unwrap();
        }
    }
    let today = chrono::Utc::now().date_naive();
    let drafts = dir.join("drafts.json");
    std::fs::write(
        &drafts,
        json!([{ "id": "books", "definition": {
            "name": "Books 10",
            "window": { "starts_on": (today - chrono::Duration::days(2)).to_string(),
                        "ends_on": (today + chrono::Duration::days(2)).to_string() },
            "conditions": { "categories": ["books"] },
            "reward": { "kind": "percent", "rate_bp": 1000 },
            "stacking": { "mode": "best_of" }
        }}])
        .to_string(),
    )
    .unwrap();
    let from = (today - chrono::Duration::days(1)).to_string();
    let to = (today + chrono::Duration::days(1)).to_string();
    let args = [
        "backtest",
        "--db",
        &db,
        "--from",
        &from,
        "--to",
        &to,
        "--campaigns",
        drafts.to_str().unwrap(),
    ];
    let out = kembali(&[&args[..], &["--format", "json"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["orders"], 5);
    assert_eq!(report["cost"]["actual_minor"], 5 * 500);
    assert_eq!(report["cost"]["simulated_minor"], 5 * 1_000);
    assert_eq!(report["orders_affected"], 5);
    assert_eq!(report["by_campaign"][0]["campaign_id"], "books");

    let table = kembali(&args);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("books v1"), "{text}");
    assert!(text.contains("50.00"), "{text}");

    // A bad draft is refused with its field, and nothing runs.
    std::fs::write(&drafts, r#"[{"id": "x", "definition": {"name": "", "window": {"starts_on": "2026-01-02", "ends_on": "2026-01-01"}, "reward": {"kind": "percent", "rate_bp": 1}, "stacking": {"mode": "best_of"}}}]"#).unwrap();
    let bad = kembali(&args);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("campaigns[0].definition.window.ends_on"),
        "{err}"
    );
}

/// `kembali report` reads the database directly: orders posted to a server that has since
/// stopped come out in every format, and bad filters are refused clearly.
#[tokio::test]
async fn report_prints_the_metrics_as_a_table_json_and_csv() {
    let dir = scratch_dir();
    let db = db_url(&dir);
    let server = Server::start(&db, &[]);
    // A campaign with a holdout that reaches none of these (web) orders: listed, empty.
    let campaign = json!({"id": "app-double", "definition": {
        "name": "App double",
        "window": {"starts_on": "2000-01-01", "ends_on": "2100-12-31"},
        "conditions": {"channels": ["app"]},
        "reward": {"kind": "percent", "rate_bp": 1000},
        "stacking": {"mode": "stackable"},
        "holdout": {"share_bp": 1000}
    }});
    let url = format!("{}/v1/campaigns", server.base);
    let (status, _) = call(reqwest::Method::POST, &url, ADMIN, Some(campaign)).await;
    assert_eq!(status, 200);
    for (order_id, customer, price) in [
        ("o1", "ana", 10_000),
        ("o2", "bia", 5_000),
        ("o3", "ana", 3_000),
    ] {
        let body = json!({
            "order_id": order_id, "channel": "web", "customer_id": customer, "currency": "BRL",
            "lines": [{"line_id": "1", "sku": "s", "category": "c", "quantity": 1, "unit_price_minor": price}]
        });
        let url = format!("{}/v1/orders", server.base);
        let (status, _) = call(reqwest::Method::POST, &url, ADMIN, Some(body)).await;
        assert_eq!(status, 200);
    }
    assert!(server.terminate().success());

    let report = |extra: &[&str]| {
        let mut args = vec!["report", "--db", &db];
        args.extend_from_slice(extra);
        let out = kembali(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    // 3 orders of 2 customers: net 180,00, ticket 60,00, ana ordered twice: 50 %.
    let j: serde_json::Value = serde_json::from_str(&report(&["--format", "json"])).expect("JSON");
    let s = &j["summary"];
    assert_eq!(
        (s["orders"].as_u64(), s["active_customers"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(s["net_revenue_minor"], 18_000);
    assert_eq!(s["repeat_purchase_rate"], 0.5);
    assert_eq!(s["cost"]["cost_minor"], 900);
    assert_eq!(j["ltv"]["historical"]["total_minor"], 18_000);
    assert_eq!(j["program_experiment"], serde_json::Value::Null);
    let e = &j["campaign_experiments"][0];
    assert_eq!(
        (
            &e["experiment_id"],
            &e["holdout_share_bp"],
            &e["treatment_customers"]
        ),
        (&json!("campaign:app-double"), &json!(1_000), &json!(0))
    );
    let only = report(&["--format", "json", "--campaign", "app-double"]);
    let only: serde_json::Value = serde_json::from_str(&only).expect("JSON");
    assert_eq!(only["summary"]["orders"], 0);
    let csv = report(&["--format", "csv"]);
    assert!(csv.starts_with("metric,value\n"), "{csv}");
    assert!(csv.contains("\nsummary.orders,3\n"), "{csv}");
    assert!(csv.contains("\nsummary.currency,\"BRL\"\n"), "{csv}");
    let table = report(&[]);
    for expected in [
        "net revenue",
        "R$ 180,00",
        "repeat-purchase rate",
        "50.0 %",
        "not measurable",
        "Effect of campaign app-double (holdout experiment campaign:app-double)",
    ] {
        assert!(table.contains(expected), "{expected} in:\n{table}");
    }
    let app_only = report(&["--format", "json", "--channel", "app"]);
    assert!(app_only.contains("\"orders\": 0"), "{app_only}");

    let out = kembali(&[
        "report",
        "--db",
        &db,
        "--from",
        "2025-02-01",
        "--to",
        "2025-01-01",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("from"));
    let out = kembali(&["report", "--db", &db, "--campaign", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("campaign"));
    let out = kembali(&["report", "--db", &db, "--channel", "tv"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("web, app, store"));
}

#[test]
fn report_and_backtest_refuse_a_database_that_does_not_exist() {
    let dir = scratch_dir();
    let missing = dir.join("nowhere.db");
    let url = format!("sqlite://{}", missing.display());
    for args in [
        vec!["report", "--db", &url],
        vec![
            "backtest",
            "--db",
            &url,
            "--from",
            "2026-01-01",
            "--to",
            "2026-02-01",
            "--include-active",
        ],
    ] {
        let out = kembali(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no database at"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!missing.exists(), "nothing was created");
}
