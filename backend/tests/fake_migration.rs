//! Migration edge cases libvirt cannot produce on demand, against a pair of fake hosts
//! ([`backend::fake`]): the switch to post-copy when pre-copy does not converge, a timeout that
//! aborts, a failure that loses the guest on the source (reported, not hidden), and the
//! bookkeeping of a migration that copies the root disk between hosts without shared storage.

use std::sync::Arc;

mod fakes;

use backend::fake::{FakeCloud, MigrationScript};
use backend::hypervisor::MigrationOptions;
use backend::Backend;
use storage::{MigrationRecord, MigrationStatus};

const ACCOUNT: &str = "123456789012";

/// Two fake hosts sharing one world, a running instance on the first.
fn setup(script: MigrationScript, dir: &std::path::Path) -> (Arc<Backend>, FakeCloud, String, Vec<String>) {
    fakes::pair_with_instance(ACCOUNT, script, dir)
}

/// Runs the instance's migration work to its end (what the conductor does) and reads the result.
fn run(b: &Backend, id: &str, migration: &MigrationRecord) -> MigrationRecord {
    b.converge(&format!("{ACCOUNT}/{id}")).unwrap();
    b.migrations().unwrap().into_iter().find(|m| m.id == migration.id).unwrap()
}

#[test]
fn post_copy_takes_over_when_pre_copy_does_not_converge() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cloud, id, hosts) = setup(MigrationScript::NeverConverges, dir.path());
    let options = MigrationOptions { allow_post_copy: true, max_downtime_ms: Some(300), ..Default::default() };
    let migration = b.migrate_instance(&id, None, options).unwrap();
    assert_eq!(migration.target_host, hosts[1]);
    let done = run(&b, &id, &migration);
    assert_eq!(done.status, MigrationStatus::Completed, "{:?}", done.error);
    assert_eq!(cloud.migration_outcome(), (true, false), "the monitor switched to post-copy, aborted nothing");
    // The downtime rose to the budget first (a quarter of it to start with), then post-copy;
    // the timeline says so, in order, and ends with the completion.
    assert_eq!(cloud.migration_downtimes(), [75, 150, 300]);
    let kinds: Vec<&str> = done.events.iter().map(|e| e.kind.name()).filter(|k| *k != "pass").collect();
    assert_eq!(kinds, ["started", "downtime-raised", "downtime-raised", "post-copy", "completed"], "{:?}", done.events);
    assert!(done.events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms), "in order: {:?}", done.events);
    assert_eq!((done.progress.time_elapsed_ms, done.progress.downtime_ms), (1234, 56), "final stats from the target");
    // The pause Stratus saw at the switch: the fake's, to within its readings (1 ms apart).
    let pause = done.post_copy_pause_ms.expect("the switch was watched");
    let held = backend::fake::POST_COPY_PAUSE.as_millis() as u64;
    assert!((held..held + 1000).contains(&pause), "paused {pause} ms for {held}");
    assert_eq!(b.instance(ACCOUNT, &id).unwrap().host_id, hosts[1]);
}

/// A migration that asks for no downtime limit allows QEMU's own 300 ms from the start, as
/// plain virsh does, and so has nothing to raise before its next rung.
#[test]
fn without_a_downtime_budget_qemus_default_is_allowed_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cloud, id, _) = setup(MigrationScript::NeverConverges, dir.path());
    let options = MigrationOptions { allow_post_copy: true, ..Default::default() };
    let migration = b.migrate_instance(&id, None, options).unwrap();
    let done = run(&b, &id, &migration);
    assert_eq!(done.status, MigrationStatus::Completed, "{:?}", done.error);
    assert_eq!(cloud.migration_downtimes(), [300]);
    let kinds: Vec<&str> = done.events.iter().map(|e| e.kind.name()).filter(|k| *k != "pass").collect();
    assert_eq!(kinds, ["started", "post-copy", "completed"], "{:?}", done.events);
    assert_eq!(done.events[0].downtime_limit_ms, 300);
}

#[test]
fn post_copy_on_request_switches_at_once_and_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cloud, id, hosts) = setup(MigrationScript::NeverConverges, dir.path());
    // Not allowed at the start: refused, and nothing changes.
    let plain = b.migrate_instance(&id, None, MigrationOptions::default()).unwrap();
    let refused = b.start_migration_post_copy(&plain.id).unwrap_err();
    assert!(matches!(refused, backend::Error::IncorrectState(_)), "{refused:?}");
    b.cancel_migration(&plain.id).unwrap();
    assert_eq!(run(&b, &id, &plain).status, MigrationStatus::Cancelled);

    let options = MigrationOptions { allow_post_copy: true, ..Default::default() };
    let migration = b.migrate_instance(&id, None, options).unwrap();
    assert!(b.start_migration_post_copy(&migration.id).unwrap().post_copy_requested);
    let done = run(&b, &id, &migration);
    assert_eq!(done.status, MigrationStatus::Completed, "{:?}", done.error);
    assert_eq!(cloud.post_copy_after_polls(), Some(1), "switched at the first poll, not after the policy's passes");
    assert_eq!(b.instance(ACCOUNT, &id).unwrap().host_id, hosts[1]);
    // A finished migration cannot be switched.
    let finished = b.start_migration_post_copy(&migration.id).unwrap_err();
    assert!(matches!(finished, backend::Error::MigrationFinished { .. }), "{finished:?}");
}

#[test]
fn a_migration_that_never_converges_times_out_and_stays_put() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cloud, id, hosts) = setup(MigrationScript::NeverConverges, dir.path());
    // Auto-converge keeps the escalation waiting at the budget, so that the timeout ends it.
    let options = MigrationOptions { timeout_secs: Some(1), auto_converge: true, ..Default::default() };
    let migration = b.migrate_instance(&id, None, options).unwrap();
    let done = run(&b, &id, &migration);
    assert_eq!(done.status, MigrationStatus::Failed);
    assert!(done.error.as_deref().unwrap_or_default().contains("timed out"), "{:?}", done.error);
    assert_eq!(done.events.iter().rev().nth(1).map(|e| e.kind.name()), Some("aborted"), "{:?}", done.events);
    assert_eq!(cloud.migration_outcome(), (false, true), "aborted, never switched");
    let instance = b.instance(ACCOUNT, &id).unwrap();
    assert_eq!((instance.host_id.as_str(), instance.migration.as_deref()), (hosts[0].as_str(), None));
}

/// The escalation on a guest that never converges, without post-copy: the downtime rises to
/// the budget and never past it, then the migration is aborted with a reason that says what
/// it would have needed, and the guest stays on the source, running.
#[test]
fn escalation_stays_within_its_budget_and_aborts_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cloud, id, hosts) = setup(MigrationScript::NeverConverges, dir.path());
    let options = MigrationOptions { max_downtime_ms: Some(200), ..Default::default() };
    let migration = b.migrate_instance(&id, None, options).unwrap();
    let done = run(&b, &id, &migration);
    assert_eq!(done.status, MigrationStatus::Failed);
    let error = done.error.clone().unwrap_or_default();
    assert!(
        error.contains("cannot converge within MaxDowntimeMillis 200") && error.contains("AllowPostCopy"),
        "{error}"
    );
    assert_eq!(cloud.migration_downtimes(), [50, 100, 200]);
    assert_eq!(cloud.migration_outcome(), (false, true), "aborted, never switched");
    assert_eq!(done.downtime_limit_ms, 200);
    let kinds: Vec<&str> = done.events.iter().map(|e| e.kind.name()).filter(|k| *k != "pass").collect();
    assert_eq!(kinds, ["started", "downtime-raised", "downtime-raised", "aborted", "failed"], "{:?}", done.events);
    let raised: Vec<u64> = done.events.iter().map(|e| e.downtime_limit_ms).collect();
    assert!(raised.iter().all(|&ms| ms <= 200), "{raised:?}");
    // Each pass is on the timeline with its figures.
    let passes: Vec<_> = done.events.iter().filter(|e| e.kind.name() == "pass").collect();
    assert!(passes.len() >= 3 && passes.iter().all(|e| e.remaining_bytes == 64 << 20), "{passes:?}");
    let instance = b.instance(ACCOUNT, &id).unwrap();
    assert_eq!((instance.host_id.as_str(), instance.migration.as_deref()), (hosts[0].as_str(), None));
    let source = b.hosts().get(&hosts[0]).unwrap();
    assert_eq!(source.driver.state(&id).unwrap(), Some(backend::hypervisor::PowerState::Running));
}

/// Post-copy has no way back: when it breaks, the guest is paused on both hosts and can run on
/// neither. The migration fails saying so, and the instance stops with a reason; it can be
/// started again.
#[test]
fn a_post_copy_that_breaks_stops_the_instance_and_says_why() {
    use backend::hypervisor::PowerState;
    let dir = tempfile::tempdir().unwrap();
    let (b, cloud, id, hosts) = setup(MigrationScript::PostCopyFails, dir.path());
    let options = MigrationOptions { allow_post_copy: true, ..Default::default() };
    let migration = b.migrate_instance(&id, None, options).unwrap();
    let done = run(&b, &id, &migration);
    assert_eq!(done.status, MigrationStatus::Failed);
    assert_eq!(cloud.migration_outcome(), (true, false));
    let error = done.error.clone().unwrap_or_default();
    assert!(error.contains("post-copy failed") && error.contains("could run on neither"), "{error}");
    assert!(error.contains("the connection to the target broke"), "the host's own reason is kept: {error}");
    let instance = b.instance(ACCOUNT, &id).unwrap();
    assert_eq!((instance.host_id.as_str(), instance.migration.as_deref()), (hosts[0].as_str(), None));
    assert_eq!(instance.state_reason.as_ref().map(|r| r.code.as_str()), Some("Server.InternalError"));
    assert!(matches!(instance.state, storage::InstanceState::Stopping | storage::InstanceState::Stopped));
    // Neither half runs, and the target keeps no definition of it.
    let (source, target) = (b.hosts().get(&hosts[0]).unwrap(), b.hosts().get(&hosts[1]).unwrap());
    assert_ne!(source.driver.state(&id).unwrap(), Some(PowerState::Running));
    assert_ne!(source.driver.state(&id).unwrap(), Some(PowerState::Paused));
    assert_eq!(target.driver.state(&id).unwrap(), None);
    b.converge(&format!("{ACCOUNT}/{id}")).unwrap();
    assert_eq!(b.instance(ACCOUNT, &id).unwrap().state, storage::InstanceState::Stopped);
    // It starts again where its disk is.
    b.start_instances(ACCOUNT, std::slice::from_ref(&id)).unwrap();
    b.converge(&format!("{ACCOUNT}/{id}")).unwrap();
    assert_eq!(b.instance(ACCOUNT, &id).unwrap().state, storage::InstanceState::Running);
    assert_eq!(source.driver.state(&id).unwrap(), Some(PowerState::Running));
}

#[test]
fn a_failure_that_loses_the_guest_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _cloud, id, hosts) = setup(MigrationScript::FailsAndLosesGuest, dir.path());
    let migration = b.migrate_instance(&id, None, MigrationOptions::default()).unwrap();
    let done = run(&b, &id, &migration);
    assert_eq!(done.status, MigrationStatus::Failed);
    let error = done.error.unwrap_or_default();
    assert!(error.contains("the target went away") && error.contains("runs on neither host"), "{error}");
    assert_eq!(b.instance(ACCOUNT, &id).unwrap().host_id, hosts[0]);
}

/// EstimateInstanceMigration on scripted guests: what it measures, where its bandwidth comes
/// from, how it expects each kind of guest to end, and that it moves and records nothing.
#[test]
fn estimates_follow_the_guest_and_the_hosts_history() {
    use backend::migration::BandwidthSource;
    use backend::migration_plan::Ending;
    const MIB: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let (b, cloud, id, hosts) = setup(MigrationScript::Converges, dir.path());
    let uri = b.hosts().get(&hosts[0]).unwrap().config.uri.clone();
    let counters = backend::hypervisor::DomainCounters { rss_kib: 64 * 1024, ..Default::default() };
    cloud.set_counters(&uri, &id, counters);
    // Estimates read the resident memory from the monitoring's last sample of the host, not
    // from a bulk call of their own: a later change shows at the next collection.
    b.collect().unwrap();
    let later = backend::hypervisor::DomainCounters { rss_kib: 1024, ..Default::default() };
    cloud.set_counters(&uri, &id, later);

    // Idle: one pass over the 64 MiB it touched, at the default bandwidth (no history yet).
    let idle = b.estimate_migration(&id, None, &MigrationOptions::default()).unwrap();
    assert_eq!((idle.source_host.as_str(), idle.target_host.as_str()), (hosts[0].as_str(), hosts[1].as_str()));
    assert_eq!((idle.inputs.memory_bytes, idle.inputs.resident_bytes), (512 * MIB, 64 * MIB));
    assert_eq!((idle.inputs.dirty_rate_bytes_per_sec, idle.bandwidth_source), (0, BandwidthSource::Default));
    assert_eq!((idle.estimate.ending, idle.estimate.passes, idle.estimate.iterations()), (Ending::PreCopy, 1, 3));
    assert!(idle.estimate.precopy_converges);
    // Nothing moved, nothing recorded.
    assert!(b.migrations().unwrap().is_empty());
    let record = b.instance(ACCOUNT, &id).unwrap();
    assert_eq!((record.host_id.as_str(), record.migration.as_ref()), (hosts[0].as_str(), None));

    // Dirtying faster than a 32 MiB/s limit: pre-copy alone never converges; post-copy, when
    // allowed, ends it; without it the escalation aborts, with no downtime to raise: asked for
    // no limit, it allows QEMU's 300 ms from the start (after the default 500 ms of
    // preparation, a pass of 2 s over the 64 MiB it touched, then one of 1.5 s over the 48 MiB
    // it dirtied in the measured second, which it keeps rewriting: stuck, and the last).
    cloud.set_dirty_rate(&uri, &id, 48 * MIB);
    let limited = MigrationOptions { bandwidth_mibps: Some(32), timeout_secs: Some(60), ..Default::default() };
    let stuck = b.estimate_migration(&id, None, &limited).unwrap();
    assert_eq!(stuck.bandwidth_source, BandwidthSource::Limit);
    assert_eq!(stuck.inputs.dirty_rate_bytes_per_sec, 48 * MIB);
    assert_eq!((stuck.estimate.ending, stuck.estimate.total_ms), (Ending::Abort, Some(500 + 2000 + 1500)));
    assert_eq!(stuck.inputs.working_set_bytes, 48 * MIB);
    let post = MigrationOptions { allow_post_copy: true, ..limited.clone() };
    let post = b.estimate_migration(&id, None, &post).unwrap().estimate;
    assert_eq!((post.ending, post.precopy_converges), (Ending::PostCopy, false));

    // The bandwidth and setup of migrations completed from the host: their medians, the
    // bandwidth's over those that had no limit (three held to 10 MiB/s would make it theirs).
    let history = [(100, 1100, 100, None), (300, 1100, 100, None), (200, 2100, 100, None)];
    let held = [(10, 1100, 100, Some(10)); 3];
    for (i, (processed_mib, elapsed_ms, setup_ms, limit)) in history.iter().chain(&held).enumerate() {
        let record = MigrationRecord {
            id: format!("mig-{i:017x}"),
            account: ACCOUNT.into(),
            instance_id: id.clone(),
            source_host: hosts[0].clone(),
            target_host: hosts[1].clone(),
            status: MigrationStatus::Completed,
            options: MigrationOptions { bandwidth_mibps: *limit, ..Default::default() },
            progress: storage::JobProgress {
                memory_processed_bytes: processed_mib * MIB,
                time_elapsed_ms: *elapsed_ms,
                setup_time_ms: *setup_ms,
                ..Default::default()
            },
            cancel_requested: false,
            post_copy_requested: false,
            ping_traced: false,
            ping: None,
            error: None,
            created_ms: backend::now_ms(),
            finished_ms: Some(backend::now_ms()),
            prediction: None,
            downtime_limit_ms: 0,
            events: Vec::new(),
            target_dir: None,
            post_copy_pause_ms: None,
            peak_bandwidth_bytes_per_sec: 0,
        };
        b.store().write(|tx| tx.insert(&storage::tables::MIGRATIONS, &record.id, &record)).unwrap();
    }
    let learned = b.estimate_migration(&id, None, &MigrationOptions::default()).unwrap();
    // 100 MiB/s, 300 MiB/s and 200 MiB/2 s: the median is 100 MiB/s (not 10).
    assert_eq!(
        (learned.bandwidth_source, learned.inputs.bandwidth_bytes_per_sec),
        (BandwidthSource::History, 100 * MIB)
    );
    assert_eq!(learned.inputs.setup_ms, 100);
    // None of those was predicted: the first pass is all of the resident memory.
    assert_eq!((learned.resident_bytes, learned.inputs.resident_bytes), (64 * MIB, 64 * MIB));
    // One predicted to take a single pass sent 100 MiB: later first passes send that, and
    // what the guest keeps rewriting (here nothing), whatever its resident memory says.
    b.store()
        .write(|tx| {
            let mut record = tx.get(&storage::tables::MIGRATIONS, "mig-00000000000000000")?.unwrap();
            record.prediction = Some(storage::MigrationPrediction {
                ending: "pre-copy".into(),
                iterations: 1,
                resident_bytes: 400 * MIB,
                ..Default::default()
            });
            tx.insert(&storage::tables::MIGRATIONS, &record.id, &record)
        })
        .unwrap();
    cloud.set_dirty_rate(&uri, &id, 0);
    let calibrated = b.estimate_migration(&id, None, &MigrationOptions::default()).unwrap();
    assert_eq!((calibrated.resident_bytes, calibrated.inputs.resident_bytes), (64 * MIB, 100 * MIB));
    // A guest rewriting 48 MiB a second sends that on top.
    cloud.set_dirty_rate(&uri, &id, 48 * MIB);
    let dirtying = b.estimate_migration(&id, None, &MigrationOptions::default()).unwrap();
    assert_eq!(dirtying.inputs.resident_bytes, 148 * MIB);

    // QEMU's own average over the transfer, where libvirt reports it, is the bandwidth; what the
    // total held besides QEMU's own time (which ends with the pause) is the target's
    // preparation: 400 MiB/s, so 1100 - 250, 1100 - 750 and 2100 - 500 ms: 850 ms.
    b.store()
        .write(|tx| {
            for i in 0..3 {
                let key = format!("mig-{i:017x}");
                let mut record = tx.get(&storage::tables::MIGRATIONS, &key)?.unwrap();
                record.progress.bandwidth_bytes_per_sec = 400 * MIB;
                record.progress.downtime_ms = 50;
                tx.insert(&storage::tables::MIGRATIONS, &key, &record)?;
            }
            Ok::<_, backend::Error>(())
        })
        .unwrap();
    let measured = b.estimate_migration(&id, None, &MigrationOptions::default()).unwrap();
    assert_eq!((measured.inputs.bandwidth_bytes_per_sec, measured.inputs.setup_ms), (400 * MIB, 850));
    assert_eq!(measured.inputs.scan_ms, 0, "no page counts, no reading apart from sending");

    // Where the host counts zero pages and whole pages, the path is two rates: their passes
    // (200, 700 and 450 ms after the pause) are 1 µs a zero page read and 1,000 MiB/s sent.
    // The first pass then starts from the idle migration's whole pages (50 MiB), and reads
    // the rest of the guest's memory.
    let counts = [(150_000, 50), (400_000, 300), (270_000, 180)];
    b.store()
        .write(|tx| {
            for (i, (zero_pages, normal_mib)) in counts.iter().enumerate() {
                let key = format!("mig-{i:017x}");
                let mut record = tx.get(&storage::tables::MIGRATIONS, &key)?.unwrap();
                record.progress.memory_zero_pages = *zero_pages;
                record.progress.memory_normal_bytes = normal_mib * MIB;
                tx.insert(&storage::tables::MIGRATIONS, &key, &record)?;
            }
            Ok::<_, backend::Error>(())
        })
        .unwrap();
    let fitted = b.estimate_migration(&id, None, &MigrationOptions::default()).unwrap();
    assert_eq!(fitted.bandwidth_source, backend::migration::BandwidthSource::Fitted);
    let wire = fitted.inputs.bandwidth_bytes_per_sec as f64 / MIB as f64;
    assert!((wire - 1000.0).abs() < 1.0, "{wire} MiB/s");
    assert_eq!(fitted.inputs.resident_bytes, (50 + 48) * MIB);
    let zero_pages = (fitted.inputs.memory_bytes - fitted.inputs.resident_bytes) / 4096;
    assert!(fitted.inputs.scan_ms.abs_diff(zero_pages / 1000) <= 1, "{:?}", fitted.inputs);
    // The disk copy keeps the average, which is not QEMU's stream.
    assert_eq!(fitted.inputs.disk_bandwidth_bytes_per_sec, 400 * MIB);
    // QEMU's highest windows, which the migrations record: a fitted rate within half again of
    // them stands; one far over them (QEMU never carried it) gives way to them, and then no
    // reading is counted apart.
    let peaks = |mibps: u64| {
        b.store()
            .write(|tx| {
                for i in 0..counts.len() {
                    let key = format!("mig-{i:017x}");
                    let mut record = tx.get(&storage::tables::MIGRATIONS, &key)?.unwrap();
                    record.peak_bandwidth_bytes_per_sec = mibps * MIB;
                    tx.insert(&storage::tables::MIGRATIONS, &key, &record)?;
                }
                Ok::<_, backend::Error>(())
            })
            .unwrap()
    };
    peaks(900);
    let near = b.estimate_migration(&id, None, &MigrationOptions::default()).unwrap();
    assert_eq!(near.bandwidth_source, backend::migration::BandwidthSource::Fitted);
    peaks(300);
    let over = b.estimate_migration(&id, None, &MigrationOptions::default()).unwrap();
    assert_eq!(
        (over.bandwidth_source, over.inputs.bandwidth_bytes_per_sec, over.inputs.scan_ms),
        (backend::migration::BandwidthSource::Peak, 300 * MIB, 0)
    );
    peaks(0);
    // A limit of its own is the bandwidth, of the disk copy too, and leaves no time apart for
    // the reading.
    let held = b.estimate_migration(&id, None, &MigrationOptions { bandwidth_mibps: Some(32), ..Default::default() });
    let held = held.unwrap().inputs;
    assert_eq!((held.scan_ms, held.disk_bandwidth_bytes_per_sec, held.bandwidth_bytes_per_sec), (0, 0, 32 * MIB));
    // An idle guest of this one's memory (QEMU's total a little over it: firmware, video) is
    // what the first pass starts from, before those of other sizes; a dirtying guest's
    // migration is no idle guest's, whatever it was predicted to take.
    let memory = fitted.inputs.memory_bytes;
    b.store()
        .write(|tx| {
            for (i, (total, dirty_mib)) in [(memory + 18 * MIB, 0), (memory + 18 * MIB, 48)].into_iter().enumerate() {
                let key = format!("mig-{:017x}", i + 1);
                let mut record = tx.get(&storage::tables::MIGRATIONS, &key)?.unwrap();
                record.progress.memory_total_bytes = total;
                record.prediction = Some(storage::MigrationPrediction {
                    iterations: 1,
                    dirty_rate_bytes_per_sec: dirty_mib * MIB,
                    ..Default::default()
                });
                tx.insert(&storage::tables::MIGRATIONS, &key, &record)?;
            }
            Ok::<_, backend::Error>(())
        })
        .unwrap();
    let sized = b.estimate_migration(&id, None, &MigrationOptions::default()).unwrap();
    assert_eq!(sized.inputs.resident_bytes, (300 + 48) * MIB, "mig-1's 300 MiB, not mig-0's 50 nor mig-2's 180");

    // The same refusals as MigrateInstance.
    let busy = b.migrate_instance(&id, None, MigrationOptions::default()).unwrap();
    let refused = b.estimate_migration(&id, None, &MigrationOptions::default()).unwrap_err();
    assert!(matches!(refused, backend::Error::IncorrectInstanceState { state: "migrating", .. }), "{refused:?}");
    b.cancel_migration(&busy.id).unwrap();
}

/// Every migration records what was predicted before it started, beside what happened.
#[test]
fn a_migration_records_its_prediction() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cloud, id, hosts) = setup(MigrationScript::Converges, dir.path());
    let uri = b.hosts().get(&hosts[0]).unwrap().config.uri.clone();
    let counters = backend::hypervisor::DomainCounters { rss_kib: 128 * 1024, ..Default::default() };
    cloud.set_counters(&uri, &id, counters);
    let migration = b.migrate_instance(&id, None, MigrationOptions::default()).unwrap();
    assert_eq!(migration.prediction, None, "predicted when it runs, not when it is asked for");
    let done = run(&b, &id, &migration);
    assert_eq!(done.status, MigrationStatus::Completed, "{:?}", done.error);
    let predicted = done.prediction.expect("a prediction");
    // One pass, which QEMU counts as three iterations (syncs at the start, the pass's end, the
    // switch-over), as the migration's own figure does.
    assert_eq!((predicted.ending.as_str(), predicted.iterations), ("pre-copy", 3));
    assert_eq!((predicted.resident_bytes, predicted.first_pass_bytes), (128 << 20, 128 << 20));
    // 128 MiB at the default 128 MiB/s: a second, after the default 500 ms of preparation,
    // and the pause.
    assert!(predicted.total_ms.is_some_and(|t| (1500..1700).contains(&t)), "{predicted:?}");
}

/// A migration started soon after an estimate predicts from the estimate's measurement of the
/// guest (what the operator was shown, without measuring for a second again), once; later ones
/// measure again.
#[test]
fn a_migration_after_an_estimate_predicts_from_its_measurement() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cloud, id, hosts) = setup(MigrationScript::Converges, dir.path());
    let uri = |i: usize| b.hosts().get(&hosts[i]).unwrap().config.uri.clone();
    cloud.set_dirty_rate(&uri(0), &id, 3 << 20);
    let estimate = b.estimate_migration(&id, None, &MigrationOptions::default()).unwrap();
    assert_eq!(estimate.inputs.dirty_rate_bytes_per_sec, 3 << 20);
    // The guest now dirties faster: the fresh estimate's figure is used, not a new measurement.
    cloud.set_dirty_rate(&uri(0), &id, 9 << 20);
    let first = b.migrate_instance(&id, None, MigrationOptions::default()).unwrap();
    let first = run(&b, &id, &first);
    assert_eq!(first.status, MigrationStatus::Completed, "{:?}", first.error);
    assert_eq!(first.prediction.unwrap().dirty_rate_bytes_per_sec, 3 << 20, "the estimate's measurement");
    // Back, with no estimate since: measured on the host it runs on now.
    cloud.set_dirty_rate(&uri(1), &id, 5 << 20);
    let back = b.migrate_instance(&id, None, MigrationOptions::default()).unwrap();
    let back = run(&b, &id, &back);
    assert_eq!(back.status, MigrationStatus::Completed, "{:?}", back.error);
    assert_eq!(back.prediction.unwrap().dirty_rate_bytes_per_sec, 5 << 20, "measured again");
}

/// Hosts that keep their instances' folders on storage of their own: the migration makes the
/// folder on the target (an empty copy of the root disk over the same image, the console log
/// so far), the driver copies the disk into it, and on completion the instance and its root
/// volume name the new folder and the source's is removed. Stopped, the instance starts again
/// only where its disk is.
#[test]
fn a_migration_without_shared_storage_moves_the_instance_folder() {
    use backend::fake::HostMode;
    use std::path::Path;
    let dir = tempfile::tempdir().unwrap();
    let (b, cloud, id, hosts) = fakes::pair_with_local_disks(ACCOUNT, MigrationScript::Converges, dir.path());
    let (from, to) = (dir.path().join("one").join(&id), dir.path().join("two").join(&id));
    let before = b.instance(ACCOUNT, &id).unwrap();
    assert_eq!((before.host_id.as_str(), Path::new(&before.dir)), (hosts[0].as_str(), from.as_path()));
    assert!(from.join("root.qcow2").exists(), "the root disk is made on the host's own storage");
    std::fs::write(from.join("console.log"), "printed on one\n").unwrap();
    // A mark past the qcow2's end: whatever is in the source's file arrives on the target.
    let mut source_bytes = std::fs::read(from.join("root.qcow2")).unwrap();
    source_bytes.extend_from_slice(b"written on one");
    std::fs::write(from.join("root.qcow2"), &source_bytes).unwrap();

    let migration = b.migrate_instance(&id, None, MigrationOptions::default()).unwrap();
    assert_eq!(migration.target_dir.as_deref(), Some(to.to_str().unwrap()));
    let done = run(&b, &id, &migration);
    assert_eq!(done.status, MigrationStatus::Completed, "{:?}", done.error);
    let after = b.instance(ACCOUNT, &id).unwrap();
    assert_eq!((after.host_id.as_str(), Path::new(&after.dir)), (hosts[1].as_str(), to.as_path()));
    let root = b.volumes(ACCOUNT).unwrap().into_iter().find(|v| v.root).unwrap();
    assert_eq!(Path::new(&root.path), to.join("root.qcow2"), "the root volume names the copy");
    assert_eq!(std::fs::read(to.join("root.qcow2")).unwrap(), source_bytes, "the copy holds what the source held");
    assert_eq!(std::fs::read_to_string(to.join("console.log")).unwrap(), "printed on one\n");
    assert!(!from.exists(), "the source's folder is removed once the instance left it");
    let domain = cloud.domain("fake://two", &id).expect("the guest runs on the target");
    assert_eq!((domain.spec.disk, domain.spec.console_log), (to.join("root.qcow2"), to.join("console.log")));

    // Stopped and started again, it stays with its disk: with its host down, it does not start
    // elsewhere (on a fresh disk) but is refused.
    b.stop_instances(ACCOUNT, std::slice::from_ref(&id), false).unwrap();
    b.converge(&format!("{ACCOUNT}/{id}")).unwrap();
    assert_eq!(b.instance(ACCOUNT, &id).unwrap().state, storage::InstanceState::Stopped);
    cloud.set_mode("fake://two", HostMode::Unreachable);
    b.hosts().get(&hosts[1]).unwrap().probe();
    let refused = b.start_instances(ACCOUNT, std::slice::from_ref(&id));
    assert!(matches!(refused, Err(backend::Error::InsufficientCapacity(_))), "{refused:?}");
    cloud.set_mode("fake://two", HostMode::Answering);
    b.hosts().get(&hosts[1]).unwrap().probe();
    b.start_instances(ACCOUNT, std::slice::from_ref(&id)).unwrap();
    b.converge(&format!("{ACCOUNT}/{id}")).unwrap();
    let started = b.instance(ACCOUNT, &id).unwrap();
    assert_eq!((started.state, started.host_id.as_str()), (storage::InstanceState::Running, hosts[1].as_str()));
    assert_eq!(std::fs::read(to.join("root.qcow2")).unwrap(), source_bytes, "the same disk, not a fresh one");
}

/// A storage-copying migration that does not complete leaves the instance in its folder and
/// removes the target's.
#[test]
fn a_storage_copy_that_fails_removes_the_targets_folder() {
    use std::path::Path;
    let dir = tempfile::tempdir().unwrap();
    let (b, _cloud, id, hosts) = fakes::pair_with_local_disks(ACCOUNT, MigrationScript::NeverConverges, dir.path());
    let (from, to) = (dir.path().join("one").join(&id), dir.path().join("two").join(&id));
    let options = MigrationOptions { timeout_secs: Some(1), auto_converge: true, ..Default::default() };
    let migration = b.migrate_instance(&id, None, options).unwrap();
    let done = run(&b, &id, &migration);
    assert_eq!(done.status, MigrationStatus::Failed, "{done:?}");
    let instance = b.instance(ACCOUNT, &id).unwrap();
    assert_eq!((instance.host_id.as_str(), Path::new(&instance.dir)), (hosts[0].as_str(), from.as_path()));
    assert!(from.join("root.qcow2").exists() && !to.exists(), "the target's folder is gone, the source's kept");
}
