//! The report of a holdout experiment: treatment vs holdout on the program's outcomes.
#![doc = include_str!("experiment.md")]

use super::{CustomerIx, Facts, Filter, FilterError, Measurable, Period, ReportContext, Scope};
use crate::analytics::experiment::{
    roi, sample_ratio_mismatch, welch, Arm, SampleStats, WelchTest,
};
use crate::ids::CampaignId;
use crate::money::{round_half_even, BasisPoints};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// The window of the retention outcome.
pub const RETENTION_WINDOW_DAYS: i64 = 90;
const CONFIDENCE: f64 = 0.95;

/// A customer's recorded arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    pub customer: CustomerIx,
    pub arm: Arm,
    pub first_seen_at: DateTime<Utc>,
    /// The holdout share in force when the customer was assigned.
    pub share: BasisPoints,
}

/// Treatment against holdout on one outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub treatment_customers: u64,
    pub holdout_customers: u64,
    pub treatment_mean: f64,
    pub holdout_mean: f64,
    pub difference: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub p_value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleRatio {
    pub expected_holdout: f64,
    pub observed_holdout: u64,
    pub chi_squared: f64,
    pub p_value: f64,
    pub mismatch: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Roi {
    pub cashback_cost_minor: i64,
    pub incremental_margin_minor: i64,
    pub roi: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// The experiment report ([`super::EXPERIMENT_DEFINITIONS`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentReport {
    pub period: Period,
    pub holdout_share_bp: u32,
    pub treatment_customers: u64,
    pub holdout_customers: u64,
    pub other_share_customers: u64,
    pub spend_per_customer: Measurable<Comparison>,
    pub orders_per_customer: Measurable<Comparison>,
    pub conversion: Measurable<Comparison>,
    pub retention: Measurable<Comparison>,
    pub sample_ratio: Measurable<SampleRatio>,
    pub roi: Measurable<Roi>,
}

/// Per-arm outcome samples.
#[derive(Default)]
struct ArmSamples {
    spend: Vec<f64>,
    orders: Vec<f64>,
    conversion: Vec<f64>,
    retention: Vec<f64>,
    cost_minor: i64,
}

fn compare(treatment: &[f64], holdout: &[f64]) -> Result<(Comparison, WelchTest), String> {
    let t = SampleStats::from_samples(treatment).map_err(|e| format!("treatment: {e}"))?;
    let h = SampleStats::from_samples(holdout).map_err(|e| format!("holdout: {e}"))?;
    let w = welch(&t, &h, CONFIDENCE).map_err(|e| e.to_string())?;
    Ok((
        Comparison {
            treatment_customers: t.n(),
            holdout_customers: h.n(),
            treatment_mean: t.mean(),
            holdout_mean: h.mean(),
            difference: w.difference,
            ci_low: w.ci_low,
            ci_high: w.ci_high,
            p_value: w.p_value,
        },
        w,
    ))
}

fn measurable<T>(r: Result<T, String>) -> Measurable<T> {
    r.map_or_else(Measurable::not, Measurable::Measured)
}

/// What a campaign paid on an order, net of its part of what returns clawed back (the
/// order's clawback × the campaign's share of the order's cashback, half-even).
pub fn campaign_cost_minor(paid_minor: i64, order: &super::OrderFact) -> i64 {
    if paid_minor <= 0 || order.cashback_minor <= 0 {
        return 0;
    }
    let clawed = round_half_even(
        i128::from(order.clawed_back_minor) * i128::from(paid_minor),
        i128::from(order.cashback_minor),
    ) as i64;
    paid_minor - clawed
}

/// The report of an experiment whose current holdout share is `share`: the program's
/// (`campaign` = `None`) or campaign `campaign`'s, whose customers' outcomes count from the
/// instant they were first seen and whose cost is what that campaign paid (the caller reads
/// it into the facts first, [`super::Facts::campaign_paid`]).
pub fn experiment_report(
    facts: &Facts,
    assignments: &[Assignment],
    share: BasisPoints,
    campaign: Option<&CampaignId>,
    filter: &Filter,
    ctx: &ReportContext,
) -> Result<ExperimentReport, FilterError> {
    let scope = Scope::new(facts, filter, ctx)?;
    let campaign_paid = campaign.map(|c| facts.paid_by(c));
    let end = scope.period.end;
    let mut arm_of: Vec<Option<(Arm, DateTime<Utc>)>> = vec![None; facts.customers.len()];
    let mut other_share = 0u64;
    for a in assignments {
        if !scope.in_segment[a.customer as usize] || a.first_seen_at >= scope.cutoff {
            continue;
        }
        if a.share == share {
            arm_of[a.customer as usize] = Some((a.arm, a.first_seen_at));
        } else {
            other_share += 1;
        }
    }
    // Outcomes: start every assigned customer at zero, then add their orders.
    let n = facts.customers.len();
    let (mut spend, mut count, mut recent, mut cost) =
        (vec![0i64; n], vec![0u64; n], vec![false; n], vec![0i64; n]);
    let window_start = end - Duration::days(RETENTION_WINDOW_DAYS);
    for (i, o) in facts.orders.iter().enumerate() {
        let c = o.customer as usize;
        let Some((_, first_seen)) = arm_of[c] else {
            continue;
        };
        if !scope.order_in_scope(i) || (campaign.is_some() && o.placed_at < first_seen) {
            continue;
        }
        spend[c] += o.net_minor();
        count[c] += 1;
        cost[c] += match &campaign_paid {
            Some(paid) => campaign_cost_minor(paid[i], o),
            None => o.cashback_minor - o.clawed_back_minor,
        };
        recent[c] |= o.placed_at >= window_start;
    }
    let (mut treatment, mut holdout) = (ArmSamples::default(), ArmSamples::default());
    for (c, slot) in arm_of.iter().enumerate() {
        let Some((arm, first_seen)) = *slot else {
            continue;
        };
        let s = match arm {
            Arm::Treatment => &mut treatment,
            Arm::Holdout => &mut holdout,
        };
        s.spend.push(spend[c] as f64);
        s.orders.push(count[c] as f64);
        s.conversion.push(f64::from(u8::from(count[c] >= 2)));
        if first_seen <= window_start {
            s.retention.push(f64::from(u8::from(recent[c])));
        }
        s.cost_minor += cost[c];
    }
    let (n_t, n_h) = (treatment.spend.len() as u64, holdout.spend.len() as u64);
    let spend_test = compare(&treatment.spend, &holdout.spend);
    let roi = spend_test
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|(_, w)| {
            let r =
                roi(w, n_t, ctx.gross_margin, treatment.cost_minor).map_err(|e| e.to_string())?;
            Ok(Roi {
                cashback_cost_minor: treatment.cost_minor,
                incremental_margin_minor: r.incremental_margin_minor,
                roi: r.roi,
                ci_low: r.ci_low,
                ci_high: r.ci_high,
            })
        });
    let sample_ratio = sample_ratio_mismatch(n_t, n_h, share)
        .map(|s| SampleRatio {
            expected_holdout: s.expected_holdout,
            observed_holdout: n_h,
            chi_squared: s.chi_squared,
            p_value: s.p_value,
            mismatch: s.mismatch,
        })
        .map_err(|e| e.to_string());
    let only = |r: Result<(Comparison, WelchTest), String>| measurable(r.map(|(c, _)| c));
    Ok(ExperimentReport {
        period: scope.period,
        holdout_share_bp: share.0,
        treatment_customers: n_t,
        holdout_customers: n_h,
        other_share_customers: other_share,
        spend_per_customer: only(spend_test),
        orders_per_customer: only(compare(&treatment.orders, &holdout.orders)),
        conversion: only(compare(&treatment.conversion, &holdout.conversion)),
        retention: only(compare(&treatment.retention, &holdout.retention)),
        sample_ratio: measurable(sample_ratio),
        roi: measurable(roi),
    })
}
