//! Campaign endpoints: admins write (each change a new immutable version), analysts read,
//! preview and backtest (which change nothing).

use crate::auth::{AdminOnly, Analytics, Auth};
use crate::error::{ApiError, Problem};
use crate::extract::{Id, JsonBody, OptionalJson, PathId, Query, QueryParams};
use crate::handlers::EmptyRequest;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use kembali_app::backtest::{BacktestReport, BacktestRequest};
use kembali_app::model::*;
use kembali_app::store::{CampaignAction, CampaignStatus, Store};
use kembali_core::ids::{CampaignId, IdError};

type ApiResult<T> = Result<Json<T>, ApiError>;

impl PathId for CampaignId {
    const FIELD: &'static str = "campaign_id";
    fn parse(raw: String) -> Result<Self, IdError> {
        CampaignId::parse(raw)
    }
}

/// `?status=` of the campaign list.
#[derive(Debug, Default)]
pub struct StatusQuery {
    pub status: Option<CampaignStatus>,
}

impl QueryParams for StatusQuery {
    const NAMES: &'static [&'static str] = &["status"];
    fn set(&mut self, _name: &str, value: String) -> Result<(), ApiError> {
        self.status = Some(CampaignStatus::parse(&value).ok_or_else(|| {
            ApiError::invalid(
                "status",
                "invalid_status",
                "must be one of active, paused, ended",
            )
        })?);
        Ok(())
    }
}

#[utoipa::path(
    get, path = "/v1/campaigns", tag = "campaigns",
    params(("status" = Option<String>, Query, description = "Only campaigns in this status: `active`, `paused` or `ended`")),
    responses((status = 200, description = "Every campaign's current version, by id", body = CampaignList)),
)]
pub async fn list_campaigns<S: Store>(
    _auth: Auth<Analytics>,
    State(st): State<AppState<S>>,
    Query(q): Query<StatusQuery>,
) -> ApiResult<CampaignList> {
    Ok(Json(st.engine.campaigns(q.status).await?))
}

#[utoipa::path(
    post, path = "/v1/campaigns", tag = "campaigns",
    request_body = CampaignCreateRequest,
    responses(
        (status = 200, description = "The campaign at version 1, active (a retry with the same definition returns it again)", body = CampaignView),
        (status = 409, description = "A campaign with this id exists with another definition, or too many are active", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Every problem of the definition, each with its field", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_campaign<S: Store>(
    auth: Auth<AdminOnly>,
    State(st): State<AppState<S>>,
    JsonBody(req): JsonBody<CampaignCreateRequest>,
) -> ApiResult<CampaignView> {
    Ok(Json(st.engine.create_campaign(&auth.key.id, req).await?))
}

#[utoipa::path(
    get, path = "/v1/campaigns/{campaign_id}", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "The campaign with every version, oldest first", body = CampaignView),
        (status = 404, description = "No such campaign", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_campaign<S: Store>(
    _auth: Auth<Analytics>,
    State(st): State<AppState<S>>,
    Id(id): Id<CampaignId>,
) -> ApiResult<CampaignView> {
    Ok(Json(st.engine.campaign(id).await?))
}

#[utoipa::path(
    put, path = "/v1/campaigns/{campaign_id}", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "The campaign's id")),
    request_body = CampaignUpdateRequest,
    responses(
        (status = 200, description = "The campaign at its new version (unchanged if the definition is the current one)", body = CampaignView),
        (status = 404, description = "No such campaign", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The campaign has ended, or is not at `expected_version`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Every problem of the definition, each with its field", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn put_campaign<S: Store>(
    auth: Auth<AdminOnly>,
    State(st): State<AppState<S>>,
    Id(id): Id<CampaignId>,
    JsonBody(req): JsonBody<CampaignUpdateRequest>,
) -> ApiResult<CampaignView> {
    Ok(Json(
        st.engine.update_campaign(&auth.key.id, id, req).await?,
    ))
}

async fn set_status<S: Store>(
    auth: Auth<AdminOnly>,
    st: AppState<S>,
    id: CampaignId,
    action: CampaignAction,
) -> ApiResult<CampaignView> {
    Ok(Json(
        st.engine
            .set_campaign_status(&auth.key.id, id, action)
            .await?,
    ))
}

#[utoipa::path(
    post, path = "/v1/campaigns/{campaign_id}/pause", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "The campaign, paused (a new version; unchanged if it already was)", body = CampaignView),
        (status = 404, description = "No such campaign", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The campaign has ended", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn pause_campaign<S: Store>(
    auth: Auth<AdminOnly>,
    State(st): State<AppState<S>>,
    Id(id): Id<CampaignId>,
    OptionalJson(_): OptionalJson<EmptyRequest>,
) -> ApiResult<CampaignView> {
    set_status(auth, st, id, CampaignAction::Pause).await
}

#[utoipa::path(
    post, path = "/v1/campaigns/{campaign_id}/resume", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "The campaign, active again (a new version; unchanged if it already was)", body = CampaignView),
        (status = 404, description = "No such campaign", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The campaign has ended, or too many are active", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn resume_campaign<S: Store>(
    auth: Auth<AdminOnly>,
    State(st): State<AppState<S>>,
    Id(id): Id<CampaignId>,
    OptionalJson(_): OptionalJson<EmptyRequest>,
) -> ApiResult<CampaignView> {
    set_status(auth, st, id, CampaignAction::Resume).await
}

#[utoipa::path(
    post, path = "/v1/campaigns/{campaign_id}/end", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "The campaign, ended for good (a new version; unchanged if it already was)", body = CampaignView),
        (status = 404, description = "No such campaign", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn end_campaign<S: Store>(
    auth: Auth<AdminOnly>,
    State(st): State<AppState<S>>,
    Id(id): Id<CampaignId>,
    OptionalJson(_): OptionalJson<EmptyRequest>,
) -> ApiResult<CampaignView> {
    set_status(auth, st, id, CampaignAction::End).await
}

#[utoipa::path(
    post, path = "/v1/campaigns/preview", tag = "campaigns",
    request_body = PreviewRequest,
    responses(
        (status = 200, description = "What the order would earn, line by line and campaign by campaign, the customer met in their holdouts as their next order would meet them; nothing is stored, no arm recorded", body = PreviewView),
        (status = 422, description = "A bad order, customer or draft definition (every problem, each with its field)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn preview<S: Store>(
    _auth: Auth<Analytics>,
    State(st): State<AppState<S>>,
    JsonBody(req): JsonBody<PreviewRequest>,
) -> ApiResult<PreviewView> {
    Ok(Json(st.engine.preview(req).await?))
}

#[utoipa::path(
    post, path = "/v1/campaigns/backtest", tag = "campaigns",
    request_body = BacktestRequest,
    responses(
        (status = 200, description = "What the draft set would have paid on the stored history of the period, against what was paid; nothing is stored", body = BacktestReport),
        (status = 422, description = "A bad period or draft definition (every problem, each with its field)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn backtest<S: Store>(
    _auth: Auth<Analytics>,
    State(st): State<AppState<S>>,
    JsonBody(req): JsonBody<BacktestRequest>,
) -> ApiResult<BacktestReport> {
    Ok(Json(st.engine.backtest(req).await?))
}
