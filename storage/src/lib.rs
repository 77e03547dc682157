//! Stratus's state in redb.
//!
//! 1. [`Store::open`] opens (or creates) the database file and makes sure every table in
//!    [`tables`] exists; a second process on the same file gets [`Error::Locked`].
//! 2. Callers work in closures: [`Store::read`] gets a snapshot, [`Store::write`] a transaction
//!    that commits when the closure returns `Ok` and is dropped (rolled back) otherwise.
//! 3. Values are typed [`Record`]s, stored as one version byte followed by JSON, so that a
//!    later layout can be told apart from this one and migrated.
//!
//! 4. Some records have derived tables (indexes and aggregates, see [`derived`]) that every
//!    insert and remove keeps in step, in the same transaction.
//!
//! Keys are strings; records of one account share the prefix `"{account}/"` so that listing an
//! account's resources is one range scan.

pub mod derived;
pub mod metrics;
mod records;
pub mod tables;

use std::marker::PhantomData;
use std::path::Path;

use redb::{ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use derived::{HostUsageRecord, IndexEntry, LeaseBlockRecord, MetaRecord};
pub use records::*;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// another process holds the database file
    #[error("another process holds the database file")]
    Locked,
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

fn encode<V: Record>(value: &V) -> Vec<u8> {
    let mut bytes = vec![V::VERSION];
    // Serializing plain structs of strings and numbers into a Vec cannot fail.
    serde_json::to_writer(&mut bytes, value).unwrap_or_default();
    bytes
}

fn decode<V: Record>(table: &'static str, key: &str, bytes: &[u8]) -> Result<V> {
    let corrupt = |why: String| Error::Corrupt { table, key: key.to_owned(), why };
    match bytes.split_first() {
        Some((&version, body)) if version == V::VERSION || V::READS.contains(&version) => {
            serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()))
        }
        Some((&version, _)) => Err(corrupt(format!("layout version {version}, expected {}", V::VERSION))),
        None => Err(corrupt("empty".into())),
    }
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

    fn def(&self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(self.name)
    }
}

pub struct Store {
    db: redb::Database,
}

/// redb's page cache when none is asked for: pages beyond it are read again from the file
/// (the kernel's page cache), so memory stays bounded however large the database grows.
pub const DEFAULT_CACHE_MIB: usize = 64;

impl Store {
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_cache(path, DEFAULT_CACHE_MIB)
    }

    pub fn open_with_cache(path: &Path, cache_mib: usize) -> Result<Self> {
        Self::init(redb::Database::builder().set_cache_size(cache_mib << 20).create(path)?)
    }

    /// A store that lives in memory only, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::init(redb::Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?)
    }

    fn init(db: redb::Database) -> Result<Self> {
        let tx = db.begin_write()?;
        for name in tables::ALL {
            tx.open_table(TableDefinition::<&str, &[u8]>::new(name))?;
        }
        derived::ensure(&WriteTx::new(&tx))?;
        tx.commit()?;
        Ok(Self { db })
    }

    pub fn read<T, E: From<Error>>(&self, f: impl FnOnce(&ReadTx) -> Result<T, E>) -> Result<T, E> {
        let tx = ReadTx { tx: self.db.begin_read().map_err(Error::from)?, open: Default::default() };
        f(&tx)
    }

    pub fn write<T, E: From<Error>>(&self, f: impl FnOnce(&WriteTx) -> Result<T, E>) -> Result<T, E> {
        let tx = self.db.begin_write().map_err(Error::from)?;
        // The tables the closure opened close with `WriteTx` before the commit.
        let value = f(&WriteTx::new(&tx))?;
        tx.commit().map_err(Error::from)?;
        Ok(value)
    }
}

fn get_from<V: Record>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    t: &Table<V>,
    key: &str,
) -> Result<Option<V>> {
    match table.get(key)? {
        Some(bytes) => decode(t.name, key, bytes.value()).map(Some),
        None => Ok(None),
    }
}

fn scan_from<V: Record>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
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

/// What reading takes, in a snapshot or in a write transaction.
pub trait Reads {
    fn get<V: Record>(&self, t: &Table<V>, key: &str) -> Result<Option<V>>;
    /// Every record whose key starts with `prefix`, in key order.
    fn scan<V: Record>(&self, t: &Table<V>, prefix: &str) -> Result<Vec<(String, V)>>;
}

impl Reads for ReadTx {
    fn get<V: Record>(&self, t: &Table<V>, key: &str) -> Result<Option<V>> {
        ReadTx::get(self, t, key)
    }

    fn scan<V: Record>(&self, t: &Table<V>, prefix: &str) -> Result<Vec<(String, V)>> {
        ReadTx::scan(self, t, prefix)
    }
}

impl Reads for WriteTx<'_> {
    fn get<V: Record>(&self, t: &Table<V>, key: &str) -> Result<Option<V>> {
        WriteTx::get(self, t, key)
    }

    fn scan<V: Record>(&self, t: &Table<V>, prefix: &str) -> Result<Vec<(String, V)>> {
        WriteTx::scan(self, t, prefix)
    }
}

type ReadTable = redb::ReadOnlyTable<&'static str, &'static [u8]>;

/// A consistent snapshot. Tables open on first use and stay open for the snapshot's life:
/// opening one is a lookup of its own.
pub struct ReadTx {
    tx: redb::ReadTransaction,
    open: std::cell::RefCell<Vec<(&'static str, std::rc::Rc<ReadTable>)>>,
}

impl ReadTx {
    fn table<V: Record>(&self, t: &Table<V>) -> Result<std::rc::Rc<ReadTable>> {
        if let Some((_, table)) = self.open.borrow().iter().find(|(name, _)| *name == t.name) {
            return Ok(std::rc::Rc::clone(table));
        }
        let table = std::rc::Rc::new(self.tx.open_table(t.def())?);
        self.open.borrow_mut().push((t.name, std::rc::Rc::clone(&table)));
        Ok(table)
    }

    pub fn get<V: Record>(&self, t: &Table<V>, key: &str) -> Result<Option<V>> {
        get_from(&*self.table(t)?, t, key)
    }

    /// Every record whose key starts with `prefix`, in key order.
    pub fn scan<V: Record>(&self, t: &Table<V>, prefix: &str) -> Result<Vec<(String, V)>> {
        scan_from(&*self.table(t)?, t, prefix)
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
        use std::ops::Bound;
        let table = self.table(t)?;
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

    /// Decodes one record's bytes as [`ReadTx::walk_keys`] handed them.
    pub fn decode<V: Record>(&self, t: &Table<V>, key: &str, bytes: &[u8]) -> Result<V> {
        decode(t.name, key, bytes)
    }

    /// Hands `f` every record whose key starts with `prefix`, in key order, one at a time:
    /// a pass over a large table that keeps only what `f` keeps.
    pub fn for_each<V: Record>(&self, t: &Table<V>, prefix: &str, mut f: impl FnMut(&str, V)) -> Result<()> {
        let table = self.table(t)?;
        for entry in table.range(prefix..)? {
            let (key, value) = entry?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            f(key, decode(t.name, key, value.value())?);
        }
        Ok(())
    }
}

/// A write transaction; it sees its own writes.
type WriteTable<'a> = redb::Table<'a, &'static str, &'static [u8]>;
/// The tables a write transaction has open, by name.
type OpenTables<'a> = std::cell::RefCell<Vec<(&'static str, std::rc::Rc<std::cell::RefCell<WriteTable<'a>>>)>>;

/// A write transaction; it sees its own writes. Tables open on first use and stay open until
/// the transaction commits: a launch writes a dozen records to a handful of tables.
pub struct WriteTx<'a> {
    tx: &'a redb::WriteTransaction,
    open: OpenTables<'a>,
}

impl<'a> WriteTx<'a> {
    fn new(tx: &'a redb::WriteTransaction) -> Self {
        Self { tx, open: Default::default() }
    }

    /// Bytes the database's allocated pages take, as of this transaction.
    pub fn stored_bytes(&self) -> Result<u64> {
        let stats = self.tx.stats()?;
        Ok(stats.allocated_pages() * stats.page_size() as u64)
    }

    fn table<V: Record>(&self, t: &Table<V>) -> Result<std::rc::Rc<std::cell::RefCell<WriteTable<'a>>>> {
        if let Some((_, table)) = self.open.borrow().iter().find(|(name, _)| *name == t.name) {
            return Ok(std::rc::Rc::clone(table));
        }
        let table = std::rc::Rc::new(std::cell::RefCell::new(self.tx.open_table(t.def())?));
        self.open.borrow_mut().push((t.name, std::rc::Rc::clone(&table)));
        Ok(table)
    }

    pub fn get<V: Record>(&self, t: &Table<V>, key: &str) -> Result<Option<V>> {
        get_from(&*self.table(t)?.borrow(), t, key)
    }

    pub fn scan<V: Record>(&self, t: &Table<V>, prefix: &str) -> Result<Vec<(String, V)>> {
        scan_from(&*self.table(t)?.borrow(), t, prefix)
    }

    pub fn insert<V: Record>(&self, t: &Table<V>, key: &str, value: &V) -> Result<()> {
        let old = {
            let table = self.table(t)?;
            let mut table = table.borrow_mut();
            let old = table.insert(key, encode(value).as_slice())?;
            if V::DERIVED {
                old.map(|bytes| decode::<V>(t.name, key, bytes.value())).transpose()?
            } else {
                None
            }
        };
        // Derived tables are others than `t`: its borrow has ended.
        if V::DERIVED {
            V::derive(self, key, old.as_ref(), Some(value))?;
        }
        Ok(())
    }

    /// Removes `key`; whether it was there.
    pub fn remove<V: Record>(&self, t: &Table<V>, key: &str) -> Result<bool> {
        let old = {
            let table = self.table(t)?;
            let mut table = table.borrow_mut();
            let old = table.remove(key)?;
            match old {
                Some(bytes) if V::DERIVED => Some(Some(decode::<V>(t.name, key, bytes.value())?)),
                Some(_) => Some(None),
                None => None,
            }
        };
        if let Some(Some(old)) = &old {
            V::derive(self, key, Some(old), None)?;
        }
        Ok(old.is_some())
    }

    /// Empties a table.
    pub fn clear<V: Record>(&self, t: &Table<V>) -> Result<()> {
        // redb deletes only a table that is not open.
        self.open.borrow_mut().retain(|(name, _)| *name != t.name);
        self.tx.delete_table(t.def())?;
        self.tx.open_table(t.def())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::TAGS;

    #[test]
    fn walks_start_after_a_key_and_stop_when_told() {
        let store = Store::in_memory().unwrap();
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
        assert_eq!(walk(None, 10), ["a/1", "a/2", "a/3", "a/4"]);
        assert_eq!(walk(Some("2"), 10), ["a/3", "a/4"], "after is exclusive, within the prefix");
        assert_eq!(walk(Some("1"), 2), ["a/2", "a/3"]);
        assert_eq!(walk(Some("9"), 10), Vec::<String>::new());
    }

    fn tag(key: &str) -> TagRecord {
        TagRecord { resource_id: "key-1".into(), key: key.into(), value: "v".into() }
    }

    #[test]
    fn writes_commit_on_ok_and_roll_back_on_err() {
        let store = Store::in_memory().unwrap();
        store.write(|tx| tx.insert(&TAGS, "a/key-1/x", &tag("x"))).unwrap();
        let failed: Result<(), Error> = store.write(|tx| {
            tx.insert(&TAGS, "a/key-1/y", &tag("y"))?;
            Err(Error::Db("boom".into()))
        });
        assert!(failed.is_err());
        let keys: Vec<String> = store.read(|tx| tx.scan(&TAGS, "a/")).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a/key-1/x"]);
    }

    #[test]
    fn scans_stop_at_the_prefix() {
        let store = Store::in_memory().unwrap();
        store
            .write(|tx| {
                for key in ["a/1", "a/2", "ab/1", "b/1"] {
                    tx.insert(&TAGS, key, &tag(key))?;
                }
                Ok::<_, Error>(())
            })
            .unwrap();
        let found = store.read(|tx| tx.scan(&TAGS, "a/")).unwrap();
        assert_eq!(found.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["a/1", "a/2"]);
    }

    #[test]
    fn records_carry_their_version_and_reject_others() {
        let bytes = encode(&tag("k"));
        assert_eq!(bytes[0], TagRecord::VERSION);
        let mut future = bytes.clone();
        future[0] = TagRecord::VERSION + 1;
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
        assert_eq!(encode(&image)[0], 2);
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
