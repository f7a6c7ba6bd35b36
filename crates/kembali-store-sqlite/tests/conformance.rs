//! The conformance suite on a real SQLite file (WAL, synchronous=FULL), one per test.

use kembali_store_sqlite::SqliteStore;

async fn sqlite() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("kembali.db")).expect("open");
    (store, dir)
}

kembali_store_tests::conformance_tests!(sqlite);
