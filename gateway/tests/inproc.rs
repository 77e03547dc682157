//! Whole actions through the request flow (`server::handle`, signed as clients sign), on fake
//! hosts ([`backend::fake`]) and an in-memory store: no HTTP, no libvirt, a second or so for the
//! lot. The same flows run on real daemons in the compat tests.

mod common;

use std::time::{Duration, Instant};

use backend::fake::FakeCloud;
use backend::hosts::{Host, HostConfig, HostPool};
use backend::hypervisor::{Accelerator, PowerState};
use backend::{Backend, Topology};
use common::*;
use gateway::config::Limits;

const HOST_URI: &str = "fake://inproc";

struct World {
    f: Fixture,
    cloud: FakeCloud,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let mut config = HostConfig::new(HOST_URI);
    // No guest runs on the fake: its network is records only, as on libvirt's test driver.
    config.accelerator = Some(Accelerator::Test);
    let topology = Topology { hosts: vec![config.clone()], ..Topology::default() };
    let zone = topology.default_zone().to_owned();
    let pool = HostPool::new([Host::new(config, zone, cloud.host(HOST_URI))]);
    let backend = Backend::with_hosts(storage::Store::in_memory().unwrap(), topology, pool).with_data_dir(dir.path());
    let f = fixture_on(backend, Limits::default());
    f.state.backend.start_conductor(Duration::from_millis(100));
    World { f, cloud, _dir: dir }
}

/// The text of the first `<name>` in `body`.
fn field<'a>(body: &'a str, name: &str) -> &'a str {
    body.split(&format!("<{name}>")).nth(1).and_then(|rest| rest.split(&format!("</{name}>")).next()).unwrap_or("")
}

async fn ok(f: &Fixture, body: &str) -> String {
    let (status, answer) = call(f, body).await;
    assert_eq!(status, 200, "{body}: {answer}");
    answer
}

/// Polls `body` until its answer contains `needle`.
async fn until(f: &Fixture, body: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = ok(f, body).await;
        if answer.contains(needle) {
            return answer;
        }
        assert!(Instant::now() < deadline, "{body}: no {needle} in {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn image(w: &World) -> String {
    let disk = w._dir.path().join("disk.qcow2");
    backend::disk::create_blank(&disk, None, 64 << 20).unwrap();
    let new =
        backend::images::NewImage { name: "inproc".into(), disk: disk.to_string_lossy().into(), ..Default::default() };
    w.f.state.backend.register_image(&w.f.state.backend.list_accounts().unwrap()[0].account_id, new).unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_volumes_groups_and_images_without_http_or_libvirt() {
    let w = world();
    let f = &w.f;
    let ami = image(&w);

    // A group that lets SSH in, and an instance in it.
    let group = ok(f, "Action=CreateSecurityGroup&Version=2016-11-15&GroupName=web&GroupDescription=web").await;
    let group_id = field(&group, "groupId").to_owned();
    ok(f, &format!("Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupId={group_id}&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22&IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0/0")).await;
    let run = ok(f, &format!("Action=RunInstances&Version=2016-11-15&ImageId={ami}&InstanceType=t3.nano&MinCount=1&MaxCount=1&SecurityGroupId.1={group_id}")).await;
    let id = field(&run, "instanceId").to_owned();
    assert_eq!(field(&run, "name"), "pending");
    let describe = format!("Action=DescribeInstances&Version=2016-11-15&InstanceId.1={id}");
    until(f, &describe, "<name>running</name>").await;
    assert_eq!(w.cloud.domain(HOST_URI, &id).map(|d| d.state), Some(PowerState::Running));
    // Its NIC is the OVN port of its interface.
    let installation = f.state.backend.installation().unwrap().to_owned();
    let port = backend::vpc_network::port_name(&installation, field(&run, "networkInterfaceId"));
    assert_eq!(w.cloud.domain(HOST_URI, &id).unwrap().spec.port, port);

    // A volume, attached to the running guest and detached again.
    let zone = field(&ok(f, "Action=DescribeAvailabilityZones&Version=2016-11-15").await, "zoneName").to_owned();
    let volume = ok(f, &format!("Action=CreateVolume&Version=2016-11-15&AvailabilityZone={zone}&Size=1")).await;
    let vol = field(&volume, "volumeId").to_owned();
    let describe_volume = format!("Action=DescribeVolumes&Version=2016-11-15&VolumeId.1={vol}");
    until(f, &describe_volume, "<status>available</status>").await;
    ok(f, &format!("Action=AttachVolume&Version=2016-11-15&VolumeId={vol}&InstanceId={id}&Device=/dev/sdf")).await;
    until(f, &describe_volume, "<status>attached</status>").await;
    assert_eq!(w.cloud.domain(HOST_URI, &id).unwrap().plugged.len(), 1, "hot-plugged into the guest");
    ok(f, &format!("Action=DetachVolume&Version=2016-11-15&VolumeId={vol}")).await;
    until(f, &describe_volume, "<status>available</status>").await;
    assert!(w.cloud.domain(HOST_URI, &id).unwrap().plugged.is_empty());

    // An image of the running instance, which runs on.
    let made = ok(f, &format!("Action=CreateImage&Version=2016-11-15&InstanceId={id}&Name=snapshot-of-web")).await;
    let new_ami = field(&made, "imageId").to_owned();
    until(
        f,
        &format!("Action=DescribeImages&Version=2016-11-15&ImageId.1={new_ami}"),
        "<imageState>available</imageState>",
    )
    .await;
    assert_eq!(w.cloud.domain(HOST_URI, &id).map(|d| d.state), Some(PowerState::Running));

    // Gone: the group is free again, the domain is undefined.
    ok(f, &format!("Action=TerminateInstances&Version=2016-11-15&InstanceId.1={id}")).await;
    until(f, &describe, "<name>terminated</name>").await;
    assert!(w.cloud.domain(HOST_URI, &id).is_none());
    ok(f, &format!("Action=DeleteVolume&Version=2016-11-15&VolumeId={vol}")).await;
    ok(f, &format!("Action=DeleteSecurityGroup&Version=2016-11-15&GroupId={group_id}")).await;
}
