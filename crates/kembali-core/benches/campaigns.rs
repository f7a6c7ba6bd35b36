//! Rule evaluation throughput: 100 active campaigns of every kind, orders of 3–5 lines.
//! Criterion reports elements (order lines) per second on one thread, i.e. per core.
//!
//! `cargo bench -p kembali-core --bench campaigns`
//!
//! It runs on mimalloc, the allocator the `kembali` binary ships with: evaluation allocates
//! a few small strings per line (the explanations), so the allocator is part of the cost.

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kembali_core::campaign::{
    evaluate, parse, parse_zone, prepare, CampaignSet, CampaignUsage, CampaignVersion,
    CustomerFacts, EvalContext, Exclusions, RawCampaign,
};
use kembali_core::ids::{
    CampaignId, Category, Channel, Currency, CustomerId, LineId, OrderId, Segment, Sku, Tag,
};
use kembali_core::order::{Order, OrderLine};
use kembali_core::program::ProgramSettings;
use serde_json::json;
use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHANNELS: [&str; 3] = ["store", "app", "web"];
const TAGS: [&str; 6] = ["eco", "new", "brand-a", "brand-b", "local", "bulk"];
const CATEGORIES: [&str; 8] = [
    "grocery",
    "book",
    "toys",
    "home",
    "electronics",
    "beauty",
    "garden",
    "pharmacy",
];

/// A realistic mix: a third out of their window, a few per channel, most aimed at a category
/// or a tag, some for segments or birthdays, a handful capped; every stacking mode.
fn campaign(i: usize) -> CampaignVersion {
    let category = CATEGORIES[i % CATEGORIES.len()];
    let window = if i % 3 == 0 {
        json!({"starts_on": "2024-01-01", "ends_on": "2024-12-31"})
    } else {
        json!({"starts_on": "2025-01-01", "ends_on": "2025-12-31",
               "days_of_week": ["mon", "tue", "wed", "thu", "fri", "sat"]})
    };
    let reward = match i % 5 {
        0 => json!({"kind": "percent", "rate_bp": 200 + i as i64}),
        1 => json!({"kind": "tiered", "tiers": [{"from_minor": 0, "rate_bp": 300},
                                               {"from_minor": 20_000, "rate_bp": 700}]}),
        2 => json!({"kind": "fixed", "amount_minor": 500}),
        3 => json!({"kind": "multiplier", "factor_percent": 150}),
        _ => json!({"kind": "favourite_category", "rate_bp": 150, "lookback_days": 90}),
    };
    let conditions = match i % 6 {
        0 => json!({"categories": [category]}),
        1 => json!({"tags": [TAGS[i % TAGS.len()]], "exclude": {"categories": ["pharmacy"]}}),
        2 => json!({"channels": [CHANNELS[i % 3]], "categories": [category]}),
        3 => {
            json!({"segments": ["vip"], "skus": (0..40).map(|k| format!("sku-{k}")).collect::<Vec<_>>()})
        }
        4 => json!({"birthday_month": true}),
        _ => json!({"categories": [category, "home"], "min_eligible_order_minor": 5_000}),
    };
    // One staff-only exclusive campaign; the rest compete (best_of) or add up (stackable).
    let (mode, conditions) = if i == 99 {
        ("exclusive", json!({"segments": ["staff"]}))
    } else {
        (["stackable", "best_of"][i % 2], conditions)
    };
    let raw: RawCampaign = serde_json::from_value(json!({
        "name": format!("Campaign {i}"),
        "window": window,
        "conditions": conditions,
        "reward": reward,
        "caps": if i % 7 == 0 { json!({"per_order_minor": 1_500, "budget_minor": 100_000_000}) } else { json!({}) },
        "stacking": {"mode": mode, "priority": (i % 10) as i64},
    }))
    .unwrap();
    CampaignVersion {
        id: CampaignId::parse(format!("c{i:03}")).unwrap(),
        version: 1,
        rules: parse(&raw).unwrap(),
    }
}

fn orders() -> Vec<Order> {
    (0..64)
        .map(|n| Order {
            channel: Channel::ALL[n % 3],
            store_id: None,
            order_id: OrderId::parse(format!("O{n}")).unwrap(),
            customer_id: CustomerId::parse("ana").unwrap(),
            currency: Currency::parse("BRL").unwrap(),
            lines: (0..3 + n % 3)
                .map(|l| OrderLine {
                    line_id: LineId::parse(l.to_string()).unwrap(),
                    sku: Sku::parse(format!("sku-{}", (n * 7 + l * 13) % 100)).unwrap(),
                    category: Category::parse(CATEGORIES[(n + l) % CATEGORIES.len()]).unwrap(),
                    tags: if (n + l) % 2 == 0 {
                        vec![Tag::parse(TAGS[(n * 5 + l) % TAGS.len()]).unwrap()]
                    } else {
                        vec![]
                    },
                    quantity: 1 + (l as i64 % 3),
                    unit_price_minor: 1_990 + (n as i64 * 1_237 + l as i64 * 911) % 30_000,
                    discount_minor: 0,
                })
                .collect(),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let versions: Vec<_> = (0..100).map(campaign).collect();
    let usage: Vec<_> = versions
        .iter()
        .filter(|v| v.rules.caps().needs_usage())
        .map(|v| CampaignUsage::none(v.id.clone()))
        .collect();
    let set = CampaignSet::new(versions, Exclusions::default()).unwrap();
    let settings = ProgramSettings::default();
    let segments = [Segment::parse("vip").unwrap()];
    let favourites = [(90, Category::parse("toys").unwrap())];
    let orders = orders();
    let lines: usize = orders.iter().map(|o| o.lines.len()).sum();
    let ctx = EvalContext {
        settings: &settings,
        redeemed_minor: 0,
        at: Utc.with_ymd_and_hms(2025, 11, 28, 15, 0, 0).unwrap(),
        zone: parse_zone("America/Sao_Paulo").unwrap(),
        customer: CustomerFacts {
            first_purchase: false,
            birthday: None,
            segments: &segments,
            favourites: &favourites,
            held_out: &[],
        },
        partner: None,
        campaigns: &set,
        usage: &usage,
    };
    let paying: usize = orders
        .iter()
        .map(|o| evaluate(o, &ctx).campaigns.len())
        .sum();
    eprintln!(
        "{} orders, {lines} lines, {:.1} paying rules per order on average",
        orders.len(),
        paying as f64 / orders.len() as f64
    );
    let mut group = c.benchmark_group("campaigns");
    group.throughput(Throughput::Elements(lines as u64));
    group.bench_function("100 campaigns, order lines", |b| {
        b.iter(|| {
            for o in &orders {
                black_box(evaluate(black_box(o), &ctx));
            }
        })
    });
    // What the engine does per order: prepare it once, list its capped candidates (the
    // campaigns whose usage it reads), then evaluate with that usage.
    group.bench_function(
        "100 campaigns, order lines, prepared as the engine does",
        |b| {
            b.iter(|| {
                for o in &orders {
                    let prepared = prepare(black_box(o), &ctx);
                    black_box(prepared.capped_candidates(&ctx));
                    black_box(prepared.evaluate(&ctx));
                }
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
