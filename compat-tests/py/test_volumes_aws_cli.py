"""The aws cli over security groups, volumes and snapshots, with its waiters (volume-available,
volume-in-use, instance-stopped, snapshot-completed), on libvirt's test driver.

The cli's waiters check once at once and then every 15 s, so each wait below follows a short
poll that lets the first check succeed: the waiter still parses Stratus's answer."""

from __future__ import annotations

import json
import time

import pytest

from conftest import TEST_DRIVER_CONFIG, aws, import_image


def ok(server, *args, timeout: float = 300) -> dict:
    code, out, err = aws(server, *args, timeout=timeout)
    assert code == 0, f"aws ec2 {' '.join(args)} failed ({code}):\n{err}"
    return json.loads(out) if out.strip() else {}


def fails(server, code: str, *args) -> None:
    rc, _, err = aws(server, *args)
    assert rc != 0 and f"({code})" in err, f"aws ec2 {' '.join(args)}: expected {code}, got {rc}:\n{err}"


def settle(server, query: list[str], wanted: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code, out, _ = aws(server, *query, "--output", "text")
        if code == 0 and out.split() and set(out.split()) == {wanted}:
            return
        assert time.monotonic() < deadline, f"{query} never became {wanted}: {out}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def server(tmp_path_factory, test_image):
    from conftest import start_stratus

    server = start_stratus(tmp_path_factory.mktemp("cli-volumes"), config=TEST_DRIVER_CONFIG)
    server.image_id = import_image(server, test_image, "cli volumes image")
    yield server
    server.stop()


def test_groups_volumes_and_snapshots(server):
    group_id = ok(server, "create-security-group", "--group-name", "cli-web", "--description", "cli web")["GroupId"]
    # The cli's shorthand sends the older top-level form (IpProtocol, FromPort, ToPort, CidrIp).
    ok(server, "authorize-security-group-ingress", "--group-id", group_id, "--protocol", "tcp", "--port", "22",
       "--cidr", "0.0.0.0/0")
    fails(server, "InvalidPermission.Duplicate", "authorize-security-group-ingress", "--group-id", group_id,
          "--protocol", "tcp", "--port", "22", "--cidr", "0.0.0.0/0")
    [permission] = ok(server, "describe-security-groups", "--group-ids", group_id)["SecurityGroups"][0]["IpPermissions"]
    assert (permission["IpProtocol"], permission["FromPort"], permission["ToPort"]) == ("tcp", 22, 22)
    assert permission["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]

    instance_id = ok(server, "run-instances", "--image-id", server.image_id, "--instance-type", "t3.nano",
                     "--security-group-ids", group_id)["Instances"][0]["InstanceId"]
    ok(server, "wait", "instance-running", "--instance-ids", instance_id)
    fails(server, "DependencyViolation", "delete-security-group", "--group-id", group_id)

    zone = ok(server, "describe-availability-zones")["AvailabilityZones"][0]["ZoneName"]
    volume_id = ok(server, "create-volume", "--size", "1", "--availability-zone", zone,
                   "--tag-specifications", "ResourceType=volume,Tags=[{Key=Name,Value=cli-data}]")["VolumeId"]
    settle(server, ["describe-volumes", "--volume-ids", volume_id, "--query", "Volumes[].State"], "available")
    ok(server, "wait", "volume-available", "--volume-ids", volume_id)

    ok(server, "stop-instances", "--instance-ids", instance_id)
    settle(server, ["describe-instances", "--instance-ids", instance_id, "--query",
                    "Reservations[].Instances[].State.Name"], "stopped")
    ok(server, "wait", "instance-stopped", "--instance-ids", instance_id)

    attached = ok(server, "attach-volume", "--volume-id", volume_id, "--instance-id", instance_id,
                  "--device", "/dev/sdf")
    assert attached["Device"] == "/dev/sdf" and attached["InstanceId"] == instance_id
    ok(server, "wait", "volume-in-use", "--volume-ids", volume_id)
    settle(server, ["describe-volumes", "--volume-ids", volume_id, "--query", "Volumes[].Attachments[].State"],
           "attached")
    found = ok(server, "describe-volumes", "--filters", f"Name=attachment.instance-id,Values={instance_id}",
               "Name=attachment.device,Values=/dev/sdf")["Volumes"]
    assert [v["VolumeId"] for v in found] == [volume_id]
    fails(server, "VolumeInUse", "delete-volume", "--volume-id", volume_id)

    ok(server, "detach-volume", "--volume-id", volume_id)
    settle(server, ["describe-volumes", "--volume-ids", volume_id, "--query", "Volumes[].State"], "available")
    ok(server, "wait", "volume-available", "--volume-ids", volume_id)

    snapshot_id = ok(server, "create-snapshot", "--volume-id", volume_id, "--description", "cli")["SnapshotId"]
    settle(server, ["describe-snapshots", "--snapshot-ids", snapshot_id, "--query", "Snapshots[].State"], "completed")
    ok(server, "wait", "snapshot-completed", "--snapshot-ids", snapshot_id)

    ok(server, "delete-snapshot", "--snapshot-id", snapshot_id)
    ok(server, "delete-volume", "--volume-id", volume_id)
    fails(server, "InvalidVolume.NotFound", "describe-volumes", "--volume-ids", volume_id)
    ok(server, "terminate-instances", "--instance-ids", instance_id)
    settle(server, ["describe-instances", "--instance-ids", instance_id, "--query",
                    "Reservations[].Instances[].State.Name"], "terminated")
    ok(server, "wait", "instance-terminated", "--instance-ids", instance_id)
    ok(server, "delete-security-group", "--group-id", group_id)
    fails(server, "InvalidGroup.NotFound", "describe-security-groups", "--group-ids", group_id)


def test_launch_templates_and_block_devices(server):
    data = {"ImageId": server.image_id, "InstanceType": "t3.micro",
            "BlockDeviceMappings": [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 2, "VolumeType": "gp3"}}]}
    made = ok(server, "create-launch-template", "--launch-template-name", "cli-app", "--version-description", "first",
              "--launch-template-data", json.dumps(data))["LaunchTemplate"]
    template_id = made["LaunchTemplateId"]
    assert (made["LaunchTemplateName"], made["LatestVersionNumber"]) == ("cli-app", 1)
    fails(server, "InvalidLaunchTemplateName.AlreadyExistsException", "create-launch-template",
          "--launch-template-name", "cli-app", "--launch-template-data", json.dumps(data))
    second = ok(server, "create-launch-template-version", "--launch-template-id", template_id, "--source-version", "1",
                "--launch-template-data", '{"InstanceType": "t3.small"}')["LaunchTemplateVersion"]
    assert second["VersionNumber"] == 2 and second["LaunchTemplateData"]["ImageId"] == server.image_id

    # $Latest, with a further volume of the request's own beside the template's.
    reservation = ok(server, "run-instances", "--launch-template", "LaunchTemplateName=cli-app,Version=$Latest",
                     "--block-device-mappings", '[{"DeviceName": "/dev/sdh", "Ebs": {"VolumeSize": 1}}]')
    instance = reservation["Instances"][0]
    assert instance["InstanceType"] == "t3.small"
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags == {"aws:ec2launchtemplate:id": template_id, "aws:ec2launchtemplate:version": "2"}
    devices = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}
    assert sorted(devices) == ["/dev/sdf", "/dev/sdh", "/dev/vda"]
    sizes = {v["VolumeId"]: v["Size"] for v in ok(server, "describe-volumes", "--volume-ids", *devices.values())["Volumes"]}
    assert (sizes[devices["/dev/sdf"]], sizes[devices["/dev/sdh"]]) == (2, 1)

    ok(server, "modify-launch-template", "--launch-template-id", template_id, "--default-version", "2")
    versions = ok(server, "describe-launch-template-versions", "--launch-template-name", "cli-app",
                  "--versions", "$Default")["LaunchTemplateVersions"]
    assert [(v["VersionNumber"], v["DefaultVersion"]) for v in versions] == [(2, True)]
    deleted = ok(server, "delete-launch-template-versions", "--launch-template-id", template_id, "--versions", "1")
    assert [v["VersionNumber"] for v in deleted["SuccessfullyDeletedLaunchTemplateVersions"]] == [1]
    ok(server, "terminate-instances", "--instance-ids", instance["InstanceId"])
    ok(server, "delete-launch-template", "--launch-template-id", template_id)
    fails(server, "InvalidLaunchTemplateId.NotFound", "describe-launch-templates", "--launch-template-ids", template_id)


def test_sharing_and_copies(server):
    zone = ok(server, "describe-availability-zones")["AvailabilityZones"][0]["ZoneName"]
    volume_id = ok(server, "create-volume", "--availability-zone", zone, "--size", "1")["VolumeId"]
    settle(server, ["describe-volumes", "--volume-ids", volume_id, "--query", "Volumes[].State"], "available")
    snapshot_id = ok(server, "create-snapshot", "--volume-id", volume_id)["SnapshotId"]
    settle(server, ["describe-snapshots", "--snapshot-ids", snapshot_id, "--query", "Snapshots[].State"], "completed")

    other = "123456789012"
    ok(server, "modify-snapshot-attribute", "--snapshot-id", snapshot_id, "--attribute", "createVolumePermission",
       "--operation-type", "add", "--user-ids", other)
    shown = ok(server, "describe-snapshot-attribute", "--snapshot-id", snapshot_id, "--attribute",
               "createVolumePermission")
    assert shown["CreateVolumePermissions"] == [{"UserId": other}]
    ok(server, "reset-snapshot-attribute", "--snapshot-id", snapshot_id, "--attribute", "createVolumePermission")
    assert ok(server, "describe-snapshot-attribute", "--snapshot-id", snapshot_id, "--attribute",
              "createVolumePermission")["CreateVolumePermissions"] == []
    copy_id = ok(server, "copy-snapshot", "--source-snapshot-id", snapshot_id, "--source-region", "us-east-1",
                 "--description", "cli copy")["SnapshotId"]
    settle(server, ["describe-snapshots", "--snapshot-ids", copy_id, "--query", "Snapshots[].State"], "completed")

    instance_id = ok(server, "run-instances", "--image-id", server.image_id, "--instance-type", "t3.nano",
                     "--block-device-mappings", '[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1}}]',
                     )["Instances"][0]["InstanceId"]
    settle(server, ["describe-instances", "--instance-ids", instance_id, "--query",
                    "Reservations[].Instances[].State.Name"], "running")
    taken = ok(server, "create-snapshots", "--instance-specification", f"InstanceId={instance_id}",
               "--copy-tags-from-source", "volume")["Snapshots"]
    assert len(taken) == 2
    for snapshot in taken:
        settle(server, ["describe-snapshots", "--snapshot-ids", snapshot["SnapshotId"], "--query",
                        "Snapshots[].State"], "completed")

    ok(server, "modify-image-attribute", "--image-id", server.image_id, "--launch-permission",
       f"Add=[{{UserId={other}}}]")
    permissions = ok(server, "describe-image-attribute", "--image-id", server.image_id, "--attribute",
                     "launchPermission")["LaunchPermissions"]
    assert {"UserId": other} in permissions
    ok(server, "modify-image-attribute", "--image-id", server.image_id, "--launch-permission",
       f"Remove=[{{UserId={other}}}]")
    image_copy = ok(server, "copy-image", "--source-image-id", server.image_id, "--source-region", "us-east-1",
                    "--name", "cli-copy")["ImageId"]
    settle(server, ["describe-images", "--image-ids", image_copy, "--query", "Images[].State"], "available")
    fails(server, "InvalidParameterValue", "copy-image", "--source-image-id", server.image_id, "--source-region",
          "nowhere-1", "--name", "cli-copy-2")
    ok(server, "terminate-instances", "--instance-ids", instance_id)


def test_encryption_by_default_and_encrypted_copies(server):
    """The account's switches (get/enable/disable-ebs-encryption-by-default, get/modify/reset-
    ebs-default-kms-key-id) and what they do to the volumes and snapshot copies made next."""
    assert ok(server, "get-ebs-encryption-by-default") == {"EbsEncryptionByDefault": False}
    assert ok(server, "get-ebs-default-kms-key-id") == {"KmsKeyId": "alias/aws/ebs"}
    zone = ok(server, "describe-availability-zones")["AvailabilityZones"][0]["ZoneName"]
    plain = ok(server, "create-volume", "--availability-zone", zone, "--size", "1")
    assert plain["Encrypted"] is False
    fails(server, "InvalidParameterDependency", "create-volume", "--availability-zone", zone, "--size", "1",
          "--kms-key-id", "alias/team")
    fails(server, "InvalidParameterValue", "create-volume", "--availability-zone", zone, "--size", "1",
          "--encrypted", "--kms-key-id", "not a key")

    assert ok(server, "enable-ebs-encryption-by-default") == {"EbsEncryptionByDefault": True}
    chosen = ok(server, "modify-ebs-default-kms-key-id", "--kms-key-id", "alias/team")["KmsKeyId"]
    assert chosen.startswith("arn:aws:kms:us-east-1:") and chosen.endswith(":alias/team")
    assert ok(server, "get-ebs-default-kms-key-id") == {"KmsKeyId": chosen}
    try:
        sealed = ok(server, "create-volume", "--availability-zone", zone, "--size", "1", "--no-encrypted")
        assert (sealed["Encrypted"], sealed["KmsKeyId"]) == (True, chosen), "the default wins over --no-encrypted"
        settle(server, ["describe-volumes", "--volume-ids", plain["VolumeId"], "--query", "Volumes[].State"],
               "available")
        snapshot = ok(server, "create-snapshot", "--volume-id", plain["VolumeId"])["SnapshotId"]
        settle(server, ["describe-snapshots", "--snapshot-ids", snapshot, "--query", "Snapshots[].State"], "completed")
        copy = ok(server, "copy-snapshot", "--source-snapshot-id", snapshot, "--source-region", "us-east-1")
        settle(server, ["describe-snapshots", "--snapshot-ids", copy["SnapshotId"], "--query", "Snapshots[].State"],
               "completed")
        [described] = ok(server, "describe-snapshots", "--snapshot-ids", snapshot, copy["SnapshotId"],
                         "--filters", "Name=encrypted,Values=true")["Snapshots"]
        assert (described["SnapshotId"], described["KmsKeyId"]) == (copy["SnapshotId"], chosen), \
            "a plain snapshot's copy is encrypted by default"
    finally:
        assert ok(server, "reset-ebs-default-kms-key-id") == {"KmsKeyId": "alias/aws/ebs"}
        assert ok(server, "disable-ebs-encryption-by-default") == {"EbsEncryptionByDefault": False}
    settle(server, ["describe-volumes", "--volume-ids", sealed["VolumeId"], "--query", "Volumes[].State"], "available")
    for volume in (plain, sealed):
        ok(server, "delete-volume", "--volume-id", volume["VolumeId"])
    for snapshot_id in (snapshot, copy["SnapshotId"]):
        ok(server, "delete-snapshot", "--snapshot-id", snapshot_id)


def test_a_multi_attach_volume_on_two_instances(server):
    """create-volume --multi-attach-enabled (io2), attached to two instances at once; a detach
    names its instance while there are two. Both start with it."""
    zone = ok(server, "describe-availability-zones")["AvailabilityZones"][0]["ZoneName"]
    fails(server, "InvalidParameterCombination", "create-volume", "--availability-zone", zone, "--size", "4",
          "--volume-type", "gp3", "--multi-attach-enabled")
    volume = ok(server, "create-volume", "--availability-zone", zone, "--size", "4", "--volume-type", "io2",
                "--iops", "100", "--multi-attach-enabled")
    assert volume["MultiAttachEnabled"] is True
    volume_id = volume["VolumeId"]
    ids = [i["InstanceId"] for i in ok(server, "run-instances", "--image-id", server.image_id, "--instance-type",
                                          "t3.nano", "--count", "2")["Instances"]]
    settle(server, ["describe-instances", "--instance-ids", *ids, "--query", "Reservations[].Instances[].State.Name"],
           "running")
    # The test driver hot-plugs nothing: stopped instances take the volume at their next start
    # (two real guests share one in test_volumes_boto3.py).
    ok(server, "stop-instances", "--instance-ids", *ids, "--force")
    settle(server, ["describe-instances", "--instance-ids", *ids, "--query", "Reservations[].Instances[].State.Name"],
           "stopped")
    settle(server, ["describe-volumes", "--volume-ids", volume_id, "--query", "Volumes[].State"], "available")
    for instance_id in ids:
        ok(server, "attach-volume", "--volume-id", volume_id, "--instance-id", instance_id, "--device", "/dev/sdf")
    settle(server, ["describe-volumes", "--volume-ids", volume_id, "--query", "Volumes[].Attachments[].State"],
           "attached")
    [described] = ok(server, "describe-volumes", "--filters", "Name=multi-attach-enabled,Values=true",
                     f"Name=volume-id,Values={volume_id}")["Volumes"]
    assert sorted(a["InstanceId"] for a in described["Attachments"]) == sorted(ids)
    fails(server, "InvalidParameterCombination", "detach-volume", "--volume-id", volume_id)
    ok(server, "start-instances", "--instance-ids", *ids)
    settle(server, ["describe-instances", "--instance-ids", *ids, "--query", "Reservations[].Instances[].State.Name"],
           "running")
    ok(server, "stop-instances", "--instance-ids", *ids, "--force")
    settle(server, ["describe-instances", "--instance-ids", *ids, "--query", "Reservations[].Instances[].State.Name"],
           "stopped")
    for instance_id in ids:
        ok(server, "detach-volume", "--volume-id", volume_id, "--instance-id", instance_id)
    settle(server, ["describe-volumes", "--volume-ids", volume_id, "--query", "Volumes[].State"], "available")
    ok(server, "delete-volume", "--volume-id", volume_id)
    ok(server, "terminate-instances", "--instance-ids", *ids)
