//! `POST /v1/test/clock`: only on a test clock, admin only, and it runs the due work.

use crate::common::{start, TestApp};
use kembali_http::MAX_CLOCK_ADVANCE_SECS;
use serde_json::json;

#[tokio::test]
async fn the_test_clock_endpoint_does_not_exist_without_a_test_clock() {
    let app = TestApp::without_test_clock().await;
    let res = app
        .post("/v1/test/clock", &app.admin, json!({"advance_secs": 60}))
        .await;
    assert_eq!(res.problem(404, "not_found")["detail"], "no such route");
}

#[tokio::test]
async fn advancing_past_the_return_window_makes_cashback_available() {
    let app = TestApp::new().await;
    app.order("ana", "o1", 10_000).await;
    let moved = app.advance_days(8).await;
    assert_eq!(moved["settled_wallets"], 1);
    let now: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(moved["now"].clone()).expect("an instant");
    assert_eq!(now, start() + chrono::Duration::days(8));
    let wallet = app.get("/v1/customers/ana/wallet", &app.support).await;
    assert_eq!(wallet.ok()["available_minor"], 500);
    assert_eq!(wallet.json["pending_minor"], 0);
}

#[tokio::test]
async fn the_clock_moves_only_forward_and_at_most_ten_years() {
    let app = TestApp::new().await;
    for secs in [0, -5, MAX_CLOCK_ADVANCE_SECS + 1] {
        app.post(
            "/v1/test/clock",
            &app.admin,
            json!({ "advance_secs": secs }),
        )
        .await
        .invalid("advance_secs", "out_of_range");
    }
    let res = app
        .post(
            "/v1/test/clock",
            &app.admin,
            json!({ "advance_secs": MAX_CLOCK_ADVANCE_SECS }),
        )
        .await;
    res.ok();
    assert_eq!(
        app.engine.now(),
        start() + chrono::Duration::seconds(MAX_CLOCK_ADVANCE_SECS)
    );
}

#[tokio::test]
async fn only_an_admin_moves_the_clock() {
    let app = TestApp::new().await;
    for key in [&app.web, &app.analyst, &app.support] {
        app.post("/v1/test/clock", key, json!({"advance_secs": 60}))
            .await
            .problem(403, "forbidden");
    }
}
