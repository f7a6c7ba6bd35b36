//! Databases written before positional rows hold what evaluation leaves (an order's
//! outcomes, its lot's campaign versions, its lines' rules) as lists of JSON objects. A
//! database that holds both forms must answer as if it held one.

use kembali_app::model::CampaignCreateRequest;
use kembali_app::store::stored;
use kembali_core::analytics::metrics::Filter;
use kembali_core::ids::{CampaignId, Channel};
use kembali_store_sqlite::SqliteStore;
use kembali_store_tests::harness::Harness;
use std::path::Path;

/// Rewrites every stored list of the database in the object form, as earlier versions wrote
/// them; returns how many were rewritten.
fn to_object_form(db: &Path) -> usize {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut rewritten = 0;
    let mut rewrite = |select: &str, update: &str, to_objects: &dyn Fn(&str) -> String| {
        let rows: Vec<(String, String)> = conn
            .prepare(select)
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (key, list) in rows {
            let objects = to_objects(&list);
            assert!(objects.starts_with("[{"), "{objects}");
            conn.execute(update, rusqlite::params![objects, key])
                .unwrap();
            rewritten += 1;
        }
    };
    rewrite(
        "SELECT order_id, campaigns FROM orders WHERE campaigns != '[]'",
        "UPDATE orders SET campaigns = ?1 WHERE order_id = ?2",
        &|s| serde_json::to_string(&stored::outcomes_from(s).unwrap()).unwrap(),
    );
    rewrite(
        "SELECT CAST(id AS TEXT), campaigns FROM lots WHERE campaigns != '[]'",
        "UPDATE lots SET campaigns = ?1 WHERE CAST(id AS TEXT) = ?2",
        &|s| serde_json::to_string(&stored::lot_campaigns_from(s).unwrap()).unwrap(),
    );
    rewrite(
        "SELECT order_id || '/' || line_no, rules FROM order_lines WHERE rules != '[]'",
        "UPDATE order_lines SET rules = ?1 WHERE order_id || '/' || line_no = ?2",
        &|s| serde_json::to_string(&stored::rules_from(s).unwrap()).unwrap(),
    );
    rewritten
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_lots_and_lines_in_the_object_form_read_as_they_were_answered() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kembali.db");
    let h = Harness::new(SqliteStore::open(&db).unwrap()).await;
    let definition = serde_json::json!({
        "name": "Books",
        "window": {"starts_on": "2025-01-01", "ends_on": "2027-12-31"},
        "conditions": {"categories": ["book"]},
        "reward": {"kind": "percent", "rate_bp": 1000},
        "stacking": {"mode": "stackable"}
    });
    let books = CampaignCreateRequest {
        id: "books".into(),
        definition: serde_json::from_value(definition).unwrap(),
    };
    h.engine.create_campaign("admin", books).await.unwrap();
    let lines = [("1", "book", 2, 5_000), ("2", "toys", 1, 8_000)];
    let first = h
        .order(Channel::Web, None, "O1", "ana", &lines, None)
        .await
        .unwrap();
    assert!(first.campaigns.iter().any(|c| c.campaign_id == "books"));
    let only_books = Filter {
        campaign: Some(CampaignId::parse("books").unwrap()),
        ..Filter::default()
    };
    // The campaign's report: its orders and what they earned.
    let paid = async || {
        let s = h
            .engine
            .metrics_summary(only_books.clone())
            .await
            .unwrap()
            .summary;
        (s.orders, s.cost.cashback_earned_minor)
    };
    let before = paid().await;
    assert_eq!(before, (1, 1_900));

    // One order, its lot and its two lines: every list now in the object form.
    assert_eq!(to_object_form(&db), 4);
    // The retry is answered from what is stored, so it reads the order and its lines back.
    let replay = h
        .order(Channel::Web, None, "O1", "ana", &lines, None)
        .await
        .unwrap();
    assert_eq!(replay, first);
    // The campaign's report finds its lot in the object form, and beside one in rows.
    let after = paid().await;
    assert_eq!(after, before);
    h.order(Channel::Web, None, "O2", "bia", &lines, None)
        .await
        .unwrap();
    let both = paid().await;
    assert_eq!(both, (2, 3_800));
    // Returning the old order claws back what its lines' rules say they earned.
    let back = h.cancel("O1").await.unwrap();
    assert_eq!(back.clawed_back_minor, first.cashback_minor);
}
