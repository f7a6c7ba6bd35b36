//! History import: past orders from a file into the store, so a retailer starts with their
//! real history (`kembali import`).
//!
//! Two passes over the file. [`check`] reads it once and reports every bad row (up to
//! [`MAX_REPORTED_ERRORS`]) without touching the database. [`Engine::import_history`] reads
//! it again and writes it in ONE transaction, so a conflict found there (an order already
//! stored with other content), a crash or a kill leaves the database as it was: nothing is
//! ever half-imported. A reader thread parses while the store writes; at most
//! [`QUEUED_BATCHES`] batches of [`BATCH_ORDERS`] orders wait between them, which bounds
//! memory whatever the file's size.
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
use source::{Format, RowError, SourceContext, SourceItem, SourceOrder};
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

/// What the checking pass found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    pub orders: u64,
    pub lines: u64,
    pub problems: RowErrors,
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

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{} bad row(s); nothing was imported", .0.total)]
    Rows(RowErrors),
    #[error(transparent)]
    App(#[from] AppError),
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
}

/// The first pass: reads every order and lists what is wrong, touching nothing.
pub fn check(orders: impl Iterator<Item = SourceItem>) -> Checked {
    let mut checked = Checked::default();
    for item in orders {
        match item {
            Ok(o) => {
                checked.orders += 1;
                checked.lines += o.post.order.lines.len() as u64;
            }
            Err(errors) => errors.into_iter().for_each(|e| checked.problems.push(e)),
        }
    }
    checked
}

/// A batch on its way from the reader thread to the writing job.
type Batch = Result<Vec<SourceOrder>, Vec<RowError>>;

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

    /// Both passes: checks what `open` reads, then (if every row is good) imports it.
    /// `open` is called once per pass and must give the same bytes each time.
    pub async fn import_from<R, F>(
        &self,
        format: Format,
        open: F,
        earn: bool,
    ) -> Result<ImportSummary, ImportError>
    where
        R: Read + Send + 'static,
        F: Fn() -> std::io::Result<R> + Send + Sync + 'static,
    {
        let ctx = self.import_context().await?;
        let open = Arc::new(open);
        let (first, check_ctx) = (open.clone(), ctx.clone());
        let checked = tokio::task::spawn_blocking(move || -> std::io::Result<Checked> {
            Ok(check(source::orders(format, first()?, check_ctx)))
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        if !checked.problems.is_empty() {
            return Err(ImportError::Rows(checked.problems));
        }
        self.import_history(format, open()?, ctx, earn).await
    }

    /// The second pass: writes the orders `reader` holds in one transaction (see the module
    /// docs). Run [`check`] first: a bad row met here aborts the whole import. With `earn`,
    /// due work (maturations, expiries) is settled up to now once the import committed.
    pub async fn import_history<R: Read + Send + 'static>(
        &self,
        format: Format,
        reader: R,
        ctx: SourceContext,
        earn: bool,
    ) -> Result<ImportSummary, ImportError> {
        let (batches, mut rx) = tokio::sync::mpsc::channel::<Batch>(QUEUED_BATCHES);
        let reader_thread = std::thread::spawn(move || {
            let mut batch = Vec::with_capacity(BATCH_ORDERS);
            for item in source::orders(format, reader, ctx) {
                match item {
                    Ok(o) => batch.push(o),
                    Err(e) => {
                        let _ = batches.blocking_send(Err(e));
                        return;
                    }
                }
                if batch.len() == BATCH_ORDERS {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ORDERS));
                    if batches.blocking_send(Ok(full)).is_err() {
                        return; // The job failed and hung up.
                    }
                }
            }
            if !batch.is_empty() {
                let _ = batches.blocking_send(Ok(batch));
            }
        });
        let problems = Arc::new(Mutex::new(RowErrors::default()));
        let found = problems.clone();
        let created_at = self.now();
        let outcome = self
            .store()
            .write(job(move |tx| {
                Box::pin(async move {
                    let mut summary = ImportSummary::default();
                    while let Some(batch) = rx.recv().await {
                        let orders = match batch {
                            Ok(orders) => orders,
                            Err(errors) => {
                                let mut p = found.lock().unwrap_or_else(|p| p.into_inner());
                                errors.into_iter().for_each(|e| p.push(e));
                                break;
                            }
                        };
                        let outcomes = if earn {
                            earn_batch(tx, orders.clone(), &mut summary).await?
                        } else {
                            let records: Vec<OrderRecord> = orders
                                .iter()
                                .map(|o| imported_record(o, created_at))
                                .collect();
                            tx.import_orders(&records).await?
                        };
                        let mut p = found.lock().unwrap_or_else(|p| p.into_inner());
                        for (o, outcome) in orders.iter().zip(outcomes) {
                            summary.orders += 1;
                            summary.lines += o.post.order.lines.len() as u64;
                            match outcome {
                                ImportOutcome::Inserted => summary.inserted += 1,
                                ImportOutcome::Unchanged => summary.unchanged += 1,
                                ImportOutcome::Conflict => p.push(conflict(o)),
                            }
                        }
                    }
                    if found.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
                        Ok(summary)
                    } else {
                        // Rolls the whole import back; the problems say why.
                        Err(AppError::rejected(
                            "import_rejected",
                            None,
                            "the file has bad rows",
                        ))
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

fn conflict(o: &SourceOrder) -> RowError {
    RowError::new(
        o.line,
        format!(
            "order {} on channel {} is already stored with other content (an order is \
             identified by its channel and order id)",
            o.post.order.order_id, o.post.order.channel
        ),
    )
}

/// Posts each order through the engine's earning path at its own `placed_at`.
async fn earn_batch(
    tx: &mut dyn Tx,
    orders: Vec<SourceOrder>,
    summary: &mut ImportSummary,
) -> Result<Vec<ImportOutcome>, AppError> {
    let mut outcomes = Vec::with_capacity(orders.len());
    // The campaigns active now apply to the imported history (each at its own placed_at).
    let campaigns = crate::campaigns::active_set(&tx.campaigns().await?)?;
    for o in orders {
        let hash = request_hash("order", &o.post);
        let key = OrderKey {
            channel: o.post.order.channel,
            order_id: o.post.order.order_id.clone(),
        };
        if let Some(stored) = tx.order(&key).await? {
            outcomes.push(ImportOutcome::of_existing(&stored.request_hash, &hash));
            continue;
        }
        let ctx = load_ctx(tx, o.placed_at).await?;
        let receipt = orders::post_order(tx, &ctx, &campaigns, o.post, hash).await?;
        summary.cashback_minor += receipt.cashback_minor;
        outcomes.push(ImportOutcome::Inserted);
    }
    Ok(outcomes)
}

/// An order as history: what the engine would store for it, earning nothing. Its request
/// hash is the one the engine gives the same order, so posting it later through the API
/// replays it instead of conflicting.
pub fn imported_record(o: &SourceOrder, created_at: DateTime<Utc>) -> OrderRecord {
    let order = &o.post.order;
    OrderRecord {
        key: OrderKey {
            channel: order.channel,
            order_id: order.order_id.clone(),
        },
        customer_id: order.customer_id.clone(),
        store_id: order.store_id.clone(),
        currency: order.currency.to_string(),
        placed_at: o.placed_at,
        created_at,
        redemption_id: None,
        redeemed_minor: 0,
        cashback_minor: 0,
        total_minor: order.total_minor(),
        lot_id: None,
        available_at: None,
        expires_at: None,
        request_hash: request_hash("order", &o.post),
        lines: order
            .lines
            .iter()
            .map(|line| LineRecord {
                net_minor: line.net_minor(),
                redeemed_minor: 0,
                cashback_minor: 0,
                returned_qty: 0,
                clawed_back_minor: 0,
                restored_minor: 0,
                explanation: IMPORTED_EXPLANATION.into(),
                rules: vec![],
                line: line.clone(),
            })
            .collect(),
        partner_id: o.post.partner_id.clone(),
        campaigns: Vec::new(),
    }
}
