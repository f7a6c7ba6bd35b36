//! What the API records about itself: Prometheus metrics per route and a tracing span per
//! request. Labels use the matched route template (`/v1/customers/{customer_id}`), never
//! the raw path, so a client cannot grow the number of series.
//!
//! Must never: record a header (the Authorization header carries a secret), a query string
//! or a body.

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

/// Requests no route matched share one label.
const UNMATCHED: &str = "unmatched";

/// The route label of a request: its template, or [`UNMATCHED`].
pub fn route_of(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| UNMATCHED.to_string())
}

/// Standard methods by name; anything a client invents becomes `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: `http_requests_total{method,route,status}` and
/// `http_request_duration_seconds{method,route}`.
pub async fn record(req: Request, next: Next) -> Response {
    let method = method_label(req.method());
    let route = route_of(&req);
    let started = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!(
        "http_requests_total",
        "method" => method,
        "route" => route.clone(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "http_request_duration_seconds",
        "method" => method,
        "route" => route
    )
    .record(started.elapsed().as_secs_f64());
    res
}

/// The span of one request: method, route template and path, and later the API key's id
/// (not its secret). Headers are deliberately left out.
pub fn make_span(req: &Request) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %req.method(),
        route = %route_of(req),
        path = %req.uri().path(),
        key_id = tracing::field::Empty,
    )
}
