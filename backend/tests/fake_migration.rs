//! Migration edge cases libvirt cannot produce on demand, against a fake pair of hosts: the
//! switch to post-copy when pre-copy does not converge, a timeout that aborts, and a failure
//! that loses the guest on the source (reported, not hidden).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend::hosts::{Host, HostConfig, HostPool};
use backend::hypervisor::{
    Accelerator, DomainSpec, DomainStatus, DriverError, EventSink, HostInfo, Hypervisor, JobProgress, MigrationOptions,
    PowerState,
};
use backend::instances::LaunchRequest;
use backend::{Backend, Topology};
use storage::{MigrationRecord, MigrationStatus, Store};

const ACCOUNT: &str = "123456789012";

/// How the fake's migrations behave.
#[derive(Clone, Copy, PartialEq)]
enum Script {
    /// Pre-copy never converges: iterations grow, memory stays; only post-copy or an abort ends it.
    NeverConverges,
    /// The copy fails and the source loses the guest.
    FailsAndLosesGuest,
}

#[derive(Default)]
struct World {
    /// `(host uri, domain)` → state.
    domains: HashMap<(String, String), PowerState>,
    polls: u64,
    post_copy: bool,
    aborted: bool,
    /// A migration call is under way (its job exists).
    migrating: bool,
}

struct FakeHost {
    uri: String,
    world: Arc<Mutex<World>>,
    script: Script,
}

impl FakeHost {
    fn key(&self, name: &str) -> (String, String) {
        (self.uri.clone(), name.to_owned())
    }
}

impl Hypervisor for FakeHost {
    fn host_info(&self) -> Result<HostInfo, DriverError> {
        Ok(HostInfo { vcpus: 8, memory_mib: 8192 })
    }
    fn domains(&self) -> Result<Vec<DomainStatus>, DriverError> {
        let world = self.world.lock().unwrap();
        Ok(world
            .domains
            .iter()
            .filter(|((uri, _), _)| *uri == self.uri)
            .map(|((_, name), state)| DomainStatus { name: name.clone(), state: *state, cpu_time_ns: 0 })
            .collect())
    }
    fn state(&self, name: &str) -> Result<Option<PowerState>, DriverError> {
        Ok(self.world.lock().unwrap().domains.get(&self.key(name)).copied())
    }
    fn define(&self, spec: &DomainSpec) -> Result<(), DriverError> {
        self.world.lock().unwrap().domains.entry(self.key(&spec.name)).or_insert(PowerState::ShutOff);
        Ok(())
    }
    fn start(&self, name: &str) -> Result<(), DriverError> {
        self.world.lock().unwrap().domains.insert(self.key(name), PowerState::Running);
        Ok(())
    }
    fn shutdown(&self, name: &str) -> Result<(), DriverError> {
        self.destroy(name)
    }
    fn destroy(&self, name: &str) -> Result<(), DriverError> {
        if let Some(state) = self.world.lock().unwrap().domains.get_mut(&self.key(name)) {
            *state = PowerState::ShutOff;
        }
        Ok(())
    }
    fn reboot(&self, _: &str) -> Result<(), DriverError> {
        Ok(())
    }
    fn undefine(&self, name: &str) -> Result<(), DriverError> {
        self.world.lock().unwrap().domains.remove(&self.key(name));
        Ok(())
    }
    fn suspend(&self, _: &str) -> Result<(), DriverError> {
        Ok(())
    }
    fn resume(&self, _: &str) -> Result<(), DriverError> {
        Ok(())
    }
    fn watch(&self, _: EventSink) {}
    fn migrate(&self, name: &str, target_uri: &str, options: &MigrationOptions) -> Result<(), DriverError> {
        self.world.lock().unwrap().migrating = true;
        let result = self.run_migration(name, target_uri, options);
        self.world.lock().unwrap().migrating = false;
        result
    }
    fn job_progress(&self, _: &str) -> Result<Option<JobProgress>, DriverError> {
        let mut world = self.world.lock().unwrap();
        if !world.migrating {
            return Ok(None);
        }
        world.polls += 1;
        Ok(Some(JobProgress {
            time_elapsed_ms: world.polls * 250,
            memory_total_bytes: 512 << 20,
            memory_remaining_bytes: 64 << 20,
            iterations: world.polls,
            ..Default::default()
        }))
    }
    fn completed_job(&self, _: &str) -> Result<Option<JobProgress>, DriverError> {
        Ok(Some(JobProgress { time_elapsed_ms: 1234, downtime_ms: 56, ..Default::default() }))
    }
    fn abort_job(&self, _: &str) -> Result<(), DriverError> {
        self.world.lock().unwrap().aborted = true;
        Ok(())
    }
    fn start_post_copy(&self, _: &str) -> Result<(), DriverError> {
        self.world.lock().unwrap().post_copy = true;
        Ok(())
    }

    // Migration is all these hosts know: disks are never plugged.
    fn attach_disk(&self, _: &str, _: &backend::hypervisor::AttachedDisk) -> Result<(), DriverError> {
        Err(DriverError::Failed("fake hosts have no disks".into()))
    }

    fn detach_disk(&self, _: &str, _: &str, _: Duration) -> Result<(), DriverError> {
        Err(DriverError::Failed("fake hosts have no disks".into()))
    }

    fn resize_disk(&self, _: &str, _: &str, _: u64) -> Result<(), DriverError> {
        Err(DriverError::Failed("fake hosts have no disks".into()))
    }

    fn define_filter(&self, _: &str) -> Result<(), DriverError> {
        Ok(())
    }

    fn undefine_filter(&self, _: &str) -> Result<(), DriverError> {
        Ok(())
    }
}

impl FakeHost {
    /// The migration call itself, per the script.
    fn run_migration(&self, name: &str, target_uri: &str, _: &MigrationOptions) -> Result<(), DriverError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let mut world = self.world.lock().unwrap();
            match self.script {
                Script::FailsAndLosesGuest if world.polls >= 2 => {
                    world.domains.remove(&self.key(name));
                    return Err(DriverError::Failed("the target went away".into()));
                }
                _ if world.post_copy => {
                    world.domains.remove(&self.key(name));
                    world.domains.insert((target_uri.to_owned(), name.to_owned()), PowerState::Running);
                    return Ok(());
                }
                _ if world.aborted => return Err(DriverError::Failed("operation aborted".into())),
                _ => {}
            }
            assert!(Instant::now() < deadline, "the fake migration was never ended");
        }
    }
}

/// Two fake hosts sharing one world, a running instance on the first.
fn setup(script: Script, dir: &std::path::Path) -> (Arc<Backend>, Arc<Mutex<World>>, String, Vec<String>) {
    let world = Arc::new(Mutex::new(World::default()));
    let configs: Vec<HostConfig> = ["fake://one", "fake://two"].iter().map(|uri| HostConfig::new(uri)).collect();
    let hosts = HostPool::new(configs.iter().map(|config| {
        let mut config = config.clone();
        config.accelerator = Some(Accelerator::Test);
        let driver = Arc::new(FakeHost { uri: config.uri.clone(), world: Arc::clone(&world), script });
        Host::new(config, "us-east-1a".into(), driver)
    }));
    let host_ids: Vec<String> = configs.iter().map(HostConfig::host_id).collect();
    let topology = Topology { hosts: configs, ..Topology::default() };
    let b = Arc::new(Backend::with_hosts(Store::in_memory().unwrap(), topology, hosts).with_data_dir(dir));
    let disk = dir.join("disk.qcow2");
    let made = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&disk)
        .arg("64M")
        .status()
        .unwrap();
    assert!(made.success());
    let new = backend::images::NewImage {
        name: "fake image".into(),
        disk: disk.to_string_lossy().into(),
        ..Default::default()
    };
    let image_id = b.register_image(ACCOUNT, new).unwrap().id;
    let req =
        LaunchRequest { image_id, instance_type: "t3.nano".into(), min_count: 1, max_count: 1, ..Default::default() };
    let id = b.run_instances(ACCOUNT, "vpc-1", req).unwrap().remove(0).id;
    b.converge(&format!("{ACCOUNT}/{id}")).unwrap();
    (b, world, id, host_ids)
}

/// Runs the instance's migration work to its end (what the conductor does) and reads the result.
fn run(b: &Backend, id: &str, migration: &MigrationRecord) -> MigrationRecord {
    b.converge(&format!("{ACCOUNT}/{id}")).unwrap();
    b.migrations().unwrap().into_iter().find(|m| m.id == migration.id).unwrap()
}

#[test]
fn post_copy_takes_over_when_pre_copy_does_not_converge() {
    let dir = tempfile::tempdir().unwrap();
    let (b, world, id, hosts) = setup(Script::NeverConverges, dir.path());
    let options = MigrationOptions { allow_post_copy: true, ..Default::default() };
    let migration = b.migrate_instance(&id, None, options).unwrap();
    assert_eq!(migration.target_host, hosts[1]);
    let done = run(&b, &id, &migration);
    assert_eq!(done.status, MigrationStatus::Completed, "{:?}", done.error);
    assert!(world.lock().unwrap().post_copy, "the monitor switched to post-copy");
    assert!(!world.lock().unwrap().aborted);
    assert_eq!((done.progress.time_elapsed_ms, done.progress.downtime_ms), (1234, 56), "final stats from the target");
    assert_eq!(b.instance(ACCOUNT, &id).unwrap().host_id, hosts[1]);
}

#[test]
fn a_migration_that_never_converges_times_out_and_stays_put() {
    let dir = tempfile::tempdir().unwrap();
    let (b, world, id, hosts) = setup(Script::NeverConverges, dir.path());
    let options = MigrationOptions { timeout_secs: Some(1), ..Default::default() };
    let migration = b.migrate_instance(&id, None, options).unwrap();
    let done = run(&b, &id, &migration);
    assert_eq!(done.status, MigrationStatus::Failed);
    assert!(done.error.as_deref().unwrap_or_default().contains("timed out"), "{:?}", done.error);
    assert!(world.lock().unwrap().aborted && !world.lock().unwrap().post_copy, "aborted, never switched");
    let instance = b.instance(ACCOUNT, &id).unwrap();
    assert_eq!((instance.host_id.as_str(), instance.migration.as_deref()), (hosts[0].as_str(), None));
}

#[test]
fn a_failure_that_loses_the_guest_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _world, id, hosts) = setup(Script::FailsAndLosesGuest, dir.path());
    let migration = b.migrate_instance(&id, None, MigrationOptions::default()).unwrap();
    let done = run(&b, &id, &migration);
    assert_eq!(done.status, MigrationStatus::Failed);
    let error = done.error.unwrap_or_default();
    assert!(error.contains("the target went away") && error.contains("runs on neither host"), "{error}");
    assert_eq!(b.instance(ACCOUNT, &id).unwrap().host_id, hosts[0]);
}
