//! Campaigns in the engine: what an order needs from the store to be evaluated (the active
//! set, the customer's facts, cap usage so far, budgets under lock) and what it leaves
//! behind (usage counters, budget debits, the campaign versions on its lot).
//!
//! # Budgets never overspend
//! A budget is the campaign row's `budget_spent`, debited in the order's transaction. Before
//! evaluating, the order locks every budget it could draw on (the budgeted ones among
//! [`capped_candidates`]: the capped campaigns it matches), after its customer and in id order,
//! so two orders never wait on each other in opposite orders. The evaluation then sees what
//! every committed order spent, and the store refuses a debit past the budget as a last
//! line of defence. Budgets count cashback as earned: a later return does not refill them.
//!
//! # Cap periods
//! Usage counters are keyed by the period that contains the order's instant (its local
//! day, ISO week and month in the program's zone, see [`period_starts`]), whatever order
//! the orders of that period arrive in, so a per-customer cap holds for offline orders that
//! arrive late too.

use crate::error::{AppResult, StoreError};
use crate::experiments::{campaign_holdouts, Deciding};
use crate::store::{
    CampaignRecord, CampaignStatus, CustomerRecord, LotCampaign, Tx, UsageKey, UsagePeriod,
    UsageRow,
};
use crate::wallet::Ctx;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use kembali_core::campaign::{
    evaluate, evaluate_amounts, favourite_category, holdout_candidates, parse, parse_zone,
    period_starts, prepare, Amounts, CampaignOutcome, CampaignSet, CampaignUsage, CampaignVersion,
    CappedCandidate, Caps, CustomerFacts, EvalContext, Evaluation, Exclusions, PeriodStarts,
};
use kembali_core::ids::{CampaignId, Category, CustomerId, PartnerId};
use kembali_core::order::Order;
use std::sync::{Arc, Mutex};

/// The active campaign set, rebuilt only when a campaign changes: every order checks the
/// store's campaign revision (one cheap read in its own transaction) and reuses the parsed
/// set while it is current, so replicas see a change on their next order.
#[derive(Default)]
pub struct CampaignCache {
    current: Mutex<Option<(i64, Arc<CampaignSet>)>>,
}

impl CampaignCache {
    pub async fn active(&self, tx: &mut dyn Tx) -> AppResult<Arc<CampaignSet>> {
        let revision = tx.campaigns_revision().await?;
        if let Some((r, set)) = &*self.current.lock().expect("cache lock") {
            if *r == revision {
                return Ok(set.clone());
            }
        }
        let set = Arc::new(active_set(&tx.campaigns().await?)?);
        *self.current.lock().expect("cache lock") = Some((revision, set.clone()));
        Ok(set)
    }
}

/// The typed rules of a stored version. Stored definitions were checked when they were
/// made, so one that no longer parses is corruption, not bad input.
pub fn version_of(record: &CampaignRecord) -> AppResult<CampaignVersion> {
    let v = &record.current;
    let rules = parse(&v.definition).map_err(|problems| {
        StoreError::Corrupt(format!(
            "stored campaign {} v{} does not parse: {}",
            v.campaign_id,
            v.version,
            problems
                .iter()
                .map(|p| format!("{} {}", p.path, p.message))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    Ok(CampaignVersion {
        id: v.campaign_id.clone(),
        version: v.version,
        rules,
    })
}

/// The set of the active campaigns among `records`.
pub fn active_set(records: &[CampaignRecord]) -> AppResult<CampaignSet> {
    let versions = records
        .iter()
        .filter(|c| c.current.status == CampaignStatus::Active)
        .map(version_of)
        .collect::<AppResult<Vec<_>>>()?;
    Ok(CampaignSet::new(versions, Exclusions::default())
        .map_err(|e| StoreError::Corrupt(format!("active campaigns: {e}")))?)
}

/// The program's zone (checked when the settings were saved).
pub fn zone(ctx: &Ctx) -> Tz {
    parse_zone(&ctx.settings.time_zone).unwrap_or(Tz::UTC)
}

/// The instant an order is evaluated at: when it was placed, never later than now (a till
/// clock running ahead cannot reach a campaign that has not started).
pub fn eval_instant(placed_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
    placed_at.map_or(now, |p| p.min(now))
}

/// What the customer's history contributes to an evaluation.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub first_purchase: bool,
    /// `(lookback days, favourite category)`.
    pub favourites: Vec<(u32, Category)>,
    pub usage: Vec<CampaignUsage>,
    /// Campaigns whose holdout the customer is in (see [`crate::experiments`]).
    pub held_out: Vec<CampaignId>,
}

/// The usage rows evaluation needs: one for every campaign with caps (a missing one would
/// pay nothing), from the customer's counters and the locked budgets.
pub fn usage_for(
    set: &CampaignSet,
    rows: &[UsageRow],
    budgets: &[(CampaignId, i64)],
) -> Vec<CampaignUsage> {
    let capped = set
        .versions()
        .iter()
        .filter(|v| v.rules.caps().needs_usage());
    usage_of(capped.map(|v| &v.id), rows, budgets)
}

/// One usage row for each of `campaigns` (sorted by id, as a set is), with the customer's
/// counters in `rows` and what `budgets` say was spent.
fn usage_of<'a>(
    campaigns: impl Iterator<Item = &'a CampaignId>,
    rows: &[UsageRow],
    budgets: &[(CampaignId, i64)],
) -> Vec<CampaignUsage> {
    let mut usage: Vec<CampaignUsage> = campaigns.cloned().map(CampaignUsage::none).collect();
    // Sorted by id, so rows and budgets are placed by binary search.
    let slot = |usage: &[CampaignUsage], id: &CampaignId| {
        usage.binary_search_by(|u| u.campaign_id.cmp(id)).ok()
    };
    for r in rows {
        if let Some(i) = slot(&usage, &r.campaign_id) {
            let u = &mut usage[i];
            match r.period {
                UsagePeriod::Day => u.customer_day_minor += r.amount_minor,
                UsagePeriod::Week => u.customer_week_minor += r.amount_minor,
                UsagePeriod::Month => u.customer_month_minor += r.amount_minor,
                UsagePeriod::Campaign => u.customer_campaign_minor += r.amount_minor,
            }
        }
    }
    for (id, spent) in budgets {
        if let Some(i) = slot(&usage, id) {
            usage[i].budget_spent_minor = *spent;
        }
    }
    usage
}

/// The start of the whole-campaign "period" in usage rows.
pub fn campaign_period_start() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// The periods a campaign's per-customer caps count in, each with the start of the one that
/// holds the order ([`period_starts`]).
pub fn capped_periods(
    caps: &Caps,
    starts: &PeriodStarts,
) -> impl Iterator<Item = (UsagePeriod, DateTime<Utc>)> {
    [
        (caps.per_customer_day_minor, UsagePeriod::Day, starts.day),
        (caps.per_customer_week_minor, UsagePeriod::Week, starts.week),
        (
            caps.per_customer_month_minor,
            UsagePeriod::Month,
            starts.month,
        ),
        (
            caps.per_customer_campaign_minor,
            UsagePeriod::Campaign,
            campaign_period_start(),
        ),
    ]
    .into_iter()
    .filter(|(capped, _, _)| capped.is_some())
    .map(|(_, period, start)| (period, start))
}

/// The usage counters the per-customer caps of `versions` count in, for an order whose
/// periods start at `starts`.
pub fn usage_keys<'a>(
    versions: impl Iterator<Item = &'a CampaignVersion>,
    starts: &PeriodStarts,
) -> Vec<UsageKey> {
    let mut keys = Vec::new();
    for v in versions {
        for (period, start) in capped_periods(v.rules.caps(), starts) {
            keys.push(UsageKey {
                campaign_id: v.id.clone(),
                period,
                start,
            });
        }
    }
    keys
}

/// What the outcomes that paid leave behind: on the customer's counters, one row per capped
/// period of each campaign with per-customer caps; on budgets, one debit per budgeted
/// campaign. Only `candidates` (the order's [`capped_candidates`]) can have paid a capped
/// campaign: one it does not list had no usage row, and so paid nothing. `starts` are the
/// order's periods, needed (and given) only when a candidate caps per customer.
pub fn recorded(
    set: &CampaignSet,
    candidates: &[CappedCandidate],
    outcomes: &[CampaignOutcome],
    starts: Option<&PeriodStarts>,
) -> (Vec<UsageRow>, Vec<(CampaignId, i64)>) {
    let (mut rows, mut debits) = (Vec::new(), Vec::new());
    for c in candidates {
        let v = &set.versions()[c.index];
        let paid = outcomes
            .iter()
            .find(|o| o.amount_minor > 0 && o.campaign_id == v.id);
        let Some(o) = paid else {
            continue;
        };
        let caps = v.rules.caps();
        debug_assert!(
            starts.is_some() || !caps.per_customer(),
            "periods are given"
        );
        for (period, start) in starts.into_iter().flat_map(|s| capped_periods(caps, s)) {
            rows.push(UsageRow {
                campaign_id: o.campaign_id.clone(),
                period,
                start,
                amount_minor: o.amount_minor,
            });
        }
        if caps.budget_minor.is_some() {
            debits.push((o.campaign_id.clone(), o.amount_minor));
        }
    }
    (rows, debits)
}

/// The campaign versions of a lot: every outcome that paid.
pub fn lot_campaigns(outcomes: &[CampaignOutcome]) -> Vec<LotCampaign> {
    outcomes
        .iter()
        .filter(|o| o.amount_minor > 0)
        .map(|o| LotCampaign {
            campaign_id: o.campaign_id.clone(),
            version: o.version,
            amount_minor: o.amount_minor,
            funding: o.funding.clone(),
        })
        .collect()
}

/// Everything about one order's evaluation but the campaigns and the customer's history.
pub struct OrderInput<'a> {
    pub order: &'a Order,
    pub customer: &'a CustomerRecord,
    pub partner: Option<&'a PartnerId>,
    pub at: DateTime<Utc>,
    pub redeemed_minor: i64,
}

/// Evaluates with the history given.
pub fn evaluate_with(
    ctx: &Ctx,
    zone: Tz,
    set: &CampaignSet,
    input: &OrderInput<'_>,
    history: &History,
) -> Evaluation {
    evaluate(input.order, &eval_context(ctx, zone, set, input, history))
}

/// [`evaluate_with`] without explanations: what the order pays, per line and campaign.
pub fn amounts_with(
    ctx: &Ctx,
    zone: Tz,
    set: &CampaignSet,
    input: &OrderInput<'_>,
    history: &History,
) -> Amounts {
    evaluate_amounts(input.order, &eval_context(ctx, zone, set, input, history))
}

fn eval_context<'a>(
    ctx: &'a Ctx,
    zone: Tz,
    set: &'a CampaignSet,
    input: &'a OrderInput<'a>,
    history: &'a History,
) -> EvalContext<'a> {
    EvalContext {
        settings: &ctx.settings,
        redeemed_minor: input.redeemed_minor,
        at: input.at,
        zone,
        customer: CustomerFacts {
            first_purchase: history.first_purchase,
            birthday: input.customer.birthday,
            segments: &input.customer.segments,
            favourites: &history.favourites,
            held_out: &history.held_out,
        },
        partner: input.partner,
        campaigns: set,
        usage: &history.usage,
    }
}

/// The campaigns with a holdout that the order reaches (whose arm must be decided).
pub fn holdouts_reached(
    ctx: &Ctx,
    zone: Tz,
    set: &CampaignSet,
    input: &OrderInput<'_>,
    history: &History,
) -> Vec<CampaignId> {
    holdout_candidates(input.order, &eval_context(ctx, zone, set, input, history))
}

/// The customer's first purchase and favourite categories, read for the set's needs.
async fn customer_facts(
    tx: &mut dyn Tx,
    set: &CampaignSet,
    cid: &CustomerId,
    at: DateTime<Utc>,
) -> AppResult<History> {
    let mut history = History {
        first_purchase: set.needs_first_purchase() && !tx.customer_has_orders(cid).await?,
        ..History::default()
    };
    for &days in set.favourite_lookbacks() {
        let spend = tx
            .category_spend(cid, at - Duration::days(i64::from(days)), at)
            .await?;
        if let Some(c) = favourite_category(spend.iter().map(|(c, s)| (c, *s))) {
            history.favourites.push((days, c.clone()));
        }
    }
    Ok(history)
}

/// The budgets among `candidates`, by id (the order locks take).
fn budget_ids(set: &CampaignSet, candidates: &[CappedCandidate]) -> Vec<CampaignId> {
    let versions = set.versions();
    candidates
        .iter()
        .map(|c| &versions[c.index])
        .filter(|v| v.rules.caps().budget_minor.is_some())
        .map(|v| v.id.clone())
        .collect()
}

/// Evaluates an order inside its transaction, the customer already locked: reads the
/// customer's history, locks the budgets it could draw on, evaluates, and records usage
/// and budget debits. Only the capped campaigns the order reaches ([`capped_candidates`])
/// need usage: the customer's counters are read when one of them caps per customer, and
/// their budgets are locked. Returns the evaluation; the caller records the lot.
pub async fn earn(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    set: &CampaignSet,
    input: &OrderInput<'_>,
) -> AppResult<Evaluation> {
    let zone = zone(ctx);
    let cid = &input.customer.id;
    let mut history = customer_facts(tx, set, cid, input.at).await?;
    // Prepared once for the candidate lists and the evaluation (none depends on usage).
    let prepared = prepare(input.order, &eval_context(ctx, zone, set, input, &history));
    if set.has_holdouts() {
        let reached = prepared.holdout_candidates(&eval_context(ctx, zone, set, input, &history));
        let deciding = Deciding::RecordAt(input.at);
        history.held_out = campaign_holdouts(tx, set, &reached, cid, deciding).await?;
    }
    let candidates = prepared.capped_candidates(&eval_context(ctx, zone, set, input, &history));
    let versions = set.versions();
    // The customer's periods, for the per-customer caps among the candidates (a budget
    // alone needs none; finding them in the zone is some 1,500 instructions).
    let starts = candidates
        .iter()
        .any(|c| versions[c.index].rules.caps().per_customer())
        .then(|| period_starts(input.at, zone));
    if !candidates.is_empty() {
        let ids = budget_ids(set, &candidates);
        let budgets = if ids.is_empty() {
            Vec::new()
        } else {
            tx.lock_budgets(&ids).await?
        };
        let keys = match &starts {
            Some(starts) => usage_keys(candidates.iter().map(|c| &versions[c.index]), starts),
            None => Vec::new(),
        };
        let rows = if keys.is_empty() {
            Vec::new()
        } else {
            tx.campaign_usage(cid, &keys).await?
        };
        let reached = candidates.iter().map(|c| &versions[c.index].id);
        history.usage = usage_of(reached, &rows, &budgets);
    }
    let evaluation = prepared.evaluate(&eval_context(ctx, zone, set, input, &history));
    if !candidates.is_empty() {
        let (rows, debits) = recorded(set, &candidates, &evaluation.campaigns, starts.as_ref());
        if !rows.is_empty() {
            tx.add_campaign_usage(cid, &rows).await?;
        }
        for (campaign, amount) in debits {
            tx.spend_budget(&campaign, amount).await?;
        }
    }
    Ok(evaluation)
}
