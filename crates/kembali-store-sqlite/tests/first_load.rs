//! A first load (history imported while no order is stored) builds the orders' secondary
//! indexes once at its end instead of inserting into them order by order. What commits
//! must be the schema the migrations make; a load that fails must leave it untouched.

use kembali_app::clock::SystemClock;
use kembali_app::import::source::Format;
use kembali_app::import::ImportError;
use kembali_app::Engine;
use kembali_store_sqlite::SqliteStore;
use std::path::Path;
use std::sync::Arc;

const HEADER: &str = "order_id,channel,store_id,customer_id,placed_at,currency,line_id,sku,\
                      category,tags,quantity,unit_price_minor,discount_minor";

/// Every index of the database with the statement that made it.
fn indexes(db: &Path) -> Vec<(String, Option<String>)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut st = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn orders(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0))
        .unwrap()
}

/// The plan SQLite picks for a customer's orders by time (first purchase, favourites).
fn customer_plan(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut st = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT placed_at FROM orders
             WHERE customer_id = 'c1' ORDER BY placed_at",
        )
        .unwrap();
    st.query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect::<Vec<_>>()
        .join("; ")
}

async fn import(db: &Path, csv: String) -> Result<u64, ImportError> {
    let store = SqliteStore::open(db).unwrap();
    let engine = Engine::new(Arc::new(store), Arc::new(SystemClock));
    engine.init().await.unwrap();
    let summary = engine
        .import_from(
            Format::Csv,
            move || Ok(std::io::Cursor::new(csv.into_bytes())),
            false,
        )
        .await?;
    Ok(summary.orders)
}

fn rows(range: std::ops::Range<usize>) -> String {
    let mut csv = format!("{HEADER}\n");
    for i in range {
        csv.push_str(&format!(
            "O{i},web,,c{},2025-0{}-1{}T10:00:00Z,BRL,1,sku-{i},book,,1,{},0\n",
            i % 7,
            1 + i % 9,
            i % 10,
            1_000 + i
        ));
    }
    csv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_load_commits_the_schema_the_migrations_make() {
    let dir = tempfile::tempdir().unwrap();
    let (fresh, loaded) = (dir.path().join("fresh.db"), dir.path().join("loaded.db"));
    drop(SqliteStore::open(&fresh).unwrap());
    let migrated = indexes(&fresh);
    assert!(migrated.iter().any(|(n, _)| n == "orders_by_customer"));
    assert!(migrated.iter().any(|(n, _)| n == "orders_by_placed"));

    assert_eq!(import(&loaded, rows(0..500)).await.unwrap(), 500);
    assert_eq!(orders(&loaded), 500);
    assert_eq!(indexes(&loaded), migrated);
    assert!(
        customer_plan(&loaded).contains("orders_by_customer"),
        "{}",
        customer_plan(&loaded)
    );

    // A second load into a program with orders keeps its indexes as they are.
    assert_eq!(import(&loaded, rows(400..900)).await.unwrap(), 500);
    assert_eq!(orders(&loaded), 900);
    assert_eq!(indexes(&loaded), migrated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_load_that_fails_leaves_the_schema_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (fresh, failed) = (dir.path().join("fresh.db"), dir.path().join("failed.db"));
    drop(SqliteStore::open(&fresh).unwrap());
    // 3,000 good orders (past the first batches, so the indexes were dropped and rows
    // written), then a row with a negative quantity.
    let mut csv = rows(0..3_000);
    csv.push_str("BAD,web,,c1,2025-01-01T10:00:00Z,BRL,1,sku-1,book,,-1,100,0\n");
    match import(&failed, csv).await {
        Err(ImportError::Rows(problems)) => assert_eq!(problems.total, 1),
        other => panic!("expected the bad row, got {other:?}"),
    }
    assert_eq!(orders(&failed), 0);
    assert_eq!(indexes(&failed), indexes(&fresh));
}
