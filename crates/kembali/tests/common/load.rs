//! A mixed load on running servers (orders, retries on another replica, returns, holds,
//! captures, voids, one-step redemptions) on a few hot wallets, recording every operation
//! a server acknowledged; and the checks that all acknowledged work is in the store and
//! every invariant holds.

use kembali_app::clock::SystemClock;
use kembali_app::store::{job, OrderKey, Store};
use kembali_app::Engine;
use kembali_core::ids::{Channel, CustomerId, OrderId, RedemptionId, ReturnId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct LoadConfig {
    pub clients: usize,
    pub ops: usize,
    pub wallets: usize,
    pub seed: u64,
    /// Connection errors are expected (a replica is being killed): they count as "not
    /// acknowledged" instead of failing the test.
    pub tolerate_connection_errors: bool,
}

/// What the servers acknowledged (a 2xx answer), and what they refused with a 503 (which
/// promises the request did nothing, unless a replica died mid-commit).
#[derive(Default)]
pub struct Acked {
    /// order id → (customer, cashback the answer promised).
    pub orders: BTreeMap<String, (String, i64)>,
    /// (order id, return id).
    pub returns: BTreeSet<(String, String)>,
    /// redemption id → last acknowledged state.
    pub redemptions: BTreeMap<String, String>,
    /// Order ids answered 503.
    pub unavailable_orders: BTreeSet<String>,
    pub by_status: BTreeMap<u16, usize>,
    pub connection_errors: usize,
}

struct Shared {
    bases: Vec<String>,
    key: String,
    client: reqwest::Client,
    acked: Mutex<Acked>,
    /// Holds acknowledged and not yet captured or voided by the load, to act on.
    open_holds: Mutex<Vec<(String, Value)>>,
    next: AtomicUsize,
}

impl Shared {
    /// One request; `None` when the connection failed (the server died or hung up).
    async fn send(&self, replica: usize, path: &str, body: &Value) -> Option<(u16, Value)> {
        let url = format!("{}{path}", self.bases[replica % self.bases.len()]);
        let res = self
            .client
            .post(url)
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await;
        let res = match res {
            Ok(r) => r,
            Err(_) => {
                self.acked.lock().unwrap().connection_errors += 1;
                return None;
            }
        };
        let status = res.status().as_u16();
        let value = res.json::<Value>().await.unwrap_or(Value::Null);
        *self
            .acked
            .lock()
            .unwrap()
            .by_status
            .entry(status)
            .or_default() += 1;
        assert!(
            matches!(status, 200..=299 | 404 | 409 | 422 | 503),
            "POST {path} {body} answered {status} {value}"
        );
        Some((status, value))
    }
}

fn order_body(rng: &mut StdRng, order_id: &str, customer: &str) -> Value {
    let channel = ["web", "app", "store", "marketplace"][rng.random_range(0..4)];
    let lines: Vec<Value> = (1..=rng.random_range(1..=3))
        .map(|i| {
            json!({
                "line_id": i.to_string(), "sku": format!("sku-{i}"), "category": "general",
                "quantity": rng.random_range(1..=2), "unit_price_minor": rng.random_range(1_000..=20_000)
            })
        })
        .collect();
    json!({"order_id": order_id, "channel": channel, "customer_id": customer, "currency": "BRL", "lines": lines})
}

async fn one_op(s: &Shared, op: usize, seed: u64, wallets: usize) {
    let mut rng = StdRng::seed_from_u64(seed ^ (op as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let replica = rng.random_range(0..s.bases.len());
    let customer = format!("c{:02}", rng.random_range(0..wallets));
    let roll = rng.random_range(0..100);
    if roll < 45 {
        let order_id = format!("o{op}");
        let body = order_body(&mut rng, &order_id, &customer);
        let Some((status, v)) = s.send(replica, "/v1/orders", &body).await else {
            return;
        };
        match status {
            200..=299 => {
                let cashback = v["cashback_minor"]
                    .as_i64()
                    .expect("cashback in the receipt");
                s.acked
                    .lock()
                    .unwrap()
                    .orders
                    .insert(order_id.clone(), (customer, cashback));
                // A till that never saw the answer sends the order again, elsewhere.
                if rng.random_bool(0.25) {
                    if let Some((again, v2)) = s.send(replica + 1, "/v1/orders", &body).await {
                        if again != 503 {
                            assert_eq!(again / 100, 2, "a retry of an acknowledged order: {v2}");
                            assert_eq!(v2["cashback_minor"], v["cashback_minor"], "{order_id}");
                        }
                    }
                }
            }
            503 => {
                s.acked.lock().unwrap().unavailable_orders.insert(order_id);
            }
            _ => {}
        }
    } else if roll < 57 {
        let target = {
            let a = s.acked.lock().unwrap();
            let n = a.orders.len();
            (n > 0).then(|| a.orders.keys().nth(rng.random_range(0..n)).cloned())
        };
        let Some(Some(order_id)) = target else { return };
        let return_id = format!("r{op}");
        let body = json!({"return_id": return_id, "lines": [{"line_id": "1", "quantity": 1}]});
        if let Some((200..=299, _)) = s
            .send(replica, &format!("/v1/orders/{order_id}/returns"), &body)
            .await
        {
            s.acked
                .lock()
                .unwrap()
                .returns
                .insert((order_id, return_id));
        }
    } else if roll < 80 {
        let id = format!("h{op}");
        let capture = roll >= 75;
        let body = json!({
            "redemption_id": id, "customer_id": customer, "amount_minor": rng.random_range(50..=400),
            "order_total_minor": 10_000, "currency": "BRL", "channel": "web", "capture": capture
        });
        let Some((200..=299, v)) = s.send(replica, "/v1/redemptions", &body).await else {
            return;
        };
        let state = v["state"].as_str().expect("a state").to_string();
        s.acked
            .lock()
            .unwrap()
            .redemptions
            .insert(id.clone(), state);
        if !capture {
            s.open_holds
                .lock()
                .unwrap()
                .push((id.clone(), body.clone()));
        }
        if rng.random_bool(0.2) {
            // The same hold sent again to another replica: answered, never held twice.
            if let Some((again, v2)) = s.send(replica + 1, "/v1/redemptions", &body).await {
                if again != 503 {
                    assert_eq!(again / 100, 2, "a retried hold: {v2}");
                    assert_eq!(v2["amount_minor"], v["amount_minor"]);
                }
            }
        }
    } else {
        let picked = {
            let mut holds = s.open_holds.lock().unwrap();
            let n = holds.len();
            (n > 0).then(|| holds.swap_remove(rng.random_range(0..n)))
        };
        let Some((id, _)) = picked else { return };
        let (action, body) = if roll < 93 {
            ("capture", json!({}))
        } else {
            ("void", json!({}))
        };
        if let Some((200..=299, v)) = s
            .send(replica, &format!("/v1/redemptions/{id}/{action}"), &body)
            .await
        {
            let state = v["state"].as_str().expect("a state").to_string();
            s.acked.lock().unwrap().redemptions.insert(id, state);
        }
    }
}

/// Runs `config.ops` operations from `config.clients` concurrent clients spread over the
/// servers at `bases`.
pub async fn run(bases: Vec<String>, key: &str, config: &LoadConfig) -> Acked {
    let shared = Arc::new(Shared {
        bases,
        key: key.to_string(),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client"),
        acked: Mutex::new(Acked::default()),
        open_holds: Mutex::new(Vec::new()),
        next: AtomicUsize::new(0),
    });
    let clients: Vec<_> = (0..config.clients)
        .map(|_| {
            let s = shared.clone();
            let (ops, seed, wallets) = (config.ops, config.seed, config.wallets);
            tokio::spawn(async move {
                loop {
                    let op = s.next.fetch_add(1, Ordering::SeqCst);
                    if op >= ops {
                        return;
                    }
                    one_op(&s, op, seed, wallets).await;
                }
            })
        })
        .collect();
    for c in clients {
        c.await.expect("a client panicked");
    }
    let acked = std::mem::take(&mut *shared.acked.lock().unwrap());
    if !config.tolerate_connection_errors {
        assert_eq!(acked.connection_errors, 0, "connections failed");
    }
    acked
}

/// Makes cashback spendable at once so that the load's holds have something to hold.
pub async fn program_without_pending_period(base: &str, key: &str) {
    let (status, body) = super::call(
        reqwest::Method::PUT,
        &format!("{base}/v1/program"),
        key,
        Some(json!({"pending_days": 0})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

fn key_of(order_id: &str, channels: &[Channel]) -> OrderKey {
    assert_eq!(channels.len(), 1, "order {order_id} on {channels:?}");
    OrderKey {
        channel: channels[0],
        order_id: OrderId::parse(order_id).unwrap(),
    }
}

/// Every acknowledged operation is in the store, each order was credited once, and every
/// invariant of the SPEC holds. `strict` (no process died): nothing refused with a 503 is
/// in the store and every redemption is exactly in its last acknowledged state.
pub async fn verify<S: Store>(store: S, acked: &Acked, wallets: usize, strict: bool) {
    let engine = Engine::new(Arc::new(store), Arc::new(SystemClock));
    let store = engine.store().clone();
    for (order_id, (customer, cashback)) in &acked.orders {
        let oid = OrderId::parse(order_id).unwrap();
        let found = store
            .read(job(move |tx| {
                Box::pin(async move {
                    let channels = tx.order_channels(&oid).await?;
                    let key = key_of(oid.as_str(), &channels);
                    Ok(tx.order(&key).await?)
                })
            }))
            .await
            .expect("read");
        let order = found.unwrap_or_else(|| panic!("acknowledged order {order_id} is missing"));
        assert_eq!(order.customer_id.as_str(), customer);
        assert_eq!(order.cashback_minor, *cashback, "order {order_id}");
    }
    if strict {
        for order_id in &acked.unavailable_orders {
            let oid = OrderId::parse(order_id).unwrap();
            let channels = store
                .read(job(move |tx| {
                    Box::pin(async move { Ok(tx.order_channels(&oid).await?) })
                }))
                .await
                .expect("read");
            assert!(
                channels.is_empty(),
                "order {order_id} was refused yet exists"
            );
        }
    }
    for (order_id, return_id) in &acked.returns {
        let oid = OrderId::parse(order_id).unwrap();
        let rid = ReturnId::parse(return_id).unwrap();
        let found = store
            .read(job(move |tx| {
                Box::pin(async move {
                    let channels = tx.order_channels(&oid).await?;
                    let key = key_of(oid.as_str(), &channels);
                    Ok(tx.return_record(&key, &rid).await?)
                })
            }))
            .await
            .expect("read");
        assert!(
            found.is_some(),
            "acknowledged return {return_id} is missing"
        );
    }
    for (id, state) in &acked.redemptions {
        let rid = RedemptionId::parse(id).unwrap();
        let found = store
            .read(job(move |tx| {
                Box::pin(async move { Ok(tx.redemption(&rid).await?) })
            }))
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("acknowledged redemption {id} is missing"));
        // After a crash, a capture or void may have committed without its answer arriving.
        let moved_on = !strict && state == "held";
        assert!(
            found.state.as_str() == state || moved_on,
            "redemption {id} acknowledged {state}, stored {:?}",
            found.state
        );
    }
    let mut earned_orders = 0;
    for w in 0..wallets {
        let customer = CustomerId::parse(format!("c{w:02}")).unwrap();
        let breaches = engine
            .check_customer(customer.clone())
            .await
            .expect("check");
        if breaches == [format!("{customer}: missing")] {
            let had_orders = acked.orders.values().any(|(c, _)| c == customer.as_str());
            assert!(
                !had_orders,
                "{customer} had acknowledged orders but is missing"
            );
            continue;
        }
        assert!(breaches.is_empty(), "{customer}: {breaches:?}");
        let entries = store
            .read(job(move |tx| {
                Box::pin(async move { Ok(tx.statement(&customer, None, 1_000_000).await?) })
            }))
            .await
            .expect("statement");
        let mut credited = BTreeSet::new();
        for e in entries.iter().filter(|e| e.entry.kind.as_str() == "earn") {
            let order = e.refs.order.as_ref().expect("an earn names its order");
            assert!(
                credited.insert(order.order_id.to_string()),
                "order {} credited twice",
                order.order_id
            );
        }
        earned_orders += credited.len();
    }
    let with_cashback = acked.orders.values().filter(|(_, c)| *c > 0).count();
    assert!(
        earned_orders >= with_cashback,
        "{earned_orders} orders credited, {with_cashback} acknowledged with cashback"
    );
    let totals = engine.totals().await.expect("totals");
    assert!(totals.balanced, "program totals do not balance: {totals:?}");
}
