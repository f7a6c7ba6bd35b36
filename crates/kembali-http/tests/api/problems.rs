//! Bad requests get a problem+json 4xx naming the field at fault; nothing a client sends
//! produces a 5xx.

use crate::common::{order_body, TestApp};
use axum::body::Body;
use axum::http::{header, Request};
use kembali_core::limits::MAX_BODY_BYTES;
use serde_json::json;

fn raw(
    app: &TestApp,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {}", app.admin));
    if let Some(ct) = content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    req.body(body.into()).expect("a request")
}

#[tokio::test]
async fn malformed_json_is_a_bad_request() {
    let app = TestApp::new().await;
    let res = app
        .send(raw(
            &app,
            "POST",
            "/v1/orders",
            Some("application/json"),
            "{\"order_id\": ",
        ))
        .await;
    res.problem(400, "malformed_json");
}

#[tokio::test]
async fn an_unknown_field_is_named() {
    let app = TestApp::new().await;
    let mut body = order_body("ana", "o1", 1_000);
    body["lines"][0]["colour"] = json!("red");
    app.post("/v1/orders", &app.admin, body)
        .await
        .invalid("lines[0].colour", "unknown_field");
}

#[tokio::test]
async fn a_missing_field_is_named() {
    let app = TestApp::new().await;
    let mut body = order_body("ana", "o1", 1_000);
    body.as_object_mut().expect("an object").remove("currency");
    app.post("/v1/orders", &app.admin, body)
        .await
        .invalid("currency", "required");
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_named() {
    let app = TestApp::new().await;
    let mut body = order_body("ana", "o1", 1_000);
    body["lines"][0]["unit_price_minor"] = json!(10.5);
    app.post("/v1/orders", &app.admin, body)
        .await
        .invalid("lines[0].unit_price_minor", "invalid_type");
}

#[tokio::test]
async fn a_negative_quantity_is_out_of_range() {
    let app = TestApp::new().await;
    let mut body = order_body("ana", "o1", 1_000);
    body["lines"][0]["quantity"] = json!(-1);
    app.post("/v1/orders", &app.admin, body)
        .await
        .invalid("lines[0].quantity", "out_of_range");
}

#[tokio::test]
async fn an_order_in_another_currency_than_the_programs_is_rejected() {
    let app = TestApp::new().await;
    let mut body = order_body("ana", "o1", 1_000);
    body["currency"] = json!("USD");
    let res = app.post("/v1/orders", &app.admin, body.clone()).await;
    assert_eq!(res.problem(422, "currency_mismatch")["field"], "currency");
    body["currency"] = json!("usd");
    app.post("/v1/orders", &app.admin, body)
        .await
        .invalid("currency", "invalid_currency");
}

#[tokio::test]
async fn the_wallet_of_an_unknown_customer_is_not_found() {
    let app = TestApp::new().await;
    let res = app.get("/v1/customers/nobody/wallet", &app.admin).await;
    assert_eq!(
        res.problem(404, "customer_not_found")["field"],
        "customer_id"
    );
}

#[tokio::test]
async fn a_return_of_an_unknown_order_is_not_found() {
    let app = TestApp::new().await;
    let res = app
        .post(
            "/v1/orders/nope/returns",
            &app.admin,
            json!({"return_id": "r1", "lines": [{"line_id": "l1", "quantity": 1}]}),
        )
        .await;
    assert_eq!(res.problem(404, "order_not_found")["field"], "order_id");
}

#[tokio::test]
async fn a_capture_above_the_hold_is_rejected() {
    let app = TestApp::new().await;
    app.customer_with_available("ana", 100_000).await;
    app.post(
        "/v1/redemptions",
        &app.web,
        json!({"redemption_id": "h1", "customer_id": "ana", "amount_minor": 500, "order_total_minor": 5_000, "currency": "BRL"}),
    )
    .await
    .ok();
    let res = app
        .post(
            "/v1/redemptions/h1/capture",
            &app.web,
            json!({"amount_minor": 501}),
        )
        .await;
    assert_eq!(
        res.problem(422, "capture_exceeds_hold")["field"],
        "amount_minor"
    );
}

#[tokio::test]
async fn a_redemption_above_the_quote_is_rejected() {
    let app = TestApp::new().await;
    let earned = app.customer_with_available("ana", 10_000).await;
    let res = app
        .post(
            "/v1/redemptions",
            &app.web,
            json!({"customer_id": "ana", "amount_minor": earned + 1, "order_total_minor": 50_000, "currency": "BRL"}),
        )
        .await;
    assert_eq!(
        res.problem(422, "amount_exceeds_quote")["field"],
        "amount_minor"
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_an_unsupported_media_type() {
    let app = TestApp::new().await;
    let body = order_body("ana", "o1", 1_000).to_string();
    app.send(raw(
        &app,
        "POST",
        "/v1/orders",
        Some("text/plain"),
        body.clone(),
    ))
    .await
    .problem(415, "unsupported_media_type");
    app.send(raw(&app, "POST", "/v1/orders", None, body.clone()))
        .await
        .problem(415, "unsupported_media_type");
    app.send(raw(
        &app,
        "POST",
        "/v1/orders/o1/cancel",
        Some("text/plain"),
        "{}",
    ))
    .await
    .problem(415, "unsupported_media_type");
}

#[tokio::test]
async fn a_body_above_the_limit_is_too_large() {
    let app = TestApp::new().await;
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    app.send(raw(
        &app,
        "POST",
        "/v1/orders",
        Some("application/json"),
        big,
    ))
    .await
    .problem(413, "payload_too_large");
}

#[tokio::test]
async fn an_unknown_route_and_a_wrong_method_are_problems_too() {
    let app = TestApp::new().await;
    app.get("/v1/nothing-here", &app.admin)
        .await
        .problem(404, "not_found");
    app.call("DELETE", "/v1/program", Some(&app.admin), None)
        .await
        .problem(405, "method_not_allowed");
}

#[tokio::test]
async fn a_path_id_that_is_not_an_id_is_named() {
    let app = TestApp::new().await;
    app.get("/v1/customers/a%20b/wallet", &app.admin)
        .await
        .invalid("customer_id", "invalid_id");
    let long = "x".repeat(200);
    app.get(&format!("/v1/redemptions/{long}"), &app.admin)
        .await
        .invalid("redemption_id", "invalid_id");
    app.post("/v1/orders/%FF/cancel", &app.admin, json!({}))
        .await
        .invalid("order_id", "invalid_id");
}

#[tokio::test]
async fn bad_query_parameters_are_named() {
    let app = TestApp::new().await;
    app.order("ana", "o1", 1_000).await;
    app.get("/v1/customers/ana/statement?limit=many", &app.admin)
        .await
        .invalid("limit", "invalid_number");
    app.get("/v1/customers/ana/statement?limit=0", &app.admin)
        .await
        .invalid("limit", "out_of_range");
    app.get("/v1/customers/ana/statement?cursor=abc", &app.admin)
        .await
        .invalid("cursor", "invalid_cursor");
    app.get("/v1/events?page=2", &app.admin)
        .await
        .invalid("page", "unknown_parameter");
    app.get("/v1/events?limit=1&limit=2", &app.admin)
        .await
        .invalid("limit", "repeated_parameter");
    app.call(
        "POST",
        "/v1/orders/o1/cancel?channel=fax",
        Some(&app.admin),
        None,
    )
    .await
    .invalid("channel", "invalid_channel");
}

#[tokio::test]
async fn a_bad_idempotency_key_is_named() {
    let app = TestApp::new().await;
    for key in ["k".repeat(129), String::new()] {
        let req = Request::post("/v1/orders")
            .header(header::AUTHORIZATION, format!("Bearer {}", app.admin))
            .header(header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", key)
            .body(Body::from(order_body("ana", "o1", 1_000).to_string()))
            .expect("a request");
        app.send(req)
            .await
            .invalid("Idempotency-Key", "invalid_idempotency_key");
    }
    let req = Request::post("/v1/orders")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.admin))
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            "Idempotency-Key",
            axum::http::HeaderValue::from_bytes(b"caf\xe9").expect("a header"),
        )
        .body(Body::from(order_body("ana", "o1", 1_000).to_string()))
        .expect("a request");
    app.send(req)
        .await
        .invalid("Idempotency-Key", "invalid_idempotency_key");
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_request_is_a_conflict() {
    let app = TestApp::new().await;
    let send = |path: &str| {
        Request::post(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", app.admin))
            .header("Idempotency-Key", "same")
            .body(Body::empty())
            .expect("a request")
    };
    app.order("ana", "o1", 1_000).await;
    app.order("ana", "o2", 1_000).await;
    app.send(send("/v1/orders/o1/cancel")).await.ok();
    app.send(send("/v1/orders/o2/cancel"))
        .await
        .problem(409, "idempotency_key_reused");
}

/// Garbage of every kind, to every route: always a 4xx problem, never a 5xx.
#[tokio::test]
async fn nothing_a_client_sends_produces_a_server_error() {
    let app = TestApp::new().await;
    app.customer_with_available("ana", 10_000).await;
    let paths = [
        ("PUT", "/v1/customers/ana"),
        ("POST", "/v1/orders"),
        ("POST", "/v1/orders/ana-seed/returns"),
        ("POST", "/v1/orders/ana-seed/cancel"),
        ("POST", "/v1/redemptions/quote"),
        ("POST", "/v1/redemptions"),
        ("POST", "/v1/redemptions/x/capture"),
        ("POST", "/v1/redemptions/x/void"),
        ("PUT", "/v1/program"),
        ("POST", "/v1/test/clock"),
    ];
    let bodies = [
        "",
        "null",
        "[]",
        "1",
        "\"text\"",
        "{",
        "{}",
        "{\"lines\": null}",
        "{\"customer_id\": \"ana\", \"order_total_minor\": 9223372036854775807, \"currency\": \"BRL\"}",
        "{\"customer_id\": \"ana\", \"amount_minor\": -9223372036854775808, \"order_total_minor\": 1, \"currency\": \"BRL\"}",
        "{\"order_id\": \"o\", \"customer_id\": \"ana\", \"currency\": \"BRL\", \"lines\": [{\"line_id\": \"l\", \"sku\": \"s\", \"category\": \"c\", \"quantity\": 100000, \"unit_price_minor\": 100000000000, \"discount_minor\": 9223372036854775807}]}",
        "{\"return_id\": \"r\", \"lines\": [{\"line_id\": \"l1\", \"quantity\": 9223372036854775807}]}",
        "{\"amount_minor\": 0}",
        "{\"advance_secs\": 9223372036854775807}",
        "{\"advance_secs\": -1}",
        "{\"base_rate_bp\": 4294967296}",
        "{\"email\": \"\\u0000@x\", \"birthday\": \"2025-02-30\"}",
        "{\"a\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
        "\u{feff}{}",
    ];
    for (method, path) in paths {
        for body in bodies {
            let res = app
                .send(raw(&app, method, path, Some("application/json"), body))
                .await;
            res.not_a_server_error(&format!("{method} {path} {body}"));
        }
    }
}
