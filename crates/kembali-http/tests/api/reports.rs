//! The metrics and experiments endpoints: numbers, filters, bad input, roles and the
//! definitions in the OpenAPI document.

use crate::common::TestApp;
use kembali_core::analytics::experiment::{assign, Arm};
use kembali_core::ids::CustomerId;
use kembali_core::money::BasisPoints;
use serde_json::{json, Value};

/// ana: web orders of 100,00 (day 0, returned on day 1) and 60,00 (day 8); bia: 40,00 on
/// day 8. Cashback 5 %: 5,00 (clawed back), 3,00 and 2,00.
async fn three_orders(app: &TestApp) {
    app.order("ana", "o1", 10_000).await;
    app.advance_days(1).await;
    app.post(
        "/v1/orders/o1/returns",
        &app.admin,
        json!({"return_id": "r1", "lines": [{"line_id": "l1", "quantity": 1}]}),
    )
    .await
    .ok();
    app.advance_days(7).await;
    app.order("ana", "o2", 6_000).await;
    app.order("bia", "o3", 4_000).await;
}

#[tokio::test]
async fn the_summary_counts_orders_revenue_returns_and_cost() {
    let app = TestApp::new().await;
    three_orders(&app).await;
    let res = app.get("/v1/metrics/summary", &app.analyst).await;
    let s = res.ok();
    // 3 orders of 2 customers; gross 20000, the 10000 order returned: net 10000, ticket
    // 10000 / 3; ana ordered twice: repeat rate 1/2. Cashback 500 + 300 + 200 = 1000, of
    // which 500 clawed back: cost 500, 5 % of net revenue.
    assert_eq!(s["currency"], "BRL");
    assert_eq!(s["period"]["from"], "2025-01-06");
    assert_eq!(s["period"]["to"], "2025-01-14");
    assert_eq!(
        (s["orders"].as_u64(), s["active_customers"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(
        (
            &s["gross_revenue_minor"],
            &s["returned_minor"],
            &s["net_revenue_minor"]
        ),
        (&json!(20_000), &json!(10_000), &json!(10_000))
    );
    assert_eq!(s["repeat_purchase_rate"], 0.5);
    assert_eq!(s["cost"]["cost_minor"], 500);
    assert_eq!(s["cost"]["cost_share_of_revenue"], 0.05);
    // Pending 300 + 200 on day 8: the liability now.
    assert_eq!(s["cost"]["liability_minor"], 500);
    // No holdout: ROI and conversion cannot be measured, and the answer says so.
    assert_eq!(s["roi"]["status"], "not_measurable");
    assert!(s["roi"]["reason"].as_str().unwrap().contains("no holdout"));
    assert_eq!(s["conversion"]["status"], "not_measurable");
    // Filters: the period before day 8 holds only o1; no order on the app; segment of nobody.
    let s = app
        .get("/v1/metrics/summary?to=2025-01-13", &app.admin)
        .await;
    assert_eq!(s.ok()["orders"], 1);
    let s = app.get("/v1/metrics/summary?channel=app", &app.admin).await;
    assert_eq!(s.ok()["orders"], 0);
    let s = app
        .get("/v1/metrics/summary?segment=vip&store=s1", &app.admin)
        .await;
    assert_eq!(s.ok()["active_customers"], 0);
}

#[tokio::test]
async fn bad_filters_are_refused_with_the_parameter_at_fault() {
    let app = TestApp::new().await;
    let cases = [
        ("from=2025-13-01", "from", "invalid_date"),
        ("to=yesterday", "to", "invalid_date"),
        ("from=2025-1-5", "from", "invalid_date"),
        ("from=2025-02-01&to=2025-01-01", "from", "invalid_period"),
        ("from=2000-01-01&to=2025-01-01", "to", "invalid_period"),
        ("channel=tv", "channel", "invalid_channel"),
        ("store=a%20b", "store", "invalid_id"),
        ("segment=", "segment", "invalid_id"),
        ("campaign=a%20b", "campaign", "invalid_id"),
        ("campaign=c1", "campaign", "unknown_campaign"),
        ("campaigns=c1", "campaigns", "unknown_parameter"),
        ("to=2025-01-01&to=2025-01-02", "to", "repeated_parameter"),
    ];
    for path in [
        "/v1/metrics/summary",
        "/v1/metrics/retention",
        "/v1/metrics/ltv",
        "/v1/experiments/program",
    ] {
        for (query, field, code) in cases {
            app.get(&format!("{path}?{query}"), &app.admin)
                .await
                .invalid(field, code);
        }
    }
    app.get("/v1/experiments/bad%20id", &app.admin)
        .await
        .invalid("experiment_id", "invalid_id");
    app.get("/v1/experiments/campaign:c1", &app.admin)
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn retention_and_lifetime_value_by_cohort() {
    let app = TestApp::new().await;
    three_orders(&app).await;
    let r = app.get("/v1/metrics/retention", &app.analyst).await;
    // Both customers' first purchase is in January 2025, and both bought in it.
    let cohorts = r.ok()["cohorts"].clone();
    assert_eq!(
        cohorts,
        json!([{"cohort": "2025-01", "customers": 2, "retained": [2], "rates": [1.0]}])
    );
    let l = app.get("/v1/metrics/ltv", &app.analyst).await;
    let l = l.ok();
    // Historical: ana 0 + 6000, bia 4000: total 10000, mean 5000, median 4000, p90 6000.
    assert_eq!(
        l["historical"],
        json!({"customers": 2, "total_minor": 10_000, "mean_minor": 5_000.0, "median_minor": 4_000, "p90_minor": 6_000})
    );
    // Two customers are far too few to fit the models on: said so, with the reason.
    assert_eq!(l["predicted"]["status"], "not_measurable");
    assert!(l["predicted"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("too few customers"));
    assert_eq!(l["cohorts"][0]["predicted_mean_minor"], Value::Null);
}

/// The `nth` customer id that the default salt puts in `arm` at a 50 % share.
fn customer_in(arm: Arm, nth: usize) -> String {
    salted_customer_in("program", arm, nth)
}

/// The `nth` customer id that `salt` puts in `arm` at a 50 % share.
fn salted_customer_in(salt: &str, arm: Arm, nth: usize) -> String {
    (0..1_000)
        .map(|i| format!("k{i}"))
        .filter(|c| {
            assign(
                salt,
                &CustomerId::parse(c.as_str()).unwrap(),
                BasisPoints(5_000),
            ) == arm
        })
        .nth(nth)
        .expect("customers in both arms")
}

/// What `campaign` paid in a receipt's (or a preview's) campaign list, if it is listed.
fn outcome_of<'a>(receipt: &'a Value, campaign: &str) -> Option<&'a Value> {
    receipt["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["campaign_id"] == campaign)
}

/// Holds half the customers out of the whole program (those `customer_in` puts there).
async fn hold_out_half_of_the_program(app: &TestApp) {
    app.put(
        "/v1/program",
        &app.admin,
        json!({"holdout_share_bp": 5_000}),
    )
    .await
    .ok();
}

/// Creates a stackable 10 % campaign of 2025 holding out half the customers it reaches.
async fn create_holdout_campaign(app: &TestApp, id: &str, name: &str) {
    app.post(
        "/v1/campaigns",
        &app.admin,
        json!({"id": id, "definition": {
            "name": name,
            "window": {"starts_on": "2025-01-01", "ends_on": "2025-12-31"},
            "reward": {"kind": "percent", "rate_bp": 1000},
            "stacking": {"mode": "stackable"},
            "holdout": {"share_bp": 5000}
        }}),
    )
    .await
    .ok();
}

#[tokio::test]
async fn a_campaign_with_the_longest_id_has_its_experiment_reported() {
    let app = TestApp::new().await;
    let id = "c".repeat(kembali_core::limits::MAX_ID_LEN);
    create_holdout_campaign(&app, &id, "Long").await;
    let experiment = format!("campaign:{id}");
    let r = app
        .get(&format!("/v1/experiments/{experiment}"), &app.analyst)
        .await;
    assert_eq!(r.ok()["holdout_share_bp"], 5_000);
    app.get(&format!("/v1/experiments/{experiment}c"), &app.analyst)
        .await
        .invalid("experiment_id", "invalid_id");
}

#[tokio::test]
async fn a_campaign_holdout_is_listed_reported_and_filtered_on() {
    let app = TestApp::new().await;
    create_holdout_campaign(&app, "double", "Double").await;
    // Listed before anyone is assigned.
    assert_eq!(
        app.get("/v1/experiments", &app.analyst).await.ok(),
        &json!([{"id": "campaign:double", "holdout_share_bp": 5_000, "treatment_customers": 0, "holdout_customers": 0}])
    );
    // Treated customers spend 100,00, 200,00 and 300,00 and earn 5 % + 10 %; held-out ones
    // spend 100,00 each and earn the base rate alone (the salt is the campaign id).
    for (k, spend) in [10_000, 20_000, 30_000].into_iter().enumerate() {
        let c = salted_customer_in("double", Arm::Treatment, k);
        let receipt = app.order(&c, &format!("t{k}"), spend).await;
        assert_eq!(receipt["cashback_minor"], spend * 15 / 100);
        let c = salted_customer_in("double", Arm::Holdout, k);
        let receipt = app.order(&c, &format!("h{k}"), 10_000).await;
        assert_eq!(receipt["cashback_minor"], 500);
        let double = outcome_of(&receipt, "double").unwrap();
        assert_eq!(
            (&double["amount_minor"], &double["held_out"]),
            (&json!(0), &json!(true))
        );
    }
    assert_eq!(
        app.get("/v1/experiments", &app.analyst).await.ok(),
        &json!([{"id": "campaign:double", "holdout_share_bp": 5_000, "treatment_customers": 3, "holdout_customers": 3}])
    );
    // The colon may come percent-encoded.
    for path in [
        "/v1/experiments/campaign:double",
        "/v1/experiments/campaign%3Adouble",
    ] {
        let r = app.get(path, &app.analyst).await;
        let r = r.ok();
        // Spend 20000 vs 10000: difference 10000; the campaign's cost 10 % of 60000 = 6000;
        // incremental margin 10000 × 3 × 30 % = 9000: ROI (9000 − 6000) / 6000 = 0.5.
        assert_eq!(r["spend_per_customer"]["difference"], 10_000.0);
        assert_eq!(r["roi"]["cashback_cost_minor"], 6_000);
        assert_eq!(r["roi"]["roi"], 0.5);
        assert_eq!(r["sample_ratio"]["mismatch"], false);
    }
    app.get("/v1/experiments/campaign:nope", &app.analyst)
        .await
        .problem(404, "not_found");
    app.get("/v1/experiments/campaign:", &app.analyst)
        .await
        .problem(404, "not_found");
    // The campaign filter: the treated customers' orders, on which it paid.
    let s = app
        .get("/v1/metrics/summary?campaign=double", &app.analyst)
        .await;
    let s = s.ok();
    assert_eq!(
        (&s["orders"], &s["active_customers"]),
        (&json!(3), &json!(3))
    );
    assert_eq!(s["gross_revenue_minor"], 60_000);
    assert_eq!(s["cost"]["cashback_earned_minor"], 9_000);
    let r = app
        .get("/v1/metrics/retention?campaign=double", &app.analyst)
        .await;
    assert_eq!(r.ok()["cohorts"][0]["customers"], 3);
    app.get("/v1/metrics/ltv?campaign=nope", &app.analyst)
        .await
        .invalid("campaign", "unknown_campaign");
}

#[tokio::test]
async fn the_program_holdout_is_listed_and_reported_against_treatment() {
    let app = TestApp::new().await;
    assert_eq!(
        app.get("/v1/experiments", &app.analyst).await.ok(),
        &json!([])
    );
    app.get("/v1/experiments/program", &app.analyst)
        .await
        .problem(404, "not_found");
    hold_out_half_of_the_program(&app).await;
    // Three treated customers spend 100,00, 200,00 and 300,00; three held out 100,00 each.
    for (k, spend) in [10_000, 20_000, 30_000].into_iter().enumerate() {
        let c = customer_in(Arm::Treatment, k);
        let receipt = app.order(&c, &format!("t{k}"), spend).await;
        assert_eq!(receipt["cashback_minor"], spend / 20);
        let c = customer_in(Arm::Holdout, k);
        let receipt = app.order(&c, &format!("h{k}"), 10_000).await;
        assert_eq!(receipt["cashback_minor"], 0);
    }
    let list = app.get("/v1/experiments", &app.analyst).await;
    assert_eq!(
        list.ok(),
        &json!([{"id": "program", "holdout_share_bp": 5_000, "treatment_customers": 3, "holdout_customers": 3}])
    );
    let r = app.get("/v1/experiments/program", &app.analyst).await;
    let r = r.ok();
    // Spend per customer 20000 vs 10000: difference 10000; cost 5 % of 60000 = 3000;
    // incremental margin 10000 × 3 × 30 % = 9000: ROI (9000 − 3000) / 3000 = 2.
    assert_eq!(
        (
            r["treatment_customers"].as_u64(),
            r["holdout_customers"].as_u64()
        ),
        (Some(3), Some(3))
    );
    assert_eq!(r["spend_per_customer"]["status"], "measured");
    assert_eq!(r["spend_per_customer"]["difference"], 10_000.0);
    assert_eq!(r["roi"]["cashback_cost_minor"], 3_000);
    assert_eq!(r["roi"]["roi"], 2.0);
    assert_eq!(r["sample_ratio"]["mismatch"], false);
    // Everyone ordered once: no variance in orders per customer, said so.
    assert_eq!(r["orders_per_customer"]["status"], "not_measurable");
    // The summary now carries the experiment's ROI.
    let s = app.get("/v1/metrics/summary", &app.admin).await;
    assert_eq!(s.ok()["roi"]["roi"], 2.0);
}

/// What `POST /v1/campaigns/preview` pays `customer` on an order of 100,00, and the
/// `double` campaign's outcome in it.
async fn preview_for(app: &TestApp, customer: &str) -> (i64, Option<Value>) {
    let r = app
        .post(
            "/v1/campaigns/preview",
            &app.analyst,
            json!({"order": crate::common::order_body(customer, "p1", 10_000)}),
        )
        .await;
    let r = r.ok();
    let double = outcome_of(r, "double").cloned();
    (r["cashback_minor"].as_i64().unwrap(), double)
}

#[tokio::test]
async fn a_preview_meets_the_customer_in_their_holdouts_as_an_order_would() {
    let app = TestApp::new().await;
    create_holdout_campaign(&app, "double", "Double").await;
    // A customer the campaign would hold out: the base rate alone, the campaign saying why,
    // before any order (the arm assignment gives now) and after one (the recorded arm).
    let held = salted_customer_in("double", Arm::Holdout, 0);
    let treated = salted_customer_in("double", Arm::Treatment, 0);
    for ordered in [false, true] {
        let (paid, double) = preview_for(&app, &held).await;
        assert_eq!(paid, 500, "ordered: {ordered}");
        let double = double.expect("the held-out campaign is listed");
        assert_eq!(
            (&double["amount_minor"], &double["held_out"]),
            (&json!(0), &json!(true))
        );
        assert_eq!(preview_for(&app, &treated).await.0, 1_500);
        if !ordered {
            assert_eq!(app.order(&held, "h0", 10_000).await["cashback_minor"], 500);
        }
    }
    // The previews recorded no arm: only the customer who ordered is in the experiment.
    let r = app.get("/v1/experiments", &app.analyst).await;
    assert_eq!(r.ok()[0]["treatment_customers"], 0);
    assert_eq!(r.ok()[0]["holdout_customers"], 1);
    // A customer in the program's holdout earns nothing, as their orders will.
    hold_out_half_of_the_program(&app).await;
    // (Not `held`: their program arm was recorded, treated, at their order.)
    let out = (0..)
        .map(|n| customer_in(Arm::Holdout, n))
        .find(|c| *c != held)
        .unwrap();
    assert_eq!(preview_for(&app, &out).await, (0, None));
    assert_eq!(app.order(&out, "o0", 10_000).await["cashback_minor"], 0);
}

#[tokio::test]
async fn the_openapi_document_carries_the_metric_definitions() {
    let app = TestApp::new().await;
    let doc = app.call("GET", "/openapi.json", None, None).await;
    let doc = doc.ok();
    let summary = doc["paths"]["/v1/metrics/summary"]["get"]["description"]
        .as_str()
        .unwrap();
    assert!(summary.contains("`repeat_purchase_rate` = customers with ≥ 2 orders in scope"));
    let ltv = doc["paths"]["/v1/metrics/ltv"]["get"]["description"]
        .as_str()
        .unwrap();
    assert!(ltv.contains("BG/NBD"));
    let exp = doc["paths"]["/v1/experiments/{experiment_id}"]["get"]["description"]
        .as_str()
        .unwrap();
    assert!(exp.contains("sample_ratio"));
    let params = doc["paths"]["/v1/metrics/retention"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["from", "to", "channel", "store", "segment", "campaign"]
    );
    let campaign = &params[5]["description"];
    assert!(campaign
        .as_str()
        .unwrap()
        .contains("orders on which this campaign paid cashback"));
    assert!(exp.contains("**Campaign experiments**"));
}
