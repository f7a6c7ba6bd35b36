//! `kembali bench-report`: how long the metrics take over a large program. Fills a scratch
//! SQLite database (by default 1,000,000 orders of 100,000 customers over two years) with
//! direct batched inserts, then times the summary (issue 5's target: ≤ 2 s), the summary
//! over a filtered period, and the full report with the lifetime-value fits.
//!
//! The fixture is shaped like a real program's tables (one line, one lot and an earn and a
//! mature entry per order, captured redemptions paid by earlier lots, some returns and
//! expiries) so that the reads scan what they would scan in production; it does not keep
//! the ledger's invariants, and nothing but this benchmark should read it.

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use kembali_app::clock::SystemClock;
use kembali_app::Engine;
use kembali_core::analytics::metrics::Filter;
use kembali_core::ids::Segment;
use kembali_store_sqlite::SqliteStore;
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchReportArgs {
    /// Orders in the fixture.
    #[arg(long, default_value_t = 1_000_000)]
    pub orders: usize,
    /// Customers the orders are spread over.
    #[arg(long, default_value_t = 100_000)]
    pub customers: usize,
    /// Timed runs of each report (the first one reads a cold page cache).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Where to create the scratch directory (default: the current directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the fixture at this path, and reuse it if it is already there (to time the
    /// reports again without refilling).
    #[arg(long)]
    pub fixture: Option<PathBuf>,
    /// Time only the summaries, not the full report with its model fits.
    #[arg(long)]
    pub summary_only: bool,
    /// Seed of the fixture's generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// xorshift64*: a fixture generator, not a source of anything secret.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub async fn run(args: BenchReportArgs) -> Result<()> {
    let base = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let dir = tempfile::Builder::new()
        .prefix("kembali-bench-report-")
        .tempdir_in(&base)
        .with_context(|| format!("creating a scratch directory in {}", base.display()))?;
    let path = args
        .fixture
        .clone()
        .unwrap_or_else(|| dir.path().join("report.db"));
    let now = Utc::now();
    if path.exists() {
        println!("fixture: reusing {}", path.display());
    } else {
        drop(SqliteStore::open(&path).context("creating the schema")?);
        let started = Instant::now();
        let (orders, lines) = tokio::task::spawn_blocking({
            let (path, args) = (path.clone(), args.clone());
            move || fill(&path, &args, now)
        })
        .await??;
        let size_mb = std::fs::metadata(&path)?.len() as f64 / 1e6;
        println!(
            "fixture: {orders} orders ({lines} journal entries) of {} customers in {:.1} s, {size_mb:.0} MB",
            args.customers,
            started.elapsed().as_secs_f64()
        );
    }

    let store = Arc::new(SqliteStore::open(&path).context("opening the fixture")?);
    let engine = Engine::new(store, Arc::new(SystemClock));
    let today = now.date_naive();
    let last_quarter = Filter {
        from: Some(today - Duration::days(90)),
        to: Some(today),
        ..Filter::default()
    };
    let vip_web = Filter {
        channel: Some(kembali_core::ids::Channel::Web),
        segment: Some(Segment::parse("vip").expect("a segment")),
        to: Some(today - Duration::days(30)),
        ..Filter::default()
    };
    for (name, filter) in [
        ("summary, whole history", Filter::default()),
        ("summary, last 90 days", last_quarter),
        ("summary, web + vip, to a month ago", vip_web),
    ] {
        let times = time_runs(args.runs, || engine.metrics_summary(filter.clone())).await?;
        print_times(name, &times);
    }
    if args.summary_only {
        return Ok(());
    }
    let times = time_runs(args.runs.min(3), || {
        engine.metrics_report(Filter::default())
    })
    .await?;
    print_times(
        "full report (summary, retention, LTV fits, experiment)",
        &times,
    );
    Ok(())
}

/// Wall-clock and CPU seconds (user + system, every thread of the process) of one run.
struct Run {
    wall: f64,
    cpu: f64,
}

/// CPU seconds the process has used so far: on a busy machine a run's CPU time says what
/// the report costs when its wall time does not.
fn process_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

async fn time_runs<T, F, Fut>(runs: usize, mut f: F) -> Result<Vec<Run>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = kembali_app::AppResult<T>>,
{
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let (t, cpu) = (Instant::now(), process_cpu_seconds());
        f().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(Run {
            wall: t.elapsed().as_secs_f64(),
            cpu: process_cpu_seconds() - cpu,
        });
    }
    Ok(times)
}

fn print_times(name: &str, runs: &[Run]) {
    let median = |key: fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(key).collect();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0])
    };
    let ((wall, best), (cpu, _)) = (median(|r| r.wall), median(|r| r.cpu));
    let all: Vec<String> = runs.iter().map(|r| format!("{:.3}", r.wall)).collect();
    println!(
        "{name}: median {wall:.3} s, best {best:.3} s, median CPU {cpu:.3} s (runs: {} s)",
        all.join(", ")
    );
}

const CHANNELS: [&str; 3] = ["web", "app", "store"];
const STORES: [&str; 5] = ["sp-01", "sp-02", "rj-01", "bh-01", "po-01"];

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Fills the tables in one transaction with prepared statements; returns the orders and
/// journal entries written.
fn fill(path: &Path, args: &BenchReportArgs, now: DateTime<Utc>) -> Result<(usize, usize)> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    let mut rng = Rng(args.seed.max(1));
    {
        let mut customer = tx.prepare(
            "INSERT INTO customers (id, segments, created_at, available) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let start = now - Duration::days(730);
        for c in 0..args.customers {
            let segments = if rng.chance(10) { r#"["vip"]"# } else { "[]" };
            customer.execute(params![
                format!("cust-{c:06}"),
                segments,
                micros(start),
                rng.below(3_000) as i64
            ])?;
        }
    }
    let mut entries = 0usize;
    {
        let mut order = tx.prepare(
            "INSERT INTO orders (channel, order_id, customer_id, store_id, currency, placed_at,
               created_at, redemption_id, redeemed, cashback, total, lot_id, available_at,
               expires_at, request_hash)
             VALUES (?1, ?2, ?3, ?4, 'BRL', ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        let mut line = tx.prepare(
            "INSERT INTO order_lines (channel, order_id, line_no, line_id, sku, category, tags,
               quantity, unit_price, discount, net, redeemed, cashback, returned_qty,
               clawed_back, restored, explanation, rules)
             VALUES (?1, ?2, 0, '1', 'sku-1', 'grocery', '[]', 1, ?3, 0, ?3, ?4, ?5, ?6, ?7, 0,
               ?8, '[]')",
        )?;
        let mut lot = tx.prepare(
            "INSERT INTO lots (id, customer_id, order_channel, order_id, amount, remaining,
               available_at, expires_at, state, created_at, expiry_warned)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0)",
        )?;
        let mut redemption = tx.prepare(
            "INSERT INTO redemptions (id, customer_id, channel, store_id, state, amount, captured,
               order_total, created_at, expires_at, request_hash, order_channel, order_id,
               allocations)
             VALUES (?1, ?2, ?3, ?4, 'captured', ?5, ?5, ?6, ?7, ?7, ?8, ?3, ?9, ?10)",
        )?;
        let mut journal = tx.prepare(
            "INSERT INTO journal (seq, at, customer_id, asset, kind, explanation, order_channel,
               order_id, lot_id)
             VALUES (?1, ?2, ?3, 'BRL', ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut posting =
            tx.prepare("INSERT INTO postings (seq, idx, account, amount) VALUES (?1, ?2, ?3, ?4)")?;
        let span = Duration::days(730).num_microseconds().expect("fits") as f64;
        let start = now - Duration::days(730);
        let mut last_lot: Vec<Option<(i64, i64)>> = vec![None; args.customers];
        let hash = "9f".repeat(32);
        let explanation = "R$ 5,00 cashback: base rate 5 % on R$ 100,00 (grocery, sku-1)";
        for n in 0..args.orders {
            let c = rng.below(args.customers as u64) as usize;
            let cid = format!("cust-{c:06}");
            let channel = CHANNELS[rng.below(3) as usize];
            let store = (channel == "store").then(|| STORES[rng.below(5) as usize]);
            let at = start + Duration::microseconds((n as f64 / args.orders as f64 * span) as i64);
            let total = 1_000 + rng.below(49_000) as i64;
            let cashback = total / 20;
            let returned = rng.chance(3);
            let oid = format!("o{n:07}");
            let lot_id = n as i64 + 1;
            let available_at = at + Duration::days(7);
            let expires_at = available_at + Duration::days(180);
            let (redeemed, redemption_id) = match last_lot[c] {
                Some((paying_lot, amount)) if rng.chance(15) => {
                    let rid = format!("r{n:07}");
                    let allocations = format!(
                        r#"[{{"lot_id":{paying_lot},"lot_expires_at":"{}","held_minor":{amount},"captured_minor":{amount},"restored_minor":0}}]"#,
                        expires_at.to_rfc3339()
                    );
                    redemption.execute(params![
                        rid,
                        cid,
                        channel,
                        store,
                        amount,
                        total,
                        micros(at),
                        hash,
                        oid,
                        allocations
                    ])?;
                    (amount.min(total), Some(rid))
                }
                _ => (0, None),
            };
            order.execute(params![
                channel,
                oid,
                cid,
                store,
                micros(at),
                redemption_id,
                redeemed,
                cashback,
                total,
                lot_id,
                micros(available_at),
                micros(expires_at),
                hash
            ])?;
            let clawed = if returned { cashback } else { 0 };
            line.execute(params![
                channel,
                oid,
                total,
                redeemed,
                cashback,
                i64::from(returned),
                clawed,
                explanation
            ])?;
            let expired = !returned && expires_at < now && rng.chance(20);
            let state = if returned || expired {
                "expired"
            } else {
                "available"
            };
            lot.execute(params![
                lot_id,
                cid,
                channel,
                oid,
                cashback,
                if state == "available" { cashback } else { 0 },
                micros(available_at),
                micros(expires_at),
                state,
                micros(at)
            ])?;
            last_lot[c] = Some((lot_id, cashback / 2));
            let mut entry =
                |kind: &str, when: DateTime<Utc>, legs: [(&str, i64); 2]| -> Result<()> {
                    entries += 1;
                    let seq = entries as i64;
                    journal.execute(params![
                        seq,
                        micros(when),
                        cid,
                        kind,
                        explanation,
                        channel,
                        oid,
                        lot_id
                    ])?;
                    for (idx, (account, amount)) in legs.into_iter().enumerate() {
                        posting.execute(params![seq, idx as i64, account, amount])?;
                    }
                    Ok(())
                };
            entry("earn", at, [("earned", -cashback), ("pending", cashback)])?;
            if available_at < now && !returned {
                entry(
                    "mature",
                    available_at,
                    [("pending", -cashback), ("available", cashback)],
                )?;
            }
            if expired {
                entry(
                    "expire",
                    expires_at,
                    [("available", -cashback), ("expired", cashback)],
                )?;
            }
        }
    }
    tx.commit()?;
    Ok((args.orders, entries))
}
