//! Leases and fences: one process at a time does a piece of background work (the conductor),
//! and a process that lost its turn cannot write as if it still had it.
//!
//! 1. [`Store::acquire_lease`] takes or renews the lease `name` for `holder` for `ttl`, by the
//!    database's clock: granted while nobody else holds an unexpired one. Each change of
//!    holder (or a renewal after expiry) raises the lease's epoch.
//! 2. A [`Fence`] names a lease, a holder and an epoch. Work done under
//!    [`with_fence`] carries it: every write it makes checks, inside the write's own
//!    transaction and after the writers' lock, that the lease is still the holder's at that
//!    epoch and unexpired, and fails with [`Error::Fenced`] otherwise. So a former holder
//!    that was paused past its lease (or cut off) and wakes up mid-work cannot write over its
//!    successor.
//! 3. On redb one process holds the file, and so every lease: granted at epoch 1, never
//!    fenced.

use std::cell::RefCell;
use std::time::Duration;

use crate::pg::Sql;
use crate::{Error, Kind, Result, Store};

/// A turn at background work, as the writes made during it check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub lease: String,
    pub holder: String,
    pub epoch: i64,
}

thread_local! {
    static FENCE: RefCell<Option<Fence>> = const { RefCell::new(None) };
}

/// Puts the thread's previous fence back when dropped: also when the work panics, so that a
/// pooled thread never carries a stale fence into the next work it runs.
struct Restore(Option<Fence>);

impl Drop for Restore {
    fn drop(&mut self) {
        let before = self.0.take();
        FENCE.with(|cell| *cell.borrow_mut() = before);
    }
}

/// Runs `f` with `fence` on every write it makes on this thread (none: unfenced).
pub fn with_fence<T>(fence: Option<Fence>, f: impl FnOnce() -> T) -> T {
    let _restore = Restore(FENCE.with(|cell| cell.replace(fence)));
    f()
}

/// The fence this thread's writes carry now, to hand to a thread it starts.
pub fn current_fence() -> Option<Fence> {
    FENCE.with(|cell| cell.borrow().clone())
}

impl Store {
    /// Takes or renews lease `name` for `holder`; its epoch when granted, `None` while another
    /// holder's is unexpired.
    pub fn acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<Option<i64>> {
        match &self.kind {
            Kind::Redb(_) => Ok(Some(1)),
            Kind::Postgres(db) => crate::pg::blocking(|| {
                let mut conn = db.connection()?;
                let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
                let rows = conn.query(Sql::AcquireLease, &[&name, &holder, &ttl_ms])?;
                Ok(rows.first().map(|row| row.get::<_, i64>(0)))
            }),
        }
    }

    /// Gives the lease up at once (a clean shutdown), so a successor need not wait for it to
    /// expire.
    pub fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        match &self.kind {
            Kind::Redb(_) => Ok(()),
            Kind::Postgres(db) => crate::pg::blocking(|| {
                db.connection()?.execute(Sql::ReleaseLease, &[&name, &holder])?;
                Ok(())
            }),
        }
    }

    /// Who holds lease `name` now, at which epoch, and for how much longer (`None`: nobody).
    pub fn lease_holder(&self, name: &str) -> Result<Option<(String, i64, Duration)>> {
        match &self.kind {
            Kind::Redb(_) => Ok(None),
            Kind::Postgres(db) => crate::pg::blocking(|| {
                let rows = db.connection()?.query(Sql::LeaseHolder, &[&name])?;
                Ok(rows.first().map(|row| {
                    let left: i64 = row.get(2);
                    (row.get(0), row.get(1), Duration::from_millis(u64::try_from(left).unwrap_or(0)))
                }))
            }),
        }
    }
}

/// One lease as the store has it, expired or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    pub name: String,
    pub holder: String,
    pub epoch: i64,
    /// When it was last taken or renewed, in milliseconds since the Unix epoch (the database's
    /// clock).
    pub renewed_ms: i64,
    /// How long it runs unrenewed from now, in milliseconds; zero or less once expired.
    pub left_ms: i64,
}

impl LeaseView {
    pub fn live(&self) -> bool {
        self.left_ms > 0
    }
}

impl Store {
    /// Every lease whose name starts with `prefix`, in name order (none on redb).
    pub fn leases(&self, prefix: &str) -> Result<Vec<LeaseView>> {
        match &self.kind {
            Kind::Redb(_) => Ok(vec![]),
            Kind::Postgres(db) => crate::pg::blocking(|| {
                let rows = db.connection()?.query(Sql::Leases, &[&prefix])?;
                Ok(rows
                    .iter()
                    .map(|row| LeaseView {
                        name: row.get(0),
                        holder: row.get(1),
                        epoch: row.get(2),
                        renewed_ms: row.get(3),
                        left_ms: row.get(4),
                    })
                    .collect())
            }),
        }
    }

    /// Drops the leases whose name starts with `prefix` that expired more than `ago` ago.
    pub fn forget_leases(&self, prefix: &str, ago: Duration) -> Result<u64> {
        match &self.kind {
            Kind::Redb(_) => Ok(0),
            Kind::Postgres(db) => crate::pg::blocking(|| {
                let ago_ms = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
                db.connection()?.execute(Sql::ForgetLeases, &[&prefix, &ago_ms])
            }),
        }
    }
}

/// Inside a PostgreSQL write, after the writers' lock: fails unless this thread's fence (if
/// any) still holds.
pub(crate) fn check(conn: &mut crate::pg::PgConn) -> Result<()> {
    let Some(fence) = current_fence() else { return Ok(()) };
    let rows = conn.query(Sql::LeaseValid, &[&fence.lease, &fence.holder, &fence.epoch])?;
    if rows.is_empty() {
        return Err(Error::Fenced(format!(
            "{} no longer holds the {} lease at epoch {}",
            fence.holder, fence.lease, fence.epoch
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::TAGS;

    #[test]
    fn one_holder_at_a_time_and_a_stale_one_is_fenced() {
        let Some(db) = crate::testing::TestDatabase::create() else { return };
        let store = db.store();
        let ttl = Duration::from_millis(600);
        let first = store.acquire_lease("conductor", "a", ttl).unwrap().expect("a free lease is granted");
        assert_eq!(store.acquire_lease("conductor", "b", ttl).unwrap(), None, "held by a");
        assert_eq!(store.acquire_lease("conductor", "a", ttl).unwrap(), Some(first), "a renewal keeps the epoch");
        let fence_a = Fence { lease: "conductor".into(), holder: "a".into(), epoch: first };
        let tag = crate::TagRecord { resource_id: "r".into(), key: "k".into(), value: "v".into() };
        with_fence(Some(fence_a.clone()), || store.write(|tx| tx.insert(&TAGS, "x/1", &tag))).unwrap();

        // a stops renewing: once its lease expired, b takes it at a new epoch, and a's writes
        // fail; others' writes (the API's, unfenced) go on.
        std::thread::sleep(ttl + Duration::from_millis(200));
        let second = store.acquire_lease("conductor", "b", ttl).unwrap().expect("an expired lease is taken");
        assert!(second > first);
        let stale = with_fence(Some(fence_a), || store.write(|tx| tx.insert(&TAGS, "x/2", &tag)));
        assert!(matches!(stale, Err(Error::Fenced(_))), "{stale:?}");
        assert!(store.read(|tx| tx.get(&TAGS, "x/2")).unwrap().is_none(), "nothing of the stale write landed");
        store.write(|tx| tx.insert(&TAGS, "x/3", &tag)).unwrap();
        let (holder, epoch, _) = store.lease_holder("conductor").unwrap().unwrap();
        assert_eq!((holder.as_str(), epoch), ("b", second));
        // A clean stop hands it over at once.
        store.release_lease("conductor", "b").unwrap();
        assert!(store.acquire_lease("conductor", "a", ttl).unwrap().unwrap() > second);
    }

    #[test]
    fn leases_are_listed_by_prefix_and_long_expired_ones_forgotten() {
        let Some(db) = crate::testing::TestDatabase::create() else { return };
        let store = db.store();
        let before = std::time::SystemTime::now();
        store.acquire_lease("replica/a", "a", Duration::from_millis(300)).unwrap().unwrap();
        store.acquire_lease("replica/b", "b", Duration::from_secs(60)).unwrap().unwrap();
        store.acquire_lease("conductor", "b", Duration::from_secs(60)).unwrap().unwrap();
        let listed = store.leases("replica/").unwrap();
        assert_eq!(listed.iter().map(|l| l.holder.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(listed.iter().all(LeaseView::live));
        let since_epoch = before.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        // The database's clock and this one's are the same machine's.
        assert!((listed[1].renewed_ms - since_epoch).abs() < 5_000, "{listed:?}");

        std::thread::sleep(Duration::from_millis(500));
        let listed = store.leases("replica/").unwrap();
        assert!(!listed[0].live() && listed[1].live(), "{listed:?}");
        assert_eq!(store.forget_leases("replica/", Duration::from_secs(60)).unwrap(), 0, "expired too recently");
        assert_eq!(store.forget_leases("replica/", Duration::from_millis(100)).unwrap(), 1);
        let left: Vec<String> = store.leases("").unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(left, ["conductor", "replica/b"]);
        assert!(Store::in_memory().unwrap().leases("").unwrap().is_empty());
    }

    #[test]
    fn a_panic_does_not_leave_its_fence_on_the_thread() {
        let fence = Fence { lease: "conductor".into(), holder: "a".into(), epoch: 3 };
        let caught = std::panic::catch_unwind(|| with_fence(Some(fence), || panic!("work failed")));
        assert!(caught.is_err());
        assert_eq!(current_fence(), None);
    }

    #[test]
    fn redb_grants_every_lease() {
        let store = Store::in_memory().unwrap();
        assert_eq!(store.acquire_lease("conductor", "a", Duration::from_secs(1)).unwrap(), Some(1));
        assert_eq!(store.acquire_lease("conductor", "b", Duration::from_secs(1)).unwrap(), Some(1));
        let fence = Fence { lease: "conductor".into(), holder: "b".into(), epoch: 7 };
        with_fence(Some(fence), || store.write(|tx| tx.clear(&TAGS))).unwrap();
    }
}
