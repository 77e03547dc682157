//! Stores for tests: every test that takes [`stores`] runs on redb and, when
//! `STRATUS_TEST_POSTGRES` names a PostgreSQL server (`scripts/test` starts one with
//! `scripts/postgres up`), on a fresh database of its own there too.

use crate::Store;

/// The environment variable naming the PostgreSQL server tests use: a connection string to
/// a database the tests may create databases from (`…/postgres`).
pub const POSTGRES_ENV: &str = "STRATUS_TEST_POSTGRES";

/// A database made for one test, dropped with it.
pub struct TestDatabase {
    admin: postgres::Config,
    name: String,
    pub url: String,
}

impl TestDatabase {
    /// A new empty database on the server `STRATUS_TEST_POSTGRES` names, or `None` when it
    /// names none.
    pub fn create() -> Option<Self> {
        crate::pg::blocking(Self::create_now)
    }

    fn create_now() -> Option<Self> {
        let url = std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty())?;
        let admin: postgres::Config = url.parse().unwrap_or_else(|e| panic!("{POSTGRES_ENV}={url}: {e}"));
        let name = format!("stratus_test_{}_{:08x}", std::process::id(), rand_u32());
        let mut client = admin
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("{POSTGRES_ENV} names a server that does not answer ({url}): {e}"));
        client.batch_execute(&format!("CREATE DATABASE {name}")).expect("creating a test database");
        let url = format!(
            "host={} port={} user={} dbname={name}",
            host_of(&admin),
            admin.get_ports().first().copied().unwrap_or(5432),
            admin.get_user().unwrap_or("postgres")
        );
        Some(Self { admin, name, url })
    }

    pub fn store(&self) -> Store {
        Store::open_postgres(&self.url, &crate::PostgresOptions::with_connections(8))
            .expect("opening the test database")
    }
}

fn host_of(config: &postgres::Config) -> String {
    match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.finish() as u32
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        crate::pg::blocking(|| {
            if let Ok(mut client) = self.admin.connect(postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
            }
        });
    }
}

/// An in-memory redb store, and a PostgreSQL one when the tests have a server (the database
/// lives as long as the returned guard).
pub fn stores() -> Vec<(&'static str, Store, Option<TestDatabase>)> {
    let mut out = vec![("redb", Store::in_memory().expect("an in-memory store"), None)];
    if let Some(db) = TestDatabase::create() {
        out.push(("postgres", db.store(), Some(db)));
    }
    out
}
