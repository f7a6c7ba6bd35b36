//! Budget debits of the writer's transaction, held in memory and written once per campaign
//! just before the transaction commits.
//!
//! A group commit runs many orders in one transaction, and most orders of a busy campaign
//! debit its budget: one `UPDATE` of the campaign's row per order was the largest cost that
//! campaigns added to an order. The writer instead keeps, for every budget its transaction
//! touched, what the row held when it was read and what the transaction's jobs have debited
//! since, and [`PendingBudgets::flush`] adds each campaign's sum to its row before `COMMIT`.
//!
//! # Why a budget still never overspends
//! - Only the writer writes, and its transaction holds the database's write lock from
//!   `BEGIN IMMEDIATE` to `COMMIT`: nothing else can move a row meanwhile.
//! - Every read of a campaign's row by a writing job goes through this overlay:
//!   [`PendingBudgets::spent`] for budgets, [`PendingBudgets::pending`] added to the rows that
//!   `campaign` and `campaigns` return. A job therefore sees what every job before it in the
//!   transaction debited, and its own debits, exactly as if they had been written.
//! - A debit is refused, as the guarded `UPDATE` refused it, when it would take the budget
//!   past its limit.
//! - A job's debits are kept apart until the job ends, and the debits of the jobs that share
//!   a savepoint until it ends: a job or a savepoint that rolls back takes them with it
//!   ([`PendingBudgets::job_ended`], [`PendingBudgets::savepoint_ended`]).
//! - The flush is the guarded `UPDATE` (and the row's `CHECK` stands behind it). If it ever
//!   refused, the writer rolls the whole transaction back and every job in it fails, so no
//!   order commits a debit that was not written. A budget removed by a later job of the same
//!   transaction still records what was debited while it stood, as an immediate `UPDATE`
//!   would have.

use crate::db_err;
use crate::statements::Db;
use foldhash::HashMap;
use kembali_app::error::StoreError;
use kembali_app::store::decode::corrupt;
use kembali_core::ids::CampaignId;
use rusqlite::{params, OptionalExtension};

type R<T> = Result<T, StoreError>;

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct PendingBudgets(HashMap<CampaignId, Budget>);

#[derive(Debug, Default)]
struct Budget {
    /// The row as this transaction read it: what it had spent and its limit (`None`: no
    /// budget). Read again when unknown: a job that rolled back may have changed the limit.
    row: Option<(i64, Option<i64>)>,
    /// Debits of the jobs whose savepoints were released, not yet written.
    released: i64,
    /// Debits of the jobs that ended well under the open savepoint.
    savepoint: i64,
    /// Debits of the running job.
    job: i64,
}

impl Budget {
    fn pending(&self) -> i64 {
        self.released + self.savepoint + self.job
    }
}

impl PendingBudgets {
    /// What campaign `cid` has spent, its debits in this transaction included, and its limit;
    /// `None` if there is no such campaign.
    pub fn spent(&mut self, db: &Db<'_, '_>, cid: &CampaignId) -> R<Option<(i64, Option<i64>)>> {
        let budget = self.budget(db, cid)?;
        Ok(budget
            .row
            .map(|(spent, limit)| (spent + budget.pending(), limit)))
    }

    /// Debits `amount_minor` from the budget of `cid` for the running job, refused if the
    /// campaign has no budget or it would be overspent.
    pub fn debit(&mut self, db: &Db<'_, '_>, cid: &CampaignId, amount_minor: i64) -> R<()> {
        let budget = self.budget(db, cid)?;
        match budget.row {
            Some((spent, Some(limit)))
                if amount_minor >= 0 && spent + budget.pending() + amount_minor <= limit =>
            {
                budget.job += amount_minor;
                Ok(())
            }
            _ => Err(corrupt(format!(
                "budget of campaign {cid} would be overspent"
            ))),
        }
    }

    /// The entry of `cid`, its row read if this transaction does not know it.
    fn budget(&mut self, db: &Db<'_, '_>, cid: &CampaignId) -> R<&mut Budget> {
        if !self.0.contains_key(cid) {
            self.0.insert(cid.clone(), Budget::default());
        }
        let budget = self.0.get_mut(cid).expect("inserted above");
        if budget.row.is_none() {
            budget.row = db
                .prepare("SELECT budget_spent, budget FROM campaigns WHERE id = ?1")
                .and_then(|mut st| {
                    st.query_row([cid.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(db_err)?;
        }
        Ok(budget)
    }

    /// What this transaction has debited from `cid` and not yet written (to add to what its
    /// row says).
    pub fn pending(&self, cid: &CampaignId) -> i64 {
        self.0.get(cid).map_or(0, Budget::pending)
    }

    /// A campaign's row was written (a new version may change its limit): read it again.
    pub fn forget_row(&mut self, cid: &CampaignId) {
        if let Some(b) = self.0.get_mut(cid) {
            b.row = None;
        }
    }

    /// The running job ended: its debits stay with its savepoint if it `succeeded`, and are
    /// dropped if it failed (its writes, if any, may also have changed a limit, so every row
    /// is read again).
    pub fn job_ended(&mut self, succeeded: bool) {
        for b in self.0.values_mut() {
            if succeeded {
                b.savepoint += b.job;
            } else {
                b.row = None;
            }
            b.job = 0;
        }
    }

    /// The open savepoint ended: its jobs' debits stay with the transaction if it was
    /// `released`, and are dropped with its other writes if it was rolled back (which may
    /// also have undone a change of a limit, so every row is read again).
    pub fn savepoint_ended(&mut self, released: bool) {
        for b in self.0.values_mut() {
            if released {
                b.released += b.savepoint;
            } else {
                b.row = None;
            }
            b.savepoint = 0;
        }
    }

    /// Writes the transaction's debits, one guarded `UPDATE` per campaign, and forgets them.
    /// An error means a row refused its debits: the caller must roll the transaction back.
    /// Every job and savepoint has ended.
    pub fn flush(&mut self, db: &Db<'_, '_>) -> R<()> {
        debug_assert!(
            self.0.values().all(|b| b.savepoint == 0 && b.job == 0),
            "the transaction's jobs and savepoints have ended"
        );
        let debits: Vec<(CampaignId, i64)> = self
            .0
            .drain()
            .filter(|(_, b)| b.released != 0)
            .map(|(cid, b)| (cid, b.released))
            .collect();
        if debits.is_empty() {
            return Ok(());
        }
        let mut st = db
            .prepare(
                "UPDATE campaigns SET budget_spent = budget_spent + ?2
                 WHERE id = ?1 AND (budget IS NULL OR budget_spent + ?2 <= budget)",
            )
            .map_err(db_err)?;
        for (cid, amount) in debits {
            if st.execute(params![cid.as_str(), amount]).map_err(db_err)? != 1 {
                return Err(corrupt(format!(
                    "budget of campaign {cid} would be overspent by this transaction's debits"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE campaigns (id TEXT PRIMARY KEY, budget INTEGER,
                 budget_spent INTEGER NOT NULL DEFAULT 0,
                 CHECK (budget IS NULL OR budget_spent <= budget));
             INSERT INTO campaigns (id, budget, budget_spent) VALUES ('bf', 100, 30), ('open', NULL, 0);",
        )
        .unwrap();
        conn
    }

    /// A batch whose committed job debited 60 from `bf`, whose limit (100, 30 spent) a later
    /// write then sets to `limit`.
    fn sixty_debited_then_limit(limit: Option<i64>) -> (Connection, CampaignId, PendingBudgets) {
        let conn = db();
        let bf = CampaignId::parse("bf").unwrap();
        let mut p = PendingBudgets::default();
        p.debit(&Db::cached(&conn), &bf, 60).unwrap();
        p.job_ended(true);
        p.savepoint_ended(true);
        conn.execute("UPDATE campaigns SET budget = ?1 WHERE id = 'bf'", [limit])
            .unwrap();
        (conn, bf, p)
    }

    fn row(conn: &Connection) -> i64 {
        conn.query_row(
            "SELECT budget_spent FROM campaigns WHERE id = 'bf'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn debits_are_seen_at_once_kept_by_jobs_that_commit_and_written_once() {
        let conn = db();
        let bf = CampaignId::parse("bf").unwrap();
        let mut p = PendingBudgets::default();
        p.debit(&Db::cached(&conn), &bf, 20).unwrap();
        assert_eq!(
            p.spent(&Db::cached(&conn), &bf).unwrap(),
            Some((50, Some(100)))
        );
        p.job_ended(true);
        p.debit(&Db::cached(&conn), &bf, 40).unwrap();
        assert_eq!(p.pending(&bf), 60);
        // This job rolls back: its debit goes, the one before stays.
        p.job_ended(false);
        assert_eq!(
            p.spent(&Db::cached(&conn), &bf).unwrap(),
            Some((50, Some(100)))
        );
        // Past the limit, counting what is pending: refused, and nothing is pending for it.
        assert!(p.debit(&Db::cached(&conn), &bf, 51).is_err());
        p.debit(&Db::cached(&conn), &bf, 50).unwrap();
        p.job_ended(true);
        p.savepoint_ended(true);
        assert_eq!(row(&conn), 30, "nothing is written before the flush");
        p.flush(&Db::cached(&conn)).unwrap();
        assert_eq!(row(&conn), 100);
        assert_eq!(p.pending(&bf), 0);
    }

    #[test]
    fn a_savepoint_rolled_back_takes_the_debits_of_its_jobs_and_keeps_those_released_before() {
        let conn = db();
        let bf = CampaignId::parse("bf").unwrap();
        let mut p = PendingBudgets::default();
        p.debit(&Db::cached(&conn), &bf, 20).unwrap();
        p.job_ended(true);
        p.savepoint_ended(true);
        // Two jobs under the next savepoint: one ended well, one is running.
        p.debit(&Db::cached(&conn), &bf, 30).unwrap();
        p.job_ended(true);
        p.debit(&Db::cached(&conn), &bf, 10).unwrap();
        assert_eq!(p.pending(&bf), 60);
        p.job_ended(false);
        assert_eq!(p.pending(&bf), 50, "the running job's debit goes with it");
        p.savepoint_ended(false);
        assert_eq!(
            p.spent(&Db::cached(&conn), &bf).unwrap(),
            Some((50, Some(100)))
        );
        p.flush(&Db::cached(&conn)).unwrap();
        assert_eq!(row(&conn), 50);
    }

    #[test]
    fn campaigns_without_a_budget_or_row_refuse_debits() {
        let conn = db();
        let mut p = PendingBudgets::default();
        for id in ["open", "nobody"] {
            assert!(p
                .debit(&Db::cached(&conn), &CampaignId::parse(id).unwrap(), 1)
                .is_err());
        }
        p.job_ended(true);
        p.savepoint_ended(true);
        p.flush(&Db::cached(&conn)).unwrap();
    }

    #[test]
    fn debits_made_before_a_budget_was_removed_are_still_written() {
        // A later job's new version has no budget (as `put_campaign_version` does).
        let (conn, bf, mut p) = sixty_debited_then_limit(None);
        p.forget_row(&bf);
        assert_eq!(p.spent(&Db::cached(&conn), &bf).unwrap(), Some((90, None)));
        assert!(p.debit(&Db::cached(&conn), &bf, 1).is_err());
        p.job_ended(true);
        p.savepoint_ended(true);
        p.flush(&Db::cached(&conn)).unwrap();
        assert_eq!(row(&conn), 90);
    }

    #[test]
    fn a_flush_the_row_refuses_is_an_error() {
        // Behind the overlay's back (which nothing in the writer does), the limit falls.
        let (conn, _, mut p) = sixty_debited_then_limit(Some(50));
        assert!(p.flush(&Db::cached(&conn)).is_err());
        assert_eq!(row(&conn), 30);
    }
}
