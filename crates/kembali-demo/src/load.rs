//! Loads a generated chain into a program in two parts, so the full-size demo is quick:
//!
//! - [`import_history`]: the orders placed before the live part starts are stored in ONE
//!   transaction as imported history (`Tx::import_orders`: no cashback, no lot, no entry;
//!   returns that came back before it marked on their lines), and each of those customers'
//!   arm in the program holdout is recorded at their first order, as the engine would have;
//! - [`load`]: the live part, played through the engine's own use cases (orders, one-step
//!   redemptions, cancels), walking a test clock day by day so that lots mature and expire
//!   when they would have. A day's work runs concurrently across customers (each
//!   customer's events in order), so the store commits it in a few group commits.

use crate::model::{DemoCustomer, DemoOrder, CATEGORIES, HOLDOUT_SALT, HOLDOUT_SHARE_BP, STORES};
use chrono::{DateTime, Duration, Utc};
use kembali_app::clock::{Clock, TestClock};
use kembali_app::experiments::{program_arm, Deciding};
use kembali_app::import::imported_record;
use kembali_app::import::source::SourceOrder;
use kembali_app::model::PostRedemption;
use kembali_app::model::{
    Caller, CampaignCreateRequest, OrderLineRequest, OrderRequest, ProgramRequest, QuoteRequest,
};
use kembali_app::store::{job, OrderRecord, Store};
use kembali_app::wallet::{load_ctx, Ctx};
use kembali_app::{AppResult, Engine};
use kembali_core::analytics::experiment::Arm;
use kembali_core::campaign::parse_zone;
use kembali_core::ids::{Channel, Currency, OrderId, RedemptionId, StoreId};
use std::collections::BTreeMap;

/// The smallest redemption the demo customers bother with (R$ 1,00).
pub const MIN_REDEEM_MINOR: i64 = 100;
/// The program's currency.
pub const CURRENCY: &str = "BRL";
/// The program's time zone.
pub const TIME_ZONE: &str = "America/Sao_Paulo";
/// The demo program's cashback expires after this many days (the default is 180): short
/// enough that cashback earned early in the live months and never spent expires before the
/// demo ends, so breakage shows.
pub const EXPIRY_DAYS: u32 = 30;
/// Days before earned cashback can be spent (the program's default, set explicitly because
/// the loader relies on it to skip quotes that would be zero).
pub const PENDING_DAYS: u32 = 7;
/// Orders per call to `Tx::import_orders`.
const IMPORT_BATCH: usize = 1_024;
/// The share of the customers green cashback reaches that it holds out (basis points).
pub const GREEN_HOLDOUT_SHARE_BP: u32 = 2_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Orders posted through the engine.
    pub orders: u64,
    pub returns: u64,
    pub redemptions: u64,
    pub redeemed_minor: i64,
}

/// One thing a customer does on a day.
enum Event<'a> {
    Order(usize, &'a DemoOrder),
    Return(usize, &'a DemoOrder),
}

fn order_id(customer: &DemoCustomer, k: usize) -> String {
    format!("{}-{k}", customer.id)
}

/// Sets the demo program's terms: 10 % holdout, its salt, São Paulo time, cashback that
/// expires after [`EXPIRY_DAYS`].
pub async fn configure<S: Store>(engine: &Engine<S>) -> AppResult<()> {
    engine.init().await?;
    engine
        .update_program(ProgramRequest {
            currency: Some(CURRENCY.into()),
            time_zone: Some(TIME_ZONE.into()),
            holdout_share_bp: Some(HOLDOUT_SHARE_BP),
            holdout_salt: Some(HOLDOUT_SALT.into()),
            expiry_days: Some(EXPIRY_DAYS),
            pending_days: Some(PENDING_DAYS),
            ..ProgramRequest::default()
        })
        .await?;
    Ok(())
}

/// The campaigns the demo retailer runs over the live days, from the local date of `from` to
/// that of `to`:
/// green cashback, 5 % more on `eco` products on top of the base rate, with a 20 % holdout
/// of the customers it reaches (so its own effect is measured, not only the program's); and
/// weekend double cashback in the stores, capped per order, paid by the retailer.
pub async fn launch_campaigns<S: Store>(
    engine: &Engine<S>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<()> {
    let zone = parse_zone(TIME_ZONE).expect("the demo's zone is known");
    let (from, to) = (
        from.with_timezone(&zone).date_naive(),
        to.with_timezone(&zone).date_naive(),
    );
    let window = serde_json::json!({"starts_on": from.to_string(), "ends_on": to.to_string()});
    let mut weekends = window.clone();
    weekends["days_of_week"] = serde_json::json!(["sat", "sun"]);
    let campaigns = [
        (
            "green-cashback",
            serde_json::json!({
                "name": "Green cashback",
                "window": window,
                "conditions": {"tags": ["eco"]},
                "reward": {"kind": "percent", "rate_bp": 500},
                "stacking": {"mode": "stackable"},
                "holdout": {"share_bp": GREEN_HOLDOUT_SHARE_BP},
            }),
        ),
        (
            "store-weekend",
            serde_json::json!({
                "name": "Weekend in store",
                "window": weekends,
                "conditions": {"channels": ["store"]},
                "reward": {"kind": "multiplier", "factor_percent": 200},
                "caps": {"per_order_minor": 5_000},
                "stacking": {"mode": "best_of"},
            }),
        ),
    ];
    for (id, definition) in campaigns {
        let definition = serde_json::from_value(definition).expect("a demo campaign parses");
        engine
            .create_campaign(
                "demo",
                CampaignCreateRequest {
                    id: id.into(),
                    definition,
                },
            )
            .await?;
    }
    Ok(())
}

/// Stores the orders placed before `live_from` as imported history, in one transaction
/// (see the module docs), and returns how many. `live_from` must be a UTC midnight (the
/// live part plays whole days). The created customers' holdout arms are those the engine
/// would have recorded at their first order under the program's current terms. The
/// import happens at the engine's `now` (the orders' `created_at`): move its clock to
/// `live_from` first.
pub async fn import_history<S: Store>(
    engine: &Engine<S>,
    customers: &[DemoCustomer],
    live_from: DateTime<Utc>,
) -> AppResult<u64> {
    let created_at = engine.now();
    let mut records: Vec<OrderRecord> = Vec::new();
    let mut first_seen = Vec::new();
    for customer in customers {
        for (k, o) in customer.orders.iter().enumerate() {
            if o.at >= live_from {
                break; // A customer's orders are in time order.
            }
            if k == 0 {
                first_seen.push((customer.id.clone(), o.at));
            }
            let post = order_request(customer, k, o, None).parse(&Caller::default())?;
            let mut record = imported_record(
                &SourceOrder {
                    line: 0,
                    post,
                    placed_at: o.at,
                },
                created_at,
            );
            if returned_at(o).is_some_and(|at| at < live_from) {
                for line in &mut record.lines {
                    line.returned_qty = line.line.quantity;
                }
            }
            records.push(record);
        }
    }
    let imported = records.len() as u64;
    engine
        .store()
        .write(job(move |tx| {
            Box::pin(async move {
                tx.import_start().await?;
                for batch in records.chunks(IMPORT_BATCH) {
                    tx.import_orders(batch).await?;
                }
                tx.import_finish().await?;
                let settings = load_ctx(tx, created_at).await?.settings;
                for (id, at) in first_seen {
                    let ctx = Ctx {
                        now: at,
                        settings: settings.clone(),
                    };
                    program_arm(tx, &ctx, &id, Deciding::RecordAt(ctx.now)).await?;
                }
                Ok(())
            })
        }))
        .await?;
    Ok(imported)
}

/// The UTC midnight the live part plays `t` at.
fn day_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
}

/// Whether the customer may have cashback available when placing their `k`-th order: only
/// a treated customer with a live order whose cashback has matured by that order's day (the
/// engine's clock stands at the day's midnight). Anyone else would be quoted nothing, so
/// the loader does not ask.
fn may_have_cashback(customer: &DemoCustomer, k: usize, live_from: DateTime<Utc>) -> bool {
    let day = day_of(customer.orders[k].at);
    customer.arm == Arm::Treatment
        && customer.orders[..k].iter().any(|e| {
            e.at >= live_from && day_of(e.at) + Duration::days(i64::from(PENDING_DAYS)) <= day
        })
}

/// When the order comes back, if it does.
fn returned_at(o: &DemoOrder) -> Option<DateTime<Utc>> {
    o.returned_after_days.map(|d| o.at + Duration::days(d))
}

/// Plays the chain's days from `live_from` on (what [`import_history`] left) into the
/// engine, whose clock is `clock` (at or before `live_from`), and ends with the clock at
/// `until` and everything due settled.
pub async fn load<S: Store>(
    engine: &Engine<S>,
    clock: &TestClock,
    customers: &[DemoCustomer],
    live_from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> AppResult<LoadSummary> {
    let mut days: BTreeMap<DateTime<Utc>, Vec<(usize, Event<'_>)>> = BTreeMap::new();
    for (c, customer) in customers.iter().enumerate() {
        for (k, o) in customer.orders.iter().enumerate() {
            if o.at >= live_from {
                days.entry(day_of(o.at))
                    .or_default()
                    .push((c, Event::Order(k, o)));
            }
            if let Some(at) = returned_at(o).filter(|at| *at >= live_from) {
                days.entry(day_of(at))
                    .or_default()
                    .push((c, Event::Return(k, o)));
            }
        }
    }
    let mut summary = LoadSummary::default();
    for (day, mut events) in days {
        if day > until {
            break;
        }
        if day > clock.now() {
            let now = clock.advance(day - clock.now());
            engine.run_due_work(now).await?;
        }
        // Stable: a customer's events keep their order (orders before returns, by time).
        events.sort_by_key(|(c, _)| *c);
        let mut chains: Vec<(usize, Vec<Event<'_>>)> = Vec::new();
        for (c, e) in events {
            match chains.last_mut() {
                Some((last, chain)) if *last == c => chain.push(e),
                _ => chains.push((c, vec![e])),
            }
        }
        let runs = chains.into_iter().map(|(c, chain)| async move {
            let mut s = LoadSummary::default();
            for e in chain {
                play(engine, &customers[c], e, live_from, &mut s).await?;
            }
            AppResult::Ok(s)
        });
        for s in futures::future::join_all(runs).await {
            let s = s?;
            summary.orders += s.orders;
            summary.returns += s.returns;
            summary.redemptions += s.redemptions;
            summary.redeemed_minor += s.redeemed_minor;
        }
    }
    if until > clock.now() {
        let now = clock.advance(until - clock.now());
        engine.run_due_work(now).await?;
    }
    Ok(summary)
}

async fn play<S: Store>(
    engine: &Engine<S>,
    customer: &DemoCustomer,
    event: Event<'_>,
    live_from: DateTime<Utc>,
    s: &mut LoadSummary,
) -> AppResult<()> {
    match event {
        Event::Order(k, o) => {
            let redemption_id = if o.wants_to_redeem && may_have_cashback(customer, k, live_from) {
                redeem(engine, customer, k, o, s).await?
            } else {
                None
            };
            let req = order_request(customer, k, o, redemption_id);
            engine
                .post_order(req.parse(&Caller::default())?, None)
                .await?;
            s.orders += 1;
        }
        Event::Return(k, o) => {
            let id = OrderId::parse(order_id(customer, k)).expect("a valid id");
            engine.cancel_order(id, Some(place(o).0), None).await?;
            s.returns += 1;
        }
    }
    Ok(())
}

/// The order as a channel would post it.
fn order_request(
    customer: &DemoCustomer,
    k: usize,
    o: &DemoOrder,
    redemption_id: Option<RedemptionId>,
) -> OrderRequest {
    let (channel, store_id) = place(o);
    OrderRequest {
        order_id: order_id(customer, k),
        channel: Some(channel),
        store_id: store_id.map(|s| s.to_string()),
        customer_id: customer.id.to_string(),
        currency: CURRENCY.into(),
        placed_at: Some(o.at),
        lines: o
            .lines
            .iter()
            .enumerate()
            .map(|(n, l)| OrderLineRequest {
                line_id: (n + 1).to_string(),
                sku: format!("{}-{:02}", CATEGORIES[l.category], l.sku),
                category: CATEGORIES[l.category].into(),
                tags: if l.eco() { vec!["eco".into()] } else { vec![] },
                quantity: 1,
                unit_price_minor: l.price_minor,
                discount_minor: 0,
            })
            .collect(),
        redemption_id: redemption_id.map(|r| r.to_string()),
        partner_id: None,
    }
}

fn place(o: &DemoOrder) -> (Channel, Option<StoreId>) {
    let store = o
        .place
        .store
        .map(|i| StoreId::parse(STORES[i]).expect("a valid id"));
    (o.place.channel, store)
}

/// Asks how much cashback may pay for the order and, if it is worth it, redeems it all in
/// one step on the order's channel.
async fn redeem<S: Store>(
    engine: &Engine<S>,
    customer: &DemoCustomer,
    k: usize,
    o: &DemoOrder,
    s: &mut LoadSummary,
) -> AppResult<Option<RedemptionId>> {
    let total = o.total_minor();
    let quote = engine
        .quote(QuoteRequest {
            customer_id: customer.id.to_string(),
            order_total_minor: total,
            currency: CURRENCY.into(),
        })
        .await;
    let amount = match quote {
        Ok(q) => q.max_redeemable_minor,
        // A customer the program has not seen yet has nothing to spend.
        Err(kembali_app::AppError::NotFound { .. }) => 0,
        Err(e) => return Err(e),
    };
    if amount < MIN_REDEEM_MINOR {
        return Ok(None);
    }
    let (channel, store_id) = place(o);
    let id = RedemptionId::parse(format!("r-{}", order_id(customer, k))).expect("a valid id");
    engine
        .redeem(
            PostRedemption {
                redemption_id: id.clone(),
                customer_id: customer.id.clone(),
                amount_minor: amount,
                order_total_minor: total,
                currency: Currency::parse(CURRENCY).expect("a currency"),
                channel,
                store_id,
                capture: true,
            },
            None,
        )
        .await?;
    s.redemptions += 1;
    s.redeemed_minor += amount;
    Ok(Some(id))
}
