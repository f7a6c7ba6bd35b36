//! Every endpoint's happy path, through the router.

use crate::common::{order_body, two_line_order, TestApp};
use axum::body::Body;
use axum::http::{header, Request};
use serde_json::json;

#[tokio::test]
async fn a_customer_profile_is_stored_and_read_back() {
    let app = TestApp::new().await;
    let put = app
        .put(
            "/v1/customers/ana",
            &app.admin,
            json!({"email": "ana@example.com", "birthday": "1990-03-14", "segments": ["vip"]}),
        )
        .await;
    assert_eq!(put.ok()["customer_id"], "ana");
    let got = app.get("/v1/customers/ana", &app.support).await;
    assert_eq!(got.ok()["email"], "ana@example.com");
    assert_eq!(got.json["birthday"], "1990-03-14");
    assert_eq!(got.json["segments"], json!(["vip"]));
}

#[tokio::test]
async fn an_order_earns_cashback_that_shows_as_pending_in_the_wallet() {
    let app = TestApp::new().await;
    let receipt = app.order("ana", "o1", 10_000).await;
    assert_eq!(receipt["total_minor"], 10_000);
    assert_eq!(receipt["cashback_minor"], 500);
    assert_eq!(receipt["channel"], "web");
    let wallet = app.get("/v1/customers/ana/wallet", &app.admin).await;
    assert_eq!(wallet.ok()["pending_minor"], 500);
    assert_eq!(wallet.json["available_minor"], 0);
    assert_eq!(wallet.json["currency"], "BRL");
}

#[tokio::test]
async fn an_order_replayed_with_its_idempotency_key_gets_the_first_receipt() {
    let app = TestApp::new().await;
    let send = |body: serde_json::Value| {
        Request::post("/v1/orders")
            .header(header::AUTHORIZATION, format!("Bearer {}", app.admin))
            .header(header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", "order-attempt-1")
            .body(Body::from(body.to_string()))
            .expect("a request")
    };
    let first = app.send(send(order_body("ana", "o1", 10_000))).await;
    let again = app.send(send(order_body("ana", "o1", 10_000))).await;
    assert_eq!(first.ok(), again.ok());
    let other = app.send(send(order_body("ana", "o2", 20_000))).await;
    other.problem(409, "idempotency_key_reused");
    let wallet = app.get("/v1/customers/ana/wallet", &app.admin).await;
    assert_eq!(wallet.ok()["pending_minor"], 500);
}

#[tokio::test]
async fn a_partial_return_claws_back_only_the_returned_lines_cashback() {
    let app = TestApp::new().await;
    app.post(
        "/v1/orders",
        &app.admin,
        two_line_order("ana", "o1", 5_000, 10_000),
    )
    .await
    .ok();
    let ret = app
        .post(
            "/v1/orders/o1/returns?channel=web",
            &app.web,
            json!({"return_id": "r1", "lines": [{"line_id": "a", "quantity": 1}]}),
        )
        .await;
    // Line a earned 5 % of 10 000 = 500; one of its two units comes back.
    assert_eq!(ret.ok()["clawed_back_minor"], 250);
    assert_eq!(ret.json["lines"][0]["line_id"], "a");
    let wallet = app.get("/v1/customers/ana/wallet", &app.admin).await;
    assert_eq!(wallet.ok()["pending_minor"], 1_500 - 250);
}

#[tokio::test]
async fn a_cancel_without_a_body_returns_every_unit_left() {
    let app = TestApp::new().await;
    app.order("ana", "o1", 10_000).await;
    let res = app
        .call("POST", "/v1/orders/o1/cancel", Some(&app.admin), None)
        .await;
    assert_eq!(res.ok()["clawed_back_minor"], 500);
    assert_eq!(res.json["return_id"], "cancel");
    let wallet = app.get("/v1/customers/ana/wallet", &app.admin).await;
    assert_eq!(wallet.ok()["pending_minor"], 0);
}

#[tokio::test]
async fn a_cancel_accepts_an_empty_json_object_and_names_the_channel() {
    let app = TestApp::new().await;
    app.order("ana", "o1", 10_000).await;
    let res = app
        .post("/v1/orders/o1/cancel?channel=web", &app.web, json!({}))
        .await;
    assert_eq!(res.ok()["order_id"], "o1");
    app.post("/v1/orders/o1/cancel", &app.web, json!({"why": "x"}))
        .await
        .invalid("why", "unknown_field");
}

#[tokio::test]
async fn the_statement_lists_entries_newest_first_and_pages_with_its_cursor() {
    let app = TestApp::new().await;
    app.order("ana", "o1", 10_000).await;
    app.order("ana", "o2", 20_000).await;
    app.order("ana", "o3", 30_000).await;
    let first = app
        .get("/v1/customers/ana/statement?limit=2", &app.support)
        .await;
    let entries = first.ok()["entries"].as_array().expect("entries").clone();
    assert_eq!(entries.len(), 2);
    assert!(entries[0]["seq"].as_i64() > entries[1]["seq"].as_i64());
    assert_eq!(entries[0]["order_id"], "o3");
    let cursor = first.json["next_cursor"].as_str().expect("a cursor");
    let second = app
        .get(
            &format!("/v1/customers/ana/statement?limit=2&cursor={cursor}"),
            &app.support,
        )
        .await;
    let rest = second.ok()["entries"].as_array().expect("entries");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["order_id"], "o1");
    assert!(second.json["next_cursor"].is_null());
}

#[tokio::test]
async fn a_quote_says_how_much_available_cashback_an_order_may_use() {
    let app = TestApp::new().await;
    let earned = app.customer_with_available("ana", 100_000).await;
    let quote = app
        .post(
            "/v1/redemptions/quote",
            &app.till_s1,
            json!({"customer_id": "ana", "order_total_minor": 3_000, "currency": "BRL"}),
        )
        .await;
    assert_eq!(quote.ok()["available_minor"], earned);
    assert_eq!(quote.json["max_redeemable_minor"], 3_000);
}

#[tokio::test]
async fn a_hold_is_read_back_then_captured_in_part() {
    let app = TestApp::new().await;
    app.customer_with_available("ana", 100_000).await;
    let hold = app
        .post(
            "/v1/redemptions",
            &app.till_s1,
            json!({"customer_id": "ana", "amount_minor": 1_000, "order_total_minor": 5_000, "currency": "BRL"}),
        )
        .await;
    let id = hold.ok()["redemption_id"]
        .as_str()
        .expect("an id")
        .to_string();
    assert!(id.starts_with("rdm_"), "{id}");
    assert_eq!(hold.json["state"], "held");
    assert_eq!(hold.json["store_id"], "s1");
    let read = app
        .get(&format!("/v1/redemptions/{id}"), &app.support)
        .await;
    assert_eq!(read.ok()["amount_minor"], 1_000);
    let captured = app
        .post(
            &format!("/v1/redemptions/{id}/capture"),
            &app.till_s1,
            json!({"amount_minor": 800}),
        )
        .await;
    assert_eq!(captured.ok()["state"], "captured");
    assert_eq!(captured.json["captured_minor"], 800);
    let wallet = app.get("/v1/customers/ana/wallet", &app.admin).await;
    assert_eq!(wallet.ok()["available_minor"], 5_000 - 800);
    assert_eq!(wallet.json["held_minor"], 0);
}

#[tokio::test]
async fn a_capture_without_a_body_captures_the_whole_hold() {
    let app = TestApp::new().await;
    app.customer_with_available("ana", 100_000).await;
    app.post(
        "/v1/redemptions",
        &app.web,
        json!({"redemption_id": "h1", "customer_id": "ana", "amount_minor": 700, "order_total_minor": 5_000, "currency": "BRL"}),
    )
    .await
    .ok();
    let res = app
        .call("POST", "/v1/redemptions/h1/capture", Some(&app.web), None)
        .await;
    assert_eq!(res.ok()["captured_minor"], 700);
}

#[tokio::test]
async fn a_void_gives_the_held_amount_back() {
    let app = TestApp::new().await;
    app.customer_with_available("ana", 100_000).await;
    app.post(
        "/v1/redemptions",
        &app.web,
        json!({"redemption_id": "h1", "customer_id": "ana", "amount_minor": 700, "order_total_minor": 5_000, "currency": "BRL"}),
    )
    .await
    .ok();
    let held = app.get("/v1/customers/ana/wallet", &app.admin).await;
    assert_eq!(held.ok()["held_minor"], 700);
    let res = app
        .call("POST", "/v1/redemptions/h1/void", Some(&app.web), None)
        .await;
    assert_eq!(res.ok()["state"], "voided");
    let wallet = app.get("/v1/customers/ana/wallet", &app.admin).await;
    assert_eq!(wallet.ok()["available_minor"], 5_000);
    assert_eq!(wallet.json["held_minor"], 0);
}

#[tokio::test]
async fn a_one_step_redemption_is_captured_at_once() {
    let app = TestApp::new().await;
    app.customer_with_available("ana", 100_000).await;
    let res = app
        .post(
            "/v1/redemptions",
            &app.till_s1,
            json!({"customer_id": "ana", "amount_minor": 300, "order_total_minor": 5_000, "currency": "BRL", "capture": true}),
        )
        .await;
    assert_eq!(res.ok()["state"], "captured");
    assert_eq!(res.json["captured_minor"], 300);
}

#[tokio::test]
async fn a_redemption_retried_with_its_idempotency_key_is_not_held_twice() {
    let app = TestApp::new().await;
    app.customer_with_available("ana", 100_000).await;
    let send = || {
        Request::post("/v1/redemptions")
            .header(header::AUTHORIZATION, format!("Bearer {}", app.web))
            .header(header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", "till-7-sale-42")
            .body(Body::from(
                json!({"customer_id": "ana", "amount_minor": 400, "order_total_minor": 5_000, "currency": "BRL"})
                    .to_string(),
            ))
            .expect("a request")
    };
    let first = app.send(send()).await;
    let again = app.send(send()).await;
    assert_eq!(first.ok()["redemption_id"], again.ok()["redemption_id"]);
    let wallet = app.get("/v1/customers/ana/wallet", &app.admin).await;
    assert_eq!(wallet.ok()["held_minor"], 400);
}

#[tokio::test]
async fn the_program_is_read_and_changed_by_an_admin() {
    let app = TestApp::new().await;
    let program = app.get("/v1/program", &app.analyst).await;
    assert_eq!(program.ok()["currency"], "BRL");
    assert_eq!(program.json["base_rate_bp"], 500);
    let changed = app
        .put(
            "/v1/program",
            &app.admin,
            json!({"base_rate_bp": 1_000, "clawback_policy": "forfeit"}),
        )
        .await;
    assert_eq!(changed.ok()["base_rate_bp"], 1_000);
    assert_eq!(changed.json["clawback_policy"], "forfeit");
    assert_eq!(changed.json["pending_days"], 7);
    let receipt = app.order("ana", "o1", 10_000).await;
    assert_eq!(receipt["cashback_minor"], 1_000);
}

#[tokio::test]
async fn an_out_of_range_program_setting_is_refused_with_every_problem() {
    let app = TestApp::new().await;
    let res = app
        .put(
            "/v1/program",
            &app.admin,
            json!({"base_rate_bp": 20_000, "hold_ttl_secs": 0}),
        )
        .await;
    let p = res.invalid("base_rate_bp", "out_of_range");
    assert_eq!(p["errors"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn totals_add_up_what_the_ledger_holds() {
    let app = TestApp::new().await;
    app.order("ana", "o1", 10_000).await;
    app.order("bia", "o2", 20_000).await;
    let totals = app.get("/v1/program/totals", &app.analyst).await;
    assert_eq!(totals.ok()["earned_minor"], 1_500);
    assert_eq!(totals.json["pending_minor"], 1_500);
    assert_eq!(totals.json["balanced"], true);
}

#[tokio::test]
async fn events_report_maturation_and_page_forward() {
    let app = TestApp::new().await;
    app.order("ana", "o1", 10_000).await;
    app.order("bia", "o2", 10_000).await;
    app.advance_days(8).await;
    let first = app.get("/v1/events?limit=1", &app.analyst).await;
    let events = first.ok()["events"].as_array().expect("events").clone();
    assert_eq!(events.len(), 1);
    let cursor = first.json["next_cursor"].as_str().expect("a cursor");
    let next = app
        .get(&format!("/v1/events?cursor={cursor}"), &app.analyst)
        .await;
    let rest = next.ok()["events"].as_array().expect("events");
    assert!(!rest.is_empty());
    assert!(rest[0]["seq"].as_i64() > events[0]["seq"].as_i64());
    let kinds: Vec<_> = events
        .iter()
        .chain(rest)
        .map(|e| e["kind"].clone())
        .collect();
    assert!(kinds.contains(&json!("cashback.available")), "{kinds:?}");
}

#[tokio::test]
async fn health_and_readiness_answer_ok() {
    let app = TestApp::new().await;
    let health = app.call("GET", "/healthz", None, None).await;
    assert_eq!(health.ok()["status"], "ok");
    let ready = app.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.ok()["status"], "ok");
}
