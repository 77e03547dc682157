//! Two lab hosts (`scripts/lab up 2 --local-disks`): network namespaces, each with its own
//! libvirtd reached over `qemu+tcp://`, its own OVN chassis and its own storage for its
//! instances' folders (neither sees the other's), guests on the overlay. Every migration here
//! copies the guest's root disk as its memory moves; the clients' lab test
//! (compat-tests/py/test_lab_aws_cli.py) migrates on shared storage.
//!
//! Needs root and the packages `scripts/setup-host` installs. `STRATUS_TEST_QEMU=1` (set by
//! `scripts/test`) makes a missing prerequisite a failure; without it the test is skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::hosts::HostConfig;
use backend::hypervisor::{Accelerator, PowerState};
use backend::images::NewImage;
use backend::instances::LaunchRequest;
use backend::scheduler::Policy;
use backend::{Backend, Error, Topology};
use storage::{InstanceRecord, InstanceState, MigrationOptions, MigrationRecord, MigrationStatus, Store};

const ACCOUNT: &str = "123456789012";

/// Two hosts without shared storage for their instances.
const LAB_UP: &[&str] = &["lab", "up", "2", "--local-disks"];
const VPC: &str = "vpc-0123456789abcdef0";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn script(args: &[&str]) -> String {
    let output = Command::new(repo_root().join("scripts").join(args[0])).args(&args[1..]).output().unwrap();
    assert!(output.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `key=value` from the last line a script printed.
fn field(out: &str, name: &str) -> String {
    let last = out.lines().last().unwrap_or_default();
    if name == "cmdline" {
        // The command line has spaces and runs to the end of the line.
        return last.split_once(" cmdline=").map(|(_, c)| c.to_owned()).unwrap_or_default();
    }
    last.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{name}="))).unwrap_or_default().to_owned()
}

/// The machine has one lab, and other tests (the clients' scenarios, which `scripts/test` runs
/// beside these) use it too: each holds this lock from `up` to `down`.
const LAB_LOCK: &str = "/run/stratus/lab.lock";

/// Holds the lab, and takes it down when the test ends, passed or not.
struct Lab {
    _lock: std::fs::File,
}

impl Lab {
    fn hold() -> Self {
        std::fs::create_dir_all("/run/stratus").unwrap();
        let lock = std::fs::File::create(LAB_LOCK).unwrap();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
        Self { _lock: lock }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // STRATUS_LAB_KEEP=1 leaves a failed run's lab up to look into (`scripts/lab down` after).
        if std::thread::panicking() && std::env::var("STRATUS_LAB_KEEP").is_ok_and(|v| v == "1") {
            eprintln!("the lab is left up (STRATUS_LAB_KEEP=1)");
            return;
        }
        let _ = Command::new(repo_root().join("scripts/lab")).arg("down").output();
    }
}

fn required() -> bool {
    std::env::var("STRATUS_TEST_QEMU").is_ok_and(|v| v == "1")
}

fn counter(console: &str) -> u64 {
    console.lines().filter_map(|l| l.trim().strip_prefix("stratus-counter ")?.parse().ok()).max().unwrap_or(0)
}

async fn wait_migration(b: &Backend, id: &str, within: Duration) -> MigrationRecord {
    let deadline = Instant::now() + within;
    loop {
        let record = b.migrations().unwrap().into_iter().find(|m| m.id == id).unwrap();
        if record.status.is_final() {
            return record;
        }
        assert!(Instant::now() < deadline, "migration {id} still {:?} after {within:?}", record.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The largest gap, in ms, in a `ping -D -i 0.01` transcript (by reply timestamps).
fn largest_gap_ms(transcript: &str) -> f64 {
    let times: Vec<f64> = transcript
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect();
    times.windows(2).map(|w| (w[1] - w[0]) * 1000.0).fold(0.0, f64::max)
}

/// Live migration between the lab hosts: the guest moves without rebooting while a pinger
/// runs; a second migration and a stop are refused meanwhile; a cancelled and a timed-out
/// migration leave the guest where it was.
async fn migrations(b: &Arc<Backend>, launched: &[InstanceRecord]) {
    let (moving, other) = (&launched[0], &launched[1]);
    let console = |id: &str| String::from_utf8_lossy(&b.console_output(ACCOUNT, id).unwrap()).into_owned();
    let before = counter(&console(&moving.id));
    let public = moving.public_ip.clone().expect("a public address at launch");
    let mut pinger = Command::new("ping").args(["-D", "-i", "0.01", &public]).stdout(Stdio::piped()).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Asked first what it will cost: QEMU measures the guest's dirty rate on the real host.
    let plan = b.estimate_migration(&moving.id, Some(&other.host_id), &MigrationOptions::default()).unwrap();
    assert_eq!(plan.target_host, other.host_id);
    assert!(plan.inputs.resident_bytes > 0, "the host tells the guest's resident memory: {plan:?}");
    assert!(plan.inputs.disk_bytes > 0, "the disk is copied, and what it holds is counted: {plan:?}");
    assert_eq!(plan.estimate.ending, backend::migration_plan::Ending::PreCopy, "an idle guest: {plan:?}");
    let predicted = plan.estimate.total_ms.expect("a converging migration has a total");
    let migration = b.migrate_instance(&moving.id, Some(&other.host_id), MigrationOptions::default()).unwrap();
    assert_eq!(
        (migration.source_host.as_str(), migration.target_host.as_str()),
        (moving.host_id.as_str(), other.host_id.as_str())
    );
    let again = b.migrate_instance(&moving.id, None, MigrationOptions::default());
    assert!(matches!(again, Err(Error::IncorrectInstanceState { state: "migrating", .. })), "{again:?}");
    let stop = b.stop_instances(ACCOUNT, std::slice::from_ref(&moving.id), false);
    assert!(matches!(stop, Err(Error::IncorrectInstanceState { .. })), "{stop:?}");
    let done = wait_migration(b, &migration.id, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = Command::new("kill").args(["-INT", &pinger.id().to_string()]).status();
    let mut transcript = String::new();
    std::io::Read::read_to_string(pinger.stdout.as_mut().unwrap(), &mut transcript).unwrap();
    let _ = pinger.wait();
    assert_eq!(done.status, MigrationStatus::Completed, "{:?}", done.error);
    let recorded = done.prediction.clone().expect("the real host measured the guest before it moved");
    eprintln!("migration's own prediction: {recorded:?}");
    let p = &done.progress;
    eprintln!(
        "migration: predicted {predicted} ms (dirty rate {} B/s, resident {} B), total {} ms, downtime {} ms, \
         setup {} ms, memory {} of {} bytes, largest ping gap {:.0} ms",
        plan.inputs.dirty_rate_bytes_per_sec,
        plan.inputs.resident_bytes,
        p.time_elapsed_ms,
        p.downtime_ms,
        p.setup_time_ms,
        p.memory_processed_bytes,
        p.memory_total_bytes,
        largest_gap_ms(&transcript)
    );
    assert!(p.time_elapsed_ms > 0 && p.memory_total_bytes >= 256 << 20, "{p:?}");
    assert!(p.time_elapsed_ms < 60_000 && p.downtime_ms < 10_000, "{p:?}");
    // Replies before and after the switch-over, or a gap measured over nothing proves nothing.
    let replies = transcript.lines().filter(|l| l.contains("bytes from")).count();
    assert!(replies >= 100, "the pinger got {replies} replies:\n{transcript}");
    assert!(largest_gap_ms(&transcript) < 5_000.0, "the guest stopped answering for too long");
    let now = b.instance(ACCOUNT, &moving.id).unwrap();
    assert_eq!(now.host_id, other.host_id, "the instance's host is the target");
    assert_eq!((now.state, now.migration.as_deref()), (InstanceState::Running, None));
    assert_eq!(b.hosts().get(&other.host_id).unwrap().driver.state(&moving.id).unwrap(), Some(PowerState::Running));
    assert_eq!(b.hosts().get(&moving.host_id).unwrap().driver.state(&moving.id).unwrap(), None, "gone from the source");
    // No job runs now (libvirt answers no statistics at all), and the finished one is kept.
    let target = b.hosts().get(&other.host_id).unwrap();
    assert_eq!(target.driver.job_progress(&moving.id).unwrap(), None);
    assert!(target.driver.completed_job(&moving.id).unwrap().is_some_and(|j| j.time_elapsed_ms > 0));
    let after = console(&moving.id);
    assert_eq!(after.matches("STRATUS-TEST-GUEST BOOTED").count(), 1, "no reboot");
    assert!(
        counter(&after) > before,
        "the counter went on: {before} → {}; {}:\n{after}",
        counter(&after),
        whereabouts(b, &moving.id)
    );
    // Its disk came along: the folder is the target's, the source's is gone, and the guest's
    // disk checker finds every block it wrote before and during the copy.
    let target_dir = migration.target_dir.clone().expect("hosts without shared storage copy the disk");
    assert_eq!((now.dir.as_str(), Path::new(&moving.dir).exists()), (target_dir.as_str(), false));
    let copied = (p.disk_total_bytes, p.disk_processed_bytes);
    eprintln!("disk copied: {copied:?} (total, processed)");
    // A completed copy is whole, however little of it the source's readings caught (the
    // unit test `a_completed_copy_is_recorded_whole_however_little_the_readings_caught`).
    assert!(copied.0 > 0 && copied.1 >= copied.0 && p.disk_remaining_bytes == 0, "the copy's figures: {p:?}");
    disk_checker_goes_on(b, &moving.id, 2).await;

    // Cancelled and timed out (bandwidth held to 1 MiB/s so that neither can finish first):
    // the guest stays on the source, running.
    let slow = MigrationOptions { bandwidth_mibps: Some(1), ..Default::default() };
    let cancelled = b.migrate_instance(&other.id, None, slow.clone()).unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    b.cancel_migration(&cancelled.id).unwrap();
    let cancelled = wait_migration(b, &cancelled.id, Duration::from_secs(30)).await;
    assert_eq!(cancelled.status, MigrationStatus::Cancelled, "{:?}", cancelled.error);
    let timeout = MigrationOptions { timeout_secs: Some(2), ..slow };
    let timed_out = b.migrate_instance(&other.id, None, timeout).unwrap();
    let timed_out = wait_migration(b, &timed_out.id, Duration::from_secs(30)).await;
    assert_eq!(timed_out.status, MigrationStatus::Failed);
    assert!(timed_out.error.as_deref().unwrap_or_default().contains("timed out"), "{:?}", timed_out.error);
    let still = b.instance(ACCOUNT, &other.id).unwrap();
    assert_eq!((still.host_id.as_str(), still.migration.as_deref()), (other.host_id.as_str(), None));
    assert_eq!(b.hosts().get(&other.host_id).unwrap().driver.state(&other.id).unwrap(), Some(PowerState::Running));
    assert!(matches!(b.cancel_migration(&cancelled.id), Err(Error::MigrationFinished { .. })));
    // Neither left a copy behind on the target; the guest's own disk is whole.
    for ended in [&cancelled, &timed_out] {
        let copy = ended.target_dir.as_deref().expect("a copying migration");
        assert!(!Path::new(copy).exists() && Path::new(&still.dir).exists(), "{copy} is removed");
    }
    disk_checker_goes_on(b, &other.id, 1).await;

    // The target's libvirtd dies mid-migration: the job fails and the guest runs on at the
    // source. (`scripts/lab up` brings the daemon back afterwards.)
    let target_id = moving.host_id.clone();
    let slow = MigrationOptions { bandwidth_mibps: Some(2), ..Default::default() };
    let doomed = b.migrate_instance(&other.id, Some(&target_id), slow).unwrap();
    // Killed once memory moves (after the prediction's measurement, libvirt's preparation).
    let deadline = Instant::now() + Duration::from_secs(30);
    while b
        .migration(&doomed.id)
        .unwrap()
        .is_some_and(|m| matches!(m.status, MigrationStatus::Queued | MigrationStatus::Preparing))
    {
        assert!(Instant::now() < deadline, "the migration never started copying");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let target_index = if uris_index(b, &target_id) == 0 { "1" } else { "2" };
    let pid = std::fs::read_to_string(format!("/var/lib/stratus/lab/h{target_index}/libvirtd.pid")).unwrap();
    let killed = Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
    assert!(killed.success());
    let doomed = wait_migration(b, &doomed.id, Duration::from_secs(90)).await;
    assert_eq!(doomed.status, MigrationStatus::Failed, "{doomed:?}");
    eprintln!("target killed mid-migration: {:?}", doomed.error);
    let still = b.instance(ACCOUNT, &other.id).unwrap();
    assert_eq!((still.host_id.as_str(), still.migration.as_deref()), (other.host_id.as_str(), None));
    assert_eq!(b.hosts().get(&other.host_id).unwrap().driver.state(&other.id).unwrap(), Some(PowerState::Running));
    assert!(!Path::new(doomed.target_dir.as_deref().unwrap()).exists(), "the half-made copy is removed");
    script(LAB_UP);
    disk_checker_goes_on(b, &other.id, 1).await;
}

/// A checker's passes on a console, from its `<line> pass=K lost=N` lines: (pass, what it
/// found lost). The memory checker's line is `stratus-dirty` (pages that lost what it wrote),
/// the disk checker's `stratus-diskcheck` (blocks that lost what the pass before wrote).
fn checker_passes(console: &str, line: &str) -> Vec<(u64, u64)> {
    let prefix = format!("{line} pass=");
    console
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix(&prefix)?;
            let (pass, lost) = rest.split_once(" lost=")?;
            Some((pass.parse().ok()?, lost.parse().ok()?))
        })
        .collect()
}

fn dirtier_passes(console: &str) -> Vec<(u64, u64)> {
    checker_passes(console, "stratus-dirty")
}

/// Waits until the guest's memory checker has gone `more` passes past `after`, and answers
/// the last pass; every pass up to `after` must have found all of its writes, and every later
/// one too unless `tcg_post_copy` (see the call).
async fn checker_goes_on(b: &Backend, id: &str, after: u64, more: u64, tcg_post_copy: bool) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let console = String::from_utf8_lossy(&b.console_output(ACCOUNT, id).unwrap()).into_owned();
        let passes = dirtier_passes(&console);
        let lost: Vec<_> =
            passes.iter().filter(|(pass, lost)| *lost > 0 && (!tcg_post_copy || *pass <= after)).collect();
        assert!(lost.is_empty(), "the guest lost memory writes: {lost:?}");
        let later: Vec<_> = passes.iter().filter(|(pass, lost)| *lost > 0 && *pass > after).collect();
        if !later.is_empty() {
            eprintln!("QEMU's post-copy under TCG lost guest writes: {later:?} (README, docs/benchmarks.md)");
        }
        let last = passes.last().map_or(0, |(pass, _)| *pass);
        if last >= after + more {
            return last;
        }
        assert!(Instant::now() < deadline, "the memory checker stopped at pass {last}:\n{console}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Escalation on real QEMU: a guest that dirties its memory (96 MiB/s over 32 MiB) faster than
/// its migration may send (BandwidthMiBps 32) cannot converge by pre-copy. Without post-copy
/// the escalation raises the allowed downtime to the budget, never past it, and aborts, the
/// guest running on at the source; with post-copy allowed it moves through post-copy. The
/// guest's memory checker finds every write it made, before, between and after.
async fn escalations(b: &Arc<Backend>, dirty: &InstanceRecord) {
    let console = String::from_utf8_lossy(&b.console_output(ACCOUNT, &dirty.id).unwrap()).into_owned();
    assert!(console.contains("stratus-info dirty=32MiB"), "the test image has no memory dirtier:\n{console}");
    let pass = checker_goes_on(b, &dirty.id, 0, 3, false).await;
    let budget = MigrationOptions {
        bandwidth_mibps: Some(32),
        max_downtime_ms: Some(40),
        timeout_secs: Some(120),
        ..Default::default()
    };
    let over = b.migrate_instance(&dirty.id, None, budget.clone()).unwrap();
    let over = wait_migration(b, &over.id, Duration::from_secs(150)).await;
    let kinds: Vec<&str> = over.events.iter().map(|e| e.kind.name()).filter(|k| *k != "pass").collect();
    eprintln!("over budget: {:?} after {} passes, {kinds:?}", over.error, over.progress.iterations);
    for e in &over.events {
        eprintln!(
            "  {} ms {} pass {}: {} MiB left, dirty {} MiB/s, sent {} MiB/s, allowed {} ms",
            e.at_ms,
            e.kind.name(),
            e.iteration,
            e.remaining_bytes >> 20,
            e.dirty_rate_bytes_per_sec >> 20,
            e.bandwidth_bytes_per_sec >> 20,
            e.downtime_limit_ms
        );
    }
    assert_eq!(over.status, MigrationStatus::Failed, "{over:?}");
    let error = over.error.clone().unwrap_or_default();
    assert!(error.contains("cannot converge within MaxDowntimeMillis 40"), "{error}");
    assert_eq!(kinds.iter().filter(|k| **k == "downtime-raised").count(), 2, "10, 20, then 40 ms: {kinds:?}");
    assert!(kinds.ends_with(&["aborted", "failed"]), "{kinds:?}");
    assert!(over.events.iter().all(|e| e.downtime_limit_ms <= 40), "{:?}", over.events);
    let still = b.instance(ACCOUNT, &dirty.id).unwrap();
    assert_eq!(
        (still.host_id.as_str(), still.state, still.migration.as_deref()),
        (dirty.host_id.as_str(), InstanceState::Running, None)
    );
    let source = b.hosts().get(&dirty.host_id).unwrap();
    assert_eq!(source.driver.state(&dirty.id).unwrap(), Some(PowerState::Running));
    let pass = checker_goes_on(b, &dirty.id, pass, 3, false).await;

    let post = MigrationOptions { allow_post_copy: true, ..budget };
    let moved = b.migrate_instance(&dirty.id, None, post).unwrap();
    let moved = wait_migration(b, &moved.id, Duration::from_secs(150)).await;
    let kinds: Vec<&str> = moved.events.iter().map(|e| e.kind.name()).filter(|k| *k != "pass").collect();
    eprintln!(
        "post-copy: {:?} in {} ms, downtime {} ms, paused {:?} ms, ping {:?}, predicted {:?}, {kinds:?}",
        moved.error,
        moved.progress.time_elapsed_ms,
        moved.progress.downtime_ms,
        moved.post_copy_pause_ms,
        moved.ping,
        moved.prediction
    );
    assert_eq!(moved.status, MigrationStatus::Completed, "{moved:?}");
    // The pause Stratus watched is the switch alone (the devices' state: 48-112 ms measured),
    // while the guest's remaining memory (its 32 MiB being rewritten, at the limit of 32 MiB/s)
    // follows for about a second more; libvirt's downtime for this migration has counted that
    // second too (1,050 ms against a watched 93 ms), but not always (README).
    let pause = moved.post_copy_pause_ms.expect("the switch to post-copy was watched");
    assert!(pause > 0 && pause < 1500, "paused {pause} ms: {moved:?}");
    assert!(kinds.contains(&"post-copy") && kinds.ends_with(&["completed"]), "{kinds:?}");
    let now = b.instance(ACCOUNT, &dirty.id).unwrap();
    assert_eq!((now.host_id.as_str(), now.state), (moved.target_host.as_str(), InstanceState::Running));
    assert_eq!(b.hosts().get(&moved.target_host).unwrap().driver.state(&dirty.id).unwrap(), Some(PowerState::Running));
    assert_eq!(source.driver.state(&dirty.id).unwrap(), None, "gone from the source");
    // Under TCG, QEMU 7.2's post-copy loses some of the guest's writes at the switch now and
    // then (1 of 8 runs of this test with the bandwidth limit, 2 of 2 without; README): the
    // checker must go on, and what it lost is reported, not failed on. Under KVM it must
    // find every write.
    let tcg = b.hosts().get(&moved.target_host).unwrap().accelerator == Accelerator::Tcg;
    checker_goes_on(b, &dirty.id, pass, 3, tcg).await;
}

/// Whether lab host `index` (0-based) sees `path`: looked up in its daemons' mount namespace.
fn host_sees(index: usize, path: &Path) -> bool {
    let pid = std::fs::read_to_string(format!("/var/lib/stratus/lab/h{}/virtlogd.pid", index + 1)).unwrap();
    let status = Command::new("nsenter").args(["-t", pid.trim(), "-m", "test", "-e"]).arg(path).status().unwrap();
    status.success()
}

fn disk_passes(console: &str) -> Vec<(u64, u64)> {
    checker_passes(console, "stratus-diskcheck")
}

/// Waits until the guest's disk checker has gone `more` passes past the last one now, every
/// pass finding what the one before wrote; answers the last pass.
async fn disk_checker_goes_on(b: &Backend, id: &str, more: u64) -> u64 {
    let console = |id: &str| String::from_utf8_lossy(&b.console_output(ACCOUNT, id).unwrap()).into_owned();
    let from = disk_passes(&console(id)).last().map_or(0, |(pass, _)| *pass);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let text = console(id);
        let passes = disk_passes(&text);
        let lost: Vec<_> = passes.iter().filter(|(_, lost)| *lost > 0).collect();
        assert!(lost.is_empty(), "{id}'s disk lost writes: {lost:?}");
        let last = passes.last().map_or(0, |(pass, _)| *pass);
        if last >= from + more {
            return last;
        }
        if Instant::now() >= deadline {
            panic!("{id}'s disk checker stopped at pass {last}; {}:\n{text}", whereabouts(b, id));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Host maintenance without shared storage: the host the migrations left the two idle guests
/// on is drained, its guests moving with their disks to the other, running on, their disk
/// checkers finding every write; its storage no longer holds their folders. (The dirtying
/// guest is gone by then.)
async fn drain(b: &Arc<Backend>, launched: &[InstanceRecord]) {
    let on = |host: &str| -> Vec<InstanceRecord> {
        launched.iter().map(|r| b.instance(ACCOUNT, &r.id).unwrap()).filter(|r| r.host_id == host).collect()
    };
    let crowded = b.hosts().iter().map(|h| h.id.clone()).max_by_key(|h| on(h).len()).unwrap();
    let other = b.hosts().iter().map(|h| h.id.clone()).find(|h| *h != crowded).unwrap();
    let leaving = on(&crowded);
    b.set_maintenance(&crowded, true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !on(&crowded).is_empty() || leaving.iter().any(|r| b.instance(ACCOUNT, &r.id).unwrap().migration.is_some()) {
        assert!(Instant::now() < deadline, "the drain did not finish: {:?}", b.migrations().unwrap());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    b.set_maintenance(&crowded, false).unwrap();
    for record in &leaving {
        let now = b.instance(ACCOUNT, &record.id).unwrap();
        assert_eq!((now.state, now.host_id.as_str()), (InstanceState::Running, other.as_str()));
        assert!(!Path::new(&record.dir).exists() && Path::new(&now.dir).exists(), "{} moved its folder", now.id);
        disk_checker_goes_on(b, &record.id, 2).await;
    }
}

/// Where a guest runs, its state there and its console log's file: whether a guest froze
/// or only its console log stopped (each seen after a copying migration).
fn whereabouts(b: &Backend, id: &str) -> String {
    let now = b.instance(ACCOUNT, id).unwrap();
    let state = b.hosts().get(&now.host_id).map(|h| h.driver.state(id));
    let log = backend::instances::console_path(&now);
    let size = std::fs::metadata(&log).map(|m| m.len());
    let listing =
        std::fs::read_dir(&now.dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect::<Vec<_>>());
    format!("on {} it is {state:?}, {} is {size:?} bytes, its folder holds {listing:?}", now.host_id, log.display())
}

/// Which lab host (0-based, in config order) has this id.
fn uris_index(b: &Backend, host_id: &str) -> usize {
    let text = std::fs::read_to_string("/var/lib/stratus/lab/stratus.toml").unwrap();
    let uris: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("uri = \"")?.strip_suffix('"')).collect();
    let uri = &b.hosts().get(host_id).unwrap().config.uri;
    uris.iter().position(|u| u == uri).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_spread_over_two_lab_hosts() {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !root || !Path::new("/usr/sbin/libvirtd").exists() {
        assert!(!required(), "STRATUS_TEST_QEMU=1 but the lab needs root and libvirtd (scripts/setup-host)");
        eprintln!("skipping the lab test: it needs root and libvirtd");
        return;
    }
    if !common::Network::available() {
        assert!(!required(), "STRATUS_TEST_QEMU=1 but OVN is not running (run scripts/setup-host)");
        eprintln!("skipping the lab test: OVN is not running (run scripts/setup-host)");
        return;
    }
    let _lab = Lab::hold();
    let config = field(&script(LAB_UP), "config");
    let text = std::fs::read_to_string(&config).unwrap();
    let value = |key: &str| -> Vec<String> {
        let prefix = format!("{key} = \"");
        text.lines().filter_map(|l| Some(l.strip_prefix(&prefix)?.strip_suffix('"')?.to_owned())).collect()
    };
    let (uris, chassis, disk_dirs) = (value("uri"), value("chassis"), value("disk_dir"));
    assert_eq!(
        (uris.len(), chassis.len(), disk_dirs.len()),
        (2, 2, 2),
        "the lab config names two hosts, their chassis and their own storage:\n{text}"
    );

    let image = script(&["build-test-image"]);
    let dir = tempfile::tempdir().unwrap();
    let hosts: Vec<HostConfig> = (0..2)
        .map(|i| {
            let mut host = HostConfig::new(&uris[i]);
            host.accelerator = Some(Accelerator::Tcg);
            // Each lab host is an OVN chassis of its own; Geneve joins them and this machine.
            host.chassis = Some(chassis[i].clone());
            host.disk_dir = Some(PathBuf::from(&disk_dirs[i]));
            host
        })
        .collect();
    let topology = Topology { hosts, placement: Policy::Spread, ..Topology::default() };
    let b = Arc::new(
        Backend::new(Store::open(&dir.path().join("db.redb")).unwrap(), topology)
            .with_data_dir(dir.path())
            .with_stop_timeout(Duration::from_secs(30))
            .with_ovn(common::NORTHBOUND),
    );
    let _network = common::Network::hold(&b);
    b.start_conductor(Duration::from_millis(500));
    // Guests that keep rewriting and checking their root disk: a copy that lost a write shows.
    let new = NewImage {
        name: "lab image".into(),
        disk: field(&image, "disk"),
        kernel: Some(field(&image, "kernel")),
        initrd: Some(field(&image, "initrd")),
        cmdline: Some(format!("{} stratus.diskcheck=32", field(&image, "cmdline"))),
        ..Default::default()
    };
    let image_id = b.register_image(ACCOUNT, new.clone()).unwrap().id;
    let req =
        LaunchRequest { image_id, instance_type: "t3.nano".into(), min_count: 2, max_count: 2, ..Default::default() };
    let launched = b.run_instances(ACCOUNT, VPC, req).unwrap();
    assert_ne!(launched[0].host_id, launched[1].host_id, "spread puts one instance on each host");
    // A guest that keeps dirtying its memory and checks it (the escalation's subject).
    let dirtying = NewImage {
        name: "lab dirtying image".into(),
        cmdline: Some(format!("{} stratus.dirty=32 stratus.dirty_rate=96", field(&image, "cmdline"))),
        ..new
    };
    let image_id = b.register_image(ACCOUNT, dirtying).unwrap().id;
    let req =
        LaunchRequest { image_id, instance_type: "t3.nano".into(), min_count: 1, max_count: 1, ..Default::default() };
    let dirty = b.run_instances(ACCOUNT, VPC, req).unwrap().remove(0);
    let ids: Vec<String> = launched.iter().chain([&dirty]).map(|r| r.id.clone()).collect();

    // Each boots on its own host, and this machine reaches both at their public addresses (its
    // chassis is the VPC's gateway, a tunnel hop away) once their group lets ICMP in.
    common::allow_ping(&b, ACCOUNT, VPC);
    let deadline = Instant::now() + Duration::from_secs(120);
    for record in launched.iter().chain([&dirty]) {
        loop {
            let console = String::from_utf8_lossy(&b.console_output(ACCOUNT, &record.id).unwrap()).into_owned();
            if console.contains("STRATUS-TEST-GUEST BOOTED")
                && b.instance(ACCOUNT, &record.id).unwrap().state == InstanceState::Running
            {
                break;
            }
            assert!(Instant::now() < deadline, "{} did not boot:\n{console}", record.id);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let host = b.hosts().get(&record.host_id).unwrap();
        assert_eq!(host.driver.state(&record.id).unwrap(), Some(PowerState::Running));
        let public = record.public_ip.clone().expect("a public address at launch");
        let ping = Command::new("ping").args(["-c", "1", "-w", "20", &public]).output().unwrap();
        assert!(ping.status.success(), "ping {public}: {}", String::from_utf8_lossy(&ping.stdout));
    }

    // Each host sees its own storage, not the other's: the disks really are copied.
    for (record, index) in launched.iter().map(|r| (r, uris_index(&b, &r.host_id))) {
        let folder = Path::new(&record.dir);
        assert!(folder.starts_with(&disk_dirs[index]), "{} is on its host's own storage", record.dir);
        assert!(host_sees(index, folder) && !host_sees(1 - index, folder), "only its host sees {}", record.dir);
    }

    escalations(&b, &dirty).await;
    // The dirtier is gone before the disk-checked guests move: under TCG (QEMU 7.2), a guest
    // reading its disk as it migrates on hosts whose CPUs are saturated sometimes crashes after
    // the move (a kernel panic or soft lockup on the target, its memory inconsistent),
    // reproduced with plain `virsh migrate` with and without the disk copied; never seen with
    // the CPUs to spare, nor for a guest without disk I/O (docs/benchmarks.md).
    b.terminate_instances(ACCOUNT, std::slice::from_ref(&dirty.id)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while b.instance(ACCOUNT, &dirty.id).unwrap().state != InstanceState::Terminated {
        assert!(Instant::now() < deadline, "the dirtier was not terminated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    migrations(&b, &launched).await;
    drain(&b, &launched).await;

    b.terminate_instances(ACCOUNT, &ids).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ids.iter().all(|id| b.instance(ACCOUNT, id).unwrap().state == InstanceState::Terminated) {
        assert!(Instant::now() < deadline, "instances not terminated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &ids {
        let host = b.instance(ACCOUNT, id).unwrap().host_id;
        assert_eq!(b.hosts().get(&host).unwrap().driver.state(id).unwrap(), None);
    }
}
