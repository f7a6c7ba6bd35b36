//! Table-driven tests for every condition, reward, cap and stacking mode, validation tests,
//! explanation snapshots, and property tests of the evaluator's promises.

use super::*;
use crate::ids::*;
use crate::money::BasisPoints;
use crate::order::{Order, OrderLine};
use crate::program::ProgramSettings;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Fixtures

fn sao_paulo() -> Tz {
    parse_zone("America/Sao_Paulo").unwrap()
}

/// A local time in São Paulo (UTC−3, no daylight saving since 2019) as an instant.
fn sp(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    sao_paulo()
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .unwrap()
        .with_timezone(&Utc)
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn line(id: &str, category: &str, price: i64, tags: &[&str]) -> OrderLine {
    OrderLine {
        line_id: LineId::parse(id).unwrap(),
        sku: Sku::parse(format!("sku-{id}")).unwrap(),
        category: Category::parse(category).unwrap(),
        tags: tags.iter().map(|t| Tag::parse(*t).unwrap()).collect(),
        quantity: 1,
        unit_price_minor: price,
        discount_minor: 0,
    }
}

fn order(lines: Vec<OrderLine>) -> Order {
    Order {
        channel: Channel::Web,
        store_id: None,
        order_id: OrderId::parse("O1").unwrap(),
        customer_id: CustomerId::parse("ana").unwrap(),
        currency: Currency::parse("BRL").unwrap(),
        lines,
    }
}

/// A campaign running all of 2025, 10 % stackable, with `patch` merged over it.
fn definition(patch: Value) -> RawCampaign {
    let mut base = json!({
        "name": "Promo",
        "window": {"starts_on": "2025-01-01", "ends_on": "2025-12-31"},
        "reward": {"kind": "percent", "rate_bp": 1000},
        "stacking": {"mode": "stackable"}
    });
    if let Some(reward) = patch.get("reward") {
        // A reward is replaced whole: its fields depend on its kind.
        base["reward"] = reward.clone();
    }
    merge(&mut base, patch);
    serde_json::from_value(base).unwrap()
}

fn merge(into: &mut Value, patch: Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

fn version(id: &str, v: u32, patch: Value) -> CampaignVersion {
    let raw = definition(patch);
    let rules = parse(&raw).unwrap_or_else(|p| panic!("{p:?}"));
    CampaignVersion {
        id: CampaignId::parse(id).unwrap(),
        version: v,
        rules,
    }
}

/// Everything around an order, with defaults a test changes as it needs.
struct World {
    settings: ProgramSettings,
    set: CampaignSet,
    usage: Vec<CampaignUsage>,
    at: DateTime<Utc>,
    zone: Tz,
    first_purchase: bool,
    birthday: Option<NaiveDate>,
    segments: Vec<Segment>,
    favourites: Vec<(u32, Category)>,
    held_out: Vec<CampaignId>,
    partner: Option<PartnerId>,
    redeemed_minor: i64,
}

impl World {
    /// Base rate 0 so totals show the campaigns alone.
    fn with(campaigns: Vec<CampaignVersion>) -> World {
        World {
            settings: ProgramSettings {
                base_rate_bp: BasisPoints(0),
                ..ProgramSettings::default()
            },
            usage: campaigns
                .iter()
                .map(|c| CampaignUsage::none(c.id.clone()))
                .collect(),
            set: CampaignSet::new(campaigns, Exclusions::default()).unwrap(),
            at: sp(2025, 6, 15, 12, 0, 0),
            zone: sao_paulo(),
            first_purchase: false,
            birthday: None,
            segments: vec![],
            favourites: vec![],
            held_out: vec![],
            partner: None,
            redeemed_minor: 0,
        }
    }

    fn base_rate(mut self, bp: u32) -> World {
        self.settings.base_rate_bp = BasisPoints(bp);
        self
    }

    fn eval(&self, o: &Order) -> Evaluation {
        evaluate(o, &self.ctx())
    }

    fn ctx(&self) -> EvalContext<'_> {
        w_ctx(self)
    }
}

fn cashback_per_line(e: &Evaluation) -> Vec<i64> {
    e.breakdown.lines.iter().map(|l| l.cashback_minor).collect()
}

type Tweak = fn(&mut World, &mut Order);

fn nothing(_: &mut World, _: &mut Order) {}

/// One row: a campaign patch, a change to the world, and the cashback each line gets.
struct Case {
    name: &'static str,
    patch: Value,
    tweak: Tweak,
    lines: Vec<OrderLine>,
    expected: Vec<i64>,
}

fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in cases {
        let mut w = World::with(vec![version("c1", 1, c.patch.clone())]);
        let mut o = order(c.lines);
        (c.tweak)(&mut w, &mut o);
        let e = w.eval(&o);
        let got = cashback_per_line(&e);
        if got != c.expected {
            failures.push(format!(
                "{}: expected {:?}, got {got:?}",
                c.name, c.expected
            ));
        }
        assert_eq!(
            got.iter().sum::<i64>(),
            e.breakdown.total_minor,
            "{}",
            c.name
        );
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn one(price: i64) -> Vec<OrderLine> {
    vec![line("1", "grocery", price, &[])]
}

fn two() -> Vec<OrderLine> {
    vec![
        line("1", "grocery", 10_000, &["eco"]),
        line("2", "book", 5_000, &[]),
    ]
}

// ---------------------------------------------------------------------------------------
// Conditions

#[test]
fn every_condition_admits_what_it_names_and_refuses_the_rest() {
    run(vec![
        Case {
            name: "no condition: every line earns",
            patch: json!({}),
            tweak: nothing,
            lines: two(),
            expected: vec![1_000, 500],
        },
        Case {
            name: "channel listed",
            patch: json!({"conditions": {"channels": ["web", "app"]}}),
            tweak: nothing,
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "channel not listed",
            patch: json!({"conditions": {"channels": ["store"]}}),
            tweak: nothing,
            lines: one(10_000),
            expected: vec![0],
        },
        Case {
            name: "store listed",
            patch: json!({"conditions": {"stores": ["s1"]}}),
            tweak: |_, o| o.store_id = Some(StoreId::parse("s1").unwrap()),
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "store not listed",
            patch: json!({"conditions": {"stores": ["s1"]}}),
            tweak: |_, o| o.store_id = Some(StoreId::parse("s2").unwrap()),
            lines: one(10_000),
            expected: vec![0],
        },
        Case {
            name: "store required but the order has none",
            patch: json!({"conditions": {"stores": ["s1"]}}),
            tweak: nothing,
            lines: one(10_000),
            expected: vec![0],
        },
        Case {
            name: "category: only the grocery line",
            patch: json!({"conditions": {"categories": ["grocery"]}}),
            tweak: nothing,
            lines: two(),
            expected: vec![1_000, 0],
        },
        Case {
            name: "sku: only sku-2",
            patch: json!({"conditions": {"skus": ["sku-2"]}}),
            tweak: nothing,
            lines: two(),
            expected: vec![0, 500],
        },
        Case {
            name: "tag eco: green cashback on the eco line",
            patch: json!({"conditions": {"tags": ["eco"]}}),
            tweak: nothing,
            lines: two(),
            expected: vec![1_000, 0],
        },
        Case {
            name: "category AND tag must both match",
            patch: json!({"conditions": {"categories": ["book"], "tags": ["eco"]}}),
            tweak: nothing,
            lines: two(),
            expected: vec![0, 0],
        },
        Case {
            name: "minimum eligible order reached exactly",
            patch: json!({"conditions": {"min_eligible_order_minor": 15_000}}),
            tweak: nothing,
            lines: two(),
            expected: vec![1_000, 500],
        },
        Case {
            name: "minimum eligible order missed by a cent",
            patch: json!({"conditions": {"min_eligible_order_minor": 15_001}}),
            tweak: nothing,
            lines: two(),
            expected: vec![0, 0],
        },
        Case {
            name: "the part paid with cashback does not count toward the minimum",
            patch: json!({"conditions": {"min_eligible_order_minor": 15_000}}),
            tweak: |w, _| w.redeemed_minor = 3,
            lines: two(),
            expected: vec![0, 0],
        },
        Case {
            name: "minimum counts only the campaign's own lines",
            patch: json!({"conditions": {"categories": ["book"], "min_eligible_order_minor": 10_000}}),
            tweak: nothing,
            lines: two(),
            expected: vec![0, 0],
        },
        Case {
            name: "first purchase: it is",
            patch: json!({"conditions": {"first_purchase_only": true}}),
            tweak: |w, _| w.first_purchase = true,
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "first purchase: it is not",
            patch: json!({"conditions": {"first_purchase_only": true}}),
            tweak: nothing,
            lines: one(10_000),
            expected: vec![0],
        },
        Case {
            name: "birthday month matches",
            patch: json!({"conditions": {"birthday_month": true}}),
            tweak: |w, _| w.birthday = Some(date("1990-06-30")),
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "birthday month differs",
            patch: json!({"conditions": {"birthday_month": true}}),
            tweak: |w, _| w.birthday = Some(date("1990-07-01")),
            lines: one(10_000),
            expected: vec![0],
        },
        Case {
            name: "birthday unknown",
            patch: json!({"conditions": {"birthday_month": true}}),
            tweak: nothing,
            lines: one(10_000),
            expected: vec![0],
        },
        Case {
            name: "birthday month is the local month: 30 June 22:00 local is 1 July UTC",
            patch: json!({"conditions": {"birthday_month": true}}),
            tweak: |w, _| {
                w.birthday = Some(date("1990-06-10"));
                w.at = sp(2025, 6, 30, 22, 0, 0);
            },
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "29 February birthday, ±3 days, 3 March of a common year (3 days from 28 Feb)",
            patch: json!({"conditions": {"birthday_within_days": 3}}),
            tweak: |w, _| {
                w.birthday = Some(date("2000-02-29"));
                w.at = sp(2025, 3, 3, 10, 0, 0);
            },
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "29 February birthday, ±3 days, 4 March of a common year",
            patch: json!({"conditions": {"birthday_within_days": 3}}),
            tweak: |w, _| {
                w.birthday = Some(date("2000-02-29"));
                w.at = sp(2025, 3, 4, 10, 0, 0);
            },
            lines: one(10_000),
            expected: vec![0],
        },
        Case {
            name: "29 February birthday, same day only, on 28 February of a common year",
            patch: json!({"conditions": {"birthday_within_days": 0}}),
            tweak: |w, _| {
                w.birthday = Some(date("2000-02-29"));
                w.at = sp(2025, 2, 28, 10, 0, 0);
            },
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "29 February birthday, same day only, on 28 February of a leap year",
            patch: json!({"conditions": {"birthday_within_days": 0}}),
            tweak: |w, _| {
                w.birthday = Some(date("2000-02-29"));
                w.at = sp(2028, 2, 28, 10, 0, 0);
            },
            lines: one(10_000),
            expected: vec![0],
        },
        Case {
            name: "segment listed",
            patch: json!({"conditions": {"segments": ["vip", "gold"]}}),
            tweak: |w, _| w.segments = vec![Segment::parse("gold").unwrap()],
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "segment not held",
            patch: json!({"conditions": {"segments": ["vip"]}}),
            tweak: |w, _| w.segments = vec![Segment::parse("gold").unwrap()],
            lines: one(10_000),
            expected: vec![0],
        },
        Case {
            name: "partner merchant listed",
            patch: json!({"conditions": {"partners": ["pharma-1"]}}),
            tweak: |w, _| w.partner = Some(PartnerId::parse("pharma-1").unwrap()),
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "partner merchant required, order placed directly",
            patch: json!({"conditions": {"partners": ["pharma-1"]}}),
            tweak: nothing,
            lines: one(10_000),
            expected: vec![0],
        },
        Case {
            name: "excluded category never earns",
            patch: json!({"conditions": {"exclude": {"categories": ["book"]}}}),
            tweak: nothing,
            lines: two(),
            expected: vec![1_000, 0],
        },
        Case {
            name: "excluded SKU never earns",
            patch: json!({"conditions": {"exclude": {"skus": ["sku-1"]}}}),
            tweak: nothing,
            lines: two(),
            expected: vec![0, 500],
        },
        Case {
            name: "a line both eco and excluded earns nothing: exclusion wins",
            patch: json!({"conditions": {"tags": ["eco"], "exclude": {"categories": ["grocery"]}}}),
            tweak: nothing,
            lines: two(),
            expected: vec![0, 0],
        },
    ]);
}

#[test]
fn a_program_wide_exclusion_stops_the_base_rate_and_every_campaign() {
    let c = version("c1", 1, json!({}));
    let mut w = World::with(vec![]).base_rate(500);
    let exclusions = parse_exclusions(&RawExclusions {
        categories: vec!["book".into()],
        ..RawExclusions::default()
    })
    .unwrap();
    w.usage = vec![CampaignUsage::none(c.id.clone())];
    w.set = CampaignSet::new(vec![c], exclusions).unwrap();
    let e = w.eval(&order(two()));
    assert_eq!(cashback_per_line(&e), vec![1_500, 0]);
    assert_eq!(
        e.breakdown.lines[1].explanation,
        "no cashback: category book excluded"
    );
    assert!(e.breakdown.lines[1].rules.is_empty());
}

// ---------------------------------------------------------------------------------------
// Window

#[test]
fn the_window_is_read_in_the_programs_zone_to_the_second() {
    let window = json!({"window": {"starts_on": "2025-11-28", "ends_on": "2025-11-30"}});
    run(vec![
        Case {
            name: "first second of the first day",
            patch: window.clone(),
            tweak: |w, _| w.at = sp(2025, 11, 28, 0, 0, 0),
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "last second before the first day",
            patch: window.clone(),
            tweak: |w, _| w.at = sp(2025, 11, 27, 23, 59, 59),
            lines: one(10_000),
            expected: vec![0],
        },
        Case {
            name: "23:59:59 on the last day in São Paulo (already 1 December in UTC)",
            patch: window.clone(),
            tweak: |w, _| w.at = sp(2025, 11, 30, 23, 59, 59),
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "midnight after the last day",
            patch: window.clone(),
            tweak: |w, _| w.at = sp(2025, 12, 1, 0, 0, 0),
            lines: one(10_000),
            expected: vec![0],
        },
        Case {
            name: "21:30 on 30 November in UTC is 18:30 local: inside",
            patch: window.clone(),
            tweak: |w, _| w.at = Utc.with_ymd_and_hms(2025, 11, 30, 21, 30, 0).unwrap(),
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "01:00 UTC on 28 November is still 27 November local: outside",
            patch: window.clone(),
            tweak: |w, _| w.at = Utc.with_ymd_and_hms(2025, 11, 28, 1, 0, 0).unwrap(),
            lines: one(10_000),
            expected: vec![0],
        },
        Case {
            name: "the campaign's own zone wins over the program's: 28 Nov 10:00 in Tokyo",
            patch: json!({"window": {"starts_on": "2025-11-28", "ends_on": "2025-11-30",
                                     "time_zone": "Asia/Tokyo"}}),
            // 27 November 22:00 in São Paulo is 28 November 10:00 in Tokyo.
            tweak: |w, _| w.at = sp(2025, 11, 27, 22, 0, 0),
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "Friday only, on a local Friday evening that is Saturday in UTC",
            patch: json!({"window": {"days_of_week": ["fri"]}}),
            tweak: |w, _| w.at = sp(2025, 11, 28, 22, 30, 0),
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "Friday only, on a Saturday",
            patch: json!({"window": {"days_of_week": ["fri"]}}),
            tweak: |w, _| w.at = sp(2025, 11, 29, 10, 0, 0),
            lines: one(10_000),
            expected: vec![0],
        },
        Case {
            name: "hours 08:00–12:00, at 08:00:00",
            patch: json!({"window": {"hours": {"from": "08:00", "until": "12:00"}}}),
            tweak: |w, _| w.at = sp(2025, 6, 15, 8, 0, 0),
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "hours 08:00–12:00, at 11:59:59",
            patch: json!({"window": {"hours": {"from": "08:00", "until": "12:00"}}}),
            tweak: |w, _| w.at = sp(2025, 6, 15, 11, 59, 59),
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "hours 08:00–12:00, at 12:00:00",
            patch: json!({"window": {"hours": {"from": "08:00", "until": "12:00"}}}),
            tweak: |w, _| w.at = sp(2025, 6, 15, 12, 0, 0),
            lines: one(10_000),
            expected: vec![0],
        },
        Case {
            name: "night hours 22:00–02:00 wrap past midnight, at 01:30",
            patch: json!({"window": {"hours": {"from": "22:00", "until": "02:00"}}}),
            tweak: |w, _| w.at = sp(2025, 6, 15, 1, 30, 0),
            lines: one(10_000),
            expected: vec![1_000],
        },
        Case {
            name: "night hours 22:00–02:00, at 03:00",
            patch: json!({"window": {"hours": {"from": "22:00", "until": "02:00"}}}),
            tweak: |w, _| w.at = sp(2025, 6, 15, 3, 0, 0),
            lines: one(10_000),
            expected: vec![0],
        },
    ]);
}

// ---------------------------------------------------------------------------------------
// Rewards

#[test]
fn every_reward_pays_what_it_says() {
    let tiers = json!({"reward": {"kind": "tiered", "tiers": [
        {"from_minor": 0, "rate_bp": 500}, {"from_minor": 20_000, "rate_bp": 1_000}]}});
    run(vec![
        Case {
            name: "percent of the eligible amount",
            patch: json!({"reward": {"kind": "percent", "rate_bp": 1_000}}),
            tweak: nothing,
            lines: one(18_000),
            expected: vec![1_800],
        },
        Case {
            name: "percent is computed after the part paid with cashback",
            patch: json!({"reward": {"kind": "percent", "rate_bp": 1_000}}),
            tweak: |w, _| w.redeemed_minor = 3_000,
            lines: one(18_000),
            expected: vec![1_500],
        },
        Case {
            name: "fixed amount spread over the lines by eligible amount",
            patch: json!({"reward": {"kind": "fixed", "amount_minor": 1_000}}),
            tweak: nothing,
            lines: vec![line("1", "a", 20_000, &[]), line("2", "b", 10_000, &[])],
            expected: vec![667, 333],
        },
        Case {
            name: "fixed amount never above the eligible amount",
            patch: json!({"reward": {"kind": "fixed", "amount_minor": 1_000}}),
            tweak: nothing,
            lines: one(600),
            expected: vec![600],
        },
        Case {
            name: "tier: R$ 199,99 earns 5 %",
            patch: tiers.clone(),
            tweak: nothing,
            lines: one(19_999),
            expected: vec![1_000], // 999,95 rounds half-even to 1 000
        },
        Case {
            name: "tier: exactly R$ 200,00 earns 10 %",
            patch: tiers.clone(),
            tweak: nothing,
            lines: one(20_000),
            expected: vec![2_000],
        },
        Case {
            name: "tier: the order value is summed over lines",
            patch: tiers.clone(),
            tweak: nothing,
            lines: vec![line("1", "a", 15_000, &[]), line("2", "b", 5_000, &[])],
            expected: vec![1_500, 500],
        },
        Case {
            name: "tier: below the first tier earns nothing",
            patch: json!({"reward": {"kind": "tiered", "tiers": [{"from_minor": 10_000, "rate_bp": 500}]}}),
            tweak: nothing,
            lines: one(9_999),
            expected: vec![0],
        },
        Case {
            name: "multiplier: double the 5 % base rate",
            patch: json!({"reward": {"kind": "multiplier", "factor_percent": 200}}),
            tweak: |w, _| w.settings.base_rate_bp = BasisPoints(500),
            lines: one(10_000),
            // stackable: base 500 + double 1 000
            expected: vec![1_500],
        },
        Case {
            name: "multiplier: 1,5× of 3,33 % is 4,995 %, rounded half-even to 5 %",
            patch: json!({"reward": {"kind": "multiplier", "factor_percent": 150}, "stacking": {"mode": "best_of"}}),
            tweak: |w, _| w.settings.base_rate_bp = BasisPoints(333),
            lines: one(10_000),
            expected: vec![500],
        },
        Case {
            name: "favourite category: the extra rate on the customer's favourite",
            patch: json!({"reward": {"kind": "favourite_category", "rate_bp": 300, "lookback_days": 90}}),
            tweak: |w, _| w.favourites = vec![(90, Category::parse("book").unwrap())],
            lines: two(),
            expected: vec![0, 150],
        },
        Case {
            name: "favourite category: none known for this lookback",
            patch: json!({"reward": {"kind": "favourite_category", "rate_bp": 300, "lookback_days": 90}}),
            tweak: |w, _| w.favourites = vec![(30, Category::parse("book").unwrap())],
            lines: two(),
            expected: vec![0, 0],
        },
    ]);
}

// ---------------------------------------------------------------------------------------
// Caps

struct CapCase {
    name: &'static str,
    caps: Value,
    usage: fn(&mut CampaignUsage),
    amount: i64,
    capped_by: Vec<CapKind>,
}

#[test]
fn every_cap_clips_in_order_and_names_itself() {
    // 10 % of R$ 200,00 = R$ 20,00 before caps.
    let cases = vec![
        CapCase {
            name: "no cap",
            caps: json!({}),
            usage: |_| {},
            amount: 2_000,
            capped_by: vec![],
        },
        CapCase {
            name: "per order",
            caps: json!({"per_order_minor": 1_500}),
            usage: |_| {},
            amount: 1_500,
            capped_by: vec![CapKind::PerOrder],
        },
        CapCase {
            name: "per order, not reached",
            caps: json!({"per_order_minor": 2_000}),
            usage: |_| {},
            amount: 2_000,
            capped_by: vec![],
        },
        CapCase {
            name: "customer per day",
            caps: json!({"per_customer_day_minor": 2_500}),
            usage: |u| u.customer_day_minor = 1_000,
            amount: 1_500,
            capped_by: vec![CapKind::CustomerDay],
        },
        CapCase {
            name: "customer per week",
            caps: json!({"per_customer_week_minor": 2_500}),
            usage: |u| u.customer_week_minor = 2_000,
            amount: 500,
            capped_by: vec![CapKind::CustomerWeek],
        },
        CapCase {
            name: "customer per month, already over (never negative)",
            caps: json!({"per_customer_month_minor": 2_500}),
            usage: |u| u.customer_month_minor = 3_000,
            amount: 0,
            capped_by: vec![CapKind::CustomerMonth],
        },
        CapCase {
            name: "customer per campaign",
            caps: json!({"per_customer_campaign_minor": 5_000}),
            usage: |u| u.customer_campaign_minor = 4_999,
            amount: 1,
            capped_by: vec![CapKind::CustomerCampaign],
        },
        CapCase {
            name: "budget",
            caps: json!({"budget_minor": 1_000_000}),
            usage: |u| u.budget_spent_minor = 999_500,
            amount: 500,
            capped_by: vec![CapKind::Budget],
        },
        CapCase {
            name: "budget spent",
            caps: json!({"budget_minor": 1_000_000}),
            usage: |u| u.budget_spent_minor = 1_000_000,
            amount: 0,
            capped_by: vec![CapKind::Budget],
        },
        CapCase {
            name: "order cap first, then the day's remainder, then the budget",
            caps: json!({"per_order_minor": 1_500, "per_customer_day_minor": 3_000, "budget_minor": 10_000}),
            usage: |u| {
                u.customer_day_minor = 2_000;
                u.budget_spent_minor = 9_700;
            },
            amount: 300,
            capped_by: vec![CapKind::PerOrder, CapKind::CustomerDay, CapKind::Budget],
        },
        CapCase {
            name: "a cap of zero pays nothing",
            caps: json!({"per_order_minor": 0}),
            usage: |_| {},
            amount: 0,
            capped_by: vec![CapKind::PerOrder],
        },
    ];
    for c in cases {
        let mut w = World::with(vec![version("c1", 1, json!({"caps": c.caps}))]);
        (c.usage)(&mut w.usage[0]);
        let e = w.eval(&order(one(20_000)));
        assert_eq!(e.breakdown.total_minor, c.amount, "{}", c.name);
        let outcome = e.campaigns.iter().find(|o| o.campaign_id.as_str() == "c1");
        match outcome {
            Some(o) => {
                assert_eq!(o.amount_minor, c.amount, "{}", c.name);
                assert_eq!(o.uncapped_minor, 2_000, "{}", c.name);
                assert_eq!(o.capped_by, c.capped_by, "{}", c.name);
                assert_eq!(e.breakdown.lines[0].rules[1].capped_by, c.capped_by);
            }
            // A campaign capped to zero does not apply, so it is not in the outcome.
            None => assert_eq!(c.amount, 0, "{}", c.name),
        }
    }
}

#[test]
fn a_capped_campaign_without_usage_pays_nothing_rather_than_risk_its_budget() {
    let mut w = World::with(vec![version(
        "c1",
        1,
        json!({"caps": {"budget_minor": 100_000}}),
    )]);
    w.usage.clear();
    assert_eq!(w.eval(&order(one(20_000))).breakdown.total_minor, 0);
    // A campaign with only a per-order cap needs no usage.
    let mut w = World::with(vec![version(
        "c1",
        1,
        json!({"caps": {"per_order_minor": 500}}),
    )]);
    w.usage.clear();
    assert_eq!(w.eval(&order(one(20_000))).breakdown.total_minor, 500);
}

#[test]
fn a_capped_amount_is_split_over_lines_and_still_adds_up() {
    let w = World::with(vec![version(
        "c1",
        1,
        json!({"caps": {"per_order_minor": 1_000}}),
    )]);
    let e = w.eval(&order(vec![
        line("1", "a", 10_000, &[]),
        line("2", "a", 10_000, &[]),
        line("3", "a", 10_000, &[]),
    ]));
    assert_eq!(cashback_per_line(&e), vec![334, 333, 333]);
}

// ---------------------------------------------------------------------------------------
// Stacking

struct StackCase {
    name: &'static str,
    campaigns: Vec<(&'static str, Value)>,
    /// Who pays and how much, in explanation order.
    paid: Vec<(&'static str, i64)>,
}

fn rate(mode: &str, rate_bp: u32, priority: u32) -> Value {
    json!({"reward": {"kind": "percent", "rate_bp": rate_bp},
           "stacking": {"mode": mode, "priority": priority}})
}

#[test]
fn stacking_modes_combine_as_documented() {
    // Base rate 5 % on R$ 100,00 = 500.
    let cases = vec![
        StackCase {
            name: "nothing but the base rate",
            campaigns: vec![],
            paid: vec![("base_rate", 500)],
        },
        StackCase {
            name: "stackable adds to the base rate",
            campaigns: vec![("eco", rate("stackable", 200, 0))],
            paid: vec![("base_rate", 500), ("eco", 200)],
        },
        StackCase {
            name: "stackables all add up, higher priority listed first",
            campaigns: vec![
                ("a", rate("stackable", 100, 1)),
                ("b", rate("stackable", 200, 5)),
            ],
            paid: vec![("base_rate", 500), ("b", 200), ("a", 100)],
        },
        StackCase {
            name: "best_of that pays more replaces the base rate",
            campaigns: vec![("bf", rate("best_of", 1_000, 0))],
            paid: vec![("bf", 1_000)],
        },
        StackCase {
            name: "best_of that pays less loses to the base rate",
            campaigns: vec![("small", rate("best_of", 300, 9))],
            paid: vec![("base_rate", 500)],
        },
        StackCase {
            name: "best_of tying with the base rate wins: the base ranks lowest",
            campaigns: vec![("same", rate("best_of", 500, 0))],
            paid: vec![("same", 500)],
        },
        StackCase {
            name: "the highest-paying best_of wins whatever its priority",
            campaigns: vec![
                ("a", rate("best_of", 800, 9)),
                ("b", rate("best_of", 1_000, 1)),
            ],
            paid: vec![("b", 1_000)],
        },
        StackCase {
            name: "best_of tie goes to the higher priority",
            campaigns: vec![
                ("a", rate("best_of", 1_000, 1)),
                ("b", rate("best_of", 1_000, 2)),
            ],
            paid: vec![("b", 1_000)],
        },
        StackCase {
            name: "best_of tie at the same priority goes to the lower id",
            campaigns: vec![
                ("b", rate("best_of", 1_000, 1)),
                ("a", rate("best_of", 1_000, 1)),
            ],
            paid: vec![("a", 1_000)],
        },
        StackCase {
            name: "best_of and stackable together",
            campaigns: vec![
                ("bf", rate("best_of", 1_000, 0)),
                ("eco", rate("stackable", 200, 0)),
            ],
            paid: vec![("bf", 1_000), ("eco", 200)],
        },
        StackCase {
            name: "exclusive suppresses everything, even campaigns paying more",
            campaigns: vec![
                ("vip", rate("exclusive", 300, 0)),
                ("bf", rate("best_of", 1_000, 0)),
                ("eco", rate("stackable", 200, 0)),
            ],
            paid: vec![("vip", 300)],
        },
        StackCase {
            name: "between exclusives the higher priority wins, not the higher amount",
            campaigns: vec![
                ("a", rate("exclusive", 2_000, 1)),
                ("b", rate("exclusive", 300, 5)),
            ],
            paid: vec![("b", 300)],
        },
        StackCase {
            name: "between exclusives of equal priority the higher amount wins",
            campaigns: vec![
                ("a", rate("exclusive", 300, 5)),
                ("b", rate("exclusive", 2_000, 5)),
            ],
            paid: vec![("b", 2_000)],
        },
        StackCase {
            name: "an exclusive whose budget is spent does not apply and suppresses nothing",
            campaigns: vec![
                (
                    "vip",
                    json!({"reward": {"kind": "percent", "rate_bp": 3_000},
                               "stacking": {"mode": "exclusive"},
                               "caps": {"budget_minor": 0}}),
                ),
                ("eco", rate("stackable", 200, 0)),
            ],
            paid: vec![("base_rate", 500), ("eco", 200)],
        },
        StackCase {
            name: "an exclusive that does not match suppresses nothing",
            campaigns: vec![(
                "vip",
                json!({"reward": {"kind": "percent", "rate_bp": 3_000},
                               "stacking": {"mode": "exclusive"},
                               "conditions": {"segments": ["vip"]}}),
            )],
            paid: vec![("base_rate", 500)],
        },
        StackCase {
            name: "best_of is judged after caps: a capped 20 % loses to an uncapped 8 %",
            campaigns: vec![
                (
                    "big",
                    json!({"reward": {"kind": "percent", "rate_bp": 2_000},
                               "stacking": {"mode": "best_of"},
                               "caps": {"per_order_minor": 700}}),
                ),
                ("mid", rate("best_of", 800, 0)),
            ],
            paid: vec![("mid", 800)],
        },
    ];
    for c in cases {
        let versions = c
            .campaigns
            .iter()
            .map(|(id, patch)| version(id, 1, patch.clone()))
            .collect();
        let w = World::with(versions).base_rate(500);
        let e = w.eval(&order(one(10_000)));
        let got: Vec<(String, i64)> = e
            .campaigns
            .iter()
            .map(|o| (o.campaign_id.to_string(), o.amount_minor))
            .collect();
        let want: Vec<(String, i64)> = c.paid.iter().map(|(i, a)| (i.to_string(), *a)).collect();
        assert_eq!(got, want, "{}", c.name);
        assert_eq!(
            e.breakdown.total_minor,
            want.iter().map(|p| p.1).sum::<i64>(),
            "{}",
            c.name
        );
    }
}

#[test]
fn funding_is_recorded_on_the_outcome_and_on_every_line_rule() {
    let w = World::with(vec![version(
        "brand",
        2,
        json!({"funding": {"payer": "partner", "partner_id": "acme", "partner_share_bp": 6_000}}),
    )]);
    let e = w.eval(&order(one(10_000)));
    let funding = Funding::Partner {
        partner_id: PartnerId::parse("acme").unwrap(),
        partner_share_bp: BasisPoints(6_000),
    };
    let o = e
        .campaigns
        .iter()
        .find(|o| o.campaign_id.as_str() == "brand")
        .unwrap();
    assert_eq!(o.funding, funding);
    assert_eq!(o.version, 2);
    assert_eq!(o.funding.partner_part_minor(o.amount_minor), 600);
    let rule = &e.breakdown.lines[0].rules[1];
    assert_eq!(rule.funding.as_ref(), Some(&funding));
    assert_eq!(rule.version, Some(2));
    assert_eq!(rule.amount_minor, Some(1_000));
}

// ---------------------------------------------------------------------------------------
// Explanations

fn render(e: &Evaluation) -> String {
    let mut s = String::new();
    for o in &e.campaigns {
        s.push_str(&format!(
            "{} v{} pays {}: {}\n",
            o.campaign_id, o.version, o.amount_minor, o.explanation
        ));
    }
    for l in &e.breakdown.lines {
        s.push_str(&format!(
            "line {} cashback {}: {}\n",
            l.line_id, l.cashback_minor, l.explanation
        ));
    }
    s
}

#[test]
fn a_capped_campaign_with_an_excluded_line_explains_itself() {
    let bf = version(
        "black-friday",
        3,
        json!({"name": "Black Friday",
               "stacking": {"mode": "best_of"},
               "conditions": {"exclude": {"categories": ["book"]}},
               "caps": {"per_order_minor": 1_500}}),
    );
    let mut w = World::with(vec![bf]).base_rate(500);
    w.redeemed_minor = 2_000;
    let e = w.eval(&order(vec![
        line("1", "electronics", 15_000, &[]),
        line("2", "toys", 5_000, &[]),
        line("3", "book", 5_000, &[]),
    ]));
    expect_test::expect![[r#"
        black-friday v3 pays 1500: Black Friday 10 % (v3) on R$ 184,00 eligible; category book excluded; capped at R$ 15,00 per order
        line 1 cashback 1125: Black Friday 10 % (v3) on R$ 138,00 (R$ 150,00 less R$ 12,00 paid with cashback), capped at R$ 15,00 per order
        line 2 cashback 375: Black Friday 10 % (v3) on R$ 46,00 (R$ 50,00 less R$ 4,00 paid with cashback), capped at R$ 15,00 per order
        line 3 cashback 0: no cashback; Black Friday 10 % (v3): category book excluded
    "#]]
    .assert_eq(&render(&e));
}

#[test]
fn stacked_rewards_explain_each_part_on_the_line() {
    let tiered = version(
        "big-basket",
        1,
        json!({"name": "Big basket", "stacking": {"mode": "best_of"},
               "reward": {"kind": "tiered", "tiers": [{"from_minor": 0, "rate_bp": 500},
                                                      {"from_minor": 20_000, "rate_bp": 1_000}]}}),
    );
    let eco = version(
        "green",
        4,
        json!({"name": "Green cashback", "conditions": {"tags": ["eco"]},
               "reward": {"kind": "fixed", "amount_minor": 300}}),
    );
    let double = version(
        "double",
        1,
        json!({"name": "Double", "reward": {"kind": "multiplier", "factor_percent": 200},
               "stacking": {"mode": "best_of"}, "conditions": {"channels": ["app"]}}),
    );
    let w = World::with(vec![tiered, eco, double]).base_rate(500);
    let e = w.eval(&order(vec![
        line("1", "grocery", 15_000, &["eco"]),
        line("2", "home", 5_000, &[]),
    ]));
    expect_test::expect![[r#"
        big-basket v1 pays 2000: Big basket 10 % (v1, tier from R$ 200,00) on R$ 200,00 eligible
        green v4 pays 300: Green cashback R$ 3,00 per order (v4) on R$ 150,00 eligible
        line 1 cashback 1800: Big basket 10 % (v1, tier from R$ 200,00) on R$ 150,00; Green cashback R$ 3,00 per order (v4) on R$ 150,00
        line 2 cashback 500: Big basket 10 % (v1, tier from R$ 200,00) on R$ 50,00
    "#]]
    .assert_eq(&render(&e));
}

// ---------------------------------------------------------------------------------------
// Validation

#[test]
fn every_problem_in_a_definition_is_reported_at_once_with_its_path() {
    let raw: RawCampaign = serde_json::from_value(json!({
        "name": " ",
        "window": {"starts_on": "2025-12-01", "ends_on": "2025-11-30",
                   "days_of_week": ["mon", "fry"], "hours": {"from": "10:00", "until": "10:00"},
                   "time_zone": "America/Sao_Polo"},
        "conditions": {"channels": ["web", "fax"], "categories": ["ok", "not ok"],
                       "birthday_month": true, "birthday_within_days": 3,
                       "min_eligible_order_minor": -1},
        "reward": {"kind": "tiered", "tiers": [{"from_minor": 0, "rate_bp": 500},
                                               {"from_minor": 20_000, "rate_bp": 10_001},
                                               {"from_minor": 20_000, "rate_bp": -5}]},
        "caps": {"per_order_minor": -1, "budget_minor": 10_000_000_000_001i64},
        "stacking": {"mode": "sometimes", "priority": -3},
        "funding": {"payer": "partner"},
        "holdout": {"share_bp": 5001, "salt": ""}
    }))
    .unwrap();
    let problems = parse(&raw).unwrap_err();
    let got: Vec<String> = problems
        .iter()
        .map(|p| format!("{} {}", p.path, p.code))
        .collect();
    expect_test::expect![[r#"
        /name empty
        /window/ends_on end_before_start
        /window/days_of_week/1 unknown_value
        /window/hours/until empty_hours
        /window/time_zone unknown_time_zone
        /conditions/channels/1 unknown_value
        /conditions/min_eligible_order_minor negative
        /conditions/birthday_within_days contradictory
        /conditions/categories/1 bad_id
        /reward/tiers/1/rate_bp rate_above_full
        /reward/tiers/2/rate_bp negative
        /reward/tiers/2/from_minor tiers_not_ascending
        /caps/per_order_minor negative
        /caps/budget_minor too_large
        /stacking/mode unknown_value
        /stacking/priority out_of_range
        /funding/partner_id missing
        /holdout/share_bp out_of_range
        /holdout/salt out_of_range"#]]
    .assert_eq(&got.join("\n"));
    assert!(problems.iter().all(|p| !p.message.is_empty()));
}

#[test]
fn a_sound_definition_parses_into_rules() {
    let raw = definition(json!({
        "name": "Black Friday",
        "window": {"starts_on": "2025-11-28", "ends_on": "2025-11-30", "days_of_week": ["fri", "sat"],
                   "hours": {"from": "08:00", "until": "23:00:00"}, "time_zone": "America/Manaus"},
        "conditions": {"channels": ["web"], "tags": ["eco"], "exclude": {"categories": ["book"]}},
        "caps": {"per_order_minor": 1_500, "budget_minor": 1_000_000},
        "stacking": {"mode": "best_of", "priority": 10},
        "funding": {"payer": "partner", "partner_id": "acme"}
    }));
    let rules = parse(&raw).unwrap();
    assert_eq!(rules.name(), "Black Friday");
    assert_eq!(
        rules.stacking(),
        Stacking {
            mode: StackingMode::BestOf,
            priority: 10
        }
    );
    assert_eq!(rules.caps().budget_minor, Some(1_000_000));
    assert!(rules.caps().needs_usage());
    assert_eq!(
        rules.funding(),
        &Funding::Partner {
            partner_id: PartnerId::parse("acme").unwrap(),
            partner_share_bp: BasisPoints::FULL
        }
    );
}

#[test]
fn unknown_fields_are_refused_anywhere_in_a_definition() {
    for (field_path, patch) in [
        ("top level", json!({"colour": "red"})),
        ("window", json!({"window": {"timezone": "UTC"}})),
        (
            "reward",
            json!({"reward": {"kind": "percent", "rate_bp": 1, "rate": 2}}),
        ),
        ("conditions", json!({"conditions": {"channel": ["web"]}})),
        ("caps", json!({"caps": {"per_day_minor": 1}})),
    ] {
        let mut v = serde_json::to_value(definition(json!({}))).unwrap();
        merge(&mut v, patch);
        let err = serde_json::from_value::<RawCampaign>(v).unwrap_err();
        assert!(
            err.to_string().contains("unknown field"),
            "{field_path}: {err}"
        );
    }
}

#[test]
fn funding_by_the_retailer_names_no_partner_and_a_partner_is_named() {
    let raw = definition(json!({"funding": {"payer": "retailer", "partner_id": "acme"}}));
    let p = parse(&raw).unwrap_err();
    assert_eq!(
        (p[0].path.as_str(), p[0].code),
        ("/funding/payer", "contradictory")
    );
    let raw = definition(
        json!({"funding": {"payer": "partner", "partner_id": "acme", "partner_share_bp": 0}}),
    );
    let p = parse(&raw).unwrap_err();
    assert_eq!(
        (p[0].path.as_str(), p[0].code),
        ("/funding/partner_share_bp", "out_of_range")
    );
}

#[test]
fn a_campaign_set_refuses_duplicates_the_reserved_id_version_zero_and_too_many() {
    let a = version("a", 1, json!({}));
    assert_eq!(
        CampaignSet::new(vec![a.clone(), a.clone()], Exclusions::default()),
        Err(CampaignSetError::Duplicate(a.id.clone()))
    );
    assert_eq!(
        CampaignSet::new(
            vec![version(BASE_RATE_ID, 1, json!({}))],
            Exclusions::default()
        ),
        Err(CampaignSetError::Reserved)
    );
    assert_eq!(
        CampaignSet::new(vec![version("a", 0, json!({}))], Exclusions::default()),
        Err(CampaignSetError::VersionZero(a.id.clone()))
    );
    let many: Vec<_> = (0..=crate::limits::MAX_CAMPAIGNS_PER_EVALUATION)
        .map(|i| CampaignVersion {
            id: CampaignId::parse(format!("c{i}")).unwrap(),
            ..a.clone()
        })
        .collect();
    assert!(matches!(
        CampaignSet::new(many, Exclusions::default()),
        Err(CampaignSetError::TooMany { .. })
    ));
}

#[test]
fn a_set_lists_the_favourite_lookbacks_its_campaigns_need() {
    let fav = |days: u32| json!({"reward": {"kind": "favourite_category", "rate_bp": 100, "lookback_days": days}});
    let set = CampaignSet::new(
        vec![
            version("a", 1, fav(90)),
            version("b", 1, fav(30)),
            version("c", 1, fav(90)),
            version("d", 1, json!({})),
        ],
        Exclusions::default(),
    )
    .unwrap();
    assert_eq!(set.favourite_lookbacks(), vec![30, 90]);
}

#[test]
fn a_prepared_order_matches_again_for_another_partner_or_favourite() {
    let w = World::with(vec![
        version(
            "partner",
            1,
            json!({"conditions": {"partners": ["pharma-1"]}}),
        ),
        version(
            "liked",
            1,
            json!({"reward": {"kind": "favourite_category", "rate_bp": 500, "lookback_days": 90}}),
        ),
    ]);
    let o = order(vec![
        line("1", "toys", 10_000, &[]),
        line("2", "home", 20_000, &[]),
    ]);
    let toys = [(90, Category::parse("toys").unwrap())];
    let mut ctx = w.ctx();
    ctx.customer.favourites = &toys;
    let prepared = prepare(&o, &ctx);
    // Placed directly, toys the favourite: the favourite's line earns 5 %.
    assert_eq!(prepared.evaluate(&ctx).breakdown.total_minor, 500);
    let pharma = PartnerId::parse("pharma-1").unwrap();
    let mut through_partner = ctx;
    through_partner.partner = Some(&pharma);
    assert_eq!(
        prepared.evaluate(&through_partner).breakdown.total_minor,
        3_000 + 500,
        "the partner's campaign pays 10 % on both lines"
    );
    let home = [(90, Category::parse("home").unwrap())];
    let mut liking_home = ctx;
    liking_home.customer.favourites = &home;
    let lines = cashback_per_line(&prepared.evaluate(&liking_home));
    assert_eq!(
        lines,
        vec![0, 1_000],
        "the favourite moved to the home line"
    );
}

// ---------------------------------------------------------------------------------------
// Properties

mod properties {
    use super::*;
    use crate::cashback::{compute_cashback, oracle::reference_cashback, EarnContext};
    use proptest::prelude::*;

    const CATEGORIES: [&str; 4] = ["grocery", "book", "toys", "home"];
    const TAGS: [&str; 2] = ["eco", "promo"];

    fn arb_line() -> impl Strategy<Value = (usize, i64, i64, bool)> {
        (0..CATEGORIES.len(), 1i64..5, 1i64..50_000, any::<bool>())
    }

    fn arb_order() -> impl Strategy<Value = Order> {
        (
            proptest::collection::vec(arb_line(), 1..8),
            0..Channel::ALL.len(),
        )
            .prop_map(|(lines, ch)| {
                let mut o = order(
                    lines
                        .iter()
                        .enumerate()
                        .map(|(i, (c, q, p, eco))| OrderLine {
                            quantity: *q,
                            ..line(
                                &i.to_string(),
                                CATEGORIES[*c],
                                *p,
                                if *eco { &TAGS[..1] } else { &[] },
                            )
                        })
                        .collect(),
                );
                o.channel = Channel::ALL[ch];
                o
            })
    }

    fn arb_reward() -> impl Strategy<Value = Value> {
        prop_oneof![
            (0i64..=10_000).prop_map(|r| json!({"kind": "percent", "rate_bp": r})),
            (0i64..50_000).prop_map(|a| json!({"kind": "fixed", "amount_minor": a})),
            (0i64..5_000, 0i64..5_000, 1i64..100_000).prop_map(|(a, b, t)| json!({
                "kind": "tiered", "tiers": [{"from_minor": 0, "rate_bp": a}, {"from_minor": t, "rate_bp": b}]})),
            (1i64..500).prop_map(|f| json!({"kind": "multiplier", "factor_percent": f})),
            (0i64..3_000).prop_map(|r| json!({"kind": "favourite_category", "rate_bp": r, "lookback_days": 90})),
        ]
    }

    fn arb_cap() -> impl Strategy<Value = Option<i64>> {
        prop_oneof![Just(None), (0i64..5_000).prop_map(Some)]
    }

    fn arb_campaign() -> impl Strategy<Value = Value> {
        (
            arb_reward(),
            prop_oneof![Just("exclusive"), Just("best_of"), Just("stackable")],
            0i64..4,
            proptest::option::of(0..CATEGORIES.len()),
            proptest::option::of(0..CATEGORIES.len()),
            any::<bool>(),
            (arb_cap(), arb_cap(), arb_cap(), arb_cap(), arb_cap(), arb_cap()),
        )
            .prop_map(|(reward, mode, priority, only, exclude, eco, caps)| {
                json!({
                    "reward": reward,
                    "stacking": {"mode": mode, "priority": priority},
                    "conditions": {
                        "categories": only.map(|c| vec![CATEGORIES[c]]).unwrap_or_default(),
                        "tags": if eco { vec!["eco"] } else { vec![] },
                        "exclude": {"categories": exclude.map(|c| vec![CATEGORIES[c]]).unwrap_or_default()}
                    },
                    "caps": {
                        "per_order_minor": caps.0, "per_customer_day_minor": caps.1,
                        "per_customer_week_minor": caps.2, "per_customer_month_minor": caps.3,
                        "per_customer_campaign_minor": caps.4, "budget_minor": caps.5
                    }
                })
            })
    }

    const STORES: [&str; 3] = ["sp-01", "sp-02", "rj-01"];
    const SEGMENTS: [&str; 3] = ["vip", "gold", "staff"];

    fn names(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<&'static str>> {
        proptest::sample::subsequence(pool, 0..=pool.len())
    }

    /// Campaigns filed every way the reach index files them: by category, SKU or tag
    /// (several of each), by store, by segment, by channel, or nowhere; fixed rewards with
    /// and without a minimum order value; some with a holdout.
    fn arb_filed_campaign() -> impl Strategy<Value = Value> {
        (
            arb_campaign(),
            (
                names(&CATEGORIES),
                names(&["sku-0", "sku-1", "sku-2", "sku-9"]),
                names(&TAGS),
            ),
            (
                names(&STORES),
                names(&SEGMENTS),
                names(&["web", "app", "store"]),
            ),
            prop_oneof![Just(0i64), 1i64..40_000],
            any::<bool>(),
            prop_oneof![
                4 => Just(json!({})),
                1 => Just(json!({"first_purchase_only": true})),
                1 => Just(json!({"birthday_month": true})),
                1 => Just(json!({"partners": ["p-1"]})),
            ],
        )
            .prop_map(
                |(
                    mut c,
                    (categories, skus, tags),
                    (stores, segments, channels),
                    min,
                    holdout,
                    facts,
                )| {
                    merge(
                        &mut c,
                        json!({"conditions": {
                    "categories": categories, "skus": skus, "tags": tags, "stores": stores,
                    "segments": segments, "channels": channels, "min_eligible_order_minor": min}}),
                    );
                    merge(&mut c, json!({"conditions": facts}));
                    if holdout {
                        merge(&mut c, json!({"holdout": {"share_bp": 1_000}}));
                    }
                    c
                },
            )
    }

    /// An order placed at one of [`STORES`] (or none) by a customer in some of [`SEGMENTS`].
    fn at_store_for_segments(
        o: &mut Order,
        w: &mut World,
        store: Option<usize>,
        segments: &[&str],
    ) {
        o.store_id = store.map(|s| StoreId::parse(STORES[s]).unwrap());
        w.segments = segments
            .iter()
            .map(|s| Segment::parse(*s).unwrap())
            .collect();
    }

    fn arb_usage() -> impl Strategy<Value = [i64; 5]> {
        [
            0i64..6_000,
            0i64..6_000,
            0i64..6_000,
            0i64..6_000,
            0i64..6_000,
        ]
    }

    fn world(
        patches: &[Value],
        usage: &[[i64; 5]],
        base_bp: u32,
        redeemed_share: u32,
        o: &Order,
    ) -> World {
        let versions = patches
            .iter()
            .enumerate()
            .map(|(i, p)| version(&format!("c{i}"), 1, p.clone()))
            .collect();
        let mut w = World::with(versions).base_rate(base_bp);
        for (u, [d, wk, m, c, b]) in w.usage.iter_mut().zip(usage) {
            u.customer_day_minor = *d;
            u.customer_week_minor = *wk;
            u.customer_month_minor = *m;
            u.customer_campaign_minor = *c;
            u.budget_spent_minor = *b;
        }
        w.favourites = vec![(90, Category::parse("toys").unwrap())];
        w.redeemed_minor = BasisPoints(redeemed_share).apply(o.total_minor());
        w
    }

    fn campaigns_and_usage() -> impl Strategy<Value = Vec<(Value, [i64; 5])>> {
        proptest::collection::vec((arb_campaign(), arb_usage()), 0..8)
    }

    proptest! {
        #[test]
        fn caps_and_budgets_are_never_exceeded(
            o in arb_order(),
            cs in campaigns_and_usage(),
            base in 0u32..2_000,
            redeemed in 0u32..=10_000,
        ) {
            let (patches, usage): (Vec<_>, Vec<_>) = cs.into_iter().unzip();
            let w = world(&patches, &usage, base, redeemed, &o);
            let e = w.eval(&o);
            for out in e.campaigns.iter().filter(|c| c.version > 0) {
                let v = w.set.versions().iter().find(|v| v.id == out.campaign_id).unwrap();
                let u = w.usage.iter().find(|u| u.campaign_id == out.campaign_id).unwrap();
                let caps = v.rules.caps();
                let limits = [
                    (caps.per_order_minor, 0),
                    (caps.per_customer_day_minor, u.customer_day_minor),
                    (caps.per_customer_week_minor, u.customer_week_minor),
                    (caps.per_customer_month_minor, u.customer_month_minor),
                    (caps.per_customer_campaign_minor, u.customer_campaign_minor),
                    (caps.budget_minor, u.budget_spent_minor),
                ];
                prop_assert!(out.amount_minor > 0);
                for (cap, used) in limits {
                    if let Some(cap) = cap {
                        prop_assert!(used + out.amount_minor <= cap.max(used),
                            "{} pays {} with cap {cap} and {used} used", out.campaign_id, out.amount_minor);
                    }
                }
                prop_assert!(out.amount_minor <= out.uncapped_minor);
            }
        }

        #[test]
        fn line_cashback_adds_up_to_the_order_and_to_the_campaigns(
            o in arb_order(),
            cs in campaigns_and_usage(),
            base in 0u32..2_000,
            redeemed in 0u32..=10_000,
        ) {
            let (patches, usage): (Vec<_>, Vec<_>) = cs.into_iter().unzip();
            let e = world(&patches, &usage, base, redeemed, &o).eval(&o);
            let lines: i64 = e.breakdown.lines.iter().map(|l| l.cashback_minor).sum();
            let campaigns: i64 = e.campaigns.iter().map(|c| c.amount_minor).sum();
            prop_assert_eq!(lines, e.breakdown.total_minor);
            prop_assert_eq!(campaigns, e.breakdown.total_minor);
            for l in &e.breakdown.lines {
                let parts: i64 = l.rules.iter().filter_map(|r| r.amount_minor).sum();
                let base_part = l.cashback_minor - parts;
                prop_assert!(base_part >= 0 && l.cashback_minor >= 0);
                prop_assert!(!l.explanation.is_empty());
            }
        }

        /// Engines read usage only for the capped campaigns an order reaches: those rows
        /// alone must evaluate as the rows of every campaign, and every capped campaign that
        /// pays must be among them (its budget is the one locked and debited).
        #[test]
        fn usage_of_the_capped_candidates_alone_evaluates_the_same(
            o in arb_order(),
            cs in campaigns_and_usage(),
            base in 0u32..2_000,
            redeemed in 0u32..=10_000,
        ) {
            let (patches, usage): (Vec<_>, Vec<_>) = cs.into_iter().unzip();
            let w = world(&patches, &usage, base, redeemed, &o);
            let full = w.eval(&o);
            let candidates = capped_candidates(&o, &w.ctx());
            let versions = w.set.versions();
            for c in &candidates {
                prop_assert!(versions[c.index].rules.caps().needs_usage());
                prop_assert!(c.uncapped_minor > 0);
            }
            for out in full.campaigns.iter().filter(|c| c.version > 0 && c.amount_minor > 0) {
                let i = versions.iter().position(|v| v.id == out.campaign_id).unwrap();
                if versions[i].rules.caps().needs_usage() {
                    let c = candidates.iter().find(|c| c.index == i);
                    prop_assert!(c.is_some_and(|c| out.amount_minor <= c.uncapped_minor));
                }
            }
            let mut narrow = world(&patches, &usage, base, redeemed, &o);
            narrow.usage = candidates
                .iter()
                .map(|c| w.usage.iter().find(|u| u.campaign_id == versions[c.index].id).unwrap().clone())
                .collect();
            prop_assert_eq!(narrow.eval(&o), full);
        }

        #[test]
        fn amounts_alone_are_the_full_evaluations_amounts(
            o in arb_order(),
            cs in campaigns_and_usage(),
            base in 0u32..2_000,
            redeemed in 0u32..=10_000,
        ) {
            let (patches, usage): (Vec<_>, Vec<_>) = cs.into_iter().unzip();
            let w = world(&patches, &usage, base, redeemed, &o);
            let full = w.eval(&o);
            let amounts = evaluate_amounts(&o, &w.ctx());
            prop_assert_eq!(amounts.total_minor, full.breakdown.total_minor);
            prop_assert_eq!(&amounts.lines, &cashback_per_line(&full));
            prop_assert_eq!(amounts.campaigns.len(), full.campaigns.len());
            for (a, f) in amounts.campaigns.iter().zip(&full.campaigns) {
                let id = a.campaign.map_or(BASE_RATE_ID, |i| w.set.versions()[i].id.as_str());
                prop_assert_eq!(id, f.campaign_id.as_str());
                prop_assert_eq!(a.amount_minor, f.amount_minor);
                prop_assert_eq!(&a.capped_by, &f.capped_by);
            }
        }

        #[test]
        fn evaluation_is_deterministic_whatever_order_campaigns_arrive_in(
            o in arb_order(),
            cs in campaigns_and_usage(),
            base in 0u32..2_000,
            redeemed in 0u32..=10_000,
        ) {
            let (patches, usage): (Vec<_>, Vec<_>) = cs.into_iter().unzip();
            let w = world(&patches, &usage, base, redeemed, &o);
            let first = w.eval(&o);
            prop_assert_eq!(&first, &w.eval(&o));
            let mut reversed = w.set.versions().to_vec();
            reversed.reverse();
            let mut w2 = world(&patches, &usage, base, redeemed, &o);
            w2.set = CampaignSet::new(reversed, Exclusions::default()).unwrap();
            w2.usage.reverse();
            prop_assert_eq!(&first, &w2.eval(&o));
        }

        #[test]
        fn adding_a_campaign_that_matches_nothing_changes_nothing(
            o in arb_order(),
            cs in campaigns_and_usage(),
            extra in arb_campaign(),
            miss in 0usize..4,
            base in 0u32..2_000,
            redeemed in 0u32..=10_000,
        ) {
            let (mut patches, mut usage): (Vec<_>, Vec<_>) = cs.into_iter().unzip();
            let before = world(&patches, &usage, base, redeemed, &o).eval(&o);
            let mut extra = extra;
            // Four ways to match nothing: another window, another channel, a segment the
            // customer lacks, a SKU no line has.
            let never = [
                json!({"window": {"starts_on": "2020-01-01", "ends_on": "2020-12-31"}}),
                json!({"conditions": {"channels": [
                    if o.channel == Channel::Web { "app" } else { "web" }]}}),
                json!({"conditions": {"segments": ["nobody"]}}),
                json!({"conditions": {"skus": ["no-such-sku"]}}),
            ];
            merge(&mut extra, never[miss].clone());
            patches.push(extra);
            usage.push([0; 5]);
            let after = world(&patches, &usage, base, redeemed, &o).eval(&o);
            prop_assert_eq!(before, after);
        }

        /// Engines prepare an order once for its candidate lists and its evaluation: each
        /// call answers as the free function does, and a context the order was not
        /// prepared for (another redeemed amount, another set) is prepared again.
        #[test]
        fn a_prepared_order_answers_as_the_free_functions_do(
            o in arb_order(),
            patches in proptest::collection::vec(arb_filed_campaign(), 0..8),
            usage in proptest::collection::vec(arb_usage(), 8),
            (store, segments, other_segments) in
                (proptest::option::of(0..STORES.len()), names(&SEGMENTS), names(&SEGMENTS)),
            base in 0u32..2_000,
            redeemed in 0u32..=10_000,
            other_redeemed in 0u32..=10_000,
        ) {
            let mut o = o;
            let mut w = world(&patches, &usage, base, redeemed, &o);
            at_store_for_segments(&mut o, &mut w, store, &segments);
            let prepared = prepare(&o, &w.ctx());
            prop_assert_eq!(prepared.evaluate(&w.ctx()), w.eval(&o));
            prop_assert_eq!(prepared.capped_candidates(&w.ctx()), capped_candidates(&o, &w.ctx()));
            prop_assert_eq!(prepared.holdout_candidates(&w.ctx()), holdout_candidates(&o, &w.ctx()));
            // Contexts it was not prepared for, with the same set: another redeemed amount,
            // other segments; and another set.
            let other = world(&patches, &usage, base, other_redeemed, &o);
            let mut ctx = w.ctx();
            ctx.redeemed_minor = other.redeemed_minor;
            prop_assert_eq!(prepared.evaluate(&ctx), evaluate(&o, &ctx));
            let regrouped: Vec<Segment> =
                other_segments.iter().map(|s| Segment::parse(*s).unwrap()).collect();
            let mut ctx = w.ctx();
            ctx.customer.segments = &regrouped;
            prop_assert_eq!(prepared.evaluate(&ctx), evaluate(&o, &ctx));
            let mut fewer = world(&patches[..patches.len() / 2], &usage, base, redeemed, &o);
            fewer.redeemed_minor = w.redeemed_minor;
            fewer.segments = w.segments.clone();
            prop_assert_eq!(prepared.evaluate(&fewer.ctx()), fewer.eval(&o));
            // Usage and holdouts are not part of a preparation: an engine lists the
            // candidates before it reads usage, then evaluates with it.
            let fresh = prepare(&o, &w.ctx());
            let mut unread = w.ctx();
            unread.usage = &[];
            prop_assert_eq!(fresh.capped_candidates(&unread), capped_candidates(&o, &unread));
            prop_assert_eq!(fresh.evaluate(&w.ctx()), w.eval(&o));
            let held: Vec<CampaignId> = w.set.versions().iter().map(|v| v.id.clone()).collect();
            let mut ctx = w.ctx();
            ctx.customer.held_out = &held;
            prop_assert_eq!(fresh.evaluate(&ctx), evaluate(&o, &ctx));
            // The rest of the customer's facts, the partner and the base rate are.
            let mut ctx = w.ctx();
            ctx.customer.first_purchase = !ctx.customer.first_purchase;
            prop_assert_eq!(fresh.evaluate(&ctx), evaluate(&o, &ctx));
            let mut ctx = w.ctx();
            ctx.customer.birthday = Some(ctx.at.with_timezone(&ctx.zone).date_naive());
            prop_assert_eq!(fresh.evaluate(&ctx), evaluate(&o, &ctx));
            let home = [(90, Category::parse("home").unwrap())];
            let mut ctx = w.ctx();
            ctx.customer.favourites = &home;
            prop_assert_eq!(fresh.evaluate(&ctx), evaluate(&o, &ctx));
            let partner = PartnerId::parse("p-1").unwrap();
            let mut ctx = w.ctx();
            ctx.partner = Some(&partner);
            prop_assert_eq!(fresh.evaluate(&ctx), evaluate(&o, &ctx));
            let doubled = ProgramSettings {
                base_rate_bp: BasisPoints(base * 2 + 1),
                ..w.settings.clone()
            };
            let mut ctx = w.ctx();
            ctx.settings = &doubled;
            prop_assert_eq!(fresh.evaluate(&ctx), evaluate(&o, &ctx));
        }

        /// Evaluation visits only the campaigns an order reaches (the set's index): it must
        /// give exactly what visiting every campaign gives, and so must the candidate lists
        /// engines lock budgets and decide holdout arms by.
        #[test]
        fn visiting_only_the_campaigns_an_order_reaches_changes_nothing(
            o in arb_order(),
            patches in proptest::collection::vec(arb_filed_campaign(), 0..10),
            usage in proptest::collection::vec(arb_usage(), 10),
            held_out in proptest::collection::vec(any::<bool>(), 10),
            (store, segments) in (proptest::option::of(0..STORES.len()), names(&SEGMENTS)),
            base in 0u32..2_000,
            redeemed in 0u32..=10_000,
        ) {
            use super::super::eval::visiting_every_campaign as every;
            let mut o = o;
            let mut w = world(&patches, &usage, base, redeemed, &o);
            at_store_for_segments(&mut o, &mut w, store, &segments);
            w.held_out = w
                .set
                .versions()
                .iter()
                .zip(&held_out)
                .filter(|(_, h)| **h)
                .map(|(v, _)| v.id.clone())
                .collect();
            let ctx = w.ctx();
            prop_assert_eq!(w.eval(&o), every::evaluate(&o, &ctx));
            prop_assert_eq!(capped_candidates(&o, &ctx), every::capped_candidates(&o, &ctx));
            let versions = w.set.versions();
            let holdouts: Vec<_> = every::holdout_candidates(&o, &ctx)
                .iter()
                .map(|c| versions[c.index].id.clone())
                .collect();
            prop_assert_eq!(holdout_candidates(&o, &ctx), holdouts);
        }

        #[test]
        fn line_filters_on_symbols_agree_with_filters_on_names(
            o in arb_order(),
            patches in proptest::collection::vec(arb_campaign(), 1..6),
        ) {
            let versions: Vec<_> = patches
                .iter()
                .enumerate()
                .map(|(i, p)| version(&format!("c{i}"), 1, p.clone()))
                .collect();
            let set = CampaignSet::new(versions, Exclusions::default()).unwrap();
            for line in &o.lines {
                let mut tags = Vec::new();
                let (category, sku) = set.symbols.of_line(line, &mut tags);
                let syms = super::super::rules::LineSymbols { category, sku, tags: &tags };
                for (v, compiled) in set.versions().iter().zip(&set.compiled) {
                    let k = &v.rules.conditions;
                    prop_assert_eq!(
                        compiled.earns(syms),
                        k.lines.targets(line) && k.exclude.excludes(line).is_none()
                    );
                }
            }
        }

        #[test]
        fn the_base_rate_alone_gives_exactly_what_it_gave_before_campaigns(
            prices in proptest::collection::vec((1i64..1_000, 1i64..1_000_000, 0i64..100), 1..30),
            rate in 0u32..=10_000,
            redeemed_share in 0u32..=10_000,
        ) {
            let settings = ProgramSettings { base_rate_bp: BasisPoints(rate), ..ProgramSettings::default() };
            let lines: Vec<_> = prices
                .iter()
                .enumerate()
                .map(|(i, (q, p, d))| OrderLine {
                    quantity: *q,
                    discount_minor: (*d).min(*p),
                    ..line(&i.to_string(), "c", *p, &[])
                })
                .collect();
            let o = order(lines);
            let redeemed = BasisPoints(redeemed_share).apply(o.total_minor()).min(o.total_minor());
            let ctx = EarnContext { settings: &settings, redeemed_minor: redeemed };
            prop_assert_eq!(compute_cashback(&o, &ctx), reference_cashback(&o, &ctx));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Holdouts

#[test]
fn a_held_out_campaign_is_evaluated_as_if_it_did_not_exist_and_says_so() {
    let with_holdout = json!({"name": "Double", "reward": {"kind": "percent", "rate_bp": 1000},
                              "stacking": {"mode": "best_of"},
                              "holdout": {"share_bp": 1000}});
    let mut w = World::with(vec![
        version("big", 1, with_holdout),
        version(
            "eco",
            2,
            json!({"name": "Green", "conditions": {"tags": ["eco"]},
                                 "reward": {"kind": "percent", "rate_bp": 200}}),
        ),
    ])
    .base_rate(500);
    let o = order(vec![
        line("1", "food", 10_000, &["eco"]),
        line("2", "toys", 5_000, &[]),
    ]);
    // Treated: the best-of campaign beats the base rate, the stackable adds to it.
    assert_eq!(cashback_per_line(&w.eval(&o)), vec![1_000 + 200, 500]);
    assert_eq!(
        holdout_candidates(&o, &w_ctx(&w)),
        vec![CampaignId::parse("big").unwrap()]
    );
    // Held out of `big`: the base rate wins again, the stackable still adds.
    w.held_out = vec![CampaignId::parse("big").unwrap()];
    let e = w.eval(&o);
    assert_eq!(cashback_per_line(&e), vec![500 + 200, 250]);
    assert_eq!(e.breakdown.total_minor, 950);
    let held = e.campaigns.iter().find(|c| c.held_out).unwrap();
    assert_eq!(
        (
            held.campaign_id.as_str(),
            held.amount_minor,
            held.uncapped_minor
        ),
        ("big", 0, 1_500)
    );
    expect_test::expect![[r#"
        base_rate v0 pays 750: base rate 5 % on R$ 150,00 eligible
        eco v2 pays 200: Green 2 % (v2) on R$ 100,00 eligible
        big v1 pays 0: Double 10 % (v1) on R$ 150,00 eligible; not applied: the customer is in the campaign's holdout, a random share of its customers kept out to measure its effect
        line 1 cashback 700: base rate 5 % on R$ 100,00; Green 2 % (v2) on R$ 100,00; Double 10 % (v1): held out
        line 2 cashback 250: base rate 5 % on R$ 50,00; Double 10 % (v1): held out
    "#]]
    .assert_eq(&render(&e));
    // An order the campaign does not reach is no candidate, and says nothing about it.
    w.held_out.clear();
    let small = json!({"conditions": {"min_eligible_order_minor": 100_000},
                       "holdout": {"share_bp": 1000, "salt": "s1"}});
    let w2 = World::with(vec![version("big", 1, small)]);
    assert!(holdout_candidates(&o, &w_ctx(&w2)).is_empty());
}

fn w_ctx(w: &World) -> EvalContext<'_> {
    EvalContext {
        settings: &w.settings,
        redeemed_minor: w.redeemed_minor,
        at: w.at,
        zone: w.zone,
        customer: CustomerFacts {
            first_purchase: w.first_purchase,
            birthday: w.birthday,
            segments: &w.segments,
            favourites: &w.favourites,
            held_out: &w.held_out,
        },
        partner: w.partner.as_ref(),
        campaigns: &w.set,
        usage: &w.usage,
    }
}

/// A replay of a period evaluates only the campaigns whose dates reach it, and pays the
/// same on every order of the period as the whole set.
#[test]
fn a_set_within_a_period_keeps_the_campaigns_that_reach_it_and_pays_the_same() {
    let window = |from: &str, to: &str| json!({"window": {"starts_on": from, "ends_on": to}});
    let campaigns = vec![
        version("early", 1, window("2025-01-01", "2025-05-31")),
        version("edge", 1, window("2025-06-30", "2025-06-30")),
        version("late", 1, window("2025-07-01", "2025-12-31")),
        version("spans", 1, window("2025-01-01", "2025-12-31")),
        // Tokyo's 1 June runs until noon of São Paulo's 1 June: it reaches the period.
        version(
            "tokyo",
            1,
            json!({"window": {"starts_on": "2025-05-01", "ends_on": "2025-06-01",
                              "time_zone": "Asia/Tokyo"}}),
        ),
    ];
    let mut w = World::with(campaigns);
    let (from, to) = (sp(2025, 6, 1, 0, 0, 0), sp(2025, 7, 1, 0, 0, 0));
    let within = w.set.within(from, to, sao_paulo());
    let ids: Vec<&str> = within.versions().iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["edge", "spans", "tokyo"]);
    assert!(w.set.within(to, from, sao_paulo()).versions().is_empty());

    let o = order(vec![line("1", "toys", 10_000, &[])]);
    let mut instants = vec![from, to - chrono::Duration::microseconds(1)];
    let mut at = from;
    while at < to {
        instants.push(at);
        at += chrono::Duration::hours(7);
    }
    let full = w.set.clone();
    let mut paid_by_edge_or_tokyo = 0;
    for at in instants {
        w.at = at;
        w.set = full.clone();
        let whole = w.eval(&o);
        w.set = within.clone();
        let pruned = w.eval(&o);
        assert_eq!(whole, pruned, "at {at}");
        paid_by_edge_or_tokyo += whole
            .campaigns
            .iter()
            .filter(|c| ["edge", "tokyo"].contains(&c.campaign_id.as_str()) && c.amount_minor > 0)
            .count();
    }
    assert!(paid_by_edge_or_tokyo >= 2, "the edges were reached");
}

#[test]
fn a_campaign_naming_many_skus_finds_each_of_them_and_no_other() {
    // Many names, given out of order, in a set with another campaign's names between them:
    // each is looked up among the compiled symbols, which must come out sorted.
    let skus: Vec<String> = (0..40).rev().map(|i| format!("sku-{}", i * 3)).collect();
    let set = CampaignSet::new(
        vec![
            version("many", 1, json!({"conditions": {"skus": skus}})),
            version(
                "other",
                1,
                json!({"conditions": {"skus": ["sku-1", "sku-50", "sku-118"]}}),
            ),
        ],
        Exclusions::default(),
    )
    .unwrap();
    for n in 0..130 {
        let line = line(&n.to_string(), "grocery", 1_000, &[]);
        let mut tags = Vec::new();
        let (category, sku) = set.symbols.of_line(&line, &mut tags);
        let symbols = super::rules::LineSymbols {
            category,
            sku,
            tags: &tags,
        };
        let named = n % 3 == 0 && n < 120;
        assert_eq!(set.compiled[0].earns(symbols), named, "sku-{n}");
    }
}
