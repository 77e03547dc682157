//! Network interfaces of their own on a fake host ([`backend::fake`]): plugged into a running
//! guest and pulled out again by the instance's converge, defined with the domain when the
//! guest starts, and let go (or deleted) when the instance terminates.

use std::sync::Arc;

use backend::fake::FakeCloud;
use backend::hosts::{Host, HostConfig, HostPool};
use backend::hypervisor::Accelerator;
use backend::instances::{ExtraInterface, LaunchRequest};
use backend::interfaces::{InterfaceChange, NewInterface};
use backend::{Backend, Error, Topology};
use storage::{AttachmentState, InstanceState, Store};

const ACCOUNT: &str = "123456789012";
const URI: &str = "fake://eni";

struct Setup {
    b: Arc<Backend>,
    cloud: FakeCloud,
    subnet: String,
    instance: String,
    _dir: tempfile::TempDir,
}

/// A fake host that runs guests (so the NICs are plugged), a VPC of its own with a subnet, and
/// a running instance in it.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let mut config = HostConfig::new(URI);
    config.accelerator = Some(Accelerator::Tcg);
    let topology = Topology { hosts: vec![config.clone()], ..Topology::default() };
    let zone = topology.default_zone().to_owned();
    let pool = HostPool::new([Host::new(config, zone, cloud.host(URI))]);
    // VPCs of their own need OVN; none answers here, and nothing in this test asks it.
    let b = Backend::with_hosts(Store::in_memory().unwrap(), topology, pool)
        .with_data_dir(dir.path())
        .with_ovn("unix:/nonexistent/ovnnb_db.sock");
    let b = Arc::new(b);
    let (_, subnet, instance) = vpc_with_an_instance(&b, dir.path());
    assert_eq!(b.instance(ACCOUNT, &instance).unwrap().state, InstanceState::Running);
    Setup { b, cloud, subnet, instance, _dir: dir }
}

/// An image (its disk in `dir`), a VPC 10.0.0.0/16 with a subnet 10.0.1.0/24, and an instance
/// launched there and converged: the image, the subnet and the instance.
fn vpc_with_an_instance(b: &Backend, dir: &std::path::Path) -> (String, String, String) {
    let disk = dir.join("disk.qcow2");
    backend::disk::create_blank(&disk, None, 64 << 20).unwrap();
    let new =
        backend::images::NewImage { name: "img".into(), disk: disk.to_string_lossy().into(), ..Default::default() };
    let image_id = b.register_image(ACCOUNT, new).unwrap().id;
    let vpc = b.create_vpc(ACCOUNT, "10.0.0.0/16", None, &[]).unwrap();
    let subnet = b.create_subnet(ACCOUNT, &vpc.id, "10.0.1.0/24", None, None, &[]).unwrap().id;
    let instance = b.run_instances(ACCOUNT, &vpc.id, one_instance(&image_id, &subnet)).unwrap().remove(0).id;
    b.converge(&key(&instance)).unwrap();
    (image_id, subnet, instance)
}

/// One t3.nano of `image_id` in `subnet`.
fn one_instance(image_id: &str, subnet: &str) -> LaunchRequest {
    LaunchRequest {
        image_id: image_id.to_owned(),
        instance_type: "t3.nano".into(),
        min_count: 1,
        max_count: 1,
        subnet_id: Some(subnet.to_owned()),
        ..Default::default()
    }
}

fn key(id: &str) -> String {
    format!("{ACCOUNT}/{id}")
}

fn new_interface(subnet: &str) -> NewInterface {
    NewInterface { subnet_id: subnet.to_owned(), ..Default::default() }
}

fn attachment_state(b: &Backend, id: &str) -> Option<AttachmentState> {
    let own = b.network_interfaces(ACCOUNT).unwrap();
    own.into_iter().find(|i| i.id == id).unwrap().attachment.map(|a| a.state)
}

#[test]
fn a_running_guest_gets_its_nic_plugged_and_pulled() {
    let s = setup();
    let eni = s.b.create_network_interface(ACCOUNT, new_interface(&s.subnet), &[]).unwrap();
    assert_eq!(eni.private_ip, "10.0.1.5", "after the instance's 10.0.1.4");
    s.b.attach_network_interface(ACCOUNT, &eni.id, &s.instance, 1).unwrap();
    assert_eq!(attachment_state(&s.b, &eni.id), Some(AttachmentState::Attaching));
    s.b.converge(&key(&s.instance)).unwrap();
    assert_eq!(attachment_state(&s.b, &eni.id), Some(AttachmentState::Attached));
    let domain = s.cloud.domain(URI, &s.instance).unwrap();
    let plugged = domain.plugged_nics.get(&eni.mac).expect("the NIC is in the running guest");
    assert_eq!(plugged.port, backend::vpc_network::port_name(s.b.installation().unwrap(), &eni.id), "its OVN port");

    // Stopped and started: the domain is defined with it.
    s.b.stop_instances(ACCOUNT, std::slice::from_ref(&s.instance), true).unwrap();
    s.b.converge(&key(&s.instance)).unwrap();
    s.b.start_instances(ACCOUNT, std::slice::from_ref(&s.instance)).unwrap();
    s.b.converge(&key(&s.instance)).unwrap();
    let domain = s.cloud.domain(URI, &s.instance).unwrap();
    assert!(domain.plugged_nics.is_empty());
    assert_eq!(domain.spec.nics.iter().map(|n| n.mac.as_str()).collect::<Vec<_>>(), vec![eni.mac.as_str()]);

    // Detached: pulled from the guest, available again.
    let attachment = s.b.network_interfaces(ACCOUNT).unwrap()[0].attachment.clone().unwrap();
    s.b.detach_network_interface(ACCOUNT, &attachment.id).unwrap();
    assert_eq!(attachment_state(&s.b, &eni.id), Some(AttachmentState::Detaching));
    s.b.converge(&key(&s.instance)).unwrap();
    assert_eq!(attachment_state(&s.b, &eni.id), None);
    assert!(s.cloud.domain(URI, &s.instance).unwrap().spec.nics.is_empty());
}

#[test]
fn an_instance_launched_with_further_interfaces_is_defined_with_their_nics() {
    let s = setup();
    let spare = s.b.create_network_interface(ACCOUNT, new_interface(&s.subnet), &[]).unwrap();
    let instance = s.b.instance(ACCOUNT, &s.instance).unwrap();
    let req = LaunchRequest {
        extra_interfaces: vec![
            ExtraInterface { device_index: 1, subnet_id: Some(s.subnet.clone()), ..Default::default() },
            ExtraInterface { device_index: 2, existing: Some(spare.id.clone()), ..Default::default() },
        ],
        ..one_instance(&instance.image_id, &s.subnet)
    };
    let launched = s.b.run_instances(ACCOUNT, &instance.vpc_id, req.clone()).unwrap().remove(0);
    let attached: Vec<_> =
        s.b.network_interfaces(ACCOUNT)
            .unwrap()
            .into_iter()
            .filter(|i| i.attachment.as_ref().is_some_and(|a| a.instance_id == launched.id))
            .collect();
    assert_eq!(attached.len(), 2);
    assert!(attached.iter().all(|i| i.attachment.as_ref().unwrap().state == AttachmentState::Attaching));
    // The first converge settles the attachments (no guest runs yet), then defines the guest
    // with both NICs: nothing is hot-plugged.
    s.b.converge(&key(&launched.id)).unwrap();
    assert!(attached.iter().all(|i| attachment_state(&s.b, &i.id) == Some(AttachmentState::Attached)));
    let domain = s.cloud.domain(URI, &launched.id).unwrap();
    assert!(domain.plugged_nics.is_empty(), "{:?}", domain.plugged_nics);
    let mut defined: Vec<&str> = domain.spec.nics.iter().map(|n| n.mac.as_str()).collect();
    let mut wanted: Vec<&str> = attached.iter().map(|i| i.mac.as_str()).collect();
    defined.sort();
    wanted.sort();
    assert_eq!(defined, wanted);
    // An interface in use goes to no other launch, and that launch leaves nothing behind.
    let before = s.b.network_interfaces(ACCOUNT).unwrap().len();
    let again = s.b.run_instances(ACCOUNT, &instance.vpc_id, LaunchRequest { client_token: None, ..req });
    assert!(matches!(again, Err(Error::InterfaceInUse(_))), "{again:?}");
    assert_eq!(s.b.network_interfaces(ACCOUNT).unwrap().len(), before);
}

#[test]
fn a_host_that_does_not_answer_leaves_the_plug_for_later() {
    let s = setup();
    let eni = s.b.create_network_interface(ACCOUNT, new_interface(&s.subnet), &[]).unwrap();
    s.b.attach_network_interface(ACCOUNT, &eni.id, &s.instance, 1).unwrap();
    s.cloud.set_mode(URI, backend::fake::HostMode::Unreachable);
    assert!(s.b.converge(&key(&s.instance)).is_err());
    assert_eq!(attachment_state(&s.b, &eni.id), Some(AttachmentState::Attaching), "not attached without the guest");
    s.cloud.set_mode(URI, backend::fake::HostMode::Answering);
    s.b.converge(&key(&s.instance)).unwrap();
    assert_eq!(attachment_state(&s.b, &eni.id), Some(AttachmentState::Attached));
    assert!(s.cloud.domain(URI, &s.instance).unwrap().plugged_nics.contains_key(&eni.mac));
}

#[test]
fn addresses_attachments_and_termination() {
    let s = setup();
    let b = &s.b;
    let asked = NewInterface {
        private_ip: Some("10.0.1.20".parse().unwrap()),
        secondary: vec!["10.0.1.21".parse().unwrap()],
        secondary_count: 2,
        ..new_interface(&s.subnet)
    };
    let eni = b.create_network_interface(ACCOUNT, asked, &[]).unwrap();
    assert_eq!(eni.secondary_ips, vec!["10.0.1.21", "10.0.1.5", "10.0.1.6"]);
    // Every address is leased: a given one is refused elsewhere, the lowest free skips them.
    let taken = NewInterface { private_ip: Some("10.0.1.21".parse().unwrap()), ..new_interface(&s.subnet) };
    assert!(matches!(b.create_network_interface(ACCOUNT, taken, &[]), Err(Error::AddressInUse(_))));
    let next = b.create_network_interface(ACCOUNT, new_interface(&s.subnet), &[]).unwrap();
    assert_eq!(next.private_ip, "10.0.1.7");
    // Secondary addresses come and go; the primary stays.
    assert_eq!(b.assign_private_addresses(ACCOUNT, &eni.id, &[], 1, false).unwrap(), vec!["10.0.1.8"]);
    b.unassign_private_addresses(ACCOUNT, &eni.id, &["10.0.1.8".into(), "10.0.1.5".into()]).unwrap();
    assert!(b.unassign_private_addresses(ACCOUNT, &eni.id, &["10.0.1.20".into()]).is_err());
    assert_eq!(b.assign_private_addresses(ACCOUNT, &next.id, &[], 1, false).unwrap(), vec!["10.0.1.5"]);
    // With AllowReassignment a secondary address moves between interfaces.
    b.assign_private_addresses(ACCOUNT, &eni.id, &["10.0.1.5".parse().unwrap()], 0, true).unwrap();
    let own = b.network_interfaces(ACCOUNT).unwrap();
    let moved_from = own.iter().find(|i| i.id == next.id).unwrap();
    assert!(moved_from.secondary_ips.is_empty());
    assert!(own.iter().find(|i| i.id == eni.id).unwrap().secondary_ips.contains(&"10.0.1.5".to_owned()));

    // Device index 0 is the instance's own; an index is taken once.
    assert!(matches!(
        b.attach_network_interface(ACCOUNT, &eni.id, &s.instance, 0),
        Err(Error::InvalidParameter { .. })
    ));
    b.attach_network_interface(ACCOUNT, &eni.id, &s.instance, 1).unwrap();
    assert!(matches!(
        b.attach_network_interface(ACCOUNT, &next.id, &s.instance, 1),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(b.delete_network_interface(ACCOUNT, &eni.id), Err(Error::InterfaceInUse(_))));
    let kept = b.attach_network_interface(ACCOUNT, &next.id, &s.instance, 2).unwrap();
    let deleted_with = b.network_interfaces(ACCOUNT).unwrap().into_iter().find(|i| i.id == eni.id).unwrap();
    let change =
        InterfaceChange::DeleteOnTermination { attachment_id: deleted_with.attachment.unwrap().id, delete: true };
    b.modify_network_interface(ACCOUNT, &eni.id, change).unwrap();
    b.converge(&key(&s.instance)).unwrap();
    assert_eq!(s.cloud.domain(URI, &s.instance).unwrap().plugged_nics.len(), 2);

    // The instance terminates: one interface goes with it, the other stays, detached.
    b.terminate_instances(ACCOUNT, std::slice::from_ref(&s.instance)).unwrap();
    b.converge(&key(&s.instance)).unwrap();
    let own = b.network_interfaces(ACCOUNT).unwrap();
    assert_eq!(own.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), vec![next.id.as_str()]);
    assert!(own[0].attachment.is_none(), "{kept} ended with the instance");
    // The deleted interface's addresses are free again.
    let reuse = NewInterface { private_ip: Some("10.0.1.20".parse().unwrap()), ..new_interface(&s.subnet) };
    b.create_network_interface(ACCOUNT, reuse, &[]).unwrap();
}

#[test]
fn an_empty_public_pool_stops_no_launch_that_did_not_ask_for_an_address() {
    let s = setup();
    let instance = s.b.instance(ACCOUNT, &s.instance).unwrap();
    s.b.modify_subnet(ACCOUNT, &s.subnet, true).unwrap();
    // Another account holds every public address.
    while s.b.allocate_address("999999999999", &[]).is_ok() {}
    let req = one_instance(&instance.image_id, &s.subnet);
    let launched = s.b.run_instances(ACCOUNT, &instance.vpc_id, req.clone()).unwrap().remove(0);
    assert_eq!(launched.public_ip, None, "launched without the subnet's default public address");
    let asked = s.b.run_instances(ACCOUNT, &instance.vpc_id, LaunchRequest { associate_public_ip: Some(true), ..req });
    assert!(matches!(asked, Err(Error::AddressLimitExceeded)), "{asked:?}");
}

/// Without OVN, hosts that really run guests have no network to give them: launches, starts and
/// hot-plugs are refused with what to do (libvirt's test driver and the fake as `Test` are
/// records only, and go on).
#[test]
fn without_ovn_guests_that_really_run_get_no_network() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let open = |ovn: bool| {
        let mut config = HostConfig::new(URI);
        config.accelerator = Some(Accelerator::Tcg);
        let topology = Topology { hosts: vec![config.clone()], ..Topology::default() };
        let pool = HostPool::new([Host::new(config, topology.default_zone().to_owned(), cloud.host(URI))]);
        let b = Backend::with_hosts(Store::open(&dir.path().join("db.redb")).unwrap(), topology, pool)
            .with_data_dir(dir.path());
        if ovn {
            b.with_ovn("unix:/nonexistent/ovnnb_db.sock")
        } else {
            b
        }
    };
    let b = open(true);
    let (image_id, subnet, instance) = vpc_with_an_instance(&b, dir.path());
    let vpc_id = b.subnet(ACCOUNT, &subnet).unwrap().vpc_id;
    b.stop_instances(ACCOUNT, std::slice::from_ref(&instance), true).unwrap();
    b.converge(&key(&instance)).unwrap();
    assert_eq!(b.instance(ACCOUNT, &instance).unwrap().state, InstanceState::Stopped);
    let eni = b.create_network_interface(ACCOUNT, new_interface(&subnet), &[]).unwrap();
    drop(b);

    let b = open(false);
    let refused = |result: Result<(), Error>| match result {
        Err(Error::UnsupportedOperation(message)) => assert!(message.contains("scripts/setup-host"), "{message}"),
        other => panic!("{other:?}"),
    };
    refused(b.run_instances(ACCOUNT, &vpc_id, one_instance(&image_id, &subnet)).map(drop));
    refused(b.start_instances(ACCOUNT, std::slice::from_ref(&instance)).map(drop));
    refused(b.attach_network_interface(ACCOUNT, &eni.id, &instance, 1).map(drop));
    assert_eq!(b.instance(ACCOUNT, &instance).unwrap().state, InstanceState::Stopped, "nothing changed");
}

#[test]
fn tags_go_on_live_instances_interfaces_and_on_interfaces_of_ones_own() {
    let s = setup();
    let tag = [("team".to_owned(), "net".to_owned())];
    let primary = s.b.instance(ACCOUNT, &s.instance).unwrap().network_interface_id;
    let own = s.b.create_network_interface(ACCOUNT, new_interface(&s.subnet), &[]).unwrap().id;
    s.b.create_tags(ACCOUNT, &[primary.clone(), own.clone()], &tag).unwrap();
    let tagged: Vec<String> = s.b.tags(ACCOUNT).unwrap().into_iter().map(|t| t.resource_id).collect();
    assert!(tagged.contains(&primary) && tagged.contains(&own), "{tagged:?}");
    // Another account's interface is one that does not exist.
    let err = s.b.create_tags("222222222222", std::slice::from_ref(&own), &tag).unwrap_err();
    assert!(matches!(err, backend::Error::ResourceNotFound { .. }), "{err:?}");
    // A terminated instance's primary interface is gone with it.
    s.b.terminate_instances(ACCOUNT, std::slice::from_ref(&s.instance)).unwrap();
    s.b.converge(&key(&s.instance)).unwrap();
    let err = s.b.create_tags(ACCOUNT, std::slice::from_ref(&primary), &tag).unwrap_err();
    assert!(matches!(err, backend::Error::ResourceNotFound { .. }), "{err:?}");
}

#[test]
fn elastic_ips_are_read_for_the_interfaces_and_names_asked_for() {
    use backend::addresses::Target;
    let s = setup();
    let b = &s.b;
    let instance = b.instance(ACCOUNT, &s.instance).unwrap();
    let vpc = instance.vpc_id.clone();
    let gateway = b.create_internet_gateway(ACCOUNT, &[]).unwrap().id;
    b.attach_internet_gateway(ACCOUNT, &gateway, &vpc).unwrap();
    let eni = b.create_network_interface(ACCOUNT, new_interface(&s.subnet), &[]).unwrap();
    b.attach_network_interface(ACCOUNT, &eni.id, &s.instance, 1).unwrap();
    b.converge(&key(&s.instance)).unwrap();
    let [on_instance, on_eni, idle] = [(); 3].map(|_| b.allocate_address(ACCOUNT, &[]).unwrap());
    let other = b.allocate_address("999999999999", &[]).unwrap();
    b.associate_address(ACCOUNT, &on_instance.allocation_id, &Target::Instance(s.instance.clone()), None, false)
        .unwrap();
    b.associate_address(ACCOUNT, &on_eni.allocation_id, &Target::NetworkInterface(eni.id.clone()), None, false)
        .unwrap();
    let ids = |found: Vec<storage::AddressRecord>| -> Vec<String> {
        let mut ids: Vec<String> = found.into_iter().map(|a| a.allocation_id).collect();
        ids.sort();
        ids
    };
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };

    // A page's interfaces read their own addresses: the instance's, the attached interface's.
    let mine = b.addresses_on_interfaces(ACCOUNT, [instance.network_interface_id.as_str()]).unwrap();
    assert_eq!(ids(mine), std::slice::from_ref(&on_instance.allocation_id));
    let both = b.addresses_on_interfaces(ACCOUNT, [instance.network_interface_id.as_str(), eni.id.as_str()]).unwrap();
    assert_eq!(ids(both), sorted(vec![on_instance.allocation_id.clone(), on_eni.allocation_id.clone()]));
    assert!(b.addresses_on_interfaces("999999999999", [eni.id.as_str()]).unwrap().is_empty(), "another account's");
    // One interface alone (a DescribeInstances filter's candidate): its own entries.
    assert_eq!(ids(b.addresses_on_interface(ACCOUNT, &eni.id).unwrap()), std::slice::from_ref(&on_eni.allocation_id));
    assert!(b.addresses_on_interface("999999999999", &eni.id).unwrap().is_empty());

    // Named by allocation id or public address: those alone, the interface's instance shown.
    let named =
        b.addresses_named(ACCOUNT, std::slice::from_ref(&on_eni.allocation_id), std::slice::from_ref(&idle.public_ip));
    let named = named.unwrap();
    assert_eq!(ids(named.clone()), sorted(vec![on_eni.allocation_id.clone(), idle.allocation_id.clone()]));
    let shown = named.iter().find(|a| a.allocation_id == on_eni.allocation_id).unwrap();
    assert_eq!(shown.association.as_ref().unwrap().instance_id.as_deref(), Some(s.instance.as_str()));
    // Another account's, by either name, and an address nobody holds: nothing.
    let theirs =
        b.addresses_named(ACCOUNT, std::slice::from_ref(&other.allocation_id), std::slice::from_ref(&other.public_ip));
    assert!(theirs.unwrap().is_empty());
    assert!(b.addresses_named(ACCOUNT, &[], &["198.51.100.250".into()]).unwrap().is_empty());
    assert_eq!(ids(b.addresses(ACCOUNT).unwrap()).len(), 3);

    // The interface detached: its address stays with it, pointing at no instance; deleted, it
    // takes the association with it.
    let attachment = b.network_interfaces(ACCOUNT).unwrap().remove(0).attachment.unwrap().id;
    b.detach_network_interface(ACCOUNT, &attachment).unwrap();
    let kept = b.addresses_named(ACCOUNT, std::slice::from_ref(&on_eni.allocation_id), &[]).unwrap();
    assert_eq!(kept[0].association.as_ref().map(|a| a.instance_id.clone()), Some(None));
    b.converge(&key(&s.instance)).unwrap();
    b.delete_network_interface(ACCOUNT, &eni.id).unwrap();
    assert!(b.addresses_on_interfaces(ACCOUNT, [eni.id.as_str()]).unwrap().is_empty());
    let released = b.addresses_named(ACCOUNT, std::slice::from_ref(&on_eni.allocation_id), &[]).unwrap();
    assert_eq!(released[0].association, None);
}
