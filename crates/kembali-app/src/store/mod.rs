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

use crate::error::{AppError, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use futures::future::BoxFuture;
use kembali_core::ids::{Channel, CustomerId, OrderId, RedemptionId, ReturnId, Segment, StoreId};
use kembali_core::ledger::{Entry, ProgramTotals, WalletBalances};
use kembali_core::lots::{Allocation, Lot};
use kembali_core::order::OrderLine;
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

/// One transaction's worth of database access. Every method is a single round trip.
#[async_trait]
pub trait Tx: Send {
    // Program.
    async fn program(&mut self) -> StoreResult<Option<ProgramSettings>>;
    async fn put_program(
        &mut self,
        settings: &ProgramSettings,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Whether any ledger entry exists (the currency cannot change after the first).
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

    // API keys.
    async fn api_key_by_hash(&mut self, secret_sha256: &str) -> StoreResult<Option<ApiKeyRecord>>;
    async fn insert_api_key(&mut self, key: &ApiKeyRecord) -> StoreResult<()>;
}

pub type TxFuture<'t, T> = BoxFuture<'t, Result<T, AppError>>;

/// A use case to run inside one transaction.
pub type Job<T> = Box<dyn for<'t> FnOnce(&'t mut dyn Tx) -> TxFuture<'t, T> + Send>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Runs `job` in a write transaction; commits (durably) if it returns `Ok`, else rolls
    /// back everything it did. Returns only after the commit.
    async fn write<T: Send + 'static>(&self, job: Job<T>) -> Result<T, AppError>;
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
