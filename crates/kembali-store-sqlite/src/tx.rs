//! The Tx port on one SQLite connection. Every method is one or a few cached statements;
//! transactions and savepoints are managed by the caller (the writer loop or a reader).

use crate::db_err;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use kembali_app::error::StoreError;
use kembali_app::store::decode::{channel, corrupt, from_json, id, json, order_key};
use kembali_app::store::*;
use kembali_core::ids::{
    Category, Channel, CustomerId, LineId, OrderId, RedemptionId, ReturnId, Segment, Sku, StoreId,
    Tag,
};
use kembali_core::ledger::{Account, Entry, EntryKind, Posting, ProgramTotals, WalletBalances};
use kembali_core::lots::{Lot, LotState};
use kembali_core::order::OrderLine;
use kembali_core::program::ProgramSettings;
use rusqlite::{params, Connection, OptionalExtension, Row};

pub struct SqliteTx<'c> {
    conn: &'c mut Connection,
}

impl<'c> SqliteTx<'c> {
    pub fn new(conn: &'c mut Connection) -> Self {
        SqliteTx { conn }
    }
}

type R<T> = Result<T, StoreError>;

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn instant(us: i64) -> R<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| corrupt("instant out of range"))
}

const CUSTOMER_COLS: &str =
    "id, email, phone, birthday, segments, created_at, pending, available, held, debt";

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

const LOT_COLS: &str =
    "id, customer_id, order_channel, order_id, amount, remaining, available_at, expires_at, state, created_at, expiry_warned";

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
);

fn lot_row(r: &Row<'_>) -> rusqlite::Result<LotRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
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
    })
}

const REDEMPTION_COLS: &str = "id, customer_id, channel, store_id, state, amount, captured, order_total, created_at, expires_at, request_hash, order_channel, order_id, allocations";

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

impl SqliteTx<'_> {
    fn postings_of(&mut self, seq: i64) -> R<Vec<Posting>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT account, amount FROM postings WHERE seq = ?1 ORDER BY idx")
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
        let mut st = self
            .conn
            .prepare_cached(
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
            let tags: Vec<String> = from_json(&tags)?;
            Ok(LineRecord {
                line: OrderLine {
                    line_id: id(LineId::parse(line_id))?,
                    sku: id(Sku::parse(sku))?,
                    category: id(Category::parse(category))?,
                    tags: tags
                        .into_iter()
                        .map(|t| id(Tag::parse(t)))
                        .collect::<R<_>>()?,
                    quantity: n[0],
                    unit_price_minor: n[1],
                    discount_minor: n[2],
                },
                net_minor: n[3],
                redeemed_minor: n[4],
                cashback_minor: n[5],
                returned_qty: ret[0],
                clawed_back_minor: ret[1],
                restored_minor: ret[2],
                explanation,
                rules: from_json(&rules)?,
            })
        })
        .collect()
    }

    fn journal_rows(&mut self, sql: &str, p: &[&dyn rusqlite::ToSql]) -> R<Vec<JournalEntry>> {
        let mut st = self.conn.prepare_cached(sql).map_err(db_err)?;
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

const JOURNAL_COLS: &str =
    "seq, at, customer_id, asset, kind, explanation, order_channel, order_id, redemption_id, return_id, lot_id";

#[async_trait]
impl Tx for SqliteTx<'_> {
    async fn program(&mut self) -> R<Option<ProgramSettings>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT settings FROM program WHERE id = 1")
            .map_err(db_err)?;
        let s: Option<String> = st.query_row([], |r| r.get(0)).optional().map_err(db_err)?;
        s.map(|s| from_json(&s)).transpose()
    }

    async fn put_program(&mut self, settings: &ProgramSettings, at: DateTime<Utc>) -> R<()> {
        let s = json(settings)?;
        self.conn
            .prepare_cached(
                "INSERT INTO program (id, settings, updated_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
            )
            .and_then(|mut st| st.execute(params![s, micros(at)]))
            .map_err(db_err)?;
        self.conn
            .prepare_cached("INSERT INTO program_versions (settings, at) VALUES (?1, ?2)")
            .and_then(|mut st| st.execute(params![s, micros(at)]))
            .map_err(db_err)?;
        Ok(())
    }

    async fn has_entries(&mut self) -> R<bool> {
        self.conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM journal)")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(db_err)
    }

    async fn idempotency(&mut self, scope: &str, key: &str) -> R<Option<IdempotencyRecord>> {
        let row: Option<(String, String)> = self
            .conn
            .prepare_cached(
                "SELECT request_hash, response FROM idempotency WHERE scope = ?1 AND key = ?2",
            )
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
        self.conn
            .prepare_cached(
                "INSERT INTO idempotency (scope, key, request_hash, response, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| st.execute(params![scope, key, record.request_hash, record.response, micros(at)]))
            .map_err(db_err)?;
        Ok(())
    }

    async fn customer(&mut self, cid: &CustomerId, _lock: bool) -> R<Option<CustomerRecord>> {
        // One writer: every write transaction already holds the database's write lock.
        let sql = format!("SELECT {CUSTOMER_COLS} FROM customers WHERE id = ?1");
        let row = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut st| st.query_row([cid.as_str()], customer_row).optional())
            .map_err(db_err)?;
        row.map(customer_from).transpose()
    }

    async fn insert_customer(&mut self, c: &CustomerRecord) -> R<()> {
        let segments: Vec<&str> = c.segments.iter().map(|s| s.as_str()).collect();
        self.conn
            .prepare_cached(
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
        self.conn
            .prepare_cached("UPDATE customers SET email = ?2, phone = ?3, birthday = ?4, segments = ?5 WHERE id = ?1")
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
        let n = self
            .conn
            .prepare_cached(
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
        let row = self
            .conn
            .prepare_cached(
                "SELECT customer_id, store_id, currency, placed_at, created_at, redemption_id, redeemed, cashback, total,
                        lot_id, request_hash, available_at, expires_at
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
                    ))
                })
                .optional()
            })
            .map_err(db_err)?;
        let Some((cid, store, currency, times, rid, amounts, lot_id, hash, lot_times)) = row else {
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
        }))
    }

    async fn order_channels(&mut self, order_id: &OrderId) -> R<Vec<Channel>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT channel FROM orders WHERE order_id = ?1 ORDER BY channel")
            .map_err(db_err)?;
        let rows = st
            .query_map([order_id.as_str()], |r| r.get::<_, String>(0))
            .map_err(db_err)?;
        rows.map(|r| channel(&r.map_err(db_err)?)).collect()
    }

    async fn insert_order(&mut self, o: &OrderRecord) -> R<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO orders (channel, order_id, customer_id, store_id, currency, placed_at, created_at,
                     redemption_id, redeemed, cashback, total, lot_id, request_hash, available_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )
            .and_then(|mut st| {
                st.execute(params![
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
                ])
            })
            .map_err(db_err)?;
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT INTO order_lines (channel, order_id, line_no, line_id, sku, category, tags, quantity, unit_price,
                     discount, net, redeemed, cashback, returned_qty, clawed_back, restored, explanation, rules)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            )
            .map_err(db_err)?;
        for (n, l) in o.lines.iter().enumerate() {
            let tags: Vec<&str> = l.line.tags.iter().map(|t| t.as_str()).collect();
            st.execute(params![
                o.key.channel.as_str(),
                o.key.order_id.as_str(),
                n as i64,
                l.line.line_id.as_str(),
                l.line.sku.as_str(),
                l.line.category.as_str(),
                json(&tags)?,
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
                json(&l.rules)?,
            ])
            .map_err(db_err)?;
        }
        Ok(())
    }

    async fn update_order_lines(&mut self, key: &OrderKey, lines: &[LineRecord]) -> R<()> {
        let mut st = self
            .conn
            .prepare_cached(
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
        let row: Option<(String, String, i64)> = self
            .conn
            .prepare_cached(
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
        self.conn
            .prepare_cached(
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
        self.conn
            .prepare_cached(
                "INSERT INTO lots (customer_id, order_channel, order_id, amount, remaining, available_at, expires_at, state,
                     created_at, expiry_warned)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
                ])
            })
            .map_err(db_err)?;
        Ok(self.conn.last_insert_rowid())
    }

    async fn update_lot(&mut self, l: &LotRecord) -> R<()> {
        let n = self
            .conn
            .prepare_cached(
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
        let sql = format!("SELECT {LOT_COLS} FROM lots WHERE id = ?1");
        let mut st = self.conn.prepare_cached(&sql).map_err(db_err)?;
        let mut out = Vec::with_capacity(ids.len());
        for lid in ids {
            if let Some(row) = st.query_row([lid], lot_row).optional().map_err(db_err)? {
                out.push(lot_from(row)?);
            }
        }
        Ok(out)
    }

    async fn open_lots(&mut self, cid: &CustomerId) -> R<Vec<LotRecord>> {
        let sql = format!(
            "SELECT {LOT_COLS} FROM lots
             WHERE customer_id = ?1 AND state IN ('pending', 'available') AND remaining > 0 ORDER BY id"
        );
        let mut st = self.conn.prepare_cached(&sql).map_err(db_err)?;
        let rows = st.query_map([cid.as_str()], lot_row).map_err(db_err)?;
        rows.map(|r| lot_from(r.map_err(db_err)?)).collect()
    }

    async fn redemption(&mut self, rid: &RedemptionId) -> R<Option<RedemptionRecord>> {
        let sql = format!("SELECT {REDEMPTION_COLS} FROM redemptions WHERE id = ?1");
        let row = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut st| st.query_row([rid.as_str()], redemption_row).optional())
            .map_err(db_err)?;
        row.map(redemption_from).transpose()
    }

    async fn insert_redemption(&mut self, r: &RedemptionRecord) -> R<()> {
        let allocations = json(&r.allocations)?;
        self.conn
            .prepare_cached(
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
        let n = self
            .conn
            .prepare_cached(
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
        let sql = format!("SELECT {REDEMPTION_COLS} FROM redemptions WHERE customer_id = ?1 AND state = 'held' ORDER BY id");
        let mut st = self.conn.prepare_cached(&sql).map_err(db_err)?;
        let rows = st
            .query_map([cid.as_str()], redemption_row)
            .map_err(db_err)?;
        rows.map(|r| redemption_from(r.map_err(db_err)?)).collect()
    }

    async fn append_entry(&mut self, e: &JournalEntry) -> R<i64> {
        let refs = &e.refs;
        self.conn
            .prepare_cached(
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
        let seq = self.conn.last_insert_rowid();
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT INTO postings (seq, idx, account, amount) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(db_err)?;
        for (i, p) in e.entry.postings.iter().enumerate() {
            st.execute(params![seq, i as i64, p.account.as_str(), p.amount_minor])
                .map_err(db_err)?;
        }
        Ok(seq)
    }

    async fn append_event(&mut self, e: &EventRecord) -> R<i64> {
        let payload = json(&e.payload)?;
        self.conn
            .prepare_cached(
                "INSERT INTO events (at, kind, customer_id, payload) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    micros(e.at),
                    e.kind,
                    e.customer_id.as_ref().map(|c| c.as_str()),
                    payload
                ])
            })
            .map_err(db_err)?;
        Ok(self.conn.last_insert_rowid())
    }

    async fn customers_with_due_work(
        &mut self,
        until: DateTime<Utc>,
        warn_until: DateTime<Utc>,
        limit: usize,
    ) -> R<Vec<CustomerId>> {
        let mut st = self
            .conn
            .prepare_cached(
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
        let sql = format!(
            "SELECT {JOURNAL_COLS} FROM journal WHERE customer_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
        );
        self.journal_rows(
            &sql,
            &[
                &cid.as_str(),
                &before_seq.unwrap_or(i64::MAX),
                &(limit as i64),
            ],
        )
    }

    async fn events(&mut self, after_seq: Option<i64>, limit: usize) -> R<Vec<EventRecord>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT seq, at, kind, customer_id, payload FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")
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
            .conn
            .prepare_cached("SELECT account, SUM(amount) FROM postings GROUP BY account")
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
            .conn
            .prepare_cached(
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
            .conn
            .prepare_cached("SELECT id FROM customers WHERE id > ?1 ORDER BY id LIMIT ?2")
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

    async fn api_key_by_hash(&mut self, secret_sha256: &str) -> R<Option<ApiKeyRecord>> {
        let row: Option<(String, String, Option<String>, Option<String>, i64)> = self
            .conn
            .prepare_cached("SELECT id, role, channel, store_id, created_at FROM api_keys WHERE secret_sha256 = ?1")
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
        self.conn
            .prepare_cached(
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
}
