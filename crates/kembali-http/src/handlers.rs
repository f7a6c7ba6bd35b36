//! One handler per endpoint: extract (auth first, body last), call the engine, answer JSON.
//! Each carries the `#[utoipa::path]` that documents it, so the document and the code sit
//! side by side.
//!
//! Must never: check business rules (the engine does); re-validate what an extractor parsed.

use crate::auth::{AdminOnly, Analytics, Auth, CustomerCare, RedemptionReader, Till};
use crate::error::{ApiError, Problem};
use crate::extract::{
    ChannelQuery, Id, IdempotencyKey, JsonBody, MetricsQuery, OptionalJson, PageQuery, Query,
};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use kembali_app::metrics::{CurrencyReport, ExperimentInfo, SummaryReport};
use kembali_app::model::*;
use kembali_app::store::Store;
use kembali_core::analytics::metrics::{ExperimentReport, LtvReport, RetentionReport};
use kembali_core::ids::{CustomerId, ExperimentId, OrderId, RedemptionId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The furthest one call may move the test clock: ten years, the longest term a program
/// setting may name, so any lot's whole life fits in one step.
pub const MAX_CLOCK_ADVANCE_SECS: i64 = 10 * 365 * 86_400;

type ApiResult<T> = Result<Json<T>, ApiError>;

/// A body that must be empty or `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

/// `POST /v1/test/clock`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvanceClockRequest {
    /// Seconds to move the clock forward, 1 to ten years.
    pub advance_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClockView {
    pub now: DateTime<Utc>,
    /// Wallets whose due work (maturations, lapses, warnings, expiries) was settled.
    pub settled_wallets: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// Always `ok`.
    pub status: String,
}

// ---------------------------------------------------------------- customers

#[utoipa::path(
    put, path = "/v1/customers/{customer_id}", tag = "customers",
    params(("customer_id" = String, Path, description = "The retailer's id for the customer")),
    request_body = CustomerProfileRequest,
    responses((status = 200, description = "The profile as stored (created if new)", body = CustomerView)),
)]
pub async fn put_customer<S: Store>(
    _auth: Auth<AdminOnly>,
    State(st): State<AppState<S>>,
    Id(id): Id<CustomerId>,
    JsonBody(req): JsonBody<CustomerProfileRequest>,
) -> ApiResult<CustomerView> {
    Ok(Json(st.engine.put_customer(id, req).await?))
}

#[utoipa::path(
    get, path = "/v1/customers/{customer_id}", tag = "customers",
    params(("customer_id" = String, Path, description = "The retailer's id for the customer")),
    responses(
        (status = 200, description = "The customer's profile", body = CustomerView),
        (status = 404, description = "No such customer", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_customer<S: Store>(
    _auth: Auth<CustomerCare>,
    State(st): State<AppState<S>>,
    Id(id): Id<CustomerId>,
) -> ApiResult<CustomerView> {
    Ok(Json(st.engine.customer(id).await?))
}

#[utoipa::path(
    get, path = "/v1/customers/{customer_id}/wallet", tag = "customers",
    params(("customer_id" = String, Path, description = "The retailer's id for the customer")),
    responses(
        (status = 200, description = "Balances as of now, with the next expirations and maturations", body = WalletView),
        (status = 404, description = "No such customer", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_wallet<S: Store>(
    _auth: Auth<CustomerCare>,
    State(st): State<AppState<S>>,
    Id(id): Id<CustomerId>,
) -> ApiResult<WalletView> {
    Ok(Json(st.engine.wallet(id).await?))
}

#[utoipa::path(
    get, path = "/v1/customers/{customer_id}/statement", tag = "customers",
    params(
        ("customer_id" = String, Path, description = "The retailer's id for the customer"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "Entries per page, 1 to 500 (default 50)"),
    ),
    responses(
        (status = 200, description = "Ledger entries, newest first", body = StatementPage),
        (status = 404, description = "No such customer", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_statement<S: Store>(
    _auth: Auth<CustomerCare>,
    State(st): State<AppState<S>>,
    Id(id): Id<CustomerId>,
    Query(q): Query<PageQuery>,
) -> ApiResult<StatementPage> {
    Ok(Json(st.engine.statement(id, q.cursor, q.limit).await?))
}

// ---------------------------------------------------------------- orders and returns

#[utoipa::path(
    post, path = "/v1/orders", tag = "orders",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first answer")),
    request_body = OrderRequest,
    responses(
        (status = 200, description = "The order's cashback; a replay gets the first receipt again", body = OrderReceipt),
        (status = 404, description = "The customer does not exist", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order id or Idempotency-Key was used with a different request", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn post_order<S: Store>(
    auth: Auth<Till>,
    State(st): State<AppState<S>>,
    idem: IdempotencyKey,
    JsonBody(req): JsonBody<OrderRequest>,
) -> ApiResult<OrderReceipt> {
    let order = req.parse(&auth.caller())?;
    let idem = idem.idem(auth.scope(), "POST /v1/orders", &order);
    Ok(Json(st.engine.post_order(order, idem).await?))
}

#[utoipa::path(
    post, path = "/v1/orders/{order_id}/returns", tag = "orders",
    params(
        ("order_id" = String, Path, description = "The channel's id for the order"),
        ("channel" = Option<String>, Query, description = "The order's channel; needed only when the id exists on several"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first answer"),
    ),
    request_body = ReturnRequest,
    responses(
        (status = 200, description = "What the return clawed back and restored; a replay gets the first receipt", body = ReturnReceipt),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Ambiguous order id, over-return, or a reused return id", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn post_return<S: Store>(
    auth: Auth<Till>,
    State(st): State<AppState<S>>,
    Id(order_id): Id<OrderId>,
    Query(q): Query<ChannelQuery>,
    idem: IdempotencyKey,
    JsonBody(req): JsonBody<ReturnRequest>,
) -> ApiResult<ReturnReceipt> {
    let ret = req.parse()?;
    let what = format!("POST /v1/orders/{order_id}/returns");
    let idem = idem.idem(auth.scope(), &what, &(q.channel, &ret));
    Ok(Json(
        st.engine
            .post_return(order_id, q.channel, ret, idem)
            .await?,
    ))
}

#[utoipa::path(
    post, path = "/v1/orders/{order_id}/cancel", tag = "orders",
    params(
        ("order_id" = String, Path, description = "The channel's id for the order"),
        ("channel" = Option<String>, Query, description = "The order's channel; needed only when the id exists on several"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first answer"),
    ),
    request_body(content = Option<EmptyRequest>, description = "Empty, or `{}`"),
    responses(
        (status = 200, description = "Every unit not yet returned, returned", body = ReturnReceipt),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Ambiguous order id, or nothing left to cancel", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn cancel_order<S: Store>(
    auth: Auth<Till>,
    State(st): State<AppState<S>>,
    Id(order_id): Id<OrderId>,
    Query(q): Query<ChannelQuery>,
    idem: IdempotencyKey,
    OptionalJson(_empty): OptionalJson<EmptyRequest>,
) -> ApiResult<ReturnReceipt> {
    let what = format!("POST /v1/orders/{order_id}/cancel");
    let idem = idem.idem(auth.scope(), &what, &q.channel);
    Ok(Json(
        st.engine.cancel_order(order_id, q.channel, idem).await?,
    ))
}

// ---------------------------------------------------------------- redemptions

#[utoipa::path(
    post, path = "/v1/redemptions/quote", tag = "redemptions",
    request_body = QuoteRequest,
    responses(
        (status = 200, description = "How much may be redeemed on this order, and why not more", body = QuoteView),
        (status = 404, description = "No such customer", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn quote<S: Store>(
    _auth: Auth<Till>,
    State(st): State<AppState<S>>,
    JsonBody(req): JsonBody<QuoteRequest>,
) -> ApiResult<QuoteView> {
    Ok(Json(st.engine.quote(req).await?))
}

#[utoipa::path(
    post, path = "/v1/redemptions", tag = "redemptions",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first answer")),
    request_body = RedemptionRequest,
    responses(
        (status = 200, description = "The hold (or, with `capture: true`, the captured redemption)", body = RedemptionView),
        (status = 404, description = "No such customer", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The redemption id or Idempotency-Key was used with a different request", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn redeem<S: Store>(
    auth: Auth<Till>,
    State(st): State<AppState<S>>,
    idem: IdempotencyKey,
    JsonBody(req): JsonBody<RedemptionRequest>,
) -> ApiResult<RedemptionView> {
    // The raw request is hashed: a generated redemption id differs on every call, so the
    // parsed one would make every retry look like a new request.
    let idem = idem.idem(auth.scope(), "POST /v1/redemptions", &req);
    let redemption = req.parse(&auth.caller(), || {
        format!("rdm_{}", uuid::Uuid::now_v7().simple())
    })?;
    Ok(Json(st.engine.redeem(redemption, idem).await?))
}

#[utoipa::path(
    get, path = "/v1/redemptions/{redemption_id}", tag = "redemptions",
    params(("redemption_id" = String, Path, description = "The redemption's id")),
    responses(
        (status = 200, description = "The redemption and the lots that paid for it", body = RedemptionView),
        (status = 404, description = "No such redemption", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_redemption<S: Store>(
    auth: Auth<RedemptionReader>,
    State(st): State<AppState<S>>,
    Id(id): Id<RedemptionId>,
) -> ApiResult<RedemptionView> {
    Ok(Json(st.engine.redemption(id, auth.caller()).await?))
}

#[utoipa::path(
    post, path = "/v1/redemptions/{redemption_id}/capture", tag = "redemptions",
    params(
        ("redemption_id" = String, Path, description = "The redemption's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first answer"),
    ),
    request_body(content = Option<CaptureRequest>, description = "Empty (capture the whole hold) or an amount up to the hold"),
    responses(
        (status = 200, description = "The captured redemption", body = RedemptionView),
        (status = 404, description = "No such redemption", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The hold was voided, lapsed or captured for another amount", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn capture<S: Store>(
    auth: Auth<Till>,
    State(st): State<AppState<S>>,
    Id(id): Id<RedemptionId>,
    idem: IdempotencyKey,
    OptionalJson(req): OptionalJson<CaptureRequest>,
) -> ApiResult<RedemptionView> {
    let what = format!("POST /v1/redemptions/{id}/capture");
    let idem = idem.idem(auth.scope(), &what, &req);
    Ok(Json(
        st.engine
            .capture(id, req.amount_minor, auth.caller(), idem)
            .await?,
    ))
}

#[utoipa::path(
    post, path = "/v1/redemptions/{redemption_id}/void", tag = "redemptions",
    params(
        ("redemption_id" = String, Path, description = "The redemption's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first answer"),
    ),
    request_body(content = Option<EmptyRequest>, description = "Empty, or `{}`"),
    responses(
        (status = 200, description = "The voided redemption; its amount is available again", body = RedemptionView),
        (status = 404, description = "No such redemption", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The redemption was captured or lapsed", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn void<S: Store>(
    auth: Auth<Till>,
    State(st): State<AppState<S>>,
    Id(id): Id<RedemptionId>,
    idem: IdempotencyKey,
    OptionalJson(_empty): OptionalJson<EmptyRequest>,
) -> ApiResult<RedemptionView> {
    let what = format!("POST /v1/redemptions/{id}/void");
    let idem = idem.idem(auth.scope(), &what, &());
    Ok(Json(st.engine.void(id, auth.caller(), idem).await?))
}

// ---------------------------------------------------------------- program

#[utoipa::path(
    get, path = "/v1/program", tag = "program",
    responses((status = 200, description = "The program's settings", body = ProgramView)),
)]
pub async fn get_program<S: Store>(
    _auth: Auth<Analytics>,
    State(st): State<AppState<S>>,
) -> ApiResult<ProgramView> {
    Ok(Json(st.engine.program().await?))
}

#[utoipa::path(
    put, path = "/v1/program", tag = "program",
    request_body = ProgramRequest,
    responses(
        (status = 200, description = "The settings after the change", body = ProgramView),
    ),
)]
pub async fn put_program<S: Store>(
    _auth: Auth<AdminOnly>,
    State(st): State<AppState<S>>,
    JsonBody(req): JsonBody<ProgramRequest>,
) -> ApiResult<ProgramView> {
    Ok(Json(st.engine.update_program(req).await?))
}

#[utoipa::path(
    get, path = "/v1/program/totals", tag = "program",
    responses((status = 200, description = "Program-wide sums from the ledger", body = TotalsView)),
)]
pub async fn get_totals<S: Store>(
    _auth: Auth<Analytics>,
    State(st): State<AppState<S>>,
) -> ApiResult<TotalsView> {
    Ok(Json(st.engine.totals().await?))
}

#[utoipa::path(
    get, path = "/v1/events", tag = "program",
    params(
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "Events per page, 1 to 500 (default 50)"),
    ),
    responses((status = 200, description = "Events oldest first (the outbox)", body = EventsPage)),
)]
pub async fn get_events<S: Store>(
    _auth: Auth<Analytics>,
    State(st): State<AppState<S>>,
    Query(q): Query<PageQuery>,
) -> ApiResult<EventsPage> {
    Ok(Json(st.engine.events(q.cursor, q.limit).await?))
}

// ---------------------------------------------------------------- metrics and experiments

/// The filters every report takes. Dates are local dates in the program's time zone.
/// Documentation only: [`MetricsQuery`] parses them.
#[derive(utoipa::IntoParams)]
#[allow(dead_code)]
#[into_params(parameter_in = Query)]
pub struct MetricsParams {
    /// First day of the period, `YYYY-MM-DD` (default: the first order's date).
    pub from: Option<String>,
    /// Last day of the period, inclusive, `YYYY-MM-DD` (default: today).
    pub to: Option<String>,
    /// Only orders and redemptions on this channel.
    pub channel: Option<String>,
    /// Only orders and redemptions at this store.
    pub store: Option<String>,
    /// Only customers in this segment.
    pub segment: Option<String>,
    /// Only orders on which this campaign paid cashback, and the customers with such an
    /// order (their whole wallets for redemptions, expiries and liability). An unknown
    /// campaign is refused (`unknown_campaign`).
    pub campaign: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/metrics/summary", tag = "metrics",
    params(MetricsParams),
    responses((status = 200, description = "The program summary (definitions above)", body = Object)),
)]
pub async fn metrics_summary<S: Store>(
    _auth: Auth<Analytics>,
    State(st): State<AppState<S>>,
    Query(MetricsQuery(filter)): Query<MetricsQuery>,
) -> ApiResult<SummaryReport> {
    Ok(Json(st.engine.metrics_summary(filter).await?))
}

#[utoipa::path(
    get, path = "/v1/metrics/retention", tag = "metrics",
    params(MetricsParams),
    responses((status = 200, description = "Retention by first-purchase cohort (definitions above)", body = Object)),
)]
pub async fn metrics_retention<S: Store>(
    _auth: Auth<Analytics>,
    State(st): State<AppState<S>>,
    Query(MetricsQuery(filter)): Query<MetricsQuery>,
) -> ApiResult<CurrencyReport<RetentionReport>> {
    Ok(Json(st.engine.metrics_retention(filter).await?))
}

#[utoipa::path(
    get, path = "/v1/metrics/ltv", tag = "metrics",
    params(MetricsParams),
    responses((status = 200, description = "Lifetime value, historical and predicted (definitions above)", body = Object)),
)]
pub async fn metrics_ltv<S: Store>(
    _auth: Auth<Analytics>,
    State(st): State<AppState<S>>,
    Query(MetricsQuery(filter)): Query<MetricsQuery>,
) -> ApiResult<CurrencyReport<LtvReport>> {
    Ok(Json(st.engine.metrics_ltv(filter).await?))
}

/// An experiment as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExperimentView {
    /// `program` (the program holdout) or `campaign:<id>`.
    pub id: String,
    /// The holdout share in force, in basis points.
    pub holdout_share_bp: u32,
    /// Customers recorded in each arm so far.
    pub treatment_customers: u64,
    pub holdout_customers: u64,
}

impl From<ExperimentInfo> for ExperimentView {
    fn from(e: ExperimentInfo) -> Self {
        ExperimentView {
            id: e.id,
            holdout_share_bp: e.holdout_share_bp,
            treatment_customers: e.treatment_customers,
            holdout_customers: e.holdout_customers,
        }
    }
}

#[utoipa::path(
    get, path = "/v1/experiments", tag = "metrics",
    responses((status = 200, description = "Experiments: the program holdout when configured or assigned, and `campaign:<id>` for every campaign whose definition has a holdout or whose holdout has held customers out", body = Vec<ExperimentView>)),
)]
pub async fn list_experiments<S: Store>(
    _auth: Auth<Analytics>,
    State(st): State<AppState<S>>,
) -> ApiResult<Vec<ExperimentView>> {
    let list = st.engine.experiments().await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

#[utoipa::path(
    get, path = "/v1/experiments/{experiment_id}", tag = "metrics",
    params(("experiment_id" = String, Path, description = "`program`, or `campaign:<campaign id>` (the colon may be sent as `%3A`)"), MetricsParams),
    responses(
        (status = 200, description = "Treatment vs holdout (definitions above)", body = Object),
        (status = 404, description = "No such experiment (`not_found`)", body = Problem),
    ),
)]
pub async fn get_experiment<S: Store>(
    _auth: Auth<Analytics>,
    State(st): State<AppState<S>>,
    Id(id): Id<ExperimentId>,
    Query(MetricsQuery(filter)): Query<MetricsQuery>,
) -> ApiResult<CurrencyReport<ExperimentReport>> {
    Ok(Json(st.engine.experiment(id.to_string(), filter).await?))
}

// ---------------------------------------------------------------- test clock

#[utoipa::path(
    post, path = "/v1/test/clock", tag = "test",
    request_body = AdvanceClockRequest,
    responses((status = 200, description = "The new time, after every wallet's due work ran", body = ClockView)),
)]
pub async fn advance_clock<S: Store>(
    _auth: Auth<AdminOnly>,
    State(st): State<AppState<S>>,
    JsonBody(req): JsonBody<AdvanceClockRequest>,
) -> ApiResult<ClockView> {
    let Some(clock) = st.test_clock.clone() else {
        return Err(ApiError::not_found(
            "the server does not run on a test clock",
        ));
    };
    if !(1..=MAX_CLOCK_ADVANCE_SECS).contains(&req.advance_secs) {
        return Err(ApiError::invalid(
            "advance_secs",
            "out_of_range",
            format!("must be between 1 and {MAX_CLOCK_ADVANCE_SECS}"),
        ));
    }
    let now = clock.advance(Duration::seconds(req.advance_secs));
    let settled_wallets = st.engine.run_due_work(now).await?;
    Ok(Json(ClockView {
        now,
        settled_wallets,
    }))
}

// ---------------------------------------------------------------- operations

#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up", body = HealthView)),
)]
pub async fn healthz() -> Json<HealthView> {
    Json(HealthView {
        status: "ok".into(),
    })
}

#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = HealthView),
        (status = 503, description = "The database does not answer", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn readyz<S: Store>(State(st): State<AppState<S>>) -> Result<Json<HealthView>, ApiError> {
    // Any failure to answer means "not ready", never an internal error.
    if let Err(e) = st.engine.store().ping().await {
        tracing::warn!(error = %e, "readiness check failed");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the database does not answer",
        ));
    }
    Ok(healthz().await)
}

#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
        (status = 404, description = "No metrics recorder is installed", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn metrics<S: Store>(State(st): State<AppState<S>>) -> Response {
    match &st.metrics {
        Some(handle) => {
            let mut res = handle.render().into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            res
        }
        None => ApiError::not_found("no metrics recorder is installed").into_response(),
    }
}

#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)),
)]
pub async fn openapi_json<S: Store>(State(st): State<AppState<S>>) -> Response {
    let doc = crate::openapi::document_json(st.test_clock.is_some());
    let mut res = (StatusCode::OK, doc).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

// ---------------------------------------------------------------- fallbacks

pub async fn no_route() -> ApiError {
    ApiError::not_found("no such route")
}

pub async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
