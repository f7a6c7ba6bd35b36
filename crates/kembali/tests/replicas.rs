//! Kembali as several processes: three stateless replicas on one PostgreSQL database under a
//! mixed concurrent load, and `kill -9` of a process mid-load on PostgreSQL and on SQLite.
//! Afterwards every acknowledged write is in the store and every invariant holds.

mod common;

use common::load::{self, LoadConfig};
use common::{scratch_dir, Server, ADMIN};
use kembali_store_postgres::testing::TestDatabase;
use kembali_store_postgres::{PgConfig, PgStore};
use kembali_store_sqlite::SqliteStore;
use std::time::Duration;

const WALLETS: usize = 50;

fn report(what: &str, acked: &load::Acked) {
    eprintln!(
        "{what}: {} orders, {} returns, {} redemptions acknowledged; statuses {:?}; {} connection errors",
        acked.orders.len(),
        acked.returns.len(),
        acked.redemptions.len(),
        acked.by_status,
        acked.connection_errors
    );
}

async fn pg_store(url: &str) -> PgStore {
    PgStore::connect(url, PgConfig::default())
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_database_lose_nothing_and_keep_every_invariant() {
    let db = TestDatabase::create().await;
    let servers: Vec<Server> = (0..3).map(|_| Server::start(&db.url, &[])).collect();
    load::program_without_pending_period(&servers[0].base, ADMIN).await;
    let bases = servers.iter().map(|s| s.base.clone()).collect();
    let config = LoadConfig {
        clients: 64,
        ops: 10_000,
        wallets: WALLETS,
        seed: 7,
        tolerate_connection_errors: false,
    };
    let acked = load::run(bases, ADMIN, &config).await;
    report("3 replicas", &acked);
    assert!(acked.orders.len() > 2_000, "the load did too little");
    assert!(
        acked.redemptions.values().any(|s| s == "captured"),
        "nothing was spent"
    );
    load::verify(pg_store(&db.url).await, &acked, WALLETS, true).await;
    for s in servers {
        assert!(s.terminate().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_mid_load_loses_no_acknowledged_write() {
    let db = TestDatabase::create().await;
    let mut servers: Vec<Server> = (0..2).map(|_| Server::start(&db.url, &[])).collect();
    load::program_without_pending_period(&servers[0].base, ADMIN).await;
    let bases = servers.iter().map(|s| s.base.clone()).collect();
    let config = LoadConfig {
        clients: 32,
        ops: 4_000,
        wallets: WALLETS,
        seed: 11,
        tolerate_connection_errors: true,
    };
    let running = tokio::spawn(async move { load::run(bases, ADMIN, &config).await });
    // Not a timing assertion: only when the kill lands, somewhere in the middle of the load.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    servers[0].child.kill().expect("kill -9");
    let acked = running.await.expect("the load");
    report("kill -9 of one of 2 replicas", &acked);
    assert!(acked.connection_errors > 0, "the kill did not land mid-load");
    // The killed replica comes back on the same database.
    servers[0] = Server::start(&db.url, &[]);
    load::verify(pg_store(&db.url).await, &acked, WALLETS, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_embedded_server_mid_load_loses_no_acknowledged_write() {
    let dir = scratch_dir();
    let url = common::db_url(&dir);
    let mut server = Server::start(&url, &[]);
    load::program_without_pending_period(&server.base, ADMIN).await;
    let config = LoadConfig {
        clients: 32,
        ops: 4_000,
        wallets: WALLETS,
        seed: 13,
        tolerate_connection_errors: true,
    };
    let bases = vec![server.base.clone()];
    let running = tokio::spawn(async move { load::run(bases, ADMIN, &config).await });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.child.kill().expect("kill -9");
    let acked = running.await.expect("the load");
    report("kill -9 of the SQLite server", &acked);
    assert!(acked.connection_errors > 0, "the kill did not land mid-load");
    // Recovery is SQLite's own (the WAL): the restarted server opens and answers.
    let server = Server::start(&url, &[]);
    let (status, _) = common::call(
        reqwest::Method::GET,
        &format!("{}/readyz", server.base),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(server.terminate().success());
    let path = SqliteStore::path_from_url(&url).unwrap();
    load::verify(SqliteStore::open(&path).expect("open"), &acked, WALLETS, false).await;
}
