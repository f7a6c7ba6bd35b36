//! The engine: every use case as one method, each running as one job in one transaction.

use crate::backtest::{self, BacktestReport, BacktestRequest};
use crate::campaign_admin;
use crate::campaigns::CampaignCache;
use crate::clock::Clock;
use crate::error::{AppError, AppResult, StoreError};
use crate::model::*;
use crate::orders::{ensure_customer, post_order, post_return, resolve_order};
use crate::redemptions::{self, quote_settled};
use crate::store::{
    job, ApiKeyRecord, CampaignAction, CampaignStatus, CustomerRecord, IdempotencyRecord,
    JournalEntry, Role, Store, Tx,
};
use crate::wallet::{balances_from_lots, load_ctx, settle, wallet_due};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use kembali_core::ids::{
    CampaignId, Channel, Currency, CustomerId, OrderId, RedemptionId, ReturnId, StoreId,
};
use kembali_core::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, WALLET_EXPIRATIONS_SHOWN};
use kembali_core::lots::LotState;
use kembali_core::money::BasisPoints;
use kembali_core::program::ProgramSettings;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Customers settled per scheduler job batch: big enough to fill a group commit, small
/// enough to keep one pass's memory flat.
const SETTLE_BATCH: usize = 256;
/// How often a job that lost a race (a uniqueness race with another writer, or a lock it
/// may not wait for on a store with many writers) is run again.
const CONFLICT_RETRIES: u32 = 8;
/// The longest pause between two runs of a job that lost a race; pauses double from 1 ms.
const CONFLICT_BACKOFF_MAX_MS: u64 = 32;

/// An `Idempotency-Key` and the request it came with, scoped to the caller's key.
#[derive(Debug, Clone)]
pub struct Idem {
    pub scope: String,
    pub key: String,
    pub request_hash: String,
}

/// SHA-256 of a request's canonical JSON: equal requests hash equal.
pub fn request_hash<T: Serialize>(what: &str, req: &T) -> String {
    let mut h = Sha256::new();
    h.update(what.as_bytes());
    h.update(serde_json::to_vec(req).unwrap_or_default());
    hex::encode(h.finalize())
}

pub fn secret_sha256(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub struct Engine<S> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
    campaigns: Arc<CampaignCache>,
}

impl<S> Clone for Engine<S> {
    fn clone(&self) -> Self {
        Engine {
            store: self.store.clone(),
            clock: self.clock.clone(),
            campaigns: self.campaigns.clone(),
        }
    }
}

async fn replay_idem<T: DeserializeOwned>(
    tx: &mut dyn Tx,
    idem: &Option<Idem>,
) -> AppResult<Option<T>> {
    let Some(idem) = idem else { return Ok(None) };
    match tx.idempotency(&idem.scope, &idem.key).await? {
        None => Ok(None),
        Some(r) if r.request_hash == idem.request_hash => Ok(Some(
            serde_json::from_str(&r.response).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        )),
        Some(_) => Err(AppError::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request",
        )),
    }
}

async fn record_idem<T: Serialize>(
    tx: &mut dyn Tx,
    idem: &Option<Idem>,
    out: &T,
    at: DateTime<Utc>,
) -> AppResult<()> {
    if let Some(idem) = idem {
        let record = IdempotencyRecord {
            request_hash: idem.request_hash.clone(),
            response: serde_json::to_string(out).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        };
        tx.put_idempotency(&idem.scope, &idem.key, &record, at)
            .await?;
    }
    Ok(())
}

/// Runs a write use case with `Idempotency-Key` handling in the same transaction.
macro_rules! idempotent_write {
    ($self:ident, $idem:ident, [$($var:ident),*], |$tx:ident, $ctx:ident| $body:expr) => {{
        let now = $self.now();
        $self
            .write_retrying(move || {
                let $idem = $idem.clone();
                $(let $var = $var.clone();)*
                job(move |$tx| {
                    Box::pin(async move {
                        if let Some(done) = replay_idem($tx, &$idem).await? {
                            return Ok(done);
                        }
                        let $ctx = load_ctx($tx, now).await?;
                        let out = $body;
                        record_idem($tx, &$idem, &out, now).await?;
                        Ok(out)
                    })
                })
            })
            .await
    }};
}

impl<S: Store> Engine<S> {
    pub fn new(store: Arc<S>, clock: Arc<dyn Clock>) -> Self {
        Engine {
            store,
            clock,
            campaigns: Arc::new(CampaignCache::default()),
        }
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The clock's instant at the stores' precision (microseconds), so that what an answer
    /// shows is exactly what a later read returns.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(6)
    }

    /// Runs a write job again when it lost a uniqueness race with another writer (two
    /// replicas inserting the same new customer or order): the rerun sees the winner's row.
    /// It also runs again a job the store rolled back with a failing job of its batch.
    async fn write_retrying<T: Send + 'static>(
        &self,
        make: impl Fn() -> crate::store::Job<T>,
    ) -> AppResult<T> {
        let mut attempt = 0;
        loop {
            // Only a first attempt may be rolled back with others of its batch: a job that
            // keeps meeting failing neighbours still gets through, alone.
            let answer = match attempt {
                0 => self.store.write_repeatable(make()).await,
                _ => self.store.write(make()).await,
            };
            match answer {
                Err(AppError::Store(StoreError::Conflict(_))) if attempt < CONFLICT_RETRIES => {
                    // The first retry is immediate: a lost uniqueness race is answered by
                    // replaying the winner. Later ones wait for the lock holder to commit.
                    if attempt > 0 {
                        let ms = (1u64 << attempt.min(6)).min(CONFLICT_BACKOFF_MAX_MS);
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    }
                    attempt += 1
                }
                other => return other,
            }
        }
    }

    /// Makes sure the program row exists (first run), with the default settings.
    pub async fn init(&self) -> AppResult<ProgramView> {
        let now = self.now();
        self.store
            .write(job(move |tx| {
                Box::pin(async move {
                    tx.create_program(&ProgramSettings::default(), now).await?;
                    let settings = tx.program(false).await?.ok_or_else(|| {
                        StoreError::Corrupt("the program is missing after it was created".into())
                    })?;
                    Ok(program_view(&settings))
                })
            }))
            .await
    }

    pub async fn program(&self) -> AppResult<ProgramView> {
        let now = self.now();
        self.store
            .read(job(move |tx| {
                Box::pin(async move { Ok(program_view(&load_ctx(tx, now).await?.settings)) })
            }))
            .await
    }

    pub async fn update_program(&self, req: ProgramRequest) -> AppResult<ProgramView> {
        let now = self.now();
        self.store
            .write(job(move |tx| {
                Box::pin(async move {
                    // Locked: a concurrent change of other fields is applied first, not lost.
                    let current = tx.program(true).await?.unwrap_or_default();
                    let next = apply_program(current.clone(), req)?;
                    if next.currency != current.currency && tx.has_entries().await? {
                        return Err(AppError::rejected(
                            "currency_locked",
                            Some("currency"),
                            "the currency cannot change once cashback has been earned",
                        ));
                    }
                    tx.put_program(&next, now).await?;
                    Ok(program_view(&next))
                })
            }))
            .await
    }

    // ------------------------------------------------------------ campaigns

    pub async fn create_campaign(
        &self,
        actor: &str,
        req: CampaignCreateRequest,
    ) -> AppResult<CampaignView> {
        let now = self.now();
        let actor = actor.to_string();
        self.write_retrying(move || {
            let (actor, req) = (actor.clone(), req.clone());
            job(move |tx| {
                Box::pin(async move { campaign_admin::create(tx, now, &actor, req).await })
            })
        })
        .await
    }

    pub async fn update_campaign(
        &self,
        actor: &str,
        id: CampaignId,
        req: CampaignUpdateRequest,
    ) -> AppResult<CampaignView> {
        let now = self.now();
        let actor = actor.to_string();
        self.write_retrying(move || {
            let (actor, id, req) = (actor.clone(), id.clone(), req.clone());
            job(move |tx| {
                Box::pin(async move {
                    campaign_admin::update(
                        tx,
                        now,
                        &actor,
                        &id,
                        req.definition,
                        req.expected_version,
                    )
                    .await
                })
            })
        })
        .await
    }

    /// Pause, resume or end a campaign.
    pub async fn set_campaign_status(
        &self,
        actor: &str,
        id: CampaignId,
        action: CampaignAction,
    ) -> AppResult<CampaignView> {
        let now = self.now();
        let actor = actor.to_string();
        self.write_retrying(move || {
            let (actor, id) = (actor.clone(), id.clone());
            job(move |tx| {
                Box::pin(
                    async move { campaign_admin::set_status(tx, now, &actor, &id, action).await },
                )
            })
        })
        .await
    }

    pub async fn campaign(&self, id: CampaignId) -> AppResult<CampaignView> {
        self.store
            .read(job(move |tx| {
                Box::pin(async move { campaign_admin::get(tx, &id).await })
            }))
            .await
    }

    pub async fn campaigns(&self, status: Option<CampaignStatus>) -> AppResult<CampaignList> {
        self.store
            .read(job(move |tx| {
                Box::pin(async move {
                    Ok(CampaignList {
                        campaigns: campaign_admin::list(tx, status).await?,
                    })
                })
            }))
            .await
    }

    /// Replays the stored history of a period under a draft campaign set; changes nothing.
    pub async fn backtest(&self, req: BacktestRequest) -> AppResult<BacktestReport> {
        let now = self.now();
        let started = std::time::Instant::now();
        self.store
            .read(job(move |tx| {
                Box::pin(async move {
                    let ctx = load_ctx(tx, now).await?;
                    backtest::run(tx, &ctx, &req, started).await
                })
            }))
            .await
    }

    pub async fn preview(&self, req: PreviewRequest) -> AppResult<PreviewView> {
        let now = self.now();
        self.store
            .read(job(move |tx| {
                Box::pin(async move {
                    let ctx = load_ctx(tx, now).await?;
                    campaign_admin::preview(tx, &ctx, req).await
                })
            }))
            .await
    }

    pub async fn put_customer(
        &self,
        id: CustomerId,
        req: CustomerProfileRequest,
    ) -> AppResult<CustomerView> {
        let profile = req.parse()?;
        let now = self.now();
        self.write_retrying(move || {
            let (id, email, phone, segments) = (
                id.clone(),
                profile.email.clone(),
                profile.phone.clone(),
                profile.segments.clone(),
            );
            let birthday = profile.birthday;
            job(move |tx| {
                Box::pin(async move {
                    let ctx = load_ctx(tx, now).await?;
                    let mut c = ensure_customer(tx, &ctx, &id).await?;
                    c.email = email;
                    c.phone = phone;
                    c.birthday = birthday;
                    c.segments = segments;
                    tx.update_profile(&c).await?;
                    Ok(customer_view(&c))
                })
            })
        })
        .await
    }

    pub async fn customer(&self, id: CustomerId) -> AppResult<CustomerView> {
        self.store
            .read(job(move |tx| {
                Box::pin(async move {
                    let c = tx
                        .customer(&id, false)
                        .await?
                        .ok_or_else(customer_not_found)?;
                    Ok(customer_view(&c))
                })
            }))
            .await
    }

    pub async fn post_order(&self, req: PostOrder, idem: Option<Idem>) -> AppResult<OrderReceipt> {
        let hash = request_hash("order", &req);
        let cache = self.campaigns.clone();
        idempotent_write!(self, idem, [req, hash, cache], |tx, ctx| {
            let set = cache.active(tx).await?;
            post_order(tx, &ctx, &set, req, hash).await?
        })
    }

    pub async fn post_return(
        &self,
        order_id: OrderId,
        channel: Option<Channel>,
        ret: PostReturn,
        idem: Option<Idem>,
    ) -> AppResult<ReturnReceipt> {
        let hash = request_hash("return", &ret);
        idempotent_write!(self, idem, [order_id, ret, hash], |tx, ctx| {
            let order = resolve_order(tx, &order_id, channel).await?;
            post_return(tx, &ctx, order, ret, hash).await?
        })
    }

    /// Returns every unit not yet returned, as the return `cancel`.
    pub async fn cancel_order(
        &self,
        order_id: OrderId,
        channel: Option<Channel>,
        idem: Option<Idem>,
    ) -> AppResult<ReturnReceipt> {
        let ret = PostReturn {
            return_id: ReturnId::parse("cancel").expect("a valid id"),
            lines: None,
        };
        self.post_return(order_id, channel, ret, idem).await
    }

    pub async fn quote(&self, req: QuoteRequest) -> AppResult<QuoteView> {
        let mut p = Problems::default();
        let customer = p.id("customer_id", || CustomerId::parse(req.customer_id.clone()));
        let total = p.amount(
            "order_total_minor",
            req.order_total_minor,
            1,
            kembali_core::money::MAX_AMOUNT_MINOR,
        );
        let currency = Currency::parse(req.currency.clone())
            .map_err(|m| p.push("currency", "invalid_currency", m))
            .ok();
        let (customer, total, currency) = p.finish((|| Some((customer?, total?, currency?)))())?;
        let now = self.now();
        // A quote changes no balance, but it may settle maturations that fell due, so it
        // runs as a write when the wallet has due work and as a read otherwise.
        let c2 = customer.clone();
        let c3 = currency.clone();
        let read = self
            .store
            .read(job(move |tx| {
                Box::pin(async move {
                    let ctx = load_ctx(tx, now).await?;
                    redemptions::check_currency(&ctx, &c3)?;
                    let (c, due) = wallet_due(tx, &ctx, &c2, now)
                        .await?
                        .ok_or_else(customer_not_found)?;
                    if due {
                        return Ok(None);
                    }
                    Ok(Some(redemptions::quote(
                        &ctx,
                        &c2,
                        c.balances.available_minor,
                        total,
                    )))
                })
            }))
            .await?;
        if let Some(q) = read {
            return Ok(q);
        }
        self.store
            .write(job(move |tx| {
                Box::pin(async move {
                    let ctx = load_ctx(tx, now).await?;
                    quote_settled(tx, &ctx, &customer, total).await
                })
            }))
            .await
    }

    pub async fn redeem(
        &self,
        req: PostRedemption,
        idem: Option<Idem>,
    ) -> AppResult<RedemptionView> {
        let hash = request_hash("redemption", &req);
        idempotent_write!(self, idem, [req, hash], |tx, ctx| redemptions::hold(
            tx, &ctx, req, hash
        )
        .await?)
    }

    pub async fn capture(
        &self,
        id: RedemptionId,
        amount: Option<i64>,
        caller: Caller,
        idem: Option<Idem>,
    ) -> AppResult<RedemptionView> {
        idempotent_write!(self, idem, [id, caller], |tx, ctx| redemptions::capture(
            tx, &ctx, &id, amount, &caller
        )
        .await?)
    }

    pub async fn void(
        &self,
        id: RedemptionId,
        caller: Caller,
        idem: Option<Idem>,
    ) -> AppResult<RedemptionView> {
        idempotent_write!(self, idem, [id, caller], |tx, ctx| redemptions::void(
            tx, &ctx, &id, &caller
        )
        .await?)
    }

    pub async fn redemption(&self, id: RedemptionId, caller: Caller) -> AppResult<RedemptionView> {
        let now = self.now();
        self.store
            .read(job(move |tx| {
                Box::pin(async move {
                    let ctx = load_ctx(tx, now).await?;
                    let r = tx.redemption(&id).await?.ok_or(AppError::NotFound {
                        what: "redemption",
                        field: "redemption_id",
                    })?;
                    redemptions::check_caller(&caller, &r)?;
                    Ok(redemptions::view(&ctx, &r))
                })
            }))
            .await
    }

    /// Settles the wallet's due work if it has any, so reads show the wallet as of now.
    async fn settle_if_due(&self, customer: &CustomerId) -> AppResult<()> {
        let now = self.now();
        let c = customer.clone();
        let due = self
            .store
            .read(job(move |tx| {
                Box::pin(async move {
                    let ctx = load_ctx(tx, now).await?;
                    let (_, due) = wallet_due(tx, &ctx, &c, now)
                        .await?
                        .ok_or_else(customer_not_found)?;
                    Ok(due)
                })
            }))
            .await?;
        if due {
            self.settle_customers(vec![customer.clone()], now).await?;
        }
        Ok(())
    }

    pub async fn wallet(&self, customer: CustomerId) -> AppResult<WalletView> {
        self.settle_if_due(&customer).await?;
        let now = self.now();
        self.store
            .read(job(move |tx| {
                Box::pin(async move {
                    let ctx = load_ctx(tx, now).await?;
                    let c = tx.customer(&customer, false).await?.ok_or_else(customer_not_found)?;
                    let mut lots = tx.open_lots(&customer).await?;
                    let holds = tx.held_redemptions(&customer).await?;
                    let derived = balances_from_lots(&lots, &holds, c.balances.debt_minor);
                    if derived != c.balances {
                        return Err(StoreError::Corrupt(format!(
                            "wallet {customer}: cached balances {:?} disagree with lots {derived:?}",
                            c.balances
                        ))
                        .into());
                    }
                    lots.sort_by_key(|l| (l.lot.expires_at, l.lot.id));
                    let next_expirations = lots
                        .iter()
                        .filter(|l| l.lot.state == LotState::Available)
                        .take(WALLET_EXPIRATIONS_SHOWN)
                        .map(|l| ExpirationView {
                            lot_id: l.lot.id,
                            amount_minor: l.lot.remaining_minor,
                            expires_at: l.lot.expires_at,
                        })
                        .collect();
                    lots.sort_by_key(|l| (l.lot.available_at, l.lot.id));
                    let next_availability = lots
                        .iter()
                        .filter(|l| l.lot.state == LotState::Pending)
                        .take(WALLET_EXPIRATIONS_SHOWN)
                        .map(|l| MaturationView {
                            lot_id: l.lot.id,
                            amount_minor: l.lot.remaining_minor,
                            available_at: l.lot.available_at,
                        })
                        .collect();
                    Ok(WalletView {
                        customer_id: customer.to_string(),
                        currency: ctx.settings.currency.to_string(),
                        available_minor: c.balances.available_minor,
                        pending_minor: c.balances.pending_minor,
                        held_minor: c.balances.held_minor,
                        debt_minor: c.balances.debt_minor,
                        next_expirations,
                        next_availability,
                        as_of: now,
                    })
                })
            }))
            .await
    }

    pub async fn statement(
        &self,
        customer: CustomerId,
        cursor: Option<String>,
        limit: Option<usize>,
    ) -> AppResult<StatementPage> {
        let before = parse_cursor(cursor.as_deref())?;
        let limit = page_size(limit)?;
        self.settle_if_due(&customer).await?;
        let now = self.now();
        self.store
            .read(job(move |tx| {
                Box::pin(async move {
                    let ctx = load_ctx(tx, now).await?;
                    tx.customer(&customer, false)
                        .await?
                        .ok_or_else(customer_not_found)?;
                    let mut rows = tx.statement(&customer, before, limit + 1).await?;
                    let more = rows.len() > limit;
                    rows.truncate(limit);
                    let next_cursor = if more {
                        rows.last().map(|e| e.seq.to_string())
                    } else {
                        None
                    };
                    Ok(StatementPage {
                        customer_id: customer.to_string(),
                        currency: ctx.settings.currency.to_string(),
                        entries: rows.iter().map(statement_entry).collect(),
                        next_cursor,
                    })
                })
            }))
            .await
    }

    pub async fn events(
        &self,
        cursor: Option<String>,
        limit: Option<usize>,
    ) -> AppResult<EventsPage> {
        let after = parse_cursor(cursor.as_deref())?;
        let limit = page_size(limit)?;
        self.store
            .read(job(move |tx| {
                Box::pin(async move {
                    let rows = tx.events(after, limit).await?;
                    let next_cursor = rows.last().map(|e| e.seq.to_string());
                    Ok(EventsPage {
                        events: rows
                            .into_iter()
                            .map(|e| EventView {
                                seq: e.seq,
                                at: e.at,
                                kind: e.kind,
                                customer_id: e.customer_id.map(|c| c.to_string()),
                                payload: e.payload,
                            })
                            .collect(),
                        next_cursor,
                    })
                })
            }))
            .await
    }

    pub async fn totals(&self) -> AppResult<TotalsView> {
        let now = self.now();
        self.store
            .read(job(move |tx| {
                Box::pin(async move {
                    let ctx = load_ctx(tx, now).await?;
                    let t = tx.program_totals().await?;
                    Ok(TotalsView {
                        currency: ctx.settings.currency.to_string(),
                        earned_minor: t.earned_minor,
                        pending_minor: t.pending_minor,
                        available_minor: t.available_minor,
                        held_minor: t.held_minor,
                        redeemed_minor: t.redeemed_minor,
                        expired_minor: t.expired_minor,
                        clawed_back_minor: t.clawed_back_minor,
                        debt_outstanding_minor: t.debt_outstanding_minor,
                        balanced: t.balance(),
                    })
                })
            }))
            .await
    }

    /// Settles every wallet with work due up to `until` (maturations, lapses, warnings,
    /// expiries). Returns the number of wallets settled. The scheduler calls it every tick;
    /// the test clock calls it after every advance and returns when it is done.
    pub async fn run_due_work(&self, until: DateTime<Utc>) -> AppResult<usize> {
        let settings = self.program_settings().await?;
        let warn_until = until + Duration::days(i64::from(settings.expiry_warning_days));
        let mut settled = 0;
        let mut last: Vec<CustomerId> = Vec::new();
        loop {
            let ids = self
                .store
                .read(job(move |tx| {
                    Box::pin(async move {
                        Ok(tx
                            .customers_with_due_work(until, warn_until, SETTLE_BATCH)
                            .await?)
                    })
                }))
                .await?;
            // The same batch twice means settling did not clear it (settings changed between
            // the query and the jobs): stop rather than spin; the next tick will retry.
            if ids.is_empty() || ids == last {
                return Ok(settled);
            }
            settled += ids.len();
            self.settle_customers(ids.clone(), until).await?;
            last = ids;
        }
    }

    /// One job per wallet, all in flight at once so the store can commit them together.
    async fn settle_customers(&self, ids: Vec<CustomerId>, until: DateTime<Utc>) -> AppResult<()> {
        let jobs = ids.into_iter().map(|id| {
            let store = self.store.clone();
            async move {
                store
                    .write(job(move |tx| {
                        Box::pin(async move {
                            let ctx = load_ctx(tx, until).await?;
                            // Locked by a job on this or another replica: the next tick
                            // settles it. Due work is deferred, never lost or done twice.
                            if tx.customer_unless_locked(&id).await?.is_none() {
                                return Ok(0);
                            }
                            settle(tx, &ctx, &id, until).await
                        })
                    }))
                    .await
            }
        });
        for r in futures::future::join_all(jobs).await {
            r?;
        }
        Ok(())
    }

    async fn program_settings(&self) -> AppResult<ProgramSettings> {
        let now = self.now();
        self.store
            .read(job(move |tx| {
                Box::pin(async move { Ok(load_ctx(tx, now).await?.settings) })
            }))
            .await
    }

    /// Creates an API key and returns its secret (shown once, stored only hashed).
    pub async fn create_api_key(
        &self,
        role: Role,
        channel: Option<Channel>,
        store_id: Option<StoreId>,
    ) -> AppResult<(String, ApiKeyRecord)> {
        if (role == Role::Channel) != channel.is_some() {
            return Err(AppError::invalid(
                "channel",
                "channel_required",
                "a channel key needs a channel, and only a channel key has one",
            ));
        }
        if store_id.is_some() && role != Role::Channel {
            return Err(AppError::invalid(
                "store_id",
                "store_not_allowed",
                "only a channel key is bound to a store",
            ));
        }
        let secret = format!(
            "kb_{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let record = ApiKeyRecord {
            id: format!("key_{}", uuid::Uuid::now_v7().simple()),
            secret_sha256: secret_sha256(&secret),
            role,
            channel,
            store_id,
            created_at: self.now(),
        };
        let r = record.clone();
        self.store
            .write(job(move |tx| {
                Box::pin(async move { Ok(tx.insert_api_key(&r).await?) })
            }))
            .await?;
        Ok((secret, record))
    }

    /// Makes sure `secret` is an admin key (first-run bootstrap from the environment).
    pub async fn ensure_admin_key(&self, secret: &str) -> AppResult<()> {
        let record = ApiKeyRecord {
            id: "key_bootstrap_admin".into(),
            secret_sha256: secret_sha256(secret),
            role: Role::Admin,
            channel: None,
            store_id: None,
            created_at: self.now(),
        };
        // Replicas starting together race to insert it: the loser's retry finds it.
        self.write_retrying(|| {
            let record = record.clone();
            job(move |tx| {
                Box::pin(async move {
                    if tx.api_key_by_hash(&record.secret_sha256).await?.is_none() {
                        tx.insert_api_key(&record).await?;
                    }
                    Ok(())
                })
            })
        })
        .await
    }

    pub async fn authenticate(&self, secret: &str) -> AppResult<Option<ApiKeyRecord>> {
        let hash = secret_sha256(secret);
        self.store
            .read(job(move |tx| {
                Box::pin(async move { Ok(tx.api_key_by_hash(&hash).await?) })
            }))
            .await
    }

    /// Checks one customer's cached balances against their postings and lots.
    pub async fn check_customer(&self, customer: CustomerId) -> AppResult<Vec<String>> {
        self.store
            .read(job(move |tx| {
                Box::pin(async move { check_wallet(tx, &customer).await })
            }))
            .await
    }
}

/// Every invariant of one wallet that can be checked from the store, as a list of breaches.
pub async fn check_wallet(tx: &mut dyn Tx, customer: &CustomerId) -> AppResult<Vec<String>> {
    let mut breaches = Vec::new();
    let Some(c) = tx.customer(customer, false).await? else {
        return Ok(vec![format!("{customer}: missing")]);
    };
    let sums = tx.customer_posting_sums(customer).await?;
    if sums != c.balances {
        breaches.push(format!(
            "{customer}: cached {:?} != postings {sums:?}",
            c.balances
        ));
    }
    let lots = tx.open_lots(customer).await?;
    let holds = tx.held_redemptions(customer).await?;
    let derived = balances_from_lots(&lots, &holds, c.balances.debt_minor);
    if derived != c.balances {
        breaches.push(format!(
            "{customer}: lots and holds {derived:?} != cached {:?}",
            c.balances
        ));
    }
    let b = c.balances;
    if b.available_minor < 0 || b.pending_minor < 0 || b.held_minor < 0 || b.debt_minor < 0 {
        breaches.push(format!("{customer}: negative balance {b:?}"));
    }
    Ok(breaches)
}

fn customer_not_found() -> AppError {
    AppError::NotFound {
        what: "customer",
        field: "customer_id",
    }
}

fn parse_cursor(cursor: Option<&str>) -> AppResult<Option<i64>> {
    cursor
        .map(|c| {
            c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                AppError::invalid("cursor", "invalid_cursor", "not a cursor this API returned")
            })
        })
        .transpose()
}

fn page_size(limit: Option<usize>) -> AppResult<usize> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(_) => Err(AppError::invalid(
            "limit",
            "out_of_range",
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        )),
    }
}

fn statement_entry(e: &JournalEntry) -> StatementEntry {
    let d = e.entry.wallet_delta();
    StatementEntry {
        seq: e.seq,
        at: e.at,
        kind: e.entry.kind.as_str().to_string(),
        explanation: e.entry.explanation.clone(),
        delta: BalanceDelta {
            pending_minor: d.pending_minor,
            available_minor: d.available_minor,
            held_minor: d.held_minor,
            debt_minor: d.debt_minor,
        },
        channel: e.refs.order.as_ref().map(|o| o.channel),
        order_id: e.refs.order.as_ref().map(|o| o.order_id.to_string()),
        redemption_id: e.refs.redemption_id.as_ref().map(ToString::to_string),
        return_id: e.refs.return_id.as_ref().map(ToString::to_string),
        lot_id: e.refs.lot_id,
    }
}

fn customer_view(c: &CustomerRecord) -> CustomerView {
    CustomerView {
        customer_id: c.id.to_string(),
        email: c.email.clone(),
        phone: c.phone.clone(),
        birthday: c.birthday,
        segments: c.segments.iter().map(ToString::to_string).collect(),
        created_at: c.created_at,
    }
}

pub fn program_view(s: &ProgramSettings) -> ProgramView {
    ProgramView {
        currency: s.currency.to_string(),
        base_rate_bp: s.base_rate_bp.0,
        pending_days: s.pending_days,
        expiry_days: s.expiry_days,
        expiry_warning_days: s.expiry_warning_days,
        max_redeem_share_bp: s.max_redeem_share_bp.0,
        min_order_total_to_redeem_minor: s.min_order_total_to_redeem_minor,
        hold_ttl_secs: s.hold_ttl_secs,
        clawback_policy: s.clawback_policy,
        restore_grace_days: s.restore_grace_days,
        time_zone: s.time_zone.clone(),
        holdout_share_bp: s.holdout_share_bp.0,
        holdout_salt: s.holdout_salt.clone(),
        gross_margin_bp: s.gross_margin_bp.0,
    }
}

fn apply_program(mut s: ProgramSettings, req: ProgramRequest) -> AppResult<ProgramSettings> {
    let mut p = Problems::default();
    if let Some(c) = req.currency {
        match Currency::parse(c) {
            Ok(c) => s.currency = c,
            Err(m) => p.push("currency", "invalid_currency", m),
        }
    }
    if let Some(v) = req.base_rate_bp {
        s.base_rate_bp = BasisPoints(v);
    }
    if let Some(v) = req.max_redeem_share_bp {
        s.max_redeem_share_bp = BasisPoints(v);
    }
    s.pending_days = req.pending_days.unwrap_or(s.pending_days);
    s.expiry_days = req.expiry_days.unwrap_or(s.expiry_days);
    s.expiry_warning_days = req.expiry_warning_days.unwrap_or(s.expiry_warning_days);
    s.min_order_total_to_redeem_minor = req
        .min_order_total_to_redeem_minor
        .unwrap_or(s.min_order_total_to_redeem_minor);
    s.hold_ttl_secs = req.hold_ttl_secs.unwrap_or(s.hold_ttl_secs);
    s.clawback_policy = req.clawback_policy.unwrap_or(s.clawback_policy);
    s.restore_grace_days = req.restore_grace_days.unwrap_or(s.restore_grace_days);
    s.time_zone = req.time_zone.unwrap_or(s.time_zone);
    s.holdout_share_bp = req.holdout_share_bp.map_or(s.holdout_share_bp, BasisPoints);
    s.holdout_salt = req.holdout_salt.unwrap_or(s.holdout_salt);
    s.gross_margin_bp = req.gross_margin_bp.map_or(s.gross_margin_bp, BasisPoints);
    for problem in s.problems() {
        p.push(problem.field, "out_of_range", problem.message);
    }
    p.finish(Some(s))
}
