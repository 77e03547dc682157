//! Dedicated hosts on two fake hosts ([`backend::fake`]): one host dedicated to account A takes
//! A's instances of `host` tenancy and nothing else, in launches, starts and migrations; B's
//! instances go to the other host; the host goes back to the pool once A's instances leave.

use std::sync::Arc;

use backend::dedicated::HostRequest;
use backend::fake::FakeCloud;
use backend::hosts::{Host, HostConfig, HostPool};
use backend::hypervisor::Accelerator;
use backend::hypervisor::MigrationOptions;
use backend::instances::LaunchRequest;
use backend::{Backend, Error, ResourceKind, Topology};
use storage::Store;

const A: &str = "111111111111";
const B: &str = "222222222222";
const ZONE: &str = "us-east-1a";

struct Setup {
    b: Arc<Backend>,
    image: String,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let configs: Vec<HostConfig> = ["fake://one", "fake://two"].iter().map(|uri| HostConfig::new(uri)).collect();
    let hosts = HostPool::new(configs.iter().map(|config| {
        let mut config = config.clone();
        config.accelerator = Some(Accelerator::Test);
        let driver = cloud.host(&config.uri);
        Host::new(config, ZONE.into(), driver)
    }));
    let topology = Topology { hosts: configs, ..Topology::default() };
    let b = Arc::new(Backend::with_hosts(Store::in_memory().unwrap(), topology, hosts).with_data_dir(dir.path()));
    let disk = dir.path().join("disk.qcow2");
    backend::disk::create_blank(&disk, None, 64 << 20).unwrap();
    let new =
        backend::images::NewImage { name: "img".into(), disk: disk.to_string_lossy().into(), ..Default::default() };
    let image = b.register_image(A, new).unwrap().id;
    // B launches it too.
    let everyone = backend::sharing::PermissionChange { add_all: true, ..Default::default() };
    b.change_launch_permissions(A, &image, Some(&everyone)).unwrap();
    Setup { b, image, _dir: dir }
}

fn launch(
    s: &Setup,
    account: &str,
    tenancy_host: bool,
    host_id: Option<&str>,
    affinity: bool,
) -> backend::Result<String> {
    let req = LaunchRequest {
        image_id: s.image.clone(),
        instance_type: "t3.nano".into(),
        min_count: 1,
        max_count: 1,
        tenancy_host,
        host_id: host_id.map(str::to_owned),
        affinity_host: affinity,
        ..Default::default()
    };
    let id = s.b.run_instances(account, "vpc-1", req)?.remove(0).id;
    s.b.converge(&format!("{account}/{id}")).unwrap();
    Ok(id)
}

fn host_of(s: &Setup, account: &str, id: &str) -> String {
    s.b.instance(account, id).unwrap().host_id
}

#[test]
fn a_dedicated_host_takes_its_account_s_host_tenancy_alone() {
    let s = setup();
    let request = HostRequest {
        zone: ZONE.into(),
        instance_family: Some("t3".into()),
        quantity: 1,
        auto_placement: true,
        ..Default::default()
    };
    let [dedicated] = s.b.allocate_hosts(A, request.clone()).unwrap().try_into().unwrap();
    let dedicated = dedicated.host_id;

    // B's instances, and A's of default tenancy, all go to the other host.
    let b_instances: Vec<String> = (0..3).map(|_| launch(&s, B, false, None, false).unwrap()).collect();
    let shared = host_of(&s, B, &b_instances[0]);
    assert_ne!(shared, dedicated);
    assert!(b_instances.iter().all(|i| host_of(&s, B, i) == shared));
    let a_default = launch(&s, A, false, None, false).unwrap();
    assert_eq!(host_of(&s, A, &a_default), shared);

    // A's of host tenancy land on A's host, auto-placed or named.
    let a_auto = launch(&s, A, true, None, false).unwrap();
    let a_pinned = launch(&s, A, true, Some(&dedicated), true).unwrap();
    assert_eq!((host_of(&s, A, &a_auto), host_of(&s, A, &a_pinned)), (dedicated.clone(), dedicated.clone()));
    let pinned = s.b.instance(A, &a_pinned).unwrap();
    assert_eq!(pinned.dedicated.unwrap().affinity_host.as_deref(), Some(dedicated.as_str()));

    // B can name A's host only as one that does not exist, and has none of its own.
    assert!(matches!(
        launch(&s, B, true, Some(&dedicated), false),
        Err(Error::ResourceNotFound { kind: ResourceKind::Host, .. })
    ));
    assert!(matches!(launch(&s, B, true, None, false), Err(Error::InsufficientCapacityOnHost(_))));
    // The other host runs B's instances: it cannot be dedicated to A.
    assert!(matches!(s.b.allocate_hosts(A, request), Err(Error::InsufficientHostCapacity(_))));

    // Migrations keep to the same rule: neither way across.
    assert!(matches!(
        s.b.migrate_instance(&a_auto, None, MigrationOptions::default()),
        Err(Error::InsufficientCapacity(_))
    ));
    assert!(matches!(
        s.b.migrate_instance(&b_instances[0], Some(&dedicated), MigrationOptions::default()),
        Err(Error::InsufficientCapacity(_))
    ));

    // Auto-placement off: only launches that name the host land there, and an instance launched
    // on it by name starts there again.
    let off = backend::dedicated::HostChange { auto_placement: Some(false), ..Default::default() };
    s.b.modify_host_allocation(A, &dedicated, &off).unwrap();
    assert!(matches!(launch(&s, A, true, None, false), Err(Error::InsufficientCapacityOnHost(_))));
    let named = launch(&s, A, true, Some(&dedicated), false).unwrap();
    s.b.stop_instances(A, std::slice::from_ref(&named), true).unwrap();
    s.b.converge(&format!("{A}/{named}")).unwrap();
    s.b.start_instances(A, std::slice::from_ref(&named)).unwrap();
    s.b.converge(&format!("{A}/{named}")).unwrap();
    assert_eq!(host_of(&s, A, &named), dedicated);
    assert_eq!(s.b.instance(A, &named).unwrap().state, storage::InstanceState::Running);
    assert!(matches!(s.b.modify_host_allocation(B, &dedicated, &off), Err(Error::ResourceNotFound { .. })));

    // Released once A's instances have left it, the host takes anyone's again.
    assert!(matches!(s.b.release_host(A, &dedicated), Err(Error::IncorrectState(_))));
    assert!(matches!(s.b.release_host(B, &dedicated), Err(Error::ResourceNotFound { .. })));
    let leaving = [a_auto.clone(), a_pinned.clone(), named.clone()];
    s.b.terminate_instances(A, &leaving).unwrap();
    for id in &leaving {
        s.b.converge(&format!("{A}/{id}")).unwrap();
    }
    s.b.release_host(A, &dedicated).unwrap();
    assert!(s.b.host_allocations().unwrap().is_empty());
    let again = s.b.migrate_instance(&b_instances[0], Some(&dedicated), MigrationOptions::default()).unwrap();
    assert_eq!(again.target_host, dedicated);
}
