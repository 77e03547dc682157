//! One instance-lifecycle scenario, run against every driver: the fake hypervisor
//! ([`backend::fake`]), libvirt's in-process test driver, and a real QEMU daemon booting the
//! project's test image.
//!
//! The real-QEMU run needs `scripts/setup-host` to have run. `STRATUS_TEST_QEMU=1` (set by
//! `scripts/test`) makes a missing daemon a failure; without it the run is skipped with a
//! message, so that `cargo test` works on a laptop without libvirt.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::attributes::AttributeChange;
use backend::fake::FakeCloud;
use backend::hosts::{Host, HostConfig, HostPool};
use backend::hypervisor::{Accelerator, Hypervisor, PowerState};
use backend::images::NewImage;
use backend::instances::LaunchRequest;
use backend::libvirt::LibvirtDriver;
use backend::{Backend, Error, Topology};
use storage::tables::INSTANCES;
use storage::{ImageState, InstanceRecord, InstanceState, Store};

const ACCOUNT: &str = "123456789012";
const VPC: &str = "vpc-0123456789abcdef0";

struct Target {
    uri: &'static str,
    accelerator: Option<Accelerator>,
    image: NewImage,
    /// Whether guests really boot (console output, ping).
    real: bool,
    stop_timeout: Duration,
    /// The fake hosts' world, for the fake target; the others are libvirt.
    fake: Option<FakeCloud>,
}

impl Target {
    /// The domain's state as the host has it, read beside Stratus.
    fn domain_state(&self, name: &str) -> Option<PowerState> {
        match &self.fake {
            Some(cloud) => cloud.domain(self.uri, name).map(|d| d.state),
            None => LibvirtDriver::new(self.uri).state(name).unwrap(),
        }
    }

    /// The guest powers off as if from inside (for libvirt: destroyed through another connection).
    fn power_off(&self, name: &str) {
        match &self.fake {
            Some(cloud) => cloud.power_off(self.uri, name),
            None => LibvirtDriver::new(self.uri).destroy(name).unwrap(),
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn qemu_disk(dir: &Path) -> String {
    let path = dir.join("disk.qcow2");
    let status = Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&path).arg("64M").status().unwrap();
    assert!(status.success());
    path.to_string_lossy().into_owned()
}

fn test_driver_target(dir: &Path) -> Target {
    let kernel = dir.join("vmlinux");
    std::fs::write(&kernel, b"not a kernel: the test driver never reads it").unwrap();
    Target {
        uri: "test:///default",
        accelerator: None,
        image: NewImage {
            name: "test-driver image".into(),
            disk: qemu_disk(dir),
            kernel: Some(kernel.to_string_lossy().into()),
            ..Default::default()
        },
        real: false,
        stop_timeout: Duration::from_secs(2),
        fake: None,
    }
}

fn fake_target(dir: &Path) -> Target {
    Target {
        uri: "fake://scenario",
        accelerator: Some(Accelerator::Test),
        fake: Some(FakeCloud::new()),
        ..test_driver_target(dir)
    }
}

/// The real daemon and the test image, or `None` (skip) when they are not set up.
fn qemu_target() -> Option<Target> {
    let required = std::env::var("STRATUS_TEST_QEMU").is_ok_and(|v| v == "1");
    if !Path::new("/run/libvirt/libvirt-sock").exists() {
        assert!(!required, "STRATUS_TEST_QEMU=1 but libvirtd is not running (run scripts/setup-host)");
        eprintln!("skipping the real-QEMU scenario: libvirtd is not running (run scripts/setup-host)");
        return None;
    }
    if !common::Network::available() {
        assert!(!required, "STRATUS_TEST_QEMU=1 but OVN is not running (run scripts/setup-host)");
        eprintln!("skipping the real-QEMU scenario: OVN is not running (run scripts/setup-host)");
        return None;
    }
    let output = Command::new(repo_root().join("scripts/build-test-image")).output().expect("scripts/build-test-image");
    assert!(output.status.success(), "build-test-image failed: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let field = |name: &str| {
        if name == "cmdline" {
            // The command line has spaces and runs to the end of the line.
            return last
                .split_once(" cmdline=")
                .map(|(_, c)| c.to_owned())
                .expect("build-test-image printed a cmdline");
        }
        last.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("build-test-image printed no {name}=: {last}"))
            .to_owned()
    };
    let accelerator = match std::fs::read_to_string("/var/lib/stratus/accelerator").unwrap_or_default().trim() {
        "kvm" => Accelerator::Kvm,
        _ => Accelerator::Tcg,
    };
    Some(Target {
        uri: "qemu:///system",
        accelerator: Some(accelerator),
        image: NewImage {
            name: "stratus test image".into(),
            disk: field("disk"),
            kernel: Some(field("kernel")),
            initrd: Some(field("initrd")),
            cmdline: Some(field("cmdline")),
            ..Default::default()
        },
        real: true,
        stop_timeout: Duration::from_secs(30),
        fake: None,
    })
}

fn backend_for(target: &Target, store: Store, data_dir: &Path) -> Backend {
    let mut host = HostConfig::new(target.uri);
    host.accelerator = target.accelerator;
    let topology = Topology { hosts: vec![host.clone()], ..Topology::default() };
    let backend = match &target.fake {
        Some(cloud) => {
            let zone = topology.default_zone().to_owned();
            let pool = HostPool::new([Host::new(host, zone, cloud.host(target.uri))]);
            Backend::with_hosts(store, topology, pool)
        }
        None => Backend::new(store, topology),
    };
    backend.with_data_dir(data_dir).with_stop_timeout(target.stop_timeout)
}

fn launch(count: u32) -> LaunchRequest {
    LaunchRequest {
        image_id: String::new(),
        instance_type: "t3.nano".into(),
        min_count: count,
        max_count: count,
        tags: vec![("Name".into(), "scenario".into())],
        ..Default::default()
    }
}

fn instance(b: &Backend, id: &str) -> InstanceRecord {
    b.instances(ACCOUNT).unwrap().into_iter().find(|r| r.id == id).expect("instance exists")
}

async fn wait_for(b: &Arc<Backend>, ids: &[String], state: InstanceState, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let states: Vec<InstanceState> = ids.iter().map(|id| instance(b, id).state).collect();
        if states.iter().all(|s| *s == state) {
            return;
        }
        assert!(Instant::now() < deadline, "waited {within:?} for {state:?}, states are {states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_console(b: &Arc<Backend>, id: &str, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = String::from_utf8_lossy(&b.console_output(ACCOUNT, id).unwrap()).into_owned();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "no '{needle}' on {id}'s console within {within:?}; it shows:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn lifecycle(target: Target) {
    lifecycle_on(target, None).await;
}

/// The scenario with the state in `store` (a redb file of its own when `None`).
async fn lifecycle_on(target: Target, store: Option<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = store.unwrap_or_else(|| Store::open(&dir.path().join("db.redb")).unwrap());
    let mut backend = backend_for(&target, store, dir.path());
    // Real guests need their network: OVN's, as `stratus serve` keeps it.
    if target.real {
        backend = backend.with_ovn(common::NORTHBOUND);
    }
    let b = Arc::new(backend);
    let _network = target.real.then(|| common::Network::hold(&b));
    // The sweep runs once at start and then not within the test: whatever the guest does on
    // its own is seen through libvirt's events or not at all.
    b.start_conductor(Duration::from_secs(3600));
    let image = b.register_image(ACCOUNT, target.image.clone()).unwrap();
    let boot = if target.real { Duration::from_secs(90) } else { Duration::from_secs(10) };

    // Launch two: pending at once, then running, each with its own address and disk.
    let mut req = launch(2);
    req.image_id = image.id.clone();
    // The host pings the guest below: its group must let ICMP in.
    common::allow_ping(&b, ACCOUNT, VPC);
    let launched = b.run_instances(ACCOUNT, VPC, req).unwrap();
    assert_eq!(launched.len(), 2);
    assert!(launched.iter().all(|r| r.state == InstanceState::Pending));
    assert_eq!(launched[0].reservation_id, launched[1].reservation_id);
    assert_ne!(launched[0].private_ip, launched[1].private_ip);
    let ids: Vec<String> = launched.iter().map(|r| r.id.clone()).collect();
    wait_for(&b, &ids, InstanceState::Running, boot).await;
    for id in &ids {
        assert_eq!(target.domain_state(id), Some(PowerState::Running));
        assert!(Path::new(&instance(&b, id).dir).join("root.qcow2").exists());
    }
    if target.real {
        let first = instance(&b, &ids[0]);
        let console = wait_console(&b, &first.id, "STRATUS-TEST-GUEST BOOTED", boot).await;
        assert!(console.contains(&first.private_ip), "the guest took the address Stratus gave it:\n{console}");
        // Reached from this machine at its public address (the default subnet maps one), through
        // its VPC's router. A guest under TCG on a busy machine can take a while to answer.
        let public = first.public_ip.clone().expect("a public address at launch");
        let ping = Command::new("ping").args(["-c", "1", "-w", "20", &public]).output().unwrap();
        assert!(ping.status.success(), "ping {public} failed: {}", String::from_utf8_lossy(&ping.stdout));
    }

    // Stop (ACPI, the guest powers off) and start again.
    let stopped = b.stop_instances(ACCOUNT, &ids[..1], false).unwrap();
    assert_eq!((stopped[0].previous, stopped[0].current), (InstanceState::Running, InstanceState::Stopping));
    wait_for(&b, &ids[..1], InstanceState::Stopped, target.stop_timeout + Duration::from_secs(10)).await;
    assert_eq!(target.domain_state(&ids[0]), Some(PowerState::ShutOff));
    assert!(matches!(b.reboot_instances(ACCOUNT, &ids[..1]), Err(Error::IncorrectInstanceState { .. })));
    b.start_instances(ACCOUNT, &ids[..1]).unwrap();
    wait_for(&b, &ids[..1], InstanceState::Running, boot).await;
    b.reboot_instances(ACCOUNT, &ids[..1]).unwrap();

    // An image of the running instance: the guest is paused for the copy and runs on; the
    // image boots an instance of its own.
    let captured = b.create_image(ACCOUNT, &ids[0], "captured", "from a running instance", &[]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while b.image(ACCOUNT, &captured.id).unwrap().state == ImageState::Pending {
        assert!(Instant::now() < deadline, "the image copy did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.image(ACCOUNT, &captured.id).unwrap().state, ImageState::Available);
    assert_eq!(target.domain_state(&ids[0]), Some(PowerState::Running), "resumed after the copy");
    let mut req = launch(1);
    req.image_id = captured.id.clone();
    let copy = b.run_instances(ACCOUNT, VPC, req).unwrap().remove(0).id;
    wait_for(&b, std::slice::from_ref(&copy), InstanceState::Running, boot).await;
    if target.real {
        wait_console(&b, &copy, "STRATUS-TEST-GUEST BOOTED", boot).await;
    }

    // A guest that powers off by itself is recorded as stopped.
    target.power_off(&ids[1]);
    wait_for(&b, &ids[1..], InstanceState::Stopped, Duration::from_secs(10)).await;
    let reason = instance(&b, &ids[1]).state_reason.unwrap();
    assert_eq!(reason.code, "Client.InstanceInitiatedShutdown");
    // One that asked to be terminated on shutdown is terminated.
    b.modify_instance_attribute(ACCOUNT, &copy, AttributeChange::ShutdownBehavior("terminate".into())).unwrap();
    target.power_off(&copy);
    wait_for(&b, std::slice::from_ref(&copy), InstanceState::Terminated, Duration::from_secs(10)).await;

    // Terminate all: domains and disks go, the records stay visible as terminated.
    let changes = b.terminate_instances(ACCOUNT, &ids).unwrap();
    assert!(changes.iter().all(|c| c.current == InstanceState::ShuttingDown));
    wait_for(&b, &ids, InstanceState::Terminated, Duration::from_secs(30)).await;
    for id in &ids {
        assert_eq!(target.domain_state(id), None, "{id}'s domain is undefined");
        assert!(!Path::new(&instance(&b, id).dir).exists(), "{id}'s files are removed");
    }
    assert!(matches!(b.start_instances(ACCOUNT, &ids[..1]), Err(Error::IncorrectInstanceState { .. })));
    let again = b.terminate_instances(ACCOUNT, &ids[..1]).unwrap();
    assert_eq!((again[0].previous, again[0].current), (InstanceState::Terminated, InstanceState::Terminated));

    // Terminated instances stay visible for an hour, then the sweep forgets them (found
    // through the terminations index; a record whose index entry was not moved stays).
    assert_eq!(b.sweep().unwrap().purged, 0);
    let key = format!("{ACCOUNT}/{}", ids[0]);
    b.store()
        .write(|tx| {
            let mut record = tx.get(&INSTANCES, &key)?.unwrap();
            record.terminated_ms = record.terminated_ms.map(|t| t - 2 * 3_600_000);
            tx.insert(&INSTANCES, &key, &record)
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.instances(ACCOUNT).unwrap().iter().any(|r| r.id == ids[0]) {
        assert!(Instant::now() < deadline, "an instance terminated two hours ago was not forgotten");
        b.sweep().unwrap();
    }
    let kept = b.instances(ACCOUNT).unwrap();
    assert!(ids[1..].iter().all(|id| kept.iter().any(|r| &r.id == id)), "recent ones are kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_the_fake_hypervisor() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle(fake_target(dir.path())).await;
}

/// The same scenario with the state in PostgreSQL (`STRATUS_TEST_POSTGRES`, which
/// `scripts/test` sets; without it the test says so and passes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_the_fake_hypervisor_with_the_state_in_postgres() {
    let Some(db) = storage::testing::TestDatabase::create() else {
        eprintln!("{} is not set: the PostgreSQL scenario did not run", storage::testing::POSTGRES_ENV);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = storage::pg::blocking(|| db.store());
    lifecycle_on(fake_target(dir.path()), Some(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_the_test_driver() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle(test_driver_target(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_real_qemu() {
    if let Some(target) = qemu_target() {
        lifecycle(target).await;
    }
}

/// Capacity is all-or-nothing at MinCount and ratios hold under concurrent launches.
#[test]
fn capacity_and_idempotency() {
    let dir = tempfile::tempdir().unwrap();
    let target = test_driver_target(dir.path());
    let mut host = HostConfig::new(target.uri);
    (host.vcpus, host.memory_mib, host.cpu_ratio) = (Some(4), Some(4096), 1.0);
    let topology = Topology { hosts: vec![host], ..Topology::default() };
    let b = Arc::new(Backend::new(Store::in_memory().unwrap(), topology).with_data_dir(dir.path()));
    let image = b.register_image(ACCOUNT, target.image).unwrap();
    let mut req = launch(3);
    req.image_id = image.id.clone();
    assert!(matches!(b.run_instances(ACCOUNT, VPC, req.clone()), Err(Error::InsufficientCapacity(_))));
    assert!(b.instances(ACCOUNT).unwrap().is_empty(), "nothing is half-launched");

    req.min_count = 1;
    req.client_token = Some("token-1".into());
    let first = b.run_instances(ACCOUNT, VPC, req.clone()).unwrap();
    assert_eq!(first.len(), 2, "MaxCount 3 of 2 vCPUs on a 4-vCPU host: two fit");
    let retry = b.run_instances(ACCOUNT, VPC, req.clone()).unwrap();
    assert_eq!(retry.iter().map(|r| &r.id).collect::<Vec<_>>(), first.iter().map(|r| &r.id).collect::<Vec<_>>());
    req.instance_type = "t3.micro".into();
    assert!(matches!(b.run_instances(ACCOUNT, VPC, req.clone()), Err(Error::IdempotentParameterMismatch(_))));
    req.client_token = None;
    assert!(matches!(b.run_instances(ACCOUNT, VPC, req), Err(Error::InsufficientCapacity(_))), "the host is full");

    // Terminating frees the room; concurrent launches never overfill it.
    let ids: Vec<String> = first.iter().map(|r| r.id.clone()).collect();
    b.terminate_instances(ACCOUNT, &ids).unwrap();
    for id in &ids {
        b.converge(&format!("{ACCOUNT}/{id}")).unwrap();
    }
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let b = Arc::clone(&b);
            let image_id = image.id.clone();
            std::thread::spawn(move || {
                let mut req = launch(1);
                req.image_id = image_id;
                b.run_instances(ACCOUNT, VPC, req).is_ok()
            })
        })
        .collect();
    let launched = threads.into_iter().map(|t| t.join().unwrap()).filter(|ok| *ok).count();
    assert_eq!(launched, 2);

    // Starting stopped instances charges each one: two cannot start where one fits.
    let running: Vec<String> =
        b.instances(ACCOUNT).unwrap().into_iter().filter(|r| r.state == InstanceState::Pending).map(|r| r.id).collect();
    for id in &running {
        b.converge(&format!("{ACCOUNT}/{id}")).unwrap();
    }
    b.stop_instances(ACCOUNT, &running, true).unwrap();
    for id in &running {
        b.converge(&format!("{ACCOUNT}/{id}")).unwrap();
    }
    let mut req = launch(1);
    req.image_id = image.id.clone();
    b.run_instances(ACCOUNT, VPC, req).unwrap();
    assert!(matches!(b.start_instances(ACCOUNT, &running), Err(Error::InsufficientCapacity(_))));
    assert!(running.iter().all(|id| instance(&b, id).state == InstanceState::Stopped), "all or nothing");
    b.start_instances(ACCOUNT, &running[..1]).unwrap();
}

/// A server killed after recording a launch finishes it on restart, exactly once; one killed
/// in the middle of an image copy (guest paused) copies again and resumes the guest; domains
/// it does not know, and pauses it did not make, are reported or left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_pending_work_and_reports_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let target = test_driver_target(dir.path());
    let db = dir.path().join("db.redb");
    // The test driver forgets its domains when its last connection closes; this one stands
    // for the host that outlives the process.
    let host = LibvirtDriver::new(target.uri);
    host.host_info().unwrap();
    let (id, imaged, captured) = {
        // No conductor: as if the process died right after answering RunInstances, and in
        // the middle of a CreateImage copy.
        let b = backend_for(&target, Store::open(&db).unwrap(), dir.path());
        let image = b.register_image(ACCOUNT, target.image.clone()).unwrap();
        let mut req = launch(1);
        req.image_id = image.id;
        let id = b.run_instances(ACCOUNT, VPC, req.clone()).unwrap().remove(0).id;
        let imaged = b.run_instances(ACCOUNT, VPC, req).unwrap().remove(0).id;
        b.converge(&format!("{ACCOUNT}/{imaged}")).unwrap();
        let captured = b.create_image(ACCOUNT, &imaged, "interrupted copy", "", &[]).unwrap();
        host.suspend(&imaged).unwrap();
        (id, imaged, captured)
    };
    let b = Arc::new(backend_for(&target, Store::open(&db).unwrap(), dir.path()));
    b.start_conductor(Duration::from_millis(100));
    wait_for(&b, std::slice::from_ref(&id), InstanceState::Running, Duration::from_secs(10)).await;
    assert_eq!(b.instances(ACCOUNT).unwrap().len(), 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.image(ACCOUNT, &captured.id).unwrap().state != ImageState::Available {
        assert!(Instant::now() < deadline, "the interrupted image copy was not redone");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(target.domain_state(&imaged), Some(PowerState::Running), "the guest runs again");

    // An operator's pause (or QEMU's, on an I/O error) is not Stratus's to undo.
    host.suspend(&imaged).unwrap();
    b.sweep().unwrap();
    assert_eq!(target.domain_state(&imaged), Some(PowerState::Paused));
    assert_eq!(instance(&b, &imaged).state, InstanceState::Running);
    host.resume(&imaged).unwrap();

    let report = b.sweep().unwrap();
    // The test driver starts with a domain named "test" that no instance accounts for.
    assert!(report.unknown_domains.iter().any(|(_, name)| name == "test"), "{report:?}");
    assert!(!report.unknown_domains.iter().any(|(_, name)| *name == id));
    assert_eq!(target.domain_state("test"), Some(PowerState::Running), "strangers are left alone");
    let ids = [id, imaged];
    b.terminate_instances(ACCOUNT, &ids).unwrap();
    wait_for(&b, &ids, InstanceState::Terminated, Duration::from_secs(10)).await;
}
