//! Picks the store adapter from the database URL's scheme at run time, so one build serves
//! every backend.

use anyhow::{bail, Context, Result};
use kembali_store_sqlite::SqliteStore;

/// An opened store, one variant per adapter. Commands are generic over `Store` and match
/// on this once.
pub enum Backend {
    Sqlite(SqliteStore),
}

/// Opens the store `url` names, running its migrations. Must run inside the tokio runtime
/// (the SQLite adapter starts its writer thread there).
pub fn open(url: &str) -> Result<Backend> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    match scheme {
        "sqlite" => {
            let path = SqliteStore::path_from_url(url)
                .with_context(|| format!("no file path in database URL {url:?}"))?;
            let store = SqliteStore::open(&path)
                .with_context(|| format!("opening SQLite database {}", path.display()))?;
            Ok(Backend::Sqlite(store))
        }
        "postgres" | "postgresql" => bail!("PostgreSQL support is not built yet"),
        _ => bail!(
            "unsupported database URL {url:?}: use sqlite://PATH (PostgreSQL is not built yet)"
        ),
    }
}
