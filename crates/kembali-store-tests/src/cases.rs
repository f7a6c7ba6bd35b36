//! The conformance cases. Each takes a fresh store and must pass on every adapter.

use crate::harness::{cid, Harness};
use chrono::Duration;
use expect_test::expect;
use kembali_app::model::ProgramRequest;
use kembali_app::store::Store;
use kembali_app::AppError;
use kembali_core::ids::Channel;
use kembali_core::program::ClawbackPolicy;

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
