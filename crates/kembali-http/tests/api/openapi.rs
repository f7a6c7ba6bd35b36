//! The OpenAPI document describes exactly what the router serves.

use crate::common::TestApp;
use kembali_app::fake::MemoryStore;
use kembali_http::{served_routes, TEST_CLOCK_PATH};
use serde_json::Value;
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (m.to_string(), path.clone()))
        })
        .collect()
}

fn served(with_test_clock: bool) -> BTreeSet<(String, String)> {
    served_routes::<MemoryStore>(with_test_clock)
        .into_iter()
        .map(|(verb, path)| (verb.as_str().to_string(), path.to_string()))
        .collect()
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_the_router_serves() {
    for (app, with_clock) in [
        (TestApp::new().await, true),
        (TestApp::without_test_clock().await, false),
    ] {
        let res = app.call("GET", "/openapi.json", None, None).await;
        assert_eq!(documented(res.ok()), served(with_clock));
    }
}

#[tokio::test]
async fn the_test_clock_is_documented_only_where_it_exists() {
    let with = TestApp::new().await;
    let without = TestApp::without_test_clock().await;
    let doc_with = with.call("GET", "/openapi.json", None, None).await;
    let doc_without = without.call("GET", "/openapi.json", None, None).await;
    assert!(documented(doc_with.ok()).contains(&("post".into(), TEST_CLOCK_PATH.into())));
    assert!(!documented(doc_without.ok())
        .iter()
        .any(|(_, p)| p == TEST_CLOCK_PATH));
}

/// Every documented operation answers with something other than "no such route".
#[tokio::test]
async fn every_documented_route_is_served() {
    let app = TestApp::new().await;
    let doc = app
        .call("GET", "/openapi.json", None, None)
        .await
        .ok()
        .clone();
    for (method, path) in documented(&doc) {
        let concrete = path
            .replace("{customer_id}", "ana")
            .replace("{order_id}", "o1")
            .replace("{redemption_id}", "rdm1");
        let res = app
            .call(&method.to_uppercase(), &concrete, Some(&app.admin), None)
            .await;
        let no_route = res.status == 404 && res.json["code"] == "not_found";
        assert!(
            !no_route && res.status != 405,
            "{method} {path}: {} {}",
            res.status,
            res.text
        );
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_bearer_auth_and_problem_errors() {
    let app = TestApp::new().await;
    let res = app.call("GET", "/openapi.json", None, None).await;
    assert_eq!(res.content_type(), "application/json");
    let doc = res.ok();
    assert!(doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let order = &doc["paths"]["/v1/orders"]["post"];
    assert_eq!(order["security"][0]["bearer"], serde_json::json!([]));
    for status in ["400", "401", "403", "413", "415", "422", "409"] {
        let content = &order["responses"][status]["content"];
        assert!(
            content.get("application/problem+json").is_some(),
            "{status}: {order}"
        );
    }
    assert!(order["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"));
    let health = &doc["paths"]["/healthz"]["get"];
    assert!(health.get("security").is_none());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}
