"""A differential check against moto_server: one boto3 scenario (key pairs, security groups,
images and their sharing and copies, instances, volumes, snapshots and theirs, tags, launch
templates) run against both, comparing the parsed answers'
shapes (every key path and its value type), not their values. A field moto returns and Stratus
leaves out fails the test, unless `KNOWN` below says why it is left out.

moto is only the reference here, on 127.0.0.1; nothing of Stratus talks to it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable

import boto3
import pytest

from conftest import TEST_DRIVER_CONFIG, ec2_client, free_port, import_image

# Fields moto sends that Stratus leaves out on purpose, with the reason.
KNOWN: dict[str, str] = {
    # moto's reference image is Amazon's Windows AMI; Stratus's images are the caller's Linux.
    "DescribeImages.Images[].ImageOwnerAlias": "set for Amazon's and Marketplace images only",
    "DescribeImages.Images[].Platform": "set for Windows images only",
    "RunInstances.Instances[].Platform": "set for Windows instances only",
    "DescribeInstances.Reservations[].Instances[].Platform": "set for Windows instances only",
    "DescribeImages.Images[].BlockDeviceMappings[].Ebs.SnapshotId": "an image's disk is a file, not an EBS snapshot",
    # No public addresses: instances live on the private VPC network only.
    **{f"{prefix}NetworkInterfaces[]{inner}Association.{field}": "no public IPv4 addresses"
       for prefix in ("RunInstances.Instances[].", "DescribeInstances.Reservations[].Instances[].", "DescribeNetworkInterfaces.")
       for inner in (".", ".PrivateIpAddresses[].")
       for field in ("IpOwnerId", "PublicDnsName", "PublicIp")},
    "RunInstances.Instances[].PublicIpAddress": "no public IPv4 addresses",
    "DescribeInstances.Reservations[].Instances[].PublicIpAddress": "no public IPv4 addresses",
    "RunInstances.Instances[].SriovNetSupport": "EC2 reports it for enhanced networking only; guests use virtio",
    "DescribeInstances.Reservations[].Instances[].SriovNetSupport": "as above",
    "DescribeInstances.Reservations[].Instances[].StateReason.Code": "EC2 gives a reason only in states that have one; moto always does",
    "DescribeInstances.Reservations[].Instances[].StateReason.Message": "as above",
    "DescribeNetworkInterfaces.NetworkInterfaces[].RequesterId": "set for interfaces AWS services manage only",
    "RunInstances(LaunchTemplate).Instances[].Platform": "set for Windows instances only",
    "RunInstances(LaunchTemplate).Instances[].SriovNetSupport": "as for RunInstances",
    # moto copies the template's own tags (ResourceType launch-template) into its data; EC2 keeps
    # a version's data as it was given, and the scenario gives no TagSpecifications there.
    **{f"DescribeLaunchTemplateVersions.LaunchTemplateVersions[].LaunchTemplateData.TagSpecifications[].{field}":
       "moto puts the template's own tags in its data" for field in ("ResourceType", "Tags[].Key", "Tags[].Value")},
}


def shape(value, path: str, out: dict[str, set[str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key != "ResponseMetadata":
                shape(item, f"{path}.{key}", out)
    elif isinstance(value, list):
        for item in value:
            shape(item, f"{path}[]", out)
    else:
        out.setdefault(path, set()).add(type(value).__name__)


@pytest.fixture(scope="module")
def moto():
    binary = shutil.which("moto_server")
    assert binary, "moto_server is not installed (it is the reference for this test)"
    port = free_port()
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "moto_server did not start"
            time.sleep(0.2)
    client = boto3.client("ec2", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    yield client
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def stratus(tmp_path_factory, test_image):
    from conftest import start_stratus

    server = start_stratus(tmp_path_factory.mktemp("differential"), config=TEST_DRIVER_CONFIG)
    image_id = import_image(server, test_image, "differential image")
    yield ec2_client(server), image_id
    server.stop()


def until(read: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not read():
        assert time.monotonic() < deadline, "the resource never reached the state the scenario waits for"
        time.sleep(0.2)


def scenario(client, image_id: str) -> dict[str, dict]:
    """The same calls against either endpoint; answers by step name."""
    answers: dict[str, dict] = {}

    def call(name: str, method: str, **kwargs) -> dict:
        answers[name] = getattr(client, method)(**kwargs)
        return answers[name]

    call("CreateKeyPair", "create_key_pair", KeyName="diff-key")
    call("DescribeKeyPairs", "describe_key_pairs", KeyNames=["diff-key"])
    group_id = call("CreateSecurityGroup", "create_security_group", GroupName="diff-web",
                    Description="differential")["GroupId"]
    call("AuthorizeSecurityGroupIngress", "authorize_security_group_ingress", GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "ssh"}]}])
    call("DescribeSecurityGroups", "describe_security_groups", GroupIds=[group_id])
    call("DescribeSecurityGroupRules", "describe_security_group_rules",
         Filters=[{"Name": "group-id", "Values": [group_id]}])
    call("DescribeImages", "describe_images", ImageIds=[image_id])
    reservation = call("RunInstances", "run_instances", ImageId=image_id, InstanceType="t3.nano", MinCount=1,
                       MaxCount=1, KeyName="diff-key", SecurityGroupIds=[group_id], UserData="hello",
                       TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "diff"}]}])
    instance_id = reservation["Instances"][0]["InstanceId"]
    zone = reservation["Instances"][0]["Placement"]["AvailabilityZone"]

    def state() -> str:
        return client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]

    until(lambda: state() == "running")
    call("DescribeInstances", "describe_instances", InstanceIds=[instance_id])
    call("DescribeInstanceAttribute", "describe_instance_attribute", InstanceId=instance_id, Attribute="userData")
    call("DescribeNetworkInterfaces", "describe_network_interfaces",
         Filters=[{"Name": "group-id", "Values": [group_id]}])
    volume_id = call("CreateVolume", "create_volume", AvailabilityZone=zone, Size=2, VolumeType="gp3",
                     TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "diff"}]}])["VolumeId"]
    until(lambda: client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available")
    call("StopInstances", "stop_instances", InstanceIds=[instance_id])
    until(lambda: state() == "stopped")
    call("AttachVolume", "attach_volume", VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    until(lambda: client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Attachments"][0]["State"] == "attached")
    call("DescribeVolumes", "describe_volumes", VolumeIds=[volume_id])
    call("DetachVolume", "detach_volume", VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    until(lambda: client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available")
    snapshot_id = call("CreateSnapshot", "create_snapshot", VolumeId=volume_id, Description="diff")["SnapshotId"]
    until(lambda: client.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"] == "completed")
    call("DescribeSnapshots", "describe_snapshots", SnapshotIds=[snapshot_id])
    call("CreateTags", "create_tags", Resources=[volume_id, group_id], Tags=[{"Key": "team", "Value": "ops"}])
    call("DescribeTags", "describe_tags", Filters=[{"Name": "resource-id", "Values": [volume_id, group_id]}])
    call("ModifySnapshotAttribute", "modify_snapshot_attribute", SnapshotId=snapshot_id,
         CreateVolumePermission={"Add": [{"UserId": "123456789012"}]})
    call("DescribeSnapshotAttribute", "describe_snapshot_attribute", SnapshotId=snapshot_id,
         Attribute="createVolumePermission")
    # Not ResetSnapshotAttribute: moto 5.2.1 answers it with an HTTP 500.
    call("ModifySnapshotAttribute(remove)", "modify_snapshot_attribute", SnapshotId=snapshot_id,
         CreateVolumePermission={"Remove": [{"UserId": "123456789012"}]})
    copied = call("CopySnapshot", "copy_snapshot", SourceSnapshotId=snapshot_id, SourceRegion="us-east-1",
                  Description="diff copy")["SnapshotId"]
    until(lambda: client.describe_snapshots(SnapshotIds=[copied])["Snapshots"][0]["State"] == "completed")
    call("DeleteSnapshot(copy)", "delete_snapshot", SnapshotId=copied)
    call("GetEbsEncryptionByDefault", "get_ebs_encryption_by_default")
    call("EnableEbsEncryptionByDefault", "enable_ebs_encryption_by_default")
    # Not Get/Modify/ResetEbsDefaultKmsKeyId: moto 5.2.1 answers them with an HTTP 500.
    sealed = call("CreateVolume(Encrypted)", "create_volume", AvailabilityZone=zone, Size=1, Encrypted=True)["VolumeId"]
    until(lambda: client.describe_volumes(VolumeIds=[sealed])["Volumes"][0]["State"] == "available")
    call("DescribeVolumes(Encrypted)", "describe_volumes", VolumeIds=[sealed])
    shared = call("CreateVolume(MultiAttachEnabled)", "create_volume", AvailabilityZone=zone, Size=4,
                  VolumeType="io2", Iops=100, MultiAttachEnabled=True)["VolumeId"]
    until(lambda: client.describe_volumes(VolumeIds=[shared])["Volumes"][0]["State"] == "available")
    client.delete_volume(VolumeId=shared)
    call("DisableEbsEncryptionByDefault", "disable_ebs_encryption_by_default")
    client.delete_volume(VolumeId=sealed)
    call("DeleteSnapshot", "delete_snapshot", SnapshotId=snapshot_id)
    call("DeleteVolume", "delete_volume", VolumeId=volume_id)
    taken = call("CreateSnapshots", "create_snapshots", InstanceSpecification={"InstanceId": instance_id},
                 Description="diff set")["Snapshots"]
    until(lambda: all(s["State"] == "completed"
                      for s in client.describe_snapshots(SnapshotIds=[t["SnapshotId"] for t in taken])["Snapshots"]))
    for t in taken:
        client.delete_snapshot(SnapshotId=t["SnapshotId"])
    image_copy = call("CopyImage", "copy_image", SourceImageId=image_id, SourceRegion="us-east-1",
                      Name="diff-copy")["ImageId"]
    until(lambda: client.describe_images(ImageIds=[image_copy])["Images"][0]["State"] == "available")
    call("ModifyImageAttribute", "modify_image_attribute", ImageId=image_copy,
         LaunchPermission={"Add": [{"UserId": "123456789012"}]})
    call("DescribeImageAttribute(launchPermission)", "describe_image_attribute", ImageId=image_copy,
         Attribute="launchPermission")
    # Not ResetImageAttribute: moto 5.2.1 answers it with an HTTP 500.
    client.deregister_image(ImageId=image_copy)
    call("TerminateInstances", "terminate_instances", InstanceIds=[instance_id])
    until(lambda: state() == "terminated")
    call("DeleteKeyPair", "delete_key_pair", KeyName="diff-key")

    # Launch templates, and an instance from one with a further volume.
    template_id = call("CreateLaunchTemplate", "create_launch_template", LaunchTemplateName="diff-template",
                       VersionDescription="first", LaunchTemplateData={
                           "ImageId": image_id, "InstanceType": "t3.nano", "SecurityGroupIds": [group_id],
                           "BlockDeviceMappings": [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1}}]},
                       TagSpecifications=[{"ResourceType": "launch-template",
                                           "Tags": [{"Key": "team", "Value": "ops"}]}])["LaunchTemplate"]["LaunchTemplateId"]
    call("CreateLaunchTemplateVersion", "create_launch_template_version", LaunchTemplateId=template_id,
         SourceVersion="1", LaunchTemplateData={"InstanceType": "t3.micro"})
    call("ModifyLaunchTemplate", "modify_launch_template", LaunchTemplateId=template_id, DefaultVersion="2")
    call("DescribeLaunchTemplates", "describe_launch_templates", LaunchTemplateIds=[template_id])
    call("DescribeLaunchTemplateVersions", "describe_launch_template_versions", LaunchTemplateId=template_id)
    from_template = call("RunInstances(LaunchTemplate)", "run_instances", MinCount=1, MaxCount=1,
                         LaunchTemplate={"LaunchTemplateId": template_id, "Version": "1"})
    templated = from_template["Instances"][0]["InstanceId"]
    # Not DeleteLaunchTemplateVersions: moto 5.2.1 answers it with an HTTP 500 whatever is asked.
    call("DeleteLaunchTemplate", "delete_launch_template", LaunchTemplateId=template_id)
    client.terminate_instances(InstanceIds=[templated])
    return answers


def test_answers_have_motos_shape(moto, stratus):
    moto_image = moto.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    reference = scenario(moto, moto_image)
    ours = scenario(*stratus)
    problems = []
    for step, answer in reference.items():
        expected: dict[str, set[str]] = {}
        got: dict[str, set[str]] = {}
        shape(answer, step, expected)
        shape(ours[step], step, got)
        for path, types in sorted(expected.items()):
            if path in KNOWN:
                continue
            if path not in got:
                problems.append(f"missing {path} ({'/'.join(sorted(types))})")
            elif got[path] != types:
                problems.append(f"type of {path}: moto {sorted(types)}, stratus {sorted(got[path])}")
    assert not problems, "Stratus's answers differ from moto's:\n" + "\n".join(problems)
