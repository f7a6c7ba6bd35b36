//! Every metric on small fixtures computed by hand (the computation is in the comments).

use super::*;
use crate::analytics::experiment::Arm;
use crate::ids::Channel::{App, Store, Web};

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn ctx(zone: Tz, as_of: DateTime<Utc>) -> ReportContext {
    ReportContext {
        zone,
        as_of,
        gross_margin: BasisPoints(3_000),
    }
}

struct O {
    customer: &'static str,
    channel: Channel,
    store: Option<&'static str>,
    placed_at: DateTime<Utc>,
    total: i64,
    returned: i64,
    cashback: i64,
    clawed: i64,
}

fn order(customer: &'static str, channel: Channel, placed_at: DateTime<Utc>, total: i64) -> O {
    O {
        customer,
        channel,
        store: None,
        placed_at,
        total,
        returned: 0,
        cashback: 0,
        clawed: 0,
    }
}

fn add_order(f: &mut Facts, o: O) {
    let customer = f.customer(o.customer).unwrap();
    let store = o.store.map(|s| f.store(s).unwrap());
    // Lots are numbered like the orders (from 1), for the orders that earned.
    let lot_id = (o.cashback > 0).then_some(f.orders.len() as i64 + 1);
    f.orders.push(OrderFact {
        customer,
        channel: o.channel,
        store,
        placed_at: o.placed_at,
        total_minor: o.total,
        returned_minor: o.returned,
        cashback_minor: o.cashback,
        clawed_back_minor: o.clawed,
        lot_id,
    });
}

fn add_redemption(
    f: &mut Facts,
    who: &str,
    on: Channel,
    earned_on: Channel,
    when: DateTime<Utc>,
    amount: i64,
) {
    let customer = f.customer(who).unwrap();
    let store = (on == Store).then(|| f.store("sp-01").unwrap());
    f.redemptions.push(RedemptionPart {
        customer,
        channel: on,
        store,
        at: when,
        earned_on: Some(earned_on),
        amount_minor: amount,
    });
}

/// Three customers over 2026 (UTC):
/// - ana (segment vip): web order on Jan 10 (10000, 2000 returned, cashback 500 of which
///   100 clawed back), store sp-01 order on Jan 20 (5000, cashback 250); spent 300 of the
///   web cashback at the store on Jan 20; liability 500 − 100 + 250 − 300 = 350.
/// - bia: app orders on Feb 5 (8000, no cashback) and May 1 (4000, cashback 200); spent 100
///   of it on the app on May 20; liability 100.
/// - caio: web order on Mar 1 (3000, cashback 150), which expired on Sep 10.
fn fixture() -> Facts {
    let mut f = Facts::default();
    add_order(
        &mut f,
        O {
            returned: 2_000,
            cashback: 500,
            clawed: 100,
            ..order("ana", Web, at(2026, 1, 10, 12), 10_000)
        },
    );
    add_order(
        &mut f,
        O {
            store: Some("sp-01"),
            cashback: 250,
            ..order("ana", Store, at(2026, 1, 20, 12), 5_000)
        },
    );
    add_order(&mut f, order("bia", App, at(2026, 2, 5, 12), 8_000));
    add_order(
        &mut f,
        O {
            cashback: 200,
            ..order("bia", App, at(2026, 5, 1, 12), 4_000)
        },
    );
    add_order(
        &mut f,
        O {
            cashback: 150,
            ..order("caio", Web, at(2026, 3, 1, 12), 3_000)
        },
    );
    add_redemption(&mut f, "ana", Store, Web, at(2026, 1, 20, 12), 300);
    add_redemption(&mut f, "bia", App, App, at(2026, 5, 20, 12), 100);
    let caio = f.customer("caio").unwrap();
    f.expiries.push(ExpiryFact {
        customer: caio,
        at: at(2026, 9, 10, 0),
        amount_minor: 150,
    });
    f.customers[0].segments = vec![Segment::parse("vip").unwrap()];
    f.customers[0].liability_minor = 350;
    f.customers[1].liability_minor = 100;
    f
}

fn year_end() -> ReportContext {
    ctx(Tz::UTC, at(2026, 12, 31, 0))
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-12)
}

#[test]
fn activity_revenue_and_repeat_purchases() {
    let s = summary(&fixture(), &Filter::default(), &year_end()).unwrap();
    // Period: first order (Jan 10) to the report's date; end = the report's instant.
    assert_eq!(s.period.from, date(2026, 1, 10));
    assert_eq!(s.period.to, date(2026, 12, 31));
    assert_eq!(s.period.end, at(2026, 12, 31, 0));
    // 3 customers, 5 orders; gross 10000 + 5000 + 8000 + 4000 + 3000 = 30000, returned
    // 2000, net 28000; average ticket 28000 / 5 = 5600; ana and bia have 2 orders: 2/3.
    assert_eq!((s.active_customers, s.orders), (3, 5));
    assert_eq!(
        (s.gross_revenue_minor, s.returned_minor, s.net_revenue_minor),
        (30_000, 2_000, 28_000)
    );
    assert_eq!(s.average_ticket_minor, Some(5_600.0));
    assert!(close(s.repeat_purchase_rate, 2.0 / 3.0));
}

#[test]
fn buy_again_after_an_earning_order() {
    let s = summary(&fixture(), &Filter::default(), &year_end()).unwrap();
    // Anchors: ana Jan 10 (next order 10 days later: yes), bia May 1 (her Feb 5 order
    // earned nothing; nothing after May 1: no), caio Mar 1 (no). All three are eligible
    // for 30, 60 and 90 days (the end is Dec 31): 1 / 3 each.
    for (b, days) in s.buy_again.iter().zip([30, 60, 90]) {
        assert_eq!((b.days, b.eligible_customers, b.bought_again), (days, 3, 1));
        assert!(close(b.rate, 1.0 / 3.0));
    }
    // Period Feb 1 – Mar 31 (end Apr 1 00:00): bia has no earning order in it; caio's
    // Mar 1 anchor is eligible for 30 days (Mar 31 ≤ Apr 1) only, and did not buy again.
    let feb_mar = Filter {
        from: Some(date(2026, 2, 1)),
        to: Some(date(2026, 3, 31)),
        ..Filter::default()
    };
    let s = summary(&fixture(), &feb_mar, &year_end()).unwrap();
    let got: Vec<(u64, u64, Option<f64>)> = s
        .buy_again
        .iter()
        .map(|b| (b.eligible_customers, b.bought_again, b.rate))
        .collect();
    assert_eq!(got, vec![(1, 0, Some(0.0)), (0, 0, None), (0, 0, None)]);
}

#[test]
fn cashback_users_against_non_users() {
    let u = summary(&fixture(), &Filter::default(), &year_end())
        .unwrap()
        .users_vs_non_users;
    // Users (spent cashback): ana and bia: 4 orders, net 8000 + 5000 + 8000 + 4000 = 25000;
    // ticket 25000 / 4 = 6250, per customer 12500. Both first ordered > 183 days before
    // Dec 31 and ordered again within 183 days (10 and 85 days later): retention 2/2.
    assert_eq!(
        (u.users.customers, u.users.orders, u.users.net_revenue_minor),
        (2, 4, 25_000)
    );
    assert_eq!(u.users.average_ticket_minor, Some(6_250.0));
    assert_eq!(u.users.spend_per_customer_minor, Some(12_500.0));
    assert_eq!(
        (u.users.retention_6m_eligible, u.users.retention_6m_retained),
        (2, 2)
    );
    // Non-user caio: 1 order of 3000, not retained: 0/1.
    assert_eq!(
        (u.non_users.customers, u.non_users.net_revenue_minor),
        (1, 3_000)
    );
    assert_eq!(u.non_users.retention_6m, Some(0.0));
    // Ratios: 6250 / 3000, 12500 / 3000, and 1 / 0 has none.
    assert!(close(u.average_ticket_ratio, 6_250.0 / 3_000.0));
    assert!(close(u.spend_per_customer_ratio, 12_500.0 / 3_000.0));
    assert_eq!(u.retention_6m_ratio, None);
}

#[test]
fn omnichannel_engagement_and_cross_channel_redemption() {
    let o = summary(&fixture(), &Filter::default(), &year_end())
        .unwrap()
        .omnichannel;
    // Participants: ana (earned web + store, spent store: 2 channels), bia (app only),
    // caio (web only): 1 / 3. Redeemed 300 + 100 = 400, of which ana's 300 earned on the
    // web and spent at the store is cross-channel: 300 / 400 = 0.75.
    assert_eq!((o.participants, o.multichannel_participants), (3, 1));
    assert!(close(o.multichannel_share, 1.0 / 3.0));
    assert_eq!(
        (o.redeemed_minor, o.cross_channel_redeemed_minor),
        (400, 300)
    );
    assert_eq!(o.cross_channel_share, Some(0.75));
}

#[test]
fn cost_redemption_breakage_and_liability() {
    let c = summary(&fixture(), &Filter::default(), &year_end())
        .unwrap()
        .cost;
    // Earned 500 + 250 + 0 + 200 + 150 = 1100, clawed back 100: cost 1000, 1000 / 28000 of
    // net revenue; redeemed 400 / 1000 = 0.4; expired 150 / 1000 = 0.15; liability
    // 350 + 100 + 0 = 450 at the end.
    assert_eq!(
        (c.cashback_earned_minor, c.clawed_back_minor, c.cost_minor),
        (1_100, 100, 1_000)
    );
    assert!(close(c.cost_share_of_revenue, 1_000.0 / 28_000.0));
    assert_eq!((c.redeemed_minor, c.redemption_rate), (400, Some(0.4)));
    assert_eq!((c.expired_minor, c.breakage_rate), (150, Some(0.15)));
    assert_eq!(
        (c.liability_minor, c.liability_at),
        (450, at(2026, 12, 31, 0))
    );
}

#[test]
fn channel_store_and_segment_filters_select_orders_and_customers() {
    let f = fixture();
    let web = Filter {
        channel: Some(Web),
        ..Filter::default()
    };
    let s = summary(&f, &web, &year_end()).unwrap();
    // Web: ana's Jan 10 and caio's Mar 1: gross 13000, returned 2000; no web redemption.
    assert_eq!(
        (
            s.active_customers,
            s.orders,
            s.gross_revenue_minor,
            s.net_revenue_minor
        ),
        (2, 2, 13_000, 11_000)
    );
    assert_eq!(s.omnichannel.redeemed_minor, 0);
    let store = Filter {
        store: Some(StoreId::parse("sp-01").unwrap()),
        ..Filter::default()
    };
    let s = summary(&f, &store, &year_end()).unwrap();
    // Store sp-01: ana's Jan 20 order (5000) and her 300 spent there (earned on the web).
    assert_eq!(
        (
            s.orders,
            s.net_revenue_minor,
            s.omnichannel.cross_channel_redeemed_minor
        ),
        (1, 5_000, 300)
    );
    let unknown = Filter {
        store: Some(StoreId::parse("nowhere").unwrap()),
        ..Filter::default()
    };
    assert_eq!(summary(&f, &unknown, &year_end()).unwrap().orders, 0);
    let vip = Filter {
        segment: Some(Segment::parse("vip").unwrap()),
        ..Filter::default()
    };
    let s = summary(&f, &vip, &year_end()).unwrap();
    // vip is ana alone: 2 orders, net 13000, liability 350, caio's expiry not counted.
    assert_eq!(
        (s.active_customers, s.orders, s.net_revenue_minor),
        (1, 2, 13_000)
    );
    assert_eq!((s.cost.liability_minor, s.cost.expired_minor), (350, 0));
}

#[test]
fn a_campaign_filter_keeps_the_orders_it_paid_on_and_their_customers() {
    let mut f = fixture();
    let bf = CampaignId::parse("bf").unwrap();
    // Lots (see `add_order`): ana Jan 10 = 1, ana Jan 20 = 2, bia May 1 = 4, caio Mar 1 = 5.
    // bf paid 300 of ana's Jan 10 cashback (500) and all 150 of caio's.
    f.campaign_paid(&bf, 1, 300);
    f.campaign_paid(&bf, 5, 150);
    let filter = Filter {
        campaign: Some(bf.clone()),
        ..Filter::default()
    };
    let s = summary(&f, &filter, &year_end()).unwrap();
    // Orders: ana Jan 10 (10000, 2000 returned) and caio Mar 1 (3000): gross 13000, net
    // 11000, average ticket 5500; nobody has two such orders.
    assert_eq!(
        (
            s.active_customers,
            s.orders,
            s.gross_revenue_minor,
            s.net_revenue_minor
        ),
        (2, 2, 13_000, 11_000)
    );
    assert_eq!(s.average_ticket_minor, Some(5_500.0));
    assert!(close(s.repeat_purchase_rate, 0.0));
    // Cost is those orders' whole cashback: 500 + 150 earned, 100 clawed back, 550.
    let c = &s.cost;
    assert_eq!(
        (c.cashback_earned_minor, c.clawed_back_minor, c.cost_minor),
        (650, 100, 550)
    );
    // Customers ana and caio: ana's 300 spent at the store, caio's 150 expired; liability
    // ana 350 + caio 0; bia's wallet is not counted.
    assert_eq!(
        (c.redeemed_minor, c.expired_minor, c.liability_minor),
        (300, 150, 350)
    );
    // Retention cohorts are the customers' first bf orders: ana January, caio March.
    let r = retention(&f, &filter, &year_end()).unwrap();
    let sizes: Vec<(String, u64)> = r
        .cohorts
        .iter()
        .map(|c| (c.cohort.clone(), c.customers))
        .collect();
    assert_eq!(sizes, vec![("2026-01".into(), 1), ("2026-03".into(), 1)]);
    // A campaign that paid nothing (or was never read) selects nothing.
    let none = Filter {
        campaign: Some(CampaignId::parse("other").unwrap()),
        ..Filter::default()
    };
    let s = summary(&f, &none, &year_end()).unwrap();
    assert_eq!(
        (s.orders, s.active_customers, s.cost.liability_minor),
        (0, 0, 0)
    );
    // A campaign's cost on an order is net of its part of the clawback: ana's order had
    // 100 of 500 clawed back, bf paid 300 of the 500, so 300 − 100 × 300 / 500 = 240.
    assert_eq!(campaign_cost_minor(300, &f.orders[0]), 240);
    assert_eq!(campaign_cost_minor(150, &f.orders[4]), 150);
}

#[test]
fn a_period_with_from_after_to_or_too_long_is_refused() {
    let bad = Filter {
        from: Some(date(2026, 3, 2)),
        to: Some(date(2026, 3, 1)),
        ..Filter::default()
    };
    assert!(matches!(
        summary(&fixture(), &bad, &year_end()),
        Err(FilterError::FromAfterTo { .. })
    ));
    let long = Filter {
        from: Some(date(2000, 1, 1)),
        to: Some(date(2026, 1, 1)),
        ..Filter::default()
    };
    assert_eq!(check_filter(&long), Err(FilterError::PeriodTooLong));
}

#[test]
fn returned_value_is_proportional_and_rounded_half_to_even() {
    // 3 units for 1000: 1 back = 333.33 → 333; 2 back = 666.67 → 667; all 3 = 1000.
    // 2 units for 5: 1 back = 2.5 → 2 (even); 4 units for 10, 1 back = 2.5 → 2, 3 back = 7.5 → 8.
    assert_eq!(
        [
            (1000, 3, 1),
            (1000, 3, 2),
            (1000, 3, 3),
            (5, 2, 1),
            (10, 4, 1),
            (10, 4, 3),
            (10, 4, 0)
        ]
        .map(|(n, q, r)| returned_value_minor(n, q, r)),
        [333, 667, 1000, 2, 2, 8, 0]
    );
}

#[test]
fn an_empty_program_has_no_ratios() {
    let s = summary(&Facts::default(), &Filter::default(), &year_end()).unwrap();
    assert_eq!(
        (s.orders, s.average_ticket_minor, s.repeat_purchase_rate),
        (0, None, None)
    );
    assert_eq!(s.cost.redemption_rate, None);
}

#[test]
fn retention_by_first_purchase_month() {
    let r = retention(&fixture(), &Filter::default(), &year_end()).unwrap();
    // Cohorts: ana January (orders in January only), bia February (February and May,
    // 3 months later), caio March. Months run to December: 12, 11 and 10 columns.
    let rows: Vec<(&str, u64, Vec<u64>)> = r
        .cohorts
        .iter()
        .map(|c| (c.cohort.as_str(), c.customers, c.retained.clone()))
        .collect();
    let mut feb = vec![0; 11];
    feb[0] = 1;
    feb[3] = 1;
    let only_first = |n: usize| {
        let mut v = vec![0; n];
        v[0] = 1;
        v
    };
    assert_eq!(
        rows,
        vec![
            ("2026-01", 1, only_first(12)),
            ("2026-02", 1, feb),
            ("2026-03", 1, only_first(10))
        ]
    );
    assert_eq!(r.cohorts[1].rates[3], 1.0);
    // A period of February alone keeps only bia's cohort.
    let feb_only = Filter {
        from: Some(date(2026, 2, 1)),
        to: Some(date(2026, 2, 28)),
        ..Filter::default()
    };
    let r = retention(&fixture(), &feb_only, &year_end()).unwrap();
    assert_eq!(r.cohorts.len(), 1);
    assert_eq!(
        (r.cohorts[0].cohort.as_str(), r.cohorts[0].retained.clone()),
        ("2026-02", vec![1])
    );
}

#[test]
fn cohort_months_and_periods_are_local_dates() {
    // 02:00 UTC on Feb 1 is 23:00 on Jan 31 in São Paulo (UTC−3).
    let mut f = Facts::default();
    add_order(&mut f, order("ana", Web, at(2026, 2, 1, 2), 1_000));
    let sp: Tz = "America/Sao_Paulo".parse().unwrap();
    let c = ctx(sp, at(2026, 6, 1, 12));
    let r = retention(&f, &Filter::default(), &c).unwrap();
    assert_eq!(r.cohorts[0].cohort, "2026-01");
    let january = Filter {
        from: Some(date(2026, 1, 1)),
        to: Some(date(2026, 1, 31)),
        ..Filter::default()
    };
    assert_eq!(summary(&f, &january, &c).unwrap().orders, 1);
    // January's end is local midnight, 03:00 UTC on Feb 1.
    assert_eq!(
        summary(&f, &january, &c).unwrap().period.end,
        at(2026, 2, 1, 3)
    );
    let february = Filter {
        from: Some(date(2026, 2, 1)),
        to: Some(date(2026, 2, 28)),
        ..january
    };
    assert_eq!(summary(&f, &february, &c).unwrap().orders, 0);
}

#[test]
fn historical_lifetime_value_per_customer_and_cohort() {
    let l = lifetime_value(&fixture(), &Filter::default(), &year_end()).unwrap();
    // Net values: ana 8000 + 5000 = 13000, bia 12000, caio 3000: total 28000, mean
    // 28000 / 3; sorted 3000, 12000, 13000: median = rank ⌈0.5 × 3⌉ = 2 → 12000, p90 =
    // rank ⌈0.9 × 3⌉ = 3 → 13000. Cohorts January 13000, February 12000, March 3000.
    let h = &l.historical;
    assert_eq!(
        (h.customers, h.total_minor, h.median_minor, h.p90_minor),
        (3, 28_000, Some(12_000), Some(13_000))
    );
    assert!(close(h.mean_minor, 28_000.0 / 3.0));
    let cohorts: Vec<(&str, u64, i64)> = l
        .cohorts
        .iter()
        .map(|c| (c.cohort.as_str(), c.customers, c.historical_total_minor))
        .collect();
    assert_eq!(
        cohorts,
        vec![
            ("2026-01", 1, 13_000),
            ("2026-02", 1, 12_000),
            ("2026-03", 1, 3_000)
        ]
    );
}

#[test]
fn prediction_from_too_few_customers_or_repeat_buyers_is_not_measurable() {
    // 25 customers with one order each: enough for BG/NBD, but none bought again.
    let names: Vec<String> = (0..25).map(|i| format!("c{i}")).collect();
    let mut f = Facts::default();
    for (i, name) in names.iter().enumerate() {
        let customer = f.customer(name).unwrap();
        f.orders.push(OrderFact {
            customer,
            channel: Web,
            store: None,
            placed_at: at(2026, 1, 1 + i as u32, 12),
            total_minor: 1_000,
            returned_minor: 0,
            cashback_minor: 0,
            clawed_back_minor: 0,
            lot_id: None,
        });
    }
    let l = lifetime_value(&f, &Filter::default(), &ctx(Tz::UTC, at(2026, 3, 1, 0))).unwrap();
    let Measurable::NotMeasurable { reason } = &l.predicted else {
        panic!("{:?}", l.predicted)
    };
    assert!(
        reason.contains("25 (at least 20), of whom 0 bought again"),
        "{reason}"
    );
    assert_eq!(l.historical.total_minor, 25_000);
}

/// A customer of the experiment fixture: name, arm, orders as (month, total).
type Planned = (&'static str, Arm, &'static [(u32, i64)]);

/// Treatment t1..t4 and holdout h1..h3 assigned on Jan 1 at a 50 % share, and x assigned
/// before the holdout started (share 0). Orders cashback 5 %:
/// - t1: 1000 (Feb); t2: 2000 (Feb) + 3000 (Nov); t3: none; t4: 2000 (Feb);
/// - h1: 1000 (Feb); h2: none; h3: 500 (Feb) + 500 (Nov); x: 9999 (Feb).
fn experiment_fixture() -> (Facts, Vec<Assignment>) {
    let mut f = Facts::default();
    let mut a = Vec::new();
    let jan = at(2026, 1, 1, 0);
    let orders: [Planned; 8] = [
        ("t1", Arm::Treatment, &[(2, 1_000)]),
        ("t2", Arm::Treatment, &[(2, 2_000), (11, 3_000)]),
        ("t3", Arm::Treatment, &[]),
        ("t4", Arm::Treatment, &[(2, 2_000)]),
        ("h1", Arm::Holdout, &[(2, 1_000)]),
        ("h2", Arm::Holdout, &[]),
        ("h3", Arm::Holdout, &[(2, 500), (11, 500)]),
        ("x", Arm::Treatment, &[(2, 9_999)]),
    ];
    for (name, arm, list) in orders {
        let customer = f.customer(name).unwrap();
        let share = BasisPoints(if name == "x" { 0 } else { 5_000 });
        a.push(Assignment {
            customer,
            arm,
            first_seen_at: jan,
            share,
        });
        for &(month, total) in list {
            let cashback = if arm == Arm::Treatment { total / 20 } else { 0 };
            add_order(
                &mut f,
                O {
                    cashback,
                    ..order(name, Web, at(2026, month, 1, 12), total)
                },
            );
        }
    }
    (f, a)
}

#[test]
fn experiment_compares_arms_with_welch_intervals_and_roi() {
    let (f, a) = experiment_fixture();
    let r = experiment_report(
        &f,
        &a,
        BasisPoints(5_000),
        None,
        &Filter::default(),
        &year_end(),
    )
    .unwrap();
    assert_eq!(
        (
            r.treatment_customers,
            r.holdout_customers,
            r.other_share_customers
        ),
        (4, 3, 1)
    );
    // Spend: treatment 1000, 5000, 0, 2000: mean 2000, s² = (1000² + 3000² + 2000² + 0) / 3
    // = 14,000,000 / 3; holdout 1000, 0, 1000: mean 2000/3, s² = 666,666.67 / 2.
    let spend = r.spend_per_customer.measured().unwrap();
    assert_eq!(spend.treatment_mean, 2_000.0);
    assert!((spend.holdout_mean - 2_000.0 / 3.0).abs() < 1e-9);
    let w = welch(
        &SampleStats::new(4, 2_000.0, 14_000_000.0 / 3.0).unwrap(),
        &SampleStats::new(3, 2_000.0 / 3.0, 1_000_000.0 / 3.0).unwrap(),
        0.95,
    )
    .unwrap();
    assert!((spend.difference - 4_000.0 / 3.0).abs() < 1e-9);
    assert!((spend.ci_low - w.ci_low).abs() < 1e-6 && (spend.ci_high - w.ci_high).abs() < 1e-6);
    assert!((spend.p_value - w.p_value).abs() < 1e-9);
    // Orders: 1, 2, 0, 1 (mean 1) vs 1, 0, 2 (mean 1): difference 0.
    let orders = r.orders_per_customer.measured().unwrap();
    assert_eq!(
        (
            orders.treatment_mean,
            orders.holdout_mean,
            orders.difference
        ),
        (1.0, 1.0, 0.0)
    );
    // Conversion (two orders or more): t2 alone, 1/4, vs h3 alone, 1/3.
    let conv = r.conversion.measured().unwrap();
    assert_eq!((conv.treatment_mean, conv.holdout_mean), (0.25, 1.0 / 3.0));
    // Retention: all first seen > 90 days before Dec 31; ordered since Oct 2: t2 and h3.
    let ret = r.retention.measured().unwrap();
    assert_eq!(
        (
            ret.treatment_customers,
            ret.treatment_mean,
            ret.holdout_mean
        ),
        (4, 0.25, 1.0 / 3.0)
    );
    // ROI: cost = 5 % of 8000 = 400; margin = 4000/3 × 4 × 30 % = 1600: (1600 − 400) / 400 = 3.
    let roi = r.roi.measured().unwrap();
    assert_eq!(
        (roi.cashback_cost_minor, roi.incremental_margin_minor),
        (400, 1_600)
    );
    assert!((roi.roi - 3.0).abs() < 1e-9);
    assert!((roi.ci_low - (w.ci_low * 1.2 / 400.0 - 1.0)).abs() < 1e-9);
    // SRM: 7 customers at 50 %: 3.5 expected each, χ² = 2 × 0.5² / 3.5 = 1/7; no mismatch.
    let srm = r.sample_ratio.measured().unwrap();
    assert!((srm.chi_squared - 1.0 / 7.0).abs() < 1e-12);
    assert!(!srm.mismatch);
}

#[test]
fn without_a_holdout_effects_and_roi_are_not_measurable() {
    let (f, a) = experiment_fixture();
    let treated: Vec<Assignment> = a.into_iter().filter(|a| a.arm == Arm::Treatment).collect();
    let r = experiment_report(
        &f,
        &treated,
        BasisPoints(5_000),
        None,
        &Filter::default(),
        &year_end(),
    )
    .unwrap();
    assert_eq!(r.holdout_customers, 0);
    assert!(matches!(r.roi, Measurable::NotMeasurable { .. }));
    assert!(matches!(r.conversion, Measurable::NotMeasurable { .. }));
    let r = experiment_report(
        &f,
        &[],
        BasisPoints(0),
        None,
        &Filter::default(),
        &year_end(),
    )
    .unwrap();
    assert!(matches!(r.sample_ratio, Measurable::NotMeasurable { .. }));
}

#[test]
fn a_campaign_experiment_counts_from_first_seen_and_costs_what_the_campaign_paid() {
    let (mut f, mut a) = experiment_fixture();
    let c = CampaignId::parse("double").unwrap();
    // The campaign paid half of every treated order's cashback (5 % of its total).
    for o in f.orders.clone() {
        if let Some(lot) = o.lot_id {
            f.campaign_paid(&c, lot, o.cashback_minor / 2);
        }
    }
    // t2 was first seen by the campaign on Mar 1: their Feb 1 order (2000) is before.
    let t2 = f.find_customer("t2").unwrap();
    for x in a.iter_mut().filter(|x| x.customer == t2) {
        x.first_seen_at = at(2026, 3, 1, 0);
    }
    let r = experiment_report(
        &f,
        &a,
        BasisPoints(5_000),
        Some(&c),
        &Filter::default(),
        &year_end(),
    )
    .unwrap();
    // Treatment spend 1000, 3000, 0, 2000 (mean 1500); orders 1, 1, 0, 1 (mean 0.75).
    let spend = r.spend_per_customer.measured().unwrap();
    assert_eq!(spend.treatment_mean, 1_500.0);
    let orders = r.orders_per_customer.measured().unwrap();
    assert_eq!(orders.treatment_mean, 0.75);
    // Cost: half of 5 % of 1000 + 3000 + 2000 = 25 + 75 + 50 = 150.
    let roi = r.roi.measured().unwrap();
    assert_eq!(roi.cashback_cost_minor, 150);
}

use crate::analytics::experiment::{welch, SampleStats};
