"""Instances through boto3: launch, filters, pagination, idempotency, state errors, and a server
killed in the middle of RunInstances.

The control-plane tests run on libvirt's in-process test driver (fast, no guests); the
kill-and-restart test runs on the real QEMU daemon, whose domains outlive the server.
"""

from __future__ import annotations

import base64
import subprocess
import threading
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import (BOOT_MARKER, QEMU_CONFIG, TEST_DRIVER_CONFIG, create_account, ec2_client, import_image,
                      require_qemu, wait_states)


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, test_image):
    """A server on the test driver with the test image imported."""
    from conftest import start_stratus

    server = start_stratus(tmp_path_factory.mktemp("fleet"), config=TEST_DRIVER_CONFIG)
    image_id = import_image(server, test_image, "fleet image")
    yield server, ec2_client(server), image_id
    server.stop()


def run(client, image_id, count=1, **extra):
    return client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=count, MaxCount=count, **extra)


def test_run_describe_and_the_fields_clients_read(fleet):
    server, client, image_id = fleet
    user_data = "#!/bin/sh\necho hello\n"
    reservation = run(client, image_id, 2, UserData=user_data,
                      TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "fields"}]}],
                      CreditSpecification={"CpuCredits": "unlimited"}, EbsOptimized=False,
                      Monitoring={"Enabled": False}, MetadataOptions={"HttpTokens": "optional"},
                      HibernationOptions={"Configured": False})
    assert reservation["ReservationId"].startswith("r-")
    ids = [i["InstanceId"] for i in reservation["Instances"]]
    assert len(ids) == 2 and all(i["State"]["Name"] == "pending" for i in reservation["Instances"])
    instances = wait_states(client, ids, "running", timeout=30)
    for i in instances:
        assert i["ImageId"] == image_id and i["InstanceType"] == "t3.nano"
        assert i["State"] == {"Code": 16, "Name": "running"}
        assert i["Placement"]["AvailabilityZone"] == "us-east-1a"
        assert i["PrivateIpAddress"].startswith("172.31.")
        assert i["PrivateDnsName"] == "ip-" + i["PrivateIpAddress"].replace(".", "-") + ".ec2.internal"
        assert i["SubnetId"].startswith("subnet-") and i["VpcId"].startswith("vpc-")
        eni = i["NetworkInterfaces"][0]
        assert eni["NetworkInterfaceId"].startswith("eni-") and eni["Attachment"]["DeviceIndex"] == 0
        assert eni["MacAddress"].startswith("52:54:00:")
        assert {"Key": "Name", "Value": "fields"} in i["Tags"]
        assert i["Monitoring"]["State"] == "disabled"
    assert len({i["PrivateIpAddress"] for i in instances}) == 2
    subnets = client.describe_subnets()["Subnets"]
    assert [s["SubnetId"] for s in subnets] == [instances[0]["SubnetId"]]
    assert subnets[0]["CidrBlock"] == "172.31.0.0/20" and subnets[0]["DefaultForAz"] is True
    vpcs = client.describe_vpcs()["Vpcs"]
    assert vpcs[0]["VpcId"] == instances[0]["VpcId"] and vpcs[0]["IsDefault"] is True
    client.terminate_instances(InstanceIds=ids)
    wait_states(client, ids, "terminated")


def test_aws_instance_types_launch(fleet):
    """AWS's catalogue at launch: t2.micro as Terraform examples name it, m1.small when the
    request names none (EC2's default), an ARM type refused as EC2 refuses a type the zone does
    not offer, and the offerings list only what the pool can run."""
    _, client, image_id = fleet
    [micro] = client.run_instances(ImageId=image_id, InstanceType="t2.micro", MinCount=1, MaxCount=1)["Instances"]
    [default] = client.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"]
    assert (micro["InstanceType"], default["InstanceType"]) == ("t2.micro", "m1.small")
    with pytest.raises(ClientError) as e:
        client.run_instances(ImageId=image_id, InstanceType="a1.large", MinCount=1, MaxCount=1)
    assert error_code(e) == "Unsupported"
    assert e.value.response["Error"]["Message"] == (
        "Your requested instance type (a1.large) is not supported in your requested Availability Zone (us-east-1a).")
    pages = client.get_paginator("describe_instance_type_offerings").paginate(LocationType="availability-zone")
    offered = {o["InstanceType"] for p in pages for o in p["InstanceTypeOfferings"]}
    assert {"t2.micro", "m1.small", "t3.nano"} <= offered, len(offered)
    assert "a1.large" not in offered, "the hosts boot x86-64 guests"
    assert "p3dn.24xlarge" not in offered, "no host of the fleet holds 96 vCPUs and 768 GiB"
    ids = [micro["InstanceId"], default["InstanceId"]]
    client.terminate_instances(InstanceIds=ids)
    wait_states(client, ids, "terminated", timeout=30)


def test_filters(fleet):
    server, client, image_id = fleet
    tagged = run(client, image_id, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "role", "Value": "web-1"}]}])["Instances"][0]
    other = run(client, image_id)["Instances"][0]
    ids = [tagged["InstanceId"], other["InstanceId"]]
    wait_states(client, ids, "running")
    client.stop_instances(InstanceIds=[other["InstanceId"]])
    wait_states(client, [other["InstanceId"]], "stopped")

    def found(*filters):
        response = client.describe_instances(Filters=[{"Name": n, "Values": v} for n, v in filters])
        return sorted(i["InstanceId"] for r in response["Reservations"] for i in r["Instances"] if i["InstanceId"] in ids)

    assert found(("tag:role", ["web-*"])) == [tagged["InstanceId"]]
    # Exact tag and id filters are answered from storage's indexes; they must agree with a scan.
    volume = client.create_volume(AvailabilityZone="us-east-1a", Size=1, TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "role", "Value": "web-1"}]}])["VolumeId"]
    assert found(("tag:role", ["web-1"])) == [tagged["InstanceId"]], "the volume's tag names no instance"
    assert found(("tag:role", ["web-1", "nothing"])) == [tagged["InstanceId"]]
    assert found(("tag:role", ["web-1"]), ("instance-state-name", ["stopped"])) == []
    assert found(("tag:role", ["web-10"])) == []
    assert found(("instance-id", [tagged["InstanceId"], "i-0123456789abcdef0"])) == [tagged["InstanceId"]]
    # Creating the volume's file is background work; a `creating` volume refuses deletion.
    client.get_waiter("volume_available").wait(VolumeIds=[volume], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    client.delete_volume(VolumeId=volume)
    assert found(("tag-key", ["role"])) == [tagged["InstanceId"]]
    assert found(("instance-state-name", ["stopped"])) == [other["InstanceId"]]
    assert found(("instance-state-name", ["running", "stopped"])) == sorted(ids)
    assert found(("instance-state-code", ["80"])) == [other["InstanceId"]]
    assert found(("instance-id", [tagged["InstanceId"]])) == [tagged["InstanceId"]]
    assert found(("private-ip-address", [tagged["PrivateIpAddress"]])) == [tagged["InstanceId"]]
    assert found(("availability-zone", ["us-east-1a"]), ("image-id", [image_id])) == sorted(ids)
    assert found(("instance-type", ["m5.large"])) == []
    # What EC2 filters on that every instance here shares, and the primary interface's facts.
    assert found(("architecture", ["x86_64"]), ("root-device-type", ["ebs"]), ("tenancy", ["default"]),
                 ("virtualization-type", ["hvm"])) == sorted(ids)
    assert found(("architecture", ["arm64"])) == [] and found(("instance-lifecycle", ["spot"])) == []
    client.modify_instance_metadata_options(InstanceId=tagged["InstanceId"], HttpTokens="required")
    assert found(("metadata-options.http-tokens", ["required"])) == [tagged["InstanceId"]]
    assert found(("metadata-options.http-tokens", ["optional"])) == [other["InstanceId"]]
    eni = tagged["NetworkInterfaces"][0]
    assert found(("network-interface.mac-address", [eni["MacAddress"]])) == [tagged["InstanceId"]]
    assert found(("network-interface.addresses.private-ip-address", [tagged["PrivateIpAddress"]]),
                 ("network-interface.attachment.device-index", ["0"])) == [tagged["InstanceId"]]
    assert found(("network-interface.subnet-id", [tagged["SubnetId"]]), ("source-dest-check", ["true"])) == sorted(ids)
    with pytest.raises(ClientError) as e:
        client.describe_instances(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    assert error_code(e) == "InvalidParameterValue"
    # Status checks come from the monitoring's samples: `initializing` until the first.
    client.get_waiter("instance_status_ok").wait(InstanceIds=[tagged["InstanceId"]],
                                                 WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    status = client.describe_instance_status(InstanceIds=ids)["InstanceStatuses"]
    assert [s["InstanceId"] for s in status] == [tagged["InstanceId"]], "only running ones by default"
    assert status[0]["InstanceStatus"]["Status"] == "ok" and status[0]["SystemStatus"]["Status"] == "ok"
    every = client.describe_instance_status(InstanceIds=ids, IncludeAllInstances=True)["InstanceStatuses"]
    assert len(every) == 2
    client.terminate_instances(InstanceIds=ids)
    wait_states(client, ids, "terminated")


def test_pagination_by_reservation(fleet):
    server, client, image_id = fleet
    tag = str(uuid.uuid4())
    spec = [{"ResourceType": "instance", "Tags": [{"Key": "page", "Value": tag}]}]
    reservations = [run(client, image_id, 1, TagSpecifications=spec)["ReservationId"] for _ in range(6)]
    pages = client.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:page", "Values": [tag]}], PaginationConfig={"PageSize": 5})
    seen = [[r["ReservationId"] for r in page["Reservations"]] for page in pages]
    assert [len(p) for p in seen] == [5, 1]
    assert sorted(sum(seen, [])) == sorted(reservations)
    with pytest.raises(ClientError) as e:
        client.describe_instances(MaxResults=4)
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        client.describe_instances(MaxResults=5, InstanceIds=["i-0123456789abcdef0"])
    assert error_code(e) == "InvalidParameterCombination"
    ids = [i["InstanceId"] for r in client.describe_instances(Filters=[{"Name": "tag:page", "Values": [tag]}])
           ["Reservations"] for i in r["Instances"]]
    client.terminate_instances(InstanceIds=ids)


def test_client_token_idempotency(fleet):
    server, client, image_id = fleet
    token = str(uuid.uuid4())
    first = run(client, image_id, 2, ClientToken=token)
    again = run(client, image_id, 2, ClientToken=token)
    assert again["ReservationId"] == first["ReservationId"]
    assert [i["InstanceId"] for i in again["Instances"]] == [i["InstanceId"] for i in first["Instances"]]
    with pytest.raises(ClientError) as e:
        client.run_instances(ImageId=image_id, InstanceType="t3.micro", MinCount=2, MaxCount=2, ClientToken=token)
    assert error_code(e) == "IdempotentParameterMismatch"
    client.terminate_instances(InstanceIds=[i["InstanceId"] for i in first["Instances"]])


def test_state_and_parameter_errors(fleet):
    server, client, image_id = fleet
    cases = [
        (dict(ImageId="ami-0123456789abcdef0", InstanceType="t3.nano", MinCount=1, MaxCount=1), "InvalidAMIID.NotFound"),
        (dict(ImageId=image_id, InstanceType="x9.huge", MinCount=1, MaxCount=1), "InvalidParameterValue"),
        (dict(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1, KeyName="nope"), "InvalidKeyPair.NotFound"),
        (dict(ImageId=image_id, InstanceType="t3.nano", MinCount=3, MaxCount=2), "InvalidParameterValue"),
        (dict(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
              Placement={"AvailabilityZone": "us-east-1z"}), "InvalidParameterValue"),
        (dict(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1, SubnetId="subnet-0123456789abcdef0"),
         "InvalidSubnetID.NotFound"),
        (dict(ImageId=image_id, InstanceType="m5.4xlarge", MinCount=1, MaxCount=1), "InsufficientInstanceCapacity"),
    ]
    def instance_ids():
        return sorted(i["InstanceId"] for r in client.describe_instances()["Reservations"] for i in r["Instances"])

    before = instance_ids()
    for params, code in cases:
        with pytest.raises(ClientError) as e:
            client.run_instances(**params)
        assert error_code(e) == code, params
    # botocore base64-encodes UserData itself: this is 16 KiB + 1 of user data.
    big = "x" * (16 * 1024 + 1)
    with pytest.raises(ClientError) as e:
        client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1, UserData=big)
    assert error_code(e) == "InvalidParameterValue"
    assert instance_ids() == before, "refused launches leave nothing behind"

    protected = run(client, image_id, DisableApiTermination=True, DisableApiStop=True)["Instances"][0]["InstanceId"]
    with pytest.raises(ClientError) as e:
        client.stop_instances(InstanceIds=[protected])
    assert error_code(e) == "IncorrectInstanceState", "still pending"
    wait_states(client, [protected], "running")
    for call in (client.terminate_instances, client.stop_instances):
        with pytest.raises(ClientError) as e:
            call(InstanceIds=[protected])
        assert error_code(e) == "OperationNotPermitted"
    with pytest.raises(ClientError) as e:
        client.describe_instances(InstanceIds=["i-0123456789abcdef0"])
    assert error_code(e) == "InvalidInstanceID.NotFound"
    with pytest.raises(ClientError) as e:
        client.terminate_instances(InstanceIds=["bogus"])
    assert error_code(e) == "InvalidInstanceID.Malformed"
    with pytest.raises(ClientError) as e:
        client.start_instances(InstanceIds=[protected, "i-0123456789abcdef0"])
    assert error_code(e) == "InvalidInstanceID.NotFound"
    assert client.describe_instances(InstanceIds=[protected])["Reservations"][0]["Instances"][0]["State"]["Name"] == "running"

    plain = run(client, image_id)["Instances"][0]["InstanceId"]
    wait_states(client, [plain], "running")
    client.terminate_instances(InstanceIds=[plain])
    wait_states(client, [plain], "terminated")
    for call in (client.start_instances, client.stop_instances, client.reboot_instances):
        with pytest.raises(ClientError) as e:
            call(InstanceIds=[plain])
        assert error_code(e) == "IncorrectInstanceState"


def test_images(fleet, test_image):
    server, client, image_id = fleet
    images = client.describe_images(Owners=["self"])["Images"]
    assert [i["ImageId"] for i in images] == [image_id]
    assert images[0]["State"] == "available" and images[0]["Public"] is True
    named = client.describe_images(Filters=[{"Name": "name", "Values": ["fleet*"]}])["Images"]
    assert [i["ImageId"] for i in named] == [image_id]
    assert client.describe_images(Filters=[{"Name": "name", "Values": ["nothing*"]}])["Images"] == []
    with pytest.raises(ClientError) as e:
        client.describe_images(ImageIds=["ami-0123456789abcdef0"])
    assert error_code(e) == "InvalidAMIID.NotFound"
    registered = client.register_image(Name="registered", ImageLocation=test_image.disk,
                                       KernelId=test_image.kernel, RamdiskId=test_image.initrd)["ImageId"]
    described = client.describe_images(ImageIds=[registered])["Images"][0]
    assert described["Public"] is False
    # Boot files are named by the image's id, as RunInstances' KernelId takes them, never by path.
    assert (described["KernelId"], described["RamdiskId"]) == (registered, registered)
    assert client.describe_image_attribute(ImageId=registered, Attribute="kernel")["KernelId"] == {
        "Value": registered}
    with pytest.raises(ClientError) as e:
        client.register_image(Name="registered", ImageLocation=test_image.disk)
    assert error_code(e) == "InvalidAMIName.Duplicate"
    with pytest.raises(ClientError) as e:
        client.register_image(Name="nowhere", ImageLocation="/nonexistent.qcow2")
    assert error_code(e) == "InvalidParameterValue"
    client.deregister_image(ImageId=registered)
    with pytest.raises(ClientError) as e:
        client.describe_images(ImageIds=[registered])
    assert error_code(e) == "InvalidAMIID.NotFound"


def test_instance_attributes(fleet, test_image):
    server, client, image_id = fleet
    instance_id = run(client, image_id, UserData="#!/bin/sh\necho first\n")["Instances"][0]["InstanceId"]
    wait_states(client, [instance_id], "running", timeout=30)

    def attribute(name):
        return client.describe_instance_attribute(InstanceId=instance_id, Attribute=name)

    assert attribute("instanceType")["InstanceType"] == {"Value": "t3.nano"}
    assert base64.b64decode(attribute("userData")["UserData"]["Value"]) == b"#!/bin/sh\necho first\n"
    assert attribute("disableApiTermination")["DisableApiTermination"] == {"Value": False}
    assert attribute("instanceInitiatedShutdownBehavior")["InstanceInitiatedShutdownBehavior"] == {"Value": "stop"}
    assert attribute("rootDeviceName")["RootDeviceName"] == {"Value": "/dev/vda"}
    assert attribute("kernel")["KernelId"] == {} and attribute("ramdisk")["RamdiskId"] == {}
    with pytest.raises(ClientError) as e:
        attribute("colour")
    assert error_code(e) == "InvalidParameterValue"

    # Protection applies at once; size and user data wait for the instance to stop.
    client.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": True})
    with pytest.raises(ClientError) as e:
        client.terminate_instances(InstanceIds=[instance_id])
    assert error_code(e) == "OperationNotPermitted"
    client.modify_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination", Value="false")
    with pytest.raises(ClientError) as e:
        client.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "t3.small"})
    assert error_code(e) == "IncorrectInstanceState"
    with pytest.raises(ClientError) as e:
        client.modify_instance_attribute(InstanceId=instance_id, DisableApiStop={"Value": True},
                                         EbsOptimized={"Value": False})
    assert error_code(e) == "InvalidParameterCombination"
    with pytest.raises(ClientError) as e:
        client.modify_instance_attribute(InstanceId=instance_id)
    assert error_code(e) == "MissingParameter"

    client.stop_instances(InstanceIds=[instance_id], Force=True)
    wait_states(client, [instance_id], "stopped", timeout=30)
    client.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "t3.small"})
    client.modify_instance_attribute(InstanceId=instance_id, UserData={"Value": b"second"})
    client.modify_instance_attribute(InstanceId=instance_id, InstanceInitiatedShutdownBehavior={"Value": "terminate"})
    with pytest.raises(ClientError) as e:
        client.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "z9.enormous"})
    assert error_code(e) == "InvalidParameterValue"
    assert base64.b64decode(attribute("userData")["UserData"]["Value"]) == b"second"
    # The older `Attribute`/`Value` form carries the user data base64-encoded.
    client.modify_instance_attribute(InstanceId=instance_id, Attribute="userData",
                                     Value=base64.b64encode(b"third").decode())
    assert base64.b64decode(attribute("userData")["UserData"]["Value"]) == b"third"
    client.modify_instance_attribute(InstanceId=instance_id, SourceDestCheck={"Value": False})
    assert attribute("sourceDestCheck")["SourceDestCheck"] == {"Value": False}
    # Kernel and ramdisk: from another image the account may launch (kernels are files only
    # admins register; a tenant names an image, never a path).
    kernels = import_image(server, test_image, "kernel source")
    client.modify_instance_attribute(InstanceId=instance_id, Kernel={"Value": kernels})
    client.modify_instance_attribute(InstanceId=instance_id, Attribute="ramdisk", Value=kernels)
    assert attribute("kernel")["KernelId"] == {"Value": kernels}
    assert attribute("ramdisk")["RamdiskId"] == {"Value": kernels}
    with pytest.raises(ClientError) as e:
        client.modify_instance_attribute(InstanceId=instance_id, Kernel={"Value": "ami-0123456789abcdef0"})
    assert error_code(e) == "InvalidAMIID.NotFound"
    assert attribute("instanceInitiatedShutdownBehavior")["InstanceInitiatedShutdownBehavior"] == {
        "Value": "terminate"}
    client.start_instances(InstanceIds=[instance_id])
    started = wait_states(client, [instance_id], "running", timeout=30)[0]
    assert started["InstanceType"] == "t3.small"
    assert (started["KernelId"], started["RamdiskId"]) == (kernels, kernels)
    assert [i["InstanceId"] for r in client.describe_instances(
        Filters=[{"Name": "kernel-id", "Values": [kernels]}])["Reservations"] for i in r["Instances"]] == [instance_id]
    # RunInstances takes them too, as EC2's KernelId and RamdiskId.
    chosen = run(client, image_id, KernelId=kernels, RamdiskId=kernels)["Instances"][0]
    assert (chosen["KernelId"], chosen["RamdiskId"]) == (kernels, kernels)
    with pytest.raises(ClientError) as e:
        run(client, image_id, KernelId="ami-0123456789abcdef0")
    assert error_code(e) == "InvalidAMIID.NotFound"
    client.terminate_instances(InstanceIds=[instance_id, chosen["InstanceId"]])
    wait_states(client, [instance_id, chosen["InstanceId"]], "terminated")
    with pytest.raises(ClientError) as e:
        client.modify_instance_attribute(InstanceId=instance_id, DisableApiStop={"Value": True})
    assert error_code(e) == "IncorrectInstanceState"


def test_network_interfaces(fleet):
    server, client, image_id = fleet
    group_id = client.create_security_group(GroupName="eni-test", Description="for interfaces")["GroupId"]
    ids = [i["InstanceId"] for i in run(client, image_id, 2, SecurityGroupIds=[group_id],
                                        TagSpecifications=[{"ResourceType": "network-interface",
                                                            "Tags": [{"Key": "tier", "Value": "web"}]}])["Instances"]]
    instances = wait_states(client, ids, "running", timeout=30)
    by_instance = client.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [ids[0]]}])["NetworkInterfaces"]
    assert len(by_instance) == 1
    eni = by_instance[0]
    assert eni["NetworkInterfaceId"] == instances[0]["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert eni["PrivateIpAddress"] == instances[0]["PrivateIpAddress"]
    assert eni["MacAddress"] == instances[0]["NetworkInterfaces"][0]["MacAddress"]
    assert eni["Status"] == "in-use" and eni["InterfaceType"] == "interface"
    assert eni["Attachment"]["InstanceId"] == ids[0] and eni["Attachment"]["Status"] == "attached"
    assert eni["SubnetId"] == instances[0]["SubnetId"] and eni["VpcId"] == instances[0]["VpcId"]
    assert eni["Groups"] == [{"GroupId": group_id, "GroupName": "eni-test"}]
    by_group = client.describe_network_interfaces(
        Filters=[{"Name": "group-id", "Values": [group_id]}])["NetworkInterfaces"]
    assert {n["Attachment"]["InstanceId"] for n in by_group} == set(ids)
    by_id = client.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])["NetworkInterfaces"]
    assert [n["NetworkInterfaceId"] for n in by_id] == [eni["NetworkInterfaceId"]]
    # Tags from TagSpecifications and CreateTags, read back and filtered on.
    assert {"Key": "tier", "Value": "web"} in eni["TagSet"]
    client.create_tags(Resources=[eni["NetworkInterfaceId"]], Tags=[{"Key": "only", "Value": "this-one"}])
    tagged = client.describe_network_interfaces(Filters=[{"Name": "tag:only", "Values": ["this-one"]}])
    assert [n["NetworkInterfaceId"] for n in tagged["NetworkInterfaces"]] == [eni["NetworkInterfaceId"]]
    described = client.describe_tags(Filters=[{"Name": "resource-id", "Values": [eni["NetworkInterfaceId"]]}])
    assert {t["ResourceType"] for t in described["Tags"]} == {"network-interface"}
    with pytest.raises(ClientError) as e:
        client.describe_network_interfaces(NetworkInterfaceIds=["eni-0123456789abcdef0"])
    assert error_code(e) == "InvalidNetworkInterfaceID.NotFound"
    with pytest.raises(ClientError) as e:
        client.describe_network_interfaces(NetworkInterfaceIds=["i-0123456789abcdef0"])
    assert error_code(e) == "InvalidNetworkInterfaceID.Malformed"
    client.terminate_instances(InstanceIds=ids)
    wait_states(client, ids, "terminated")
    gone = client.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": ids}])["NetworkInterfaces"]
    assert gone == [], "a terminated instance's interface is deleted with it"
    assert client.describe_tags(Filters=[{"Name": "resource-id", "Values": [eni["NetworkInterfaceId"]]}])["Tags"] == []
    with pytest.raises(ClientError) as e:
        client.create_tags(Resources=[eni["NetworkInterfaceId"]], Tags=[{"Key": "late", "Value": "x"}])
    assert error_code(e) == "InvalidNetworkInterfaceID.NotFound"


def test_create_image_and_its_attributes(fleet):
    server, client, image_id = fleet
    instance_id = run(client, image_id)["Instances"][0]["InstanceId"]
    wait_states(client, [instance_id], "running", timeout=30)
    created = client.create_image(InstanceId=instance_id, Name="snapshot of a running instance",
                                  Description="made by the compat tests", TagSpecifications=[
                                      {"ResourceType": "image", "Tags": [{"Key": "purpose", "Value": "test"}]},
                                      {"ResourceType": "snapshot", "Tags": [{"Key": "purpose", "Value": "test"}]}])
    new_id = created["ImageId"]
    client.get_waiter("image_available").wait(ImageIds=[new_id], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    image = client.describe_images(ImageIds=[new_id])["Images"][0]
    assert image["State"] == "available" and image["Public"] is False and image["Name"] == "snapshot of a running instance"
    assert {"Key": "purpose", "Value": "test"} in image["Tags"]
    assert client.describe_image_attribute(ImageId=new_id, Attribute="description")["Description"] == {
        "Value": "made by the compat tests"}
    assert client.describe_image_attribute(ImageId=new_id, Attribute="launchPermission")["LaunchPermissions"] == []
    assert client.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")[
        "LaunchPermissions"] == [{"Group": "all"}]
    with pytest.raises(ClientError) as e:
        client.create_image(InstanceId=instance_id, Name="snapshot of a running instance")
    assert error_code(e) == "InvalidAMIName.Duplicate"
    with pytest.raises(ClientError) as e:
        client.create_image(InstanceId="i-0123456789abcdef0", Name="nobody")
    assert error_code(e) == "InvalidInstanceID.NotFound"
    # Another account sees the public image but not its attributes, nor this instance.
    other = create_account(server, "image-outsider")
    outsider = ec2_client(server, other.access_key, other.secret_key)
    assert [i["ImageId"] for i in outsider.describe_images(ImageIds=[image_id])["Images"]] == [image_id]
    with pytest.raises(ClientError) as e:
        outsider.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    assert error_code(e) == "AuthFailure"
    with pytest.raises(ClientError) as e:
        outsider.create_image(InstanceId=instance_id, Name="not mine")
    assert error_code(e) == "InvalidInstanceID.NotFound"
    # The source runs on, and the image launches.
    assert wait_states(client, [instance_id], "running")[0]["State"]["Name"] == "running"
    copy_id = run(client, new_id)["Instances"][0]["InstanceId"]
    wait_states(client, [copy_id], "running", timeout=30)
    client.terminate_instances(InstanceIds=[instance_id, copy_id])
    wait_states(client, [instance_id, copy_id], "terminated")
    client.deregister_image(ImageId=new_id)


def test_a_server_killed_mid_run_instances_loses_and_duplicates_nothing(server_factory, test_image):
    require_qemu()
    server = server_factory(config=QEMU_CONFIG)
    client = ec2_client(server)
    image_id = import_image(server, test_image, "kill test")
    token = str(uuid.uuid4())
    answers: list = []

    def launch():
        try:
            answers.append(client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=2, MaxCount=2,
                                                ClientToken=token))
        except Exception as e:  # the connection dies with the server
            answers.append(e)

    thread = threading.Thread(target=launch)
    thread.start()
    time.sleep(0.15)
    server.proc.kill()
    thread.join(timeout=30)
    server.proc.wait(timeout=10)
    restarted = server_factory(data_dir=server.data_dir, name="restarted", config=QEMU_CONFIG)
    client = ec2_client(restarted)
    # The client retries with its token, as SDKs do after a dropped connection.
    reservation = client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=2, MaxCount=2,
                                       ClientToken=token)
    ids = sorted(i["InstanceId"] for i in reservation["Instances"])
    if isinstance(answers[0], dict):
        assert ids == sorted(i["InstanceId"] for i in answers[0]["Instances"]), "the retry found the first launch"
    everything = [i["InstanceId"] for r in client.describe_instances()["Reservations"] for i in r["Instances"]]
    assert sorted(everything) == ids, "exactly one reservation of two instances exists"
    wait_states(client, ids, "running", timeout=120)
    domains = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"], capture_output=True,
                             text=True, check=True).stdout.split()
    assert all(domains.count(i) == 1 for i in ids), domains
    deadline = time.monotonic() + 90
    # botocore decodes the console's base64 itself.
    while BOOT_MARKER not in client.get_console_output(InstanceId=ids[0]).get("Output", ""):
        assert time.monotonic() < deadline, "no boot marker after restart"
        time.sleep(1)
    client.terminate_instances(InstanceIds=ids)
    wait_states(client, ids, "terminated", timeout=60)
    domains = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"], capture_output=True,
                             text=True, check=True).stdout.split()
    assert not set(ids) & set(domains)
