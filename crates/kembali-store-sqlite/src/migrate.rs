//! Schema migrations, applied in order on open. `PRAGMA user_version` records how many ran;
//! each runs in its own transaction, so a crash mid-migration leaves the previous version.

use crate::db_err;
use kembali_app::error::StoreError;
use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_campaigns.sql"),
    include_str!("../migrations/0003_metrics.sql"),
    include_str!("../migrations/0004_campaign_revision.sql"),
    include_str!("../migrations/0005_history_order.sql"),
];

pub fn run(conn: &mut Connection) -> Result<(), StoreError> {
    let applied: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
        .map_err(db_err)? as usize;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database is at schema version {applied}, newer than this binary ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction().map_err(db_err)?;
        tx.execute_batch(sql).map_err(db_err)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        tracing::info!(version = i + 1, "applied migration");
    }
    Ok(())
}
