//! Live migration of running instances between hosts (shared storage: only memory moves).
//!
//! 1. [`Backend::migrate_instance`] checks and records, in one transaction, a `queued`
//!    migration and marks the instance as migrating, holding capacity on the target too; it
//!    answers the migration at once and kicks the instance's conductor work.
//! 2. The instance's converge runs the migration ([`Backend::run_migration`]): the source host
//!    drives it peer to peer while a monitor polls its progress into redb, aborts it on
//!    cancellation or timeout, and switches to post-copy when the policy says pre-copy will
//!    not converge.
//! 3. On success the instance's host becomes the target in the same transaction that
//!    completes the migration with the final statistics; on failure the guest runs on at the
//!    source, which pre-copy guarantees, and the migration says why it failed.
//! 4. After a restart, a migration left in flight is settled from what the hosts report: the
//!    domain running on the target means it completed, on the source that it failed.
//!
//! Stop, terminate and reboot are refused while an instance migrates; cancel first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use storage::tables::{INSTANCES, MIGRATIONS};
use storage::{InstanceRecord, InstanceState, JobProgress, MigrationOptions, MigrationRecord, MigrationStatus};

use crate::hypervisor::{DriverError, PowerState};
use crate::scheduler::{self, Demand};
use crate::{ids, invalid, now_ms, Backend, Error, ResourceKind, Result};

/// How often the monitor reads the source's job statistics.
const POLL: Duration = Duration::from_millis(250);

/// Policy: switch a migration to post-copy once pre-copy has gone over memory this many times
/// without finishing (each pass re-sends what the guest dirtied during the previous one).
pub const POST_COPY_AFTER_ITERATIONS: u64 = 4;

/// Whether a running pre-copy migration should switch to post-copy now.
pub fn post_copy_due(options: &MigrationOptions, progress: &JobProgress) -> bool {
    options.allow_post_copy && progress.iterations >= POST_COPY_AFTER_ITERATIONS && progress.memory_remaining_bytes > 0
}

/// Whether a migration has run past its `TimeoutSeconds`.
pub fn timed_out(options: &MigrationOptions, elapsed: Duration) -> bool {
    options.timeout_secs.is_some_and(|t| elapsed >= Duration::from_secs(t))
}

fn find_instance(tx: &storage::WriteTx, instance_id: &str) -> Result<(String, InstanceRecord)> {
    tx.scan(&INSTANCES, "")?
        .into_iter()
        .find(|(_, r)| r.id == instance_id)
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
        if let Some(target) = target {
            if self.hosts().get(target).is_none() {
                return Err(Error::ResourceNotFound { kind: ResourceKind::Host, id: target.to_owned() });
            }
        }
        if options.timeout_secs == Some(0) {
            return Err(invalid("TimeoutSeconds", "TimeoutSeconds must be at least 1"));
        }
        let base = self.host_snapshots();
        let record = self.store().write(|tx| {
            let (key, mut instance) = find_instance(tx, instance_id)?;
            if instance.state != InstanceState::Running || instance.migration.is_some() {
                let state = if instance.migration.is_some() { "migrating" } else { instance.state.name() };
                return Err(Error::IncorrectInstanceState { id: instance.id, state, verb: "migrated" });
            }
            let mut snapshots = base.clone();
            crate::instances::charge_usage(&mut snapshots, &Self::all_instances(tx)?);
            // Anywhere but where it is: the chosen target, or the scheduler's pick in its zone.
            let candidates: Vec<usize> = (0..snapshots.len())
                .filter(|&i| snapshots[i].id != instance.host_id)
                .filter(|&i| target.is_none_or(|t| snapshots[i].id == t))
                .collect();
            if target == Some(instance.host_id.as_str()) {
                return Err(invalid("TargetHostId", "The instance already runs on that host"));
            }
            let pool: Vec<_> = candidates.iter().map(|&i| snapshots[i].clone()).collect();
            let demand = Demand {
                vcpus: instance.vcpus,
                memory_mib: instance.memory_mib,
                disk_mib: instance.root_disk_bytes.div_ceil(1 << 20),
                zone: Some(instance.zone.clone()),
            };
            let placed = scheduler::place(&pool, &demand, 1, self.policy());
            let target_host = placed
                .first()
                .map(|&i| pool[i].id.clone())
                .ok_or_else(|| Error::InsufficientCapacity(instance.instance_type.clone()))?;
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
                error: None,
                created_ms: now_ms(),
                finished_ms: None,
            };
            instance.migration = Some(record.id.clone());
            instance.migration_target = Some(target_host);
            tx.insert(&INSTANCES, &key, &instance)?;
            tx.insert(&MIGRATIONS, &record.id, &record)?;
            Ok(record)
        })?;
        self.kick(&format!("{}/{}", record.account, record.instance_id));
        Ok(record)
    }

    /// Every migration, newest first.
    pub fn migrations(&self) -> Result<Vec<MigrationRecord>> {
        let mut all: Vec<MigrationRecord> =
            self.store().read(|tx| tx.scan(&MIGRATIONS, ""))?.into_iter().map(|(_, m)| m).collect();
        all.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then_with(|| a.id.cmp(&b.id)));
        Ok(all)
    }

    /// CancelInstanceMigration: a queued migration ends at once; a running one is aborted by
    /// its monitor (the guest stays on the source). A finished one cannot be cancelled.
    pub fn cancel_migration(&self, id: &str) -> Result<MigrationRecord> {
        self.store().write(|tx| {
            let mut record = tx
                .get(&MIGRATIONS, id)?
                .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Migration, id: id.to_owned() })?;
            if record.status.is_final() {
                return Err(Error::MigrationFinished { id: id.to_owned(), status: record.status.name() });
            }
            record.cancel_requested = true;
            tx.insert(&MIGRATIONS, id, &record)?;
            Ok(record)
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
        let source =
            self.hosts().get(&record.source_host).ok_or_else(|| Error::HostGone(record.source_host.clone()))?;
        let target =
            self.hosts().get(&record.target_host).ok_or_else(|| Error::HostGone(record.target_host.clone()))?;
        if record.cancel_requested {
            return self.end_migration(key, id, MigrationStatus::Cancelled, None, None);
        }
        if record.status != MigrationStatus::Queued {
            return self.settle_interrupted(key, &record);
        }
        self.set_status(id, MigrationStatus::Preparing)?;
        let done = AtomicBool::new(false);
        let started = Instant::now();
        let (result, stopped_by) = std::thread::scope(|scope| {
            let monitor = scope.spawn(|| self.monitor(&record, &done, started));
            let result = source.driver.migrate(&instance.id, &target.config.uri, &record.options);
            done.store(true, Ordering::Release);
            (result, monitor.join().unwrap_or(None))
        });
        match result {
            Ok(()) => {
                let progress = target.driver.completed_job(&instance.id).ok().flatten();
                self.end_migration(key, id, MigrationStatus::Completed, progress, None)
            }
            Err(error) => {
                let (status, message) = match stopped_by {
                    Some(Stop::Cancelled) => (MigrationStatus::Cancelled, None),
                    Some(Stop::TimedOut) => (
                        MigrationStatus::Failed,
                        Some(format!("timed out after {} s", record.options.timeout_secs.unwrap_or_default())),
                    ),
                    None => (MigrationStatus::Failed, Some(error.to_string())),
                };
                // Pre-copy leaves the guest on the source; say so if it is not there.
                let message = match source.driver.state(&instance.id) {
                    Ok(Some(PowerState::Running)) => message,
                    other => Some(format!(
                        "{}; the guest is not running on the source ({other:?})",
                        message.unwrap_or_default()
                    )),
                };
                self.end_migration(key, id, status, None, message)
            }
        }
    }

    /// Polls the source's job into redb until the migration returns; aborts it when cancelled
    /// or timed out, and switches to post-copy when due. Answers what stopped it, if anything.
    fn monitor(&self, record: &MigrationRecord, done: &AtomicBool, started: Instant) -> Option<Stop> {
        let source = self.hosts().get(&record.source_host)?;
        let mut stop = None;
        let mut post_copy = false;
        while !done.load(Ordering::Acquire) {
            std::thread::sleep(POLL);
            if done.load(Ordering::Acquire) {
                break;
            }
            let progress = source.driver.job_progress(&record.instance_id).ok().flatten();
            let cancel = self
                .store()
                .read(|tx| tx.get(&MIGRATIONS, &record.id))
                .ok()
                .flatten()
                .is_some_and(|m| m.cancel_requested);
            if stop.is_none() {
                if cancel {
                    stop = Some(Stop::Cancelled);
                } else if timed_out(&record.options, started.elapsed()) {
                    stop = Some(Stop::TimedOut);
                }
                // Post-copy has no way back: once switched, the migration runs to its end.
                if stop.is_some() && !post_copy {
                    if let Err(error) = source.driver.abort_job(&record.instance_id) {
                        tracing::warn!(migration = %record.id, %error, "could not abort the migration");
                    }
                }
            }
            if let Some(progress) = progress {
                let status = if post_copy { MigrationStatus::PostCopy } else { MigrationStatus::Copying };
                if !post_copy && stop.is_none() && post_copy_due(&record.options, &progress) {
                    match source.driver.start_post_copy(&record.instance_id) {
                        Ok(()) => post_copy = true,
                        Err(error) => tracing::warn!(migration = %record.id, %error, "could not switch to post-copy"),
                    }
                }
                let _ = self.update_migration(&record.id, |m| {
                    if !m.status.is_final() {
                        m.status = status;
                        m.progress = progress.clone();
                    }
                });
            }
        }
        stop
    }

    /// A migration found in flight after a restart: wait out any job libvirt still runs,
    /// then read where the guest is.
    fn settle_interrupted(&self, key: &str, record: &MigrationRecord) -> Result<()> {
        let (Some(source), Some(target)) =
            (self.hosts().get(&record.source_host), self.hosts().get(&record.target_host))
        else {
            return Err(Error::HostGone(record.source_host.clone()));
        };
        // A domain gone from the source has no job there either: it moved.
        loop {
            match source.driver.job_progress(&record.instance_id) {
                Ok(Some(_)) => std::thread::sleep(POLL),
                Ok(None) | Err(DriverError::NoDomain(_)) => break,
                Err(error) => return Err(Error::Driver(error)),
            }
        }
        let on_target =
            matches!(target.driver.state(&record.instance_id), Ok(Some(PowerState::Running | PowerState::Paused)));
        let on_source =
            matches!(source.driver.state(&record.instance_id), Ok(Some(PowerState::Running | PowerState::Paused)));
        if on_target && !on_source {
            let progress = target.driver.completed_job(&record.instance_id).ok().flatten();
            self.end_migration(key, &record.id, MigrationStatus::Completed, progress, None)
        } else {
            let message = "interrupted by a restart of Stratus; the guest runs on the source".to_owned();
            self.end_migration(key, &record.id, MigrationStatus::Failed, None, Some(message))
        }
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
        if let Some(error) = &error {
            tracing::warn!(migration = id, %error, status = status.name(), "migration ended without moving the guest");
        }
        self.store().write(|tx| {
            let mut target_host = None;
            if let Some(mut record) = tx.get(&MIGRATIONS, id)? {
                record.status = status;
                if let Some(progress) = progress {
                    record.progress = progress;
                }
                record.error = error;
                record.finished_ms = Some(now_ms());
                target_host = Some(record.target_host.clone());
                tx.insert(&MIGRATIONS, id, &record)?;
            }
            if let Some(mut instance) = tx.get(&INSTANCES, key)? {
                if instance.migration.as_deref() == Some(id) {
                    if status == MigrationStatus::Completed {
                        if let Some(host) = target_host {
                            instance.host_id = host;
                        }
                    }
                    instance.migration = None;
                    instance.migration_target = None;
                    tx.insert(&INSTANCES, key, &instance)?;
                }
            }
            Ok::<_, Error>(())
        })
    }
}

/// Why the monitor stopped a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Cancelled,
    TimedOut,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_copy_only_when_allowed_and_not_converging() {
        let mut options = MigrationOptions::default();
        let stuck = JobProgress {
            iterations: POST_COPY_AFTER_ITERATIONS,
            memory_remaining_bytes: 1 << 20,
            ..Default::default()
        };
        assert!(!post_copy_due(&options, &stuck), "not allowed");
        options.allow_post_copy = true;
        assert!(post_copy_due(&options, &stuck));
        let early = JobProgress { iterations: 1, ..stuck.clone() };
        assert!(!post_copy_due(&options, &early), "pre-copy gets its passes first");
        let finishing = JobProgress { memory_remaining_bytes: 0, ..stuck };
        assert!(!post_copy_due(&options, &finishing), "nothing left to move");
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
