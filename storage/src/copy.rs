//! Moving an installation's state from one store to another (redb to PostgreSQL and back):
//! every record of every table, byte for byte, and the metric history, row by row; then both
//! are read again and compared, so that a copy that says it succeeded is whole.
//!
//! The source is read in one snapshot and the target written in one transaction, which must
//! find the target empty: a copy never mixes two installations.

use std::collections::BTreeMap;

use redb::{TableDefinition, TableHandle};
use sha2::{Digest, Sha256};

use crate::metrics::Tier;
use crate::pg::Sql;
use crate::{tables, Error, Kind, Result, Store};

/// One metric row: tier, chunk, series, bucket and the encoded aggregates.
type MetricRow = (u8, u32, String, u32, Vec<u8>);

/// What a copy moved, and the digest both stores agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub records: BTreeMap<&'static str, u64>,
    pub metric_rows: u64,
    pub digest: String,
}

impl std::fmt::Display for CopyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: u64 = self.records.values().sum();
        write!(
            f,
            "{total} records in {} tables, {} metric rows; sha256 {}",
            self.records.len(),
            self.metric_rows,
            self.digest
        )
    }
}

impl Store {
    /// Every record of every table, in table then key order.
    fn records(&self) -> Result<Vec<(&'static str, String, Vec<u8>)>> {
        let mut out = Vec::new();
        self.read(|tx| {
            for name in tables::ALL {
                let table: crate::Table<crate::RawRecord> = crate::Table::new(name);
                tx.walk_keys(&table, "", None, |key, bytes| {
                    out.push((*name, key.to_owned(), bytes.to_vec()));
                    Ok(true)
                })?;
            }
            Ok::<_, Error>(())
        })?;
        Ok(out)
    }

    /// Every metric row, in tier, chunk, series and bucket order.
    fn metric_rows(&self) -> Result<Vec<MetricRow>> {
        match &self.kind {
            Kind::Redb(db) => {
                let tx = db.begin_read()?;
                let mut out = Vec::new();
                for handle in tx.list_tables()? {
                    let Some((tier, chunk)) = Tier::parse_table(handle.name()) else { continue };
                    let table = tx.open_table(TableDefinition::<&[u8], &[u8]>::new(handle.name()))?;
                    for entry in table.range::<&[u8]>(..)? {
                        let (key, value) = entry?;
                        let key = key.value();
                        let Some((series, bucket)) = split_key(key) else { continue };
                        out.push((tier, chunk, series, bucket, value.value().to_vec()));
                    }
                }
                out.sort_by(|a, b| (a.0, a.1, &a.2, a.3).cmp(&(b.0, b.1, &b.2, b.3)));
                Ok(out)
            }
            Kind::Postgres(db) => crate::pg::blocking(|| {
                let mut conn = db.connection()?;
                let rows = conn.query(Sql::AllMetrics, &[])?;
                Ok(rows
                    .iter()
                    .map(|row| {
                        (
                            row.get::<_, i16>(0) as u8,
                            row.get::<_, i32>(1) as u32,
                            row.get::<_, String>(2),
                            row.get::<_, i64>(3) as u32,
                            row.get::<_, Vec<u8>>(4),
                        )
                    })
                    .collect())
            }),
        }
    }

    /// Copies everything this store holds into `target`, which must be empty, then compares
    /// the two record by record.
    pub fn copy_to(&self, target: &Store) -> Result<CopyReport> {
        let records = self.records()?;
        let metrics = self.metric_rows()?;
        // `meta` alone is written by every store as it opens: anything else means the target
        // holds an installation already.
        let held = target.records()?.into_iter().filter(|(table, _, _)| *table != "meta").count();
        if held > 0 || !target.metric_rows()?.is_empty() {
            return Err(Error::Db(format!(
                "the target store is not empty ({held} records): copy into a new database or data dir"
            )));
        }
        target.write_raw(&records, &metrics)?;
        let report = report_of(&records, &metrics);
        let again = report_of(&target.records()?, &target.metric_rows()?);
        if again != report {
            return Err(Error::Db(format!("the copy differs from its source: source {report}, copy {again}")));
        }
        Ok(report)
    }

    /// What this store holds, counted and digested as [`Store::copy_to`] compares it.
    pub fn summary(&self) -> Result<CopyReport> {
        Ok(report_of(&self.records()?, &self.metric_rows()?))
    }

    fn write_raw(&self, records: &[(&'static str, String, Vec<u8>)], metrics: &[MetricRow]) -> Result<()> {
        match &self.kind {
            Kind::Redb(db) => {
                // Reads after this write on the thread must see it ([`crate::snapshot`]).
                crate::snapshot::redb_end_for_write(crate::snapshot::redb_id(db));
                let tx = db.begin_write()?;
                {
                    // Records come table by table: each table opens once.
                    for run in records.chunk_by(|a, b| a.0 == b.0) {
                        let mut open = tx.open_table(TableDefinition::<crate::TextKey, &[u8]>::new(run[0].0))?;
                        for (_, key, value) in run {
                            open.insert(key.as_str(), value.as_slice())?;
                        }
                    }
                    for (tier, chunk, series, bucket, row) in metrics {
                        let name = crate::metrics::TIERS
                            .iter()
                            .find(|t| t.index == *tier)
                            .map(|t| t.table_name(*chunk))
                            .ok_or_else(|| Error::Db(format!("unknown metric tier {tier}")))?;
                        let mut open = tx.open_table(TableDefinition::<&[u8], &[u8]>::new(&name))?;
                        open.insert(crate::metrics::key(series, *bucket).as_slice(), row.as_slice())?;
                    }
                }
                tx.commit()?;
                Ok(())
            }
            Kind::Postgres(_) => self.write(|tx| {
                let Some(mut conn) = tx.postgres_conn() else { return Ok(()) };
                for (table, key, value) in records {
                    conn.put(table, key, value)?;
                }
                for (tier, chunk, series, bucket, row) in metrics {
                    let (tier, chunk, bucket) = (i16::from(*tier), *chunk as i32, i64::from(*bucket));
                    conn.execute(Sql::UpsertMetric, &[&tier, &chunk, series, &bucket, row])?;
                }
                Ok(())
            }),
        }
    }
}

/// A metric key's series and bucket ([`crate::metrics::key`]'s layout).
fn split_key(key: &[u8]) -> Option<(String, u32)> {
    let (series, bucket) = key.split_at_checked(key.len().checked_sub(5)?)?;
    let (&0, bucket) = bucket.split_first()? else { return None };
    Some((String::from_utf8(series.to_vec()).ok()?, u32::from_be_bytes(bucket.try_into().ok()?)))
}

fn report_of(records: &[(&'static str, String, Vec<u8>)], metrics: &[MetricRow]) -> CopyReport {
    let mut digest = Sha256::new();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (table, key, value) in records.iter().filter(|(table, _, _)| *table != "meta") {
        *counts.entry(table).or_default() += 1;
        for part in [table.as_bytes(), key.as_bytes(), value.as_slice()] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
    }
    for (tier, chunk, series, bucket, row) in metrics {
        digest.update([*tier]);
        digest.update(chunk.to_be_bytes());
        digest.update((series.len() as u64).to_be_bytes());
        digest.update(series.as_bytes());
        digest.update(bucket.to_be_bytes());
        digest.update((row.len() as u64).to_be_bytes());
        digest.update(row);
    }
    CopyReport { records: counts, metric_rows: metrics.len() as u64, digest: format!("{:x}", digest.finalize()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Aggregate, Point};
    use crate::tables::TAGS;
    use crate::TagRecord;

    fn fill(store: &Store) {
        store
            .write(|tx| {
                for i in 0..300 {
                    let key = format!("acct/r-{i:04}/k");
                    tx.insert(
                        &TAGS,
                        &key,
                        &TagRecord { resource_id: format!("r-{i:04}"), key: "k".into(), value: "v".into() },
                    )?;
                }
                Ok::<_, Error>(())
            })
            .unwrap();
        let points: Vec<Point> = (0..50)
            .map(|m| Point {
                series: "acct/i-1".into(),
                minute: 29_000_000 + m * 7,
                values: vec![(0, Aggregate::one(m as f64))],
            })
            .collect();
        store.merge_points(&points).unwrap();
    }

    /// redb → PostgreSQL → redb: the same records, derived tables and metric rows, and a
    /// target that holds anything is refused.
    #[test]
    fn copies_are_whole_both_ways() {
        let Some(db) = crate::testing::TestDatabase::create() else { return };
        let source = Store::in_memory().unwrap();
        fill(&source);
        let postgres = db.store();
        let there = source.copy_to(&postgres).unwrap();
        assert_eq!(there.records["tags"], 300);
        assert!(there.records["tag_index"] >= 300, "derived tables travel too: {there}");
        assert_eq!(there.metric_rows, postgres.summary().unwrap().metric_rows);
        assert!(there.metric_rows >= 50 * 2, "{there}");
        let back = Store::in_memory().unwrap();
        assert_eq!(postgres.copy_to(&back).unwrap(), there);
        assert_eq!(back.summary().unwrap(), source.summary().unwrap());
        // What the copy holds reads as the source does.
        let tag = back.read(|tx| tx.get(&TAGS, "acct/r-0007/k")).unwrap().unwrap();
        assert_eq!(tag.resource_id, "r-0007");
        assert_eq!(
            back.read_points("acct/i-1", &crate::metrics::TIERS[0], 29_000_000, 29_001_000).unwrap(),
            source.read_points("acct/i-1", &crate::metrics::TIERS[0], 29_000_000, 29_001_000).unwrap()
        );
        assert!(matches!(source.copy_to(&back), Err(Error::Db(message)) if message.contains("not empty")));
    }
}
