//! The program's settings under concurrent changes on two replicas: a change names only the
//! fields it sets, so two changes of different fields made at once must both stand (each is
//! applied to the settings the other left, never to a stale copy); replicas starting at once
//! on an empty database create the program once. (That a start never overwrites settings
//! that stand is a conformance case, for every store.) A currency change and the first
//! entries written at once never leave an entry in a currency the program no longer has.

use kembali_app::clock::{Clock, TestClock};
use kembali_app::error::{AppError, StoreError};
use kembali_app::model::ProgramRequest;
use kembali_app::store::{job, EntryRefs, JournalEntry, Store};
use kembali_app::Engine;
use kembali_core::ids::CustomerId;
use kembali_core::ledger::{Account, Entry, EntryKind};
use kembali_store_postgres::testing::TestDatabase;
use kembali_store_postgres::{PgConfig, PgStore};
use std::sync::Arc;
use tokio::sync::oneshot;

async fn replica(url: &str, clock: &Arc<TestClock>) -> Engine<PgStore> {
    let store = PgStore::connect(url, PgConfig::default())
        .await
        .expect("connect");
    Engine::new(Arc::new(store), clock.clone())
}

/// A fresh database (dropped with the guard), its clock, and two replicas on it, the
/// program created.
async fn two_replicas() -> (
    TestDatabase,
    Arc<TestClock>,
    Engine<PgStore>,
    Engine<PgStore>,
) {
    let db = TestDatabase::create().await;
    let clock = Arc::new(TestClock::new(kembali_store_tests::harness::day_zero()));
    let (a, b) = (
        replica(&db.url, &clock).await,
        replica(&db.url, &clock).await,
    );
    a.init().await.unwrap();
    (db, clock, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_of_different_fields_on_two_replicas_at_once_both_stand() {
    let (_db, _, a, b) = two_replicas().await;
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

fn to_usd() -> ProgramRequest {
    ProgramRequest {
        currency: Some("USD".into()),
        ..ProgramRequest::default()
    }
}

async fn has_entries(e: &Engine<PgStore>) -> bool {
    e.store()
        .write(job(|tx| {
            Box::pin(async move { Ok(tx.has_entries().await?) })
        }))
        .await
        .unwrap()
}

/// An earn entry of 1.00 for `ana` in `asset`, at `clock`'s instant.
fn earn_entry(asset: &str, clock: &TestClock) -> JournalEntry {
    JournalEntry {
        seq: 0,
        at: clock.now(),
        customer_id: CustomerId::parse("ana").unwrap(),
        asset: asset.into(),
        entry: Entry::transfer(
            EntryKind::Earn,
            Account::Earned,
            Account::Pending,
            100,
            "test".into(),
        ),
        refs: EntryRefs::default(),
    }
}

/// What replica `a` writes as an order would: it reads the settings, says so on `read`,
/// then (after `go`, when `entry_first` is false) writes an entry in the currency it read;
/// with `entry_first` it writes the entry before saying so and ends after `go`.
fn order_like(
    a: &Engine<PgStore>,
    clock: &Arc<TestClock>,
    entry_first: bool,
) -> (
    tokio::task::JoinHandle<Result<(), AppError>>,
    oneshot::Receiver<()>,
    oneshot::Sender<()>,
) {
    let (read_tx, read_rx) = oneshot::channel::<()>();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (store, clock) = (a.store().clone(), clock.clone());
    let task = tokio::spawn(async move {
        store
            .write(job(move |tx| {
                Box::pin(async move {
                    let settings = tx.program(false).await?.expect("a program");
                    let entry = earn_entry(settings.currency.as_str(), &clock);
                    if entry_first {
                        tx.append_entry(&entry).await?;
                    }
                    let _ = read_tx.send(());
                    let _ = go_rx.await;
                    if !entry_first {
                        tx.append_entry(&entry).await?;
                    }
                    Ok(())
                })
            }))
            .await
    });
    (task, read_rx, go_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_written_after_a_currency_change_in_the_old_currency_is_refused() {
    let (_db, clock, a, b) = two_replicas().await;
    // Replica a reads BRL; replica b changes the currency (no entry yet), then a writes.
    let (order, read, go) = order_like(&a, &clock, false);
    read.await.unwrap();
    assert_eq!(b.update_program(to_usd()).await.unwrap().currency, "USD");
    go.send(()).unwrap();
    let refused = order.await.unwrap();
    assert!(
        matches!(refused, Err(AppError::Store(StoreError::Conflict(_)))),
        "{refused:?}"
    );
    assert!(!has_entries(&a).await);
    // Written in the currency that stands, an entry is taken.
    let (order, read, go) = order_like(&a, &clock, false);
    read.await.unwrap();
    go.send(()).unwrap();
    order.await.unwrap().unwrap();
    assert!(has_entries(&a).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_currency_change_waits_for_an_entry_not_yet_committed_and_is_refused() {
    let (_db, clock, a, b) = two_replicas().await;
    // Replica a has written a BRL entry and not committed; replica b asks for USD meanwhile.
    let (order, written, commit) = order_like(&a, &clock, true);
    written.await.unwrap();
    let change = tokio::spawn(async move { b.update_program(to_usd()).await });
    // Gives the change the time to reach the journal before a commits; were it later, it
    // would find the committed entry, and the outcome would be the same.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    commit.send(()).unwrap();
    order.await.unwrap().unwrap();
    let refused = change.await.unwrap();
    assert!(
        matches!(&refused, Err(AppError::Rejected { code, .. }) if *code == "currency_locked"),
        "{refused:?}"
    );
    assert_eq!(a.program().await.unwrap().currency, "BRL");
}
