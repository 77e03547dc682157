//! What every handler gets: who is calling, from which region, and the backend.

use std::sync::Arc;

use backend::accounts::Principal;
use backend::Backend;
use ec2api::Ec2Error;

use crate::errors::to_ec2;

pub struct Ctx {
    pub request_id: String,
    pub principal: Principal,
    /// The region of the signature's scope.
    pub region: String,
    /// `http://host:port` as the client addressed us.
    pub endpoint: String,
    pub backend: Arc<Backend>,
}

impl Ctx {
    pub fn account(&self) -> &str {
        &self.principal.account_id
    }

    /// Runs a backend call that only reads redb snapshots (no host, no file, no write) where
    /// the request already runs: such reads take microseconds, less than handing them to
    /// another thread and back. Domain errors become EC2 errors here.
    /// On PostgreSQL its reads share one snapshot ([`storage::snapshot`]).
    pub fn read<T>(&self, f: impl FnOnce(&Backend) -> backend::Result<T>) -> Result<T, Ec2Error> {
        self.backend.store().snapshot(|| f(&self.backend)).map_err(to_ec2)
    }

    /// A Describe's reads: in place ([`Ctx::read`]) when `few` (a handful of records named by
    /// id) and the store is redb's, on the blocking pool ([`Ctx::snapshot`]) otherwise. Handing
    /// a lookup by id to another thread and back cost more than the lookup itself: measured
    /// under load, a third of the server's CPU went to the two context switches.
    pub async fn snapshot_sized<T: Send + 'static>(
        &self,
        few: bool,
        f: impl FnOnce(&Backend) -> backend::Result<T> + Send + 'static,
    ) -> Result<T, Ec2Error> {
        if few && !self.backend.store().is_postgres() {
            // A panic answers InternalError, as the blocking pool's join would, rather than
            // dropping the connection with the worker's task.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.read(f))).unwrap_or_else(|_| {
                tracing::error!(request_id = %self.request_id, "backend call panicked");
                Err(Ec2Error::internal())
            })
        } else {
            self.snapshot(f).await
        }
    }

    /// Runs a backend call that reads (a Describe's: no host, no wait) on the blocking pool,
    /// every read in one snapshot: one consistent state, and on PostgreSQL one transaction
    /// instead of one per read ([`storage::snapshot`]).
    pub async fn snapshot<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Backend) -> backend::Result<T> + Send + 'static,
    ) -> Result<T, Ec2Error> {
        self.call(move |b| b.store().snapshot(|| f(b))).await
    }

    /// Runs a backend call on the blocking pool; domain errors become EC2 errors here.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Backend) -> backend::Result<T> + Send + 'static,
    ) -> Result<T, Ec2Error> {
        match on_blocking_pool(&self.backend, &self.request_id, f).await {
            Some(result) => result.map_err(to_ec2),
            None => Err(Ec2Error::internal()),
        }
    }
}

/// Runs a backend call on the blocking pool, for EC2's handlers and CloudWatch's alike; `None`
/// (logged) when the call panicked.
pub async fn on_blocking_pool<T: Send + 'static>(
    backend: &Arc<Backend>,
    request_id: &str,
    f: impl FnOnce(&Backend) -> backend::Result<T> + Send + 'static,
) -> Option<backend::Result<T>> {
    let backend = Arc::clone(backend);
    match tokio::task::spawn_blocking(move || f(&backend)).await {
        Ok(result) => Some(result),
        Err(join) => {
            tracing::error!(%request_id, %join, "backend call failed");
            None
        }
    }
}
