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
    amounts_with, capped_periods, holdouts_reached, usage_for, zone, History, OrderInput,
};
use crate::error::{AppError, AppResult};
use crate::experiments::{campaign_arm_now, campaign_experiment};
use crate::model::CampaignCreateRequest;
use crate::store::{
    CustomerRecord, HistoricalOrder, HistoryCursor, Tx, UsagePeriod, PROGRAM_EXPERIMENT,
};
use crate::wallet::Ctx;
use chrono::{DateTime, Duration, Utc};
use kembali_core::analytics::experiment::{assign, Arm};
use kembali_core::campaign::{
    favourite_category, period_starts, Amounts, CampaignSet, CapKind, BASE_RATE_ID,
};
use kembali_core::ids::{CampaignId, Category, Channel, CustomerId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use utoipa::ToSchema;

/// Orders read per round trip.
const PAGE: usize = 1_000;

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

/// One customer as the replay knows them. Customers are numbered as the replay meets them,
/// so the per-order work looks an id up once and allocates nothing for it.
#[derive(Default)]
struct Seen {
    /// An earlier order of theirs was replayed: the next one is not a first purchase.
    ordered: bool,
    /// In the program holdout; looked up at their first order in the period.
    held_out: Option<bool>,
    /// Their stored profile, when the set looks at birthdays or segments.
    profile: Option<CustomerRecord>,
    /// `(placed_at, category, net)` of lines within the longest lookback.
    spend: VecDeque<(DateTime<Utc>, Category, i64)>,
    /// The usage counters of the current periods, `(usage slot, period, start, amount)`
    /// (older periods are dropped as the replay moves past them: history comes in time
    /// order).
    usage: Vec<(usize, UsagePeriod, DateTime<Utc>, i64)>,
    /// Counted among the period's customers, and among the affected ones.
    counted: bool,
    affected: bool,
}

/// The replay's own record of what the history did so far.
struct Replay {
    /// Keyed with foldhash: a lookup per order, where SipHash showed in profiles.
    ids: HashMap<CustomerId, usize, foldhash::fast::RandomState>,
    customers: Vec<Seen>,
    /// What evaluation reads for this order: the usage rows (one per campaign with caps,
    /// sorted by id) and the customer's facts, refilled in place order after order.
    history: History,
    /// The usage slot of each campaign of the set (its row in `history.usage`).
    slots: Vec<Option<usize>>,
    /// What each slot's budget has paid so far.
    budgets: Vec<i64>,
    /// Recorded arms in the set's campaign holdouts, by campaign.
    campaign_arms: HashMap<CampaignId, HashMap<CustomerId, Arm>>,
}

impl Replay {
    fn new(
        set: &CampaignSet,
        campaign_arms: HashMap<CampaignId, HashMap<CustomerId, Arm>>,
    ) -> Self {
        let usage = usage_for(set, &[], &[]);
        let slots = set
            .versions()
            .iter()
            .map(|v| usage.iter().position(|u| u.campaign_id == v.id))
            .collect();
        Replay {
            ids: HashMap::default(),
            customers: Vec::new(),
            budgets: vec![0; usage.len()],
            history: History {
                usage,
                ..History::default()
            },
            slots,
            campaign_arms,
        }
    }

    /// The customer's number, numbering them if new.
    fn customer(&mut self, id: &CustomerId) -> usize {
        if let Some(&c) = self.ids.get(id) {
            return c;
        }
        let c = self.customers.len();
        self.ids.insert(id.clone(), c);
        self.customers.push(Seen::default());
        c
    }
}

/// Per-campaign accumulators.
#[derive(Default)]
struct CampaignAcc {
    cost: i64,
    orders: u64,
    /// Customers it paid, counted the first time (`paid` holds one bit per customer
    /// number).
    customers: u64,
    paid: Vec<u64>,
    caps: CapsBound,
}

impl CampaignAcc {
    fn paid(&mut self, customer: usize) {
        let (word, bit) = (customer / 64, 1u64 << (customer % 64));
        if self.paid.len() <= word {
            self.paid.resize(word + 1, 0);
        }
        if self.paid[word] & bit == 0 {
            self.paid[word] |= bit;
            self.customers += 1;
        }
    }
}

pub fn check_period(from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<()> {
    if to <= from {
        return Err(AppError::invalid("to", "before_from", "must be after from"));
    }
    Ok(())
}

/// Pages of history queued between the reader and the evaluator.
const QUEUED_PAGES: usize = 2;

/// A page of history and the profiles of the customers it meets for the first time in the
/// period (when the set looks at profiles).
struct Page {
    orders: Vec<HistoricalOrder>,
    profiles: Vec<CustomerRecord>,
}

/// Runs the backtest on a read transaction. The job's task reads the history page by page
/// while a blocking thread evaluates the page before it, so reading and evaluating overlap
/// (one core each); the evaluation alone decides the answer.
pub async fn run(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    req: &BacktestRequest,
    started: std::time::Instant,
) -> AppResult<BacktestReport> {
    check_period(req.from, req.to)?;
    let stored = tx.campaigns().await?;
    // Campaigns whose dates miss the period are left out: they could not pay on it.
    let set = draft_set(&stored, req.include_active, &req.campaigns, ctx.now)?.within(
        req.from,
        req.to,
        zone(ctx),
    );
    let profiles = set.needs_profiles();
    let mut campaign_arms = HashMap::new();
    for v in set
        .versions()
        .iter()
        .filter(|v| v.rules.holdout().is_some())
    {
        let arms = tx.assignments(&campaign_experiment(&v.id)).await?;
        campaign_arms.insert(
            v.id.clone(),
            arms.into_iter().map(|a| (a.customer_id, a.arm)).collect(),
        );
    }
    // The program holdout as live orders saw it: the recorded arm, else the one assignment
    // would give now.
    let program_arms: HashMap<CustomerId, Arm> = tx
        .assignments(PROGRAM_EXPERIMENT)
        .await?
        .into_iter()
        .map(|a| (a.customer_id, a.arm))
        .collect();
    let mut evaluator = Evaluator::new(ctx.clone(), req, set, campaign_arms, program_arms);

    let (pages, mut inbox) = tokio::sync::mpsc::channel::<Page>(QUEUED_PAGES);
    let worker = tokio::task::spawn_blocking(move || {
        while let Some(page) = inbox.blocking_recv() {
            evaluator.page(page);
        }
        evaluator.finish()
    });
    let read = async {
        let mut cursor: Option<HistoryCursor> = None;
        let mut profiled: HashSet<CustomerId> = HashSet::new();
        loop {
            let orders = tx.order_history(req.to, cursor.as_ref(), PAGE).await?;
            let Some(last) = orders.last() else { break };
            cursor = Some(HistoryCursor::of(last));
            let full = orders.len() == PAGE;
            let mut page_profiles = Vec::new();
            if profiles {
                for h in orders.iter().filter(|h| h.placed_at >= req.from) {
                    let cid = &h.order.customer_id;
                    if !profiled.contains(cid) {
                        profiled.insert(cid.clone());
                        let p = tx
                            .customer(cid, false)
                            .await?
                            .unwrap_or_else(|| CustomerRecord::new(cid.clone(), ctx.now));
                        page_profiles.push(p);
                    }
                }
            }
            let page = Page {
                orders,
                profiles: page_profiles,
            };
            if pages.send(page).await.is_err() || !full {
                break; // The evaluator stopped (it panicked: its join says so) or done.
            }
        }
        AppResult::Ok(())
    }
    .await;
    drop(pages);
    let mut report = worker
        .await
        .map_err(|e| AppError::Store(crate::error::StoreError::Corrupt(e.to_string())))?;
    read?;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// The replay and what it adds up, owned by the evaluating thread.
struct Evaluator {
    ctx: Ctx,
    zone: chrono_tz::Tz,
    set: CampaignSet,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    lookback: Option<u32>,
    /// How long cashback stays unexpired (pending, then available).
    life: Duration,
    replay: Replay,
    program_arms: HashMap<CustomerId, Arm>,
    /// Evaluation reads only the birthday and segments of a customer: without profiles
    /// one empty record stands for everyone.
    anonymous: CustomerRecord,
    report: BacktestReport,
    by_channel: BTreeMap<Channel, CostPair>,
    by_category: BTreeMap<Category, CostPair>,
    /// By index in the set, the base rate last.
    by_campaign: Vec<Option<CampaignAcc>>,
    /// (instant, actual delta, simulated delta) for the unexpired peak.
    expiries: Vec<(DateTime<Utc>, i64, i64)>,
    /// Each line's actual cashback (and the weights it is split by), reused order to order.
    actual_lines: (Vec<i64>, Vec<i64>),
}

impl Evaluator {
    fn new(
        ctx: Ctx,
        req: &BacktestRequest,
        set: CampaignSet,
        campaign_arms: HashMap<CampaignId, HashMap<CustomerId, Arm>>,
        program_arms: HashMap<CustomerId, Arm>,
    ) -> Self {
        let replay = Replay::new(&set, campaign_arms);
        let life = Duration::days(
            i64::from(ctx.settings.pending_days) + i64::from(ctx.settings.expiry_days),
        );
        let anonymous =
            CustomerRecord::new(CustomerId::parse("anonymous").expect("a valid id"), ctx.now);
        Evaluator {
            zone: zone(&ctx),
            lookback: set.favourite_lookbacks().iter().max().copied(),
            by_campaign: (0..=set.versions().len()).map(|_| None).collect(),
            report: BacktestReport {
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
            },
            ctx,
            set,
            from: req.from,
            to: req.to,
            life,
            replay,
            program_arms,
            anonymous,
            by_channel: BTreeMap::new(),
            by_category: BTreeMap::new(),
            expiries: Vec::new(),
            actual_lines: (Vec::new(), Vec::new()),
        }
    }

    fn held_out(&self, id: &CustomerId) -> bool {
        let settings = &self.ctx.settings;
        self.program_arms
            .get(id)
            .copied()
            .unwrap_or_else(|| assign(&settings.holdout_salt, id, settings.holdout_share_bp))
            == Arm::Holdout
    }

    fn page(&mut self, page: Page) {
        for p in page.profiles {
            let c = self.replay.customer(&p.id);
            self.replay.customers[c].profile = Some(p);
        }
        for h in &page.orders {
            self.order(h);
        }
    }

    fn order(&mut self, h: &HistoricalOrder) {
        let cid = &h.order.customer_id;
        let c = self.replay.customer(cid);
        if h.placed_at < self.from {
            self.report.history_orders += 1;
            remember(&mut self.replay.customers[c], h, self.lookback);
            return;
        }
        let held_out = match self.replay.customers[c].held_out {
            Some(held_out) => held_out,
            None => {
                let held_out = self.held_out(cid);
                self.replay.customers[c].held_out = Some(held_out);
                held_out
            }
        };
        let simulated = if held_out {
            Amounts {
                lines: vec![0; h.order.lines.len()],
                ..Amounts::default()
            }
        } else {
            replay_order(
                &self.ctx,
                self.zone,
                &self.set,
                &mut self.replay,
                c,
                h,
                &self.anonymous,
                &mut self.by_campaign,
            )
        };
        let report = &mut self.report;
        report.orders += 1;
        let seen = &mut self.replay.customers[c];
        if !seen.counted {
            seen.counted = true;
            report.customers += 1;
        }
        report.cost.add(h.paid_minor, simulated.total_minor);
        if simulated.total_minor != h.paid_minor {
            report.orders_affected += 1;
            if !seen.affected {
                seen.affected = true;
                report.customers_affected += 1;
            }
        }
        self.by_channel
            .entry(h.order.channel)
            .or_default()
            .add(h.paid_minor, simulated.total_minor);
        actual_by_line(h, &simulated, &mut self.actual_lines);
        for ((line, sim), act) in h
            .order
            .lines
            .iter()
            .zip(&simulated.lines)
            .zip(&self.actual_lines.1)
        {
            match self.by_category.get_mut(&line.category) {
                Some(cost) => cost.add(*act, *sim),
                None => self
                    .by_category
                    .entry(line.category.clone())
                    .or_default()
                    .add(*act, *sim),
            }
        }
        self.expiries
            .push((h.placed_at, h.paid_minor, simulated.total_minor));
        self.expiries.push((
            h.placed_at + self.life,
            -h.paid_minor,
            -simulated.total_minor,
        ));
        remember(&mut self.replay.customers[c], h, self.lookback);
    }

    fn finish(self) -> BacktestReport {
        let mut report = self.report;
        report.difference_minor = report.cost.simulated_minor - report.cost.actual_minor;
        report.by_channel = self
            .by_channel
            .into_iter()
            .map(|(c, cost)| SliceCost {
                key: c.as_str().to_string(),
                cost,
            })
            .collect();
        report.by_category = self
            .by_category
            .into_iter()
            .map(|(c, cost)| SliceCost {
                key: c.to_string(),
                cost,
            })
            .collect();
        let set = &self.set;
        let mut by_campaign: Vec<CampaignCost> = self
            .by_campaign
            .into_iter()
            .enumerate()
            .filter_map(|(i, acc)| {
                let acc = acc?;
                let (id, version) = match set.versions().get(i) {
                    Some(v) => (v.id.to_string(), v.version),
                    None => (BASE_RATE_ID.to_string(), 0),
                };
                Some(CampaignCost {
                    campaign_id: id,
                    version,
                    cost_minor: acc.cost,
                    orders: acc.orders,
                    customers: acc.customers,
                    caps_bound: acc.caps,
                })
            })
            .collect();
        by_campaign.sort_by(|a, b| (&a.campaign_id, a.version).cmp(&(&b.campaign_id, b.version)));
        report.by_campaign = by_campaign;
        report.peak_unexpired = peak(self.expiries, self.to);
        report
    }
}

/// Evaluates one order as the live engine would, with the replay's history, and records
/// its usage and budget debits in the replay.
#[allow(clippy::too_many_arguments)]
fn replay_order(
    ctx: &Ctx,
    zone: chrono_tz::Tz,
    set: &CampaignSet,
    replay: &mut Replay,
    c: usize,
    h: &HistoricalOrder,
    anonymous: &CustomerRecord,
    by_campaign: &mut [Option<CampaignAcc>],
) -> Amounts {
    let seen = &mut replay.customers[c];
    let history = &mut replay.history;
    history.first_purchase = set.needs_first_purchase() && !seen.ordered;
    history.favourites.clear();
    for &days in set.favourite_lookbacks() {
        let since = h.placed_at - Duration::days(i64::from(days));
        let mut spend: BTreeMap<&Category, i64> = BTreeMap::new();
        for (at, c, net) in &seen.spend {
            if *at >= since && *at < h.placed_at {
                *spend.entry(c).or_insert(0) += net;
            }
        }
        if let Some(c) = favourite_category(spend) {
            history.favourites.push((days, c.clone()));
        }
    }
    let input = OrderInput {
        order: &h.order,
        customer: seen.profile.as_ref().unwrap_or(anonymous),
        partner: h.partner_id.as_ref(),
        at: h.placed_at,
        redeemed_minor: h.redeemed_minor,
    };
    if set.has_holdouts() {
        let cid = &h.order.customer_id;
        let arms = &replay.campaign_arms;
        history.held_out = holdouts_reached(ctx, zone, set, &input, history)
            .into_iter()
            .filter(|id| {
                let recorded = arms.get(id).and_then(|m| m.get(cid)).copied();
                let arm = recorded.or_else(|| set.version(id).map(|v| campaign_arm_now(v, cid).0));
                arm == Some(Arm::Holdout)
            })
            .collect();
    }
    let needs_usage = set.needs_usage();
    let starts = period_starts(h.placed_at, zone);
    if needs_usage {
        seen.usage.retain(|(_, period, start, _)| match period {
            UsagePeriod::Day => *start >= starts.day,
            UsagePeriod::Week => *start >= starts.week,
            UsagePeriod::Month => *start >= starts.month,
            UsagePeriod::Campaign => true,
        });
        for (u, spent) in history.usage.iter_mut().zip(&replay.budgets) {
            u.customer_day_minor = 0;
            u.customer_week_minor = 0;
            u.customer_month_minor = 0;
            u.customer_campaign_minor = 0;
            u.budget_spent_minor = *spent;
        }
        for &(slot, period, _, amount) in &seen.usage {
            let u = &mut history.usage[slot];
            match period {
                UsagePeriod::Day => u.customer_day_minor += amount,
                UsagePeriod::Week => u.customer_week_minor += amount,
                UsagePeriod::Month => u.customer_month_minor += amount,
                UsagePeriod::Campaign => u.customer_campaign_minor += amount,
            }
        }
    }
    let amounts = amounts_with(ctx, zone, set, &input, history);
    let seen = &mut replay.customers[c];
    for paid in &amounts.campaigns {
        let (Some(i), true) = (paid.campaign, paid.amount_minor > 0) else {
            continue;
        };
        let Some(slot) = replay.slots[i] else {
            continue;
        };
        let caps = set.versions()[i].rules.caps();
        for (period, start) in capped_periods(caps, &starts) {
            match seen
                .usage
                .iter_mut()
                .find(|(s, p, at, _)| *s == slot && *p == period && *at == start)
            {
                Some(row) => row.3 += paid.amount_minor,
                None => seen.usage.push((slot, period, start, paid.amount_minor)),
            }
        }
        if caps.budget_minor.is_some() {
            replay.budgets[slot] += paid.amount_minor;
        }
    }
    for paid in &amounts.campaigns {
        let acc = by_campaign[paid.campaign.unwrap_or(set.versions().len())]
            .get_or_insert_with(CampaignAcc::default);
        for cap in &paid.capped_by {
            acc.caps.count(*cap);
        }
        if paid.amount_minor > 0 {
            acc.cost += paid.amount_minor;
            acc.orders += 1;
            acc.paid(c);
        }
    }
    amounts
}

/// What each line actually earned is not in the history's compact form; the order's actual
/// cashback is split over its lines in proportion to the simulated split (or the nets, when
/// nothing was simulated), which is exact for the whole order and for orders whose split is
/// unchanged.
fn actual_by_line(h: &HistoricalOrder, simulated: &Amounts, buffers: &mut (Vec<i64>, Vec<i64>)) {
    let (weights, out) = buffers;
    weights.clear();
    if simulated.total_minor > 0 {
        weights.extend_from_slice(&simulated.lines);
    } else {
        weights.extend(h.order.lines.iter().map(|l| l.net_minor().max(0)));
    }
    out.clear();
    out.resize(weights.len(), 0);
    if weights.iter().sum::<i64>() > 0 {
        kembali_core::money::largest_remainder_into(h.paid_minor, weights, out);
    }
}

/// Records the order in the replay's history of its customer.
fn remember(seen: &mut Seen, h: &HistoricalOrder, lookback: Option<u32>) {
    seen.ordered = true;
    if let Some(days) = lookback {
        let horizon = h.placed_at - Duration::days(i64::from(days));
        while seen.spend.front().is_some_and(|(at, _, _)| *at < horizon) {
            seen.spend.pop_front();
        }
        for l in &h.order.lines {
            seen.spend
                .push_back((h.placed_at, l.category.clone(), l.net_minor()));
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
