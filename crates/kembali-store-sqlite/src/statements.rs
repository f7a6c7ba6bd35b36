//! The writer's prepared statements, kept for the life of its connection.
//!
//! An order's job runs a dozen statements on the writer. Through rusqlite's statement
//! cache each use costs about 1,100 instructions on top of SQLite's own work: the SQL text
//! is trimmed, copied into a new `Arc<str>` and hashed to take the statement out, and
//! hashed again, with its bindings cleared, to put it back. That was some 7 % of an order's
//! work on the writer. [`Statements`] keys each statement by the address of its SQL
//! instead: the text is a `&'static str`, so its address names it for as long as the
//! program runs, and taking a statement out and putting it back are two small hash-map
//! operations. Statements are not cleared on return: every use binds all of a statement's
//! parameters, and rusqlite resets a statement when its step or its rows end.
//!
//! [`Db`] is what a transaction prepares through: the writer's kept statements, or (on a
//! reader, whose connections move between threads and so cannot lend statements out for
//! long) the connection's own cache.

use foldhash::HashMap;
use rusqlite::{CachedStatement, Connection, Statement};
use std::cell::{Cell, RefCell};
use std::ops::{Deref, DerefMut};

/// A statement's key: the address and length of its SQL, which never moves or changes.
type Key = (usize, usize);

fn key(sql: &'static str) -> Key {
    (sql.as_ptr() as usize, sql.len())
}

/// Prepared statements of one connection, each idle until a transaction takes it out.
pub struct Statements<'w> {
    conn: &'w Connection,
    idle: RefCell<HashMap<Key, Statement<'w>>>,
    /// How many statements were prepared (for tests and debugging).
    prepared: Cell<u64>,
}

impl<'w> Statements<'w> {
    pub fn new(conn: &'w Connection) -> Self {
        Statements {
            conn,
            idle: RefCell::default(),
            prepared: Cell::new(0),
        }
    }

    pub fn conn(&self) -> &'w Connection {
        self.conn
    }

    /// Takes the statement of `sql` out (preparing it the first time, or when it is already
    /// out); it comes back when the guard drops.
    pub fn take<'c>(&'c self, sql: &'static str) -> rusqlite::Result<Stmt<'c, 'w>> {
        let key = key(sql);
        let idle = self.idle.borrow_mut().remove(&key);
        let st = match idle {
            Some(st) => st,
            None => {
                let st = self.conn.prepare(sql)?;
                self.prepared.set(self.prepared.get() + 1);
                st
            }
        };
        Ok(Stmt::Kept(Kept {
            st: Some(st),
            home: self,
            key,
        }))
    }
}

/// A statement taken out of [`Statements`].
pub struct Kept<'c, 'w> {
    st: Option<Statement<'w>>,
    home: &'c Statements<'w>,
    key: Key,
}

impl Drop for Kept<'_, '_> {
    fn drop(&mut self) {
        if let Some(st) = self.st.take() {
            // A second copy of the same statement (taken while the first was out) replaces
            // the first; the one replaced is finalised.
            self.home.idle.borrow_mut().insert(self.key, st);
        }
    }
}

/// A prepared statement, as a transaction uses it.
pub enum Stmt<'c, 'w> {
    Kept(Kept<'c, 'w>),
    Cached(CachedStatement<'w>),
}

impl<'w> Deref for Stmt<'_, 'w> {
    type Target = Statement<'w>;

    fn deref(&self) -> &Statement<'w> {
        match self {
            Stmt::Kept(k) => k.st.as_ref().expect("held until dropped"),
            Stmt::Cached(c) => c,
        }
    }
}

impl<'w> DerefMut for Stmt<'_, 'w> {
    fn deref_mut(&mut self) -> &mut Statement<'w> {
        match self {
            Stmt::Kept(k) => k.st.as_mut().expect("held until dropped"),
            Stmt::Cached(c) => c,
        }
    }
}

/// What a transaction prepares its statements through: its connection, and the kept
/// statements when it runs on the writer. Neither `Copy` nor `Clone`: it is the one handle
/// its transaction has (see the `Send` impl).
pub struct Db<'c, 'w> {
    pub conn: &'w Connection,
    kept: Option<&'c Statements<'w>>,
}

// SAFETY: a `Connection` may move between threads but not be used from two at once, and a
// statement belongs to its connection. A `Db` is made for one job by the thread that owns
// the connection (the writer, or a reader's blocking task), which then only drives that
// job (`block_on`) until it ends, touching neither the connection nor its statements. The
// `Db` is not `Clone` and is reached only through its transaction (`&mut dyn Tx`), so if a
// job hands its transaction to another thread (a scoped one: the borrow is not `'static`),
// that thread is the only one using the connection until it hands it back. No `Sync`: a
// shared `&Db` never crosses threads.
unsafe impl Send for Db<'_, '_> {}

impl<'c, 'w> Db<'c, 'w> {
    /// Prepares through the connection's own statement cache.
    pub fn cached(conn: &'w Connection) -> Self {
        Db { conn, kept: None }
    }

    /// Prepares through `kept` (the writer's).
    pub fn kept(kept: &'c Statements<'w>) -> Self {
        Db {
            conn: kept.conn,
            kept: Some(kept),
        }
    }

    /// The statement of `sql`, prepared once per connection.
    pub fn prepare(&self, sql: &'static str) -> rusqlite::Result<Stmt<'c, 'w>> {
        match self.kept {
            Some(kept) => kept.take(sql),
            None => self.conn.prepare_cached(sql).map(Stmt::Cached),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSERT: &str = "INSERT INTO t (x) VALUES (?1)";
    const SUM: &str = "SELECT COALESCE(SUM(x), 0) FROM t";

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER NOT NULL)")
            .unwrap();
        conn
    }

    fn sum(db: &Db<'_, '_>) -> i64 {
        db.prepare(SUM)
            .unwrap()
            .query_row([], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_kept_statement_is_prepared_once_and_reused() {
        let conn = conn();
        let kept = Statements::new(&conn);
        let db = Db::kept(&kept);
        for x in 1..=3 {
            db.prepare(INSERT).unwrap().execute([x]).unwrap();
        }
        assert_eq!(sum(&db), 6);
        assert_eq!(
            kept.prepared.get(),
            2,
            "four uses, one preparation per SQL text"
        );
        let idle = kept.idle.borrow();
        assert_eq!(idle.len(), 2);
        assert!(idle.contains_key(&key(INSERT)));
    }

    #[test]
    fn a_statement_taken_twice_at_once_gives_two_that_both_work() {
        let conn = conn();
        let kept = Statements::new(&conn);
        let db = Db::kept(&kept);
        db.prepare(INSERT).unwrap().execute([5]).unwrap();
        let mut outer = db.prepare(SUM).unwrap();
        let mut rows = outer.query([]).unwrap();
        let first: i64 = rows.next().unwrap().unwrap().get(0).unwrap();
        // The same SQL while the first is still stepping: a second statement.
        assert_eq!(sum(&db), 5);
        assert_eq!(first, 5);
        drop(rows);
        drop(outer);
        assert_eq!(kept.prepared.get(), 3, "the second SUM was prepared anew");
        assert_eq!(kept.idle.borrow().len(), 2, "and only one SUM stays");
        assert_eq!(sum(&db), 5);
        assert_eq!(kept.prepared.get(), 3);
    }

    #[test]
    fn without_kept_statements_the_connection_cache_serves() {
        let conn = conn();
        let db = Db::cached(&conn);
        db.prepare(INSERT).unwrap().execute([7]).unwrap();
        assert_eq!(sum(&db), 7);
        assert!(matches!(db.prepare(SUM).unwrap(), Stmt::Cached(_)));
    }
}
