//! Generated bad bodies for every endpoint: valid requests with a field removed, replaced by
//! a value of any JSON type (extreme numbers, long and odd strings, nested structures) or
//! joined by an unknown field. Whatever arrives, the answer is a success or a 4xx problem,
//! never a 5xx.

use crate::common::{order_body, TestApp};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{json, Map, Value};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just(i64::MAX),
            Just(i64::MIN),
            Just(0),
            Just(-1),
            Just(10_000_000_000_000)
        ]
        .prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        "[a-z]{300}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Remove(usize),
    Replace(usize, Value),
    Add(String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), any_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        ("[a-z_]{1,12}", any_json()).prop_map(|(k, v)| Mutation::Add(k, v)),
    ]
}

/// Every path (object keys and array indices) of a JSON value, parents before children.
fn paths(v: &Value, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let children: Vec<(String, &Value)> = match v {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => vec![],
    };
    for (k, child) in children {
        let mut p = prefix.clone();
        p.push(k);
        out.push(p.clone());
        paths(child, p, out);
    }
}

fn slot<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |cur, k| match cur {
        Value::Object(m) => m.get_mut(k),
        Value::Array(a) => a.get_mut(k.parse::<usize>().ok()?),
        _ => None,
    })
}

fn apply(mut body: Value, m: &[Mutation]) -> Value {
    for m in m {
        let mut all = Vec::new();
        paths(&body, vec![], &mut all);
        match m {
            Mutation::Remove(i) if !all.is_empty() => {
                let path = &all[i % all.len()];
                let (last, parent) = path.split_last().expect("non-empty path");
                match slot(&mut body, parent) {
                    Some(Value::Object(o)) => {
                        o.remove(last);
                    }
                    Some(Value::Array(a)) => {
                        let i: usize = last.parse().expect("an index");
                        if i < a.len() {
                            a.remove(i);
                        }
                    }
                    _ => {}
                }
            }
            Mutation::Replace(i, v) if !all.is_empty() => {
                if let Some(s) = slot(&mut body, &all[i % all.len()]) {
                    *s = v.clone();
                }
            }
            Mutation::Add(k, v) => {
                if let Value::Object(o) = &mut body {
                    o.insert(k.clone(), v.clone());
                }
            }
            _ => {}
        }
    }
    body
}

#[tokio::test]
async fn generated_bad_bodies_never_produce_a_server_error() {
    let app = TestApp::new().await;
    app.customer_with_available("ana", 100_000).await;
    app.post(
        "/v1/redemptions",
        &app.admin,
        json!({ "redemption_id": "held-1", "customer_id": "ana", "amount_minor": 100, "order_total_minor": 1_000, "currency": "BRL", "channel": "store" }),
    )
    .await;
    let endpoints: Vec<(&str, &str, Value)> = vec![
        (
            "PUT",
            "/v1/customers/bia",
            json!({ "email": "bia@example.com", "phone": "+55 11 5555", "birthday": "1990-02-28", "segments": ["vip"] }),
        ),
        ("POST", "/v1/orders", order_body("ana", "gen-1", 10_000)),
        (
            "POST",
            "/v1/orders/ana-seed/returns",
            json!({ "return_id": "r1", "lines": [{ "line_id": "l1", "quantity": 1 }] }),
        ),
        ("POST", "/v1/orders/ana-seed/cancel", json!({})),
        (
            "POST",
            "/v1/redemptions/quote",
            json!({ "customer_id": "ana", "order_total_minor": 1_000, "currency": "BRL" }),
        ),
        (
            "POST",
            "/v1/redemptions",
            json!({ "redemption_id": "gen-r", "customer_id": "ana", "amount_minor": 100, "order_total_minor": 1_000, "currency": "BRL", "channel": "web", "capture": true }),
        ),
        (
            "POST",
            "/v1/redemptions/held-1/capture",
            json!({ "amount_minor": 50 }),
        ),
        ("POST", "/v1/redemptions/held-1/void", json!({})),
        (
            "PUT",
            "/v1/program",
            json!({ "base_rate_bp": 500, "pending_days": 7, "clawback_policy": "debt", "currency": "BRL" }),
        ),
        ("POST", "/v1/test/clock", json!({ "advance_secs": 60 })),
    ];
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(mutation(), 1..4);
    let mut sent = 0;
    for (method, path, valid) in &endpoints {
        for _ in 0..60 {
            let mutations = strategy.new_tree(&mut runner).expect("a case").current();
            let body = apply(valid.clone(), &mutations);
            let res = app
                .call(method, path, Some(&app.admin), Some(body.clone()))
                .await;
            res.not_a_server_error(&format!("{method} {path} {body}"));
            sent += 1;
        }
    }
    assert_eq!(sent, endpoints.len() * 60);
    let totals = app.get("/v1/program/totals", &app.admin).await;
    assert_eq!(
        totals.json["balanced"], true,
        "whatever was accepted kept the ledger balanced"
    );
}
