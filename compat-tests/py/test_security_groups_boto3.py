"""Security groups through boto3: the default group, rules echoed as authorized, the calls and
errors Terraform's provider depends on, and groups attached to instances (test driver)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import TEST_DRIVER_CONFIG, ec2_client, import_image, wait_states


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory, test_image):
    from conftest import start_stratus

    server = start_stratus(tmp_path_factory.mktemp("groups"), config=TEST_DRIVER_CONFIG)
    image_id = import_image(server, test_image, "groups image")
    yield server, ec2_client(server), image_id
    server.stop()


def group(client, group_id):
    return client.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]


ALL_TO_ANYWHERE = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [],
                   "PrefixListIds": [], "UserIdGroupPairs": []}


def test_the_default_group(cloud):
    _, client, _ = cloud
    vpc_id = client.describe_vpcs()["Vpcs"][0]["VpcId"]
    default = client.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]
    assert default["VpcId"] == vpc_id and default["Description"] == "default VPC security group"
    assert default["IpPermissionsEgress"] == [ALL_TO_ANYWHERE]
    [from_members] = default["IpPermissions"]
    assert from_members["IpProtocol"] == "-1"
    assert [p["GroupId"] for p in from_members["UserIdGroupPairs"]] == [default["GroupId"]]
    with pytest.raises(ClientError) as e:
        client.delete_security_group(GroupId=default["GroupId"])
    assert error_code(e) == "CannotDelete"
    with pytest.raises(ClientError) as e:
        client.create_security_group(GroupName="default", Description="again")
    assert error_code(e) == "InvalidParameterValue"


def test_rules_as_terraform_manages_them(cloud):
    _, client, _ = cloud
    created = client.create_security_group(
        GroupName="tf-web", Description="web servers",
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [{"Key": "Name", "Value": "web"}]}])
    group_id = created["GroupId"]
    assert created["Tags"] == [{"Key": "Name", "Value": "web"}]
    # A new group allows all egress, which Terraform revokes first (IPv4, then IPv6).
    assert group(client, group_id)["IpPermissionsEgress"] == [ALL_TO_ANYWHERE]
    client.revoke_security_group_egress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "-1", "FromPort": 0, "ToPort": 0, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    with pytest.raises(ClientError) as e:
        client.revoke_security_group_egress(GroupId=group_id, IpPermissions=[
            {"IpProtocol": "-1", "FromPort": 0, "ToPort": 0, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}])
    assert error_code(e) == "InvalidPermission.NotFound"
    assert group(client, group_id)["IpPermissionsEgress"] == []

    answer = client.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
         "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "SSH"}],
         "Ipv6Ranges": [{"CidrIpv6": "::/0", "Description": "SSH6"}]}])
    assert answer["Return"] is True
    assert sorted(r.get("CidrIpv4", r.get("CidrIpv6")) for r in answer["SecurityGroupRules"]) == ["0.0.0.0/0", "::/0"]
    client.authorize_security_group_egress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    described = group(client, group_id)
    assert described["IpPermissions"] == [{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
        "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "SSH"}],
        "Ipv6Ranges": [{"CidrIpv6": "::/0", "Description": "SSH6"}],
        "PrefixListIds": [], "UserIdGroupPairs": []}]
    assert described["IpPermissionsEgress"] == [ALL_TO_ANYWHERE]
    assert described["Tags"] == [{"Key": "Name", "Value": "web"}]
    assert described["OwnerId"] and described["SecurityGroupArn"].endswith(f"security-group/{group_id}")

    # The same rule again, even spelled as protocol 6, is a duplicate; nothing of the batch lands.
    with pytest.raises(ClientError) as e:
        client.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
            {"IpProtocol": "6", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    assert error_code(e) == "InvalidPermission.Duplicate"
    assert len(group(client, group_id)["IpPermissions"]) == 1

    # Group references, and the rules view with its ids.
    db = client.create_security_group(GroupName="tf-db", Description="databases")["GroupId"]
    client.authorize_security_group_ingress(GroupId=db, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
         "UserIdGroupPairs": [{"GroupId": group_id, "Description": "from web"}]}])
    [pair] = group(client, db)["IpPermissions"][0]["UserIdGroupPairs"]
    assert pair["GroupId"] == group_id and pair["Description"] == "from web" and pair["UserId"]
    rules = client.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [db]}])["SecurityGroupRules"]
    assert len(rules) == 2  # the reference, and the default egress rule
    [ingress] = [r for r in rules if not r["IsEgress"]]
    assert ingress["ReferencedGroupInfo"]["GroupId"] == group_id and ingress["FromPort"] == 5432
    [egress] = [r for r in rules if r["IsEgress"]]
    assert (egress["IpProtocol"], egress["FromPort"], egress["ToPort"]) == ("-1", -1, -1)
    with pytest.raises(ClientError) as e:
        client.delete_security_group(GroupId=group_id)
    assert error_code(e) == "DependencyViolation"
    revoked = client.revoke_security_group_ingress(GroupId=db, SecurityGroupRuleIds=[ingress["SecurityGroupRuleId"]])
    assert revoked["Return"] is True
    assert client.describe_security_group_rules(
        SecurityGroupRuleIds=[egress["SecurityGroupRuleId"]])["SecurityGroupRules"][0]["GroupId"] == db

    # Filters over rules.
    by_port = client.describe_security_groups(Filters=[{"Name": "ip-permission.from-port", "Values": ["22"]}])
    assert [g["GroupId"] for g in by_port["SecurityGroups"]] == [group_id]
    by_tag = client.describe_security_groups(Filters=[{"Name": "tag:Name", "Values": ["web"]}])
    assert [g["GroupId"] for g in by_tag["SecurityGroups"]] == [group_id]

    client.delete_security_group(GroupId=db)
    client.delete_security_group(GroupName="tf-web")
    with pytest.raises(ClientError) as e:
        client.describe_security_groups(GroupIds=[group_id])
    assert error_code(e) == "InvalidGroup.NotFound"


def test_bad_input_gets_the_codes_clients_expect(cloud):
    _, client, _ = cloud
    group_id = client.create_security_group(GroupName="strict", Description="strict")["GroupId"]
    cases = [
        (dict(GroupId="sg-0123456789abcdef0", IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]),
         "InvalidGroup.NotFound"),
        (dict(GroupId="bogus", IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]),
         "InvalidGroupId.Malformed"),
        (dict(GroupId=group_id, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                                "IpRanges": [{"CidrIp": "10.0.0.1/8"}]}]), "InvalidParameterValue"),
        (dict(GroupId=group_id, IpPermissions=[{"IpProtocol": "tcp", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]),
         "InvalidParameterValue"),
        (dict(GroupId=group_id, IpPermissions=[{"IpProtocol": "gre-ish", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]),
         "InvalidParameterValue"),
        (dict(GroupId=group_id, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2,
                                                "UserIdGroupPairs": [{"GroupId": "sg-0123456789abcdef0"}]}]),
         "InvalidGroup.NotFound"),
    ]
    for kwargs, code in cases:
        with pytest.raises(ClientError) as e:
            client.authorize_security_group_ingress(**kwargs)
        assert error_code(e) == code, kwargs
    with pytest.raises(ClientError) as e:
        client.create_security_group(GroupName="strict", Description="again")
    assert error_code(e) == "InvalidGroup.Duplicate"
    with pytest.raises(ClientError) as e:
        client.create_security_group(GroupName="elsewhere", Description="x", VpcId="vpc-0123456789abcdef0")
    assert error_code(e) == "InvalidVpcID.NotFound"
    with pytest.raises(ClientError) as e:
        client.describe_security_groups(GroupNames=["no-such-group"])
    assert error_code(e) == "InvalidGroup.NotFound"
    with pytest.raises(ClientError) as e:
        client.create_security_group(GroupName="dry", Description="dry", DryRun=True)
    assert error_code(e) == "DryRunOperation"
    # Nothing above harmed the group.
    assert group(client, group_id)["IpPermissions"] == []


def test_pagination(cloud):
    _, client, _ = cloud
    for n in range(6):
        client.create_security_group(GroupName=f"page-{n}", Description="paging")
    seen, token = [], None
    while True:
        page = client.describe_security_groups(MaxResults=5, **({"NextToken": token} if token else {}))
        seen += [g["GroupId"] for g in page["SecurityGroups"]]
        token = page.get("NextToken")
        if not token:
            break
    every = [g["GroupId"] for g in client.describe_security_groups()["SecurityGroups"]]
    assert seen == every and len(every) >= 7


def test_groups_on_instances(cloud):
    _, client, image_id = cloud
    web = client.create_security_group(GroupName="inst-web", Description="web")["GroupId"]
    other = client.create_security_group(GroupName="inst-other", Description="other")["GroupId"]
    default_id = client.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]

    plain = client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"][0]
    assert plain["SecurityGroups"] == [{"GroupId": default_id, "GroupName": "default"}]
    named = client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                 SecurityGroups=["inst-web"])["Instances"][0]
    assert named["SecurityGroups"] == [{"GroupId": web, "GroupName": "inst-web"}]
    with pytest.raises(ClientError) as e:
        client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                             SecurityGroupIds=["sg-0123456789abcdef0"])
    assert error_code(e) == "InvalidGroup.NotFound"
    ids = [plain["InstanceId"], named["InstanceId"]]
    wait_states(client, ids, "running", timeout=30)

    with pytest.raises(ClientError) as e:
        client.delete_security_group(GroupId=web)
    assert error_code(e) == "DependencyViolation"
    client.modify_instance_attribute(InstanceId=named["InstanceId"], Groups=[web, other])
    attribute = client.describe_instance_attribute(InstanceId=named["InstanceId"], Attribute="groupSet")
    assert [g["GroupId"] for g in attribute["Groups"]] == [web, other]
    by_group = client.describe_instances(Filters=[{"Name": "instance.group-id", "Values": [other]}])
    assert [i["InstanceId"] for r in by_group["Reservations"] for i in r["Instances"]] == [named["InstanceId"]]

    client.terminate_instances(InstanceIds=ids)
    wait_states(client, ids, "terminated")
    client.delete_security_group(GroupId=web)
    client.delete_security_group(GroupId=other)


def test_the_small_reads_terraform_makes(cloud):
    _, client, image_id = cloud
    vpc_id = client.describe_vpcs()["Vpcs"][0]["VpcId"]
    for attribute, key, expected in [("enableDnsSupport", "EnableDnsSupport", True),
                                     ("enableDnsHostnames", "EnableDnsHostnames", True)]:
        answer = client.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)
        assert answer[key] == {"Value": expected} and answer["VpcId"] == vpc_id
    with pytest.raises(ClientError) as e:
        client.describe_vpc_attribute(VpcId="vpc-0123456789abcdef0", Attribute="enableDnsSupport")
    assert error_code(e) == "InvalidVpcID.NotFound"

    instance_id = client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1,
                                       MaxCount=1)["Instances"][0]["InstanceId"]
    uefi = client.get_instance_uefi_data(InstanceId=instance_id)
    assert uefi["InstanceId"] == instance_id and "UefiData" not in uefi
    with pytest.raises(ClientError) as e:
        client.get_instance_uefi_data(InstanceId=image_id)
    assert error_code(e) == "InvalidInstanceID.NotFound"
    client.terminate_instances(InstanceIds=[instance_id])
