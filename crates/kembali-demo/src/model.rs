//! The behaviour model of the demo chain: who buys, when, where, how much, what comes back,
//! and how cashback changes it. Deterministic from the seed (ChaCha via `StdRng`).
//!
//! Per customer i (time in months of 365.25 / 12 days, over a 12-month year):
//! - joins at J_i ~ Uniform(0, [`JOIN_WINDOW_MONTHS`]) and stays until it drops out at
//!   J_i + τ_i, τ_i ~ Exponential(mean [`LIFETIME_MEAN_MONTHS`]), or the year ends;
//! - buys as a Poisson process of rate λ_i while active, λ_i ~ Gamma(shape
//!   [`RATE_SHAPE`], mean [`RATE_MEAN_PER_MONTH`]): heterogeneous, as in NBD models;
//! - spends per order exp(μ_i + [`TICKET_ORDER_SD`]·ε), with a customer level
//!   μ_i ~ Normal(ln [`TICKET_MEDIAN_MINOR`], [`TICKET_CUSTOMER_SD`]) (lognormal tickets);
//! - has a home channel (web 40 %, app 30 %, one of 5 stores 30 %) used for
//!   [`HOME_CHANNEL_SHARE`] of orders, the others uniformly otherwise;
//! - cancels an order (full return) with probability [`RETURN_PROB`], 1 to 10 days later;
//! - wants to pay with cashback on an order with probability [`REDEEM_PROB`] (the loader
//!   asks the engine how much it may use: redemptions happen wherever the order is, so
//!   cashback earned on one channel is spent on another).
//!
//! The true effect: a customer in the treatment arm (not held out, by
//! `experiment::assign`) has rate λ_i (1 + f) and tickets × (1 + t); a held-out customer
//! has λ_i and tickets as drawn. Everything else is the same in both arms.

use chrono::{DateTime, Duration, Utc};
use kembali_core::analytics::experiment::{assign, Arm};
use kembali_core::ids::{Channel, CustomerId};
use kembali_core::money::BasisPoints;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, Gamma, LogNormal, Normal};

/// Days in the model's month.
pub const DAYS_PER_MONTH: f64 = 365.25 / 12.0;
/// The simulated year.
pub const MONTHS: f64 = 12.0;
pub const JOIN_WINDOW_MONTHS: f64 = 3.0;
pub const LIFETIME_MEAN_MONTHS: f64 = 9.0;
pub const RATE_SHAPE: f64 = 1.5;
pub const RATE_MEAN_PER_MONTH: f64 = 0.9;
/// The median ticket, in minor units (R$ 120,00).
pub const TICKET_MEDIAN_MINOR: f64 = 12_000.0;
pub const TICKET_CUSTOMER_SD: f64 = 0.35;
pub const TICKET_ORDER_SD: f64 = 0.5;
pub const HOME_CHANNEL_SHARE: f64 = 0.7;
pub const RETURN_PROB: f64 = 0.04;
pub const REDEEM_PROB: f64 = 0.5;
/// Physical stores of the chain.
pub const STORES: [&str; 5] = ["sp-01", "sp-02", "rj-01", "bh-01", "poa-01"];
/// The catalogue: categories, each with [`SKUS_PER_CATEGORY`] products; every fifth is `eco`.
pub const CATEGORIES: [&str; 7] = [
    "electronics",
    "books",
    "home",
    "beauty",
    "grocery",
    "toys",
    "fashion",
];
pub const SKUS_PER_CATEGORY: usize = 30;
/// The demo program's holdout: 10 % of customers.
pub const HOLDOUT_SHARE_BP: u32 = 1_000;
pub const HOLDOUT_SALT: &str = "demo-program";

/// What the demo is asked to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoParams {
    pub seed: u64,
    pub customers: usize,
    /// Cashback's true effect on purchase frequency, in percent (15 = +15 %).
    pub frequency_effect_pct: f64,
    /// Cashback's true effect on the ticket, in percent.
    pub ticket_effect_pct: f64,
    /// The first instant of the simulated year.
    pub start: DateTime<Utc>,
}

/// Where a sale happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub channel: Channel,
    /// Index into [`STORES`] for the `store` channel.
    pub store: Option<usize>,
}

/// One line of a demo order: a catalogue product, quantity 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoLine {
    pub category: usize,
    pub sku: usize,
    pub price_minor: i64,
}

impl DemoLine {
    pub fn eco(&self) -> bool {
        self.sku % 5 == 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DemoOrder {
    pub at: DateTime<Utc>,
    pub place: Place,
    pub lines: Vec<DemoLine>,
    /// Days after the order when it is cancelled (returned in full), if it is.
    pub returned_after_days: Option<i64>,
    pub wants_to_redeem: bool,
}

impl DemoOrder {
    pub fn total_minor(&self) -> i64 {
        self.lines.iter().map(|l| l.price_minor).sum()
    }

    /// What the customer keeps paying for: nothing if the order comes back.
    pub fn net_minor(&self) -> i64 {
        if self.returned_after_days.is_some() {
            0
        } else {
            self.total_minor()
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DemoCustomer {
    pub id: CustomerId,
    pub arm: Arm,
    pub orders: Vec<DemoOrder>,
}

/// The customer id of the n-th customer.
pub fn customer_id(n: usize) -> CustomerId {
    CustomerId::parse(format!("cust-{n:06}")).expect("a valid id")
}

/// Generates every customer's year. The same params give the same chain.
pub fn generate(p: &DemoParams) -> Vec<DemoCustomer> {
    let mut rng = StdRng::seed_from_u64(p.seed);
    let rate = Gamma::new(RATE_SHAPE, RATE_MEAN_PER_MONTH / RATE_SHAPE).expect("valid gamma");
    let lifetime = Exp::new(1.0 / LIFETIME_MEAN_MONTHS).expect("valid exponential");
    let level = Normal::new(TICKET_MEDIAN_MINOR.ln(), TICKET_CUSTOMER_SD).expect("valid normal");
    let f = 1.0 + p.frequency_effect_pct / 100.0;
    let t = 1.0 + p.ticket_effect_pct / 100.0;
    (0..p.customers)
        .map(|n| {
            let id = customer_id(n);
            let arm = assign(HOLDOUT_SALT, &id, BasisPoints(HOLDOUT_SHARE_BP));
            let (freq, ticket) = match arm {
                Arm::Treatment => (f, t),
                Arm::Holdout => (1.0, 1.0),
            };
            let join = rng.random::<f64>() * JOIN_WINDOW_MONTHS;
            let end = (join + lifetime.sample(&mut rng)).min(MONTHS);
            let lambda = rate.sample(&mut rng) * freq;
            let mu = level.sample(&mut rng);
            let home = home_place(&mut rng);
            let tickets =
                LogNormal::new(mu + ticket.ln(), TICKET_ORDER_SD).expect("valid lognormal");
            let mut orders = Vec::new();
            let mut at = join;
            if lambda > 0.0 {
                let gap = Exp::new(lambda).expect("positive rate");
                loop {
                    at += gap.sample(&mut rng);
                    if at >= end {
                        break;
                    }
                    let total = tickets.sample(&mut rng).round().max(1.0) as i64;
                    orders.push(DemoOrder {
                        at: p.start + Duration::seconds((at * DAYS_PER_MONTH * 86_400.0) as i64),
                        place: order_place(&mut rng, home),
                        lines: basket(&mut rng, total),
                        returned_after_days: rng
                            .random_bool(RETURN_PROB)
                            .then(|| rng.random_range(1..=10)),
                        wants_to_redeem: rng.random_bool(REDEEM_PROB),
                    });
                }
            }
            DemoCustomer { id, arm, orders }
        })
        .collect()
}

fn home_place(rng: &mut StdRng) -> Place {
    let u: f64 = rng.random();
    if u < 0.4 {
        Place {
            channel: Channel::Web,
            store: None,
        }
    } else if u < 0.7 {
        Place {
            channel: Channel::App,
            store: None,
        }
    } else {
        Place {
            channel: Channel::Store,
            store: Some(rng.random_range(0..STORES.len())),
        }
    }
}

fn order_place(rng: &mut StdRng, home: Place) -> Place {
    if rng.random_bool(HOME_CHANNEL_SHARE) {
        return home;
    }
    let others: Vec<Place> = [
        Place {
            channel: Channel::Web,
            store: None,
        },
        Place {
            channel: Channel::App,
            store: None,
        },
        Place {
            channel: Channel::Store,
            store: Some(home.store.unwrap_or(0)),
        },
    ]
    .into_iter()
    .filter(|p| p.channel != home.channel)
    .collect();
    others[rng.random_range(0..others.len())]
}

/// 1 to 4 products whose prices add up to `total` exactly (random weights, largest
/// remainder on the last line).
fn basket(rng: &mut StdRng, total: i64) -> Vec<DemoLine> {
    let n = rng.random_range(1..=4usize).min(total as usize);
    let weights: Vec<f64> = (0..n).map(|_| rng.random::<f64>() + 0.2).collect();
    let sum: f64 = weights.iter().sum();
    let mut left = total;
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let price = if i + 1 == n {
                left
            } else {
                ((total as f64 * w / sum).floor() as i64).clamp(1, left - (n - i - 1) as i64)
            };
            left -= price;
            DemoLine {
                category: rng.random_range(0..CATEGORIES.len()),
                sku: rng.random_range(0..SKUS_PER_CATEGORY),
                price_minor: price,
            }
        })
        .collect()
}

/// The expected outcomes per customer of each arm implied by the parameters, computed
/// analytically from the model (not by simulation):
/// - orders: E[N] = E[λ] · E[active months] · (1 + f in treatment), with E[λ] =
///   [`RATE_MEAN_PER_MONTH`] and, for τ ~ Exp(mean m) and a window W = 12 − J with
///   J ~ U(0, j), E[min(τ, W)] = m · (1 − (m / j) · (e^{−(12 − j)/m} − e^{−12/m}));
/// - ticket: E[exp(μ + σε)] = exp(ln median + s²/2 + σ²/2) · (1 + t in treatment);
/// - net spend: E[N] · E[ticket] · (1 − [`RETURN_PROB`]) (tickets are independent of the
///   number of orders; a returned order counts for nothing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrueEffects {
    pub holdout_orders: f64,
    pub treatment_orders: f64,
    pub holdout_spend_minor: f64,
    pub treatment_spend_minor: f64,
}

impl TrueEffects {
    pub fn of(p: &DemoParams) -> TrueEffects {
        let m = LIFETIME_MEAN_MONTHS;
        let j = JOIN_WINDOW_MONTHS;
        let active = m * (1.0 - (m / j) * ((-(MONTHS - j) / m).exp() - (-MONTHS / m).exp()));
        let orders = RATE_MEAN_PER_MONTH * active;
        let ticket = (TICKET_MEDIAN_MINOR.ln()
            + TICKET_CUSTOMER_SD.powi(2) / 2.0
            + TICKET_ORDER_SD.powi(2) / 2.0)
            .exp();
        let f = 1.0 + p.frequency_effect_pct / 100.0;
        let t = 1.0 + p.ticket_effect_pct / 100.0;
        let kept = 1.0 - RETURN_PROB;
        TrueEffects {
            holdout_orders: orders,
            treatment_orders: orders * f,
            holdout_spend_minor: orders * ticket * kept,
            treatment_spend_minor: orders * f * ticket * t * kept,
        }
    }

    /// Treatment − holdout orders per customer.
    pub fn orders_difference(&self) -> f64 {
        self.treatment_orders - self.holdout_orders
    }

    /// Treatment − holdout net spend per customer, in minor units.
    pub fn spend_difference_minor(&self) -> f64 {
        self.treatment_spend_minor - self.holdout_spend_minor
    }
}
