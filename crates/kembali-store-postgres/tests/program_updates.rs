//! The program's settings under concurrent changes on two replicas: a change names only the
//! fields it sets, so two changes of different fields made at once must both stand (each is
//! applied to the settings the other left, never to a stale copy); replicas starting at once
//! on an empty database create the program once. (That a start never overwrites settings
//! that stand is a conformance case, for every store.)

use kembali_app::clock::TestClock;
use kembali_app::model::ProgramRequest;
use kembali_app::Engine;
use kembali_store_postgres::testing::TestDatabase;
use kembali_store_postgres::{PgConfig, PgStore};
use std::sync::Arc;

async fn replica(url: &str, clock: &Arc<TestClock>) -> Engine<PgStore> {
    let store = PgStore::connect(url, PgConfig::default())
        .await
        .expect("connect");
    Engine::new(Arc::new(store), clock.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_of_different_fields_on_two_replicas_at_once_both_stand() {
    let db = TestDatabase::create().await;
    let clock = Arc::new(TestClock::new(kembali_store_tests::harness::day_zero()));
    let (a, b) = (
        replica(&db.url, &clock).await,
        replica(&db.url, &clock).await,
    );
    a.init().await.unwrap();
    for k in 0..30u32 {
        let rate = ProgramRequest {
            base_rate_bp: Some(100 + k),
            ..ProgramRequest::default()
        };
        let pending = ProgramRequest {
            pending_days: Some(10 + k),
            ..ProgramRequest::default()
        };
        let (ra, rb) = tokio::join!(a.update_program(rate), b.update_program(pending));
        ra.unwrap();
        rb.unwrap();
        let program = a.program().await.unwrap();
        assert_eq!(
            (program.base_rate_bp, program.pending_days),
            (100 + k, 10 + k),
            "round {k}: one change was lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_at_once_on_an_empty_database_create_the_program_once() {
    let db = TestDatabase::create().await;
    let clock = Arc::new(TestClock::new(kembali_store_tests::harness::day_zero()));
    let replicas = [
        replica(&db.url, &clock).await,
        replica(&db.url, &clock).await,
        replica(&db.url, &clock).await,
    ];
    let started = futures::future::join_all(replicas.iter().map(|r| r.init())).await;
    for s in started {
        assert_eq!(s.unwrap().base_rate_bp, 500, "the defaults");
    }
    let change = ProgramRequest {
        base_rate_bp: Some(700),
        ..ProgramRequest::default()
    };
    replicas[0].update_program(change).await.unwrap();
    // A replica starting later finds the program and changes nothing.
    let late = replica(&db.url, &clock).await;
    assert_eq!(late.init().await.unwrap().base_rate_bp, 700);
    assert_eq!(replicas[2].program().await.unwrap().base_rate_bp, 700);
}
