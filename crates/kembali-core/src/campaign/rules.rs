//! Typed campaign rules and the one function that makes them from a raw definition,
//! reporting every problem at once with the path of its field. Once a [`CampaignRules`]
//! exists it is known to be consistent; evaluation never checks it again.
//!
//! Lists become sorted sets here so evaluation looks names up by binary search, and the
//! window becomes plain local dates, a weekday mask and seconds of the day.

use crate::ids::{CampaignId, Category, Channel, IdError, PartnerId, Segment, Sku, StoreId, Tag};
use crate::limits::{
    MAX_BIRTHDAY_WINDOW_DAYS, MAX_CAMPAIGNS_PER_EVALUATION, MAX_CAMPAIGN_LIST_LEN,
    MAX_FACTOR_PERCENT, MAX_LOOKBACK_DAYS, MAX_PRIORITY, MAX_TEXT_LEN, MAX_TIERS,
};
use crate::money::{round_half_even, BasisPoints, MAX_AMOUNT_MINOR};
use crate::order::OrderLine;
use chrono::{DateTime, NaiveDate, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::Hash;

use super::raw::{
    RawCampaign, RawCaps, RawConditions, RawExclusions, RawHoldout, RawReward, RawWindow,
};
use super::reach::ReachIndex;

/// One problem in a definition: where (a JSON pointer such as `/reward/tiers/1/rate_bp`),
/// a stable machine code, and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignProblem {
    pub path: String,
    pub code: &'static str,
    pub message: String,
}

/// A sorted, de-duplicated set of names, looked up by binary search: for the short lists
/// campaigns name this beats hashing a string, and it needs no allocation per lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameSet<T>(Vec<T>);

impl<T: Ord> NameSet<T> {
    fn new(mut items: Vec<T>) -> Self {
        items.sort();
        items.dedup();
        NameSet(items)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn contains(&self, item: &T) -> bool {
        self.0.binary_search(item).is_ok()
    }
    /// The names, sorted.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }
}

impl<T> Default for NameSet<T> {
    fn default() -> Self {
        NameSet(Vec::new())
    }
}

/// When a campaign runs: local dates (inclusive), a weekday mask (bit 0 = Monday; all bits
/// = every day), optional daily hours, and the zone (None = the program's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub(crate) starts_on: NaiveDate,
    pub(crate) ends_on: NaiveDate,
    pub(crate) weekdays: u8,
    pub(crate) hours: Option<(u32, u32)>,
    pub(crate) zone: Option<Tz>,
}

pub(crate) const EVERY_DAY: u8 = 0b111_1111;

impl Window {
    /// Whether a local date, weekday (0 = Monday) and second of the day fall inside.
    pub(crate) fn contains(&self, date: NaiveDate, weekday: u8, second: u32) -> bool {
        if date < self.starts_on || date > self.ends_on || self.weekdays & (1 << weekday) == 0 {
            return false;
        }
        match self.hours {
            None => true,
            Some((from, until)) if from < until => (from..until).contains(&second),
            Some((from, until)) => second >= from || second < until,
        }
    }
}

/// Lines a campaign is about: each non-empty list must match (a line's category in
/// `categories`, AND its SKU in `skus`, AND one of its tags in `tags`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineFilter {
    pub(crate) categories: NameSet<Category>,
    pub(crate) skus: NameSet<Sku>,
    pub(crate) tags: NameSet<Tag>,
}

impl LineFilter {
    pub(crate) fn is_any(&self) -> bool {
        self.categories.is_empty() && self.skus.is_empty() && self.tags.is_empty()
    }

    pub(crate) fn targets(&self, line: &OrderLine) -> bool {
        (self.categories.is_empty() || self.categories.contains(&line.category))
            && (self.skus.is_empty() || self.skus.contains(&line.sku))
            && (self.tags.is_empty() || line.tags.iter().any(|t| self.tags.contains(t)))
    }
}

/// Lines that never earn: any listed category, SKU or tag excludes the line. Exclusion wins
/// over inclusion (an `eco` line in an excluded category earns nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    pub(crate) categories: NameSet<Category>,
    pub(crate) skus: NameSet<Sku>,
    pub(crate) tags: NameSet<Tag>,
}

/// Why a line was excluded, for the explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Excluded<'a> {
    Category(&'a Category),
    Sku(&'a Sku),
    Tag(&'a Tag),
}

impl std::fmt::Display for Excluded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Excluded::Category(c) => write!(f, "category {c} excluded"),
            Excluded::Sku(s) => write!(f, "SKU {s} excluded"),
            Excluded::Tag(t) => write!(f, "tag {t} excluded"),
        }
    }
}

impl Exclusions {
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty() && self.skus.is_empty() && self.tags.is_empty()
    }

    pub(crate) fn excludes<'l>(&self, line: &'l OrderLine) -> Option<Excluded<'l>> {
        if self.is_empty() {
            return None;
        }
        if self.categories.contains(&line.category) {
            return Some(Excluded::Category(&line.category));
        }
        if self.skus.contains(&line.sku) {
            return Some(Excluded::Sku(&line.sku));
        }
        line.tags
            .iter()
            .find(|t| self.tags.contains(t))
            .map(Excluded::Tag)
    }
}

/// The birthday condition. A 29 February birthday falls on 28 February in common years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Birthday {
    Month,
    WithinDays(u32),
}

/// Conditions on the order and the customer, plus the campaign's own exclusions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Bit `i` for `Channel::ALL[i]`; 0 = any channel.
    pub(crate) channels: u8,
    pub(crate) stores: NameSet<StoreId>,
    pub(crate) lines: LineFilter,
    pub(crate) min_eligible_order_minor: i64,
    pub(crate) first_purchase_only: bool,
    pub(crate) birthday: Option<Birthday>,
    pub(crate) segments: NameSet<Segment>,
    pub(crate) partners: NameSet<PartnerId>,
    pub(crate) exclude: Exclusions,
}

/// `c`'s position in `Channel::ALL` (its discriminant, checked below): the bit of
/// [`Conditions::channels`] and the slot of the reach index that stand for it.
pub(crate) fn channel_index(c: Channel) -> usize {
    c as usize
}

const _: () = {
    let mut i = 0;
    while i < Channel::ALL.len() {
        assert!(Channel::ALL[i] as usize == i);
        i += 1;
    }
};

pub(crate) fn channel_bit(c: Channel) -> u8 {
    1 << channel_index(c)
}

/// One tier: from this eligible order value (inclusive) on, this rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub from_minor: i64,
    pub rate_bp: BasisPoints,
}

/// What a campaign pays. Every kind but `Fixed` resolves to one rate per order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reward {
    Percent(BasisPoints),
    Fixed {
        amount_minor: i64,
    },
    /// Strictly ascending by `from_minor`.
    Tiered(Vec<Tier>),
    Multiplier {
        factor_percent: u32,
    },
    FavouriteCategory {
        rate_bp: BasisPoints,
        lookback_days: u32,
    },
}

impl Reward {
    /// The multiplied base rate, rounded half-even to a whole basis point and at most 100 %.
    pub(crate) fn multiplied(base: BasisPoints, factor_percent: u32) -> BasisPoints {
        let bp = round_half_even(i128::from(base.0) * i128::from(factor_percent), 100);
        BasisPoints(bp.min(10_000) as u32)
    }
}

/// Upper bounds in minor units; `None` = unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    pub per_order_minor: Option<i64>,
    pub per_customer_day_minor: Option<i64>,
    pub per_customer_week_minor: Option<i64>,
    pub per_customer_month_minor: Option<i64>,
    pub per_customer_campaign_minor: Option<i64>,
    pub budget_minor: Option<i64>,
}

impl Caps {
    /// Whether evaluation needs the usage so far ([`super::CampaignUsage`]) for this campaign.
    pub fn needs_usage(&self) -> bool {
        self.per_customer() || self.budget_minor.is_some()
    }

    /// Whether it caps what one customer earns over a period (a day, week, month or the
    /// whole campaign): such a cap needs the customer's usage rows.
    pub fn per_customer(&self) -> bool {
        self.per_customer_day_minor.is_some()
            || self.per_customer_week_minor.is_some()
            || self.per_customer_month_minor.is_some()
            || self.per_customer_campaign_minor.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StackingMode {
    Exclusive,
    BestOf,
    Stackable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stacking {
    pub mode: StackingMode,
    /// 0 ..= [`MAX_PRIORITY`]; higher wins. The base rate ranks below every campaign.
    pub priority: u32,
}

/// Who pays for a campaign's cashback, recorded on every lot it produces for settlement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "payer", rename_all = "snake_case")]
pub enum Funding {
    Retailer,
    /// A partner or brand pays `partner_share_bp` of the cost; the retailer the rest.
    Partner {
        partner_id: PartnerId,
        partner_share_bp: BasisPoints,
    },
}

impl Funding {
    /// The partner's part of `amount_minor` (half-even); the retailer pays the rest.
    pub fn partner_part_minor(&self, amount_minor: i64) -> i64 {
        match self {
            Funding::Retailer => 0,
            Funding::Partner {
                partner_share_bp, ..
            } => partner_share_bp.apply(amount_minor),
        }
    }
}

/// The largest share of a campaign's customers a holdout may keep out (50 %): beyond it the
/// "treatment" would be the minority and the campaign would mostly not run.
pub const MAX_CAMPAIGN_HOLDOUT_BP: u32 = 5_000;

/// A campaign's holdout experiment (experiment id `campaign:<id>`): customers the campaign
/// reaches are assigned to an arm from the salt and their id when first seen, and the held
/// out ones are evaluated as if the campaign did not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holdout {
    /// 0 ..= [`MAX_CAMPAIGN_HOLDOUT_BP`]; 0 holds no new customer out.
    pub share: BasisPoints,
    /// `None`: the campaign id is the salt.
    pub salt: Option<String>,
}

impl Holdout {
    /// The salt of the assignment of campaign `id`.
    pub fn salt_for<'a>(&'a self, id: &'a CampaignId) -> &'a str {
        self.salt.as_deref().unwrap_or(id.as_str())
    }
}

/// A parsed, consistent campaign definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRules {
    pub(crate) name: String,
    pub(crate) window: Window,
    pub(crate) conditions: Conditions,
    pub(crate) reward: Reward,
    pub(crate) caps: Caps,
    pub(crate) stacking: Stacking,
    pub(crate) funding: Funding,
    pub(crate) holdout: Option<Holdout>,
}

impl CampaignRules {
    pub fn holdout(&self) -> Option<&Holdout> {
        self.holdout.as_ref()
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn reward(&self) -> &Reward {
        &self.reward
    }
    pub fn caps(&self) -> &Caps {
        &self.caps
    }
    pub fn stacking(&self) -> Stacking {
        self.stacking
    }
    pub fn funding(&self) -> &Funding {
        &self.funding
    }
}

/// One immutable version of a campaign, as lots record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignVersion {
    pub id: CampaignId,
    /// 1, 2, 3…: every change to a campaign makes a new version.
    pub version: u32,
    pub rules: CampaignRules,
}

/// The id the program's base rate goes by in explanations and summaries; no campaign may
/// use it.
pub const BASE_RATE_ID: &str = "base_rate";

/// Why a set of campaign versions cannot be evaluated together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignSetError {
    #[error("at most {max} campaigns may be active at once")]
    TooMany { max: usize },
    #[error("campaign {0} is active twice")]
    Duplicate(CampaignId),
    #[error("the id {BASE_RATE_ID} is reserved for the program's base rate")]
    Reserved,
    #[error("campaign {0} has version 0; versions start at 1")]
    VersionZero(CampaignId),
}

// From 1: every `Default` set (empty) has stamp 0.
static NEXT_STAMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The campaign versions active for a program, plus its program-wide exclusions. Built once
/// when campaigns change and shared by every evaluation, so per-order work stays small.
#[derive(Debug, Clone, Default)]
pub struct CampaignSet {
    pub(crate) versions: Vec<CampaignVersion>,
    pub(crate) exclusions: Exclusions,
    /// Every category, SKU and tag any campaign names, numbered: per order each line's names
    /// are looked up once, and campaigns then compare numbers instead of strings.
    pub(crate) symbols: Symbols,
    /// The line filters and exclusions of `versions[i]`, in symbols.
    pub(crate) compiled: Vec<CompiledLines>,
    /// Where each campaign is filed, so an order visits only those it can reach.
    pub(crate) reach: ReachIndex,
    /// Set apart from every other set made in this process (a clone, equal in every way,
    /// shares it): what a prepared order checks it is used with.
    pub(crate) stamp: u64,
    /// What callers must look up before evaluating, worked out once per set.
    needs: Needs,
    /// For `versions[i]` with caps that need usage, its rank among those versions: where
    /// its row is in a usage slice that holds one row per such campaign, in set order (as
    /// callers build it), so evaluation finds it without a search.
    pub(crate) usage_rank: Vec<usize>,
    /// The explanation label of `versions[i]` when it depends on nothing but the version
    /// (a percent reward: "Black Friday 10 % (v3)"), made once instead of once per order.
    pub(crate) labels: Vec<Option<String>>,
}

/// What a set's campaigns need from the caller beyond the order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Needs {
    first_purchase: bool,
    usage: bool,
    profiles: bool,
    holdouts: bool,
    /// Sorted and unique.
    favourite_lookbacks: Vec<u32>,
}

impl Needs {
    fn of(versions: &[CampaignVersion]) -> Self {
        let mut favourite_lookbacks: Vec<u32> = versions
            .iter()
            .filter_map(|v| match v.rules.reward {
                Reward::FavouriteCategory { lookback_days, .. } => Some(lookback_days),
                _ => None,
            })
            .collect();
        favourite_lookbacks.sort_unstable();
        favourite_lookbacks.dedup();
        Needs {
            first_purchase: versions
                .iter()
                .any(|v| v.rules.conditions.first_purchase_only),
            usage: versions.iter().any(|v| v.rules.caps.needs_usage()),
            holdouts: versions.iter().any(|v| v.rules.holdout.is_some()),
            profiles: versions.iter().any(|v| {
                v.rules.conditions.birthday.is_some() || !v.rules.conditions.segments.is_empty()
            }),
            favourite_lookbacks,
        }
    }
}

/// Names per kind; a name's symbol is its index among the sorted names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Symbols {
    pub categories: SymbolTable<Category>,
    pub skus: SymbolTable<Sku>,
    pub tags: SymbolTable<Tag>,
}

/// The names of one kind, each with its symbol: its index among the names sorted, so a
/// sorted set of names has sorted symbols. Found by hash: an order's lines are looked up in
/// it, and a binary search among a hundred SKUs compared strings seven times a name.
/// foldhash with a fixed seed (the core draws no randomness): the keys are the campaigns'
/// own names, which a lookup never adds to, so SipHash's defence against chosen keys buys
/// nothing here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SymbolTable<T: Hash + Eq>(HashMap<T, u32, foldhash::fast::FixedState>);

impl<T: Hash + Eq> Default for SymbolTable<T> {
    fn default() -> Self {
        SymbolTable(HashMap::default())
    }
}

impl<T: Ord + Hash + Clone> SymbolTable<T> {
    fn new(mut names: Vec<T>) -> Self {
        names.sort();
        names.dedup();
        SymbolTable((0..).zip(names).map(|(i, n)| (n, i)).collect())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The symbol of `name`, [`NO_SYMBOL`] when no campaign names it.
    pub fn symbol(&self, name: &T) -> u32 {
        self.0.get(name).copied().unwrap_or(NO_SYMBOL)
    }

    /// The symbols of a campaign's names: sorted, as the set is.
    fn symbols_of(&self, set: &NameSet<T>) -> Vec<u32> {
        set.0.iter().map(|n| self.symbol(n)).collect()
    }
}

/// A line's names as symbols; [`NO_SYMBOL`] when no campaign names it.
pub(crate) const NO_SYMBOL: u32 = u32::MAX;

pub(crate) fn symbol<T: Ord>(table: &[T], name: &T) -> u32 {
    table.binary_search(name).map_or(NO_SYMBOL, |i| i as u32)
}

/// A campaign's line filter and exclusions in symbols, each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CompiledLines {
    pub categories: Vec<u32>,
    pub skus: Vec<u32>,
    pub tags: Vec<u32>,
    no_categories: Vec<u32>,
    no_skus: Vec<u32>,
    no_tags: Vec<u32>,
    /// No filter and no exclusion: every line the program allows.
    pub open: bool,
}

/// One line's names as symbols, computed once per order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineSymbols<'a> {
    pub category: u32,
    pub sku: u32,
    pub tags: &'a [u32],
}

impl Symbols {
    fn new(versions: &[CampaignVersion]) -> Symbols {
        let (mut categories, mut skus, mut tags) = (Vec::new(), Vec::new(), Vec::new());
        for v in versions {
            let k = &v.rules.conditions;
            for set in [&k.lines.categories, &k.exclude.categories] {
                categories.extend(set.0.iter().cloned());
            }
            for set in [&k.lines.skus, &k.exclude.skus] {
                skus.extend(set.0.iter().cloned());
            }
            for set in [&k.lines.tags, &k.exclude.tags] {
                tags.extend(set.0.iter().cloned());
            }
        }
        Symbols {
            categories: SymbolTable::new(categories),
            skus: SymbolTable::new(skus),
            tags: SymbolTable::new(tags),
        }
    }

    fn compile(&self, v: &CampaignVersion) -> CompiledLines {
        let k = &v.rules.conditions;
        CompiledLines {
            categories: self.categories.symbols_of(&k.lines.categories),
            skus: self.skus.symbols_of(&k.lines.skus),
            tags: self.tags.symbols_of(&k.lines.tags),
            no_categories: self.categories.symbols_of(&k.exclude.categories),
            no_skus: self.skus.symbols_of(&k.exclude.skus),
            no_tags: self.tags.symbols_of(&k.exclude.tags),
            open: k.lines.is_any() && k.exclude.is_empty(),
        }
    }

    /// Appends the line's tag symbols to `tags` and returns its category and SKU symbols.
    pub fn of_line(&self, line: &OrderLine, tags: &mut Vec<u32>) -> (u32, u32) {
        tags.extend(
            line.tags
                .iter()
                .map(|t| self.tags.symbol(t))
                .filter(|s| *s != NO_SYMBOL),
        );
        (
            self.categories.symbol(&line.category),
            self.skus.symbol(&line.sku),
        )
    }
}

fn has(list: &[u32], s: u32) -> bool {
    // Lists are short; a linear scan over a few integers beats a binary search.
    list.contains(&s)
}

impl CompiledLines {
    /// [`LineFilter::targets`] and not [`Exclusions::excludes`], on symbols.
    pub fn earns(&self, l: LineSymbols<'_>) -> bool {
        (self.categories.is_empty() || has(&self.categories, l.category))
            && (self.skus.is_empty() || self.skus.binary_search(&l.sku).is_ok())
            && (self.tags.is_empty() || l.tags.iter().any(|t| has(&self.tags, *t)))
            && !has(&self.no_categories, l.category)
            && self.no_skus.binary_search(&l.sku).is_err()
            && !l.tags.iter().any(|t| has(&self.no_tags, *t))
    }
}

/// Two sets are equal when their versions and exclusions are: the rest is derived from
/// them, and the stamp only tells sets apart.
impl PartialEq for CampaignSet {
    fn eq(&self, other: &Self) -> bool {
        self.versions == other.versions && self.exclusions == other.exclusions
    }
}

impl Eq for CampaignSet {}

/// "Black Friday 10 % (v3)": how explanations name a percent reward's version.
pub(crate) fn percent_label(v: &CampaignVersion, rate: BasisPoints) -> String {
    format!("{} {rate} (v{})", v.rules.name, v.version)
}

impl CampaignSet {
    pub fn new(
        mut versions: Vec<CampaignVersion>,
        exclusions: Exclusions,
    ) -> Result<Self, CampaignSetError> {
        if versions.len() > MAX_CAMPAIGNS_PER_EVALUATION {
            return Err(CampaignSetError::TooMany {
                max: MAX_CAMPAIGNS_PER_EVALUATION,
            });
        }
        // Sorted by id: evaluation order, and so the explanation order, never depends on
        // the order the caller happened to load the campaigns in.
        versions.sort_by(|a, b| a.id.cmp(&b.id));
        for pair in versions.windows(2) {
            if pair[0].id == pair[1].id {
                return Err(CampaignSetError::Duplicate(pair[0].id.clone()));
            }
        }
        for v in &versions {
            if v.id.as_str() == BASE_RATE_ID {
                return Err(CampaignSetError::Reserved);
            }
            if v.version == 0 {
                return Err(CampaignSetError::VersionZero(v.id.clone()));
            }
        }
        let symbols = Symbols::new(&versions);
        let compiled: Vec<CompiledLines> = versions.iter().map(|v| symbols.compile(v)).collect();
        let sizes = (
            symbols.categories.len(),
            symbols.skus.len(),
            symbols.tags.len(),
        );
        let reach = ReachIndex::new(&versions, &compiled, sizes);
        let needs = Needs::of(&versions);
        let mut rank = 0;
        let usage_rank = versions
            .iter()
            .map(|v| {
                let r = rank;
                rank += usize::from(v.rules.caps.needs_usage());
                r
            })
            .collect();
        let labels = versions
            .iter()
            .map(|v| match v.rules.reward {
                Reward::Percent(rate) => Some(percent_label(v, rate)),
                _ => None,
            })
            .collect();
        Ok(CampaignSet {
            versions,
            exclusions,
            symbols,
            compiled,
            reach,
            stamp: NEXT_STAMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            needs,
            usage_rank,
            labels,
        })
    }

    pub fn versions(&self) -> &[CampaignVersion] {
        &self.versions
    }

    /// The set without the campaigns whose dates cannot reach an instant in `[from, to)`
    /// (their window ends before its first local date or starts after its last, in the
    /// window's zone, else `zone`): every order placed in the period evaluates the same
    /// under both, and a replay of the period skips them for nothing.
    pub fn within(&self, from: DateTime<Utc>, to: DateTime<Utc>, zone: Tz) -> CampaignSet {
        let last = to - chrono::Duration::microseconds(1);
        let versions = if to <= from {
            Vec::new()
        } else {
            self.versions
                .iter()
                .filter(|v| {
                    let w = &v.rules.window;
                    let z = w.zone.unwrap_or(zone);
                    let (first, last) = (
                        from.with_timezone(&z).date_naive(),
                        last.with_timezone(&z).date_naive(),
                    );
                    w.starts_on <= last && w.ends_on >= first
                })
                .cloned()
                .collect()
        };
        CampaignSet::new(versions, self.exclusions.clone())
            .expect("a subset of a valid set is valid")
    }

    /// The version of campaign `id` in the set (a binary search: versions are sorted by id).
    pub fn version(&self, id: &CampaignId) -> Option<&CampaignVersion> {
        self.versions
            .binary_search_by(|v| v.id.cmp(id))
            .ok()
            .map(|i| &self.versions[i])
    }

    /// Whether some campaign pays only on a customer's first purchase (so the caller must
    /// find out whether this order is one).
    pub fn needs_first_purchase(&self) -> bool {
        self.needs.first_purchase
    }

    /// Whether some campaign has a cap or budget (so the caller must supply usage).
    pub fn needs_usage(&self) -> bool {
        self.needs.usage
    }

    /// Whether some campaign has a holdout (so the caller must decide the customer's arms).
    pub fn has_holdouts(&self) -> bool {
        self.needs.holdouts
    }

    /// Whether some campaign looks at the customer's birthday or segments.
    pub fn needs_profiles(&self) -> bool {
        self.needs.profiles
    }

    /// The lookbacks (days) for which the caller must compute the customer's favourite
    /// category, sorted and unique.
    pub fn favourite_lookbacks(&self) -> &[u32] {
        &self.needs.favourite_lookbacks
    }
}

/// Collects problems; the helpers return a usable placeholder so parsing can go on and
/// find the next problem.
struct Problems(Vec<CampaignProblem>);

impl Problems {
    fn bad(&mut self, path: impl Into<String>, code: &'static str, message: impl Into<String>) {
        self.0.push(CampaignProblem {
            path: path.into(),
            code,
            message: message.into(),
        });
    }

    fn ids<T: Ord>(
        &mut self,
        path: &str,
        raw: &[String],
        parse: impl Fn(String) -> Result<T, IdError>,
    ) -> NameSet<T> {
        if raw.len() > MAX_CAMPAIGN_LIST_LEN {
            self.bad(
                path,
                "too_many",
                format!("at most {MAX_CAMPAIGN_LIST_LEN} entries"),
            );
            return NameSet::default();
        }
        let mut out = Vec::with_capacity(raw.len());
        for (i, r) in raw.iter().enumerate() {
            match parse(r.clone()) {
                Ok(v) => out.push(v),
                Err(e) => self.bad(format!("{path}/{i}"), "bad_id", e.to_string()),
            }
        }
        NameSet::new(out)
    }

    fn rate(&mut self, path: &str, raw: i64) -> BasisPoints {
        if raw < 0 {
            self.bad(path, "negative", "must not be negative");
            BasisPoints(0)
        } else if raw > 10_000 {
            self.bad(path, "rate_above_full", "must be at most 10000 (100 %)");
            BasisPoints::FULL
        } else {
            BasisPoints(raw as u32)
        }
    }

    fn amount(&mut self, path: &str, raw: i64) -> i64 {
        if raw < 0 {
            self.bad(path, "negative", "must not be negative");
            0
        } else if raw > MAX_AMOUNT_MINOR {
            self.bad(
                path,
                "too_large",
                format!("must be at most {MAX_AMOUNT_MINOR}"),
            );
            MAX_AMOUNT_MINOR
        } else {
            raw
        }
    }

    fn bounded(&mut self, path: &str, raw: i64, min: u32, max: u32) -> u32 {
        if raw < i64::from(min) || raw > i64::from(max) {
            self.bad(
                path,
                "out_of_range",
                format!("must be between {min} and {max}"),
            );
            min
        } else {
            raw as u32
        }
    }
}

/// Parses a raw definition into typed rules, or returns every problem found, in the order of
/// the fields.
pub fn parse(raw: &RawCampaign) -> Result<CampaignRules, Vec<CampaignProblem>> {
    let mut p = Problems(Vec::new());
    let name = raw.name.trim().to_string();
    if name.is_empty() {
        p.bad("/name", "empty", "must not be empty");
    } else if name.chars().count() > MAX_TEXT_LEN {
        p.bad(
            "/name",
            "too_long",
            format!("must be at most {MAX_TEXT_LEN} characters"),
        );
    }
    let window = parse_window(&mut p, &raw.window);
    let conditions = parse_conditions(&mut p, &raw.conditions);
    let reward = parse_reward(&mut p, &raw.reward);
    let caps = parse_caps(&mut p, &raw.caps);
    let mode = match raw.stacking.mode.as_str() {
        "exclusive" => StackingMode::Exclusive,
        "best_of" => StackingMode::BestOf,
        "stackable" => StackingMode::Stackable,
        _ => {
            p.bad(
                "/stacking/mode",
                "unknown_value",
                "must be exclusive, best_of or stackable",
            );
            StackingMode::Stackable
        }
    };
    let priority = p.bounded("/stacking/priority", raw.stacking.priority, 0, MAX_PRIORITY);
    let funding = parse_funding(&mut p, raw);
    let holdout = raw.holdout.as_ref().map(|h| parse_holdout(&mut p, h));
    if p.0.is_empty() {
        Ok(CampaignRules {
            name,
            window,
            conditions,
            reward,
            caps,
            stacking: Stacking { mode, priority },
            funding,
            holdout,
        })
    } else {
        Err(p.0)
    }
}

/// Parses a program-wide exclusion list (same shape as a campaign's `exclude`).
pub fn parse_exclusions(raw: &RawExclusions) -> Result<Exclusions, Vec<CampaignProblem>> {
    let mut p = Problems(Vec::new());
    let e = exclusions(&mut p, "", raw);
    if p.0.is_empty() {
        Ok(e)
    } else {
        Err(p.0)
    }
}

/// Parses an IANA zone name such as `America/Sao_Paulo`.
pub fn parse_zone(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

fn parse_window(p: &mut Problems, raw: &RawWindow) -> Window {
    let date = |p: &mut Problems, path: &str, s: &str| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| p.bad(path, "bad_date", "must be a date YYYY-MM-DD"))
            .ok()
    };
    let starts_on = date(p, "/window/starts_on", &raw.starts_on);
    let ends_on = date(p, "/window/ends_on", &raw.ends_on);
    if let (Some(s), Some(e)) = (starts_on, ends_on) {
        if e < s {
            p.bad(
                "/window/ends_on",
                "end_before_start",
                "must not be before starts_on",
            );
        }
    }
    let mut weekdays = 0u8;
    for (i, d) in raw.days_of_week.iter().enumerate() {
        const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        match DAYS.iter().position(|x| *x == d.as_str()) {
            Some(bit) => weekdays |= 1 << bit,
            None => p.bad(
                format!("/window/days_of_week/{i}"),
                "unknown_value",
                "must be one of mon, tue, wed, thu, fri, sat, sun",
            ),
        }
    }
    if raw.days_of_week.is_empty() {
        weekdays = EVERY_DAY;
    }
    let hours = raw.hours.as_ref().and_then(|h| {
        let time = |p: &mut Problems, path: &str, s: &str| {
            NaiveTime::parse_from_str(s, "%H:%M:%S")
                .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
                .map(|t| t.num_seconds_from_midnight())
                .map_err(|_| p.bad(path, "bad_time", "must be a time HH:MM or HH:MM:SS"))
                .ok()
        };
        let from = time(p, "/window/hours/from", &h.from);
        let until = time(p, "/window/hours/until", &h.until);
        match (from, until) {
            (Some(f), Some(u)) if f == u => {
                p.bad(
                    "/window/hours/until",
                    "empty_hours",
                    "must differ from `from` (the hours would be empty)",
                );
                None
            }
            (Some(f), Some(u)) => Some((f, u)),
            _ => None,
        }
    });
    let zone = raw.time_zone.as_deref().and_then(|z| {
        let parsed = parse_zone(z);
        if parsed.is_none() {
            p.bad(
                "/window/time_zone",
                "unknown_time_zone",
                "must be an IANA time zone such as America/Sao_Paulo",
            );
        }
        parsed
    });
    let fallback = NaiveDate::MIN;
    Window {
        starts_on: starts_on.unwrap_or(fallback),
        ends_on: ends_on.unwrap_or(fallback),
        weekdays,
        hours,
        zone,
    }
}

fn exclusions(p: &mut Problems, prefix: &str, raw: &RawExclusions) -> Exclusions {
    Exclusions {
        categories: p.ids(
            &format!("{prefix}/categories"),
            &raw.categories,
            Category::parse,
        ),
        skus: p.ids(&format!("{prefix}/skus"), &raw.skus, Sku::parse),
        tags: p.ids(&format!("{prefix}/tags"), &raw.tags, Tag::parse),
    }
}

fn parse_conditions(p: &mut Problems, raw: &RawConditions) -> Conditions {
    let mut channels = 0u8;
    for (i, c) in raw.channels.iter().enumerate() {
        match Channel::parse(c) {
            Some(c) => channels |= channel_bit(c),
            None => p.bad(
                format!("/conditions/channels/{i}"),
                "unknown_value",
                "must be one of web, app, store, marketplace, partner",
            ),
        }
    }
    let min_eligible_order_minor = raw
        .min_eligible_order_minor
        .map_or(0, |m| p.amount("/conditions/min_eligible_order_minor", m));
    let birthday = match (raw.birthday_month, raw.birthday_within_days) {
        (false, None) => None,
        (true, None) => Some(Birthday::Month),
        (false, Some(d)) => Some(Birthday::WithinDays(p.bounded(
            "/conditions/birthday_within_days",
            d,
            0,
            MAX_BIRTHDAY_WINDOW_DAYS,
        ))),
        (true, Some(_)) => {
            p.bad(
                "/conditions/birthday_within_days",
                "contradictory",
                "give birthday_month or birthday_within_days, not both",
            );
            None
        }
    };
    Conditions {
        channels,
        stores: p.ids("/conditions/stores", &raw.stores, StoreId::parse),
        lines: LineFilter {
            categories: p.ids("/conditions/categories", &raw.categories, Category::parse),
            skus: p.ids("/conditions/skus", &raw.skus, Sku::parse),
            tags: p.ids("/conditions/tags", &raw.tags, Tag::parse),
        },
        min_eligible_order_minor,
        first_purchase_only: raw.first_purchase_only,
        birthday,
        segments: p.ids("/conditions/segments", &raw.segments, Segment::parse),
        partners: p.ids("/conditions/partners", &raw.partners, PartnerId::parse),
        exclude: exclusions(p, "/conditions/exclude", &raw.exclude),
    }
}

fn parse_reward(p: &mut Problems, raw: &RawReward) -> Reward {
    match raw {
        RawReward::Percent { rate_bp } => Reward::Percent(p.rate("/reward/rate_bp", *rate_bp)),
        RawReward::Fixed { amount_minor } => Reward::Fixed {
            amount_minor: p.amount("/reward/amount_minor", *amount_minor),
        },
        RawReward::Tiered { tiers } => {
            if tiers.is_empty() {
                p.bad("/reward/tiers", "empty", "must have at least one tier");
            } else if tiers.len() > MAX_TIERS {
                p.bad(
                    "/reward/tiers",
                    "too_many",
                    format!("at most {MAX_TIERS} tiers"),
                );
            }
            let mut out: Vec<Tier> = Vec::with_capacity(tiers.len());
            for (i, t) in tiers.iter().enumerate().take(MAX_TIERS) {
                let from_minor = p.amount(&format!("/reward/tiers/{i}/from_minor"), t.from_minor);
                let rate_bp = p.rate(&format!("/reward/tiers/{i}/rate_bp"), t.rate_bp);
                if out.last().is_some_and(|prev| prev.from_minor >= from_minor) {
                    p.bad(
                        format!("/reward/tiers/{i}/from_minor"),
                        "tiers_not_ascending",
                        "must be greater than the previous tier's from_minor",
                    );
                }
                out.push(Tier {
                    from_minor,
                    rate_bp,
                });
            }
            Reward::Tiered(out)
        }
        RawReward::Multiplier { factor_percent } => Reward::Multiplier {
            factor_percent: p.bounded(
                "/reward/factor_percent",
                *factor_percent,
                1,
                MAX_FACTOR_PERCENT,
            ),
        },
        RawReward::FavouriteCategory {
            rate_bp,
            lookback_days,
        } => Reward::FavouriteCategory {
            rate_bp: p.rate("/reward/rate_bp", *rate_bp),
            lookback_days: p.bounded(
                "/reward/lookback_days",
                *lookback_days,
                1,
                MAX_LOOKBACK_DAYS,
            ),
        },
    }
}

fn parse_caps(p: &mut Problems, raw: &RawCaps) -> Caps {
    let mut cap = |name: &str, v: Option<i64>| v.map(|v| p.amount(&format!("/caps/{name}"), v));
    Caps {
        per_order_minor: cap("per_order_minor", raw.per_order_minor),
        per_customer_day_minor: cap("per_customer_day_minor", raw.per_customer_day_minor),
        per_customer_week_minor: cap("per_customer_week_minor", raw.per_customer_week_minor),
        per_customer_month_minor: cap("per_customer_month_minor", raw.per_customer_month_minor),
        per_customer_campaign_minor: cap(
            "per_customer_campaign_minor",
            raw.per_customer_campaign_minor,
        ),
        budget_minor: cap("budget_minor", raw.budget_minor),
    }
}

fn parse_holdout(p: &mut Problems, raw: &RawHoldout) -> Holdout {
    let share = p.bounded(
        "/holdout/share_bp",
        raw.share_bp,
        0,
        MAX_CAMPAIGN_HOLDOUT_BP,
    );
    let salt = raw.salt.as_ref().map(|s| {
        if s.is_empty() || s.len() > 64 {
            p.bad(
                "/holdout/salt",
                "out_of_range",
                "must be 1 to 64 bytes (omit it to use the campaign id)",
            );
        }
        s.clone()
    });
    Holdout {
        share: BasisPoints(share),
        salt,
    }
}

fn parse_funding(p: &mut Problems, raw: &RawCampaign) -> Funding {
    let f = &raw.funding;
    match f.payer.as_str() {
        "retailer" => {
            if f.partner_id.is_some() || f.partner_share_bp.is_some() {
                p.bad(
                    "/funding/payer",
                    "contradictory",
                    "a retailer-funded campaign names no partner",
                );
            }
            Funding::Retailer
        }
        "partner" => {
            let partner_id = match &f.partner_id {
                None => {
                    p.bad("/funding/partner_id", "missing", "a partner must be named");
                    None
                }
                Some(id) => PartnerId::parse(id.clone())
                    .map_err(|e| p.bad("/funding/partner_id", "bad_id", e.to_string()))
                    .ok(),
            };
            let share = match f.partner_share_bp {
                None => BasisPoints::FULL,
                Some(0) => {
                    p.bad(
                        "/funding/partner_share_bp",
                        "out_of_range",
                        "a partner share of 0 means the retailer pays: use payer retailer",
                    );
                    BasisPoints(0)
                }
                Some(s) => p.rate("/funding/partner_share_bp", s),
            };
            match partner_id {
                Some(partner_id) => Funding::Partner {
                    partner_id,
                    partner_share_bp: share,
                },
                None => Funding::Retailer,
            }
        }
        _ => {
            p.bad(
                "/funding/payer",
                "unknown_value",
                "must be retailer or partner",
            );
            Funding::Retailer
        }
    }
}
