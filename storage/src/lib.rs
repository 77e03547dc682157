//! Stratus's state: in redb (embedded, the default) or in PostgreSQL ([`pg`]).
//!
//! 1. [`Store::open`] opens (or creates) the database file and makes sure every table in
//!    [`tables`] exists; a second process on the same file gets [`Error::Locked`].
//!    [`Store::open_postgres`] connects to a PostgreSQL database instead and brings its schema
//!    up to date; callers see no difference.
//! 2. Callers work in closures: [`Store::read`] gets a snapshot, [`Store::write`] a transaction
//!    that commits when the closure returns `Ok` and is dropped (rolled back) otherwise.
//! 3. Values are typed [`Record`]s, stored as one version byte followed by the record in
//!    MessagePack (field names kept, so that fields can be added with defaults as before), so
//!    that a later layout can be told apart from this one and migrated. The version byte's
//!    high bit ([`PACKED`]) marks MessagePack; records written before it are JSON, still read,
//!    and rewritten once when the store opens ([`repack`]). MessagePack decodes in about half
//!    JSON's time (no text to scan for escapes, numbers already binary) and is smaller.
//!
//! 4. Some records have derived tables (indexes and aggregates, see [`derived`]) that every
//!    insert and remove keeps in step, in the same transaction.
//!
//! Keys are strings; records of one account share the prefix `"{account}/"` so that listing an
//! account's resources is one range scan. On redb they are [`TextKey`]s, compared as bytes
//! (the order of their characters); stores written with redb's own `&str` keys are rewritten
//! once when they open ([`rekey`]). A reader that needs a few fields of a large record reads
//! a [`Part`] of it.

pub mod copy;
pub mod derived;
pub mod lease;
pub mod metrics;
pub mod pg;
mod records;
pub mod snapshot;
pub mod tables;
pub mod testing;

use std::marker::PhantomData;
use std::path::Path;

use redb::{ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use derived::{HostUsageRecord, IndexEntry, LeaseBlockRecord, MetaRecord, NetworkAclRecord};
pub use records::*;

/// How a PostgreSQL store connects and what it allows its writers.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// How many connections the process keeps at most.
    pub connections: u32,
    /// How long a write may sit idle between its statements before the server ends it
    /// ([`pg::WRITE_IDLE_LIMIT`] unless a test wants it shorter).
    pub write_idle_limit: std::time::Duration,
}

impl PostgresOptions {
    pub fn with_connections(connections: u32) -> Self {
        Self { connections, write_idle_limit: pg::WRITE_IDLE_LIMIT }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// another process holds the database file
    #[error("another process holds the database file")]
    Locked,
    /// the lease the writing work depends on is no longer its holder's
    #[error("fenced: {0}")]
    Fenced(String),
    /// the database failed
    #[error("database: {0}")]
    Db(String),
    /// a stored record could not be read
    #[error("record {key} in {table} is unreadable: {why}")]
    Corrupt { table: &'static str, key: String, why: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! db_error {
    ($($ty:ty),*) => {$(
        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::Db(e.to_string())
            }
        }
    )*};
}
db_error!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

impl From<redb::DatabaseError> for Error {
    fn from(e: redb::DatabaseError) -> Self {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::Locked,
            other => Error::Db(other.to_string()),
        }
    }
}

/// A record type: serde for the body, a version byte for the layout.
pub trait Record: Serialize + DeserializeOwned {
    const VERSION: u8;
    /// Older layouts the current one reads as they are (it only added fields with defaults).
    /// An older binary refuses the newer version instead of misreading it.
    const READS: &'static [u8] = &[];
    /// Whether writes of this record keep derived tables in step ([`Record::derive`]).
    const DERIVED: bool = false;

    /// Brings the derived tables in step with the record at `key` going from `old` to `new`
    /// (`None`: absent), inside the writing transaction.
    fn derive(_tx: &WriteTx, _key: &str, _old: Option<&Self>, _new: Option<&Self>) -> Result<()> {
        Ok(())
    }
}

/// The version byte's flag for a MessagePack body (without it, the body is JSON).
pub const PACKED: u8 = 0x80;

fn encode<V: Record>(value: &V) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(256);
    bytes.push(V::VERSION | PACKED);
    // Serializing plain structs of strings and numbers into a Vec cannot fail.
    rmp_serde::encode::write_named(&mut bytes, value).unwrap_or_default();
    bytes
}

fn decode<V: Record>(table: &'static str, key: &str, bytes: &[u8]) -> Result<V> {
    decode_part::<V, V>(table, key, bytes)
}

/// Some fields of a record: what a reader needs of a large record (a group's name, not its
/// rules), read from the record's bytes with the rest skipped, never built. A part names only
/// fields that every layout its record reads ([`Record::READS`]) holds alike.
pub trait Part<V: Record>: DeserializeOwned {}

impl<V: Record> Part<V> for V {}

/// A record's bytes read as `P`, checked against `V`'s layout versions.
fn decode_part<V: Record, P: DeserializeOwned>(table: &'static str, key: &str, bytes: &[u8]) -> Result<P> {
    let corrupt = |why: String| Error::Corrupt { table, key: key.to_owned(), why };
    let Some((&tag, body)) = bytes.split_first() else { return Err(corrupt("empty".into())) };
    let version = tag & !PACKED;
    if version != V::VERSION && !V::READS.contains(&version) {
        return Err(corrupt(format!("layout version {version}, expected {}", V::VERSION)));
    }
    if tag & PACKED != 0 {
        rmp_serde::from_slice(body).map_err(|e| corrupt(e.to_string()))
    } else {
        serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()))
    }
}

/// A JSON record's bytes as MessagePack, keeping its version: the body goes through a JSON
/// value, whose maps, strings, numbers and nulls MessagePack holds alike (records have no maps
/// with other than string keys). `None` for bytes that are not a JSON record.
pub(crate) fn repack_bytes(bytes: &[u8]) -> Option<Vec<u8>> {
    let (&version, body) = bytes.split_first()?;
    if version & PACKED != 0 {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut packed = vec![version | PACKED];
    rmp_serde::encode::write_named(&mut packed, &value).ok()?;
    Some(packed)
}

/// The records' encoding in [`tables::META`] under `encoding`: 1 is MessagePack ([`PACKED`]).
const ENCODING: u32 = 1;

/// Whether the store's `encoding` mark says its records are all in MessagePack already.
fn packed(mark: Option<MetaRecord>) -> bool {
    mark.is_some_and(|m| m.version == ENCODING)
}

/// Any record, as bytes, for passes over tables that need not understand them.
#[derive(Serialize, serde::Deserialize)]
pub(crate) struct RawRecord;

impl Record for RawRecord {
    const VERSION: u8 = 0;
}

/// Rewrites every JSON record of the store in MessagePack, once: stores written before
/// [`ENCODING`] 1 are brought up to it when they open, in the opening transaction.
fn repack(tx: &WriteTx) -> Result<u64> {
    if packed(tx.get(&tables::META, "encoding")?) {
        return Ok(0);
    }
    let mut total = 0;
    for &name in tables::ALL {
        let table: Table<RawRecord> = Table::new(name);
        // In batches, so that a large table is never held in memory whole.
        let mut after: Option<String> = None;
        loop {
            let mut batch = Vec::new();
            let mut last = None;
            tx.walk_keys(&table, "", after.as_deref(), |key, bytes| {
                last = Some(key.to_owned());
                if let Some(packed) = repack_bytes(bytes) {
                    batch.push((key.to_owned(), packed));
                }
                Ok(batch.len() < 1000)
            })?;
            total += batch.len() as u64;
            for (key, packed) in &batch {
                tx.put_raw(&table, key, packed)?;
            }
            if last.is_none() || batch.len() < 1000 {
                break;
            }
            after = last;
        }
    }
    if total > 0 {
        tracing::info!(records = total, "store: records rewritten from JSON to MessagePack");
    }
    tx.insert(&tables::META, "encoding", &MetaRecord { version: ENCODING })?;
    Ok(total)
}

/// A table of records of one type.
pub struct Table<V> {
    name: &'static str,
    record: PhantomData<fn() -> V>,
}

impl<V: Record> Table<V> {
    pub const fn new(name: &'static str) -> Self {
        Self { name, record: PhantomData }
    }

    fn def(&self) -> TableDefinition<'static, TextKey, &'static [u8]> {
        TableDefinition::new(self.name)
    }
}

/// Record keys on redb: text, compared as bytes. UTF-8's byte order is its characters' order,
/// so lookups, ranges and prefixes read as with redb's own `&str` keys, which check both keys'
/// UTF-8 at every comparison of a lookup: a twentieth of a Describe's CPU under load (`perf`,
/// `docs/benchmarks.md`). Stores written with `&str` keys are rewritten once ([`rekey`]).
#[derive(Debug)]
pub struct TextKey;

impl redb::Value for TextKey {
    type SelfType<'a>
        = &'a str
    where
        Self: 'a;
    type AsBytes<'a>
        = &'a [u8]
    where
        Self: 'a;

    fn fixed_width() -> Option<usize> {
        None
    }

    fn from_bytes<'a>(data: &'a [u8]) -> &'a str
    where
        Self: 'a,
    {
        // Keys are only ever written from `&str`; a key that is not UTF-8 (a damaged file)
        // reads as empty and matches no record, rather than stopping the process.
        std::str::from_utf8(data).unwrap_or_default()
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a &'b str) -> &'a [u8]
    where
        Self: 'b,
    {
        value.as_bytes()
    }

    fn type_name() -> redb::TypeName {
        redb::TypeName::new("stratus::TextKey")
    }
}

impl redb::Key for TextKey {
    fn compare(data1: &[u8], data2: &[u8]) -> std::cmp::Ordering {
        data1.cmp(data2)
    }
}

/// Rewrites the record tables of a store written with redb's `&str` keys to [`TextKey`]s, in
/// the opening transaction: each table is copied aside, deleted, and copied back under its
/// name (redb cannot rename a table). Answers how many tables were rewritten.
fn rekey(tx: &redb::WriteTransaction) -> Result<usize> {
    type OldDef = TableDefinition<'static, &'static str, &'static [u8]>;
    let present: Vec<String> = tx.list_tables()?.map(|h| redb::TableHandle::name(&h).to_owned()).collect();
    let mut rewritten = 0;
    for name in tables::ALL.iter().filter(|name| present.iter().any(|p| p == *name)) {
        match tx.open_table(TableDefinition::<TextKey, &[u8]>::new(name)) {
            Ok(_) => continue,
            Err(redb::TableError::TableTypeMismatch { .. }) => {}
            Err(other) => return Err(other.into()),
        }
        let aside_name = format!("{name}~rekey");
        let aside = TableDefinition::<TextKey, &[u8]>::new(&aside_name);
        copy_rows(&tx.open_table(OldDef::new(name))?, &mut tx.open_table(aside)?)?;
        tx.delete_table(OldDef::new(name))?;
        copy_rows(&tx.open_table(aside)?, &mut tx.open_table(TableDefinition::<TextKey, &[u8]>::new(name))?)?;
        tx.delete_table(aside)?;
        rewritten += 1;
    }
    Ok(rewritten)
}

/// Every row of `from` into `to`, keys as they are.
fn copy_rows<K>(
    from: &impl ReadableTable<K, &'static [u8]>,
    to: &mut redb::Table<'_, TextKey, &'static [u8]>,
) -> Result<()>
where
    K: for<'a> redb::Value<SelfType<'a> = &'a str> + redb::Key + 'static,
{
    for entry in from.iter()? {
        let (key, value) = entry?;
        to.insert(key.value(), value.value())?;
    }
    Ok(())
}

pub struct Store {
    kind: Kind,
    /// A redb store's file (none in memory or on PostgreSQL).
    file: Option<std::path::PathBuf>,
}

enum Kind {
    Redb(redb::Database),
    Postgres(Box<pg::Database>),
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Kind::Postgres(db) = &mut self.kind {
            // Closing PostgreSQL connections blocks: never on an async executor's thread.
            let parts = db.take();
            pg::blocking(move || drop(parts));
        }
    }
}

/// redb's page cache when none is asked for: pages beyond it are read again from the file
/// (the kernel's page cache), so memory stays bounded however large the database grows.
/// 48 MiB kept RSS at 133 MiB with 100,000 instances stored (147 MiB at 64), lookups by id
/// alike within the benchmark's noise (docs/benchmarks.md, run 6).
pub const DEFAULT_CACHE_MIB: usize = 48;

/// What redb is asked to cache for `cache_mib` of memory. redb counts a cached page's 4 KiB,
/// but holds each in an `Arc<[u8]>` whose 16-byte header makes the allocation 4,112 bytes,
/// which jemalloc serves from its 5,120-byte size class (a heap profile at 100,000 stored:
/// 67 MiB of pages asked for with a 64 MiB cache, so ~83 MiB in that class). So it is asked for four
/// fifths: `cache_mib` is what the cache holds of memory.
pub fn redb_cache_bytes(cache_mib: usize) -> usize {
    (cache_mib << 20) / 5 * 4
}

impl Store {
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_cache(path, DEFAULT_CACHE_MIB)
    }

    pub fn open_with_cache(path: &Path, cache_mib: usize) -> Result<Self> {
        Self::init(redb::Database::builder().set_cache_size(redb_cache_bytes(cache_mib)).create(path)?, Some(path))
    }

    /// A store that lives in memory only, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::init(redb::Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?, None)
    }

    /// The store in the PostgreSQL database `url` names (libpq's URL or key=value forms,
    /// several hosts with `target_session_attrs=read-write` too), connected as `options` say.
    /// Any number of processes may open it: replicas take turns at background work through
    /// [`lease`]s.
    pub fn open_postgres(url: &str, options: &PostgresOptions) -> Result<Self> {
        let db = pg::blocking(|| pg::Database::open(url, options))?;
        let store = Self { kind: Kind::Postgres(Box::new(db)), file: None };
        // Looked at first in a read: a store already up to date (every open but an upgrade's)
        // takes no turn at the writers' lock, which another replica may hold (pg.rs, 4.).
        let current = store.read(|tx| {
            Ok::<_, Error>(
                packed(tx.get(&tables::META, "encoding")?) && derived::current(tx.get(&tables::META, "derived")?),
            )
        })?;
        if !current {
            store.write(|tx| {
                repack(tx)?;
                derived::ensure(tx)
            })?;
        }
        Ok(store)
    }

    fn init(db: redb::Database, file: Option<&Path>) -> Result<Self> {
        let tx = db.begin_write()?;
        let rekeyed = rekey(&tx)?;
        if rekeyed > 0 {
            tracing::info!(tables = rekeyed, "record keys rewritten for byte-order comparison");
        }
        for name in tables::ALL {
            tx.open_table(TableDefinition::<TextKey, &[u8]>::new(name))?;
        }
        let write = WriteTx::new(&tx);
        repack(&write)?;
        derived::ensure(&write)?;
        drop(write);
        tx.commit()?;
        Ok(Self { kind: Kind::Redb(db), file: file.map(Path::to_owned) })
    }

    /// Whether the store is PostgreSQL's.
    pub fn is_postgres(&self) -> bool {
        matches!(self.kind, Kind::Postgres(..))
    }

    pub fn read<T, E: From<Error>>(&self, f: impl FnOnce(&ReadTx) -> Result<T, E>) -> Result<T, E> {
        match &self.kind {
            Kind::Redb(db) => {
                let begin = || -> Result<ReadTx> {
                    Ok(ReadTx { inner: ReadInner::Redb { tx: db.begin_read()?, open: Default::default() } })
                };
                // Within a snapshot ([`snapshot`]) the read shares its transaction.
                match snapshot::redb_join(snapshot::redb_id(db), begin) {
                    Some(shared) => f(&*shared.map_err(E::from)?),
                    None => f(&begin()?),
                }
            }
            // PostgreSQL's client blocks: off the executor when called on it.
            Kind::Postgres(db) => pg::blocking(|| {
                // Within a snapshot ([`snapshot`]) the read joins its transaction.
                let joined = snapshot::join(snapshot::db_id(db));
                let shared = joined.is_some();
                let conn = match joined.flatten() {
                    Some(conn) => Ok(conn),
                    None => db.connection().and_then(|mut conn| pg::begin_read(&mut conn).map(|()| conn)),
                };
                let conn = match conn {
                    Ok(conn) => conn,
                    Err(error) => {
                        if shared {
                            snapshot::leave(None, false);
                        }
                        return Err(error.into());
                    }
                };
                let tx = ReadTx { inner: ReadInner::Postgres(Box::new(std::cell::RefCell::new(conn))) };
                let value = f(&tx);
                let ReadInner::Postgres(conn) = tx.inner else { unreachable!("a PostgreSQL read") };
                let mut conn = conn.into_inner();
                if shared {
                    snapshot::leave(Some(conn), value.is_ok());
                } else {
                    pg::end(&mut conn, false)?;
                }
                value
            }),
        }
    }

    pub fn write<T, E: From<Error>>(&self, f: impl FnOnce(&WriteTx) -> Result<T, E>) -> Result<T, E> {
        match &self.kind {
            Kind::Redb(db) => {
                snapshot::redb_end_for_write(snapshot::redb_id(db));
                let tx = db.begin_write().map_err(Error::from)?;
                // The tables the closure opened close with `WriteTx` before the commit.
                let value = f(&WriteTx::new(&tx))?;
                tx.commit().map_err(Error::from)?;
                Ok(value)
            }
            Kind::Postgres(db) => pg::blocking(|| {
                snapshot::end_for_write(snapshot::db_id(db));
                let conn = std::cell::RefCell::new(db.connection()?);
                db.begin_write(&mut conn.borrow_mut())?;
                // Work done under a lease writes only while the lease is still its own.
                let fenced = lease::check(&mut conn.borrow_mut());
                if let Err(fenced) = fenced {
                    pg::end(&mut conn.borrow_mut(), false)?;
                    return Err(fenced.into());
                }
                let value = f(&WriteTx::postgres(&conn));
                // Committed only when the closure succeeded; a commit that fails (the
                // connection lost) is an error: the write may or may not have landed, as with
                // any database, and callers retry by reading what is there.
                pg::end(&mut conn.borrow_mut(), value.is_ok())?;
                value
            }),
        }
    }
}

fn get_from<V: Record, P: Part<V>>(
    table: &impl ReadableTable<TextKey, &'static [u8]>,
    t: &Table<V>,
    key: &str,
) -> Result<Option<P>> {
    match table.get(key)? {
        Some(bytes) => decode_part::<V, P>(t.name, key, bytes.value()).map(Some),
        None => Ok(None),
    }
}

fn scan_from<V: Record>(
    table: &impl ReadableTable<TextKey, &'static [u8]>,
    t: &Table<V>,
    prefix: &str,
) -> Result<Vec<(String, V)>> {
    let mut out = Vec::new();
    for entry in table.range(prefix..)? {
        let (key, value) = entry?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push((key.to_owned(), decode(t.name, key, value.value())?));
    }
    Ok(out)
}

/// Hands `f` the entries of a redb table whose key starts with `prefix`, from just after
/// `prefix` + `after` (from the first, without), until `f` answers `false`.
fn walk_from(
    table: &impl ReadableTable<TextKey, &'static [u8]>,
    prefix: &str,
    after: Option<&str>,
    mut f: impl FnMut(&str, &[u8]) -> Result<bool>,
) -> Result<()> {
    use std::ops::Bound;
    let start = after.map(|a| format!("{prefix}{a}"));
    let range = match &start {
        Some(start) => table.range::<&str>((Bound::Excluded(start.as_str()), Bound::Unbounded))?,
        None => table.range::<&str>(prefix..)?,
    };
    for entry in range {
        let (key, value) = entry?;
        let key = key.value();
        if !key.starts_with(prefix) || !f(key, value.value())? {
            break;
        }
    }
    Ok(())
}

/// What reading takes, in a snapshot or in a write transaction.
pub trait Reads {
    fn get<V: Record>(&self, t: &Table<V>, key: &str) -> Result<Option<V>>;
    /// Every record whose key starts with `prefix`, in key order.
    fn scan<V: Record>(&self, t: &Table<V>, prefix: &str) -> Result<Vec<(String, V)>>;
    /// As [`ReadTx::walk_keys`]; `f` reads nothing and writes nothing (in a redb write
    /// transaction the table is borrowed for the walk).
    fn walk_keys<V: Record>(
        &self,
        t: &Table<V>,
        prefix: &str,
        after: Option<&str>,
        f: impl FnMut(&str, &[u8]) -> Result<bool>,
    ) -> Result<()>;

    /// The records at `keys` that exist, in key order (on PostgreSQL one round trip for all).
    fn get_many<V: Record>(&self, t: &Table<V>, keys: &[&str]) -> Result<Vec<(String, V)>>;

    /// Hands `f` each instance that is not terminated, in key order, with its key.
    fn for_each_live_instance(&self, mut f: impl FnMut(&str, InstanceRecord)) -> Result<()> {
        let mut keys = Vec::new();
        self.walk_keys(&tables::LIVE_INSTANCES, "", None, |key, _| {
            keys.push(key.to_owned());
            Ok(true)
        })?;
        // The index is written with the record, in one transaction: never one without the
        // other. Read in batches: on PostgreSQL a lookup each would be a round trip each.
        for batch in keys.chunks(256) {
            let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
            for (key, record) in self.get_many(&tables::INSTANCES, &batch)? {
                f(&key, record);
            }
        }
        Ok(())
    }

    /// Whether `f` answers true for any instance of `account` that is not terminated and has
    /// `value` for the indexed attribute `name` ([`derived::INDEXED_ATTRIBUTES`]). Reads that
    /// value's range of the attribute index and the live ones of its instances, a batch at a
    /// time, until `f` answers: not every instance of the account, which a write transaction
    /// asking whether a subnet or a group is in use would otherwise hold the store for.
    fn any_live_instance_with(
        &self,
        account: &str,
        name: &str,
        value: &str,
        mut f: impl FnMut(&InstanceRecord) -> bool,
    ) -> Result<bool> {
        const BATCH: usize = 256;
        let prefix = derived::attribute_prefix(account, name, value);
        let mut after: Option<String> = None;
        loop {
            let mut entries = Vec::new();
            self.walk_keys(&tables::ATTRIBUTE_RESERVATIONS, &prefix, after.as_deref(), |key, _| {
                entries.push(key[prefix.len()..].to_owned());
                Ok(entries.len() < BATCH)
            })?;
            // Entries end `{reservation}/{instance}`.
            let instances: Vec<String> = entries
                .iter()
                .filter_map(|entry| entry.split_once('/'))
                .map(|(_, instance)| format!("{account}/{instance}"))
                .collect();
            let keys: Vec<&str> = instances.iter().map(String::as_str).collect();
            let live: Vec<String> =
                self.get_many(&tables::LIVE_INSTANCES, &keys)?.into_iter().map(|(k, _)| k).collect();
            let live: Vec<&str> = live.iter().map(String::as_str).collect();
            if !live.is_empty() && self.get_many(&tables::INSTANCES, &live)?.iter().any(|(_, record)| f(record)) {
                return Ok(true);
            }
            match entries.pop() {
                // A full batch: there may be more after it.
                Some(last) if entries.len() + 1 == BATCH => after = Some(last),
                _ => return Ok(false),
            }
        }
    }

    /// One of `account`'s instances that is not terminated and is on `host_id` or migrating to
    /// it, the first by id; `None` when the host holds none of the account's. Reads the host's
    /// range of [`tables::HOST_INSTANCES`], not the account's instances.
    fn live_instance_on_host(&self, host_id: &str, account: &str) -> Result<Option<InstanceRecord>> {
        let prefix = derived::host_instances_key(host_id, account, "");
        let mut first = None;
        self.walk_keys(&tables::HOST_INSTANCES, &prefix, None, |key, _| {
            first = Some(key[prefix.len()..].to_owned());
            Ok(false)
        })?;
        // The entry is written with the record, in one transaction: the record is there.
        match first {
            Some(id) => self.get(&tables::INSTANCES, &format!("{account}/{id}")),
            None => Ok(None),
        }
    }

    /// The keys of instances terminated at or before `cutoff_ms`, oldest first.
    fn terminated_by(&self, cutoff_ms: i64) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        self.walk_keys(&tables::TERMINATIONS, "", None, |entry, _| {
            let Some((at, key)) = entry.split_once('/') else { return Ok(true) };
            if at.parse::<i64>().map_or(true, |at| at > cutoff_ms) {
                return Ok(false);
            }
            keys.push(key.to_owned());
            Ok(true)
        })?;
        Ok(keys)
    }
}

impl Reads for ReadTx {
    fn get<V: Record>(&self, t: &Table<V>, key: &str) -> Result<Option<V>> {
        ReadTx::get(self, t, key)
    }

    fn scan<V: Record>(&self, t: &Table<V>, prefix: &str) -> Result<Vec<(String, V)>> {
        ReadTx::scan(self, t, prefix)
    }

    fn walk_keys<V: Record>(
        &self,
        t: &Table<V>,
        prefix: &str,
        after: Option<&str>,
        f: impl FnMut(&str, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        ReadTx::walk_keys(self, t, prefix, after, f)
    }

    fn get_many<V: Record>(&self, t: &Table<V>, keys: &[&str]) -> Result<Vec<(String, V)>> {
        match &self.inner {
            ReadInner::Postgres(conn) => pg_get_many(&mut conn.borrow_mut(), t, keys),
            ReadInner::Redb { .. } => get_each(self, t, keys),
        }
    }
}

impl Reads for WriteTx<'_> {
    fn get<V: Record>(&self, t: &Table<V>, key: &str) -> Result<Option<V>> {
        WriteTx::get(self, t, key)
    }

    fn scan<V: Record>(&self, t: &Table<V>, prefix: &str) -> Result<Vec<(String, V)>> {
        WriteTx::scan(self, t, prefix)
    }

    fn walk_keys<V: Record>(
        &self,
        t: &Table<V>,
        prefix: &str,
        after: Option<&str>,
        f: impl FnMut(&str, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        WriteTx::walk_keys(self, t, prefix, after, f)
    }

    fn get_many<V: Record>(&self, t: &Table<V>, keys: &[&str]) -> Result<Vec<(String, V)>> {
        match &self.inner {
            WriteInner::Postgres(conn) => pg_get_many(&mut conn.borrow_mut(), t, keys),
            WriteInner::Redb { .. } => get_each(self, t, keys),
        }
    }
}

/// [`Reads::get_many`] as lookups one by one (redb's are in memory-mapped pages, not round
/// trips), sorted as PostgreSQL's answer is.
fn get_each<V: Record>(tx: &impl Reads, t: &Table<V>, keys: &[&str]) -> Result<Vec<(String, V)>> {
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(record) = tx.get(t, key)? {
            found.push(((*key).to_owned(), record));
        }
    }
    found.sort_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
    Ok(found)
}

fn pg_get_many<V: Record>(conn: &mut pg::PgConn, t: &Table<V>, keys: &[&str]) -> Result<Vec<(String, V)>> {
    decode_rows(t, conn.get_many(t.name, keys)?)
}

type ReadTable = redb::ReadOnlyTable<TextKey, &'static [u8]>;

/// A consistent snapshot. On redb, tables open on first use and stay open for the snapshot's
/// life (opening one is a lookup of its own); on PostgreSQL it is one read-only transaction.
pub struct ReadTx {
    inner: ReadInner,
}

enum ReadInner {
    Redb { tx: redb::ReadTransaction, open: std::cell::RefCell<Vec<(&'static str, std::rc::Rc<ReadTable>)>> },
    Postgres(Box<std::cell::RefCell<r2d2::PooledConnection<pg::Manager>>>),
}

impl ReadTx {
    fn table<V: Record>(
        tx: &redb::ReadTransaction,
        open: &std::cell::RefCell<Vec<(&'static str, std::rc::Rc<ReadTable>)>>,
        t: &Table<V>,
    ) -> Result<std::rc::Rc<ReadTable>> {
        if let Some((_, table)) = open.borrow().iter().find(|(name, _)| *name == t.name) {
            return Ok(std::rc::Rc::clone(table));
        }
        let table = std::rc::Rc::new(tx.open_table(t.def())?);
        open.borrow_mut().push((t.name, std::rc::Rc::clone(&table)));
        Ok(table)
    }

    pub fn get<V: Record>(&self, t: &Table<V>, key: &str) -> Result<Option<V>> {
        self.get_part(t, key)
    }

    /// The size of PostgreSQL's tables, read in this snapshot ([`Store::size_bytes`]).
    pub(crate) fn postgres_bytes(&self) -> Result<u64> {
        match &self.inner {
            ReadInner::Postgres(conn) => conn.borrow_mut().stored_bytes(),
            ReadInner::Redb { .. } => Err(Error::Db("a redb store's size is its file's".into())),
        }
    }

    /// Part of the record at `key` ([`Part`]).
    pub fn get_part<V: Record, P: Part<V>>(&self, t: &Table<V>, key: &str) -> Result<Option<P>> {
        match &self.inner {
            ReadInner::Redb { tx, open } => get_from(&*Self::table(tx, open, t)?, t, key),
            ReadInner::Postgres(conn) => pg_get(&mut conn.borrow_mut(), t, key),
        }
    }

    /// Every record whose key starts with `prefix`, in key order.
    pub fn scan<V: Record>(&self, t: &Table<V>, prefix: &str) -> Result<Vec<(String, V)>> {
        match &self.inner {
            ReadInner::Redb { tx, open } => scan_from(&*Self::table(tx, open, t)?, t, prefix),
            ReadInner::Postgres(conn) => pg_scan(&mut conn.borrow_mut(), t, prefix),
        }
    }

    /// Hands `f` the records whose key starts with `prefix`, in key order from just after
    /// `prefix` + `after` (from the first, without), until `f` answers `false`: a page reads
    /// what it needs and no more.
    pub fn walk<V: Record>(
        &self,
        t: &Table<V>,
        prefix: &str,
        after: Option<&str>,
        mut f: impl FnMut(&str, V) -> bool,
    ) -> Result<()> {
        self.walk_keys(t, prefix, after, |key, bytes| Ok(f(key, decode(t.name, key, bytes)?)))
    }

    /// As [`ReadTx::walk`], handing `f` each key with the record's undecoded bytes (an index
    /// entry needs no decoding; a record `f` can judge by its key need not be decoded).
    pub fn walk_keys<V: Record>(
        &self,
        t: &Table<V>,
        prefix: &str,
        after: Option<&str>,
        mut f: impl FnMut(&str, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        match &self.inner {
            ReadInner::Redb { tx, open } => walk_from(&*Self::table(tx, open, t)?, prefix, after, f),
            // `f` may read the snapshot itself: each batch is fetched before it is handed on.
            ReadInner::Postgres(conn) => pg::walk(conn, t.name, prefix, after, &mut f),
        }
    }

    /// Decodes one record's bytes as [`ReadTx::walk_keys`] handed them.
    pub fn decode<V: Record>(&self, t: &Table<V>, key: &str, bytes: &[u8]) -> Result<V> {
        decode(t.name, key, bytes)
    }

    /// Hands `f` every record whose key starts with `prefix`, in key order, one at a time:
    /// a pass over a large table that keeps only what `f` keeps.
    pub fn for_each<V: Record>(&self, t: &Table<V>, prefix: &str, mut f: impl FnMut(&str, V)) -> Result<()> {
        self.walk_keys(t, prefix, None, |key, bytes| {
            f(key, decode(t.name, key, bytes)?);
            Ok(true)
        })
    }
}

fn pg_get<V: Record, P: Part<V>>(conn: &mut pg::PgConn, t: &Table<V>, key: &str) -> Result<Option<P>> {
    conn.get(t.name, key)?.map(|bytes| decode_part::<V, P>(t.name, key, &bytes)).transpose()
}

fn pg_scan<V: Record>(conn: &mut pg::PgConn, t: &Table<V>, prefix: &str) -> Result<Vec<(String, V)>> {
    decode_rows(t, conn.scan(t.name, prefix)?)
}

fn decode_rows<V: Record>(t: &Table<V>, rows: Vec<(String, Vec<u8>)>) -> Result<Vec<(String, V)>> {
    rows.into_iter()
        .map(|(key, bytes)| {
            let value = decode(t.name, &key, &bytes)?;
            Ok((key, value))
        })
        .collect()
}

/// A write transaction; it sees its own writes.
type WriteTable<'a> = redb::Table<'a, TextKey, &'static [u8]>;
/// The tables a write transaction has open, by name.
type OpenTables<'a> = std::cell::RefCell<Vec<(&'static str, std::rc::Rc<std::cell::RefCell<WriteTable<'a>>>)>>;

/// A write transaction; it sees its own writes. On redb, tables open on first use and stay
/// open until the transaction commits (a launch writes a dozen records to a handful of
/// tables); on PostgreSQL it is one transaction that writers take turns on ([`pg`]).
pub struct WriteTx<'a> {
    inner: WriteInner<'a>,
}

enum WriteInner<'a> {
    Redb { tx: &'a redb::WriteTransaction, open: OpenTables<'a> },
    Postgres(&'a std::cell::RefCell<r2d2::PooledConnection<pg::Manager>>),
}

impl<'a> WriteTx<'a> {
    fn new(tx: &'a redb::WriteTransaction) -> Self {
        Self { inner: WriteInner::Redb { tx, open: Default::default() } }
    }

    fn postgres(conn: &'a std::cell::RefCell<r2d2::PooledConnection<pg::Manager>>) -> Self {
        Self { inner: WriteInner::Postgres(conn) }
    }

    /// Bytes the database's allocated pages take, as of this transaction.
    pub fn stored_bytes(&self) -> Result<u64> {
        match &self.inner {
            WriteInner::Redb { tx, .. } => {
                let stats = tx.stats()?;
                Ok(stats.allocated_pages() * stats.page_size() as u64)
            }
            WriteInner::Postgres(conn) => conn.borrow_mut().stored_bytes(),
        }
    }

    fn table<V: Record>(
        tx: &'a redb::WriteTransaction,
        open: &OpenTables<'a>,
        t: &Table<V>,
    ) -> Result<std::rc::Rc<std::cell::RefCell<WriteTable<'a>>>> {
        if let Some((_, table)) = open.borrow().iter().find(|(name, _)| *name == t.name) {
            return Ok(std::rc::Rc::clone(table));
        }
        let table = std::rc::Rc::new(std::cell::RefCell::new(tx.open_table(t.def())?));
        open.borrow_mut().push((t.name, std::rc::Rc::clone(&table)));
        Ok(table)
    }

    /// The PostgreSQL transaction, for the metric history written beside the records.
    pub(crate) fn postgres_conn(&self) -> Option<std::cell::RefMut<'_, r2d2::PooledConnection<pg::Manager>>> {
        match &self.inner {
            WriteInner::Postgres(conn) => Some(conn.borrow_mut()),
            WriteInner::Redb { .. } => None,
        }
    }

    pub fn get<V: Record>(&self, t: &Table<V>, key: &str) -> Result<Option<V>> {
        match &self.inner {
            WriteInner::Redb { tx, open } => get_from(&*Self::table(tx, open, t)?.borrow(), t, key),
            WriteInner::Postgres(conn) => pg_get(&mut conn.borrow_mut(), t, key),
        }
    }

    pub fn scan<V: Record>(&self, t: &Table<V>, prefix: &str) -> Result<Vec<(String, V)>> {
        match &self.inner {
            WriteInner::Redb { tx, open } => scan_from(&*Self::table(tx, open, t)?.borrow(), t, prefix),
            WriteInner::Postgres(conn) => pg_scan(&mut conn.borrow_mut(), t, prefix),
        }
    }

    pub fn insert<V: Record>(&self, t: &Table<V>, key: &str, value: &V) -> Result<()> {
        let bytes = encode(value);
        let old = match &self.inner {
            WriteInner::Redb { tx, open } => {
                let table = Self::table(tx, open, t)?;
                let mut table = table.borrow_mut();
                let old = table.insert(key, bytes.as_slice())?;
                if V::DERIVED {
                    old.map(|bytes| decode::<V>(t.name, key, bytes.value())).transpose()?
                } else {
                    None
                }
            }
            WriteInner::Postgres(conn) => {
                let mut conn = conn.borrow_mut();
                let old = if V::DERIVED { pg_get(&mut conn, t, key)? } else { None };
                conn.put(t.name, key, &bytes)?;
                old
            }
        };
        // Derived tables are others than `t`: its borrow has ended.
        if V::DERIVED {
            V::derive(self, key, old.as_ref(), Some(value))?;
        }
        Ok(())
    }

    /// As [`ReadTx::walk_keys`], inside the write transaction (what `f` hands back is read
    /// before anything is written).
    pub(crate) fn walk_keys<V: Record>(
        &self,
        t: &Table<V>,
        prefix: &str,
        after: Option<&str>,
        mut f: impl FnMut(&str, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        match &self.inner {
            WriteInner::Redb { tx, open } => walk_from(&*Self::table(tx, open, t)?.borrow(), prefix, after, f),
            WriteInner::Postgres(conn) => pg::walk(conn, t.name, prefix, after, &mut f),
        }
    }

    /// Stores bytes as they are, derived tables untouched: for rewriting a record's encoding.
    pub(crate) fn put_raw<V: Record>(&self, t: &Table<V>, key: &str, bytes: &[u8]) -> Result<()> {
        match &self.inner {
            WriteInner::Redb { tx, open } => {
                Self::table(tx, open, t)?.borrow_mut().insert(key, bytes)?;
            }
            WriteInner::Postgres(conn) => conn.borrow_mut().put(t.name, key, bytes)?,
        }
        Ok(())
    }

    /// Removes `key`; whether it was there.
    pub fn remove<V: Record>(&self, t: &Table<V>, key: &str) -> Result<bool> {
        let old: Option<Option<V>> = match &self.inner {
            WriteInner::Redb { tx, open } => {
                let table = Self::table(tx, open, t)?;
                let mut table = table.borrow_mut();
                let old = table.remove(key)?;
                match old {
                    Some(bytes) if V::DERIVED => Some(Some(decode::<V>(t.name, key, bytes.value())?)),
                    Some(_) => Some(None),
                    None => None,
                }
            }
            WriteInner::Postgres(conn) => match conn.borrow_mut().delete(t.name, key)? {
                Some(bytes) if V::DERIVED => Some(Some(decode::<V>(t.name, key, &bytes)?)),
                Some(_) => Some(None),
                None => None,
            },
        };
        if let Some(Some(old)) = &old {
            V::derive(self, key, Some(old), None)?;
        }
        Ok(old.is_some())
    }

    /// Empties a table.
    pub fn clear<V: Record>(&self, t: &Table<V>) -> Result<()> {
        match &self.inner {
            WriteInner::Redb { tx, open } => {
                // redb deletes only a table that is not open.
                open.borrow_mut().retain(|(name, _)| *name != t.name);
                tx.delete_table(t.def())?;
                tx.open_table(t.def())?;
                Ok(())
            }
            WriteInner::Postgres(conn) => conn.borrow_mut().clear(t.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::TAGS;

    #[test]
    fn walks_start_after_a_key_and_stop_when_told() {
        for (kind, store, _db) in testing::stores() {
            store
                .write(|tx| {
                    for key in ["a/1", "a/2", "a/3", "a/4", "b/1"] {
                        tx.insert(&TAGS, key, &tag(key))?;
                    }
                    Ok::<_, Error>(())
                })
                .unwrap();
            let walk = |after: Option<&str>, stop_after: usize| {
                let mut seen = Vec::new();
                store
                    .read(|tx| {
                        tx.walk(&TAGS, "a/", after, |key, _| {
                            seen.push(key.to_owned());
                            seen.len() < stop_after
                        })
                    })
                    .unwrap();
                seen
            };
            assert_eq!(walk(None, 10), ["a/1", "a/2", "a/3", "a/4"], "{kind}");
            assert_eq!(walk(Some("2"), 10), ["a/3", "a/4"], "{kind}: after is exclusive, within the prefix");
            assert_eq!(walk(Some("1"), 2), ["a/2", "a/3"], "{kind}");
            assert_eq!(walk(Some("9"), 10), Vec::<String>::new(), "{kind}");
        }
    }

    /// Walks longer than a PostgreSQL batch go on from where the batch ended, and may read the
    /// snapshot while they walk.
    #[test]
    fn long_walks_cross_batches_and_read_as_they_go() {
        for (kind, store, _db) in testing::stores() {
            let keys: Vec<String> = (0..700).map(|i| format!("a/{i:04}")).collect();
            store
                .write(|tx| {
                    for key in &keys {
                        tx.insert(&TAGS, key, &tag(key))?;
                    }
                    Ok::<_, Error>(())
                })
                .unwrap();
            let mut seen = Vec::new();
            store
                .read(|tx| {
                    tx.walk(&TAGS, "a/", Some("0099"), |key, record| {
                        let again = tx.get(&TAGS, key).unwrap().unwrap();
                        assert_eq!(again.key, record.key);
                        seen.push(key.to_owned());
                        true
                    })
                })
                .unwrap();
            assert_eq!(seen, keys[100..], "{kind}");
            let mut counted = 0;
            store.read(|tx| tx.for_each(&TAGS, "a/", |_, _: TagRecord| counted += 1)).unwrap();
            assert_eq!(counted, 700, "{kind}");
        }
    }

    fn tag(key: &str) -> TagRecord {
        TagRecord { resource_id: "key-1".into(), key: key.into(), value: "v".into() }
    }

    #[test]
    fn writes_commit_on_ok_and_roll_back_on_err() {
        for (kind, store, _db) in testing::stores() {
            store.write(|tx| tx.insert(&TAGS, "a/key-1/x", &tag("x"))).unwrap();
            let failed: Result<(), Error> = store.write(|tx| {
                tx.insert(&TAGS, "a/key-1/y", &tag("y"))?;
                assert!(tx.get(&TAGS, "a/key-1/y")?.is_some(), "a write sees its own writes");
                Err(Error::Db("boom".into()))
            });
            assert!(failed.is_err());
            let keys: Vec<String> =
                store.read(|tx| tx.scan(&TAGS, "a/")).unwrap().into_iter().map(|(k, _)| k).collect();
            assert_eq!(keys, ["a/key-1/x"], "{kind}");
            assert!(store.write(|tx| tx.remove(&TAGS, "a/key-1/x")).unwrap(), "{kind}");
            assert!(!store.write(|tx| tx.remove(&TAGS, "a/key-1/x")).unwrap(), "{kind}");
        }
    }

    #[test]
    fn scans_stop_at_the_prefix() {
        for (kind, store, _db) in testing::stores() {
            store
                .write(|tx| {
                    for key in ["a/1", "a/2", "ab/1", "b/1", "a0"] {
                        tx.insert(&TAGS, key, &tag(key))?;
                    }
                    Ok::<_, Error>(())
                })
                .unwrap();
            let found = store.read(|tx| tx.scan(&TAGS, "a/")).unwrap();
            assert_eq!(found.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["a/1", "a/2"], "{kind}");
            store.write(|tx| tx.clear(&TAGS)).unwrap();
            assert!(store.read(|tx| tx.scan(&TAGS, "")).unwrap().is_empty(), "{kind}");
        }
    }

    /// Writers take turns: increments from many threads at once all land.
    #[test]
    fn concurrent_writes_serialize() {
        for (kind, store, _db) in testing::stores() {
            let store = std::sync::Arc::new(store);
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let store = std::sync::Arc::clone(&store);
                    std::thread::spawn(move || {
                        for _ in 0..20 {
                            store
                                .write(|tx| {
                                    let mut t = tx.get(&TAGS, "n/1")?.unwrap_or_else(|| tag("0"));
                                    t.value = (t.value.parse::<u32>().unwrap_or(0) + 1).to_string();
                                    tx.insert(&TAGS, "n/1", &t)
                                })
                                .unwrap();
                        }
                    })
                })
                .collect();
            threads.into_iter().for_each(|t| t.join().unwrap());
            assert_eq!(store.read(|tx| tx.get(&TAGS, "n/1")).unwrap().unwrap().value, "160", "{kind}");
        }
    }

    #[test]
    fn records_carry_their_version_and_reject_others() {
        let bytes = encode(&tag("k"));
        assert_eq!(bytes[0], TagRecord::VERSION | PACKED);
        let mut future = bytes.clone();
        future[0] = (TagRecord::VERSION + 1) | PACKED;
        assert!(matches!(decode::<TagRecord>("tags", "k", &future), Err(Error::Corrupt { .. })));
        assert!(matches!(decode::<TagRecord>("tags", "k", &[]), Err(Error::Corrupt { .. })));
        assert_eq!(decode::<TagRecord>("tags", "k", &bytes).unwrap().key, "k");
    }

    /// A version-1 image (before CreateImage) reads as an available image.
    #[test]
    fn older_image_layouts_are_read_with_defaults() {
        let v1 = br#"{"id":"ami-1","owner":"a","name":"n","description":"","architecture":"x86_64","disk":"/d","disk_format":"raw","virtual_size_bytes":1,"kernel":null,"initrd":null,"cmdline":null,"public":false,"owned_files":[],"created_ms":0}"#;
        let bytes: Vec<u8> = [&[1u8][..], &v1[..]].concat();
        let image = decode::<ImageRecord>("images", "a/ami-1", &bytes).unwrap();
        assert_eq!((image.state, &image.source_instance, &image.state_reason), (ImageState::Available, &None, &None));
        assert_eq!(encode(&image)[0], 2 | PACKED);
        // The same record repacked reads the same.
        let packed = repack_bytes(&bytes).unwrap();
        assert_eq!(packed[0], 1 | PACKED);
        let repacked = decode::<ImageRecord>("images", "a/ami-1", &packed).unwrap();
        assert_eq!(serde_json::to_value(&repacked).unwrap(), serde_json::to_value(&image).unwrap());
    }

    /// JSON records (as every store held before MessagePack) are rewritten once, on open,
    /// and read back as they were; MessagePack ones are left alone.
    #[test]
    fn json_records_are_repacked_once() {
        let json =
            |version: u8, value: &serde_json::Value| [vec![version], serde_json::to_vec(value).unwrap()].concat();
        let tag_json = serde_json::to_value(tag("old")).unwrap();
        let instance_json = serde_json::json!({
            "id": "i-1", "account": "a", "reservation_id": "r", "image_id": "ami", "instance_type": "t3.nano",
            "vcpus": 2, "memory_mib": 512, "zone": "z", "host_id": "h", "domain_uuid": "u", "state": "running",
            "state_reason": null, "state_transition_reason": "", "force_stop": false, "booted": true,
            "launch_time_ms": 0, "terminated_ms": null, "ami_launch_index": 0, "key_name": null, "user_data": null,
            "vpc_id": "v", "subnet_id": "s", "network_interface_id": "eni", "private_ip": "172.31.0.4",
            "mac": "52:54:00:00:00:01", "security_group_ids": ["sg-1"], "client_token": null,
            "disable_api_termination": false, "disable_api_stop": false, "shutdown_behavior": "stop",
            "ebs_optimized": false, "monitoring": true, "dir": "/d", "root_disk_bytes": 3 << 20,
            "migration_target": null, "tenancy": "default",
        });
        let instance: InstanceRecord = serde_json::from_value(instance_json.clone()).unwrap();
        let check = |store: &Store, kind: &str| {
            store
                .read(|tx| {
                    for (table, key) in [("tags", "a/t-1"), ("tags", "a/t-2"), ("instances", "a/i-1")] {
                        tx.walk_keys(&Table::<RawRecord>::new(table), key, None, |_, bytes| {
                            assert_ne!(bytes[0] & PACKED, 0, "{kind}: {table}/{key} still JSON");
                            Ok(false)
                        })?;
                    }
                    assert_eq!(tx.get(&TAGS, "a/t-1")?.unwrap().key, "old", "{kind}");
                    assert_eq!(tx.get(&TAGS, "a/t-2")?.unwrap().key, "new", "{kind}");
                    let read = tx.get(&tables::INSTANCES, "a/i-1")?.unwrap();
                    assert_eq!(serde_json::to_value(read).unwrap(), serde_json::to_value(&instance).unwrap(), "{kind}");
                    Ok::<_, Error>(())
                })
                .unwrap();
        };
        let fill = |tx: &WriteTx| {
            tx.put_raw(&TAGS, "a/t-1", &json(TagRecord::VERSION, &tag_json))?;
            tx.insert(&TAGS, "a/t-2", &tag("new"))?;
            tx.put_raw(&tables::INSTANCES, "a/i-1", &json(InstanceRecord::VERSION, &instance_json))?;
            tx.remove(&tables::META, "encoding")?;
            Ok::<_, Error>(())
        };
        for (kind, store, _db) in testing::stores() {
            store.write(fill).unwrap();
            assert_eq!(store.write(repack).unwrap(), 2, "{kind}: the two JSON records");
            check(&store, kind);
            assert_eq!(store.write(repack).unwrap(), 0, "{kind}: once");
        }
        // On a file, the rewrite happens when it opens.
        let dir = std::env::temp_dir().join(format!("stratus-repack-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.redb");
        Store::open(&path).unwrap().write(fill).unwrap();
        check(&Store::open(&path).unwrap(), "redb file");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A part reads the same fields as the whole record, from MessagePack and from JSON, and
    /// skips the rest (here rules with internally tagged peers).
    #[test]
    fn a_part_reads_what_the_whole_record_holds() {
        let rule = |id: &str, peer: RulePeer| SecurityGroupRuleRecord {
            id: id.into(),
            egress: false,
            protocol: "tcp".into(),
            from_port: Some(22),
            to_port: Some(22),
            peer,
            description: Some("ssh".into()),
        };
        let group = SecurityGroupRecord {
            id: "sg-1".into(),
            account: "a".into(),
            vpc_id: "vpc-1".into(),
            name: "web".into(),
            description: "d".into(),
            default: false,
            rules: vec![
                rule("sgr-1", RulePeer::Ipv4 { cidr: "10.0.0.0/8".into() }),
                rule("sgr-2", RulePeer::Group { group_id: "sg-2".into(), account: "b".into() }),
            ],
            created_ms: 1,
        };
        let json = [vec![SecurityGroupRecord::VERSION], serde_json::to_vec(&group).unwrap()].concat();
        for (kind, store, _db) in testing::stores() {
            store
                .write(|tx| {
                    tx.insert(&tables::SECURITY_GROUPS, "a/sg-1", &group)?;
                    tx.put_raw(&tables::SECURITY_GROUPS, "a/sg-json", &json)
                })
                .unwrap();
            store
                .read(|tx| {
                    for key in ["a/sg-1", "a/sg-json"] {
                        let part = tx.get_part::<_, SecurityGroupName>(&tables::SECURITY_GROUPS, key)?.unwrap();
                        assert_eq!(part, SecurityGroupName { id: "sg-1".into(), name: "web".into() }, "{kind} {key}");
                    }
                    assert_eq!(tx.get(&tables::SECURITY_GROUPS, "a/sg-1")?.unwrap(), group, "{kind}");
                    assert!(tx.get_part::<_, SecurityGroupName>(&tables::SECURITY_GROUPS, "a/sg-0")?.is_none());
                    Ok::<_, Error>(())
                })
                .unwrap();
        }
        // A part is checked against its record's layout versions, as the record is.
        let mut future = encode(&group);
        future[0] = (SecurityGroupRecord::VERSION + 1) | PACKED;
        let read = decode_part::<SecurityGroupRecord, SecurityGroupName>("security_groups", "k", &future);
        assert!(matches!(read, Err(Error::Corrupt { .. })));
    }

    /// A file written with redb's `&str` keys opens with its records, in the same key order
    /// (multi-byte characters included), and is rewritten once.
    #[test]
    fn stores_with_str_keys_are_rekeyed_on_open() {
        let dir = std::env::temp_dir().join(format!("stratus-rekey-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.redb");
        let keys = ["a/t-1", "a/t-10", "a/t-2", "a/é", "a/z", "ab/t-1", "b/\u{10000}"];
        {
            let db = redb::Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut tags = tx.open_table(TableDefinition::<&str, &[u8]>::new("tags")).unwrap();
                for key in keys {
                    tags.insert(key, encode(&tag(key)).as_slice()).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let read = store.read(|tx| tx.scan(&TAGS, "")).unwrap();
        let mut sorted = keys.to_vec();
        sorted.sort();
        assert_eq!(read.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), sorted);
        assert!(read.iter().all(|(k, t)| *k == t.key));
        let a = store.read(|tx| tx.scan(&TAGS, "a/")).unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!(store.read(|tx| tx.get(&TAGS, "a/é")).unwrap().unwrap().key, "a/é");
        store.write(|tx| tx.insert(&TAGS, "a/t-3", &tag("a/t-3"))).unwrap();
        drop(store);
        // Already rekeyed: a second open rewrites nothing and keeps the later write.
        drop(Store::open(&path).unwrap());
        let db = redb::Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        assert_eq!(rekey(&tx).unwrap(), 0);
        let tags = tx.open_table(TableDefinition::<TextKey, &[u8]>::new("tags")).unwrap();
        assert_eq!(redb::ReadableTableMetadata::len(&tags).unwrap(), keys.len() as u64 + 1);
        assert!(tx.list_tables().unwrap().all(|h| !redb::TableHandle::name(&h).ends_with("~rekey")));
        drop(tags);
        drop(tx);
        drop(db);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Byte order is the order the `&str` keys had, for any text.
    #[test]
    fn text_keys_order_as_str_keys() {
        use redb::Key;
        let keys = ["", "a", "a/", "a/b", "a\u{7f}", "a\u{80}", "aé", "a\u{ffff}", "a\u{10000}", "b"];
        for x in keys {
            for y in keys {
                assert_eq!(TextKey::compare(x.as_bytes(), y.as_bytes()), <&str>::compare(x.as_bytes(), y.as_bytes()));
            }
        }
    }

    /// The gauge's size is the file's length on a file, the counted pages in memory.
    #[test]
    fn size_is_the_file_s_length() {
        let dir = std::env::temp_dir().join(format!("stratus-size-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.redb");
        let store = Store::open(&path).unwrap();
        store.write(|tx| tx.insert(&TAGS, "a/t-1", &tag("k"))).unwrap();
        let size = store.size_bytes().unwrap();
        assert_eq!(size, std::fs::metadata(&path).unwrap().len());
        assert!(size >= store.stored_bytes().unwrap());
        drop(store);
        let memory = Store::in_memory().unwrap();
        assert_eq!(memory.size_bytes().unwrap(), memory.stored_bytes().unwrap());
        // PostgreSQL's is its tables' size, read without the writer.
        for (kind, store, _db) in testing::stores() {
            store.write(|tx| tx.insert(&TAGS, "a/t-1", &tag("k"))).unwrap();
            assert!(store.size_bytes().unwrap() > 0, "{kind}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("stratus-storage-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.redb");
        let _first = Store::open(&path).unwrap();
        assert!(matches!(Store::open(&path), Err(Error::Locked)));
        std::fs::remove_dir_all(&dir).ok();
    }
}
