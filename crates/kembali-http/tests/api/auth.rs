//! Keys and roles: who may call what.

use crate::common::{order_body, TestApp};
use axum::body::Body;
use axum::http::{header, Request};
use serde_json::{json, Value};

#[tokio::test]
async fn a_request_without_a_key_is_unauthorized_and_says_how_to_authenticate() {
    let app = TestApp::new().await;
    let res = app.call("GET", "/v1/program", None, None).await;
    res.problem(401, "unauthorized");
    assert_eq!(res.headers[header::WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn an_unknown_key_is_unauthorized() {
    let app = TestApp::new().await;
    app.get("/v1/program", "kb_not_a_key")
        .await
        .problem(401, "unauthorized");
    let long = "k".repeat(10_000);
    app.get("/v1/program", &long)
        .await
        .problem(401, "unauthorized");
}

#[tokio::test]
async fn an_authorization_header_that_is_not_bearer_is_unauthorized() {
    let app = TestApp::new().await;
    for value in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        &app.admin.clone(),
    ] {
        let req = Request::get("/v1/program")
            .header(header::AUTHORIZATION, value)
            .body(Body::empty())
            .expect("a request");
        app.send(req).await.problem(401, "unauthorized");
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = TestApp::new().await;
    let req = Request::get("/v1/program")
        .header(header::AUTHORIZATION, format!("bearer {}", app.admin))
        .body(Body::empty())
        .expect("a request");
    app.send(req).await.ok();
}

/// Every route under /v1, with a body where it needs one, and the roles that may call it.
fn routes() -> Vec<(
    &'static str,
    &'static str,
    Option<Value>,
    &'static [&'static str],
)> {
    const ALL_TILL: &[&str] = &["admin", "channel"];
    const CARE: &[&str] = &["admin", "support"];
    const ANALYTICS: &[&str] = &["admin", "analyst"];
    vec![
        ("PUT", "/v1/customers/c1", Some(json!({})), &["admin"]),
        ("GET", "/v1/customers/c1", None, CARE),
        ("GET", "/v1/customers/c1/wallet", None, CARE),
        ("GET", "/v1/customers/c1/statement", None, CARE),
        (
            "POST",
            "/v1/orders",
            Some(order_body("c1", "o-roles", 1_000)),
            ALL_TILL,
        ),
        (
            "POST",
            "/v1/orders/o1/returns",
            Some(json!({"return_id": "r1", "lines": [{"line_id": "l1", "quantity": 1}]})),
            ALL_TILL,
        ),
        ("POST", "/v1/orders/o1/cancel", None, ALL_TILL),
        (
            "POST",
            "/v1/redemptions/quote",
            Some(json!({"customer_id": "c1", "order_total_minor": 100, "currency": "BRL"})),
            ALL_TILL,
        ),
        (
            "POST",
            "/v1/redemptions",
            Some(
                json!({"customer_id": "c1", "amount_minor": 1, "order_total_minor": 100, "currency": "BRL"}),
            ),
            ALL_TILL,
        ),
        (
            "GET",
            "/v1/redemptions/rdm1",
            None,
            &["admin", "channel", "support"],
        ),
        ("POST", "/v1/redemptions/rdm1/capture", None, ALL_TILL),
        ("POST", "/v1/redemptions/rdm1/void", None, ALL_TILL),
        ("GET", "/v1/program", None, ANALYTICS),
        ("PUT", "/v1/program", Some(json!({})), &["admin"]),
        ("GET", "/v1/program/totals", None, ANALYTICS),
        ("GET", "/v1/events", None, ANALYTICS),
        ("GET", "/v1/metrics/summary", None, ANALYTICS),
        ("GET", "/v1/metrics/retention", None, ANALYTICS),
        ("GET", "/v1/metrics/ltv", None, ANALYTICS),
        ("GET", "/v1/experiments", None, ANALYTICS),
        ("GET", "/v1/experiments/program", None, ANALYTICS),
        (
            "POST",
            "/v1/test/clock",
            Some(json!({"advance_secs": 1})),
            &["admin"],
        ),
    ]
}

#[tokio::test]
async fn each_role_reaches_exactly_the_routes_it_is_allowed() {
    let app = TestApp::new().await;
    let keys = [
        ("admin", app.admin.clone()),
        ("channel", app.web.clone()),
        ("analyst", app.analyst.clone()),
        ("support", app.support.clone()),
    ];
    for (method, path, body, allowed) in routes() {
        for (role, key) in &keys {
            let res = app.call(method, path, Some(key), body.clone()).await;
            if allowed.contains(role) {
                assert!(
                    res.status != 403 && res.status != 401,
                    "{role} should reach {method} {path}: {}",
                    res.text
                );
            } else {
                res.problem(403, "forbidden");
            }
        }
    }
}

#[tokio::test]
async fn a_role_is_checked_before_the_body_is_read() {
    let app = TestApp::new().await;
    let req = Request::post("/v1/orders")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.analyst))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .expect("a request");
    app.send(req).await.problem(403, "forbidden");
}

#[tokio::test]
async fn a_channel_key_bound_to_a_store_cannot_post_an_order_for_another_store() {
    let app = TestApp::new().await;
    let mut body = order_body("c1", "o1", 10_000);
    body["channel"] = json!("store");
    body["store_id"] = json!("s2");
    let res = app.post("/v1/orders", &app.till_s1, body.clone()).await;
    res.invalid("store_id", "store_mismatch");
    body["store_id"] = json!("s1");
    let ok = app.post("/v1/orders", &app.till_s1, body).await;
    assert_eq!(ok.ok()["store_id"], "s1");
}

#[tokio::test]
async fn a_channel_key_supplies_its_channel_and_store_and_refuses_another_channel() {
    let app = TestApp::new().await;
    let mut body = order_body("c1", "o1", 10_000);
    body.as_object_mut().expect("an object").remove("channel");
    let res = app.post("/v1/orders", &app.till_s1, body.clone()).await;
    assert_eq!(res.ok()["channel"], "store");
    assert_eq!(res.json["store_id"], "s1");
    body["channel"] = json!("app");
    app.post("/v1/orders", &app.web, body)
        .await
        .invalid("channel", "channel_mismatch");
}

#[tokio::test]
async fn a_till_cannot_touch_another_stores_redemption() {
    let app = TestApp::new().await;
    app.customer_with_available("c1", 100_000).await;
    let hold = app
        .post(
            "/v1/redemptions",
            &app.till_s1,
            json!({"redemption_id": "rdm-s1", "customer_id": "c1", "amount_minor": 100, "order_total_minor": 1_000, "currency": "BRL"}),
        )
        .await;
    assert_eq!(hold.ok()["state"], "held");
    app.get("/v1/redemptions/rdm-s1", &app.till_s2)
        .await
        .problem(403, "forbidden");
    app.call(
        "POST",
        "/v1/redemptions/rdm-s1/void",
        Some(&app.till_s2),
        None,
    )
    .await
    .problem(403, "forbidden");
    app.get("/v1/redemptions/rdm-s1", &app.till_s1).await.ok();
    app.get("/v1/redemptions/rdm-s1", &app.support).await.ok();
}

#[tokio::test]
async fn health_readiness_metrics_and_the_document_need_no_key() {
    let app = TestApp::new().await;
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let res = app.call("GET", path, None, None).await;
        assert_eq!(res.status, 200, "{path}: {}", res.text);
    }
}
