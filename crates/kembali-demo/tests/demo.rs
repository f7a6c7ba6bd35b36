//! The demo chain: deterministic, faithful to its own analytic expectations, loadable end
//! to end into a real SQLite program, and its holdout intervals cover the true effect.

use chrono::{TimeZone, Utc};
use kembali_app::clock::TestClock;
use kembali_app::Engine;
use kembali_core::analytics::experiment::{Arm, SampleStats};
use kembali_demo::coverage::coverage;
use kembali_demo::load::{configure, import_history, load};
use kembali_demo::model::{generate, DemoParams, TrueEffects};
use kembali_store_sqlite::SqliteStore;
use std::sync::Arc;

fn params(seed: u64, customers: usize) -> DemoParams {
    DemoParams {
        seed,
        customers,
        frequency_effect_pct: 15.0,
        ticket_effect_pct: 5.0,
        start: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
    }
}

#[test]
fn the_same_seed_gives_the_same_chain_and_another_seed_another() {
    assert_eq!(generate(&params(7, 300)), generate(&params(7, 300)));
    assert_ne!(generate(&params(7, 300)), generate(&params(8, 300)));
}

#[test]
fn the_generated_holdout_matches_the_analytic_expectations() {
    // 100,000 customers: ~10,000 held out. Their mean orders and net spend must lie within
    // 4 standard errors of what the model's parameters imply.
    let p = params(3, 100_000);
    let customers = generate(&p);
    let truth = TrueEffects::of(&p);
    let stats = |arm: Arm, f: &dyn Fn(&kembali_demo::model::DemoCustomer) -> f64| {
        let v: Vec<f64> = customers.iter().filter(|c| c.arm == arm).map(f).collect();
        SampleStats::from_samples(&v).unwrap()
    };
    let orders = |c: &kembali_demo::model::DemoCustomer| c.orders.len() as f64;
    let spend =
        |c: &kembali_demo::model::DemoCustomer| c.orders.iter().map(|o| o.net_minor() as f64).sum();
    for (arm, f, expected) in [
        (
            Arm::Holdout,
            &orders as &dyn Fn(&_) -> f64,
            truth.holdout_orders,
        ),
        (Arm::Treatment, &orders, truth.treatment_orders),
        (Arm::Holdout, &spend, truth.holdout_spend_minor),
        (Arm::Treatment, &spend, truth.treatment_spend_minor),
    ] {
        let s = stats(arm, f);
        let se = (s.variance() / s.n() as f64).sqrt();
        assert!(
            (s.mean() - expected).abs() < 4.0 * se,
            "{arm:?}: mean {} vs expected {expected} (se {se})",
            s.mean()
        );
    }
    let held = customers.iter().filter(|c| c.arm == Arm::Holdout).count();
    assert!((9_000..11_000).contains(&held), "{held} held out");
}

#[test]
fn intervals_cover_the_true_effect_and_rarely_see_one_that_is_not_there() {
    // A few seeds here; `kembali demo --coverage --seeds 100` runs the full check.
    let with = coverage(&params(0, 20_000), 0..6).unwrap();
    assert_eq!(with.seeds, 6);
    assert!(with.spend_contains_truth >= 5, "{with:?}");
    assert!(with.orders_contains_truth >= 5, "{with:?}");
    let none = DemoParams {
        frequency_effect_pct: 0.0,
        ticket_effect_pct: 0.0,
        ..params(0, 20_000)
    };
    let without = coverage(&none, 0..6).unwrap();
    assert!(without.spend_excludes_zero <= 1, "{without:?}");
    assert!(without.orders_excludes_zero <= 1, "{without:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_chain_loads_end_to_end_through_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("demo.db")).unwrap();
    let p = params(11, 150);
    // The first three months as imported history, the rest live; the program (and its
    // clock) starts with the import.
    let live_from = p.start + chrono::Duration::days(90);
    let until = p.start + chrono::Duration::days(365);
    let clock = Arc::new(TestClock::new(live_from));
    let engine = Engine::new(Arc::new(store), clock.clone());
    configure(&engine).await.unwrap();
    let customers = generate(&p);
    let imported = import_history(&engine, &customers, live_from)
        .await
        .unwrap();
    let s = load(&engine, &clock, &customers, live_from, until)
        .await
        .unwrap();

    let generated: usize = customers.iter().map(|c| c.orders.len()).sum();
    let before: usize = customers
        .iter()
        .flat_map(|c| &c.orders)
        .filter(|o| o.at < live_from)
        .count();
    assert!(imported > 0 && s.orders > 0, "{imported} imported, {s:?}");
    assert_eq!(imported as usize, before);
    assert_eq!((imported + s.orders) as usize, generated);
    // Every customer with an order has its holdout arm recorded, imported or live, as the
    // generator drew it.
    let assigned = engine.experiments().await.unwrap();
    let buyers: Vec<_> = customers.iter().filter(|c| !c.orders.is_empty()).collect();
    let held = buyers.iter().filter(|c| c.arm == Arm::Holdout).count() as u64;
    assert_eq!(
        (assigned[0].treatment_customers + assigned[0].holdout_customers) as usize,
        buyers.len()
    );
    assert_eq!(assigned[0].holdout_customers, held);
    assert!(s.returns > 0 && s.redemptions > 0, "{s:?}");
    let program = engine.program().await.unwrap();
    assert_eq!(program.holdout_share_bp, 1_000);
    let t = engine.totals().await.unwrap();
    assert!(t.balanced, "{t:?}");
    // Returns give back the cashback that paid for them: redeemed net is at most what was.
    assert!(
        t.redeemed_minor > 0 && t.redeemed_minor <= s.redeemed_minor,
        "{t:?}"
    );
    assert!(t.expired_minor > 0 && t.clawed_back_minor > 0, "{t:?}");
    // Every wallet is consistent, and some customer spent on one channel what they
    // earned on another.
    let mut cross_channel = false;
    for c in &customers {
        if c.orders.is_empty() {
            continue;
        }
        let breaches = engine.check_customer(c.id.clone()).await.unwrap();
        assert!(breaches.is_empty(), "{}: {breaches:?}", c.id);
        let page = engine
            .statement(c.id.clone(), None, Some(500))
            .await
            .unwrap();
        // Oldest first: the first cashback earned, and the orders later paid with cashback
        // (their earn entries name the redemption).
        let mut earns: Vec<_> = page.entries.iter().filter(|e| e.kind == "earn").collect();
        earns.sort_by_key(|e| e.seq);
        if let Some(first) = earns.first() {
            cross_channel |= earns
                .iter()
                .any(|e| e.redemption_id.is_some() && e.channel != first.channel);
        }
    }
    assert!(cross_channel);
}
