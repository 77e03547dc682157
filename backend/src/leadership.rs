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
//!
//! Each replica also renews a lease of its own, [`PRESENCE`] + its name, with every bid: the
//! replicas alive are those whose presence is unexpired ([`Backend::control_plane`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use storage::lease::Fence;

use crate::Backend;

/// The lease the conductor's work runs under.
pub const LEASE: &str = "conductor";

/// The prefix of each replica's presence lease.
pub const PRESENCE: &str = "replica/";

/// How long a replica that stopped renewing its presence stays listed, as unreachable.
const REMEMBERED: Duration = Duration::from_secs(3600);

/// One replica's view of its turn.
pub struct Leadership {
    holder: String,
    ttl: Duration,
    turn: Mutex<Option<(i64, Instant)>>,
    /// Set by [`Leadership::leave`]: no renewal may take the leases back after it.
    left: std::sync::atomic::AtomicBool,
}

impl Leadership {
    /// A replica named `holder` (unique among the replicas), on leases of `ttl`.
    pub fn new(holder: String, ttl: Duration) -> Self {
        Self { holder, ttl, turn: Mutex::new(None), left: Default::default() }
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

    fn presence(&self) -> String {
        format!("{PRESENCE}{}", self.holder)
    }

    /// One attempt to take or renew the lease; answers whether this replica holds it now.
    pub fn renew(&self, store: &storage::Store) -> bool {
        if self.left.load(std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        let started = Instant::now();
        // Its own presence first (never contested): the replica is alive whoever leads.
        if let Err(error) = store.acquire_lease(&self.presence(), &self.holder, self.ttl) {
            tracing::debug!(%error, "renewing this replica's presence failed");
        }
        // The last turn this replica had, expired or not.
        let before = self.turn.lock().unwrap_or_else(|p| p.into_inner()).map(|(epoch, _)| epoch);
        match store.acquire_lease(LEASE, &self.holder, self.ttl) {
            Ok(Some(epoch)) => {
                *self.turn.lock().unwrap_or_else(|p| p.into_inner()) = Some((epoch, started + self.ttl * 4 / 5));
                if before != Some(epoch) {
                    tracing::info!(replica = %self.holder, epoch, "this replica leads the conductor now");
                    // The leader forgets replicas gone for long (each start has a new name).
                    if let Err(error) = store.forget_leases(PRESENCE, REMEMBERED) {
                        tracing::debug!(%error, "forgetting replicas long gone failed");
                    }
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

    /// Leaves at a clean stop: the conductor's lease is handed over at once (another replica
    /// need not wait for it to expire) and this replica is no longer listed.
    pub fn leave(&self, store: &storage::Store) -> storage::Result<()> {
        self.left.store(true, std::sync::atomic::Ordering::SeqCst);
        *self.turn.lock().unwrap_or_else(|p| p.into_inner()) = None;
        store.release_lease(LEASE, &self.holder)?;
        store.release_lease(&self.presence(), &self.holder)?;
        store.forget_leases(&self.presence(), Duration::ZERO)?;
        Ok(())
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

/// The processes serving this cloud, as admins see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlane {
    /// `redb` or `postgres`.
    pub store: &'static str,
    /// The conductor lease's holder and epoch, when one holds it.
    pub leader: Option<(String, i64)>,
    pub replicas: Vec<Replica>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: String,
    /// `leader`, `follower` or `unreachable`.
    pub state: &'static str,
    /// When it last renewed its presence (ms since the Unix epoch).
    pub last_seen_ms: i64,
}

/// Every replica a PostgreSQL store heard of within the last hour, and the leader.
pub fn control_plane(store: &storage::Store) -> storage::Result<ControlPlane> {
    let leader = store.lease_holder(LEASE)?.map(|(holder, epoch, _)| (holder, epoch));
    let forgotten = -i64::try_from(REMEMBERED.as_millis()).unwrap_or(i64::MAX);
    let replicas = store
        .leases(PRESENCE)?
        .into_iter()
        .filter(|lease| lease.left_ms > forgotten)
        .map(|lease| Replica {
            state: match &leader {
                _ if !lease.live() => "unreachable",
                Some((holder, _)) if *holder == lease.holder => "leader",
                _ => "follower",
            },
            id: lease.holder,
            last_seen_ms: lease.renewed_ms,
        })
        .collect();
    Ok(ControlPlane { store: "postgres", leader, replicas })
}

impl Backend {
    /// Who serves and who leads: on redb this one process, which leads; on PostgreSQL every
    /// replica heard of within the last hour.
    pub fn control_plane(&self) -> crate::Result<ControlPlane> {
        let store = self.store();
        let Some(leadership) = &self.leadership else {
            return Ok(ControlPlane {
                store: "redb",
                leader: Some((self.process_name().to_owned(), 1)),
                replicas: vec![Replica {
                    id: self.process_name().to_owned(),
                    state: "leader",
                    last_seen_ms: crate::now_ms(),
                }],
            });
        };
        let ControlPlane { leader, mut replicas, .. } = control_plane(store)?;
        // Itself, before its first renewal.
        if !replicas.iter().any(|r| r.id == leadership.holder) {
            let state =
                if leader.as_ref().is_some_and(|(h, _)| *h == leadership.holder) { "leader" } else { "follower" };
            replicas.push(Replica { id: leadership.holder.clone(), state, last_seen_ms: crate::now_ms() });
        }
        Ok(ControlPlane { store: "postgres", leader, replicas })
    }

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
