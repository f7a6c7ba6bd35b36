//! The life of cashback end to end: the real binary on a real port with `--test-clock`, a
//! store till posting through its own channel key, and the wallet and statement checked
//! after every step (amounts in R$, base rate 5 %, pending 7 days, expiry 180 days).

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const DAY: i64 = 86_400;

struct Client {
    base: String,
    day: i64,
}

impl Client {
    async fn post(&self, key: &str, path: &str, body: Value) -> Value {
        let (status, body) = call(
            Method::POST,
            &format!("{}{path}", self.base),
            key,
            Some(body),
        )
        .await;
        assert_eq!(status, 200, "POST {path}: {body}");
        body
    }

    async fn go_to_day(&mut self, day: i64) {
        let secs = (day - self.day) * DAY;
        self.post(ADMIN, "/v1/test/clock", json!({ "advance_secs": secs }))
            .await;
        self.day = day;
    }

    /// (available, pending, held, debt) and the statement's kinds, oldest first.
    async fn wallet(&self) -> ((i64, i64, i64, i64), Vec<String>) {
        let (s, w) = call(
            Method::GET,
            &format!("{}/v1/customers/ana/wallet", self.base),
            ADMIN,
            None,
        )
        .await;
        assert_eq!(s, 200, "{w}");
        let get = |f: &str| w[f].as_i64().expect("an amount");
        let balances = (
            get("available_minor"),
            get("pending_minor"),
            get("held_minor"),
            get("debt_minor"),
        );
        let (s, st) = call(
            Method::GET,
            &format!("{}/v1/customers/ana/statement?limit=500", self.base),
            ADMIN,
            None,
        )
        .await;
        assert_eq!(s, 200, "{st}");
        let mut kinds: Vec<String> = st["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                assert!(
                    !e["explanation"].as_str().unwrap_or("").is_empty(),
                    "every entry explains itself: {e}"
                );
                e["kind"].as_str().expect("a kind").to_string()
            })
            .collect();
        kinds.reverse();
        (balances, kinds)
    }
}

fn line(id: &str, category: &str, price_minor: i64) -> Value {
    json!({ "line_id": id, "sku": format!("sku-{id}"), "category": category, "quantity": 1, "unit_price_minor": price_minor })
}

#[tokio::test]
async fn a_customer_earns_spends_in_store_returns_repays_debt_and_expires() {
    let dir = scratch_dir();
    let db = db_url(&dir);
    let server = Server::start(&db, &["--test-clock", "2026-01-05T12:00:00Z"]);
    let till = create_till_key(&db, "sp-01");
    let mut c = Client {
        base: server.base.clone(),
        day: 0,
    };

    // 1. Day 0, web order O1: electronics 150,00 + book 50,00 → 10,00 pending (7,50 + 2,50).
    let o1 = c
        .post(
            ADMIN,
            "/v1/orders",
            json!({ "order_id": "O1", "channel": "web", "customer_id": "ana", "currency": "BRL",
                    "lines": [line("1", "electronics", 15_000), line("2", "book", 5_000)] }),
        )
        .await;
    assert_eq!(o1["cashback_minor"], 1_000);
    assert_eq!(o1["lines"][0]["cashback_minor"], 750);
    assert_eq!(o1["lines"][1]["cashback_minor"], 250);
    assert!(o1["available_at"]
        .as_str()
        .unwrap()
        .starts_with("2026-01-12T12:00:00"));
    assert_eq!(c.wallet().await, ((0, 1_000, 0, 0), vec!["earn".into()]));

    // 2. Day 7: 10,00 available.
    c.go_to_day(7).await;
    assert_eq!(c.wallet().await.0, (1_000, 0, 0, 0));
    assert_eq!(c.wallet().await.1.last().unwrap(), "mature");

    // 3. Day 8, store sp-01 through its channel key: hold 6,00, capture, order S1 of 60,00.
    c.go_to_day(8).await;
    let quote = c
        .post(
            &till,
            "/v1/redemptions/quote",
            json!({ "customer_id": "ana", "order_total_minor": 6_000, "currency": "BRL" }),
        )
        .await;
    assert_eq!(quote["max_redeemable_minor"], 1_000);
    let hold = c
        .post(
            &till,
            "/v1/redemptions",
            json!({ "redemption_id": "R1", "customer_id": "ana", "amount_minor": 600, "order_total_minor": 6_000, "currency": "BRL" }),
        )
        .await;
    assert_eq!(hold["state"], "held");
    assert_eq!(hold["store_id"], "sp-01");
    assert_eq!(c.wallet().await.0, (400, 0, 600, 0));
    let captured = c.post(&till, "/v1/redemptions/R1/capture", json!({})).await;
    assert_eq!(captured["captured_minor"], 600);
    assert_eq!(c.wallet().await.0, (400, 0, 0, 0));
    let s1 = c
        .post(
            &till,
            "/v1/orders",
            json!({ "order_id": "S1", "customer_id": "ana", "currency": "BRL", "redemption_id": "R1",
                    "lines": [line("1", "grocery", 6_000)] }),
        )
        .await;
    assert_eq!(
        (s1["redeemed_minor"].as_i64(), s1["cashback_minor"].as_i64()),
        (Some(600), Some(270))
    );
    assert_eq!(s1["channel"], "store");
    assert_eq!(
        c.wallet().await,
        (
            (400, 270, 0, 0),
            ["earn", "mature", "hold", "capture", "earn"]
                .map(String::from)
                .to_vec()
        )
    );

    // 4. Day 9: return O1's electronics line → 7,50 clawed back: 4,00 from what remains, 3,50 debt.
    c.go_to_day(9).await;
    let ret = c
        .post(
            &till,
            "/v1/orders/O1/returns",
            json!({ "return_id": "RET1", "lines": [{ "line_id": "1", "quantity": 1 }] }),
        )
        .await;
    assert_eq!(
        (
            ret["taken_from_lot_minor"].as_i64(),
            ret["debt_created_minor"].as_i64()
        ),
        (Some(400), Some(350))
    );
    let (balances, kinds) = c.wallet().await;
    assert_eq!(balances, (0, 270, 0, 350));
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["clawback".to_string(), "debt_created".to_string()]
    );

    // 5. Day 15: S1's 2,70 matures and goes to the debt → debt 0,80, available 0.
    c.go_to_day(15).await;
    let (balances, kinds) = c.wallet().await;
    assert_eq!(balances, (0, 0, 0, 80));
    assert_eq!(kinds.last().unwrap(), "debt_repaid");

    // 6. Day 16, store order S2 of 100,00 → 5,00 pending; day 23: 0,80 repays the debt, 4,20 available.
    c.go_to_day(16).await;
    c.post(&till, "/v1/orders", json!({ "order_id": "S2", "customer_id": "ana", "currency": "BRL", "lines": [line("1", "grocery", 10_000)] }))
        .await;
    assert_eq!(c.wallet().await.0, (0, 500, 0, 80));
    c.go_to_day(23).await;
    let (balances, kinds) = c.wallet().await;
    assert_eq!(balances, (420, 0, 0, 0));
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["debt_repaid".to_string(), "mature".to_string()]
    );

    // 7. Day 203: the 4,20 expires as breakage; the program's totals still balance.
    c.go_to_day(203).await;
    let (balances, kinds) = c.wallet().await;
    assert_eq!(balances, (0, 0, 0, 0));
    assert_eq!(kinds.last().unwrap(), "expire");
    assert_eq!(kinds.len(), 12);
    let (_, totals) = call(
        Method::GET,
        &format!("{}/v1/program/totals", c.base),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(totals["balanced"], true, "{totals}");
    assert_eq!(totals["expired_minor"], 420);
    assert_eq!(totals["earned_minor"], 1_770);
    let (_, events) = call(
        Method::GET,
        &format!("{}/v1/events?limit=100", c.base),
        ADMIN,
        None,
    )
    .await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"cashback.expiring_soon") && kinds.contains(&"cashback.expired"),
        "{kinds:?}"
    );
    assert!(server.terminate().success());
}

#[tokio::test]
async fn a_channel_key_cannot_act_for_another_store() {
    let dir = scratch_dir();
    let db = db_url(&dir);
    let server = Server::start(&db, &["--test-clock", "2026-01-05T12:00:00Z"]);
    let till = create_till_key(&db, "sp-01");
    let (status, body) = call(
        Method::POST,
        &format!("{}/v1/orders", server.base),
        &till,
        Some(
            json!({ "order_id": "X1", "store_id": "rj-02", "customer_id": "ana", "currency": "BRL",
                     "lines": [line("1", "grocery", 1_000)] }),
        ),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["code"], "store_mismatch");
    let (status, _) = call(
        Method::GET,
        &format!("{}/v1/customers/ana/wallet", server.base),
        &till,
        None,
    )
    .await;
    assert_eq!(status, 403);
}
