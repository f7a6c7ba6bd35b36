//! `kembali backtest` (a draft campaign set against the stored history, on the database
//! directly) and `kembali bench-campaigns` (order ingestion with and without 100 active
//! campaigns, and backtest throughput, on durable SQLite).

use crate::bench::{
    closed_loop, customer_id, fmt_f, http_client, http_post_range, per_second, post_order,
    progress, Server,
};
use crate::{store, with_store};
use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use clap::{Args, ValueEnum};
use kembali_app::backtest::{BacktestReport, BacktestRequest, SliceCost};
use kembali_app::clock::SystemClock;
use kembali_app::model::CampaignCreateRequest;
use kembali_app::store::Store;
use kembali_app::Engine;
use kembali_store_sqlite::SqliteStore;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args)]
pub struct BacktestArgs {
    #[command(flatten)]
    pub db: crate::DbArgs,
    /// First day (`YYYY-MM-DD`, UTC midnight) or instant (RFC 3339) of the period.
    #[arg(long, value_parser = parse_bound)]
    pub from: DateTime<Utc>,
    /// End of the period, exclusive (day or instant).
    #[arg(long, value_parser = parse_bound)]
    pub to: DateTime<Utc>,
    /// A JSON file: one `{"id", "definition"}` draft or an array of them.
    #[arg(long, value_name = "FILE")]
    pub campaigns: Option<PathBuf>,
    /// Let the stored active campaigns join the drafts.
    #[arg(long)]
    pub include_active: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

fn parse_bound(raw: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| "a day (2026-01-31) or an RFC 3339 instant".to_string())
}

fn read_drafts(path: &PathBuf) -> Result<Vec<CampaignCreateRequest>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let list = match value {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    list.into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value(v).with_context(|| {
                format!(
                    "draft {i} of {}: expected {{\"id\", \"definition\"}}",
                    path.display()
                )
            })
        })
        .collect()
}

pub async fn backtest(args: BacktestArgs) -> Result<()> {
    let drafts = match &args.campaigns {
        Some(p) => read_drafts(p)?,
        None if args.include_active => Vec::new(),
        None => bail!("give --campaigns FILE, --include-active, or both"),
    };
    let req = BacktestRequest {
        from: args.from,
        to: args.to,
        campaigns: drafts,
        include_active: args.include_active,
    };
    let report = with_store!(store::open_existing(&args.db.db).await?, |s| {
        let engine = Engine::new(Arc::new(s), Arc::new(SystemClock));
        engine
            .backtest(req)
            .await
            .map_err(|e| anyhow::anyhow!("{e}: {}", crate::describe(&e)))?
    });
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print!("{}", render(&report)),
    }
    Ok(())
}

fn money(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", minor.abs() / 100, minor.abs() % 100)
}

fn slices(out: &mut String, title: &str, rows: &[SliceCost]) {
    out.push_str(&format!(
        "\n{title:<24} {:>16} {:>16}\n",
        "actual", "simulated"
    ));
    for r in rows {
        out.push_str(&format!(
            "  {:<22} {:>16} {:>16}\n",
            r.key,
            money(r.cost.actual_minor),
            money(r.cost.simulated_minor)
        ));
    }
}

pub fn render(r: &BacktestReport) -> String {
    let mut out = format!(
        "Backtest {} .. {} ({}), {} orders of {} customers ({} earlier orders read), {} ms\n\n",
        r.from.format("%Y-%m-%d %H:%M"),
        r.to.format("%Y-%m-%d %H:%M"),
        r.currency,
        r.orders,
        r.customers,
        r.history_orders,
        r.elapsed_ms
    );
    out.push_str(&format!(
        "cashback cost     actual {:>14}   simulated {:>14}   difference {:>14}\n",
        money(r.cost.actual_minor),
        money(r.cost.simulated_minor),
        money(r.difference_minor)
    ));
    out.push_str(&format!(
        "peak unexpired    actual {:>14}   simulated {:>14}   (upper bound of liability)\n",
        money(r.peak_unexpired.actual_minor),
        money(r.peak_unexpired.simulated_minor)
    ));
    out.push_str(&format!(
        "affected          {} orders, {} customers\n",
        r.orders_affected, r.customers_affected
    ));
    slices(&mut out, "by channel", &r.by_channel);
    slices(&mut out, "by category", &r.by_category);
    out.push_str(&format!(
        "\n{:<24} {:>14} {:>8} {:>9}  caps bound (order/day/week/month/campaign/budget)\n",
        "by campaign", "cost", "orders", "customers"
    ));
    for c in &r.by_campaign {
        let b = &c.caps_bound;
        out.push_str(&format!(
            "  {:<22} {:>14} {:>8} {:>9}  {}/{}/{}/{}/{}/{}\n",
            format!("{} v{}", c.campaign_id, c.version),
            money(c.cost_minor),
            c.orders,
            c.customers,
            b.per_order,
            b.customer_day,
            b.customer_week,
            b.customer_month,
            b.customer_campaign,
            b.budget
        ));
    }
    out
}

#[derive(Args)]
pub struct BenchCampaignsArgs {
    /// Orders posted in each ingestion run (and replayed by the backtest).
    #[arg(long, default_value_t = 50_000)]
    pub orders: usize,
    /// Active campaigns in the second run.
    #[arg(long, default_value_t = 100)]
    pub campaigns: usize,
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    #[arg(long, default_value_t = 1_000)]
    pub customers: usize,
    /// Where to make the scratch databases (default: the current directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Which 100 campaigns: `stacked` (8 of them pay on every bench order, beside the base
    /// rate) or `targeted` (each aimed at a narrow slice: about 1.3 pay on an order, beside
    /// the base rate).
    #[arg(long, value_enum, default_value_t = Mix::Stacked)]
    pub mix: Mix,
    /// Rounds of the two ingestion runs (base rate only, and with campaigns), each round on
    /// two fresh databases; the figures are the rounds' medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub rounds: u32,
    /// Orders per turn: within a round the two runs take turns, a slice of this many orders
    /// each, so a drift of the machine's speed (on a shared machine, tens of percent within
    /// seconds) falls on both runs alike instead of on whichever ran during it.
    #[arg(long, default_value_t = 5_000)]
    pub slice: usize,
    /// Post the orders through the use-case layer (`engine`) or through the JSON API served
    /// in-process (`http`): the two ingestion figures of `kembali bench`.
    #[arg(long, value_enum, default_value_t = Via::Engine)]
    pub via: Via,
}

/// How `bench-campaigns` posts its orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    Engine,
    Http,
}

/// The campaign mixes of `bench-campaigns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mix {
    Stacked,
    Targeted,
}

impl Mix {
    fn campaigns(self, n: usize, today: NaiveDate) -> Vec<CampaignCreateRequest> {
        match self {
            Mix::Stacked => bench_campaigns(n, today),
            Mix::Targeted => targeted_campaigns(n, today),
        }
    }
}

/// Creates `n` campaigns of `mix`, running today, in `engine`'s store.
pub async fn create_campaigns<S: Store>(engine: &Engine<S>, mix: Mix, n: usize) -> Result<()> {
    for c in mix.campaigns(n, Utc::now().date_naive()) {
        engine
            .create_campaign("bench", c)
            .await
            .map_err(|e| anyhow::anyhow!("{e}: {}", crate::describe(&e)))?;
    }
    Ok(())
}

/// `n` campaigns running today, each aimed at a narrow slice of the catalogue or of the
/// customers, as a retailer's many live offers are: a category of forty, a handful of SKUs,
/// a store, a segment, a brand, the app. A bench order (web, three lines: grocery with the
/// `eco` tag, apparel, home) is reached by about two of them; some carry caps and budgets.
pub fn targeted_campaigns(n: usize, today: NaiveDate) -> Vec<CampaignCreateRequest> {
    const CATEGORIES: [&str; 40] = [
        "grocery",
        "bakery",
        "dairy",
        "frozen",
        "drinks",
        "wine",
        "snacks",
        "baby",
        "pets",
        "cleaning",
        "beauty",
        "pharmacy",
        "apparel",
        "shoes",
        "sports",
        "toys",
        "books",
        "music",
        "games",
        "phones",
        "computers",
        "tv",
        "audio",
        "cameras",
        "appliances",
        "kitchen",
        "home",
        "garden",
        "tools",
        "auto",
        "office",
        "school",
        "travel",
        "jewelry",
        "watches",
        "bags",
        "party",
        "crafts",
        "health",
        "outdoor",
    ];
    const SEGMENTS: [&str; 3] = ["vip", "gold", "staff"];
    (0..n)
        .map(|i| {
            let (conditions, caps, mode) = match i % 5 {
                0 => (
                    serde_json::json!({"categories": [CATEGORIES[(i / 5) % CATEGORIES.len()]]}),
                    serde_json::json!({}),
                    "best_of",
                ),
                1 => (
                    serde_json::json!({"skus": (0..5)
                        .map(|k| format!("sku-{}", (i * 13 + k * 97) % 500))
                        .collect::<Vec<_>>()}),
                    if i % 2 == 0 {
                        serde_json::json!({"per_order_minor": 1_000, "budget_minor": 1_000_000_000})
                    } else {
                        serde_json::json!({"per_customer_day_minor": 2_000})
                    },
                    "stackable",
                ),
                2 => (
                    serde_json::json!({"stores": [format!("sp-{:02}", i % 20)]}),
                    serde_json::json!({}),
                    "best_of",
                ),
                3 => (
                    serde_json::json!({"segments": [SEGMENTS[i % SEGMENTS.len()]]}),
                    serde_json::json!({"per_customer_month_minor": 5_000}),
                    "stackable",
                ),
                _ if i == 4 => (
                    serde_json::json!({"tags": ["eco"]}),
                    serde_json::json!({"budget_minor": 1_000_000_000}),
                    "stackable",
                ),
                _ if i % 2 == 0 => (
                    serde_json::json!({"tags": [format!("brand-{}", i % 10)]}),
                    serde_json::json!({}),
                    "stackable",
                ),
                _ => (
                    serde_json::json!({"channels": ["app"], "min_eligible_order_minor": 10_000}),
                    serde_json::json!({}),
                    "best_of",
                ),
            };
            let reward =
                serde_json::json!({"kind": "percent", "rate_bp": 200 + (i % 6) as i64 * 100});
            let parts = (conditions, reward, caps, mode);
            bench_campaign(
                "Offer",
                i,
                (today - Duration::days(30), today + Duration::days(365)),
                parts,
            )
        })
        .collect()
}

/// `n` campaigns of every kind in the mix a retailer runs at once (the mix of the core's
/// evaluation benchmark): a third already over, most aimed at a category, a tag or a
/// channel, some for segments or birthdays, a few with caps and budgets; every stacking mode.
pub fn bench_campaigns(n: usize, today: NaiveDate) -> Vec<CampaignCreateRequest> {
    const CATEGORIES: [&str; 8] = [
        "grocery",
        "book",
        "toys",
        "home",
        "electronics",
        "beauty",
        "apparel",
        "pharmacy",
    ];
    const TAGS: [&str; 6] = ["eco", "new", "brand-a", "brand-b", "local", "bulk"];
    const CHANNELS: [&str; 3] = ["store", "app", "web"];
    (0..n)
        .map(|i| {
            let category = CATEGORIES[i % CATEGORIES.len()];
            let (start, end) = if i % 3 == 0 {
                (today - Duration::days(400), today - Duration::days(35))
            } else {
                (today - Duration::days(30), today + Duration::days(365))
            };
            let reward = match i % 5 {
                0 => serde_json::json!({"kind": "percent", "rate_bp": 200 + i as i64}),
                1 => serde_json::json!({"kind": "tiered", "tiers": [
                    {"from_minor": 0, "rate_bp": 300}, {"from_minor": 20_000, "rate_bp": 700}]}),
                2 => serde_json::json!({"kind": "fixed", "amount_minor": 500}),
                3 => serde_json::json!({"kind": "multiplier", "factor_percent": 150}),
                _ => serde_json::json!({"kind": "percent", "rate_bp": 150}),
            };
            let conditions = match i % 6 {
                0 => serde_json::json!({"categories": [category]}),
                1 => serde_json::json!({"tags": [TAGS[i % TAGS.len()]], "exclude": {"categories": ["pharmacy"]}}),
                2 => serde_json::json!({"channels": [CHANNELS[i % 3]], "categories": [category]}),
                3 => serde_json::json!({"segments": ["vip"]}),
                4 => serde_json::json!({"birthday_month": true}),
                _ => serde_json::json!({"categories": [category, "home"], "min_eligible_order_minor": 5_000}),
            };
            let caps = if i % 7 == 0 {
                serde_json::json!({"per_order_minor": 1_500, "budget_minor": 1_000_000_000})
            } else if i % 11 == 0 {
                serde_json::json!({"per_customer_day_minor": 2_000})
            } else {
                serde_json::json!({})
            };
            let mode = ["stackable", "best_of"][i % 2];
            bench_campaign("Bench", i, (start, end), (conditions, reward, caps, mode))
        })
        .collect()
}

/// Bench campaign `i` of a mix named `name` (its id is the name, lower case, and `i`):
/// runs over `window` (local dates), with its conditions, reward, caps and stacking mode,
/// priority `i % 10`.
fn bench_campaign(
    name: &str,
    i: usize,
    (starts_on, ends_on): (NaiveDate, NaiveDate),
    (conditions, reward, caps, mode): (
        serde_json::Value,
        serde_json::Value,
        serde_json::Value,
        &str,
    ),
) -> CampaignCreateRequest {
    let definition = serde_json::json!({
        "name": format!("{name} {i}"),
        "window": {"starts_on": starts_on.to_string(), "ends_on": ends_on.to_string()},
        "conditions": conditions,
        "reward": reward,
        "caps": caps,
        "stacking": {"mode": mode, "priority": (i % 10) as i64},
    });
    CampaignCreateRequest {
        id: format!("{}-{i:03}", name.to_lowercase()),
        definition: serde_json::from_value(definition).expect("a bench campaign"),
    }
}

/// One ingestion run: orders per second, and the writer thread's CPU time per order when
/// the system reports it.
#[derive(Debug, Clone, Copy)]
struct Run {
    orders_per_s: f64,
    writer_us_per_order: Option<f64>,
}

/// One store under ingestion: its engine, its writer thread, its server when the orders go
/// through the API, and what its slices have measured so far.
struct Ingestion {
    engine: Engine<SqliteStore>,
    writer: Option<u64>,
    http: Option<(Server, reqwest::Client)>,
    orders: usize,
    took: std::time::Duration,
    writer_ns: Option<u64>,
}

impl Ingestion {
    /// A fresh store at `path` with `campaigns` active campaigns of the mix.
    async fn open(
        path: &std::path::Path,
        args: &BenchCampaignsArgs,
        campaigns: usize,
    ) -> Result<Self> {
        let writers_before = writer_threads();
        let store =
            SqliteStore::open(path).with_context(|| format!("opening {}", path.display()))?;
        let engine = Engine::new(Arc::new(store), Arc::new(SystemClock));
        engine.init().await?;
        create_campaigns(&engine, args.mix, campaigns).await?;
        // This store's writer is the writer thread that was not there before it opened.
        let writer = writer_threads()
            .into_iter()
            .find(|tid| !writers_before.contains(tid));
        let http = match args.via {
            Via::Engine => None,
            Via::Http => Some((Server::start(&engine).await?, http_client(args.clients)?)),
        };
        Ok(Ingestion {
            engine,
            writer,
            http,
            orders: 0,
            took: std::time::Duration::ZERO,
            writer_ns: writer.map(|_| 0),
        })
    }

    /// Posts the bench orders numbered `range`, adding their time and the writer's.
    async fn post(&mut self, args: &BenchCampaignsArgs, range: Range<usize>) -> Result<()> {
        let customers = args.customers;
        let before = self.writer.and_then(thread_ns);
        let c = match &self.http {
            None => {
                let e = self.engine.clone();
                closed_loop(range, args.clients, move |i| {
                    let engine = e.clone();
                    async move {
                        post_order(&engine, "bc", i, customer_id(i, customers), 30_000).await
                    }
                })
                .await
            }
            Some((server, client)) => {
                http_post_range(server, client, "bc", range, args.clients, customers).await
            }
        };
        if c.errors > 0 {
            bail!("{} orders failed: {:?}", c.errors, c.first_error);
        }
        let spent = before
            .zip(self.writer.and_then(thread_ns))
            .map(|(b, a)| a.saturating_sub(b));
        self.writer_ns = self.writer_ns.zip(spent).map(|(sum, ns)| sum + ns);
        self.orders += c.ok;
        self.took += c.took;
        Ok(())
    }

    fn run(&self) -> Run {
        Run {
            orders_per_s: per_second(self.orders, self.took),
            writer_us_per_order: self
                .writer_ns
                .map(|ns| ns as f64 / 1_000.0 / self.orders.max(1) as f64),
        }
    }

    /// Stops the server, if any, and hands back the engine.
    async fn finish(self) -> Engine<SqliteStore> {
        if let Some((server, client)) = self.http {
            drop(client);
            server.stop().await;
        }
        self.engine
    }
}

/// One round: a store with no campaign and one with `args.campaigns`, each fresh, fed the
/// same orders in slices taken in turns (base first on even slices, campaigns first on odd
/// ones), so the machine's drift over the round falls on both alike.
async fn round(
    dir: &std::path::Path,
    n: u32,
    args: &BenchCampaignsArgs,
) -> Result<((Run, Run), Engine<SqliteStore>)> {
    let mut base = Ingestion::open(&dir.join(format!("none-{n}.db")), args, 0).await?;
    let mut many = Ingestion::open(&dir.join(format!("many-{n}.db")), args, args.campaigns).await?;
    let slice = args.slice.clamp(1, args.orders.max(1));
    for (s, first) in (0..args.orders).step_by(slice).enumerate() {
        let range = first..(first + slice).min(args.orders);
        let turn = if s % 2 == 0 {
            [&mut base, &mut many]
        } else {
            [&mut many, &mut base]
        };
        for ingestion in turn {
            ingestion.post(args, range.clone()).await?;
        }
    }
    let runs = (base.run(), many.run());
    drop(base.finish().await);
    Ok((runs, many.finish().await))
}

/// The CPU time (ns) a thread of this process has run, from its `schedstat` (Linux).
fn thread_ns(tid: u64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// The ids of this process's SQLite writer threads, from `/proc/self/task` (Linux; empty
/// elsewhere). The writer runs every order's transaction, so its CPU time per order
/// ([`thread_ns`]) is the steadiest figure on a shared machine.
fn writer_threads() -> Vec<u64> {
    // The kernel keeps the first 15 bytes of a thread's name.
    let name = &kembali_store_sqlite::WRITER_THREAD[..15];
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let tid: u64 = task.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            (comm.trim_end() == name).then_some(tid)
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

fn fmt_writer(us: Option<f64>) -> String {
    us.map_or_else(|| "n/a".into(), |us| format!("{us:.1} µs"))
}

/// Backtests of the ingested history, one after the other.
const BACKTEST_RUNS: usize = 3;

pub async fn bench(args: BenchCampaignsArgs) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("kembali-bench-campaigns-")
        .tempdir_in(args.dir.clone().unwrap_or_else(|| PathBuf::from(".")))?;
    let mut rounds: Vec<(Run, Run)> = Vec::new();
    let mut last = None;
    for n in 1..=args.rounds {
        progress(&format!(
            "round {n}/{}: {} orders with no campaign (base rate only) and with {} active \
             campaigns, in turns of {}…",
            args.rounds, args.orders, args.campaigns, args.slice
        ));
        let (runs, engine) = round(dir.path(), n, &args).await?;
        rounds.push(runs);
        // Only the last history is backtested: the others make room.
        drop(last.replace(engine));
        for db in std::fs::read_dir(dir.path())?.flatten() {
            let name = db.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&format!("many-{n}.db")) {
                let _ = std::fs::remove_file(db.path());
            }
        }
    }
    let engine = last.expect("at least one round");
    progress("backtesting the last history under the same campaigns as drafts…");
    let now = Utc::now();
    let req = BacktestRequest {
        from: now - Duration::days(1),
        to: now + Duration::days(1),
        campaigns: args.mix.campaigns(args.campaigns, now.date_naive()),
        include_active: false,
    };
    // Three runs: the first also warms the readers' page cache; each is printed.
    let mut runs = Vec::new();
    for _ in 0..BACKTEST_RUNS {
        let started = std::time::Instant::now();
        let report = engine
            .backtest(req.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        runs.push((started.elapsed(), report));
    }
    engine.store().ping().await?;
    println!(
        "orders posted through the {}, {} clients",
        match args.via {
            Via::Engine => "use-case layer",
            Via::Http => "JSON API",
        },
        args.clients
    );
    println!(
        "round  orders/s base  orders/s {} campaigns  ratio   writer CPU/order base  with campaigns  ratio",
        args.campaigns
    );
    for (i, (base, with)) in rounds.iter().enumerate() {
        let cpu_ratio = base
            .writer_us_per_order
            .zip(with.writer_us_per_order)
            .map_or_else(|| "n/a".into(), |(b, w)| format!("{:.2}×", w / b));
        println!(
            "{:>5}  {:>14}  {:>21}  {:>5.1} %  {:>21}  {:>14}  {}",
            i + 1,
            fmt_f(base.orders_per_s),
            fmt_f(with.orders_per_s),
            100.0 * with.orders_per_s / base.orders_per_s,
            fmt_writer(base.writer_us_per_order),
            fmt_writer(with.writer_us_per_order),
            cpu_ratio
        );
    }
    let base = median(rounds.iter().map(|r| r.0.orders_per_s).collect()).unwrap_or(0.0);
    let with = median(rounds.iter().map(|r| r.1.orders_per_s).collect()).unwrap_or(0.0);
    let ratio = median(
        rounds
            .iter()
            .map(|(b, w)| 100.0 * w.orders_per_s / b.orders_per_s)
            .collect(),
    )
    .unwrap_or(0.0);
    println!("orders/s, no campaigns (median):         {}", fmt_f(base));
    println!(
        "orders/s, {} active campaigns (median):   {} (median of the rounds' ratios: {ratio:.1} % of the base run)",
        args.campaigns,
        fmt_f(with)
    );
    let cpu =
        |pick: fn(&(Run, Run)) -> Option<f64>| median(rounds.iter().filter_map(pick).collect());
    if let (Some(b), Some(w)) = (
        cpu(|r| r.0.writer_us_per_order),
        cpu(|r| r.1.writer_us_per_order),
    ) {
        println!(
            "writer CPU per order (median):            {} base, {} with campaigns ({:.2}×)",
            fmt_writer(Some(b)),
            fmt_writer(Some(w)),
            w / b
        );
    }
    if let Some((_, report)) = runs.first() {
        let paid: u64 = report.by_campaign.iter().map(|c| c.orders).sum();
        println!(
            "mix {:?}: {:.2} campaigns paid per order on average (the base rate included)",
            args.mix,
            paid as f64 / report.orders.max(1) as f64
        );
    }
    for (took, report) in &runs {
        println!(
            "backtest: {} orders in {:.3} s = {} orders/s; simulated {} vs actual {} (difference {})",
            report.orders,
            took.as_secs_f64(),
            fmt_f(per_second(report.orders as usize, *took)),
            money(report.cost.simulated_minor),
            money(report.cost.actual_minor),
            money(report.difference_minor)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{bench, median, round, BenchCampaignsArgs, Ingestion, Mix, Run, Via};
    use anyhow::Result;
    use kembali_app::backtest::{BacktestReport, BacktestRequest};
    use kembali_app::clock::SystemClock;
    use kembali_app::fake::MemoryStore;
    use kembali_app::store::Store;
    use kembali_app::Engine;
    use kembali_store_sqlite::SqliteStore;
    use std::sync::Arc;

    /// A whole ingestion of `args.orders` orders into a fresh store at `path`.
    async fn ingest(
        path: &std::path::Path,
        args: &BenchCampaignsArgs,
        campaigns: usize,
    ) -> Result<(Engine<SqliteStore>, Run)> {
        let mut ingestion = Ingestion::open(path, args, campaigns).await?;
        ingestion.post(args, 0..args.orders).await?;
        let run = ingestion.run();
        Ok((ingestion.finish().await, run))
    }

    /// The stored history of today and yesterday, under the active campaigns.
    async fn history<S: Store>(engine: &Engine<S>) -> BacktestReport {
        let now = chrono::Utc::now();
        engine
            .backtest(BacktestRequest {
                from: now - chrono::Duration::days(1),
                to: now + chrono::Duration::days(1),
                campaigns: Vec::new(),
                include_active: true,
            })
            .await
            .unwrap()
    }

    /// Campaigns (the base rate included) that pay on each of the first bench orders.
    async fn paying(mix: Mix) -> Vec<usize> {
        let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock));
        engine.init().await.unwrap();
        for c in mix.campaigns(100, chrono::Utc::now().date_naive()) {
            engine.create_campaign("bench", c).await.unwrap();
        }
        let mut paying = Vec::new();
        for i in 0..20 {
            let order = crate::bench::order_request("t", i, format!("c{i}"), 30_000)
                .parse(&Default::default())
                .unwrap();
            let receipt = engine.post_order(order, None).await.unwrap();
            paying.push(
                receipt
                    .campaigns
                    .iter()
                    .filter(|c| c.amount_minor > 0)
                    .count(),
            );
        }
        paying
    }

    #[tokio::test]
    async fn every_bench_campaign_is_valid_and_the_mixes_reach_orders_as_documented() {
        // Stacked: the base rate and 8 campaigns on every order.
        assert_eq!(paying(Mix::Stacked).await, vec![9; 20]);
        // Targeted: the base rate and one to three narrow offers.
        let targeted = paying(Mix::Targeted).await;
        assert!(targeted.iter().all(|n| (2..=4).contains(n)), "{targeted:?}");
        let mean = targeted.iter().sum::<usize>() as f64 / targeted.len() as f64;
        assert!((2.0..3.0).contains(&mean), "{targeted:?}");
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }

    /// A bench of `orders` orders of 10 customers, 4 clients, 10 targeted campaigns.
    fn small(dir: &std::path::Path, orders: usize, rounds: u32, via: Via) -> BenchCampaignsArgs {
        BenchCampaignsArgs {
            orders,
            campaigns: 10,
            clients: 4,
            customers: 10,
            dir: Some(dir.into()),
            mix: Mix::Targeted,
            rounds,
            slice: 16,
            via,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_bench_runs_its_rounds_and_measures_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let args = small(dir.path(), 40, 2, Via::Engine);
        let (_, run) = ingest(&dir.path().join("one.db"), &args, 10).await.unwrap();
        assert!(run.orders_per_s > 0.0);
        // Where the kernel reports per-thread CPU time, the writer is found and measured.
        if std::path::Path::new("/proc/self/schedstat").exists() {
            assert!(run.writer_us_per_order.is_some_and(|us| us > 0.0));
        }
        bench(args).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_bench_posts_through_the_api_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let args = small(dir.path(), 30, 1, Via::Http);
        let (engine, run) = ingest(&dir.path().join("one.db"), &args, 10).await.unwrap();
        assert!(run.orders_per_s > 0.0);
        // Every order went through the API and was stored, campaigns and all.
        let history = history(&engine).await;
        assert_eq!(history.orders, 30);
        assert_eq!(history.difference_minor, 0);
        assert!(history.cost.actual_minor > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_round_feeds_both_stores_every_order_in_slices_taken_in_turns() {
        let dir = tempfile::tempdir().unwrap();
        // 40 orders in slices of 16: three turns each, the last one short.
        let args = small(dir.path(), 40, 1, Via::Engine);
        let ((base, with), many) = round(dir.path(), 1, &args).await.unwrap();
        assert!(base.orders_per_s > 0.0 && with.orders_per_s > 0.0);
        let stored = history(&many).await;
        assert_eq!((stored.orders, stored.difference_minor), (40, 0));
        // The campaigns paid on top of the base rate; the base store holds the same orders.
        let none = SqliteStore::open(&dir.path().join("none-1.db")).unwrap();
        let none = Engine::new(Arc::new(none), Arc::new(SystemClock));
        let base_history = history(&none).await;
        assert_eq!(base_history.orders, 40);
        assert!(stored.cost.actual_minor > base_history.cost.actual_minor);
    }
}
