//! Backtest: replay the stored order history under a draft campaign set and report what it
//! would have cost against what was actually paid. Changes nothing.
//!
//! # What the replay assumes
//! - History is replayed in the order [`Tx::order_history`] gives (placed_at, then the
//!   order it was recorded in), which is the order a live program saw it when orders arrive
//!   as they are placed.
//! - Each order is evaluated exactly as `POST /v1/orders` would ([`crate::campaigns`]): at
//!   its `placed_at`, with the part paid with cashback, its partner, the customer's stored
//!   birthday and segments, first purchase = no earlier order in the history, favourite
//!   category from the history before it, and cap usage and budgets accumulated by the
//!   replay itself from the start of the period (a draft has spent nothing before).
//! - The program's current settings (base rate, zone) apply to the whole period. A customer
//!   in the program holdout (their recorded arm, else the arm assignment gives now) earns
//!   nothing, as live. A campaign's holdout likewise: a customer's recorded arm in
//!   `campaign:<id>`, else the arm its assignment gives now, for the orders it reaches.
//!
//! Under those assumptions a backtest of the set that was live reproduces, to the cent, what
//! the live run paid (a test holds it to that).
//!
//! # Peak unexpired cashback
//! The liability figure is an upper bound: the largest sum, at any instant of the period, of
//! cashback earned and not yet expired (`pending_days + expiry_days` after the order),
//! assuming nothing is spent or returned. It is computed the same way for the actual and the
//! simulated amounts, so the two compare.

use crate::campaign_admin::draft_set;
use crate::campaigns::{
    budget_debits, evaluate_with, holdouts_reached, usage_deltas, usage_for, zone, History,
    OrderInput,
};
use crate::error::{AppError, AppResult};
use crate::experiments::{self, campaign_experiment, held_out};
use crate::model::CampaignCreateRequest;
use crate::store::{
    CustomerRecord, HistoricalOrder, HistoryCursor, Tx, UsagePeriod, UsageRow, PROGRAM_EXPERIMENT,
};
use crate::wallet::Ctx;
use chrono::{DateTime, Duration, Utc};
use kembali_core::analytics::experiment::{assign, Arm};
use kembali_core::campaign::{favourite_category, period_starts, CampaignSet, CapKind};
use kembali_core::ids::{CampaignId, Category, Channel, CustomerId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use utoipa::ToSchema;

/// Orders read per round trip.
const PAGE: usize = 5_000;

/// `POST /v1/campaigns/backtest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktestRequest {
    /// First instant of the period (inclusive).
    pub from: DateTime<Utc>,
    /// End of the period (exclusive).
    pub to: DateTime<Utc>,
    /// The draft set; a draft with a stored campaign's id replaces it.
    #[serde(default)]
    pub campaigns: Vec<CampaignCreateRequest>,
    /// Whether the stored active campaigns join the drafts (default false: the drafts and
    /// the base rate alone).
    #[serde(default)]
    pub include_active: bool,
}

/// Actual against simulated, for one slice of the history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CostPair {
    pub actual_minor: i64,
    pub simulated_minor: i64,
}

impl CostPair {
    fn add(&mut self, actual: i64, simulated: i64) {
        self.actual_minor += actual;
        self.simulated_minor += simulated;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SliceCost {
    pub key: String,
    #[serde(flatten)]
    pub cost: CostPair,
}

/// How often each cap bound a campaign (orders where it reduced the amount).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CapsBound {
    pub eligible_amount: u64,
    pub per_order: u64,
    pub customer_day: u64,
    pub customer_week: u64,
    pub customer_month: u64,
    pub customer_campaign: u64,
    pub budget: u64,
}

impl CapsBound {
    fn count(&mut self, cap: CapKind) {
        let slot = match cap {
            CapKind::EligibleAmount => &mut self.eligible_amount,
            CapKind::PerOrder => &mut self.per_order,
            CapKind::CustomerDay => &mut self.customer_day,
            CapKind::CustomerWeek => &mut self.customer_week,
            CapKind::CustomerMonth => &mut self.customer_month,
            CapKind::CustomerCampaign => &mut self.customer_campaign,
            CapKind::Budget => &mut self.budget,
        };
        *slot += 1;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CampaignCost {
    /// `base_rate` for the base rate.
    pub campaign_id: String,
    pub version: u32,
    /// Simulated cost.
    pub cost_minor: i64,
    /// Orders it paid on.
    pub orders: u64,
    /// Customers it paid.
    pub customers: u64,
    pub caps_bound: CapsBound,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BacktestReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub currency: String,
    /// Orders placed in the period, replayed.
    pub orders: u64,
    pub customers: u64,
    /// Orders before the period read for first purchases and favourites.
    pub history_orders: u64,
    pub cost: CostPair,
    /// simulated − actual.
    pub difference_minor: i64,
    /// Orders (and their customers) whose cashback would have been different.
    pub orders_affected: u64,
    pub customers_affected: u64,
    pub by_channel: Vec<SliceCost>,
    /// Cost by line category.
    pub by_category: Vec<SliceCost>,
    /// Simulated cost by campaign (and the base rate), with how often each cap bound.
    pub by_campaign: Vec<CampaignCost>,
    /// Peak of cashback earned and not yet expired, assuming none is spent (an upper
    /// bound of the outstanding liability).
    pub peak_unexpired: CostPair,
    pub elapsed_ms: u64,
}

/// The replay's own record of what the history did so far.
#[derive(Default)]
struct Replay {
    seen: HashSet<CustomerId>,
    /// Per customer, `(placed_at, category, net)` of lines within the longest lookback.
    spend: HashMap<CustomerId, VecDeque<(DateTime<Utc>, Category, i64)>>,
    /// Per customer, the usage counters of the current periods (older periods are dropped
    /// as the replay moves past them: history comes in time order).
    usage: HashMap<CustomerId, Vec<UsageRow>>,
    budgets: HashMap<CampaignId, i64>,
    profiles: HashMap<CustomerId, CustomerRecord>,
    /// Recorded arms in the set's campaign holdouts.
    campaign_arms: HashMap<(CampaignId, CustomerId), Arm>,
}

/// Per-campaign accumulators, keyed by (id, version).
#[derive(Default)]
struct CampaignAcc {
    cost: i64,
    orders: u64,
    customers: HashSet<CustomerId>,
    caps: CapsBound,
}

pub fn check_period(from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<()> {
    if to <= from {
        return Err(AppError::invalid("to", "before_from", "must be after from"));
    }
    Ok(())
}

/// Runs the backtest on a read transaction.
pub async fn run(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    req: &BacktestRequest,
    started: std::time::Instant,
) -> AppResult<BacktestReport> {
    check_period(req.from, req.to)?;
    let stored = tx.campaigns().await?;
    let set = draft_set(&stored, req.include_active, &req.campaigns, ctx.now)?;
    let profiles = set.needs_profiles();
    let zone = zone(ctx);
    let lookback = set.favourite_lookbacks().iter().max().copied();
    let life =
        Duration::days(i64::from(ctx.settings.pending_days) + i64::from(ctx.settings.expiry_days));

    let mut replay = Replay::default();
    for v in set
        .versions()
        .iter()
        .filter(|v| v.rules.holdout().is_some())
    {
        for a in tx.assignments(&campaign_experiment(&v.id)).await? {
            replay
                .campaign_arms
                .insert((v.id.clone(), a.customer_id), a.arm);
        }
    }
    let mut report = BacktestReport {
        from: req.from,
        to: req.to,
        currency: ctx.settings.currency.to_string(),
        orders: 0,
        customers: 0,
        history_orders: 0,
        cost: CostPair::default(),
        difference_minor: 0,
        orders_affected: 0,
        customers_affected: 0,
        by_channel: Vec::new(),
        by_category: Vec::new(),
        by_campaign: Vec::new(),
        peak_unexpired: CostPair::default(),
        elapsed_ms: 0,
    };
    let mut customers: HashSet<CustomerId> = HashSet::new();
    let mut affected: HashSet<CustomerId> = HashSet::new();
    let mut by_channel: BTreeMap<Channel, CostPair> = BTreeMap::new();
    let mut by_category: BTreeMap<Category, CostPair> = BTreeMap::new();
    let mut by_campaign: BTreeMap<(CampaignId, u32), CampaignAcc> = BTreeMap::new();
    // (instant, actual delta, simulated delta) for the unexpired peak.
    let mut expiries: Vec<(DateTime<Utc>, i64, i64)> = Vec::new();

    // The program holdout as live orders saw it: the recorded arm, else the one assignment
    // would give now.
    let recorded: HashMap<CustomerId, Arm> = tx
        .assignments(PROGRAM_EXPERIMENT)
        .await?
        .into_iter()
        .map(|a| (a.customer_id, a.arm))
        .collect();
    let held_out_customer = |id: &CustomerId| {
        recorded.get(id).copied().unwrap_or_else(|| {
            assign(
                &ctx.settings.holdout_salt,
                id,
                ctx.settings.holdout_share_bp,
            )
        }) == Arm::Holdout
    };

    let mut cursor: Option<HistoryCursor> = None;
    loop {
        let page = tx.order_history(req.to, cursor.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        cursor = Some(HistoryCursor::of(last));
        let full = page.len() == PAGE;
        for h in &page {
            let in_period = h.placed_at >= req.from;
            if in_period {
                let customer = if profiles {
                    profile(tx, &mut replay, &h.order.customer_id, ctx.now).await?
                } else {
                    CustomerRecord::new(h.order.customer_id.clone(), ctx.now)
                };
                let simulated = if held_out_customer(&h.order.customer_id) {
                    held_out(&h.order, ctx, h.redeemed_minor)
                } else {
                    replay_order(ctx, zone, &set, &mut replay, h, &customer, &mut by_campaign)
                };
                report.orders += 1;
                customers.insert(h.order.customer_id.clone());
                report
                    .cost
                    .add(h.paid_minor, simulated.breakdown.total_minor);
                if simulated.breakdown.total_minor != h.paid_minor {
                    report.orders_affected += 1;
                    affected.insert(h.order.customer_id.clone());
                }
                by_channel
                    .entry(h.order.channel)
                    .or_default()
                    .add(h.paid_minor, simulated.breakdown.total_minor);
                let actual_lines = actual_by_line(h, &simulated.breakdown);
                for ((line, sim), act) in h
                    .order
                    .lines
                    .iter()
                    .zip(&simulated.breakdown.lines)
                    .zip(actual_lines)
                {
                    by_category
                        .entry(line.category.clone())
                        .or_default()
                        .add(act, sim.cashback_minor);
                }
                expiries.push((h.placed_at, h.paid_minor, simulated.breakdown.total_minor));
                expiries.push((
                    h.placed_at + life,
                    -h.paid_minor,
                    -simulated.breakdown.total_minor,
                ));
            } else {
                report.history_orders += 1;
            }
            remember(&mut replay, h, lookback);
        }
        if !full {
            break;
        }
    }

    report.customers = customers.len() as u64;
    report.customers_affected = affected.len() as u64;
    report.difference_minor = report.cost.simulated_minor - report.cost.actual_minor;
    report.by_channel = by_channel
        .into_iter()
        .map(|(c, cost)| SliceCost {
            key: c.as_str().to_string(),
            cost,
        })
        .collect();
    report.by_category = by_category
        .into_iter()
        .map(|(c, cost)| SliceCost {
            key: c.to_string(),
            cost,
        })
        .collect();
    report.by_campaign = by_campaign
        .into_iter()
        .map(|((id, version), acc)| CampaignCost {
            campaign_id: id.to_string(),
            version,
            cost_minor: acc.cost,
            orders: acc.orders,
            customers: acc.customers.len() as u64,
            caps_bound: acc.caps,
        })
        .collect();
    report.peak_unexpired = peak(expiries, req.to);
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

async fn profile(
    tx: &mut dyn Tx,
    replay: &mut Replay,
    id: &CustomerId,
    now: DateTime<Utc>,
) -> AppResult<CustomerRecord> {
    if let Some(c) = replay.profiles.get(id) {
        return Ok(c.clone());
    }
    let c = tx
        .customer(id, false)
        .await?
        .unwrap_or_else(|| CustomerRecord::new(id.clone(), now));
    replay.profiles.insert(id.clone(), c.clone());
    Ok(c)
}

/// Evaluates one order as the live engine would, with the replay's history, and records
/// its usage and budget debits in the replay.
fn replay_order(
    ctx: &Ctx,
    zone: chrono_tz::Tz,
    set: &CampaignSet,
    replay: &mut Replay,
    h: &HistoricalOrder,
    customer: &CustomerRecord,
    by_campaign: &mut BTreeMap<(CampaignId, u32), CampaignAcc>,
) -> kembali_core::campaign::Evaluation {
    let cid = &h.order.customer_id;
    let mut history = History {
        first_purchase: set.needs_first_purchase() && !replay.seen.contains(cid),
        ..History::default()
    };
    for &days in set.favourite_lookbacks() {
        let since = h.placed_at - Duration::days(i64::from(days));
        let mut spend: BTreeMap<&Category, i64> = BTreeMap::new();
        if let Some(lines) = replay.spend.get(cid) {
            for (at, c, net) in lines {
                if *at >= since && *at < h.placed_at {
                    *spend.entry(c).or_insert(0) += net;
                }
            }
        }
        if let Some(c) = favourite_category(spend) {
            history.favourites.push((days, c.clone()));
        }
    }
    let input = OrderInput {
        order: &h.order,
        customer,
        partner: h.partner_id.as_ref(),
        at: h.placed_at,
        redeemed_minor: h.redeemed_minor,
    };
    if set.has_holdouts() {
        history.held_out = holdouts_reached(ctx, zone, set, &input, &history)
            .into_iter()
            .filter(|id| {
                let recorded = replay.campaign_arms.get(&(id.clone(), cid.clone()));
                let arm = recorded.copied().or_else(|| {
                    set.version(id)
                        .map(|v| experiments::campaign_arm_now(v, cid).0)
                });
                arm == Some(Arm::Holdout)
            })
            .collect();
    }
    let starts = period_starts(h.placed_at, zone);
    let needs_usage = set.needs_usage();
    if needs_usage {
        let rows = replay.usage.entry(cid.clone()).or_default();
        rows.retain(|r| match r.period {
            UsagePeriod::Day => r.start >= starts.day,
            UsagePeriod::Week => r.start >= starts.week,
            UsagePeriod::Month => r.start >= starts.month,
            UsagePeriod::Campaign => true,
        });
        let rows: &[UsageRow] = rows;
        let budgets: Vec<(CampaignId, i64)> = replay
            .budgets
            .iter()
            .map(|(id, spent)| (id.clone(), *spent))
            .collect();
        history.usage = usage_for(set, rows, &budgets);
    }
    let evaluation = evaluate_with(ctx, zone, set, &input, &history);
    if needs_usage {
        let rows = replay.usage.entry(cid.clone()).or_default();
        for delta in usage_deltas(set, &evaluation.campaigns, &starts) {
            match rows.iter_mut().find(|r| {
                r.campaign_id == delta.campaign_id
                    && r.period == delta.period
                    && r.start == delta.start
            }) {
                Some(r) => r.amount_minor += delta.amount_minor,
                None => rows.push(delta),
            }
        }
        for (campaign, amount) in budget_debits(set, &evaluation.campaigns) {
            *replay.budgets.entry(campaign).or_insert(0) += amount;
        }
    }
    for o in &evaluation.campaigns {
        let acc = by_campaign
            .entry((o.campaign_id.clone(), o.version))
            .or_default();
        for cap in &o.capped_by {
            acc.caps.count(*cap);
        }
        if o.amount_minor > 0 {
            acc.cost += o.amount_minor;
            acc.orders += 1;
            acc.customers.insert(cid.clone());
        }
    }
    evaluation
}

/// What each line actually earned is not in the history's compact form; the order's actual
/// cashback is split over its lines in proportion to the simulated split (or the nets, when
/// nothing was simulated), which is exact for the whole order and for orders whose split is
/// unchanged.
fn actual_by_line(h: &HistoricalOrder, simulated: &kembali_core::cashback::Breakdown) -> Vec<i64> {
    let weights: Vec<i64> = if simulated.total_minor > 0 {
        simulated.lines.iter().map(|l| l.cashback_minor).collect()
    } else {
        h.order.lines.iter().map(|l| l.net_minor().max(0)).collect()
    };
    let mut out = vec![0; weights.len()];
    if weights.iter().sum::<i64>() > 0 {
        kembali_core::money::largest_remainder_into(h.paid_minor, &weights, &mut out);
    }
    out
}

/// Records the order in the replay's history.
fn remember(replay: &mut Replay, h: &HistoricalOrder, lookback: Option<u32>) {
    let cid = &h.order.customer_id;
    if !replay.seen.contains(cid) {
        replay.seen.insert(cid.clone());
    }
    if let Some(days) = lookback {
        let lines = replay.spend.entry(cid.clone()).or_default();
        let horizon = h.placed_at - Duration::days(i64::from(days));
        while lines.front().is_some_and(|(at, _, _)| *at < horizon) {
            lines.pop_front();
        }
        for l in &h.order.lines {
            lines.push_back((h.placed_at, l.category.clone(), l.net_minor()));
        }
    }
}

/// The largest running sum of the deltas up to `until`.
fn peak(mut events: Vec<(DateTime<Utc>, i64, i64)>, until: DateTime<Utc>) -> CostPair {
    // Expiries before earnings at the same instant: an instant's peak is after both.
    events.sort_by_key(|(at, a, _)| (*at, *a > 0));
    let (mut actual, mut simulated) = (0i64, 0i64);
    let mut best = CostPair::default();
    for (at, a, s) in events {
        if at >= until {
            break;
        }
        actual += a;
        simulated += s;
        best.actual_minor = best.actual_minor.max(actual);
        best.simulated_minor = best.simulated_minor.max(simulated);
    }
    best
}
