//! An in-memory [`Store`]: one mutex, copy-on-write transactions. For tests; it must pass
//! the same conformance suite as the database adapters.

use crate::error::{AppError, StoreError};
use crate::store::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kembali_core::analytics::experiment::Arm;
use kembali_core::analytics::metrics::{
    returned_value_minor, ExpiryFact, Facts, OrderFact, RedemptionPart,
};
use kembali_core::ids::{
    CampaignId, Category, Channel, CustomerId, OrderId, RedemptionId, ReturnId,
};
use kembali_core::ledger::{Account, EntryKind, ProgramTotals, WalletBalances};
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
    campaigns: BTreeMap<CampaignId, CampaignRecord>,
    campaign_versions: BTreeMap<(CampaignId, u32), CampaignVersionRecord>,
    usage: BTreeMap<(CustomerId, CampaignId, UsagePeriod, DateTime<Utc>), i64>,
    assignments: BTreeMap<(String, CustomerId), AssignmentRecord>,
    /// Drawn from [`REVISIONS`] by every version put: a draft thrown away keeps its number.
    campaign_revision: i64,
}

/// The campaign revisions every `MemoryStore` has handed out (see `Tx::campaigns_revision`).
static REVISIONS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

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
    async fn program(&mut self, _lock: bool) -> StoreResult<Option<ProgramSettings>> {
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
    async fn create_program(
        &mut self,
        settings: &ProgramSettings,
        _at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let absent = self.program.is_none();
        if absent {
            self.program = Some(settings.clone());
        }
        Ok(absent)
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
    async fn campaign(
        &mut self,
        id: &CampaignId,
        _lock: bool,
    ) -> StoreResult<Option<CampaignRecord>> {
        Ok(self.campaigns.get(id).cloned())
    }
    async fn campaigns(&mut self) -> StoreResult<Vec<CampaignRecord>> {
        Ok(self.campaigns.values().cloned().collect())
    }
    async fn campaigns_revision(&mut self) -> StoreResult<i64> {
        Ok(self.campaign_revision)
    }
    async fn campaign_versions(
        &mut self,
        id: &CampaignId,
    ) -> StoreResult<Vec<CampaignVersionRecord>> {
        Ok(self
            .campaign_versions
            .range((id.clone(), 0)..=(id.clone(), u32::MAX))
            .map(|(_, v)| v.clone())
            .collect())
    }
    async fn put_campaign_version(&mut self, v: &CampaignVersionRecord) -> StoreResult<()> {
        let key = (v.campaign_id.clone(), v.version);
        if self.campaign_versions.contains_key(&key) {
            return Err(StoreError::Conflict("campaign version".into()));
        }
        self.campaign_versions.insert(key, v.clone());
        let spent = match self.campaigns.get(&v.campaign_id) {
            Some(c) => c.budget_spent_minor,
            None => 0,
        };
        if v.definition.caps.budget_minor.is_some_and(|b| spent > b) {
            return Err(StoreError::Corrupt("budget below what it spent".into()));
        }
        let created_at = self
            .campaigns
            .get(&v.campaign_id)
            .map_or(v.at, |c| c.created_at);
        self.campaigns.insert(
            v.campaign_id.clone(),
            CampaignRecord {
                current: v.clone(),
                created_at,
                budget_spent_minor: spent,
            },
        );
        self.campaign_revision = REVISIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        Ok(())
    }
    async fn lock_budgets(&mut self, ids: &[CampaignId]) -> StoreResult<Vec<(CampaignId, i64)>> {
        Ok(ids
            .iter()
            .filter_map(|id| {
                self.campaigns
                    .get(id)
                    .map(|c| (id.clone(), c.budget_spent_minor))
            })
            .collect())
    }
    async fn spend_budget(&mut self, id: &CampaignId, amount_minor: i64) -> StoreResult<()> {
        let c = self
            .campaigns
            .get_mut(id)
            .ok_or_else(|| StoreError::Corrupt(format!("no campaign {id}")))?;
        match c.current.definition.caps.budget_minor {
            Some(b) if c.budget_spent_minor + amount_minor <= b => {
                c.budget_spent_minor += amount_minor;
                Ok(())
            }
            _ => Err(StoreError::Corrupt(format!(
                "budget of campaign {id} would be overspent"
            ))),
        }
    }
    async fn campaign_usage(
        &mut self,
        customer: &CustomerId,
        keys: &[UsageKey],
    ) -> StoreResult<Vec<UsageRow>> {
        Ok(keys
            .iter()
            .filter_map(|k| {
                let key = (customer.clone(), k.campaign_id.clone(), k.period, k.start);
                self.usage.get(&key).map(|amount| UsageRow {
                    campaign_id: k.campaign_id.clone(),
                    period: k.period,
                    start: k.start,
                    amount_minor: *amount,
                })
            })
            .collect())
    }
    async fn add_campaign_usage(
        &mut self,
        customer: &CustomerId,
        rows: &[UsageRow],
    ) -> StoreResult<()> {
        for u in rows {
            *self
                .usage
                .entry((customer.clone(), u.campaign_id.clone(), u.period, u.start))
                .or_insert(0) += u.amount_minor;
        }
        Ok(())
    }
    async fn customer_has_orders(&mut self, customer: &CustomerId) -> StoreResult<bool> {
        Ok(self.orders.values().any(|o| o.customer_id == *customer))
    }
    async fn category_spend(
        &mut self,
        customer: &CustomerId,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<(Category, i64)>> {
        let mut spend: BTreeMap<Category, i64> = BTreeMap::new();
        for o in self.orders.values() {
            if o.customer_id == *customer && o.placed_at >= from && o.placed_at < until {
                for l in &o.lines {
                    *spend.entry(l.line.category.clone()).or_insert(0) += l.net_minor;
                }
            }
        }
        Ok(spend.into_iter().collect())
    }
    async fn order_history(
        &mut self,
        until: DateTime<Utc>,
        after: Option<&HistoryCursor>,
        limit: usize,
    ) -> StoreResult<Vec<HistoricalOrder>> {
        let sort_key = |c: &HistoryCursor| {
            (
                c.placed_at,
                c.created_at,
                c.key.channel.as_str(),
                c.key.order_id.to_string(),
            )
        };
        let mut all = Vec::new();
        for o in self.orders.values().filter(|o| o.placed_at < until) {
            let h = HistoricalOrder {
                order: kembali_core::order::Order {
                    channel: o.key.channel,
                    store_id: o.store_id.clone(),
                    order_id: o.key.order_id.clone(),
                    customer_id: o.customer_id.clone(),
                    currency: kembali_core::ids::Currency::parse(&o.currency)
                        .map_err(|e| StoreError::Corrupt(e.into()))?,
                    lines: o.lines.iter().map(|l| l.line.clone()).collect(),
                },
                partner_id: o.partner_id.clone(),
                placed_at: o.placed_at,
                created_at: o.created_at,
                redeemed_minor: o.redeemed_minor,
                paid_minor: o.cashback_minor,
            };
            if after.is_none_or(|a| sort_key(&HistoryCursor::of(&h)) > sort_key(a)) {
                all.push(h);
            }
        }
        all.sort_by_key(|o| sort_key(&HistoryCursor::of(o)));
        all.truncate(limit);
        Ok(all)
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

    // ------------------------------------------------------------------ history import

    async fn import_orders(&mut self, orders: &[OrderRecord]) -> StoreResult<Vec<ImportOutcome>> {
        let mut outcomes = Vec::with_capacity(orders.len());
        for o in orders {
            if let Some(stored) = self.orders.get(&o.key) {
                outcomes.push(ImportOutcome::of_existing(
                    &stored.request_hash,
                    &o.request_hash,
                ));
                continue;
            }
            self.customers
                .entry(o.customer_id.clone())
                .or_insert_with(|| CustomerRecord {
                    id: o.customer_id.clone(),
                    email: None,
                    phone: None,
                    birthday: None,
                    segments: vec![],
                    created_at: o.placed_at,
                    balances: WalletBalances::default(),
                });
            self.orders.insert(o.key.clone(), o.clone());
            outcomes.push(ImportOutcome::Inserted);
        }
        Ok(outcomes)
    }

    // ------------------------------------------------------------ metrics and experiments

    async fn metric_customers(&mut self, facts: &mut Facts) -> StoreResult<()> {
        for c in self.customers.values() {
            let ix = facts.customer(c.id.as_str()).map_err(decode::corrupt)? as usize;
            let b = &c.balances;
            facts.customers[ix].segments = c.segments.clone();
            facts.customers[ix].liability_minor =
                b.pending_minor + b.available_minor + b.held_minor;
        }
        Ok(())
    }
    async fn metric_orders(&mut self, facts: &mut Facts) -> StoreResult<()> {
        for o in self.orders.values() {
            let customer = facts
                .customer(o.customer_id.as_str())
                .map_err(decode::corrupt)?;
            let store = match &o.store_id {
                Some(s) => Some(facts.store(s.as_str()).map_err(decode::corrupt)?),
                None => None,
            };
            let lines = o.lines.iter();
            facts.orders.push(OrderFact {
                customer,
                channel: o.key.channel,
                store,
                placed_at: o.placed_at,
                total_minor: o.total_minor,
                returned_minor: lines
                    .clone()
                    .map(|l| returned_value_minor(l.net_minor, l.line.quantity, l.returned_qty))
                    .sum(),
                cashback_minor: o.cashback_minor,
                clawed_back_minor: lines.map(|l| l.clawed_back_minor).sum(),
                lot_id: o.lot_id,
            });
        }
        Ok(())
    }
    async fn metric_redemptions(&mut self, facts: &mut Facts) -> StoreResult<()> {
        for r in self.redemptions.values() {
            if r.state != RedemptionState::Captured {
                continue;
            }
            let customer = facts
                .customer(r.customer_id.as_str())
                .map_err(decode::corrupt)?;
            let store = match &r.store_id {
                Some(s) => Some(facts.store(s.as_str()).map_err(decode::corrupt)?),
                None => None,
            };
            for a in &r.allocations {
                let amount_minor = a.captured_minor - a.restored_minor;
                if amount_minor <= 0 {
                    continue;
                }
                let earned_on = self
                    .lots
                    .get(&a.lot_id)
                    .and_then(|l| l.order.as_ref())
                    .map(|k| k.channel);
                facts.redemptions.push(RedemptionPart {
                    customer,
                    channel: r.channel,
                    store,
                    at: r.created_at,
                    earned_on,
                    amount_minor,
                });
            }
        }
        Ok(())
    }
    async fn metric_expiries(&mut self, facts: &mut Facts) -> StoreResult<()> {
        for e in self
            .journal
            .iter()
            .filter(|e| e.entry.kind == EntryKind::Expire)
        {
            let customer = facts
                .customer(e.customer_id.as_str())
                .map_err(decode::corrupt)?;
            let amount_minor = e
                .entry
                .postings
                .iter()
                .filter(|p| p.account == Account::Expired)
                .map(|p| p.amount_minor)
                .sum();
            facts.expiries.push(ExpiryFact {
                customer,
                at: e.at,
                amount_minor,
            });
        }
        Ok(())
    }
    async fn liability_moves_after(
        &mut self,
        after: DateTime<Utc>,
    ) -> StoreResult<Vec<(CustomerId, i64)>> {
        let mut sums: BTreeMap<CustomerId, i64> = BTreeMap::new();
        for e in self.journal.iter().filter(|e| e.at > after) {
            let d = e.entry.wallet_delta();
            *sums.entry(e.customer_id.clone()).or_default() +=
                d.pending_minor + d.available_minor + d.held_minor;
        }
        Ok(sums.into_iter().filter(|(_, v)| *v != 0).collect())
    }
    async fn metric_campaign_lots(
        &mut self,
        campaign: &CampaignId,
        facts: &mut Facts,
    ) -> StoreResult<()> {
        facts.campaign_read(campaign);
        for (id, lot) in &self.lots {
            for p in lot.campaigns.iter().filter(|p| p.campaign_id == *campaign) {
                facts.campaign_paid(campaign, *id, p.amount_minor);
            }
        }
        Ok(())
    }
    async fn record_assignment(
        &mut self,
        assignment: &AssignmentRecord,
    ) -> StoreResult<AssignmentRecord> {
        let key = (
            assignment.experiment_id.clone(),
            assignment.customer_id.clone(),
        );
        Ok(self
            .assignments
            .entry(key)
            .or_insert_with(|| assignment.clone())
            .clone())
    }
    async fn assignment(
        &mut self,
        experiment_id: &str,
        customer: &CustomerId,
    ) -> StoreResult<Option<AssignmentRecord>> {
        Ok(self
            .assignments
            .get(&(experiment_id.to_string(), customer.clone()))
            .cloned())
    }
    async fn assignments(&mut self, experiment_id: &str) -> StoreResult<Vec<AssignmentRecord>> {
        Ok(self
            .assignments
            .values()
            .filter(|a| a.experiment_id == experiment_id)
            .cloned()
            .collect())
    }
    async fn experiments(&mut self) -> StoreResult<Vec<ExperimentCounts>> {
        let mut out: Vec<ExperimentCounts> = Vec::new();
        for a in self.assignments.values() {
            if out
                .last()
                .is_none_or(|e| e.experiment_id != a.experiment_id)
            {
                out.push(ExperimentCounts {
                    experiment_id: a.experiment_id.clone(),
                    treatment: 0,
                    holdout: 0,
                });
            }
            let counts = out.last_mut().expect("pushed above");
            match a.arm {
                Arm::Treatment => counts.treatment += 1,
                Arm::Holdout => counts.holdout += 1,
            }
        }
        Ok(out)
    }
}
