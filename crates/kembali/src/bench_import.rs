//! `kembali bench-import`: how fast `kembali import` loads history. Writes a synthetic CSV
//! (by default 1,000,000 orders of 1 to 3 lines, 100,000 customers) into a scratch
//! directory, imports it into a fresh, durable SQLite file through the same path as
//! `kembali import` (both passes: the check, then the one-transaction write), imports it
//! again (a rerun: every order unchanged), and prints orders/s and the peak memory of the
//! process (VmHWM).

use anyhow::{ensure, Context, Result};
use chrono::{Duration, TimeZone, Utc};
use kembali_app::clock::SystemClock;
use kembali_app::import::source::Format;
use kembali_app::Engine;
use kembali_store_sqlite::SqliteStore;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchImportArgs {
    /// Orders in the file.
    #[arg(long, default_value_t = 1_000_000)]
    pub orders: usize,
    /// Customers the orders are spread over.
    #[arg(long, default_value_t = 100_000)]
    pub customers: usize,
    /// Where to create the scratch directory (default: the current directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

pub async fn run(args: BenchImportArgs) -> Result<()> {
    ensure!(args.customers > 0, "--customers must be at least 1");
    let base = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let dir = tempfile::Builder::new()
        .prefix("kembali-bench-import-")
        .tempdir_in(&base)
        .with_context(|| format!("creating a scratch directory in {}", base.display()))?;
    let file = dir.path().join("orders.csv");
    let lines = write_csv(&file, &args)?;
    println!(
        "file: {} orders, {lines} lines, {:.0} MB",
        args.orders,
        std::fs::metadata(&file)?.len() as f64 / 1e6
    );
    let store = SqliteStore::open(&dir.path().join("import.db")).context("creating the db")?;
    let engine = Engine::new(Arc::new(store), Arc::new(SystemClock));
    engine.init().await?;
    for run in ["first import", "rerun"] {
        let started = Instant::now();
        let path = file.clone();
        let s = engine
            .import_from(Format::Csv, move || std::fs::File::open(&path), false)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{run}: {} orders ({} new, {} unchanged) in {secs:.2} s: {} orders/s",
            s.orders,
            s.inserted,
            s.unchanged,
            crate::bench::fmt_f(s.orders as f64 / secs)
        );
    }
    println!("peak memory (VmHWM): {} MiB", peak_kib() / 1024);
    Ok(())
}

/// Order `i`: 1 to 3 lines, a tag on every third line, a store on store orders.
fn write_csv(path: &Path, args: &BenchImportArgs) -> Result<u64> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        out,
        "order_id,channel,store_id,customer_id,placed_at,currency,line_id,sku,category,tags,\
         quantity,unit_price_minor,discount_minor"
    )?;
    let start = Utc.with_ymd_and_hms(2023, 1, 1, 0, 0, 0).unwrap();
    let mut lines = 0u64;
    for i in 0..args.orders {
        let (channel, store) = match i % 4 {
            0 => ("store", "sp-01"),
            1 => ("app", ""),
            _ => ("web", ""),
        };
        let customer = (i * 7_919) % args.customers;
        let at = (start + Duration::seconds(i as i64 * 30))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        for l in 0..=(i % 3) {
            let tags = if (i + l) % 3 == 0 { "eco|sale" } else { "" };
            let price = 500 + (i * 37 + l * 101) % 20_000;
            writeln!(
                out,
                "O{i},{channel},{store},c{customer},{at},BRL,{l},sku-{},cat-{},{tags},{},{price},{}",
                (i + l) % 5_000,
                (i + l) % 40,
                1 + l,
                if l == 1 { 100 } else { 0 }
            )?;
            lines += 1;
        }
    }
    out.flush()?;
    Ok(lines)
}

fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
