//! The experiment coverage check: on chains generated with a known true effect, how often
//! does the 95 % Welch interval of treatment − holdout contain it, and, with no effect, how
//! often does it exclude zero? Runs on the generator's output (what the demo loads), not on
//! a database, so 100 seeds take seconds.

use crate::model::{generate, DemoCustomer, DemoParams, TrueEffects};
use kembali_core::analytics::experiment::{welch, Arm, ExperimentError, SampleStats, WelchTest};

/// The confidence level of the intervals checked.
pub const CONFIDENCE: f64 = 0.95;

/// Treatment vs holdout on one chain: net spend per customer (minor units, returned orders
/// count for nothing) and orders per customer (returned ones included: they were placed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    pub spend: WelchTest,
    pub orders: WelchTest,
}

pub fn measure(customers: &[DemoCustomer]) -> Result<Measured, ExperimentError> {
    let arm = |a: Arm, f: fn(&DemoCustomer) -> f64| -> Result<SampleStats, ExperimentError> {
        let v: Vec<f64> = customers.iter().filter(|c| c.arm == a).map(f).collect();
        SampleStats::from_samples(&v)
    };
    let spend = |c: &DemoCustomer| c.orders.iter().map(|o| o.net_minor() as f64).sum();
    let orders = |c: &DemoCustomer| c.orders.len() as f64;
    Ok(Measured {
        spend: welch(
            &arm(Arm::Treatment, spend)?,
            &arm(Arm::Holdout, spend)?,
            CONFIDENCE,
        )?,
        orders: welch(
            &arm(Arm::Treatment, orders)?,
            &arm(Arm::Holdout, orders)?,
            CONFIDENCE,
        )?,
    })
}

/// How many seeds' intervals contained the true difference, and how many excluded zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Coverage {
    pub seeds: u64,
    pub spend_contains_truth: u64,
    pub orders_contains_truth: u64,
    pub spend_excludes_zero: u64,
    pub orders_excludes_zero: u64,
}

fn contains(w: &WelchTest, x: f64) -> bool {
    w.ci_low <= x && x <= w.ci_high
}

/// Generates the chain for each seed in `seeds` (the other parameters from `base`) and
/// checks its intervals against [`TrueEffects::of`]`(base)`.
pub fn coverage(
    base: &DemoParams,
    seeds: impl Iterator<Item = u64>,
) -> Result<Coverage, ExperimentError> {
    let truth = TrueEffects::of(base);
    let mut c = Coverage::default();
    for seed in seeds {
        let p = DemoParams {
            seed,
            ..base.clone()
        };
        let m = measure(&generate(&p))?;
        c.seeds += 1;
        c.spend_contains_truth += u64::from(contains(&m.spend, truth.spend_difference_minor()));
        c.orders_contains_truth += u64::from(contains(&m.orders, truth.orders_difference()));
        c.spend_excludes_zero += u64::from(!contains(&m.spend, 0.0));
        c.orders_excludes_zero += u64::from(!contains(&m.orders, 0.0));
    }
    Ok(c)
}
