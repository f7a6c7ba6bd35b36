//! The Tx port on one SQLite connection. Every method is one or a few cached statements;
//! transactions and savepoints are managed by the caller (the writer loop or a reader).

use crate::budgets::PendingBudgets;
use crate::db_err;
use crate::statements::{Db, Statements};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use kembali_app::error::StoreError;
use kembali_app::store::decode::{
    assignment, campaign_action, campaign_status, channel, corrupt, from_json, id, json, order_key,
};
use kembali_app::store::metrics_sql;
use kembali_app::store::*;
use kembali_core::analytics::metrics::{ExpiryFact, Facts, OrderFact, RedemptionPart};
use kembali_core::ids::{
    CampaignId, Category, Channel, Currency, CustomerId, LineId, OrderId, PartnerId, RedemptionId,
    ReturnId, Segment, Sku, StoreId, Tag,
};
use kembali_core::ledger::{Account, Entry, EntryKind, Posting, ProgramTotals, WalletBalances};
use kembali_core::lots::{Allocation, Lot, LotState};
use kembali_core::order::{Order, OrderLine};
use kembali_core::program::ProgramSettings;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// The statement that inserts an order's row, `$verb` being `INSERT` or `INSERT OR IGNORE`
/// (see [`execute_order`] for the parameters).
macro_rules! insert_order {
    ($verb:literal) => {
        concat!(
            $verb,
            " INTO orders (channel, order_id, customer_id, store_id, currency, placed_at,
                 created_at, redemption_id, redeemed, cashback, total, lot_id, request_hash,
                 available_at, expires_at, partner_id, campaigns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
        )
    };
}

/// A transaction's view of SQLite: its connection (`'w`) and, on the writer, the kept
/// statements and budget debits it borrows for one job (`'c`).
pub struct SqliteTx<'c, 'w> {
    db: Db<'c, 'w>,
    /// Customers an import in this job already made sure exist: a history names each many
    /// times, and nobody removes a customer, so each is inserted once (bounded: cleared
    /// when full, it then only costs some repeated inserts).
    imported_customers: std::collections::HashSet<String>,
    /// The writer's: its transaction's budget debits, not yet written ([`PendingBudgets`]).
    budgets: Option<&'c mut PendingBudgets>,
    /// The writer's: the program's settings as it last parsed them.
    program: Option<&'c mut ParsedProgram>,
}

/// The program's settings as last parsed, with the stored text they were parsed from.
///
/// Every write job reads the settings (`load_ctx`), and parsing their JSON was some 6,000
/// instructions of an order's job on the writer, 3 % of it. The text is still read every
/// time, and parsed again whenever it differs from the last, so a change made by anyone (a
/// job of this writer, a rolled-back one, another process) is seen at the next read.
#[derive(Default)]
pub struct ParsedProgram {
    last: Option<(String, ProgramSettings)>,
    /// How many times the settings were parsed (for tests).
    parsed: u64,
}

impl ParsedProgram {
    /// The settings stored as `text`.
    fn settings(&mut self, text: String) -> R<ProgramSettings> {
        if let Some((t, settings)) = &self.last {
            if *t == text {
                return Ok(settings.clone());
            }
        }
        let settings: ProgramSettings = from_json(&text)?;
        self.parsed += 1;
        self.last = Some((text, settings.clone()));
        Ok(settings)
    }
}

/// The most customer ids an import remembers at once (a few tens of MB).
const IMPORTED_CUSTOMERS_REMEMBERED: usize = 262_144;

impl<'c, 'w> SqliteTx<'c, 'w> {
    /// A reader's transaction: statements come from the connection's cache.
    pub fn new(conn: &'w Connection) -> Self {
        SqliteTx::on(Db::cached(conn))
    }

    fn on(db: Db<'c, 'w>) -> Self {
        SqliteTx {
            db,
            imported_customers: std::collections::HashSet::new(),
            budgets: None,
            program: None,
        }
    }

    /// Appends the program's settings (as stored) to its versions.
    fn program_version(&mut self, settings: &str, at: DateTime<Utc>) -> R<()> {
        self.db
            .prepare("INSERT INTO program_versions (settings, at) VALUES (?1, ?2)")
            .and_then(|mut st| st.execute(params![settings, micros(at)]))
            .map_err(db_err)?;
        Ok(())
    }

    /// The writer's transaction, with its jobs' budget debits so far and the settings it
    /// last parsed.
    pub fn writing(
        kept: &'c Statements<'w>,
        budgets: &'c mut PendingBudgets,
        program: &'c mut ParsedProgram,
    ) -> Self {
        SqliteTx {
            budgets: Some(budgets),
            program: Some(program),
            ..SqliteTx::on(Db::kept(kept))
        }
    }

    /// Imported orders: each one's customer if new, then the order unless its key is
    /// stored. The statements are looked up once for the whole slice.
    fn import_all(&mut self, orders: &[OrderRecord]) -> R<Vec<ImportOutcome>> {
        let db = &self.db;
        let mut customer = db
            .prepare(
                "INSERT OR IGNORE INTO customers (id, segments, created_at) VALUES (?1, '[]', ?2)",
            )
            .map_err(db_err)?;
        let mut order = db
            .prepare(insert_order!("INSERT OR IGNORE"))
            .map_err(db_err)?;
        let mut lines = db.prepare(INSERT_LINE).map_err(db_err)?;
        let mut stored = db
            .prepare("SELECT request_hash FROM orders WHERE order_id = ?1 AND channel = ?2")
            .map_err(db_err)?;
        // A customer named again is already there (created at their first order).
        let seen = &mut self.imported_customers;
        let mut outcomes = Vec::with_capacity(orders.len());
        for o in orders {
            if !seen.contains(o.customer_id.as_str()) {
                customer
                    .execute(params![o.customer_id.as_str(), micros(o.placed_at)])
                    .map_err(db_err)?;
                if seen.len() == IMPORTED_CUSTOMERS_REMEMBERED {
                    seen.clear();
                }
                seen.insert(o.customer_id.to_string());
            }
            if execute_order(&mut order, o)? {
                execute_lines(&mut lines, o)?;
                outcomes.push(ImportOutcome::Inserted);
                continue;
            }
            let hash: String = stored
                .query_row(
                    params![o.key.order_id.as_str(), o.key.channel.as_str()],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            outcomes.push(ImportOutcome::of_existing(&hash, &o.request_hash));
        }
        Ok(outcomes)
    }
}

/// The orders' secondary indexes a first load builds at its end (`Tx::import_start`), with
/// the statement that makes each exactly as the migrations do (`IF NOT EXISTS`: building
/// them is a no-op when nothing was put off). A test holds the two to the same schema.
pub(crate) const DEFERRED_ORDER_INDEXES: [(&str, &str); 2] = [
    (
        "orders_by_customer",
        "CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer_id, placed_at)",
    ),
    (
        "orders_by_placed",
        "CREATE INDEX IF NOT EXISTS orders_by_placed ON orders (placed_at, created_at, channel, order_id)",
    ),
];

/// Inserts an order's row with an `insert_order!` statement; returns whether it went in.
fn execute_order(st: &mut rusqlite::Statement<'_>, o: &OrderRecord) -> R<bool> {
    let inserted = st
        .execute(params![
            o.key.channel.as_str(),
            o.key.order_id.as_str(),
            o.customer_id.as_str(),
            o.store_id.as_ref().map(|s| s.as_str()),
            o.currency,
            micros(o.placed_at),
            micros(o.created_at),
            o.redemption_id.as_ref().map(|r| r.as_str()),
            o.redeemed_minor,
            o.cashback_minor,
            o.total_minor,
            o.lot_id,
            o.request_hash,
            o.available_at.map(micros),
            o.expires_at.map(micros),
            o.partner_id.as_ref().map(|p| p.as_str()),
            stored::outcomes_json(&o.campaigns)?,
        ])
        .map_err(db_err)?;
    Ok(inserted > 0)
}

const INSERT_LINE: &str =
    "INSERT INTO order_lines (channel, order_id, line_no, line_id, sku, category, tags,
         quantity, unit_price, discount, net, redeemed, cashback, returned_qty, clawed_back,
         restored, explanation, rules)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

/// Inserts an order's lines with the [`INSERT_LINE`] statement.
fn execute_lines(st: &mut rusqlite::Statement<'_>, o: &OrderRecord) -> R<()> {
    for (n, l) in o.lines.iter().enumerate() {
        let tags: Vec<&str> = l.line.tags.iter().map(|t| t.as_str()).collect();
        st.execute(params![
            o.key.channel.as_str(),
            o.key.order_id.as_str(),
            n as i64,
            l.line.line_id.as_str(),
            l.line.sku.as_str(),
            l.line.category.as_str(),
            json_list(&tags)?,
            l.line.quantity,
            l.line.unit_price_minor,
            l.line.discount_minor,
            l.net_minor,
            l.redeemed_minor,
            l.cashback_minor,
            l.returned_qty,
            l.clawed_back_minor,
            l.restored_minor,
            l.explanation,
            stored::rules_json(&l.rules)?,
        ])
        .map_err(db_err)?;
    }
    Ok(())
}

type R<T> = Result<T, StoreError>;

/// A list as JSON; the empty list (most tags, rules and campaigns) without serde.
fn json_list<T: serde::Serialize>(items: &[T]) -> R<std::borrow::Cow<'static, str>> {
    Ok(match items.is_empty() {
        true => "[]".into(),
        false => json(&items)?.into(),
    })
}

/// Runs a parameterless query and hands each row to `f`, without collecting them.
fn each_row(db: &Db<'_, '_>, sql: &'static str, mut f: impl FnMut(&Row<'_>) -> R<()>) -> R<()> {
    let mut st = db.prepare(sql).map_err(db_err)?;
    let mut rows = st.query([]).map_err(db_err)?;
    while let Some(r) = rows.next().map_err(db_err)? {
        f(r)?;
    }
    Ok(())
}

/// A text column read in place (no copy): ids are interned by the metric reads.
fn text<'r>(r: &'r Row<'_>, i: usize) -> R<&'r str> {
    r.get_ref(i)
        .and_then(|v| v.as_str().map_err(Into::into))
        .map_err(db_err)
}

fn opt_text<'r>(r: &'r Row<'_>, i: usize) -> R<Option<&'r str>> {
    r.get_ref(i)
        .and_then(|v| v.as_str_or_null().map_err(Into::into))
        .map_err(db_err)
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn instant(us: i64) -> R<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| corrupt("instant out of range"))
}

/// Column lists are macros, not constants, so that the statements built from them with
/// `concat!` are `&'static str`: the writer keeps its statements by their SQL's address.
macro_rules! customer_cols {
    () => {
        "id, email, phone, birthday, segments, created_at, pending, available, held, debt"
    };
}

fn customer_row(r: &Row<'_>) -> rusqlite::Result<CustomerRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        [r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?],
    ))
}

type CustomerRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    i64,
    [i64; 4],
);

fn customer_from(row: CustomerRow) -> R<CustomerRecord> {
    let (cid, email, phone, birthday, segments, created_at, b) = row;
    let segments: Vec<String> = from_json(&segments)?;
    Ok(CustomerRecord {
        id: id(CustomerId::parse(cid))?,
        email,
        phone,
        birthday: birthday
            .map(|b| NaiveDate::parse_from_str(&b, "%Y-%m-%d").map_err(corrupt))
            .transpose()?,
        segments: segments
            .into_iter()
            .map(|s| id(Segment::parse(s)))
            .collect::<R<_>>()?,
        created_at: instant(created_at)?,
        balances: WalletBalances {
            pending_minor: b[0],
            available_minor: b[1],
            held_minor: b[2],
            debt_minor: b[3],
        },
    })
}

macro_rules! lot_cols {
    () => {
        "id, customer_id, order_channel, order_id, amount, remaining, available_at, expires_at, state, created_at, expiry_warned, campaigns"
    };
}

type LotRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    i64,
    i64,
    i64,
    i64,
    String,
    i64,
    bool,
    String,
);

fn lot_row(r: &Row<'_>) -> rusqlite::Result<LotRow> {
    r.try_into()
}

fn lot_from(row: LotRow) -> R<LotRecord> {
    let (
        lid,
        cid,
        och,
        oid,
        amount,
        remaining,
        available_at,
        expires_at,
        state,
        created_at,
        warned,
        campaigns,
    ) = row;
    Ok(LotRecord {
        lot: Lot {
            id: lid,
            amount_minor: amount,
            remaining_minor: remaining,
            available_at: instant(available_at)?,
            expires_at: instant(expires_at)?,
            state: LotState::parse(&state).ok_or_else(|| corrupt(format!("lot state {state}")))?,
        },
        customer_id: id(CustomerId::parse(cid))?,
        order: order_key(och, oid)?,
        created_at: instant(created_at)?,
        expiry_warned: warned,
        campaigns: stored::lot_campaigns_from(&campaigns)?,
    })
}

macro_rules! redemption_cols {
    () => {
        "id, customer_id, channel, store_id, state, amount, captured, order_total, created_at, expires_at, request_hash, order_channel, order_id, allocations"
    };
}

type RedemptionRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    [i64; 3],
    [i64; 2],
    String,
    Option<String>,
    Option<String>,
    String,
);

fn redemption_row(r: &Row<'_>) -> rusqlite::Result<RedemptionRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        [r.get(5)?, r.get(6)?, r.get(7)?],
        [r.get(8)?, r.get(9)?],
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
    ))
}

fn redemption_from(row: RedemptionRow) -> R<RedemptionRecord> {
    let (rid, cid, ch, store, state, amounts, times, hash, och, oid, allocations) = row;
    Ok(RedemptionRecord {
        id: id(RedemptionId::parse(rid))?,
        customer_id: id(CustomerId::parse(cid))?,
        channel: channel(&ch)?,
        store_id: store.map(|s| id(StoreId::parse(s))).transpose()?,
        state: RedemptionState::parse(&state)
            .ok_or_else(|| corrupt(format!("redemption state {state}")))?,
        amount_minor: amounts[0],
        captured_minor: amounts[1],
        order_total_minor: amounts[2],
        created_at: instant(times[0])?,
        expires_at: instant(times[1])?,
        request_hash: hash,
        order: order_key(och, oid)?,
        allocations: from_json(&allocations)?,
    })
}

/// An order line from its columns: ids, tags as a JSON array, and quantity, unit price and
/// discount.
fn order_line(
    line_id: String,
    sku: String,
    category: String,
    tags: &str,
    [quantity, unit_price_minor, discount_minor]: [i64; 3],
) -> R<OrderLine> {
    let tags = if tags == "[]" {
        Vec::new()
    } else {
        from_json::<Vec<String>>(tags)?
            .into_iter()
            .map(|t| id(Tag::parse(t)))
            .collect::<R<_>>()?
    };
    Ok(OrderLine {
        line_id: id(LineId::parse(line_id))?,
        sku: id(Sku::parse(sku))?,
        category: id(Category::parse(category))?,
        tags,
        quantity,
        unit_price_minor,
        discount_minor,
    })
}

macro_rules! campaign_select {
    () => {
        "SELECT v.campaign_id, v.version, v.status, v.action, v.definition, v.changes, v.actor, v.at,
            c.created_at, c.budget_spent
     FROM campaigns c JOIN campaign_versions v ON v.campaign_id = c.id AND v.version = c.version"
    };
}

type VersionRow = (String, u32, String, String, String, String, String, i64);

fn version_row(r: &Row<'_>) -> rusqlite::Result<VersionRow> {
    r.try_into()
}

fn version_from(row: VersionRow) -> R<CampaignVersionRecord> {
    let (cid, version, status, action, definition, changes, actor, at) = row;
    Ok(CampaignVersionRecord {
        campaign_id: id(CampaignId::parse(cid))?,
        version,
        status: campaign_status(&status)?,
        action: campaign_action(&action)?,
        definition: from_json(&definition)?,
        changes: from_json(&changes)?,
        actor,
        at: instant(at)?,
    })
}

fn campaign_row(r: &Row<'_>) -> rusqlite::Result<(VersionRow, i64, i64)> {
    Ok((version_row(r)?, r.get(8)?, r.get(9)?))
}

impl SqliteTx<'_, '_> {
    /// A campaign from its row, with what this transaction debited and has not yet written.
    fn campaign_from(&self, (v, created_at, spent): (VersionRow, i64, i64)) -> R<CampaignRecord> {
        let current = version_from(v)?;
        let pending = self
            .budgets
            .as_ref()
            .map_or(0, |b| b.pending(&current.campaign_id));
        Ok(CampaignRecord {
            current,
            created_at: instant(created_at)?,
            budget_spent_minor: spent + pending,
        })
    }

    fn postings_of(&mut self, seq: i64) -> R<Vec<Posting>> {
        let mut st = self
            .db
            .prepare("SELECT account, amount FROM postings WHERE seq = ?1 ORDER BY idx")
            .map_err(db_err)?;
        let rows = st
            .query_map([seq], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(db_err)?;
        rows.map(|r| {
            let (a, amount) = r.map_err(db_err)?;
            Ok(Posting {
                account: Account::parse(&a).ok_or_else(|| corrupt(format!("account {a}")))?,
                amount_minor: amount,
            })
        })
        .collect()
    }

    fn lines_of(&mut self, key: &OrderKey) -> R<Vec<LineRecord>> {
        let mut st = self.db.prepare(
                "SELECT line_id, sku, category, tags, quantity, unit_price, discount, net, redeemed, cashback,
                        returned_qty, clawed_back, restored, explanation, rules
                 FROM order_lines WHERE channel = ?1 AND order_id = ?2 ORDER BY line_no",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map(params![key.channel.as_str(), key.order_id.as_str()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    [
                        r.get::<_, i64>(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                    ],
                    [r.get::<_, i64>(10)?, r.get(11)?, r.get(12)?],
                    (r.get::<_, String>(13)?, r.get::<_, String>(14)?),
                ))
            })
            .map_err(db_err)?;
        rows.map(|r| {
            let (line_id, sku, category, tags, n, ret, (explanation, rules)) = r.map_err(db_err)?;
            Ok(LineRecord {
                line: order_line(line_id, sku, category, &tags, [n[0], n[1], n[2]])?,
                net_minor: n[3],
                redeemed_minor: n[4],
                cashback_minor: n[5],
                returned_qty: ret[0],
                clawed_back_minor: ret[1],
                restored_minor: ret[2],
                explanation,
                rules: stored::rules_from(&rules)?,
            })
        })
        .collect()
    }

    fn journal_rows(
        &mut self,
        sql: &'static str,
        p: &[&dyn rusqlite::ToSql],
    ) -> R<Vec<JournalEntry>> {
        let mut st = self.db.prepare(sql).map_err(db_err)?;
        let rows: Vec<_> = st
            .query_map(p, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    (
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                    ),
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<String>>(9)?,
                    r.get::<_, Option<i64>>(10)?,
                ))
            })
            .map_err(db_err)?
            .collect::<Result<_, _>>()
            .map_err(db_err)?;
        drop(st);
        rows.into_iter()
            .map(
                |(seq, at, cid, asset, kind, explanation, (och, oid), rid, ret, lot)| {
                    Ok(JournalEntry {
                        seq,
                        at: instant(at)?,
                        customer_id: id(CustomerId::parse(cid))?,
                        asset,
                        entry: Entry {
                            kind: EntryKind::parse(&kind)
                                .ok_or_else(|| corrupt(format!("entry kind {kind}")))?,
                            postings: self.postings_of(seq)?,
                            explanation,
                        },
                        refs: EntryRefs {
                            order: order_key(och, oid)?,
                            redemption_id: rid.map(|r| id(RedemptionId::parse(r))).transpose()?,
                            return_id: ret.map(|r| id(ReturnId::parse(r))).transpose()?,
                            lot_id: lot,
                        },
                    })
                },
            )
            .collect()
    }
}

macro_rules! journal_cols {
    () => {
        "seq, at, customer_id, asset, kind, explanation, order_channel, order_id, redemption_id, return_id, lot_id"
    };
}

#[async_trait]
impl Tx for SqliteTx<'_, '_> {
    /// One writer: a write transaction holds the database, so `lock` needs nothing more.
    async fn program(&mut self, _lock: bool) -> R<Option<ProgramSettings>> {
        let mut st = self
            .db
            .prepare("SELECT settings FROM program WHERE id = 1")
            .map_err(db_err)?;
        let s: Option<String> = st.query_row([], |r| r.get(0)).optional().map_err(db_err)?;
        match self.program.as_deref_mut() {
            Some(parsed) => s.map(|s| parsed.settings(s)).transpose(),
            None => s.map(|s| from_json(&s)).transpose(),
        }
    }

    async fn put_program(&mut self, settings: &ProgramSettings, at: DateTime<Utc>) -> R<()> {
        let s = json(settings)?;
        self.db.prepare(
                "INSERT INTO program (id, settings, updated_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
            )
            .and_then(|mut st| st.execute(params![s, micros(at)]))
            .map_err(db_err)?;
        self.program_version(&s, at)
    }

    async fn create_program(&mut self, settings: &ProgramSettings, at: DateTime<Utc>) -> R<bool> {
        let s = json(settings)?;
        let created = self
            .db
            .prepare(
                "INSERT INTO program (id, settings, updated_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO NOTHING",
            )
            .and_then(|mut st| st.execute(params![s, micros(at)]))
            .map_err(db_err)?
            == 1;
        if created {
            self.program_version(&s, at)?;
        }
        Ok(created)
    }

    async fn has_entries(&mut self) -> R<bool> {
        self.db
            .prepare("SELECT EXISTS (SELECT 1 FROM journal)")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(db_err)
    }

    async fn idempotency(&mut self, scope: &str, key: &str) -> R<Option<IdempotencyRecord>> {
        let row: Option<(String, String)> = self
            .db
            .prepare("SELECT request_hash, response FROM idempotency WHERE scope = ?1 AND key = ?2")
            .and_then(|mut st| {
                st.query_row(params![scope, key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(db_err)?;
        row.map(|(request_hash, response)| {
            Ok(IdempotencyRecord {
                request_hash,
                response,
            })
        })
        .transpose()
    }

    async fn put_idempotency(
        &mut self,
        scope: &str,
        key: &str,
        record: &IdempotencyRecord,
        at: DateTime<Utc>,
    ) -> R<()> {
        self.db.prepare(
                "INSERT INTO idempotency (scope, key, request_hash, response, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| st.execute(params![scope, key, record.request_hash, record.response, micros(at)]))
            .map_err(db_err)?;
        Ok(())
    }

    async fn customer(&mut self, cid: &CustomerId, _lock: bool) -> R<Option<CustomerRecord>> {
        // One writer: every write transaction already holds the database's write lock.
        let sql = concat!("SELECT ", customer_cols!(), " FROM customers WHERE id = ?1");
        let row = self
            .db
            .prepare(sql)
            .and_then(|mut st| st.query_row([cid.as_str()], customer_row).optional())
            .map_err(db_err)?;
        row.map(customer_from).transpose()
    }

    async fn insert_customer(&mut self, c: &CustomerRecord) -> R<()> {
        let segments: Vec<&str> = c.segments.iter().map(|s| s.as_str()).collect();
        self.db.prepare(
                "INSERT INTO customers (id, email, phone, birthday, segments, created_at, pending, available, held, debt)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    c.id.as_str(),
                    c.email,
                    c.phone,
                    c.birthday.map(|b| b.format("%Y-%m-%d").to_string()),
                    json(&segments).unwrap_or_else(|_| "[]".into()),
                    micros(c.created_at),
                    c.balances.pending_minor,
                    c.balances.available_minor,
                    c.balances.held_minor,
                    c.balances.debt_minor,
                ])
            })
            .map_err(db_err)?;
        Ok(())
    }

    async fn update_profile(&mut self, c: &CustomerRecord) -> R<()> {
        let segments: Vec<&str> = c.segments.iter().map(|s| s.as_str()).collect();
        let segments = json(&segments)?;
        self.db.prepare("UPDATE customers SET email = ?2, phone = ?3, birthday = ?4, segments = ?5 WHERE id = ?1")
            .and_then(|mut st| {
                st.execute(params![
                    c.id.as_str(),
                    c.email,
                    c.phone,
                    c.birthday.map(|b| b.format("%Y-%m-%d").to_string()),
                    segments,
                ])
            })
            .map_err(db_err)?;
        Ok(())
    }

    async fn add_balances(&mut self, cid: &CustomerId, d: &WalletBalances) -> R<()> {
        let n = self.db.prepare(
                "UPDATE customers SET pending = pending + ?2, available = available + ?3, held = held + ?4, debt = debt + ?5
                 WHERE id = ?1",
            )
            .and_then(|mut st| {
                st.execute(params![cid.as_str(), d.pending_minor, d.available_minor, d.held_minor, d.debt_minor])
            })
            .map_err(|e| match db_err(e) {
                // The CHECK (balance >= 0) refused: a bug upstream, never a client's race.
                StoreError::Conflict(m) => StoreError::Corrupt(format!("a balance would go negative: {m}")),
                other => other,
            })?;
        if n == 1 {
            Ok(())
        } else {
            Err(corrupt(format!("balances of missing customer {cid}")))
        }
    }

    async fn order(&mut self, key: &OrderKey) -> R<Option<OrderRecord>> {
        let row = self.db.prepare(
                "SELECT customer_id, store_id, currency, placed_at, created_at, redemption_id, redeemed, cashback, total,
                        lot_id, request_hash, available_at, expires_at, partner_id, campaigns
                 FROM orders WHERE channel = ?1 AND order_id = ?2",
            )
            .and_then(|mut st| {
                st.query_row(params![key.channel.as_str(), key.order_id.as_str()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, String>(2)?,
                        [r.get::<_, i64>(3)?, r.get(4)?],
                        r.get::<_, Option<String>>(5)?,
                        [r.get::<_, i64>(6)?, r.get(7)?, r.get(8)?],
                        r.get::<_, Option<i64>>(9)?,
                        r.get::<_, String>(10)?,
                        [r.get::<_, Option<i64>>(11)?, r.get(12)?],
                        (r.get::<_, Option<String>>(13)?, r.get::<_, String>(14)?),
                    ))
                })
                .optional()
            })
            .map_err(db_err)?;
        let Some((
            cid,
            store,
            currency,
            times,
            rid,
            amounts,
            lot_id,
            hash,
            lot_times,
            (partner, campaigns),
        )) = row
        else {
            return Ok(None);
        };
        let lines = self.lines_of(key)?;
        Ok(Some(OrderRecord {
            key: key.clone(),
            customer_id: id(CustomerId::parse(cid))?,
            store_id: store.map(|s| id(StoreId::parse(s))).transpose()?,
            currency,
            placed_at: instant(times[0])?,
            created_at: instant(times[1])?,
            redemption_id: rid.map(|r| id(RedemptionId::parse(r))).transpose()?,
            redeemed_minor: amounts[0],
            cashback_minor: amounts[1],
            total_minor: amounts[2],
            lot_id,
            request_hash: hash,
            available_at: lot_times[0].map(instant).transpose()?,
            expires_at: lot_times[1].map(instant).transpose()?,
            lines,
            partner_id: partner.map(|p| id(PartnerId::parse(p))).transpose()?,
            campaigns: stored::outcomes_from(&campaigns)?,
        }))
    }

    async fn order_channels(&mut self, order_id: &OrderId) -> R<Vec<Channel>> {
        let mut st = self
            .db
            .prepare("SELECT channel FROM orders WHERE order_id = ?1 ORDER BY channel")
            .map_err(db_err)?;
        let rows = st
            .query_map([order_id.as_str()], |r| r.get::<_, String>(0))
            .map_err(db_err)?;
        rows.map(|r| channel(&r.map_err(db_err)?)).collect()
    }

    async fn insert_order(&mut self, o: &OrderRecord) -> R<()> {
        let mut order = self.db.prepare(insert_order!("INSERT")).map_err(db_err)?;
        execute_order(&mut order, o)?;
        let mut lines = self.db.prepare(INSERT_LINE).map_err(db_err)?;
        execute_lines(&mut lines, o)
    }

    async fn update_order_lines(&mut self, key: &OrderKey, lines: &[LineRecord]) -> R<()> {
        let mut st = self
            .db
            .prepare(
                "UPDATE order_lines SET returned_qty = ?4, clawed_back = ?5, restored = ?6
                 WHERE channel = ?1 AND order_id = ?2 AND line_no = ?3",
            )
            .map_err(db_err)?;
        for (n, l) in lines.iter().enumerate() {
            st.execute(params![
                key.channel.as_str(),
                key.order_id.as_str(),
                n as i64,
                l.returned_qty,
                l.clawed_back_minor,
                l.restored_minor
            ])
            .map_err(db_err)?;
        }
        Ok(())
    }

    async fn return_record(
        &mut self,
        key: &OrderKey,
        return_id: &ReturnId,
    ) -> R<Option<ReturnRecord>> {
        let row: Option<(String, String, i64)> = self.db.prepare(
                "SELECT request_hash, receipt, created_at FROM returns WHERE channel = ?1 AND order_id = ?2 AND return_id = ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![key.channel.as_str(), key.order_id.as_str(), return_id.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
            })
            .map_err(db_err)?;
        row.map(|(request_hash, receipt, at)| {
            Ok(ReturnRecord {
                order: key.clone(),
                return_id: return_id.clone(),
                request_hash,
                receipt,
                created_at: instant(at)?,
            })
        })
        .transpose()
    }

    async fn insert_return(&mut self, r: &ReturnRecord) -> R<()> {
        self.db.prepare(
                "INSERT INTO returns (channel, order_id, return_id, request_hash, receipt, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    r.order.channel.as_str(),
                    r.order.order_id.as_str(),
                    r.return_id.as_str(),
                    r.request_hash,
                    r.receipt,
                    micros(r.created_at)
                ])
            })
            .map_err(db_err)?;
        Ok(())
    }

    async fn insert_lot(&mut self, l: &LotRecord) -> R<i64> {
        let campaigns = stored::lot_campaigns_json(&l.campaigns)?;
        self.db.prepare(
                "INSERT INTO lots (customer_id, order_channel, order_id, amount, remaining, available_at, expires_at, state,
                     created_at, expiry_warned, campaigns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    l.customer_id.as_str(),
                    l.order.as_ref().map(|o| o.channel.as_str()),
                    l.order.as_ref().map(|o| o.order_id.as_str()),
                    l.lot.amount_minor,
                    l.lot.remaining_minor,
                    micros(l.lot.available_at),
                    micros(l.lot.expires_at),
                    l.lot.state.as_str(),
                    micros(l.created_at),
                    l.expiry_warned,
                    campaigns,
                ])
            })
            .map_err(db_err)?;
        Ok(self.db.conn.last_insert_rowid())
    }

    async fn update_lot(&mut self, l: &LotRecord) -> R<()> {
        let n = self.db.prepare(
                "UPDATE lots SET remaining = ?2, expires_at = ?3, state = ?4, expiry_warned = ?5 WHERE id = ?1",
            )
            .and_then(|mut st| {
                st.execute(params![
                    l.lot.id,
                    l.lot.remaining_minor,
                    micros(l.lot.expires_at),
                    l.lot.state.as_str(),
                    l.expiry_warned
                ])
            })
            .map_err(db_err)?;
        if n == 1 {
            Ok(())
        } else {
            Err(corrupt(format!("update of missing lot {}", l.lot.id)))
        }
    }

    async fn lots_by_id(&mut self, ids: &[i64]) -> R<Vec<LotRecord>> {
        let sql = concat!("SELECT ", lot_cols!(), " FROM lots WHERE id = ?1");
        let mut st = self.db.prepare(sql).map_err(db_err)?;
        let mut out = Vec::with_capacity(ids.len());
        for lid in ids {
            if let Some(row) = st.query_row([lid], lot_row).optional().map_err(db_err)? {
                out.push(lot_from(row)?);
            }
        }
        Ok(out)
    }

    async fn open_lots(&mut self, cid: &CustomerId) -> R<Vec<LotRecord>> {
        let sql = concat!("SELECT ", lot_cols!(), " FROM lots
             WHERE customer_id = ?1 AND state IN ('pending', 'available') AND remaining > 0 ORDER BY id");
        let mut st = self.db.prepare(sql).map_err(db_err)?;
        let rows = st.query_map([cid.as_str()], lot_row).map_err(db_err)?;
        rows.map(|r| lot_from(r.map_err(db_err)?)).collect()
    }

    async fn redemption(&mut self, rid: &RedemptionId) -> R<Option<RedemptionRecord>> {
        let sql = concat!(
            "SELECT ",
            redemption_cols!(),
            " FROM redemptions WHERE id = ?1"
        );
        let row = self
            .db
            .prepare(sql)
            .and_then(|mut st| st.query_row([rid.as_str()], redemption_row).optional())
            .map_err(db_err)?;
        row.map(redemption_from).transpose()
    }

    async fn insert_redemption(&mut self, r: &RedemptionRecord) -> R<()> {
        let allocations = json(&r.allocations)?;
        self.db.prepare(
                "INSERT INTO redemptions (id, customer_id, channel, store_id, state, amount, captured, order_total,
                     created_at, expires_at, request_hash, order_channel, order_id, allocations)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    r.id.as_str(),
                    r.customer_id.as_str(),
                    r.channel.as_str(),
                    r.store_id.as_ref().map(|s| s.as_str()),
                    r.state.as_str(),
                    r.amount_minor,
                    r.captured_minor,
                    r.order_total_minor,
                    micros(r.created_at),
                    micros(r.expires_at),
                    r.request_hash,
                    r.order.as_ref().map(|o| o.channel.as_str()),
                    r.order.as_ref().map(|o| o.order_id.as_str()),
                    allocations,
                ])
            })
            .map_err(db_err)?;
        Ok(())
    }

    async fn update_redemption(&mut self, r: &RedemptionRecord) -> R<()> {
        let allocations = json(&r.allocations)?;
        let n = self.db.prepare(
                "UPDATE redemptions SET state = ?2, captured = ?3, order_channel = ?4, order_id = ?5, allocations = ?6
                 WHERE id = ?1",
            )
            .and_then(|mut st| {
                st.execute(params![
                    r.id.as_str(),
                    r.state.as_str(),
                    r.captured_minor,
                    r.order.as_ref().map(|o| o.channel.as_str()),
                    r.order.as_ref().map(|o| o.order_id.as_str()),
                    allocations,
                ])
            })
            .map_err(db_err)?;
        if n == 1 {
            Ok(())
        } else {
            Err(corrupt(format!("update of missing redemption {}", r.id)))
        }
    }

    async fn held_redemptions(&mut self, cid: &CustomerId) -> R<Vec<RedemptionRecord>> {
        let sql = concat!(
            "SELECT ",
            redemption_cols!(),
            " FROM redemptions WHERE customer_id = ?1 AND state = 'held' ORDER BY id"
        );
        let mut st = self.db.prepare(sql).map_err(db_err)?;
        let rows = st
            .query_map([cid.as_str()], redemption_row)
            .map_err(db_err)?;
        rows.map(|r| redemption_from(r.map_err(db_err)?)).collect()
    }

    async fn append_entry(&mut self, e: &JournalEntry) -> R<i64> {
        let refs = &e.refs;
        self.db.prepare(
                "INSERT INTO journal (at, customer_id, asset, kind, explanation, order_channel, order_id, redemption_id,
                     return_id, lot_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    micros(e.at),
                    e.customer_id.as_str(),
                    e.asset,
                    e.entry.kind.as_str(),
                    e.entry.explanation,
                    refs.order.as_ref().map(|o| o.channel.as_str()),
                    refs.order.as_ref().map(|o| o.order_id.as_str()),
                    refs.redemption_id.as_ref().map(|r| r.as_str()),
                    refs.return_id.as_ref().map(|r| r.as_str()),
                    refs.lot_id,
                ])
            })
            .map_err(db_err)?;
        let seq = self.db.conn.last_insert_rowid();
        let mut st = self
            .db
            .prepare("INSERT INTO postings (seq, idx, account, amount) VALUES (?1, ?2, ?3, ?4)")
            .map_err(db_err)?;
        for (i, p) in e.entry.postings.iter().enumerate() {
            st.execute(params![seq, i as i64, p.account.as_str(), p.amount_minor])
                .map_err(db_err)?;
        }
        Ok(seq)
    }

    async fn append_event(&mut self, e: &EventRecord) -> R<i64> {
        let payload = json(&e.payload)?;
        self.db
            .prepare("INSERT INTO events (at, kind, customer_id, payload) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut st| {
                st.execute(params![
                    micros(e.at),
                    e.kind,
                    e.customer_id.as_ref().map(|c| c.as_str()),
                    payload
                ])
            })
            .map_err(db_err)?;
        Ok(self.db.conn.last_insert_rowid())
    }

    async fn customers_with_due_work(
        &mut self,
        until: DateTime<Utc>,
        warn_until: DateTime<Utc>,
        limit: usize,
    ) -> R<Vec<CustomerId>> {
        let mut st = self
            .db
            .prepare(
                "SELECT customer_id FROM lots WHERE state = 'pending' AND available_at <= ?1
                 UNION
                 SELECT customer_id FROM lots
                 WHERE state IN ('pending', 'available') AND remaining > 0
                   AND (expires_at <= ?1 OR (expiry_warned = 0 AND expires_at <= ?2))
                 UNION
                 SELECT customer_id FROM redemptions WHERE state = 'held' AND expires_at <= ?1
                 ORDER BY 1 LIMIT ?3",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map(
                params![micros(until), micros(warn_until), limit as i64],
                |r| r.get::<_, String>(0),
            )
            .map_err(db_err)?;
        rows.map(|r| id(CustomerId::parse(r.map_err(db_err)?)))
            .collect()
    }

    async fn statement(
        &mut self,
        cid: &CustomerId,
        before_seq: Option<i64>,
        limit: usize,
    ) -> R<Vec<JournalEntry>> {
        let sql = concat!(
            "SELECT ",
            journal_cols!(),
            " FROM journal WHERE customer_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
        );
        self.journal_rows(
            sql,
            &[
                &cid.as_str(),
                &before_seq.unwrap_or(i64::MAX),
                &(limit as i64),
            ],
        )
    }

    async fn events(&mut self, after_seq: Option<i64>, limit: usize) -> R<Vec<EventRecord>> {
        let mut st = self.db.prepare("SELECT seq, at, kind, customer_id, payload FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(db_err)?;
        let rows = st
            .query_map(params![after_seq.unwrap_or(0), limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(db_err)?;
        rows.map(|r| {
            let (seq, at, kind, cid, payload) = r.map_err(db_err)?;
            Ok(EventRecord {
                seq,
                at: instant(at)?,
                kind,
                customer_id: cid.map(|c| id(CustomerId::parse(c))).transpose()?,
                payload: from_json(&payload)?,
            })
        })
        .collect()
    }

    async fn program_totals(&mut self) -> R<ProgramTotals> {
        let mut st = self
            .db
            .prepare("SELECT account, SUM(amount) FROM postings GROUP BY account")
            .map_err(db_err)?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(db_err)?;
        let mut t = ProgramTotals::default();
        for r in rows {
            let (a, sum) = r.map_err(db_err)?;
            t.add(
                Account::parse(&a).ok_or_else(|| corrupt(format!("account {a}")))?,
                sum,
            );
        }
        Ok(t)
    }

    async fn customer_posting_sums(&mut self, cid: &CustomerId) -> R<WalletBalances> {
        let mut st = self
            .db
            .prepare(
                "SELECT p.account, SUM(p.amount) FROM journal j JOIN postings p ON p.seq = j.seq
                 WHERE j.customer_id = ?1 GROUP BY p.account",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map([cid.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(db_err)?;
        let mut b = WalletBalances::default();
        for r in rows {
            let (a, sum) = r.map_err(db_err)?;
            b.add(
                Account::parse(&a).ok_or_else(|| corrupt(format!("account {a}")))?,
                sum,
            );
        }
        Ok(b)
    }

    async fn all_customer_ids(
        &mut self,
        after: Option<&CustomerId>,
        limit: usize,
    ) -> R<Vec<CustomerId>> {
        let mut st = self
            .db
            .prepare("SELECT id FROM customers WHERE id > ?1 ORDER BY id LIMIT ?2")
            .map_err(db_err)?;
        let rows = st
            .query_map(
                params![after.map(|a| a.as_str()).unwrap_or(""), limit as i64],
                |r| r.get::<_, String>(0),
            )
            .map_err(db_err)?;
        rows.map(|r| id(CustomerId::parse(r.map_err(db_err)?)))
            .collect()
    }

    async fn campaign(&mut self, cid: &CampaignId, _lock: bool) -> R<Option<CampaignRecord>> {
        let sql = concat!(campaign_select!(), " WHERE c.id = ?1");
        let mut st = self.db.prepare(sql).map_err(db_err)?;
        let row = st
            .query_row([cid.as_str()], campaign_row)
            .optional()
            .map_err(db_err)?;
        row.map(|r| self.campaign_from(r)).transpose()
    }

    async fn campaigns(&mut self) -> R<Vec<CampaignRecord>> {
        let sql = concat!(campaign_select!(), " ORDER BY c.id");
        let mut st = self.db.prepare(sql).map_err(db_err)?;
        let rows = st.query_map([], campaign_row).map_err(db_err)?;
        rows.map(|r| self.campaign_from(r.map_err(db_err)?))
            .collect()
    }

    async fn campaigns_revision(&mut self) -> R<i64> {
        self.db
            .prepare("SELECT revision FROM campaign_revision WHERE id = 1")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(db_err)
    }

    async fn campaign_versions(&mut self, cid: &CampaignId) -> R<Vec<CampaignVersionRecord>> {
        let mut st = self
            .db
            .prepare(
                "SELECT campaign_id, version, status, action, definition, changes, actor, at
                 FROM campaign_versions WHERE campaign_id = ?1 ORDER BY version",
            )
            .map_err(db_err)?;
        let rows = st.query_map([cid.as_str()], version_row).map_err(db_err)?;
        rows.map(|r| version_from(r.map_err(db_err)?)).collect()
    }

    async fn put_campaign_version(&mut self, v: &CampaignVersionRecord) -> R<()> {
        // The version may change the budget's limit.
        if let Some(b) = self.budgets.as_mut() {
            b.forget_row(&v.campaign_id);
        }
        let definition = json(&v.definition)?;
        let changes = json(&v.changes)?;
        self.db.prepare(
                "INSERT INTO campaign_versions (campaign_id, version, status, action, definition, changes, actor, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    v.campaign_id.as_str(),
                    v.version,
                    v.status.as_str(),
                    v.action.as_str(),
                    definition,
                    changes,
                    v.actor,
                    micros(v.at)
                ])
            })
            .map_err(db_err)?;
        self.db.prepare(
                "INSERT INTO campaigns (id, version, status, budget, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version, status = excluded.status,
                     budget = excluded.budget, updated_at = excluded.updated_at",
            )
            .and_then(|mut st| {
                st.execute(params![
                    v.campaign_id.as_str(),
                    v.version,
                    v.status.as_str(),
                    v.definition.caps.budget_minor,
                    micros(v.at)
                ])
            })
            .map_err(db_err)?;
        self.db
            .prepare("UPDATE campaign_revision SET revision = random() WHERE id = 1")
            .and_then(|mut st| st.execute([]))
            .map_err(db_err)?;
        Ok(())
    }

    async fn lock_budgets(&mut self, ids: &[CampaignId]) -> R<Vec<(CampaignId, i64)>> {
        // One writer: the transaction already excludes every other order. A reader reads
        // the rows as they are.
        let mut rows_as_they_are = PendingBudgets::default();
        let budgets = match self.budgets.as_deref_mut() {
            Some(b) => b,
            None => &mut rows_as_they_are,
        };
        let mut out = Vec::with_capacity(ids.len());
        for cid in ids {
            if let Some((spent, _)) = budgets.spent(&self.db, cid)? {
                out.push((cid.clone(), spent));
            }
        }
        Ok(out)
    }

    async fn spend_budget(&mut self, cid: &CampaignId, amount_minor: i64) -> R<()> {
        match self.budgets.as_mut() {
            Some(b) => b.debit(&self.db, cid, amount_minor),
            None => Err(StoreError::Unavailable(
                "a budget is debited only in a write transaction".into(),
            )),
        }
    }

    async fn campaign_usage(&mut self, cid: &CustomerId, keys: &[UsageKey]) -> R<Vec<UsageRow>> {
        let mut st = self
            .db
            .prepare(
                "SELECT amount FROM campaign_usage WHERE customer_id = ?1 AND campaign_id = ?2
                     AND period = ?3 AND period_start = ?4",
            )
            .map_err(db_err)?;
        let mut rows = Vec::with_capacity(keys.len());
        for k in keys {
            let amount: Option<i64> = st
                .query_row(
                    params![
                        cid.as_str(),
                        k.campaign_id.as_str(),
                        k.period.as_str(),
                        micros(k.start)
                    ],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
            if let Some(amount_minor) = amount {
                rows.push(UsageRow {
                    campaign_id: k.campaign_id.clone(),
                    period: k.period,
                    start: k.start,
                    amount_minor,
                });
            }
        }
        Ok(rows)
    }

    async fn add_campaign_usage(&mut self, cid: &CustomerId, rows: &[UsageRow]) -> R<()> {
        let mut st = self.db.prepare(
                "INSERT INTO campaign_usage (customer_id, campaign_id, period, period_start, amount)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO UPDATE SET amount = amount + excluded.amount",
            )
            .map_err(db_err)?;
        for u in rows {
            st.execute(params![
                cid.as_str(),
                u.campaign_id.as_str(),
                u.period.as_str(),
                micros(u.start),
                u.amount_minor
            ])
            .map_err(db_err)?;
        }
        Ok(())
    }

    async fn customer_has_orders(&mut self, cid: &CustomerId) -> R<bool> {
        self.db
            .prepare("SELECT EXISTS (SELECT 1 FROM orders WHERE customer_id = ?1)")
            .and_then(|mut st| st.query_row([cid.as_str()], |r| r.get(0)))
            .map_err(db_err)
    }

    async fn category_spend(
        &mut self,
        cid: &CustomerId,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> R<Vec<(Category, i64)>> {
        let mut st = self
            .db
            .prepare(
                "SELECT l.category, SUM(l.net) FROM orders o
                 JOIN order_lines l ON l.channel = o.channel AND l.order_id = o.order_id
                 WHERE o.customer_id = ?1 AND o.placed_at >= ?2 AND o.placed_at < ?3
                 GROUP BY l.category ORDER BY l.category",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map(params![cid.as_str(), micros(from), micros(until)], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(db_err)?;
        rows.map(|r| {
            let (c, spend) = r.map_err(db_err)?;
            Ok((id(Category::parse(c))?, spend))
        })
        .collect()
    }

    async fn order_history(
        &mut self,
        until: DateTime<Utc>,
        after: Option<&HistoryCursor>,
        limit: usize,
    ) -> R<Vec<HistoricalOrder>> {
        let (p, c, ch, oid) = match after {
            Some(a) => (
                micros(a.placed_at),
                micros(a.created_at),
                a.key.channel.as_str(),
                a.key.order_id.as_str(),
            ),
            None => (i64::MIN, i64::MIN, "", ""),
        };
        // Two statements, neither sorting: the page of orders straight out of
        // `orders_by_placed`, then each order's lines by their primary key.
        let mut orders = self.db.prepare(
                "SELECT channel, order_id, customer_id, store_id, currency, placed_at, created_at,
                        redeemed, cashback, partner_id
                 FROM orders INDEXED BY orders_by_placed
                 WHERE placed_at < ?1 AND (placed_at, created_at, channel, order_id) > (?2, ?3, ?4, ?5)
                 ORDER BY placed_at, created_at, channel, order_id LIMIT ?6",
            )
            .map_err(db_err)?;
        let mut lines = self
            .db
            .prepare(
                "SELECT line_id, sku, category, tags, quantity, unit_price, discount
                 FROM order_lines WHERE channel = ?1 AND order_id = ?2 ORDER BY line_no",
            )
            .map_err(db_err)?;
        let mut rows = orders
            .query(params![micros(until), p, c, ch, oid, limit as i64])
            .map_err(db_err)?;
        let mut out: Vec<HistoricalOrder> = Vec::with_capacity(limit);
        while let Some(r) = rows.next().map_err(db_err)? {
            let (channel_s, order_s) = (text(r, 0)?, text(r, 1)?);
            let mut order_lines = Vec::new();
            let mut line_rows = lines.query([channel_s, order_s]).map_err(db_err)?;
            while let Some(l) = line_rows.next().map_err(db_err)? {
                order_lines.push(order_line(
                    l.get(0).map_err(db_err)?,
                    l.get(1).map_err(db_err)?,
                    l.get(2).map_err(db_err)?,
                    text(l, 3)?,
                    [
                        l.get(4).map_err(db_err)?,
                        l.get(5).map_err(db_err)?,
                        l.get(6).map_err(db_err)?,
                    ],
                )?);
            }
            out.push(HistoricalOrder {
                order: Order {
                    channel: channel(channel_s)?,
                    store_id: opt_text(r, 3)?.map(|s| id(StoreId::parse(s))).transpose()?,
                    order_id: id(OrderId::parse(order_s))?,
                    customer_id: id(CustomerId::parse(text(r, 2)?))?,
                    currency: Currency::parse(text(r, 4)?).map_err(corrupt)?,
                    lines: order_lines,
                },
                partner_id: opt_text(r, 9)?
                    .map(|p| id(PartnerId::parse(p)))
                    .transpose()?,
                placed_at: instant(r.get(5).map_err(db_err)?)?,
                created_at: instant(r.get(6).map_err(db_err)?)?,
                redeemed_minor: r.get(7).map_err(db_err)?,
                paid_minor: r.get(8).map_err(db_err)?,
            });
        }
        Ok(out)
    }

    async fn api_key_by_hash(&mut self, secret_sha256: &str) -> R<Option<ApiKeyRecord>> {
        let row: Option<(String, String, Option<String>, Option<String>, i64)> = self.db.prepare("SELECT id, role, channel, store_id, created_at FROM api_keys WHERE secret_sha256 = ?1")
            .and_then(|mut st| {
                st.query_row([secret_sha256], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                    .optional()
            })
            .map_err(db_err)?;
        row.map(|(kid, role, ch, store, at)| {
            Ok(ApiKeyRecord {
                id: kid,
                secret_sha256: secret_sha256.to_string(),
                role: Role::parse(&role).ok_or_else(|| corrupt(format!("role {role}")))?,
                channel: ch.map(|c| channel(&c)).transpose()?,
                store_id: store.map(|s| id(StoreId::parse(s))).transpose()?,
                created_at: instant(at)?,
            })
        })
        .transpose()
    }

    async fn insert_api_key(&mut self, k: &ApiKeyRecord) -> R<()> {
        self.db.prepare(
                "INSERT INTO api_keys (secret_sha256, id, role, channel, store_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    k.secret_sha256,
                    k.id,
                    k.role.as_str(),
                    k.channel.map(|c| c.as_str()),
                    k.store_id.as_ref().map(|s| s.as_str()),
                    micros(k.created_at)
                ])
            })
            .map_err(db_err)?;
        Ok(())
    }

    // ------------------------------------------------------------------ history import

    async fn import_orders(&mut self, orders: &[OrderRecord]) -> R<Vec<ImportOutcome>> {
        self.import_all(orders)
    }

    async fn import_start(&mut self) -> R<()> {
        // A first load: inserting every order into its secondary indexes one by one costs
        // more than building them once, sorted, at the end.
        let empty: bool = self
            .db
            .conn
            .query_row("SELECT NOT EXISTS (SELECT 1 FROM orders)", [], |r| r.get(0))
            .map_err(db_err)?;
        if empty {
            for (name, _) in DEFERRED_ORDER_INDEXES {
                self.db
                    .conn
                    .execute_batch(&format!("DROP INDEX IF EXISTS {name}"))
                    .map_err(db_err)?;
            }
        }
        Ok(())
    }

    async fn import_finish(&mut self) -> R<()> {
        for (_, create) in DEFERRED_ORDER_INDEXES {
            self.db.conn.execute_batch(create).map_err(db_err)?;
        }
        Ok(())
    }

    // ------------------------------------------------------------ metrics and experiments

    async fn metric_customers(&mut self, facts: &mut Facts) -> R<()> {
        let sql = "SELECT id, segments, pending + available + held FROM customers";
        each_row(&self.db, sql, |r| {
            let ix = facts.customer(text(r, 0)?).map_err(corrupt)? as usize;
            let segments: Vec<String> = from_json(text(r, 1)?)?;
            let c = &mut facts.customers[ix];
            c.segments = segments
                .into_iter()
                .map(|s| id(Segment::parse(s)))
                .collect::<R<_>>()?;
            c.liability_minor = r.get(2).map_err(db_err)?;
            Ok(())
        })
    }

    async fn metric_orders(&mut self, facts: &mut Facts) -> R<()> {
        // Returned lines are few: their sums per order come in the orders' rowid order, and
        // the order scan (also in rowid order: a rowid table's own order, no sort) walks
        // them alongside, so no order is looked up by id.
        let mut returned: Vec<(i64, i64, i64)> = Vec::new();
        each_row(&self.db, metrics_sql::RETURNED_BY_ORDER_ROWID, |r| {
            returned.push((
                r.get(0).map_err(db_err)?,
                r.get(1).map_err(db_err)?,
                r.get(2).map_err(db_err)?,
            ));
            Ok(())
        })?;
        let mut returned = returned.into_iter().peekable();
        let capacity: Option<i64> = self
            .db
            .conn
            .query_row("SELECT MAX(rowid) FROM orders", [], |r| r.get(0))
            .map_err(db_err)?;
        facts
            .orders
            .reserve(usize::try_from(capacity.unwrap_or(0)).unwrap_or(0));
        let sql = "SELECT customer_id, channel, store_id, placed_at, total, cashback, rowid,
                          lot_id
                   FROM orders ORDER BY rowid";
        each_row(&self.db, sql, |r| {
            let (customer, store) = facts
                .customer_at(text(r, 0)?, opt_text(r, 2)?)
                .map_err(corrupt)?;
            let ch = channel(text(r, 1)?)?;
            let rowid: i64 = r.get(6).map_err(db_err)?;
            let (returned_minor, clawed_back_minor) =
                match returned.next_if(|&(of, _, _)| of == rowid) {
                    Some((_, ret, claw)) => (ret, claw),
                    None => (0, 0),
                };
            let lot_id = r.get::<_, Option<i64>>(7).map_err(db_err)?;
            if let Some(lot_id) = lot_id {
                facts.earned_lot(lot_id, ch);
            }
            facts.orders.push(OrderFact {
                customer,
                channel: ch,
                store,
                placed_at: instant(r.get(3).map_err(db_err)?)?,
                total_minor: r.get(4).map_err(db_err)?,
                cashback_minor: r.get(5).map_err(db_err)?,
                returned_minor,
                clawed_back_minor,
                lot_id,
            });
            Ok(())
        })
    }

    /// Resolves each lot's channel from the orders `metric_orders` read (a lookup per lot
    /// in the lots table would cost more than the rest of the report).
    async fn metric_redemptions(&mut self, facts: &mut Facts) -> R<()> {
        let sql = "SELECT customer_id, channel, store_id, created_at, allocations
                   FROM redemptions WHERE state = 'captured'";
        each_row(&self.db, sql, |r| {
            let (customer, store) = facts
                .customer_at(text(r, 0)?, opt_text(r, 2)?)
                .map_err(corrupt)?;
            let spent_on = channel(text(r, 1)?)?;
            let at = instant(r.get(3).map_err(db_err)?)?;
            let allocations: Vec<Allocation> = from_json(text(r, 4)?)?;
            for a in allocations {
                let amount_minor = a.captured_minor - a.restored_minor;
                if amount_minor > 0 {
                    facts.redemptions.push(RedemptionPart {
                        customer,
                        channel: spent_on,
                        store,
                        at,
                        earned_on: facts.lot_channel(a.lot_id),
                        amount_minor,
                    });
                }
            }
            Ok(())
        })
    }

    async fn metric_expiries(&mut self, facts: &mut Facts) -> R<()> {
        each_row(&self.db, metrics_sql::EXPIRY_FACTS, |r| {
            let customer = facts.customer(text(r, 0)?).map_err(corrupt)?;
            facts.expiries.push(ExpiryFact {
                customer,
                at: instant(r.get(1).map_err(db_err)?)?,
                amount_minor: r.get(2).map_err(db_err)?,
            });
            Ok(())
        })
    }

    async fn liability_moves_after(&mut self, after: DateTime<Utc>) -> R<Vec<(CustomerId, i64)>> {
        let mut st = self
            .db
            .prepare(metrics_sql::LIABILITY_MOVES_AFTER)
            .map_err(db_err)?;
        let rows = st
            .query_map([micros(after)], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(db_err)?;
        rows.map(|r| {
            let (cid, sum) = r.map_err(db_err)?;
            Ok((id(CustomerId::parse(cid))?, sum))
        })
        .collect()
    }

    async fn metric_campaign_lots(&mut self, campaign: &CampaignId, facts: &mut Facts) -> R<()> {
        facts.campaign_read(campaign);
        let mut st = self
            .db
            .prepare(metrics_sql::CAMPAIGN_LOTS)
            .map_err(db_err)?;
        let mut rows = st
            .query(stored::campaign_lot_patterns(campaign))
            .map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let lot_id: i64 = r.get(0).map_err(db_err)?;
            metrics_sql::add_campaign_lot(facts, campaign, lot_id, text(r, 1)?)?;
        }
        Ok(())
    }

    async fn record_assignment(&mut self, a: &AssignmentRecord) -> R<AssignmentRecord> {
        // Callers read first, so the insert is the common case.
        let inserted = self
            .db
            .prepare(
                "INSERT INTO experiment_assignments
                   (experiment_id, customer_id, arm, share_bp, first_seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut st| {
                st.execute(params![
                    a.experiment_id,
                    a.customer_id.as_str(),
                    a.arm.as_str(),
                    a.share_bp.0,
                    micros(a.first_seen_at)
                ])
            })
            .map_err(db_err)?;
        if inserted == 1 {
            return Ok(a.clone());
        }
        self.assignment(&a.experiment_id, &a.customer_id)
            .await?
            .ok_or_else(|| corrupt("an assignment neither inserted nor found"))
    }

    async fn assignment(
        &mut self,
        experiment_id: &str,
        customer: &CustomerId,
    ) -> R<Option<AssignmentRecord>> {
        let row: Option<(String, i64, i64)> = self
            .db
            .prepare(
                "SELECT arm, share_bp, first_seen_at FROM experiment_assignments
                 WHERE experiment_id = ?1 AND customer_id = ?2",
            )
            .and_then(|mut st| {
                st.query_row(params![experiment_id, customer.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
            })
            .map_err(db_err)?;
        row.map(|(arm, share, at)| {
            assignment(
                experiment_id.to_string(),
                customer.clone(),
                &arm,
                share,
                instant(at)?,
            )
        })
        .transpose()
    }

    async fn assignments(&mut self, experiment_id: &str) -> R<Vec<AssignmentRecord>> {
        let mut st = self
            .db
            .prepare(
                "SELECT customer_id, arm, share_bp, first_seen_at FROM experiment_assignments
                 WHERE experiment_id = ?1 ORDER BY customer_id",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map([experiment_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(db_err)?;
        rows.map(|r| {
            let (cid, arm, share, at) = r.map_err(db_err)?;
            assignment(
                experiment_id.to_string(),
                id(CustomerId::parse(cid))?,
                &arm,
                share,
                instant(at)?,
            )
        })
        .collect()
    }

    async fn experiments(&mut self) -> R<Vec<ExperimentCounts>> {
        let mut st = self
            .db
            .prepare(
                "SELECT experiment_id, SUM(arm = 'treatment'), SUM(arm = 'holdout')
                 FROM experiment_assignments GROUP BY experiment_id ORDER BY experiment_id",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map([], |r| {
                Ok(ExperimentCounts {
                    experiment_id: r.get(0)?,
                    treatment: r.get::<_, i64>(1)? as u64,
                    holdout: r.get::<_, i64>(2)? as u64,
                })
            })
            .map_err(db_err)?;
        rows.map(|r| r.map_err(db_err)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn the_writer_parses_the_program_again_only_when_its_text_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let mut conn = crate::open_connection(&path, false).unwrap();
        crate::migrate::run(&mut conn).unwrap();
        let kept = Statements::new(&conn);
        let mut program = ParsedProgram::default();
        let mut budgets = PendingBudgets::default();
        let mut tx = SqliteTx::writing(&kept, &mut budgets, &mut program);
        block_on(tx.create_program(&ProgramSettings::default(), Utc::now())).unwrap();
        for _ in 0..3 {
            let settings = block_on(tx.program(false)).unwrap().unwrap();
            assert_eq!(settings, ProgramSettings::default());
        }
        let parsed = |tx: &SqliteTx| tx.program.as_ref().unwrap().parsed;
        assert_eq!(parsed(&tx), 1);
        // Another process changes the settings: the next read sees them.
        let other = crate::open_connection(&path, false).unwrap();
        other
            .execute(
                "UPDATE program SET settings = replace(settings, '\"base_rate_bp\":500', '\"base_rate_bp\":700')",
                [],
            )
            .unwrap();
        let settings = block_on(tx.program(false)).unwrap().unwrap();
        assert_eq!(settings.base_rate_bp.0, 700);
        assert_eq!(parsed(&tx), 2);
    }
}
