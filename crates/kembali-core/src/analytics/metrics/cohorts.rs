//! Reports by first-purchase cohort: the retention table and lifetime value, historical and
//! predicted (BG/NBD with Gamma-Gamma, fitted on the program's own history).

use super::{
    month_label, month_number, ratio, CustomerIx, CustomerOrders, Facts, Filter, FilterError,
    Measurable, Period, ReportContext, Scope,
};
use crate::analytics::rfm::{summarise, Purchase, RfmError, RfmSummary, TimeUnit};
use crate::analytics::{bgnbd, clv, gamma_gamma};
use serde::Serialize;
use std::collections::BTreeMap;

/// The most cohorts (and months after the first) a retention table shows: ten years.
pub const MAX_COHORT_MONTHS: usize = 120;
/// The fewest customers BG/NBD is fitted on, and the fewest repeat buyers Gamma-Gamma is
/// fitted on: below these the maximum-likelihood estimates of four (three) parameters are
/// dominated by noise, so the prediction is reported as not measurable instead.
pub const MIN_FIT_CUSTOMERS: usize = 20;
pub const MIN_SPEND_CUSTOMERS: usize = 10;
/// The horizon of predicted lifetime value.
pub const HORIZON_DAYS: i64 = 365;

/// One cohort's row of the retention table ([`super::RETENTION_DEFINITIONS`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortRetention {
    /// The cohort month, "YYYY-MM".
    pub cohort: String,
    pub customers: u64,
    /// `retained[k]`: customers with an order in the k-th month after the cohort month.
    pub retained: Vec<u64>,
    /// `retained[k] / customers`.
    pub rates: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetentionReport {
    pub period: Period,
    pub cohorts: Vec<CohortRetention>,
}

/// A customer of the period's cohorts: their cohort month and matching orders.
struct CohortCustomer<'g> {
    customer: CustomerIx,
    month: i32,
    orders: &'g [u32],
}

/// The customers whose first matching order falls in the period, with their cohort month.
fn cohort_customers<'g>(
    scope: &Scope<'_>,
    grouped: &'g CustomerOrders<'_>,
) -> Vec<CohortCustomer<'g>> {
    grouped
        .groups()
        .filter_map(|(customer, group)| {
            let day = scope.order_day[group[0] as usize];
            scope.in_period(day).then(|| CohortCustomer {
                customer,
                month: month_number(day),
                orders: group,
            })
        })
        .collect()
}

/// The retention table of the period's cohorts under a filter.
pub fn retention(
    facts: &Facts,
    filter: &Filter,
    ctx: &ReportContext,
) -> Result<RetentionReport, FilterError> {
    let scope = Scope::new(facts, filter, ctx)?;
    let grouped = scope.orders_by_customer();
    let last_month = month_number(scope.last_date()).max(month_number(scope.period.from));
    let mut rows: BTreeMap<i32, (u64, Vec<u64>)> = BTreeMap::new();
    for c in cohort_customers(&scope, &grouped) {
        let width = ((last_month - c.month + 1) as usize).min(MAX_COHORT_MONTHS);
        let row = rows.entry(c.month).or_insert_with(|| (0, vec![0; width]));
        row.0 += 1;
        let mut seen = vec![false; width];
        for &i in c.orders {
            let k = (month_number(scope.order_day[i as usize]) - c.month) as usize;
            if k < width && !seen[k] {
                seen[k] = true;
                row.1[k] += 1;
            }
        }
    }
    Ok(RetentionReport {
        period: scope.period,
        cohorts: rows
            .into_iter()
            .map(|(month, (customers, retained))| CohortRetention {
                cohort: month_label(month),
                customers,
                rates: retained
                    .iter()
                    .map(|&r| r as f64 / customers as f64)
                    .collect(),
                retained,
            })
            .collect(),
    })
}

/// Historical value over customers ([`super::LTV_DEFINITIONS`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoricalValue {
    pub customers: u64,
    pub total_minor: i64,
    pub mean_minor: Option<f64>,
    pub median_minor: Option<i64>,
    pub p90_minor: Option<i64>,
}

/// One cohort's lifetime value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortLtv {
    pub cohort: String,
    pub customers: u64,
    pub historical_total_minor: i64,
    pub historical_mean_minor: f64,
    /// Mean predicted 12-month value (margin), when the models could be fitted.
    pub predicted_mean_minor: Option<f64>,
}

/// A fitted model: its parameters by name, its log-likelihood and how many customers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelFit {
    pub params: BTreeMap<&'static str, f64>,
    pub log_likelihood: f64,
    pub customers: u64,
}

/// Predicted value over the next [`HORIZON_DAYS`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub horizon_days: i64,
    pub gross_margin_bp: u32,
    pub bgnbd: ModelFit,
    pub gamma_gamma: ModelFit,
    pub total_minor: i64,
    pub mean_minor: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LtvReport {
    pub period: Period,
    pub historical: HistoricalValue,
    pub cohorts: Vec<CohortLtv>,
    pub predicted: Measurable<Prediction>,
}

/// Nearest-rank percentile of sorted values (p in 0..=100).
fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

/// Lifetime value of the period's cohorts under a filter.
pub fn lifetime_value(
    facts: &Facts,
    filter: &Filter,
    ctx: &ReportContext,
) -> Result<LtvReport, FilterError> {
    let scope = Scope::new(facts, filter, ctx)?;
    let grouped = scope.orders_by_customer();
    let customers = cohort_customers(&scope, &grouped);
    let values: Vec<i64> = customers
        .iter()
        .map(|c| {
            c.orders
                .iter()
                .map(|&i| facts.orders[i as usize].net_minor())
                .sum()
        })
        .collect();
    let predicted = predict(&scope, &customers, ctx);
    let per_customer = predicted.as_ref().ok().map(|(_, v)| v.as_slice());
    let mut cohorts: BTreeMap<i32, (u64, i64, i64)> = BTreeMap::new();
    for (k, c) in customers.iter().enumerate() {
        let row = cohorts.entry(c.month).or_default();
        row.0 += 1;
        row.1 += values[k];
        row.2 += per_customer.map_or(0, |v| v[k]);
    }
    let total: i64 = values.iter().sum();
    let mut sorted = values;
    sorted.sort_unstable();
    let n = sorted.len() as u64;
    Ok(LtvReport {
        period: scope.period,
        historical: HistoricalValue {
            customers: n,
            total_minor: total,
            mean_minor: ratio(total as f64, n as f64),
            median_minor: percentile(&sorted, 50),
            p90_minor: percentile(&sorted, 90),
        },
        cohorts: cohorts
            .into_iter()
            .map(|(month, (n, total, predicted))| CohortLtv {
                cohort: month_label(month),
                customers: n,
                historical_total_minor: total,
                historical_mean_minor: total as f64 / n as f64,
                predicted_mean_minor: per_customer.map(|_| predicted as f64 / n as f64),
            })
            .collect(),
        predicted: match predicted {
            Ok((p, _)) => Measurable::Measured(p),
            Err(reason) => Measurable::not(reason),
        },
    })
}

/// Each customer of the period's cohorts (first matching order in the period) with the
/// summary of their purchases up to the period's last day, in weeks: what the predicted
/// lifetime value fits BG/NBD and Gamma-Gamma on. Customers are in the order of `facts`.
pub fn calibration_summaries(
    facts: &Facts,
    filter: &Filter,
    ctx: &ReportContext,
) -> Result<Vec<(CustomerIx, RfmSummary)>, CalibrationError> {
    let scope = Scope::new(facts, filter, ctx)?;
    let grouped = scope.orders_by_customer();
    let customers = cohort_customers(&scope, &grouped);
    let summaries = summaries(&scope, &customers)?;
    Ok(customers
        .iter()
        .map(|c| c.customer)
        .zip(summaries)
        .collect())
}

/// Why [`calibration_summaries`] has no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(transparent)]
    Rfm(#[from] RfmError),
}

/// The customers' purchases (one per order, its net value) summarised up to the period's
/// last day, in weeks.
fn summaries(
    scope: &Scope<'_>,
    customers: &[CohortCustomer<'_>],
) -> Result<Vec<RfmSummary>, RfmError> {
    let calibration_end = scope.last_date();
    customers
        .iter()
        .map(|c| {
            let purchases: Vec<Purchase> = c
                .orders
                .iter()
                .map(|&i| Purchase {
                    date: scope.order_day[i as usize],
                    value_minor: scope.facts.orders[i as usize].net_minor().max(0),
                })
                .collect();
            summarise(&purchases, calibration_end, TimeUnit::WEEK)
        })
        .collect()
}

/// Fits both models on the customers and predicts each one's value; the error is why not.
fn predict(
    scope: &Scope<'_>,
    customers: &[CohortCustomer<'_>],
    ctx: &ReportContext,
) -> Result<(Prediction, Vec<i64>), String> {
    if customers.is_empty() {
        return Err("no customer has a first purchase in the period".into());
    }
    let summaries = summaries(scope, customers).map_err(|e| e.to_string())?;
    let histories: Vec<_> = summaries.iter().map(|s| s.frequency_recency()).collect();
    let spends: Vec<_> = summaries.iter().filter_map(|s| s.spend()).collect();
    if histories.len() < MIN_FIT_CUSTOMERS || spends.len() < MIN_SPEND_CUSTOMERS {
        return Err(format!(
            "too few customers to fit the models: {} (at least {MIN_FIT_CUSTOMERS}), of \
             whom {} bought again (at least {MIN_SPEND_CUSTOMERS})",
            histories.len(),
            spends.len()
        ));
    }
    let purchases_fit = bgnbd::fit(&histories).map_err(|e| format!("BG/NBD: {e}"))?;
    let spend_fit = gamma_gamma::fit(&spends).map_err(|e| format!("Gamma-Gamma: {e}"))?;
    let horizon = TimeUnit::WEEK.periods(HORIZON_DAYS);
    let values = summaries
        .iter()
        .map(|s| {
            clv::predict(
                &purchases_fit.params,
                &spend_fit.params,
                &s.frequency_recency(),
                s.zbar_minor(),
                horizon,
                ctx.gross_margin,
            )
            .map(|p| p.expected_margin_minor)
        })
        .collect::<Result<Vec<i64>, _>>()
        .map_err(|e| format!("prediction: {e}"))?;
    let total: i64 = values.iter().sum();
    let b = purchases_fit.params;
    let g = spend_fit.params;
    Ok((
        Prediction {
            horizon_days: HORIZON_DAYS,
            gross_margin_bp: ctx.gross_margin.0,
            bgnbd: ModelFit {
                params: BTreeMap::from([
                    ("r", b.r()),
                    ("alpha", b.alpha()),
                    ("a", b.a()),
                    ("b", b.b()),
                ]),
                log_likelihood: purchases_fit.log_likelihood,
                customers: histories.len() as u64,
            },
            gamma_gamma: ModelFit {
                params: BTreeMap::from([("p", g.p()), ("q", g.q()), ("gamma", g.gamma_minor())]),
                log_likelihood: spend_fit.log_likelihood,
                customers: spends.len() as u64,
            },
            total_minor: total,
            mean_minor: total as f64 / values.len() as f64,
        },
        values,
    ))
}
