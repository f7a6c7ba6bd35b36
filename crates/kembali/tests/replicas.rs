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

/// The checker's own store: few connections, beside the servers' pools.
async fn pg_store(url: &str) -> PgStore {
    let small = PgConfig {
        writers: 1,
        readers: 2,
        ..PgConfig::default()
    };
    PgStore::connect(url, small).await.expect("connect")
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
    assert!(
        acked.connection_errors > 0,
        "the kill did not land mid-load"
    );
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
    assert!(
        acked.connection_errors > 0,
        "the kill did not land mid-load"
    );
    // Recovery is SQLite's own (the WAL): the restarted server opens and answers.
    let server = Server::start(&url, &[]);
    assert_eq!(server.get("/readyz").await.0, 200);
    assert!(server.terminate().success());
    let path = SqliteStore::path_from_url(&url).unwrap();
    load::verify(
        SqliteStore::open(&path).expect("open"),
        &acked,
        WALLETS,
        false,
    )
    .await;
}

/// A TCP relay to PostgreSQL that the test can cut (every connection dropped, new ones
/// refused at once) and mend, to play a database that goes away and comes back.
struct Relay {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: &str) -> Relay {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (flag, all, target) = (up.clone(), links.clone(), target.to_string());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let target = target.clone();
                all.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Relay { port, up, links }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn mend(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn status_of(method: reqwest::Method, url: String, body: Option<serde_json::Value>) -> u16 {
    common::call(method, &url, ADMIN, body).await.0
}

/// Polls `url` until it answers `want`, for at most a minute.
async fn until_status(url: &str, want: u16) {
    for _ in 0..120 {
        if status_of(reqwest::Method::GET, url.to_string(), None).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{url} never answered {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_database_is_away_and_the_server_recovers() {
    let db = TestDatabase::create().await;
    let relay = Relay::start("127.0.0.1:5432").await;
    let url = db
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", relay.port));
    let server = Server::start(&url, &[]);
    let order = |id: &str| {
        serde_json::json!({"order_id": id, "channel": "web", "customer_id": "ana", "currency": "BRL",
            "lines": [{"line_id": "1", "sku": "tv", "category": "electronics", "quantity": 1, "unit_price_minor": 15000}]})
    };
    let orders = format!("{}/v1/orders", server.base);
    let (status, first) =
        common::call(reqwest::Method::POST, &orders, ADMIN, Some(order("O1"))).await;
    assert_eq!(status, 200, "{first}");

    relay.cut();
    until_status(&format!("{}/readyz", server.base), 503).await;
    let refused = status_of(reqwest::Method::POST, orders.clone(), Some(order("O2"))).await;
    assert_eq!(refused, 503, "a write while the database is away");

    relay.mend();
    until_status(&format!("{}/readyz", server.base), 200).await;
    // The acknowledged order is there (its retry replays it), and writes work again.
    let mut replay = (0, serde_json::Value::Null);
    for _ in 0..20 {
        replay = common::call(reqwest::Method::POST, &orders, ADMIN, Some(order("O1"))).await;
        if replay.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(replay.0, 200, "{}", replay.1);
    assert_eq!(replay.1, first);
    let (status, _) = common::call(reqwest::Method::POST, &orders, ADMIN, Some(order("O2"))).await;
    assert_eq!(status, 200);
    assert!(server.terminate().success());
}
