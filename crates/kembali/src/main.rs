//! The `kembali` binary: configuration from flags and environment, the store chosen by the
//! database URL's scheme, and the commands `serve`, `migrate` and `keys create`.
//!
//! Must never: print or log a secret other than the one `keys create` was asked to make (it
//! is printed once, as the last line on stdout, for the operator to copy).

mod bench;
mod bench_import;
mod bench_pg;
mod bench_report;
mod campaigns_cmd;
mod demo;
mod import;
mod report;
mod serve;
mod store;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use kembali_app::clock::SystemClock;
use kembali_app::store::{Role, Store};
use kembali_app::Engine;
use kembali_core::ids::{Channel, StoreId};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

/// mimalloc: requests are built on tokio's threads and dropped on the store's writer
/// thread; glibc's malloc spends a fifth of the writer's time on such cross-thread frees.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "kembali", version, about = "Omnichannel cashback engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API (and, on the real clock, the scheduler).
    Serve(ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate(DbArgs),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Replay the stored order history of a period under draft campaigns and report the
    /// cost against what was paid; changes nothing (works on the database directly).
    Backtest(campaigns_cmd::BacktestArgs),
    /// A fresh SQLite database with a synthetic retail chain whose true effect of cashback
    /// is known, then the API on it (or, with --coverage, the experiment coverage check).
    Demo(demo::DemoArgs),
    /// Import past orders from a file (CSV or CDNOW), idempotently and all or nothing.
    Import(import::ImportArgs),
    /// Measure throughput, latency and memory on this machine (durable SQLite).
    Bench(bench::BenchArgs),
    /// Order ingestion with no campaign and with 100 active ones, and backtest throughput
    /// (durable SQLite).
    BenchCampaigns(campaigns_cmd::BenchCampaignsArgs),
    /// Kembali on PostgreSQL against pgbench TPC-B on the same server, in one run. Creates
    /// and drops its own databases on the server KEMBALI_TEST_PG_URL names (default: the
    /// local one as user postgres).
    BenchPg(bench_pg::BenchPgArgs),
    /// Print every metric of the program, read from the database directly (no server).
    Report(report::ReportArgs),
    /// Time the metrics report on a scratch SQLite database filled with synthetic orders.
    BenchReport(bench_report::BenchReportArgs),
    /// Time `kembali import` on a synthetic CSV (a fresh durable SQLite file), and its peak
    /// memory.
    BenchImport(bench_import::BenchImportArgs),
}

#[derive(Args)]
pub struct DbArgs {
    /// Database URL: `sqlite://path` (or `sqlite:path`) for the embedded store, or
    /// `postgres://user@host:port/db` to run as one of N stateless replicas.
    #[arg(
        long,
        env = "KEMBALI_DATABASE_URL",
        default_value = "sqlite://kembali.db"
    )]
    pub db: String,
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Address to listen on; port 0 picks a free port (logged as `listening on ADDR`).
    #[arg(long, env = "KEMBALI_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Run on a test clock starting at this RFC 3339 instant. Time then stands still
    /// except through `POST /v1/test/clock`, which also runs the due work.
    #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
    pub test_clock: Option<DateTime<Utc>>,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key; its secret is printed once, as the last line on stdout.
    Create(CreateKeyArgs),
}

#[derive(Args)]
struct CreateKeyArgs {
    #[command(flatten)]
    db: DbArgs,
    /// admin, channel, analyst or support.
    #[arg(long, value_parser = parse_role)]
    role: Role,
    /// For channel keys: web, app, store, marketplace or partner.
    #[arg(long, value_parser = parse_channel)]
    channel: Option<Channel>,
    /// For channel keys: bind the key to one physical store or partner merchant.
    #[arg(long = "store", value_name = "ID", value_parser = parse_store_id)]
    store_id: Option<StoreId>,
}

fn parse_instant(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 instant ({e}), e.g. 2025-01-06T12:00:00Z"))
}

fn parse_role(raw: &str) -> Result<Role, String> {
    Role::parse(raw).ok_or_else(|| "one of admin, channel, analyst, support".to_string())
}

fn parse_channel(raw: &str) -> Result<Channel, String> {
    Channel::parse(raw).ok_or_else(|| "one of web, app, store, marketplace, partner".to_string())
}

fn parse_store_id(raw: &str) -> Result<StoreId, String> {
    StoreId::parse(raw).map_err(|e| e.to_string())
}

/// `default` applies unless `RUST_LOG` says otherwise.
fn init_logging(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Logs go to stderr so that stdout carries only what a command prints for scripts.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    // Before any SQLite connection opens (the bench's raw runs open their own).
    kembali_store_sqlite::use_mimalloc();
    let cli = Cli::parse();
    // The bench would otherwise log every one of its requests and measure the logging.
    init_logging(match cli.command {
        Command::Bench(_)
        | Command::BenchPg(_)
        | Command::BenchCampaigns(_)
        | Command::BenchReport(_)
        | Command::BenchImport(_)
        | Command::Report(_)
        | Command::Backtest(_) => "warn",
        _ => "info",
    });
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the context chain on one line, without a backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve(args) => {
            with_store!(store::open(&args.db.db).await?, |s| serve::run(
                Arc::new(s),
                args
            )
            .await)
        }
        Command::Migrate(db) => {
            with_store!(store::open(&db.db).await?, |s| s
                .ping()
                .await
                .context("checking the database")?);
            tracing::info!(db = %db.db, "database is up to date");
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Create(args),
        } => with_store!(store::open(&args.db.db).await?, |s| create_key(
            Arc::new(s),
            args
        )
        .await),
        Command::Backtest(args) => campaigns_cmd::backtest(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Import(args) => with_store!(store::open(&args.db.db).await?, |s| import::run(
            Arc::new(s),
            args
        )
        .await),
        Command::Bench(args) => bench::run(args).await,
        Command::BenchCampaigns(args) => campaigns_cmd::bench(args).await,
        Command::BenchPg(args) => bench_pg::run(args).await,
        Command::Report(args) => {
            with_store!(store::open_existing(&args.db.db).await?, |s| report::run(
                Arc::new(s),
                args
            )
            .await)
        }
        Command::BenchReport(args) => bench_report::run(args).await,
        Command::BenchImport(args) => bench_import::run(args).await,
    }
}

async fn create_key<S: Store>(store: Arc<S>, args: CreateKeyArgs) -> Result<()> {
    let engine = Engine::new(store, Arc::new(SystemClock));
    engine.init().await.context("initializing the program")?;
    let (secret, record) = engine
        .create_api_key(args.role, args.channel, args.store_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}: {}", describe(&e)))
        .context("creating the key")?;
    let mut what = format!("created {} key {}", record.role.as_str(), record.id);
    if let Some(c) = record.channel {
        what.push_str(&format!(" for channel {c}"));
    }
    if let Some(s) = &record.store_id {
        what.push_str(&format!(" at store {s}"));
    }
    println!("{what}; its secret is shown once:");
    println!("{secret}");
    Ok(())
}

/// The field problems of an invalid request, for a terminal.
fn describe(e: &kembali_app::AppError) -> String {
    match e {
        kembali_app::AppError::Invalid(problems) => problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.code().to_string(),
    }
}
