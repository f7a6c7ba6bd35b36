//! `kembali bench-pg`: Kembali on PostgreSQL against `pgbench` TPC-B on the same server,
//! same durability (`synchronous_commit = on`) and the same client count, in one run.
//!
//! Phases, each on a fresh database dropped afterwards:
//! 1. `pgbench`: TPC-B (five statements per transaction: the classic bank transfer).
//! 2. orders through the use-case layer, unbatched (one job per transaction);
//! 3. the same, batched (group commit per replica);
//! 4. orders over HTTP to two replicas (two stores, two routers, one database);
//! 5. one-step redemptions (hold + capture) through the use-case layer: first closed loop
//!    for the peak rate, then an open loop at half of it for the latency.

use crate::bench::{
    closed_loop, customer_id, fmt_f, http_client, open_loop, per_second, post_json, post_order,
    progress, redeem, seed_wallets, Latency, Server,
};
use crate::store::pg_config;
use anyhow::{bail, Context, Result};
use kembali_app::clock::SystemClock;
use kembali_app::model::ProgramRequest;
use kembali_app::Engine;
use kembali_store_postgres::testing::TestDatabase;
use kembali_store_postgres::{PgConfig, PgStore};
use serde::Serialize;
use std::sync::Arc;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchPgArgs {
    /// Orders posted in each ingestion phase.
    #[arg(long, default_value_t = 30_000)]
    pub orders: usize,
    /// Concurrent clients, for pgbench and for Kembali alike.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Distinct customers (wallets) the load is spread over.
    #[arg(long, default_value_t = 1_000)]
    pub customers: usize,
    /// Seconds of pgbench, and of the half-peak redemption run.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct PgReport {
    pub clients: usize,
    pub pgbench_tps: f64,
    pub orders_unbatched_per_s: f64,
    pub orders_batched_per_s: f64,
    pub orders_http_two_replicas_per_s: f64,
    pub redeem_peak_per_s: f64,
    pub redeem_half_peak_rate: u32,
    pub redeem_half_peak_latency: Latency,
    pub ratio_unbatched_to_pgbench: f64,
    pub ratio_batched_to_pgbench: f64,
}

fn pgbench(url: &str, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("pgbench")
        .args(args)
        .arg(url)
        .output()
        .context("running pgbench (Debian package postgresql-client)")?;
    if !out.status.success() {
        bail!("pgbench failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn tpcb(url: &str, args: &BenchPgArgs) -> Result<f64> {
    pgbench(url, &["-i", "-q", "-s", "10"])?;
    let clients = args.clients.to_string();
    let seconds = args.seconds.to_string();
    let out = pgbench(
        url,
        &["-c", &clients, "-j", "2", "-T", &seconds, "-M", "prepared"],
    )?;
    out.lines()
        .find_map(|l| {
            l.strip_prefix("tps = ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .with_context(|| format!("no tps in pgbench's output:\n{out}"))
}

async fn engine_on(url: &str, config: PgConfig) -> Result<Engine<PgStore>> {
    let store = PgStore::connect(url, config).await?;
    let engine = Engine::new(Arc::new(store), Arc::new(SystemClock));
    engine.init().await?;
    Ok(engine)
}

async fn ingest(engine: &Engine<PgStore>, prefix: &'static str, args: &BenchPgArgs) -> Result<f64> {
    let (e, customers) = (engine.clone(), args.customers);
    let c = closed_loop(0..args.orders, args.clients, move |i| {
        let engine = e.clone();
        async move { post_order(&engine, prefix, i, customer_id(i, customers), 30_000).await }
    })
    .await;
    if c.errors > 0 {
        bail!(
            "{} of {} orders failed; first: {}",
            c.errors,
            args.orders,
            c.first_error.unwrap_or_default()
        );
    }
    let rate = per_second(c.ok, c.took);
    progress(&format!(
        "  {} orders/s, p50 {} us, p99 {} us",
        fmt_f(rate),
        Latency::of(&c.latency).p50_us,
        Latency::of(&c.latency).p99_us
    ));
    Ok(rate)
}

async fn http_two_replicas(url: &str, args: &BenchPgArgs) -> Result<f64> {
    let a = engine_on(url, pg_config()?).await?;
    let b = engine_on(url, pg_config()?).await?;
    let (sa, sb) = (Server::start(&a).await?, Server::start(&b).await?);
    let client = http_client(args.clients)?;
    let targets = Arc::new([
        (format!("{}/v1/orders", sa.base), sa.admin_key.clone()),
        (format!("{}/v1/orders", sb.base), sb.admin_key.clone()),
    ]);
    let (cl, customers) = (client.clone(), args.customers);
    let c = closed_loop(0..args.orders, args.clients, move |i| {
        let (client, targets) = (cl.clone(), targets.clone());
        async move {
            let (url, key) = &targets[i % 2];
            let req = crate::bench::order_request("http", i, customer_id(i, customers), 30_000);
            post_json(&client, url, key, &req).await
        }
    })
    .await;
    drop(client);
    sa.stop().await;
    sb.stop().await;
    if c.errors > 0 {
        bail!(
            "{} HTTP orders failed; first: {}",
            c.errors,
            c.first_error.unwrap_or_default()
        );
    }
    let rate = per_second(c.ok, c.took);
    progress(&format!("  {} orders/s over HTTP", fmt_f(rate)));
    Ok(rate)
}

/// Seeds every wallet, measures the peak hold+capture rate (closed loop), then the latency
/// at half of it (open loop).
async fn redemptions(url: &str, args: &BenchPgArgs) -> Result<(f64, u32, Latency)> {
    let engine = engine_on(url, pg_config()?).await?;
    engine
        .update_program(ProgramRequest {
            pending_days: Some(0),
            ..ProgramRequest::default()
        })
        .await?;
    let customers = args.customers;
    seed_wallets(&engine, customers * 2, args.clients, customers).await?;
    engine.run_due_work(engine.now()).await?;
    let peak_n = args.orders / 2;
    let e = engine.clone();
    let peak = closed_loop(0..peak_n, args.clients, move |i| {
        let engine = e.clone();
        async move { redeem(&engine, "peak", i as u64, customers).await }
    })
    .await;
    if peak.errors > 0 {
        bail!(
            "peak redemptions failed: {}",
            peak.first_error.unwrap_or_default()
        );
    }
    let peak_rate = per_second(peak.ok, peak.took);
    let half = (peak_rate / 2.0).max(1.0) as u32;
    progress(&format!(
        "  peak {} hold+capture/s; now {half}/s for {} s",
        fmt_f(peak_rate),
        args.seconds
    ));
    let open = open_loop(half, args.seconds, |i| {
        let engine = engine.clone();
        async move { redeem(&engine, "half", i, customers).await }
    })
    .await;
    if open.errors > 0 {
        bail!(
            "half-peak redemptions failed: {}",
            open.first_error.unwrap_or_default()
        );
    }
    let latency = Latency::of(&open.latency);
    progress(&format!(
        "  at {half}/s: p50 {} us, p99 {} us, max {} us",
        latency.p50_us, latency.p99_us, latency.max_us
    ));
    Ok((peak_rate, half, latency))
}

pub async fn run(args: BenchPgArgs) -> Result<()> {
    if args.clients == 0 || args.customers == 0 || args.orders < 2 || args.seconds == 0 {
        bail!("--clients, --customers and --seconds must be at least 1, --orders at least 2");
    }
    progress(&format!("phase 1: pgbench TPC-B, {} clients", args.clients));
    let db = TestDatabase::create().await;
    let (a, url) = (args.clone(), db.url.clone());
    let pgbench_tps = tokio::task::spawn_blocking(move || tpcb(&url, &a)).await??;
    drop(db);
    progress(&format!("  {} tps", fmt_f(pgbench_tps)));

    progress("phase 2: orders through the use-case layer, one job per transaction");
    let db = TestDatabase::create().await;
    let unbatched = PgConfig {
        writers: args.clients.min(32),
        max_batch: 1,
        ..PgConfig::default()
    };
    let orders_unbatched_per_s =
        ingest(&engine_on(&db.url, unbatched).await?, "unb", &args).await?;
    drop(db);

    progress("phase 3: orders through the use-case layer, group commit");
    let db = TestDatabase::create().await;
    let orders_batched_per_s =
        ingest(&engine_on(&db.url, pg_config()?).await?, "bat", &args).await?;
    drop(db);

    progress("phase 4: orders over HTTP, two replicas");
    let db = TestDatabase::create().await;
    let orders_http_two_replicas_per_s = http_two_replicas(&db.url, &args).await?;
    drop(db);

    progress("phase 5: hold+capture through the use-case layer");
    let db = TestDatabase::create().await;
    let (redeem_peak_per_s, redeem_half_peak_rate, redeem_half_peak_latency) =
        redemptions(&db.url, &args).await?;
    drop(db);

    let report = PgReport {
        clients: args.clients,
        pgbench_tps,
        orders_unbatched_per_s,
        orders_batched_per_s,
        orders_http_two_replicas_per_s,
        redeem_peak_per_s,
        redeem_half_peak_rate,
        redeem_half_peak_latency,
        ratio_unbatched_to_pgbench: orders_unbatched_per_s / pgbench_tps,
        ratio_batched_to_pgbench: orders_batched_per_s / pgbench_tps,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "pgbench TPC-B                        {:>10} tps ({} clients)\n\
             orders, use-case layer, unbatched    {:>10} /s  ({:.2}x pgbench)\n\
             orders, use-case layer, batched      {:>10} /s  ({:.2}x pgbench)\n\
             orders, HTTP, 2 replicas             {:>10} /s\n\
             hold+capture peak                    {:>10} /s\n\
             hold+capture at {}/s                 p50 {} us, p99 {} us",
            fmt_f(report.pgbench_tps),
            report.clients,
            fmt_f(report.orders_unbatched_per_s),
            report.ratio_unbatched_to_pgbench,
            fmt_f(report.orders_batched_per_s),
            report.ratio_batched_to_pgbench,
            fmt_f(report.orders_http_two_replicas_per_s),
            fmt_f(report.redeem_peak_per_s),
            report.redeem_half_peak_rate,
            report.redeem_half_peak_latency.p50_us,
            report.redeem_half_peak_latency.p99_us,
        );
    }
    Ok(())
}
