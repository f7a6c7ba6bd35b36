//! The conformance cases. Each takes a fresh store and must pass on every adapter.

use crate::harness::{campaign_version, cid, day_zero, order_request, Harness};
use chrono::{DateTime, Duration, Utc};
use expect_test::expect;
use kembali_app::error::StoreError;
use kembali_app::model::{Caller, ProgramRequest};
use kembali_app::store::{
    job, CampaignAction, CampaignStatus, HistoricalOrder, HistoryCursor, OrderKey, Store, UsageKey,
    UsagePeriod, UsageRow,
};
use kembali_app::AppError;
use kembali_core::analytics::experiment::Arm;
use kembali_core::campaign::CampaignOutcome;
use kembali_core::ids::{CampaignId, Category, Channel, OrderId};
use kembali_core::program::{ClawbackPolicy, ProgramSettings};

const O1: &[(&str, &str, i64, i64)] = &[("1", "electronics", 1, 15_000), ("2", "book", 1, 5_000)];

/// The issue's scenario: amounts in R$, base rate 5 %, pending 7 days, expiry 180 days.
pub async fn the_life_of_cashback_from_earning_to_breakage<S: Store>(store: S) {
    let h = Harness::new(store).await;
    // Day 0: web order O1, electronics 150,00 + book 50,00 → 10,00 pending (7,50 + 2,50).
    let o1 = h
        .order(Channel::Web, None, "O1", "ana", O1, None)
        .await
        .unwrap();
    assert_eq!(o1.cashback_minor, 1_000);
    assert_eq!(
        o1.lines
            .iter()
            .map(|l| l.cashback_minor)
            .collect::<Vec<_>>(),
        vec![750, 250]
    );
    assert_eq!(h.balances("ana").await, (0, 1_000, 0, 0));

    // Day 7: available.
    h.to_day(7).await;
    assert_eq!(h.balances("ana").await, (1_000, 0, 0, 0));

    // Day 8, store sp-01: hold 6,00, capture, order S1 of 60,00 paid partly with it.
    h.to_day(8).await;
    let held = h.hold("R1", "ana", 600, 6_000, false).await.unwrap();
    assert_eq!(held.amount_minor, 600);
    assert_eq!(h.balances("ana").await, (400, 0, 600, 0));
    h.capture("R1", None).await.unwrap();
    let s1 = h
        .order(
            Channel::Store,
            Some("sp-01"),
            "S1",
            "ana",
            &[("1", "grocery", 1, 6_000)],
            Some("R1"),
        )
        .await
        .unwrap();
    assert_eq!((s1.redeemed_minor, s1.cashback_minor), (600, 270));
    assert_eq!(h.balances("ana").await, (400, 270, 0, 0));

    // Day 9: return O1's electronics line → 7,50 clawed back: 4,00 from what remains, 3,50 debt.
    h.to_day(9).await;
    let r = h.ret("O1", "RET1", &[("1", 1)]).await.unwrap();
    assert_eq!(
        (
            r.clawed_back_minor,
            r.taken_from_lot_minor,
            r.debt_created_minor
        ),
        (750, 400, 350)
    );
    assert_eq!(h.balances("ana").await, (0, 270, 0, 350));

    // Day 15: S1's 2,70 matures and goes to the debt → debt 0,80.
    h.to_day(15).await;
    assert_eq!(h.balances("ana").await, (0, 0, 0, 80));

    // Day 16: store order S2 of 100,00 → 5,00 pending; day 23: 0,80 repays the debt, 4,20 available.
    h.to_day(16).await;
    h.order(
        Channel::Store,
        Some("sp-01"),
        "S2",
        "ana",
        &[("1", "grocery", 1, 10_000)],
        None,
    )
    .await
    .unwrap();
    assert_eq!(h.balances("ana").await, (0, 500, 0, 80));
    h.to_day(23).await;
    assert_eq!(h.balances("ana").await, (420, 0, 0, 0));

    // Day 203: the 4,20 expires as breakage; the totals still balance.
    h.to_day(202).await;
    assert_eq!(h.balances("ana").await, (420, 0, 0, 0));
    h.to_day(203).await;
    assert_eq!(h.balances("ana").await, (0, 0, 0, 0));
    h.assert_invariants(&["ana"]).await;
    let t = h.engine.totals().await.unwrap();
    assert_eq!(
        (
            t.earned_minor,
            t.redeemed_minor,
            t.clawed_back_minor,
            t.expired_minor,
            t.debt_outstanding_minor
        ),
        (1_770, 600, 750, 420, 0)
    );
    expect![[r#"
        day   0 earn         pend +1000 avail    +0 held    +0 debt    +0 | R$ 10,00 cashback on web order O1: line 1: R$ 7,50 (base rate 5 % on R$ 150,00); line 2: R$ 2,50 (base rate 5 % on R$ 50,00)
        day   7 mature       pend -1000 avail +1000 held    +0 debt    +0 | R$ 10,00 cashback earned on web order O1 is now available
        day   8 hold         pend    +0 avail  -600 held  +600 debt    +0 | R$ 6,00 held for redemption R1 on store (sp-01)
        day   8 capture      pend    +0 avail    +0 held  -600 debt    +0 | R$ 6,00 redeemed (redemption R1 captured on store)
        day   8 earn         pend  +270 avail    +0 held    +0 debt    +0 | R$ 2,70 cashback on store order S1: line 1: R$ 2,70 (base rate 5 % on R$ 54,00 (R$ 60,00 less R$ 6,00 paid with cashback))
        day   9 clawback     pend    +0 avail  -400 held    +0 debt    +0 | return RET1 of web order O1: R$ 4,00 of its cashback taken back
        day   9 debt_created pend    +0 avail    +0 held    +0 debt  +350 | return RET1 of web order O1: R$ 3,50 of its cashback was already spent and becomes debt, repaid from the next cashback
        day  15 debt_repaid  pend  -270 avail    +0 held    +0 debt  -270 | R$ 2,70 of the cashback earned on store order S1 repays clawback debt
        day  16 earn         pend  +500 avail    +0 held    +0 debt    +0 | R$ 5,00 cashback on store order S2: line 1: R$ 5,00 (base rate 5 % on R$ 100,00)
        day  23 debt_repaid  pend   -80 avail    +0 held    +0 debt   -80 | R$ 0,80 of the cashback earned on store order S2 repays clawback debt
        day  23 mature       pend  -420 avail  +420 held    +0 debt    +0 | R$ 4,20 cashback earned on store order S2 is now available
        day 203 expire       pend    +0 avail  -420 held    +0 debt    +0 | R$ 4,20 cashback earned on store order S2 expired unused"#]]
    .assert_eq(&h.statement_text("ana").await);
}

/// Returning an order paid with cashback gives the cashback back to the lots it came from.
pub async fn returning_an_order_paid_with_cashback_restores_it_to_its_lots<S: Store>(store: S) {
    let h = Harness::new(store).await;
    h.order(
        Channel::Web,
        None,
        "O1",
        "bia",
        &[("1", "toys", 1, 10_000)],
        None,
    )
    .await
    .unwrap();
    h.order(
        Channel::App,
        None,
        "O2",
        "bia",
        &[("1", "toys", 1, 4_000)],
        None,
    )
    .await
    .unwrap();
    h.to_day(7).await;
    assert_eq!(h.balances("bia").await, (700, 0, 0, 0));
    // 7,00 pays for a 2-line store order of 70,00 (50,00 + 20,00): 5,00 and 2,00 of it per line.
    h.hold("R1", "bia", 700, 7_000, true).await.unwrap();
    let s1 = h
        .order(
            Channel::Store,
            Some("sp-01"),
            "S1",
            "bia",
            &[("a", "shoes", 1, 5_000), ("b", "socks", 2, 1_000)],
            Some("R1"),
        )
        .await
        .unwrap();
    assert_eq!(
        s1.lines
            .iter()
            .map(|l| l.redeemed_minor)
            .collect::<Vec<_>>(),
        vec![500, 200]
    );
    // It earns 5 % of the 63,00 not paid with cashback: 2,25 + 0,90.
    assert_eq!(
        s1.lines
            .iter()
            .map(|l| l.cashback_minor)
            .collect::<Vec<_>>(),
        vec![225, 90]
    );
    assert_eq!(h.balances("bia").await, (0, 315, 0, 0));
    // Returning one sock gives back 1,00 of redeemed cashback and claws back its own 0,45.
    h.to_day(8).await;
    let r = h.ret("S1", "R-socks", &[("b", 1)]).await.unwrap();
    assert_eq!(
        (r.restored_minor, r.clawed_back_minor, r.debt_created_minor),
        (100, 45, 0)
    );
    assert_eq!(h.balances("bia").await, (100, 270, 0, 0));
    // Cancelling the rest gives back the other 6,00; lots are whole again (5,00 + 2,00).
    let c = h.cancel("S1").await.unwrap();
    assert_eq!(c.restored_minor, 600);
    assert_eq!(h.balances("bia").await, (700, 0, 0, 0));
    let w = h.wallet("bia").await;
    let mut amounts: Vec<i64> = w.next_expirations.iter().map(|e| e.amount_minor).collect();
    amounts.sort();
    assert_eq!(amounts, vec![200, 500]);
    h.assert_invariants(&["bia"]).await;
}

/// Partial returns of a line take the cumulative share, so the last one takes the exact rest.
pub async fn partial_returns_claw_back_to_the_cent_without_drift<S: Store>(store: S) {
    let h = Harness::new(store).await;
    // 3 units of 6,67: 20,01 × 5 % = 1,0005 → 1,00 of cashback on 3 units.
    h.order(
        Channel::Web,
        None,
        "O1",
        "caio",
        &[("1", "pens", 3, 667)],
        None,
    )
    .await
    .unwrap();
    let a = h.ret("O1", "r1", &[("1", 1)]).await.unwrap();
    let b = h.ret("O1", "r2", &[("1", 1)]).await.unwrap();
    let c = h.ret("O1", "r3", &[("1", 1)]).await.unwrap();
    assert_eq!(
        (
            a.clawed_back_minor,
            b.clawed_back_minor,
            c.clawed_back_minor
        ),
        (33, 34, 33)
    );
    assert_eq!(h.balances("caio").await, (0, 0, 0, 0));
    // Nothing is left to return.
    let more = h.ret("O1", "r4", &[("1", 1)]).await.unwrap_err();
    assert_eq!(more.code(), "invalid_request");
    let cancel = h.cancel("O1").await.unwrap_err();
    assert_eq!(cancel.code(), "order_fully_returned");
    h.assert_invariants(&["caio"]).await;
}

/// The same request twice gives the first answer; another body under the same id is refused.
pub async fn retries_are_answered_once_and_conflicts_refused<S: Store>(store: S) {
    let h = Harness::new(store).await;
    let first = h
        .order(Channel::Web, None, "O1", "dan", O1, None)
        .await
        .unwrap();
    let again = h
        .order(Channel::Web, None, "O1", "dan", O1, None)
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(h.balances("dan").await, (0, 1_000, 0, 0));
    let other = h
        .order(
            Channel::Web,
            None,
            "O1",
            "dan",
            &[("1", "electronics", 2, 15_000)],
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(other.code(), "order_conflict");
    // The same order id on another channel is another order.
    h.order(Channel::App, None, "O1", "dan", O1, None)
        .await
        .unwrap();
    assert_eq!(h.balances("dan").await, (0, 2_000, 0, 0));
    // A return needs the channel when the id is ambiguous.
    let ambiguous = h.ret("O1", "r1", &[("1", 1)]).await.unwrap_err();
    assert_eq!(ambiguous.code(), "order_id_ambiguous");
    h.to_day(7).await;
    let r1 = h.hold("R1", "dan", 500, 5_000, false).await.unwrap();
    let r1_again = h.hold("R1", "dan", 500, 5_000, false).await.unwrap();
    assert_eq!(r1, r1_again);
    assert_eq!(h.balances("dan").await, (1_500, 0, 500, 0));
    assert_eq!(
        h.hold("R1", "dan", 400, 5_000, false)
            .await
            .unwrap_err()
            .code(),
        "redemption_conflict"
    );
    let c1 = h.capture("R1", Some(300)).await.unwrap();
    let c2 = h.capture("R1", Some(300)).await.unwrap();
    assert_eq!(c1, c2);
    assert_eq!(
        h.capture("R1", Some(200)).await.unwrap_err().code(),
        "redemption_already_captured"
    );
    assert_eq!(h.balances("dan").await, (1_700, 0, 0, 0));
    h.assert_invariants(&["dan"]).await;
}

/// Bad requests are refused with the rule at fault and change nothing.
pub async fn refused_requests_change_nothing<S: Store>(store: S) {
    let h = Harness::new(store).await;
    h.order(Channel::Web, None, "O1", "eva", O1, None)
        .await
        .unwrap();
    h.to_day(7).await;
    let before = h.statement_text("eva").await;
    let over_quote = h.hold("R1", "eva", 1_001, 50_000, false).await.unwrap_err();
    assert_eq!(over_quote.code(), "amount_exceeds_quote");
    h.hold("R2", "eva", 600, 6_000, false).await.unwrap();
    let over_hold = h.capture("R2", Some(601)).await.unwrap_err();
    assert_eq!(over_hold.code(), "capture_exceeds_hold");
    let too_many = h.ret("O1", "r1", &[("1", 2)]).await.unwrap_err();
    assert!(matches!(&too_many, AppError::Invalid(p) if p[0].code == "return_exceeds_purchase"));
    let unknown_line = h.ret("O1", "r1", &[("9", 1)]).await.unwrap_err();
    assert!(matches!(&unknown_line, AppError::Invalid(p) if p[0].field == "lines[0].line_id"));
    assert_eq!(
        h.ret("NOPE", "r1", &[("1", 1)]).await.unwrap_err().code(),
        "order_not_found"
    );
    assert_eq!(
        h.hold("R3", "nobody", 1, 100, false)
            .await
            .unwrap_err()
            .code(),
        "customer_not_found"
    );
    assert_eq!(
        h.engine.wallet(cid("nobody")).await.unwrap_err().code(),
        "customer_not_found"
    );
    let mut usd = crate::harness::order_request(Channel::Web, None, "O2", "eva", O1, None);
    usd.currency = "USD".into();
    let usd = h
        .engine
        .post_order(usd.parse(&Default::default()).unwrap(), None)
        .await
        .unwrap_err();
    assert_eq!(usd.code(), "currency_mismatch");
    let spent_elsewhere = h
        .order(
            Channel::Web,
            None,
            "O3",
            "eva",
            &[("1", "x", 1, 100)],
            Some("R2"),
        )
        .await
        .unwrap_err();
    assert_eq!(spent_elsewhere.code(), "redemption_exceeds_order");
    // Only the R2 hold (and its capture attempt's nothing) moved money.
    let after = h.statement_text("eva").await;
    assert_eq!(after.lines().count(), before.lines().count() + 1);
    assert_eq!(h.balances("eva").await, (400, 0, 600, 0));
    h.assert_invariants(&["eva"]).await;
}

/// The program is created once: starting again (or another replica starting) keeps the
/// settings that stand, and a change keeps the fields it does not name.
pub async fn the_program_is_created_once_and_a_change_keeps_what_it_does_not_name<S: Store>(
    store: S,
) {
    let h = Harness::new(store).await;
    h.set_program(ProgramRequest {
        base_rate_bp: Some(700),
        ..ProgramRequest::default()
    })
    .await;
    h.set_program(ProgramRequest {
        pending_days: Some(3),
        ..ProgramRequest::default()
    })
    .await;
    let restarted = h.engine.init().await.unwrap();
    assert_eq!((restarted.base_rate_bp, restarted.pending_days), (700, 3));
    let created = h
        .engine
        .store()
        .write(job(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .create_program(&ProgramSettings::default(), day_zero())
                    .await?)
            })
        }))
        .await
        .unwrap();
    assert!(!created, "a program exists");
    let program = h.engine.program().await.unwrap();
    assert_eq!((program.base_rate_bp, program.pending_days), (700, 3));
}

/// Holds lapse after their time-to-live; voids and partial captures release the rest.
pub async fn holds_lapse_void_and_release_what_was_not_captured<S: Store>(store: S) {
    let h = Harness::new(store).await;
    h.order(Channel::Web, None, "O1", "fe", O1, None)
        .await
        .unwrap();
    h.to_day(7).await;
    h.hold("H1", "fe", 300, 3_000, false).await.unwrap();
    h.advance(Duration::minutes(14)).await;
    assert_eq!(h.balances("fe").await, (700, 0, 300, 0));
    h.advance(Duration::minutes(1)).await;
    assert_eq!(h.balances("fe").await, (1_000, 0, 0, 0));
    assert_eq!(
        h.capture("H1", None).await.unwrap_err().code(),
        "hold_lapsed"
    );
    h.hold("H2", "fe", 300, 3_000, false).await.unwrap();
    let v = h.void("H2").await.unwrap();
    assert_eq!(v.state.as_str(), "voided");
    assert_eq!(h.void("H2").await.unwrap(), v);
    assert_eq!(
        h.capture("H2", None).await.unwrap_err().code(),
        "redemption_voided"
    );
    h.hold("H3", "fe", 800, 8_000, false).await.unwrap();
    let c = h.capture("H3", Some(500)).await.unwrap();
    assert_eq!(c.captured_minor, 500);
    assert_eq!(h.balances("fe").await, (500, 0, 0, 0));
    h.assert_invariants(&["fe"]).await;
}

/// Under `forfeit`, the program absorbs clawback of spent cashback: no debt.
pub async fn forfeit_policy_absorbs_spent_clawback<S: Store>(store: S) {
    let h = Harness::new(store).await;
    h.set_program(ProgramRequest {
        clawback_policy: Some(ClawbackPolicy::Forfeit),
        ..Default::default()
    })
    .await;
    h.order(Channel::Web, None, "O1", "gil", O1, None)
        .await
        .unwrap();
    h.to_day(7).await;
    h.hold("R1", "gil", 1_000, 10_000, true).await.unwrap();
    let r = h.cancel("O1").await.unwrap();
    assert_eq!(
        (
            r.taken_from_lot_minor,
            r.debt_created_minor,
            r.forfeited_minor
        ),
        (0, 0, 1_000)
    );
    assert_eq!(h.balances("gil").await, (0, 0, 0, 0));
    h.assert_invariants(&["gil"]).await;
}

/// Customers are warned before expiry; restored cashback whose lot expired gets a grace period.
pub async fn expiry_warns_ahead_and_restored_cashback_gets_grace<S: Store>(store: S) {
    let h = Harness::new(store).await;
    h.order(Channel::Web, None, "O1", "hugo", O1, None)
        .await
        .unwrap();
    h.to_day(7).await;
    h.hold("R1", "hugo", 1_000, 10_000, true).await.unwrap();
    h.order(
        Channel::Web,
        None,
        "O2",
        "hugo",
        &[("1", "tv", 1, 10_000)],
        Some("R1"),
    )
    .await
    .unwrap();
    // O2's 4,50 is available from day 14 and expires on day 194: warned on day 180.
    h.to_day(190).await;
    let events = h.engine.events(None, Some(100)).await.unwrap();
    let kinds: Vec<&str> = events.events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"cashback.expiring_soon"), "{kinds:?}");
    let (available, ..) = h.balances("hugo").await;
    assert_eq!(available, 450);
    // Day 190: cancel O2; the 10,00 that paid for it goes back to O1's lot, which expired on
    // day 187, with 30 days of grace.
    let r = h.cancel("O2").await.unwrap();
    assert_eq!(r.restored_minor, 1_000);
    let w = h.wallet("hugo").await;
    assert_eq!(w.available_minor, 1_000);
    let restored = w
        .next_expirations
        .iter()
        .find(|e| e.amount_minor == 1_000)
        .unwrap();
    assert_eq!((restored.expires_at - h.clock_now()).num_days(), 30);
    h.to_day(220).await;
    assert_eq!(h.balances("hugo").await.0, 0);
    h.assert_invariants(&["hugo"]).await;
}

/// A clock jumped over a year gives the same ledger as one that ticks day by day.
pub async fn jumping_the_clock_settles_in_the_order_work_fell_due<S: Store>(store: S) {
    let h = Harness::new(store).await;
    h.order(Channel::Web, None, "O1", "ines", O1, None)
        .await
        .unwrap();
    h.to_day(7).await;
    h.hold("R1", "ines", 1_000, 10_000, true).await.unwrap();
    h.ret("O1", "r1", &[("1", 1), ("2", 1)]).await.unwrap();
    assert_eq!(h.balances("ines").await, (0, 0, 0, 1_000));
    h.order(
        Channel::Web,
        None,
        "O2",
        "ines",
        &[("1", "tv", 1, 30_000)],
        None,
    )
    .await
    .unwrap();
    h.to_day(400).await;
    // O2's 15,00 matured on day 14 (10,00 repaid the debt) and 5,00 expired on day 194.
    assert_eq!(h.balances("ines").await, (0, 0, 0, 0));
    let t = h.engine.totals().await.unwrap();
    assert_eq!((t.clawed_back_minor, t.expired_minor), (1_000, 500));
    h.assert_invariants(&["ines"]).await;
}

/// Concurrent redemptions on one wallet never spend more than it holds, and concurrent
/// retries of one order credit it once.
pub async fn concurrent_spends_and_retries_never_double_count<S: Store>(store: S) {
    let h = std::sync::Arc::new(Harness::new(store).await);
    h.order(
        Channel::Web,
        None,
        "O1",
        "jo",
        &[("1", "tv", 1, 20_000)],
        None,
    )
    .await
    .unwrap();
    h.to_day(7).await;
    let spends = (0..32).map(|i| {
        let h = h.clone();
        tokio::spawn(async move { h.hold(&format!("R{i}"), "jo", 100, 1_000, true).await })
    });
    let results = futures::future::join_all(spends).await;
    let ok = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    assert_eq!(ok, 10, "exactly 10 × 1,00 fit in 10,00");
    assert_eq!(h.balances("jo").await, (0, 0, 0, 0));
    let retries = (0..16).map(|_| {
        let h = h.clone();
        tokio::spawn(async move {
            h.order(
                Channel::Web,
                None,
                "O2",
                "jo",
                &[("1", "tv", 1, 20_000)],
                None,
            )
            .await
        })
    });
    let receipts: Vec<_> = futures::future::join_all(retries)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert!(receipts.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(h.balances("jo").await, (0, 1_000, 0, 0));
    h.assert_invariants(&["jo"]).await;
}

/// Campaigns with every kind of cap and fact a live order consults: tiers, a first-purchase
/// bonus with a budget, a tag campaign capped per order, a favourite-category campaign
/// capped per month, a daily cap per customer.
fn live_campaigns() -> Vec<kembali_app::model::CampaignCreateRequest> {
    let defs = [
        (
            "tiers",
            serde_json::json!({
                "name": "Tiers",
                "window": { "starts_on": "2026-01-01", "ends_on": "2026-12-31" },
                "reward": { "kind": "tiered", "tiers": [
                    { "from_minor": 0, "rate_bp": 600 },
                    { "from_minor": 20_000, "rate_bp": 1000 }
                ] },
                "caps": { "per_customer_day_minor": 2_500 },
                "stacking": { "mode": "best_of", "priority": 5 }
            }),
        ),
        (
            "welcome",
            serde_json::json!({
                "name": "Welcome",
                "window": { "starts_on": "2026-01-01", "ends_on": "2026-12-31" },
                "conditions": { "first_purchase_only": true },
                "reward": { "kind": "fixed", "amount_minor": 1_000 },
                "caps": { "budget_minor": 3_500 },
                "stacking": { "mode": "stackable" },
                "funding": { "payer": "partner", "partner_id": "brand-x", "partner_share_bp": 5000 }
            }),
        ),
        (
            "green",
            serde_json::json!({
                "name": "Green",
                "window": { "starts_on": "2026-01-01", "ends_on": "2026-12-31" },
                "conditions": { "categories": ["garden"] },
                "reward": { "kind": "percent", "rate_bp": 300 },
                "caps": { "per_order_minor": 200 },
                "stacking": { "mode": "stackable" },
                "holdout": { "share_bp": 5000 }
            }),
        ),
        (
            "favourite",
            serde_json::json!({
                "name": "Favourite",
                "window": { "starts_on": "2026-01-01", "ends_on": "2026-12-31" },
                "reward": { "kind": "favourite_category", "rate_bp": 200, "lookback_days": 30 },
                "caps": { "per_customer_month_minor": 400 },
                "stacking": { "mode": "stackable" }
            }),
        ),
    ];
    defs.into_iter()
        .map(|(id, d)| kembali_app::model::CampaignCreateRequest {
            id: id.into(),
            definition: serde_json::from_value(d).expect("a campaign definition"),
        })
        .collect()
}

/// A backtest of the campaigns that were live, over the history they paid, pays exactly
/// what they paid, order by order; another set costs something else; neither changes
/// anything.
pub async fn a_backtest_of_the_live_campaigns_pays_what_they_paid<S: Store>(store: S) {
    use kembali_app::backtest::BacktestRequest;
    let h = Harness::new(store).await;
    // A third of the customers are held out of the program: live and replay agree on who.
    h.set_program(ProgramRequest {
        time_zone: Some("America/Sao_Paulo".into()),
        holdout_share_bp: Some(3_000),
        ..ProgramRequest::default()
    })
    .await;
    for c in live_campaigns() {
        h.engine.create_campaign("test", c).await.unwrap();
    }
    let categories = ["garden", "books", "shoes"];
    let mut seed: u64 = 7;
    let mut next = |m: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % m
    };
    let mut paid = 0;
    let mut held_out_orders = 0;
    for i in 0..90 {
        if i % 7 == 6 {
            h.advance(Duration::hours(9)).await;
        }
        let customer = format!("c{}", next(9));
        let lines: Vec<(String, &str, i64, i64)> = (0..=next(3))
            .map(|l| {
                let category = categories[next(3) as usize];
                (
                    format!("{l}"),
                    category,
                    1 + next(2) as i64,
                    1_000 + 500 * next(40) as i64,
                )
            })
            .collect();
        let lines: Vec<(&str, &str, i64, i64)> = lines
            .iter()
            .map(|(a, b, c, d)| (a.as_str(), *b, *c, *d))
            .collect();
        let r = h
            .order(
                Channel::Web,
                None,
                &format!("o{i}"),
                &customer,
                &lines,
                None,
            )
            .await
            .unwrap();
        paid += r.cashback_minor;
        held_out_orders += usize::from(r.cashback_minor == 0);
    }
    assert!(held_out_orders > 0, "some customers are held out");
    let totals_before = h.engine.totals().await.unwrap();
    let period = BacktestRequest {
        from: h.start - Duration::days(1),
        to: h.clock_now() + Duration::days(1),
        campaigns: live_campaigns(),
        include_active: false,
    };
    // The campaign holdout held some of green's customers out, live; the replay agrees.
    let green = h
        .engine
        .store()
        .read(job(|tx| {
            Box::pin(async move { Ok(tx.assignments("campaign:green").await?) })
        }))
        .await
        .unwrap();
    assert!(green.iter().any(|a| a.arm == Arm::Holdout));
    assert!(green.iter().any(|a| a.arm == Arm::Treatment));
    let same = h.engine.backtest(period.clone()).await.unwrap();
    assert_eq!(same.orders, 90);
    assert_eq!(same.cost.actual_minor, paid);
    assert_eq!(same.cost.simulated_minor, paid, "{same:#?}");
    assert_eq!((same.orders_affected, same.difference_minor), (0, 0));
    let welcome = same
        .by_campaign
        .iter()
        .find(|c| c.campaign_id == "welcome")
        .expect("the welcome campaign paid");
    assert_eq!(welcome.cost_minor, 3_500, "the budget binds");
    assert!(welcome.caps_bound.budget > 0);
    assert!(same
        .by_campaign
        .iter()
        .any(|c| c.campaign_id == "tiers" && c.caps_bound.customer_day > 0));
    assert_eq!(
        same.by_channel
            .iter()
            .map(|c| c.cost.simulated_minor)
            .sum::<i64>(),
        paid
    );
    assert_eq!(
        same.by_category
            .iter()
            .map(|c| c.cost.actual_minor)
            .sum::<i64>(),
        paid
    );

    // Another set: a flat 20 % instead.
    let flat = BacktestRequest {
        campaigns: vec![kembali_app::model::CampaignCreateRequest {
            id: "flat".into(),
            definition: serde_json::from_value(serde_json::json!({
                "name": "Flat 20",
                "window": { "starts_on": "2026-01-01", "ends_on": "2026-12-31" },
                "reward": { "kind": "percent", "rate_bp": 2000 },
                "stacking": { "mode": "exclusive" }
            }))
            .unwrap(),
        }],
        ..period
    };
    let other = h.engine.backtest(flat).await.unwrap();
    assert_eq!(other.cost.actual_minor, paid);
    assert!(other.cost.simulated_minor > paid);
    assert_eq!(other.orders_affected, 90 - held_out_orders as u64);
    assert!(other.peak_unexpired.simulated_minor > other.peak_unexpired.actual_minor);
    assert_eq!(h.engine.totals().await.unwrap(), totals_before);
}

fn camp(s: &str) -> CampaignId {
    CampaignId::parse(s).unwrap()
}

/// Campaign storage on the Tx port: versions and the current row, budgets locked and debited
/// (never past the budget), cap usage, and what campaigns read of a customer's history and
/// backtests page through. Orders posted while a budgeted campaign runs debit its budget.
pub async fn campaigns_keep_versions_budgets_usage_and_history<S: Store>(store: S) {
    let h = Harness::new(store).await;
    let store = h.engine.store().clone();
    let t0 = h.clock_now() - Duration::days(3);
    let t1 = t0 + Duration::days(1);
    let mut revisions = vec![store
        .read(job(|tx| {
            Box::pin(async move { Ok(tx.campaigns_revision().await?) })
        }))
        .await
        .unwrap()];

    // Version 1 of two campaigns: "promo" with a budget of 10,00, "alpha" paused, unbudgeted.
    let promo_v1 = campaign_version(
        "promo",
        1,
        CampaignAction::Create,
        CampaignStatus::Active,
        Some(1_000),
        t0,
    );
    let alpha_v1 = campaign_version(
        "alpha",
        1,
        CampaignAction::Create,
        CampaignStatus::Paused,
        None,
        t0,
    );
    let (p, a) = (promo_v1.clone(), alpha_v1.clone());
    store
        .write(job(move |tx| {
            Box::pin(async move {
                tx.put_campaign_version(&p).await?;
                tx.put_campaign_version(&a).await?;
                Ok(())
            })
        }))
        .await
        .unwrap();
    let (promo, campaigns, revision) = store
        .read(job(|tx| {
            Box::pin(async move {
                Ok((
                    tx.campaign(&camp("promo"), false).await?,
                    tx.campaigns().await?,
                    tx.campaigns_revision().await?,
                ))
            })
        }))
        .await
        .unwrap();
    let promo = promo.expect("promo stored");
    assert_eq!(
        (&promo.current, promo.created_at, promo.budget_spent_minor),
        (&promo_v1, t0, 0)
    );
    assert_eq!(
        campaigns
            .iter()
            .map(|c| c.current.campaign_id.as_str())
            .collect::<Vec<_>>(),
        vec!["alpha", "promo"]
    );
    assert_eq!(campaigns[0].current, alpha_v1);
    assert!(
        !revisions.contains(&revision),
        "new versions move the revision"
    );
    revisions.push(revision);

    // Budgets: locked in id order (unknown ids left out), debited up to the budget and no
    // further; a campaign without a budget cannot be debited. Refusals are errors the job
    // sees, and what it did before them stays.
    let (locked, over, unbudgeted, missing) = store
        .write(job(|tx| {
            Box::pin(async move {
                let locked = tx
                    .lock_budgets(&[camp("alpha"), camp("nope"), camp("promo")])
                    .await?;
                tx.spend_budget(&camp("promo"), 600).await?;
                let over = tx.spend_budget(&camp("promo"), 401).await;
                let unbudgeted = tx.spend_budget(&camp("alpha"), 1).await;
                let missing = tx.spend_budget(&camp("nope"), 1).await;
                tx.spend_budget(&camp("promo"), 400).await?;
                Ok((locked, over, unbudgeted, missing))
            })
        }))
        .await
        .unwrap();
    assert_eq!(locked, vec![(camp("alpha"), 0), (camp("promo"), 0)]);
    for refused in [over, unbudgeted, missing] {
        assert!(
            matches!(refused, Err(StoreError::Corrupt(_))),
            "an overspend must be refused: {refused:?}"
        );
    }

    // Version 2 raises the budget to 30,00 and is locked for the change: the current row
    // follows it, creation time and what was spent stay; a version made twice is refused.
    let promo_v2 = campaign_version(
        "promo",
        2,
        CampaignAction::Update,
        CampaignStatus::Active,
        Some(3_000),
        t1,
    );
    // A change whose transaction rolls back: the revision it drew never comes back.
    let beta = campaign_version(
        "beta",
        1,
        CampaignAction::Create,
        CampaignStatus::Active,
        None,
        t0,
    );
    let drawn = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let seen = drawn.clone();
    let rolled_back = store
        .write(job(move |tx| {
            Box::pin(async move {
                tx.put_campaign_version(&beta).await?;
                let revision = tx.campaigns_revision().await?;
                seen.store(revision, std::sync::atomic::Ordering::Relaxed);
                Err::<(), _>(AppError::conflict("test_failure", "rolls back"))
            })
        }))
        .await;
    assert!(rolled_back.is_err());
    revisions.push(drawn.load(std::sync::atomic::Ordering::Relaxed));
    let v2 = promo_v2.clone();
    let locked = store
        .write(job(move |tx| {
            Box::pin(async move {
                let before = tx.campaign(&camp("promo"), true).await?;
                tx.put_campaign_version(&v2).await?;
                Ok(before.map(|c| c.budget_spent_minor))
            })
        }))
        .await
        .unwrap();
    assert_eq!(locked, Some(1_000));
    let v2 = promo_v2.clone();
    let again = store
        .write(job(move |tx| {
            Box::pin(async move { Ok(tx.put_campaign_version(&v2).await?) })
        }))
        .await;
    assert!(again.is_err(), "a version is made once");
    let (promo, versions, revision) = store
        .read(job(|tx| {
            Box::pin(async move {
                Ok((
                    tx.campaign(&camp("promo"), false).await?.expect("promo"),
                    tx.campaign_versions(&camp("promo")).await?,
                    tx.campaigns_revision().await?,
                ))
            })
        }))
        .await
        .unwrap();
    assert_eq!(
        (&promo.current, promo.created_at, promo.budget_spent_minor),
        (&promo_v2, t0, 1_000)
    );
    assert_eq!(versions, vec![promo_v1.clone(), promo_v2.clone()]);
    assert!(
        !revisions.contains(&revision),
        "a new version moves the revision to one never seen, even rolled back: {revision} in {revisions:?}"
    );

    // Cap usage: counters add up per (campaign, period, start); a read sees the counters
    // asked for that exist, never another day's.
    let day = day_zero() - Duration::hours(12);
    let (week, month) = (day - Duration::days(2), day - Duration::days(4));
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let usage = |campaign: &str, period, start, amount_minor| UsageRow {
        campaign_id: camp(campaign),
        period,
        start,
        amount_minor,
    };
    let first = vec![
        usage("promo", UsagePeriod::Day, day, 100),
        usage("promo", UsagePeriod::Week, week, 50),
        usage("promo", UsagePeriod::Month, month, 25),
        usage("promo", UsagePeriod::Campaign, epoch, 10),
        usage("promo", UsagePeriod::Day, day - Duration::days(1), 7),
        usage("alpha", UsagePeriod::Day, day, 3),
    ];
    let second = vec![
        usage("promo", UsagePeriod::Day, day, 5),
        usage("promo", UsagePeriod::Campaign, epoch, 1),
    ];
    store
        .write(job(move |tx| {
            Box::pin(async move {
                tx.add_campaign_usage(&cid("ana"), &first).await?;
                tx.add_campaign_usage(&cid("ana"), &second).await?;
                tx.add_campaign_usage(&cid("bob"), &[]).await?;
                Ok(())
            })
        }))
        .await
        .unwrap();
    let (mut ana, bob) = store
        .read(job(move |tx| {
            Box::pin(async move {
                // Every counter the first writes made but an earlier day's, and two that
                // were never made.
                let keys = [
                    ("promo", UsagePeriod::Day, day),
                    ("promo", UsagePeriod::Week, week),
                    ("promo", UsagePeriod::Month, month),
                    ("promo", UsagePeriod::Campaign, epoch),
                    ("alpha", UsagePeriod::Day, day),
                    ("alpha", UsagePeriod::Week, week),
                    ("beta", UsagePeriod::Day, day),
                ]
                .map(|(c, period, start)| UsageKey {
                    campaign_id: camp(c),
                    period,
                    start,
                });
                Ok((
                    tx.campaign_usage(&cid("ana"), &keys).await?,
                    tx.campaign_usage(&cid("bob"), &keys).await?,
                ))
            })
        }))
        .await
        .unwrap();
    ana.sort_by_key(|u| (u.campaign_id.clone(), u.period, u.start));
    assert_eq!(
        ana,
        vec![
            usage("alpha", UsagePeriod::Day, day, 3),
            usage("promo", UsagePeriod::Day, day, 105),
            usage("promo", UsagePeriod::Week, week, 50),
            usage("promo", UsagePeriod::Month, month, 25),
            usage("promo", UsagePeriod::Campaign, epoch, 11),
        ]
    );
    assert!(bob.is_empty());

    // Orders through the engine while promo runs with 20,00 of its budget left: O1 (200,00)
    // would earn 20,00 from it and takes all that is left; later orders get nothing from it.
    let o1 = h
        .order(Channel::Web, None, "O1", "ana", O1, None)
        .await
        .unwrap();
    h.order(
        Channel::Store,
        Some("sp-01"),
        "S1",
        "ana",
        &[("1", "grocery", 1, 6_000)],
        None,
    )
    .await
    .unwrap();
    h.order(
        Channel::Web,
        None,
        "O2",
        "bob",
        &[("1", "book", 1, 1_000)],
        None,
    )
    .await
    .unwrap();
    // Placed two hours before the others, posted a day later, with a partner and tags.
    h.to_day(1).await;
    let mut late = order_request(
        Channel::App,
        None,
        "A3",
        "ana",
        &[("x", "toys", 2, 500), ("y", "book", 1, 700)],
        None,
    );
    late.placed_at = Some(day_zero() - Duration::hours(2));
    late.partner_id = Some("partner-1".into());
    late.lines[0].tags = vec!["sale".into(), "kids".into()];
    let a3 = h
        .engine
        .post_order(late.parse(&Caller::default()).unwrap(), None)
        .await
        .unwrap();

    let (promo, o1_record, a3_record, o1_lot) = store
        .read(job(|tx| {
            Box::pin(async move {
                let key = |channel, id: &str| OrderKey {
                    channel,
                    order_id: OrderId::parse(id).unwrap(),
                };
                let o1 = tx.order(&key(Channel::Web, "O1")).await?.expect("O1");
                let a3 = tx.order(&key(Channel::App, "A3")).await?.expect("A3");
                let lots = tx.lots_by_id(&[o1.lot_id.expect("O1 earned")]).await?;
                Ok((
                    tx.campaign(&camp("promo"), false).await?.expect("promo"),
                    o1,
                    a3,
                    lots,
                ))
            })
        }))
        .await
        .unwrap();
    assert_eq!(
        promo.budget_spent_minor, 3_000,
        "the budget is spent exactly"
    );
    let promo_paid = |outcomes: &[CampaignOutcome]| -> i64 {
        outcomes
            .iter()
            .filter(|o| o.campaign_id.as_str() == "promo")
            .map(|o| o.amount_minor)
            .sum()
    };
    assert_eq!(promo_paid(&o1_record.campaigns), 2_000);
    assert_eq!(promo_paid(&a3_record.campaigns), 0);
    assert_eq!(o1.cashback_minor, 1_000 + 2_000);
    assert_eq!(o1_record.partner_id, None);
    assert_eq!(
        a3_record.partner_id.as_ref().map(|p| p.as_str()),
        Some("partner-1")
    );
    assert_eq!(a3_record.cashback_minor, a3.cashback_minor);
    assert_eq!(
        o1_lot
            .iter()
            .flat_map(|l| &l.campaigns)
            .filter(|c| c.campaign_id.as_str() == "promo")
            .map(|c| (c.version, c.amount_minor))
            .collect::<Vec<_>>(),
        vec![(2, 2_000)]
    );

    // What campaigns read of a customer's history: whether they have ordered, and net spend
    // by category over a window of placement times.
    let (ana_ordered, zoe_ordered, spend_all, spend_day0) = store
        .read(job(|tx| {
            Box::pin(async move {
                let d0 = day_zero();
                Ok((
                    tx.customer_has_orders(&cid("ana")).await?,
                    tx.customer_has_orders(&cid("zoe")).await?,
                    tx.category_spend(&cid("ana"), d0 - Duration::days(1), d0 + Duration::days(1))
                        .await?,
                    tx.category_spend(&cid("ana"), d0, d0 + Duration::days(1))
                        .await?,
                ))
            })
        }))
        .await
        .unwrap();
    assert!(ana_ordered && !zoe_ordered);
    let spend = |v: Vec<(Category, i64)>| -> Vec<(String, i64)> {
        v.into_iter()
            .map(|(c, s)| (c.as_str().to_string(), s))
            .collect()
    };
    let named = |v: &[(&str, i64)]| -> Vec<(String, i64)> {
        v.iter().map(|(c, s)| (c.to_string(), *s)).collect()
    };
    assert_eq!(
        spend(spend_all),
        named(&[
            ("book", 5_700),
            ("electronics", 15_000),
            ("grocery", 6_000),
            ("toys", 1_000)
        ])
    );
    assert_eq!(
        spend(spend_day0),
        named(&[("book", 5_000), ("electronics", 15_000), ("grocery", 6_000)])
    );

    // Backtests page through history in (placed_at, created_at, channel, order id) order,
    // strictly after the cursor: A3 was placed first; the others tie on both instants.
    let mut pages = Vec::new();
    let mut cursor: Option<HistoryCursor> = None;
    loop {
        let after = cursor.clone();
        let page = store
            .read(job(move |tx| {
                Box::pin(async move {
                    Ok(tx
                        .order_history(day_zero() + Duration::days(30), after.as_ref(), 2)
                        .await?)
                })
            }))
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(HistoryCursor::of(last));
        pages.push(page);
    }
    let ids = |page: &[HistoricalOrder]| -> Vec<String> {
        page.iter()
            .map(|o| format!("{}:{}", o.order.channel.as_str(), o.order.order_id.as_str()))
            .collect()
    };
    assert_eq!(
        pages.iter().map(|p| ids(p)).collect::<Vec<_>>(),
        vec![
            vec!["app:A3".to_string(), "store:S1".to_string()],
            vec!["web:O1".to_string(), "web:O2".to_string()],
        ]
    );
    let first = &pages[0][0];
    assert_eq!(first.order.lines.len(), 2);
    assert_eq!(
        first.order.lines[0]
            .tags
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>(),
        vec!["sale", "kids"]
    );
    assert!(first.order.lines[1].tags.is_empty());
    assert_eq!(
        (
            first.partner_id.as_ref().map(|p| p.as_str()),
            first.placed_at,
            first.paid_minor
        ),
        (
            Some("partner-1"),
            day_zero() - Duration::hours(2),
            a3.cashback_minor
        )
    );
    let o1_history = &pages[1][0];
    assert_eq!(
        o1_history
            .order
            .lines
            .iter()
            .map(|l| (l.line_id.as_str(), l.category.as_str(), l.unit_price_minor))
            .collect::<Vec<_>>(),
        vec![("1", "electronics", 15_000), ("2", "book", 5_000)]
    );
    assert_eq!(
        (o1_history.paid_minor, o1_history.redeemed_minor),
        (3_000, 0)
    );
    // Only orders placed before `until`.
    let early = store
        .read(job(|tx| {
            Box::pin(async move { Ok(tx.order_history(day_zero(), None, 10).await?) })
        }))
        .await
        .unwrap();
    assert_eq!(ids(&early), vec!["app:A3".to_string()]);
    h.assert_invariants(&["ana", "bob"]).await;
}

/// 64 orders at once against a campaign whose budget pays 10 of them: exactly 10 are paid,
/// never 11, and the budget ends spent to the cent.
pub async fn a_budget_for_ten_pays_ten_of_64_concurrent_orders<S: Store>(store: S) {
    let h = Harness::new(store).await;
    h.engine
        .create_campaign(
            "test",
            kembali_app::model::CampaignCreateRequest {
                id: "promo".into(),
                definition: serde_json::from_value(serde_json::json!({
                    "name": "Promo",
                    "window": { "starts_on": "2026-01-01", "ends_on": "2026-12-31" },
                    "reward": { "kind": "fixed", "amount_minor": 1_000 },
                    "caps": { "budget_minor": 10_000 },
                    "stacking": { "mode": "stackable" }
                }))
                .unwrap(),
            },
        )
        .await
        .unwrap();
    let orders = (0..64).map(|i| {
        let engine = h.engine.clone();
        let req = order_request(
            Channel::Web,
            None,
            &format!("P{i}"),
            &format!("p{}", i % 16),
            &[("1", "toys", 1, 10_000)],
            None,
        );
        async move {
            engine
                .post_order(req.parse(&Caller::default())?, None)
                .await
        }
    });
    let receipts: Vec<_> = futures::future::join_all(orders)
        .await
        .into_iter()
        .map(|r| r.expect("every order is taken"))
        .collect();
    let promo_paid: Vec<i64> = receipts
        .iter()
        .flat_map(|r| r.campaigns.iter())
        .filter(|c| c.campaign_id == "promo" && c.amount_minor > 0)
        .map(|c| c.amount_minor)
        .collect();
    assert_eq!(promo_paid, vec![1_000; 10], "ten orders paid, never eleven");
    let view = h
        .engine
        .campaign(CampaignId::parse("promo").unwrap())
        .await
        .unwrap();
    assert_eq!(view.budget_spent_minor, 10_000);
    assert_eq!(view.budget_remaining_minor, Some(0));
    let customers: Vec<String> = (0..16).map(|i| format!("p{i}")).collect();
    let customers: Vec<&str> = customers.iter().map(|c| c.as_str()).collect();
    h.assert_invariants(&customers).await;
}

/// History import (`Tx::import_orders`): orders go in as given with their customers, earning
/// nothing; a rerun changes nothing; another order under a stored key is a conflict.
pub async fn imported_history_is_stored_once_earns_nothing_and_conflicts_are_named<S: Store>(
    store: S,
) {
    use kembali_app::import::{imported_record, source::SourceOrder};
    use kembali_app::model::Caller;
    use kembali_app::store::{job, ImportOutcome, OrderRecord};

    let h = Harness::new(store).await;
    // caio exists before the import, with a live order and a wallet.
    h.order(
        Channel::Web,
        None,
        "L1",
        "caio",
        &[("1", "toys", 1, 2_000)],
        None,
    )
    .await
    .unwrap();
    let caio_before = h.engine.customer(cid("caio")).await.unwrap();
    let placed = h.start - Duration::days(30);
    let record = |order_id: &str, customer: &str, channel, store, price: i64| {
        let mut req = order_request(
            channel,
            store,
            order_id,
            customer,
            &[("1", "book", 2, price)],
            None,
        );
        req.placed_at = Some(placed);
        let post = req.parse(&Caller::default()).unwrap();
        imported_record(
            &SourceOrder {
                line: 1,
                post,
                placed_at: placed,
            },
            h.clock_now(),
        )
    };
    let o1 = record("O1", "ana", Channel::Web, None, 1_500);
    let s1 = record("S1", "bia", Channel::Store, Some("sp-01"), 900);
    let c1 = record("C1", "caio", Channel::App, None, 700);
    let import = |orders: Vec<OrderRecord>| {
        h.engine.store().write(job(move |tx| {
            Box::pin(async move { Ok(tx.import_orders(&orders).await?) })
        }))
    };
    let first = import(vec![o1.clone(), s1.clone(), o1.clone(), c1.clone()])
        .await
        .unwrap();
    use ImportOutcome::*;
    assert_eq!(first, vec![Inserted, Inserted, Unchanged, Inserted]);

    // Stored exactly as given; new customers created at the order's placed_at, empty wallet.
    let stored = |key: kembali_app::store::OrderKey| {
        h.engine.store().read(job(move |tx| {
            Box::pin(async move { Ok(tx.order(&key).await?) })
        }))
    };
    assert_eq!(stored(o1.key.clone()).await.unwrap(), Some(o1.clone()));
    assert_eq!(o1.cashback_minor, 0);
    let ana = h.engine.customer(cid("ana")).await.unwrap();
    assert_eq!(ana.created_at, placed);
    assert_eq!(h.balances("ana").await, (0, 0, 0, 0));
    assert_eq!(h.balances("bia").await, (0, 0, 0, 0));
    // An existing customer is left as they were (only the live order earned).
    assert_eq!(h.engine.customer(cid("caio")).await.unwrap(), caio_before);
    let totals = h.engine.totals().await.unwrap();
    assert_eq!(totals.earned_minor, 100, "only caio's live order earned");

    // A rerun changes nothing; another order under a stored key is a conflict, not stored.
    let changed = record("O1", "ana", Channel::Web, None, 1_600);
    let second = import(vec![o1.clone(), s1.clone(), changed, c1])
        .await
        .unwrap();
    assert_eq!(second, vec![Unchanged, Unchanged, Conflict, Unchanged]);
    assert_eq!(stored(o1.key.clone()).await.unwrap(), Some(o1));

    // Posting the same order through the API later replays the imported one: no cashback.
    let mut req = order_request(
        Channel::Web,
        None,
        "O1",
        "ana",
        &[("1", "book", 2, 1_500)],
        None,
    );
    req.placed_at = Some(placed);
    let replay = h
        .engine
        .post_order(req.parse(&Caller::default()).unwrap(), None)
        .await
        .unwrap();
    assert_eq!((replay.cashback_minor, replay.lot_id), (0, None));
    assert_eq!(h.engine.totals().await.unwrap().earned_minor, 100);
    h.assert_invariants(&["ana", "bia", "caio"]).await;
}
