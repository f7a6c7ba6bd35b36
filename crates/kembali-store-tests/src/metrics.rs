//! Conformance cases of measuring the program: every store gives the same metric facts,
//! the same liability at a past date, and records holdout assignments the same way.

use crate::harness::{cid, order_request, Harness};
use chrono::{NaiveDate, TimeZone, Utc};
use expect_test::expect;
use kembali_app::experiments::HOLDOUT_EXPLANATION;
use kembali_app::model::{PreviewRequest, ProgramRequest};
use kembali_app::store::{job, AssignmentRecord, Store, PROGRAM_EXPERIMENT};
use kembali_core::analytics::experiment::{assign, Arm};
use kembali_core::analytics::metrics::{Facts, Filter};
use kembali_core::ids::Channel;
use kembali_core::money::BasisPoints;

/// The store's metric facts as sorted text, instants as days since day 0.
async fn facts_text<S: Store>(h: &Harness<S>) -> String {
    let facts = h
        .engine
        .store()
        .read(job(|tx| {
            Box::pin(async move {
                let mut f = Facts::default();
                tx.metric_customers(&mut f).await?;
                tx.metric_orders(&mut f).await?;
                tx.metric_redemptions(&mut f).await?;
                tx.metric_expiries(&mut f).await?;
                Ok(f)
            })
        }))
        .await
        .unwrap();
    let who = |c: u32| facts.customers[c as usize].id.to_string();
    let store =
        |s: Option<u32>| s.map_or("-".to_string(), |s| facts.stores[s as usize].to_string());
    let day = |t: chrono::DateTime<Utc>| (t - h.start).num_days();
    let mut lines: Vec<String> = Vec::new();
    for c in &facts.customers {
        lines.push(format!(
            "customer {} segments {:?} liability {}",
            c.id, c.segments, c.liability_minor
        ));
    }
    for o in &facts.orders {
        lines.push(format!(
            "order {} {} {} day {} total {} returned {} cashback {} clawed {}",
            who(o.customer),
            o.channel,
            store(o.store),
            day(o.placed_at),
            o.total_minor,
            o.returned_minor,
            o.cashback_minor,
            o.clawed_back_minor
        ));
    }
    for r in &facts.redemptions {
        lines.push(format!(
            "redeemed {} on {} {} day {} earned on {:?} amount {}",
            who(r.customer),
            r.channel,
            store(r.store),
            day(r.at),
            r.earned_on,
            r.amount_minor
        ));
    }
    for e in &facts.expiries {
        lines.push(format!(
            "expired {} day {} amount {}",
            who(e.customer),
            day(e.at),
            e.amount_minor
        ));
    }
    lines.sort();
    lines.join("\n")
}

/// ana earns on the web, spends 6,00 of it at store sp-01, returns the web order's
/// electronics line, and lets 4,20 expire; bia buys two toys on the app and returns one.
pub async fn metric_facts_and_liability_at_a_past_date<S: Store>(store: S) {
    let h = Harness::new(store).await;
    let o1: &[(&str, &str, i64, i64)] = &[("1", "electronics", 1, 15_000), ("2", "book", 1, 5_000)];
    h.order(Channel::Web, None, "O1", "ana", o1, None)
        .await
        .unwrap();
    h.to_day(1).await;
    h.order(
        Channel::App,
        None,
        "A1",
        "bia",
        &[("1", "toy", 2, 3_000)],
        None,
    )
    .await
    .unwrap();
    h.to_day(2).await;
    h.ret("A1", "RA1", &[("1", 1)]).await.unwrap();
    h.to_day(8).await;
    h.hold("R1", "ana", 600, 6_000, false).await.unwrap();
    h.capture("R1", None).await.unwrap();
    let s1: &[(&str, &str, i64, i64)] = &[("1", "grocery", 1, 6_000)];
    h.order(Channel::Store, Some("sp-01"), "S1", "ana", s1, Some("R1"))
        .await
        .unwrap();
    h.to_day(9).await;
    h.ret("O1", "RET1", &[("1", 1)]).await.unwrap();
    h.to_day(16).await;
    let s2: &[(&str, &str, i64, i64)] = &[("1", "grocery", 1, 10_000)];
    h.order(Channel::Store, Some("sp-01"), "S2", "ana", s2, None)
        .await
        .unwrap();
    h.to_day(203).await;
    h.assert_invariants(&["ana", "bia"]).await;
    // By hand: O1 returned its 150,00 electronics line (7,50 clawed back); A1 one of two
    // toys (30,00, 1,50 clawed back); R1's 6,00 came from O1's web lot and was spent at the
    // store; bia's 1,50 expired on day 8 + 180 = 188, ana's 4,20 on day 23 + 180 = 203.
    expect![[r#"
        customer ana segments [] liability 0
        customer bia segments [] liability 0
        expired ana day 203 amount 420
        expired bia day 188 amount 150
        order ana store sp-01 day 16 total 10000 returned 0 cashback 500 clawed 0
        order ana store sp-01 day 8 total 6000 returned 0 cashback 270 clawed 0
        order ana web - day 0 total 20000 returned 15000 cashback 1000 clawed 750
        order bia app - day 1 total 6000 returned 3000 cashback 300 clawed 150
        redeemed ana on store sp-01 day 8 earned on Some(Web) amount 600"#]]
    .assert_eq(&facts_text(&h).await);

    // The summary up to Jan 15 (day 10, UTC): liability at Jan 16 00:00 is ana's 2,70
    // pending (S1) and bia's 1,50 available: 4,20, though both are 0 today.
    let to_day_10 = Filter {
        to: NaiveDate::from_ymd_opt(2026, 1, 15),
        ..Filter::default()
    };
    let s = h.engine.metrics_summary(to_day_10).await.unwrap().summary;
    assert_eq!(
        s.period.end,
        Utc.with_ymd_and_hms(2026, 1, 16, 0, 0, 0).unwrap()
    );
    assert_eq!(s.cost.liability_minor, 420);
    // Orders O1, A1, S1: gross 32000, returned 18000; cost 1570 − 900 = 670; redeemed 600,
    // all of it cross-channel; nothing expired yet.
    assert_eq!(
        (s.orders, s.gross_revenue_minor, s.returned_minor),
        (3, 32_000, 18_000)
    );
    assert_eq!(
        (
            s.cost.cost_minor,
            s.cost.redeemed_minor,
            s.cost.expired_minor
        ),
        (670, 600, 0)
    );
    assert_eq!(s.omnichannel.cross_channel_share, Some(1.0));
    let all = h
        .engine
        .metrics_summary(Filter::default())
        .await
        .unwrap()
        .summary;
    assert_eq!((all.cost.liability_minor, all.cost.expired_minor), (0, 570));
}

/// The `nth` customer id among `c0`, `c1`, ... that the salt puts in `arm` at `share`.
fn customer_in(arm: Arm, salt: &str, share: BasisPoints, nth: usize) -> String {
    (0..1_000)
        .map(|i| format!("c{i}"))
        .filter(|c| assign(salt, &cid(c), share) == arm)
        .nth(nth)
        .expect("customers in each arm among a thousand")
}

/// A held-out customer earns nothing, says why on every line, and stays held out after the
/// share changes; customers seen before the holdout started stay treated.
pub async fn the_program_holdout_earns_nothing_and_sticks<S: Store>(store: S) {
    let h = Harness::new(store).await;
    let half = BasisPoints(5_000);
    let before = customer_in(Arm::Holdout, "program", half, 0);
    // Seen while there is no holdout: recorded as treated, with share 0.
    let lines: &[(&str, &str, i64, i64)] = &[("1", "book", 1, 10_000), ("2", "pen", 1, 1_000)];
    let r = h
        .order(Channel::Web, None, "B1", &before, lines, None)
        .await
        .unwrap();
    assert_eq!(r.cashback_minor, 550);
    h.set_program(ProgramRequest {
        holdout_share_bp: Some(5_000),
        ..Default::default()
    })
    .await;
    let out = customer_in(Arm::Holdout, "program", half, 1);
    let r = h
        .order(Channel::Web, None, "H1", &out, lines, None)
        .await
        .unwrap();
    assert_eq!(
        (r.cashback_minor, r.lot_id, r.available_at),
        (0, None, None)
    );
    assert!(r
        .lines
        .iter()
        .all(|l| l.cashback_minor == 0 && l.explanation == HOLDOUT_EXPLANATION));
    assert!(r.lines.iter().all(|l| l.rules.is_empty()));
    assert_eq!(h.balances(&out).await, (0, 0, 0, 0));
    // The customer seen before the holdout keeps earning.
    let r = h
        .order(Channel::Web, None, "B2", &before, lines, None)
        .await
        .unwrap();
    assert_eq!(r.cashback_minor, 550);
    // Sticky: with the holdout ended, the held-out customer still earns nothing.
    h.set_program(ProgramRequest {
        holdout_share_bp: Some(0),
        ..Default::default()
    })
    .await;
    let r = h
        .order(Channel::Web, None, "H2", &out, lines, None)
        .await
        .unwrap();
    assert_eq!(r.cashback_minor, 0);
    h.assert_invariants(&[&before, &out]).await;

    let listed = h.engine.experiments().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].id.as_str(),
            listed[0].treatment_customers,
            listed[0].holdout_customers
        ),
        ("program", 1, 1)
    );
    // The port: the first record wins, whatever a later one proposes.
    let proposed = AssignmentRecord {
        experiment_id: PROGRAM_EXPERIMENT.into(),
        customer_id: cid(&out),
        arm: Arm::Treatment,
        share_bp: BasisPoints(0),
        first_seen_at: h.clock_now(),
    };
    let stood = h
        .engine
        .store()
        .write(job(move |tx| {
            Box::pin(async move { Ok(tx.record_assignment(&proposed).await?) })
        }))
        .await
        .unwrap();
    assert_eq!(
        (stood.arm, stood.share_bp, stood.first_seen_at),
        (Arm::Holdout, half, h.start)
    );
    let assigned = h
        .engine
        .store()
        .read(job(|tx| {
            Box::pin(async move { Ok(tx.assignments(PROGRAM_EXPERIMENT).await?) })
        }))
        .await
        .unwrap();
    let mut arms: Vec<(String, &str, u32)> = assigned
        .into_iter()
        .map(|a| (a.customer_id.to_string(), a.arm.as_str(), a.share_bp.0))
        .collect();
    arms.sort();
    let mut want = vec![
        (before.clone(), "treatment", 0),
        (out.clone(), "holdout", 5_000),
    ];
    want.sort();
    assert_eq!(arms, want);
    // One customer's arm, and a preview that meets it (the holdout has ended, but the
    // recorded arm decides); a customer never seen has no arm and is previewed as treated.
    let (o, b) = (cid(&out), cid(&before));
    let recorded = h
        .engine
        .store()
        .read(job(move |tx| {
            Box::pin(async move {
                Ok((
                    tx.assignment(PROGRAM_EXPERIMENT, &o).await?.map(|a| a.arm),
                    tx.assignment(PROGRAM_EXPERIMENT, &b).await?.map(|a| a.arm),
                    tx.assignment("campaign:none", &b).await?,
                ))
            })
        }))
        .await
        .unwrap();
    assert_eq!(recorded, (Some(Arm::Holdout), Some(Arm::Treatment), None));
    let preview = |customer: &str| PreviewRequest {
        order: order_request(Channel::Web, None, "P1", customer, lines, None),
        redeemed_minor: 0,
        customer: Default::default(),
        campaigns: Vec::new(),
        include_active: None,
    };
    let previewed = h.engine.preview(preview(&out)).await.unwrap();
    assert_eq!(previewed.cashback_minor, 0);
    let unseen = customer_in(Arm::Holdout, "program", half, 2);
    let previewed = h.engine.preview(preview(&unseen)).await.unwrap();
    assert_eq!(previewed.cashback_minor, 550);
}

/// A campaign's holdout: a held-out customer earns the base rate but nothing from the
/// campaign (the order says so), is recorded once, at their first order the campaign
/// reaches, and stays held out when the holdout's salt changes; customers the campaign
/// never reaches are not assigned. The experiment is listed and reported, and a campaign
/// filter keeps the orders the campaign paid on.
pub async fn a_campaign_holdout_leaves_the_base_rate_and_sticks<S: Store>(store: S) {
    use kembali_app::model::{CampaignCreateRequest, CampaignUpdateRequest};
    use kembali_core::ids::CampaignId;
    let h = Harness::new(store).await;
    let half = BasisPoints(5_000);
    let definition = |salt: &str| {
        serde_json::from_value(serde_json::json!({
            "name": "Double",
            "window": { "starts_on": "2000-01-01", "ends_on": "2100-12-31" },
            "conditions": { "channels": ["web"] },
            "reward": { "kind": "percent", "rate_bp": 1000 },
            "stacking": { "mode": "stackable" },
            "holdout": { "share_bp": 5000, "salt": salt }
        }))
        .unwrap()
    };
    h.engine
        .create_campaign(
            "test",
            CampaignCreateRequest {
                id: "double".into(),
                definition: definition("s1"),
            },
        )
        .await
        .unwrap();
    let treated = customer_in(Arm::Treatment, "s1", half, 0);
    let out = customer_in(Arm::Holdout, "s1", half, 0);
    let lines: &[(&str, &str, i64, i64)] = &[("1", "book", 1, 10_000), ("2", "pen", 1, 1_000)];
    // An app order: the campaign does not reach it, so nobody is assigned yet.
    let r = h
        .order(Channel::App, None, "A1", &out, lines, None)
        .await
        .unwrap();
    assert_eq!(r.cashback_minor, 550);
    let assigned = || async {
        h.engine
            .store()
            .read(job(|tx| {
                Box::pin(async move { Ok(tx.assignments("campaign:double").await?) })
            }))
            .await
            .unwrap()
    };
    assert!(assigned().await.is_empty());
    h.advance(chrono::Duration::hours(1)).await;
    let first_seen = h.clock_now();
    // Treated: 5 % base + 10 % campaign.
    let r = h
        .order(Channel::Web, None, "T1", &treated, lines, None)
        .await
        .unwrap();
    assert_eq!(r.cashback_minor, 550 + 1_100);
    // Held out: the base rate alone; the campaign is listed as held out, paying nothing.
    let r = h
        .order(Channel::Web, None, "H1", &out, lines, None)
        .await
        .unwrap();
    assert_eq!(r.cashback_minor, 550);
    let held = r
        .campaigns
        .iter()
        .find(|c| c.campaign_id == "double")
        .unwrap();
    assert!(held.held_out);
    assert_eq!((held.amount_minor, held.uncapped_minor), (0, 1_100));
    assert!(held.explanation.contains("holdout"), "{}", held.explanation);
    assert!(r.lines.iter().all(|l| l.explanation.ends_with("held out")));
    assert!(r.lines.iter().all(|l| l.rules.len() == 1));
    // Sticky: with another salt the campaign would treat `out`, but the record decides.
    let other_salt = (0..1_000)
        .map(|i| format!("s{i}"))
        .find(|s| assign(s, &cid(&out), half) == Arm::Treatment)
        .unwrap();
    h.engine
        .update_campaign(
            "test",
            CampaignId::parse("double").unwrap(),
            CampaignUpdateRequest {
                definition: definition(&other_salt),
                expected_version: None,
            },
        )
        .await
        .unwrap();
    h.advance(chrono::Duration::hours(1)).await;
    let r = h
        .order(Channel::Web, None, "H2", &out, lines, None)
        .await
        .unwrap();
    assert_eq!(r.cashback_minor, 550);
    h.assert_invariants(&[&treated, &out]).await;
    // Recorded once each, at the first order the campaign reached.
    let mut arms: Vec<(String, &str, u32, bool)> = assigned()
        .await
        .into_iter()
        .map(|a| {
            (
                a.customer_id.to_string(),
                a.arm.as_str(),
                a.share_bp.0,
                a.first_seen_at == first_seen,
            )
        })
        .collect();
    arms.sort();
    let mut expected = vec![
        (treated.clone(), "treatment", 5_000, true),
        (out.clone(), "holdout", 5_000, true),
    ];
    expected.sort();
    assert_eq!(arms, expected);

    let listed = h.engine.experiments().await.unwrap();
    let e = listed
        .iter()
        .find(|e| e.id == "campaign:double")
        .expect("the campaign experiment is listed");
    assert_eq!(
        (
            e.holdout_share_bp,
            e.treatment_customers,
            e.holdout_customers
        ),
        (5_000, 1, 1)
    );
    // From first seen: `out`'s app order (before) is not counted; the campaign's cost is
    // what it paid the treated customer.
    let report = h
        .engine
        .experiment("campaign:double".into(), Filter::default())
        .await
        .unwrap()
        .report;
    assert_eq!(
        (report.treatment_customers, report.holdout_customers),
        (1, 1)
    );
    let orders = report.orders_per_customer.measured();
    assert!(orders.is_none(), "one customer per arm has no variance");
    let missing = h
        .engine
        .experiment("campaign:nothing".into(), Filter::default())
        .await;
    assert!(matches!(
        missing,
        Err(kembali_app::AppError::NotFound { .. })
    ));
    let only_double = Filter {
        campaign: Some(CampaignId::parse("double").unwrap()),
        ..Filter::default()
    };
    let s = h.engine.metrics_summary(only_double).await.unwrap().summary;
    assert_eq!(
        (s.orders, s.active_customers, s.cost.cashback_earned_minor),
        (1, 1, 1_650)
    );
}
