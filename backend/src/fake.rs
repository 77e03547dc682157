//! The fake hypervisor: a pool of hosts held in memory, and the contract every driver honours.
//!
//! Stratus drives hosts through [`Hypervisor`] and relies on these promises of every
//! implementation (libvirt on a real daemon, libvirt's test driver, and this one) and on
//! nothing else:
//! 1. Domains are named by instance id, unique per host; [`Hypervisor::state`] answers `None`
//!    for a name the host does not know, and [`Hypervisor::domains`] lists every domain it
//!    knows, running or only defined.
//! 2. Every call can be redone: `define` creates or replaces the definition (a running domain
//!    keeps running), `start` of a running domain, `destroy` of a stopped one, `undefine` of an
//!    unknown one, `attach_disk` of a disk already there and `detach_disk` of one that is not,
//!    `attach_interface` of a MAC already there and `detach_interface` of one that is not, all
//!    succeed. Interrupted work is finished by doing it again.
//! 3. `shutdown` only asks (the guest powers off when it will); `destroy` powers off at once.
//! 4. A change no call made (a guest that powers itself off, crashes, is started by someone
//!    else) is reported by name to every [`Hypervisor::watch`] sink, soon after; the name is
//!    all an event carries, so receivers read the state again.
//! 5. `migrate` blocks for the whole migration. On success the domain is on the target and
//!    gone from the source; on failure it still runs on the source, unless the host reports
//!    otherwise in its error, which callers confirm by reading both hosts. `job_progress`
//!    answers `None` when no job runs. `start_post_copy` during a migration switches it to
//!    post-copy: the guest pauses on the source and runs on the target before `migrate`
//!    returns (the fake holds the pause for [`POST_COPY_PAUSE`], then fetches the rest for as
//!    long), and from then on it ends on the target, or, if post-copy fails, in two halves
//!    that `post_copy_failed` reports (the source cannot take the guest back). `set_migration_downtime` changes the
//!    pause a running migration may take from its next pass on.
//!    With a [`StorageCopy`], the disks it names must wait at their place in the target's
//!    folder (else the migration fails and the guest stays); the guest arrives on them
//!    holding what the source's held, and runs from the new folder.
//! 6. Disk and NIC calls act on a running domain; its persistent definition is not touched.
//! 7. A host that cannot be reached fails with [`DriverError::Unreachable`]; the call may be
//!    retried later. Any call may also take as long as the host takes: callers bound it
//!    ([`crate::bridge`]).
//! 8. [`Hypervisor::definition`] renders a domain with the `<metadata>` it was defined with
//!    (its owner, [`crate::ownership`]).
//! 9. An encrypted disk opens only on a host that holds its key: `start` of a domain with one,
//!    `attach_disk` of one, and a `migrate` of a domain with one to a target, fail while that
//!    host lacks the key. Keys are lent with `add_secrets` and taken back with
//!    `remove_secrets`; a running guest keeps the disks it has open without them.
//! 10. [`Hypervisor::sample`] reports each domain's counters, which only grow while the guest
//!     runs in one process: after a migration (or a restart) they start again from zero,
//!     and a host that cannot tell a figure reports 0 for it.
//! 11. [`Hypervisor::open_console`] opens a running domain's serial console and ends the
//!     session opened before it; a session's `read` answers `Some(0)` once the domain stops
//!     or leaves the host, or another session opens. The fake's guest echoes what it is sent,
//!     as a terminal does.
//! 12. [`Hypervisor::dirty_rate`] measures how fast a running domain writes to its memory,
//!     taking at most the period it is given (the fake answers at once with what a test
//!     scripted); a domain that does not run, or a host that cannot measure, is an error.
//!
//! The fake keeps these promises in memory (it never starts a guest, and reads a disk only to
//! copy it in a storage-copying migration) and adds what tests need and libvirt cannot do on
//! demand: a guest that powers itself off ([`FakeCloud::power_off`]), a host that fails or
//! hangs ([`HostMode`]), and scripted migrations ([`MigrationScript`]). Hosts of one
//! [`FakeCloud`] share one world, so that a migration moves a domain from one to the other.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::hypervisor::{
    AttachedDisk, DiskKey, DomainCounters, DomainSample, DomainSpec, DomainStatus, DriverError, EventSink, HostInfo,
    HostSample, Hypervisor, JobProgress, MigrationOptions, Nic, PowerState, SerialConsole, StorageCopy,
};

/// How long the fake's guest stands still at a switch to post-copy.
pub const POST_COPY_PAUSE: Duration = Duration::from_millis(40);

/// How a fake host answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostMode {
    #[default]
    Answering,
    /// Every call fails with `Unreachable` at once.
    Unreachable,
    /// Every call blocks until the mode changes (a host whose daemon hangs).
    Hanging,
}

/// How the fake's migrations go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MigrationScript {
    /// Pre-copy converges after a few progress reports.
    #[default]
    Converges,
    /// Pre-copy never converges: only a switch to post-copy or an abort ends it.
    NeverConverges,
    /// The copy fails and the source loses the guest.
    FailsAndLosesGuest,
    /// Never converges; after a switch to post-copy the connection breaks and the guest is
    /// left paused on the source and running, stuck, on the target, both marked as libvirt
    /// marks them ([`Hypervisor::post_copy_failed`]).
    PostCopyFails,
}

/// A domain as the fake holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeDomain {
    pub spec: DomainSpec,
    pub state: PowerState,
    /// Disks hot-plugged into the running guest, by target.
    pub plugged: BTreeMap<String, AttachedDisk>,
    /// NICs hot-plugged into the running guest, by MAC.
    pub plugged_nics: BTreeMap<String, Nic>,
    /// How many times the running guest was paused (for tests of what a pause covers).
    pub suspensions: usize,
    /// What [`Hypervisor::sample`] reports, as a test scripts it ([`FakeCloud::set_counters`]);
    /// a migration starts them again on the target, as a new QEMU process does.
    pub counters: DomainCounters,
    /// Serial console sessions opened; only the last one is live.
    pub console_sessions: u64,
    /// What [`Hypervisor::dirty_rate`] measures, as a test scripts it
    /// ([`FakeCloud::set_dirty_rate`]); bytes a second.
    pub dirty_rate: u64,
    /// Half of a guest whose post-copy broke ([`MigrationScript::PostCopyFails`]).
    pub post_copy_failed: bool,
}

#[derive(Default)]
struct FakeHostState {
    mode: HostMode,
    domains: BTreeMap<String, FakeDomain>,
    sinks: Vec<EventSink>,
    /// The keys the host holds now, by secret.
    secrets: BTreeSet<String>,
    /// How many keys it was ever lent.
    secrets_lent: usize,
}

impl FakeHostState {
    /// Fails unless the host holds every key of `keys`.
    fn holds(&self, keys: impl IntoIterator<Item = DiskKey>) -> Result<(), DriverError> {
        match keys.into_iter().find(|k| !self.secrets.contains(&k.secret_uuid)) {
            Some(key) => Err(DriverError::Failed(format!("no secret with matching uuid '{}'", key.secret_uuid))),
            None => Ok(()),
        }
    }
}

impl FakeDomain {
    /// The keys of every disk it has: defined and hot-plugged.
    fn keys(&self) -> Vec<DiskKey> {
        let mut keys = self.spec.keys();
        keys.extend(self.plugged.values().filter_map(|d| d.key.clone()));
        keys
    }
}

#[derive(Default)]
struct World {
    hosts: HashMap<String, FakeHostState>,
    script: MigrationScript,
    /// The domain a migration is under way for, and how often its progress was read.
    migrating: Option<String>,
    polls: u64,
    post_copy: bool,
    /// How many progress reads came before the switch to post-copy.
    post_copy_at: Option<u64>,
    aborted: bool,
    /// The downtime allowances of the last migration, the one it started with first.
    downtimes: Vec<u64>,
}

#[derive(Default)]
struct Shared {
    world: Mutex<World>,
    /// Signalled whenever a host's mode changes, for calls that hang.
    mode_changed: Condvar,
}

/// A pool of fake hosts sharing one world.
#[derive(Clone, Default)]
pub struct FakeCloud(Arc<Shared>);

impl FakeCloud {
    pub fn new() -> Self {
        Self::default()
    }

    /// The driver of the host at `uri` (created on first use).
    pub fn host(&self, uri: &str) -> Arc<FakeHost> {
        self.world().hosts.entry(uri.to_owned()).or_default();
        Arc::new(FakeHost { uri: uri.to_owned(), cloud: self.clone() })
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.0.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_mode(&self, uri: &str, mode: HostMode) {
        self.world().hosts.entry(uri.to_owned()).or_default().mode = mode;
        self.0.mode_changed.notify_all();
    }

    pub fn set_migration_script(&self, script: MigrationScript) {
        self.world().script = script;
    }

    /// The guest powers itself off, as from inside; the host's watchers hear of it.
    pub fn power_off(&self, uri: &str, name: &str) {
        let sinks = {
            let mut world = self.world();
            let Some(host) = world.hosts.get_mut(uri) else { return };
            let Some(domain) = host.domains.get_mut(name) else { return };
            domain.state = PowerState::ShutOff;
            domain.plugged.clear();
            domain.plugged_nics.clear();
            host.sinks.clone()
        };
        for sink in sinks {
            sink(name);
        }
    }

    /// Scripts the counters the host reports for a domain (CPU time, NIC and disk traffic).
    pub fn set_counters(&self, uri: &str, name: &str, counters: DomainCounters) {
        if let Some(domain) = self.world().hosts.get_mut(uri).and_then(|h| h.domains.get_mut(name)) {
            domain.counters = counters;
        }
    }

    /// Scripts how fast a domain dirties its memory (what [`Hypervisor::dirty_rate`] finds).
    pub fn set_dirty_rate(&self, uri: &str, name: &str, bytes_per_sec: u64) {
        if let Some(domain) = self.world().hosts.get_mut(uri).and_then(|h| h.domains.get_mut(name)) {
            domain.dirty_rate = bytes_per_sec;
        }
    }

    pub fn domain(&self, uri: &str, name: &str) -> Option<FakeDomain> {
        self.world().hosts.get(uri)?.domains.get(name).cloned()
    }

    /// The keys a host holds now, and how many it was ever lent.
    pub fn secrets(&self, uri: &str) -> (Vec<String>, usize) {
        let world = self.world();
        world.hosts.get(uri).map(|h| (h.secrets.iter().cloned().collect(), h.secrets_lent)).unwrap_or_default()
    }

    /// Whether a migration was switched to post-copy, and whether one was aborted.
    pub fn migration_outcome(&self) -> (bool, bool) {
        let world = self.world();
        (world.post_copy, world.aborted)
    }

    /// After how many reads of its progress the last migration was switched to post-copy.
    pub fn post_copy_after_polls(&self) -> Option<u64> {
        self.world().post_copy_at
    }

    /// The downtime allowances the last migration was given, in order (ms).
    pub fn migration_downtimes(&self) -> Vec<u64> {
        self.world().downtimes.clone()
    }
}

/// One fake host: a [`Hypervisor`].
pub struct FakeHost {
    uri: String,
    cloud: FakeCloud,
}

impl FakeHost {
    /// The world, once the host answers: waits while it hangs, fails while it is unreachable.
    fn answering(&self) -> Result<MutexGuard<'_, World>, DriverError> {
        let mut world = self.cloud.world();
        loop {
            match world.hosts.get(&self.uri).map(|h| h.mode).unwrap_or_default() {
                HostMode::Answering => return Ok(world),
                HostMode::Unreachable => return Err(DriverError::Unreachable(format!("{} is down", self.uri))),
                HostMode::Hanging => {
                    world = self.cloud.0.mode_changed.wait(world).unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }

    /// Runs `f` on this host's state, once it answers.
    fn with_host<T>(&self, f: impl FnOnce(&mut FakeHostState) -> Result<T, DriverError>) -> Result<T, DriverError> {
        let mut world = self.answering()?;
        f(world.hosts.entry(self.uri.clone()).or_default())
    }

    fn with_domain<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut FakeDomain) -> Result<T, DriverError>,
    ) -> Result<T, DriverError> {
        self.with_host(|host| f(host.domains.get_mut(name).ok_or_else(|| DriverError::NoDomain(name.to_owned()))?))
    }

    fn running_domain<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut FakeDomain) -> Result<T, DriverError>,
    ) -> Result<T, DriverError> {
        self.with_domain(name, |domain| {
            if domain.state != PowerState::Running {
                return Err(DriverError::Failed(format!("domain {name} is not running")));
            }
            f(domain)
        })
    }

    fn set_state(&self, name: &str, state: PowerState) -> Result<(), DriverError> {
        self.with_domain(name, |domain| {
            domain.state = state;
            if state.is_off() {
                domain.plugged.clear();
                domain.plugged_nics.clear();
            }
            Ok(())
        })
    }

    /// The migration call itself, as scripted; ends by the script, post-copy or an abort.
    fn run_migration(&self, name: &str, target_uri: &str, storage: Option<&StorageCopy>) -> Result<(), DriverError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut switched = false;
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let mut world = self.answering()?;
            let converged = world.script == MigrationScript::Converges && world.polls >= 2;
            if world.script == MigrationScript::FailsAndLosesGuest && world.polls >= 2 {
                world.hosts.entry(self.uri.clone()).or_default().domains.remove(name);
                return Err(DriverError::Failed("the target went away".into()));
            }
            if world.aborted {
                return Err(DriverError::Failed("operation aborted".into()));
            }
            if world.script == MigrationScript::PostCopyFails && world.post_copy {
                // As libvirt leaves them: paused on the source, running (but stuck) on the
                // target, both marked.
                let source = world.hosts.entry(self.uri.clone()).or_default();
                let domain = source.domains.get_mut(name).ok_or_else(|| DriverError::NoDomain(name.to_owned()))?;
                (domain.state, domain.post_copy_failed) = (PowerState::Paused, true);
                let arrived = FakeDomain { state: PowerState::Running, ..domain.clone() };
                world.hosts.entry(target_uri.to_owned()).or_default().domains.insert(name.to_owned(), arrived);
                return Err(DriverError::Failed("post-copy failed: the connection to the target broke".into()));
            }
            if world.post_copy && !switched {
                // As QEMU switches: the guest stops on the source, its state moves, and it runs
                // on the target, which fetches the rest of its memory before the call returns.
                switched = true;
                let source = world.hosts.entry(self.uri.clone()).or_default();
                let domain = source.domains.get_mut(name).ok_or_else(|| DriverError::NoDomain(name.to_owned()))?;
                domain.state = PowerState::Paused;
                let paused = FakeDomain { state: PowerState::Paused, ..domain.clone() };
                world.hosts.entry(target_uri.to_owned()).or_default().domains.insert(name.to_owned(), paused);
                drop(world);
                std::thread::sleep(POST_COPY_PAUSE);
                let mut world = self.answering()?;
                let target = world.hosts.entry(target_uri.to_owned()).or_default();
                if let Some(arrived) = target.domains.get_mut(name) {
                    arrived.state = PowerState::Running;
                }
                continue;
            }
            if converged || world.post_copy {
                let keys = world.hosts.get(&self.uri).and_then(|h| h.domains.get(name)).map(FakeDomain::keys);
                world.hosts.entry(target_uri.to_owned()).or_default().holds(keys.unwrap_or_default())?;
                let source = world.hosts.entry(self.uri.clone()).or_default();
                let domain = source.domains.get(name).ok_or_else(|| DriverError::NoDomain(name.to_owned()))?;
                let moved = match storage {
                    Some(copy) => copied(domain, copy)?,
                    None => domain.spec.clone(),
                };
                let mut domain = source.domains.remove(name).ok_or_else(|| DriverError::NoDomain(name.to_owned()))?;
                (domain.spec, domain.state) = (moved, PowerState::Running);
                domain.counters = DomainCounters::default();
                world.hosts.entry(target_uri.to_owned()).or_default().domains.insert(name.to_owned(), domain);
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(DriverError::Failed("the fake migration was never ended".into()));
            }
        }
    }
}

/// A storage-copying migration's end on the fake: the root disk's file (the only disk a copy
/// names here) must be at its place in the target's folder, as Stratus makes it beforehand;
/// what the source's file holds is copied over it, as the copy over NBD leaves it; the domain
/// runs there from the new folder. A missing file fails the migration, the guest staying.
fn copied(domain: &FakeDomain, copy: &StorageCopy) -> Result<DomainSpec, DriverError> {
    let mut spec = domain.spec.clone();
    if copy.disks.iter().any(|d| d == crate::hypervisor::ROOT_TARGET) {
        let to = copy.moved(&spec.disk);
        if !to.exists() {
            return Err(DriverError::Failed(format!(
                "the target has no disk at {} to copy the root into",
                to.display()
            )));
        }
        std::fs::copy(&spec.disk, &to).map_err(|e| DriverError::Failed(format!("copying the root disk: {e}")))?;
        spec.disk = to;
    }
    spec.console_log = copy.moved(&spec.console_log);
    Ok(spec)
}

/// A fake serial console session: the guest echoes what it is sent.
struct FakeConsole {
    cloud: FakeCloud,
    uri: String,
    name: String,
    session: u64,
    echo: Vec<u8>,
}

impl FakeConsole {
    fn live(&self) -> bool {
        let world = self.cloud.world();
        let domain = world.hosts.get(&self.uri).and_then(|h| h.domains.get(&self.name));
        domain.is_some_and(|d| d.state == PowerState::Running && d.console_sessions == self.session)
    }
}

impl SerialConsole for FakeConsole {
    fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, DriverError> {
        if !self.live() {
            return Ok(Some(0));
        }
        if self.echo.is_empty() {
            return Ok(None);
        }
        let n = buf.len().min(self.echo.len());
        buf[..n].copy_from_slice(&self.echo[..n]);
        self.echo.drain(..n);
        Ok(Some(n))
    }

    fn write(&mut self, data: &[u8]) -> Result<usize, DriverError> {
        if !self.live() {
            return Err(DriverError::Failed("the console session ended".into()));
        }
        self.echo.extend_from_slice(data);
        Ok(data.len())
    }
}

impl Hypervisor for FakeHost {
    fn open_console(&self, name: &str) -> Result<Box<dyn SerialConsole>, DriverError> {
        let session = self.running_domain(name, |domain| {
            domain.console_sessions += 1;
            Ok(domain.console_sessions)
        })?;
        Ok(Box::new(FakeConsole {
            cloud: self.cloud.clone(),
            uri: self.uri.clone(),
            name: name.to_owned(),
            session,
            echo: Vec::new(),
        }))
    }

    fn host_info(&self) -> Result<HostInfo, DriverError> {
        self.with_host(|_| Ok(HostInfo { vcpus: 8, memory_mib: 16384 }))
    }

    fn domains(&self) -> Result<Vec<DomainStatus>, DriverError> {
        self.with_host(|host| {
            Ok(host
                .domains
                .iter()
                .map(|(name, d)| DomainStatus {
                    name: name.clone(),
                    state: d.state,
                    cpu_time_ns: d.counters.cpu_time_ns,
                })
                .collect())
        })
    }

    fn sample(&self) -> Result<HostSample, DriverError> {
        let info = self.host_info()?;
        self.with_host(|host| {
            Ok(HostSample {
                cpu_ns: None,
                memory_total_kib: info.memory_mib * 1024,
                memory_free_kib: None,
                domains: host
                    .domains
                    .iter()
                    .map(|(name, d)| DomainSample { name: name.clone(), state: d.state, counters: d.counters })
                    .collect(),
            })
        })
    }

    fn state(&self, name: &str) -> Result<Option<PowerState>, DriverError> {
        self.with_host(|host| Ok(host.domains.get(name).map(|d| d.state)))
    }

    fn define(&self, spec: &DomainSpec) -> Result<(), DriverError> {
        self.with_host(|host| {
            let domain = host.domains.entry(spec.name.clone()).or_insert_with(|| FakeDomain {
                spec: spec.clone(),
                state: PowerState::ShutOff,
                plugged: BTreeMap::new(),
                plugged_nics: BTreeMap::new(),
                suspensions: 0,
                counters: DomainCounters::default(),
                console_sessions: 0,
                dirty_rate: 0,
                post_copy_failed: false,
            });
            domain.spec = spec.clone();
            Ok(())
        })
    }

    fn start(&self, name: &str) -> Result<(), DriverError> {
        self.with_host(|host| {
            let domain = host.domains.get(name).ok_or_else(|| DriverError::NoDomain(name.to_owned()))?;
            if domain.state != PowerState::Running {
                host.holds(domain.spec.keys())?;
            }
            let domain = host.domains.get_mut(name).ok_or_else(|| DriverError::NoDomain(name.to_owned()))?;
            if domain.state != PowerState::Running {
                domain.state = PowerState::Running;
                domain.plugged.clear();
                domain.plugged_nics.clear();
            }
            Ok(())
        })
    }

    fn shutdown(&self, name: &str) -> Result<(), DriverError> {
        // The fake's guests always heed the power button at once; they are heard of as events.
        self.set_state(name, PowerState::ShutOff)?;
        let sinks = self.with_host(|host| Ok(host.sinks.clone()))?;
        for sink in sinks {
            sink(name);
        }
        Ok(())
    }

    fn destroy(&self, name: &str) -> Result<(), DriverError> {
        self.with_domain(name, |domain| {
            domain.post_copy_failed = false;
            Ok(())
        })?;
        self.set_state(name, PowerState::ShutOff)
    }

    fn reboot(&self, name: &str) -> Result<(), DriverError> {
        self.running_domain(name, |_| Ok(()))
    }

    fn undefine(&self, name: &str) -> Result<(), DriverError> {
        self.with_host(|host| {
            host.domains.remove(name);
            Ok(())
        })
    }

    fn suspend(&self, name: &str) -> Result<(), DriverError> {
        self.running_domain(name, |domain| {
            domain.state = PowerState::Paused;
            domain.suspensions += 1;
            Ok(())
        })
    }

    fn resume(&self, name: &str) -> Result<(), DriverError> {
        self.with_domain(name, |domain| {
            if domain.state == PowerState::Paused {
                domain.state = PowerState::Running;
            }
            Ok(())
        })
    }

    fn watch(&self, sink: EventSink) {
        self.cloud.world().hosts.entry(self.uri.clone()).or_default().sinks.push(sink);
    }

    fn migrate(
        &self,
        name: &str,
        target_uri: &str,
        options: &MigrationOptions,
        storage: Option<&StorageCopy>,
    ) -> Result<(), DriverError> {
        {
            let mut world = self.answering()?;
            world.migrating = Some(name.to_owned());
            (world.polls, world.post_copy, world.post_copy_at, world.aborted) = (0, false, None, false);
            world.downtimes = options.max_downtime_ms.into_iter().collect();
        }
        let result = self.run_migration(name, target_uri, storage);
        self.cloud.world().migrating = None;
        result
    }

    fn job_progress(&self, name: &str) -> Result<Option<JobProgress>, DriverError> {
        let mut world = self.answering()?;
        if world.migrating.as_deref() != Some(name) {
            return Ok(None);
        }
        world.polls += 1;
        // A pass per reading; a guest that never converges dirties as fast as memory is sent.
        let stuck = matches!(world.script, MigrationScript::NeverConverges | MigrationScript::PostCopyFails);
        Ok(Some(JobProgress {
            time_elapsed_ms: world.polls * 250,
            memory_total_bytes: 512 << 20,
            memory_remaining_bytes: 64 << 20,
            iterations: world.polls,
            bandwidth_bytes_per_sec: 64 << 20,
            dirty_rate_bytes_per_sec: if stuck { 64 << 20 } else { 0 },
            ..Default::default()
        }))
    }

    fn completed_job(&self, _: &str) -> Result<Option<JobProgress>, DriverError> {
        drop(self.answering()?);
        Ok(Some(JobProgress { time_elapsed_ms: 1234, downtime_ms: 56, ..Default::default() }))
    }

    fn abort_job(&self, _: &str) -> Result<(), DriverError> {
        self.answering()?.aborted = true;
        Ok(())
    }

    fn dirty_rate(&self, name: &str, _period: std::time::Duration) -> Result<u64, DriverError> {
        // Answers at once: a test has no use for the wait.
        self.running_domain(name, |domain| Ok(domain.dirty_rate))
    }

    fn start_post_copy(&self, _: &str) -> Result<(), DriverError> {
        let mut world = self.answering()?;
        world.post_copy = true;
        world.post_copy_at = Some(world.polls);
        Ok(())
    }

    fn post_copy_failed(&self, name: &str) -> Result<bool, DriverError> {
        self.with_host(|host| Ok(host.domains.get(name).is_some_and(|d| d.post_copy_failed)))
    }

    fn set_migration_downtime(&self, name: &str, ms: u64) -> Result<(), DriverError> {
        let mut world = self.answering()?;
        if world.migrating.as_deref() == Some(name) {
            world.downtimes.push(ms);
        }
        Ok(())
    }

    fn attach_disk(&self, name: &str, disk: &AttachedDisk) -> Result<(), DriverError> {
        self.with_host(|host| {
            let domain = host.domains.get(name).ok_or_else(|| DriverError::NoDomain(name.to_owned()))?;
            if domain.state != PowerState::Running {
                return Err(DriverError::Failed(format!("domain {name} is not running")));
            }
            if !domain.plugged.contains_key(&disk.target) {
                host.holds(disk.key.clone())?;
            }
            let domain = host.domains.get_mut(name).ok_or_else(|| DriverError::NoDomain(name.to_owned()))?;
            domain.plugged.insert(disk.target.clone(), disk.clone());
            Ok(())
        })
    }

    fn detach_disk(&self, name: &str, target: &str, _: Duration) -> Result<(), DriverError> {
        self.running_domain(name, |domain| {
            domain.plugged.remove(target);
            domain.spec.volumes.retain(|v| v.target != target);
            Ok(())
        })
    }

    fn attach_interface(&self, name: &str, nic: &Nic) -> Result<(), DriverError> {
        self.running_domain(name, |domain| {
            if domain.spec.mac != nic.mac && !domain.spec.nics.iter().any(|n| n.mac == nic.mac) {
                domain.plugged_nics.insert(nic.mac.clone(), nic.clone());
            }
            Ok(())
        })
    }

    fn detach_interface(&self, name: &str, nic: &Nic) -> Result<(), DriverError> {
        self.running_domain(name, |domain| {
            domain.plugged_nics.remove(&nic.mac);
            domain.spec.nics.retain(|n| n.mac != nic.mac);
            Ok(())
        })
    }

    fn resize_disk(&self, name: &str, target: &str, _: u64) -> Result<(), DriverError> {
        self.running_domain(name, |domain| {
            let present = domain.plugged.contains_key(target) || domain.spec.volumes.iter().any(|v| v.target == target);
            if present {
                Ok(())
            } else {
                Err(DriverError::Failed(format!("domain {name} has no disk {target}")))
            }
        })
    }

    fn definition(&self, name: &str) -> Result<Option<String>, DriverError> {
        self.with_host(|host| Ok(host.domains.get(name).map(|d| crate::hypervisor::domain_xml(&d.spec))))
    }

    fn add_secrets(&self, keys: &[DiskKey]) -> Result<(), DriverError> {
        self.with_host(|host| {
            host.secrets.extend(keys.iter().map(|k| k.secret_uuid.clone()));
            host.secrets_lent += keys.len();
            Ok(())
        })
    }

    fn remove_secrets(&self, secret_uuids: &[String]) -> Result<(), DriverError> {
        self.with_host(|host| {
            for uuid in secret_uuids {
                host.secrets.remove(uuid);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> DomainSpec {
        DomainSpec {
            name: name.into(),
            uuid: "u".into(),
            vcpus: 1,
            memory_mib: 256,
            accelerator: crate::hypervisor::Accelerator::Test,
            disk: "/nowhere.qcow2".into(),
            root_key: None,
            volumes: vec![],
            kernel: None,
            initrd: None,
            cmdline: None,
            mac: "52:54:00:00:00:01".into(),
            port: "p-1".into(),
            nics: Vec::new(),
            console_log: "/nowhere.log".into(),
            instance_type: "t3.nano".into(),
            metadata: None,
        }
    }

    #[test]
    fn calls_can_be_redone() {
        let cloud = FakeCloud::new();
        let host = cloud.host("fake://a");
        host.define(&spec("i-1")).unwrap();
        host.define(&spec("i-1")).unwrap();
        host.start("i-1").unwrap();
        host.start("i-1").unwrap();
        assert_eq!(host.state("i-1").unwrap(), Some(PowerState::Running));
        host.destroy("i-1").unwrap();
        host.destroy("i-1").unwrap();
        host.undefine("i-1").unwrap();
        host.undefine("i-1").unwrap();
        assert_eq!(host.state("i-1").unwrap(), None);
        assert_eq!(host.destroy("i-1"), Err(DriverError::NoDomain("i-1".into())));
    }

    #[test]
    fn a_guest_that_powers_off_is_reported() {
        let cloud = FakeCloud::new();
        let host = cloud.host("fake://a");
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        host.watch(Arc::new(move |name: &str| sink.lock().unwrap().push(name.to_owned())));
        host.define(&spec("i-1")).unwrap();
        host.start("i-1").unwrap();
        cloud.power_off("fake://a", "i-1");
        assert_eq!(*heard.lock().unwrap(), ["i-1"]);
        assert_eq!(host.state("i-1").unwrap(), Some(PowerState::ShutOff));
    }

    #[test]
    fn unreachable_and_hanging_hosts() {
        let cloud = FakeCloud::new();
        let host = cloud.host("fake://a");
        cloud.set_mode("fake://a", HostMode::Unreachable);
        assert!(matches!(host.host_info(), Err(DriverError::Unreachable(_))));
        cloud.set_mode("fake://a", HostMode::Hanging);
        let waiting = std::thread::spawn(move || host.host_info());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiting.is_finished(), "a hanging host does not answer");
        cloud.set_mode("fake://a", HostMode::Answering);
        assert!(waiting.join().unwrap().is_ok());
    }
}
