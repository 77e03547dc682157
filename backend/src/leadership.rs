//! Which of several replicas on one PostgreSQL store does the background work.
//!
//! Every replica serves the API; the conductor's work (converging instances, sweeps, domain
//! events, migrations' monitors, metric collection) is done by the one that holds the
//! [`LEASE`] lease ([`storage::lease`]):
//! 1. Each replica tries to take or renew the lease every quarter of its time to live. The
//!    holder renews it; the others take it once it expired (a holder that died, hung or was
//!    cut off stops renewing), at a new epoch.
//! 2. A replica counts itself the holder only until its last renewal's start plus four fifths
//!    of the time to live, by its own clock: one that was paused stops at once when it wakes.
//! 3. Its work carries a fence (the lease at that epoch): every write the work makes checks,
//!    inside the write's transaction, that the lease is still its own, so a former holder
//!    that wakes up mid-work cannot write over its successor.
//! 4. Work found while not holding the lease is left: requests only kick their keys, and the
//!    holder's sweep kicks every unfinished one again, so a takeover resumes what was pending
//!    (migrations in flight included, settled by where libvirt runs the guest).
//!
//! A backend without leadership (redb, one process) always does the work, unfenced.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use storage::lease::Fence;

use crate::Backend;

/// The lease the conductor's work runs under.
pub const LEASE: &str = "conductor";

/// One replica's view of its turn.
pub struct Leadership {
    holder: String,
    ttl: Duration,
    turn: Mutex<Option<(i64, Instant)>>,
}

impl Leadership {
    /// A replica named `holder` (unique among the replicas), on leases of `ttl`.
    pub fn new(holder: String, ttl: Duration) -> Self {
        Self { holder, ttl, turn: Mutex::new(None) }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The fence of this replica's turn, while it has one.
    pub fn turn(&self) -> Option<Fence> {
        let turn = *self.turn.lock().unwrap_or_else(|p| p.into_inner());
        match turn {
            Some((epoch, until)) if Instant::now() < until => {
                Some(Fence { lease: LEASE.to_owned(), holder: self.holder.clone(), epoch })
            }
            _ => None,
        }
    }

    /// One attempt to take or renew the lease; answers whether this replica holds it now.
    pub fn renew(&self, store: &storage::Store) -> bool {
        let started = Instant::now();
        // The last turn this replica had, expired or not.
        let before = self.turn.lock().unwrap_or_else(|p| p.into_inner()).map(|(epoch, _)| epoch);
        match store.acquire_lease(LEASE, &self.holder, self.ttl) {
            Ok(Some(epoch)) => {
                *self.turn.lock().unwrap_or_else(|p| p.into_inner()) = Some((epoch, started + self.ttl * 4 / 5));
                if before != Some(epoch) {
                    tracing::info!(replica = %self.holder, epoch, "this replica leads the conductor now");
                }
                true
            }
            Ok(None) => {
                *self.turn.lock().unwrap_or_else(|p| p.into_inner()) = None;
                if let Some(epoch) = before {
                    tracing::warn!(replica = %self.holder, epoch, "lost the conductor lease; its work stops here");
                }
                false
            }
            Err(error) => {
                // Unreachable database: the turn lasts until its local end, no longer.
                tracing::warn!(replica = %self.holder, %error, "renewing the conductor lease failed");
                self.turn().is_some()
            }
        }
    }

    /// Renews the lease for ever, every quarter of its time to live (on a thread of its own).
    pub fn keep(self: &Arc<Self>, store: impl Fn() -> Option<Arc<Backend>> + Send + 'static) {
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("leadership".into()).spawn(move || loop {
            let Some(backend) = store() else { return };
            me.renew(backend.store());
            drop(backend);
            std::thread::sleep(me.ttl / 4);
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "could not start the leadership thread: this replica never leads");
        }
    }
}

impl Backend {
    /// Several replicas share this backend's store: the conductor's work waits for this
    /// replica's turn ([`Leadership`]).
    pub fn with_leadership(mut self, leadership: Arc<Leadership>) -> Self {
        self.leadership = Some(leadership);
        self
    }

    pub fn leadership(&self) -> Option<&Arc<Leadership>> {
        self.leadership.as_ref()
    }

    /// Whether the conductor's work may run now, and the fence its writes carry: `None` when
    /// another replica has the turn.
    pub(crate) fn conductor_turn(&self) -> Option<Option<Fence>> {
        match &self.leadership {
            None => Some(None),
            Some(leadership) => leadership.turn().map(Some),
        }
    }

    /// Whether this process has the conductor's turn now (always, without replicas).
    pub fn leads(&self) -> bool {
        self.conductor_turn().is_some()
    }

    /// Runs `work` as the conductor's, if this replica has the turn (fenced); `None` if not.
    pub(crate) fn as_conductor<T>(&self, work: impl FnOnce() -> T) -> Option<T> {
        let fence = self.conductor_turn()?;
        Some(storage::lease::with_fence(fence, work))
    }
}
