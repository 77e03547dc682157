//! Live migration of running instances between hosts: only memory moves between hosts that
//! share the instance's folder; between hosts that do not (either has a `disk_dir` of its own),
//! the root disk is copied too.
//!
//! 1. [`Backend::migrate_instance`] checks and records, in one transaction, a `queued`
//!    migration and marks the instance as migrating, holding capacity on the target too (and
//!    room for the disk on a target that copies it, whose folder the record names); it
//!    answers the migration at once and kicks the instance's conductor work. A copying
//!    migration first makes the instance's folder on the target (an empty copy of the root
//!    disk over the same image, the console log so far); libvirt mirrors the disk into it over
//!    NBD before and while memory moves.
//! 2. The instance's converge runs the migration ([`Backend::run_migration`]): the source host
//!    drives it peer to peer while a monitor polls its progress into redb, records its
//!    timeline (passes, escalations, the switch-over), aborts it on cancellation, and escalates
//!    as [`crate::escalation`] says within the migration's budget: more downtime, post-copy,
//!    or an abort.
//! 3. On success the instance's host becomes the target in the same transaction that
//!    completes the migration with the final statistics (and its folder and root volume the
//!    target's, after a copy; the source's folder is removed after the commit); on failure the
//!    guest runs on at the source, which pre-copy guarantees, the migration says why it failed,
//!    and a copy's folder on the target is removed. After a switch to post-copy there is no way
//!    back: a failure then leaves the guest on neither host, and the instance is stopped with a
//!    reason ([`Backend::fail_after_post_copy`]); it keeps its folder on the source, whose disk
//!    is as the switch-over left it.
//! 4. After a restart, a migration left in flight is settled from what the hosts report: the
//!    domain running on the target means it completed, on the source that it failed.
//!
//! Stop, terminate and reboot are refused while an instance migrates; cancel first.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use storage::tables::{INSTANCES, MIGRATIONS, MIGRATION_TRACES};
use storage::{
    InstanceRecord, InstanceState, JobProgress, MigrationEvent, MigrationEventKind, MigrationOptions, MigrationRecord,
    MigrationStatus,
};

use crate::escalation::{Abort, Budget, Ladder, Sample, Step};
use crate::migration_plan::{fit_path, PassFigures, PathFit, PAGE_BYTES};

use crate::hypervisor::{DriverError, Hypervisor, PowerState, StorageCopy, ROOT_TARGET};
use crate::scheduler::{self, Demand};
use crate::{ids, invalid, now_ms, Backend, Error, ResourceKind, Result};

/// How often the monitor reads the source's job statistics.
const POLL: Duration = Duration::from_millis(250);

/// How often the guest's state is read on both hosts around a switch to post-copy, and for how
/// long at most ([`watch_post_copy_pause`]).
const PAUSE_POLL: Duration = Duration::from_millis(1);
const PAUSE_WATCH: Duration = Duration::from_secs(10);

/// How long a ping trace goes on after the migration call returned.
const TRACE_TAIL: Duration = Duration::from_secs(1);

/// How long settling waits for a job libvirt still runs before leaving it to the next sweep.
const SETTLE_WAIT: Duration = Duration::from_secs(30);

/// The phase a running migration reports: `completing` once pre-copy has nothing left to send
/// (the switch-over is under way), `post-copy` after switching, else `copying`.
pub fn phase(post_copy: bool, progress: &JobProgress) -> MigrationStatus {
    if post_copy {
        MigrationStatus::PostCopy
    } else if progress.memory_total_bytes > 0 && progress.memory_remaining_bytes == 0 {
        MigrationStatus::Completing
    } else {
        MigrationStatus::Copying
    }
}

/// Whether a migration has run past its `TimeoutSeconds`.
pub fn timed_out(options: &MigrationOptions, elapsed: Duration) -> bool {
    options.timeout_secs.is_some_and(|t| elapsed >= Duration::from_secs(t))
}

/// How long a migration's prediction reuses the dirty rate an estimate measured on the same
/// host, instead of measuring the guest for [`DIRTY_RATE_PERIOD`] again before it moves: an
/// operator who asks what a migration costs and then starts it gets the prediction they were
/// shown, without a second's wait.
pub const DIRTY_RATE_REUSE: Duration = Duration::from_secs(15);

/// The dirty rates estimates measured lately, by instance: when, on which host, how fast.
#[derive(Default)]
pub(crate) struct DirtyRates(std::sync::Mutex<std::collections::HashMap<String, (Instant, String, u64)>>);

impl DirtyRates {
    fn remember(&self, instance_id: &str, host: &str, rate: u64) {
        let mut rates = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Old ones go as new ones come: the map holds at most the last window's estimates.
        rates.retain(|_, (at, _, _)| at.elapsed() <= DIRTY_RATE_REUSE);
        rates.insert(instance_id.to_owned(), (Instant::now(), host.to_owned(), rate));
    }

    /// The rate measured on `host` within [`DIRTY_RATE_REUSE`], taken: one migration uses it.
    fn take_fresh(&self, instance_id: &str, host: &str) -> Option<u64> {
        let mut rates = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (at, on, rate) = rates.remove(instance_id)?;
        (at.elapsed() <= DIRTY_RATE_REUSE && on == host).then_some(rate)
    }
}

/// How long EstimateInstanceMigration measures the guest's dirty rate.
pub const DIRTY_RATE_PERIOD: Duration = Duration::from_secs(1);

/// The bandwidth an estimate assumes with no limit and no migration from the host so far: the
/// low end of what QEMU reached here under TCG (110-380 MiB/s, CPU-bound, not the network's).
const DEFAULT_BANDWIDTH: u64 = 128 << 20;

/// The time before memory moves, without history: the target's preparation (its QEMU started
/// and ready to receive; about half a second on the lab's hosts under TCG, where QEMU's own
/// setup takes 2 ms).
const DEFAULT_SETUP_MS: u64 = 500;

/// The downtime's fixed part (an idle guest's pause on these hosts: 44-81 ms typical).
const DEFAULT_SWITCH_MS: u64 = 60;

/// Where an estimate's bandwidth came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BandwidthSource {
    /// The migration's own limit (`BandwidthMiBps`).
    Limit,
    /// How fast the host's completed migrations without a limit sent whole pages, fitted apart
    /// from their reading of zero pages ([`crate::migration_plan::fit_path`]).
    Fitted,
    /// The median of the highest bandwidth QEMU measured over a window of each of those
    /// migrations: their history does not tell reading from sending yet (a host that has
    /// moved idle guests alone, whose mixes of zero and written pages differ too little), or
    /// told a sending rate QEMU never reached; the reading of zero pages is then not counted
    /// apart.
    Peak,
    /// The median of QEMU's own average over those migrations, for a history recorded before
    /// migrations kept their highest window. Rough for a guest that writes memory: the lab's
    /// first such guest after idle ones alone was predicted 30–40 % off (docs/benchmarks.md).
    History,
    /// [`DEFAULT_BANDWIDTH`]: no limit and no history.
    Default,
}

impl BandwidthSource {
    pub fn name(self) -> &'static str {
        match self {
            Self::Limit => "limit",
            Self::Fitted => "fitted",
            Self::Peak => "peak",
            Self::History => "history",
            Self::Default => "default",
        }
    }
}

/// What EstimateInstanceMigration answers: the prediction and what it was made from.
#[derive(Debug, Clone)]
pub struct MigrationPlan {
    pub instance_id: String,
    pub source_host: String,
    pub target_host: String,
    /// The guest's QEMU's resident memory (the first pass, `inputs.resident_bytes`, until the
    /// host has history).
    pub resident_bytes: u64,
    pub inputs: crate::migration_plan::Inputs,
    pub bandwidth_source: BandwidthSource,
    pub estimate: crate::migration_plan::Estimate,
}

/// What a file takes on its file system: for an instance's root disk, about what a copy of
/// its own data sends (the image under it is not copied). 0 when it cannot be read.
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or(0, |m| m.blocks().saturating_mul(512))
}

/// What the first pass of a migration from this host is expected to send: what the host's
/// completed migrations of idle guests sent in whole pages (the median: the memory an idle
/// guest of the host has written, the first pass skipping pages never written; those of guests
/// with this one's memory when there are, since a larger guest's kernel writes more of it),
/// plus what this guest keeps rewriting (`working_set`), at most its memory. Until such a
/// migration has been seen, all of its QEMU's `resident` memory (QEMU's own, under TCG its code
/// cache, included: an overestimate).
///
/// Not a share of the resident memory, as the first increment had it: a guest started
/// seconds before is measured by a sample of its host taken before it was, and the lab's
/// first passes then came out at 8 to 216 MiB for guests that sent 70 to 160.
fn first_pass_bytes(history: &[MigrationRecord], resident: u64, working_set: u64, memory: u64) -> u64 {
    // Hosts that do not count whole pages: all that was processed.
    let sent = |m: &MigrationRecord| match m.progress.memory_normal_bytes {
        0 => m.progress.memory_processed_bytes,
        whole => whole,
    };
    // Idle: its prediction measured it rewriting less than a 64th of its memory. (Predicted
    // passes do not tell: with the path fitted, a dirtying guest is often predicted at one,
    // and its pages would count twice, in the median and as this guest's working set.)
    let idle = |m: &MigrationRecord| {
        m.prediction.as_ref().is_some_and(|p| {
            p.dirty_rate_bytes_per_sec.saturating_mul(DIRTY_RATE_PERIOD.as_secs().max(1))
                <= m.progress.memory_total_bytes.max(memory) / 64
        })
    };
    // QEMU's memory total counts the guest's RAM and its firmware's and video's (some MiB).
    let same_memory = |m: &MigrationRecord| {
        let total = m.progress.memory_total_bytes;
        total >= memory && total - memory < memory / 8
    };
    let of = |only_same: bool| median(history.iter().filter(|m| idle(m) && (!only_same || same_memory(m))).map(sent));
    match of(true).or_else(|| of(false)) {
        Some(sent) => sent.saturating_add(working_set).min(memory),
        None => resident,
    }
}

/// The most migrations the path fit reads, the latest.
const PATH_FIT_MIGRATIONS: usize = 32;

/// What a completed migration shows of its passes for the path fit: `None` for one that
/// does not tell (held to a bandwidth limit, sharing its time with a disk copy, ended in
/// post-copy, or from a host that does not count pages). Its passes took QEMU's time after its
/// setup (the bytes it sent over its average, `mbps`) less the pause.
fn pass_figures(m: &MigrationRecord) -> Option<PassFigures> {
    let p = &m.progress;
    let tells = m.options.bandwidth_mibps.is_none()
        && p.disk_processed_bytes == 0
        && !m.post_copy_requested
        && p.post_copy_requests == 0
        && p.memory_zero_pages > 0
        && p.memory_normal_bytes > 0
        && p.bandwidth_bytes_per_sec > 0;
    tells.then(|| PassFigures {
        zero_pages: p.memory_zero_pages,
        normal_bytes: p.memory_normal_bytes,
        passes_ms: qemu_ms(p).saturating_sub(p.downtime_ms),
    })
}

/// How far above QEMU's own highest window a fitted sending rate may be. The lab's fits that
/// held came within a tenth of it (423–470 against 409–434 MiB/s); the one fitted from idle
/// guests alone, whose figures hardly tell reading from sending, said 1,679 MiB/s.
const FIT_OVER_PEAK: f64 = 1.5;

/// Whether a fitted path is one QEMU could have carried: its sending rate within
/// [`FIT_OVER_PEAK`] of the highest window QEMU measured (no bound while none was seen).
fn plausible(fit: &PathFit, peak: Option<u64>) -> bool {
    peak.is_none_or(|peak| fit.bytes_per_sec <= FIT_OVER_PEAK * peak as f64)
}

/// QEMU's time after its own setup, to the end of the pause: what it sent over its average.
fn qemu_ms(p: &JobProgress) -> u64 {
    p.memory_processed_bytes.saturating_mul(1000) / p.bandwidth_bytes_per_sec.max(1)
}

/// What a completed migration shows of its path, as the estimate's `(bandwidth, setup_ms)`:
/// QEMU's own average over its transfer (bytes over the time it sent them: under TCG the
/// scan of memory the first pass skips costs about as much as what it sends), and what
/// libvirt's total held besides QEMU's own time (the target's preparation: its QEMU started
/// before memory moves, some hundreds of ms on the lab's hosts, where QEMU's own setup is
/// 2 ms). QEMU's time ends with the pause, which is not taken out again. Without QEMU's
/// average: what was sent over the time after setup.
fn path_figures(m: &MigrationRecord) -> (u64, u64) {
    let p = &m.progress;
    // A disk copy took part of the time, over the same path.
    let sent = p.memory_processed_bytes.saturating_add(p.disk_processed_bytes);
    let bandwidth = match p.bandwidth_bytes_per_sec {
        0 => sent.saturating_mul(1000) / p.time_elapsed_ms.saturating_sub(p.setup_time_ms).max(1),
        bps => bps,
    };
    let transfer_ms = sent.saturating_mul(1000) / bandwidth.max(1);
    let preparation = p.time_elapsed_ms.saturating_sub(transfer_ms);
    (bandwidth, preparation.max(p.setup_time_ms))
}

/// The middle value (the lower of the two middle ones), `None` for none.
fn median(values: impl Iterator<Item = u64>) -> Option<u64> {
    let mut values: Vec<u64> = values.collect();
    values.sort_unstable();
    values.get(values.len().saturating_sub(1) / 2).copied()
}

/// The checks a migration request passes before any record is read.
fn check_request(b: &Backend, target: Option<&str>, options: &MigrationOptions) -> Result<()> {
    if let Some(target) = target {
        if b.hosts().get(target).is_none() {
            return Err(Error::ResourceNotFound { kind: ResourceKind::Host, id: target.to_owned() });
        }
    }
    if options.timeout_secs == Some(0) {
        return Err(invalid("TimeoutSeconds", "TimeoutSeconds must be at least 1"));
    }
    if options.max_downtime_ms == Some(0) {
        return Err(invalid("MaxDowntimeMillis", "MaxDowntimeMillis must be at least 1"));
    }
    Ok(())
}

fn find_instance(tx: &storage::WriteTx, instance_id: &str) -> Result<(String, InstanceRecord)> {
    Backend::find_instance(tx, instance_id)?
        .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Instance, id: instance_id.to_owned() })
}

impl Backend {
    /// MigrateInstance (admin): any account's running instance, to `target` or to a host the
    /// scheduler picks among the others of its zone.
    pub fn migrate_instance(
        &self,
        instance_id: &str,
        target: Option<&str>,
        options: MigrationOptions,
    ) -> Result<MigrationRecord> {
        check_request(self, target, &options)?;
        let base = self.host_snapshots();
        let record = self.store().write(|tx| {
            let (key, mut instance) = find_instance(tx, instance_id)?;
            let target_host = self.choose_target(tx, &instance, target, base)?;
            let target_dir = self.copy_dir(&instance, &target_host);
            let record = MigrationRecord {
                id: ids::resource_id("mig"),
                account: instance.account.clone(),
                instance_id: instance.id.clone(),
                source_host: instance.host_id.clone(),
                target_host: target_host.clone(),
                status: MigrationStatus::Queued,
                options: options.clone(),
                progress: JobProgress::default(),
                cancel_requested: false,
                post_copy_requested: false,
                ping_traced: false,
                ping: None,
                error: None,
                created_ms: now_ms(),
                finished_ms: None,
                prediction: None,
                downtime_limit_ms: 0,
                events: Vec::new(),
                target_dir: target_dir.map(|dir| dir.to_string_lossy().into_owned()),
                post_copy_pause_ms: None,
                peak_bandwidth_bytes_per_sec: 0,
            };
            instance.migration = Some(record.id.clone());
            instance.migration_target = Some(target_host);
            tx.insert(&INSTANCES, &key, &instance)?;
            tx.insert(&MIGRATIONS, &record.id, &record)?;
            Ok::<_, Error>(record)
        })?;
        self.kick(&format!("{}/{}", record.account, record.instance_id));
        Ok(record)
    }

    /// Where a migration of `instance` would go: `target` if it suits, else the scheduler's
    /// pick among the other hosts of its zone; the instance must be running and not migrating.
    fn choose_target(
        &self,
        tx: &impl storage::Reads,
        instance: &InstanceRecord,
        target: Option<&str>,
        mut snapshots: Vec<scheduler::HostSnapshot>,
    ) -> Result<String> {
        if instance.state != InstanceState::Running || instance.migration.is_some() {
            let state = if instance.migration.is_some() { "migrating" } else { instance.state.name() };
            return Err(Error::IncorrectInstanceState { id: instance.id.clone(), state, verb: "migrated" });
        }
        if target == Some(instance.host_id.as_str()) {
            return Err(invalid("TargetHostId", "The instance already runs on that host"));
        }
        let source = self.hosts().get(&instance.host_id).ok_or_else(|| Error::HostGone(instance.host_id.clone()))?;
        crate::instances::charge_usage(tx, &mut snapshots)?;
        // Anywhere but where it is: the chosen target, or the scheduler's pick in its zone,
        // among hosts the domain's definition suits (same accelerator).
        let suits = |id: &str| self.hosts().get(id).is_some_and(|h| h.accelerator == source.accelerator);
        // Dedicated hosts: another account's never, the account's own for `host` tenancy only.
        let allocations = crate::dedicated::allocations_in(tx)?;
        let want = crate::dedicated::HostWant::of(instance);
        let allowed = |id: &str| crate::dedicated::may_place(id, allocations.get(id), &want);
        let copies = |id: &str| self.copy_dir(instance, id).is_some();
        let need_disk_mib = crate::instances::demand_of(instance).disk_mib;
        let pool: Vec<_> = snapshots
            .iter()
            .filter(|h| h.id != instance.host_id && target.is_none_or(|t| h.id == t) && suits(&h.id))
            .filter(|h| allowed(&h.id))
            .filter(|h| !copies(&h.id) || h.disk_mib.is_none_or(|room| h.used_disk_mib + need_disk_mib <= room))
            .cloned()
            .collect();
        // A shared disk stays where it is: the target needs room for vCPUs and memory only (and
        // a target that copies the disk, room for it: checked above).
        let demand = Demand { disk_mib: 0, ..crate::instances::demand_of(instance) };
        let placed = scheduler::place(&pool, &demand, 1, self.policy());
        placed
            .first()
            .map(|&i| pool[i].id.clone())
            .ok_or_else(|| Error::InsufficientCapacity(instance.instance_type.clone()))
    }

    /// EstimateInstanceMigration (admin): what migrating the instance with `options` would
    /// cost, predicted ([`crate::migration_plan`]) from its dirty rate measured on the source
    /// now (blocks for [`DIRTY_RATE_PERIOD`]), its resident memory, and the bandwidth and
    /// fixed costs of the migrations from the same host so far. Moves nothing.
    pub fn estimate_migration(
        &self,
        instance_id: &str,
        target: Option<&str>,
        options: &MigrationOptions,
    ) -> Result<MigrationPlan> {
        check_request(self, target, options)?;
        let base = self.host_snapshots();
        let (instance, target_host) = self.store().read(|tx| {
            let (_, instance) = Self::find_instance(tx, instance_id)?
                .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Instance, id: instance_id.to_owned() })?;
            let target_host = self.choose_target(tx, &instance, target, base)?;
            Ok::<_, Error>((instance, target_host))
        })?;
        let copies_disk = self.copy_dir(&instance, &target_host).is_some();
        let mut plan = self.predict(&instance, options, copies_disk, None)?;
        self.dirty_rates.remember(&instance.id, &instance.host_id, plan.inputs.dirty_rate_bytes_per_sec);
        plan.target_host = target_host;
        Ok(plan)
    }

    /// The prediction for migrating `instance` with `options` from where it runs (the target
    /// left empty), its root disk copied too when `copies_disk`: measures the guest (blocks
    /// for [`DIRTY_RATE_PERIOD`]) unless given its `dirty_rate`, and reads the history of the
    /// migrations from its host.
    fn predict(
        &self,
        instance: &InstanceRecord,
        options: &MigrationOptions,
        copies_disk: bool,
        dirty_rate: Option<u64>,
    ) -> Result<MigrationPlan> {
        let source = self.hosts().get(&instance.host_id).ok_or_else(|| Error::HostGone(instance.host_id.clone()))?;
        let measured = dirty_rate.map_or_else(|| source.driver.dirty_rate(&instance.id, DIRTY_RATE_PERIOD), Ok);
        let dirty_rate = match measured {
            Ok(rate) => rate,
            // A host that cannot measure (libvirt's test driver, a QEMU before 5.2) cannot
            // be estimated for; the migration itself still works.
            Err(DriverError::Failed(why)) => {
                return Err(Error::UnsupportedOperation(format!(
                    "Cannot estimate: host {} could not measure how fast {} dirties its memory ({why})",
                    instance.host_id, instance.id
                )))
            }
            Err(other) => return Err(Error::Driver(other)),
        };
        // QEMU's resident memory, from the monitoring's last sample of the host (a fresh bulk
        // call reads every domain there); unknown (0) when the host does not tell.
        let rss = |s: &crate::hypervisor::HostSample| {
            s.domains.iter().find(|d| d.name == instance.id).map(|d| d.counters.rss_kib)
        };
        let collected = self.last_samples().into_iter().find(|(host, _, _)| *host == instance.host_id);
        let resident = collected
            .and_then(|(_, _, sample)| rss(&sample))
            .or_else(|| source.driver.sample().ok().and_then(|s| rss(&s)))
            .map_or(0, |kib| kib.saturating_mul(1024));
        let history: Vec<MigrationRecord> = self
            .migrations()?
            .into_iter()
            .filter(|m| m.status == MigrationStatus::Completed && m.source_host == instance.host_id)
            .filter(|m| m.progress.memory_processed_bytes > 0 && m.progress.time_elapsed_ms > m.progress.setup_time_ms)
            .collect();
        // What the path reached when nothing held it back: a migration with a limit of its own
        // says what it was allowed, not what the path does.
        let path: Vec<(u64, u64)> =
            history.iter().filter(|m| m.options.bandwidth_mibps.is_none()).map(path_figures).collect();
        let average = median(path.iter().map(|(bandwidth, _)| *bandwidth));
        // The migrations whose figures tell a pass, newest first, each with the highest window
        // QEMU measured in it.
        let mut told: Vec<(i64, PassFigures, u64)> = history
            .iter()
            .filter_map(|m| Some((m.finished_ms.unwrap_or(0), pass_figures(m)?, m.peak_bandwidth_bytes_per_sec)))
            .collect();
        told.sort_by_key(|(finished, ..)| std::cmp::Reverse(*finished));
        // QEMU's own measure of the path where it sent whole pages (the median of those
        // windows; 0: none seen).
        let peak = median(told.iter().map(|(.., peak)| *peak).filter(|peak| *peak > 0));
        // The path as two rates when the history tells them apart (reading what is not sent,
        // sending the rest), else one average of both. The latest ones: the pairs grow with
        // the square of the count.
        let latest: Vec<PassFigures> = told.into_iter().take(PATH_FIT_MIGRATIONS).map(|(_, f, _)| f).collect();
        let fit = fit_path(&latest);
        tracing::debug!(instance = %instance.id, figures = ?latest, ?fit, "path fit");
        let fit = fit.filter(|fit| plausible(fit, peak));
        let (bandwidth, bandwidth_source) = match (options.bandwidth_mibps, fit, peak, average) {
            (Some(limit), ..) => (limit.saturating_mul(1 << 20), BandwidthSource::Limit),
            (None, Some(fit), ..) => (fit.bytes_per_sec as u64, BandwidthSource::Fitted),
            (None, None, Some(peak), _) => (peak, BandwidthSource::Peak),
            (None, None, None, Some(average)) => (average, BandwidthSource::History),
            (None, None, None, None) => (DEFAULT_BANDWIDTH, BandwidthSource::Default),
        };
        let memory = instance.memory_mib.saturating_mul(1 << 20);
        // What the guest dirtied over the measured period is what it keeps rewriting, as far as
        // one measurement tells (a guest that keeps dirtying new memory, a download filling its
        // page cache, dirties more in a longer pass).
        let working_set = dirty_rate.saturating_mul(DIRTY_RATE_PERIOD.as_secs().max(1));
        let first_pass = first_pass_bytes(&history, resident, working_set, memory);
        // Under a limit of its own the migration waits on the limit while it reads.
        let scan_ms = match (options.bandwidth_mibps, fit) {
            (None, Some(fit)) => {
                let zero_pages = memory.saturating_sub(first_pass) / PAGE_BYTES;
                (zero_pages as f64 * fit.ns_per_zero_page / 1e6) as u64
            }
            _ => 0,
        };
        let inputs = crate::migration_plan::Inputs {
            memory_bytes: memory,
            resident_bytes: first_pass,
            dirty_rate_bytes_per_sec: dirty_rate,
            working_set_bytes: working_set,
            bandwidth_bytes_per_sec: bandwidth,
            disk_bytes: if copies_disk { allocated(&crate::instances::root_disk_path(instance)) } else { 0 },
            scan_ms,
            // The disk copy (NBD, beside QEMU's memory stream) at what the host's migrations
            // averaged, as before the path was fitted, or held to the migration's own limit
            // (libvirt applies it to the copy too): 0, the bandwidth.
            disk_bandwidth_bytes_per_sec: match options.bandwidth_mibps {
                Some(_) => 0,
                None => average.unwrap_or(0),
            },
            setup_ms: median(path.iter().map(|(_, setup)| *setup)).unwrap_or(DEFAULT_SETUP_MS),
            switch_ms: DEFAULT_SWITCH_MS,
            max_downtime_ms: options.max_downtime_ms,
            auto_converge: options.auto_converge,
            allow_post_copy: options.allow_post_copy,
            timeout_ms: options.timeout_secs.map(|s| s.saturating_mul(1000)),
        };
        let estimate = crate::migration_plan::estimate(&inputs);
        Ok(MigrationPlan {
            instance_id: instance.id.clone(),
            source_host: instance.host_id.clone(),
            target_host: String::new(),
            resident_bytes: resident,
            inputs,
            bandwidth_source,
            estimate,
        })
    }

    /// Records what a migration is predicted to cost, before it starts, from the dirty rate an
    /// estimate measured lately ([`DIRTY_RATE_REUSE`]) or measured now; a guest its host
    /// cannot measure migrates unpredicted.
    fn record_prediction(&self, record: &MigrationRecord, instance: &InstanceRecord) {
        let measured = self.dirty_rates.take_fresh(&instance.id, &instance.host_id);
        let plan = match self.predict(instance, &record.options, record.target_dir.is_some(), measured) {
            Ok(plan) => plan,
            Err(error) => {
                tracing::debug!(migration = %record.id, %error, "no prediction for this migration");
                return;
            }
        };
        let prediction = storage::MigrationPrediction {
            ending: plan.estimate.ending.name().to_owned(),
            total_ms: plan.estimate.total_ms,
            downtime_ms: plan.estimate.downtime_ms,
            iterations: plan.estimate.iterations(),
            dirty_rate_bytes_per_sec: plan.inputs.dirty_rate_bytes_per_sec,
            resident_bytes: plan.resident_bytes,
            first_pass_bytes: plan.inputs.resident_bytes,
            bandwidth_bytes_per_sec: plan.inputs.bandwidth_bytes_per_sec,
            first_pass_read_ms: plan.inputs.scan_ms,
        };
        if let Err(error) = self.update_migration(&record.id, |m| m.prediction = Some(prediction)) {
            tracing::warn!(migration = %record.id, %error, "could not record the prediction");
        }
    }

    /// Forgets migrations that ended longer than `retention` ago.
    pub(crate) fn purge_migrations(&self, retention: Duration) -> Result<usize> {
        let cutoff = now_ms() - retention.as_millis() as i64;
        let due: Vec<String> = self
            .migrations()?
            .into_iter()
            .filter(|m| m.finished_ms.is_some_and(|t| t <= cutoff))
            .map(|m| m.id)
            .collect();
        if due.is_empty() {
            return Ok(0);
        }
        self.store().write(|tx| {
            for id in &due {
                tx.remove(&MIGRATIONS, id)?;
            }
            Ok::<_, Error>(due.len())
        })
    }

    /// One migration, by id.
    pub fn migration(&self, id: &str) -> Result<Option<MigrationRecord>> {
        Ok(self.store().read(|tx| tx.get(&MIGRATIONS, id))?)
    }

    /// Every migration, by id.
    pub fn migrations(&self) -> Result<Vec<MigrationRecord>> {
        Ok(self.store().read(|tx| tx.scan(&MIGRATIONS, ""))?.into_iter().map(|(_, m)| m).collect())
    }

    /// CancelInstanceMigration: a queued migration ends at once; one in pre-copy is aborted by
    /// its monitor (the guest stays on the source); one already switched over (post-copy)
    /// runs to its end. A finished one cannot be cancelled.
    pub fn cancel_migration(&self, id: &str) -> Result<MigrationRecord> {
        self.ask_migration(id, |record| {
            record.cancel_requested = true;
            Ok(())
        })
    }

    /// Records a request to a running migration's monitor (`ask` checks and sets it), in one
    /// transaction; a finished migration takes none.
    fn ask_migration(&self, id: &str, ask: impl FnOnce(&mut MigrationRecord) -> Result<()>) -> Result<MigrationRecord> {
        self.store().write(|tx| {
            let mut record = tx
                .get(&MIGRATIONS, id)?
                .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Migration, id: id.to_owned() })?;
            if record.status.is_final() {
                return Err(Error::MigrationFinished { id: id.to_owned(), status: record.status.name() });
            }
            ask(&mut record)?;
            tx.insert(&MIGRATIONS, id, &record)?;
            Ok(record)
        })
    }

    /// StartInstanceMigrationPostCopy: the guest moves to the target at the monitor's next
    /// poll and its memory follows on demand. Only for a migration started with post-copy
    /// allowed, still copying; there is no way back once switched.
    pub fn start_migration_post_copy(&self, id: &str) -> Result<MigrationRecord> {
        self.ask_migration(id, |record| {
            if !record.options.allow_post_copy {
                return Err(Error::IncorrectState(format!(
                    "The migration '{id}' was started without AllowPostCopy; cancel it and migrate again with AllowPostCopy=true."
                )));
            }
            if record.cancel_requested {
                return Err(Error::IncorrectState(format!("The migration '{id}' is being cancelled.")));
            }
            record.post_copy_requested = true;
            Ok(())
        })
    }

    /// Runs (or, after a restart, settles) the instance's migration. Blocks for its duration.
    pub(crate) fn run_migration(&self, key: &str, instance: &InstanceRecord) -> Result<()> {
        let Some(id) = &instance.migration else { return Ok(()) };
        let Some(record) = self.store().read(|tx| tx.get(&MIGRATIONS, id))? else {
            return self.end_migration(
                key,
                id,
                MigrationStatus::Failed,
                None,
                Some("the migration record is gone".into()),
            );
        };
        // A migration that never started ends without asking any host.
        if record.status == MigrationStatus::Queued && record.cancel_requested {
            return self.end_migration(key, id, MigrationStatus::Cancelled, None, None);
        }
        let source =
            self.hosts().get(&record.source_host).ok_or_else(|| Error::HostGone(record.source_host.clone()))?;
        let target =
            self.hosts().get(&record.target_host).ok_or_else(|| Error::HostGone(record.target_host.clone()))?;
        if record.status != MigrationStatus::Queued {
            return self.settle(key, &record, Outcome::Interrupted);
        }
        // The guest's OVN ports are bound on both hosts, the target's taking over when the guest
        // announces itself there.
        self.sync_ovn_now();
        self.set_status(id, MigrationStatus::Preparing)?;
        self.record_prediction(&record, instance);
        let keys: Vec<crate::hypervisor::DiskKey> = self
            .instance_volumes(&instance.account, &instance.id)?
            .iter()
            .filter_map(|v| v.encryption.as_ref().map(crate::hypervisor::DiskKey::of))
            .collect();
        let storage = match &record.target_dir {
            Some(to) => match self.prepare_copy(instance, Path::new(to)) {
                Ok(copy) => Some(copy),
                Err(error) => {
                    let why = format!("could not make the disk's place on the target: {error}");
                    return self.end_migration(key, id, MigrationStatus::Failed, None, Some(why));
                }
            },
            None => None,
        };
        let pinger = self.start_ping_trace(id, instance);
        // The migration starts allowing part of its downtime budget; the monitor raises it.
        let ladder = Ladder::new(Budget::of(&record.options));
        let options = MigrationOptions { max_downtime_ms: Some(ladder.downtime_ms), ..record.options.clone() };
        let first = event(since(record.created_ms), MigrationEventKind::Started, None, ladder.downtime_ms, None);
        self.update_migration(id, |m| {
            m.downtime_limit_ms = ladder.downtime_ms;
            push_events(m, vec![first]);
        })?;
        let done = AtomicBool::new(false);
        let started = Instant::now();
        let (result, completed, stopped_by, returned) = std::thread::scope(|scope| {
            // The monitor writes progress under the same fence as the migration's work.
            let fence = storage::lease::current_fence();
            let monitor = scope
                .spawn(|| storage::lease::with_fence(fence, || self.monitor(scope, &record, &done, started, ladder)));
            // The target opens the guest's encrypted disks as it arrives: it holds their keys
            // for the length of the call.
            let result = target.lending_keys(&keys, || {
                source.driver.migrate(&instance.id, &target.config.uri, &options, storage.as_ref())
            });
            done.store(true, Ordering::Release);
            let returned = Instant::now();
            // Recorded before the monitor is waited for: its last progress query may sit in a
            // busy QEMU for a second, and the guest has moved already.
            let completed = result.is_ok().then(|| {
                let progress = target.driver.completed_job(&instance.id).ok().flatten();
                self.end_migration(key, id, MigrationStatus::Completed, progress, None)
            });
            (result, completed, monitor.join().unwrap_or(None), returned)
        });
        if let Some(pinger) = pinger {
            self.finish_ping_trace(id, pinger, returned);
        }
        match result {
            Ok(()) => completed.unwrap_or(Ok(())),
            // Where the guest is decides, not what the call said: a failure after switch-over
            // (post-copy) leaves it on the target.
            Err(error) => {
                let outcome = match stopped_by {
                    Some(Stop::Cancelled) => Outcome::Cancelled,
                    Some(stopped) => Outcome::Failed(stopped.reason(&record.options)),
                    None => Outcome::Failed(error.to_string()),
                };
                self.settle(key, &record, outcome)
            }
        }
    }

    /// The instance's folder on host `host_id` when the host does not share the one it has now
    /// (either keeps its instances on storage of its own): a migration there copies its disk.
    fn copy_dir(&self, instance: &InstanceRecord, host_id: &str) -> Option<std::path::PathBuf> {
        Some(self.instance_dir_on(host_id, &instance.id)).filter(|dir| dir != Path::new(&instance.dir))
    }

    /// Makes the instance's folder on a target that does not share it: an empty place for its
    /// root disk, which the migration fills, and its console log so far, which the target's
    /// goes on from (what the guest prints meanwhile, before the switch-over, is not kept).
    fn prepare_copy(&self, instance: &InstanceRecord, to: &Path) -> Result<StorageCopy> {
        std::fs::create_dir_all(to).map_err(|e| Error::Io(format!("creating {}: {e}", to.display())))?;
        let copy =
            StorageCopy { disks: vec![ROOT_TARGET.into()], from_dir: instance.dir.clone().into(), to_dir: to.into() };
        let volumes = self.instance_volumes(&instance.account, &instance.id)?;
        let encryption = volumes.iter().find(|v| v.root).and_then(|v| v.encryption.as_ref());
        let root = crate::instances::root_disk_path(instance);
        crate::disk::create_copy_target(&root, crate::disk::Disk::of(&copy.moved(&root), encryption))?;
        let console = crate::instances::console_path(instance);
        if console.exists() {
            std::fs::copy(&console, copy.moved(&console))
                .map_err(|e| Error::Io(format!("copying {}: {e}", console.display())))?;
        }
        Ok(copy)
    }

    /// Starts pinging the guest from its VPC's end on this machine, if it has one (a VPC on
    /// OVN with the metadata plane running here); a trace that cannot start leaves the
    /// migration untraced, never failed.
    fn start_ping_trace(&self, id: &str, instance: &InstanceRecord) -> Option<crate::ping_trace::Pinger> {
        self.ovn.as_ref()?;
        let target: std::net::Ipv4Addr = instance.private_ip.parse().ok()?;
        let namespace = crate::vpc_network::metadata_namespace(&instance.vpc_id);
        if !std::path::Path::new("/run/netns").join(&namespace).exists() {
            return None;
        }
        match crate::ping_trace::Pinger::start(&namespace, target, crate::ping_trace::INTERVAL) {
            Ok(pinger) => {
                let _ = self.update_migration(id, |m| m.ping_traced = true);
                Some(pinger)
            }
            Err(error) => {
                tracing::warn!(migration = %id, %error, "no ping trace for this migration");
                None
            }
        }
    }

    /// Ends a migration's ping trace a moment after the migration call returned (so that it
    /// shows the guest answering again), and records it with its figures.
    fn finish_ping_trace(&self, id: &str, pinger: crate::ping_trace::Pinger, returned: Instant) {
        std::thread::sleep(TRACE_TAIL.saturating_sub(returned.elapsed()));
        let started = pinger.started;
        let probes = pinger.stop();
        let summary = crate::ping_trace::summarize(&probes);
        let trace = storage::MigrationTraceRecord {
            interval_ms: crate::ping_trace::INTERVAL.as_millis() as u32,
            probes: probes.iter().map(|p| (p.sent_us, p.rtt_us)).collect(),
            switch_over_us: returned.checked_duration_since(started).map(|d| d.as_micros() as u64),
        };
        let saved = self.store().write(|tx| {
            tx.insert(&MIGRATION_TRACES, id, &trace)?;
            if let Some(mut record) = tx.get(&MIGRATIONS, id)? {
                record.ping = Some(summary);
                tx.insert(&MIGRATIONS, id, &record)?;
            }
            Ok::<_, Error>(())
        });
        if let Err(error) = saved {
            tracing::warn!(migration = %id, %error, "could not record the ping trace");
        }
    }

    /// A migration's ping trace, once it ended.
    pub fn migration_trace(&self, id: &str) -> Result<Option<storage::MigrationTraceRecord>> {
        Ok(self.store().read(|tx| tx.get(&MIGRATION_TRACES, id))?)
    }

    /// Ends a migration that did not report success by where the guest runs: running on the
    /// source, it stayed (`outcome`), whatever the target says; gone from the source and
    /// running on the target, it moved (completed); on neither, it was lost (failed, recorded
    /// on the source). After a switch to post-copy the source cannot take the guest back: a
    /// guest not running whole on the target is lost ([`Self::fail_after_post_copy`]).
    /// Anything less certain (a paused guest, a host that does not answer when its answer
    /// matters, a job still running past the wait, a guest on both hosts) leaves the
    /// migration open for the next sweep.
    fn settle(&self, key: &str, record: &MigrationRecord, outcome: Outcome) -> Result<()> {
        let source =
            self.hosts().get(&record.source_host).ok_or_else(|| Error::HostGone(record.source_host.clone()))?;
        let target =
            self.hosts().get(&record.target_host).ok_or_else(|| Error::HostGone(record.target_host.clone()))?;
        let name = &record.instance_id;
        // Whether the guest had switched to the target (the monitor records it as it does).
        let switched = self.migration(&record.id)?.is_some_and(|m| m.status == MigrationStatus::PostCopy);
        // Wait out a job libvirt still runs (after a restart of Stratus, the source drives on);
        // a broken post-copy keeps its job for a recovery Stratus does not attempt.
        let deadline = Instant::now() + SETTLE_WAIT;
        loop {
            if switched
                && (matches!(outcome, Outcome::Failed(_)) || source.driver.post_copy_failed(name).unwrap_or(false))
            {
                break;
            }
            match source.driver.job_progress(name) {
                Ok(Some(_)) if Instant::now() < deadline => std::thread::sleep(POLL),
                Ok(Some(_)) => return Err(Error::Io(format!("migration {} still has a job on the source", record.id))),
                Err(error @ DriverError::Unreachable(_)) => return Err(Error::Driver(error)),
                // No job, no domain, or a domain that has none to report.
                _ => break,
            }
        }
        // A source whose guest runs (not paused) with no job is the live copy: a switch-over
        // stops it there. So it settles the case alone, even with the target unreachable.
        let source_state = source.driver.state(name).map_err(Error::Driver)?;
        let target_state = target.driver.state(name);
        let target_runs = matches!(target_state, Ok(Some(PowerState::Running | PowerState::Paused)));
        // After post-copy the source holds only part of the guest's memory: it cannot take
        // the guest back. Running on the target (and not stuck there), it moved; gone, off, or
        // marked as a broken post-copy, it is lost; anything else waits for the next sweep.
        if switched && source_state != Some(PowerState::Running) {
            let broken = match target_state {
                Ok(Some(_)) => target.driver.post_copy_failed(name).map_err(Error::Driver)?,
                _ => false,
            };
            let lost = |outcome: Outcome| {
                let why = match outcome {
                    Outcome::Failed(message) => message,
                    Outcome::Cancelled => "cancelled".to_owned(),
                    Outcome::Interrupted => "interrupted by a restart of Stratus".to_owned(),
                };
                self.fail_after_post_copy(key, record, &why)
            };
            return match target_state {
                Ok(Some(PowerState::Running)) if !broken => {
                    let progress = target.driver.completed_job(name).ok().flatten();
                    self.end_migration(key, &record.id, MigrationStatus::Completed, progress, None)
                }
                Ok(None | Some(PowerState::ShutOff | PowerState::Crashed)) => lost(outcome),
                Ok(Some(_)) if broken => lost(outcome),
                Ok(Some(state)) => Err(Error::Io(format!(
                    "migration {}: the guest is {state:?} on the target after post-copy; not settled",
                    record.id
                ))),
                Err(error) => Err(Error::Driver(error)),
            };
        }
        match source_state {
            Some(PowerState::Running) if target_runs => Err(Error::Io(format!(
                "migration {}: the guest runs on both hosts; left for an operator to resolve",
                record.id
            ))),
            Some(PowerState::Running) => match outcome {
                Outcome::Cancelled => self.end_migration(key, &record.id, MigrationStatus::Cancelled, None, None),
                Outcome::Failed(message) => {
                    self.end_migration(key, &record.id, MigrationStatus::Failed, None, Some(message))
                }
                Outcome::Interrupted => {
                    let message = "interrupted by a restart of Stratus; the guest runs on the source".to_owned();
                    self.end_migration(key, &record.id, MigrationStatus::Failed, None, Some(message))
                }
            },
            // Gone from (or off on) the source: it moved if the target runs it…
            None | Some(PowerState::ShutOff | PowerState::Crashed) => match target_state {
                Ok(Some(PowerState::Running)) => {
                    let progress = target.driver.completed_job(name).ok().flatten();
                    self.end_migration(key, &record.id, MigrationStatus::Completed, progress, None)
                }
                // …and was lost if neither does: recorded on the source, where the sweep finds
                // it off (stopped); its disk is whole on shared storage.
                Ok(None | Some(PowerState::ShutOff | PowerState::Crashed)) => {
                    let message = match outcome {
                        Outcome::Failed(message) => format!("{message}; the guest runs on neither host"),
                        _ => "the guest runs on neither host".to_owned(),
                    };
                    self.end_migration(key, &record.id, MigrationStatus::Failed, None, Some(message))
                }
                Ok(Some(state)) => Err(Error::Io(format!(
                    "migration {}: the guest is {state:?} on the target; not settled",
                    record.id
                ))),
                Err(error) => Err(Error::Driver(error)),
            },
            Some(state) => {
                Err(Error::Io(format!("migration {}: the guest is {state:?} on the source; not settled", record.id)))
            }
        }
    }

    /// A migration that broke after its switch to post-copy: the guest's memory is split
    /// between the hosts and it can run on neither, so both halves are destroyed, the
    /// migration fails, and the instance stops with a reason that says so (it can be started
    /// again: its disk is as a power loss would have left it). Nothing pretends it still runs.
    fn fail_after_post_copy(&self, key: &str, record: &MigrationRecord, why: &str) -> Result<()> {
        let name = &record.instance_id;
        for host in [&record.target_host, &record.source_host] {
            let driver = &self.hosts().get(host).ok_or_else(|| Error::HostGone(host.clone()))?.driver;
            match driver.destroy(name) {
                Ok(()) | Err(DriverError::NoDomain(_)) => {}
                Err(error) => return Err(Error::Driver(error)),
            }
        }
        // The target's definition is not the instance's (it stays on the source).
        if let Some(target) = self.hosts().get(&record.target_host) {
            target.driver.undefine(name).map_err(Error::Driver)?;
        }
        let message = format!(
            "post-copy failed ({why}): the guest had switched to the target and its memory was split between the \
             hosts, so it could run on neither; the instance was stopped and can be started again"
        );
        self.end_migration_with(key, &record.id, MigrationStatus::Failed, None, Some(message), |instance| {
            instance.state = InstanceState::Stopping;
            instance.force_stop = true;
            instance.state_transition_reason =
                "Server error (live migration failed after its switch to post-copy)".into();
            instance.state_reason = Some(storage::StateReason {
                code: "Server.InternalError".into(),
                message: "Server.InternalError: The instance's live migration failed after its switch to post-copy"
                    .into(),
            });
        })?;
        self.kick(key);
        Ok(())
    }

    /// Polls the source's job into redb until the migration returns, recording its timeline,
    /// and escalates as [`crate::escalation`] says: more downtime, post-copy, or an abort
    /// (also on cancellation). Answers what stopped it, if anything.
    ///
    /// The switch to post-copy's pause is watched from a thread of the migration's `scope`
    /// ([`Self::watch_pause`]), beside the polls, which go on meanwhile.
    fn monitor<'s>(
        &'s self,
        scope: &'s std::thread::Scope<'s, '_>,
        record: &'s MigrationRecord,
        done: &'s AtomicBool,
        started: Instant,
        ladder: Ladder,
    ) -> Option<Stop> {
        let source = self.hosts().get(&record.source_host)?;
        let name = &record.instance_id;
        let mut ladder = ladder;
        // The allowance the host holds: the ladder's, once a raise went through.
        let mut applied = ladder.downtime_ms;
        let mut stop = None;
        let mut timeline = Timeline::default();
        while !done.load(Ordering::Acquire) {
            std::thread::sleep(POLL);
            if done.load(Ordering::Acquire) {
                break;
            }
            let progress = match source.driver.job_progress(name) {
                Ok(progress) => progress,
                Err(error) => {
                    tracing::debug!(migration = %record.id, %error, "no progress reading");
                    None
                }
            };
            if let Some(p) = &progress {
                tracing::debug!(
                    migration = %record.id,
                    elapsed_ms = p.time_elapsed_ms,
                    iteration = p.iterations,
                    zero_pages = p.memory_zero_pages,
                    normal_bytes = p.memory_normal_bytes,
                    processed_bytes = p.memory_processed_bytes,
                    remaining_bytes = p.memory_remaining_bytes,
                    bandwidth = p.bandwidth_bytes_per_sec,
                    dirty_rate = p.dirty_rate_bytes_per_sec,
                    "progress reading"
                );
            }
            let stored = self.store().read(|tx| tx.get(&MIGRATIONS, &record.id)).ok().flatten();
            let cancel = stored.as_ref().is_some_and(|m| m.cancel_requested);
            let post_copy_asked = stored.as_ref().is_some_and(|m| m.post_copy_requested);
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let at_ms = since(record.created_ms);
            let mut events = Vec::new();
            // What the reading shows first (a new pass, the throttle), then what was done.
            if let Some(progress) = &progress {
                timeline.observe(at_ms, progress, &ladder, applied, &mut events);
            }
            // Post-copy has no way back: once switched, the migration runs to its end.
            if !ladder.post_copy() && stop.is_none() {
                let step = match &progress {
                    _ if cancel => Step::Wait,
                    Some(p) => ladder.step(&Sample {
                        elapsed_ms,
                        iteration: p.iterations,
                        memory_total_bytes: p.memory_total_bytes,
                        remaining_bytes: p.memory_remaining_bytes,
                        dirty_rate_bytes_per_sec: p.dirty_rate_bytes_per_sec,
                        bandwidth_bytes_per_sec: p.bandwidth_bytes_per_sec,
                        transferred_bytes: p.memory_processed_bytes,
                        throttle_percent: p.throttle_percent,
                        expected_downtime_ms: p.downtime_ms,
                        post_copy_asked,
                    }),
                    // No figures (a source that does not answer): the timeout still holds.
                    None if timed_out(&record.options, started.elapsed()) => Step::Abort(Abort::TimedOut),
                    None => Step::Wait,
                };
                let stopped = match step {
                    _ if cancel => Some(Stop::Cancelled),
                    Step::Wait | Step::RaiseDowntime(_) => None,
                    Step::PostCopy => {
                        // Recorded before the call: a Stratus that stops right after the
                        // switch must know that the source may no longer hold the guest.
                        let _ = self.update_migration(&record.id, |m| {
                            if !m.status.is_final() {
                                m.status = MigrationStatus::PostCopy;
                            }
                        });
                        let asked = Instant::now();
                        match source.driver.start_post_copy(name) {
                            Ok(()) => {
                                self.watch_pause(scope, record, done, asked);
                                ladder.switched();
                                let kind = MigrationEventKind::PostCopy;
                                events.push(event(at_ms, kind, progress.as_ref(), applied, None));
                                None
                            }
                            // Not switched (or not known to be): abort; libvirt refuses to abort
                            // a migration that did switch, which then runs to its end.
                            Err(error) => Some(Stop::OverBudget(format!("could not switch to post-copy: {error}"))),
                        }
                    }
                    Step::Abort(Abort::TimedOut) => Some(Stop::TimedOut),
                    Step::Abort(Abort::OverBudget(why)) => Some(Stop::OverBudget(why)),
                };
                if let Some(stopped) = stopped {
                    let why = stopped.reason(&record.options);
                    events.push(event(at_ms, MigrationEventKind::Aborted, progress.as_ref(), applied, Some(&why)));
                    stop = Some(stopped);
                }
            }
            // A raise is tried until the host takes it; the timeline shows what it holds.
            if stop.is_none() && !ladder.post_copy() && applied != ladder.downtime_ms {
                match source.driver.set_migration_downtime(name, ladder.downtime_ms) {
                    Ok(()) => {
                        applied = ladder.downtime_ms;
                        events.push(event(at_ms, MigrationEventKind::DowntimeRaised, progress.as_ref(), applied, None));
                    }
                    Err(error) => tracing::warn!(migration = %record.id, %error, "could not raise the downtime"),
                }
            }
            // Pressed again on every poll until the job ends, in case one abort is lost.
            if stop.is_some() && !ladder.post_copy() {
                if let Err(error) = source.driver.abort_job(name) {
                    tracing::warn!(migration = %record.id, %error, "could not abort the migration");
                }
            }
            // After the switch, so that the record says post-copy from this poll on.
            let status = progress.as_ref().map(|p| phase(ladder.post_copy(), p));
            let _ = self.update_migration(&record.id, |m| {
                if m.status.is_final() {
                    return;
                }
                if let (Some(status), Some(progress)) = (status, &progress) {
                    m.status = status;
                    m.progress = with_copy_figures(progress.clone(), &m.progress);
                    if !ladder.post_copy() && progress.iterations >= 1 {
                        m.peak_bandwidth_bytes_per_sec =
                            m.peak_bandwidth_bytes_per_sec.max(progress.bandwidth_bytes_per_sec);
                    }
                }
                m.downtime_limit_ms = applied;
                push_events(m, events);
            });
        }
        stop
    }

    /// Records how long the guest stands still at the switch to post-copy asked at `asked`
    /// ([`watch_post_copy_pause`]), from a thread of `scope`.
    fn watch_pause<'s>(
        &'s self,
        scope: &'s std::thread::Scope<'s, '_>,
        record: &'s MigrationRecord,
        done: &'s AtomicBool,
        asked: Instant,
    ) {
        let (Some(source), Some(target)) =
            (self.hosts().get(&record.source_host), self.hosts().get(&record.target_host))
        else {
            return;
        };
        let fence = storage::lease::current_fence();
        scope.spawn(move || {
            let name = &record.instance_id;
            let Some(pause) = watch_post_copy_pause(&*source.driver, &*target.driver, name, done, asked) else {
                tracing::debug!(migration = %record.id, "the switch to post-copy was not seen as it happened");
                return;
            };
            let ms = pause.as_millis() as u64;
            let saved = storage::lease::with_fence(fence, || {
                self.update_migration(&record.id, |m| m.post_copy_pause_ms = Some(ms))
            });
            if let Err(error) = saved {
                tracing::warn!(migration = %record.id, %error, "could not record the post-copy pause");
            }
        });
    }

    fn set_status(&self, id: &str, status: MigrationStatus) -> Result<()> {
        self.update_migration(id, |m| m.status = status)
    }

    fn update_migration(&self, id: &str, f: impl FnOnce(&mut MigrationRecord)) -> Result<()> {
        self.store().write(|tx| {
            if let Some(mut record) = tx.get(&MIGRATIONS, id)? {
                f(&mut record);
                tx.insert(&MIGRATIONS, id, &record)?;
            }
            Ok::<_, Error>(())
        })
    }

    /// Ends a migration and frees the instance in one transaction; a completed one moves the
    /// instance to the target.
    fn end_migration(
        &self,
        key: &str,
        id: &str,
        status: MigrationStatus,
        progress: Option<JobProgress>,
        error: Option<String>,
    ) -> Result<()> {
        self.end_migration_with(key, id, status, progress, error, |_| {})
    }

    /// [`Self::end_migration`], changing the freed instance with `then` in the same
    /// transaction.
    fn end_migration_with(
        &self,
        key: &str,
        id: &str,
        status: MigrationStatus,
        progress: Option<JobProgress>,
        error: Option<String>,
        then: impl FnOnce(&mut InstanceRecord),
    ) -> Result<()> {
        if let Some(error) = &error {
            tracing::warn!(migration = id, %error, status = status.name(), "migration ended without moving the guest");
        }
        let downtime_ms = progress.as_ref().map(|p| p.downtime_ms);
        // Answers the folder the instance no longer uses: the source's after a copy that
        // completed, the target's after one that did not.
        let unused = self.store().write(|tx| {
            let mut unused = None;
            let mut target_host = None;
            let mut target_dir = None;
            if let Some(mut record) = tx.get(&MIGRATIONS, id)? {
                record.status = status;
                if let Some(progress) = progress {
                    // The target's final figures leave out the disk copy, which the source ran.
                    record.progress = with_copy_figures(progress, &record.progress);
                }
                if status == MigrationStatus::Completed {
                    if let Some(to) = record.target_dir.as_deref() {
                        record.progress = copy_figures_or_copied(record.progress, Path::new(to));
                    }
                }
                let kind = match status {
                    MigrationStatus::Completed => MigrationEventKind::Completed,
                    MigrationStatus::Cancelled => MigrationEventKind::Cancelled,
                    _ => MigrationEventKind::Failed,
                };
                let at_ms = since(record.created_ms);
                let last = event(at_ms, kind, Some(&record.progress), record.downtime_limit_ms, error.as_deref());
                push_events(&mut record, vec![last]);
                record.error = error;
                record.finished_ms = Some(now_ms());
                target_host = Some(record.target_host.clone());
                target_dir = record.target_dir.clone();
                tx.insert(&MIGRATIONS, id, &record)?;
            }
            if let Some(mut instance) = tx.get(&INSTANCES, key)? {
                if instance.migration.as_deref() == Some(id) {
                    if status == MigrationStatus::Completed {
                        if let Some(host) = target_host {
                            instance.host_id = host;
                        }
                        if let Some(to) = target_dir.take() {
                            let from = std::mem::replace(&mut instance.dir, to);
                            let (account, dir) = (&instance.account, Path::new(&instance.dir));
                            crate::volumes::move_folder(tx, account, &instance.id, Path::new(&from), dir)?;
                            unused = Some(from);
                        }
                    }
                    unused = unused.or(target_dir).filter(|dir| *dir != instance.dir);
                    instance.migration = None;
                    instance.migration_target = None;
                    then(&mut instance);
                    tx.insert(&INSTANCES, key, &instance)?;
                }
            }
            Ok::<_, Error>(unused)
        })?;
        // After the commit: a crash before this leaves a folder behind, never one in use.
        if let Some(dir) = unused {
            if let Err(error) = std::fs::remove_dir_all(&dir) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(migration = id, %dir, %error, "could not remove the folder the instance left");
                }
            }
        }
        crate::telemetry::global()
            .migration_ended(status.name(), downtime_ms.filter(|_| status == MigrationStatus::Completed));
        // The ports are bound where the guest is now, alone.
        self.sync_ovn_now();
        Ok(())
    }
}

/// How a migration that did not succeed ends if the guest is found on the source.
enum Outcome {
    Cancelled,
    Failed(String),
    /// Stratus restarted while it ran.
    Interrupted,
}

/// Why the monitor stopped a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stop {
    Cancelled,
    TimedOut,
    /// The escalation ran out of rungs within the budget (the reason says what it needed), or
    /// the switch to post-copy it asked for failed.
    OverBudget(String),
}

impl Stop {
    /// Why, as the timeline and the migration's error say it.
    fn reason(&self, options: &MigrationOptions) -> String {
        match self {
            Self::Cancelled => "cancelled".to_owned(),
            Self::TimedOut => format!("timed out after {} s", options.timeout_secs.unwrap_or_default()),
            Self::OverBudget(why) => why.clone(),
        }
    }
}

/// The most events a migration keeps: its passes stop being recorded past it, the rest (a
/// handful of escalations and its end) always are.
const MAX_EVENTS: usize = 200;

/// Appends `events` to the migration's timeline, passes only while there is room.
fn push_events(record: &mut MigrationRecord, events: Vec<MigrationEvent>) {
    for event in events {
        if event.kind != MigrationEventKind::Pass || record.events.len() < MAX_EVENTS {
            record.events.push(event);
        }
    }
}

/// Milliseconds from `created_ms` (a migration's request) to now.
fn since(created_ms: i64) -> u64 {
    (now_ms() - created_ms).max(0) as u64
}

/// `progress` with the disk copy's figures of `last` when it has none of its own: the target's
/// final figures leave out the copy, which the source ran, and a reading of the source after
/// the copy may too (the lab test once ended with a record of no copy at all): the last
/// figures seen stand.
fn with_copy_figures(mut progress: JobProgress, last: &JobProgress) -> JobProgress {
    if progress.disk_total_bytes == 0 {
        progress.disk_total_bytes = last.disk_total_bytes;
        progress.disk_processed_bytes = last.disk_processed_bytes;
        progress.disk_remaining_bytes = last.disk_remaining_bytes;
    }
    progress
}

/// `progress` of a completed storage-copying migration into `to`, whose copy is whole by
/// then. The source's readings are 250 ms apart and the target's final figures leave the copy
/// out, so a small disk's copy may be caught only as it began (the lab's 2 MiB root disk once
/// read 0 bytes copied at the end) or not at all: the copy's total then stands as copied, and
/// with no reading of it at all, the copied root disk's size on the target.
fn copy_figures_or_copied(mut progress: JobProgress, to: &Path) -> JobProgress {
    if progress.disk_total_bytes == 0 {
        let copied = allocated(&to.join(crate::instances::ROOT_DISK_FILE));
        tracing::debug!(copied, "no reading caught the disk copy: the copied disk's size stands for it");
        progress.disk_total_bytes = copied;
    }
    progress.disk_processed_bytes = progress.disk_processed_bytes.max(progress.disk_total_bytes);
    progress.disk_remaining_bytes = 0;
    progress
}

/// One timeline entry with the figures of `progress` (none before the first reading).
fn event(
    at_ms: u64,
    kind: MigrationEventKind,
    progress: Option<&JobProgress>,
    downtime_limit_ms: u64,
    message: Option<&str>,
) -> MigrationEvent {
    let p = progress.cloned().unwrap_or_default();
    MigrationEvent {
        at_ms,
        kind,
        iteration: p.iterations,
        remaining_bytes: p.memory_remaining_bytes,
        dirty_rate_bytes_per_sec: p.dirty_rate_bytes_per_sec,
        bandwidth_bytes_per_sec: p.bandwidth_bytes_per_sec,
        throttle_percent: p.throttle_percent,
        downtime_limit_ms,
        message: message.map(str::to_owned),
    }
}

/// How long guest `name` stands still at a switch to post-copy asked at `asked` (when it still
/// ran on the source), read as it happens: up to the first reading that finds it running on the
/// target, from the last that found it running on the source (or from `asked`), readings
/// [`PAUSE_POLL`] apart on each host's own connection. An upper bound, to within a reading.
/// libvirt's downtime for such a migration does not always tell it: for one the escalation
/// switched (the lab's, the benchmark's) it ran from the pause to the end of the copy, while
/// the guest already ran on the target and fetched what it missed.
///
/// `None` when the migration returned before both were seen (the guest was not seen pausing,
/// or not seen running on the target while the migration ran), a host did not answer, or
/// [`PAUSE_WATCH`] passed.
fn watch_post_copy_pause(
    source: &dyn Hypervisor,
    target: &dyn Hypervisor,
    name: &str,
    done: &AtomicBool,
    asked: Instant,
) -> Option<Duration> {
    let deadline = asked + PAUSE_WATCH;
    let mut last_running = asked;
    loop {
        if done.load(Ordering::Acquire) || Instant::now() > deadline {
            return None;
        }
        let reading = Instant::now();
        match source.state(name).ok()? {
            Some(PowerState::Running) => last_running = reading,
            _ => break,
        }
        std::thread::sleep(PAUSE_POLL);
    }
    loop {
        // Read before `done`: a migration that returned has its guest running on the target.
        let running = target.state(name).ok()? == Some(PowerState::Running);
        if running {
            return Some(last_running.elapsed());
        }
        if done.load(Ordering::Acquire) || Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(PAUSE_POLL);
    }
}

/// What the monitor has seen, to record what changed: a new pass, QEMU's throttle, the
/// switch-over of pre-copy.
#[derive(Default)]
struct Timeline {
    pass: u64,
    throttle: u64,
    switched_over: bool,
}

impl Timeline {
    fn observe(
        &mut self,
        at_ms: u64,
        progress: &JobProgress,
        ladder: &Ladder,
        applied: u64,
        events: &mut Vec<MigrationEvent>,
    ) {
        if progress.iterations > self.pass {
            self.pass = progress.iterations;
            events.push(event(at_ms, MigrationEventKind::Pass, Some(progress), applied, None));
        }
        if progress.throttle_percent != self.throttle {
            self.throttle = progress.throttle_percent;
            events.push(event(at_ms, MigrationEventKind::Throttled, Some(progress), applied, None));
        }
        let done = progress.memory_total_bytes > 0 && progress.memory_remaining_bytes == 0;
        if done && !self.switched_over && !ladder.post_copy() {
            self.switched_over = true;
            events.push(event(at_ms, MigrationEventKind::SwitchOver, Some(progress), applied, None));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completed_copy_is_recorded_whole_however_little_the_readings_caught() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(crate::instances::ROOT_DISK_FILE), vec![7u8; 256 << 10]).unwrap();
        let unseen = copy_figures_or_copied(JobProgress::default(), dir.path());
        assert!(unseen.disk_total_bytes >= 256 << 10, "{unseen:?}");
        assert_eq!((unseen.disk_processed_bytes, unseen.disk_remaining_bytes), (unseen.disk_total_bytes, 0));
        // Figures a reading caught stand, the copy whole: caught as it began, and with the
        // guest's writes mirrored on top.
        let began = JobProgress { disk_total_bytes: 5, disk_remaining_bytes: 5, ..JobProgress::default() };
        let ended = copy_figures_or_copied(began, dir.path());
        assert_eq!((ended.disk_total_bytes, ended.disk_processed_bytes, ended.disk_remaining_bytes), (5, 5, 0));
        let mirrored = JobProgress { disk_total_bytes: 5, disk_processed_bytes: 9, ..JobProgress::default() };
        assert_eq!(copy_figures_or_copied(mirrored.clone(), dir.path()), mirrored);
    }

    #[test]
    fn phases() {
        let copying =
            JobProgress { memory_total_bytes: 1 << 30, memory_remaining_bytes: 1 << 20, ..Default::default() };
        assert_eq!(phase(false, &copying), MigrationStatus::Copying);
        let done = JobProgress { memory_remaining_bytes: 0, ..copying.clone() };
        assert_eq!(phase(false, &done), MigrationStatus::Completing);
        assert_eq!(phase(true, &done), MigrationStatus::PostCopy);
        assert_eq!(phase(false, &JobProgress::default()), MigrationStatus::Copying, "no figures yet");
    }

    #[test]
    fn timeouts() {
        let none = MigrationOptions::default();
        assert!(!timed_out(&none, Duration::from_secs(86_400)));
        let ten = MigrationOptions { timeout_secs: Some(10), ..Default::default() };
        assert!(!timed_out(&ten, Duration::from_millis(9_999)));
        assert!(timed_out(&ten, Duration::from_secs(10)));
    }
}
