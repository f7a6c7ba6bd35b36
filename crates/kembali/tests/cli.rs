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
