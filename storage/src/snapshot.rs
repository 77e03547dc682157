//! Reads that share one snapshot. [`Store::snapshot`] runs work whose every [`Store::read`] on
//! this thread joins one read transaction, instead of each beginning and ending its own: on
//! PostgreSQL two round trips saved per read after the first, and every read of the work sees
//! the same committed state, as the reads of one redb transaction do.
//!
//! 1. The shared transaction begins at the work's first read and is rolled back (it only read)
//!    when the work ends, panics included.
//! 2. A read nested in another (a walk's callback reading more) takes a transaction of its own.
//! 3. A write on the thread ends the shared snapshot at once: reads after it see the write.
//! 4. A read that fails ends it too (PostgreSQL refuses every statement of a transaction after
//!    its first error).
//! 5. The connection is held for the whole work: meant for short work that reads (Describe
//!    calls), not for work that waits on hosts.
//!
//! On redb the same rules hold with one shared read transaction (nested reads share it too:
//! a redb snapshot can be read from several places at once). Beginning a read transaction and
//! opening its tables again for every read was a fifth of a lookup by id.

use std::cell::RefCell;
use std::rc::Rc;

use crate::{pg, Kind, ReadTx, Store};

type Conn = r2d2::PooledConnection<pg::Manager>;

struct Scope {
    /// The database it reads (a thread may use two stores, as `store copy` does).
    db: usize,
    /// The shared transaction's connection, between reads.
    conn: Option<Conn>,
    /// A read of the scope runs now (another read on the thread is nested in it).
    busy: bool,
    /// A write or a failure ended the snapshot: reads from now on take their own.
    ended: bool,
}

/// A redb snapshot's scope on this thread.
struct RedbScope {
    db: usize,
    /// The shared read transaction, from the first read on.
    tx: Option<Rc<ReadTx>>,
    /// A write ended the snapshot: reads from now on take their own.
    ended: bool,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
    static REDB: RefCell<Option<RedbScope>> = const { RefCell::new(None) };
}

pub(crate) fn redb_id(db: &redb::Database) -> usize {
    std::ptr::from_ref(db) as usize
}

/// The shared read transaction of the thread's snapshot of redb `db`, begun by `begin` at the
/// first read; `None` when there is no snapshot to join.
pub(crate) fn redb_join(db: usize, begin: impl FnOnce() -> crate::Result<ReadTx>) -> Option<crate::Result<Rc<ReadTx>>> {
    REDB.with(|cell| {
        let mut scope = cell.borrow_mut();
        let scope = scope.as_mut().filter(|s| s.db == db && !s.ended)?;
        if let Some(tx) = &scope.tx {
            return Some(Ok(Rc::clone(tx)));
        }
        Some(begin().map(|tx| Rc::clone(scope.tx.insert(Rc::new(tx)))))
    })
}

/// A write on redb `db` ends the thread's snapshot of it.
pub(crate) fn redb_end_for_write(db: usize) {
    let ended = REDB.with(|cell| match cell.borrow_mut().as_mut() {
        Some(scope) if scope.db == db => {
            scope.ended = true;
            scope.tx.take()
        }
        _ => None,
    });
    drop(ended);
}

/// Ends the thread's redb scope when its work returns or unwinds.
struct EndRedb;

impl Drop for EndRedb {
    fn drop(&mut self) {
        let scope = REDB.with(|cell| cell.borrow_mut().take());
        drop(scope);
    }
}

pub(crate) fn db_id(db: &pg::Database) -> usize {
    std::ptr::from_ref(db) as usize
}

impl Store {
    /// Runs `work` with its reads of this store on this thread in one snapshot (see the
    /// module's doc); nested in another snapshot, joins it.
    pub fn snapshot<T>(&self, work: impl FnOnce() -> T) -> T {
        match &self.kind {
            Kind::Redb(db) => {
                if !open(&REDB, || RedbScope { db: redb_id(db), tx: None, ended: false }) {
                    return work();
                }
                let _end = EndRedb;
                work()
            }
            Kind::Postgres(db) => {
                if !open(&SCOPE, || Scope { db: db_id(db), conn: None, busy: false, ended: false }) {
                    return work();
                }
                let _end = EndScope;
                work()
            }
        }
    }
}

/// Opens the thread's scope in `cell` unless one is open (the work then joins it).
fn open<S: 'static>(cell: &'static std::thread::LocalKey<RefCell<Option<S>>>, new: impl FnOnce() -> S) -> bool {
    cell.with(|cell| {
        let mut scope = cell.borrow_mut();
        if scope.is_some() {
            return false;
        }
        *scope = Some(new());
        true
    })
}

/// Ends the thread's scope when its work returns or unwinds.
struct EndScope;

impl Drop for EndScope {
    fn drop(&mut self) {
        if let Some(Scope { conn: Some(mut conn), .. }) = SCOPE.with(|cell| cell.borrow_mut().take()) {
            let _ = pg::blocking(|| pg::end(&mut conn, false));
        }
    }
}

/// A read on `db` joins the thread's snapshot: `Some(conn)` with the shared transaction's
/// connection (`None` inside: the first read, which begins it), or `None` when there is no
/// snapshot to join (none, another database's, ended, or this read is nested in one of its).
pub(crate) fn join(db: usize) -> Option<Option<Conn>> {
    SCOPE.with(|cell| {
        let mut scope = cell.borrow_mut();
        match scope.as_mut() {
            Some(scope) if scope.db == db && !scope.busy && !scope.ended => {
                scope.busy = true;
                Some(scope.conn.take())
            }
            _ => None,
        }
    })
}

/// A joined read is done: its connection (if it got one) stays for the next read while the
/// read succeeded and nothing ended the snapshot meanwhile; otherwise its transaction ends.
pub(crate) fn leave(conn: Option<Conn>, succeeded: bool) {
    let spare = SCOPE.with(|cell| {
        let mut scope = cell.borrow_mut();
        let Some(scope) = scope.as_mut() else { return conn };
        scope.busy = false;
        if !succeeded {
            scope.ended = true;
        }
        if scope.ended {
            return conn;
        }
        scope.conn = conn;
        None
    });
    if let Some(mut conn) = spare {
        let _ = pg::end(&mut conn, false);
    }
}

/// A write on `db` ends the thread's snapshot of it: what the thread reads next sees the write.
pub(crate) fn end_for_write(db: usize) {
    let spare = SCOPE.with(|cell| {
        let mut scope = cell.borrow_mut();
        match scope.as_mut() {
            Some(scope) if scope.db == db => {
                scope.ended = true;
                scope.conn.take()
            }
            _ => None,
        }
    });
    if let Some(mut conn) = spare {
        let _ = pg::end(&mut conn, false);
    }
}

#[cfg(test)]
mod tests {
    use crate::tables::TAGS;
    use crate::testing::stores;
    use crate::{Error, TagRecord};

    fn tag(value: &str) -> TagRecord {
        TagRecord { resource_id: "r".into(), key: "k".into(), value: value.into() }
    }

    fn value(store: &crate::Store) -> Option<String> {
        store.read(|tx| tx.get(&TAGS, "t")).unwrap().map(|t| t.value)
    }

    #[test]
    fn reads_in_a_snapshot_see_one_state_and_the_threads_own_writes() {
        for (name, store, _db) in stores() {
            let store = std::sync::Arc::new(store);
            store.write(|tx| tx.insert(&TAGS, "t", &tag("1"))).unwrap();
            store.snapshot(|| {
                assert_eq!(value(&store).as_deref(), Some("1"), "{name}");
                // Another thread writes between two reads of the work.
                let other = std::sync::Arc::clone(&store);
                std::thread::spawn(move || other.write(|tx| tx.insert(&TAGS, "t", &tag("2"))).unwrap()).join().unwrap();
                let seen = value(&store);
                assert_eq!(seen.as_deref(), Some("1"), "{name}: one snapshot for the whole work");
                // A read nested in a read works (its own transaction) and its scope goes on.
                let nested = store.read(|_| Ok::<_, Error>(value(&store))).unwrap();
                assert!(nested.is_some(), "{name}");
                // The thread's own write: read after it.
                store.write(|tx| tx.insert(&TAGS, "t", &tag("3"))).unwrap();
                assert_eq!(value(&store).as_deref(), Some("3"), "{name}: a write ends the snapshot");
            });
            assert_eq!(value(&store).as_deref(), Some("3"), "{name}");
        }
    }

    #[test]
    fn a_failed_read_ends_the_snapshot_and_later_reads_work() {
        for (name, store, _db) in stores() {
            store.write(|tx| tx.insert(&TAGS, "t", &tag("1"))).unwrap();
            store.snapshot(|| {
                let failed: Result<(), Error> = store.read(|_| Err(Error::Db("the work failed".into())));
                assert!(failed.is_err(), "{name}");
                assert_eq!(value(&store).as_deref(), Some("1"), "{name}");
            });
            // A panic inside leaves no snapshot behind on the thread.
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                store.snapshot(|| {
                    let _ = value(&store);
                    panic!("the work panicked")
                })
            }));
            assert!(caught.is_err());
            store.write(|tx| tx.insert(&TAGS, "t", &tag("2"))).unwrap();
            store.snapshot(|| assert_eq!(value(&store).as_deref(), Some("2"), "{name}"));
        }
    }
}
