//! The conductor: background work that keeps libvirt and redb in step.
//!
//! 1. Requests kick instance keys into a channel (and the keys of volumes no instance holds);
//!    each kick runs [`Backend::converge`] for that key on a blocking thread: for an instance,
//!    copies for its pending images first, then its volumes' work, then its state change. A
//!    key already in flight is marked to run once more when it finishes, so no kick is lost
//!    and no instance is driven twice at once. At most [`CONDUCTOR_WORKERS`] run at a time.
//! 2. Every sweep interval (longer when sweeps get costly, see [`sweep_period`]),
//!    [`Backend::sweep`] probes the hosts and compares them with redb:
//!    a running instance whose domain is off or gone was shut down from inside; instances
//!    left in a transitional state (after a crash, or while their host was away) are kicked
//!    again, and so are the owners of unfinished volume work; domains that redb does not know
//!    are reported, never adopted or killed (when they change, the hosts' inventory is taken
//!    again, [`crate::ownership`]); long terminated instances are forgotten.
//!
//! 3. Hosts report domain lifecycle events (libvirt's, see [`crate::libvirt`]): each one
//!    re-checks that domain's instance at once ([`Backend::domain_changed`]), so a guest that
//!    powers itself off is recorded within moments; the sweep is the safety net for events
//!    lost while a host was away.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use storage::tables::{IMAGES, INSTANCES};
use storage::{AttachmentState, ImageState, InstanceRecord, InstanceState, Reads};
use tokio::sync::mpsc;

use crate::hypervisor::PowerState;
use crate::{now_ms, Backend, ResourceKind, Result};

/// How long a terminated instance stays visible, as on EC2.
pub const TERMINATED_RETENTION: Duration = Duration::from_secs(3600);

/// How long a finished migration stays visible to DescribeInstanceMigrations.
pub const MIGRATION_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// At most this share of one CPU goes to sweeping: a sweep that takes longer than the
/// interval allows (a very large store) delays the next one. Events still act at once.
pub const SWEEP_DUTY: u32 = 20;

/// Blocking threads the conductor's instance work and event checks use at most; the sweep
/// runs beside them.
pub const CONDUCTOR_WORKERS: usize = 32;

/// How long from the start of a sweep that took `took` until the next may start.
pub fn sweep_period(interval: Duration, took: Duration) -> Duration {
    interval.max(took * SWEEP_DUTY)
}

/// What the sweep keeps of each instance that is not terminated.
struct Seen {
    /// `{account}/{id}`.
    key: String,
    host_id: String,
    state: InstanceState,
    migrating: bool,
    migration_target: Option<String>,
}

impl Seen {
    fn of(key: &str, record: &InstanceRecord) -> Self {
        Self {
            key: key.to_owned(),
            host_id: record.host_id.clone(),
            state: record.state,
            migrating: record.migration.is_some(),
            migration_target: record.migration_target.clone(),
        }
    }

    fn id(&self) -> &str {
        self.key.split_once('/').map_or(self.key.as_str(), |(_, id)| id)
    }
}

/// What a sweep found that needs an operator's eye.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepReport {
    /// `(host id, domain name)` of domains no instance accounts for.
    pub unknown_domains: Vec<(String, String)>,
    /// Hosts that did not answer.
    pub unreachable_hosts: Vec<String>,
    pub kicked: usize,
    pub purged: usize,
    /// How long reading the store took (instances, images, volumes).
    pub read_took: Duration,
}

/// The conductor's key for reconciling OVN at once ([`Backend::network_changed`]): no record
/// has it (ids have no `!`).
const NETWORK_KEY: &str = "!network";

impl Backend {
    /// Drives one instance from a transitional state to the next stable one. Blocks on the
    /// host; safe to call again at any point (after a crash too).
    pub fn converge(&self, key: &str) -> Result<()> {
        if key == NETWORK_KEY {
            self.sync_ovn_now();
            return Ok(());
        }
        // Volumes that no instance holds, and copies of images, are driven by their own key.
        match key.split_once('/').and_then(|(_, id)| ResourceKind::of_id(id)) {
            Some(ResourceKind::Volume) => return self.converge_volume(key),
            Some(ResourceKind::Image) => return self.converge_image(key),
            Some(ResourceKind::Snapshot) => return self.converge_snapshot(key),
            _ => {}
        }
        let Some(record) = self.store().read(|tx| tx.get(&INSTANCES, key))? else { return Ok(()) };
        self.capture_pending_images(&record)?;
        self.settle_instance_volumes(&record)?;
        self.settle_instance_interfaces(&record)?;
        // The copy may have taken a while: act on the state as it is now.
        let Some(record) = self.store().read(|tx| tx.get(&INSTANCES, key))? else { return Ok(()) };
        if record.migration.is_some() {
            return self.run_migration(key, &record);
        }
        match record.state {
            InstanceState::Pending => self.launch(key, record),
            InstanceState::Stopping => self.power_off(key, record),
            InstanceState::ShuttingDown => self.tear_down(key, record),
            InstanceState::Running | InstanceState::Stopped | InstanceState::Terminated => Ok(()),
        }
    }

    /// One pass of reconciliation. Blocks on every host in turn.
    pub fn sweep(&self) -> Result<SweepReport> {
        // Only instances that are not terminated are read, and whole records kept only where
        // the drain needs them; of the rest, a few fields.
        let maintenance = self.maintenance_hosts()?;
        let cutoff = now_ms() - TERMINATED_RETENTION.as_millis() as i64;
        let (mut seen, mut whole, mut expired) = (Vec::new(), Vec::new(), Vec::new());
        let mut interfaces = Vec::new();
        let networked = self.ovn.is_some();
        let reading = std::time::Instant::now();
        // Interfaces of their own: a plug or unplug a crash interrupted is finished by their
        // instance's converge; OVN holds a port for each, bound where their instance runs.
        let own = self.store().read(|tx| tx.scan(&storage::tables::NETWORK_INTERFACES, ""))?;
        let mut bound: HashMap<String, Vec<String>> = own
            .iter()
            .filter_map(|(_, i)| Some((format!("{}/{}", i.account, i.attachment.as_ref()?.instance_id), Vec::new())))
            .collect();
        // Read redb before asking the hosts: an instance that became running after this read
        // cannot be mistaken for one that stopped (its domain is seen running, or the
        // conditional update below finds its state changed).
        self.store().read(|tx| {
            // Terminated instances only wait for their purge: of those, the expired keys.
            expired = tx.terminated_by(cutoff)?;
            tx.for_each_live_instance(|key, record| {
                seen.push(Seen::of(key, &record));
                if networked {
                    let chassis = self.requested_chassis(&record);
                    if let Some(held) = bound.get_mut(key) {
                        held.clone_from(&chassis);
                    }
                    interfaces.extend(crate::vpc_network::Interface::of(&record).map(|i| i.with_chassis(chassis)));
                }
                if maintenance.get(&record.host_id).copied().unwrap_or(false) {
                    whole.push(record);
                }
            })
        })?;
        let mut report = SweepReport { read_took: reading.elapsed(), ..Default::default() };
        for (_, interface) in &own {
            if let Some(attachment) = interface.attachment.as_ref().filter(|a| a.state != AttachmentState::Attached) {
                self.kick(&format!("{}/{}", interface.account, attachment.instance_id));
                report.kicked += 1;
            }
        }
        if networked {
            interfaces.extend(crate::vpc_network::own_interfaces(&own, |key| bound.get(key).cloned()));
        }
        let mut domains: HashMap<String, HashMap<String, PowerState>> = HashMap::new();
        for host in self.hosts().iter() {
            let status = host.probe();
            if status.reachable == Some(true) {
                domains.insert(host.id.clone(), status.domains.iter().map(|d| (d.name.clone(), d.state)).collect());
            } else {
                report.unreachable_hosts.push(host.id.clone());
            }
        }
        for instance in &seen {
            match instance.state {
                InstanceState::Pending | InstanceState::Stopping | InstanceState::ShuttingDown => {
                    self.kick(&instance.key);
                    report.kicked += 1;
                }
                // A migrating guest leaves its host at switch-over, before redb says so; its
                // migration's own work settles where it is.
                InstanceState::Running if instance.migrating => {
                    self.kick(&instance.key);
                    report.kicked += 1;
                }
                InstanceState::Running => {
                    let Some(on_host) = domains.get(&instance.host_id) else { continue };
                    if on_host.get(instance.id()).is_none_or(|s| s.is_off()) {
                        self.guest_powered_off(&instance.key, &instance.host_id)?;
                    }
                }
                InstanceState::Stopped | InstanceState::Terminated => {}
            }
        }
        let known: BTreeSet<(&str, &str)> = seen
            .iter()
            .flat_map(|i| std::iter::once(&i.host_id).chain(&i.migration_target).map(|h| (h.as_str(), i.id())))
            .collect();
        for (host_id, on_host) in &domains {
            for name in on_host.keys() {
                if !known.contains(&(host_id.as_str(), name.as_str())) {
                    report.unknown_domains.push((host_id.clone(), name.clone()));
                }
            }
        }
        // Instances recorded after the store was read above have domains by now: read again
        // for the names the hosts showed and redb did not, so that those are not reported.
        if !report.unknown_domains.is_empty() {
            let recorded = self.store().read(|tx| {
                let mut recorded = Vec::new();
                for (host_id, name) in &report.unknown_domains {
                    if Self::find_instance(tx, name)?
                        .is_some_and(|(_, r)| &r.host_id == host_id || r.migration_target.as_ref() == Some(host_id))
                    {
                        recorded.push((host_id.clone(), name.clone()));
                    }
                }
                Ok::<_, crate::Error>(recorded)
            })?;
            report.unknown_domains.retain(|d| !recorded.contains(d));
        }
        report.unknown_domains.sort();
        // Other installations' guests come and go: their addresses stay out of allocation.
        self.note_unknown_domains(&report.unknown_domains);
        let reading = std::time::Instant::now();
        // Image copies left by a crash (their guest may still be paused) are redone by their
        // instance's work.
        for (_, image) in self.store().read(|tx| tx.scan(&IMAGES, ""))? {
            if let (ImageState::Pending, Some(instance)) = (image.state, &image.source_instance) {
                self.kick(&format!("{}/{instance}", image.owner));
                report.kicked += 1;
            }
        }
        for key in self.unfinished_volume_work()?.into_iter().chain(self.unfinished_image_copies()?) {
            self.kick(&key);
            report.kicked += 1;
        }
        // Deleted snapshots kept for volumes a crash left unmade, or that went unmade.
        self.release_retired_snapshots()?;
        report.read_took += reading.elapsed();
        report.purged = self.purge_terminated(&expired, TERMINATED_RETENTION)?;
        self.purge_migrations(MIGRATION_RETENTION)?;
        self.drain_step(&whole)?;
        self.sync_ovn(&interfaces, reading)?;
        Ok(report)
    }

    /// A host reported a lifecycle change of domain `name`: looks at its instance now
    /// instead of at the next sweep. Blocks on the host.
    pub fn domain_changed(&self, host_id: &str, name: &str) -> Result<()> {
        let found = self.store().read(|tx| Self::find_instance(tx, name))?;
        let Some((key, record)) = found.filter(|(_, r)| r.host_id == host_id) else { return Ok(()) };
        match record.state {
            InstanceState::Pending | InstanceState::Stopping | InstanceState::ShuttingDown => self.kick(&key),
            InstanceState::Running if record.migration.is_some() => {}
            InstanceState::Running => {
                let Some(host) = self.hosts().get(host_id) else { return Ok(()) };
                let off = match host.driver.state(name) {
                    Ok(state) => state.is_none_or(PowerState::is_off),
                    // The sweep will look again once the host answers.
                    Err(_) => false,
                };
                if off {
                    self.guest_powered_off(&key, host_id)?;
                }
            }
            InstanceState::Stopped | InstanceState::Terminated => {}
        }
        Ok(())
    }

    /// Starts the conductor on the current tokio runtime; it runs until the runtime stops.
    pub fn start_conductor(self: &Arc<Self>, sweep_interval: Duration) {
        let (sender, receiver) = mpsc::unbounded_channel();
        if self.kicks.set(sender).is_err() {
            tracing::warn!("the conductor is already running");
            return;
        }
        let (event_tx, events) = mpsc::unbounded_channel();
        // Subscribing talks to the hosts, which may block.
        let backend = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            for host in backend.hosts().iter() {
                let host_id = host.id.clone();
                let event_tx = event_tx.clone();
                host.driver.watch(Arc::new(move |name: &str| {
                    let _ = event_tx.send((host_id.clone(), name.to_owned()));
                }));
            }
        });
        tokio::spawn(conduct(Arc::clone(self), receiver, events, sweep_interval));
    }

    /// Says that what OVN should hold changed in a way guests feel at once (a group's rules,
    /// routes, an Elastic IP): the conductor reconciles OVN now rather than at the next sweep.
    /// Kicks that come while it runs are coalesced into one more pass.
    pub(crate) fn network_changed(&self) {
        if self.ovn.is_some() {
            self.kick(NETWORK_KEY);
        }
    }

    /// `result`, after [`Backend::network_changed`] when it is a success.
    pub(crate) fn network_changed_after<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_ok() {
            self.network_changed();
        }
        result
    }

    /// Asks the conductor to drive an instance; a no-op when none runs (CLI, unit tests).
    pub(crate) fn kick(&self, key: &str) {
        if let Some(sender) = self.kicks.get() {
            let _ = sender.send(key.to_owned());
        }
    }
}

/// Keys being converged, each with whether another kick came in meanwhile.
type InFlight = Arc<Mutex<HashMap<String, bool>>>;

async fn conduct(
    backend: Arc<Backend>,
    mut kicks: mpsc::UnboundedReceiver<String>,
    mut events: mpsc::UnboundedReceiver<(String, String)>,
    sweep_interval: Duration,
) {
    // Before any disk work: key files a killed qemu-img left behind ([`crate::disk`]).
    let data_dir = backend.data_dir().to_path_buf();
    let _ = tokio::task::spawn_blocking(move || crate::disk::remove_stray_key_files(&data_dir)).await;
    let in_flight: InFlight = Arc::default();
    // A burst of launches must not become a thread per instance: work waits for a worker.
    let workers = Arc::new(tokio::sync::Semaphore::new(CONDUCTOR_WORKERS));
    let mut ticker = tokio::time::interval(sweep_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sweeping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut next_sweep = tokio::time::Instant::now();
    let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
    let (report_tx, mut report_rx) = mpsc::unbounded_channel::<(SweepReport, tokio::time::Instant)>();
    loop {
        tokio::select! {
            Some(key) = kicks.recv() => {
                let mut guard = in_flight.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(again) = guard.get_mut(&key) {
                    *again = true;
                    continue;
                }
                guard.insert(key.clone(), false);
                crate::telemetry::global().conductor_queue_depth.set(guard.len() as i64);
                drop(guard);
                let (backend, in_flight) = (Arc::clone(&backend), Arc::clone(&in_flight));
                let workers = Arc::clone(&workers);
                tokio::spawn(async move {
                    let Ok(_worker) = workers.acquire_owned().await else { return };
                    let _ = tokio::task::spawn_blocking(move || converge_until_quiet(&backend, &in_flight, key)).await;
                });
            }
            Some((host_id, name)) = events.recv() => {
                let backend = Arc::clone(&backend);
                let workers = Arc::clone(&workers);
                tokio::spawn(async move {
                    let Ok(_worker) = workers.acquire_owned().await else { return };
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Some(Err(error)) = backend.as_conductor(|| backend.domain_changed(&host_id, &name)) {
                            tracing::warn!(domain = %name, %error, "checking a domain event failed; the sweep will retry");
                        }
                    })
                    .await;
                });
            }
            _ = ticker.tick() => {
                if tokio::time::Instant::now() < next_sweep || sweeping.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    continue;
                }
                let backend = Arc::clone(&backend);
                let sweeping = Arc::clone(&sweeping);
                let report_tx = report_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let started = tokio::time::Instant::now();
                    let result = backend.as_conductor(|| backend.sweep());
                    crate::telemetry::global().sweep_seconds.observe(started.elapsed().as_secs_f64());
                    match result {
                        Some(Ok(report)) => { let _ = report_tx.send((report, started)); }
                        Some(Err(error)) => tracing::error!(%error, "sweep failed"),
                        None => {}
                    }
                    sweeping.store(false, std::sync::atomic::Ordering::Release);
                });
            }
            Some((report, started)) = report_rx.recv() => {
                next_sweep = started + sweep_period(sweep_interval, report.read_took);
                // Say each unknown domain once, not on every sweep.
                for domain in &report.unknown_domains {
                    if reported.insert(domain.clone()) {
                        tracing::warn!(host = %domain.0, domain = %domain.1, "domain not of this installation; left alone (see `stratus doctor`)");
                    }
                }
                reported.retain(|d| report.unknown_domains.contains(d));
            }
        }
    }
}

fn converge_until_quiet(backend: &Backend, in_flight: &InFlight, key: String) {
    let telemetry = crate::telemetry::global();
    loop {
        let started = std::time::Instant::now();
        match backend.as_conductor(|| backend.converge(&key)) {
            Some(Err(error)) => tracing::warn!(instance = %key, %error, "instance work failed; the sweep will retry"),
            Some(Ok(())) => {}
            // Another replica's turn: its sweep finds this key's work.
            None => {
                let mut guard = in_flight.lock().unwrap_or_else(|p| p.into_inner());
                guard.remove(&key);
                telemetry.conductor_queue_depth.set(guard.len() as i64);
                return;
            }
        }
        telemetry.conductor_work_seconds.observe(started.elapsed().as_secs_f64());
        let mut guard = in_flight.lock().unwrap_or_else(|p| p.into_inner());
        match guard.get_mut(&key) {
            Some(again) if *again => *again = false,
            _ => {
                guard.remove(&key);
                telemetry.conductor_queue_depth.set(guard.len() as i64);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_keep_their_interval_until_they_grow_costly() {
        let second = Duration::from_secs(1);
        assert_eq!(sweep_period(second, Duration::from_millis(10)), second);
        assert_eq!(sweep_period(second, Duration::from_millis(50)), second);
        assert_eq!(sweep_period(second, Duration::from_millis(500)), Duration::from_secs(10));
    }
}
