//! Metric history: aggregates (count, min, max, sum) of each series per time bucket, in three
//! tiers of resolution, in tables of their own beside the records (same file, same writer).
//!
//! 1. A series is named by a string its owner chooses (`{account}/{instance id}`,
//!    `~host/{host id}`); a row holds every metric of one series for one bucket, as a list of
//!    `(metric index, aggregate)` in a compact encoding ([`encode_row`]): whole numbers as
//!    varints, the rest as doubles.
//! 2. [`Store::merge_points`] folds samples into their buckets of every tier in one write
//!    transaction; a bucket's aggregate is exact whatever order samples come in.
//! 3. Rows live in tables of one tier and one stretch of time (a chunk: a day of minutes, a
//!    week of 5-minute buckets, thirty days of hours), keyed by series then bucket, so that
//!    a series' range is one short scan and pruning drops whole tables
//!    ([`Store::prune_points`]) instead of deleting rows one by one.

use redb::{ReadableTable, TableDefinition, TableHandle};

use crate::pg::Sql;
use crate::{Kind, Result, Store};

/// A tier: the width of its buckets and of the tables that hold them, in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub index: u8,
    pub bucket_minutes: u32,
    pub chunk_minutes: u32,
}

/// CloudWatch's tiers: minutes, five minutes, hours.
pub const TIERS: [Tier; 3] = [
    Tier { index: 0, bucket_minutes: 1, chunk_minutes: 24 * 60 },
    Tier { index: 1, bucket_minutes: 5, chunk_minutes: 7 * 24 * 60 },
    Tier { index: 2, bucket_minutes: 60, chunk_minutes: 30 * 24 * 60 },
];

const TABLE_PREFIX: &str = "metrics/";

impl Tier {
    /// The start of the bucket that holds `minute`.
    pub fn bucket_of(&self, minute: u32) -> u32 {
        minute - minute % self.bucket_minutes
    }

    fn chunk_of(&self, minute: u32) -> u32 {
        minute / self.chunk_minutes
    }

    pub(crate) fn table_name(&self, chunk: u32) -> String {
        format!("{TABLE_PREFIX}{}/{chunk}", self.index)
    }

    /// The tier and chunk a metrics table holds, from its name.
    pub(crate) fn parse_table(name: &str) -> Option<(u8, u32)> {
        let (tier, chunk) = name.strip_prefix(TABLE_PREFIX)?.split_once('/')?;
        Some((tier.parse().ok()?, chunk.parse().ok()?))
    }
}

/// Count, minimum, maximum and sum of the samples in a bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
}

impl Aggregate {
    pub fn one(value: f64) -> Self {
        Self { count: 1, min: value, max: value, sum: value }
    }

    pub fn merge(&mut self, other: &Aggregate) {
        self.count = self.count.saturating_add(other.count);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }
}

/// A row: every metric of one series in one bucket.
pub type Row = Vec<(u8, Aggregate)>;

/// Samples for one series at one minute, to be folded into every tier.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub series: String,
    pub minute: u32,
    pub values: Row,
}

pub(crate) fn key(series: &str, bucket: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(series.len() + 5);
    key.extend_from_slice(series.as_bytes());
    // No series name holds a NUL: the separator keeps `a` from reading `ab`'s rows.
    key.push(0);
    key.extend_from_slice(&bucket.to_be_bytes());
    key
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn get_f64(bytes: &mut &[u8]) -> Option<f64> {
    let (head, rest) = bytes.split_at_checked(8)?;
    *bytes = rest;
    Some(f64::from_le_bytes(head.try_into().ok()?))
}

/// Whole, non-negative and exactly representable: written as a varint.
fn whole(v: f64) -> bool {
    v >= 0.0 && v.fract() == 0.0 && v < 9_007_199_254_740_992.0
}

/// The row's bytes: per metric its index, the count, then min, max and sum, as varints when
/// all three are whole (byte and packet counts, status checks), else as doubles.
pub fn encode_row(row: &Row) -> Vec<u8> {
    let mut out = Vec::with_capacity(row.len() * 8);
    for (metric, a) in row {
        out.push(*metric);
        put_varint(&mut out, a.count);
        if whole(a.min) && whole(a.max) && whole(a.sum) {
            out.push(0);
            for v in [a.min, a.max, a.sum] {
                put_varint(&mut out, v as u64);
            }
        } else {
            out.push(1);
            for v in [a.min, a.max, a.sum] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    out
}

/// Reads what [`encode_row`] wrote; `None` for bytes it did not write.
pub fn decode_row(mut bytes: &[u8]) -> Option<Row> {
    let mut row = Vec::new();
    while let Some((&metric, rest)) = bytes.split_first() {
        bytes = rest;
        let count = get_varint(&mut bytes)?;
        let (&kind, rest) = bytes.split_first()?;
        bytes = rest;
        let [min, max, sum] = match kind {
            0 => [get_varint(&mut bytes)? as f64, get_varint(&mut bytes)? as f64, get_varint(&mut bytes)? as f64],
            1 => [get_f64(&mut bytes)?, get_f64(&mut bytes)?, get_f64(&mut bytes)?],
            _ => return None,
        };
        row.push((metric, Aggregate { count, min, max, sum }));
    }
    Some(row)
}

/// Folds `more` into `row`, metric by metric.
pub fn merge_row(row: &mut Row, more: &Row) {
    for (metric, aggregate) in more {
        match row.iter_mut().find(|(m, _)| m == metric) {
            Some((_, existing)) => existing.merge(aggregate),
            None => row.push((*metric, *aggregate)),
        }
    }
}

fn merge_into(tx: &redb::WriteTransaction, points: &[Point]) -> Result<()> {
    for tier in &TIERS {
        let mut by_chunk: std::collections::BTreeMap<u32, Vec<&Point>> = Default::default();
        for point in points {
            by_chunk.entry(tier.chunk_of(point.minute)).or_default().push(point);
        }
        for (chunk, points) in by_chunk {
            let name = tier.table_name(chunk);
            let mut table = tx.open_table(TableDefinition::<&[u8], &[u8]>::new(&name))?;
            for point in points {
                let key = key(&point.series, tier.bucket_of(point.minute));
                let mut row = match table.get(key.as_slice())? {
                    Some(bytes) => decode_row(bytes.value()).unwrap_or_default(),
                    None => Vec::new(),
                };
                merge_row(&mut row, &point.values);
                table.insert(key.as_slice(), encode_row(&row).as_slice())?;
            }
        }
    }
    Ok(())
}

/// [`merge_into`] on PostgreSQL: each bucket's row read, merged and written back, inside the
/// writer's transaction.
fn merge_into_postgres(conn: &mut crate::pg::PgConn, points: &[Point]) -> Result<()> {
    for tier in &TIERS {
        for point in points {
            let (tier_index, chunk) = (i16::from(tier.index), tier.chunk_of(point.minute) as i32);
            let bucket = i64::from(tier.bucket_of(point.minute));
            let found = conn.query(Sql::GetMetric, &[&tier_index, &chunk, &point.series, &bucket])?;
            let mut row = found.first().and_then(|r| decode_row(r.get::<_, &[u8]>(0))).unwrap_or_default();
            merge_row(&mut row, &point.values);
            conn.execute(Sql::UpsertMetric, &[&tier_index, &chunk, &point.series, &bucket, &encode_row(&row)])?;
        }
    }
    Ok(())
}

impl Store {
    /// Folds every point into its bucket of every tier, in one transaction.
    pub fn merge_points(&self, points: &[Point]) -> Result<()> {
        self.merge_points_with(points, |_| Ok::<_, crate::Error>(()))
    }

    /// As [`Store::merge_points`], with `f`'s record writes (the series' index) in the same
    /// transaction: both land or neither does.
    pub fn merge_points_with<T, E: From<crate::Error>>(
        &self,
        points: &[Point],
        f: impl FnOnce(&crate::WriteTx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let db = match &self.kind {
            Kind::Redb(db) => db,
            Kind::Postgres(..) => {
                return self.write(|tx| {
                    if let Some(mut conn) = tx.postgres_conn() {
                        merge_into_postgres(&mut conn, points)?;
                    }
                    f(tx)
                })
            }
        };
        // Reads after this write on the thread must see it ([`crate::snapshot`]).
        crate::snapshot::redb_end_for_write(crate::snapshot::redb_id(db));
        let tx = db.begin_write().map_err(crate::Error::from)?;
        merge_into(&tx, points).map_err(E::from)?;
        let value = f(&crate::WriteTx::new(&tx))?;
        tx.commit().map_err(crate::Error::from)?;
        Ok(value)
    }

    /// The rows of `series` in `tier` whose buckets start in `[from, to)` (minutes since
    /// the epoch), in time order. Rows that do not decode are skipped: history is best effort.
    pub fn read_points(&self, series: &str, tier: &Tier, from: u32, to: u32) -> Result<Vec<(u32, Row)>> {
        let mut out = Vec::new();
        if from >= to {
            return Ok(out);
        }
        let db = match &self.kind {
            Kind::Redb(db) => db,
            Kind::Postgres(db) => {
                return crate::pg::blocking(|| {
                    let mut conn = db.connection()?;
                    let (first, last) = (tier.chunk_of(from) as i32, tier.chunk_of(to - 1) as i32);
                    let (start, end) = (i64::from(tier.bucket_of(from)), i64::from(to));
                    let params: [&(dyn postgres::types::ToSql + Sync); 6] =
                        [&i16::from(tier.index), &first, &last, &series, &start, &end];
                    let rows = conn.query(Sql::ReadMetrics, &params)?;
                    Ok(rows
                        .iter()
                        .filter_map(|row| {
                            let bucket = u32::try_from(row.get::<_, i64>(0)).ok()?;
                            Some((bucket, decode_row(row.get::<_, &[u8]>(1))?))
                        })
                        .collect())
                })
            }
        };
        let tx = db.begin_read()?;
        for chunk in tier.chunk_of(from)..=tier.chunk_of(to - 1) {
            let name = tier.table_name(chunk);
            let table = match tx.open_table(TableDefinition::<&[u8], &[u8]>::new(&name)) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let (start, end) = (key(series, tier.bucket_of(from)), key(series, to));
            for entry in table.range(start.as_slice()..end.as_slice())? {
                let (key, value) = entry?;
                let key = key.value();
                let Some(bucket) = key.get(key.len().saturating_sub(4)..).and_then(|b| b.try_into().ok()) else {
                    continue;
                };
                let bucket = u32::from_be_bytes(bucket);
                if let Some(row) = decode_row(value.value()) {
                    out.push((bucket, row));
                }
            }
        }
        Ok(out)
    }

    /// Drops the tables of `tier` that hold only buckets before `before` (minutes since the
    /// epoch); answers how many went.
    pub fn prune_points(&self, tier: &Tier, before: u32) -> Result<usize> {
        let db = match &self.kind {
            Kind::Redb(db) => db,
            // Rows, not tables: the whole chunks that end by `before`.
            Kind::Postgres(..) => {
                return self.write(|tx| {
                    let Some(mut conn) = tx.postgres_conn() else { return Ok(0) };
                    let chunks = (before / tier.chunk_minutes) as i32;
                    let gone = conn.execute(Sql::PruneMetrics, &[&i16::from(tier.index), &chunks])?;
                    Ok(gone as usize)
                })
            }
        };
        // Reads after this write on the thread must see it ([`crate::snapshot`]).
        crate::snapshot::redb_end_for_write(crate::snapshot::redb_id(db));
        let tx = db.begin_write()?;
        let mut dropped = 0;
        let names: Vec<String> = tx.list_tables()?.map(|t| t.name().to_owned()).collect();
        for name in names {
            let Some((index, chunk)) = Tier::parse_table(&name) else { continue };
            let ends = (u64::from(chunk) + 1) * u64::from(tier.chunk_minutes);
            if index == tier.index && ends <= u64::from(before) {
                tx.delete_table(TableDefinition::<&[u8], &[u8]>::new(&name))?;
                dropped += 1;
            }
        }
        tx.commit()?;
        Ok(dropped)
    }

    /// Bytes the database's allocated pages take (what the store holds, as redb lays it out).
    /// Waits for the store's writer: a caller that writes anyway asks its own transaction
    /// ([`crate::WriteTx::stored_bytes`]).
    /// The space the store takes, cheaply, for a gauge read every collection: a redb file's
    /// length (freed pages included: what it takes on disk), PostgreSQL's tables' size (a
    /// read, no wait for the writer), an in-memory store's allocated pages.
    /// [`Store::stored_bytes`] instead visits every page of a redb store, which read the whole
    /// file through the page cache each minute.
    pub fn size_bytes(&self) -> Result<u64> {
        match (&self.kind, &self.file) {
            (Kind::Redb(_), Some(path)) => {
                std::fs::metadata(path).map(|m| m.len()).map_err(|e| crate::Error::Db(e.to_string()))
            }
            (Kind::Redb(_), None) => self.stored_bytes(),
            (Kind::Postgres(_), _) => self.read(|tx| tx.postgres_bytes()),
        }
    }

    /// The pages the store has allocated, counted exactly (a redb store's every page is
    /// visited: for benchmarks and tests, not gauges).
    pub fn stored_bytes(&self) -> Result<u64> {
        let db = match &self.kind {
            Kind::Redb(db) => db,
            Kind::Postgres(..) => return self.write(|tx| tx.stored_bytes()),
        };
        let tx = db.begin_write()?;
        let bytes = crate::WriteTx::new(&tx).stored_bytes();
        tx.abort()?;
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(series: &str, minute: u32, values: &[(u8, f64)]) -> Point {
        Point { series: series.into(), minute, values: values.iter().map(|(m, v)| (*m, Aggregate::one(*v))).collect() }
    }

    #[test]
    fn rows_round_trip_whole_and_fractional_values() {
        let row = vec![
            (0, Aggregate { count: 6, min: 1.5, max: 99.25, sum: 200.125 }),
            (1, Aggregate { count: 6, min: 0.0, max: 1_500_000.0, sum: 3_000_000.0 }),
            (9, Aggregate { count: 1, min: -2.0, max: -2.0, sum: -2.0 }),
        ];
        let bytes = encode_row(&row);
        assert_eq!(decode_row(&bytes), Some(row));
        // Whole counts are short: index, count, kind and three small varints.
        assert_eq!(encode_row(&vec![(3, Aggregate::one(100.0))]).len(), 6);
        assert_eq!(decode_row(&[0, 1, 7]), None);
        assert_eq!(decode_row(&[0, 0xff, 0xff]), None);
    }

    #[test]
    fn samples_fold_into_every_tier() {
        for (_kind, store, _db) in crate::testing::stores() {
            let t0 = 10_000_000; // a minute that starts an hour
            store.merge_points(&[point("a/i-1", t0, &[(0, 10.0), (1, 100.0)])]).unwrap();
            store.merge_points(&[point("a/i-1", t0, &[(0, 30.0)]), point("a/i-1", t0 + 3, &[(0, 50.0)])]).unwrap();
            store.merge_points(&[point("a/i-10", t0, &[(0, 99.0)])]).unwrap();
            let minutes = store.read_points("a/i-1", &TIERS[0], t0, t0 + 10).unwrap();
            assert_eq!(minutes.len(), 2);
            assert_eq!(minutes[0].0, t0);
            let cpu = minutes[0].1.iter().find(|(m, _)| *m == 0).unwrap().1;
            assert_eq!(cpu, Aggregate { count: 2, min: 10.0, max: 30.0, sum: 40.0 });
            let five = store.read_points("a/i-1", &TIERS[1], t0, t0 + 10).unwrap();
            assert_eq!(five.len(), 1, "minutes 0 and 3 share a five-minute bucket");
            assert_eq!(five[0].1[0].1, Aggregate { count: 3, min: 10.0, max: 50.0, sum: 90.0 });
            let hour = store.read_points("a/i-1", &TIERS[2], t0, t0 + 60).unwrap();
            assert_eq!(hour[0].1[0].1.count, 3);
            // Another series with a name that extends this one stays apart.
            assert_eq!(store.read_points("a/i-10", &TIERS[0], t0, t0 + 10).unwrap().len(), 1);
            assert!(store.read_points("a/i-2", &TIERS[0], t0, t0 + 10).unwrap().is_empty());
        }
    }

    #[test]
    fn ranges_cross_chunks_and_pruning_drops_whole_chunks() {
        for (_kind, store, _db) in crate::testing::stores() {
            let day = 24 * 60;
            let start = 20_000 * day;
            for d in 0..3 {
                store.merge_points(&[point("s", start + d * day + 5, &[(0, d as f64)])]).unwrap();
            }
            let all = store.read_points("s", &TIERS[0], start, start + 3 * day).unwrap();
            assert_eq!(
                all.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
                vec![start + 5, start + day + 5, start + 2 * day + 5]
            );
            assert_eq!(
                store.prune_points(&TIERS[0], start + day + 10).unwrap(),
                1,
                "only the chunk wholly before goes"
            );
            let left = store.read_points("s", &TIERS[0], start, start + 3 * day).unwrap();
            assert_eq!(left.len(), 2);
            assert!(!store.read_points("s", &TIERS[2], start, start + 3 * day).unwrap().is_empty());
        }
    }
}
