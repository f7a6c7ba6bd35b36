//! A test server: the router over a fresh in-memory store on a test clock, with one key of
//! each role, and helpers to call it and check problem+json answers.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use kembali_app::clock::TestClock;
use kembali_app::fake::MemoryStore;
use kembali_app::store::Role;
use kembali_app::Engine;
use kembali_core::ids::{Channel, StoreId};
use kembali_http::{router, AppState};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 6, 12, 0, 0)
        .single()
        .expect("a valid instant")
}

/// One recorder per test process (the `metrics` facade has one global recorder).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("the first recorder of this process installs")
        })
        .clone()
}

pub struct TestApp {
    pub router: Router,
    pub engine: Engine<MemoryStore>,
    pub admin: String,
    /// A channel key for `web`, bound to no store.
    pub web: String,
    /// A channel key for `store`, bound to store `s1`.
    pub till_s1: String,
    /// A channel key for `store`, bound to store `s2`.
    pub till_s2: String,
    pub analyst: String,
    pub support: String,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts a problem+json answer with this status and code, and returns its body.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "status of {}", self.text);
        assert_eq!(
            self.content_type(),
            "application/problem+json",
            "{}",
            self.text
        );
        let p = &self.json;
        assert_eq!(p["code"], code, "{}", self.text);
        assert_eq!(p["status"], status, "{}", self.text);
        assert_eq!(p["type"], format!("urn:kembali:problem:{code}"));
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(p["detail"].as_str().is_some_and(|t| !t.is_empty()));
        p
    }

    /// Asserts a 422 `invalid_request` naming `field` with the field code `code`.
    #[track_caller]
    pub fn invalid(&self, field: &str, code: &str) -> &Value {
        let p = self.problem(422, "invalid_request");
        assert_eq!(p["field"], field, "{}", self.text);
        let errors = p["errors"].as_array().expect("an errors list");
        assert!(
            errors
                .iter()
                .any(|e| e["field"] == field && e["code"] == code),
            "{}",
            self.text
        );
        p
    }

    /// Asserts a success or a 4xx problem+json with a stable code, never a 5xx. `what`
    /// names the request in the failure message.
    #[track_caller]
    pub fn not_a_server_error(&self, what: &str) {
        assert!(
            self.status.is_success() || self.status.is_client_error(),
            "{what}: {} {}",
            self.status,
            self.text
        );
        if self.status.is_client_error() {
            assert_eq!(self.content_type(), "application/problem+json", "{what}");
            assert!(self.json["code"].is_string(), "{what}: a stable code");
        }
    }

    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        &self.json
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::build(true).await
    }

    pub async fn without_test_clock() -> Self {
        Self::build(false).await
    }

    async fn build(with_test_clock: bool) -> Self {
        let clock = Arc::new(TestClock::new(start()));
        let engine = Engine::new(Arc::new(MemoryStore::new()), clock.clone());
        engine.init().await.expect("init");
        let key = |role, channel: Option<Channel>, store: Option<&str>| {
            let engine = engine.clone();
            let store = store.map(|s| StoreId::parse(s).expect("a store id"));
            async move {
                engine
                    .create_api_key(role, channel, store)
                    .await
                    .expect("a key")
                    .0
            }
        };
        let admin = key(Role::Admin, None, None).await;
        let web = key(Role::Channel, Some(Channel::Web), None).await;
        let till_s1 = key(Role::Channel, Some(Channel::Store), Some("s1")).await;
        let till_s2 = key(Role::Channel, Some(Channel::Store), Some("s2")).await;
        let analyst = key(Role::Analyst, None, None).await;
        let support = key(Role::Support, None, None).await;
        let state = AppState::new(
            engine.clone(),
            with_test_clock.then(|| clock.clone()),
            Some(prometheus()),
        );
        TestApp {
            router: router(state),
            engine,
            admin,
            web,
            till_s1,
            till_s2,
            analyst,
            support,
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        let res = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("the router is infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("a body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            json,
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("a method"))
            .uri(path);
        if let Some(key) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let req = match body {
            Some(body) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => req.body(Body::empty()),
        };
        self.send(req.expect("a request")).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Resp {
        self.call("GET", path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Resp {
        self.call("POST", path, Some(key), Some(body)).await
    }

    pub async fn put(&self, path: &str, key: &str, body: Value) -> Resp {
        self.call("PUT", path, Some(key), Some(body)).await
    }

    /// Posts a one-line web order of `price_minor` for `customer` with the admin key.
    pub async fn order(&self, customer: &str, order_id: &str, price_minor: i64) -> Value {
        self.post(
            "/v1/orders",
            &self.admin,
            order_body(customer, order_id, price_minor),
        )
        .await
        .ok()
        .clone()
    }

    /// Moves the test clock through its endpoint.
    pub async fn advance_days(&self, days: i64) -> Value {
        self.post(
            "/v1/test/clock",
            &self.admin,
            json!({ "advance_secs": days * 86_400 }),
        )
        .await
        .ok()
        .clone()
    }

    /// A customer with `available_minor` of spendable cashback (5 % of the order).
    pub async fn customer_with_available(&self, customer: &str, order_total_minor: i64) -> i64 {
        let receipt = self
            .order(customer, &format!("{customer}-seed"), order_total_minor)
            .await;
        self.advance_days(8).await;
        receipt["cashback_minor"].as_i64().expect("cashback")
    }
}

pub fn order_body(customer: &str, order_id: &str, price_minor: i64) -> Value {
    json!({
        "order_id": order_id,
        "channel": "web",
        "customer_id": customer,
        "currency": "BRL",
        "lines": [
            { "line_id": "l1", "sku": "sku-1", "category": "shoes", "quantity": 1, "unit_price_minor": price_minor }
        ]
    })
}

/// A two-line order: line `a` costs `a_minor`, line `b` costs `b_minor` (quantity 2 each).
pub fn two_line_order(customer: &str, order_id: &str, a_minor: i64, b_minor: i64) -> Value {
    json!({
        "order_id": order_id,
        "channel": "web",
        "customer_id": customer,
        "currency": "BRL",
        "lines": [
            { "line_id": "a", "sku": "sku-a", "category": "shoes", "quantity": 2, "unit_price_minor": a_minor },
            { "line_id": "b", "sku": "sku-b", "category": "bags", "quantity": 2, "unit_price_minor": b_minor }
        ]
    })
}
