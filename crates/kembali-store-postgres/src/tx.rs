//! The Tx port on one PostgreSQL connection inside a transaction the caller opened (a
//! writer's batch or a reader's snapshot). Every method is one statement, so one round
//! trip: rows that belong together (an order and its lines, an entry and its postings) go
//! in one statement through `UNNEST` of arrays.

use crate::db_err;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use kembali_app::error::StoreError;
use kembali_app::store::decode::{
    assignment, campaign_action, campaign_status, channel, corrupt, from_json, id, json, order_key,
    usage_row,
};
use kembali_app::store::metrics_sql;
use kembali_app::store::*;
use kembali_core::analytics::metrics::{ExpiryFact, Facts, OrderFact, RedemptionPart};
use kembali_core::ids::{
    CampaignId, Category, Channel, Currency, CustomerId, LineId, OrderId, PartnerId, RedemptionId,
    ReturnId, Segment, Sku, StoreId, Tag,
};
use kembali_core::ledger::{Account, Entry, EntryKind, Posting, ProgramTotals, WalletBalances};
use kembali_core::lots::{Lot, LotState};
use kembali_core::order::{Order, OrderLine};
use kembali_core::program::ProgramSettings;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};

/// The key of the transaction-scoped advisory lock that orders event appends (see the
/// migration's note on the outbox). Any constant unique to this use.
const EVENTS_LOCK: i64 = 0x6b65_6d62_616c_6901;

pub struct PgTx<'c> {
    conn: &'c mut PgConnection,
    /// Readers run in a read-only snapshot, where `FOR UPDATE` is refused: locks are skipped.
    read_only: bool,
}

impl<'c> PgTx<'c> {
    pub fn new(conn: &'c mut PgConnection, read_only: bool) -> Self {
        PgTx { conn, read_only }
    }
}

type R<T> = Result<T, StoreError>;

fn account(a: &str) -> R<Account> {
    Account::parse(a).ok_or_else(|| corrupt(format!("account {a}")))
}

fn key_parts(key: Option<&OrderKey>) -> (Option<&str>, Option<&str>) {
    (
        key.map(|k| k.channel.as_str()),
        key.map(|k| k.order_id.as_str()),
    )
}

fn segments(v: &[Segment]) -> Vec<String> {
    v.iter().map(|s| s.as_str().to_string()).collect()
}

#[derive(sqlx::FromRow)]
struct CustomerRow {
    id: String,
    email: Option<String>,
    phone: Option<String>,
    birthday: Option<NaiveDate>,
    segments: Vec<String>,
    created_at: DateTime<Utc>,
    pending: i64,
    available: i64,
    held: i64,
    debt: i64,
}

impl TryFrom<CustomerRow> for CustomerRecord {
    type Error = StoreError;
    fn try_from(r: CustomerRow) -> R<Self> {
        Ok(CustomerRecord {
            id: id(CustomerId::parse(r.id))?,
            email: r.email,
            phone: r.phone,
            birthday: r.birthday,
            segments: r
                .segments
                .into_iter()
                .map(|s| id(Segment::parse(s)))
                .collect::<R<_>>()?,
            created_at: r.created_at,
            balances: WalletBalances {
                pending_minor: r.pending,
                available_minor: r.available,
                held_minor: r.held,
                debt_minor: r.debt,
            },
        })
    }
}

macro_rules! lot_cols {
    () => {
        "id, customer_id, order_channel, order_id, amount, remaining, available_at, expires_at, state, created_at, expiry_warned, campaigns"
    };
}

#[derive(sqlx::FromRow)]
struct LotRow {
    id: i64,
    customer_id: String,
    order_channel: Option<String>,
    order_id: Option<String>,
    amount: i64,
    remaining: i64,
    available_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    state: String,
    created_at: DateTime<Utc>,
    expiry_warned: bool,
    campaigns: String,
}

impl TryFrom<LotRow> for LotRecord {
    type Error = StoreError;
    fn try_from(r: LotRow) -> R<Self> {
        Ok(LotRecord {
            lot: Lot {
                id: r.id,
                amount_minor: r.amount,
                remaining_minor: r.remaining,
                available_at: r.available_at,
                expires_at: r.expires_at,
                state: LotState::parse(&r.state)
                    .ok_or_else(|| corrupt(format!("lot state {}", r.state)))?,
            },
            customer_id: id(CustomerId::parse(r.customer_id))?,
            order: order_key(r.order_channel, r.order_id)?,
            created_at: r.created_at,
            expiry_warned: r.expiry_warned,
            campaigns: stored::lot_campaigns_from(&r.campaigns)?,
        })
    }
}

macro_rules! redemption_cols {
    () => {
        "id, customer_id, channel, store_id, state, amount, captured, order_total, created_at, expires_at, request_hash, order_channel, order_id, allocations"
    };
}

#[derive(sqlx::FromRow)]
struct RedemptionRow {
    id: String,
    customer_id: String,
    channel: String,
    store_id: Option<String>,
    state: String,
    amount: i64,
    captured: i64,
    order_total: i64,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    request_hash: String,
    order_channel: Option<String>,
    order_id: Option<String>,
    allocations: String,
}

impl TryFrom<RedemptionRow> for RedemptionRecord {
    type Error = StoreError;
    fn try_from(r: RedemptionRow) -> R<Self> {
        Ok(RedemptionRecord {
            id: id(RedemptionId::parse(r.id))?,
            customer_id: id(CustomerId::parse(r.customer_id))?,
            channel: channel(&r.channel)?,
            store_id: r.store_id.map(|s| id(StoreId::parse(s))).transpose()?,
            state: RedemptionState::parse(&r.state)
                .ok_or_else(|| corrupt(format!("redemption state {}", r.state)))?,
            amount_minor: r.amount,
            captured_minor: r.captured,
            order_total_minor: r.order_total,
            created_at: r.created_at,
            expires_at: r.expires_at,
            request_hash: r.request_hash,
            order: order_key(r.order_channel, r.order_id)?,
            allocations: from_json(&r.allocations)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct LineRow {
    line_id: String,
    sku: String,
    category: String,
    tags: Vec<String>,
    quantity: i64,
    unit_price: i64,
    discount: i64,
    net: i64,
    redeemed: i64,
    cashback: i64,
    returned_qty: i64,
    clawed_back: i64,
    restored: i64,
    explanation: String,
    rules: String,
}

impl TryFrom<LineRow> for LineRecord {
    type Error = StoreError;
    fn try_from(r: LineRow) -> R<Self> {
        Ok(LineRecord {
            line: OrderLine {
                line_id: id(LineId::parse(r.line_id))?,
                sku: id(Sku::parse(r.sku))?,
                category: id(Category::parse(r.category))?,
                tags: r
                    .tags
                    .into_iter()
                    .map(|t| id(Tag::parse(t)))
                    .collect::<R<_>>()?,
                quantity: r.quantity,
                unit_price_minor: r.unit_price,
                discount_minor: r.discount,
            },
            net_minor: r.net,
            redeemed_minor: r.redeemed,
            cashback_minor: r.cashback,
            returned_qty: r.returned_qty,
            clawed_back_minor: r.clawed_back,
            restored_minor: r.restored,
            explanation: r.explanation,
            rules: stored::rules_from(&r.rules)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    customer_id: String,
    store_id: Option<String>,
    currency: String,
    placed_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    redemption_id: Option<String>,
    redeemed: i64,
    cashback: i64,
    total: i64,
    lot_id: Option<i64>,
    request_hash: String,
    available_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    partner_id: Option<String>,
    campaigns: String,
}

/// A journal row with its postings folded in by the query.
#[derive(sqlx::FromRow)]
struct JournalRow {
    seq: i64,
    at: DateTime<Utc>,
    customer_id: String,
    asset: String,
    kind: String,
    explanation: String,
    order_channel: Option<String>,
    order_id: Option<String>,
    redemption_id: Option<String>,
    return_id: Option<String>,
    lot_id: Option<i64>,
    accounts: Vec<String>,
    amounts: Vec<i64>,
}

impl TryFrom<JournalRow> for JournalEntry {
    type Error = StoreError;
    fn try_from(r: JournalRow) -> R<Self> {
        let postings = r
            .accounts
            .iter()
            .zip(&r.amounts)
            .map(|(a, amount)| {
                Ok(Posting {
                    account: account(a)?,
                    amount_minor: *amount,
                })
            })
            .collect::<R<_>>()?;
        Ok(JournalEntry {
            seq: r.seq,
            at: r.at,
            customer_id: id(CustomerId::parse(r.customer_id))?,
            asset: r.asset,
            entry: Entry {
                kind: EntryKind::parse(&r.kind)
                    .ok_or_else(|| corrupt(format!("entry kind {}", r.kind)))?,
                postings,
                explanation: r.explanation,
            },
            refs: EntryRefs {
                order: order_key(r.order_channel, r.order_id)?,
                redemption_id: r
                    .redemption_id
                    .map(|x| id(RedemptionId::parse(x)))
                    .transpose()?,
                return_id: r.return_id.map(|x| id(ReturnId::parse(x))).transpose()?,
                lot_id: r.lot_id,
            },
        })
    }
}

/// A campaign's current version with the campaign row's own columns.
macro_rules! campaign_select {
    () => {
        "SELECT v.campaign_id, v.version, v.status, v.action, v.definition, v.changes, v.actor, v.at,
                c.created_at AS campaign_created_at, c.budget_spent
         FROM campaigns c JOIN campaign_versions v ON v.campaign_id = c.id AND v.version = c.version"
    };
}

/// Campaign versions are `u32` in the port and `INTEGER` in the schema.
fn version_to_db(version: u32) -> R<i32> {
    i32::try_from(version).map_err(|_| corrupt(format!("campaign version {version} out of range")))
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    campaign_id: String,
    version: i32,
    status: String,
    action: String,
    definition: String,
    changes: String,
    actor: String,
    at: DateTime<Utc>,
}

impl TryFrom<VersionRow> for CampaignVersionRecord {
    type Error = StoreError;
    fn try_from(r: VersionRow) -> R<Self> {
        Ok(CampaignVersionRecord {
            campaign_id: id(CampaignId::parse(r.campaign_id))?,
            version: u32::try_from(r.version)
                .map_err(|_| corrupt(format!("campaign version {}", r.version)))?,
            status: campaign_status(&r.status)?,
            action: campaign_action(&r.action)?,
            definition: from_json(&r.definition)?,
            changes: from_json(&r.changes)?,
            actor: r.actor,
            at: r.at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct CampaignRow {
    #[sqlx(flatten)]
    version: VersionRow,
    campaign_created_at: DateTime<Utc>,
    budget_spent: i64,
}

impl TryFrom<CampaignRow> for CampaignRecord {
    type Error = StoreError;
    fn try_from(r: CampaignRow) -> R<Self> {
        Ok(CampaignRecord {
            current: r.version.try_into()?,
            created_at: r.campaign_created_at,
            budget_spent_minor: r.budget_spent,
        })
    }
}

/// The order history's page: one row per order, its lines folded into arrays (in line order)
/// by the query. Text sorts with `COLLATE "C"` (bytes, like the other adapters) whatever
/// the database's collation, and the cursor compares the same way the page is ordered.
macro_rules! order_history_sql {
    ($after:literal) => {
        concat!(
            "SELECT o.channel, o.order_id, o.customer_id, o.store_id, o.currency, o.placed_at, o.created_at,
                    o.redeemed, o.cashback, o.partner_id,
                    l.line_ids, l.skus, l.categories, l.tags, l.quantities, l.unit_prices, l.discounts
             FROM (SELECT channel, order_id, customer_id, store_id, currency, placed_at, created_at, redeemed,
                          cashback, partner_id
                   FROM orders
                   WHERE placed_at < $1 ",
            $after,
            "
                   ORDER BY placed_at, created_at, channel COLLATE \"C\", order_id COLLATE \"C\"
                   LIMIT $2) o,
                  LATERAL (
                      SELECT COALESCE(array_agg(line_id ORDER BY line_no), '{}') AS line_ids,
                             COALESCE(array_agg(sku ORDER BY line_no), '{}') AS skus,
                             COALESCE(array_agg(category ORDER BY line_no), '{}') AS categories,
                             -- As JSON: arrays of arrays must be rectangular.
                             COALESCE(array_agg(array_to_json(tags)::text ORDER BY line_no), '{}') AS tags,
                             COALESCE(array_agg(quantity ORDER BY line_no), '{}') AS quantities,
                             COALESCE(array_agg(unit_price ORDER BY line_no), '{}') AS unit_prices,
                             COALESCE(array_agg(discount ORDER BY line_no), '{}') AS discounts
                      FROM order_lines WHERE channel = o.channel AND order_id = o.order_id) l
             ORDER BY o.placed_at, o.created_at, o.channel COLLATE \"C\", o.order_id COLLATE \"C\""
        )
    };
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    channel: String,
    order_id: String,
    customer_id: String,
    store_id: Option<String>,
    currency: String,
    placed_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    redeemed: i64,
    cashback: i64,
    partner_id: Option<String>,
    line_ids: Vec<String>,
    skus: Vec<String>,
    categories: Vec<String>,
    tags: Vec<String>,
    quantities: Vec<i64>,
    unit_prices: Vec<i64>,
    discounts: Vec<i64>,
}

impl TryFrom<HistoryRow> for HistoricalOrder {
    type Error = StoreError;
    fn try_from(r: HistoryRow) -> R<Self> {
        let n = r.line_ids.len();
        if [
            r.skus.len(),
            r.categories.len(),
            r.tags.len(),
            r.quantities.len(),
            r.unit_prices.len(),
            r.discounts.len(),
        ]
        .iter()
        .any(|&len| len != n)
        {
            return Err(corrupt(format!(
                "line columns of order {} disagree in length",
                r.order_id
            )));
        }
        let mut lines = Vec::with_capacity(n);
        let columns = r.line_ids.into_iter().zip(r.skus).zip(r.categories);
        for (i, ((line_id, sku), category)) in columns.enumerate() {
            lines.push(OrderLine {
                line_id: id(LineId::parse(line_id))?,
                sku: id(Sku::parse(sku))?,
                category: id(Category::parse(category))?,
                tags: from_json::<Vec<String>>(&r.tags[i])?
                    .into_iter()
                    .map(|t| id(Tag::parse(t)))
                    .collect::<R<_>>()?,
                quantity: r.quantities[i],
                unit_price_minor: r.unit_prices[i],
                discount_minor: r.discounts[i],
            });
        }
        Ok(HistoricalOrder {
            order: Order {
                channel: channel(&r.channel)?,
                store_id: r.store_id.map(|s| id(StoreId::parse(s))).transpose()?,
                order_id: id(OrderId::parse(r.order_id))?,
                customer_id: id(CustomerId::parse(r.customer_id))?,
                currency: Currency::parse(&r.currency).map_err(corrupt)?,
                lines,
            },
            partner_id: r.partner_id.map(|p| id(PartnerId::parse(p))).transpose()?,
            placed_at: r.placed_at,
            created_at: r.created_at,
            redeemed_minor: r.redeemed,
            paid_minor: r.cashback,
        })
    }
}

fn sums<T: Default>(rows: Vec<(String, i64)>, add: impl Fn(&mut T, Account, i64)) -> R<T> {
    let mut out = T::default();
    for (a, sum) in rows {
        add(&mut out, account(&a)?, sum);
    }
    Ok(out)
}

#[async_trait]
impl Tx for PgTx<'_> {
    async fn program(&mut self, lock: bool) -> R<Option<ProgramSettings>> {
        let sql = if lock {
            "SELECT settings FROM program WHERE id = 1 FOR UPDATE"
        } else {
            "SELECT settings FROM program WHERE id = 1"
        };
        let s: Option<String> = sqlx::query_scalar(sql)
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(db_err)?;
        s.map(|s| from_json(&s)).transpose()
    }

    async fn put_program(&mut self, settings: &ProgramSettings, at: DateTime<Utc>) -> R<()> {
        sqlx::query(
            "WITH v AS (INSERT INTO program_versions (settings, at) VALUES ($1, $2))
             INSERT INTO program (id, settings, updated_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
        )
        .bind(json(settings)?)
        .bind(at)
        .execute(&mut *self.conn)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn create_program(&mut self, settings: &ProgramSettings, at: DateTime<Utc>) -> R<bool> {
        // The insert waits for a concurrent one to end; the version is written only with it.
        let created: Option<i64> = sqlx::query_scalar(
            "WITH p AS (INSERT INTO program (id, settings, updated_at) VALUES (1, $1, $2)
                        ON CONFLICT (id) DO NOTHING RETURNING id),
                  v AS (INSERT INTO program_versions (settings, at) SELECT $1, $2 FROM p)
             SELECT id::BIGINT FROM p",
        )
        .bind(json(settings)?)
        .bind(at)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(db_err)?;
        Ok(created.is_some())
    }

    async fn has_entries(&mut self) -> R<bool> {
        // SHARE waits for every transaction that has written an entry to end, and holds off
        // new entries until this one ends: an entry still uncommitted on another replica is
        // counted, and none starts meanwhile. An entry whose writer read the settings before
        // this change and writes after it is refused by `append_entry`'s currency check.
        sqlx::query("LOCK TABLE journal IN SHARE MODE")
            .execute(&mut *self.conn)
            .await
            .map_err(db_err)?;
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM journal)")
            .fetch_one(&mut *self.conn)
            .await
            .map_err(db_err)
    }

    async fn idempotency(&mut self, scope: &str, key: &str) -> R<Option<IdempotencyRecord>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT request_hash, response FROM idempotency WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(db_err)?;
        Ok(row.map(|(request_hash, response)| IdempotencyRecord {
            request_hash,
            response,
        }))
    }

    async fn put_idempotency(
        &mut self,
        scope: &str,
        key: &str,
        record: &IdempotencyRecord,
        at: DateTime<Utc>,
    ) -> R<()> {
        sqlx::query(
            "INSERT INTO idempotency (scope, key, request_hash, response, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(scope)
        .bind(key)
        .bind(&record.request_hash)
        .bind(&record.response)
        .bind(at)
        .execute(&mut *self.conn)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn customer(&mut self, cid: &CustomerId, lock: bool) -> R<Option<CustomerRecord>> {
        // The wallet's lock: held to the end of the transaction, so every job that changes
        // this wallet, on any replica, runs after this one commits.
        let sql = if lock && !self.read_only {
            "SELECT * FROM customers WHERE id = $1 FOR UPDATE"
        } else {
            "SELECT * FROM customers WHERE id = $1"
        };
        let row: Option<CustomerRow> = sqlx::query_as(sql)
            .bind(cid.as_str())
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(db_err)?;
        row.map(CustomerRecord::try_from).transpose()
    }

    async fn customer_unless_locked(&mut self, cid: &CustomerId) -> R<Option<CustomerRecord>> {
        let row: Option<CustomerRow> =
            sqlx::query_as("SELECT * FROM customers WHERE id = $1 FOR UPDATE SKIP LOCKED")
                .bind(cid.as_str())
                .fetch_optional(&mut *self.conn)
                .await
                .map_err(db_err)?;
        row.map(CustomerRecord::try_from).transpose()
    }

    async fn insert_customer(&mut self, c: &CustomerRecord) -> R<()> {
        let b = &c.balances;
        sqlx::query(
            "INSERT INTO customers (id, email, phone, birthday, segments, created_at, pending, available, held, debt)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(c.id.as_str())
        .bind(&c.email)
        .bind(&c.phone)
        .bind(c.birthday)
        .bind(segments(&c.segments))
        .bind(c.created_at)
        .bind(b.pending_minor)
        .bind(b.available_minor)
        .bind(b.held_minor)
        .bind(b.debt_minor)
        .execute(&mut *self.conn)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn update_profile(&mut self, c: &CustomerRecord) -> R<()> {
        sqlx::query(
            "UPDATE customers SET email = $2, phone = $3, birthday = $4, segments = $5 WHERE id = $1",
        )
        .bind(c.id.as_str())
        .bind(&c.email)
        .bind(&c.phone)
        .bind(c.birthday)
        .bind(segments(&c.segments))
        .execute(&mut *self.conn)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn add_balances(&mut self, cid: &CustomerId, d: &WalletBalances) -> R<()> {
        let n = sqlx::query(
            "UPDATE customers SET pending = pending + $2, available = available + $3, held = held + $4,
                 debt = debt + $5
             WHERE id = $1",
        )
        .bind(cid.as_str())
        .bind(d.pending_minor)
        .bind(d.available_minor)
        .bind(d.held_minor)
        .bind(d.debt_minor)
        .execute(&mut *self.conn)
        .await
        .map_err(|e| match db_err(e) {
            // The CHECK (balance >= 0) refused: a bug upstream, never a client's race.
            StoreError::Conflict(m) => {
                StoreError::Corrupt(format!("a balance would go negative: {m}"))
            }
            other => other,
        })?
        .rows_affected();
        if n == 1 {
            Ok(())
        } else {
            Err(corrupt(format!("balances of missing customer {cid}")))
        }
    }

    async fn order(&mut self, key: &OrderKey) -> R<Option<OrderRecord>> {
        let row: Option<OrderRow> = sqlx::query_as(
            "SELECT customer_id, store_id, currency, placed_at, created_at, redemption_id, redeemed, cashback,
                    total, lot_id, request_hash, available_at, expires_at, partner_id, campaigns
             FROM orders WHERE channel = $1 AND order_id = $2",
        )
        .bind(key.channel.as_str())
        .bind(key.order_id.as_str())
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(db_err)?;
        let Some(o) = row else {
            return Ok(None);
        };
        let lines: Vec<LineRow> = sqlx::query_as(
            "SELECT line_id, sku, category, tags, quantity, unit_price, discount, net, redeemed, cashback,
                    returned_qty, clawed_back, restored, explanation, rules
             FROM order_lines WHERE channel = $1 AND order_id = $2 ORDER BY line_no",
        )
        .bind(key.channel.as_str())
        .bind(key.order_id.as_str())
        .fetch_all(&mut *self.conn)
        .await
        .map_err(db_err)?;
        Ok(Some(OrderRecord {
            key: key.clone(),
            customer_id: id(CustomerId::parse(o.customer_id))?,
            store_id: o.store_id.map(|s| id(StoreId::parse(s))).transpose()?,
            currency: o.currency,
            placed_at: o.placed_at,
            created_at: o.created_at,
            redemption_id: o
                .redemption_id
                .map(|r| id(RedemptionId::parse(r)))
                .transpose()?,
            redeemed_minor: o.redeemed,
            cashback_minor: o.cashback,
            total_minor: o.total,
            lot_id: o.lot_id,
            available_at: o.available_at,
            expires_at: o.expires_at,
            request_hash: o.request_hash,
            lines: lines
                .into_iter()
                .map(LineRecord::try_from)
                .collect::<R<_>>()?,
            partner_id: o.partner_id.map(|p| id(PartnerId::parse(p))).transpose()?,
            campaigns: stored::outcomes_from(&o.campaigns)?,
        }))
    }

    async fn order_channels(&mut self, order_id: &OrderId) -> R<Vec<Channel>> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT channel FROM orders WHERE order_id = $1 ORDER BY channel")
                .bind(order_id.as_str())
                .fetch_all(&mut *self.conn)
                .await
                .map_err(db_err)?;
        rows.iter().map(|c| channel(c)).collect()
    }

    async fn insert_order(&mut self, o: &OrderRecord) -> R<()> {
        let q = sqlx::query(concat!(
            "WITH o AS (",
            order_insert!(),
            ") ",
            lines_insert!()
        ));
        bind_order(
            q,
            o,
            LineColumns::of(o)?,
            stored::outcomes_json(&o.campaigns)?.into_owned(),
        )
        .execute(&mut *self.conn)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn update_order_lines(&mut self, key: &OrderKey, lines: &[LineRecord]) -> R<()> {
        let n: Vec<i32> = (0..lines.len() as i32).collect();
        let returned: Vec<i64> = lines.iter().map(|l| l.returned_qty).collect();
        let clawed: Vec<i64> = lines.iter().map(|l| l.clawed_back_minor).collect();
        let restored: Vec<i64> = lines.iter().map(|l| l.restored_minor).collect();
        sqlx::query(
            "UPDATE order_lines l SET returned_qty = t.returned_qty, clawed_back = t.clawed_back,
                 restored = t.restored
             FROM UNNEST($3::int[], $4::bigint[], $5::bigint[], $6::bigint[])
                  AS t(n, returned_qty, clawed_back, restored)
             WHERE l.channel = $1 AND l.order_id = $2 AND l.line_no = t.n",
        )
        .bind(key.channel.as_str())
        .bind(key.order_id.as_str())
        .bind(n)
        .bind(returned)
        .bind(clawed)
        .bind(restored)
        .execute(&mut *self.conn)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn return_record(
        &mut self,
        key: &OrderKey,
        return_id: &ReturnId,
    ) -> R<Option<ReturnRecord>> {
        let row: Option<(String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT request_hash, receipt, created_at FROM returns
             WHERE channel = $1 AND order_id = $2 AND return_id = $3",
        )
        .bind(key.channel.as_str())
        .bind(key.order_id.as_str())
        .bind(return_id.as_str())
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(db_err)?;
        Ok(row.map(|(request_hash, receipt, created_at)| ReturnRecord {
            order: key.clone(),
            return_id: return_id.clone(),
            request_hash,
            receipt,
            created_at,
        }))
    }

    async fn insert_return(&mut self, r: &ReturnRecord) -> R<()> {
        sqlx::query(
            "INSERT INTO returns (channel, order_id, return_id, request_hash, receipt, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(r.order.channel.as_str())
        .bind(r.order.order_id.as_str())
        .bind(r.return_id.as_str())
        .bind(&r.request_hash)
        .bind(&r.receipt)
        .bind(r.created_at)
        .execute(&mut *self.conn)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn insert_lot(&mut self, l: &LotRecord) -> R<i64> {
        let (och, oid) = key_parts(l.order.as_ref());
        sqlx::query_scalar(
            "INSERT INTO lots (customer_id, order_channel, order_id, amount, remaining, available_at, expires_at,
                 state, created_at, expiry_warned, campaigns)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(l.customer_id.as_str())
        .bind(och)
        .bind(oid)
        .bind(l.lot.amount_minor)
        .bind(l.lot.remaining_minor)
        .bind(l.lot.available_at)
        .bind(l.lot.expires_at)
        .bind(l.lot.state.as_str())
        .bind(l.created_at)
        .bind(l.expiry_warned)
        .bind(stored::lot_campaigns_json(&l.campaigns)?)
        .fetch_one(&mut *self.conn)
        .await
        .map_err(db_err)
    }

    async fn update_lot(&mut self, l: &LotRecord) -> R<()> {
        let n = sqlx::query(
            "UPDATE lots SET remaining = $2, expires_at = $3, state = $4, expiry_warned = $5 WHERE id = $1",
        )
        .bind(l.lot.id)
        .bind(l.lot.remaining_minor)
        .bind(l.lot.expires_at)
        .bind(l.lot.state.as_str())
        .bind(l.expiry_warned)
        .execute(&mut *self.conn)
        .await
        .map_err(db_err)?
        .rows_affected();
        if n == 1 {
            Ok(())
        } else {
            Err(corrupt(format!("update of missing lot {}", l.lot.id)))
        }
    }

    async fn lots_by_id(&mut self, ids: &[i64]) -> R<Vec<LotRecord>> {
        let rows: Vec<LotRow> = sqlx::query_as(concat!(
            "SELECT ",
            lot_cols!(),
            " FROM UNNEST($1::bigint[]) WITH ORDINALITY AS u(id, ord)
             JOIN lots USING (id) ORDER BY u.ord"
        ))
        .bind(ids)
        .fetch_all(&mut *self.conn)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(LotRecord::try_from).collect()
    }

    async fn open_lots(&mut self, cid: &CustomerId) -> R<Vec<LotRecord>> {
        let rows: Vec<LotRow> = sqlx::query_as(concat!(
            "SELECT ",
            lot_cols!(),
            " FROM lots
             WHERE customer_id = $1 AND state IN ('pending', 'available') AND remaining > 0 ORDER BY id"
        ))
            .bind(cid.as_str())
            .fetch_all(&mut *self.conn)
            .await
            .map_err(db_err)?;
        rows.into_iter().map(LotRecord::try_from).collect()
    }

    async fn redemption(&mut self, rid: &RedemptionId) -> R<Option<RedemptionRecord>> {
        let row: Option<RedemptionRow> = sqlx::query_as(concat!(
            "SELECT ",
            redemption_cols!(),
            " FROM redemptions WHERE id = $1"
        ))
        .bind(rid.as_str())
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(db_err)?;
        row.map(RedemptionRecord::try_from).transpose()
    }

    async fn insert_redemption(&mut self, r: &RedemptionRecord) -> R<()> {
        let (och, oid) = key_parts(r.order.as_ref());
        sqlx::query(
            "INSERT INTO redemptions (id, customer_id, channel, store_id, state, amount, captured, order_total,
                 created_at, expires_at, request_hash, order_channel, order_id, allocations)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(r.id.as_str())
        .bind(r.customer_id.as_str())
        .bind(r.channel.as_str())
        .bind(r.store_id.as_ref().map(|s| s.as_str()))
        .bind(r.state.as_str())
        .bind(r.amount_minor)
        .bind(r.captured_minor)
        .bind(r.order_total_minor)
        .bind(r.created_at)
        .bind(r.expires_at)
        .bind(&r.request_hash)
        .bind(och)
        .bind(oid)
        .bind(json(&r.allocations)?)
        .execute(&mut *self.conn)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn update_redemption(&mut self, r: &RedemptionRecord) -> R<()> {
        let (och, oid) = key_parts(r.order.as_ref());
        let n = sqlx::query(
            "UPDATE redemptions SET state = $2, captured = $3, order_channel = $4, order_id = $5, allocations = $6
             WHERE id = $1",
        )
        .bind(r.id.as_str())
        .bind(r.state.as_str())
        .bind(r.captured_minor)
        .bind(och)
        .bind(oid)
        .bind(json(&r.allocations)?)
        .execute(&mut *self.conn)
        .await
        .map_err(db_err)?
        .rows_affected();
        if n == 1 {
            Ok(())
        } else {
            Err(corrupt(format!("update of missing redemption {}", r.id)))
        }
    }

    async fn held_redemptions(&mut self, cid: &CustomerId) -> R<Vec<RedemptionRecord>> {
        let rows: Vec<RedemptionRow> = sqlx::query_as(concat!(
            "SELECT ",
            redemption_cols!(),
            " FROM redemptions WHERE customer_id = $1 AND state = 'held' ORDER BY id"
        ))
        .bind(cid.as_str())
        .fetch_all(&mut *self.conn)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(RedemptionRecord::try_from).collect()
    }

    async fn append_entry(&mut self, e: &JournalEntry) -> R<i64> {
        let refs = &e.refs;
        let (och, oid) = key_parts(refs.order.as_ref());
        let idx: Vec<i32> = (0..e.entry.postings.len() as i32).collect();
        let accounts: Vec<&str> = e
            .entry
            .postings
            .iter()
            .map(|p| p.account.as_str())
            .collect();
        let amounts: Vec<i64> = e.entry.postings.iter().map(|p| p.amount_minor).collect();
        // Written only in the program's currency as it stands now: a job that read the
        // settings before a currency change committed finds no row here, and is run again.
        let seq: Option<i64> = sqlx::query_scalar(
            "WITH j AS (
                 INSERT INTO journal (at, customer_id, asset, kind, explanation, order_channel, order_id,
                     redemption_id, return_id, lot_id)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
                 FROM program WHERE id = 1 AND currency = $3
                 RETURNING seq),
             p AS (
                 INSERT INTO postings (seq, idx, account, amount)
                 SELECT j.seq, t.idx, t.account, t.amount
                 FROM j, UNNEST($11::int[], $12::text[], $13::bigint[]) AS t(idx, account, amount))
             SELECT seq FROM j",
        )
        .bind(e.at)
        .bind(e.customer_id.as_str())
        .bind(&e.asset)
        .bind(e.entry.kind.as_str())
        .bind(&e.entry.explanation)
        .bind(och)
        .bind(oid)
        .bind(refs.redemption_id.as_ref().map(|r| r.as_str()))
        .bind(refs.return_id.as_ref().map(|r| r.as_str()))
        .bind(refs.lot_id)
        .bind(idx)
        .bind(accounts)
        .bind(amounts)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(db_err)?;
        seq.ok_or_else(|| {
            StoreError::Conflict(format!(
                "the program's currency is no longer {} (changed while the entry was written)",
                e.asset
            ))
        })
    }

    async fn append_event(&mut self, e: &EventRecord) -> R<i64> {
        sqlx::query_scalar(
            "WITH l AS (SELECT pg_advisory_xact_lock($5))
             INSERT INTO events (at, kind, customer_id, payload) SELECT $1, $2, $3, $4 FROM l
             RETURNING seq",
        )
        .bind(e.at)
        .bind(&e.kind)
        .bind(e.customer_id.as_ref().map(|c| c.as_str()))
        .bind(Json(&e.payload))
        .bind(EVENTS_LOCK)
        .fetch_one(&mut *self.conn)
        .await
        .map_err(db_err)
    }

    async fn customers_with_due_work(
        &mut self,
        until: DateTime<Utc>,
        warn_until: DateTime<Utc>,
        limit: usize,
    ) -> R<Vec<CustomerId>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT customer_id FROM lots WHERE state = 'pending' AND available_at <= $1
             UNION
             SELECT customer_id FROM lots
             WHERE state IN ('pending', 'available') AND remaining > 0
               AND (expires_at <= $1 OR (NOT expiry_warned AND expires_at <= $2))
             UNION
             SELECT customer_id FROM redemptions WHERE state = 'held' AND expires_at <= $1
             ORDER BY 1 LIMIT $3",
        )
        .bind(until)
        .bind(warn_until)
        .bind(limit as i64)
        .fetch_all(&mut *self.conn)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(|c| id(CustomerId::parse(c))).collect()
    }

    async fn statement(
        &mut self,
        cid: &CustomerId,
        before_seq: Option<i64>,
        limit: usize,
    ) -> R<Vec<JournalEntry>> {
        let rows: Vec<JournalRow> = sqlx::query_as(
            "SELECT j.*, p.accounts, p.amounts FROM journal j,
                 LATERAL (SELECT array_agg(account ORDER BY idx) AS accounts,
                                 array_agg(amount ORDER BY idx) AS amounts
                          FROM postings WHERE seq = j.seq) p
             WHERE j.customer_id = $1 AND j.seq < $2 ORDER BY j.seq DESC LIMIT $3",
        )
        .bind(cid.as_str())
        .bind(before_seq.unwrap_or(i64::MAX))
        .bind(limit as i64)
        .fetch_all(&mut *self.conn)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(JournalEntry::try_from).collect()
    }

    async fn events(&mut self, after_seq: Option<i64>, limit: usize) -> R<Vec<EventRecord>> {
        type EventRow = (
            i64,
            DateTime<Utc>,
            String,
            Option<String>,
            Json<serde_json::Value>,
        );
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT seq, at, kind, customer_id, payload FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after_seq.unwrap_or(0))
        .bind(limit as i64)
        .fetch_all(&mut *self.conn)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(seq, at, kind, cid, Json(payload))| {
                Ok(EventRecord {
                    seq,
                    at,
                    kind,
                    customer_id: cid.map(|c| id(CustomerId::parse(c))).transpose()?,
                    payload,
                })
            })
            .collect()
    }

    async fn program_totals(&mut self) -> R<ProgramTotals> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT account, SUM(amount)::BIGINT FROM postings GROUP BY account")
                .fetch_all(&mut *self.conn)
                .await
                .map_err(db_err)?;
        sums(rows, ProgramTotals::add)
    }

    async fn customer_posting_sums(&mut self, cid: &CustomerId) -> R<WalletBalances> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT p.account, SUM(p.amount)::BIGINT FROM journal j JOIN postings p ON p.seq = j.seq
             WHERE j.customer_id = $1 GROUP BY p.account",
        )
        .bind(cid.as_str())
        .fetch_all(&mut *self.conn)
        .await
        .map_err(db_err)?;
        sums(rows, WalletBalances::add)
    }

    async fn all_customer_ids(
        &mut self,
        after: Option<&CustomerId>,
        limit: usize,
    ) -> R<Vec<CustomerId>> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT id FROM customers WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after.map(|a| a.as_str()).unwrap_or(""))
                .bind(limit as i64)
                .fetch_all(&mut *self.conn)
                .await
                .map_err(db_err)?;
        rows.into_iter().map(|c| id(CustomerId::parse(c))).collect()
    }

    async fn campaign(&mut self, cid: &CampaignId, lock: bool) -> R<Option<CampaignRecord>> {
        // The lock is the campaign row's alone (OF c): versions are immutable.
        let sql = if lock && !self.read_only {
            concat!(campaign_select!(), " WHERE c.id = $1 FOR UPDATE OF c")
        } else {
            concat!(campaign_select!(), " WHERE c.id = $1")
        };
        let row: Option<CampaignRow> = sqlx::query_as(sql)
            .bind(cid.as_str())
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(db_err)?;
        row.map(CampaignRecord::try_from).transpose()
    }

    async fn campaigns(&mut self) -> R<Vec<CampaignRecord>> {
        let rows: Vec<CampaignRow> =
            sqlx::query_as(concat!(campaign_select!(), " ORDER BY c.id COLLATE \"C\""))
                .fetch_all(&mut *self.conn)
                .await
                .map_err(db_err)?;
        rows.into_iter().map(CampaignRecord::try_from).collect()
    }

    async fn campaigns_revision(&mut self) -> R<i64> {
        sqlx::query_scalar("SELECT revision FROM campaign_revision WHERE id = 1")
            .fetch_one(&mut *self.conn)
            .await
            .map_err(db_err)
    }

    async fn campaign_versions(&mut self, cid: &CampaignId) -> R<Vec<CampaignVersionRecord>> {
        let rows: Vec<VersionRow> = sqlx::query_as(
            "SELECT campaign_id, version, status, action, definition, changes, actor, at
             FROM campaign_versions WHERE campaign_id = $1 ORDER BY version",
        )
        .bind(cid.as_str())
        .fetch_all(&mut *self.conn)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(CampaignVersionRecord::try_from)
            .collect()
    }

    async fn put_campaign_version(&mut self, v: &CampaignVersionRecord) -> R<()> {
        // One statement: the version (a duplicate is a conflict on its primary key), the
        // campaign revision and the current row. The upsert leaves created_at and
        // budget_spent as they are; a budget lowered below what was spent is refused by the
        // row's CHECK.
        sqlx::query(
            "WITH v AS (
                 INSERT INTO campaign_versions (campaign_id, version, status, action, definition, changes, actor, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)),
             r AS (UPDATE campaign_revision SET revision = floor(random() * 4e18)::bigint WHERE id = 1)
             INSERT INTO campaigns (id, version, status, budget, created_at, updated_at)
             VALUES ($1, $2, $3, $9, $8, $8)
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, status = excluded.status,
                 budget = excluded.budget, updated_at = excluded.updated_at",
        )
        .bind(v.campaign_id.as_str())
        .bind(version_to_db(v.version)?)
        .bind(v.status.as_str())
        .bind(v.action.as_str())
        .bind(json(&v.definition)?)
        .bind(json(&v.changes)?)
        .bind(&v.actor)
        .bind(v.at)
        .bind(v.definition.caps.budget_minor)
        .execute(&mut *self.conn)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn lock_budgets(&mut self, ids: &[CampaignId]) -> R<Vec<(CampaignId, i64)>> {
        // Rows are locked in the ORDER BY's order (the lock sits above the sort), so every
        // order takes budgets in one order, after its customer: no two wait on each other.
        // A later job of a writer batch meets a held budget under lock_timeout, fails as a
        // conflict and is retried, like a held wallet.
        let ids: Vec<&str> = ids.iter().map(|c| c.as_str()).collect();
        let sql = if self.read_only {
            "SELECT id, budget_spent FROM campaigns WHERE id = ANY($1) ORDER BY id COLLATE \"C\""
        } else {
            "SELECT id, budget_spent FROM campaigns WHERE id = ANY($1) ORDER BY id COLLATE \"C\" FOR UPDATE"
        };
        let rows: Vec<(String, i64)> = sqlx::query_as(sql)
            .bind(ids)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(db_err)?;
        rows.into_iter()
            .map(|(cid, spent)| Ok((id(CampaignId::parse(cid))?, spent)))
            .collect()
    }

    async fn spend_budget(&mut self, cid: &CampaignId, amount_minor: i64) -> R<()> {
        let n = sqlx::query(
            "UPDATE campaigns SET budget_spent = budget_spent + $2
             WHERE id = $1 AND budget IS NOT NULL AND budget_spent + $2 <= budget",
        )
        .bind(cid.as_str())
        .bind(amount_minor)
        .execute(&mut *self.conn)
        .await
        .map_err(db_err)?
        .rows_affected();
        if n == 1 {
            Ok(())
        } else {
            Err(corrupt(format!(
                "budget of campaign {cid} would be overspent"
            )))
        }
    }

    async fn campaign_usage(&mut self, cid: &CustomerId, keys: &[UsageKey]) -> R<Vec<UsageRow>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let campaigns: Vec<&str> = keys.iter().map(|k| k.campaign_id.as_str()).collect();
        let periods: Vec<&str> = keys.iter().map(|k| k.period.as_str()).collect();
        let starts: Vec<DateTime<Utc>> = keys.iter().map(|k| k.start).collect();
        let rows: Vec<(String, String, DateTime<Utc>, i64)> = sqlx::query_as(
            "SELECT u.campaign_id, u.period, u.period_start, u.amount
             FROM UNNEST($2::text[], $3::text[], $4::timestamptz[]) AS k(campaign_id, period, period_start)
             JOIN campaign_usage u ON u.customer_id = $1 AND u.campaign_id = k.campaign_id
                 AND u.period = k.period AND u.period_start = k.period_start
             ORDER BY u.campaign_id COLLATE \"C\", u.period, u.period_start",
        )
        .bind(cid.as_str())
        .bind(campaigns)
        .bind(periods)
        .bind(starts)
        .fetch_all(&mut *self.conn)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(campaign, period, start, amount)| usage_row(campaign, &period, start, amount))
            .collect()
    }

    async fn add_campaign_usage(&mut self, cid: &CustomerId, rows: &[UsageRow]) -> R<()> {
        // Rows with the same key are summed first: ON CONFLICT DO UPDATE may touch a row
        // only once per statement.
        let campaigns: Vec<&str> = rows.iter().map(|u| u.campaign_id.as_str()).collect();
        let periods: Vec<&str> = rows.iter().map(|u| u.period.as_str()).collect();
        let starts: Vec<DateTime<Utc>> = rows.iter().map(|u| u.start).collect();
        let amounts: Vec<i64> = rows.iter().map(|u| u.amount_minor).collect();
        sqlx::query(
            "INSERT INTO campaign_usage (customer_id, campaign_id, period, period_start, amount)
             SELECT $1, t.campaign_id, t.period, t.period_start, SUM(t.amount)::BIGINT
             FROM UNNEST($2::text[], $3::text[], $4::timestamptz[], $5::bigint[])
                  AS t(campaign_id, period, period_start, amount)
             GROUP BY t.campaign_id, t.period, t.period_start
             ON CONFLICT (customer_id, campaign_id, period, period_start)
             DO UPDATE SET amount = campaign_usage.amount + excluded.amount",
        )
        .bind(cid.as_str())
        .bind(campaigns)
        .bind(periods)
        .bind(starts)
        .bind(amounts)
        .execute(&mut *self.conn)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn customer_has_orders(&mut self, cid: &CustomerId) -> R<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orders WHERE customer_id = $1)")
            .bind(cid.as_str())
            .fetch_one(&mut *self.conn)
            .await
            .map_err(db_err)
    }

    async fn category_spend(
        &mut self,
        cid: &CustomerId,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> R<Vec<(Category, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT l.category, SUM(l.net)::BIGINT FROM orders o
             JOIN order_lines l ON l.channel = o.channel AND l.order_id = o.order_id
             WHERE o.customer_id = $1 AND o.placed_at >= $2 AND o.placed_at < $3
             GROUP BY l.category ORDER BY l.category COLLATE \"C\"",
        )
        .bind(cid.as_str())
        .bind(from)
        .bind(until)
        .fetch_all(&mut *self.conn)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(c, spend)| Ok((id(Category::parse(c))?, spend)))
            .collect()
    }

    async fn order_history(
        &mut self,
        until: DateTime<Utc>,
        after: Option<&HistoryCursor>,
        limit: usize,
    ) -> R<Vec<HistoricalOrder>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let query = match after {
            // The first comparison lets orders_by_placed start the scan at the cursor; the
            // second is the exact "strictly after" on the whole sort key.
            Some(a) => sqlx::query_as(order_history_sql!(
                "AND (placed_at, created_at) >= ($3, $4)
                   AND (placed_at, created_at, channel COLLATE \"C\", order_id COLLATE \"C\") > ($3, $4, $5, $6)"
            ))
            .bind(until)
            .bind(limit)
            .bind(a.placed_at)
            .bind(a.created_at)
            .bind(a.key.channel.as_str())
            .bind(a.key.order_id.as_str()),
            None => sqlx::query_as(order_history_sql!(""))
                .bind(until)
                .bind(limit),
        };
        let rows: Vec<HistoryRow> = query.fetch_all(&mut *self.conn).await.map_err(db_err)?;
        rows.into_iter().map(HistoricalOrder::try_from).collect()
    }

    async fn api_key_by_hash(&mut self, secret_sha256: &str) -> R<Option<ApiKeyRecord>> {
        type KeyRow = (
            String,
            String,
            Option<String>,
            Option<String>,
            DateTime<Utc>,
        );
        let row: Option<KeyRow> = sqlx::query_as(
            "SELECT id, role, channel, store_id, created_at FROM api_keys WHERE secret_sha256 = $1",
        )
        .bind(secret_sha256)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(db_err)?;
        row.map(|(kid, role, ch, store, created_at)| {
            Ok(ApiKeyRecord {
                id: kid,
                secret_sha256: secret_sha256.to_string(),
                role: Role::parse(&role).ok_or_else(|| corrupt(format!("role {role}")))?,
                channel: ch.map(|c| channel(&c)).transpose()?,
                store_id: store.map(|s| id(StoreId::parse(s))).transpose()?,
                created_at,
            })
        })
        .transpose()
    }

    async fn insert_api_key(&mut self, k: &ApiKeyRecord) -> R<()> {
        sqlx::query(
            "INSERT INTO api_keys (secret_sha256, id, role, channel, store_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&k.secret_sha256)
        .bind(&k.id)
        .bind(k.role.as_str())
        .bind(k.channel.map(|c| c.as_str()))
        .bind(k.store_id.as_ref().map(|s| s.as_str()))
        .bind(k.created_at)
        .execute(&mut *self.conn)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    // ------------------------------------------------------------ metrics and experiments

    async fn metric_customers(&mut self, facts: &mut Facts) -> R<()> {
        let mut rows =
            sqlx::query("SELECT id, segments, pending + available + held FROM customers")
                .fetch(&mut *self.conn);
        while let Some(r) = rows.try_next().await.map_err(db_err)? {
            let ix = facts
                .customer(r.try_get(0).map_err(db_err)?)
                .map_err(corrupt)? as usize;
            let segments: Vec<String> = r.try_get(1).map_err(db_err)?;
            let c = &mut facts.customers[ix];
            c.segments = segments
                .into_iter()
                .map(|s| id(Segment::parse(s)))
                .collect::<R<_>>()?;
            c.liability_minor = r.try_get(2).map_err(db_err)?;
        }
        Ok(())
    }

    async fn metric_orders(&mut self, facts: &mut Facts) -> R<()> {
        let mut rows = sqlx::query(metrics_sql::ORDER_FACTS).fetch(&mut *self.conn);
        while let Some(r) = rows.try_next().await.map_err(db_err)? {
            let (customer, store) = facts
                .customer_at(r.try_get(0).map_err(db_err)?, r.try_get(2).map_err(db_err)?)
                .map_err(corrupt)?;
            facts.orders.push(OrderFact {
                customer,
                channel: channel(r.try_get(1).map_err(db_err)?)?,
                store,
                placed_at: r.try_get(3).map_err(db_err)?,
                total_minor: r.try_get(4).map_err(db_err)?,
                cashback_minor: r.try_get(5).map_err(db_err)?,
                returned_minor: r.try_get(6).map_err(db_err)?,
                clawed_back_minor: r.try_get(7).map_err(db_err)?,
                lot_id: r.try_get(8).map_err(db_err)?,
            });
        }
        Ok(())
    }

    async fn metric_redemptions(&mut self, facts: &mut Facts) -> R<()> {
        let mut rows = sqlx::query(
            "SELECT r.customer_id, r.channel, r.store_id, r.created_at, l.order_channel, x.amount
             FROM redemptions r
             CROSS JOIN LATERAL (
                 SELECT (a->>'lot_id')::BIGINT AS lot_id,
                        (a->>'captured_minor')::BIGINT - (a->>'restored_minor')::BIGINT AS amount
                 FROM jsonb_array_elements(r.allocations::JSONB) a
             ) x
             LEFT JOIN lots l ON l.id = x.lot_id
             WHERE r.state = 'captured' AND x.amount > 0",
        )
        .fetch(&mut *self.conn);
        while let Some(r) = rows.try_next().await.map_err(db_err)? {
            let (customer, store) = facts
                .customer_at(r.try_get(0).map_err(db_err)?, r.try_get(2).map_err(db_err)?)
                .map_err(corrupt)?;
            facts.redemptions.push(RedemptionPart {
                customer,
                channel: channel(r.try_get(1).map_err(db_err)?)?,
                store,
                at: r.try_get(3).map_err(db_err)?,
                earned_on: r
                    .try_get::<Option<&str>, _>(4)
                    .map_err(db_err)?
                    .map(channel)
                    .transpose()?,
                amount_minor: r.try_get(5).map_err(db_err)?,
            });
        }
        Ok(())
    }

    async fn metric_expiries(&mut self, facts: &mut Facts) -> R<()> {
        let mut rows = sqlx::query(metrics_sql::EXPIRY_FACTS).fetch(&mut *self.conn);
        while let Some(r) = rows.try_next().await.map_err(db_err)? {
            let customer = facts
                .customer(r.try_get(0).map_err(db_err)?)
                .map_err(corrupt)?;
            facts.expiries.push(ExpiryFact {
                customer,
                at: r.try_get(1).map_err(db_err)?,
                amount_minor: r.try_get(2).map_err(db_err)?,
            });
        }
        Ok(())
    }

    async fn liability_moves_after(&mut self, after: DateTime<Utc>) -> R<Vec<(CustomerId, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(metrics_sql::LIABILITY_MOVES_AFTER)
            .bind(after)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(db_err)?;
        rows.into_iter()
            .map(|(c, sum)| Ok((id(CustomerId::parse(c))?, sum)))
            .collect()
    }

    async fn metric_campaign_lots(&mut self, campaign: &CampaignId, facts: &mut Facts) -> R<()> {
        facts.campaign_read(campaign);
        let [rows_form, objects_form] = stored::campaign_lot_patterns(campaign);
        let rows: Vec<(i64, String)> = sqlx::query_as(metrics_sql::CAMPAIGN_LOTS)
            .bind(rows_form)
            .bind(objects_form)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(db_err)?;
        for (lot_id, json) in rows {
            metrics_sql::add_campaign_lot(facts, campaign, lot_id, &json)?;
        }
        Ok(())
    }

    async fn record_assignment(&mut self, a: &AssignmentRecord) -> R<AssignmentRecord> {
        // One statement: the insert's row if it went in, else the row that was there (the
        // outer SELECT sees the snapshot before the insert).
        let (arm, share, at): (String, i32, DateTime<Utc>) = sqlx::query_as(
            "WITH ins AS (
                 INSERT INTO experiment_assignments
                   (experiment_id, customer_id, arm, share_bp, first_seen_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (experiment_id, customer_id) DO NOTHING
                 RETURNING arm, share_bp, first_seen_at
             )
             SELECT arm, share_bp, first_seen_at FROM ins
             UNION ALL
             SELECT arm, share_bp, first_seen_at FROM experiment_assignments
             WHERE experiment_id = $1 AND customer_id = $2
             LIMIT 1",
        )
        .bind(&a.experiment_id)
        .bind(a.customer_id.as_str())
        .bind(a.arm.as_str())
        .bind(a.share_bp.0 as i32)
        .bind(a.first_seen_at)
        .fetch_one(&mut *self.conn)
        .await
        .map_err(db_err)?;
        assignment(
            a.experiment_id.clone(),
            a.customer_id.clone(),
            &arm,
            i64::from(share),
            at,
        )
    }

    async fn assignment(
        &mut self,
        experiment_id: &str,
        customer: &CustomerId,
    ) -> R<Option<AssignmentRecord>> {
        let row: Option<(String, i32, DateTime<Utc>)> = sqlx::query_as(
            "SELECT arm, share_bp, first_seen_at FROM experiment_assignments
             WHERE experiment_id = $1 AND customer_id = $2",
        )
        .bind(experiment_id)
        .bind(customer.as_str())
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(db_err)?;
        row.map(|(arm, share, at)| {
            assignment(
                experiment_id.to_string(),
                customer.clone(),
                &arm,
                i64::from(share),
                at,
            )
        })
        .transpose()
    }

    async fn assignments(&mut self, experiment_id: &str) -> R<Vec<AssignmentRecord>> {
        let rows: Vec<(String, String, i32, DateTime<Utc>)> = sqlx::query_as(
            "SELECT customer_id, arm, share_bp, first_seen_at FROM experiment_assignments
             WHERE experiment_id = $1 ORDER BY customer_id",
        )
        .bind(experiment_id)
        .fetch_all(&mut *self.conn)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(cid, arm, share, at)| {
                assignment(
                    experiment_id.to_string(),
                    id(CustomerId::parse(cid))?,
                    &arm,
                    i64::from(share),
                    at,
                )
            })
            .collect()
    }

    async fn experiments(&mut self) -> R<Vec<ExperimentCounts>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT experiment_id,
                    COUNT(*) FILTER (WHERE arm = 'treatment'),
                    COUNT(*) FILTER (WHERE arm = 'holdout')
             FROM experiment_assignments GROUP BY experiment_id ORDER BY experiment_id",
        )
        .fetch_all(&mut *self.conn)
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(experiment_id, t, h)| ExperimentCounts {
                experiment_id,
                treatment: t as u64,
                holdout: h as u64,
            })
            .collect())
    }

    // ------------------------------------------------------------------ history import

    /// One statement per order: the customer if new, the order unless its key is stored,
    /// its lines only if the order went in, and the hash stored before (the final SELECT
    /// sees the snapshot from before the statement's own inserts).
    async fn import_orders(&mut self, orders: &[OrderRecord]) -> R<Vec<ImportOutcome>> {
        let mut outcomes = Vec::with_capacity(orders.len());
        for o in orders {
            let q = sqlx::query(concat!(
                "WITH c AS (INSERT INTO customers (id, segments, created_at) VALUES ($3, '{}', $6)
                            ON CONFLICT (id) DO NOTHING),
                      o AS (",
                order_insert!(),
                " ON CONFLICT DO NOTHING RETURNING 1),
                      l AS (",
                lines_insert!(),
                " WHERE EXISTS (SELECT 1 FROM o))
                 SELECT EXISTS (SELECT 1 FROM o),
                        (SELECT request_hash FROM orders WHERE order_id = $2 AND channel = $1)"
            ));
            let row = bind_order(
                q,
                o,
                LineColumns::of(o)?,
                stored::outcomes_json(&o.campaigns)?.into_owned(),
            )
            .fetch_one(&mut *self.conn)
            .await
            .map_err(db_err)?;
            let inserted: bool = row.try_get(0).map_err(db_err)?;
            let stored: Option<String> = row.try_get(1).map_err(db_err)?;
            outcomes.push(match (inserted, stored) {
                (true, _) => ImportOutcome::Inserted,
                (false, Some(hash)) => ImportOutcome::of_existing(&hash, &o.request_hash),
                (false, None) => return Err(corrupt("an order neither inserted nor stored")),
            });
        }
        Ok(outcomes)
    }
}

/// An order's row, parameters $1 to $15 (see [`bind_order`]).
macro_rules! order_insert {
    () => {
        "INSERT INTO orders (channel, order_id, customer_id, store_id, currency, placed_at, created_at,
             redemption_id, redeemed, cashback, total, lot_id, request_hash, available_at, expires_at,
             partner_id, campaigns)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $32, $33)"
    };
}
use order_insert;

/// The order's lines from the column arrays $16 to $31 (see [`bind_order`]).
macro_rules! lines_insert {
    () => {
        "INSERT INTO order_lines (channel, order_id, line_no, line_id, sku, category, tags, quantity,
             unit_price, discount, net, redeemed, cashback, returned_qty, clawed_back, restored,
             explanation, rules)
         SELECT $1, $2, t.n, t.line_id, t.sku, t.category,
                ARRAY(SELECT jsonb_array_elements_text(t.tags::jsonb)), t.quantity, t.unit_price,
                t.discount, t.net, t.redeemed, t.cashback, t.returned_qty, t.clawed_back,
                t.restored, t.explanation, t.rules
         FROM UNNEST($16::int[], $17::text[], $18::text[], $19::text[], $20::text[], $21::bigint[],
                     $22::bigint[], $23::bigint[], $24::bigint[], $25::bigint[], $26::bigint[],
                     $27::bigint[], $28::bigint[], $29::bigint[], $30::text[], $31::text[])
              AS t(n, line_id, sku, category, tags, quantity, unit_price, discount, net, redeemed,
                   cashback, returned_qty, clawed_back, restored, explanation, rules)"
    };
}
use lines_insert;

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds an order's row ($1–$15, $32 partner, $33 campaigns as JSON) and its lines' columns
/// ($16–$31).
fn bind_order<'q>(
    q: PgQuery<'q>,
    o: &'q OrderRecord,
    cols: LineColumns,
    campaigns: String,
) -> PgQuery<'q> {
    q.bind(o.key.channel.as_str())
        .bind(o.key.order_id.as_str())
        .bind(o.customer_id.as_str())
        .bind(o.store_id.as_ref().map(|s| s.as_str()))
        .bind(&o.currency)
        .bind(o.placed_at)
        .bind(o.created_at)
        .bind(o.redemption_id.as_ref().map(|r| r.as_str()))
        .bind(o.redeemed_minor)
        .bind(o.cashback_minor)
        .bind(o.total_minor)
        .bind(o.lot_id)
        .bind(&o.request_hash)
        .bind(o.available_at)
        .bind(o.expires_at)
        .bind(cols.n)
        .bind(cols.line_id)
        .bind(cols.sku)
        .bind(cols.category)
        .bind(cols.tags)
        .bind(cols.quantity)
        .bind(cols.unit_price)
        .bind(cols.discount)
        .bind(cols.net)
        .bind(cols.redeemed)
        .bind(cols.cashback)
        .bind(cols.returned_qty)
        .bind(cols.clawed_back)
        .bind(cols.restored)
        .bind(cols.explanation)
        .bind(cols.rules)
        .bind(o.partner_id.as_ref().map(|p| p.as_str()))
        .bind(campaigns)
}

/// An order's lines as one array per column, for `UNNEST`.
#[derive(Default)]
struct LineColumns {
    n: Vec<i32>,
    line_id: Vec<String>,
    sku: Vec<String>,
    category: Vec<String>,
    /// Each line's tags as a JSON array: PostgreSQL arrays of arrays must be rectangular.
    tags: Vec<String>,
    quantity: Vec<i64>,
    unit_price: Vec<i64>,
    discount: Vec<i64>,
    net: Vec<i64>,
    redeemed: Vec<i64>,
    cashback: Vec<i64>,
    returned_qty: Vec<i64>,
    clawed_back: Vec<i64>,
    restored: Vec<i64>,
    explanation: Vec<String>,
    rules: Vec<String>,
}

impl LineColumns {
    fn of(o: &OrderRecord) -> R<LineColumns> {
        let mut cols = LineColumns::default();
        for (i, l) in o.lines.iter().enumerate() {
            cols.push(i as i32, l)?;
        }
        Ok(cols)
    }

    fn push(&mut self, n: i32, l: &LineRecord) -> R<()> {
        let tags: Vec<&str> = l.line.tags.iter().map(|t| t.as_str()).collect();
        self.n.push(n);
        self.line_id.push(l.line.line_id.as_str().to_string());
        self.sku.push(l.line.sku.as_str().to_string());
        self.category.push(l.line.category.as_str().to_string());
        self.tags.push(json(&tags)?);
        self.quantity.push(l.line.quantity);
        self.unit_price.push(l.line.unit_price_minor);
        self.discount.push(l.line.discount_minor);
        self.net.push(l.net_minor);
        self.redeemed.push(l.redeemed_minor);
        self.cashback.push(l.cashback_minor);
        self.returned_qty.push(l.returned_qty);
        self.clawed_back.push(l.clawed_back_minor);
        self.restored.push(l.restored_minor);
        self.explanation.push(l.explanation.clone());
        self.rules.push(stored::rules_json(&l.rules)?.into_owned());
        Ok(())
    }
}
