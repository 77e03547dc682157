//! Stratus keeps OVN's northbound state in step with its store (issue 16): each account's
//! default VPC is a router, each default subnet a switch with DHCP, each live instance a port;
//! the sweep writes what changed, repairs drift, removes what is gone, survives a restart, and
//! never touches rows that are not its installation's. A real northbound database
//! (`ovn::testing`); fake hosts.

use backend::fake::FakeCloud;
use backend::hosts::{Host, HostConfig, HostPool};
use backend::hypervisor::Accelerator;
use backend::instances::LaunchRequest;
use backend::vpc_network::port_name;
use backend::{Backend, Topology};
use ovn::testing::{ovn_present, Db};
use ovn::Northbound;
use storage::Store;

fn backend(store: Store, dir: &std::path::Path, nb: &str) -> Backend {
    let cloud = FakeCloud::new();
    let mut config = HostConfig::new("fake://ovn");
    config.accelerator = Some(Accelerator::Test);
    (config.vcpus, config.memory_mib) = (Some(64), Some(65536));
    let zone = Topology::default().default_zone().to_owned();
    let pool = HostPool::new([Host::new(config.clone(), zone, cloud.host("fake://ovn"))]);
    let topology = Topology { hosts: vec![config], ..Topology::default() };
    Backend::with_hosts(store, topology, pool).with_data_dir(dir).with_ovn(nb)
}

fn launch(b: &Backend, account: &str, vpc: &str, image: &str) -> storage::InstanceRecord {
    let req = LaunchRequest {
        image_id: image.to_owned(),
        instance_type: "t3.nano".into(),
        min_count: 1,
        max_count: 1,
        ..Default::default()
    };
    let record = b.run_instances(account, vpc, req).unwrap().remove(0);
    b.converge(&format!("{account}/{}", record.id)).unwrap();
    record
}

#[test]
fn the_sweep_keeps_ovn_in_step_with_the_store() {
    if !ovn_present() {
        eprintln!("skipped: OVN is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = Db::northbound(dir.path());
    let nb = Northbound::new(db.socket());
    let nbctl = |args: &[&str]| nb.nbctl(args).unwrap();
    // Another tool's switch lives in the same database.
    nbctl(&["ls-add", "operator-switch"]);

    let store_path = dir.path().join("stratus.redb");
    let b = backend(Store::open(&store_path).unwrap(), dir.path(), &db.socket());
    let admin = b.bootstrap_admin().unwrap().unwrap();
    let other = b.create_account(backend::accounts::NewAccount { name: "other".into(), ..Default::default() }).unwrap();
    let vpcs: std::collections::HashMap<String, String> = [&admin, &other]
        .iter()
        .map(|c| (c.account_id.clone(), b.principal(&c.access_key_id).unwrap().unwrap().default_vpc_id))
        .collect();
    let vpc_of = |account: &str| vpcs[account].clone();
    let disk = dir.path().join("image.qcow2");
    backend::disk::create_blank(&disk, None, 64 << 20).unwrap();
    let new = backend::images::NewImage {
        name: "img".into(),
        disk: disk.to_string_lossy().into(),
        public: true,
        ..Default::default()
    };
    let image = b.register_image(&admin.account_id, new).unwrap().id;
    let mine = launch(&b, &admin.account_id, &vpc_of(&admin.account_id), &image);
    let theirs = launch(&b, &other.account_id, &vpc_of(&other.account_id), &image);
    b.sweep().unwrap();

    // One router per account, and each instance's port with its address and DHCP.
    let routers = nbctl(&["lr-list"]);
    for account in [&admin.account_id, &other.account_id] {
        assert!(routers.contains(&format!("stratus-{}", vpc_of(account))), "{routers}");
    }
    let installation = b.installation().unwrap().to_owned();
    // Ports are named by a UUID derived from the interface (libvirt's `interfaceid`).
    let port = |record: &storage::InstanceRecord| port_name(&installation, &record.network_interface_id);
    for record in [&mine, &theirs] {
        let addresses = nbctl(&["lsp-get-addresses", &port(record)]);
        assert_eq!(addresses.trim(), format!("{} {}", record.mac, record.private_ip));
        assert!(nbctl(&["lsp-get-dhcpv4-options", &port(record)]).contains("172.31.0.0/20"));
    }
    let names = |current: ovn::Current| {
        let mut names: Vec<String> = [current.routers, current.router_ports, current.switches, current.switch_ports]
            .into_iter()
            .flatten()
            .map(|row| row.name)
            .collect();
        names.sort();
        names
    };
    let before = nb.current(&installation).unwrap();
    // The default VPCs are networks of their own on OVN: each subnet's switch holds its router
    // leg, the instance's port and the VPC's metadata port; the public switch holds each
    // router's gateway leg and its uplink.
    assert_eq!(
        (before.routers.len(), before.switch_ports.len()),
        (2, 9),
        "2 routers; 2 × (router leg, instance, metadata) + 2 gateway legs + localnet"
    );
    let before = names(before);

    // Drift is repaired within a full reconciliation; a sweep with nothing new writes nothing.
    nbctl(&["lsp-del", &port(&mine)]);
    assert_eq!(
        b.sync_ovn(&interfaces(&b), std::time::Instant::now()).unwrap(),
        None,
        "nothing changed here: no write before the full pass"
    );
    drop(b);

    // A restart (a crash, even) reconciles at once: the port comes back.
    let b = backend(Store::open(&store_path).unwrap(), dir.path(), &db.socket());
    b.sweep().unwrap();
    assert!(nb.nbctl(&["lsp-get-addresses", &port(&mine)]).is_ok(), "the deleted port is back");
    assert_eq!(names(nb.current(&installation).unwrap()), before);

    // A terminated instance's port goes; nothing else does.
    b.terminate_instances(&other.account_id, std::slice::from_ref(&theirs.id)).unwrap();
    b.converge(&format!("{}/{}", other.account_id, theirs.id)).unwrap();
    b.sweep().unwrap();
    assert!(nb.nbctl(&["lsp-get-addresses", &port(&theirs)]).is_err(), "its port is gone");
    assert!(nb.nbctl(&["lsp-get-addresses", &port(&mine)]).is_ok());
    assert!(nbctl(&["ls-list"]).contains("operator-switch"), "another tool's row is never touched");
}

fn interfaces(b: &Backend) -> Vec<backend::vpc_network::Interface> {
    b.live_instance_records().unwrap().iter().filter_map(backend::vpc_network::Interface::of).collect()
}
