//! Two lab hosts (`scripts/lab`): network namespaces, each with its own libvirtd reached over
//! `qemu+tcp://`, guests on one shared L2 segment and disks on shared storage.
//!
//! Needs root and the packages `scripts/setup-host` installs. `STRATUS_TEST_QEMU=1` (set by
//! `scripts/test`) makes a missing prerequisite a failure; without it the test is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::hosts::HostConfig;
use backend::hypervisor::{Accelerator, PowerState};
use backend::images::NewImage;
use backend::instances::LaunchRequest;
use backend::scheduler::Policy;
use backend::{Backend, Topology};
use storage::{InstanceState, Store};

const ACCOUNT: &str = "123456789012";
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
    last.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{name}="))).unwrap_or_default().to_owned()
}

/// Takes the lab down when the test ends, passed or not.
struct Lab;

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/lab")).arg("down").output();
    }
}

fn required() -> bool {
    std::env::var("STRATUS_TEST_QEMU").is_ok_and(|v| v == "1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_spread_over_two_lab_hosts() {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !root || !Path::new("/usr/sbin/libvirtd").exists() {
        assert!(!required(), "STRATUS_TEST_QEMU=1 but the lab needs root and libvirtd (scripts/setup-host)");
        eprintln!("skipping the lab test: it needs root and libvirtd");
        return;
    }
    let config = field(&script(&["lab", "up", "2"]), "config");
    let _lab = Lab;
    let text = std::fs::read_to_string(&config).unwrap();
    let uris: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("uri = \"")?.strip_suffix('"')).collect();
    assert_eq!(uris.len(), 2, "the lab config names two hosts:\n{text}");

    let image = script(&["build-test-image"]);
    let dir = tempfile::tempdir().unwrap();
    let hosts: Vec<HostConfig> = uris
        .iter()
        .map(|uri| {
            let mut host = HostConfig::new(uri);
            host.accelerator = Some(Accelerator::Tcg);
            host.bridge = "br0".into();
            host
        })
        .collect();
    let topology = Topology { hosts, placement: Policy::Spread, ..Topology::default() };
    let b = Arc::new(
        Backend::new(Store::open(&dir.path().join("db.redb")).unwrap(), topology)
            .with_data_dir(dir.path())
            .with_stop_timeout(Duration::from_secs(30)),
    );
    b.start_conductor(Duration::from_millis(500));
    let new = NewImage {
        name: "lab image".into(),
        disk: field(&image, "disk"),
        kernel: Some(field(&image, "kernel")),
        initrd: Some(field(&image, "initrd")),
        cmdline: Some(field(&image, "cmdline")),
        ..Default::default()
    };
    let image_id = b.register_image(ACCOUNT, new).unwrap().id;
    let req =
        LaunchRequest { image_id, instance_type: "t3.nano".into(), min_count: 2, max_count: 2, ..Default::default() };
    let launched = b.run_instances(ACCOUNT, VPC, req).unwrap();
    assert_ne!(launched[0].host_id, launched[1].host_id, "spread puts one instance on each host");
    let ids: Vec<String> = launched.iter().map(|r| r.id.clone()).collect();

    // Each boots on its own host, and the root namespace reaches both over the shared segment.
    let deadline = Instant::now() + Duration::from_secs(120);
    for record in &launched {
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
        let ping = Command::new("ping").args(["-c", "1", "-w", "20", &record.private_ip]).output().unwrap();
        assert!(ping.status.success(), "ping {}: {}", record.private_ip, String::from_utf8_lossy(&ping.stdout));
    }

    b.terminate_instances(ACCOUNT, &ids).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ids.iter().all(|id| b.instance(ACCOUNT, id).unwrap().state == InstanceState::Terminated) {
        assert!(Instant::now() < deadline, "instances not terminated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for record in &launched {
        assert_eq!(b.hosts().get(&record.host_id).unwrap().driver.state(&record.id).unwrap(), None);
    }
}
