//! The Store port: what the use cases need from a database, and the records they exchange.
//!
//! A use case runs as one job inside one transaction: [`Store::write`] gives it a [`Tx`]
//! and commits only if the job returns `Ok`. Adapters decide how (one writer thread with
//! group commit for SQLite; row locks on the customer for PostgreSQL) but every adapter
//! must make a job see the effects of all jobs committed before it, and none of a job that
//! failed. Jobs lock their customer with [`Tx::customer`]`(id, true)` before they change a
//! wallet, so adapters with many writers serialize per wallet.

pub mod batch;
pub mod decode;
pub mod metrics_sql;
pub mod stored;

use crate::error::{AppError, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use futures::future::BoxFuture;
use kembali_core::analytics::experiment::Arm;
use kembali_core::analytics::metrics::Facts;
use kembali_core::campaign::{CampaignOutcome, RawCampaign};
use kembali_core::ids::{
    CampaignId, Category, Channel, CustomerId, OrderId, PartnerId, RedemptionId, ReturnId, Segment,
    StoreId,
};
use kembali_core::ledger::{Entry, ProgramTotals, WalletBalances};
use kembali_core::lots::{Allocation, Lot};
use kembali_core::money::BasisPoints;
use kembali_core::order::{Order, OrderLine};
use kembali_core::program::ProgramSettings;
use serde::{Deserialize, Serialize};

pub type StoreResult<T> = Result<T, StoreError>;

/// An order is identified by its channel and the channel's own id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderKey {
    pub channel: Channel,
    pub order_id: OrderId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRecord {
    pub id: CustomerId,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub segments: Vec<Segment>,
    pub created_at: DateTime<Utc>,
    /// Cached from the postings; the conformance suite checks they agree.
    pub balances: WalletBalances,
}

impl CustomerRecord {
    /// A customer first seen now, with no profile and an empty wallet.
    pub fn new(id: CustomerId, at: DateTime<Utc>) -> Self {
        CustomerRecord {
            id,
            email: None,
            phone: None,
            birthday: None,
            segments: Vec::new(),
            created_at: at,
            balances: WalletBalances::default(),
        }
    }
}

/// A line as stored, with what it earned and what returns have done to it so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRecord {
    pub line: OrderLine,
    pub net_minor: i64,
    pub redeemed_minor: i64,
    pub cashback_minor: i64,
    pub returned_qty: i64,
    /// Cashback accounted back by returns (taken from the lot, made debt or forfeited).
    pub clawed_back_minor: i64,
    /// Redeemed cashback given back to its lots by returns.
    pub restored_minor: i64,
    /// Why the line earned what it earned, as the order's answer gave it.
    pub explanation: String,
    pub rules: Vec<kembali_core::cashback::RuleApplied>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub key: OrderKey,
    pub customer_id: CustomerId,
    pub store_id: Option<StoreId>,
    pub currency: String,
    pub placed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub redemption_id: Option<RedemptionId>,
    pub redeemed_minor: i64,
    pub cashback_minor: i64,
    pub total_minor: i64,
    pub lot_id: Option<i64>,
    /// When the order's cashback became (or becomes) available and when it expires, as
    /// first promised (a lot's expiry may later move with a grace period).
    pub available_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub request_hash: String,
    pub lines: Vec<LineRecord>,
    /// The partner merchant the order was placed with, if any.
    pub partner_id: Option<PartnerId>,
    /// What each campaign (and the base rate) paid on the order, with explanations.
    pub campaigns: Vec<CampaignOutcome>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnRecord {
    pub order: OrderKey,
    pub return_id: ReturnId,
    pub request_hash: String,
    /// The first answer as JSON.
    pub receipt: String,
    pub created_at: DateTime<Utc>,
}

/// A lot with who owns it and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotRecord {
    pub lot: Lot,
    pub customer_id: CustomerId,
    pub order: Option<OrderKey>,
    pub created_at: DateTime<Utc>,
    /// The expiring-soon event was emitted for the current `expires_at`.
    pub expiry_warned: bool,
    /// The campaign versions that produced the lot, what each paid and who funds it.
    pub campaigns: Vec<LotCampaign>,
}

/// One campaign version's part of a lot (the base rate is `base_rate` version 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotCampaign {
    pub campaign_id: CampaignId,
    pub version: u32,
    pub amount_minor: i64,
    pub funding: kembali_core::campaign::Funding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RedemptionState {
    Held,
    Captured,
    Voided,
    Lapsed,
}

impl RedemptionState {
    pub fn as_str(self) -> &'static str {
        match self {
            RedemptionState::Held => "held",
            RedemptionState::Captured => "captured",
            RedemptionState::Voided => "voided",
            RedemptionState::Lapsed => "lapsed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            RedemptionState::Held,
            RedemptionState::Captured,
            RedemptionState::Voided,
            RedemptionState::Lapsed,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedemptionRecord {
    pub id: RedemptionId,
    pub customer_id: CustomerId,
    pub channel: Channel,
    pub store_id: Option<StoreId>,
    pub state: RedemptionState,
    pub amount_minor: i64,
    pub captured_minor: i64,
    pub order_total_minor: i64,
    pub created_at: DateTime<Utc>,
    /// When an uncaptured hold lapses.
    pub expires_at: DateTime<Utc>,
    pub request_hash: String,
    /// The order this redemption paid for, once an order names it.
    pub order: Option<OrderKey>,
    pub allocations: Vec<Allocation>,
}

/// What a ledger entry belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRefs {
    pub order: Option<OrderKey>,
    pub redemption_id: Option<RedemptionId>,
    pub return_id: Option<ReturnId>,
    pub lot_id: Option<i64>,
}

/// A balanced entry as journaled: for one customer, at one instant, in one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Assigned by the store on append; increasing in commit order per customer.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub customer_id: CustomerId,
    pub asset: String,
    pub entry: Entry,
    pub refs: EntryRefs,
}

/// Something integrators may react to (the outbox): expiring-soon warnings and the like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub customer_id: Option<CustomerId>,
    pub payload: serde_json::Value,
}

/// A stored answer to a request made with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    /// The first answer as JSON.
    pub response: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Channel,
    Analyst,
    Support,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Channel => "channel",
            Role::Analyst => "analyst",
            Role::Support => "support",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        [Role::Admin, Role::Channel, Role::Analyst, Role::Support]
            .into_iter()
            .find(|r| r.as_str() == raw)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Evaluated on every order (its window still decides when it pays).
    Active,
    /// Not evaluated until resumed.
    Paused,
    /// Never evaluated again; cannot be resumed or changed.
    Ended,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Active => "active",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Ended => "ended",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            CampaignStatus::Active,
            CampaignStatus::Paused,
            CampaignStatus::Ended,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// What made a campaign version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignAction {
    Create,
    Update,
    Pause,
    Resume,
    End,
}

impl CampaignAction {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignAction::Create => "create",
            CampaignAction::Update => "update",
            CampaignAction::Pause => "pause",
            CampaignAction::Resume => "resume",
            CampaignAction::End => "end",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            CampaignAction::Create,
            CampaignAction::Update,
            CampaignAction::Pause,
            CampaignAction::Resume,
            CampaignAction::End,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// One immutable version of a campaign: its whole definition and status, who made it,
/// when, and which fields changed from the version before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignVersionRecord {
    pub campaign_id: CampaignId,
    pub version: u32,
    pub status: CampaignStatus,
    pub action: CampaignAction,
    pub definition: RawCampaign,
    /// JSON pointers of the fields that differ from the previous version.
    pub changes: Vec<String>,
    /// The id of the API key that made the change.
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// A campaign's current state: its latest version plus the budget spent so far (the
/// budget's balance, debited under the row's lock in the order's transaction; within the
/// SQLite writer's transaction it includes the debits not yet written to the row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignRecord {
    pub current: CampaignVersionRecord,
    pub created_at: DateTime<Utc>,
    pub budget_spent_minor: i64,
}

/// Which cap period a usage counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsagePeriod {
    Day,
    Week,
    Month,
    /// The whole campaign (its `start` is the Unix epoch).
    Campaign,
}

impl UsagePeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            UsagePeriod::Day => "day",
            UsagePeriod::Week => "week",
            UsagePeriod::Month => "month",
            UsagePeriod::Campaign => "campaign",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            UsagePeriod::Day,
            UsagePeriod::Week,
            UsagePeriod::Month,
            UsagePeriod::Campaign,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// What one customer earned from one campaign in one cap period (the period that began at
/// `start` in the program's zone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub campaign_id: CampaignId,
    pub period: UsagePeriod,
    pub start: DateTime<Utc>,
    pub amount_minor: i64,
}

/// Which of a customer's usage counters: a campaign, a cap period and when it began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageKey {
    pub campaign_id: CampaignId,
    pub period: UsagePeriod,
    pub start: DateTime<Utc>,
}

/// A stored order as a backtest replays it: what was sold, to whom, when, and what it paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoricalOrder {
    pub order: Order,
    pub partner_id: Option<PartnerId>,
    pub placed_at: DateTime<Utc>,
    /// Recorded order: the store's insertion order, ties in `placed_at` broken by it.
    pub created_at: DateTime<Utc>,
    pub redeemed_minor: i64,
    /// The cashback the order actually earned.
    pub paid_minor: i64,
}

/// Where a page of [`Tx::order_history`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCursor {
    pub placed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub key: OrderKey,
}

impl HistoryCursor {
    pub fn of(o: &HistoricalOrder) -> Self {
        HistoryCursor {
            placed_at: o.placed_at,
            created_at: o.created_at,
            key: OrderKey {
                channel: o.order.channel,
                order_id: o.order.order_id.clone(),
            },
        }
    }
}

/// An API key as stored: only the SHA-256 of the secret, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub secret_sha256: String,
    pub role: Role,
    pub channel: Option<Channel>,
    pub store_id: Option<StoreId>,
    pub created_at: DateTime<Utc>,
}

/// The experiment id of the program-wide holdout (campaign holdouts use `campaign:<id>`).
pub const PROGRAM_EXPERIMENT: &str = "program";

/// A customer's arm in an experiment, recorded when first seen at earn time. The first
/// record wins forever: later changes of the share or salt never move a recorded customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentRecord {
    pub experiment_id: String,
    pub customer_id: CustomerId,
    pub arm: Arm,
    /// The holdout share in force when the customer was assigned.
    pub share_bp: BasisPoints,
    pub first_seen_at: DateTime<Utc>,
}

/// An experiment that has assignments, with the size of each arm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentCounts {
    pub experiment_id: String,
    pub treatment: u64,
    pub holdout: u64,
}

/// One transaction's worth of database access. Every method is a single round trip.
#[async_trait]
pub trait Tx: Send {
    // Program.
    /// The settings; `lock` holds the row until the transaction ends, so a change applied to
    /// them cannot overwrite a concurrent one.
    async fn program(&mut self, lock: bool) -> StoreResult<Option<ProgramSettings>>;
    /// Replaces the settings (a new version).
    async fn put_program(
        &mut self,
        settings: &ProgramSettings,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Stores `settings` as the first version when there is no program yet (waiting for a
    /// concurrent creator to finish); whether it did.
    async fn create_program(
        &mut self,
        settings: &ProgramSettings,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Whether any ledger entry exists (the currency cannot change after the first), counting
    /// entries other writers have not yet committed. A store with concurrent writers makes
    /// the answer hold until this transaction ends: no entry is written meanwhile, and an
    /// entry written after it in a currency the program no longer has is refused with
    /// [`StoreError::Conflict`] (its job runs again and meets the new settings).
    async fn has_entries(&mut self) -> StoreResult<bool>;

    // Idempotency keys, scoped by caller.
    async fn idempotency(
        &mut self,
        scope: &str,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>>;
    async fn put_idempotency(
        &mut self,
        scope: &str,
        key: &str,
        record: &IdempotencyRecord,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    // Customers. `lock` takes the wallet's row lock where the adapter has many writers.
    async fn customer(
        &mut self,
        id: &CustomerId,
        lock: bool,
    ) -> StoreResult<Option<CustomerRecord>>;
    /// Like `customer(id, true)`, but returns `None` at once when another transaction holds
    /// the wallet's lock (`FOR UPDATE SKIP LOCKED`): the scheduler on one replica leaves a
    /// wallet to whoever is already working on it. Adapters with one writer never see a
    /// lock held, so the default is the plain locking read.
    async fn customer_unless_locked(
        &mut self,
        id: &CustomerId,
    ) -> StoreResult<Option<CustomerRecord>> {
        self.customer(id, true).await
    }
    async fn insert_customer(&mut self, customer: &CustomerRecord) -> StoreResult<()>;
    async fn update_profile(&mut self, customer: &CustomerRecord) -> StoreResult<()>;
    async fn add_balances(&mut self, id: &CustomerId, delta: &WalletBalances) -> StoreResult<()>;

    // Orders and returns.
    async fn order(&mut self, key: &OrderKey) -> StoreResult<Option<OrderRecord>>;
    /// The channels on which an order with this id exists.
    async fn order_channels(&mut self, order_id: &OrderId) -> StoreResult<Vec<Channel>>;
    async fn insert_order(&mut self, order: &OrderRecord) -> StoreResult<()>;
    async fn update_order_lines(&mut self, key: &OrderKey, lines: &[LineRecord])
        -> StoreResult<()>;
    async fn return_record(
        &mut self,
        key: &OrderKey,
        return_id: &ReturnId,
    ) -> StoreResult<Option<ReturnRecord>>;
    async fn insert_return(&mut self, record: &ReturnRecord) -> StoreResult<()>;

    // Lots. `insert_lot` ignores `lot.id` and returns the id the store gave it.
    async fn insert_lot(&mut self, lot: &LotRecord) -> StoreResult<i64>;
    async fn update_lot(&mut self, lot: &LotRecord) -> StoreResult<()>;
    async fn lots_by_id(&mut self, ids: &[i64]) -> StoreResult<Vec<LotRecord>>;
    /// The customer's lots that are pending or available with something remaining.
    async fn open_lots(&mut self, customer: &CustomerId) -> StoreResult<Vec<LotRecord>>;

    // Redemptions.
    async fn redemption(&mut self, id: &RedemptionId) -> StoreResult<Option<RedemptionRecord>>;
    async fn insert_redemption(&mut self, record: &RedemptionRecord) -> StoreResult<()>;
    async fn update_redemption(&mut self, record: &RedemptionRecord) -> StoreResult<()>;
    async fn held_redemptions(
        &mut self,
        customer: &CustomerId,
    ) -> StoreResult<Vec<RedemptionRecord>>;

    // Ledger and events.
    async fn append_entry(&mut self, entry: &JournalEntry) -> StoreResult<i64>;
    async fn append_event(&mut self, event: &EventRecord) -> StoreResult<i64>;

    // Scheduler: customers with work due at or before `until`: a pending lot to mature, an
    // open lot to expire or warn about (`warn_until` = until + warning days), a hold to lapse.
    async fn customers_with_due_work(
        &mut self,
        until: DateTime<Utc>,
        warn_until: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<CustomerId>>;

    // Reads.
    /// Entries of one customer, newest first, strictly before `before_seq` when given.
    async fn statement(
        &mut self,
        customer: &CustomerId,
        before_seq: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<JournalEntry>>;
    /// Events after `after_seq`, oldest first.
    async fn events(
        &mut self,
        after_seq: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<EventRecord>>;
    /// Sums of all postings by account.
    async fn program_totals(&mut self) -> StoreResult<ProgramTotals>;
    /// Sums of one customer's postings (to check the cached balances).
    async fn customer_posting_sums(&mut self, customer: &CustomerId)
        -> StoreResult<WalletBalances>;
    async fn all_customer_ids(
        &mut self,
        after: Option<&CustomerId>,
        limit: usize,
    ) -> StoreResult<Vec<CustomerId>>;

    // Campaigns.
    async fn campaign(
        &mut self,
        id: &CampaignId,
        lock: bool,
    ) -> StoreResult<Option<CampaignRecord>>;
    /// Every campaign, by id.
    async fn campaigns(&mut self) -> StoreResult<Vec<CampaignRecord>>;
    /// A number that changes with every campaign change (every version put), so a cached
    /// campaign set can be checked in one cheap read: the SQL stores keep it in a one-row
    /// table. It never comes back: a set cached from a change whose transaction then rolled
    /// back (a failed commit) must not pass for the set of a later change. The SQL stores
    /// draw it at random (64 and 52 bits); a counter would give the later change the
    /// rolled-back one's number.
    async fn campaigns_revision(&mut self) -> StoreResult<i64>;
    /// Every version of a campaign, oldest first.
    async fn campaign_versions(
        &mut self,
        id: &CampaignId,
    ) -> StoreResult<Vec<CampaignVersionRecord>>;
    /// Appends the version and makes it the campaign's current state (creating the campaign
    /// at version 1). Never touches the budget spent.
    async fn put_campaign_version(&mut self, version: &CampaignVersionRecord) -> StoreResult<()>;
    /// Locks the budgets of `ids` (sorted, unique) against concurrent orders and returns
    /// what each has spent. The lock order is customer first, then budgets by id.
    async fn lock_budgets(&mut self, ids: &[CampaignId]) -> StoreResult<Vec<(CampaignId, i64)>>;
    /// Debits a budget locked by [`Tx::lock_budgets`]; the store refuses to overspend it.
    async fn spend_budget(&mut self, id: &CampaignId, amount_minor: i64) -> StoreResult<()>;
    /// The customer's usage counters under `keys`, those that exist (each read by its whole
    /// key: what an order reads does not grow with the customer's past periods).
    async fn campaign_usage(
        &mut self,
        customer: &CustomerId,
        keys: &[UsageKey],
    ) -> StoreResult<Vec<UsageRow>>;
    /// Adds to the customer's usage counters (creating them at zero).
    async fn add_campaign_usage(
        &mut self,
        customer: &CustomerId,
        rows: &[UsageRow],
    ) -> StoreResult<()>;
    /// Whether the customer has any order.
    async fn customer_has_orders(&mut self, customer: &CustomerId) -> StoreResult<bool>;
    /// Net spend per category of the customer's orders placed in `[from, until)`, ignoring
    /// later returns (what favourite-category rewards rank on).
    async fn category_spend(
        &mut self,
        customer: &CustomerId,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<(Category, i64)>>;
    /// Orders placed before `until`, in (placed_at, created_at, channel, order id) order,
    /// strictly after `after` when given, at most `limit`.
    async fn order_history(
        &mut self,
        until: DateTime<Utc>,
        after: Option<&HistoryCursor>,
        limit: usize,
    ) -> StoreResult<Vec<HistoricalOrder>>;

    // API keys.
    async fn api_key_by_hash(&mut self, secret_sha256: &str) -> StoreResult<Option<ApiKeyRecord>>;
    async fn insert_api_key(&mut self, key: &ApiKeyRecord) -> StoreResult<()>;

    // ------------------------------------------------------------ metrics and experiments
    // The read side of measuring the program (issue 5): compact fact rows for
    // `kembali_core::analytics::metrics`, read without the JSON columns, and holdout
    // assignments. The `metric_*` methods fill `facts` (which interns customer and store
    // ids); call `metric_customers` first so that customers keep the table's order.

    /// Every customer: segments, and pending + available + held as cached now.
    async fn metric_customers(&mut self, facts: &mut Facts) -> StoreResult<()>;
    /// Every order: customer, channel, store, placed_at, total, cashback, and from its lines
    /// the returned value (Σ net × returned qty / qty, half to even) and the clawed back.
    async fn metric_orders(&mut self, facts: &mut Facts) -> StoreResult<()>;
    /// Every captured redemption, one part per lot that paid (captured − restored), with
    /// the channel of the order that earned the lot. Call after `metric_orders`: an adapter
    /// may resolve lots through the orders it read (`Facts::lot_channel`).
    async fn metric_redemptions(&mut self, facts: &mut Facts) -> StoreResult<()>;
    /// Every expiry (breakage) in the journal.
    async fn metric_expiries(&mut self, facts: &mut Facts) -> StoreResult<()>;
    /// Per customer, what entries after `after` added to pending + available + held
    /// (customers without such entries are left out): liability at `after` is the cached
    /// balances minus this.
    async fn liability_moves_after(
        &mut self,
        after: DateTime<Utc>,
    ) -> StoreResult<Vec<(CustomerId, i64)>>;
    /// What `campaign` paid into each lot (from `lots.campaigns`), into
    /// `Facts::campaign_paid`; read only when a report names a campaign.
    async fn metric_campaign_lots(
        &mut self,
        campaign: &CampaignId,
        facts: &mut Facts,
    ) -> StoreResult<()>;
    /// Records the assignment unless the customer already has one in that experiment, and
    /// returns the one that stands.
    async fn record_assignment(
        &mut self,
        assignment: &AssignmentRecord,
    ) -> StoreResult<AssignmentRecord>;
    /// The customer's recorded assignment in an experiment.
    async fn assignment(
        &mut self,
        experiment_id: &str,
        customer: &CustomerId,
    ) -> StoreResult<Option<AssignmentRecord>>;
    /// Every assignment of an experiment.
    async fn assignments(&mut self, experiment_id: &str) -> StoreResult<Vec<AssignmentRecord>>;
    /// Every experiment with at least one assignment, by id.
    async fn experiments(&mut self) -> StoreResult<Vec<ExperimentCounts>>;

    // ------------------------------------------------------------------ history import
    // (issue 5: `kembali import`; kept at the end of the trait to ease merging)

    /// Inserts past orders with their lines, in order, and each customer they name that does
    /// not exist yet (created at that order's `placed_at`, with an empty profile). An order
    /// whose key is already stored (or earlier in `orders`) is left as it is; its outcome
    /// says whether the stored one has the same `request_hash`. The records are stored as
    /// given: the caller decides what they earned (imported history: nothing, no lot).
    async fn import_orders(&mut self, orders: &[OrderRecord]) -> StoreResult<Vec<ImportOutcome>>;

    /// Called once before a job's first [`import_orders`](Tx::import_orders): an adapter
    /// may put off index upkeep that is cheaper done once at the end (SQLite does when no
    /// order is stored yet: a first load). Changes nothing anyone can read.
    async fn import_start(&mut self) -> StoreResult<()> {
        Ok(())
    }

    /// Called after the job's last [`import_orders`](Tx::import_orders), before it
    /// commits: whatever [`import_start`](Tx::import_start) put off is done now, so the
    /// committed store is exactly as if every order had been inserted with its indexes.
    async fn import_finish(&mut self) -> StoreResult<()> {
        Ok(())
    }
}

/// What [`Tx::import_orders`] did with one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    /// The order was new and is now stored.
    Inserted,
    /// The same order (same key, same request hash) was already stored: nothing changed.
    Unchanged,
    /// Another order with the same key (channel and order id) was already stored.
    Conflict,
}

impl ImportOutcome {
    /// The outcome for an order with `new_hash` whose key is already stored with `stored_hash`.
    pub fn of_existing(stored_hash: &str, new_hash: &str) -> Self {
        if stored_hash == new_hash {
            ImportOutcome::Unchanged
        } else {
            ImportOutcome::Conflict
        }
    }
}

pub type TxFuture<'t, T> = BoxFuture<'t, Result<T, AppError>>;

/// A use case to run inside one transaction.
pub type Job<T> = Box<dyn for<'t> FnOnce(&'t mut dyn Tx) -> TxFuture<'t, T> + Send>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Runs `job` in a write transaction; commits (durably) if it returns `Ok`, else rolls
    /// back everything it did. Returns only after the commit.
    async fn write<T: Send + 'static>(&self, job: Job<T>) -> Result<T, AppError>;
    /// [`Store::write`] for a job whose caller runs it again, made anew, when it is answered
    /// [`StoreError::Conflict`]: the store may run it beside others without a savepoint of
    /// its own, and roll it back with them when one of them fails after writing (a job
    /// answered so changed nothing).
    async fn write_repeatable<T: Send + 'static>(&self, job: Job<T>) -> Result<T, AppError> {
        self.write(job).await
    }
    /// Runs `job` on a consistent read-only snapshot.
    async fn read<T: Send + 'static>(&self, job: Job<T>) -> Result<T, AppError>;
    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Makes a [`Job`] of a closure, so that the compiler infers its higher-ranked signature:
/// `job(move |tx| Box::pin(async move { ... }))`.
pub fn job<T, F>(f: F) -> Job<T>
where
    F: for<'t> FnOnce(&'t mut dyn Tx) -> TxFuture<'t, T> + Send + 'static,
{
    Box::new(f)
}
