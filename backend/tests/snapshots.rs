//! Snapshots on a fake host ([`backend::fake`]) whose guests run: CreateSnapshots copies every
//! volume of an instance in one pause of the guest, CopySnapshot and sharing let another
//! account use a snapshot it does not own, and nothing of it is visible before it is shared.

use std::sync::Arc;

use backend::fake::FakeCloud;
use backend::hosts::{Host, HostConfig, HostPool};
use backend::hypervisor::{Accelerator, PowerState};
use backend::instances::LaunchRequest;
use backend::sharing::PermissionChange;
use backend::volumes::{LaunchVolume, NewVolume, SnapshotSet, COPIED_VOLUME};
use backend::{Backend, Error, ResourceKind, Topology};
use storage::{InstanceState, SnapshotState, Store};

const OWNER: &str = "111111111111";
const OTHER: &str = "222222222222";
const URI: &str = "fake://snapshots";

struct Setup {
    b: Arc<Backend>,
    cloud: FakeCloud,
    instance: String,
    zone: String,
    _dir: tempfile::TempDir,
}

/// A fake host that runs guests, and a running instance of OWNER's with a further volume made
/// at launch.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let mut config = HostConfig::new(URI);
    // The test accelerator: no network engine is needed for the records-only network.
    config.accelerator = Some(Accelerator::Test);
    let topology = Topology { hosts: vec![config.clone()], ..Topology::default() };
    let zone = topology.default_zone().to_owned();
    let pool = HostPool::new([Host::new(config, zone.clone(), cloud.host(URI))]);
    let b = Arc::new(Backend::with_hosts(Store::in_memory().unwrap(), topology, pool).with_data_dir(dir.path()));
    let disk = dir.path().join("disk.qcow2");
    backend::disk::create_blank(&disk, None, 64 << 20).unwrap();
    let new =
        backend::images::NewImage { name: "img".into(), disk: disk.to_string_lossy().into(), ..Default::default() };
    let image_id = b.register_image(OWNER, new).unwrap().id;
    let req = LaunchRequest {
        image_id,
        instance_type: "t3.nano".into(),
        min_count: 1,
        max_count: 1,
        volumes: vec![LaunchVolume { device: "/dev/sdf".into(), size_gib: Some(1), ..Default::default() }],
        ..Default::default()
    };
    // The default VPC is made with the first launch (the hint names none that exists).
    let instance = b.run_instances(OWNER, "vpc-1", req).unwrap().remove(0).id;
    b.converge(&format!("{OWNER}/{instance}")).unwrap();
    assert_eq!(b.instance(OWNER, &instance).unwrap().state, InstanceState::Running);
    Setup { b, cloud, instance, zone, _dir: dir }
}

#[test]
fn create_snapshots_pauses_the_guest_once_for_all_its_volumes() {
    let s = setup();
    let key = format!("{OWNER}/{}", s.instance);
    let volumes = s.b.instance_volumes(OWNER, &s.instance).unwrap();
    assert_eq!(volumes.len(), 2);
    s.b.create_tags(OWNER, std::slice::from_ref(&volumes[0].id), &[("team".into(), "db".into())]).unwrap();

    let set = SnapshotSet {
        instance_id: s.instance.clone(),
        description: "nightly".into(),
        tags: vec![("when".into(), "night".into())],
        copy_tags: true,
        ..Default::default()
    };
    let taken = s.b.create_snapshots(OWNER, set.clone()).unwrap();
    assert_eq!(taken.len(), 2);
    assert!(taken.iter().all(|t| t.state == SnapshotState::Pending && t.description == "nightly"));
    s.b.converge(&key).unwrap();
    let domain = s.cloud.domain(URI, &s.instance).unwrap();
    assert_eq!(domain.suspensions, 1, "one pause for both volumes");
    assert_eq!(domain.state, PowerState::Running, "the guest runs on");
    let tags = s.b.tags_of(OWNER, taken.iter().map(|t| t.id.as_str())).unwrap();
    for snapshot in s.b.snapshots(OWNER).unwrap() {
        assert_eq!(snapshot.state, SnapshotState::Completed, "{}", snapshot.id);
        assert!(std::path::Path::new(&snapshot.path).exists());
        let own = &tags[&snapshot.id];
        assert!(own.contains(&("when".to_owned(), "night".to_owned())));
        assert_eq!(own.contains(&("team".to_owned(), "db".to_owned())), snapshot.volume_id == volumes[0].id);
    }

    // Without the root: one snapshot, one more pause; a volume not attached is refused.
    let data_only = SnapshotSet { exclude_boot: true, ..set.clone() };
    assert_eq!(s.b.create_snapshots(OWNER, data_only).unwrap().len(), 1);
    s.b.converge(&key).unwrap();
    assert_eq!(s.cloud.domain(URI, &s.instance).unwrap().suspensions, 2);
    let stranger = SnapshotSet { exclude: vec!["vol-0123456789abcdef0".into()], ..set.clone() };
    assert!(matches!(s.b.create_snapshots(OWNER, stranger), Err(Error::InvalidParameter { .. })));
    assert!(matches!(
        s.b.create_snapshots(OTHER, set),
        Err(Error::ResourceNotFound { kind: ResourceKind::Instance, .. })
    ));
}

#[test]
fn shared_and_copied_snapshots_are_usable_by_the_other_account_only_when_shared() {
    let s = setup();
    let volume = s.b.instance_volumes(OWNER, &s.instance).unwrap().into_iter().find(|v| !v.root).unwrap();
    let snapshot = s.b.create_snapshot(OWNER, &volume.id, "data", &[]).unwrap();
    s.b.converge(&format!("{OWNER}/{}", s.instance)).unwrap();
    let from = |id: &str| NewVolume { zone: s.zone.clone(), snapshot_id: Some(id.to_owned()), ..Default::default() };
    let hidden = |result: backend::Result<_>| {
        matches!(result, Err(Error::ResourceNotFound { kind: ResourceKind::Snapshot, .. }))
    };

    // Not shared: the other account meets a snapshot that does not exist.
    assert!(hidden(s.b.create_volume(OTHER, from(&snapshot.id)).map(|_| ())));
    assert!(hidden(s.b.copy_snapshot(OTHER, &snapshot.id, "", &[], (&Default::default(), "us-east-1")).map(|_| ())));
    assert!(hidden(s.b.owned_snapshot(OTHER, &snapshot.id).map(|_| ())));

    let share = PermissionChange { add: vec![OTHER.into()], ..Default::default() };
    let shared = s.b.change_volume_permissions(OWNER, &snapshot.id, Some(&share)).unwrap();
    assert_eq!(shared.create_volume_permissions, [OTHER]);
    assert!(matches!(
        s.b.change_volume_permissions(OTHER, &snapshot.id, Some(&share)),
        Err(Error::NotSnapshotOwner(_))
    ));
    let made = s.b.create_volume(OTHER, from(&snapshot.id)).unwrap();
    s.b.converge(&format!("{OTHER}/{}", made.id)).unwrap();
    assert_eq!(s.b.volumes(OTHER).unwrap()[0].state, storage::VolumeState::Available);

    // A copy is the other account's own, and outlives the source.
    let copy = s.b.copy_snapshot(OTHER, &snapshot.id, "mine now", &[], (&Default::default(), "us-east-1")).unwrap();
    assert_eq!(
        (copy.state, copy.volume_id.as_str(), copy.account.as_str()),
        (SnapshotState::Pending, COPIED_VOLUME, OTHER)
    );
    s.b.converge(&format!("{OTHER}/{}", copy.id)).unwrap();
    s.b.change_volume_permissions(OWNER, &snapshot.id, None).unwrap();
    s.b.delete_snapshot(OWNER, &snapshot.id).unwrap();
    assert!(hidden(s.b.create_volume(OTHER, from(&snapshot.id)).map(|_| ())));
    let copied = s.b.owned_snapshot(OTHER, &copy.id).unwrap();
    assert_eq!(copied.state, SnapshotState::Completed);
    let again = s.b.create_volume(OTHER, from(&copy.id)).unwrap();
    s.b.converge(&format!("{OTHER}/{}", again.id)).unwrap();
    assert!(s.b.volumes(OTHER).unwrap().iter().all(|v| v.state == storage::VolumeState::Available));
}
