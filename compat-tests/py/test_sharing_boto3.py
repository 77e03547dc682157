"""Sharing and copying images and snapshots through boto3, between two accounts, on libvirt's
test driver: launch permissions (ModifyImageAttribute / ResetImageAttribute, DescribeImages
`ExecutableBy`), create-volume permissions (Modify/Describe/ResetSnapshotAttribute,
DescribeSnapshots `RestorableBy`), CopyImage, CopySnapshot and CreateSnapshots, as EC2
documents them. Until a resource is shared, the other account meets it as one that does not
exist."""

from __future__ import annotations

import pytest

from conftest import error_of, two_tenants, wait_states

FAST = {"Delay": 0.5, "MaxAttempts": 120}


@pytest.fixture(scope="module")
def two(tmp_path_factory, test_image):
    server, public_image, a, b = two_tenants(tmp_path_factory.mktemp("sharing"), test_image)
    yield server, public_image, a, b
    server.stop()


def code_of(call) -> str:
    return error_of(call)[0]


def a_private_image(client, public_image: str, name: str) -> tuple[str, str]:
    """An instance of the caller's and an image of its own made from it."""
    instance = client.run_instances(ImageId=public_image, InstanceType="t3.nano", MinCount=1,
                                    MaxCount=1)["Instances"][0]["InstanceId"]
    wait_states(client, [instance], "running")
    image = client.create_image(InstanceId=instance, Name=name,
                                TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "k", "Value": "v"}]}])
    client.get_waiter("image_available").wait(ImageIds=[image["ImageId"]], WaiterConfig=FAST)
    return instance, image["ImageId"]


def test_launch_permissions_and_copies_of_images(two):
    _, public_image, (a, ca), (b, cb) = two
    _, image = a_private_image(ca, public_image, "a-private")
    assert code_of(lambda: cb.describe_images(ImageIds=[image])) == "InvalidAMIID.NotFound"
    assert code_of(lambda: cb.run_instances(ImageId=image, InstanceType="t3.nano", MinCount=1,
                                            MaxCount=1)) == "InvalidAMIID.NotFound"

    # Shared with B: B sees it, may launch and copy it, not change or read its attributes.
    ca.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"UserId": b.account_id}]})
    shown = ca.describe_image_attribute(ImageId=image, Attribute="launchPermission")["LaunchPermissions"]
    assert shown == [{"UserId": b.account_id}]
    assert [i["ImageId"] for i in cb.describe_images(ImageIds=[image])["Images"]] == [image]
    assert image in [i["ImageId"] for i in cb.describe_images(ExecutableUsers=["self"])["Images"]]
    assert image not in [i["ImageId"] for i in cb.describe_images(Owners=["self"])["Images"]]
    assert image not in [i["ImageId"] for i in cb.describe_images(ExecutableUsers=["all"])["Images"]]
    # Whom A shares with is A's to know: B asking for what a third account may launch learns
    # nothing of A's list.
    ca.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"UserId": "333333333333"}]})
    assert ca.describe_images(ImageIds=[image], ExecutableUsers=["333333333333"])["Images"]
    assert cb.describe_images(ImageIds=[image], ExecutableUsers=["333333333333"])["Images"] == []
    ca.modify_image_attribute(ImageId=image, LaunchPermission={"Remove": [{"UserId": "333333333333"}]})
    assert code_of(lambda: cb.modify_image_attribute(
        ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]})) == "AuthFailure"
    assert code_of(lambda: cb.describe_image_attribute(ImageId=image, Attribute="launchPermission")) == \
        "AuthFailure"
    launched = cb.run_instances(ImageId=image, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"][0]
    assert launched["ImageId"] == image

    copy = cb.copy_image(SourceImageId=image, SourceRegion="us-east-1", Name="b-copy",
                         ClientToken="b-copy-1", CopyImageTags=True)["ImageId"]
    assert cb.copy_image(SourceImageId=image, SourceRegion="us-east-1", Name="b-copy",
                         ClientToken="b-copy-1")["ImageId"] == copy, "a retried copy finds its first answer"
    cb.get_waiter("image_available").wait(ImageIds=[copy], WaiterConfig=FAST)
    copied = cb.describe_images(ImageIds=[copy])["Images"][0]
    assert copied["OwnerId"] == b.account_id and copied["Name"] == "b-copy"
    assert "Tags" not in copied or copied["Tags"] == [], "another account's tags do not come along"
    assert code_of(lambda: cb.copy_image(SourceImageId=image, SourceRegion="mars-north-1",
                                         Name="b-copy-2")) == "InvalidParameterValue"

    # The older form, and the group all; removing and resetting take it back.
    ca.modify_image_attribute(ImageId=image, Attribute="launchPermission", OperationType="remove",
                              UserIds=[b.account_id])
    assert code_of(lambda: cb.describe_images(ImageIds=[image])) == "InvalidAMIID.NotFound"
    ca.modify_image_attribute(ImageId=image, Attribute="launchPermission", OperationType="add", UserGroups=["all"])
    assert cb.describe_images(ImageIds=[image])["Images"][0]["Public"] is True
    ca.reset_image_attribute(ImageId=image, Attribute="launchPermission")
    assert ca.describe_image_attribute(ImageId=image, Attribute="launchPermission")["LaunchPermissions"] == []
    assert code_of(lambda: cb.describe_images(ImageIds=[image])) == "InvalidAMIID.NotFound"
    assert code_of(lambda: ca.modify_image_attribute(
        ImageId=image, LaunchPermission={"Add": [{"UserId": "not-an-account"}]})) == "InvalidAMIAttributeItemValue"
    ca.modify_image_attribute(ImageId=image, Description={"Value": "the web tier"})
    assert ca.describe_images(ImageIds=[image])["Images"][0]["Description"] == "the web tier"

    # B's copy is B's own: it launches after A's image is gone.
    ca.deregister_image(ImageId=image)
    again = cb.run_instances(ImageId=copy, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"][0]
    wait_states(cb, [launched["InstanceId"], again["InstanceId"]], "running")
    cb.terminate_instances(InstanceIds=[launched["InstanceId"], again["InstanceId"]])


def test_create_volume_permissions_copies_and_multi_volume_snapshots(two):
    _, public_image, (a, ca), (b, cb) = two
    zone = ca.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    instance = ca.run_instances(
        ImageId=public_image, InstanceType="t3.nano", MinCount=1, MaxCount=1,
        BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1}}],
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "app", "Value": "db"}]}],
    )["Instances"][0]["InstanceId"]
    wait_states(ca, [instance], "running")

    # CreateSnapshots: both volumes, the volumes' tags copied; or the data volume alone.
    both = ca.create_snapshots(InstanceSpecification={"InstanceId": instance}, Description="set",
                               CopyTagsFromSource="volume")["Snapshots"]
    assert len(both) == 2 and all(s["Description"] == "set" for s in both)
    data_only = ca.create_snapshots(InstanceSpecification={"InstanceId": instance, "ExcludeBootVolume": True})
    [data] = data_only["Snapshots"]
    ids = [s["SnapshotId"] for s in both] + [data["SnapshotId"]]
    ca.get_waiter("snapshot_completed").wait(SnapshotIds=ids, WaiterConfig=FAST)
    for s in ca.describe_snapshots(SnapshotIds=[x["SnapshotId"] for x in both])["Snapshots"]:
        assert {"Key": "app", "Value": "db"} in s.get("Tags", [])
    snapshot = data["SnapshotId"]

    # Not shared: B meets a snapshot that does not exist.
    assert code_of(lambda: cb.describe_snapshots(SnapshotIds=[snapshot])) == "InvalidSnapshot.NotFound"
    assert code_of(lambda: cb.create_volume(AvailabilityZone=zone, SnapshotId=snapshot)) == "InvalidSnapshot.NotFound"

    ca.modify_snapshot_attribute(SnapshotId=snapshot, CreateVolumePermission={"Add": [{"UserId": b.account_id}]})
    attribute = ca.describe_snapshot_attribute(SnapshotId=snapshot, Attribute="createVolumePermission")
    assert attribute["CreateVolumePermissions"] == [{"UserId": b.account_id}]
    assert code_of(lambda: cb.describe_snapshot_attribute(SnapshotId=snapshot,
                                                          Attribute="createVolumePermission")) == "AuthFailure"
    assert [s["SnapshotId"] for s in cb.describe_snapshots(RestorableByUserIds=["self"])["Snapshots"]] == [snapshot]
    assert cb.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
    volume = cb.create_volume(AvailabilityZone=zone, SnapshotId=snapshot)["VolumeId"]
    cb.get_waiter("volume_available").wait(VolumeIds=[volume], WaiterConfig=FAST)
    launched = cb.run_instances(ImageId=public_image, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                BlockDeviceMappings=[{"DeviceName": "/dev/sdg", "Ebs": {"SnapshotId": snapshot}}])
    b_instance = launched["Instances"][0]["InstanceId"]

    copy = cb.copy_snapshot(SourceSnapshotId=snapshot, SourceRegion="us-east-1", Description="b's copy",
                            TagSpecifications=[{"ResourceType": "snapshot",
                                                "Tags": [{"Key": "copy", "Value": "yes"}]}])
    cb.get_waiter("snapshot_completed").wait(SnapshotIds=[copy["SnapshotId"]], WaiterConfig=FAST)
    mine = cb.describe_snapshots(SnapshotIds=[copy["SnapshotId"]])["Snapshots"][0]
    assert (mine["OwnerId"], mine["VolumeId"], mine["Description"]) == (b.account_id, "vol-ffffffff", "b's copy")

    # Reset: B no longer sees A's snapshot; its copy stays and outlives the source.
    ca.reset_snapshot_attribute(SnapshotId=snapshot, Attribute="createVolumePermission")
    assert code_of(lambda: cb.describe_snapshots(SnapshotIds=[snapshot])) == "InvalidSnapshot.NotFound"
    ca.modify_snapshot_attribute(SnapshotId=snapshot, Attribute="createVolumePermission", OperationType="add",
                                 GroupNames=["all"])
    assert cb.describe_snapshots(SnapshotIds=[snapshot], RestorableByUserIds=["all"])["Snapshots"]
    ca.reset_snapshot_attribute(SnapshotId=snapshot, Attribute="createVolumePermission")
    ca.delete_snapshot(SnapshotId=snapshot)
    from_copy = cb.create_volume(AvailabilityZone=zone, SnapshotId=copy["SnapshotId"])["VolumeId"]
    cb.get_waiter("volume_available").wait(VolumeIds=[from_copy], WaiterConfig=FAST)
    wait_states(cb, [b_instance], "running")
    cb.terminate_instances(InstanceIds=[b_instance])
    ca.terminate_instances(InstanceIds=[instance])
