//! Group commit: many jobs share one transaction, yet a job that fails after writing rolls
//! back alone and the others in its batch still commit.

use chrono::Utc;
use kembali_app::error::AppError;
use kembali_app::store::{job, Store};
use kembali_core::ids::CustomerId;
use kembali_store_sqlite::SqliteStore;
use kembali_store_tests::harness::customer_record as customer;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_after_its_writes_rolls_back_alone_in_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("k.db")).unwrap());
    // 200 jobs in flight at once land in a few batches; every third fails after writing.
    let jobs = (0..200).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write(job(move |tx| {
                    Box::pin(async move {
                        tx.insert_customer(&customer(&format!("c{i}"))).await?;
                        if i % 3 == 0 {
                            return Err(AppError::conflict("test_failure", "fails after writing"));
                        }
                        Ok(i)
                    })
                }))
                .await
        })
    });
    let results: Vec<_> = futures::future::join_all(jobs)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.is_ok(), i % 3 != 0, "job {i}: {r:?}");
    }
    let ids = store
        .read(job(|tx| {
            Box::pin(async move { Ok(tx.all_customer_ids(None, 1_000).await?) })
        }))
        .await
        .unwrap();
    assert_eq!(ids.len(), 200 - 67);
    assert!(ids
        .iter()
        .all(|c| c.as_str()[1..].parse::<usize>().unwrap() % 3 != 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_is_rolled_back_and_the_writer_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("k.db")).unwrap();
    let panicked = store
        .write(job(|tx| {
            Box::pin(async move {
                tx.insert_customer(&customer("ghost")).await?;
                panic!("a bug in a job");
                #[allow(unreachable_code)]
                Ok(())
            })
        }))
        .await;
    assert!(panicked.is_err());
    store
        .write(job(|tx| {
            Box::pin(async move { Ok(tx.insert_customer(&customer("real")).await?) })
        }))
        .await
        .unwrap();
    let ids = store
        .read(job(|tx| {
            Box::pin(async move { Ok(tx.all_customer_ids(None, 10).await?) })
        }))
        .await
        .unwrap();
    assert_eq!(ids, vec![CustomerId::parse("real").unwrap()]);
}

/// The orders of one group commit see what the jobs before them debited, though the debits
/// are written only when it commits (see `PendingBudgets`), through every read of the
/// campaign's row. A job that fails after its debit must not leave it behind: every job that
/// commits saw exactly what the jobs committed before it spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debits_rolled_back_with_their_job_are_not_seen_by_the_next_jobs() {
    use kembali_app::store::{CampaignAction, CampaignStatus};
    use kembali_core::ids::CampaignId;
    use kembali_store_tests::harness::campaign_version;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("k.db")).unwrap());
    let bf = CampaignId::parse("bf").unwrap();
    let version = campaign_version(
        "bf",
        1,
        CampaignAction::Create,
        CampaignStatus::Active,
        Some(1_000_000),
        Utc::now(),
    );
    store
        .write(job(move |tx| {
            Box::pin(async move { Ok(tx.put_campaign_version(&version).await?) })
        }))
        .await
        .unwrap();
    // 200 jobs in flight at once land in a few batches; each reads the budget and debits
    // 10, and every third then fails.
    let jobs = (0..200).map(|i| {
        let (store, bf) = (store.clone(), bf.clone());
        tokio::spawn(async move {
            store
                .write(job(move |tx| {
                    Box::pin(async move {
                        let seen = tx.lock_budgets(std::slice::from_ref(&bf)).await?[0].1;
                        tx.spend_budget(&bf, 10).await?;
                        let again = tx.lock_budgets(std::slice::from_ref(&bf)).await?[0].1;
                        assert_eq!(again, seen + 10, "a job reads its own debit");
                        let row = tx.campaign(&bf, true).await?.unwrap().budget_spent_minor;
                        let listed = tx.campaigns().await?[0].budget_spent_minor;
                        assert_eq!((row, listed), (again, again), "and so does its row");
                        if i % 3 == 0 {
                            return Err(AppError::conflict(
                                "test_failure",
                                "fails after its debit",
                            ));
                        }
                        Ok(seen)
                    })
                }))
                .await
        })
    });
    let mut seen: Vec<i64> = futures::future::join_all(jobs)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap().ok())
        .collect();
    seen.sort_unstable();
    let committed = 200 - 67;
    assert_eq!(seen, (0..committed).map(|k| 10 * k).collect::<Vec<_>>());
    let spent = store
        .read(job(move |tx| {
            Box::pin(async move { Ok(tx.campaign(&bf, false).await?.unwrap().budget_spent_minor) })
        }))
        .await
        .unwrap();
    assert_eq!(spent, 10 * committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_allocates_from_mimalloc_under_savepoints() {
    // Every connection in this binary opens through the store, which hands SQLite mimalloc
    // before opening: SQLite took it.
    assert!(kembali_store_sqlite::use_mimalloc());
    // SAFETY: a block SQLite allocates and frees at once.
    unsafe {
        let block = rusqlite::ffi::sqlite3_malloc(1000);
        assert!(!block.is_null());
        assert!(libmimalloc_sys::mi_is_in_heap_region(block));
        rusqlite::ffi::sqlite3_free(block);
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("k.db")).unwrap());
    let jobs = (0..100).map(|i| {
        let store = store.clone();
        async move {
            store
                .write(job(move |tx| {
                    Box::pin(async move {
                        tx.insert_customer(&customer(&format!("c{i}"))).await?;
                        Ok(())
                    })
                }))
                .await
        }
    });
    for r in futures::future::join_all(jobs).await {
        r.unwrap();
    }
    let found = store
        .read(job(|tx| {
            Box::pin(async move { Ok(tx.all_customer_ids(None, 1_000).await?.len()) })
        }))
        .await
        .unwrap();
    assert_eq!(found, 100);
}
