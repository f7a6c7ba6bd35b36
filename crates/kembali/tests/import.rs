//! History import on real SQLite and PostgreSQL: the CDNOW sample, reruns, bad rows, a CSV
//! round trip and earning on import. The same scenarios run on both stores.

use chrono::{DateTime, Duration, TimeZone, Utc};
use kembali_app::clock::{Clock, TestClock};
use kembali_app::import::source::Format;
use kembali_app::import::{ImportError, ImportSummary};
use kembali_app::model::{Caller, OrderLineRequest, OrderRequest};
use kembali_app::store::{job, OrderKey, OrderRecord, Store};
use kembali_app::Engine;
use kembali_core::ids::{Channel, CustomerId, OrderId};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const CDNOW: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../kembali-core/tests/data/cdnow/CDNOW_sample.txt"
);

/// The instant the test clock shows: after every order of the files below.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 12, 0, 0).unwrap()
}

async fn engine<S: Store>(store: S) -> (Engine<S>, Arc<TestClock>) {
    let clock = Arc::new(TestClock::new(now()));
    let engine = Engine::new(Arc::new(store), clock.clone());
    engine.init().await.unwrap();
    (engine, clock)
}

async fn import<S: Store>(
    engine: &Engine<S>,
    format: Format,
    path: &Path,
    earn: bool,
) -> Result<ImportSummary, ImportError> {
    let path: PathBuf = path.into();
    engine
        .import_from(format, move || std::fs::File::open(&path), earn)
        .await
}

async fn stored<S: Store>(engine: &Engine<S>, channel: Channel, id: &str) -> Option<OrderRecord> {
    let key = OrderKey {
        channel,
        order_id: OrderId::parse(id).unwrap(),
    };
    engine
        .store()
        .read(job(move |tx| {
            Box::pin(async move { Ok(tx.order(&key).await?) })
        }))
        .await
        .unwrap()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const HEADER: &str =
    "order_id,channel,store_id,customer_id,placed_at,currency,line_id,sku,category,tags,quantity,unit_price_minor,discount_minor";

// ------------------------------------------------------------------------------ scenarios

async fn cdnow_sample_imports_once_and_a_rerun_changes_nothing<S: Store>(store: S) {
    let (engine, _) = engine(store).await;
    let first = import(&engine, Format::Cdnow, Path::new(CDNOW), false)
        .await
        .unwrap();
    // 6,919 lines, one order each (wc -l CDNOW_sample.txt).
    assert_eq!(
        (first.orders, first.inserted, first.unchanged),
        (6_919, 6_919, 0)
    );
    // Line 1: ` 00004 0001 19970101  2   29.33` → customer 4, two CDs for $29.33.
    let o = stored(&engine, Channel::Web, "cdnow-1").await.unwrap();
    assert_eq!(o.customer_id.as_str(), "4");
    assert_eq!(
        o.placed_at,
        Utc.with_ymd_and_hms(1997, 1, 1, 0, 0, 0).unwrap()
    );
    assert_eq!(
        (o.total_minor, o.cashback_minor, o.lot_id),
        (2_933, 0, None)
    );
    assert_eq!(o.lines[0].line.quantity, 2);
    let totals = engine.totals().await.unwrap();
    assert_eq!((totals.earned_minor, totals.balanced), (0, true));

    let again = import(&engine, Format::Cdnow, Path::new(CDNOW), false)
        .await
        .unwrap();
    assert_eq!(
        (again.orders, again.inserted, again.unchanged),
        (6_919, 0, 6_919)
    );
    assert_eq!(stored(&engine, Channel::Web, "cdnow-1").await.unwrap(), o);
}

async fn bad_rows_are_named_by_line_and_nothing_is_imported<S: Store>(store: S) {
    let (engine, _) = engine(store).await;
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        &dir,
        "bad.csv",
        &format!(
            "{HEADER}
A1,web,,ana,2025-01-01T10:00:00Z,BRL,1,tv,electronics,,1,1000,0
A2,web,,bia,2025-01-01T10:00:00Z,BRL,1,tv,electronics,,0,1000,0
A3,fax,,bia,2025-01-02T10:00:00Z,BRL,1,tv,electronics,,1,abc,0
A4,web,,caio,2025-01-02T10:00:00Z,USD,1,tv,electronics,,1,100,0
A5,web,,caio,2099-01-02T10:00:00Z,BRL,1,tv,electronics,,1,100,0
A6,web,,dani,2025-01-03T10:00:00Z,BRL,1,tv,electronics,,1,100,200
A7,web,,ed,2025-01-03T10:00:00Z,BRL,1,tv,electronics,,1,100,0
"
        ),
    );
    let Err(ImportError::Rows(problems)) = import(&engine, Format::Csv, &bad, false).await else {
        panic!("bad rows must be refused");
    };
    let lines: Vec<u64> = problems.errors.iter().map(|e| e.line).collect();
    // Line 3 quantity 0; line 4 channel fax and price abc; line 5 USD; line 6 in the
    // future; line 7 a discount above the line.
    assert_eq!(lines, vec![3, 4, 4, 5, 6, 7], "{problems:?}");
    assert_eq!(problems.total, 6);
    assert!(
        problems.errors[1..3]
            .iter()
            .any(|e| e.message.contains("\"fax\"")),
        "{problems:?}"
    );
    assert!(stored(&engine, Channel::Web, "A1").await.is_none());
    assert!(stored(&engine, Channel::Web, "A7").await.is_none());

    // A conflict is only found while writing: the whole file is rolled back all the same.
    let good = write(
        &dir,
        "good.csv",
        &format!("{HEADER}\nB1,web,,ana,2025-01-01T10:00:00Z,BRL,1,tv,electronics,,1,1000,0\n"),
    );
    import(&engine, Format::Csv, &good, false).await.unwrap();
    let clash = write(
        &dir,
        "clash.csv",
        &format!(
            "{HEADER}
B2,web,,bia,2025-01-01T10:00:00Z,BRL,1,tv,electronics,,1,500,0
B1,web,,ana,2025-01-01T10:00:00Z,BRL,1,tv,electronics,,1,999,0
"
        ),
    );
    let Err(ImportError::Rows(problems)) = import(&engine, Format::Csv, &clash, false).await else {
        panic!("a conflicting order must be refused");
    };
    assert_eq!(problems.errors.len(), 1);
    assert_eq!(problems.errors[0].line, 3);
    assert!(problems.errors[0].message.contains("B1"));
    assert!(stored(&engine, Channel::Web, "B2").await.is_none());
    assert_eq!(
        stored(&engine, Channel::Web, "B1")
            .await
            .unwrap()
            .total_minor,
        1_000
    );
}

/// The CSV rows an order is stored as (the test's own rendering of the README's columns).
fn csv_rows(o: &OrderRecord) -> String {
    o.lines
        .iter()
        .map(|l| {
            let tags: Vec<&str> = l.line.tags.iter().map(|t| t.as_str()).collect();
            format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                o.key.order_id,
                o.key.channel,
                o.store_id.as_ref().map_or("", |s| s.as_str()),
                o.customer_id,
                o.placed_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                o.currency,
                l.line.line_id,
                l.line.sku,
                l.line.category,
                tags.join("|"),
                l.line.quantity,
                l.line.unit_price_minor,
                l.line.discount_minor
            )
        })
        .collect()
}

async fn csv_round_trip_stores_every_field<S: Store>(store: S) {
    let (engine, _) = engine(store).await;
    let dir = tempfile::tempdir().unwrap();
    let body = "W1,web,,ana,2025-03-01T14:30:00Z,BRL,1,tv-55,electronics,,1,250000,10000
W1,web,,ana,2025-03-01T14:30:00Z,BRL,2,bag,home,eco|reusable,3,1500,0
S1,store,sp-01,bia,2025-03-02T09:00:00Z,BRL,a,soap,beauty,eco,2,899,98
P1,app,,ana,2025-04-10T20:15:00Z,BRL,1,tv-55,electronics,,1,240000,0
";
    let file = write(&dir, "orders.csv", &format!("{HEADER}\n{body}"));
    let s = import(&engine, Format::Csv, &file, false).await.unwrap();
    assert_eq!((s.orders, s.lines, s.inserted), (3, 4, 3));
    let mut back = String::new();
    for (channel, id) in [
        (Channel::Web, "W1"),
        (Channel::Store, "S1"),
        (Channel::App, "P1"),
    ] {
        let o = stored(&engine, channel, id).await.unwrap();
        assert_eq!(o.cashback_minor, 0);
        back.push_str(&csv_rows(&o));
    }
    assert_eq!(back, body);
    let w1 = stored(&engine, Channel::Web, "W1").await.unwrap();
    assert_eq!(w1.total_minor, 250_000 - 10_000 + 3 * 1_500);
}

/// Earning on import gives each wallet what posting the same orders through the engine at
/// their placed_at (and settling as time goes) gives.
async fn earning_on_import_earns_what_the_engine_would<S: Store>(imported: S, posted: S) {
    let dir = tempfile::tempdir().unwrap();
    let start = now() - Duration::days(400);
    let mut rows = String::new();
    let mut requests = Vec::new();
    // 40 orders of 4 customers over 390 days: some lots mature, some expire (180 days).
    for i in 0..40i64 {
        let customer = format!("c{}", i % 4);
        let at = start + Duration::days(i * 9 + i % 3) + Duration::hours(i % 7);
        let price = 1_000 + 137 * i;
        let channel = if i % 2 == 0 {
            Channel::Web
        } else {
            Channel::App
        };
        rows.push_str(&format!(
            "E{i},{channel},,{customer},{},BRL,1,sku{i},books,,2,{price},{}\n",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            i * 3
        ));
        requests.push((
            at,
            OrderRequest {
                order_id: format!("E{i}"),
                channel: Some(channel),
                store_id: None,
                customer_id: customer,
                currency: "BRL".into(),
                placed_at: Some(at),
                lines: vec![OrderLineRequest {
                    line_id: "1".into(),
                    sku: format!("sku{i}"),
                    category: "books".into(),
                    tags: vec![],
                    quantity: 2,
                    unit_price_minor: price,
                    discount_minor: i * 3,
                }],
                redemption_id: None,
                partner_id: None,
            },
        ));
    }
    let file = write(&dir, "earn.csv", &format!("{HEADER}\n{rows}"));
    let (a, _) = engine(imported).await;
    let summary = import(&a, Format::Csv, &file, true).await.unwrap();
    assert_eq!(summary.inserted, 40);
    assert!(summary.cashback_minor > 0);

    // The same orders through the engine, the clock walking from one to the next.
    let clock = Arc::new(TestClock::new(start));
    let b = Engine::new(Arc::new(posted), clock.clone());
    b.init().await.unwrap();
    for (at, req) in requests {
        let now = clock.advance(at - clock.now());
        b.run_due_work(now).await.unwrap();
        b.post_order(req.parse(&Caller::default()).unwrap(), None)
            .await
            .unwrap();
    }
    let end = clock.advance(now() - clock.now());
    b.run_due_work(end).await.unwrap();

    let (ta, tb) = (a.totals().await.unwrap(), b.totals().await.unwrap());
    assert_eq!(ta, tb);
    assert!(ta.expired_minor > 0 && ta.available_minor > 0, "{ta:?}");
    assert_eq!(summary.cashback_minor, ta.earned_minor);
    for c in 0..4 {
        let id = CustomerId::parse(format!("c{c}")).unwrap();
        let (wa, wb) = (
            a.wallet(id.clone()).await.unwrap(),
            b.wallet(id.clone()).await.unwrap(),
        );
        assert_eq!(wa, wb);
        // The same entries at the same instants (journaled in another order: the import
        // settles once at the end, the walk settled as it went).
        let entries = |page: kembali_app::model::StatementPage| {
            let mut e: Vec<_> = page
                .entries
                .into_iter()
                .map(|e| (e.at, e.kind, e.delta.pending_minor, e.delta.available_minor))
                .collect();
            e.sort();
            e
        };
        let (sa, sb) = (
            a.statement(id.clone(), None, Some(500)).await.unwrap(),
            b.statement(id, None, Some(500)).await.unwrap(),
        );
        assert_eq!(entries(sa), entries(sb));
    }
}

// ------------------------------------------------------------------------------ stores

mod sqlite {
    use kembali_store_sqlite::SqliteStore;

    fn store(dir: &tempfile::TempDir, name: &str) -> SqliteStore {
        SqliteStore::open(&dir.path().join(name)).unwrap()
    }

    macro_rules! on_sqlite {
        ($($case:ident),*) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let dir = tempfile::tempdir().unwrap();
                super::$case(store(&dir, "k.db")).await;
            }
        )*};
    }

    on_sqlite!(
        cdnow_sample_imports_once_and_a_rerun_changes_nothing,
        bad_rows_are_named_by_line_and_nothing_is_imported,
        csv_round_trip_stores_every_field
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn earning_on_import_earns_what_the_engine_would() {
        let dir = tempfile::tempdir().unwrap();
        super::earning_on_import_earns_what_the_engine_would(
            store(&dir, "a.db"),
            store(&dir, "b.db"),
        )
        .await;
    }
}

mod postgres {
    use kembali_store_postgres::testing::TestDatabase;
    use kembali_store_postgres::{PgConfig, PgStore};

    async fn store(db: &TestDatabase) -> PgStore {
        PgStore::connect(&db.url, PgConfig::default())
            .await
            .unwrap()
    }

    macro_rules! on_postgres {
        ($($case:ident),*) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let db = TestDatabase::create().await;
                super::$case(store(&db).await).await;
            }
        )*};
    }

    on_postgres!(
        cdnow_sample_imports_once_and_a_rerun_changes_nothing,
        bad_rows_are_named_by_line_and_nothing_is_imported,
        csv_round_trip_stores_every_field
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn earning_on_import_earns_what_the_engine_would() {
        let (da, db) = (TestDatabase::create().await, TestDatabase::create().await);
        super::earning_on_import_earns_what_the_engine_would(store(&da).await, store(&db).await)
            .await;
    }
}
