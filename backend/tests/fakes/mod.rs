//! A pair of fake hosts ([`backend::fake`]) with a running instance, for the tests of what
//! libvirt cannot produce on demand.

use std::sync::Arc;

use backend::fake::{FakeCloud, MigrationScript};
use backend::hosts::{Host, HostConfig, HostPool};
use backend::hypervisor::Accelerator;
use backend::instances::LaunchRequest;
use backend::{Backend, Topology};
use storage::Store;

/// Two fake hosts sharing one world, a running instance on the first.
pub fn pair_with_instance(
    account: &str,
    script: MigrationScript,
    dir: &std::path::Path,
) -> (Arc<Backend>, FakeCloud, String, Vec<String>) {
    pair(account, script, dir, false)
}

/// The same, each host keeping its instances' folders on storage of its own: `dir`'s `one/`
/// and `two/` (`disk_dir`).
#[allow(dead_code)] // not every test that shares this module uses it
pub fn pair_with_local_disks(
    account: &str,
    script: MigrationScript,
    dir: &std::path::Path,
) -> (Arc<Backend>, FakeCloud, String, Vec<String>) {
    pair(account, script, dir, true)
}

fn pair(
    account: &str,
    script: MigrationScript,
    dir: &std::path::Path,
    local_disks: bool,
) -> (Arc<Backend>, FakeCloud, String, Vec<String>) {
    let cloud = FakeCloud::new();
    cloud.set_migration_script(script);
    let configs: Vec<HostConfig> = ["one", "two"]
        .iter()
        .map(|name| {
            let mut config = HostConfig::new(&format!("fake://{name}"));
            config.disk_dir = local_disks.then(|| dir.join(name));
            config
        })
        .collect();
    let hosts = HostPool::new(configs.iter().map(|config| {
        let mut config = config.clone();
        config.accelerator = Some(Accelerator::Test);
        let driver = cloud.host(&config.uri);
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
    let image_id = b.register_image(account, new).unwrap().id;
    let req =
        LaunchRequest { image_id, instance_type: "t3.nano".into(), min_count: 1, max_count: 1, ..Default::default() };
    let id = b.run_instances(account, "vpc-1", req).unwrap().remove(0).id;
    b.converge(&format!("{account}/{id}")).unwrap();
    (b, cloud, id, host_ids)
}
