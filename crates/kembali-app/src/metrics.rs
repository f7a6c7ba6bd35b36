//! The program's reports (issue 5): the store's fact rows read in one snapshot, then
//! `kembali_core::analytics::metrics` on a blocking thread (a report over a million orders
//! is a few hundred milliseconds of CPU, which must not stall the async workers).
//!
//! Must never: compute a metric here; the definitions live in the core, once.

use crate::engine::Engine;
use crate::error::{AppError, AppResult};
use crate::experiments::campaign_experiment;
use crate::store::{job, CampaignRecord, ExperimentCounts, Store, Tx, PROGRAM_EXPERIMENT};
use kembali_core::analytics::metrics::{
    self, check_filter, report_cutoff, Assignment, Comparison, ExperimentReport, Facts, Filter,
    FilterError, LtvReport, Measurable, ReportContext, RetentionReport, Roi, Summary,
};
use kembali_core::campaign::parse_zone;
use kembali_core::ids::{CampaignId, CAMPAIGN_EXPERIMENT_PREFIX};
use kembali_core::money::BasisPoints;
use kembali_core::program::ProgramSettings;
use serde::Serialize;

/// The summary with the currency its amounts are in, and what only an experiment can
/// measure: the program's ROI and its effect on conversion (treatment − holdout).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryReport {
    pub currency: String,
    #[serde(flatten)]
    pub summary: Summary,
    pub roi: Measurable<Roi>,
    pub conversion: Measurable<Comparison>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurrencyReport<T> {
    pub currency: String,
    #[serde(flatten)]
    pub report: T,
}

/// Every report from one snapshot (what `kembali report` prints).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FullReport {
    pub summary: SummaryReport,
    pub retention: RetentionReport,
    pub ltv: LtvReport,
    /// The program holdout's report, when there is one.
    pub program_experiment: Option<ExperimentReport>,
    /// Every campaign experiment's report, by campaign id.
    pub campaign_experiments: Vec<CampaignExperimentReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignExperimentReport {
    /// `campaign:<id>`.
    pub experiment_id: String,
    pub campaign_id: String,
    #[serde(flatten)]
    pub report: ExperimentReport,
}

/// An experiment, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExperimentInfo {
    pub id: String,
    /// The holdout share in force now (basis points).
    pub holdout_share_bp: u32,
    pub treatment_customers: u64,
    pub holdout_customers: u64,
}

/// Everything a report reads, from one snapshot.
struct Snapshot {
    settings: ProgramSettings,
    ctx: ReportContext,
    facts: Facts,
    assignments: Vec<Assignment>,
    /// The campaign experiments read: id, the share compared, assignments.
    campaigns: Vec<CampaignExperiment>,
}

/// Which campaign experiments a report reads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reads {
    None,
    One(CampaignId),
    All,
}

struct CampaignExperiment {
    id: CampaignId,
    share: BasisPoints,
    assignments: Vec<Assignment>,
}

/// The holdout share a campaign's current definition sets, if it has a holdout.
fn defined_share(c: &CampaignRecord) -> Option<BasisPoints> {
    let h = c.current.definition.holdout.as_ref()?;
    Some(BasisPoints(u32::try_from(h.share_bp).unwrap_or(0)))
}

/// The share an experiment compares: the one in force, or, once its holdout has ended, the
/// one of the last customer assigned under a holdout. 0 = no experiment (customers recorded
/// under share 0 were seen before any holdout and stay treated).
fn compared_share(now: BasisPoints, assignments: &[Assignment]) -> BasisPoints {
    if now.0 > 0 {
        return now;
    }
    assignments
        .iter()
        .filter(|a| a.share.0 > 0)
        .max_by_key(|a| a.first_seen_at)
        .map_or(BasisPoints(0), |a| a.share)
}

/// The assignments of an experiment whose customers the facts know.
async fn assignments_of(
    tx: &mut dyn Tx,
    facts: &Facts,
    experiment_id: &str,
) -> AppResult<Vec<Assignment>> {
    Ok(tx
        .assignments(experiment_id)
        .await?
        .into_iter()
        .filter_map(|a| {
            Some(Assignment {
                customer: facts.find_customer(a.customer_id.as_str())?,
                arm: a.arm,
                first_seen_at: a.first_seen_at,
                share: a.share_bp,
            })
        })
        .collect())
}

fn filter_problem(e: FilterError) -> AppError {
    let field = match e {
        FilterError::FromAfterTo { .. } => "from",
        FilterError::PeriodTooLong => "to",
    };
    AppError::invalid(field, "invalid_period", e.to_string())
}

/// Reads the facts and the program's assignments in one read job.
async fn read_snapshot(
    tx: &mut dyn Tx,
    now: chrono::DateTime<chrono::Utc>,
    filter: &Filter,
    reads: &Reads,
) -> AppResult<Snapshot> {
    let settings = tx.program(false).await?.unwrap_or_default();
    let ctx = ReportContext {
        zone: parse_zone(&settings.time_zone).unwrap_or(chrono_tz::Tz::UTC),
        as_of: now,
        gross_margin: settings.gross_margin_bp,
    };
    let mut facts = Facts::default();
    tx.metric_customers(&mut facts).await?;
    tx.metric_orders(&mut facts).await?;
    tx.metric_redemptions(&mut facts).await?;
    tx.metric_expiries(&mut facts).await?;
    let last_in = report_cutoff(filter, &ctx) - chrono::Duration::microseconds(1);
    for (customer, moved) in tx.liability_moves_after(last_in).await? {
        if let Some(ix) = facts.find_customer(customer.as_str()) {
            facts.customers[ix as usize].liability_minor -= moved;
        }
    }
    let assignments = assignments_of(tx, &facts, PROGRAM_EXPERIMENT).await?;
    let stored = match (reads, &filter.campaign) {
        (Reads::None, None) => Vec::new(),
        _ => tx.campaigns().await?,
    };
    if let Some(c) = &filter.campaign {
        if !stored.iter().any(|s| s.current.campaign_id == *c) {
            return Err(AppError::invalid(
                "campaign",
                "unknown_campaign",
                format!("no campaign {c}"),
            ));
        }
        tx.metric_campaign_lots(c, &mut facts).await?;
    }
    let mut campaigns = Vec::new();
    for c in &stored {
        let id = &c.current.campaign_id;
        match reads {
            Reads::One(one) if one == id => {}
            Reads::All => {}
            _ => continue,
        }
        let assignments = assignments_of(tx, &facts, &campaign_experiment(id)).await?;
        let share = compared_share(defined_share(c).unwrap_or(BasisPoints(0)), &assignments);
        // A campaign is an experiment while its definition has a holdout, or once its
        // holdout has held customers out.
        if defined_share(c).is_none() && share.0 == 0 {
            continue;
        }
        if filter.campaign.as_ref() != Some(id) {
            tx.metric_campaign_lots(id, &mut facts).await?;
        }
        campaigns.push(CampaignExperiment {
            id: id.clone(),
            share,
            assignments,
        });
    }
    Ok(Snapshot {
        settings,
        ctx,
        facts,
        assignments,
        campaigns,
    })
}

impl Snapshot {
    /// The share the program experiment compares: the one in force, or, once the holdout
    /// has ended, the one of the last customer assigned under a holdout. 0 = no experiment
    /// (customers recorded under share 0 were seen before any holdout and stay treated).
    fn program_share(&self) -> BasisPoints {
        compared_share(self.settings.holdout_share_bp, &self.assignments)
    }

    /// The program experiment exists when a holdout is or was configured.
    fn program_listed(&self) -> bool {
        self.program_share().0 > 0
    }

    fn program_report(&self, filter: &Filter) -> Result<ExperimentReport, FilterError> {
        metrics::experiment_report(
            &self.facts,
            &self.assignments,
            self.program_share(),
            None,
            filter,
            &self.ctx,
        )
    }

    fn campaign_report(
        &self,
        e: &CampaignExperiment,
        filter: &Filter,
    ) -> AppResult<CampaignExperimentReport> {
        let report = metrics::experiment_report(
            &self.facts,
            &e.assignments,
            e.share,
            Some(&e.id),
            filter,
            &self.ctx,
        )
        .map_err(filter_problem)?;
        Ok(CampaignExperimentReport {
            experiment_id: campaign_experiment(&e.id),
            campaign_id: e.id.to_string(),
            report,
        })
    }

    /// The summary, with ROI and conversion from the program holdout when there is one.
    fn summary(&self, f: &Filter) -> AppResult<SummaryReport> {
        let summary = metrics::summary(&self.facts, f, &self.ctx).map_err(filter_problem)?;
        let (roi, conversion) = if !self.program_listed() {
            let why = "no experiment: the program has no holdout (set holdout_share_bp), \
                       and comparing users with non-users shows correlation, not effect";
            (Measurable::not(why), Measurable::not(why))
        } else {
            let e = self.program_report(f).map_err(filter_problem)?;
            (e.roi, e.conversion)
        };
        Ok(SummaryReport {
            currency: self.currency(),
            summary,
            roi,
            conversion,
        })
    }

    fn currency(&self) -> String {
        self.settings.currency.to_string()
    }
}

impl<S: Store> Engine<S> {
    /// Reads a snapshot, then runs `report` on it on a blocking thread.
    async fn report<T, F>(&self, filter: Filter, reads: Reads, report: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Snapshot, &Filter) -> AppResult<T> + Send + 'static,
    {
        check_filter(&filter).map_err(filter_problem)?;
        let now = self.now();
        let read_filter = filter.clone();
        let snapshot = self
            .store()
            .read(job(move |tx| {
                Box::pin(async move { read_snapshot(tx, now, &read_filter, &reads).await })
            }))
            .await?;
        tokio::task::spawn_blocking(move || report(&snapshot, &filter))
            .await
            .map_err(|e| AppError::Store(crate::error::StoreError::Corrupt(e.to_string())))?
    }

    /// `GET /v1/metrics/summary`.
    pub async fn metrics_summary(&self, filter: Filter) -> AppResult<SummaryReport> {
        self.report(filter, Reads::None, |s, f| s.summary(f)).await
    }

    /// Every report on one snapshot: summary, retention, lifetime value, the program
    /// experiment and every campaign experiment.
    pub async fn metrics_report(&self, filter: Filter) -> AppResult<FullReport> {
        self.report(filter, Reads::All, |s, f| {
            Ok(FullReport {
                summary: s.summary(f)?,
                retention: metrics::retention(&s.facts, f, &s.ctx).map_err(filter_problem)?,
                ltv: metrics::lifetime_value(&s.facts, f, &s.ctx).map_err(filter_problem)?,
                program_experiment: match s.program_listed() {
                    true => Some(s.program_report(f).map_err(filter_problem)?),
                    false => None,
                },
                campaign_experiments: s
                    .campaigns
                    .iter()
                    .map(|e| s.campaign_report(e, f))
                    .collect::<AppResult<_>>()?,
            })
        })
        .await
    }

    /// `GET /v1/metrics/retention`.
    pub async fn metrics_retention(
        &self,
        filter: Filter,
    ) -> AppResult<CurrencyReport<RetentionReport>> {
        self.report(filter, Reads::None, |s, f| {
            Ok(CurrencyReport {
                currency: s.currency(),
                report: metrics::retention(&s.facts, f, &s.ctx).map_err(filter_problem)?,
            })
        })
        .await
    }

    /// `GET /v1/metrics/ltv`.
    pub async fn metrics_ltv(&self, filter: Filter) -> AppResult<CurrencyReport<LtvReport>> {
        self.report(filter, Reads::None, |s, f| {
            Ok(CurrencyReport {
                currency: s.currency(),
                report: metrics::lifetime_value(&s.facts, f, &s.ctx).map_err(filter_problem)?,
            })
        })
        .await
    }

    /// `GET /v1/experiments`: the program holdout while one is configured or once one has
    /// held customers out, and every campaign experiment: each campaign whose definition
    /// has a holdout or whose holdout has held customers out.
    pub async fn experiments(&self) -> AppResult<Vec<ExperimentInfo>> {
        self.store()
            .read(job(move |tx| {
                Box::pin(async move {
                    let settings = tx.program(false).await?.unwrap_or_default();
                    let counts = tx.experiments().await?;
                    let count = |id: &str| {
                        counts
                            .iter()
                            .find(|c| c.experiment_id == id)
                            .cloned()
                            .unwrap_or(ExperimentCounts {
                                experiment_id: id.to_string(),
                                treatment: 0,
                                holdout: 0,
                            })
                    };
                    let info = |c: ExperimentCounts, share: BasisPoints| ExperimentInfo {
                        id: c.experiment_id,
                        holdout_share_bp: share.0,
                        treatment_customers: c.treatment,
                        holdout_customers: c.holdout,
                    };
                    let mut out = Vec::new();
                    // Customers recorded before any holdout are no experiment by themselves.
                    let program = count(PROGRAM_EXPERIMENT);
                    if settings.holdout_share_bp.0 > 0 || program.holdout > 0 {
                        out.push(info(program, settings.holdout_share_bp));
                    }
                    for c in tx.campaigns().await? {
                        let counts = count(&campaign_experiment(&c.current.campaign_id));
                        match defined_share(&c) {
                            Some(share) => out.push(info(counts, share)),
                            None if counts.holdout > 0 => out.push(info(counts, BasisPoints(0))),
                            None => {}
                        }
                    }
                    Ok(out)
                })
            }))
            .await
    }

    /// `GET /v1/experiments/{id}`: `program`, or `campaign:<id>` for a campaign listed by
    /// [`Engine::experiments`]; anything else is not found.
    pub async fn experiment(
        &self,
        id: String,
        filter: Filter,
    ) -> AppResult<CurrencyReport<ExperimentReport>> {
        let not_found = || AppError::NotFound {
            what: "experiment",
            field: "experiment_id",
        };
        if id == PROGRAM_EXPERIMENT {
            return self
                .report(filter, Reads::None, move |s, f| {
                    if !s.program_listed() {
                        return Err(not_found());
                    }
                    Ok(CurrencyReport {
                        currency: s.currency(),
                        report: s.program_report(f).map_err(filter_problem)?,
                    })
                })
                .await;
        }
        let campaign = id
            .strip_prefix(CAMPAIGN_EXPERIMENT_PREFIX)
            .and_then(|c| CampaignId::parse(c).ok())
            .ok_or_else(not_found)?;
        self.report(filter, Reads::One(campaign), move |s, f| {
            let e = s.campaigns.first().ok_or_else(not_found)?;
            Ok(CurrencyReport {
                currency: s.currency(),
                report: s.campaign_report(e, f)?.report,
            })
        })
        .await
    }
}
