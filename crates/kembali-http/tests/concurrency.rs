//! Races through the HTTP router on a real SQLite file: 32 one-step redemptions on one
//! wallet never spend more than it holds, and 16 concurrent retries of one order credit it
//! exactly once.

use axum::body::Body;
use axum::http::{header, Request};
use axum::Router;
use chrono::{TimeZone, Utc};
use kembali_app::clock::TestClock;
use kembali_app::store::Role;
use kembali_app::Engine;
use kembali_http::{router, AppState};
use kembali_store_sqlite::SqliteStore;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

async fn send(
    app: &Router,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The API on a new SQLite file, with an admin key; the directory lives as long as it is held.
async fn served() -> (Router, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("k.db")).unwrap();
    let clock = Arc::new(TestClock::new(
        Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap(),
    ));
    let engine = Engine::new(Arc::new(store), clock.clone());
    engine.init().await.unwrap();
    let (admin, _) = engine
        .create_api_key(Role::Admin, None, None)
        .await
        .unwrap();
    (router(AppState::new(engine, Some(clock), None)), admin, dir)
}

fn order(order_id: &str, price_minor: i64) -> Value {
    json!({
        "order_id": order_id, "channel": "web", "customer_id": "ana", "currency": "BRL",
        "lines": [{"line_id": "1", "sku": "tv-55", "category": "electronics", "quantity": 1, "unit_price_minor": price_minor}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_redemptions_and_retries_never_double_count() {
    let (app, admin, _dir) = served().await;

    // 10,00 of cashback, available after the 7-day window.
    let (status, _) = send(
        &app,
        &admin,
        "POST",
        "/v1/orders",
        Some(order("O1", 20_000)),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        &app,
        &admin,
        "POST",
        "/v1/test/clock",
        Some(json!({"advance_secs": 7 * 86_400})),
    )
    .await;
    assert_eq!(status, 200);

    let spends = (0..32).map(|i| {
        let (app, admin) = (app.clone(), admin.clone());
        tokio::spawn(async move {
            let body = json!({
                "redemption_id": format!("R{i}"), "customer_id": "ana", "amount_minor": 100,
                "order_total_minor": 1_000, "currency": "BRL", "channel": "store", "capture": true
            });
            send(&app, &admin, "POST", "/v1/redemptions", Some(body))
                .await
                .0
        })
    });
    let statuses: Vec<u16> = futures::future::join_all(spends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 422),
        "{statuses:?}"
    );

    let retries = (0..16).map(|_| {
        let (app, admin) = (app.clone(), admin.clone());
        tokio::spawn(async move {
            send(
                &app,
                &admin,
                "POST",
                "/v1/orders",
                Some(order("O2", 20_000)),
            )
            .await
        })
    });
    let answers: Vec<(u16, Value)> = futures::future::join_all(retries)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(answers.iter().all(|(s, _)| *s == 200));
    assert!(
        answers.windows(2).all(|w| w[0].1 == w[1].1),
        "every retry gets the first answer"
    );

    let (_, wallet) = send(&app, &admin, "GET", "/v1/customers/ana/wallet", None).await;
    assert_eq!(wallet["available_minor"], 0);
    assert_eq!(wallet["pending_minor"], 1_000);
    let (_, totals) = send(&app, &admin, "GET", "/v1/program/totals", None).await;
    assert_eq!(totals["redeemed_minor"], 1_000);
    assert_eq!(totals["earned_minor"], 2_000);
    assert_eq!(totals["balanced"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_failing_after_they_wrote_leave_the_orders_beside_them_whole() {
    let (app, admin, _dir) = served().await;

    // 96 new customers at once. Every third order names a redemption that does not exist:
    // it fails after its new customer was written, in the batch of orders that succeed.
    let orders = (0..96).map(|i| {
        let (app, admin) = (app.clone(), admin.clone());
        tokio::spawn(async move {
            let mut body = order(&format!("O{i}"), 20_000);
            body["customer_id"] = json!(format!("c{i}"));
            if i % 3 == 0 {
                body["redemption_id"] = json!("nope");
            }
            send(&app, &admin, "POST", "/v1/orders", Some(body)).await
        })
    });
    let answers: Vec<(u16, Value)> = futures::future::join_all(orders)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (i, (status, body)) in answers.iter().enumerate() {
        match i % 3 {
            0 => assert_eq!(
                (*status, &body["code"]),
                (422, &json!("redemption_not_found")),
                "order {i}"
            ),
            _ => assert_eq!(
                (*status, &body["cashback_minor"]),
                (200, &json!(1_000)),
                "order {i}: {body}"
            ),
        }
    }
    for i in [0, 1, 2, 93, 94, 95] {
        let (status, _) = send(&app, &admin, "GET", &format!("/v1/customers/c{i}"), None).await;
        assert_eq!(status, if i % 3 == 0 { 404 } else { 200 }, "customer c{i}");
    }
    let (_, totals) = send(&app, &admin, "GET", "/v1/program/totals", None).await;
    assert_eq!(totals["earned_minor"], 64 * 1_000);
    assert_eq!(totals["balanced"], true);
}
