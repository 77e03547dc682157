//! One host, two installations (issue 24), on fake hosts: an installation killed with a
//! running guest, a fresh data dir started beside it. The new one names the old one's
//! objects, cleans them only when told (and only once the old data dir is gone, or by its id),
//! and never touches its own; the old one, restarted, still knows its objects as its own. Each
//! installation's VPCs are networks of their own (in OVN), so the new one's guests may take the
//! addresses the old one's hold. `compat-tests` shows the same on a real libvirt and OVN.

use std::net::Ipv4Addr;
use std::path::Path;

use backend::fake::FakeCloud;
use backend::hosts::{Host, HostConfig, HostPool};
use backend::hypervisor::{Accelerator, DomainSpec, Hypervisor};
use backend::instances::LaunchRequest;
use backend::ownership::{ObjectKind, Owner, Selection};
use backend::{Backend, Error, Topology};
use storage::{InstanceState, Store};

const ACCOUNT: &str = "123456789012";
const URI: &str = "fake://shared";

/// An installation on the shared fake host, its store in `data_dir` (as `stratus serve`
/// starts one: the installation file written, the inventory taken).
fn installation(cloud: &FakeCloud, data_dir: &Path) -> Backend {
    std::fs::create_dir_all(data_dir).unwrap();
    let mut config = HostConfig::new(URI);
    // No guest runs on the fake: its network is records only, as on libvirt's test driver.
    config.accelerator = Some(Accelerator::Test);
    (config.vcpus, config.memory_mib) = (Some(64), Some(65536));
    let hosts = HostPool::new([Host::new(config.clone(), "us-east-1a".into(), cloud.host(URI))]);
    let topology = Topology { hosts: vec![config], ..Topology::default() };
    let store = Store::open(&data_dir.join("stratus.redb")).unwrap();
    let b = Backend::with_hosts(store, topology, hosts).with_data_dir(data_dir);
    b.publish_installation().unwrap();
    b.inventory().unwrap();
    b
}

fn image(b: &Backend, dir: &Path) -> String {
    let disk = dir.join(format!("image-{}.qcow2", rand::random::<u32>()));
    backend::disk::create_blank(&disk, None, 64 << 20).unwrap();
    let new =
        backend::images::NewImage { name: "img".into(), disk: disk.to_string_lossy().into(), ..Default::default() };
    b.register_image(ACCOUNT, new).unwrap().id
}

fn launch(b: &Backend, image: &str, address: Option<Ipv4Addr>) -> Result<storage::InstanceRecord, Error> {
    let req = LaunchRequest {
        image_id: image.to_owned(),
        instance_type: "t3.nano".into(),
        min_count: 1,
        max_count: 1,
        private_ip: address,
        ..Default::default()
    };
    let record = b.run_instances(ACCOUNT, "vpc-1", req)?.remove(0);
    b.converge(&format!("{ACCOUNT}/{}", record.id)).unwrap();
    Ok(record)
}

fn names(b: &Backend) -> Vec<(ObjectKind, String, Owner)> {
    b.inventory().unwrap().leftovers.into_iter().map(|l| (l.kind, l.name, l.owner)).collect()
}

#[test]
fn a_fresh_installation_beside_a_killed_one() {
    let dir = tempfile::tempdir().unwrap();
    let (old_dir, new_dir) = (dir.path().join("old"), dir.path().join("new"));
    let cloud = FakeCloud::new();
    let host = cloud.host(URI);
    // An operator's own domain on the same host is nobody's business.
    let mut own = sample_spec("debian12");
    own.metadata = None;
    host.define(&own).unwrap();

    // The old installation runs a guest, then dies without terminating it.
    let old = installation(&cloud, &old_dir);
    let old_id = old.installation().unwrap().to_owned();
    let old_image = image(&old, dir.path());
    let old_guest = launch(&old, &old_image, None).unwrap();
    assert_eq!(old_guest.private_ip, "172.31.0.4");
    assert_eq!(cloud.domain(URI, &old_guest.id).unwrap().state, backend::hypervisor::PowerState::Running);
    assert!(names(&old).is_empty(), "its own objects are not leftovers");
    drop(old);

    // Starting over: a fresh data dir on the same host.
    let new = installation(&cloud, &new_dir);
    let new_id = new.installation().unwrap().to_owned();
    assert_ne!(new_id, old_id, "each data dir is its own installation");
    let live = Owner::Live { installation: old_id.clone(), data_dir: old_dir.display().to_string() };
    assert_eq!(names(&new), vec![(ObjectKind::Domain, old_guest.id.clone(), live.clone())]);
    assert!(new.inventory().unwrap().report().unwrap().contains(&format!("--installation {old_id}")));
    // Its default VPC is a network of its own: the old guest's address is no one's business.
    let image_new = image(&new, dir.path());
    let new_guest = launch(&new, &image_new, Some("172.31.0.4".parse().unwrap())).unwrap();
    assert_eq!(new_guest.private_ip, "172.31.0.4");

    // A guest of yet another installation appears while this one runs: the next sweep names
    // it, and forgets it once it is gone.
    let mut third = sample_spec("i-0000000000000000a");
    third.metadata = Some(backend::ownership::owner_metadata("00000000000000aa", &dir.path().join("x"), "172.31.0.6"));
    host.define(&third).unwrap();
    new.sweep().unwrap();
    assert!(names(&new).iter().any(|(_, name, _)| *name == third.name));
    host.undefine(&third.name).unwrap();
    new.sweep().unwrap();
    assert!(!names(&new).iter().any(|(_, name, _)| *name == third.name));

    // A live installation's objects are no orphans; this one's are never cleaned.
    assert!(new.clean(&Selection::Orphans, false).unwrap().is_empty());
    assert!(new.clean(&Selection::Installation(new_id.clone()), false).is_err());
    drop(new);

    // The old data dir, started again, still knows its guest as its own.
    let old = installation(&cloud, &old_dir);
    assert_eq!(old.installation().unwrap(), old_id);
    let theirs = Owner::Live { installation: new_id.clone(), data_dir: new_dir.display().to_string() };
    assert!(names(&old).iter().all(|(_, _, owner)| *owner == theirs), "{:?}", names(&old));
    assert_eq!(old.instances(ACCOUNT).unwrap()[0].state, InstanceState::Running);
    drop(old);

    // The old data dir is removed: its objects become orphans, and cleaning them is asked for.
    std::fs::remove_dir_all(&old_dir).unwrap();
    let unmarked = "i-0123456789abcdef0";
    let mut legacy = sample_spec(unmarked);
    (legacy.metadata, legacy.cmdline) = (None, Some("ip=172.31.0.9::172.31.0.1:255.255.240.0::eth0:off".into()));
    host.define(&legacy).unwrap();
    let new = installation(&cloud, &new_dir);
    let preview = new.clean(&Selection::Orphans, true).unwrap();
    assert_eq!(preview.len(), 2, "{preview:?}");
    assert!(cloud.domain(URI, &old_guest.id).is_some(), "a dry run removes nothing");
    let cleaned = new.clean(&Selection::Orphans, false).unwrap();
    assert!(cleaned.iter().all(|step| step.error.is_none()), "{cleaned:?}");
    assert!(cloud.domain(URI, &old_guest.id).is_none() && cloud.domain(URI, unmarked).is_none());
    // What is this installation's, and the operator's, is all still there.
    assert!(cloud.domain(URI, &new_guest.id).is_some() && cloud.domain(URI, "debian12").is_some());
    assert!(names(&new).is_empty());
}

fn sample_spec(name: &str) -> DomainSpec {
    DomainSpec {
        name: name.into(),
        uuid: "00000000-0000-4000-8000-000000000001".into(),
        vcpus: 1,
        memory_mib: 256,
        accelerator: Accelerator::Tcg,
        disk: "/elsewhere/disk.qcow2".into(),
        root_key: None,
        volumes: vec![],
        kernel: Some("/elsewhere/vmlinux".into()),
        initrd: None,
        cmdline: None,
        mac: "52:54:00:00:00:99".into(),
        port: "00000000-0000-4000-8000-000000000002".into(),
        nics: Vec::new(),
        console_log: "/elsewhere/console.log".into(),
        instance_type: "t3.nano".into(),
        metadata: None,
    }
}
