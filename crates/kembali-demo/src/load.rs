//! Loads a generated chain into a program through the engine's own use cases (orders,
//! one-step redemptions, cancels), walking a test clock day by day so that lots mature and
//! expire when they would have. A day's work runs concurrently across customers (each
//! customer's events in order), so the store commits it in a few group commits.

use crate::model::{DemoCustomer, DemoOrder, CATEGORIES, HOLDOUT_SALT, HOLDOUT_SHARE_BP, STORES};
use chrono::{DateTime, Duration, Utc};
use kembali_app::clock::{Clock, TestClock};
use kembali_app::model::PostRedemption;
use kembali_app::model::{Caller, OrderLineRequest, OrderRequest, ProgramRequest, QuoteRequest};
use kembali_app::store::Store;
use kembali_app::{AppResult, Engine};
use kembali_core::ids::{Channel, Currency, OrderId, RedemptionId, StoreId};
use std::collections::BTreeMap;

/// The smallest redemption the demo customers bother with (R$ 1,00).
pub const MIN_REDEEM_MINOR: i64 = 100;
/// The program's currency.
pub const CURRENCY: &str = "BRL";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
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

/// Sets the demo program's terms: 10 % holdout, its salt, São Paulo time.
pub async fn configure<S: Store>(engine: &Engine<S>) -> AppResult<()> {
    engine.init().await?;
    engine
        .update_program(ProgramRequest {
            currency: Some(CURRENCY.into()),
            time_zone: Some("America/Sao_Paulo".into()),
            holdout_share_bp: Some(HOLDOUT_SHARE_BP),
            holdout_salt: Some(HOLDOUT_SALT.into()),
            ..ProgramRequest::default()
        })
        .await?;
    Ok(())
}

/// Plays the chain's year into the engine, whose clock is `clock` (at or before the first
/// order), and ends with the clock at `until` and everything due settled.
pub async fn load<S: Store>(
    engine: &Engine<S>,
    clock: &TestClock,
    customers: &[DemoCustomer],
    until: DateTime<Utc>,
) -> AppResult<LoadSummary> {
    let mut days: BTreeMap<DateTime<Utc>, Vec<(usize, Event<'_>)>> = BTreeMap::new();
    let day_of = |t: DateTime<Utc>| {
        t.date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
    };
    for (c, customer) in customers.iter().enumerate() {
        for (k, o) in customer.orders.iter().enumerate() {
            days.entry(day_of(o.at))
                .or_default()
                .push((c, Event::Order(k, o)));
            if let Some(after) = o.returned_after_days {
                days.entry(day_of(o.at + Duration::days(after)))
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
                play(engine, &customers[c], e, &mut s).await?;
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
    s: &mut LoadSummary,
) -> AppResult<()> {
    match event {
        Event::Order(k, o) => {
            let (channel, store_id) = place(o);
            let redemption_id = if o.wants_to_redeem {
                redeem(engine, customer, k, o, s).await?
            } else {
                None
            };
            let req = OrderRequest {
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
            };
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
