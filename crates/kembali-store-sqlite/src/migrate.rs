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
    include_str!("../migrations/0006_narrow_campaign_rows.sql"),
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

#[cfg(test)]
mod tests {
    use super::{run, MIGRATIONS};
    use rusqlite::Connection;

    /// A database made before campaign rows were narrowed keeps each campaign's state and
    /// what its budget has spent.
    #[test]
    fn narrowing_campaign_rows_keeps_their_state_and_budget() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        conn.execute_batch(
            "INSERT INTO campaigns (id, version, status, definition, budget, budget_spent, created_at, updated_at)
             VALUES ('bf', 2, 'active', '{\"name\":\"Black Friday\"}', 10000, 2500, 1, 2)",
        )
        .unwrap();
        run(&mut conn).unwrap();
        let row: (String, i64, String, Option<i64>, i64, i64, i64) = conn
            .query_row(
                "SELECT id, version, status, budget, budget_spent, created_at, updated_at FROM campaigns",
                [],
                |r| r.try_into(),
            )
            .unwrap();
        assert_eq!(
            row,
            ("bf".into(), 2, "active".into(), Some(10_000), 2_500, 1, 2)
        );
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('campaigns')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!columns.iter().any(|c| c == "definition"), "{columns:?}");
        // The budget's CHECK still holds.
        assert!(conn
            .execute(
                "UPDATE campaigns SET budget_spent = 10001 WHERE id = 'bf'",
                []
            )
            .is_err());
    }
}
