//! Managing campaigns: create, change, pause, resume and end, each an immutable version
//! with who, when and what changed; reading them back; and previewing an order under the
//! active campaigns and drafts without changing anything.

use crate::campaigns::{
    active_set, eval_instant, evaluate_with, holdouts_reached, usage_for, usage_keys, zone,
    History, OrderInput,
};
use crate::error::{AppError, AppResult, FieldProblem};
use crate::experiments::{campaign_holdouts, held_out, program_arm, Deciding};
use crate::model::{
    Caller, CampaignCreateRequest, CampaignOutcomeView, CampaignVersionView, CampaignView,
    LineCashbackView, PreviewRequest, PreviewView,
};
use crate::store::{
    CampaignAction, CampaignRecord, CampaignStatus, CampaignVersionRecord, CustomerRecord, Tx,
};
use crate::wallet::Ctx;
use chrono::{DateTime, Utc};
use kembali_core::analytics::experiment::Arm;
use kembali_core::campaign::{parse, CampaignProblem, CampaignSet, RawCampaign};
use kembali_core::ids::{CampaignId, Category, CustomerId, Segment};
use kembali_core::limits::MAX_CAMPAIGNS_PER_EVALUATION;

use serde_json::Value;

/// A campaign problem as an API field: `/window/ends_on` under `definition` becomes
/// `definition.window.ends_on`, `/reward/tiers/1/rate_bp` becomes
/// `definition.reward.tiers[1].rate_bp`.
pub fn problem_field(prefix: &str, path: &str) -> String {
    let mut out = prefix.to_string();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        if segment.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

fn invalid(prefix: &str, problems: Vec<CampaignProblem>) -> AppError {
    AppError::Invalid(
        problems
            .into_iter()
            .map(|p| FieldProblem::new(problem_field(prefix, &p.path), p.code, p.message))
            .collect(),
    )
}

/// Checks a definition, every problem at once.
pub fn check_definition(prefix: &str, raw: &RawCampaign) -> AppResult<()> {
    parse(raw).map(|_| ()).map_err(|p| invalid(prefix, p))
}

/// The JSON pointers at which two definitions differ (leaves, or the whole array when an
/// array changed length).
pub fn changed_paths(old: &RawCampaign, new: &RawCampaign) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(old), serde_json::to_value(new)) else {
        return vec![String::new()];
    };
    let mut out = Vec::new();
    diff("", &a, &b, &mut out);
    out
}

fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let child = format!("{path}/{k}");
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff(&child, p, q, out),
                    _ => out.push(child),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}/{i}"), p, q, out);
            }
        }
        _ if a != b => out.push(path.to_string()),
        _ => {}
    }
}

pub fn version_view(v: &CampaignVersionRecord) -> CampaignVersionView {
    CampaignVersionView {
        version: v.version,
        status: v.status,
        action: v.action,
        definition: v.definition.clone(),
        changes: v.changes.clone(),
        actor: v.actor.clone(),
        at: v.at,
    }
}

pub fn campaign_view(c: &CampaignRecord, versions: &[CampaignVersionRecord]) -> CampaignView {
    let v = &c.current;
    CampaignView {
        id: v.campaign_id.to_string(),
        name: v.definition.name.clone(),
        status: v.status,
        version: v.version,
        definition: v.definition.clone(),
        budget_spent_minor: c.budget_spent_minor,
        budget_remaining_minor: v
            .definition
            .caps
            .budget_minor
            .map(|b| (b - c.budget_spent_minor).max(0)),
        created_at: c.created_at,
        updated_at: v.at,
        versions: versions.iter().map(version_view).collect(),
    }
}

fn not_found() -> AppError {
    AppError::NotFound {
        what: "campaign",
        field: "campaign_id",
    }
}

/// Refuses a change that would make more campaigns active than one evaluation takes.
async fn check_active_count(tx: &mut dyn Tx, becoming_active: &CampaignId) -> AppResult<()> {
    let active = tx
        .campaigns()
        .await?
        .iter()
        .filter(|c| c.current.status == CampaignStatus::Active)
        .filter(|c| c.current.campaign_id != *becoming_active)
        .count();
    if active >= MAX_CAMPAIGNS_PER_EVALUATION {
        return Err(AppError::conflict(
            "too_many_active_campaigns",
            format!("at most {MAX_CAMPAIGNS_PER_EVALUATION} campaigns may be active at once; end or pause one first"),
        ));
    }
    Ok(())
}

pub async fn create(
    tx: &mut dyn Tx,
    now: DateTime<Utc>,
    actor: &str,
    req: CampaignCreateRequest,
) -> AppResult<CampaignView> {
    let id = CampaignId::parse(req.id)
        .map_err(|e| AppError::invalid("id", "invalid_id", e.to_string()))?;
    if id.as_str() == kembali_core::campaign::BASE_RATE_ID {
        return Err(AppError::invalid(
            "id",
            "reserved",
            "base_rate is the program's base rate; pick another id",
        ));
    }
    check_definition("definition", &req.definition)?;
    if let Some(existing) = tx.campaign(&id, true).await? {
        // A retry of the same create answers as the first did.
        let first = tx.campaign_versions(&id).await?;
        if first
            .first()
            .is_some_and(|v| v.definition == req.definition)
        {
            return Ok(campaign_view(&existing, &[]));
        }
        return Err(AppError::conflict(
            "campaign_exists",
            format!("campaign {id} exists; change it with PUT /v1/campaigns/{id}"),
        ));
    }
    check_active_count(tx, &id).await?;
    let version = CampaignVersionRecord {
        campaign_id: id.clone(),
        version: 1,
        status: CampaignStatus::Active,
        action: CampaignAction::Create,
        definition: req.definition,
        changes: Vec::new(),
        actor: actor.to_string(),
        at: now,
    };
    tx.put_campaign_version(&version).await?;
    let stored = CampaignRecord {
        current: version,
        created_at: now,
        budget_spent_minor: 0,
    };
    Ok(campaign_view(&stored, &[]))
}

pub async fn update(
    tx: &mut dyn Tx,
    now: DateTime<Utc>,
    actor: &str,
    id: &CampaignId,
    definition: RawCampaign,
    expected_version: Option<u32>,
) -> AppResult<CampaignView> {
    check_definition("definition", &definition)?;
    let current = tx.campaign(id, true).await?.ok_or_else(not_found)?;
    if let Some(expected) = expected_version {
        if expected != current.current.version {
            return Err(AppError::conflict(
                "version_mismatch",
                format!(
                    "campaign {id} is at version {}, not {expected}",
                    current.current.version
                ),
            ));
        }
    }
    if current.current.definition == definition {
        return Ok(campaign_view(&current, &[]));
    }
    if current.current.status == CampaignStatus::Ended {
        return Err(AppError::conflict(
            "campaign_ended",
            format!("campaign {id} has ended; create a new campaign instead"),
        ));
    }
    if let Some(budget) = definition.caps.budget_minor {
        if budget < current.budget_spent_minor {
            return Err(AppError::invalid(
                "definition.caps.budget_minor",
                "below_spent",
                format!(
                    "the campaign has already spent {}; the budget cannot be lower",
                    current.budget_spent_minor
                ),
            ));
        }
    }
    let changes = changed_paths(&current.current.definition, &definition);
    new_version(
        tx,
        &current,
        now,
        actor,
        CampaignAction::Update,
        current.current.status,
        definition,
        changes,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn new_version(
    tx: &mut dyn Tx,
    current: &CampaignRecord,
    now: DateTime<Utc>,
    actor: &str,
    action: CampaignAction,
    status: CampaignStatus,
    definition: RawCampaign,
    changes: Vec<String>,
) -> AppResult<CampaignView> {
    let id = &current.current.campaign_id;
    let version = CampaignVersionRecord {
        campaign_id: id.clone(),
        version: current.current.version + 1,
        status,
        action,
        definition,
        changes,
        actor: actor.to_string(),
        at: now,
    };
    tx.put_campaign_version(&version).await?;
    // The version is the whole new state; the budget's spending is unchanged by it.
    let stored = CampaignRecord {
        current: version,
        created_at: current.created_at,
        budget_spent_minor: current.budget_spent_minor,
    };
    Ok(campaign_view(&stored, &[]))
}

/// Pause, resume or end. Asking for the state the campaign is already in changes nothing
/// (so retries are safe); an ended campaign stays ended.
pub async fn set_status(
    tx: &mut dyn Tx,
    now: DateTime<Utc>,
    actor: &str,
    id: &CampaignId,
    action: CampaignAction,
) -> AppResult<CampaignView> {
    let current = tx.campaign(id, true).await?.ok_or_else(not_found)?;
    let from = current.current.status;
    let to = match action {
        CampaignAction::Pause => CampaignStatus::Paused,
        CampaignAction::Resume => CampaignStatus::Active,
        CampaignAction::End => CampaignStatus::Ended,
        CampaignAction::Create | CampaignAction::Update => {
            unreachable!("only pause, resume and end set a status")
        }
    };
    if from == to {
        return Ok(campaign_view(&current, &[]));
    }
    if from == CampaignStatus::Ended {
        return Err(AppError::conflict(
            "campaign_ended",
            format!("campaign {id} has ended and cannot be {}d", action.as_str()),
        ));
    }
    if to == CampaignStatus::Active {
        check_active_count(tx, id).await?;
    }
    let definition = current.current.definition.clone();
    new_version(
        tx,
        &current,
        now,
        actor,
        action,
        to,
        definition,
        vec!["/status".into()],
    )
    .await
}

pub async fn get(tx: &mut dyn Tx, id: &CampaignId) -> AppResult<CampaignView> {
    let current = tx.campaign(id, false).await?.ok_or_else(not_found)?;
    let versions = tx.campaign_versions(id).await?;
    Ok(campaign_view(&current, &versions))
}

pub async fn list(tx: &mut dyn Tx, status: Option<CampaignStatus>) -> AppResult<Vec<CampaignView>> {
    Ok(tx
        .campaigns()
        .await?
        .iter()
        .filter(|c| status.is_none_or(|s| c.current.status == s))
        .map(|c| campaign_view(c, &[]))
        .collect())
}

/// The set a preview or backtest evaluates: the stored active campaigns (when asked for)
/// with the drafts replacing or joining them. Drafts are checked like a create, every
/// problem at once under `campaigns[i]`.
pub fn draft_set(
    stored: &[CampaignRecord],
    include_active: bool,
    drafts: &[CampaignCreateRequest],
    now: DateTime<Utc>,
) -> AppResult<CampaignSet> {
    let mut problems = Vec::new();
    let mut records: Vec<CampaignRecord> = if include_active {
        stored
            .iter()
            .filter(|c| c.current.status == CampaignStatus::Active)
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let mut seen = std::collections::HashSet::new();
    for (i, d) in drafts.iter().enumerate() {
        let prefix = format!("campaigns[{i}]");
        let mut bad = |field: &str, code: &str, message: String| {
            problems.push(FieldProblem::new(
                format!("{prefix}.{field}"),
                code,
                message,
            ))
        };
        let id = match CampaignId::parse(d.id.clone()) {
            Ok(id) if id.as_str() == kembali_core::campaign::BASE_RATE_ID => {
                bad(
                    "id",
                    "reserved",
                    "base_rate is the program's base rate".into(),
                );
                continue;
            }
            Ok(id) => id,
            Err(e) => {
                bad("id", "invalid_id", e.to_string());
                continue;
            }
        };
        if !seen.insert(id.clone()) {
            bad("id", "duplicate", "each draft id may appear once".into());
            continue;
        }
        if let Err(p) = parse(&d.definition) {
            problems.extend(p.into_iter().map(|p| {
                FieldProblem::new(
                    problem_field(&format!("{prefix}.definition"), &p.path),
                    p.code,
                    p.message,
                )
            }));
            continue;
        }
        let version = stored
            .iter()
            .find(|c| c.current.campaign_id == id)
            .map_or(1, |c| c.current.version + 1);
        records.retain(|c| c.current.campaign_id != id);
        records.push(CampaignRecord {
            current: CampaignVersionRecord {
                campaign_id: id,
                version,
                status: CampaignStatus::Active,
                action: CampaignAction::Create,
                definition: d.definition.clone(),
                changes: Vec::new(),
                actor: String::new(),
                at: now,
            },
            created_at: now,
            budget_spent_minor: 0,
        });
    }
    if !problems.is_empty() {
        return Err(AppError::Invalid(problems));
    }
    if records.len() > MAX_CAMPAIGNS_PER_EVALUATION {
        return Err(AppError::invalid(
            "campaigns",
            "too_many",
            format!("at most {MAX_CAMPAIGNS_PER_EVALUATION} campaigns may be evaluated together"),
        ));
    }
    active_set(&records)
}

/// Evaluates a sample order as `POST /v1/orders` would, under the active campaigns and the
/// drafts, with the stored customer's facts and usage unless the request overrides them,
/// and their holdout arms: the recorded ones, else those assignment gives now (a customer in
/// the program's holdout earns nothing; one in a campaign's holdout is told so on the lines
/// that campaign would have paid). Runs in a read transaction: nothing changes, no budget is
/// locked, no arm is recorded.
pub async fn preview(tx: &mut dyn Tx, ctx: &Ctx, req: PreviewRequest) -> AppResult<PreviewView> {
    let post = req.order.clone().parse(&Caller::default())?;
    let order = post.order;
    if order.currency != ctx.settings.currency {
        return Err(AppError::invalid(
            "order.currency",
            "currency_mismatch",
            format!("the program runs in {}", ctx.settings.currency),
        ));
    }
    let total = order.total_minor();
    if !(0..=total).contains(&req.redeemed_minor) {
        return Err(AppError::invalid(
            "redeemed_minor",
            "out_of_range",
            format!("must be between 0 and the order total {total}"),
        ));
    }
    let stored = tx.campaigns().await?;
    let set = draft_set(
        &stored,
        req.include_active.unwrap_or(true),
        &req.campaigns,
        ctx.now,
    )?;
    let known = tx.customer(&order.customer_id, false).await?;
    let customer = preview_customer(&req, &order.customer_id, known.as_ref(), ctx.now)?;
    let at = eval_instant(post.placed_at, ctx.now);
    let zone = zone(ctx);
    let mut history = History {
        first_purchase: match req.customer.first_purchase {
            Some(f) => f,
            None => known.is_none() || !tx.customer_has_orders(&order.customer_id).await?,
        },
        ..History::default()
    };
    if let Some(raw) = &req.customer.favourite_category {
        let c = Category::parse(raw.clone()).map_err(|e| {
            AppError::invalid("customer.favourite_category", "invalid_id", e.to_string())
        })?;
        history.favourites = set
            .favourite_lookbacks()
            .iter()
            .map(|&d| (d, c.clone()))
            .collect();
    }
    let starts = kembali_core::campaign::period_starts(at, zone);
    let rows = if known.is_some() {
        let keys = usage_keys(set.versions().iter(), &starts);
        tx.campaign_usage(&order.customer_id, &keys).await?
    } else {
        Vec::new()
    };
    let spent: Vec<(CampaignId, i64)> = stored
        .iter()
        .map(|c| (c.current.campaign_id.clone(), c.budget_spent_minor))
        .collect();
    history.usage = usage_for(&set, &rows, &spent);
    let input = OrderInput {
        order: &order,
        customer: &customer,
        partner: post.partner_id.as_ref(),
        at,
        redeemed_minor: req.redeemed_minor,
    };
    let arm = program_arm(tx, ctx, &order.customer_id, Deciding::ReadOnly).await?;
    let evaluation = if arm == Arm::Holdout {
        held_out(&order, ctx, req.redeemed_minor)
    } else {
        if set.has_holdouts() {
            let reached = holdouts_reached(ctx, zone, &set, &input, &history);
            let (cid, deciding) = (&order.customer_id, Deciding::ReadOnly);
            history.held_out = campaign_holdouts(tx, &set, &reached, cid, deciding).await?;
        }
        evaluate_with(ctx, zone, &set, &input, &history)
    };
    Ok(PreviewView {
        currency: ctx.settings.currency.to_string(),
        total_minor: total,
        cashback_minor: evaluation.breakdown.total_minor,
        lines: evaluation
            .breakdown
            .lines
            .iter()
            .map(LineCashbackView::from)
            .collect(),
        campaigns: evaluation
            .campaigns
            .iter()
            .map(CampaignOutcomeView::from)
            .collect(),
    })
}

fn preview_customer(
    req: &PreviewRequest,
    id: &CustomerId,
    known: Option<&CustomerRecord>,
    now: DateTime<Utc>,
) -> AppResult<CustomerRecord> {
    let mut c = known
        .cloned()
        .unwrap_or_else(|| CustomerRecord::new(id.clone(), now));
    if let Some(b) = req.customer.birthday {
        c.birthday = Some(b);
    }
    if let Some(segments) = &req.customer.segments {
        c.segments = segments
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Segment::parse(s.clone()).map_err(|e| {
                    AppError::invalid(
                        format!("customer.segments[{i}]"),
                        "invalid_id",
                        e.to_string(),
                    )
                })
            })
            .collect::<AppResult<_>>()?;
    }
    Ok(c)
}
