//! SQLite adapter of the Store port.
//!
//! Writes go to ONE writer thread that owns the only writing connection. It takes every job
//! waiting in its queue (up to [`MAX_BATCH`]), runs them under savepoints in one
//! `BEGIN IMMEDIATE` transaction, and commits once (group commit): one fsync for the batch
//! instead of one per request. A job that fails rolls back what it wrote and the others in
//! the batch still commit: a job of its own ([`Store::write`]) rolls back alone; repeatable
//! jobs in a row share a savepoint, and those a failing one takes with it are answered
//! "run again" (see [`Savepoint`]). Callers get their answer only after the COMMIT returned,
//! with `synchronous=FULL` in WAL mode, so an acknowledged write survives power loss.
//!
//! Reads run on a small pool of read-only connections (WAL lets them read the last commit
//! while the writer writes).
//!
//! rusqlite rather than sqlx: a job issues ten or more small statements; through rusqlite's
//! cached prepared statements each costs a couple of microseconds on the writer thread,
//! whereas sqlx's SQLite driver sends every statement to its own worker thread and back.
//! `rusqlite::Error` never leaves this crate: it becomes a [`StoreError`].

mod alloc;
mod budgets;
mod migrate;
mod statements;
mod tx;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::FutureExt;
use kembali_app::error::{AppError, StoreError};
use kembali_app::store::batch::{erase, Completion, ErasedJob};
use kembali_app::store::{Job, Store, Tx};
use rusqlite::{Connection, OpenFlags};
use statements::{Db, Statements};
use std::os::raw::{c_int, c_void};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

pub use alloc::use_mimalloc;
pub use budgets::PendingBudgets;
pub use tx::{ParsedProgram, SqliteTx};

/// Jobs per group commit. Bounds the work lost to one failing COMMIT and the time the
/// first job of a batch waits for the last.
pub const MAX_BATCH: usize = 512;
/// Jobs waiting for the writer. A full queue makes callers wait (backpressure), it never
/// grows memory without bound.
pub const QUEUE_CAPACITY: usize = 8_192;
/// Read connections: reads are short; two cores do not gain from more.
pub const READERS: usize = 4;
/// The name of the writer thread (the one thread every write of a store runs on).
pub const WRITER_THREAD: &str = "kembali-sqlite-writer";
/// Page cache per connection, in KiB. The writer touches index pages all over the customer
/// and journal trees; SQLite's 2 MiB default makes it re-read them. 64 MiB × (1 + readers)
/// stays well inside the memory budget.
const CACHE_KIB: i64 = 64 * 1024;
/// SQLite's default page; 1 KiB and 8 KiB measured no better for order ingestion.
const PAGE_SIZE: i64 = 4096;
/// The writer's page cache while the file is no larger than [`PENDING_BYTE`]. When a page
/// split reorders the new pages, SQLite parks one under the number of the page that holds
/// that byte (the lock page, never used for data), and at the commit it then walks every
/// page of the connection's cache to drop those past the end of the file: with 64 MiB cached
/// that walk took 5 to 7 % of the writer's time. A file that small is mostly in the OS cache;
/// 8 MiB keeps the walk under 1 % with no more reads.
const WRITER_SMALL_CACHE_KIB: i64 = 8 * 1024;
const _: () = assert!(WRITER_SMALL_CACHE_KIB < CACHE_KIB);
/// SQLite's lock byte (`PENDING_BYTE`, 1 GiB): once the file is larger, the lock page is
/// inside it, so is the page parked under its number, and the commit walks nothing.
const PENDING_BYTE: i64 = 1 << 30;
/// Batches between two checks of the file's size for the writer's cache.
const CACHE_CHECK_BATCHES: u32 = 4_096;
/// How much of the database file each reader maps (SQLite caps it at its compile-time
/// maximum, 2 GiB by default).
const READER_MMAP_BYTES: i64 = 1 << 30;
/// How long a statement waits for a lock held by another process (a `kembali migrate` or
/// `keys create` run beside a server).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    queue: mpsc::Sender<Queued>,
    readers: Arc<Mutex<Vec<Connection>>>,
    reader_slots: Arc<Semaphore>,
}

pub(crate) fn db_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(e.to_string())
        }
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::CannotOpen
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Corrupt(e.to_string()),
    }
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    };
    use_mimalloc();
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    if !read_only {
        writer_lookaside(&conn);
        // WAL: readers never block the writer. FULL: the WAL is fsynced at every commit, so
        // an acknowledged write survives power loss (NORMAL would only survive a crash).
        // Only takes effect on a new database (before the first table exists).
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(db_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_err)?;
    }
    conn.pragma_update(None, "cache_size", -CACHE_KIB)
        .map_err(db_err)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(db_err)?;
    Ok(conn)
}

/// Lookaside slots of the writer's connection (1,200 bytes each, as SQLite's default).
/// SQLite serves a connection's small allocations from these slots without calling the
/// allocator, 40 by default. The writer keeps its statements prepared (see
/// [`statements`]), and an idle statement holds the slots of its last bindings; with the
/// default, the slots run out and each binding's copy goes to the allocator.
const WRITER_LOOKASIDE_SLOTS: c_int = 400;

/// Gives the writer's connection [`WRITER_LOOKASIDE_SLOTS`] (about 480 KiB). Only a
/// connection that has allocated nothing from its slots yet can change them: called right
/// after opening. If SQLite refuses, the connection keeps the default, which is slower but
/// just as correct.
fn writer_lookaside(conn: &Connection) {
    // SAFETY: the handle is live for the call; SQLite allocates the slots itself (null
    // buffer) and answers SQLITE_BUSY, changing nothing, while any slot is in use.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_db_config(
            conn.handle(),
            rusqlite::ffi::SQLITE_DBCONFIG_LOOKASIDE,
            std::ptr::null_mut::<c_void>(),
            1200 as c_int,
            WRITER_LOOKASIDE_SLOTS,
        )
    };
    if rc != rusqlite::ffi::SQLITE_OK {
        tracing::warn!(rc, "the writer keeps SQLite's default lookaside");
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies pending migrations and
    /// starts the writer thread. Must be called inside a tokio runtime.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, "FULL")
    }

    /// Like [`open`](Self::open), but commits are not fsynced (`synchronous=NORMAL` in WAL
    /// mode: a power loss may drop the last commits, never corrupt the file). Only for
    /// filling a database that can be rebuilt from scratch, such as `kembali demo`'s; open
    /// it again with [`open`](Self::open) to serve it.
    pub fn open_unsynced(path: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, "NORMAL")
    }

    fn open_with(path: &Path, synchronous: &str) -> Result<SqliteStore, StoreError> {
        let mut writer = open_connection(path, false)?;
        writer
            .pragma_update(None, "synchronous", synchronous)
            .map_err(db_err)?;
        migrate::run(&mut writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = open_connection(path, true)?;
            r.pragma_update(None, "query_only", true).map_err(db_err)?;
            // Long reads (reports, backtests) map the file instead of copying every page
            // through read(2). Readers only: the writer keeps plain I/O.
            r.pragma_update(None, "mmap_size", READER_MMAP_BYTES)
                .map_err(db_err)?;
            readers.push(r);
        }
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || writer_loop(writer, rx))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(SqliteStore {
            queue,
            readers: Arc::new(Mutex::new(readers)),
            reader_slots: Arc::new(Semaphore::new(READERS)),
        })
    }

    /// Queues `job` for the writer and waits for its answer.
    async fn queue_job<T: Send + 'static>(
        &self,
        job: Job<T>,
        repeatable: bool,
    ) -> Result<T, AppError> {
        let (job, answer) = erase(job);
        self.queue
            .send(Queued { job, repeatable })
            .await
            .map_err(|_| AppError::Store(StoreError::Unavailable("the writer stopped".into())))?;
        answer.await
    }

    /// Parses `sqlite://path`, `sqlite:path` or `sqlite::memory:`-less file paths.
    pub fn path_from_url(url: &str) -> Option<PathBuf> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let rest = rest.split('?').next().unwrap_or(rest);
        (!rest.is_empty()).then(|| PathBuf::from(rest))
    }
}

/// When the writer sizes its page cache for the file ([`WRITER_SMALL_CACHE_KIB`]).
struct WriterCache {
    batches_to_check: u32,
}

impl WriterCache {
    fn new() -> Self {
        WriterCache {
            batches_to_check: 0,
        }
    }

    /// Before a batch: every [`CACHE_CHECK_BATCHES`] batches, sizes the cache for the file.
    fn before_batch(&mut self, conn: &Connection) {
        if let Some(n) = self.batches_to_check.checked_sub(1) {
            self.batches_to_check = n;
            return;
        }
        self.batches_to_check = CACHE_CHECK_BATCHES;
        let sized = conn
            .query_row(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                [],
                |r| r.get::<_, i64>(0),
            )
            // Setting the size it already has changes nothing.
            .and_then(|bytes| conn.pragma_update(None, "cache_size", -writer_cache_kib(bytes)));
        if let Err(e) = sized {
            // The cache keeps its size: only speed depends on it.
            tracing::warn!(error = %e, "cannot size the writer's page cache");
        }
    }
}

/// The writer's page cache, in KiB, for a file of `bytes` bytes.
fn writer_cache_kib(bytes: i64) -> i64 {
    match bytes <= PENDING_BYTE {
        true => WRITER_SMALL_CACHE_KIB,
        false => CACHE_KIB,
    }
}

fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<Queued>) {
    // Declared after the connection, so dropped (finalised) before it.
    let kept = Statements::new(&conn);
    let mut program = ParsedProgram::default();
    let mut batch: Vec<Queued> = Vec::with_capacity(MAX_BATCH);
    let mut cache = WriterCache::new();
    while let Some(first) = rx.blocking_recv() {
        cache.before_batch(&conn);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        metrics::histogram!("store_write_batch_size").record(batch.len() as f64);
        metrics::gauge!("store_write_queue_depth").set(rx.len() as f64);
        run_batch(&kept, &mut program, &mut batch);
    }
}

/// Runs a kept statement that takes no parameters (the writer opens and ends a savepoint for
/// every few jobs; parsing them each time shows in profiles).
fn run_kept(kept: &Statements<'_>, sql: &'static str) -> rusqlite::Result<()> {
    kept.take(sql)?.execute([]).map(|_| ())
}

/// A job in the writer's queue.
struct Queued {
    job: ErasedJob,
    /// Its caller runs it again when answered [`StoreError::Conflict`]
    /// ([`Store::write_repeatable`]), so it may share a savepoint with its neighbours.
    repeatable: bool,
}

/// What a job rolled back with a failing neighbour hears.
fn rolled_back_with_neighbour() -> StoreError {
    StoreError::Conflict("rolled back with a failing job of its batch; run it again".into())
}

/// The jobs of a transaction under its open savepoint (`SAVEPOINT jobs`).
///
/// A savepoint costs the writer more than anything else a job does: SQLite copies every page
/// the first time it changes under a savepoint, so that the savepoint can be rolled back. A
/// savepoint per job copied the same hot pages (the indexes' roots and rightmost leaves) for
/// every job. Repeatable jobs in a row share one savepoint instead, and the pages are copied
/// once for all of them:
/// - a job that fails without having changed a row (the total of changed rows did not move)
///   leaves nothing to undo: it fails alone and its neighbours keep their savepoint;
/// - a job that fails after writing, or panics, rolls the whole savepoint back; its
///   neighbours under it hear [`rolled_back_with_neighbour`] and their callers run them
///   again. The rest of the batch then runs a savepoint per job, so one failure costs at most
///   one savepoint's reruns;
/// - a job that is not repeatable runs under a savepoint of its own, as every job once did.
#[derive(Default)]
struct Savepoint {
    open: bool,
    /// Jobs that succeeded under the open savepoint: answered when the batch commits, or
    /// told to run again if the savepoint is rolled back.
    succeeded: Vec<Completion>,
}

impl Savepoint {
    fn open(&mut self, kept: &Statements<'_>) -> rusqlite::Result<()> {
        if !self.open {
            run_kept(kept, "SAVEPOINT jobs")?;
            self.open = true;
        }
        Ok(())
    }

    /// Releases the open savepoint: its jobs' writes join the transaction.
    fn release(
        &mut self,
        kept: &Statements<'_>,
        budgets: &mut PendingBudgets,
        done: &mut Vec<Completion>,
    ) -> rusqlite::Result<()> {
        if !std::mem::take(&mut self.open) {
            return Ok(());
        }
        let released = run_kept(kept, "RELEASE jobs");
        budgets.savepoint_ended(released.is_ok());
        done.append(&mut self.succeeded);
        released
    }

    /// Before and after a job of its own (one that does not `share`): releases the open
    /// savepoint, the shared one before it or its own after it.
    fn release_unless_shared(
        &mut self,
        shares: bool,
        kept: &Statements<'_>,
        budgets: &mut PendingBudgets,
        done: &mut Vec<Completion>,
    ) -> rusqlite::Result<()> {
        match shares {
            true => Ok(()),
            false => self.release(kept, budgets, done),
        }
    }

    /// Rolls the open savepoint back and tells its jobs that succeeded to run again.
    fn roll_back(
        &mut self,
        kept: &Statements<'_>,
        budgets: &mut PendingBudgets,
    ) -> rusqlite::Result<()> {
        self.open = false;
        budgets.savepoint_ended(false);
        let rolled_back = Some(rolled_back_with_neighbour());
        for c in self.succeeded.drain(..) {
            c.finish(&rolled_back);
        }
        run_kept(kept, "ROLLBACK TO jobs").and_then(|_| run_kept(kept, "RELEASE jobs"))
    }
}

fn run_batch(kept: &Statements<'_>, program: &mut ParsedProgram, batch: &mut Vec<Queued>) {
    let conn = kept.conn();
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        tracing::error!(error = %e, jobs = batch.len(), "cannot begin a write transaction");
        // The jobs never ran; dropping them tells each caller the store is unavailable.
        batch.clear();
        return;
    }
    let mut done = Vec::with_capacity(batch.len());
    // Budget debits of this transaction's jobs, written just before it commits.
    let mut budgets = PendingBudgets::default();
    let mut savepoint = Savepoint::default();
    // Whether repeatable jobs may still share a savepoint (until one fails after writing).
    let mut sharing = true;
    // A savepoint that could not be ended leaves the transaction in doubt: it is rolled back.
    let mut in_doubt = None;
    for Queued { job, repeatable } in batch.drain(..) {
        let shares = repeatable && sharing;
        let opened = savepoint
            .release_unless_shared(shares, kept, &mut budgets, &mut done)
            .and_then(|()| savepoint.open(kept));
        if let Err(e) = opened {
            tracing::error!(error = %e, "cannot open a savepoint");
            in_doubt.get_or_insert(db_err(e));
            continue;
        }
        let changed_before = conn.total_changes();
        let mut tx = SqliteTx::writing(kept, &mut budgets, &mut *program);
        let outcome = AssertUnwindSafe(job(&mut tx)).catch_unwind();
        let completion = futures::executor::block_on(outcome);
        let succeeded = matches!(&completion, Ok(c) if c.ok);
        budgets.job_ended(succeeded);
        // A failed job that changed no row (and did not panic) leaves nothing to undo.
        let wrote = conn.total_changes() != changed_before || completion.is_err();
        let ended = match (succeeded, wrote) {
            (true, _) | (false, false) => Ok(()),
            (false, true) => {
                if shares {
                    metrics::counter!("store_write_jobs_rolled_back_with_neighbour")
                        .increment(savepoint.succeeded.len() as u64);
                    sharing = false;
                }
                savepoint.roll_back(kept, &mut budgets)
            }
        }
        .and_then(|()| savepoint.release_unless_shared(shares, kept, &mut budgets, &mut done));
        if let Err(e) = ended {
            tracing::error!(error = %e, "cannot end a savepoint");
            in_doubt.get_or_insert(db_err(e));
        }
        match completion {
            Ok(c) if succeeded && savepoint.open => savepoint.succeeded.push(c),
            Ok(c) => done.push(c),
            // A panicking job is a bug; its caller sees the dropped channel as an error.
            Err(_) => tracing::error!("a write job panicked; it was rolled back"),
        }
    }
    if let Err(e) = savepoint.release(kept, &mut budgets, &mut done) {
        tracing::error!(error = %e, "cannot end a savepoint");
        in_doubt.get_or_insert(db_err(e));
    }
    let ended = match in_doubt {
        Some(e) => Err(e),
        None => budgets.flush(&Db::kept(kept)),
    };
    let commit_error = ended
        .and_then(|()| conn.execute_batch("COMMIT").map_err(db_err))
        .err()
        .map(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            tracing::error!(error = %e, "group commit failed");
            e
        });
    for c in done {
        c.finish(&commit_error);
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn write<T: Send + 'static>(&self, job: Job<T>) -> Result<T, AppError> {
        self.queue_job(job, false).await
    }

    async fn write_repeatable<T: Send + 'static>(&self, job: Job<T>) -> Result<T, AppError> {
        self.queue_job(job, true).await
    }

    async fn read<T: Send + 'static>(&self, job: Job<T>) -> Result<T, AppError> {
        let _slot = self
            .reader_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AppError::Store(StoreError::Unavailable("reader pool closed".into())))?;
        let readers = self.readers.clone();
        let conn = readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .ok_or_else(|| StoreError::Corrupt("reader pool empty".into()))?;
        let handle = tokio::task::spawn_blocking(move || {
            let result = (|| {
                conn.execute_batch("BEGIN").map_err(db_err)?;
                let mut tx = SqliteTx::new(&conn);
                let out =
                    futures::executor::block_on(AssertUnwindSafe(job(&mut tx)).catch_unwind())
                        .unwrap_or_else(|_| {
                            Err(StoreError::Corrupt("a read job panicked".into()).into())
                        });
                let _ = conn.execute_batch("COMMIT");
                out
            })();
            (conn, result)
        });
        let (conn, result) = handle
            .await
            .map_err(|e| AppError::Store(StoreError::Corrupt(e.to_string())))?;
        readers.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        result
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(Box::new(|tx: &mut dyn Tx| {
            Box::pin(async move { Ok(tx.has_entries().await.map(|_| ())?) })
                as BoxFuture<'_, Result<(), AppError>>
        }))
        .await
        .map_err(|e| match e {
            AppError::Store(s) => s,
            other => StoreError::Unavailable(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_keeps_a_small_cache_up_to_the_lock_byte() {
        // With 4 KiB pages the lock page is 0x4000_0000 / 4096 + 1 = 262,145, the number a
        // debugger showed as the writer cache's largest key after a page split: a file of
        // 262,144 pages still ends before it, one of 262,145 holds it.
        assert_eq!(writer_cache_kib(0), WRITER_SMALL_CACHE_KIB);
        assert_eq!(
            writer_cache_kib(262_144 * PAGE_SIZE),
            WRITER_SMALL_CACHE_KIB
        );
        assert_eq!(writer_cache_kib(262_145 * PAGE_SIZE), CACHE_KIB);
    }

    /// Lookaside slots `conn` has in use now.
    fn lookaside_used(conn: &Connection) -> c_int {
        let (mut now, mut highest) = (0, 0);
        // SAFETY: a live handle and two out-parameters.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_db_status(
                conn.handle(),
                rusqlite::ffi::SQLITE_DBSTATUS_LOOKASIDE_USED,
                &mut now,
                &mut highest,
                0,
            )
        };
        assert_eq!(rc, rusqlite::ffi::SQLITE_OK);
        now
    }

    #[test]
    fn the_writer_has_lookaside_for_its_kept_statements() {
        // SQLite's default (1,200 bytes × 40) is 30 full slots and 93 small ones: 123.
        const DEFAULT_SLOTS: c_int = 123;
        let dir = tempfile::tempdir().unwrap();
        let hold_statements = |conn: &Connection| {
            let mut kept: Vec<_> = (0..80)
                .map(|i| conn.prepare(&format!("SELECT ?1 || '{i}'")).unwrap())
                .collect();
            for st in &mut kept {
                st.query_row(["a binding"], |r| r.get::<_, String>(0))
                    .unwrap();
            }
            let used = lookaside_used(conn);
            drop(kept);
            used
        };
        let writer = open_connection(&dir.path().join("w.db"), false).unwrap();
        let used = hold_statements(&writer);
        assert!(
            used > DEFAULT_SLOTS,
            "the writer's statements hold {used} slots"
        );
        let reader = open_connection(&dir.path().join("w.db"), true).unwrap();
        let used = hold_statements(&reader);
        assert!(used <= DEFAULT_SLOTS, "a reader keeps the default ({used})");
    }

    #[test]
    fn the_writer_sizes_its_cache_before_its_first_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_connection(&dir.path().join("k.db"), false).unwrap();
        migrate::run(&mut conn).unwrap();
        let kib = |c: &Connection| -> i64 {
            -c.pragma_query_value(None, "cache_size", |r| r.get::<_, i64>(0))
                .unwrap()
        };
        assert_eq!(kib(&conn), CACHE_KIB);
        let mut cache = WriterCache::new();
        cache.before_batch(&conn);
        assert_eq!(kib(&conn), WRITER_SMALL_CACHE_KIB);
        // It looks again only after CACHE_CHECK_BATCHES more batches (the file stays small).
        for _ in 0..=CACHE_CHECK_BATCHES {
            cache.before_batch(&conn);
        }
        assert_eq!(cache.batches_to_check, CACHE_CHECK_BATCHES);
        assert_eq!(kib(&conn), WRITER_SMALL_CACHE_KIB);
    }

    mod batches {
        //! One batch run on a real database, its jobs in a known order (a batch gathered by
        //! the writer holds whatever happened to be queued).
        use super::super::*;
        use chrono::Utc;
        use kembali_app::store::{job, CampaignAction, CampaignStatus};
        use kembali_core::ids::CampaignId;
        use kembali_store_tests::harness::{campaign_version, customer_record};
        use std::future::Future;

        type Answer = std::pin::Pin<Box<dyn Future<Output = Result<i64, AppError>>>>;

        /// What a test job does after debiting 10 from the budget of `bf`.
        #[derive(Clone, Copy)]
        enum Then {
            Succeed,
            FailBeforeWriting,
            FailAfterWriting,
        }

        fn bf() -> CampaignId {
            CampaignId::parse("bf").unwrap()
        }

        /// A job that debits 10 from `bf`, then inserts the customer `id` (unless it fails
        /// before writing); it answers what the budget had spent before its debit.
        fn debit_and_insert(id: &'static str, then: Then, repeatable: bool) -> (Queued, Answer) {
            let (job, answer) = erase(job(move |tx| {
                Box::pin(async move {
                    let spent = tx.lock_budgets(&[bf()]).await?[0].1;
                    tx.spend_budget(&bf(), 10).await?;
                    if let Then::FailBeforeWriting = then {
                        return Err(AppError::conflict("test_failure", "fails before writing"));
                    }
                    tx.insert_customer(&customer_record(id)).await?;
                    match then {
                        Then::Succeed => Ok(spent),
                        _ => Err(AppError::conflict("test_failure", "fails after writing")),
                    }
                })
            }));
            (Queued { job, repeatable }, Box::pin(answer))
        }

        /// Runs `jobs` as one batch on a new database whose campaign `bf` has a budget; returns
        /// their answers, the customers committed and what the budget has spent.
        fn run(jobs: Vec<(Queued, Answer)>) -> (Vec<Result<i64, String>>, Vec<String>, i64) {
            let dir = tempfile::tempdir().unwrap();
            let mut conn = open_connection(&dir.path().join("k.db"), false).unwrap();
            migrate::run(&mut conn).unwrap();
            let kept = Statements::new(&conn);
            let version = campaign_version(
                "bf",
                1,
                CampaignAction::Create,
                CampaignStatus::Active,
                Some(1_000),
                Utc::now(),
            );
            let (created, _) = erase(job(move |tx| {
                Box::pin(async move { Ok(tx.put_campaign_version(&version).await?) })
            }));
            let mut program = ParsedProgram::default();
            run_batch(
                &kept,
                &mut program,
                &mut vec![Queued {
                    job: created,
                    repeatable: false,
                }],
            );
            let (mut batch, answers): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
            run_batch(&kept, &mut program, &mut batch);
            let answers = answers
                .into_iter()
                .map(|a| futures::executor::block_on(a).map_err(|e| e.code().to_string()))
                .collect();
            let mut st = conn
                .prepare("SELECT id FROM customers ORDER BY id")
                .unwrap();
            let customers = st
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let spent = conn
                .query_row(
                    "SELECT budget_spent FROM campaigns WHERE id = 'bf'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            (answers, customers, spent)
        }

        #[test]
        fn a_repeatable_job_failing_after_writing_takes_its_savepoint_with_it() {
            let (answers, customers, spent) = run(vec![
                debit_and_insert("a", Then::Succeed, true),
                debit_and_insert("b", Then::Succeed, true),
                debit_and_insert("c", Then::FailAfterWriting, true),
                debit_and_insert("d", Then::Succeed, true),
                debit_and_insert("e", Then::Succeed, true),
                debit_and_insert("f", Then::FailAfterWriting, true),
            ]);
            let again = Err("write_conflict".to_string());
            let failed = Err("test_failure".to_string());
            // `d` sees none of the debits of the rolled-back jobs; `e` sees `d`'s. After the
            // first failure each job has a savepoint of its own: `f` takes only itself.
            assert_eq!(
                answers,
                [again.clone(), again, failed.clone(), Ok(0), Ok(10), failed]
            );
            assert_eq!(customers, ["d", "e"]);
            assert_eq!(spent, 20);
        }

        #[test]
        fn a_repeatable_job_failing_before_it_writes_fails_alone() {
            let (answers, customers, spent) = run(vec![
                debit_and_insert("a", Then::Succeed, true),
                debit_and_insert("b", Then::FailBeforeWriting, true),
                debit_and_insert("c", Then::Succeed, true),
            ]);
            let failed = Err("test_failure".to_string());
            assert_eq!(answers, [Ok(0), failed, Ok(10)]);
            assert_eq!(customers, ["a", "c"]);
            assert_eq!(spent, 20);
        }

        #[test]
        fn a_job_of_its_own_rolls_back_alone_between_repeatable_ones() {
            let (answers, customers, spent) = run(vec![
                debit_and_insert("a", Then::Succeed, true),
                debit_and_insert("b", Then::FailAfterWriting, false),
                debit_and_insert("c", Then::Succeed, true),
                debit_and_insert("d", Then::Succeed, false),
                debit_and_insert("e", Then::Succeed, true),
                debit_and_insert("f", Then::FailAfterWriting, true),
            ]);
            let failed = Err("test_failure".to_string());
            // `b` took no neighbour with it, so `e` and `f` still share a savepoint.
            let again = Err("write_conflict".to_string());
            assert_eq!(
                answers,
                [Ok(0), failed.clone(), Ok(10), Ok(20), again, failed]
            );
            assert_eq!(customers, ["a", "c", "d"]);
            assert_eq!(spent, 30);
        }
    }
}
