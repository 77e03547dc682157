//! The same store on PostgreSQL (`[storage] backend = "postgres"`), for control planes that
//! must outlive one machine.
//!
//! 1. Every record of every table is one row of `stratus_records (tbl, key, value)`, keyed by
//!    table name and key; keys compare bytewise (`COLLATE "C"`), as redb orders them, so
//!    ranges, prefixes and page walks mean the same on both stores. Metric history has a table
//!    of its own, `stratus_metrics`, keyed by tier, chunk, series and bucket.
//! 2. The schema is Stratus's: [`MIGRATIONS`] are applied in order at connect, each once (its
//!    number kept in `stratus_schema`), under an advisory lock so that replicas starting
//!    together apply each once.
//! 3. A read is a `REPEATABLE READ READ ONLY` transaction: one snapshot, as a redb read is.
//! 4. A write takes a transaction-scoped advisory lock first: writers run one at a time, as
//!    redb's do, so every write sees everything committed before it and none can interleave
//!    with another's read-then-write. (SERIALIZABLE would let writers run together and retry
//!    on conflicts; Stratus's writes are short and its callers are not written to be re-run,
//!    so one writer at a time is the simpler way to the same guarantee.)
//!    Because every writer of every replica waits on that lock, a writer may sit idle inside
//!    its write for [`WRITE_IDLE_LIMIT`] at most: the server ends the session of one that
//!    idles longer (a process paused or stuck between two statements of its write), which
//!    rolls its write back and frees the others. Stratus's writes wait on nothing but the
//!    database between their statements, so only a stalled process meets the limit. (The
//!    server times only idling: a process paused while a result larger than the sockets'
//!    buffers is still coming to it leaves its session busy sending, and untimed.)
//! 5. Connections come from a pool (r2d2), each with its statements prepared once.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, NoTls, Statement};

use crate::{Error, Result};

/// What PostgreSQL errors say, as the store's errors.
impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        // The server's own words (a constraint, a lost connection) are in the source.
        match e.as_db_error() {
            Some(db) => Error::Db(format!("postgres: {}", db.message())),
            None => Error::Db(format!("postgres: {e}")),
        }
    }
}

impl From<r2d2::Error> for Error {
    fn from(e: r2d2::Error) -> Self {
        Error::Db(format!("postgres connection pool: {e}"))
    }
}

/// Every schema change, in order; the n-th (from 1) is applied once, when the schema is older.
const MIGRATIONS: &[&str] = &[
    // 1: records and metric history.
    r#"CREATE TABLE stratus_records (
        tbl text COLLATE "C" NOT NULL,
        key text COLLATE "C" NOT NULL,
        value bytea NOT NULL,
        PRIMARY KEY (tbl, key)
    );
    CREATE TABLE stratus_metrics (
        tier smallint NOT NULL,
        chunk integer NOT NULL,
        series text COLLATE "C" NOT NULL,
        bucket bigint NOT NULL,
        row_data bytea NOT NULL,
        PRIMARY KEY (tier, chunk, series, bucket)
    );"#,
    // 2: leases (the conductor's turn among replicas).
    r#"CREATE TABLE stratus_leases (
        name text PRIMARY KEY,
        holder text NOT NULL,
        epoch bigint NOT NULL,
        expires_at timestamptz NOT NULL
    );"#,
    // 3: when each lease was last taken or renewed (replicas show when they were last heard of).
    "ALTER TABLE stratus_leases ADD COLUMN renewed_at timestamptz NOT NULL DEFAULT clock_timestamp()",
];

/// The advisory lock writers take (and migrations): any constant of Stratus's own.
const WRITE_LOCK: i64 = 0x5354_5241_5455_5301;

/// How long a write may sit idle between its statements before the server ends it (4.): how
/// long a replica paused mid-write holds every other replica's writes up.
pub const WRITE_IDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How many rows a walk fetches at first, and at most at a time: each fetch takes twice as
/// many as the last, so a walk that stops early (a page of 5, a tag read-ahead of one
/// resource) reads about what it needs, and a long one takes few round trips.
const WALK_BATCH: (i64, i64) = (16, 256);

/// The statements every connection prepares once.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Sql {
    Get,
    GetMany,
    ScanAll,
    ScanRange,
    WalkAll,
    WalkRange,
    WalkAllFrom,
    WalkRangeFrom,
    Upsert,
    Delete,
    Clear,
    GetMetric,
    UpsertMetric,
    ReadMetrics,
    PruneMetrics,
    AllMetrics,
    AcquireLease,
    ReleaseLease,
    LeaseHolder,
    LeaseValid,
    Leases,
    ForgetLeases,
}

impl Sql {
    fn text(self) -> &'static str {
        match self {
            Sql::Get => "SELECT value FROM stratus_records WHERE tbl = $1 AND key = $2",
            Sql::GetMany => "SELECT key, value FROM stratus_records WHERE tbl = $1 AND key = ANY($2) ORDER BY key",
            Sql::ScanAll => "SELECT key, value FROM stratus_records WHERE tbl = $1 AND key >= $2 ORDER BY key",
            Sql::ScanRange => {
                "SELECT key, value FROM stratus_records WHERE tbl = $1 AND key >= $2 AND key < $3 ORDER BY key"
            }
            Sql::WalkAll => "SELECT key, value FROM stratus_records WHERE tbl = $1 AND key > $2 ORDER BY key LIMIT $3",
            Sql::WalkRange => {
                "SELECT key, value FROM stratus_records WHERE tbl = $1 AND key > $2 AND key < $3 \
                 ORDER BY key LIMIT $4"
            }
            Sql::WalkAllFrom => {
                "SELECT key, value FROM stratus_records WHERE tbl = $1 AND key >= $2 ORDER BY key LIMIT $3"
            }
            Sql::WalkRangeFrom => {
                "SELECT key, value FROM stratus_records WHERE tbl = $1 AND key >= $2 AND key < $3 \
                 ORDER BY key LIMIT $4"
            }
            Sql::Upsert => {
                "INSERT INTO stratus_records (tbl, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value"
            }
            Sql::Delete => "DELETE FROM stratus_records WHERE tbl = $1 AND key = $2 RETURNING value",
            Sql::Clear => "DELETE FROM stratus_records WHERE tbl = $1",
            Sql::GetMetric => {
                "SELECT row_data FROM stratus_metrics WHERE tier = $1 AND chunk = $2 AND series = $3 AND bucket = $4"
            }
            Sql::UpsertMetric => {
                "INSERT INTO stratus_metrics (tier, chunk, series, bucket, row_data) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (tier, chunk, series, bucket) DO UPDATE SET row_data = EXCLUDED.row_data"
            }
            Sql::ReadMetrics => {
                "SELECT bucket, row_data FROM stratus_metrics WHERE tier = $1 AND chunk >= $2 AND chunk <= $3 \
                 AND series = $4 AND bucket >= $5 AND bucket < $6 ORDER BY bucket"
            }
            Sql::PruneMetrics => "DELETE FROM stratus_metrics WHERE tier = $1 AND chunk < $2",
            // Granted to the holder while it renews in time, to anyone once it expired; the
            // epoch rises with every grant that is not a timely renewal.
            Sql::AcquireLease => {
                "INSERT INTO stratus_leases AS l (name, holder, epoch, expires_at) \
                 VALUES ($1, $2, 1, clock_timestamp() + $3::bigint * interval '1 millisecond') \
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at, \
                   renewed_at = clock_timestamp(), \
                   epoch = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp() \
                           THEN l.epoch ELSE l.epoch + 1 END \
                 WHERE l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp() \
                 RETURNING l.epoch"
            }
            Sql::ReleaseLease => {
                "UPDATE stratus_leases SET expires_at = clock_timestamp() - interval '1 millisecond' \
                 WHERE name = $1 AND holder = $2"
            }
            Sql::LeaseHolder => {
                "SELECT holder, epoch, (extract(epoch FROM (expires_at - clock_timestamp())) * 1000)::bigint \
                 FROM stratus_leases WHERE name = $1 AND expires_at > clock_timestamp()"
            }
            Sql::LeaseValid => {
                "SELECT 1 FROM stratus_leases WHERE name = $1 AND holder = $2 AND epoch = $3 \
                 AND expires_at > clock_timestamp()"
            }
            Sql::Leases => {
                "SELECT name, holder, epoch, (extract(epoch FROM renewed_at) * 1000)::bigint, \
                 (extract(epoch FROM (expires_at - clock_timestamp())) * 1000)::bigint \
                 FROM stratus_leases WHERE starts_with(name, $1) ORDER BY name"
            }
            Sql::ForgetLeases => {
                "DELETE FROM stratus_leases WHERE starts_with(name, $1) \
                 AND expires_at < clock_timestamp() - $2::bigint * interval '1 millisecond'"
            }
            Sql::AllMetrics => {
                "SELECT tier, chunk, series, bucket, row_data FROM stratus_metrics ORDER BY tier, chunk, series, bucket"
            }
        }
    }
}

/// One connection and the statements it has prepared.
pub struct PgConn {
    client: Client,
    prepared: HashMap<Sql, Statement>,
    /// Inside a transaction Stratus began and has not ended yet.
    in_transaction: bool,
}

impl PgConn {
    fn statement(&mut self, sql: Sql) -> Result<Statement> {
        if let Some(statement) = self.prepared.get(&sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql.text())?;
        self.prepared.insert(sql, statement.clone());
        Ok(statement)
    }

    pub(crate) fn query(&mut self, sql: Sql, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<postgres::Row>> {
        let statement = self.statement(sql)?;
        Ok(self.client.query(&statement, params)?)
    }

    pub(crate) fn execute(&mut self, sql: Sql, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let statement = self.statement(sql)?;
        Ok(self.client.execute(&statement, params)?)
    }

    pub(crate) fn batch(&mut self, sql: &str) -> Result<()> {
        Ok(self.client.batch_execute(sql)?)
    }

    pub(crate) fn get(&mut self, table: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.query(Sql::Get, &[&table, &key])?.first().map(|row| row.get(0)))
    }

    /// The records at `keys` that exist, in key order: one round trip for many lookups.
    pub(crate) fn get_many(&mut self, table: &str, keys: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self.query(Sql::GetMany, &[&table, &keys])?.into_iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// Every row whose key starts with `prefix`, in key order.
    pub(crate) fn scan(&mut self, table: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let rows = match upper_bound(prefix) {
            Some(end) => self.query(Sql::ScanRange, &[&table, &prefix, &end])?,
            None => self.query(Sql::ScanAll, &[&table, &prefix])?,
        };
        Ok(rows.into_iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    pub(crate) fn put(&mut self, table: &str, key: &str, value: &[u8]) -> Result<()> {
        self.execute(Sql::Upsert, &[&table, &key, &value])?;
        Ok(())
    }

    pub(crate) fn delete(&mut self, table: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.query(Sql::Delete, &[&table, &key])?.first().map(|row| row.get(0)))
    }

    pub(crate) fn clear(&mut self, table: &str) -> Result<()> {
        self.execute(Sql::Clear, &[&table])?;
        Ok(())
    }

    pub(crate) fn stored_bytes(&mut self) -> Result<u64> {
        let row = self.client.query_one(
            "SELECT pg_total_relation_size('stratus_records') + pg_total_relation_size('stratus_metrics')",
            &[],
        )?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }
}

/// Hands `f` the rows whose key starts with `prefix`, from just after `prefix` + `after`
/// (from the first, without), in batches, until `f` answers false. The connection is free
/// while `f` runs, which may read the same transaction.
pub(crate) fn walk(
    conn: &std::cell::RefCell<r2d2::PooledConnection<Manager>>,
    table: &str,
    prefix: &str,
    after: Option<&str>,
    f: &mut dyn FnMut(&str, &[u8]) -> Result<bool>,
) -> Result<()> {
    let end = upper_bound(prefix);
    // From the prefix itself (inclusive) without `after`; strictly after the last key seen
    // from then on.
    let (mut last, mut inclusive) = match after {
        Some(after) => (format!("{prefix}{after}"), false),
        None => (prefix.to_owned(), true),
    };
    let mut batch = WALK_BATCH.0;
    loop {
        let rows = {
            let mut conn = conn.borrow_mut();
            match (&end, inclusive) {
                (Some(end), false) => conn.query(Sql::WalkRange, &[&table, &last, end, &batch])?,
                (Some(end), true) => conn.query(Sql::WalkRangeFrom, &[&table, &last, end, &batch])?,
                (None, false) => conn.query(Sql::WalkAll, &[&table, &last, &batch])?,
                (None, true) => conn.query(Sql::WalkAllFrom, &[&table, &last, &batch])?,
            }
        };
        inclusive = false;
        let full = rows.len() as i64 == batch;
        batch = (batch * 2).min(WALK_BATCH.1);
        for row in &rows {
            let key: &str = row.get(0);
            let value: &[u8] = row.get(1);
            if !f(key, value)? {
                return Ok(());
            }
        }
        match rows.last() {
            Some(row) if full => last = row.get::<_, String>(0),
            _ => return Ok(()),
        }
    }
}

/// The smallest string above every string that starts with `prefix` (None: there is none to
/// give, every key is in range). Keys are compared bytewise.
fn upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = char::from_u32(last as u32 + 1).or_else(|| char::from_u32(last as u32 + 0x801)) {
            if next > last {
                chars.push(next);
                return Some(chars.into_iter().collect());
            }
        }
    }
    None
}

/// r2d2's way to make and check connections.
pub struct Manager {
    config: postgres::Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        Ok(PgConn { client: self.config.connect(NoTls)?, prepared: HashMap::new(), in_transaction: false })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    /// A connection given back inside a transaction (its work panicked, or ending it failed)
    /// is closed, which rolls the transaction back, rather than lent to the next work.
    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.client.is_closed() || conn.in_transaction
    }
}

pub type Pool = r2d2::Pool<Manager>;

/// Failures to connect, logged once per spell rather than once per attempt: while the database
/// is away (a failover), every waiting request retries and would log the same line.
#[derive(Debug, Default)]
struct ConnectFailures {
    last_logged: std::sync::Mutex<Option<std::time::Instant>>,
    since: std::sync::atomic::AtomicU64,
}

impl r2d2::HandleError<postgres::Error> for ConnectFailures {
    fn handle_error(&self, error: postgres::Error) {
        use std::sync::atomic::Ordering;
        let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(10)) {
            self.since.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(std::time::Instant::now());
        tracing::warn!(
            %error,
            more_since_last_line = self.since.swap(0, Ordering::Relaxed),
            "cannot connect to PostgreSQL, retrying: is the primary up (with several hosts in the url, is one \
             of them read-write)?"
        );
    }
}

/// A store's hold on its database: its pool (`None` once the store is closing).
pub struct Database {
    pool: Option<Pool>,
    write_idle_ms: u64,
}

impl Database {
    pub(crate) fn open(url: &str, options: &crate::PostgresOptions) -> Result<Self> {
        let write_idle_ms = options.write_idle_limit.as_millis().clamp(1, i32::MAX as u128) as u64;
        Ok(Self { pool: Some(connect(url, options.connections, write_idle_ms)?), write_idle_ms })
    }

    /// Starts a write on `conn`: after every write before it, and alone until it ends.
    pub(crate) fn begin_write(&self, conn: &mut PgConn) -> Result<()> {
        conn.in_transaction = true;
        // The limit is set before the lock is asked for: a session waiting for the lock is
        // busy, not idle, and only the holder's idling is cut short.
        conn.batch(&format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; \
             SET LOCAL idle_in_transaction_session_timeout = {}; \
             SELECT pg_advisory_xact_lock({WRITE_LOCK})",
            self.write_idle_ms
        ))
    }

    pub(crate) fn connection(&self) -> Result<r2d2::PooledConnection<Manager>> {
        let pool = self.pool.as_ref().ok_or_else(|| Error::Db("the store is closed".into()))?;
        Ok(pool.get()?)
    }

    /// What closing drops (its connections), to be dropped off the executor.
    pub(crate) fn take(&mut self) -> Option<Pool> {
        self.pool.take()
    }
}

/// Runs `f`, which blocks on PostgreSQL, where blocking is allowed: as is on a plain thread,
/// in [`tokio::task::block_in_place`] on a multi-threaded runtime's worker (PostgreSQL's
/// client runs a runtime of its own, which cannot be entered from a worker otherwise).
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Connects to the database `url` names (libpq's forms, several hosts too) and brings its
/// schema up to date, each migration a write idle for `write_idle_ms` at most (4.).
pub fn connect(url: &str, connections: u32, write_idle_ms: u64) -> Result<Pool> {
    let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| Error::Db(format!("{url}: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    // Connections are not tested at each checkout (a round trip per read): a broken one fails
    // the request that meets it and leaves the pool (`has_broken`).
    let pool = r2d2::Pool::builder()
        .max_size(connections.max(1))
        .min_idle(Some(2.min(connections.max(1))))
        .test_on_check_out(false)
        .connection_timeout(std::time::Duration::from_secs(15))
        .error_handler(Box::<ConnectFailures>::default())
        .build(Manager { config })?;
    migrate(&mut *pool.get()?, write_idle_ms)?;
    Ok(pool)
}

/// Applies the migrations the database has not had yet, each in its own transaction.
fn migrate(conn: &mut PgConn, write_idle_ms: u64) -> Result<()> {
    // Quietly: PostgreSQL notices that the table exists already, every start but the first.
    conn.batch(
        "BEGIN; SET LOCAL client_min_messages = warning; \
         CREATE TABLE IF NOT EXISTS stratus_schema (version integer PRIMARY KEY); COMMIT",
    )?;
    // Up to date (every start but an upgrade's): nothing to apply, and so no turn at the
    // writers' lock, which a replica paused mid-write may hold for a while.
    let known = MIGRATIONS.len() as i32;
    let applied: i64 =
        conn.client.query_one("SELECT count(*) FROM stratus_schema WHERE version BETWEEN 1 AND $1", &[&known])?.get(0);
    let pending = if applied == i64::from(known) { &[][..] } else { MIGRATIONS };
    for (index, sql) in pending.iter().enumerate() {
        let version = index as i32 + 1;
        let mut tx = conn.client.transaction()?;
        tx.batch_execute(&format!("SET LOCAL idle_in_transaction_session_timeout = {write_idle_ms}"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
        let done: bool =
            tx.query_one("SELECT EXISTS (SELECT 1 FROM stratus_schema WHERE version = $1)", &[&version])?.get(0);
        if !done {
            tx.batch_execute(sql)?;
            tx.execute("INSERT INTO stratus_schema (version) VALUES ($1)", &[&version])?;
        }
        tx.commit()?;
    }
    // A newer Stratus's schema is refused rather than misread.
    let newest: Option<i32> = conn.client.query_one("SELECT max(version) FROM stratus_schema", &[])?.get(0);
    if newest.unwrap_or(0) > MIGRATIONS.len() as i32 {
        return Err(Error::Db(format!(
            "the database's schema is version {}, newer than this Stratus knows ({}): run a newer Stratus",
            newest.unwrap_or(0),
            MIGRATIONS.len()
        )));
    }
    Ok(())
}

/// Starts a read: one snapshot for the whole closure.
pub(crate) fn begin_read(conn: &mut PgConn) -> Result<()> {
    conn.in_transaction = true;
    conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
}

pub(crate) fn end(conn: &mut PgConn, commit: bool) -> Result<()> {
    conn.batch(if commit { "COMMIT" } else { "ROLLBACK" })?;
    conn.in_transaction = false;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bounds_close_prefix_ranges() {
        assert_eq!(upper_bound("a/").as_deref(), Some("a0"));
        assert_eq!(upper_bound(""), None);
        for key in ["a/", "a/1", "a/zzz", "a/\u{10FFFF}"] {
            assert!(key < upper_bound("a/").unwrap().as_str(), "{key}");
        }
        assert!("a0" >= upper_bound("a/").unwrap().as_str());
    }
}

#[cfg(test)]
mod stalled_writers {
    use std::sync::mpsc;
    use std::time::Duration;

    use crate::tables::TAGS;
    use crate::testing::TestDatabase;
    use crate::{PostgresOptions, Store, TagRecord};

    fn tag() -> TagRecord {
        TagRecord { resource_id: "r".into(), key: "k".into(), value: "v".into() }
    }

    /// Holds a write open, idle after its first statement, until `release` says so or `idle`
    /// has passed; says on `started` when it holds the writers' lock. Its answer: the write's,
    /// and whether it was released (rather than woken by the time).
    fn stall(
        store: &Store,
        idle: Duration,
        started: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
    ) -> (crate::Result<()>, bool) {
        let mut released = false;
        let written = store.write(|tx| {
            tx.insert(&TAGS, "held/1", &tag())?;
            started.send(()).unwrap();
            released = release.recv_timeout(idle).is_ok();
            tx.insert(&TAGS, "held/2", &tag())
        });
        (written, released)
    }

    #[test]
    fn a_writer_idle_past_the_limit_is_ended_and_frees_the_others() {
        let Some(db) = TestDatabase::create() else { return };
        // Only the stalled writer has the short limit (the server times each session by its
        // own): the others' writes, under the default, cannot be cut short by a slow machine.
        let short = PostgresOptions { connections: 2, write_idle_limit: Duration::from_millis(500) };
        let stalled_store = Store::open_postgres(&db.url, &short).unwrap();
        let store = db.store();
        let (started, held) = mpsc::channel();
        let (release, released) = mpsc::channel();
        std::thread::scope(|scope| {
            let stalled = scope.spawn(|| stall(&stalled_store, Duration::from_secs(30), started, released));
            held.recv().expect("the stalled writer holds the lock");
            // The paused writer holds the lock: this write waits for the server to end it.
            store.write(|tx| tx.insert(&TAGS, "other/1", &tag())).unwrap();
            release.send(()).ok();
            let (written, _) = stalled.join().unwrap();
            assert!(written.is_err(), "the stalled write was ended: {written:?}");
        });
        store
            .read(|tx| {
                assert!(tx.get(&TAGS, "held/1")?.is_none(), "nothing of the ended write landed");
                assert!(tx.get(&TAGS, "held/2")?.is_none());
                assert!(tx.get(&TAGS, "other/1")?.is_some());
                Ok::<_, crate::Error>(())
            })
            .unwrap();
        // Its connection left the pool: the stalled store's next writes find good ones.
        for n in 0..4 {
            stalled_store.write(|tx| tx.insert(&TAGS, &format!("after/{n}"), &tag())).unwrap();
        }
    }

    #[test]
    fn opening_an_up_to_date_store_takes_no_turn_at_the_writers_lock() {
        let Some(db) = TestDatabase::create() else { return };
        let store = db.store();
        let (started, held) = mpsc::channel();
        let (release, released) = mpsc::channel();
        std::thread::scope(|scope| {
            // Woken by the time only if opening waited for it (within the default limit).
            let stalled = scope.spawn(|| stall(&store, Duration::from_secs(4), started, released));
            held.recv().expect("the writer holds the lock");
            let other = db.store();
            assert!(other.lease_holder("conductor").unwrap().is_none());
            release.send(()).ok();
            let (written, was_released) = stalled.join().unwrap();
            assert!(was_released, "opening waited for the writer");
            written.expect("a writer idle within the limit commits");
        });
    }
}
