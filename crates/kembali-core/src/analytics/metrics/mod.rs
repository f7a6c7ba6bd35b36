//! The program's metrics (issue 5), computed from plain fact rows that a store reads: one
//! compact row per order, per redemption part, per expiry, per customer. This module decides
//! what every number means; the definitions a finance team reproduces them from are
//! [`SUMMARY_DEFINITIONS`], [`RETENTION_DEFINITIONS`], [`LTV_DEFINITIONS`] and
//! [`EXPERIMENT_DEFINITIONS`], the same text the API's OpenAPI document carries.
//!
//! Pure: the facts, the report's end instant and the time zone come in as arguments.
//! Money is summed in `i64` minor units (the limits keep every order under 10¹² minor
//! units, so a sum over 10⁶ orders stays far below 2⁶³); ratios and statistics are `f64`.
//! Calendar dates (periods, cohort months) are local dates in the program's time zone.

mod cohorts;
mod experiments;
mod summary;
#[cfg(test)]
mod tests;

pub use cohorts::{
    calibration_summaries, lifetime_value, retention, CalibrationError, CohortLtv, CohortRetention,
    HistoricalValue, LtvReport, ModelFit, Prediction, RetentionReport, HORIZON_DAYS,
    MAX_COHORT_MONTHS,
};
pub use experiments::{
    campaign_cost_minor, experiment_report, Assignment, Comparison, ExperimentReport, Roi,
    SampleRatio, RETENTION_WINDOW_DAYS,
};
pub use summary::{
    summary, BuyAgain, CostMetrics, GroupStats, Omnichannel, Summary, UsersVsNonUsers,
    BUY_AGAIN_DAYS, RETENTION_6M_DAYS,
};

use crate::ids::{CampaignId, Channel, CustomerId, IdError, Segment, StoreId};
use crate::money::BasisPoints;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use compact_str::CompactString;
use serde::Serialize;
use std::collections::HashMap;

/// The summary's definitions (markdown), shown in rustdoc and in the OpenAPI document.
pub const SUMMARY_DEFINITIONS: &str = include_str!("summary.md");
/// The retention table's definitions (markdown).
pub const RETENTION_DEFINITIONS: &str = include_str!("retention.md");
/// The lifetime-value report's definitions (markdown).
pub const LTV_DEFINITIONS: &str = include_str!("ltv.md");
/// The experiment report's definitions (markdown).
pub const EXPERIMENT_DEFINITIONS: &str = include_str!("experiment.md");

/// The longest period a report covers: ten years of days. It bounds the retention table
/// (at most 120 × 120 cells) and keeps every date computation far from chrono's limits.
pub const MAX_PERIOD_DAYS: i64 = 3_660;

/// A customer's position in [`Facts::customers`].
pub type CustomerIx = u32;
/// A store's position in [`Facts::stores`].
pub type StoreIx = u32;

/// A customer as the metrics see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerFact {
    pub id: CustomerId,
    /// Current segments (a segment filter selects on these).
    pub segments: Vec<Segment>,
    /// pending + available + held at the report's end (the outstanding liability).
    pub liability_minor: i64,
}

/// One order, compactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderFact {
    pub customer: CustomerIx,
    pub channel: Channel,
    pub store: Option<StoreIx>,
    pub placed_at: DateTime<Utc>,
    /// Σ line net amounts (after discounts), including the part paid with cashback.
    pub total_minor: i64,
    /// Value of the returned units (Σ per line net × returned qty / qty, half to even).
    pub returned_minor: i64,
    /// Cashback the order earned.
    pub cashback_minor: i64,
    /// Cashback returns took back from it (from the lot, as debt, or forfeited).
    pub clawed_back_minor: i64,
    /// The lot the order's cashback went to (none when it earned nothing): what campaigns
    /// paid on the order is read by lot ([`Facts::campaign_paid`]).
    pub lot_id: Option<i64>,
}

impl OrderFact {
    /// total − returned.
    pub fn net_minor(&self) -> i64 {
        self.total_minor - self.returned_minor
    }
}

/// The value of a line's returned units: net × returned qty / qty, rounded half to even
/// (exactly the net when every unit came back), as returns compute the clawback. Stores
/// that sum it in SQL must round the same way.
pub fn returned_value_minor(net_minor: i64, quantity: i64, returned_qty: i64) -> i64 {
    if returned_qty <= 0 || quantity <= 0 {
        return 0;
    }
    crate::lots::proportional_share(net_minor, quantity, 0, returned_qty.min(quantity), 0)
}

/// The part of a captured redemption paid by one lot: where it was spent, where the lot's
/// cashback was earned, and how much (captured − restored by returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedemptionPart {
    pub customer: CustomerIx,
    /// The channel the cashback was spent on.
    pub channel: Channel,
    pub store: Option<StoreIx>,
    pub at: DateTime<Utc>,
    /// The channel of the order that earned the lot; `None` for a lot without an order.
    pub earned_on: Option<Channel>,
    pub amount_minor: i64,
}

/// Cashback that expired unused (breakage), from the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryFact {
    pub customer: CustomerIx,
    pub at: DateTime<Utc>,
    pub amount_minor: i64,
}

/// Everything the metrics read, with customer and store ids interned to small indices so
/// that a million orders stay a few dozen megabytes. Stores fill it row by row.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub customers: Vec<CustomerFact>,
    pub stores: Vec<StoreId>,
    pub orders: Vec<OrderFact>,
    pub redemptions: Vec<RedemptionPart>,
    pub expiries: Vec<ExpiryFact>,
    customer_ix: HashMap<CompactString, CustomerIx, BuildFx>,
    store_ix: HashMap<CompactString, StoreIx, BuildFx>,
    /// The channel of the order that earned each lot, by lot id (ids are small and dense:
    /// stores number lots from 1), for stores that resolve redemption parts themselves.
    lot_channel: Vec<Option<Channel>>,
    /// What the campaigns a report names paid, by lot id: read only when a report asks
    /// (a campaign filter or a campaign's experiment).
    campaign_lots: HashMap<CampaignId, HashMap<i64, i64>>,
}

/// The hasher of the id maps: foldhash with a fixed seed (the core draws no randomness),
/// several times faster than SipHash on short ids. The keys come from the program's own
/// database, so SipHash's protection against chosen-key flooding buys nothing here. Keys are
/// `CompactString`s: an id up to 24 bytes lives in the map's own slot, so a lookup (a
/// million per report) does not chase a pointer to compare.
type BuildFx = foldhash::fast::FixedState;

/// Lot ids above this are not kept in [`Facts`]' dense table (they would waste memory);
/// no store numbers lots that high before a billion orders.
const MAX_DENSE_LOT_ID: i64 = 1 << 30;

impl Facts {
    /// The index of a customer, adding them (no segments, no liability) if new.
    pub fn customer(&mut self, id: &str) -> Result<CustomerIx, IdError> {
        if let Some(&ix) = self.customer_ix.get(id) {
            return Ok(ix);
        }
        let ix = self.customers.len() as CustomerIx;
        self.customers.push(CustomerFact {
            id: CustomerId::parse(id)?,
            segments: Vec::new(),
            liability_minor: 0,
        });
        self.customer_ix.insert(CompactString::new(id), ix);
        Ok(ix)
    }

    /// The index of a store, adding it if new.
    pub fn store(&mut self, id: &str) -> Result<StoreIx, IdError> {
        if let Some(&ix) = self.store_ix.get(id) {
            return Ok(ix);
        }
        let ix = self.stores.len() as StoreIx;
        self.stores.push(StoreId::parse(id)?);
        self.store_ix.insert(CompactString::new(id), ix);
        Ok(ix)
    }

    /// The indices of a fact row's customer and store (if any), adding them if new.
    pub fn customer_at(
        &mut self,
        customer: &str,
        store: Option<&str>,
    ) -> Result<(CustomerIx, Option<StoreIx>), IdError> {
        let store = store.map(|s| self.store(s)).transpose()?;
        Ok((self.customer(customer)?, store))
    }

    /// Remembers that lot `lot_id` was earned on `channel` (its order's channel).
    pub fn earned_lot(&mut self, lot_id: i64, channel: Channel) {
        if (0..MAX_DENSE_LOT_ID).contains(&lot_id) {
            let ix = lot_id as usize;
            if self.lot_channel.len() <= ix {
                self.lot_channel.resize(ix + 1, None);
            }
            self.lot_channel[ix] = Some(channel);
        }
    }

    /// The channel lot `lot_id` was earned on, as [`Facts::earned_lot`] recorded it.
    pub fn lot_channel(&self, lot_id: i64) -> Option<Channel> {
        usize::try_from(lot_id)
            .ok()
            .and_then(|ix| self.lot_channel.get(ix).copied().flatten())
    }

    /// Records that `campaign` paid `amount_minor` into lot `lot_id` (its order's cashback).
    pub fn campaign_paid(&mut self, campaign: &CampaignId, lot_id: i64, amount_minor: i64) {
        *self
            .campaign_lots
            .entry(campaign.clone())
            .or_default()
            .entry(lot_id)
            .or_insert(0) += amount_minor;
    }

    /// Marks `campaign` as read, even when it paid on no lot.
    pub fn campaign_read(&mut self, campaign: &CampaignId) {
        self.campaign_lots.entry(campaign.clone()).or_default();
    }

    /// Per order (same index as [`Facts::orders`]), what `campaign` paid on it; 0 where it
    /// paid nothing (or was never read).
    pub fn paid_by(&self, campaign: &CampaignId) -> Vec<i64> {
        let lots = self.campaign_lots.get(campaign);
        self.orders
            .iter()
            .map(|o| match (lots, o.lot_id) {
                (Some(lots), Some(lot)) => lots.get(&lot).copied().unwrap_or(0),
                _ => 0,
            })
            .collect()
    }

    /// The index of a customer already present.
    pub fn find_customer(&self, id: &str) -> Option<CustomerIx> {
        self.customer_ix.get(id).copied()
    }
}

/// What a report covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// First local date of the period (default: the first order's date).
    pub from: Option<NaiveDate>,
    /// Last local date of the period, inclusive (default: the report's date).
    pub to: Option<NaiveDate>,
    pub channel: Option<Channel>,
    pub store: Option<StoreId>,
    pub segment: Option<Segment>,
    /// Orders on which this campaign paid cashback, and the customers with such an order
    /// (see the summary's definitions). The caller reads what it paid into the facts
    /// ([`Facts::campaign_paid`]) first.
    pub campaign: Option<CampaignId>,
}

/// A filter that cannot describe a period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("`from` ({from}) is after `to` ({to})")]
    FromAfterTo { from: NaiveDate, to: NaiveDate },
    #[error("the period is longer than {MAX_PERIOD_DAYS} days")]
    PeriodTooLong,
}

/// Where and when a report runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportContext {
    pub zone: Tz,
    /// The moment the report runs: nothing later is counted.
    pub as_of: DateTime<Utc>,
    pub gross_margin: BasisPoints,
}

/// The resolved period of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The earlier of the local midnight after `to` and the moment the report ran (facts
    /// at that moment are in, facts at that midnight are of the next day).
    pub end: DateTime<Utc>,
}

/// A number that the data may not be able to give, with the reason when it cannot.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Measurable<T> {
    Measured(T),
    NotMeasurable { reason: String },
}

impl<T> Measurable<T> {
    pub fn not(reason: impl Into<String>) -> Self {
        Measurable::NotMeasurable {
            reason: reason.into(),
        }
    }

    pub fn measured(&self) -> Option<&T> {
        match self {
            Measurable::Measured(v) => Some(v),
            Measurable::NotMeasurable { .. } => None,
        }
    }
}

/// The instant the local date `day` starts in `zone`. A midnight that a daylight-saving
/// jump skips starts at the first local time that exists after it.
pub fn local_midnight(zone: Tz, day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
    (0..=4)
        .find_map(|h| {
            zone.from_local_datetime(&(midnight + Duration::hours(h)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

/// The local date of an instant.
pub fn local_date(zone: Tz, at: DateTime<Utc>) -> NaiveDate {
    zone.from_utc_datetime(&at.naive_utc()).date_naive()
}

/// Months since year 0, to count months between dates.
fn month_number(d: NaiveDate) -> i32 {
    d.year() * 12 + d.month0() as i32
}

/// "2026-03" for a month number.
fn month_label(month: i32) -> String {
    format!(
        "{:04}-{:02}",
        month.div_euclid(12),
        month.rem_euclid(12) + 1
    )
}

/// The report's end instant for a filter: the earlier of local midnight after `to` (or the
/// report's own date) and the moment the report runs.
pub fn report_end(filter: &Filter, ctx: &ReportContext) -> DateTime<Utc> {
    let today = local_date(ctx.zone, ctx.as_of);
    let to = filter.to.unwrap_or(today);
    let after = to.succ_opt().unwrap_or(to);
    local_midnight(ctx.zone, after).min(ctx.as_of)
}

/// The first instant a report leaves out: local midnight after `to` (that instant belongs
/// to the next day), or, when the report runs before then, the microsecond after it runs
/// (what happened at the very moment it runs is in). The liability is read at this instant.
pub fn report_cutoff(filter: &Filter, ctx: &ReportContext) -> DateTime<Utc> {
    let end = report_end(filter, ctx);
    if end == ctx.as_of {
        end + Duration::microseconds(1)
    } else {
        end
    }
}

/// Checks a filter on its own (before any data is read).
pub fn check_filter(filter: &Filter) -> Result<(), FilterError> {
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if from > to {
            return Err(FilterError::FromAfterTo { from, to });
        }
        if (to - from).num_days() >= MAX_PERIOD_DAYS {
            return Err(FilterError::PeriodTooLong);
        }
    }
    Ok(())
}

enum StoreMatch {
    Any,
    Only(StoreIx),
    /// The filter names a store no order has.
    Nothing,
}

/// A filter resolved against the facts: the period, and what matches.
struct Scope<'f> {
    facts: &'f Facts,
    period: Period,
    /// [`report_cutoff`]: facts at or after it are left out.
    cutoff: DateTime<Utc>,
    zone: Tz,
    channel: Option<Channel>,
    store: StoreMatch,
    /// Per customer: in the segment (all true without a segment filter).
    in_segment: Vec<bool>,
    /// Per order: its local date.
    order_day: Vec<NaiveDate>,
    /// With a campaign filter, per order: what the campaign paid on it.
    campaign_paid: Option<Vec<i64>>,
}

impl<'f> Scope<'f> {
    fn new(facts: &'f Facts, filter: &Filter, ctx: &ReportContext) -> Result<Self, FilterError> {
        check_filter(filter)?;
        let zone = ctx.zone;
        let order_day: Vec<NaiveDate> = facts
            .orders
            .iter()
            .map(|o| local_date(zone, o.placed_at))
            .collect();
        let end = report_end(filter, ctx);
        let to = filter.to.unwrap_or_else(|| local_date(zone, ctx.as_of));
        let earliest = to - Duration::days(MAX_PERIOD_DAYS - 1);
        let from = filter.from.unwrap_or_else(|| {
            order_day
                .iter()
                .min()
                .copied()
                .unwrap_or(to)
                .clamp(earliest, to)
        });
        if from > to {
            return Err(FilterError::FromAfterTo { from, to });
        }
        let store = match &filter.store {
            None => StoreMatch::Any,
            Some(s) => match facts.store_ix.get(s.as_str()) {
                Some(&ix) => StoreMatch::Only(ix),
                None => StoreMatch::Nothing,
            },
        };
        let cutoff = report_cutoff(filter, ctx);
        let mut in_segment: Vec<bool> = facts
            .customers
            .iter()
            .map(|c| {
                filter
                    .segment
                    .as_ref()
                    .is_none_or(|s| c.segments.contains(s))
            })
            .collect();
        let campaign_paid = filter.campaign.as_ref().map(|c| facts.paid_by(c));
        if let Some(paid) = &campaign_paid {
            // A customer is the campaign's when it paid on an order of theirs by the end.
            let mut reached = vec![false; facts.customers.len()];
            for (o, p) in facts.orders.iter().zip(paid) {
                if *p > 0 && o.placed_at < cutoff {
                    reached[o.customer as usize] = true;
                }
            }
            for (keep, r) in in_segment.iter_mut().zip(reached) {
                *keep &= r;
            }
        }
        Ok(Scope {
            facts,
            period: Period { from, to, end },
            cutoff,
            zone,
            channel: filter.channel,
            store,
            in_segment,
            order_day,
            campaign_paid,
        })
    }

    fn in_period(&self, day: NaiveDate) -> bool {
        self.period.from <= day && day <= self.period.to
    }

    fn place_matches(&self, channel: Channel, store: Option<StoreIx>) -> bool {
        self.channel.is_none_or(|c| c == channel)
            && match self.store {
                StoreMatch::Any => true,
                StoreMatch::Only(ix) => store == Some(ix),
                StoreMatch::Nothing => false,
            }
    }

    /// The order matches channel, store and segment, and was placed by the end (any date).
    fn order_matches(&self, i: usize) -> bool {
        let o = &self.facts.orders[i];
        o.placed_at < self.cutoff
            && self.in_segment[o.customer as usize]
            && self.place_matches(o.channel, o.store)
            && self.campaign_paid.as_ref().is_none_or(|p| p[i] > 0)
    }

    /// Matches and lies in the period.
    fn order_in_scope(&self, i: usize) -> bool {
        self.order_matches(i) && self.in_period(self.order_day[i])
    }

    fn redemption_in_scope(&self, r: &RedemptionPart) -> bool {
        r.at < self.cutoff
            && self.in_segment[r.customer as usize]
            && self.place_matches(r.channel, r.store)
            && self.in_period(local_date(self.zone, r.at))
    }

    /// The last local date with facts in the report.
    fn last_date(&self) -> NaiveDate {
        local_date(self.zone, self.cutoff - Duration::microseconds(1))
    }

    /// The matching orders of every customer, each customer's sorted by placed_at:
    /// `(customer, order indices)` for customers with at least one.
    fn orders_by_customer(&self) -> CustomerOrders<'f> {
        // Customers are dense indices: a counting sort groups the orders in two linear
        // passes, and only each customer's few orders are then sorted by time.
        let orders = &self.facts.orders;
        let mut start = vec![0u32; self.facts.customers.len() + 1];
        for i in (0..orders.len()).filter(|&i| self.order_matches(i)) {
            start[orders[i].customer as usize + 1] += 1;
        }
        for c in 1..start.len() {
            start[c] += start[c - 1];
        }
        let mut next = start.clone();
        let mut idx = vec![0u32; start[start.len() - 1] as usize];
        for i in (0..orders.len()).filter(|&i| self.order_matches(i)) {
            let slot = &mut next[orders[i].customer as usize];
            idx[*slot as usize] = i as u32;
            *slot += 1;
        }
        for w in start.windows(2) {
            // Indices ascend within a group already: ties in time keep their read order.
            idx[w[0] as usize..w[1] as usize].sort_by_key(|&i| orders[i as usize].placed_at);
        }
        CustomerOrders { idx, orders }
    }
}

/// Matching orders grouped by customer (sorted by customer, then placed_at).
struct CustomerOrders<'f> {
    idx: Vec<u32>,
    orders: &'f [OrderFact],
}

impl<'f> CustomerOrders<'f> {
    /// Each customer's slice of order indices.
    fn groups(&self) -> impl Iterator<Item = (CustomerIx, &[u32])> + '_ {
        self.idx
            .chunk_by(|&a, &b| self.orders[a as usize].customer == self.orders[b as usize].customer)
            .map(|g| (self.orders[g[0] as usize].customer, g))
    }
}

/// Whether, among a customer's matching orders (sorted by placed_at), a later one than the
/// `anchor`-th was placed within `days` 24-hour days after it.
fn again_within(orders: &[OrderFact], group: &[u32], anchor: usize, days: i64) -> bool {
    let at = orders[group[anchor] as usize].placed_at;
    group
        .get(anchor + 1)
        .is_some_and(|&next| orders[next as usize].placed_at <= at + Duration::days(days))
}

/// a / b, `None` when b = 0.
fn ratio(a: f64, b: f64) -> Option<f64> {
    (b != 0.0).then(|| a / b)
}
