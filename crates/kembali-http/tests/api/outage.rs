//! A database that does not answer gives retryable 503s, never 500s.

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::Utc;
use kembali_app::clock::SystemClock;
use kembali_app::error::{AppError, StoreError};
use kembali_app::store::{Job, Store};
use kembali_app::Engine;
use kembali_http::{router, AppState};
use std::sync::Arc;
use tower::ServiceExt;

/// A store whose every call fails as if the database were unreachable.
struct Down;

fn down() -> StoreError {
    StoreError::Unavailable("connection refused".into())
}

#[async_trait]
impl Store for Down {
    async fn write<T: Send + 'static>(&self, _job: Job<T>) -> Result<T, AppError> {
        Err(down().into())
    }
    async fn read<T: Send + 'static>(&self, _job: Job<T>) -> Result<T, AppError> {
        Err(down().into())
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Err(down())
    }
}

async fn get(path: &str) -> (StatusCode, Option<String>, serde_json::Value) {
    let engine = Engine::new(Arc::new(Down), Arc::new(SystemClock));
    let app = router(AppState::new(engine, None, None));
    let req = Request::get(path)
        .header(
            header::AUTHORIZATION,
            format!("Bearer kb_{}", Utc::now().timestamp()),
        )
        .body(Body::empty())
        .expect("a request");
    let res = app.oneshot(req).await.expect("infallible");
    let status = res.status();
    let retry = res
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("a body");
    (
        status,
        retry,
        serde_json::from_slice(&bytes).unwrap_or_default(),
    )
}

#[tokio::test]
async fn readiness_fails_with_a_503_problem_when_the_database_does_not_answer() {
    let (status, retry, body) = get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], "store_unavailable");
    assert_eq!(retry.as_deref(), Some("1"));
    let (health, _, _) = get("/healthz").await;
    assert_eq!(health, StatusCode::OK);
}

#[tokio::test]
async fn an_unreachable_database_is_a_retryable_503_and_never_a_500() {
    let (status, retry, body) = get("/v1/program").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "store_unavailable");
    assert_eq!(retry.as_deref(), Some("1"));
}

#[tokio::test]
async fn metrics_answer_404_when_no_recorder_is_installed() {
    let (status, _, body) = get("/metrics").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
}
