"""Volumes and snapshots through boto3, waiters included.

The control plane runs on libvirt's test driver; hot-plug, resize and detach run against a real
QEMU guest on the local daemon, which reports its disks on the serial console
(`stratus-disks vda=<bytes> vdb=<bytes>`). Linux names virtio disks in the order it finds them,
whatever device name the attachment gives (as on EC2's Nitro instances), so the test looks for a
second disk of the volume's size.
"""

from __future__ import annotations

import dataclasses
import re
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import (BOOT_MARKER, QEMU_CONFIG, TEST_DRIVER_CONFIG, ec2_client, import_image, require_qemu,
                      wait_console, wait_states)

FAST = {"Delay": 1, "MaxAttempts": 120}
GIB = 1 << 30


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory, test_image):
    from conftest import start_stratus

    server = start_stratus(tmp_path_factory.mktemp("volumes"), config=TEST_DRIVER_CONFIG)
    image_id = import_image(server, test_image, "volumes image")
    yield server, ec2_client(server), image_id
    server.stop()


def zone(client) -> str:
    return client.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]


def volume(client, volume_id) -> dict:
    return client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]


def test_volume_lifecycle_and_errors(cloud):
    _, client, _ = cloud
    az = zone(client)
    token = str(uuid.uuid4())
    created = client.create_volume(AvailabilityZone=az, Size=2, VolumeType="gp3", ClientToken=token,
                                   TagSpecifications=[{"ResourceType": "volume",
                                                       "Tags": [{"Key": "Name", "Value": "data"}]}])
    volume_id = created["VolumeId"]
    assert created["State"] == "creating" and created["Size"] == 2 and created["Iops"] == 3000
    assert created["Throughput"] == 125 and created["Encrypted"] is False
    again = client.create_volume(AvailabilityZone=az, Size=2, VolumeType="gp3", ClientToken=token)
    assert again["VolumeId"] == volume_id, "a retried CreateVolume finds its first answer"
    with pytest.raises(ClientError) as e:
        client.create_volume(AvailabilityZone=az, Size=3, VolumeType="gp3", ClientToken=token)
    assert error_code(e) == "IdempotentParameterMismatch"
    client.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=FAST)
    described = volume(client, volume_id)
    assert described["State"] == "available" and described["Attachments"] == []
    assert described["Tags"] == [{"Key": "Name", "Value": "data"}] and described["AvailabilityZone"] == az
    by_status = client.describe_volumes(Filters=[{"Name": "status", "Values": ["available"]},
                                                 {"Name": "tag:Name", "Values": ["data"]}])["Volumes"]
    assert [v["VolumeId"] for v in by_status] == [volume_id]

    for kwargs, code in [
        (dict(AvailabilityZone=az), "MissingParameter"),
        (dict(AvailabilityZone=az, Size=2, VolumeType="warp"), "InvalidParameterValue"),
        (dict(AvailabilityZone=az, Size=20000), "InvalidParameterValue"),
        (dict(AvailabilityZone=az, Size=10, VolumeType="io1"), "MissingParameter"),
        (dict(AvailabilityZone="nowhere-1a", Size=1), "InvalidParameterValue"),
        (dict(AvailabilityZone=az, Size=1, SnapshotId="snap-0123456789abcdef0"), "InvalidSnapshot.NotFound"),
    ]:
        with pytest.raises(ClientError) as e:
            client.create_volume(**kwargs)
        assert error_code(e) == code, kwargs
    with pytest.raises(ClientError) as e:
        client.describe_volumes(VolumeIds=["vol-0123456789abcdef0"])
    assert error_code(e) == "InvalidVolume.NotFound"
    with pytest.raises(ClientError) as e:
        client.describe_volumes(VolumeIds=["i-0123456789abcdef0"])
    assert error_code(e) == "InvalidVolumeID.Malformed"

    # Growth, with its modification record.
    modified = client.modify_volume(VolumeId=volume_id, Size=4)["VolumeModification"]
    assert (modified["OriginalSize"], modified["TargetSize"]) == (2, 4)
    deadline = time.monotonic() + 30
    while client.describe_volumes_modifications(VolumeIds=[volume_id])["VolumesModifications"][0][
            "ModificationState"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert volume(client, volume_id)["Size"] == 4
    with pytest.raises(ClientError) as e:
        client.modify_volume(VolumeId=volume_id, Size=1)
    assert error_code(e) == "InvalidParameterValue"

    # A snapshot, and a volume made from it.
    snapshot = client.create_snapshot(VolumeId=volume_id, Description="nightly",
                                      TagSpecifications=[{"ResourceType": "snapshot",
                                                          "Tags": [{"Key": "k", "Value": "v"}]}])
    assert snapshot["State"] == "pending" and snapshot["VolumeSize"] == 4
    client.get_waiter("snapshot_completed").wait(SnapshotIds=[snapshot["SnapshotId"]], WaiterConfig=FAST)
    listed = client.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [volume_id]}])
    [found] = listed["Snapshots"]
    assert found["Description"] == "nightly" and found["Progress"] == "100%" and found["Tags"] == [{"Key": "k", "Value": "v"}]
    restored = client.create_volume(AvailabilityZone=az, SnapshotId=snapshot["SnapshotId"])
    assert restored["Size"] == 4 and restored["SnapshotId"] == snapshot["SnapshotId"]
    client.get_waiter("volume_available").wait(VolumeIds=[restored["VolumeId"]], WaiterConfig=FAST)

    client.delete_snapshot(SnapshotId=snapshot["SnapshotId"])
    with pytest.raises(ClientError) as e:
        client.describe_snapshots(SnapshotIds=[snapshot["SnapshotId"]])
    assert error_code(e) == "InvalidSnapshot.NotFound"
    for vid in (volume_id, restored["VolumeId"]):
        client.delete_volume(VolumeId=vid)
        with pytest.raises(ClientError) as e:
            client.describe_volumes(VolumeIds=[vid])
        assert error_code(e) == "InvalidVolume.NotFound"


def test_root_volumes(cloud):
    _, client, image_id = cloud
    kept = client.run_instances(
        ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
        # AWS images call their root `/dev/sda1` (or `/dev/xvda`): the same root here.
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1",
                              "Ebs": {"VolumeSize": 3, "DeleteOnTermination": False, "VolumeType": "gp3"}}],
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "role", "Value": "root"}]}])["Instances"][0]
    plain = client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"][0]
    ids = [kept["InstanceId"], plain["InstanceId"]]
    described = wait_states(client, ids, "running", timeout=30)
    roots = {}
    for instance in described:
        assert instance["RootDeviceName"] == "/dev/vda"
        [mapping] = instance["BlockDeviceMappings"]
        assert mapping["DeviceName"] == "/dev/vda" and mapping["Ebs"]["Status"] == "attached"
        roots[instance["InstanceId"]] = mapping["Ebs"]["VolumeId"]
    kept_root = volume(client, roots[kept["InstanceId"]])
    assert (kept_root["Size"], kept_root["VolumeType"], kept_root["State"]) == (3, "gp3", "in-use")
    assert kept_root["Attachments"][0]["DeleteOnTermination"] is False
    assert kept_root["Tags"] == [{"Key": "role", "Value": "root"}]
    by_instance = client.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [plain["InstanceId"]]},
                                                   {"Name": "attachment.device", "Values": ["/dev/vda"]}])["Volumes"]
    assert [v["VolumeId"] for v in by_instance] == [roots[plain["InstanceId"]]]
    with pytest.raises(ClientError) as e:
        client.delete_volume(VolumeId=roots[plain["InstanceId"]])
    assert error_code(e) == "VolumeInUse"
    with pytest.raises(ClientError) as e:
        # Further devices are made at launch (test_launch_templates_boto3.py); a name EC2 does
        # not take for one is refused.
        client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                             BlockDeviceMappings=[{"DeviceName": "/dev/hdb", "Ebs": {"VolumeSize": 1}}])
    assert error_code(e) == "InvalidBlockDeviceMapping"

    # Burstable types report their credit specification; Terraform reads it.
    credits = client.describe_instance_credit_specifications(InstanceIds=ids)["InstanceCreditSpecifications"]
    assert {c["InstanceId"]: c["CpuCredits"] for c in credits} == {i: "unlimited" for i in ids}
    answer = client.modify_instance_credit_specification(
        InstanceCreditSpecifications=[{"InstanceId": ids[0], "CpuCredits": "standard"}])
    assert [s["InstanceId"] for s in answer["SuccessfulInstanceCreditSpecifications"]] == [ids[0]]
    credits = client.describe_instance_credit_specifications(InstanceIds=[ids[0]])["InstanceCreditSpecifications"]
    assert credits == [{"InstanceId": ids[0], "CpuCredits": "standard"}]

    client.terminate_instances(InstanceIds=ids)
    client.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig=FAST)
    assert volume(client, roots[kept["InstanceId"]])["State"] == "available", "DeleteOnTermination=false keeps it"
    with pytest.raises(ClientError) as e:
        client.describe_volumes(VolumeIds=[roots[plain["InstanceId"]]])
    assert error_code(e) == "InvalidVolume.NotFound"
    client.delete_volume(VolumeId=roots[kept["InstanceId"]])


def disks_seen(client, instance_id, since: int = 0) -> tuple[dict[str, int], int]:
    """The guest's latest `stratus-disks` line after character `since` of its console."""
    text = client.get_console_output(InstanceId=instance_id, Latest=True).get("Output", "")
    lines = re.findall(r"stratus-disks ([^\r\n]*)", text[since:])
    if not lines:
        return {}, since
    return dict((k, int(v)) for k, v in re.findall(r"(vd[a-z])=(\d+)", lines[-1])), len(text)


def wait_attached(client, volume_id, timeout=60.0) -> dict:
    """Terraform's wait: the attachment (not the volume, which is `in-use` at once) says so."""
    deadline = time.monotonic() + timeout
    while True:
        v = volume(client, volume_id)
        if v["Attachments"] and v["Attachments"][0]["State"] == "attached":
            return v
        assert time.monotonic() < deadline, f"never attached: {v}"
        time.sleep(0.5)


def wait_for_disks(client, instance_id, predicate, timeout=60.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        disks, _ = disks_seen(client, instance_id)
        if predicate(disks):
            return disks
        assert time.monotonic() < deadline, f"the guest never reported the expected disks; last: {disks}"
        time.sleep(0.5)


def test_hot_plug_into_a_real_guest(server_factory, test_image):
    require_qemu()
    server = server_factory(config=QEMU_CONFIG)
    client = ec2_client(server)
    image_id = import_image(server, test_image, "hot-plug image")
    instance_id = client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1,
                                       MaxCount=1)["Instances"][0]["InstanceId"]
    try:
        wait_states(client, [instance_id], "running", timeout=120)
        deadline = time.monotonic() + 120
        while BOOT_MARKER not in client.get_console_output(InstanceId=instance_id).get("Output", ""):
            assert time.monotonic() < deadline, "the guest did not boot"
            time.sleep(0.5)
        assert list(wait_for_disks(client, instance_id, lambda d: "vda" in d)) == ["vda"]

        volume_id = client.create_volume(AvailabilityZone=zone(client), Size=1)["VolumeId"]
        client.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=FAST)
        attachment = client.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
        assert attachment["State"] == "attaching" and attachment["Device"] == "/dev/sdf"
        client.get_waiter("volume_in_use").wait(VolumeIds=[volume_id], WaiterConfig=FAST)
        wait_attached(client, volume_id)
        wait_for_disks(client, instance_id, lambda d: d.get("vdb") == GIB)
        mappings = client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
            "BlockDeviceMappings"]
        assert [m["DeviceName"] for m in mappings] == ["/dev/vda", "/dev/sdf"]

        # Grown while attached: the guest sees the new size at once.
        client.modify_volume(VolumeId=volume_id, Size=2)
        wait_for_disks(client, instance_id, lambda d: d.get("vdb") == 2 * GIB)

        # A snapshot of the attached disk (the guest is paused for the copy, then runs on).
        snapshot_id = client.create_snapshot(VolumeId=volume_id)["SnapshotId"]
        client.get_waiter("snapshot_completed").wait(SnapshotIds=[snapshot_id], WaiterConfig=FAST)
        assert client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
            "State"]["Name"] == "running"

        client.detach_volume(VolumeId=volume_id)
        client.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=FAST)
        wait_for_disks(client, instance_id, lambda d: list(d) == ["vda"])

        # Attached while stopped, the disk is there at the next boot.
        client.stop_instances(InstanceIds=[instance_id])
        client.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
        client.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdg")
        wait_attached(client, volume_id)
        client.start_instances(InstanceIds=[instance_id])
        wait_states(client, [instance_id], "running", timeout=120)
        wait_for_disks(client, instance_id, lambda d: d.get("vdb") == 2 * GIB, timeout=120)
    finally:
        client.terminate_instances(InstanceIds=[instance_id])
        client.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    assert volume(client, volume_id)["State"] == "available", "data volumes outlive their instance"
    client.delete_volume(VolumeId=volume_id)
    client.delete_snapshot(SnapshotId=snapshot_id)


def holds(path, text: str) -> bool:
    with open(path, "rb") as f:
        return text.encode() in f.read()


def stamping_cloud(server_factory, test_image, prefix: str):
    """A server on the local daemon, its client, an image whose guests stamp every disk they get
    with a fresh marker (`stratus.stamp`), and the marker."""
    require_qemu()
    server = server_factory(config=QEMU_CONFIG)
    stamp = prefix + uuid.uuid4().hex[:12].upper()
    stamped = dataclasses.replace(test_image, cmdline=f"{test_image.cmdline} stratus.stamp={stamp}")
    return server, ec2_client(server), import_image(server, stamped, f"{prefix} image"), stamp


def test_encrypted_volumes_hold_no_plaintext_on_disk(server_factory, test_image):
    """A real guest writes a marker at the start of every disk it is given (`stratus.stamp`). On
    the host, the file of a plain volume shows the marker, as a check that the test can see it;
    the files of an encrypted volume, of its snapshot and of a volume made from that snapshot
    never do, while the guest reads its marker back from the last one (the data went through
    two re-encryptions). The guest boots from an encrypted root too."""
    server, client, image_id, stamp = stamping_cloud(server_factory, test_image, "STRATUSCLEARTEXT")
    instance_id = client.run_instances(
        ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"Encrypted": True}}])["Instances"][0]["InstanceId"]
    volumes_dir = server.data_dir / "volumes"
    made = []
    try:
        wait_states(client, [instance_id], "running", timeout=120)
        wait_console(client, instance_id, re.escape(BOOT_MARKER), timeout=120)
        root = client.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])["Volumes"]
        assert [(v["Encrypted"], v["KmsKeyId"].startswith("arn:aws:kms:")) for v in root] == [(True, True)]

        sealed = client.create_volume(AvailabilityZone=zone(client), Size=1, Encrypted=True)
        plain = client.create_volume(AvailabilityZone=zone(client), Size=1)
        made += [sealed["VolumeId"], plain["VolumeId"]]
        assert sealed["Encrypted"] is True and re.fullmatch(r"arn:aws:kms:us-east-1:\d{12}:key/[0-9a-f-]{36}",
                                                            sealed["KmsKeyId"]), sealed
        assert plain["Encrypted"] is False and "KmsKeyId" not in plain
        client.get_waiter("volume_available").wait(VolumeIds=made, WaiterConfig=FAST)
        client.attach_volume(VolumeId=sealed["VolumeId"], InstanceId=instance_id, Device="/dev/sdf")
        wait_console(client, instance_id, r"stratus-stamped (vd[a-z])")
        client.attach_volume(VolumeId=plain["VolumeId"], InstanceId=instance_id, Device="/dev/sdg")
        wait_console(client, instance_id, r"stratus-stamped (vd[a-z])", count=2)
        assert holds(volumes_dir / f"{plain['VolumeId']}.qcow2", stamp), "the test sees what a guest writes"
        assert not holds(volumes_dir / f"{sealed['VolumeId']}.qcow2", stamp), "plaintext in an encrypted volume"

        snapshot = client.create_snapshot(VolumeId=sealed["VolumeId"])
        assert snapshot["Encrypted"] is True and snapshot["KmsKeyId"] == sealed["KmsKeyId"]
        client.get_waiter("snapshot_completed").wait(SnapshotIds=[snapshot["SnapshotId"]], WaiterConfig=FAST)
        assert not holds(server.data_dir / "snapshots" / f"{snapshot['SnapshotId']}.qcow2", stamp)
        described = client.describe_snapshots(SnapshotIds=[snapshot["SnapshotId"]])["Snapshots"][0]
        assert (described["Encrypted"], described["KmsKeyId"]) == (True, sealed["KmsKeyId"])
        assert [s["SnapshotId"] for s in client.describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": "encrypted", "Values": ["true"]}])["Snapshots"]] == [
            snapshot["SnapshotId"]]

        # A volume from it asks for nothing and is encrypted all the same.
        restored = client.create_volume(AvailabilityZone=zone(client), SnapshotId=snapshot["SnapshotId"])
        made.append(restored["VolumeId"])
        assert restored["Encrypted"] is True
        client.get_waiter("volume_available").wait(VolumeIds=[restored["VolumeId"]], WaiterConfig=FAST)
        client.attach_volume(VolumeId=restored["VolumeId"], InstanceId=instance_id, Device="/dev/sdh")
        # Whole lines only: the console may be read while the guest is still writing one.
        found = wait_console(client, instance_id, r"stratus-found (vd[a-z])=(\S+)\r?\n", count=3)
        assert stamp in found[2][1], f"the guest should read its marker back from the restored volume: {found}"
        assert not holds(volumes_dir / f"{restored['VolumeId']}.qcow2", stamp)
        assert {v["VolumeId"] for v in client.describe_volumes(
            Filters=[{"Name": "encrypted", "Values": ["true"]}])["Volumes"]} >= {sealed["VolumeId"], restored["VolumeId"]}

        with pytest.raises(ClientError) as e:
            client.create_volume(AvailabilityZone=zone(client), Size=1, KmsKeyId="alias/mine")
        assert error_code(e) == "InvalidParameterDependency"
        with pytest.raises(ClientError) as e:
            client.modify_snapshot_attribute(SnapshotId=snapshot["SnapshotId"], Attribute="createVolumePermission",
                                             OperationType="add", UserIds=["123456789012"])
        assert error_code(e) == "OperationNotPermitted"
        client.delete_snapshot(SnapshotId=snapshot["SnapshotId"])
    finally:
        client.terminate_instances(InstanceIds=[instance_id])
        client.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    client.get_waiter("volume_available").wait(VolumeIds=made, WaiterConfig=FAST)
    for volume_id in made:
        client.delete_volume(VolumeId=volume_id)


def test_a_multi_attach_volume_is_shared_by_two_real_guests(server_factory, test_image):
    """An encrypted io2 Multi-Attach volume attached to two running guests at once: the first
    writes its marker, and the second, given the volume after, reads that marker back; the
    file on the host is raw with LUKS inside and holds no plaintext. A detach must name its
    instance while there are two; the volume is available again once both are gone."""
    server, client, image_id, stamp = stamping_cloud(server_factory, test_image, "STRATUSSHARED")
    with pytest.raises(ClientError) as e:
        client.create_volume(AvailabilityZone=zone(client), Size=4, VolumeType="gp3", MultiAttachEnabled=True)
    assert error_code(e) == "InvalidParameterCombination"
    ids = [i["InstanceId"] for i in client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=2,
                                                         MaxCount=2)["Instances"]]
    volume = client.create_volume(AvailabilityZone=zone(client), Size=4, VolumeType="io2", Iops=100,
                                  MultiAttachEnabled=True, Encrypted=True)
    assert (volume["MultiAttachEnabled"], volume["Encrypted"]) == (True, True)
    volume_id = volume["VolumeId"]
    try:
        wait_states(client, ids, "running", timeout=180)
        for instance_id in ids:
            wait_console(client, instance_id, re.escape(BOOT_MARKER), timeout=120)
        client.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=FAST)
        client.attach_volume(VolumeId=volume_id, InstanceId=ids[0], Device="/dev/sdf")
        wait_console(client, ids[0], r"stratus-stamped (vd[a-z])")
        client.attach_volume(VolumeId=volume_id, InstanceId=ids[1], Device="/dev/sdf")
        [(_, found)] = wait_console(client, ids[1], r"stratus-found (vd[a-z])=(\S+)\r?\n")
        assert stamp in found, f"the second guest should read what the first wrote: {found}"
        described = client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
        assert sorted((a["InstanceId"], a["State"]) for a in described["Attachments"]) == sorted(
            (i, "attached") for i in ids), described
        assert [v["VolumeId"] for v in client.describe_volumes(
            Filters=[{"Name": "attachment.instance-id", "Values": [ids[1]]},
                     {"Name": "multi-attach-enabled", "Values": ["true"]}])["Volumes"]] == [volume_id]
        path = server.data_dir / "volumes" / f"{volume_id}.raw"
        assert not holds(path, stamp), "plaintext in an encrypted Multi-Attach volume"

        with pytest.raises(ClientError) as e:
            client.detach_volume(VolumeId=volume_id)
        assert error_code(e) == "InvalidParameterCombination"
        detached = client.detach_volume(VolumeId=volume_id, InstanceId=ids[0])
        assert (detached["InstanceId"], detached["State"]) == (ids[0], "detaching")
        deadline = time.monotonic() + 60
        while len(client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Attachments"]) != 1:
            assert time.monotonic() < deadline, "the first guest never let go"
            time.sleep(0.5)
    finally:
        client.terminate_instances(InstanceIds=ids)
        client.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig=FAST)
    client.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=FAST)
    client.delete_volume(VolumeId=volume_id)
