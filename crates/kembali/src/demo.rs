//! `kembali demo`: a fresh SQLite database holding a synthetic chain with a known true
//! effect of cashback, then the API on it; and `kembali demo --coverage`, the experiment
//! coverage check over many seeds. The chain and the check are `kembali_demo`'s.

use crate::{serve, DbArgs, ServeArgs};
use anyhow::{bail, Context, Result};
use chrono::{Duration, Utc};
use clap::Args;
use kembali_app::clock::{SystemClock, TestClock};
use kembali_app::store::Role;
use kembali_app::Engine;
use kembali_demo::coverage::coverage;
use kembali_demo::model::{generate, DemoParams, TrueEffects, MONTHS};
use kembali_store_sqlite::SqliteStore;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args)]
pub struct DemoArgs {
    /// The SQLite file to create (it must not exist, unless --replace).
    #[arg(long, default_value = "kembali-demo.db")]
    db: PathBuf,
    /// Delete the file first if it exists.
    #[arg(long)]
    replace: bool,
    /// The seed of every random draw: the same seed gives the same chain.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 20_000)]
    customers: usize,
    /// The true effect of cashback on purchase frequency, in percent (0: none).
    #[arg(long, default_value_t = 15.0)]
    frequency_effect_pct: f64,
    /// The true effect of cashback on the ticket, in percent (0: none).
    #[arg(long, default_value_t = 5.0)]
    ticket_effect_pct: f64,
    /// Days at the end of the year played live through the engine (earning, redeeming,
    /// returning, expiring); the days before are stored as imported history that earned
    /// nothing. The default is just over 90, so the 90-day buy-again rate has customers;
    /// more live days make a longer ledger and a slower start.
    #[arg(long, default_value_t = 91, value_parser = clap::value_parser!(u32).range(1..=365))]
    live_days: u32,
    /// Where the API listens once the program is loaded.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Load, print the keys, and exit without serving.
    #[arg(long)]
    no_serve: bool,
    /// Instead of a database: check the 95 % intervals of treatment − holdout over
    /// --seeds seeds (from --seed on), with the effects given and with none.
    #[arg(long)]
    coverage: bool,
    #[arg(long, default_value_t = 100)]
    seeds: u64,
}

impl DemoArgs {
    fn params(&self) -> DemoParams {
        let today = Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc();
        DemoParams {
            seed: self.seed,
            customers: self.customers,
            frequency_effect_pct: self.frequency_effect_pct,
            ticket_effect_pct: self.ticket_effect_pct,
            start: today - Duration::days(365),
        }
    }
}

pub async fn run(args: DemoArgs) -> Result<()> {
    if !(-100.0 < args.frequency_effect_pct && -100.0 < args.ticket_effect_pct) {
        bail!("an effect must be above -100 %");
    }
    if args.coverage {
        return run_coverage(&args);
    }
    let started = Instant::now();
    let params = args.params();
    prepare_file(&args)?;
    // Loaded without an fsync per commit (a demo database is rebuilt, not recovered),
    // then opened again as usual to serve.
    let loading = Arc::new(
        SqliteStore::open_unsynced(&args.db)
            .with_context(|| format!("creating {}", args.db.display()))?,
    );
    let until = params.start + Duration::days(365);
    let live_from = until - Duration::days(i64::from(args.live_days));
    // The program starts with the import of the history before the live months.
    let clock = Arc::new(TestClock::new(live_from));
    let loader = Engine::new(loading, clock.clone());
    kembali_demo::load::configure(&loader).await?;
    let customers = generate(&params);
    let generated = started.elapsed();
    let imported = kembali_demo::load::import_history(&loader, &customers, live_from)
        .await
        .context("importing the demo chain's history")?;
    let history = started.elapsed();
    kembali_demo::load::launch_campaigns(&loader, live_from, until)
        .await
        .context("launching the demo's campaigns")?;
    let summary = kembali_demo::load::load(&loader, &clock, &customers, live_from, until)
        .await
        .context("loading the demo chain")?;
    let loaded = started.elapsed();
    drop(loader);
    let store = Arc::new(SqliteStore::open(&args.db).context("reopening the demo database")?);
    let engine = Engine::new(store.clone(), Arc::new(SystemClock));
    let (admin, _) = engine.create_api_key(Role::Admin, None, None).await?;
    let (analyst, _) = engine.create_api_key(Role::Analyst, None, None).await?;
    let truth = TrueEffects::of(&params);
    println!(
        "demo chain (seed {}): {} customers over {MONTHS} months; {} orders imported as history, then {} live days: {} orders, {} returns, {} redemptions (R$ {:.2}); generated in {:.1} s, history in {:.1} s, live days in {:.1} s",
        params.seed,
        params.customers,
        imported,
        args.live_days,
        summary.orders,
        summary.returns,
        summary.redemptions,
        summary.redeemed_minor as f64 / 100.0,
        generated.as_secs_f64(),
        (history - generated).as_secs_f64(),
        (loaded - history).as_secs_f64()
    );
    println!(
        "true effect per customer (treatment − 10 % holdout): {:+.4} orders, {:+.0} minor units of net spend",
        truth.orders_difference(),
        truth.spend_difference_minor()
    );
    println!("admin key:   {admin}");
    println!("analyst key: {analyst}");
    if args.no_serve {
        return Ok(());
    }
    println!(
        "try: curl -s -H 'Authorization: Bearer {admin}' http://{}/v1/program/totals",
        args.listen
    );
    serve::run(
        store,
        ServeArgs {
            db: DbArgs {
                db: format!("sqlite://{}", args.db.display()),
            },
            listen: args.listen.clone(),
            test_clock: None,
        },
    )
    .await
}

fn prepare_file(args: &DemoArgs) -> Result<()> {
    let path = &args.db;
    let side = |ext: &str| PathBuf::from(format!("{}{ext}", path.display()));
    if path.exists() {
        if !args.replace {
            bail!(
                "{} exists: the demo makes a fresh database (pass --replace, or another --db)",
                path.display()
            );
        }
        for p in [path.clone(), side("-wal"), side("-shm")] {
            if p.exists() {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
    }
    Ok(())
}

fn run_coverage(args: &DemoArgs) -> Result<()> {
    let started = Instant::now();
    let base = args.params();
    let seeds = args.seed..args.seed + args.seeds;
    let with = coverage(&base, seeds.clone()).context("measuring with the effect")?;
    let none = DemoParams {
        frequency_effect_pct: 0.0,
        ticket_effect_pct: 0.0,
        ..base.clone()
    };
    let without = coverage(&none, seeds).context("measuring without an effect")?;
    let truth = TrueEffects::of(&base);
    println!(
        "{} seeds of {} customers (10 % holdout), 95 % Welch intervals of treatment − holdout:",
        with.seeds, base.customers
    );
    println!(
        "  effects +{}% frequency, +{}% ticket; true differences {:+.4} orders, {:+.0} minor units of net spend per customer",
        base.frequency_effect_pct,
        base.ticket_effect_pct,
        truth.orders_difference(),
        truth.spend_difference_minor()
    );
    println!(
        "    interval contains the true difference: spend {}/{}, orders {}/{}",
        with.spend_contains_truth, with.seeds, with.orders_contains_truth, with.seeds
    );
    println!(
        "    interval excludes zero (power):         spend {}/{}, orders {}/{}",
        with.spend_excludes_zero, with.seeds, with.orders_excludes_zero, with.seeds
    );
    println!("  no effect:");
    println!(
        "    interval excludes zero (false positives): spend {}/{}, orders {}/{}",
        without.spend_excludes_zero, without.seeds, without.orders_excludes_zero, without.seeds
    );
    println!("  ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}
