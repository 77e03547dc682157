"""Launch templates and block devices at launch through boto3, on libvirt's test driver.

What EC2 documents: templates are versioned (numbers never given twice, `$Latest`/`$Default`),
a new version may start from another, RunInstances takes every parameter from the template
unless the request gives it, merges tags per resource type, and marks the instances with the
`aws:ec2launchtemplate:*` tags; `BlockDeviceMapping` makes further volumes at launch, empty or
from a snapshot, each going or staying with the instance as its `DeleteOnTermination` says.
"""

from __future__ import annotations

import base64
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import TEST_DRIVER_CONFIG, ec2_client, error_of, import_image, wait_states

FAST = {"Delay": 0.5, "MaxAttempts": 120}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory, test_image):
    from conftest import start_stratus

    server = start_stratus(tmp_path_factory.mktemp("templates"), config=TEST_DRIVER_CONFIG)
    image_id = import_image(server, test_image, "templates image")
    yield server, ec2_client(server), image_id
    server.stop()


code_of = error_of


def instance(client, instance_id) -> dict:
    return client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def tags_of(resource: dict) -> dict:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def volumes_by_device(client, instance_id) -> dict:
    mappings = instance(client, instance_id)["BlockDeviceMappings"]
    ids = [m["Ebs"]["VolumeId"] for m in mappings]
    volumes = {v["VolumeId"]: v for v in client.describe_volumes(VolumeIds=ids)["Volumes"]}
    return {m["DeviceName"]: (m, volumes[m["Ebs"]["VolumeId"]]) for m in mappings}


def test_template_versions_and_their_errors(cloud):
    _, client, image_id = cloud
    name = f"web-{uuid.uuid4().hex[:8]}"
    made = client.create_launch_template(
        LaunchTemplateName=name, VersionDescription="first",
        LaunchTemplateData={"ImageId": image_id, "InstanceType": "t2.micro",
                            "MetadataOptions": {"HttpTokens": "required"}},
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": "team", "Value": "web"}]}],
        ClientToken=f"{name}-token")["LaunchTemplate"]
    template_id = made["LaunchTemplateId"]
    assert template_id.startswith("lt-") and made["LaunchTemplateName"] == name
    assert (made["DefaultVersionNumber"], made["LatestVersionNumber"]) == (1, 1)
    assert made["CreatedBy"].startswith("arn:aws:iam::") and tags_of(made) == {"team": "web"}
    again = client.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": image_id,
                                          "InstanceType": "t2.micro", "MetadataOptions": {"HttpTokens": "required"}},
                                          ClientToken=f"{name}-token")["LaunchTemplate"]
    assert again["LaunchTemplateId"] == template_id, "a retried create finds its first answer"

    assert code_of(lambda: client.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
        "InstanceType": "t3.nano"})) == ("InvalidLaunchTemplateName.AlreadyExistsException",
                                        "Launch template name already in use.")
    assert code_of(lambda: client.create_launch_template(LaunchTemplateName="a b", LaunchTemplateData={
        "InstanceType": "t3.nano"}))[0] == "InvalidLaunchTemplateName.MalformedException"
    assert code_of(lambda: client.describe_launch_templates(LaunchTemplateNames=["nothing-here"]))[0] == \
        "InvalidLaunchTemplateName.NotFoundException"
    missing = "lt-0123456789abcdef0"
    assert code_of(lambda: client.describe_launch_templates(LaunchTemplateIds=[missing])) == (
        "InvalidLaunchTemplateId.NotFound", f"The specified launch template, with template ID {missing}, does not exist.")
    assert code_of(lambda: client.describe_launch_templates(LaunchTemplateIds=["lt-nothex"]))[0] == \
        "InvalidLaunchTemplateId.Malformed"
    too_big = base64.b64encode(b"x" * 60_000).decode()
    assert code_of(lambda: client.create_launch_template(LaunchTemplateName="too-big", LaunchTemplateData={
        "UserData": too_big}))[0] == "InvalidParameterValue"
    assert code_of(lambda: client.delete_launch_template(LaunchTemplateId=template_id,
                                                         LaunchTemplateName=name))[0] == "InvalidParameterCombination"

    # Version 2 from version 1: what it does not give is kept.
    second = client.create_launch_template_version(
        LaunchTemplateName=name, SourceVersion="1", VersionDescription="bigger",
        LaunchTemplateData={"InstanceType": "t3.small"})["LaunchTemplateVersion"]
    assert (second["VersionNumber"], second["DefaultVersion"]) == (2, False)
    data = second["LaunchTemplateData"]
    assert (data["ImageId"], data["InstanceType"], data["MetadataOptions"]["HttpTokens"]) == \
        (image_id, "t3.small", "required")
    third = client.create_launch_template_version(LaunchTemplateId=template_id, LaunchTemplateData={
        "InstanceType": "t3.nano"})["LaunchTemplateVersion"]
    assert third["VersionNumber"] == 3 and "ImageId" not in third["LaunchTemplateData"], "no source: nothing kept"
    assert code_of(lambda: client.create_launch_template_version(
        LaunchTemplateId=template_id, SourceVersion="9", LaunchTemplateData={"EbsOptimized": True}))[0] == \
        "InvalidLaunchTemplateId.VersionNotFound"

    versions = client.describe_launch_template_versions(LaunchTemplateId=template_id)["LaunchTemplateVersions"]
    assert [v["VersionNumber"] for v in versions] == [1, 2, 3]
    assert [v["VersionDescription"] for v in versions[:2]] == ["first", "bigger"]
    latest = client.describe_launch_template_versions(LaunchTemplateName=name, Versions=["$Latest", "$Default"])
    assert [v["VersionNumber"] for v in latest["LaunchTemplateVersions"]] == [1, 3]
    ranged = client.describe_launch_template_versions(LaunchTemplateId=template_id, MinVersion="2", MaxVersion="2")
    assert [v["VersionNumber"] for v in ranged["LaunchTemplateVersions"]] == [2]
    small = client.describe_launch_template_versions(LaunchTemplateId=template_id, Filters=[
        {"Name": "instance-type", "Values": ["t3.small"]}])["LaunchTemplateVersions"]
    assert [v["VersionNumber"] for v in small] == [2]
    pages = client.get_paginator("describe_launch_template_versions").paginate(
        LaunchTemplateId=template_id, PaginationConfig={"PageSize": 1})
    assert [v["VersionNumber"] for page in pages for v in page["LaunchTemplateVersions"]] == [1, 2, 3]

    modified = client.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion="2")["LaunchTemplate"]
    assert modified["DefaultVersionNumber"] == 2
    assert code_of(lambda: client.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion="7"))[0] == \
        "InvalidLaunchTemplateId.VersionNotFound"
    listed = client.describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": [name]}])
    [shown] = listed["LaunchTemplates"]
    assert (shown["DefaultVersionNumber"], shown["LatestVersionNumber"]) == (2, 3)
    assert [t["LaunchTemplateId"] for t in client.describe_launch_templates(
        Filters=[{"Name": "tag:team", "Values": ["web"]}])["LaunchTemplates"]] == [template_id]

    # The default version stays; the latest goes, and its number is not given again.
    deleted = client.delete_launch_template_versions(LaunchTemplateId=template_id, Versions=["2", "3", "8"])
    assert [v["VersionNumber"] for v in deleted["SuccessfullyDeletedLaunchTemplateVersions"]] == [3]
    refused = {v["VersionNumber"]: v["ResponseError"]["Code"]
               for v in deleted["UnsuccessfullyDeletedLaunchTemplateVersions"]}
    assert refused == {2: "unexpectedError", 8: "launchTemplateVersionDoesNotExist"}
    fourth = client.create_launch_template_version(LaunchTemplateId=template_id,
                                                   LaunchTemplateData={"EbsOptimized": True})
    assert fourth["LaunchTemplateVersion"]["VersionNumber"] == 4

    gone = client.delete_launch_template(LaunchTemplateName=name)["LaunchTemplate"]
    assert gone["LaunchTemplateId"] == template_id
    assert code_of(lambda: client.describe_launch_template_versions(LaunchTemplateId=template_id))[0] == \
        "InvalidLaunchTemplateId.NotFound"
    assert template_id not in [t["LaunchTemplateId"] for t in client.describe_launch_templates()["LaunchTemplates"]]


def test_run_instances_from_a_template(cloud):
    _, client, image_id = cloud
    az = client.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    name = f"app-{uuid.uuid4().hex[:8]}"
    key = client.create_key_pair(KeyName=f"{name}-key", KeyType="ed25519")["KeyName"]
    group = client.create_security_group(GroupName=f"{name}-sg", Description="app")["GroupId"]
    source = client.create_volume(AvailabilityZone=az, Size=1)["VolumeId"]
    client.get_waiter("volume_available").wait(VolumeIds=[source], WaiterConfig=FAST)
    snapshot = client.create_snapshot(VolumeId=source)["SnapshotId"]
    client.get_waiter("snapshot_completed").wait(SnapshotIds=[snapshot], WaiterConfig=FAST)
    user_data = base64.b64encode(b"#!/bin/sh\necho from the template\n").decode()
    template_id = client.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
        "ImageId": image_id, "InstanceType": "t3.micro", "KeyName": key, "SecurityGroupIds": [group],
        "UserData": user_data, "DisableApiTermination": False,
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
        "CreditSpecification": {"CpuCredits": "standard"},
        "BlockDeviceMappings": [
            {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 3, "VolumeType": "gp3"}},
            {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 5, "DeleteOnTermination": False}},
            {"DeviceName": "/dev/sdg", "Ebs": {"SnapshotId": snapshot}},
        ],
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "from-template"},
                                                  {"Key": "tier", "Value": "app"}]},
            {"ResourceType": "volume", "Tags": [{"Key": "backup", "Value": "daily"}]},
            {"ResourceType": "spot-instances-request", "Tags": [{"Key": "ignored", "Value": "here"}]},
        ],
    })["LaunchTemplate"]["LaunchTemplateId"]
    client.create_launch_template_version(LaunchTemplateId=template_id, SourceVersion="1",
                                          LaunchTemplateData={"InstanceType": "t3.small"})

    # $Default (version 1), the request's type and a tag overriding the template's.
    # Block devices merge by device name: /dev/sdf's size from the request, its other values from
    # the template; /dev/sdh is the request's own.
    reservation = client.run_instances(
        MinCount=1, MaxCount=1, LaunchTemplate={"LaunchTemplateName": name}, InstanceType="t3.nano",
        BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 2}},
                             {"DeviceName": "/dev/sdh", "Ebs": {"VolumeSize": 1}}],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "overridden"}]}])
    first = reservation["Instances"][0]
    assert (first["ImageId"], first["InstanceType"], first["KeyName"]) == (image_id, "t3.nano", key)
    assert [g["GroupId"] for g in first["SecurityGroups"]] == [group]
    assert tags_of(first) == {"Name": "overridden", "tier": "app", "aws:ec2launchtemplate:id": template_id,
                              "aws:ec2launchtemplate:version": "1"}
    shown = instance(client, first["InstanceId"])
    assert tags_of(shown) == tags_of(first)
    assert (shown["MetadataOptions"]["HttpTokens"], shown["MetadataOptions"]["HttpPutResponseHopLimit"]) == \
        ("required", 2)
    attribute = client.describe_instance_attribute(InstanceId=first["InstanceId"], Attribute="userData")
    assert attribute["UserData"]["Value"] == user_data
    credits = client.describe_instance_credit_specifications(InstanceIds=[first["InstanceId"]])
    assert credits["InstanceCreditSpecifications"][0]["CpuCredits"] == "standard"
    devices = volumes_by_device(client, first["InstanceId"])
    assert sorted(devices) == ["/dev/sdf", "/dev/sdg", "/dev/sdh", "/dev/vda"]
    assert devices["/dev/vda"][1]["Size"] == 3 and devices["/dev/vda"][1]["VolumeType"] == "gp3"
    assert devices["/dev/sdf"][1]["Size"] == 2 and devices["/dev/sdf"][0]["Ebs"]["DeleteOnTermination"] is False
    assert devices["/dev/sdg"][1]["SnapshotId"] == snapshot and devices["/dev/sdg"][1]["Size"] == 1
    assert devices["/dev/sdg"][0]["Ebs"]["DeleteOnTermination"] is True
    for _, volume in devices.values():
        assert tags_of(volume) == {"backup": "daily"}

    # $Latest, by id: version 2's type.
    latest = client.run_instances(MinCount=1, MaxCount=1,
                                  LaunchTemplate={"LaunchTemplateId": template_id, "Version": "$Latest"})
    second = latest["Instances"][0]
    assert second["InstanceType"] == "t3.small" and tags_of(second)["aws:ec2launchtemplate:version"] == "2"

    # Settings of several fields merge field by field, and the root by any of its names: the
    # request's hop limit beside the template's tokens, its DeleteOnTermination beside the
    # template's root size.
    merged = client.run_instances(
        MinCount=1, MaxCount=1, LaunchTemplate={"LaunchTemplateId": template_id, "Version": "1"},
        MetadataOptions={"HttpPutResponseHopLimit": 3},
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"DeleteOnTermination": False}}])["Instances"][0]
    options = instance(client, merged["InstanceId"])["MetadataOptions"]
    assert (options["HttpTokens"], options["HttpPutResponseHopLimit"]) == ("required", 3)
    root_mapping, root_volume = volumes_by_device(client, merged["InstanceId"])["/dev/vda"]
    assert (root_volume["Size"], root_volume["VolumeType"]) == (3, "gp3")
    assert root_mapping["Ebs"]["DeleteOnTermination"] is False

    # EC2's own tags are not the user's to set or remove.
    assert code_of(lambda: client.delete_tags(Resources=[second["InstanceId"]],
                                              Tags=[{"Key": "aws:ec2launchtemplate:id"}]))[0] == \
        "InvalidParameterValue"
    client.delete_tags(Resources=[second["InstanceId"]])
    assert set(tags_of(instance(client, second["InstanceId"]))) == {"aws:ec2launchtemplate:id",
                                                                    "aws:ec2launchtemplate:version"}

    assert code_of(lambda: client.run_instances(MinCount=1, MaxCount=1, LaunchTemplate={
        "LaunchTemplateId": template_id, "Version": "5"}))[0] == "InvalidLaunchTemplateId.VersionNotFound"
    assert code_of(lambda: client.run_instances(MinCount=1, MaxCount=1, LaunchTemplate={
        "LaunchTemplateName": "no-such-template"}))[0] == "InvalidLaunchTemplateName.NotFoundException"

    ids = [first["InstanceId"], second["InstanceId"], merged["InstanceId"]]
    wait_states(client, ids, "running")
    client.terminate_instances(InstanceIds=ids)
    client.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig=FAST)
    kept = client.describe_volumes(VolumeIds=[devices["/dev/sdf"][1]["VolumeId"]])["Volumes"][0]
    assert kept["State"] == "available", "DeleteOnTermination=false keeps it"
    with pytest.raises(ClientError):
        client.describe_volumes(VolumeIds=[devices["/dev/sdg"][1]["VolumeId"]])
    client.delete_launch_template(LaunchTemplateId=template_id)


def test_block_devices_at_launch(cloud):
    _, client, image_id = cloud

    def run(mappings, **kw):
        return client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                    BlockDeviceMappings=mappings, **kw)["Instances"][0]["InstanceId"]

    assert code_of(lambda: run([{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1}},
                                {"DeviceName": "/dev/xvdf", "Ebs": {"VolumeSize": 1}}]))[0] == \
        "InvalidBlockDeviceMapping"
    assert code_of(lambda: run([{"DeviceName": "/dev/sdh", "Ebs": {"VolumeType": "gp3"}}]))[0] == \
        "InvalidBlockDeviceMapping"
    assert code_of(lambda: run([{"DeviceName": "/dev/sdh", "Ebs": {"SnapshotId": "snap-0123456789abcdef0"}}]))[0] \
        == "InvalidSnapshot.NotFound"
    assert code_of(lambda: run([{"DeviceName": "/dev/sda1", "NoDevice": ""}]))[0] == "InvalidBlockDeviceMapping"

    # Instance-store devices and NoDevice for a device the image does not have leave nothing.
    instance_id = run([{"DeviceName": "/dev/xvdb", "Ebs": {"VolumeSize": 4, "VolumeType": "io1", "Iops": 200}},
                       {"DeviceName": "/dev/sdc", "VirtualName": "ephemeral0"},
                       {"DeviceName": "/dev/sdd", "NoDevice": ""},
                       {"DeviceName": "/dev/sda1", "Ebs": {"DeleteOnTermination": False}}])
    devices = volumes_by_device(client, instance_id)
    assert sorted(devices) == ["/dev/vda", "/dev/xvdb"]
    assert (devices["/dev/xvdb"][1]["VolumeType"], devices["/dev/xvdb"][1]["Iops"]) == ("io1", 200)
    assert devices["/dev/vda"][0]["Ebs"]["DeleteOnTermination"] is False
    wait_states(client, [instance_id], "running")

    # DescribeInstances filters on what is joined to the instance: its volumes and public address.
    def found(name, *values):
        reservations = client.describe_instances(Filters=[{"Name": name, "Values": list(values)}])["Reservations"]
        return [i["InstanceId"] for r in reservations for i in r["Instances"]]

    data_volume = devices["/dev/xvdb"][1]["VolumeId"]
    assert found("block-device-mapping.volume-id", data_volume) == [instance_id]
    assert found("block-device-mapping.device-name", "/dev/xvdb") == [instance_id]
    assert instance_id in found("block-device-mapping.delete-on-termination", "false")
    assert instance_id in found("block-device-mapping.status", "attached")
    assert found("block-device-mapping.volume-id", "vol-0123456789abcdef0") == []
    shown = instance(client, instance_id)
    assert shown["PublicIpAddress"], "default subnets map public addresses at launch"
    assert found("ip-address", shown["PublicIpAddress"]) == [instance_id]
    assert found("dns-name", shown["PublicDnsName"]) == [instance_id]
    assert found("network-interface.association.public-ip", shown["PublicIpAddress"]) == [instance_id]
    assert found("ip-address", "198.51.100.254") == []

    # DeleteOnTermination per device, afterwards: the root by the name AWS images give it.
    client.modify_instance_attribute(InstanceId=instance_id, BlockDeviceMappings=[
        {"DeviceName": "/dev/xvda", "Ebs": {"DeleteOnTermination": True}},
        {"DeviceName": "/dev/sdb", "Ebs": {"DeleteOnTermination": False}}])
    shown = client.describe_instance_attribute(InstanceId=instance_id, Attribute="blockDeviceMapping")
    assert {m["DeviceName"]: m["Ebs"]["DeleteOnTermination"] for m in shown["BlockDeviceMappings"]} == \
        {"/dev/vda": True, "/dev/xvdb": False}
    assert code_of(lambda: client.modify_instance_attribute(InstanceId=instance_id, BlockDeviceMappings=[
        {"DeviceName": "/dev/sdz", "Ebs": {"DeleteOnTermination": True}}]))[0] == "InvalidParameterValue"

    client.terminate_instances(InstanceIds=[instance_id])
    client.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    kept = client.describe_volumes(VolumeIds=[devices["/dev/xvdb"][1]["VolumeId"]])["Volumes"][0]
    assert kept["State"] == "available"
    with pytest.raises(ClientError):
        client.describe_volumes(VolumeIds=[devices["/dev/vda"][1]["VolumeId"]])
    client.delete_volume(VolumeId=kept["VolumeId"])
