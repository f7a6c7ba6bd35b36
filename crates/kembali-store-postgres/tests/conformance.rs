//! The conformance suite on PostgreSQL: a fresh database per test, dropped afterwards.

use kembali_store_postgres::testing::TestDatabase;
use kembali_store_postgres::{PgConfig, PgStore};

async fn postgres() -> (PgStore, TestDatabase) {
    let db = TestDatabase::create().await;
    let store = PgStore::connect(&db.url, PgConfig::default())
        .await
        .expect("connect");
    (store, db)
}

kembali_store_tests::conformance_tests!(postgres);
