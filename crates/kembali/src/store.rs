//! Picks the store adapter from the database URL's scheme at run time, so one build serves
//! every backend.

use anyhow::{bail, Context, Result};
use kembali_store_postgres::{PgConfig, PgStore};
use kembali_store_sqlite::SqliteStore;

/// An opened store, one variant per adapter. Commands are generic over `Store` and pick the
/// variant once, through [`with_store!`](crate::with_store).
pub enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Runs `$body` with `$s` bound to the concrete store inside `$backend`.
#[macro_export]
macro_rules! with_store {
    ($backend:expr, |$s:ident| $body:expr) => {
        match $backend {
            $crate::store::Backend::Sqlite($s) => $body,
            $crate::store::Backend::Postgres($s) => $body,
        }
    };
}

/// Like [`open`], for commands that only read what is there (`report`, `backtest`): a SQLite
/// file that does not exist is an error, not a new empty database.
pub async fn open_existing(url: &str) -> Result<Backend> {
    if let Some(path) = SqliteStore::path_from_url(url) {
        if !path.exists() {
            bail!("no database at {}", path.display());
        }
    }
    open(url).await
}

/// Opens the store `url` names, running its migrations. Must run inside the tokio runtime
/// (the adapters start their writers there).
pub async fn open(url: &str) -> Result<Backend> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    match scheme {
        "sqlite" => {
            let path = SqliteStore::path_from_url(url)
                .with_context(|| format!("no file path in database URL {url:?}"))?;
            let store = SqliteStore::open(&path)
                .with_context(|| format!("opening SQLite database {}", path.display()))?;
            Ok(Backend::Sqlite(store))
        }
        "postgres" | "postgresql" => {
            let store = PgStore::connect(url, pg_config()?)
                .await
                .context("connecting to PostgreSQL")?;
            Ok(Backend::Postgres(store))
        }
        _ => bail!("unsupported database URL {url:?}: use sqlite://PATH or postgres://HOST/DB"),
    }
}

/// The PostgreSQL adapter's settings, with `KEMBALI_PG_WRITERS`, `KEMBALI_PG_READERS` and
/// `KEMBALI_PG_MAX_BATCH` from the environment overriding the defaults.
pub fn pg_config() -> Result<PgConfig> {
    let mut c = PgConfig::default();
    let var = |name: &str| -> Result<Option<usize>> {
        match std::env::var(name) {
            Ok(v) => match v.parse::<usize>() {
                Ok(n) if (1..=1024).contains(&n) => Ok(Some(n)),
                _ => bail!("{name} must be a number from 1 to 1024, not {v:?}"),
            },
            Err(_) => Ok(None),
        }
    };
    if let Some(n) = var("KEMBALI_PG_WRITERS")? {
        c.writers = n;
    }
    if let Some(n) = var("KEMBALI_PG_READERS")? {
        c.readers = n as u32;
    }
    if let Some(n) = var("KEMBALI_PG_MAX_BATCH")? {
        c.max_batch = n;
    }
    Ok(c)
}
