//! `kembali report`: every metric of the program, read from the database directly (no
//! server), printed as a readable table, as JSON, or as CSV rows `metric,value`.
//!
//! Must never: compute a metric (the core does); print anything but the report on stdout.

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Args, ValueEnum};
use kembali_app::clock::SystemClock;
use kembali_app::metrics::FullReport;
use kembali_app::store::Store;
use kembali_app::Engine;
use kembali_core::analytics::metrics::{Comparison, ExperimentReport, Filter, Measurable};
use kembali_core::ids::{CampaignId, Channel, Segment, StoreId};
use kembali_core::money::format_minor;
use serde_json::Value;
use std::fmt::Write;
use std::sync::Arc;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub db: crate::DbArgs,
    /// First day of the period (local date in the program's time zone), YYYY-MM-DD.
    #[arg(long, value_parser = parse_date)]
    from: Option<NaiveDate>,
    /// Last day of the period, inclusive, YYYY-MM-DD (default: today).
    #[arg(long, value_parser = parse_date)]
    to: Option<NaiveDate>,
    /// Only orders and redemptions on this channel.
    #[arg(long, value_parser = crate::parse_channel)]
    channel: Option<Channel>,
    /// Only orders and redemptions at this store.
    #[arg(long, value_parser = crate::parse_store_id)]
    store: Option<StoreId>,
    /// Only customers in this segment.
    #[arg(long, value_parser = parse_segment)]
    segment: Option<Segment>,
    /// Only orders on which this campaign paid cashback, and their customers.
    #[arg(long, value_parser = parse_campaign)]
    campaign: Option<CampaignId>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

fn parse_date(raw: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| "a date YYYY-MM-DD".to_string())
}

fn parse_campaign(raw: &str) -> Result<CampaignId, String> {
    CampaignId::parse(raw).map_err(|e| e.to_string())
}

fn parse_segment(raw: &str) -> Result<Segment, String> {
    Segment::parse(raw).map_err(|e| e.to_string())
}

pub async fn run<S: Store>(store: Arc<S>, args: ReportArgs) -> Result<()> {
    let engine = Engine::new(store, Arc::new(SystemClock));
    let filter = Filter {
        from: args.from,
        to: args.to,
        channel: args.channel,
        store: args.store,
        segment: args.segment,
        campaign: args.campaign,
    };
    let report = engine
        .metrics_report(filter.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{e}: {}", crate::describe(&e)))
        .context("computing the report")?;
    let out = match args.format {
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Csv => csv(&serde_json::to_value(&report)?),
        Format::Table => table(&report, &filter),
    };
    print!("{out}");
    Ok(())
}

/// `metric,value` rows: every leaf of the JSON report, its path joined with dots.
fn csv(report: &Value) -> String {
    fn walk(path: &str, v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    walk(&join(path, k), v, out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(&join(path, &i.to_string()), v, out);
                }
            }
            Value::String(s) => {
                let _ = writeln!(out, "{path},\"{}\"", s.replace('"', "\"\""));
            }
            other => {
                let _ = writeln!(out, "{path},{other}");
            }
        }
    }
    fn join(path: &str, key: &str) -> String {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    }
    let mut out = String::from("metric,value\n");
    walk("", report, &mut out);
    out
}

/// Formats money, shares and counts for a terminal.
struct Fmt<'a> {
    currency: &'a str,
}

impl Fmt<'_> {
    fn money(&self, minor: i64) -> String {
        format_minor(self.currency, minor)
    }

    /// A statistic in minor units (a mean), shown rounded half to even to a minor unit.
    fn mean(&self, minor: Option<f64>) -> String {
        minor.map_or("-".into(), |m| self.money(m.round_ties_even() as i64))
    }

    fn pct(&self, share: Option<f64>) -> String {
        share.map_or("-".into(), |s| format!("{:.1} %", s * 100.0))
    }

    fn ratio(&self, r: Option<f64>) -> String {
        r.map_or("-".into(), |r| format!("{r:.2}×"))
    }
}

fn line(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "  {label:<34} {value}");
}

fn comparison(out: &mut String, label: &str, c: &Measurable<Comparison>, scale: f64, unit: &str) {
    match c {
        Measurable::Measured(c) => line(
            out,
            label,
            format_args!(
                "{:.2}{unit} vs {:.2}{unit}: {:+.2}{unit} [{:+.2}, {:+.2}] p = {:.3}",
                c.treatment_mean * scale,
                c.holdout_mean * scale,
                c.difference * scale,
                c.ci_low * scale,
                c.ci_high * scale,
                c.p_value
            ),
        ),
        Measurable::NotMeasurable { reason } => {
            line(out, label, format_args!("not measurable: {reason}"))
        }
    }
}

fn table(r: &FullReport, filter: &Filter) -> String {
    let s = &r.summary.summary;
    let f = Fmt {
        currency: &r.summary.currency,
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Kembali program report, {} to {} ({})",
        s.period.from, s.period.to, r.summary.currency
    );
    let mut filters = Vec::new();
    if let Some(c) = filter.channel {
        filters.push(format!("channel {c}"));
    }
    if let Some(st) = &filter.store {
        filters.push(format!("store {st}"));
    }
    if let Some(sg) = &filter.segment {
        filters.push(format!("segment {sg}"));
    }
    if let Some(c) = &filter.campaign {
        filters.push(format!("campaign {c}"));
    }
    if !filters.is_empty() {
        let _ = writeln!(out, "Filters: {}", filters.join(", "));
    }

    let _ = writeln!(out, "\nActivity");
    line(&mut out, "active customers", s.active_customers);
    line(&mut out, "orders", s.orders);
    line(&mut out, "gross revenue", f.money(s.gross_revenue_minor));
    line(&mut out, "returned", f.money(s.returned_minor));
    line(&mut out, "net revenue", f.money(s.net_revenue_minor));
    line(&mut out, "average ticket", f.mean(s.average_ticket_minor));
    line(
        &mut out,
        "repeat-purchase rate",
        f.pct(s.repeat_purchase_rate),
    );
    for b in &s.buy_again {
        let label = format!("bought again within {} days", b.days);
        let value = format!(
            "{} ({} of {})",
            f.pct(b.rate),
            b.bought_again,
            b.eligible_customers
        );
        line(&mut out, &label, value);
    }

    let u = &s.users_vs_non_users;
    let _ = writeln!(
        out,
        "\nCashback users vs non-users (correlation, not effect)"
    );
    let _ = writeln!(
        out,
        "  {:<34} {:>14} {:>14} {:>8}",
        "", "users", "non-users", "ratio"
    );
    let rows = [
        (
            "customers",
            u.users.customers.to_string(),
            u.non_users.customers.to_string(),
            None,
        ),
        (
            "average ticket",
            f.mean(u.users.average_ticket_minor),
            f.mean(u.non_users.average_ticket_minor),
            u.average_ticket_ratio,
        ),
        (
            "spend per customer",
            f.mean(u.users.spend_per_customer_minor),
            f.mean(u.non_users.spend_per_customer_minor),
            u.spend_per_customer_ratio,
        ),
        (
            "6-month retention",
            f.pct(u.users.retention_6m),
            f.pct(u.non_users.retention_6m),
            u.retention_6m_ratio,
        ),
    ];
    for (label, users, non_users, ratio) in rows {
        let _ = writeln!(
            out,
            "  {label:<34} {users:>14} {non_users:>14} {:>8}",
            f.ratio(ratio)
        );
    }

    let o = &s.omnichannel;
    let _ = writeln!(out, "\nOmnichannel");
    line(
        &mut out,
        "earn or spend on 2+ channels",
        format!(
            "{} ({} of {})",
            f.pct(o.multichannel_share),
            o.multichannel_participants,
            o.participants
        ),
    );
    line(
        &mut out,
        "redeemed on another channel",
        format!(
            "{} ({} of {})",
            f.pct(o.cross_channel_share),
            f.money(o.cross_channel_redeemed_minor),
            f.money(o.redeemed_minor)
        ),
    );

    let c = &s.cost;
    let _ = writeln!(out, "\nCost and liability");
    line(
        &mut out,
        "cashback earned",
        f.money(c.cashback_earned_minor),
    );
    line(
        &mut out,
        "clawed back by returns",
        f.money(c.clawed_back_minor),
    );
    line(&mut out, "cost of cashback", f.money(c.cost_minor));
    line(
        &mut out,
        "cost share of net revenue",
        f.pct(c.cost_share_of_revenue),
    );
    line(
        &mut out,
        "redeemed",
        format!(
            "{} ({})",
            f.money(c.redeemed_minor),
            f.pct(c.redemption_rate)
        ),
    );
    line(
        &mut out,
        "expired (breakage)",
        format!("{} ({})", f.money(c.expired_minor), f.pct(c.breakage_rate)),
    );
    line(
        &mut out,
        "outstanding liability",
        format!(
            "{} at {}",
            f.money(c.liability_minor),
            c.liability_at.format("%Y-%m-%d %H:%M UTC")
        ),
    );

    let _ = writeln!(out, "\nEffect of the program (holdout experiment)");
    match &r.program_experiment {
        None => line(
            &mut out,
            "ROI, conversion",
            "not measurable: the program has no holdout",
        ),
        Some(e) => experiment(&mut out, e, &f),
    }
    for c in &r.campaign_experiments {
        let _ = writeln!(
            out,
            "\nEffect of campaign {} (holdout experiment {})",
            c.campaign_id, c.experiment_id
        );
        experiment(&mut out, &c.report, &f);
    }

    let _ = writeln!(
        out,
        "\nRetention by first-purchase cohort (% of the cohort ordering in month k)"
    );
    let widest = r
        .retention
        .cohorts
        .iter()
        .map(|c| c.rates.len())
        .max()
        .unwrap_or(0)
        .min(13);
    let mut header = format!("  {:<8} {:>9}", "cohort", "customers");
    for k in 0..widest {
        let _ = write!(header, " {:>5}", format!("m{k}"));
    }
    let _ = writeln!(out, "{header}");
    for c in &r.retention.cohorts {
        let mut row = format!("  {:<8} {:>9}", c.cohort, c.customers);
        for rate in c.rates.iter().take(widest) {
            let _ = write!(row, " {:>5.1}", rate * 100.0);
        }
        let _ = writeln!(out, "{row}");
    }

    let l = &r.ltv;
    let _ = writeln!(
        out,
        "\nLifetime value (customers whose first purchase is in the period)"
    );
    line(&mut out, "customers", l.historical.customers);
    line(
        &mut out,
        "historical value, mean",
        f.mean(l.historical.mean_minor),
    );
    line(
        &mut out,
        "historical value, median",
        l.historical.median_minor.map_or("-".into(), |m| f.money(m)),
    );
    line(
        &mut out,
        "historical value, 90th percentile",
        l.historical.p90_minor.map_or("-".into(), |m| f.money(m)),
    );
    match &l.predicted {
        Measurable::Measured(p) => {
            line(
                &mut out,
                "predicted 12-month margin, mean",
                f.mean(Some(p.mean_minor)),
            );
            line(
                &mut out,
                "predicted 12-month margin, total",
                f.money(p.total_minor),
            );
            let params = |m: &kembali_core::analytics::metrics::ModelFit| {
                let ps: Vec<String> = m
                    .params
                    .iter()
                    .map(|(k, v)| format!("{k} = {v:.4}"))
                    .collect();
                format!(
                    "{}; log-likelihood {:.1} on {} customers",
                    ps.join(", "),
                    m.log_likelihood,
                    m.customers
                )
            };
            line(&mut out, "BG/NBD", params(&p.bgnbd));
            line(&mut out, "Gamma-Gamma", params(&p.gamma_gamma));
        }
        Measurable::NotMeasurable { reason } => line(
            &mut out,
            "predicted 12-month value",
            format!("not measurable: {reason}"),
        ),
    }
    out
}

/// The lines of one experiment's report.
fn experiment(out: &mut String, e: &ExperimentReport, f: &Fmt<'_>) {
    line(
        out,
        "customers",
        format!(
            "{} treated, {} held out ({} bp planned)",
            e.treatment_customers, e.holdout_customers, e.holdout_share_bp
        ),
    );
    comparison(
        out,
        "spend per customer (minor units)",
        &e.spend_per_customer,
        1.0,
        "",
    );
    comparison(out, "orders per customer", &e.orders_per_customer, 1.0, "");
    comparison(
        out,
        "conversion (repeat purchase)",
        &e.conversion,
        100.0,
        " %",
    );
    comparison(out, "90-day retention", &e.retention, 100.0, " %");
    match &e.sample_ratio {
        Measurable::Measured(m) => line(
            out,
            "sample ratio",
            format!(
                "χ² = {:.2}, p = {:.3}{}",
                m.chi_squared,
                m.p_value,
                if m.mismatch {
                    ": MISMATCH, do not trust the effects"
                } else {
                    ""
                }
            ),
        ),
        Measurable::NotMeasurable { reason } => {
            line(out, "sample ratio", format!("not measurable: {reason}"))
        }
    }
    match &e.roi {
        Measurable::Measured(roi) => line(
            out,
            "ROI",
            format!(
                "{:.2} [{:.2}, {:.2}] on a cost of {}",
                roi.roi,
                roi.ci_low,
                roi.ci_high,
                f.money(roi.cashback_cost_minor)
            ),
        ),
        Measurable::NotMeasurable { reason } => {
            line(out, "ROI", format!("not measurable: {reason}"))
        }
    }
}
