//! Migration edge cases libvirt cannot produce on demand, against a pair of fake hosts
//! ([`backend::fake`]): the switch to post-copy when pre-copy does not converge, a timeout that
//! aborts, and a failure that loses the guest on the source (reported, not hidden).

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
    let options = MigrationOptions { allow_post_copy: true, ..Default::default() };
    let migration = b.migrate_instance(&id, None, options).unwrap();
    assert_eq!(migration.target_host, hosts[1]);
    let done = run(&b, &id, &migration);
    assert_eq!(done.status, MigrationStatus::Completed, "{:?}", done.error);
    assert_eq!(cloud.migration_outcome(), (true, false), "the monitor switched to post-copy, aborted nothing");
    assert_eq!((done.progress.time_elapsed_ms, done.progress.downtime_ms), (1234, 56), "final stats from the target");
    assert_eq!(b.instance(ACCOUNT, &id).unwrap().host_id, hosts[1]);
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
    let options = MigrationOptions { timeout_secs: Some(1), ..Default::default() };
    let migration = b.migrate_instance(&id, None, options).unwrap();
    let done = run(&b, &id, &migration);
    assert_eq!(done.status, MigrationStatus::Failed);
    assert!(done.error.as_deref().unwrap_or_default().contains("timed out"), "{:?}", done.error);
    assert_eq!(cloud.migration_outcome(), (false, true), "aborted, never switched");
    let instance = b.instance(ACCOUNT, &id).unwrap();
    assert_eq!((instance.host_id.as_str(), instance.migration.as_deref()), (hosts[0].as_str(), None));
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
