//! Campaign endpoints: versions and audit, roles, every problem of a bad definition at
//! once, earning through campaigns (explanations, budgets, caps), and preview.

use crate::common::{order_body, TestApp};
use serde_json::{json, Value};

/// 10 % on everything in January 2025, best-of.
fn january(rate_bp: i64) -> Value {
    json!({
        "name": "January 10",
        "window": { "starts_on": "2025-01-01", "ends_on": "2025-01-31" },
        "reward": { "kind": "percent", "rate_bp": rate_bp },
        "stacking": { "mode": "best_of", "priority": 10 }
    })
}

async fn create(app: &TestApp, id: &str, definition: Value) -> Value {
    app.post(
        "/v1/campaigns",
        &app.admin,
        json!({ "id": id, "definition": definition }),
    )
    .await
    .ok()
    .clone()
}

#[tokio::test]
async fn every_change_is_a_new_version_with_who_when_and_what() {
    let app = TestApp::new().await;
    let created = create(&app, "jan", january(1000)).await;
    assert_eq!(created["version"], 1);
    assert_eq!(created["status"], "active");

    let put = app
        .put(
            "/v1/campaigns/jan",
            &app.admin,
            json!({ "definition": january(1200), "expected_version": 1 }),
        )
        .await;
    assert_eq!(put.ok()["version"], 2);
    app.post("/v1/campaigns/jan/pause", &app.admin, json!({}))
        .await
        .ok();
    // Pausing a paused campaign is a no-op, not a version.
    let again = app
        .post("/v1/campaigns/jan/pause", &app.admin, json!({}))
        .await;
    assert_eq!(again.ok()["version"], 3);
    app.post("/v1/campaigns/jan/resume", &app.admin, json!({}))
        .await
        .ok();
    let ended = app
        .post("/v1/campaigns/jan/end", &app.admin, json!({}))
        .await;
    assert_eq!(ended.ok()["status"], "ended");

    let got = app.get("/v1/campaigns/jan", &app.analyst).await;
    let versions = got.ok()["versions"].as_array().expect("versions").clone();
    let summary: Vec<(i64, &str, &str)> = versions
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["action"].as_str().unwrap(),
                v["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "create", "active"),
            (2, "update", "active"),
            (3, "pause", "paused"),
            (4, "resume", "active"),
            (5, "end", "ended"),
        ]
    );
    assert_eq!(versions[1]["changes"], json!(["/reward/rate_bp"]));
    assert_eq!(versions[1]["definition"]["reward"]["rate_bp"], 1200);
    assert_eq!(versions[0]["definition"]["reward"]["rate_bp"], 1000);
    assert!(versions
        .iter()
        .all(|v| v["actor"] == "key_admin" || v["actor"].as_str().is_some_and(|a| !a.is_empty())));

    // An ended campaign stays ended.
    app.post("/v1/campaigns/jan/resume", &app.admin, json!({}))
        .await
        .problem(409, "campaign_ended");
    app.put(
        "/v1/campaigns/jan",
        &app.admin,
        json!({ "definition": january(1500) }),
    )
    .await
    .problem(409, "campaign_ended");

    let list = app.get("/v1/campaigns?status=ended", &app.analyst).await;
    assert_eq!(list.ok()["campaigns"][0]["id"], "jan");
    let active = app.get("/v1/campaigns?status=active", &app.analyst).await;
    assert_eq!(active.ok()["campaigns"], json!([]));
}

#[tokio::test]
async fn a_stale_expected_version_is_refused() {
    let app = TestApp::new().await;
    create(&app, "jan", january(1000)).await;
    app.put(
        "/v1/campaigns/jan",
        &app.admin,
        json!({ "definition": january(1100), "expected_version": 1 }),
    )
    .await
    .ok();
    app.put(
        "/v1/campaigns/jan",
        &app.admin,
        json!({ "definition": january(1300), "expected_version": 1 }),
    )
    .await
    .problem(409, "version_mismatch");
}

#[tokio::test]
async fn a_create_retried_with_the_same_definition_answers_the_same() {
    let app = TestApp::new().await;
    let first = create(&app, "jan", january(1000)).await;
    let again = create(&app, "jan", january(1000)).await;
    assert_eq!(first, again);
    app.post(
        "/v1/campaigns",
        &app.admin,
        json!({ "id": "jan", "definition": january(900) }),
    )
    .await
    .problem(409, "campaign_exists");
}

#[tokio::test]
async fn a_bad_definition_reports_every_problem_with_its_field_and_stores_nothing() {
    let app = TestApp::new().await;
    let bad = json!({
        "name": "Broken",
        "window": { "starts_on": "2025-02-01", "ends_on": "2025-01-01", "time_zone": "Mars/Olympus" },
        "reward": { "kind": "percent", "rate_bp": 10_001 },
        "caps": { "per_order_minor": -1 },
        "stacking": { "mode": "best_of" }
    });
    let r = app
        .post(
            "/v1/campaigns",
            &app.admin,
            json!({ "id": "broken", "definition": bad }),
        )
        .await;
    r.problem(422, "invalid_request");
    let fields: Vec<&str> = r.json["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for expected in [
        "definition.window.ends_on",
        "definition.window.time_zone",
        "definition.reward.rate_bp",
        "definition.caps.per_order_minor",
    ] {
        assert!(fields.contains(&expected), "{expected} in {fields:?}");
    }
    app.get("/v1/campaigns/broken", &app.admin)
        .await
        .problem(404, "campaign_not_found");

    // A tier list out of order names the tier.
    let tiers = json!({
        "name": "Tiers",
        "window": { "starts_on": "2025-01-01", "ends_on": "2025-12-31" },
        "reward": { "kind": "tiered", "tiers": [
            { "from_minor": 20_000, "rate_bp": 1000 },
            { "from_minor": 0, "rate_bp": -5 }
        ] },
        "stacking": { "mode": "exclusive" }
    });
    let r = app
        .post(
            "/v1/campaigns",
            &app.admin,
            json!({ "id": "tiers", "definition": tiers }),
        )
        .await;
    r.problem(422, "invalid_request");
    assert!(
        r.text.contains("definition.reward.tiers[1].rate_bp"),
        "{}",
        r.text
    );

    // An unknown field is refused, not ignored.
    let typo = json!({ "id": "typo", "definition": {
        "name": "Typo",
        "window": { "starts_on": "2025-01-01", "ends_on": "2025-12-31" },
        "reward": { "kind": "percent", "rate_bp": 100 },
        "stacking": { "mode": "best_of" },
        "capz": {}
    }});
    let r = app.post("/v1/campaigns", &app.admin, typo).await;
    r.not_a_server_error("unknown field");
    assert!(r.status.is_client_error());
}

#[tokio::test]
async fn admins_write_analysts_read_and_tills_do_neither() {
    let app = TestApp::new().await;
    let body = json!({ "id": "jan", "definition": january(1000) });
    for key in [&app.analyst, &app.web, &app.support] {
        app.post("/v1/campaigns", key, body.clone())
            .await
            .problem(403, "forbidden");
    }
    create(&app, "jan", january(1000)).await;
    for key in [&app.web, &app.support] {
        app.get("/v1/campaigns", key)
            .await
            .problem(403, "forbidden");
        app.get("/v1/campaigns/jan", key)
            .await
            .problem(403, "forbidden");
    }
    for path in [
        "/v1/campaigns/jan/pause",
        "/v1/campaigns/jan/resume",
        "/v1/campaigns/jan/end",
    ] {
        app.post(path, &app.analyst, json!({}))
            .await
            .problem(403, "forbidden");
    }
    app.put(
        "/v1/campaigns/jan",
        &app.analyst,
        json!({ "definition": january(1) }),
    )
    .await
    .problem(403, "forbidden");
    app.get("/v1/campaigns", &app.analyst).await.ok();
}

#[tokio::test]
async fn an_order_earns_from_the_campaign_and_says_so() {
    let app = TestApp::new().await;
    create(&app, "jan", january(1000)).await;
    app.put(
        "/v1/campaigns/jan",
        &app.admin,
        json!({ "definition": january(1200) }),
    )
    .await
    .ok();
    let receipt = app.order("ana", "o1", 10_000).await;
    assert_eq!(receipt["cashback_minor"], 1_200);
    let campaigns = receipt["campaigns"].as_array().expect("campaigns");
    assert_eq!(campaigns.len(), 1, "best-of pays only the campaign");
    assert_eq!(campaigns[0]["campaign_id"], "jan");
    assert_eq!(campaigns[0]["version"], 2);
    assert_eq!(campaigns[0]["funding"]["payer"], "retailer");
    let explanation = receipt["lines"][0]["explanation"].as_str().unwrap();
    assert!(explanation.contains("January 10"), "{explanation}");
    assert!(explanation.contains("(v2)"), "{explanation}");
    // The statement carries the same words.
    let statement = app.get("/v1/customers/ana/statement", &app.support).await;
    let text = statement.ok()["entries"][0]["explanation"]
        .as_str()
        .unwrap();
    assert!(text.contains("January 10 12 % (v2) on R$ 100,00"), "{text}");

    // Paused, the campaign pays nothing and the base rate is back.
    app.post("/v1/campaigns/jan/pause", &app.admin, json!({}))
        .await
        .ok();
    let base = app.order("ana", "o2", 10_000).await;
    assert_eq!(base["cashback_minor"], 500);
    assert_eq!(base["campaigns"][0]["campaign_id"], "base_rate");
}

#[tokio::test]
async fn a_budget_pays_until_it_is_spent_and_never_more() {
    let app = TestApp::new().await;
    let mut def = january(1000);
    def["caps"] = json!({ "budget_minor": 2_500 });
    def["stacking"] = json!({ "mode": "stackable" });
    create(&app, "budgeted", def).await;
    // Each 10,000 order earns 500 base + 1,000 from the campaign: two fit, the third gets
    // the 500 left, the fourth nothing.
    let mut paid = Vec::new();
    for i in 0..4 {
        let r = app.order(&format!("c{i}"), &format!("o{i}"), 10_000).await;
        paid.push(r["cashback_minor"].as_i64().unwrap());
    }
    assert_eq!(paid, vec![1_500, 1_500, 1_000, 500]);
    let got = app.get("/v1/campaigns/budgeted", &app.analyst).await;
    assert_eq!(got.ok()["budget_spent_minor"], 2_500);
    assert_eq!(got.json["budget_remaining_minor"], 0);

    // The budget cannot be set below what was spent.
    let mut lower = january(1000);
    lower["caps"] = json!({ "budget_minor": 2_000 });
    lower["stacking"] = json!({ "mode": "stackable" });
    app.put(
        "/v1/campaigns/budgeted",
        &app.admin,
        json!({ "definition": lower }),
    )
    .await
    .invalid("definition.caps.budget_minor", "below_spent");
}

#[tokio::test]
async fn a_daily_cap_per_customer_holds_across_orders_and_resets_the_next_day() {
    let app = TestApp::new().await;
    let mut def = january(1000);
    def["caps"] = json!({ "per_customer_day_minor": 1_500 });
    create(&app, "daily", def).await;
    let first = app.order("ana", "o1", 10_000).await;
    let second = app.order("ana", "o2", 10_000).await;
    assert_eq!(first["cashback_minor"], 1_000);
    // 500 of the campaign's daily 1,500 is left; the base rate (500) ties it and best-of
    // prefers the campaign.
    assert_eq!(second["cashback_minor"], 500);
    // Another customer has their own cap.
    assert_eq!(
        app.order("bia", "o3", 10_000).await["cashback_minor"],
        1_000
    );
    app.advance_days(1).await;
    assert_eq!(
        app.order("ana", "o4", 10_000).await["cashback_minor"],
        1_000
    );
}

#[tokio::test]
async fn preview_evaluates_drafts_and_changes_nothing() {
    let app = TestApp::new().await;
    create(&app, "jan", january(1000)).await;
    let mut eco = json!({
        "name": "Green",
        "window": { "starts_on": "2025-01-01", "ends_on": "2025-12-31" },
        "conditions": { "tags": ["eco"] },
        "reward": { "kind": "percent", "rate_bp": 500 },
        "stacking": { "mode": "stackable" }
    });
    let mut order = order_body("ana", "p1", 10_000);
    order["lines"][0]["tags"] = json!(["eco"]);
    let r = app
        .post(
            "/v1/campaigns/preview",
            &app.analyst,
            json!({ "order": order, "campaigns": [{ "id": "green", "definition": eco }] }),
        )
        .await;
    assert_eq!(r.ok()["cashback_minor"], 1_500);
    let ids: Vec<&str> = r.json["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["campaign_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["jan", "green"]);

    // Without the stored campaigns, only the draft and the base rate.
    let r = app
        .post(
            "/v1/campaigns/preview",
            &app.analyst,
            json!({ "order": order, "campaigns": [{ "id": "green", "definition": eco }], "include_active": false }),
        )
        .await;
    assert_eq!(r.ok()["cashback_minor"], 1_000);

    // A bad draft lists its problems under its index.
    eco["reward"]["rate_bp"] = json!(-1);
    let r = app
        .post(
            "/v1/campaigns/preview",
            &app.analyst,
            json!({ "order": order, "campaigns": [{ "id": "green", "definition": eco }] }),
        )
        .await;
    r.invalid("campaigns[0].definition.reward.rate_bp", "negative");

    // Nothing was stored: no customer, no order, no campaign.
    app.get("/v1/customers/ana", &app.admin)
        .await
        .problem(404, "customer_not_found");
    app.get("/v1/campaigns/green", &app.admin)
        .await
        .problem(404, "campaign_not_found");
    let totals = app.get("/v1/program/totals", &app.admin).await;
    assert_eq!(totals.ok()["earned_minor"], 0);
}

#[tokio::test]
async fn a_bad_campaign_id_is_a_clear_4xx() {
    let app = TestApp::new().await;
    let long = "x".repeat(300);
    let r = app.get(&format!("/v1/campaigns/{long}"), &app.admin).await;
    r.not_a_server_error("long id");
    assert!(r.status.is_client_error());
    app.post(
        "/v1/campaigns",
        &app.admin,
        json!({ "id": "base_rate", "definition": january(100) }),
    )
    .await
    .invalid("id", "reserved");
    app.get("/v1/campaigns?status=running", &app.admin)
        .await
        .invalid("status", "invalid_status");
}

#[tokio::test]
async fn backtest_compares_a_draft_with_what_was_paid_and_changes_nothing() {
    let app = TestApp::new().await;
    for i in 0..3 {
        app.order("ana", &format!("o{i}"), 10_000).await;
    }
    let body = json!({
        "from": "2025-01-01T00:00:00Z",
        "to": "2025-02-01T00:00:00Z",
        "campaigns": [{ "id": "jan", "definition": january(1000) }]
    });
    let r = app
        .post("/v1/campaigns/backtest", &app.analyst, body.clone())
        .await;
    assert_eq!(r.ok()["orders"], 3);
    assert_eq!(r.json["cost"]["actual_minor"], 1_500);
    assert_eq!(r.json["cost"]["simulated_minor"], 3_000);
    assert_eq!(r.json["difference_minor"], 1_500);
    assert_eq!(r.json["by_campaign"][0]["campaign_id"], "jan");
    app.get("/v1/campaigns/jan", &app.admin)
        .await
        .problem(404, "campaign_not_found");

    app.post("/v1/campaigns/backtest", &app.web, body.clone())
        .await
        .problem(403, "forbidden");
    let mut backwards = body;
    backwards["to"] = json!("2024-01-01T00:00:00Z");
    app.post("/v1/campaigns/backtest", &app.analyst, backwards)
        .await
        .invalid("to", "before_from");
}
