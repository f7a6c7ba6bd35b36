//! The HTTP JSON API of Kembali: [`router`] turns an [`AppState`] into an axum `Router`
//! serving `/v1` (bearer-authenticated, role-checked), health and readiness probes,
//! Prometheus metrics and the OpenAPI document.
//!
//! The layer is thin: extractors parse raw input into core types (or a problem+json 4xx),
//! handlers call one engine method each, [`ApiError`] renders every failure.
//!
//! Must never: answer 500 or panic on anything a client sends; log a secret; hold business
//! rules (they live in `kembali-app` and `kembali-core`).

mod auth;
mod campaigns;
mod error;
mod extract;
mod handlers;
mod observe;
mod openapi;
mod state;

pub use auth::{AdminOnly, Analytics, CustomerCare, Policy, RedemptionReader, Till};
pub use error::{ApiError, Problem, PROBLEM_JSON};
pub use extract::{parse_json, MAX_IDEMPOTENCY_KEY_LEN};
pub use handlers::{AdvanceClockRequest, ClockView, HealthView, MAX_CLOCK_ADVANCE_SECS};
pub use openapi::{document_json, openapi, TEST_CLOCK_PATH};
pub use state::AppState;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::response::IntoResponse;
use axum::routing::{on, MethodFilter};
use axum::Router;
use kembali_app::store::Store;
use kembali_core::limits::MAX_BODY_BYTES;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

/// The methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    Get,
    Put,
    Post,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Put => "put",
            Verb::Post => "post",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Put => MethodFilter::PUT,
            Verb::Post => MethodFilter::POST,
        }
    }
}

/// The router under construction, with the list of what it serves (for the OpenAPI test:
/// axum cannot list a router's routes).
struct Table<S> {
    router: Router<AppState<S>>,
    served: Vec<(Verb, &'static str)>,
}

impl<S: Store> Table<S> {
    fn add<H, T>(mut self, verb: Verb, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState<S>>,
        T: 'static,
    {
        self.router = self.router.route(path, on(verb.filter(), handler));
        self.served.push((verb, path));
        self
    }
}

fn table<S: Store>(with_test_clock: bool) -> Table<S> {
    use handlers::*;
    use Verb::{Get, Post, Put};
    let t = Table {
        router: Router::new(),
        served: Vec::new(),
    }
    .add(Put, "/v1/customers/{customer_id}", put_customer::<S>)
    .add(Get, "/v1/customers/{customer_id}", get_customer::<S>)
    .add(Get, "/v1/customers/{customer_id}/wallet", get_wallet::<S>)
    .add(
        Get,
        "/v1/customers/{customer_id}/statement",
        get_statement::<S>,
    )
    .add(Post, "/v1/orders", post_order::<S>)
    .add(Post, "/v1/orders/{order_id}/returns", post_return::<S>)
    .add(Post, "/v1/orders/{order_id}/cancel", cancel_order::<S>)
    .add(Post, "/v1/redemptions/quote", quote::<S>)
    .add(Post, "/v1/redemptions", redeem::<S>)
    .add(Get, "/v1/redemptions/{redemption_id}", get_redemption::<S>)
    .add(
        Post,
        "/v1/redemptions/{redemption_id}/capture",
        capture::<S>,
    )
    .add(Post, "/v1/redemptions/{redemption_id}/void", void::<S>)
    .add(Get, "/v1/campaigns", campaigns::list_campaigns::<S>)
    .add(Post, "/v1/campaigns", campaigns::create_campaign::<S>)
    .add(Post, "/v1/campaigns/preview", campaigns::preview::<S>)
    .add(Post, "/v1/campaigns/backtest", campaigns::backtest::<S>)
    .add(
        Get,
        "/v1/campaigns/{campaign_id}",
        campaigns::get_campaign::<S>,
    )
    .add(
        Put,
        "/v1/campaigns/{campaign_id}",
        campaigns::put_campaign::<S>,
    )
    .add(
        Post,
        "/v1/campaigns/{campaign_id}/pause",
        campaigns::pause_campaign::<S>,
    )
    .add(
        Post,
        "/v1/campaigns/{campaign_id}/resume",
        campaigns::resume_campaign::<S>,
    )
    .add(
        Post,
        "/v1/campaigns/{campaign_id}/end",
        campaigns::end_campaign::<S>,
    )
    .add(Get, "/v1/program", get_program::<S>)
    .add(Put, "/v1/program", put_program::<S>)
    .add(Get, "/v1/program/totals", get_totals::<S>)
    .add(Get, "/v1/events", get_events::<S>)
    .add(Get, "/v1/metrics/summary", metrics_summary::<S>)
    .add(Get, "/v1/metrics/retention", metrics_retention::<S>)
    .add(Get, "/v1/metrics/ltv", metrics_ltv::<S>)
    .add(Get, "/v1/experiments", list_experiments::<S>)
    .add(Get, "/v1/experiments/{experiment_id}", get_experiment::<S>)
    .add(Get, "/healthz", healthz)
    .add(Get, "/readyz", readyz::<S>)
    .add(Get, "/metrics", metrics::<S>)
    .add(Get, "/openapi.json", openapi_json::<S>);
    if with_test_clock {
        t.add(Post, TEST_CLOCK_PATH, advance_clock::<S>)
    } else {
        t
    }
}

/// Every (method, path template) the router of a server with or without a test clock
/// serves, in the order they were added.
pub fn served_routes<S: Store>(with_test_clock: bool) -> Vec<(Verb, &'static str)> {
    table::<S>(with_test_clock).served
}

/// The whole HTTP API over `state`.
pub fn router<S: Store>(state: AppState<S>) -> Router {
    let with_test_clock = state.test_clock.is_some();
    table::<S>(with_test_clock)
        .router
        .method_not_allowed_fallback(handlers::wrong_method)
        .fallback(handlers::no_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_panic| {
            tracing::error!("a handler panicked");
            ApiError::internal().into_response()
        }))
        .layer(axum::middleware::from_fn(observe::record))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(observe::make_span)
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .with_state(state)
}
