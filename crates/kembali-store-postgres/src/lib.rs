//! PostgreSQL adapter of the Store port, for N stateless replicas on one database.
//!
//! Writes: a replica runs [`PgConfig::writers`] writer tasks that share one queue. A writer
//! takes every job waiting (up to [`PgConfig::max_batch`]), runs each in its own SAVEPOINT
//! inside one transaction, and commits once (group commit per replica; commits are durable,
//! `synchronous_commit = on`). A failing job rolls back to its savepoint alone. Callers get
//! their answer only after COMMIT returned.
//!
//! Concurrency across replicas: a job that changes a wallet first locks the customer row
//! (`SELECT … FOR UPDATE`), so jobs on one wallet serialize whatever replica runs them; new
//! rows (orders, returns, redemptions, idempotency keys) are guarded by primary keys, and a
//! duplicate insert aborts the job with a conflict that the engine retries (the retry then
//! finds the first one's row and replays its answer). Jobs take at most one wallet lock.
//!
//! A batch holds the locks of all its jobs until it commits, so two batches could wait on
//! each other (batch A holds wallet X and waits for Y, batch B holds Y and waits for X).
//! Only the first job of a batch may wait without bound: after it, the writer sets a short
//! `lock_timeout`, so a later job that meets a lock fails fast with a conflict and the
//! engine retries it in a later batch. No wait-for cycle can last longer than that timeout.
//!
//! Reads run on a separate pool in `REPEATABLE READ, READ ONLY` transactions: one snapshot
//! per read job. `sqlx::Error` never leaves this crate: it becomes a [`StoreError`].

mod tx;

use async_trait::async_trait;
use futures::FutureExt;
use kembali_app::error::{AppError, StoreError};
use kembali_app::store::batch::{erase, ErasedJob};
use kembali_app::store::{Job, Store};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Executor, PgPool, Postgres};
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};

pub use tx::PgTx;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How a replica uses its database.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// Writer tasks, each with one connection and one open batch at a time. More writers
    /// overlap round trips; each holds its batch's locks until it commits.
    pub writers: usize,
    /// Connections for reads.
    pub readers: u32,
    /// Jobs per group commit: bounds the wait of a batch's first job for its last, and the
    /// locks a batch holds at once.
    pub max_batch: usize,
    /// How long any job but a batch's first waits for a lock before it is retried later.
    pub lock_timeout: Duration,
    /// How long a request waits for a connection before the store reports itself unavailable
    /// (readiness fails instead of hanging while the database is down).
    pub acquire_timeout: Duration,
}

impl Default for PgConfig {
    fn default() -> Self {
        PgConfig {
            // Measured with `kembali bench-pg` (64 clients, 2 cores): 16 writers with batches
            // of at most 8 kept hold+capture p99 at 8.9 ms at half of peak where 8 writers
            // with batches of 128 gave 37 ms, at the same order throughput. A job's round
            // trips run one after another on its writer's connection, so a large batch makes
            // its last job wait for all the others.
            writers: 16,
            readers: 8,
            max_batch: 8,
            lock_timeout: Duration::from_millis(50),
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// Jobs waiting for a writer. A full queue makes callers wait (backpressure).
pub const QUEUE_CAPACITY: usize = 8_192;

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) => match d.code().as_deref() {
            // unique_violation, check_violation, serialization_failure, deadlock_detected,
            // lock_not_available: a race with another transaction; the engine retries.
            Some("23505" | "23514" | "40001" | "40P01" | "55P03") => {
                StoreError::Conflict(e.to_string())
            }
            // Connection exceptions, shutdown, too many connections, disk full.
            Some(c) if c.starts_with("08") || c.starts_with("57") || c.starts_with("53") => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Corrupt(e.to_string()),
        },
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Corrupt(e.to_string()),
    }
}

pub struct PgStore {
    queue: mpsc::Sender<ErasedJob>,
    reads: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`), applies pending migrations (under the migrator's
    /// advisory lock, so replicas starting together apply them once) and starts the writers.
    /// Must be called inside a tokio runtime.
    pub async fn connect(url: &str, config: PgConfig) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("bad PostgreSQL URL: {e}")))?
            .application_name("kembali")
            // Durable commits whatever the server's default: an acknowledged write is on disk.
            .options([("synchronous_commit", "on")])
            .disable_statement_logging();
        let pool = |size: u32, ping: bool| {
            PgPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(config.acquire_timeout)
                .test_before_acquire(ping)
                .connect_lazy_with(options.clone())
        };
        // Writers take a connection per batch, so a ping before each is cheap and makes a
        // database that came back usable at once. Readers take one per request: a ping
        // would double their round trips; a broken one fails one read and is closed.
        let writes = pool(config.writers as u32, true);
        let reads = pool(config.readers, false);
        MIGRATOR
            .run(&writes)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migrating PostgreSQL: {e}")))?;
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..config.writers.max(1) {
            tokio::spawn(writer_loop(writes.clone(), rx.clone(), config.clone()));
        }
        Ok(PgStore { queue, reads })
    }
}

async fn writer_loop(pool: PgPool, rx: Arc<Mutex<mpsc::Receiver<ErasedJob>>>, config: PgConfig) {
    let mut batch: Vec<ErasedJob> = Vec::with_capacity(config.max_batch);
    loop {
        {
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(job) => batch.push(job),
                None => return,
            }
            while batch.len() < config.max_batch {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            metrics::gauge!("store_write_queue_depth").set(rx.len() as f64);
        }
        metrics::histogram!("store_write_batch_size").record(batch.len() as f64);
        run_batch(&pool, &mut batch, &config).await;
    }
}

/// Tells every job's caller the batch could not run; the jobs never started.
fn fail_all(batch: &mut Vec<ErasedJob>, e: &StoreError) {
    tracing::error!(error = %e, jobs = batch.len(), "a write batch could not run");
    // Dropping a job drops its answer channel: the caller sees the store as unavailable.
    batch.clear();
}

async fn run_batch(pool: &PgPool, batch: &mut Vec<ErasedJob>, config: &PgConfig) {
    let mut conn = match pool.acquire().await {
        Ok(c) => c,
        Err(e) => return fail_all(batch, &db_err(e)),
    };
    if let Err(e) = conn.execute("BEGIN").await {
        return fail_all(batch, &db_err(e));
    }
    let mut done = Vec::with_capacity(batch.len());
    let mut broken: Option<StoreError> = None;
    let later_jobs_wait = format!(
        "SET LOCAL lock_timeout = {}; SAVEPOINT job",
        config.lock_timeout.as_millis().max(1)
    );
    for (i, job) in batch.drain(..).enumerate() {
        if broken.is_some() {
            continue; // dropped: its caller sees the store as unavailable
        }
        let opened = if i == 1 {
            conn.execute(sqlx::AssertSqlSafe(later_jobs_wait.clone()))
                .await
        } else {
            conn.execute("SAVEPOINT job").await
        };
        if let Err(e) = opened {
            broken = Some(db_err(e));
            continue;
        }
        let mut tx = PgTx::new(&mut conn, false);
        let completion = AssertUnwindSafe(job(&mut tx)).catch_unwind().await;
        let ok = matches!(&completion, Ok(c) if c.ok);
        let end = if ok {
            "RELEASE SAVEPOINT job"
        } else {
            "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job"
        };
        if let Err(e) = conn.execute(end).await {
            broken = Some(db_err(e));
        }
        match completion {
            Ok(c) => done.push(c),
            // A panicking job is a bug; its caller sees the dropped channel as an error.
            Err(_) => tracing::error!("a write job panicked; it was rolled back"),
        }
    }
    let commit_error = match broken {
        Some(e) => {
            tracing::error!(error = %e, "a write batch broke; rolling it back");
            discard(conn).await;
            Some(e)
        }
        None => match conn.execute("COMMIT").await {
            Ok(_) => None,
            Err(e) => {
                // The outcome is unknown if the connection dropped during COMMIT: the
                // callers hear "unavailable" and retry with the same ids, which replay.
                tracing::error!(error = %e, "group commit failed");
                discard(conn).await;
                Some(db_err(e))
            }
        },
    };
    for c in done {
        c.finish(&commit_error);
    }
}

/// Closes a connection whose transaction state is unknown instead of returning it to the
/// pool.
async fn discard(conn: PoolConnection<Postgres>) {
    let _ = conn.close().await;
}

#[async_trait]
impl Store for PgStore {
    async fn write<T: Send + 'static>(&self, job: Job<T>) -> Result<T, AppError> {
        let (erased, answer) = erase(job);
        self.queue
            .send(erased)
            .await
            .map_err(|_| AppError::Store(StoreError::Unavailable("the writers stopped".into())))?;
        answer.await
    }

    async fn read<T: Send + 'static>(&self, job: Job<T>) -> Result<T, AppError> {
        // On its own task: a caller that goes away (a client hanging up) must not leave a
        // connection inside an open snapshot for the next read to inherit.
        let pool = self.reads.clone();
        let task = tokio::spawn(async move {
            let mut conn = pool.acquire().await.map_err(db_err)?;
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await
                .map_err(db_err)?;
            let out = {
                let mut tx = PgTx::new(&mut conn, true);
                AssertUnwindSafe(job(&mut tx))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| {
                        Err(StoreError::Corrupt("a read job panicked".into()).into())
                    })
            };
            if conn.execute("COMMIT").await.is_err() {
                discard(conn).await;
            }
            out
        });
        task.await
            .map_err(|e| AppError::Store(StoreError::Corrupt(e.to_string())))?
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.reads.acquire().await.map_err(db_err)?;
        match conn.execute("SELECT 1").await {
            Ok(_) => Ok(()),
            Err(e) => {
                discard(conn).await;
                Err(db_err(e))
            }
        }
    }
}

pub mod testing {
    //! Fresh databases for tests: each test gets its own, dropped when the guard drops.
    //! PostgreSQL must be running; when it is not, tests fail with how to start it (they
    //! never skip).

    use sqlx::{Connection, PgConnection};

    /// The server tests use, as an admin URL (any database the user may connect to).
    pub fn admin_url() -> String {
        std::env::var("KEMBALI_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// A database that exists for as long as this guard does.
    pub struct TestDatabase {
        pub name: String,
        pub url: String,
    }

    async fn admin() -> PgConnection {
        let url = admin_url();
        PgConnection::connect(&url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {url} ({e}). The tests need it: start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
                 (or point KEMBALI_TEST_PG_URL at a server with trust auth)"
            )
        })
    }

    impl TestDatabase {
        pub async fn create() -> TestDatabase {
            let name = format!("kembali_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = admin().await;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create a test database");
            let _ = conn.close().await;
            let base = admin_url();
            let url = match base.rsplit_once('/') {
                Some((server, _)) => format!("{server}/{name}"),
                None => panic!("KEMBALI_TEST_PG_URL has no database part: {base}"),
            };
            TestDatabase { name, url }
        }
    }

    impl Drop for TestDatabase {
        fn drop(&mut self) {
            let name = self.name.clone();
            // Drop may run inside or outside a runtime: use a thread with its own.
            let dropped = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(async move {
                        let mut conn = admin().await;
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await
                    })
            })
            .join();
            if !matches!(dropped, Ok(Ok(_))) {
                eprintln!("could not drop test database {}", self.name);
            }
        }
    }
}
