//! One host that stops answering must not stop the others: its calls time out behind its
//! bridge ([`backend::bridge`]), the conductor's workers move on, and its work is finished
//! once it answers again. Fake hosts ([`backend::fake`]) make the hang.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::conductor::CONDUCTOR_WORKERS;
use backend::fake::{FakeCloud, HostMode};
use backend::hosts::{Host, HostConfig, HostPool};
use backend::hypervisor::Accelerator;
use backend::instances::LaunchRequest;
use backend::topology::Region;
use backend::{Backend, Topology};
use storage::{InstanceState, Store};

const ACCOUNT: &str = "123456789012";
const HUNG: &str = "fake://hung";
const FINE: &str = "fake://fine";

fn launch(b: &Backend, image_id: &str, zone: &str, count: u32) -> Vec<String> {
    let req = LaunchRequest {
        image_id: image_id.to_owned(),
        instance_type: "t3.nano".into(),
        min_count: count,
        max_count: count,
        zone: Some(zone.to_owned()),
        ..Default::default()
    };
    b.run_instances(ACCOUNT, "vpc-1", req).unwrap().into_iter().map(|i| i.id).collect()
}

async fn wait_for(b: &Backend, ids: &[String], state: InstanceState, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let instances = b.instances(ACCOUNT).unwrap();
        let states: Vec<InstanceState> =
            ids.iter().map(|id| instances.iter().find(|i| &i.id == id).unwrap().state).collect();
        if states.iter().all(|s| *s == state) {
            return;
        }
        assert!(Instant::now() < deadline, "waited {within:?} for {state:?}, states are {states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_host_holds_up_only_its_own_work() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let configs: Vec<HostConfig> = [(HUNG, "us-east-1a"), (FINE, "us-east-1b")]
        .iter()
        .map(|(uri, zone)| {
            let mut config = HostConfig::new(uri);
            config.zone = Some((*zone).to_owned());
            config.accelerator = Some(Accelerator::Test);
            (config.vcpus, config.memory_mib) = (Some(64), Some(65536));
            (config.max_calls, config.call_timeout_secs) = (2, 1);
            config
        })
        .collect();
    let hosts =
        HostPool::new(configs.iter().map(|c| Host::new(c.clone(), c.zone.clone().unwrap(), cloud.host(&c.uri))));
    let topology = Topology {
        regions: vec![Region { name: "us-east-1".into(), zones: vec!["us-east-1a".into(), "us-east-1b".into()] }],
        hosts: configs,
        ..Topology::default()
    };
    let b = Arc::new(Backend::with_hosts(Store::in_memory().unwrap(), topology, hosts).with_data_dir(dir.path()));
    b.start_conductor(Duration::from_millis(200));
    let disk = dir.path().join("disk.qcow2");
    backend::disk::create_blank(&disk, None, 64 << 20).unwrap();
    let new =
        backend::images::NewImage { name: "fake".into(), disk: disk.to_string_lossy().into(), ..Default::default() };
    let image = b.register_image(ACCOUNT, new).unwrap().id;

    // More instances there than the conductor has workers: without a bound on each call,
    // their stops would hold every worker forever.
    let stuck = launch(&b, &image, "us-east-1a", CONDUCTOR_WORKERS as u32 + 4);
    wait_for(&b, &stuck, InstanceState::Running, Duration::from_secs(20)).await;

    // The host's daemon hangs: every call to it blocks until it answers again.
    cloud.set_mode(HUNG, HostMode::Hanging);
    b.stop_instances(ACCOUNT, &stuck, true).unwrap();
    let elsewhere = launch(&b, &image, "us-east-1b", 8);
    wait_for(&b, &elsewhere, InstanceState::Running, Duration::from_secs(30)).await;
    let instances = b.instances(ACCOUNT).unwrap();
    assert!(
        stuck.iter().all(|id| instances.iter().any(|i| &i.id == id && i.state == InstanceState::Stopping)),
        "the hung host's instances wait"
    );

    // It answers again: its work is finished without anyone asking twice.
    cloud.set_mode(HUNG, HostMode::Answering);
    wait_for(&b, &stuck, InstanceState::Stopped, Duration::from_secs(30)).await;
    assert!(stuck.iter().all(|id| cloud.domain(HUNG, id).is_some_and(|d| d.state.is_off())));
}
