//! A property test: random sequences of orders, returns, cancels, holds, captures, voids,
//! retries and clock advances (which lapse holds, mature and expire lots) run against the
//! engine on the store under test AND against this model, written separately and as plainly
//! as possible from ../shared/SPEC.md. After every step the wallets and program totals of
//! both must agree, and every invariant the store can show must hold.
//!
//! The model shares only the core's arithmetic (the cashback function, proportional shares),
//! which has its own unit and property tests; the life of lots, holds and debt is its own.

use crate::harness::{cid, Harness};
use chrono::Duration;
use kembali_app::store::Store;
use kembali_core::cashback::{compute_cashback, EarnContext};
use kembali_core::ids::{Category, Channel, Currency, CustomerId, LineId, OrderId, Sku};
use kembali_core::lots::proportional_share;
use kembali_core::order::{Order, OrderLine};
use kembali_core::program::ProgramSettings;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::BTreeMap;

const CUSTOMERS: [&str; 3] = ["ana", "bia", "caio"];
const DAY: i64 = 86_400;

/// Holds are named by how far back they were attempted (0 = the latest), so that captures,
/// voids and payments mostly find a hold to act on.
#[derive(Debug, Clone)]
pub enum Op {
    Order {
        customer: usize,
        channel: usize,
        lines: Vec<(i64, i64)>,
        pay_with: Option<usize>,
    },
    Return {
        order: usize,
        line: usize,
        qty: i64,
    },
    Cancel {
        order: usize,
    },
    Hold {
        customer: usize,
        amount: i64,
        total: i64,
        capture: bool,
    },
    Capture {
        hold: usize,
        amount: Option<i64>,
    },
    Void {
        hold: usize,
    },
    RetryOrder {
        order: usize,
    },
    Advance {
        secs: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..3usize, prop::collection::vec((1..4i64, 1..20_000i64), 1..4), prop::option::weighted(0.3, 0..3usize))
            .prop_map(|(customer, channel, lines, pay_with)| Op::Order { customer, channel, lines, pay_with }),
        2 => (0..6usize, 0..3usize, 1..3i64).prop_map(|(order, line, qty)| Op::Return { order, line, qty }),
        1 => (0..6usize).prop_map(|order| Op::Cancel { order }),
        4 => (0..3usize, 1..1_500i64, 1..30_000i64, any::<bool>())
            .prop_map(|(customer, amount, total, capture)| Op::Hold { customer, amount, total, capture }),
        3 => (0..3usize, prop::option::of(1..1_500i64)).prop_map(|(hold, amount)| Op::Capture { hold, amount }),
        1 => (0..3usize).prop_map(|hold| Op::Void { hold }),
        1 => (0..6usize).prop_map(|order| Op::RetryOrder { order }),
        3 => prop_oneof![1 => Just(600i64), 1 => Just(3_600), 1 => Just(DAY), 3 => Just(7 * DAY), 1 => Just(30 * DAY), 1 => Just(200 * DAY)]
            .prop_map(|secs| Op::Advance { secs }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum LotState {
    Pending,
    Available,
    Closed,
}

#[derive(Debug, Clone)]
struct MLot {
    customer: usize,
    remaining: i64,
    available_at: i64,
    expires_at: i64,
    state: LotState,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum HoldState {
    Held,
    Captured,
    Voided,
    Lapsed,
}

#[derive(Debug, Clone)]
struct MAlloc {
    lot: usize,
    lot_expires_at: i64,
    held: i64,
    captured: i64,
    restored: i64,
}

#[derive(Debug, Clone)]
struct MHold {
    customer: usize,
    amount: i64,
    state: HoldState,
    expires_at: i64,
    allocs: Vec<MAlloc>,
    linked: bool,
}

#[derive(Debug, Clone)]
struct MLine {
    qty: i64,
    cashback: i64,
    redeemed: i64,
    returned: i64,
    clawed: i64,
    restored: i64,
}

#[derive(Debug, Clone)]
struct MOrder {
    customer: usize,
    lines: Vec<MLine>,
    lot: Option<usize>,
    hold: Option<usize>,
    cancelled: bool,
    /// The order as requested, for retries.
    channel: usize,
    request: Vec<(i64, i64)>,
}

/// The model: lots, holds, orders and debts, with the program's totals.
#[derive(Debug, Clone, Default)]
struct Model {
    now: i64,
    lots: Vec<MLot>,
    /// One slot per hold attempted, `None` where it was refused (ids are per attempt).
    holds: Vec<Option<MHold>>,
    orders: Vec<MOrder>,
    debt: BTreeMap<usize, i64>,
    earned: i64,
    redeemed: i64,
    expired: i64,
    clawed: i64,
}

const PENDING: i64 = 7 * DAY;
const EXPIRY: i64 = 180 * DAY;
const TTL: i64 = 900;
const GRACE: i64 = 30 * DAY;

impl Model {
    /// The hold `back` attempts ago, as an index (past the first attempt: a missing one).
    fn hold_index(&self, back: usize) -> usize {
        self.holds.len().checked_sub(1 + back).unwrap_or(usize::MAX)
    }

    fn give_back(&mut self, lot: usize, amount: i64, at: i64) {
        let l = &mut self.lots[lot];
        l.remaining += amount;
        if l.expires_at <= at || l.state == LotState::Closed {
            l.expires_at = l.expires_at.max(at + GRACE);
            l.state = LotState::Available;
        }
    }

    /// Settles one customer's due work in the order it fell due.
    fn settle(&mut self, c: usize, until: i64) {
        loop {
            let mut next: Option<(i64, u8, usize)> = None;
            let mut consider = |at: i64, rank: u8, i: usize| {
                if at <= until && next.is_none_or(|(t, r, _)| (at, rank) < (t, r)) {
                    next = Some((at, rank, i));
                }
            };
            for (i, l) in self
                .lots
                .iter()
                .enumerate()
                .filter(|(_, l)| l.customer == c && l.remaining > 0)
            {
                match l.state {
                    LotState::Pending => consider(l.available_at, 0, i),
                    LotState::Available => consider(l.expires_at, 3, i),
                    LotState::Closed => {}
                }
            }
            for (i, h) in self
                .holds
                .iter()
                .enumerate()
                .filter_map(|(i, h)| Some((i, h.as_ref()?)))
            {
                if h.customer == c && h.state == HoldState::Held {
                    consider(h.expires_at, 1, i);
                }
            }
            let Some((at, rank, i)) = next else { return };
            match rank {
                0 => {
                    let debt = self.debt.entry(c).or_default();
                    let l = &mut self.lots[i];
                    let repay = (*debt).min(l.remaining);
                    *debt -= repay;
                    self.clawed += repay;
                    l.remaining -= repay;
                    l.state = if l.remaining > 0 {
                        LotState::Available
                    } else {
                        LotState::Closed
                    };
                }
                1 => {
                    let hold = self.holds[i].as_mut().expect("considered holds exist");
                    hold.state = HoldState::Lapsed;
                    for a in hold.allocs.clone() {
                        self.give_back(a.lot, a.held, at);
                    }
                }
                _ => {
                    let l = &mut self.lots[i];
                    self.expired += l.remaining;
                    l.remaining = 0;
                    l.state = LotState::Closed;
                }
            }
        }
    }

    fn available(&self, c: usize) -> i64 {
        self.lots
            .iter()
            .filter(|l| l.customer == c && l.state == LotState::Available)
            .map(|l| l.remaining)
            .sum()
    }

    /// (available, pending, held, debt).
    fn balances(&self, c: usize) -> (i64, i64, i64, i64) {
        let pending = self
            .lots
            .iter()
            .filter(|l| l.customer == c && l.state == LotState::Pending)
            .map(|l| l.remaining)
            .sum();
        let held = self
            .holds
            .iter()
            .flatten()
            .filter(|h| h.customer == c && h.state == HoldState::Held)
            .map(|h| h.amount)
            .sum();
        (
            self.available(c),
            pending,
            held,
            self.debt.get(&c).copied().unwrap_or(0),
        )
    }

    fn capture(&mut self, h: usize, amount: i64) {
        let hold = self.holds[h].as_mut().expect("captured holds exist");
        hold.allocs.sort_by_key(|a| (a.lot_expires_at, a.lot));
        let mut left = amount;
        let mut releases = Vec::new();
        for a in &mut hold.allocs {
            a.captured = left.min(a.held);
            left -= a.captured;
            releases.push((a.lot, a.held - a.captured));
        }
        hold.state = HoldState::Captured;
        hold.amount = amount;
        self.redeemed += amount;
        for (lot, amt) in releases {
            if amt > 0 {
                self.give_back(lot, amt, self.now);
            }
        }
    }

    /// Applies an op; `false` means the engine must refuse it.
    fn apply(&mut self, op: &Op, settings: &ProgramSettings) -> bool {
        match op {
            Op::Advance { secs } => {
                self.now += secs;
                for c in 0..CUSTOMERS.len() {
                    self.settle(c, self.now);
                }
                true
            }
            Op::Order {
                customer,
                lines,
                pay_with,
                channel,
            } => {
                let pay_with = pay_with.map(|b| self.hold_index(b));
                let redeemed = match &pay_with {
                    None => 0,
                    Some(h) => {
                        let total: i64 = lines.iter().map(|(q, p)| q * p).sum();
                        let Some(Some(hold)) = self.holds.get(*h) else {
                            return false;
                        };
                        if hold.customer != *customer || hold.linked {
                            return false;
                        }
                        match hold.state {
                            HoldState::Held | HoldState::Captured if hold.amount <= total => {}
                            _ => return false,
                        }
                        if hold.state == HoldState::Held {
                            self.capture(*h, hold.amount);
                        }
                        let hold = self.holds[*h].as_mut().expect("checked above");
                        hold.linked = true;
                        hold.amount
                    }
                };
                let order = model_order(*customer, *channel, self.orders.len(), lines);
                let b = compute_cashback(
                    &order,
                    &EarnContext {
                        settings,
                        redeemed_minor: redeemed,
                    },
                );
                let lot = (b.total_minor > 0).then(|| {
                    self.earned += b.total_minor;
                    self.lots.push(MLot {
                        customer: *customer,
                        remaining: b.total_minor,
                        available_at: self.now + PENDING,
                        expires_at: self.now + PENDING + EXPIRY,
                        state: LotState::Pending,
                    });
                    self.lots.len() - 1
                });
                self.orders.push(MOrder {
                    customer: *customer,
                    lines: lines
                        .iter()
                        .zip(&b.lines)
                        .map(|((q, _), l)| MLine {
                            qty: *q,
                            cashback: l.cashback_minor,
                            redeemed: l.redeemed_minor,
                            returned: 0,
                            clawed: 0,
                            restored: 0,
                        })
                        .collect(),
                    lot,
                    hold: pay_with,
                    cancelled: false,
                    channel: *channel,
                    request: lines.clone(),
                });
                true
            }
            Op::Return { order, line, qty } => {
                let Some(o) = self.orders.get(*order) else {
                    return false;
                };
                let Some(l) = o.lines.get(*line) else {
                    return false;
                };
                if *qty > l.qty - l.returned {
                    return false;
                }
                self.return_units(*order, &[(*line, *qty)]);
                true
            }
            Op::Cancel { order } => {
                let Some(o) = self.orders.get(*order) else {
                    return false;
                };
                if o.cancelled {
                    return true; // a retried cancel is answered again
                }
                let units: Vec<(usize, i64)> = o
                    .lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (i, l.qty - l.returned))
                    .filter(|(_, q)| *q > 0)
                    .collect();
                if units.is_empty() {
                    return false;
                }
                self.return_units(*order, &units);
                self.orders[*order].cancelled = true;
                true
            }
            Op::Hold {
                customer,
                amount,
                total,
                capture,
            } => {
                let known = self.orders.iter().any(|o| o.customer == *customer);
                if !known || *amount > *total || *amount > self.available(*customer) {
                    self.holds.push(None);
                    return false;
                }
                let mut lots: Vec<usize> = (0..self.lots.len())
                    .filter(|i| {
                        let l = &self.lots[*i];
                        l.customer == *customer && l.state == LotState::Available && l.remaining > 0
                    })
                    .collect();
                lots.sort_by_key(|i| (self.lots[*i].expires_at, *i));
                let mut left = *amount;
                let mut allocs = Vec::new();
                for i in lots {
                    if left == 0 {
                        break;
                    }
                    let take = left.min(self.lots[i].remaining);
                    self.lots[i].remaining -= take;
                    left -= take;
                    allocs.push(MAlloc {
                        lot: i,
                        lot_expires_at: self.lots[i].expires_at,
                        held: take,
                        captured: 0,
                        restored: 0,
                    });
                }
                self.holds.push(Some(MHold {
                    customer: *customer,
                    amount: *amount,
                    state: HoldState::Held,
                    expires_at: self.now + TTL,
                    allocs,
                    linked: false,
                }));
                if *capture {
                    self.capture(self.holds.len() - 1, *amount);
                }
                true
            }
            Op::Capture { hold, amount } => {
                let hold = &self.hold_index(*hold);
                let Some(Some(h)) = self.holds.get(*hold) else {
                    return false;
                };
                match h.state {
                    HoldState::Held => {
                        let amount = amount.unwrap_or(h.amount);
                        if amount > h.amount {
                            return false;
                        }
                        self.capture(*hold, amount);
                        true
                    }
                    HoldState::Captured => amount.is_none_or(|a| a == h.amount),
                    _ => false,
                }
            }
            Op::Void { hold } => {
                let hold = self.hold_index(*hold);
                let Some(Some(h)) = self.holds.get_mut(hold) else {
                    return false;
                };
                match h.state {
                    HoldState::Held => {
                        h.state = HoldState::Voided;
                        for a in h.allocs.clone() {
                            self.give_back(a.lot, a.held, self.now);
                        }
                        true
                    }
                    HoldState::Voided => true,
                    _ => false,
                }
            }
            // A replay is answered with the first answer and changes nothing.
            Op::RetryOrder { order } => *order < self.orders.len(),
        }
    }

    fn return_units(&mut self, order: usize, units: &[(usize, i64)]) {
        let (mut claw, mut restore) = (0, 0);
        let o = &mut self.orders[order];
        for (i, q) in units {
            let l = &mut o.lines[*i];
            let c = proportional_share(l.cashback, l.qty, l.returned, *q, l.clawed);
            let r = proportional_share(l.redeemed, l.qty, l.returned, *q, l.restored);
            l.returned += q;
            l.clawed += c;
            l.restored += r;
            claw += c;
            restore += r;
        }
        let (customer, lot, hold) = (o.customer, o.lot, o.hold);
        if let Some(lot) = lot.filter(|_| claw > 0) {
            let l = &mut self.lots[lot];
            let taken = if l.state == LotState::Closed {
                0
            } else {
                claw.min(l.remaining)
            };
            l.remaining -= taken;
            if l.remaining == 0 && l.state == LotState::Pending {
                l.state = LotState::Closed;
            }
            self.clawed += taken;
            *self.debt.entry(customer).or_default() += claw - taken;
        }
        if let Some(h) = hold.filter(|_| restore > 0) {
            let mut allocs = self.holds[h]
                .as_ref()
                .expect("linked holds exist")
                .allocs
                .clone();
            let mut order: Vec<usize> = (0..allocs.len()).collect();
            order.sort_by_key(|i| std::cmp::Reverse((allocs[*i].lot_expires_at, allocs[*i].lot)));
            let mut left = restore;
            for i in order {
                let a = &mut allocs[i];
                let give = left.min(a.captured - a.restored);
                if give > 0 {
                    a.restored += give;
                    left -= give;
                    let lot = a.lot;
                    self.redeemed -= give;
                    self.give_back(lot, give, self.now);
                }
            }
            self.holds[h].as_mut().expect("linked holds exist").allocs = allocs;
        }
    }
}

fn model_order(customer: usize, channel: usize, n: usize, lines: &[(i64, i64)]) -> Order {
    Order {
        channel: [Channel::Web, Channel::App, Channel::Store][channel],
        store_id: None,
        order_id: OrderId::parse(format!("O{n}")).unwrap(),
        customer_id: CustomerId::parse(CUSTOMERS[customer]).unwrap(),
        currency: Currency::parse("BRL").unwrap(),
        lines: lines
            .iter()
            .enumerate()
            .map(|(i, (q, p))| OrderLine {
                line_id: LineId::parse(format!("l{i}")).unwrap(),
                sku: Sku::parse("sku").unwrap(),
                category: Category::parse("cat").unwrap(),
                tags: vec![],
                quantity: *q,
                unit_price_minor: *p,
                discount_minor: 0,
            })
            .collect(),
    }
}

/// Runs one op on the engine; `Ok(true)` if it succeeded.
async fn run<S: Store>(h: &Harness<S>, m: &Model, op: &Op, step: usize) -> bool {
    let channel = |c: usize| [Channel::Web, Channel::App, Channel::Store][c];
    match op {
        Op::Advance { secs } => {
            h.advance(Duration::seconds(*secs)).await;
            true
        }
        Op::Order {
            customer,
            channel: ch,
            lines,
            pay_with,
        } => {
            let n = m.orders.len();
            let lines: Vec<(String, i64, i64)> = lines
                .iter()
                .enumerate()
                .map(|(i, (q, p))| (format!("l{i}"), *q, *p))
                .collect();
            let refs: Vec<(&str, &str, i64, i64)> = lines
                .iter()
                .map(|(l, q, p)| (l.as_str(), "cat", *q, *p))
                .collect();
            let hold = pay_with.map(|b| format!("H{}", m.hold_index(b)));
            h.order(
                channel(*ch),
                None,
                &format!("O{n}"),
                CUSTOMERS[*customer],
                &refs,
                hold.as_deref(),
            )
            .await
            .is_ok()
        }
        Op::RetryOrder { order } => {
            // Replays the original request: it must be answered and change nothing.
            let Some(o) = m.orders.get(*order) else {
                return false;
            };
            let lines: Vec<(String, i64, i64)> = o
                .request
                .iter()
                .enumerate()
                .map(|(i, (q, p))| (format!("l{i}"), *q, *p))
                .collect();
            let refs: Vec<(&str, &str, i64, i64)> = lines
                .iter()
                .map(|(l, q, p)| (l.as_str(), "cat", *q, *p))
                .collect();
            let hold = o.hold.map(|h| format!("H{h}"));
            h.order(
                channel(o.channel),
                None,
                &format!("O{order}"),
                CUSTOMERS[o.customer],
                &refs,
                hold.as_deref(),
            )
            .await
            .is_ok()
        }
        Op::Return { order, line, qty } => h
            .ret(
                &format!("O{order}"),
                &format!("ret{step}"),
                &[(&format!("l{line}"), *qty)],
            )
            .await
            .is_ok(),
        Op::Cancel { order } => h.cancel(&format!("O{order}")).await.is_ok(),
        Op::Hold {
            customer,
            amount,
            total,
            capture,
        } => {
            let id = format!("H{}", m.holds.len());
            h.hold(&id, CUSTOMERS[*customer], *amount, *total, *capture)
                .await
                .is_ok()
        }
        Op::Capture { hold, amount } => h
            .capture(&format!("H{}", m.hold_index(*hold)), *amount)
            .await
            .is_ok(),
        Op::Void { hold } => h.void(&format!("H{}", m.hold_index(*hold))).await.is_ok(),
    }
}

/// Runs the property test on stores made by `make`.
pub fn check_against_model<S: Store, G, F>(make: impl Fn() -> F)
where
    F: std::future::Future<Output = (S, G)>,
{
    let cases = std::env::var("KEMBALI_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let settings = ProgramSettings::default();
    runner
        .run(&prop::collection::vec(op(), 1..60), |ops| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (store, _guard) = make().await;
                let h = Harness::new(store).await;
                let mut model = Model::default();
                for (step, op) in ops.iter().enumerate() {
                    let store_ok = run(&h, &model, op, step).await;
                    let model_ok = model.apply(op, &settings);
                    prop_assert_eq!(
                        store_ok,
                        model_ok,
                        "step {} {:?}: store and model disagree on success",
                        step,
                        op
                    );
                    check_step(&h, &model, step, op).await?;
                }
                Ok(())
            })
        })
        .unwrap();
}

async fn check_step<S: Store>(
    h: &Harness<S>,
    m: &Model,
    step: usize,
    op: &Op,
) -> Result<(), TestCaseError> {
    for (i, c) in CUSTOMERS.iter().enumerate() {
        let known = m.orders.iter().any(|o| o.customer == i);
        let wallet = h.engine.wallet(cid(c)).await;
        if !known {
            prop_assert!(
                wallet.is_err(),
                "step {} {:?}: {} should not exist",
                step,
                op,
                c
            );
            continue;
        }
        let w = wallet.map_err(|e| TestCaseError::fail(format!("wallet {c}: {e}")))?;
        prop_assert_eq!(
            (
                w.available_minor,
                w.pending_minor,
                w.held_minor,
                w.debt_minor
            ),
            m.balances(i),
            "step {} {:?}: wallet of {}",
            step,
            op,
            c
        );
        let breaches = h
            .engine
            .check_customer(cid(c))
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(
            breaches.is_empty(),
            "step {} {:?}: {:?}",
            step,
            op,
            breaches
        );
    }
    let t = h
        .engine
        .totals()
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(t.balanced, "step {} {:?}: totals {:?}", step, op, t);
    let debt: i64 = m.debt.values().sum();
    prop_assert_eq!(
        (
            t.earned_minor,
            t.redeemed_minor,
            t.expired_minor,
            t.clawed_back_minor,
            t.debt_outstanding_minor
        ),
        (m.earned, m.redeemed, m.expired, m.clawed, debt),
        "step {} {:?}: program totals",
        step,
        op
    );
    Ok(())
}
