//! Evaluation: an order, the customer's facts, the active campaigns and their usage so far in;
//! per-line cashback with explanations and a per-campaign summary out. Pure and
//! deterministic: the same arguments always give the same answer.
//!
//! Work per order is kept small for the till: the instant is converted to the program's zone
//! once; each campaign first checks its order-level conditions (window, channel, customer…)
//! with no allocation, then makes one pass over the lines to sum what it pays on; strings
//! are built only for the campaigns that win.

use super::reach::Mask;
use super::rules::{
    channel_bit, percent_label, Birthday, CampaignSet, CampaignVersion, Caps, Excluded, Funding,
    LineSymbols, Reward, StackingMode, BASE_RATE_ID,
};
use super::time::{days_from_birthday, Moment};
use crate::cashback::{Breakdown, LineCashback, RuleApplied};
use crate::ids::{CampaignId, Category, PartnerId, Segment};
use crate::money::{
    format_minor, largest_remainder_into, push_minor, round_half_even, BasisPoints,
};
use crate::order::{Order, OrderLine};
use crate::program::ProgramSettings;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};

/// What the engine knows about the customer at the time of the order.
#[derive(Debug, Clone, Copy, Default)]
pub struct CustomerFacts<'a> {
    /// This order is the customer's first purchase.
    pub first_purchase: bool,
    pub birthday: Option<NaiveDate>,
    pub segments: &'a [Segment],
    /// `(lookback_days, favourite category)` for each of
    /// [`CampaignSet::favourite_lookbacks`]; a missing lookback means no favourite.
    pub favourites: &'a [(u32, Category)],
    /// Campaigns whose holdout the customer is in: evaluated as if they did not exist.
    pub held_out: &'a [CampaignId],
}

/// How much of a campaign's caps is used so far (before this order), all in minor units.
/// Periods are the customer's local day, ISO week and month in the program's zone
/// ([`super::period_starts`]). A campaign with such caps but no usage row is treated as used
/// up: a missing row must never let a budget be exceeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignUsage {
    pub campaign_id: CampaignId,
    pub customer_day_minor: i64,
    pub customer_week_minor: i64,
    pub customer_month_minor: i64,
    pub customer_campaign_minor: i64,
    /// Spent from the campaign's budget by every customer (what the ledger holds).
    pub budget_spent_minor: i64,
}

impl CampaignUsage {
    pub fn none(campaign_id: CampaignId) -> Self {
        CampaignUsage {
            campaign_id,
            customer_day_minor: 0,
            customer_week_minor: 0,
            customer_month_minor: 0,
            customer_campaign_minor: 0,
            budget_spent_minor: 0,
        }
    }
}

/// Everything evaluation needs besides the order.
#[derive(Debug, Clone, Copy)]
pub struct EvalContext<'a> {
    pub settings: &'a ProgramSettings,
    /// The part of the order paid with cashback: earns nothing.
    pub redeemed_minor: i64,
    /// When the order happened.
    pub at: DateTime<Utc>,
    /// The program's zone: windows and birthdays are local dates there.
    pub zone: Tz,
    pub customer: CustomerFacts<'a>,
    /// The partner merchant the order was placed with, if any.
    pub partner: Option<&'a PartnerId>,
    pub campaigns: &'a CampaignSet,
    pub usage: &'a [CampaignUsage],
}

/// A cap that reduced a campaign's amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapKind {
    /// A fixed reward never pays more than the amount it is earned on.
    EligibleAmount,
    PerOrder,
    CustomerDay,
    CustomerWeek,
    CustomerMonth,
    CustomerCampaign,
    Budget,
}

/// What one campaign (or the base rate) paid on the order: what the engine records on the
/// lot and debits from budgets and usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignOutcome {
    /// [`BASE_RATE_ID`] for the base rate.
    pub campaign_id: CampaignId,
    /// 0 for the base rate.
    pub version: u32,
    /// The rate applied; `None` for a fixed amount.
    pub rate_bp: Option<BasisPoints>,
    /// What the campaign was earned on: the eligible amount of its lines.
    pub eligible_minor: i64,
    /// Rounded, before caps.
    pub uncapped_minor: i64,
    pub amount_minor: i64,
    pub capped_by: Vec<CapKind>,
    pub funding: Funding,
    /// "Black Friday 10 % (v3) on R$ 180,00 eligible; category book excluded; capped at…"
    pub explanation: String,
    /// The customer is in the campaign's holdout: it paid nothing (`uncapped_minor` is what
    /// it would have paid before caps).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held_out: bool,
}

/// The per-line breakdown plus the per-campaign summary. The lines' cashback adds up to
/// `breakdown.total_minor`, and so do the outcomes' amounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub breakdown: Breakdown,
    pub campaigns: Vec<CampaignOutcome>,
}

/// The base rate ranks below every campaign priority.
const BASE_PRIORITY: i64 = -1;

/// One line's amounts, computed once per order.
struct LineFacts<'o> {
    net: i64,
    redeemed: i64,
    /// net − redeemed: what cashback is computed on.
    eligible: i64,
    /// A program-wide exclusion that hits the line.
    excluded: Option<Excluded<'o>>,
}

/// Per-order facts computed once and shared by every campaign.
struct Prep<'o> {
    order: &'o Order,
    lines: Vec<LineFacts<'o>>,
    /// Each line's category and SKU symbols and the range of its tags in `tags`.
    symbols: Vec<(u32, u32, usize, usize)>,
    tags: Vec<u32>,
    /// Eligible amount of the lines no program-wide exclusion hits.
    eligible_open: i64,
    moment: Moment,
    /// The campaigns the order can reach ([`super::reach`]): the only ones visited.
    reach: Mask,
    /// What each campaign the candidate lists visited pays before caps (`None`: not worked
    /// out), by its rank in `reach`: an engine lists the capped candidates and then
    /// evaluates, and the evaluation takes it instead of matching again. The evaluation
    /// itself, the last visit, writes nothing down: writing down what is never read again
    /// halved the evaluation benchmark.
    matched: RefCell<Vec<Option<Option<Matched>>>>,
}

impl<'o> Prep<'o> {
    fn line_symbols(&self, i: usize) -> LineSymbols<'_> {
        let (category, sku, start, end) = self.symbols[i];
        LineSymbols {
            category,
            sku,
            tags: &self.tags[start..end],
        }
    }

    fn new(order: &'o Order, ctx: &EvalContext<'_>) -> Self {
        let nets: Vec<i64> = order.lines.iter().map(OrderLine::net_minor).collect();
        let mut redeemed = vec![0; nets.len()];
        if ctx.redeemed_minor != 0 {
            largest_remainder_into(ctx.redeemed_minor, &nets, &mut redeemed);
        }
        let lines: Vec<LineFacts<'o>> = order
            .lines
            .iter()
            .zip(nets.iter().zip(&redeemed))
            .map(|(l, (net, red))| LineFacts {
                net: *net,
                redeemed: *red,
                eligible: net - red,
                excluded: ctx.campaigns.exclusions.excludes(l),
            })
            .collect();
        let eligible_open = lines
            .iter()
            .filter(|l| l.excluded.is_none())
            .map(|l| l.eligible)
            .sum();
        let mut tags = Vec::new();
        let symbols = order
            .lines
            .iter()
            .map(|l| {
                let start = tags.len();
                let (category, sku) = ctx.campaigns.symbols.of_line(l, &mut tags);
                (category, sku, start, tags.len())
            })
            .collect::<Vec<_>>();
        let reach = ctx.campaigns.reach.reach(
            (order.channel, order.store_id.as_ref()),
            ctx.customer.segments,
            symbols.iter().map(|&(category, sku, _, _)| (category, sku)),
            &tags,
        );
        Prep {
            order,
            lines,
            symbols,
            tags,
            eligible_open,
            moment: Moment::new(ctx.at, ctx.zone),
            reach,
            matched: RefCell::new(Vec::new()),
        }
    }

    /// What campaign `index` (version `v`) pays the order before caps, if it matches
    /// ([`matched`]): taken from what the preparation remembers, else worked out, and
    /// remembered when `remember` says so (the candidate lists, which the evaluation
    /// follows).
    fn matched(
        &self,
        ctx: &EvalContext<'_>,
        index: usize,
        v: &CampaignVersion,
        remember: bool,
    ) -> Option<Matched> {
        debug_assert!(
            self.reach.contains(index),
            "only a reached campaign is visited"
        );
        let memo = &self.matched;
        let slot = self.reach.rank(index);
        if let Some(&Some(m)) = memo.borrow().get(slot) {
            return m;
        }
        let m = matched(self, ctx, index, v);
        if !remember {
            return m;
        }
        let mut memo = memo.borrow_mut();
        if memo.is_empty() {
            memo.resize(self.reach.len(), None);
        }
        memo[slot] = Some(m);
        m
    }
}

/// What a campaign that matches the order pays it before caps, which usage never changes.
#[derive(Debug, Clone, Copy)]
struct Matched {
    /// The customer's favourite category the reward is on (index into
    /// [`CustomerFacts::favourites`]).
    favourite: Option<usize>,
    eligible_minor: i64,
    rate: Option<BasisPoints>,
    tier_from: Option<i64>,
    uncapped_minor: i64,
}

/// Who a candidate is: the base rate or the campaign at this index of the set (sorted by id,
/// so a lower index is a lower id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Base,
    Campaign(usize),
}

/// A candidate that matched, with its amount after caps.
struct Assessed<'c> {
    who: Who,
    version: Option<&'c CampaignVersion>,
    mode: StackingMode,
    priority: i64,
    rate: Option<BasisPoints>,
    tier_from: Option<i64>,
    favourite: Option<&'c Category>,
    eligible_minor: i64,
    uncapped_minor: i64,
    amount_minor: i64,
    capped_by: Vec<CapKind>,
}

impl Assessed<'_> {
    fn index_key(&self) -> Reverse<usize> {
        match self.who {
            Who::Base => Reverse(usize::MAX),
            Who::Campaign(i) => Reverse(i),
        }
    }
}

/// Evaluates every active campaign and the base rate on `order`. See the module docs of
/// [`crate::campaign`] for stacking, caps and rounding.
pub fn evaluate(order: &Order, ctx: &EvalContext<'_>) -> Evaluation {
    evaluate_prepared(&Prep::new(order, ctx), ctx)
}

fn evaluate_prepared(prep: &Prep<'_>, ctx: &EvalContext<'_>) -> Evaluation {
    let (winners, held_out) = winners(prep, ctx);
    let mut evaluation = build(prep, ctx, &winners);
    for h in held_out.iter().filter(|h| h.uncapped_minor > 0) {
        note_held_out(prep, ctx, h, &mut evaluation);
    }
    evaluation
}

/// An order prepared once (its lines' amounts and names, its instant in the zone, the
/// campaigns it reaches, what each campaign visited pays before caps) for the calls an
/// engine makes on it in turn: the holdout and capped candidates, then the evaluation once
/// usage is read. Each call gives exactly what the free function of the same name gives; a
/// context that differs from the one it was prepared with in anything but usage and
/// holdouts is prepared again.
pub struct Prepared<'o> {
    prep: Prep<'o>,
    made_for: PreparedFor,
}

/// What a preparation depends on besides the order.
#[derive(Debug, Clone)]
struct PreparedFor {
    /// [`CampaignSet`]'s stamp: the same set (or a clone of it).
    campaigns: u64,
    at: DateTime<Utc>,
    zone: Tz,
    redeemed_minor: i64,
    /// The customer's segments (campaigns filed under a segment are reached through them).
    segments: Vec<Segment>,
    /// What matching reads besides: the rest of the customer's facts (but their holdouts,
    /// which only decide what a matched campaign is left out of), the partner and the base
    /// rate (a multiplier's rate).
    first_purchase: bool,
    birthday: Option<NaiveDate>,
    favourites: Vec<(u32, Category)>,
    partner: Option<PartnerId>,
    base_rate: BasisPoints,
}

impl PreparedFor {
    fn of(ctx: &EvalContext<'_>) -> Self {
        PreparedFor {
            campaigns: ctx.campaigns.stamp,
            at: ctx.at,
            zone: ctx.zone,
            redeemed_minor: ctx.redeemed_minor,
            segments: ctx.customer.segments.to_vec(),
            first_purchase: ctx.customer.first_purchase,
            birthday: ctx.customer.birthday,
            favourites: ctx.customer.favourites.to_vec(),
            partner: ctx.partner.cloned(),
            base_rate: ctx.settings.base_rate_bp,
        }
    }

    fn holds_for(&self, ctx: &EvalContext<'_>) -> bool {
        self.campaigns == ctx.campaigns.stamp
            && self.at == ctx.at
            && self.zone == ctx.zone
            && self.redeemed_minor == ctx.redeemed_minor
            && self.segments == ctx.customer.segments
            && self.first_purchase == ctx.customer.first_purchase
            && self.birthday == ctx.customer.birthday
            && self.favourites == ctx.customer.favourites
            && self.partner.as_ref() == ctx.partner
            && self.base_rate == ctx.settings.base_rate_bp
    }
}

/// Prepares `order` for [`Prepared`]'s calls with contexts like `ctx`.
pub fn prepare<'o>(order: &'o Order, ctx: &EvalContext<'_>) -> Prepared<'o> {
    Prepared {
        prep: Prep::new(order, ctx),
        made_for: PreparedFor::of(ctx),
    }
}

impl<'o> Prepared<'o> {
    fn with<T>(&self, ctx: &EvalContext<'_>, f: impl FnOnce(&Prep<'o>) -> T) -> T {
        if self.made_for.holds_for(ctx) {
            f(&self.prep)
        } else {
            f(&Prep::new(self.prep.order, ctx))
        }
    }

    /// [`evaluate`].
    pub fn evaluate(&self, ctx: &EvalContext<'_>) -> Evaluation {
        self.with(ctx, |prep| evaluate_prepared(prep, ctx))
    }

    /// [`capped_candidates`].
    pub fn capped_candidates(&self, ctx: &EvalContext<'_>) -> Vec<CappedCandidate> {
        if !ctx.campaigns.needs_usage() {
            return Vec::new();
        }
        self.with(ctx, |prep| {
            picked(prep, ctx, |v| v.rules.caps.needs_usage())
        })
    }

    /// [`holdout_candidates`].
    pub fn holdout_candidates(&self, ctx: &EvalContext<'_>) -> Vec<CampaignId> {
        if !ctx.campaigns.has_holdouts() {
            return Vec::new();
        }
        self.with(ctx, |prep| {
            ids(ctx, picked(prep, ctx, |v| v.rules.holdout.is_some()))
        })
    }
}

/// What evaluation and candidate lists give when every campaign is visited, not only the
/// ones the order reaches: the oracle the reach index is tested against.
#[cfg(test)]
pub(crate) mod visiting_every_campaign {
    use super::*;

    fn prep<'o>(order: &'o Order, ctx: &EvalContext<'_>) -> Prep<'o> {
        let mut prep = Prep::new(order, ctx);
        prep.reach = Mask::below(ctx.campaigns.versions.len());
        prep
    }

    pub fn evaluate(order: &Order, ctx: &EvalContext<'_>) -> Evaluation {
        evaluate_prepared(&prep(order, ctx), ctx)
    }

    pub fn capped_candidates(order: &Order, ctx: &EvalContext<'_>) -> Vec<CappedCandidate> {
        picked(&prep(order, ctx), ctx, |v| v.rules.caps.needs_usage())
    }

    pub fn holdout_candidates(order: &Order, ctx: &EvalContext<'_>) -> Vec<CappedCandidate> {
        picked(&prep(order, ctx), ctx, |v| v.rules.holdout.is_some())
    }
}

/// What an evaluation pays, without its explanations: the numbers of [`evaluate`] (the
/// same selection, caps and splits), for callers that need amounts alone, such as a
/// backtest replaying history. Builds no string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Amounts {
    pub total_minor: i64,
    /// Each line's cashback, in the order's line order.
    pub lines: Vec<i64>,
    /// What paid, as [`Evaluation::campaigns`] lists it.
    pub campaigns: Vec<AmountPaid>,
}

/// One entry of [`Amounts::campaigns`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountPaid {
    /// The index of the campaign in [`CampaignSet::versions`]; `None` for the base rate.
    pub campaign: Option<usize>,
    pub amount_minor: i64,
    pub capped_by: Vec<CapKind>,
}

/// [`evaluate`] without explanations: what it pays, per line and per campaign.
pub fn evaluate_amounts(order: &Order, ctx: &EvalContext<'_>) -> Amounts {
    let prep = Prep::new(order, ctx);
    // A campaign the customer is held out of pays nothing: only explanations mention it.
    let (winners, _) = winners(&prep, ctx);
    let n = order.lines.len();
    let mut lines = vec![0i64; n];
    let mut split = Split::new(n);
    let mut campaigns = Vec::with_capacity(winners.len());
    for w in winners {
        split.run(&prep, ctx, &w);
        for (i, line) in lines.iter_mut().enumerate() {
            if split.earning[i] {
                *line += split.parts[i];
            }
        }
        campaigns.push(AmountPaid {
            campaign: match w.who {
                Who::Base => None,
                Who::Campaign(c) => Some(c),
            },
            amount_minor: w.amount_minor,
            capped_by: w.capped_by,
        });
    }
    Amounts {
        total_minor: campaigns.iter().map(|c| c.amount_minor).sum(),
        lines,
        campaigns,
    }
}

/// The campaigns that pay on the order (with the base rate), as [`select`] picks them, and
/// the campaigns that matched but that the customer is held out of.
type Selection<'c> = (Vec<Assessed<'c>>, Vec<Assessed<'c>>);

fn winners<'c>(prep: &Prep<'_>, ctx: &EvalContext<'c>) -> Selection<'c> {
    let base = assess_base(prep, ctx.settings.base_rate_bp);
    let mut applied: Vec<Assessed<'_>> = Vec::new();
    let mut held_out: Vec<Assessed<'_>> = Vec::new();
    for i in prep.reach.iter() {
        let v = &ctx.campaigns.versions[i];
        if let Some(a) = assess(prep, ctx, i, v) {
            if ctx.customer.held_out.contains(&v.id) {
                held_out.push(a);
            } else if a.amount_minor > 0 {
                applied.push(a);
            }
        }
    }
    (select(base, applied), held_out)
}

/// Says on the outcomes and on the lines it would have paid on that a campaign was left out
/// because the customer is in its holdout.
fn note_held_out(
    prep: &Prep<'_>,
    ctx: &EvalContext<'_>,
    h: &Assessed<'_>,
    evaluation: &mut Evaluation,
) {
    let Who::Campaign(c) = h.who else { return };
    let label = label(h, ctx, ctx.settings.currency.as_str());
    let why = "not applied: the customer is in the campaign's holdout, a random share of its \
               customers kept out to measure its effect";
    for (i, line) in evaluation.breakdown.lines.iter_mut().enumerate() {
        if earns(prep, ctx, c, h.favourite, i) {
            say(&mut line.explanation, &label);
            line.explanation.push_str(": held out");
        }
    }
    let mut o = outcome(h, &label, &[], &[], ctx.settings.currency.as_str());
    o.explanation.push_str("; ");
    o.explanation.push_str(why);
    o.amount_minor = 0;
    o.capped_by.clear();
    o.held_out = true;
    evaluation.campaigns.push(o);
}

/// The campaigns with a holdout that `order` matches and that would pay it something before
/// caps: those whose arm the engine decides (and records) before evaluating, so that an
/// experiment's population is the customers its campaign reaches. Like matching, this never
/// depends on usage or on [`CustomerFacts::held_out`].
pub fn holdout_candidates(order: &Order, ctx: &EvalContext<'_>) -> Vec<CampaignId> {
    if !ctx.campaigns.has_holdouts() {
        return Vec::new();
    }
    prepare(order, ctx).holdout_candidates(ctx)
}

/// The ids of `candidates`.
fn ids(ctx: &EvalContext<'_>, candidates: Vec<CappedCandidate>) -> Vec<CampaignId> {
    let set = ctx.campaigns;
    candidates
        .into_iter()
        .map(|c| set.versions[c.index].id.clone())
        .collect()
}

/// A campaign with caps (per customer or a budget) that an order matches and that would pay
/// it something before caps: see [`capped_candidates`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CappedCandidate {
    /// Its index in [`CampaignSet::versions`].
    pub index: usize,
    /// What it would pay before any cap: no cap can let it pay more.
    pub uncapped_minor: i64,
}

/// The campaigns with caps or a budget that `order` matches and that would pay it something
/// before caps, by id, in one pass: the only campaigns whose usage an evaluation reads (a
/// capped campaign it does not list pays nothing whatever its usage, so it needs no usage
/// row) and, among them, every budget the evaluation can debit: the budgets an engine
/// locks (in this order, which is by id) before it evaluates the order for real. Matching
/// never depends on usage, and a spent budget never fills up again, so a budget the
/// evaluation debits is always listed. Like matching, this never depends on usage or on
/// [`CustomerFacts::held_out`].
pub fn capped_candidates(order: &Order, ctx: &EvalContext<'_>) -> Vec<CappedCandidate> {
    if !ctx.campaigns.needs_usage() {
        return Vec::new();
    }
    prepare(order, ctx).capped_candidates(ctx)
}

/// The campaigns passing `pick` that match `order` and pay it something before caps, with
/// that amount, in set order. Callers check first that the set has such campaigns (a flag
/// the set keeps), so an order prepares nothing for a set without them.
fn picked(
    prep: &Prep<'_>,
    ctx: &EvalContext<'_>,
    pick: impl Fn(&CampaignVersion) -> bool,
) -> Vec<CappedCandidate> {
    let set = ctx.campaigns;
    prep.reach
        .iter()
        .map(|index| (index, &set.versions[index]))
        .filter(|(_, v)| pick(v))
        .filter_map(|(index, v)| {
            // What it pays before caps is all a candidate needs: no cap is applied here.
            let m = prep.matched(ctx, index, v, true)?;
            (m.uncapped_minor > 0).then_some(CappedCandidate {
                index,
                uncapped_minor: m.uncapped_minor,
            })
        })
        .collect()
}

/// Which lines a winner pays on and its amount split over them by largest remainder on
/// their eligible amounts; the buffers are reused from winner to winner.
struct Split {
    earning: Vec<bool>,
    weights: Vec<i64>,
    parts: Vec<i64>,
}

impl Split {
    fn new(n: usize) -> Self {
        Split {
            earning: vec![false; n],
            weights: vec![0; n],
            parts: vec![0; n],
        }
    }

    fn run(&mut self, prep: &Prep<'_>, ctx: &EvalContext<'_>, w: &Assessed<'_>) {
        for i in 0..self.earning.len() {
            self.earning[i] = match w.who {
                Who::Base => prep.lines[i].excluded.is_none(),
                Who::Campaign(c) => earns(prep, ctx, c, w.favourite, i),
            };
            self.weights[i] = if self.earning[i] {
                prep.lines[i].eligible
            } else {
                0
            };
        }
        largest_remainder_into(w.amount_minor, &self.weights, &mut self.parts);
    }
}

fn assess_base(prep: &Prep<'_>, rate: BasisPoints) -> Assessed<'static> {
    let amount = rate_amount(prep.eligible_open, rate);
    Assessed {
        who: Who::Base,
        version: None,
        mode: StackingMode::BestOf,
        priority: BASE_PRIORITY,
        rate: Some(rate),
        tier_from: None,
        favourite: None,
        eligible_minor: prep.eligible_open,
        uncapped_minor: amount,
        amount_minor: amount,
        capped_by: Vec::new(),
    }
}

/// `eligible × rate`, rounded half-even once: every line of a campaign has the same rate, so
/// the sum of the lines' exact amounts is the exact amount of their sum.
fn rate_amount(eligible_minor: i64, rate: BasisPoints) -> i64 {
    round_half_even(i128::from(eligible_minor) * i128::from(rate.0), 10_000) as i64
}

/// What campaign `index` (version `v`) pays the order before caps, if it matches.
fn matched(
    prep: &Prep<'_>,
    ctx: &EvalContext<'_>,
    index: usize,
    v: &CampaignVersion,
) -> Option<Matched> {
    let r = &v.rules;
    if !order_matches(v, prep, ctx) {
        return None;
    }
    let favourite = match r.reward {
        Reward::FavouriteCategory { lookback_days, .. } => Some(
            ctx.customer
                .favourites
                .iter()
                .position(|(d, _)| *d == lookback_days)?,
        ),
        _ => None,
    };
    let category = favourite.map(|i| &ctx.customer.favourites[i].1);
    let eligible = campaign_eligible(prep, ctx, index, category);
    if eligible < r.conditions.min_eligible_order_minor {
        return None;
    }
    let (rate, tier_from) = match &r.reward {
        Reward::Percent(rate) => (Some(*rate), None),
        Reward::Fixed { .. } => (None, None),
        Reward::Tiered(tiers) => {
            let tier = tiers.iter().rev().find(|t| eligible >= t.from_minor)?;
            (Some(tier.rate_bp), Some(tier.from_minor))
        }
        Reward::Multiplier { factor_percent } => (
            Some(Reward::multiplied(
                ctx.settings.base_rate_bp,
                *factor_percent,
            )),
            None,
        ),
        Reward::FavouriteCategory { rate_bp, .. } => (Some(*rate_bp), None),
    };
    let uncapped = match (&r.reward, rate) {
        (Reward::Fixed { amount_minor }, _) => *amount_minor,
        (_, Some(rate)) => rate_amount(eligible, rate),
        (_, None) => unreachable!("every reward but fixed has a rate"),
    };
    Some(Matched {
        favourite,
        eligible_minor: eligible,
        rate,
        tier_from,
        uncapped_minor: uncapped,
    })
}

/// What campaign `index` (version `v`) pays the order after its caps, if it matches.
fn assess<'c>(
    prep: &Prep<'_>,
    ctx: &EvalContext<'c>,
    index: usize,
    v: &'c CampaignVersion,
) -> Option<Assessed<'c>> {
    // The evaluation is the engine's last visit: it remembers nothing.
    let m = prep.matched(ctx, index, v, false)?;
    let r = &v.rules;
    let mut capped_by = Vec::new();
    let mut amount = m.uncapped_minor;
    if matches!(r.reward, Reward::Fixed { .. }) {
        clip(
            &mut amount,
            m.eligible_minor,
            CapKind::EligibleAmount,
            &mut capped_by,
        );
    }
    apply_caps(
        &r.caps,
        usage_of(ctx, index, v),
        &mut amount,
        &mut capped_by,
    );
    Some(Assessed {
        who: Who::Campaign(index),
        version: Some(v),
        mode: r.stacking.mode,
        priority: i64::from(r.stacking.priority),
        rate: m.rate,
        tier_from: m.tier_from,
        favourite: m.favourite.map(|i| &ctx.customer.favourites[i].1),
        eligible_minor: m.eligible_minor,
        uncapped_minor: m.uncapped_minor,
        amount_minor: amount,
        capped_by,
    })
}

fn usage_of<'a>(
    ctx: &EvalContext<'a>,
    index: usize,
    v: &CampaignVersion,
) -> Option<&'a CampaignUsage> {
    if !v.rules.caps.needs_usage() {
        return None;
    }
    // Engines give one row per such campaign in set order: one comparison. Any other
    // layout is searched.
    let ranked = ctx.campaigns.usage_rank[index];
    match ctx.usage.get(ranked).filter(|u| u.campaign_id == v.id) {
        Some(u) => Some(u),
        None => ctx.usage.iter().find(|u| u.campaign_id == v.id),
    }
}

fn order_matches(v: &CampaignVersion, prep: &Prep<'_>, ctx: &EvalContext<'_>) -> bool {
    let r = &v.rules;
    let moment = match r.window.zone {
        Some(z) if z != ctx.zone => Moment::new(ctx.at, z),
        _ => prep.moment,
    };
    if !r
        .window
        .contains(moment.date, moment.weekday, moment.second)
    {
        return false;
    }
    let k = &r.conditions;
    let order = prep.order;
    if k.channels != 0 && k.channels & channel_bit(order.channel) == 0 {
        return false;
    }
    if !k.stores.is_empty()
        && !order
            .store_id
            .as_ref()
            .is_some_and(|s| k.stores.contains(s))
    {
        return false;
    }
    if k.first_purchase_only && !ctx.customer.first_purchase {
        return false;
    }
    if let Some(b) = k.birthday {
        let Some(birthday) = ctx.customer.birthday else {
            return false;
        };
        let ok = match b {
            Birthday::Month => birthday.month() == moment.date.month(),
            Birthday::WithinDays(n) => days_from_birthday(birthday, moment.date) <= n,
        };
        if !ok {
            return false;
        }
    }
    if !k.segments.is_empty() && !ctx.customer.segments.iter().any(|s| k.segments.contains(s)) {
        return false;
    }
    if !k.partners.is_empty() && !ctx.partner.is_some_and(|p| k.partners.contains(p)) {
        return false;
    }
    true
}

/// Whether line `i` earns from campaign `c` (index into the set): not excluded
/// program-wide, targeted by the campaign's line filter, not excluded by the campaign, and
/// in the favourite category when the reward asks for it.
fn earns(
    prep: &Prep<'_>,
    ctx: &EvalContext<'_>,
    c: usize,
    favourite: Option<&Category>,
    i: usize,
) -> bool {
    prep.lines[i].excluded.is_none()
        && ctx.campaigns.compiled[c].earns(prep.line_symbols(i))
        && favourite.is_none_or(|f| *f == prep.order.lines[i].category)
}

fn campaign_eligible(
    prep: &Prep<'_>,
    ctx: &EvalContext<'_>,
    c: usize,
    favourite: Option<&Category>,
) -> i64 {
    if ctx.campaigns.compiled[c].open && favourite.is_none() {
        return prep.eligible_open;
    }
    (0..prep.lines.len())
        .filter(|&i| earns(prep, ctx, c, favourite, i))
        .map(|i| prep.lines[i].eligible)
        .sum()
}

fn clip(amount: &mut i64, limit: i64, kind: CapKind, capped_by: &mut Vec<CapKind>) {
    let limit = limit.max(0);
    if *amount > limit {
        *amount = limit;
        capped_by.push(kind);
    }
}

/// Caps in their documented order: per order, then the customer's day, week, month and
/// campaign totals, then the budget. Each clips what is left after the previous one.
fn apply_caps(
    caps: &Caps,
    usage: Option<&CampaignUsage>,
    amount: &mut i64,
    capped_by: &mut Vec<CapKind>,
) {
    if let Some(cap) = caps.per_order_minor {
        clip(amount, cap, CapKind::PerOrder, capped_by);
    }
    // Without usage a cap counts as used up (see `CampaignUsage`).
    let periodic = [
        (
            caps.per_customer_day_minor,
            usage.map(|u| u.customer_day_minor),
            CapKind::CustomerDay,
        ),
        (
            caps.per_customer_week_minor,
            usage.map(|u| u.customer_week_minor),
            CapKind::CustomerWeek,
        ),
        (
            caps.per_customer_month_minor,
            usage.map(|u| u.customer_month_minor),
            CapKind::CustomerMonth,
        ),
        (
            caps.per_customer_campaign_minor,
            usage.map(|u| u.customer_campaign_minor),
            CapKind::CustomerCampaign,
        ),
        (
            caps.budget_minor,
            usage.map(|u| u.budget_spent_minor),
            CapKind::Budget,
        ),
    ];
    for (cap, used, kind) in periodic {
        if let Some(cap) = cap {
            clip(amount, cap - used.unwrap_or(cap), kind, capped_by);
        }
    }
}

/// Picks what pays: the highest-priority exclusive campaign alone if any applies; otherwise
/// the best of the best-of group (the base rate included) plus every stackable campaign,
/// stackables listed by priority (highest first), then id.
fn select<'c>(base: Assessed<'c>, mut applied: Vec<Assessed<'c>>) -> Vec<Assessed<'c>> {
    let exclusive = applied
        .iter()
        .enumerate()
        .filter(|(_, a)| a.mode == StackingMode::Exclusive)
        .max_by(|(_, a), (_, b)| {
            a.priority
                .cmp(&b.priority)
                .then(a.amount_minor.cmp(&b.amount_minor))
                .then(a.index_key().cmp(&b.index_key()))
        })
        .map(|(i, _)| i);
    if let Some(i) = exclusive {
        return vec![applied.swap_remove(i)];
    }
    let best_of = applied
        .iter()
        .enumerate()
        .filter(|(_, a)| a.mode == StackingMode::BestOf)
        .max_by(|(_, a), (_, b)| best_of_order(a, b))
        .map(|(i, _)| i);
    let best = match best_of {
        Some(i) if best_of_order(&applied[i], &base) == Ordering::Greater => applied.swap_remove(i),
        _ => base,
    };
    applied.retain(|a| a.mode == StackingMode::Stackable);
    applied.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(b.index_key().cmp(&a.index_key()))
    });
    applied.insert(0, best);
    applied
}

fn best_of_order(a: &Assessed<'_>, b: &Assessed<'_>) -> Ordering {
    a.amount_minor
        .cmp(&b.amount_minor)
        .then(a.priority.cmp(&b.priority))
        .then(a.index_key().cmp(&b.index_key()))
}

fn build(prep: &Prep<'_>, ctx: &EvalContext<'_>, winners: &[Assessed<'_>]) -> Evaluation {
    let currency = ctx.settings.currency.as_str();
    let n = prep.order.lines.len();
    let mut lines: Vec<LineCashback> = prep
        .order
        .lines
        .iter()
        .zip(&prep.lines)
        .map(|(l, f)| LineCashback {
            line_id: l.line_id.clone(),
            net_minor: f.net,
            redeemed_minor: f.redeemed,
            eligible_minor: f.eligible,
            cashback_minor: 0,
            explanation: String::with_capacity(64 * winners.len()),
            rules: Vec::with_capacity(winners.len()),
        })
        .collect();
    let mut outcomes = Vec::with_capacity(winners.len());
    let mut split = Split::new(n);
    for w in winners {
        split.run(prep, ctx, w);
        let (earning, parts) = (&split.earning, &split.parts);
        let label = label(w, ctx, currency);
        let caps = cap_notes(w, currency);
        let mut excluded: Vec<String> = Vec::new();
        for (i, line) in lines.iter_mut().enumerate() {
            if earning[i] {
                line.cashback_minor += parts[i];
                line.rules.push(rule(w, parts[i], prep.lines[i].eligible));
                line_piece(
                    &mut line.explanation,
                    &label,
                    &caps,
                    &prep.lines[i],
                    currency,
                );
            } else if let Some(why) = exclusion(prep, w, i) {
                let why = why.to_string();
                if w.version.is_some() {
                    say(&mut line.explanation, &label);
                    line.explanation.push_str(": ");
                    line.explanation.push_str(&why);
                }
                if !excluded.contains(&why) {
                    excluded.push(why);
                }
            }
        }
        outcomes.push(outcome(w, &label, &excluded, &caps, currency));
    }
    for (f, line) in prep.lines.iter().zip(&mut lines) {
        if line.rules.is_empty() {
            let why = match f.excluded {
                Some(x) => format!("no cashback: {x}"),
                None if line.explanation.is_empty() => "no cashback".to_string(),
                None => format!("no cashback; {}", line.explanation),
            };
            line.explanation = why;
        }
    }
    let total_minor = outcomes.iter().map(|o| o.amount_minor).sum();
    Evaluation {
        breakdown: Breakdown { lines, total_minor },
        campaigns: outcomes,
    }
}

fn say(explanation: &mut String, piece: &str) {
    if !explanation.is_empty() {
        explanation.push_str("; ");
    }
    explanation.push_str(piece);
}

/// Why a winner paid nothing on a line it would otherwise target: a program-wide exclusion,
/// or the campaign's own. Lines the campaign simply does not target say nothing about it.
fn exclusion<'o>(prep: &Prep<'o>, w: &Assessed<'_>, i: usize) -> Option<Excluded<'o>> {
    let line = &prep.order.lines[i];
    if let Some(v) = w.version {
        if !v.rules.conditions.lines.targets(line) {
            return None;
        }
    }
    prep.lines[i].excluded.or_else(|| {
        w.version
            .and_then(|v| v.rules.conditions.exclude.excludes(line))
    })
}

fn rule(w: &Assessed<'_>, part: i64, eligible: i64) -> RuleApplied {
    match w.version {
        None => RuleApplied {
            rule: BASE_RATE_ID.into(),
            rate_bp: w.rate.unwrap_or(BasisPoints(0)),
            on_minor: eligible,
            version: None,
            amount_minor: None,
            capped_by: Vec::new(),
            funding: None,
        },
        Some(v) => RuleApplied {
            rule: v.id.as_str().into(),
            rate_bp: w.rate.unwrap_or(BasisPoints(0)),
            on_minor: eligible,
            version: Some(v.version),
            amount_minor: Some(part),
            capped_by: w.capped_by.clone(),
            funding: Some(v.rules.funding.clone()),
        },
    }
}

/// "base rate 5 %", "Black Friday 10 % (v3)", "Big basket 10 % (v2, tier from R$ 200,00)",
/// "Double 2× base rate = 10 % (v1)", "Welcome R$ 10,00 per order (v1)".
fn label<'c>(w: &Assessed<'_>, ctx: &EvalContext<'c>, currency: &str) -> Cow<'c, str> {
    let Some(v) = w.version else {
        return format!("base rate {}", ctx.settings.base_rate_bp).into();
    };
    if let Who::Campaign(c) = w.who {
        if let Some(made) = &ctx.campaigns.labels[c] {
            return made.as_str().into();
        }
    }
    let name = &v.rules.name;
    let n = v.version;
    let rate = w.rate.unwrap_or(BasisPoints(0));
    let label = match &v.rules.reward {
        Reward::Percent(_) => percent_label(v, rate),
        Reward::Fixed { amount_minor } => {
            format!(
                "{name} {} per order (v{n})",
                format_minor(currency, *amount_minor)
            )
        }
        Reward::Tiered(_) => format!(
            "{name} {rate} (v{n}, tier from {})",
            format_minor(currency, w.tier_from.unwrap_or(0))
        ),
        Reward::Multiplier { factor_percent } => {
            format!(
                "{name} {} base rate = {rate} (v{n})",
                factor(*factor_percent)
            )
        }
        Reward::FavouriteCategory { .. } => format!(
            "{name} {rate} (v{n}, favourite category {})",
            w.favourite.map(Category::as_str).unwrap_or("")
        ),
    };
    label.into()
}

/// 200 → "2×", 150 → "1,5×", 125 → "1,25×".
fn factor(percent: u32) -> String {
    let (whole, frac) = (percent / 100, percent % 100);
    match frac {
        0 => format!("{whole}×"),
        f if f % 10 == 0 => format!("{whole},{}×", f / 10),
        f => format!("{whole},{f:02}×"),
    }
}

fn cap_notes(w: &Assessed<'_>, currency: &str) -> Vec<String> {
    let Some(v) = w.version else {
        return Vec::new();
    };
    let caps = &v.rules.caps;
    let m = |x: Option<i64>| format_minor(currency, x.unwrap_or(0));
    w.capped_by
        .iter()
        .map(|k| match k {
            CapKind::EligibleAmount => "capped at the eligible amount".to_string(),
            CapKind::PerOrder => format!("capped at {} per order", m(caps.per_order_minor)),
            CapKind::CustomerDay => format!(
                "capped at {} per customer per day",
                m(caps.per_customer_day_minor)
            ),
            CapKind::CustomerWeek => format!(
                "capped at {} per customer per week",
                m(caps.per_customer_week_minor)
            ),
            CapKind::CustomerMonth => format!(
                "capped at {} per customer per month",
                m(caps.per_customer_month_minor)
            ),
            CapKind::CustomerCampaign => format!(
                "capped at {} per customer for the campaign",
                m(caps.per_customer_campaign_minor)
            ),
            CapKind::Budget => format!(
                "limited by what is left of the campaign budget of {}",
                m(caps.budget_minor)
            ),
        })
        .collect()
}

/// Appends "{label} on R$ 46,00 (R$ 50,00 less R$ 4,00 paid with cashback), capped at…".
fn line_piece(out: &mut String, label: &str, caps: &[String], f: &LineFacts<'_>, currency: &str) {
    say(out, label);
    out.push_str(" on ");
    push_minor(out, currency, f.eligible);
    if f.redeemed > 0 {
        out.push_str(" (");
        push_minor(out, currency, f.net);
        out.push_str(" less ");
        push_minor(out, currency, f.redeemed);
        out.push_str(" paid with cashback)");
    }
    for c in caps {
        out.push_str(", ");
        out.push_str(c);
    }
}

fn outcome(
    w: &Assessed<'_>,
    label: &str,
    excluded: &[String],
    caps: &[String],
    currency: &str,
) -> CampaignOutcome {
    let mut explanation = String::with_capacity(label.len() + 32);
    explanation.push_str(label);
    explanation.push_str(" on ");
    push_minor(&mut explanation, currency, w.eligible_minor);
    explanation.push_str(" eligible");
    for note in excluded.iter().chain(caps) {
        explanation.push_str("; ");
        explanation.push_str(note);
    }
    let (campaign_id, version, funding) = match w.version {
        None => (
            CampaignId::parse(BASE_RATE_ID).expect("a valid id"),
            0,
            Funding::Retailer,
        ),
        Some(v) => (v.id.clone(), v.version, v.rules.funding.clone()),
    };
    CampaignOutcome {
        campaign_id,
        version,
        rate_bp: w.rate,
        eligible_minor: w.eligible_minor,
        uncapped_minor: w.uncapped_minor,
        amount_minor: w.amount_minor,
        capped_by: w.capped_by.clone(),
        funding,
        explanation,
        held_out: false,
    }
}
