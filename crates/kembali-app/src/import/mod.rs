//! History import: past orders from a file into the store, so a retailer starts with their
//! real history (`kembali import`).
//!
//! One pass over the file, in ONE transaction. A reader thread parses and checks each order
//! (and, for history, builds the record the store takes, request hash included) while the
//! store writes; at most [`QUEUED_BATCHES`] batches of [`BATCH_ORDERS`] orders wait between
//! them, which bounds memory whatever the file's size. Once a row is bad nothing more is
//! written: the reader goes on to the end only to list every bad row (up to
//! [`MAX_REPORTED_ERRORS`], with the total), and the transaction rolls back. A bad row, a
//! conflict (an order already stored with other content), a crash or a kill leaves the
//! database as it was: nothing is ever half-imported.
//!
//! Imported history earns nothing (orders stored with no cashback, no lot, no ledger entry)
//! unless `earn` is asked: then each order goes through the engine's own earning path
//! ([`orders::post_order`]) at its `placed_at`, in the same single transaction.
//!
//! Must never: store an order the API would refuse, or commit part of a file.

pub mod source;

use crate::engine::request_hash;
use crate::error::AppError;
use crate::orders;
use crate::store::{job, ImportOutcome, LineRecord, OrderKey, OrderRecord, Store, Tx};
use crate::wallet::load_ctx;
use crate::Engine;
use chrono::{DateTime, Utc};
use kembali_core::program::ProgramSettings;
use source::{Format, RowError, SourceContext, SourceOrder};
use std::io::Read;
use std::sync::{Arc, Mutex};

/// Bad rows listed in a report: enough to see and fix a systematic problem, and a bounded
/// report whatever the file (the total count is always given).
pub const MAX_REPORTED_ERRORS: usize = 100;
/// Orders per call to the store: amortises the hop to the writer without holding much.
pub const BATCH_ORDERS: usize = 1_024;
/// Batches parsed ahead of the writer: keeps both busy and memory flat.
pub const QUEUED_BATCHES: usize = 4;
/// What an imported line says about its cashback.
pub const IMPORTED_EXPLANATION: &str = "imported history: no cashback";

/// Problems found in a file: the first [`MAX_REPORTED_ERRORS`] and how many in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowErrors {
    pub errors: Vec<RowError>,
    pub total: u64,
}

impl RowErrors {
    fn push(&mut self, e: RowError) {
        self.total += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(e);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub orders: u64,
    pub lines: u64,
    /// Orders stored by this run.
    pub inserted: u64,
    /// Orders already stored with the same content (a rerun): left as they were.
    pub unchanged: u64,
    /// Cashback earned (only with `earn`).
    pub cashback_minor: i64,
}

impl ImportSummary {
    fn count(&mut self, lines: usize, outcome: ImportOutcome) {
        self.orders += 1;
        self.lines += lines as u64;
        match outcome {
            ImportOutcome::Inserted => self.inserted += 1,
            ImportOutcome::Unchanged => self.unchanged += 1,
            ImportOutcome::Conflict => {}
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{} bad row(s); nothing was imported", .0.total)]
    Rows(RowErrors),
    #[error(transparent)]
    App(#[from] AppError),
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
}

/// Orders on their way from the reader thread to the writing job: history already turned
/// into the records the store takes (hashed on the reader's thread), or, with `earn`, the
/// orders to post.
enum Batch {
    History {
        lines: Vec<u64>,
        records: Vec<OrderRecord>,
    },
    Earn(Vec<SourceOrder>),
}

impl Batch {
    fn new(earn: bool) -> Batch {
        if earn {
            Batch::Earn(Vec::with_capacity(BATCH_ORDERS))
        } else {
            Batch::History {
                lines: Vec::with_capacity(BATCH_ORDERS),
                records: Vec::with_capacity(BATCH_ORDERS),
            }
        }
    }

    fn push(&mut self, o: SourceOrder, created_at: DateTime<Utc>) {
        match self {
            Batch::History { lines, records } => {
                lines.push(o.line);
                records.push(history_record(o, created_at));
            }
            Batch::Earn(orders) => orders.push(o),
        }
    }

    fn len(&self) -> usize {
        match self {
            Batch::History { lines, .. } => lines.len(),
            Batch::Earn(orders) => orders.len(),
        }
    }
}

impl<S: Store> Engine<S> {
    /// What import checks a file against, from the program's settings.
    pub async fn import_context(&self) -> Result<SourceContext, AppError> {
        let now = self.now();
        let settings: ProgramSettings = self
            .store()
            .read(job(move |tx| {
                Box::pin(async move { Ok(load_ctx(tx, now).await?.settings) })
            }))
            .await?;
        let zone = kembali_core::campaign::parse_zone(&settings.time_zone).ok_or_else(|| {
            AppError::rejected(
                "invalid_time_zone",
                Some("time_zone"),
                format!(
                    "the program's time zone {:?} is unknown",
                    settings.time_zone
                ),
            )
        })?;
        Ok(SourceContext {
            currency: settings.currency,
            zone,
            now,
        })
    }

    /// Imports what `open` reads (see the module docs). `open` is called once.
    pub async fn import_from<R, F>(
        &self,
        format: Format,
        open: F,
        earn: bool,
    ) -> Result<ImportSummary, ImportError>
    where
        R: Read + Send + 'static,
        F: FnOnce() -> std::io::Result<R> + Send + 'static,
    {
        let ctx = self.import_context().await?;
        self.import_history(format, open()?, ctx, earn).await
    }

    /// Reads `reader` and writes its orders in one transaction (see the module docs): any
    /// bad row or conflict rolls the whole file back, and every bad row is reported. With
    /// `earn`, due work (maturations, expiries) is settled up to now once the import
    /// committed.
    pub async fn import_history<R: Read + Send + 'static>(
        &self,
        format: Format,
        reader: R,
        ctx: SourceContext,
        earn: bool,
    ) -> Result<ImportSummary, ImportError> {
        let (batches, mut rx) =
            tokio::sync::mpsc::channel::<Result<Batch, RowErrors>>(QUEUED_BATCHES);
        let created_at = self.now();
        let reader_thread = std::thread::spawn(move || {
            let mut problems = RowErrors::default();
            let mut batch = Batch::new(earn);
            for item in source::orders(format, reader, ctx) {
                match item {
                    // Once a row is bad, nothing more is written: the rest is only read
                    // for its problems.
                    Ok(o) if problems.is_empty() => batch.push(o, created_at),
                    Ok(_) => {}
                    Err(errors) => errors.into_iter().for_each(|e| problems.push(e)),
                }
                if batch.len() == BATCH_ORDERS {
                    let full = std::mem::replace(&mut batch, Batch::new(earn));
                    if batches.blocking_send(Ok(full)).is_err() {
                        return; // The job failed and hung up.
                    }
                }
            }
            let last = if problems.is_empty() {
                Ok(batch)
            } else {
                Err(problems)
            };
            let _ = batches.blocking_send(last);
        });
        let problems = Arc::new(Mutex::new(RowErrors::default()));
        let found = problems.clone();
        let outcome = self
            .store()
            .write(job(move |tx| {
                Box::pin(async move {
                    let mut summary = ImportSummary::default();
                    let mut conflicts = RowErrors::default();
                    if !earn {
                        tx.import_start().await?;
                    }
                    while let Some(batch) = rx.recv().await {
                        match batch {
                            Ok(Batch::History { lines, records }) => {
                                let outcomes = tx.import_orders(&records).await?;
                                for ((line, o), outcome) in lines.iter().zip(&records).zip(outcomes)
                                {
                                    summary.count(o.lines.len(), outcome);
                                    if outcome == ImportOutcome::Conflict {
                                        conflicts.push(conflict(*line, &o.key));
                                    }
                                }
                            }
                            Ok(Batch::Earn(orders)) => {
                                for (o, outcome) in earn_batch(tx, orders, &mut summary).await? {
                                    if outcome == ImportOutcome::Conflict {
                                        conflicts.push(conflict(o.0, &o.1));
                                    }
                                }
                            }
                            Err(bad) => {
                                // Bad rows and the conflicts met before them, by line.
                                let mut p = found.lock().unwrap_or_else(|p| p.into_inner());
                                let mut all = conflicts.errors;
                                all.extend(bad.errors);
                                all.sort_by_key(|e| e.line);
                                all.truncate(MAX_REPORTED_ERRORS);
                                *p = RowErrors {
                                    errors: all,
                                    total: conflicts.total + bad.total,
                                };
                                return Err(rejected());
                            }
                        }
                    }
                    if conflicts.is_empty() {
                        if !earn {
                            tx.import_finish().await?;
                        }
                        Ok(summary)
                    } else {
                        *found.lock().unwrap_or_else(|p| p.into_inner()) = conflicts;
                        Err(rejected())
                    }
                })
            }))
            .await;
        let _ = reader_thread.join();
        let problems = std::mem::take(&mut *problems.lock().unwrap_or_else(|p| p.into_inner()));
        let summary = match outcome {
            Ok(summary) => summary,
            Err(_) if !problems.is_empty() => return Err(ImportError::Rows(problems)),
            Err(e) => return Err(e.into()),
        };
        if earn {
            self.run_due_work(self.now()).await?;
        }
        Ok(summary)
    }
}

/// Rolls the whole import back; the problems say why.
fn rejected() -> AppError {
    AppError::rejected("import_rejected", None, "the file has bad rows")
}

fn conflict(line: u64, key: &OrderKey) -> RowError {
    RowError::new(
        line,
        format!(
            "order {} on channel {} is already stored with other content (an order is \
             identified by its channel and order id)",
            key.order_id, key.channel
        ),
    )
}

/// Posts each order through the engine's earning path at its own `placed_at`; returns each
/// order's line, key and outcome.
async fn earn_batch(
    tx: &mut dyn Tx,
    orders: Vec<SourceOrder>,
    summary: &mut ImportSummary,
) -> Result<Vec<((u64, OrderKey), ImportOutcome)>, AppError> {
    let mut outcomes = Vec::with_capacity(orders.len());
    // The campaigns active now apply to the imported history (each at its own placed_at).
    let campaigns = crate::campaigns::active_set(&tx.campaigns().await?)?;
    for o in orders {
        let hash = request_hash("order", &o.post);
        let key = OrderKey {
            channel: o.post.order.channel,
            order_id: o.post.order.order_id.clone(),
        };
        let lines = o.post.order.lines.len();
        let outcome = match tx.order(&key).await? {
            Some(stored) => ImportOutcome::of_existing(&stored.request_hash, &hash),
            None => {
                let ctx = load_ctx(tx, o.placed_at).await?;
                let receipt = orders::post_order(tx, &ctx, &campaigns, o.post, hash).await?;
                summary.cashback_minor += receipt.cashback_minor;
                ImportOutcome::Inserted
            }
        };
        summary.count(lines, outcome);
        outcomes.push(((o.line, key), outcome));
    }
    Ok(outcomes)
}

/// An order as history: what the engine would store for it, earning nothing. Its request
/// hash is the one the engine gives the same order, so posting it later through the API
/// replays it instead of conflicting.
pub fn imported_record(o: &SourceOrder, created_at: DateTime<Utc>) -> OrderRecord {
    history_record(o.clone(), created_at)
}

/// [`imported_record`], taking the order (no copy of its fields).
fn history_record(o: SourceOrder, created_at: DateTime<Utc>) -> OrderRecord {
    let request_hash = request_hash("order", &o.post);
    let total_minor = o.post.order.total_minor();
    let order = o.post.order;
    OrderRecord {
        key: OrderKey {
            channel: order.channel,
            order_id: order.order_id,
        },
        customer_id: order.customer_id,
        store_id: order.store_id,
        currency: order.currency.to_string(),
        placed_at: o.placed_at,
        created_at,
        redemption_id: None,
        redeemed_minor: 0,
        cashback_minor: 0,
        total_minor,
        lot_id: None,
        available_at: None,
        expires_at: None,
        request_hash,
        lines: order
            .lines
            .into_iter()
            .map(|line| LineRecord {
                net_minor: line.net_minor(),
                redeemed_minor: 0,
                cashback_minor: 0,
                returned_qty: 0,
                clawed_back_minor: 0,
                restored_minor: 0,
                explanation: IMPORTED_EXPLANATION.into(),
                rules: vec![],
                line,
            })
            .collect(),
        partner_id: o.post.partner_id,
        campaigns: Vec::new(),
    }
}
