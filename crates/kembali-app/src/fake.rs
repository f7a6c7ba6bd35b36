//! An in-memory [`Store`]: one mutex, copy-on-write transactions. For tests; it must pass
//! the same conformance suite as the database adapters.

use crate::error::{AppError, StoreError};
use crate::store::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kembali_core::ids::{Channel, CustomerId, OrderId, RedemptionId, ReturnId};
use kembali_core::ledger::{ProgramTotals, WalletBalances};
use kembali_core::lots::LotState;
use kembali_core::program::ProgramSettings;
use std::collections::{BTreeMap, HashMap};
use tokio::sync::Mutex;

#[derive(Clone, Default)]
struct State {
    program: Option<ProgramSettings>,
    idempotency: HashMap<(String, String), IdempotencyRecord>,
    customers: BTreeMap<CustomerId, CustomerRecord>,
    orders: HashMap<OrderKey, OrderRecord>,
    returns: HashMap<(OrderKey, ReturnId), ReturnRecord>,
    lots: BTreeMap<i64, LotRecord>,
    redemptions: HashMap<RedemptionId, RedemptionRecord>,
    journal: Vec<JournalEntry>,
    events: Vec<EventRecord>,
    keys: HashMap<String, ApiKeyRecord>,
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn write<T: Send + 'static>(&self, job: Job<T>) -> Result<T, AppError> {
        let mut guard = self.state.lock().await;
        let mut draft = guard.clone();
        let out = job(&mut draft).await?;
        *guard = draft;
        Ok(out)
    }

    async fn read<T: Send + 'static>(&self, job: Job<T>) -> Result<T, AppError> {
        let mut snapshot = self.state.lock().await.clone();
        job(&mut snapshot).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

fn open(l: &LotRecord) -> bool {
    matches!(l.lot.state, LotState::Pending | LotState::Available) && l.lot.remaining_minor > 0
}

#[async_trait]
impl Tx for State {
    async fn program(&mut self) -> StoreResult<Option<ProgramSettings>> {
        Ok(self.program.clone())
    }
    async fn put_program(
        &mut self,
        settings: &ProgramSettings,
        _at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.program = Some(settings.clone());
        Ok(())
    }
    async fn has_entries(&mut self) -> StoreResult<bool> {
        Ok(!self.journal.is_empty())
    }
    async fn idempotency(
        &mut self,
        scope: &str,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        Ok(self
            .idempotency
            .get(&(scope.to_string(), key.to_string()))
            .cloned())
    }
    async fn put_idempotency(
        &mut self,
        scope: &str,
        key: &str,
        record: &IdempotencyRecord,
        _at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let k = (scope.to_string(), key.to_string());
        if self.idempotency.contains_key(&k) {
            return Err(StoreError::Conflict("idempotency key".into()));
        }
        self.idempotency.insert(k, record.clone());
        Ok(())
    }
    async fn customer(
        &mut self,
        id: &CustomerId,
        _lock: bool,
    ) -> StoreResult<Option<CustomerRecord>> {
        Ok(self.customers.get(id).cloned())
    }
    async fn insert_customer(&mut self, customer: &CustomerRecord) -> StoreResult<()> {
        if self.customers.contains_key(&customer.id) {
            return Err(StoreError::Conflict("customer".into()));
        }
        self.customers.insert(customer.id.clone(), customer.clone());
        Ok(())
    }
    async fn update_profile(&mut self, customer: &CustomerRecord) -> StoreResult<()> {
        let c = self
            .customers
            .get_mut(&customer.id)
            .ok_or_else(|| StoreError::Corrupt("no customer".into()))?;
        c.email = customer.email.clone();
        c.phone = customer.phone.clone();
        c.birthday = customer.birthday;
        c.segments = customer.segments.clone();
        Ok(())
    }
    async fn add_balances(&mut self, id: &CustomerId, delta: &WalletBalances) -> StoreResult<()> {
        let c = self
            .customers
            .get_mut(id)
            .ok_or_else(|| StoreError::Corrupt("no customer".into()))?;
        c.balances.merge(delta);
        Ok(())
    }
    async fn order(&mut self, key: &OrderKey) -> StoreResult<Option<OrderRecord>> {
        Ok(self.orders.get(key).cloned())
    }
    async fn order_channels(&mut self, order_id: &OrderId) -> StoreResult<Vec<Channel>> {
        let mut v: Vec<Channel> = self
            .orders
            .keys()
            .filter(|k| &k.order_id == order_id)
            .map(|k| k.channel)
            .collect();
        v.sort();
        Ok(v)
    }
    async fn insert_order(&mut self, order: &OrderRecord) -> StoreResult<()> {
        if self.orders.contains_key(&order.key) {
            return Err(StoreError::Conflict("order".into()));
        }
        self.orders.insert(order.key.clone(), order.clone());
        Ok(())
    }
    async fn update_order_lines(
        &mut self,
        key: &OrderKey,
        lines: &[LineRecord],
    ) -> StoreResult<()> {
        let o = self
            .orders
            .get_mut(key)
            .ok_or_else(|| StoreError::Corrupt("no order".into()))?;
        o.lines = lines.to_vec();
        Ok(())
    }
    async fn return_record(
        &mut self,
        key: &OrderKey,
        return_id: &ReturnId,
    ) -> StoreResult<Option<ReturnRecord>> {
        Ok(self.returns.get(&(key.clone(), return_id.clone())).cloned())
    }
    async fn insert_return(&mut self, record: &ReturnRecord) -> StoreResult<()> {
        let k = (record.order.clone(), record.return_id.clone());
        if self.returns.contains_key(&k) {
            return Err(StoreError::Conflict("return".into()));
        }
        self.returns.insert(k, record.clone());
        Ok(())
    }
    async fn insert_lot(&mut self, lot: &LotRecord) -> StoreResult<i64> {
        let id = self.lots.keys().next_back().copied().unwrap_or(0) + 1;
        let mut l = lot.clone();
        l.lot.id = id;
        self.lots.insert(id, l);
        Ok(id)
    }
    async fn update_lot(&mut self, lot: &LotRecord) -> StoreResult<()> {
        let l = self
            .lots
            .get_mut(&lot.lot.id)
            .ok_or_else(|| StoreError::Corrupt("no lot".into()))?;
        *l = lot.clone();
        Ok(())
    }
    async fn lots_by_id(&mut self, ids: &[i64]) -> StoreResult<Vec<LotRecord>> {
        Ok(ids
            .iter()
            .filter_map(|id| self.lots.get(id).cloned())
            .collect())
    }
    async fn open_lots(&mut self, customer: &CustomerId) -> StoreResult<Vec<LotRecord>> {
        Ok(self
            .lots
            .values()
            .filter(|l| &l.customer_id == customer && open(l))
            .cloned()
            .collect())
    }
    async fn redemption(&mut self, id: &RedemptionId) -> StoreResult<Option<RedemptionRecord>> {
        Ok(self.redemptions.get(id).cloned())
    }
    async fn insert_redemption(&mut self, record: &RedemptionRecord) -> StoreResult<()> {
        if self.redemptions.contains_key(&record.id) {
            return Err(StoreError::Conflict("redemption".into()));
        }
        self.redemptions.insert(record.id.clone(), record.clone());
        Ok(())
    }
    async fn update_redemption(&mut self, record: &RedemptionRecord) -> StoreResult<()> {
        let r = self
            .redemptions
            .get_mut(&record.id)
            .ok_or_else(|| StoreError::Corrupt("no redemption".into()))?;
        *r = record.clone();
        Ok(())
    }
    async fn held_redemptions(
        &mut self,
        customer: &CustomerId,
    ) -> StoreResult<Vec<RedemptionRecord>> {
        let mut v: Vec<_> = self
            .redemptions
            .values()
            .filter(|r| &r.customer_id == customer && r.state == RedemptionState::Held)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }
    async fn append_entry(&mut self, entry: &JournalEntry) -> StoreResult<i64> {
        let mut e = entry.clone();
        e.seq = self.journal.len() as i64 + 1;
        self.journal.push(e);
        Ok(self.journal.len() as i64)
    }
    async fn append_event(&mut self, event: &EventRecord) -> StoreResult<i64> {
        let mut e = event.clone();
        e.seq = self.events.len() as i64 + 1;
        self.events.push(e);
        Ok(self.events.len() as i64)
    }
    async fn customers_with_due_work(
        &mut self,
        until: DateTime<Utc>,
        warn_until: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<CustomerId>> {
        let mut ids: Vec<CustomerId> = self
            .lots
            .values()
            .filter(|l| {
                (l.lot.state == LotState::Pending && l.lot.available_at <= until)
                    || (open(l)
                        && (l.lot.expires_at <= until
                            || (!l.expiry_warned && l.lot.expires_at <= warn_until)))
            })
            .map(|l| l.customer_id.clone())
            .chain(
                self.redemptions
                    .values()
                    .filter(|r| r.state == RedemptionState::Held && r.expires_at <= until)
                    .map(|r| r.customer_id.clone()),
            )
            .collect();
        ids.sort();
        ids.dedup();
        ids.truncate(limit);
        Ok(ids)
    }
    async fn statement(
        &mut self,
        customer: &CustomerId,
        before_seq: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<JournalEntry>> {
        Ok(self
            .journal
            .iter()
            .rev()
            .filter(|e| &e.customer_id == customer && before_seq.is_none_or(|b| e.seq < b))
            .take(limit)
            .cloned()
            .collect())
    }
    async fn events(
        &mut self,
        after_seq: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<EventRecord>> {
        Ok(self
            .events
            .iter()
            .filter(|e| after_seq.is_none_or(|a| e.seq > a))
            .take(limit)
            .cloned()
            .collect())
    }
    async fn program_totals(&mut self) -> StoreResult<ProgramTotals> {
        let mut t = ProgramTotals::default();
        for p in self.journal.iter().flat_map(|e| &e.entry.postings) {
            t.add(p.account, p.amount_minor);
        }
        Ok(t)
    }
    async fn customer_posting_sums(
        &mut self,
        customer: &CustomerId,
    ) -> StoreResult<WalletBalances> {
        let mut b = WalletBalances::default();
        for e in self.journal.iter().filter(|e| &e.customer_id == customer) {
            b.merge(&e.entry.wallet_delta());
        }
        Ok(b)
    }
    async fn all_customer_ids(
        &mut self,
        after: Option<&CustomerId>,
        limit: usize,
    ) -> StoreResult<Vec<CustomerId>> {
        Ok(self
            .customers
            .keys()
            .filter(|k| after.is_none_or(|a| *k > a))
            .take(limit)
            .cloned()
            .collect())
    }
    async fn api_key_by_hash(&mut self, secret_sha256: &str) -> StoreResult<Option<ApiKeyRecord>> {
        Ok(self.keys.get(secret_sha256).cloned())
    }
    async fn insert_api_key(&mut self, key: &ApiKeyRecord) -> StoreResult<()> {
        if self.keys.contains_key(&key.secret_sha256) {
            return Err(StoreError::Conflict("api key".into()));
        }
        self.keys.insert(key.secret_sha256.clone(), key.clone());
        Ok(())
    }
}
