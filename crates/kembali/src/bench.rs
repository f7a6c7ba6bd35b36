//! `kembali bench`: how fast the embedded (SQLite) mode is on this machine, with the same
//! durability as production (WAL, `synchronous=FULL`, every acknowledged write fsynced).
//!
//! Phases, each on a fresh database file in a temporary directory under `--dir` (default:
//! the current directory, never a tmpfs `/tmp` by accident: the filesystem is reported):
//! 1. `raw`: the ceiling of SQLite itself, through rusqlite: journal-sized rows with one
//!    COMMIT per row, then 1,000 rows per transaction.
//! 2. `engine`: orders posted through the use-case layer (`Engine<SqliteStore>`) by many
//!    concurrent tasks, so the writer's group commit fills up.
//! 3. `http`: the same through the real router, served in-process, by keep-alive clients.
//! 4. `redeem`: one-step redemptions (hold + capture) at a constant, open-loop rate, over
//!    HTTP and through the use-case layer, reporting latency percentiles.
//!
//! Memory (VmRSS, VmHWM of this process) is sampled after each phase. The load generator
//! runs in the same process as the server, so HTTP figures include the client's CPU cost.

use crate::campaigns_cmd::{create_campaigns, Mix};
use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::ValueEnum;
use hdrhistogram::Histogram;
use kembali_app::clock::SystemClock;
use kembali_app::model::{
    Caller, OrderLineRequest, OrderRequest, ProgramRequest, RedemptionRequest,
};
use kembali_app::store::{Role, Store};
use kembali_app::Engine;
use kembali_core::ids::Channel;
use kembali_http::AppState;
use kembali_store_sqlite::SqliteStore;
use serde::Serialize;
use std::future::Future;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

/// Rows per transaction in the batched raw-SQLite run.
const RAW_BATCH: usize = 1_000;
/// The one-commit-per-row run stops at this many rows even if time is left.
const RAW_PER_COMMIT_MAX_ROWS: usize = 100_000;
/// Each benchmark order has this many lines.
pub(crate) const LINES_PER_ORDER: usize = 3;
/// What each one-step redemption spends, and on an order of what total (minor units).
pub(crate) const REDEEM_AMOUNT_MINOR: i64 = 100;
const REDEEM_ORDER_TOTAL_MINOR: i64 = 10_000;
/// The total of each order that seeds the wallets of the redemption phase.
pub(crate) const SEED_ORDER_TOTAL_MINOR: i64 = 1_000_000;
/// Latencies are recorded in microseconds up to this bound (one minute).
const MAX_LATENCY_US: u64 = 60_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// rusqlite alone: one COMMIT per row, then 1,000 rows per transaction.
    Raw,
    /// Orders through the use-case layer.
    Engine,
    /// Orders through the HTTP API.
    Http,
    /// One-step redemptions at a steady rate, HTTP and use-case layer.
    Redeem,
}

/// Measure throughput, latency and memory of the embedded SQLite mode on this machine.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Orders posted through the use-case layer.
    #[arg(long, default_value_t = 100_000)]
    pub orders: usize,
    /// Orders posted over HTTP (default: the same as --orders).
    #[arg(long)]
    pub http_orders: Option<usize>,
    /// Concurrent clients (tokio tasks) posting orders.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Distinct customers the orders and redemptions are spread over.
    #[arg(long, default_value_t = 1_000)]
    pub customers: usize,
    /// Redemptions per second offered in the steady-rate phase (open loop).
    #[arg(long, default_value_t = 1_000)]
    pub rate: u32,
    /// Duration of each steady-rate run, in seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Rows inserted in the batched raw-SQLite run.
    #[arg(long, default_value_t = 200_000)]
    pub raw_rows: usize,
    /// Milliseconds spent on the one-COMMIT-per-row raw-SQLite run.
    #[arg(long, default_value_t = 3_000)]
    pub raw_commit_ms: u64,
    /// Where to create the temporary directory holding the databases (default: the
    /// current directory). Must be a real disk for the figures to mean anything.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The phases to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [Phase::Raw, Phase::Engine, Phase::Http, Phase::Redeem]
    )]
    pub phases: Vec<Phase>,
    /// Print the report as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Keep the temporary directory and its databases.
    #[arg(long)]
    pub keep: bool,
    /// Active campaigns in the stores the order phases (`engine`, `http`) post to, from the
    /// mix `--mix` names (0: the base rate only): the engine's ingestion with campaigns.
    #[arg(long, default_value_t = 0)]
    pub campaigns: usize,
    /// Which campaigns `--campaigns` creates (see `bench-campaigns`).
    #[arg(long, value_enum, default_value_t = Mix::Targeted)]
    pub mix: Mix,
}

impl Default for BenchArgs {
    fn default() -> Self {
        BenchArgs {
            orders: 100_000,
            http_orders: None,
            clients: 64,
            customers: 1_000,
            rate: 1_000,
            seconds: 10,
            raw_rows: 200_000,
            raw_commit_ms: 3_000,
            dir: None,
            phases: vec![Phase::Raw, Phase::Engine, Phase::Http, Phase::Redeem],
            json: false,
            keep: false,
            campaigns: 0,
            mix: Mix::Targeted,
        }
    }
}

// ---------------------------------------------------------------- report

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub environment: Environment,
    pub raw: Option<RawReport>,
    pub engine_orders: Option<IngestReport>,
    pub http_orders: Option<IngestReport>,
    pub redeem_http: Option<SteadyReport>,
    pub redeem_engine: Option<SteadyReport>,
    pub memory: Vec<MemorySample>,
    pub peak_rss_kib: u64,
    pub targets: Vec<TargetCheck>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub dir: String,
    pub filesystem: Filesystem,
    /// The filesystem of `/tmp`, to show why the databases are not there when it is tmpfs.
    pub tmp_filesystem: Filesystem,
    /// False when the databases sit on a memory filesystem: then fsync costs nothing and
    /// the figures are not the durable ones.
    pub durable: bool,
    pub journal_mode: &'static str,
    pub synchronous: &'static str,
    pub cpus: usize,
    pub version: &'static str,
    pub started_at: chrono::DateTime<Utc>,
    /// Active campaigns in the order phases' stores, and their mix.
    pub campaigns: usize,
    pub mix: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Filesystem {
    pub mount_point: String,
    pub fs_type: String,
    pub device: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RawReport {
    /// Columns of the `journal` table, with its index on (customer_id, seq).
    pub row: &'static str,
    pub per_commit: RawRun,
    pub batched: RawRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct RawRun {
    pub rows: usize,
    pub rows_per_transaction: usize,
    pub seconds: f64,
    pub rows_per_s: f64,
    /// Latency of one transaction (insert(s) + COMMIT with its fsync).
    pub commit_latency: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub orders: usize,
    pub ok: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub clients: usize,
    pub customers: usize,
    pub lines_per_order: usize,
    pub seconds: f64,
    pub orders_per_s: f64,
    pub latency: Latency,
    /// orders/s divided by raw rows/s at 1,000 rows per transaction.
    pub ratio_to_raw_batched: Option<f64>,
    /// orders/s divided by raw rows/s at one COMMIT per row.
    pub ratio_to_raw_per_commit: Option<f64>,
    /// Rows in the database per order posted (orders, lines, lots, journal, postings).
    pub rows_per_order: Option<f64>,
    /// orders/s × rows per order: the row rate to hold against the raw ceiling.
    pub rows_per_s: Option<f64>,
    pub db_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SteadyReport {
    pub via: &'static str,
    pub target_rate: u32,
    pub seconds: u64,
    pub customers: usize,
    pub amount_minor: i64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Successful requests per second, from the first send to the last answer.
    pub achieved_rate: f64,
    /// From the moment the request was sent to its answer.
    pub latency: Latency,
    /// From the moment the schedule said the request was due (includes the sender's
    /// lateness, so a stalled sender cannot hide slow answers).
    pub latency_from_schedule: Latency,
    /// How late the sender dispatched requests against the fixed schedule.
    pub sender_lag_max_us: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub(crate) fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            count: h.len(),
            mean_us: if h.is_empty() { 0.0 } else { h.mean() },
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MemorySample {
    pub after: &'static str,
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub what: &'static str,
    pub value: f64,
    pub unit: &'static str,
    /// `>=` or `<=`.
    pub comparison: &'static str,
    pub target: f64,
    pub floor: Option<f64>,
    /// `met`, `below_target` (but within the floor) or `missed`.
    pub verdict: &'static str,
}

impl TargetCheck {
    fn at_least(what: &'static str, value: f64, unit: &'static str, target: f64) -> Self {
        Self::check(what, value, unit, ">=", target, None)
    }

    fn at_most(what: &'static str, value: f64, unit: &'static str, target: f64) -> Self {
        Self::check(what, value, unit, "<=", target, None)
    }

    fn check(
        what: &'static str,
        value: f64,
        unit: &'static str,
        comparison: &'static str,
        target: f64,
        floor: Option<f64>,
    ) -> Self {
        let meets = |bound: f64| {
            if comparison == ">=" {
                value >= bound
            } else {
                value <= bound
            }
        };
        let verdict = if meets(target) {
            "met"
        } else if floor.is_some_and(meets) {
            "below_target"
        } else {
            "missed"
        };
        TargetCheck {
            what,
            value,
            unit,
            comparison,
            target,
            floor,
            verdict,
        }
    }
}

// ---------------------------------------------------------------- entry point

pub async fn run(args: BenchArgs) -> Result<()> {
    let report = collect(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// Runs the phases `args` asks for and returns the figures.
pub async fn collect(args: &BenchArgs) -> Result<Report> {
    if args.clients == 0 || args.customers == 0 || args.rate == 0 || args.seconds == 0 {
        bail!("--clients, --customers, --rate and --seconds must be at least 1");
    }
    let base = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().context("the current directory")?,
    };
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("kembali-bench-")
        .tempdir_in(&base)
        .with_context(|| format!("creating a temporary directory in {}", base.display()))?;
    let dir = tmp.path().canonicalize()?;
    let filesystem = filesystem_of(&dir);
    let tmp_filesystem = filesystem_of(Path::new("/tmp"));
    let durable = !matches!(filesystem.fs_type.as_str(), "tmpfs" | "ramfs");
    progress(&format!(
        "databases in {} ({} on {}, mounted at {})",
        dir.display(),
        filesystem.fs_type,
        filesystem.device,
        filesystem.mount_point
    ));
    if !durable {
        progress("WARNING: that is a memory filesystem; fsync is free there and the figures are not durable ones");
    }
    let environment = Environment {
        dir: dir.display().to_string(),
        filesystem,
        tmp_filesystem,
        durable,
        journal_mode: "WAL",
        synchronous: "FULL",
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        version: env!("CARGO_PKG_VERSION"),
        started_at: Utc::now(),
        campaigns: args.campaigns,
        mix: args
            .mix
            .to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default(),
    };
    let mut memory = vec![memory_sample("start")];
    let wants = |p: Phase| args.phases.contains(&p);

    let raw = if wants(Phase::Raw) {
        progress("phase 1: raw SQLite ceiling");
        let path = dir.join("raw.db");
        let (ms, rows) = (args.raw_commit_ms, args.raw_rows);
        let r = tokio::task::spawn_blocking(move || raw_sqlite(&path, ms, rows)).await??;
        memory.push(memory_sample("raw"));
        Some(r)
    } else {
        None
    };

    let engine_orders = if wants(Phase::Engine) {
        progress(&format!(
            "phase 2: {} orders through the use-case layer, {} clients",
            args.orders, args.clients
        ));
        let mut r = engine_orders(&dir.join("engine.db"), args).await?;
        relate_to_raw(&mut r, raw.as_ref());
        memory.push(memory_sample("engine orders"));
        Some(r)
    } else {
        None
    };

    let http_orders = if wants(Phase::Http) {
        let n = args.http_orders.unwrap_or(args.orders);
        progress(&format!(
            "phase 3: {n} orders over HTTP, {} clients",
            args.clients
        ));
        let mut r = http_orders(&dir.join("http.db"), args, n).await?;
        relate_to_raw(&mut r, raw.as_ref());
        memory.push(memory_sample("http orders"));
        Some(r)
    } else {
        None
    };

    let (redeem_http, redeem_engine) = if wants(Phase::Redeem) {
        progress(&format!(
            "phase 4: one-step redemptions at {}/s for {} s, over HTTP then the use-case layer",
            args.rate, args.seconds
        ));
        let (h, e) = steady_redemptions(&dir.join("redeem.db"), args, &mut memory).await?;
        (Some(h), Some(e))
    } else {
        (None, None)
    };

    let last = memory_sample("end");
    let peak_rss_kib = last.hwm_kib;
    memory.push(last);

    let mut targets = Vec::new();
    if let Some(r) = &engine_orders {
        targets.push(TargetCheck::check(
            "orders/s, use-case layer",
            r.orders_per_s,
            "orders/s",
            ">=",
            50_000.0,
            Some(20_000.0),
        ));
    }
    if let Some(r) = &http_orders {
        targets.push(TargetCheck::at_least(
            "orders/s, HTTP",
            r.orders_per_s,
            "orders/s",
            10_000.0,
        ));
    }
    for r in [&redeem_http, &redeem_engine].into_iter().flatten() {
        targets.push(TargetCheck::at_most(
            if r.via == "http" {
                "hold+capture p99, HTTP"
            } else {
                "hold+capture p99, use-case layer"
            },
            r.latency.p99_us as f64 / 1_000.0,
            "ms",
            5.0,
        ));
    }
    targets.push(TargetCheck::at_most(
        "peak RSS",
        peak_rss_kib as f64 / 1024.0,
        "MiB",
        300.0,
    ));

    if args.keep {
        let kept = tmp.keep();
        progress(&format!("kept {}", kept.display()));
    }
    Ok(Report {
        environment,
        raw,
        engine_orders,
        http_orders,
        redeem_http,
        redeem_engine,
        memory,
        peak_rss_kib,
        targets,
    })
}

pub(crate) fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}

fn relate_to_raw(r: &mut IngestReport, raw: Option<&RawReport>) {
    if let Some(raw) = raw {
        r.ratio_to_raw_batched = ratio(r.orders_per_s, raw.batched.rows_per_s);
        r.ratio_to_raw_per_commit = ratio(r.orders_per_s, raw.per_commit.rows_per_s);
    }
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros())
        .unwrap_or(MAX_LATENCY_US)
        .clamp(1, MAX_LATENCY_US);
    h.record(us).expect("value within the bounds");
}

pub(crate) fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

// ---------------------------------------------------------------- phase 1: raw SQLite

const RAW_SCHEMA: &str = "
CREATE TABLE journal (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    at             INTEGER NOT NULL,
    customer_id    TEXT    NOT NULL,
    asset          TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    explanation    TEXT    NOT NULL,
    order_channel  TEXT,
    order_id       TEXT,
    redemption_id  TEXT,
    return_id      TEXT,
    lot_id         INTEGER
);
CREATE INDEX journal_by_customer ON journal (customer_id, seq);
";

const RAW_INSERT: &str = "INSERT INTO journal (at, customer_id, asset, kind, explanation, \
     order_channel, order_id, redemption_id, return_id, lot_id) \
     VALUES (?1, ?2, 'cash', 'earn', ?3, 'web', ?4, NULL, NULL, ?5)";

fn raw_insert(tx: &rusqlite::Transaction<'_>, i: usize) -> rusqlite::Result<()> {
    let n = i64::try_from(i).unwrap_or(i64::MAX);
    tx.prepare_cached(RAW_INSERT)?.execute(rusqlite::params![
        Utc::now().timestamp_micros(),
        format!("cust-{:04}", i % 1_000),
        "5% base cashback on BRL 123.45 (order total)",
        format!("ord-{i}"),
        n,
    ])?;
    Ok(())
}

fn raw_sqlite(path: &Path, per_commit_ms: u64, batched_rows: usize) -> Result<RawReport> {
    let mut conn = rusqlite::Connection::open(path)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!("SQLite refused WAL mode here (got {mode})");
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(RAW_SCHEMA)?;

    // (a) one COMMIT per row, for a fixed time.
    let budget = Duration::from_millis(per_commit_ms);
    let mut h = latency_histogram();
    let start = Instant::now();
    let mut rows = 0;
    while start.elapsed() < budget && rows < RAW_PER_COMMIT_MAX_ROWS {
        let t = Instant::now();
        let tx = conn.transaction()?;
        raw_insert(&tx, rows)?;
        tx.commit()?;
        record(&mut h, t.elapsed());
        rows += 1;
    }
    let took = start.elapsed();
    let per_commit = RawRun {
        rows,
        rows_per_transaction: 1,
        seconds: took.as_secs_f64(),
        rows_per_s: per_second(rows, took),
        commit_latency: Latency::of(&h),
    };
    progress(&format!(
        "  one COMMIT per row: {} rows/s (commit p50 {} us)",
        fmt_f(per_commit.rows_per_s),
        per_commit.commit_latency.p50_us
    ));

    // (b) 1,000 rows per transaction.
    let mut h = latency_histogram();
    let start = Instant::now();
    let mut done = 0;
    while done < batched_rows {
        let t = Instant::now();
        let tx = conn.transaction()?;
        let end = (done + RAW_BATCH).min(batched_rows);
        for i in done..end {
            raw_insert(&tx, rows + i)?;
        }
        tx.commit()?;
        record(&mut h, t.elapsed());
        done = end;
    }
    let took = start.elapsed();
    let batched = RawRun {
        rows: done,
        rows_per_transaction: RAW_BATCH,
        seconds: took.as_secs_f64(),
        rows_per_s: per_second(done, took),
        commit_latency: Latency::of(&h),
    };
    progress(&format!(
        "  {RAW_BATCH} rows per transaction: {} rows/s",
        fmt_f(batched.rows_per_s)
    ));
    Ok(RawReport {
        row: "journal (11 columns: 4 integers, 7 short texts) + index (customer_id, seq)",
        per_commit,
        batched,
    })
}

// ---------------------------------------------------------------- orders

async fn open_engine(path: &Path) -> Result<Engine<SqliteStore>> {
    let store = SqliteStore::open(path).with_context(|| format!("opening {}", path.display()))?;
    let engine = Engine::new(Arc::new(store), Arc::new(SystemClock));
    engine.init().await?;
    Ok(engine)
}

/// [`open_engine`] with the `--campaigns` active campaigns of `--mix`, for the order phases.
async fn open_ingesting(path: &Path, args: &BenchArgs) -> Result<Engine<SqliteStore>> {
    let engine = open_engine(path).await?;
    create_campaigns(&engine, args.mix, args.campaigns).await?;
    Ok(engine)
}

/// Posts bench order `i` of `prefix` through the use-case layer.
pub(crate) async fn post_order<S: Store>(
    engine: &Engine<S>,
    prefix: &str,
    i: usize,
    customer: String,
    total_hint: i64,
) -> Result<(), String> {
    let order = order_request(prefix, i, customer, total_hint)
        .parse(&Caller::default())
        .map_err(|e| format!("{e:?}"))?;
    engine
        .post_order(order, None)
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

pub(crate) fn customer_id(i: usize, customers: usize) -> String {
    format!("cust-{:05}", i % customers)
}

/// A three-line basket; prices vary with `i` so the orders are not all identical.
pub(crate) fn order_request(
    prefix: &str,
    i: usize,
    customer: String,
    total_hint: i64,
) -> OrderRequest {
    let categories = ["grocery", "apparel", "home"];
    let base = total_hint / LINES_PER_ORDER as i64;
    let lines = (0..LINES_PER_ORDER)
        .map(|l| {
            let quantity = 1 + ((i + l) % 3) as i64;
            OrderLineRequest {
                line_id: format!("{}", l + 1),
                sku: format!("sku-{}", (i * 7 + l) % 500),
                category: categories[l].to_string(),
                tags: if l == 0 { vec!["eco".into()] } else { vec![] },
                quantity,
                unit_price_minor: (base / quantity).max(1) + (i % 97) as i64,
                discount_minor: 0,
            }
        })
        .collect();
    OrderRequest {
        order_id: format!("{prefix}-{i}"),
        channel: Some(Channel::Web),
        store_id: None,
        customer_id: customer,
        currency: "BRL".into(),
        placed_at: None,
        lines,
        redemption_id: None,
        partner_id: None,
    }
}

/// What a pool of closed-loop workers measured.
pub(crate) struct Closed {
    pub(crate) ok: usize,
    pub(crate) errors: usize,
    pub(crate) first_error: Option<String>,
    pub(crate) took: Duration,
    pub(crate) latency: Histogram<u64>,
}

/// Runs `call(i)` for every `i` of `calls` from `clients` concurrent tasks, each waiting for
/// its answer before sending the next (closed loop: the throughput the system sustains).
pub(crate) async fn closed_loop<F, Fut>(calls: Range<usize>, clients: usize, call: F) -> Closed
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = std::result::Result<(), String>> + Send + 'static,
{
    let n = calls.end;
    let next = Arc::new(AtomicUsize::new(calls.start));
    let start = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let next = next.clone();
            let call = call.clone();
            tokio::spawn(async move {
                let mut h = latency_histogram();
                let (mut ok, mut errors, mut first_error) = (0, 0, None);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let t = Instant::now();
                    match call(i).await {
                        Ok(()) => {
                            record(&mut h, t.elapsed());
                            ok += 1;
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                (h, ok, errors, first_error)
            })
        })
        .collect();
    let mut out = Closed {
        ok: 0,
        errors: 0,
        first_error: None,
        took: Duration::ZERO,
        latency: latency_histogram(),
    };
    for w in workers {
        match w.await {
            Ok((h, ok, errors, first_error)) => {
                out.latency.add(&h).expect("same bounds");
                out.ok += ok;
                out.errors += errors;
                if out.first_error.is_none() {
                    out.first_error = first_error;
                }
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(format!("worker failed: {e}"));
            }
        }
    }
    out.took = start.elapsed();
    out
}

fn ingest_report(n: usize, args: &BenchArgs, c: Closed, db: &Path) -> IngestReport {
    let orders_per_s = per_second(c.ok, c.took);
    let rows_per_order = rows_per_order(db, c.ok);
    let r = IngestReport {
        orders: n,
        ok: c.ok,
        errors: c.errors,
        first_error: c.first_error,
        clients: args.clients,
        customers: args.customers,
        lines_per_order: LINES_PER_ORDER,
        seconds: c.took.as_secs_f64(),
        orders_per_s,
        latency: Latency::of(&c.latency),
        ratio_to_raw_batched: None,
        ratio_to_raw_per_commit: None,
        rows_per_order,
        rows_per_s: rows_per_order.map(|r| r * orders_per_s),
        db_bytes: db_bytes(db),
    };
    progress(&format!(
        "  {} orders/s ({} ok, {} errors), latency p50 {} us p99 {} us",
        fmt_f(r.orders_per_s),
        r.ok,
        r.errors,
        r.latency.p50_us,
        r.latency.p99_us
    ));
    if let Some(e) = &r.first_error {
        progress(&format!("  first error: {e}"));
    }
    r
}

async fn engine_orders(db: &Path, args: &BenchArgs) -> Result<IngestReport> {
    let engine = open_ingesting(db, args).await?;
    let customers = args.customers;
    let e = engine.clone();
    let c = closed_loop(0..args.orders, args.clients, move |i| {
        let engine = e.clone();
        async move { post_order(&engine, "eng", i, customer_id(i, customers), 30_000).await }
    })
    .await;
    drop(engine);
    Ok(ingest_report(args.orders, args, c, db))
}

/// The real router served in-process on an ephemeral port.
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) admin_key: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub(crate) async fn start<S: Store>(engine: &Engine<S>) -> Result<Server> {
        let (admin_key, _) = engine.create_api_key(Role::Admin, None, None).await?;
        let state = AppState::new(engine.clone(), None, None);
        let app = kembali_http::router(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Server {
            base: format!("http://{addr}"),
            admin_key,
            stop,
            task,
        })
    }

    /// Stops the server; call after the clients are dropped so keep-alive connections close.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

pub(crate) fn http_client(clients: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(clients.max(1) * 4)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// Sends a JSON POST and reads the whole answer (so the connection goes back to the pool).
pub(crate) async fn post_json<T: Serialize + ?Sized>(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: &T,
) -> std::result::Result<(), String> {
    let resp = client
        .post(url)
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("{e}"))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| format!("{e}"))?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        ))
    }
}

async fn http_orders(db: &Path, args: &BenchArgs, n: usize) -> Result<IngestReport> {
    let engine = open_ingesting(db, args).await?;
    let c = http_closed_loop(&engine, "http", n, args.clients, args.customers).await?;
    drop(engine);
    Ok(ingest_report(n, args, c, db))
}

/// Posts `n` bench orders of `prefix` through the JSON API, served in-process for the run,
/// from `clients` closed-loop clients.
pub(crate) async fn http_closed_loop<S: Store>(
    engine: &Engine<S>,
    prefix: &'static str,
    n: usize,
    clients: usize,
    customers: usize,
) -> Result<Closed> {
    let server = Server::start(engine).await?;
    let client = http_client(clients)?;
    let c = http_post_range(&server, &client, prefix, 0..n, clients, customers).await;
    drop(client);
    server.stop().await;
    Ok(c)
}

/// Posts the bench orders numbered `range` to a running server, `clients` at a time.
pub(crate) async fn http_post_range(
    server: &Server,
    client: &reqwest::Client,
    prefix: &'static str,
    range: Range<usize>,
    clients: usize,
    customers: usize,
) -> Closed {
    let url = Arc::new(format!("{}/v1/orders", server.base));
    let key = Arc::new(server.admin_key.clone());
    let cl = client.clone();
    closed_loop(range, clients, move |i| {
        let (client, url, key) = (cl.clone(), url.clone(), key.clone());
        async move {
            let req = order_request(prefix, i, customer_id(i, customers), 30_000);
            post_json(&client, &url, &key, &req).await
        }
    })
    .await
}

// ---------------------------------------------------------------- phase 4: redemptions

/// What an open-loop run measured.
pub(crate) struct Open {
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) took: Duration,
    pub(crate) latency: Histogram<u64>,
    from_schedule: Histogram<u64>,
    lag_max: Duration,
}

/// Sends `rate` requests per second for `seconds`, each on its own task, on a fixed
/// schedule that never waits for answers (open loop: slow answers cannot slow the sender,
/// so they show in the latency instead of hiding in a lower rate).
pub(crate) async fn open_loop<F, Fut>(rate: u32, seconds: u64, send: F) -> Open
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = std::result::Result<(), String>> + Send + 'static,
{
    let total = u64::from(rate) * seconds;
    let period = Duration::from_nanos((1_000_000_000 / u64::from(rate)).max(1));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
    type Outcome = (Duration, Duration, std::result::Result<(), String>);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Outcome>();
    let start = Instant::now();
    let mut lag_max = Duration::ZERO;
    for i in 0..total {
        let due = interval.tick().await.into_std();
        let sent_at = Instant::now();
        lag_max = lag_max.max(sent_at.saturating_duration_since(due));
        let fut = send(i);
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            let r = fut.await;
            let _ = done_tx.send((sent_at.elapsed(), due.elapsed(), r));
        });
    }
    drop(done_tx);
    let mut out = Open {
        sent: total,
        ok: 0,
        errors: 0,
        first_error: None,
        took: Duration::ZERO,
        latency: latency_histogram(),
        from_schedule: latency_histogram(),
        lag_max,
    };
    while let Some((latency, from_schedule, r)) = done_rx.recv().await {
        match r {
            Ok(()) => {
                out.ok += 1;
                record(&mut out.latency, latency);
                record(&mut out.from_schedule, from_schedule);
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
            }
        }
    }
    out.took = start.elapsed();
    out
}

fn steady_report(via: &'static str, args: &BenchArgs, o: Open) -> SteadyReport {
    let r = SteadyReport {
        via,
        target_rate: args.rate,
        seconds: args.seconds,
        customers: args.customers,
        amount_minor: REDEEM_AMOUNT_MINOR,
        sent: o.sent,
        ok: o.ok,
        errors: o.errors,
        first_error: o.first_error,
        achieved_rate: o.ok as f64 / o.took.as_secs_f64().max(1e-9),
        latency: Latency::of(&o.latency),
        latency_from_schedule: Latency::of(&o.from_schedule),
        sender_lag_max_us: u64::try_from(o.lag_max.as_micros()).unwrap_or(u64::MAX),
    };
    progress(&format!(
        "  {via}: {} ok/s ({} ok, {} errors), p50 {} us, p99 {} us, max {} us",
        fmt_f(r.achieved_rate),
        r.ok,
        r.errors,
        r.latency.p50_us,
        r.latency.p99_us,
        r.latency.max_us
    ));
    if let Some(e) = &r.first_error {
        progress(&format!("  first error: {e}"));
    }
    r
}

pub(crate) fn redemption_request(via: &str, i: u64, customers: usize) -> RedemptionRequest {
    let i = usize::try_from(i).unwrap_or(usize::MAX);
    RedemptionRequest {
        redemption_id: Some(format!("rdm-{via}-{i}")),
        customer_id: customer_id(i, customers),
        amount_minor: REDEEM_AMOUNT_MINOR,
        order_total_minor: REDEEM_ORDER_TOTAL_MINOR,
        currency: "BRL".into(),
        channel: Some(Channel::Store),
        store_id: None,
        capture: true,
    }
}

/// One one-step redemption (hold + capture) of bench request `i` through the use-case layer.
pub(crate) async fn redeem<S: Store>(
    engine: &Engine<S>,
    via: &'static str,
    i: u64,
    customers: usize,
) -> Result<(), String> {
    let parsed = redemption_request(via, i, customers)
        .parse(&Caller::default(), || "rdm-unused".to_string())
        .map_err(|e| format!("{e:?}"))?;
    engine
        .redeem(parsed, None)
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

/// Posts `orders` large orders spread over `customers` wallets, to give them cashback.
pub(crate) async fn seed_wallets<S: Store>(
    engine: &Engine<S>,
    orders: usize,
    clients: usize,
    customers: usize,
) -> Result<()> {
    let e = engine.clone();
    let seeded = closed_loop(0..orders, clients, move |i| {
        let engine = e.clone();
        async move {
            post_order(
                &engine,
                "seed",
                i,
                customer_id(i, customers),
                SEED_ORDER_TOTAL_MINOR,
            )
            .await
        }
    })
    .await;
    if seeded.errors > 0 {
        bail!(
            "seeding failed: {} errors, first: {}",
            seeded.errors,
            seeded.first_error.unwrap_or_default()
        );
    }
    Ok(())
}

/// Seeds every customer with available cashback, then runs the steady-rate redemptions
/// over HTTP and through the use-case layer on the same database.
async fn steady_redemptions(
    db: &Path,
    args: &BenchArgs,
    memory: &mut Vec<MemorySample>,
) -> Result<(SteadyReport, SteadyReport)> {
    let engine = open_engine(db).await?;
    // Cashback matures at once, so the settle after seeding makes it all available.
    let program = engine
        .update_program(ProgramRequest {
            pending_days: Some(0),
            ..ProgramRequest::default()
        })
        .await?;
    let customers = args.customers;
    // Both runs draw from the same wallets, round robin.
    let per_customer = (2 * u64::from(args.rate) * args.seconds).div_ceil(customers as u64);
    let needed = i64::try_from(per_customer)?.saturating_mul(REDEEM_AMOUNT_MINOR);
    let cashback_per_order = SEED_ORDER_TOTAL_MINOR * i64::from(program.base_rate_bp) / 10_000;
    if cashback_per_order <= 0 {
        bail!("the program's base rate earns no cashback: cannot seed wallets");
    }
    // One more order than the arithmetic says covers the price rounding of the baskets.
    let orders_per_customer = usize::try_from(needed / cashback_per_order + 1)?;
    let seed_orders = customers * orders_per_customer;
    progress(&format!(
        "  seeding {customers} wallets with {seed_orders} orders"
    ));
    seed_wallets(&engine, seed_orders, args.clients, customers).await?;
    let matured = engine.run_due_work(engine.now()).await?;
    progress(&format!("  {matured} wallets settled (cashback available)"));

    let server = Server::start(&engine).await?;
    let client = http_client(64)?;
    let url = Arc::new(format!("{}/v1/redemptions", server.base));
    let key = Arc::new(server.admin_key.clone());
    // Warm the connection pool so the first requests do not pay for TCP handshakes.
    let warm: Vec<_> = (0..16)
        .map(|_| {
            let c = client.clone();
            let u = format!("{}/healthz", server.base);
            tokio::spawn(async move { c.get(u).send().await.map(|_| ()) })
        })
        .collect();
    for w in warm {
        let _ = w.await;
    }
    let http = open_loop(args.rate, args.seconds, |i| {
        let (client, url, key) = (client.clone(), url.clone(), key.clone());
        let req = redemption_request("http", i, customers);
        async move { post_json(&client, &url, &key, &req).await }
    })
    .await;
    let http = steady_report("http", args, http);
    memory.push(memory_sample("redeem over HTTP"));
    drop(client);
    server.stop().await;

    let direct = open_loop(args.rate, args.seconds, |i| {
        let engine = engine.clone();
        async move { redeem(&engine, "engine", i, customers).await }
    })
    .await;
    let direct = steady_report("use-case layer", args, direct);
    memory.push(memory_sample("redeem through the use-case layer"));
    Ok((http, direct))
}

// ---------------------------------------------------------------- environment

/// The mount that holds `path` (longest mount point that is a prefix of it).
fn filesystem_of(path: &Path) -> Filesystem {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut best: Option<(PathBuf, Filesystem)> = None;
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(device), Some(mount), Some(fs_type)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let mount = PathBuf::from(unescape_mount(mount));
        if path.starts_with(&mount)
            && best
                .as_ref()
                .is_none_or(|(b, _)| mount.as_os_str().len() >= b.as_os_str().len())
        {
            let fs = Filesystem {
                mount_point: mount.display().to_string(),
                fs_type: fs_type.to_string(),
                device: device.to_string(),
            };
            best = Some((mount, fs));
        }
    }
    best.map(|(_, fs)| fs).unwrap_or(Filesystem {
        mount_point: "?".into(),
        fs_type: "unknown".into(),
        device: "?".into(),
    })
}

/// `/proc/mounts` writes spaces and a few other bytes as `\ooo` octal escapes.
fn unescape_mount(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn memory_sample(after: &'static str) -> MemorySample {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    MemorySample {
        after,
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
}

/// Rows in the database per order (every table a posted order writes to).
fn rows_per_order(db: &Path, orders: usize) -> Option<f64> {
    if orders == 0 {
        return None;
    }
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    let mut rows = 0i64;
    for table in ["orders", "order_lines", "lots", "journal", "postings"] {
        rows += conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .ok()?;
    }
    Some(rows as f64 / orders as f64)
}

fn db_bytes(db: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(PathBuf::from(p)).ok()
        })
        .map(|m| m.len())
        .sum()
}

// ---------------------------------------------------------------- text report

/// A number with thousands separators and no decimals.
pub(crate) fn fmt_f(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn fmt_us(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1_000.0)
    } else {
        format!("{:.2} ms", us as f64 / 1_000.0)
    }
}

fn fmt_latency(l: &Latency) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        fmt_us(l.p50_us),
        fmt_us(l.p90_us),
        fmt_us(l.p99_us),
        fmt_us(l.p999_us),
        fmt_us(l.max_us)
    )
}

fn render(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let e = &r.environment;
    let _ = writeln!(
        s,
        "Kembali benchmark (embedded SQLite mode), v{}",
        e.version
    );
    let _ = writeln!(
        s,
        "  databases:  {} ({} on {}{})",
        e.dir,
        e.filesystem.fs_type,
        e.filesystem.device,
        if e.durable {
            ""
        } else {
            ", MEMORY: NOT DURABLE"
        }
    );
    let _ = writeln!(
        s,
        "  /tmp is:    {} on {}",
        e.tmp_filesystem.fs_type, e.tmp_filesystem.device
    );
    let _ = writeln!(
        s,
        "  durability: journal_mode={}, synchronous={}; {} CPUs, load generator in-process",
        e.journal_mode, e.synchronous, e.cpus
    );
    let _ = match e.campaigns {
        0 => writeln!(s, "  campaigns:  none (the base rate only)"),
        n => writeln!(
            s,
            "  campaigns:  {n} active ({} mix) in the order phases",
            e.mix
        ),
    };
    if let Some(raw) = &r.raw {
        let _ = writeln!(s, "\n1. Raw SQLite ceiling ({})", raw.row);
        for (name, run) in [
            ("one COMMIT per row:", &raw.per_commit),
            ("1,000 rows per tx:", &raw.batched),
        ] {
            let _ = writeln!(
                s,
                "   {name:<19} {:>10} rows/s  ({} rows in {:.2} s; tx p50 {}, p99 {})",
                fmt_f(run.rows_per_s),
                fmt_f(run.rows as f64),
                run.seconds,
                fmt_us(run.commit_latency.p50_us),
                fmt_us(run.commit_latency.p99_us)
            );
        }
    }
    for (title, ingest) in [
        ("2. Orders through the use-case layer", &r.engine_orders),
        ("3. Orders over HTTP", &r.http_orders),
    ] {
        let Some(o) = ingest else { continue };
        let _ = writeln!(
            s,
            "\n{title} ({} orders x {} lines, {} customers, {} clients)",
            fmt_f(o.orders as f64),
            o.lines_per_order,
            fmt_f(o.customers as f64),
            o.clients
        );
        let _ = writeln!(
            s,
            "   {:>10} orders/s  ({} ok, {} errors in {:.2} s)",
            fmt_f(o.orders_per_s),
            fmt_f(o.ok as f64),
            o.errors,
            o.seconds
        );
        let _ = writeln!(s, "   latency: {}", fmt_latency(&o.latency));
        if let (Some(b), Some(c)) = (o.ratio_to_raw_batched, o.ratio_to_raw_per_commit) {
            let _ = writeln!(
                s,
                "   vs raw: orders/s = {b:.3} x the batched rows/s, {c:.1} x the one-COMMIT-per-row rows/s"
            );
        }
        if let (Some(rows), Some(rows_per_s)) = (o.rows_per_order, o.rows_per_s) {
            let _ = writeln!(
                s,
                "   rows written per order: {rows:.1}, so {} rows/s; database {:.1} MiB",
                fmt_f(rows_per_s),
                o.db_bytes as f64 / (1024.0 * 1024.0)
            );
        }
        if let Some(err) = &o.first_error {
            let _ = writeln!(s, "   first error: {err}");
        }
    }
    let steady: Vec<&SteadyReport> = [&r.redeem_http, &r.redeem_engine]
        .into_iter()
        .flatten()
        .collect();
    if let Some(first) = steady.first() {
        let _ = writeln!(
            s,
            "\n4. One-step redeem (hold + capture) at {}/s open loop for {} s, {} wallets, {} minor units each",
            first.target_rate, first.seconds, first.customers, first.amount_minor
        );
        for st in steady {
            let _ = writeln!(
                s,
                "   {:<15} achieved {:>7}/s  ({} ok, {} errors of {} sent)",
                st.via,
                fmt_f(st.achieved_rate),
                fmt_f(st.ok as f64),
                st.errors,
                fmt_f(st.sent as f64)
            );
            let _ = writeln!(s, "     latency:         {}", fmt_latency(&st.latency));
            let _ = writeln!(
                s,
                "     from schedule:   {}  (sender lag max {})",
                fmt_latency(&st.latency_from_schedule),
                fmt_us(st.sender_lag_max_us)
            );
            if let Some(err) = &st.first_error {
                let _ = writeln!(s, "     first error: {err}");
            }
        }
    }
    let _ = writeln!(s, "\n5. Memory (VmRSS / VmHWM)");
    for m in &r.memory {
        let _ = writeln!(
            s,
            "   after {:<34} {:>7.1} MiB / {:>7.1} MiB",
            m.after,
            m.rss_kib as f64 / 1024.0,
            m.hwm_kib as f64 / 1024.0
        );
    }
    let _ = writeln!(s, "\nTargets");
    for t in &r.targets {
        let value = if t.unit == "orders/s" {
            fmt_f(t.value)
        } else {
            format!("{:.2}", t.value)
        };
        let bound = |v: f64| {
            if t.unit == "orders/s" {
                fmt_f(v)
            } else {
                format!("{v}")
            }
        };
        let floor = t
            .floor
            .map(|f| format!(" (floor {})", bound(f)))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "   {:<34} {:>10} {:<8} (target {} {} {}{}): {}",
            t.what,
            value,
            t.unit,
            t.comparison,
            bound(t.target),
            t.unit,
            floor,
            match t.verdict {
                "met" => "MET",
                "below_target" => "BELOW TARGET (above floor)",
                _ => "MISSED",
            }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> BenchArgs {
        BenchArgs {
            orders: 300,
            http_orders: Some(200),
            clients: 8,
            customers: 20,
            rate: 200,
            seconds: 1,
            raw_rows: 3_000,
            raw_commit_ms: 200,
            dir: Some(std::env::temp_dir()),
            ..BenchArgs::default()
        }
    }

    /// What the first bench order earns from, in a store the order phases open with `args`.
    async fn first_order_pays(args: &BenchArgs) -> (usize, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let engine = open_ingesting(&dir.path().join("orders.db"), args)
            .await
            .unwrap();
        let active = engine.campaigns(None).await.unwrap().campaigns.len();
        let order = order_request("eng", 0, customer_id(0, 10), 30_000)
            .parse(&Caller::default())
            .unwrap();
        let receipt = engine.post_order(order, None).await.unwrap();
        let paid = receipt
            .campaigns
            .into_iter()
            .map(|c| c.campaign_id)
            .collect();
        (active, paid)
    }

    #[tokio::test]
    async fn the_order_phases_run_with_the_campaigns_asked_for() {
        let (active, paid) = first_order_pays(&BenchArgs::default()).await;
        assert_eq!((active, paid), (0, vec!["base_rate".to_string()]));
        let with = BenchArgs {
            campaigns: 100,
            ..BenchArgs::default()
        };
        let (active, paid) = first_order_pays(&with).await;
        assert_eq!(active, 100);
        // The targeted mix's `eco` offer reaches every bench order.
        assert!(paid.contains(&"offer-004".to_string()), "{paid:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bench_runs_every_phase_at_small_sizes() {
        let report = collect(&small()).await.expect("the bench runs");
        let raw = report.raw.as_ref().expect("raw phase");
        assert!(raw.per_commit.rows > 0);
        assert_eq!(raw.batched.rows, 3_000);
        for o in [&report.engine_orders, &report.http_orders] {
            let o = o.as_ref().expect("ingest phase");
            assert_eq!(o.errors, 0, "{:?}", o.first_error);
            assert_eq!(o.ok, o.orders);
            assert!(o.rows_per_order.unwrap_or(0.0) > 1.0);
            assert!(o.ratio_to_raw_batched.is_some());
        }
        for st in [&report.redeem_http, &report.redeem_engine] {
            let st = st.as_ref().expect("steady phase");
            assert_eq!(st.errors, 0, "{:?}", st.first_error);
            assert_eq!(st.ok, 200);
            assert!(st.latency.p50_us > 0);
        }
        assert!(report.peak_rss_kib > 0);
        assert!(report.targets.iter().any(|t| t.what == "peak RSS"));
        let text = render(&report);
        assert!(text.contains("orders/s"), "{text}");
        let json = serde_json::to_value(&report).expect("serializable");
        assert!(json["engine_orders"]["orders_per_s"].as_f64().is_some());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[test]
    fn phases_and_defaults_parse() {
        use clap::Parser;
        let cli = Cli::parse_from(["kembali"]);
        assert_eq!(cli.bench.orders, 100_000);
        assert_eq!(cli.bench.clients, 64);
        assert_eq!(cli.bench.phases.len(), 4);
        let cli = Cli::parse_from(["kembali", "--phases", "raw,redeem", "--json"]);
        assert_eq!(cli.bench.phases, vec![Phase::Raw, Phase::Redeem]);
        assert!(cli.bench.json);
    }

    #[test]
    fn mount_escapes_and_numbers() {
        assert_eq!(unescape_mount("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
        assert_eq!(fmt_f(1_234_567.4), "1,234,567");
        assert_eq!(fmt_f(999.0), "999");
        assert_eq!(filesystem_of(Path::new("/")).mount_point, "/");
    }
}
