"""VPCs, subnets, internet gateways, route tables, network ACLs and DHCP options through boto3
(issue 16, the API's first part), on the test driver: every action, its filters and its
errors as EC2 words them, the default VPC each account has, and launches into a VPC of one's
own whose addresses overlap another account's."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import TEST_DRIVER_CONFIG, create_account, ec2_client, import_image, wait_states


@pytest.fixture(scope="module")
def cloud(tmp_path_factory, test_image):
    from conftest import start_stratus

    server = start_stratus(tmp_path_factory.mktemp("vpcs"), config=TEST_DRIVER_CONFIG)
    image_id = import_image(server, test_image, "vpc image")
    yield server, ec2_client(server), image_id
    server.stop()


def fails(code: str, message: str | None, call, *args, **kwargs) -> dict:
    with pytest.raises(ClientError) as excinfo:
        call(*args, **kwargs)
    error = excinfo.value.response["Error"]
    assert error["Code"] == code, error
    if message is not None:
        assert error["Message"] == message, error
    return error


def tags(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def delete_vpc(client, vpc_id: str, gateway: str | None = None, subnets=(), groups=()) -> None:
    """Takes a test's VPC down in the order EC2 allows: its gateway, groups, subnets, then it."""
    if gateway:
        client.detach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc_id)
        client.delete_internet_gateway(InternetGatewayId=gateway)
    for group in groups:
        client.delete_security_group(GroupId=group)
    for subnet in subnets:
        client.delete_subnet(SubnetId=subnet)
    client.delete_vpc(VpcId=vpc_id)


def test_the_default_vpc_is_made_as_aws_makes_it(cloud):
    _, client, _ = cloud
    [vpc] = client.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    assert (vpc["CidrBlock"], vpc["IsDefault"], vpc["State"]) == ("172.31.0.0/16", True, "available")
    vpc_id = vpc["VpcId"]
    subnets = client.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    assert subnets and all(s["DefaultForAz"] for s in subnets)
    assert subnets[0]["CidrBlock"] == "172.31.0.0/20" and subnets[0]["AvailableIpAddressCount"] == 4091
    [gateway] = client.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])["InternetGateways"]
    assert gateway["Attachments"] == [{"State": "available", "VpcId": vpc_id}]
    [main] = client.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                   {"Name": "association.main", "Values": ["true"]}])["RouteTables"]
    routes = {r["DestinationCidrBlock"]: r for r in main["Routes"]}
    assert routes["172.31.0.0/16"]["GatewayId"] == "local"
    assert routes["0.0.0.0/0"]["GatewayId"] == gateway["InternetGatewayId"]
    assert routes["0.0.0.0/0"]["State"] == "active"
    [acl] = client.describe_network_acls(Filters=[{"Name": "default", "Values": ["true"]},
                                                  {"Name": "vpc-id", "Values": [vpc_id]}])["NetworkAcls"]
    assert {a["SubnetId"] for a in acl["Associations"]} == {s["SubnetId"] for s in subnets}
    assert {(e["RuleNumber"], e["Egress"], e["RuleAction"]) for e in acl["Entries"]} == {
        (100, False, "allow"), (32767, False, "deny"), (100, True, "allow"), (32767, True, "deny")}
    [dhcp] = client.describe_dhcp_options()["DhcpOptions"]
    assert dhcp["DhcpOptionsId"] == vpc["DhcpOptionsId"]
    assert {c["Key"] for c in dhcp["DhcpConfigurations"]} == {"domain-name", "domain-name-servers"}
    for attribute, key, value in [("enableDnsSupport", "EnableDnsSupport", True),
                                  ("enableDnsHostnames", "EnableDnsHostnames", True)]:
        answer = client.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)
        assert answer[key] == {"Value": value}
    attributes = client.describe_account_attributes(AttributeNames=["default-vpc"])["AccountAttributes"]
    assert attributes[0]["AttributeValues"] == [{"AttributeValue": vpc_id}]


def test_a_vpc_with_subnets_gateway_and_routes(cloud):
    _, client, _ = cloud
    vpc = client.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "mine"}]}])["Vpc"]
    vpc_id = vpc["VpcId"]
    assert (vpc["CidrBlock"], vpc["IsDefault"], tags(vpc)) == ("10.0.0.0/16", False, {"Name": "mine"})
    assert client.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"] == {
        "Value": False}
    client.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    assert client.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"] == {
        "Value": True}
    fails("InvalidParameterValue", None, client.modify_vpc_attribute, VpcId=vpc_id,
          EnableDnsSupport={"Value": False})
    [found] = client.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["mine"]}])["Vpcs"]
    assert found["VpcId"] == vpc_id
    # Its default group and main table came with it.
    [group] = client.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                       {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
    [main] = client.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    assert [(r["DestinationCidrBlock"], r["GatewayId"]) for r in main["Routes"]] == [("10.0.0.0/16", "local")]
    assert main["Associations"][0]["Main"] is True

    public = client.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]
    private = client.create_subnet(VpcId=vpc_id, CidrBlock="10.0.2.0/24")["Subnet"]
    assert (public["AvailableIpAddressCount"], public["DefaultForAz"], public["MapPublicIpOnLaunch"]) == (
        251, False, False)
    client.modify_subnet_attribute(SubnetId=public["SubnetId"], MapPublicIpOnLaunch={"Value": True})
    [shown] = client.describe_subnets(Filters=[{"Name": "map-public-ip-on-launch", "Values": ["true"]},
                                               {"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    assert shown["SubnetId"] == public["SubnetId"]

    gateway = client.create_internet_gateway()["InternetGateway"]
    gateway_id = gateway["InternetGatewayId"]
    assert gateway["Attachments"] == []
    client.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    table = client.create_route_table(VpcId=vpc_id)["RouteTable"]
    table_id = table["RouteTableId"]
    assert client.create_route(RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0",
                               GatewayId=gateway_id)["Return"] is True
    association = client.associate_route_table(RouteTableId=table_id, SubnetId=public["SubnetId"])
    assert association["AssociationState"]["State"] == "associated"
    [routed] = client.describe_route_tables(Filters=[{"Name": "association.subnet-id",
                                                      "Values": [public["SubnetId"]]}])["RouteTables"]
    assert routed["RouteTableId"] == table_id
    assert {r["DestinationCidrBlock"]: r["State"] for r in routed["Routes"]} == {
        "10.0.0.0/16": "active", "0.0.0.0/0": "active"}

    # What depends on something keeps it.
    dependency = "DependencyViolation"
    fails(dependency, f"The vpc '{vpc_id}' has dependencies and cannot be deleted.", client.delete_vpc, VpcId=vpc_id)
    fails(dependency, f"The internetGateway '{gateway_id}' has dependencies and cannot be deleted.",
          client.delete_internet_gateway, InternetGatewayId=gateway_id)
    fails(dependency, f"The routeTable '{table_id}' has dependencies and cannot be deleted.",
          client.delete_route_table, RouteTableId=table_id)

    # A detached gateway leaves its routes blackholed, as on AWS.
    client.detach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    [routed] = client.describe_route_tables(RouteTableIds=[table_id])["RouteTables"]
    assert {r["DestinationCidrBlock"]: r["State"] for r in routed["Routes"]}["0.0.0.0/0"] == "blackhole"
    fails("Gateway.NotAttached", None, client.detach_internet_gateway, InternetGatewayId=gateway_id, VpcId=vpc_id)
    client.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    fails("Resource.AlreadyAssociated", None, client.attach_internet_gateway, InternetGatewayId=gateway_id,
          VpcId=vpc_id)

    # Routes: duplicates, replacement, the local route, deletion.
    fails("RouteAlreadyExists", "The route identified by 0.0.0.0/0 already exists.", client.create_route,
          RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway_id)
    client.replace_route(RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway_id)
    fails("InvalidRoute.NotFound", f"no route with destination-cidr-block 192.0.2.0/24 in route table {table_id}",
          client.replace_route, RouteTableId=table_id, DestinationCidrBlock="192.0.2.0/24", GatewayId=gateway_id)
    fails("InvalidParameterValue", f"cannot remove local route 10.0.0.0/16 in route table {table_id}",
          client.delete_route, RouteTableId=table_id, DestinationCidrBlock="10.0.0.0/16")
    fails("NatGatewayNotFound", None, client.create_route, RouteTableId=table_id,
          DestinationCidrBlock="198.51.100.0/24", NatGatewayId="nat-0123456789abcdef0")
    fails("MissingParameter", None, client.create_route, RouteTableId=table_id, DestinationCidrBlock="192.0.2.0/24")
    client.delete_route(RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0")

    # Associations move and go; the main one moves too, under a new id.
    replaced = client.replace_route_table_association(AssociationId=association["AssociationId"],
                                                      RouteTableId=main["RouteTableId"])
    [moved] = client.describe_route_tables(Filters=[{"Name": "association.route-table-association-id",
                                                     "Values": [replaced["NewAssociationId"]]}])["RouteTables"]
    assert moved["RouteTableId"] == main["RouteTableId"]
    client.disassociate_route_table(AssociationId=replaced["NewAssociationId"])
    fails("InvalidAssociationID.NotFound", None, client.disassociate_route_table,
          AssociationId=replaced["NewAssociationId"])
    main_association = main["Associations"][0]["RouteTableAssociationId"]
    new_main = client.replace_route_table_association(AssociationId=main_association, RouteTableId=table_id)
    [now_main] = client.describe_route_tables(Filters=[{"Name": "association.main", "Values": ["true"]},
                                                       {"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    assert now_main["RouteTableId"] == table_id
    client.replace_route_table_association(AssociationId=new_main["NewAssociationId"],
                                           RouteTableId=main["RouteTableId"])

    # Taken apart in order, the VPC goes, and its default group and main table with it.
    client.delete_route_table(RouteTableId=table_id)
    client.detach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    client.delete_internet_gateway(InternetGatewayId=gateway_id)
    for subnet in (public, private):
        client.delete_subnet(SubnetId=subnet["SubnetId"])
    client.delete_vpc(VpcId=vpc_id)
    fails("InvalidVpcID.NotFound", f"The vpc ID '{vpc_id}' does not exist", client.describe_vpcs, VpcIds=[vpc_id])
    fails("InvalidGroup.NotFound", None, client.describe_security_groups, GroupIds=[group["GroupId"]])
    fails("InvalidRouteTableID.NotFound", None, client.describe_route_tables, RouteTableIds=[main["RouteTableId"]])


def test_ranges_and_conflicts_are_refused_as_ec2_refuses_them(cloud):
    _, client, _ = cloud
    fails("InvalidVpc.Range", "The CIDR '10.0.0.0/8' is invalid.", client.create_vpc, CidrBlock="10.0.0.0/8")
    fails("InvalidVpc.Range", None, client.create_vpc, CidrBlock="10.0.0.0/29")
    fails("InvalidParameterValue",
          "Value (10.0.0.1/16) for parameter cidrBlock is invalid. This is not a valid CIDR block.",
          client.create_vpc, CidrBlock="10.0.0.1/16")
    fails("InvalidParameterValue", None, client.create_vpc, CidrBlock="not a cidr")
    vpc_id = client.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    try:
        client.create_subnet(VpcId=vpc_id, CidrBlock="10.9.0.0/24")
        fails("InvalidSubnet.Conflict", "The CIDR '10.9.0.128/25' conflicts with another subnet", client.create_subnet,
              VpcId=vpc_id, CidrBlock="10.9.0.128/25")
        fails("InvalidSubnet.Range", "The CIDR '10.8.0.0/24' is invalid.", client.create_subnet, VpcId=vpc_id,
              CidrBlock="10.8.0.0/24")
        fails("InvalidSubnet.Range", None, client.create_subnet, VpcId=vpc_id, CidrBlock="10.9.1.0/29")
        error = fails("InvalidParameterValue", None, client.create_subnet, VpcId=vpc_id, CidrBlock="10.9.1.0/24",
                      AvailabilityZone="us-east-1z")
        assert "Subnets can currently only be created in the following availability zones" in error["Message"]
        fails("InvalidVpcID.NotFound", None, client.create_subnet, VpcId="vpc-0123456789abcdef0",
              CidrBlock="10.9.1.0/24")
        fails("InvalidVpcID.Malformed", None, client.create_subnet, VpcId="bogus", CidrBlock="10.9.1.0/24")
        fails("InvalidRouteTableID.NotFound", "The routeTable ID 'rtb-0123456789abcdef0' does not exist",
              client.describe_route_tables, RouteTableIds=["rtb-0123456789abcdef0"])
        fails("InvalidInternetGatewayID.NotFound", "The internetGateway ID 'igw-0123456789abcdef0' does not exist",
              client.describe_internet_gateways, InternetGatewayIds=["igw-0123456789abcdef0"])
        fails("InvalidParameterValue", None, client.describe_vpcs, Filters=[{"Name": "no-such", "Values": ["x"]}])
        fails("DefaultVpcAlreadyExists", "A Default VPC already exists for this account in this region.",
              client.create_default_vpc)
        fails("DefaultSubnetAlreadyExistsInAvailabilityZone", None, client.create_default_subnet,
              AvailabilityZone="us-east-1a")
    finally:
        for subnet in client.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]:
            client.delete_subnet(SubnetId=subnet["SubnetId"])
        client.delete_vpc(VpcId=vpc_id)


def test_pages_of_vpcs_follow_their_tokens(cloud):
    _, client, _ = cloud
    made = [client.create_vpc(CidrBlock=f"10.{20 + i}.0.0/16")["Vpc"]["VpcId"] for i in range(6)]
    try:
        seen, token = [], None
        while True:
            page = client.describe_vpcs(MaxResults=5, **({"NextToken": token} if token else {}))
            seen += [v["VpcId"] for v in page["Vpcs"]]
            token = page.get("NextToken")
            if not token:
                break
        assert set(made) <= set(seen) and len(seen) == len(set(seen))
    finally:
        for vpc_id in made:
            client.delete_vpc(VpcId=vpc_id)


def test_two_accounts_launch_the_same_address_in_their_own_vpcs(cloud):
    server, client, image_id = cloud
    other = create_account(server, "vpc-neighbour")
    neighbour = ec2_client(server, other.access_key, other.secret_key)
    launched = []
    for who in (client, neighbour):
        vpc_id = who.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet_id = who.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        launched.append((who, vpc_id, subnet_id))
    [(_, vpc_id, subnet_id), (_, other_vpc, other_subnet)] = launched
    # Imported images are public: both accounts launch the same address in their own VPC.
    [instance] = client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                      SubnetId=subnet_id, PrivateIpAddress="10.0.1.10")["Instances"]
    assert (instance["VpcId"], instance["SubnetId"], instance["PrivateIpAddress"]) == (vpc_id, subnet_id, "10.0.1.10")
    [theirs] = neighbour.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                       SubnetId=other_subnet, PrivateIpAddress="10.0.1.10")["Instances"]
    assert (theirs["VpcId"], theirs["PrivateIpAddress"]) == (other_vpc, "10.0.1.10")
    # Without a given address, the lowest free one, in each VPC on its own.
    [lowest] = neighbour.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                       SubnetId=other_subnet)["Instances"]
    assert lowest["PrivateIpAddress"] == "10.0.1.4"
    fails("InvalidIPAddress.InUse", None, client.run_instances, ImageId=image_id, InstanceType="t3.nano",
          MinCount=1, MaxCount=1, SubnetId=subnet_id, PrivateIpAddress="10.0.1.10")
    fails("InvalidSubnetID.NotFound", None, neighbour.run_instances, ImageId=image_id, InstanceType="t3.nano",
          MinCount=1, MaxCount=1, SubnetId=subnet_id)
    [group] = client.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group["GroupId"]], "the VPC's own default group"
    wait_states(client, [instance["InstanceId"]], "running")
    fails("DependencyViolation", None, client.delete_subnet, SubnetId=subnet_id)
    client.terminate_instances(InstanceIds=[instance["InstanceId"]])
    wait_states(client, [instance["InstanceId"]], "terminated")
    again = client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                 SubnetId=subnet_id, PrivateIpAddress="10.0.1.10")["Instances"][0]
    client.terminate_instances(InstanceIds=[again["InstanceId"]])
    wait_states(client, [again["InstanceId"]], "terminated")
    client.delete_subnet(SubnetId=subnet_id)
    client.delete_vpc(VpcId=vpc_id)
    neighbour.terminate_instances(InstanceIds=[theirs["InstanceId"], lowest["InstanceId"]])
    wait_states(neighbour, [theirs["InstanceId"], lowest["InstanceId"]], "terminated")
    neighbour.delete_subnet(SubnetId=other_subnet)
    neighbour.delete_vpc(VpcId=other_vpc)


def test_launching_with_a_network_interface_specification(cloud):
    _, client, image_id = cloud
    vpc_id = client.create_vpc(CidrBlock="10.3.0.0/16")["Vpc"]["VpcId"]
    subnet_id = client.create_subnet(VpcId=vpc_id, CidrBlock="10.3.1.0/24")["Subnet"]["SubnetId"]
    group_id = client.create_security_group(GroupName="eni-spec", Description="d", VpcId=vpc_id)["GroupId"]
    base = dict(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1)
    spec = {"DeviceIndex": 0, "SubnetId": subnet_id, "PrivateIpAddress": "10.3.1.20", "Groups": [group_id]}
    [instance] = client.run_instances(**base, NetworkInterfaces=[spec])["Instances"]
    assert (instance["SubnetId"], instance["PrivateIpAddress"]) == (subnet_id, "10.3.1.20")
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group_id]
    combination = "InvalidParameterCombination"
    fails(combination, "Network interfaces and an instance-level subnet ID may not be specified on the same request",
          client.run_instances, **base, SubnetId=subnet_id, NetworkInterfaces=[{"DeviceIndex": 0}])
    fails(combination, None, client.run_instances, **base, SecurityGroupIds=[group_id],
          NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet_id}])
    fails("InvalidParameterValue", None, client.run_instances, **base,
          NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet_id}, {"DeviceIndex": 0, "SubnetId": subnet_id}])
    client.terminate_instances(InstanceIds=[instance["InstanceId"]])
    wait_states(client, [instance["InstanceId"]], "terminated")
    client.delete_security_group(GroupId=group_id)
    client.delete_subnet(SubnetId=subnet_id)
    client.delete_vpc(VpcId=vpc_id)


def test_deleting_the_default_vpc_and_making_it_again(cloud):
    server, _, image_id = cloud
    account = create_account(server, "vpc-starter")
    client = ec2_client(server, account.access_key, account.secret_key)
    [vpc] = client.describe_vpcs()["Vpcs"]
    vpc_id = vpc["VpcId"]
    for subnet in client.describe_subnets()["Subnets"]:
        client.delete_subnet(SubnetId=subnet["SubnetId"])
    [gateway] = client.describe_internet_gateways()["InternetGateways"]
    client.detach_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"], VpcId=vpc_id)
    client.delete_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"])
    client.delete_vpc(VpcId=vpc_id)
    assert client.describe_vpcs()["Vpcs"] == []
    fails("VPCIdNotSpecified", None, client.run_instances, ImageId=image_id, InstanceType="t3.nano", MinCount=1,
          MaxCount=1)
    made = client.create_default_vpc()["Vpc"]
    assert made["IsDefault"] and made["CidrBlock"] == "172.31.0.0/16" and made["VpcId"] != vpc_id
    assert {s["VpcId"] for s in client.describe_subnets()["Subnets"]} == {made["VpcId"]}
    fails("DefaultVpcAlreadyExists", None, client.create_default_vpc)


def test_elastic_ips(cloud):
    server, client, image_id = cloud
    vpc_id = client.create_vpc(CidrBlock="10.4.0.0/16")["Vpc"]["VpcId"]
    subnet_id = client.create_subnet(VpcId=vpc_id, CidrBlock="10.4.1.0/24")["Subnet"]["SubnetId"]
    [instance] = client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                      SubnetId=subnet_id)["Instances"]
    instance_id, eni = instance["InstanceId"], instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    allocated = client.allocate_address(Domain="vpc", TagSpecifications=[
        {"ResourceType": "elastic-ip", "Tags": [{"Key": "Name", "Value": "web"}]}])
    allocation, public_ip = allocated["AllocationId"], allocated["PublicIp"]
    assert public_ip.startswith("198.51.100.") and allocated["Domain"] == "vpc"
    # No internet gateway in the VPC: no public address, as on EC2.
    fails("Gateway.NotAttached", f"Network {vpc_id} is not attached to any internet gateway", client.associate_address,
          AllocationId=allocation, InstanceId=instance_id)
    gateway = client.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    client.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc_id)
    association = client.associate_address(AllocationId=allocation, InstanceId=instance_id)["AssociationId"]
    [shown] = client.describe_addresses(AllocationIds=[allocation])["Addresses"]
    assert (shown["AssociationId"], shown["InstanceId"], shown["NetworkInterfaceId"], shown["PrivateIpAddress"]) == (
        association, instance_id, eni, instance["PrivateIpAddress"])
    assert tags(shown) == {"Name": "web"}
    [by_filter] = client.describe_addresses(Filters=[{"Name": "instance-id", "Values": [instance_id]}])["Addresses"]
    assert by_filter["PublicIp"] == public_ip
    described = client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert described["PublicIpAddress"] == public_ip
    assert described["PublicDnsName"] == f"ec2-{public_ip.replace('.', '-')}.compute-1.amazonaws.com"
    interface = client.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    assert interface["Association"]["PublicIp"] == public_ip and interface["Association"]["AllocationId"] == allocation

    # What depends on the address keeps it. Another address for the same interface takes its
    # place (the first stays the account's); moving an associated address needs
    # AllowReassociation.
    fails("InvalidIPAddress.InUse", None, client.release_address, AllocationId=allocation)
    fails("DependencyViolation", None, client.detach_internet_gateway, InternetGatewayId=gateway, VpcId=vpc_id)
    second = client.allocate_address(Domain="vpc")
    client.associate_address(AllocationId=second["AllocationId"], NetworkInterfaceId=eni)
    assert "AssociationId" not in client.describe_addresses(AllocationIds=[allocation])["Addresses"][0]
    [other] = client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                   SubnetId=subnet_id)["Instances"]
    fails("Resource.AlreadyAssociated", None, client.associate_address, AllocationId=second["AllocationId"],
          InstanceId=other["InstanceId"])
    client.terminate_instances(InstanceIds=[other["InstanceId"]])
    fails("InvalidAssociationID.NotFound", None, client.disassociate_address, AssociationId=association)
    fails("InvalidAllocationID.NotFound", "The allocation ID 'eipalloc-0123456789abcdef0' does not exist",
          client.describe_addresses, AllocationIds=["eipalloc-0123456789abcdef0"])
    fails("InvalidAddress.NotFound", None, client.describe_addresses, PublicIps=["198.51.100.250"])
    assert client.describe_addresses_attribute(AllocationIds=[allocation], Attribute="domain-name")["Addresses"][0][
        "PublicIp"] == public_ip
    # A chosen address would tell whether another account holds it: addresses come from the pool.
    fails("UnsupportedOperation", None, client.allocate_address, Domain="vpc", Address=public_ip)

    # The instance goes: its address stays allocated, unassociated.
    client.terminate_instances(InstanceIds=[instance_id])
    wait_states(client, [instance_id], "terminated")
    assert "AssociationId" not in client.describe_addresses(AllocationIds=[second["AllocationId"]])["Addresses"][0]
    for allocation_id in (allocation, second["AllocationId"]):
        client.release_address(AllocationId=allocation_id)
    assert client.describe_addresses(Filters=[{"Name": "public-ip", "Values": [public_ip]}])["Addresses"] == []
    again = client.allocate_address(Domain="vpc")
    assert again["PublicIp"] == public_ip, "the lowest free address again"
    client.release_address(PublicIp=again["PublicIp"])
    delete_vpc(client, vpc_id, gateway, subnets=[subnet_id])


def test_nat_gateways(cloud):
    _, client, _ = cloud
    vpc_id = client.create_vpc(CidrBlock="10.5.0.0/16")["Vpc"]["VpcId"]
    public = client.create_subnet(VpcId=vpc_id, CidrBlock="10.5.1.0/24")["Subnet"]["SubnetId"]
    private = client.create_subnet(VpcId=vpc_id, CidrBlock="10.5.2.0/24")["Subnet"]["SubnetId"]
    allocation = client.allocate_address(Domain="vpc")
    fails("Gateway.NotAttached", None, client.create_nat_gateway, SubnetId=public,
          AllocationId=allocation["AllocationId"])
    gateway = client.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    client.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc_id)
    token = "nat-token-1"
    nat = client.create_nat_gateway(SubnetId=public, AllocationId=allocation["AllocationId"], ClientToken=token,
                                    TagSpecifications=[{"ResourceType": "natgateway",
                                                        "Tags": [{"Key": "Name", "Value": "out"}]}])["NatGateway"]
    nat_id = nat["NatGatewayId"]
    [address] = nat["NatGatewayAddresses"]
    assert (nat["State"], nat["VpcId"], address["PublicIp"]) == ("available", vpc_id, allocation["PublicIp"])
    assert address["PrivateIp"] == "10.5.1.4", "the subnet's lowest free address, leased as an instance's"
    again = client.create_nat_gateway(SubnetId=public, AllocationId=allocation["AllocationId"], ClientToken=token)
    assert again["NatGateway"]["NatGatewayId"] == nat_id, "a retry with the token makes no second gateway"
    [shown] = client.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NatGateways"]
    assert shown["NatGatewayId"] == nat_id and tags(shown) == {"Name": "out"}
    [eip] = client.describe_addresses(AllocationIds=[allocation["AllocationId"]])["Addresses"]
    assert eip["NetworkInterfaceId"] == address["NetworkInterfaceId"] and "InstanceId" not in eip
    table = client.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    client.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat_id)
    client.associate_route_table(RouteTableId=table, SubnetId=private)
    [routed] = client.describe_route_tables(RouteTableIds=[table])["RouteTables"]
    route = next(r for r in routed["Routes"] if r["DestinationCidrBlock"] == "0.0.0.0/0")
    assert (route["NatGatewayId"], route["State"]) == (nat_id, "active")
    fails("DependencyViolation", None, client.delete_subnet, SubnetId=public)
    fails("InvalidIPAddress.InUse", None, client.release_address, AllocationId=allocation["AllocationId"])
    fails("NatGatewayNotFound", None, client.describe_nat_gateways, NatGatewayIds=["nat-0123456789abcdef0"])
    assert client.delete_nat_gateway(NatGatewayId=nat_id)["NatGatewayId"] == nat_id
    [routed] = client.describe_route_tables(RouteTableIds=[table])["RouteTables"]
    assert next(r for r in routed["Routes"] if r["DestinationCidrBlock"] == "0.0.0.0/0")["State"] == "blackhole"
    client.release_address(AllocationId=allocation["AllocationId"])
    client.disassociate_route_table(AssociationId=routed["Associations"][0]["RouteTableAssociationId"])
    client.delete_route_table(RouteTableId=table)
    delete_vpc(client, vpc_id, gateway, subnets=[public, private])


def test_public_addresses_at_launch(cloud):
    _, client, image_id = cloud
    vpc_id = client.create_vpc(CidrBlock="10.6.0.0/16")["Vpc"]["VpcId"]
    subnet = client.create_subnet(VpcId=vpc_id, CidrBlock="10.6.1.0/24")["Subnet"]["SubnetId"]
    client.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
    base = dict(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1)
    [mapped] = client.run_instances(**base, SubnetId=subnet)["Instances"]
    public_ip = mapped.get("PublicIpAddress")
    assert public_ip and public_ip.startswith("198.51.100."), mapped
    assert mapped["PublicDnsName"] == f"ec2-{public_ip.replace('.', '-')}.compute-1.amazonaws.com"
    [declined] = client.run_instances(**base, NetworkInterfaces=[
        {"DeviceIndex": 0, "SubnetId": subnet, "AssociatePublicIpAddress": False}])["Instances"]
    assert "PublicIpAddress" not in declined
    assert all(a["PublicIp"] != public_ip for a in client.describe_addresses()["Addresses"]), "not an Elastic IP"
    # The default VPC's default subnets map public addresses, as on AWS.
    [default] = client.run_instances(**base)["Instances"]
    assert default.get("PublicIpAddress", "").startswith("198.51.100."), default
    ids = [mapped["InstanceId"], declined["InstanceId"], default["InstanceId"]]
    client.terminate_instances(InstanceIds=ids)
    wait_states(client, ids, "terminated")
    # Its address went back to the pool: the next allocation may take it.
    allocations = [client.allocate_address(Domain="vpc") for _ in range(3)]
    assert public_ip in [a["PublicIp"] for a in allocations]
    for allocation in allocations:
        client.release_address(AllocationId=allocation["AllocationId"])
    client.delete_subnet(SubnetId=subnet)
    client.delete_vpc(VpcId=vpc_id)


def test_what_a_vpc_may_not_hold(cloud):
    """Public-pool and link-local blocks are no VPC's; a group names only groups of its own VPC;
    routes through guests are refused; a NAT gateway's address stays with it."""
    server, client, _ = cloud
    public = server.public_cidr
    fails("InvalidVpc.Range", f"The CIDR '{public}' is invalid.", client.create_vpc, CidrBlock=public)
    fails("InvalidVpc.Range", None, client.create_vpc, CidrBlock="169.254.0.0/16")
    vpc_id = client.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnet = client.create_subnet(VpcId=vpc_id, CidrBlock="10.7.1.0/24")["Subnet"]["SubnetId"]
    mine = client.create_security_group(GroupName="own-vpc", Description="d", VpcId=vpc_id)["GroupId"]
    elsewhere = client.create_security_group(GroupName="default-vpc", Description="d")["GroupId"]
    error = fails("InvalidParameterValue", None, client.authorize_security_group_ingress, GroupId=mine, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "UserIdGroupPairs": [{"GroupId": elsewhere}]}])
    assert "different networks" in error["Message"]
    table = client.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    gateway = client.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    client.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc_id)
    fails("InvalidParameterValue", None, client.replace_route, RouteTableId=table, DestinationCidrBlock="10.7.0.0/16",
          GatewayId=gateway)
    client.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
    fails("InvalidParameterValue", None, client.replace_route, RouteTableId=table, DestinationCidrBlock="0.0.0.0/0",
          LocalTarget=True)
    allocation = client.allocate_address(Domain="vpc")
    nat = client.create_nat_gateway(SubnetId=subnet, AllocationId=allocation["AllocationId"])["NatGateway"]
    association = client.describe_addresses(AllocationIds=[allocation["AllocationId"]])["Addresses"][0]["AssociationId"]
    fails("InvalidIPAddress.InUse", None, client.disassociate_address, AssociationId=association)
    # Only Elastic IPs answer to their address: the NAT gateway's router address does not.
    [eni] = [a["NetworkInterfaceId"] for a in nat["NatGatewayAddresses"]]
    assert eni.startswith("eni-")
    client.delete_nat_gateway(NatGatewayId=nat["NatGatewayId"])
    client.release_address(AllocationId=allocation["AllocationId"])
    client.delete_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0")
    client.delete_route_table(RouteTableId=table)
    delete_vpc(client, vpc_id, gateway, subnets=[subnet], groups=[mine, elsewhere])


def wait_attachment(client, eni_id: str, wanted: str | None, timeout: float = 30.0) -> dict:
    """Polls DescribeNetworkInterfaces until the interface's attachment is `wanted` (`None`:
    detached)."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        [eni] = client.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"]
        state = eni.get("Attachment", {}).get("Status")
        if state == wanted:
            return eni
        assert time.monotonic() < deadline, f"{eni_id}: attachment {state}, not {wanted}"
        time.sleep(0.2)


def test_network_interfaces_of_their_own(cloud):
    server, client, image_id = cloud
    vpc_id = client.create_vpc(CidrBlock="10.6.0.0/16")["Vpc"]["VpcId"]
    subnet_id = client.create_subnet(VpcId=vpc_id, CidrBlock="10.6.1.0/24")["Subnet"]["SubnetId"]
    other_subnet = client.create_subnet(VpcId=vpc_id, CidrBlock="10.6.2.0/24")["Subnet"]["SubnetId"]
    web = client.create_security_group(GroupName="eni-web", Description="d", VpcId=vpc_id)["GroupId"]
    [default_group] = client.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]

    # Create: a given address, secondary ones by value and by count, the VPC's default group.
    eni = client.create_network_interface(
        SubnetId=subnet_id, PrivateIpAddress="10.6.1.50", Description="second leg",
        PrivateIpAddresses=[{"PrivateIpAddress": "10.6.1.51", "Primary": False}], SecondaryPrivateIpAddressCount=1,
        TagSpecifications=[{"ResourceType": "network-interface", "Tags": [{"Key": "role", "Value": "leg"}]}],
    )["NetworkInterface"]
    eni_id = eni["NetworkInterfaceId"]
    assert (eni["Status"], eni["SubnetId"], eni["VpcId"], eni["PrivateIpAddress"]) == (
        "available", subnet_id, vpc_id, "10.6.1.50")
    assert [(a["PrivateIpAddress"], a["Primary"]) for a in eni["PrivateIpAddresses"]] == [
        ("10.6.1.50", True), ("10.6.1.51", False), ("10.6.1.4", False)]
    assert [g["GroupId"] for g in eni["Groups"]] == [default_group["GroupId"]]
    assert (eni["Description"], eni["SourceDestCheck"], eni["InterfaceType"]) == ("second leg", True, "interface")
    assert eni["TagSet"] == [{"Key": "role", "Value": "leg"}]
    assert "Attachment" not in eni
    # Its addresses are the subnet's: no instance gets them.
    base = dict(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1)
    fails("InvalidIPAddress.InUse", None, client.run_instances, **base, SubnetId=subnet_id,
          PrivateIpAddress="10.6.1.51")
    fails("InvalidIPAddress.InUse", None, client.create_network_interface, SubnetId=subnet_id,
          PrivateIpAddress="10.6.1.4")
    # A retry with its client token answers the same interface.
    first = client.create_network_interface(SubnetId=other_subnet, ClientToken="eni-token-1")["NetworkInterface"]
    again = client.create_network_interface(SubnetId=other_subnet, ClientToken="eni-token-1")["NetworkInterface"]
    assert first["NetworkInterfaceId"] == again["NetworkInterfaceId"]
    fails("IdempotentParameterMismatch", None, client.create_network_interface, SubnetId=subnet_id,
          ClientToken="eni-token-1")

    # Described with the instances' own interfaces, by id, filter and page.
    [instance] = client.run_instances(**base, SubnetId=subnet_id, PrivateIpAddress="10.6.1.10")["Instances"]
    instance_id = instance["InstanceId"]
    wait_states(client, [instance_id], "running")
    in_vpc = client.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NetworkInterfaces"]
    assert {e["NetworkInterfaceId"] for e in in_vpc} == {
        eni_id, first["NetworkInterfaceId"], instance["NetworkInterfaces"][0]["NetworkInterfaceId"]}
    assert [e["NetworkInterfaceId"] for e in client.describe_network_interfaces(
        Filters=[{"Name": "status", "Values": ["available"]}, {"Name": "vpc-id", "Values": [vpc_id]}])[
        "NetworkInterfaces"]] == sorted([eni_id, first["NetworkInterfaceId"]])
    assert [e["NetworkInterfaceId"] for e in client.describe_network_interfaces(
        Filters=[{"Name": "addresses.private-ip-address", "Values": ["10.6.1.51"]}])["NetworkInterfaces"]] == [eni_id]
    assert [e["NetworkInterfaceId"] for e in client.describe_network_interfaces(
        Filters=[{"Name": "tag:role", "Values": ["leg"]}])["NetworkInterfaces"]] == [eni_id]
    pages = client.get_paginator("describe_network_interfaces").paginate(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}], PaginationConfig={"PageSize": 5})
    assert sum(len(p["NetworkInterfaces"]) for p in pages) == 3

    # Attach at device index 1: attaching, then attached; shown on the instance too.
    fails("InvalidParameterValue", f"Instance '{instance_id}' already has an interface attached at device index '0'.",
          client.attach_network_interface, NetworkInterfaceId=eni_id, InstanceId=instance_id, DeviceIndex=0)
    attachment_id = client.attach_network_interface(NetworkInterfaceId=eni_id, InstanceId=instance_id,
                                                     DeviceIndex=1)["AttachmentId"]
    assert attachment_id.startswith("eni-attach-")
    attached = wait_attachment(client, eni_id, "attached")
    assert (attached["Status"], attached["Attachment"]["InstanceId"], attached["Attachment"]["DeviceIndex"],
            attached["Attachment"]["DeleteOnTermination"]) == ("in-use", instance_id, 1, False)
    shown = client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert [(n["NetworkInterfaceId"], n["Attachment"]["DeviceIndex"]) for n in shown["NetworkInterfaces"]] == [
        (instance["NetworkInterfaces"][0]["NetworkInterfaceId"], 0), (eni_id, 1)]
    # DescribeInstances finds the instance by the interfaces attached to it as well.
    for name, value in [("network-interface.network-interface-id", eni_id),
                        ("network-interface.addresses.private-ip-address", "10.6.1.51"),
                        ("network-interface.attachment.device-index", "1"),
                        ("network-interface.attachment.attachment-id", attachment_id)]:
        reservations = client.describe_instances(Filters=[{"Name": name, "Values": [value]}])["Reservations"]
        assert [i["InstanceId"] for r in reservations for i in r["Instances"]] == [instance_id], name
    # Routes through a guest: to the attached interface (shown with its instance) and to the
    # instance (shown with its primary interface); another VPC's interface is refused.
    through = client.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    client.create_route(RouteTableId=through, DestinationCidrBlock="192.168.50.0/24", NetworkInterfaceId=eni_id)
    client.create_route(RouteTableId=through, DestinationCidrBlock="192.168.60.0/24", InstanceId=instance_id)
    elsewhere = client.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    elsewhere_subnet = client.create_subnet(VpcId=elsewhere, CidrBlock="10.7.1.0/24")["Subnet"]["SubnetId"]
    stray = client.create_network_interface(SubnetId=elsewhere_subnet)["NetworkInterface"]["NetworkInterfaceId"]
    fails("InvalidParameterValue", None, client.create_route, RouteTableId=through,
          DestinationCidrBlock="192.168.70.0/24", NetworkInterfaceId=stray)
    # Only what leaves the VPC goes through a guest here.
    fails("UnsupportedOperation", None, client.create_route, RouteTableId=through,
          DestinationCidrBlock="10.6.9.0/24", NetworkInterfaceId=eni_id)

    def routes_through():
        [table] = client.describe_route_tables(RouteTableIds=[through])["RouteTables"]
        return {r["DestinationCidrBlock"]: (r["State"], r.get("InstanceId"), r.get("NetworkInterfaceId"))
                for r in table["Routes"] if r["DestinationCidrBlock"].startswith("192.168.")}

    assert routes_through() == {
        "192.168.50.0/24": ("active", instance_id, eni_id),
        "192.168.60.0/24": ("active", instance_id, instance["NetworkInterfaces"][0]["NetworkInterfaceId"])}
    assert [t["RouteTableId"] for t in client.describe_route_tables(
        Filters=[{"Name": "route.instance-id", "Values": [instance_id]}])["RouteTables"]] == [through]
    # An Elastic IP on the interface's secondary address: shown there, and on the instance it is
    # attached to.
    igw = client.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    client.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    eip = client.allocate_address(Domain="vpc")
    client.associate_address(AllocationId=eip["AllocationId"], NetworkInterfaceId=eni_id, PrivateIpAddress="10.6.1.51")
    [address] = client.describe_addresses(AllocationIds=[eip["AllocationId"]])["Addresses"]
    assert (address["NetworkInterfaceId"], address["PrivateIpAddress"], address["InstanceId"]) == (
        eni_id, "10.6.1.51", instance_id)
    [with_eip] = client.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"]
    mapped = {a["PrivateIpAddress"]: a.get("Association", {}).get("PublicIp") for a in with_eip["PrivateIpAddresses"]}
    assert mapped == {"10.6.1.50": None, "10.6.1.51": eip["PublicIp"], "10.6.1.4": None}
    fails("InvalidParameterValue", None, client.associate_address, AllocationId=eip["AllocationId"],
          NetworkInterfaceId=eni_id, PrivateIpAddress="10.6.1.99", AllowReassociation=True)
    fails("InvalidNetworkInterface.InUse", None, client.attach_network_interface, NetworkInterfaceId=eni_id,
          InstanceId=instance_id, DeviceIndex=2)
    fails("InvalidNetworkInterface.InUse", None, client.delete_network_interface, NetworkInterfaceId=eni_id)
    fails("DependencyViolation", None, client.delete_subnet, SubnetId=other_subnet)

    # Attributes: one per call.
    client.modify_network_interface_attribute(NetworkInterfaceId=eni_id, Groups=[web])
    client.modify_network_interface_attribute(NetworkInterfaceId=eni_id, SourceDestCheck={"Value": False})
    client.modify_network_interface_attribute(NetworkInterfaceId=eni_id, Description={"Value": "router leg"})
    client.modify_network_interface_attribute(NetworkInterfaceId=eni_id, Attachment={
        "AttachmentId": attachment_id, "DeleteOnTermination": True})
    fails("InvalidParameterCombination", None, client.modify_network_interface_attribute,
          NetworkInterfaceId=eni_id, Groups=[web], Description={"Value": "x"})
    described = client.describe_network_interface_attribute(NetworkInterfaceId=eni_id, Attribute="groupSet")
    assert described["Groups"] == [{"GroupId": web, "GroupName": "eni-web"}]
    assert client.describe_network_interface_attribute(
        NetworkInterfaceId=eni_id, Attribute="sourceDestCheck")["SourceDestCheck"] == {"Value": False}
    assert client.describe_network_interface_attribute(
        NetworkInterfaceId=eni_id, Attribute="description")["Description"] == {"Value": "router leg"}
    assert client.describe_network_interface_attribute(
        NetworkInterfaceId=eni_id, Attribute="attachment")["Attachment"]["DeleteOnTermination"] is True
    fails("DependencyViolation", None, client.delete_security_group, GroupId=web)

    # Secondary addresses: by value, by count, given back.
    assigned = client.assign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=["10.6.1.60"])
    assert [a["PrivateIpAddress"] for a in assigned["AssignedPrivateIpAddresses"]] == ["10.6.1.60"]
    counted = client.assign_private_ip_addresses(NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=1)
    assert [a["PrivateIpAddress"] for a in counted["AssignedPrivateIpAddresses"]] == ["10.6.1.5"]
    fails("InvalidIPAddress.InUse", None, client.assign_private_ip_addresses, NetworkInterfaceId=eni_id,
          PrivateIpAddresses=["10.6.1.10"])
    client.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=["10.6.1.60", "10.6.1.5"])
    fails("InvalidParameterValue", None, client.unassign_private_ip_addresses, NetworkInterfaceId=eni_id,
          PrivateIpAddresses=["10.6.1.50"])
    [now] = client.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"]
    assert [a["PrivateIpAddress"] for a in now["PrivateIpAddresses"]] == ["10.6.1.50", "10.6.1.51", "10.6.1.4"]
    assert now["SourceDestCheck"] is False and now["Description"] == "router leg"

    # The instance's own interface: groups change, it is not detached or deleted.
    primary = instance["NetworkInterfaces"][0]
    client.modify_network_interface_attribute(NetworkInterfaceId=primary["NetworkInterfaceId"], Groups=[web])
    shown = client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert [g["GroupId"] for g in shown["SecurityGroups"]] == [web]
    # Its source/destination check (a routing instance's), through the instance or the interface.
    client.modify_instance_attribute(InstanceId=instance_id, SourceDestCheck={"Value": False})
    shown = client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert shown["SourceDestCheck"] is False and shown["NetworkInterfaces"][0]["SourceDestCheck"] is False
    assert client.describe_instance_attribute(InstanceId=instance_id, Attribute="sourceDestCheck")[
        "SourceDestCheck"] == {"Value": False}
    client.modify_network_interface_attribute(NetworkInterfaceId=primary["NetworkInterfaceId"],
                                              SourceDestCheck={"Value": True})
    [again] = client.describe_network_interfaces(NetworkInterfaceIds=[primary["NetworkInterfaceId"]])[
        "NetworkInterfaces"]
    assert again["SourceDestCheck"] is True
    fails("OperationNotPermitted", None, client.detach_network_interface,
          AttachmentId=primary["Attachment"]["AttachmentId"])
    fails("InvalidNetworkInterface.InUse", None, client.delete_network_interface,
          NetworkInterfaceId=primary["NetworkInterfaceId"])
    fails("InvalidAttachmentID.NotFound", None, client.detach_network_interface, AttachmentId="eni-attach-0123abcd")

    # Detach: detaching, then available again; attach again, then the instance's end takes
    # it along (DeleteOnTermination).
    client.detach_network_interface(AttachmentId=attachment_id)
    detached = wait_attachment(client, eni_id, None)
    assert detached["Status"] == "available"
    # Asked for by its id, the ended attachment shows as detached (what Terraform waits for).
    [ended] = client.describe_network_interfaces(
        Filters=[{"Name": "attachment.attachment-id", "Values": [attachment_id]}])["NetworkInterfaces"]
    assert (ended["NetworkInterfaceId"], ended["Attachment"]["Status"], ended["Status"]) == (
        eni_id, "detached", "available")
    assert routes_through()["192.168.50.0/24"] == ("blackhole", None, eni_id), "a detached interface leads nowhere"
    client.delete_route_table(RouteTableId=through)
    client.delete_network_interface(NetworkInterfaceId=stray)
    client.delete_subnet(SubnetId=elsewhere_subnet)
    client.delete_vpc(VpcId=elsewhere)
    client.attach_network_interface(NetworkInterfaceId=eni_id, InstanceId=instance_id, DeviceIndex=1)
    wait_attachment(client, eni_id, "attached")
    keep = client.attach_network_interface(NetworkInterfaceId=first["NetworkInterfaceId"], InstanceId=instance_id,
                                           DeviceIndex=2)["AttachmentId"]
    wait_attachment(client, first["NetworkInterfaceId"], "attached")
    client.modify_network_interface_attribute(NetworkInterfaceId=eni_id, Attachment={
        "AttachmentId": wait_attachment(client, eni_id, "attached")["Attachment"]["AttachmentId"],
        "DeleteOnTermination": True})
    assert keep.startswith("eni-attach-")
    client.terminate_instances(InstanceIds=[instance_id])
    wait_states(client, [instance_id], "terminated")
    fails("InvalidNetworkInterfaceID.NotFound", None, client.describe_network_interfaces, NetworkInterfaceIds=[eni_id])
    survivor = wait_attachment(client, first["NetworkInterfaceId"], None)
    assert survivor["Status"] == "available"
    # Its addresses went back: the next interface may take them.
    reused = client.create_network_interface(SubnetId=subnet_id, PrivateIpAddress="10.6.1.51")["NetworkInterface"]
    for gone in (reused, survivor):
        client.delete_network_interface(NetworkInterfaceId=gone["NetworkInterfaceId"])
    fails("InvalidNetworkInterfaceID.NotFound", None, client.delete_network_interface,
          NetworkInterfaceId=survivor["NetworkInterfaceId"])
    fails("InvalidNetworkInterfaceID.Malformed", None, client.delete_network_interface, NetworkInterfaceId="eni-zz")
    # The interface went with its instance, and its Elastic IP's association with it.
    assert "AssociationId" not in client.describe_addresses(AllocationIds=[eip["AllocationId"]])["Addresses"][0]
    client.release_address(AllocationId=eip["AllocationId"])
    client.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    client.delete_internet_gateway(InternetGatewayId=igw)
    client.delete_security_group(GroupId=web)
    for subnet in (subnet_id, other_subnet):
        client.delete_subnet(SubnetId=subnet)
    client.delete_vpc(VpcId=vpc_id)


def test_network_interfaces_stay_in_their_account(cloud):
    server, client, image_id = cloud
    other = create_account(server, "eni-neighbour")
    neighbour = ec2_client(server, other.access_key, other.secret_key)
    vpc_id = client.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnet_id = client.create_subnet(VpcId=vpc_id, CidrBlock="10.7.1.0/24")["Subnet"]["SubnetId"]
    eni_id = client.create_network_interface(SubnetId=subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
    their_vpc = neighbour.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    their_subnet = neighbour.create_subnet(VpcId=their_vpc, CidrBlock="10.7.1.0/24")["Subnet"]["SubnetId"]
    [theirs] = neighbour.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                       SubnetId=their_subnet)["Instances"]
    # The same address in the neighbour's own VPC is theirs to take.
    assert theirs["PrivateIpAddress"] == "10.7.1.4"
    missing = f"The networkInterface ID '{eni_id}' does not exist"
    fails("InvalidNetworkInterfaceID.NotFound", missing, neighbour.describe_network_interfaces,
          NetworkInterfaceIds=[eni_id])
    assert neighbour.describe_network_interfaces(
        Filters=[{"Name": "network-interface-id", "Values": [eni_id]}])["NetworkInterfaces"] == []
    fails("InvalidNetworkInterfaceID.NotFound", missing, neighbour.attach_network_interface,
          NetworkInterfaceId=eni_id, InstanceId=theirs["InstanceId"], DeviceIndex=1)
    fails("InvalidNetworkInterfaceID.NotFound", missing, neighbour.delete_network_interface, NetworkInterfaceId=eni_id)
    fails("InvalidSubnetID.NotFound", None, neighbour.create_network_interface, SubnetId=subnet_id)
    # Nor may an interface of one VPC go onto an instance of another.
    wait_states(neighbour, [theirs["InstanceId"]], "running")
    foreign = neighbour.create_network_interface(SubnetId=their_subnet)["NetworkInterface"]["NetworkInterfaceId"]
    fails("InvalidInstanceID.NotFound", None, client.attach_network_interface, NetworkInterfaceId=eni_id,
          InstanceId=theirs["InstanceId"], DeviceIndex=1)
    neighbour.terminate_instances(InstanceIds=[theirs["InstanceId"]])
    wait_states(neighbour, [theirs["InstanceId"]], "terminated")
    neighbour.delete_network_interface(NetworkInterfaceId=foreign)
    neighbour.delete_subnet(SubnetId=their_subnet)
    neighbour.delete_vpc(VpcId=their_vpc)
    client.delete_network_interface(NetworkInterfaceId=eni_id)
    client.delete_subnet(SubnetId=subnet_id)
    client.delete_vpc(VpcId=vpc_id)


def test_instances_launch_with_further_interfaces(cloud):
    """RunInstances with `NetworkInterface.N` at device indexes 1 and up: a new interface in
    another subnet of the VPC and zone (its address, secondary addresses, description, tags,
    gone with the instance) and an available one of the account's (kept), attached in the
    launch's own transaction; what cannot be done fails whole, leaving nothing behind."""
    server, client, image_id = cloud
    vpc_id = client.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    front = client.create_subnet(VpcId=vpc_id, CidrBlock="10.8.1.0/24")["Subnet"]
    back = client.create_subnet(VpcId=vpc_id, CidrBlock="10.8.2.0/24",
                                AvailabilityZone=front["AvailabilityZone"])["Subnet"]["SubnetId"]
    web = client.create_security_group(GroupName="multi-web", Description="d", VpcId=vpc_id)["GroupId"]
    spare = client.create_network_interface(SubnetId=back, PrivateIpAddress="10.8.2.30")["NetworkInterface"][
        "NetworkInterfaceId"]
    base = dict(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1)
    primary = {"DeviceIndex": 0, "SubnetId": front["SubnetId"], "PrivateIpAddress": "10.8.1.10", "Groups": [web]}

    def interfaces_in_vpc() -> list[str]:
        return sorted(e["NetworkInterfaceId"] for e in client.describe_network_interfaces(
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NetworkInterfaces"])

    # What cannot be done fails before anything is made.
    before = interfaces_in_vpc()
    fails("MissingParameter", None, client.run_instances, **base,
          NetworkInterfaces=[primary, {"SubnetId": back}])
    fails("InvalidParameterCombination", None, client.run_instances, **base,
          NetworkInterfaces=[{**primary, "AssociatePublicIpAddress": True}, {"DeviceIndex": 1, "SubnetId": back}])
    fails("InvalidParameterCombination", None, client.run_instances, **base,
          NetworkInterfaces=[primary, {"DeviceIndex": 1, "NetworkInterfaceId": spare, "SubnetId": back}])
    fails("InvalidParameterValue", None, client.run_instances, **{**base, "MaxCount": 2},
          NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": front["SubnetId"]},
                             {"DeviceIndex": 1, "NetworkInterfaceId": spare}])
    fails("InvalidParameterValue", None, client.run_instances, **base,
          NetworkInterfaces=[primary, {"DeviceIndex": 1, "SubnetId": cloud_default_subnet(client)}])
    fails("AttachmentLimitExceeded", None, client.run_instances, **base,
          NetworkInterfaces=[primary, {"DeviceIndex": 8, "SubnetId": back}])
    # An address already held fails the launch in its transaction: no instance, no interface.
    fails("InvalidIPAddress.InUse", None, client.run_instances, **base,
          NetworkInterfaces=[primary, {"DeviceIndex": 1, "SubnetId": back, "PrivateIpAddress": "10.8.2.30"}])
    assert interfaces_in_vpc() == before, "a failed launch left an interface behind"

    [instance] = client.run_instances(**base, NetworkInterfaces=[
        primary,
        {"DeviceIndex": 1, "SubnetId": back, "PrivateIpAddress": "10.8.2.20", "Description": "backend leg",
         "SecondaryPrivateIpAddressCount": 1},
        {"DeviceIndex": 2, "NetworkInterfaceId": spare}],
        TagSpecifications=[{"ResourceType": "network-interface", "Tags": [{"Key": "role", "Value": "multi"}]}],
    )["Instances"]
    instance_id = instance["InstanceId"]
    assert sorted(n["Attachment"]["DeviceIndex"] for n in instance["NetworkInterfaces"]) == [0, 1, 2]
    wait_states(client, [instance_id], "running")
    shown = client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    nics = {n["Attachment"]["DeviceIndex"]: n for n in shown["NetworkInterfaces"]}
    assert nics[0]["PrivateIpAddress"] == "10.8.1.10" and shown["SubnetId"] == front["SubnetId"]
    made = nics[1]["NetworkInterfaceId"]
    assert (nics[1]["PrivateIpAddress"], nics[1]["SubnetId"], nics[1]["Description"],
            nics[1]["Attachment"]["DeleteOnTermination"], len(nics[1]["PrivateIpAddresses"])) == (
        "10.8.2.20", back, "backend leg", True, 2)
    assert (nics[2]["NetworkInterfaceId"], nics[2]["Attachment"]["DeleteOnTermination"]) == (spare, False)
    for eni in (made, spare):
        assert wait_attachment(client, eni, "attached")["Attachment"]["InstanceId"] == instance_id
    [tagged] = client.describe_network_interfaces(NetworkInterfaceIds=[made])["NetworkInterfaces"]
    assert {t["Key"]: t["Value"] for t in tagged["TagSet"]} == {"role": "multi"}
    # An interface in use cannot go to another launch.
    fails("InvalidNetworkInterface.InUse", None, client.run_instances, **base,
          NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": front["SubnetId"]},
                             {"DeviceIndex": 1, "NetworkInterfaceId": spare}])

    # The one made with the instance goes with it; the account's own stays, available.
    client.terminate_instances(InstanceIds=[instance_id])
    wait_states(client, [instance_id], "terminated")
    fails("InvalidNetworkInterfaceID.NotFound", None, client.describe_network_interfaces, NetworkInterfaceIds=[made])
    assert wait_attachment(client, spare, None)["Status"] == "available"
    client.delete_network_interface(NetworkInterfaceId=spare)


def cloud_default_subnet(client) -> str:
    """A default subnet: of the default VPC, another VPC than the tests' own."""
    return client.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]["SubnetId"]


def private_addresses(interface: dict) -> list[tuple[str, bool]]:
    return [(a["PrivateIpAddress"], a["Primary"]) for a in interface["PrivateIpAddresses"]]


def test_secondary_addresses_of_an_instance_s_primary_interface(cloud):
    """An instance's own interface holds secondary addresses as EC2's does: given at launch
    (`PrivateIpAddresses`, `SecondaryPrivateIpAddressCount`), assigned and unassigned later
    (AssignPrivateIpAddresses on the instance's interface), leased in the VPC (no other launch
    takes them), an Elastic IP in front of one, and all given back with the instance."""
    _, client, image_id = cloud
    vpc_id = client.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnet_id = client.create_subnet(VpcId=vpc_id, CidrBlock="10.8.1.0/24")["Subnet"]["SubnetId"]
    base = dict(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1)
    spec = {"DeviceIndex": 0, "SubnetId": subnet_id, "SecondaryPrivateIpAddressCount": 1,
            "PrivateIpAddresses": [{"PrivateIpAddress": "10.8.1.11", "Primary": False},
                                   {"PrivateIpAddress": "10.8.1.10", "Primary": True}]}
    [instance] = client.run_instances(**base, NetworkInterfaces=[spec])["Instances"]
    instance_id, eni = instance["InstanceId"], instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert instance["PrivateIpAddress"] == "10.8.1.10"
    assert private_addresses(instance["NetworkInterfaces"][0]) == [
        ("10.8.1.10", True), ("10.8.1.11", False), ("10.8.1.4", False)], instance["NetworkInterfaces"][0]
    # The secondary addresses are the instance's: no other launch takes one.
    fails("InvalidIPAddress.InUse", None, client.run_instances, **base, SubnetId=subnet_id,
          PrivateIpAddress="10.8.1.11")

    # Assigned and unassigned on the instance's interface, as on one of its own.
    assigned = client.assign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=["10.8.1.12"])
    assert [a["PrivateIpAddress"] for a in assigned["AssignedPrivateIpAddresses"]] == ["10.8.1.12"]
    [described] = client.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]
    assert private_addresses(described) == [
        ("10.8.1.10", True), ("10.8.1.11", False), ("10.8.1.4", False), ("10.8.1.12", False)], described
    found = client.describe_network_interfaces(
        Filters=[{"Name": "addresses.private-ip-address", "Values": ["10.8.1.12"]}])["NetworkInterfaces"]
    assert [i["NetworkInterfaceId"] for i in found] == [eni]
    client.unassign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=["10.8.1.4"])
    fails("InvalidParameterValue", None, client.unassign_private_ip_addresses, NetworkInterfaceId=eni,
          PrivateIpAddresses=["10.8.1.10"])
    fails("PrivateIpAddressLimitExceeded", None, client.assign_private_ip_addresses, NetworkInterfaceId=eni,
          SecondaryPrivateIpAddressCount=8)
    # With AllowReassignment, another interface's secondary address moves here.
    other = client.create_network_interface(SubnetId=subnet_id, PrivateIpAddress="10.8.1.20")["NetworkInterface"]
    client.assign_private_ip_addresses(NetworkInterfaceId=other["NetworkInterfaceId"],
                                       PrivateIpAddresses=["10.8.1.21"])
    fails("InvalidIPAddress.InUse", None, client.assign_private_ip_addresses, NetworkInterfaceId=eni,
          PrivateIpAddresses=["10.8.1.21"])
    client.assign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=["10.8.1.21"],
                                       AllowReassignment=True)
    [moved_from] = client.describe_network_interfaces(
        NetworkInterfaceIds=[other["NetworkInterfaceId"]])["NetworkInterfaces"]
    assert private_addresses(moved_from) == [("10.8.1.20", True)]

    # An Elastic IP in front of a secondary address.
    gateway = client.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    client.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc_id)
    allocation = client.allocate_address(Domain="vpc")
    client.associate_address(AllocationId=allocation["AllocationId"], InstanceId=instance_id,
                             PrivateIpAddress="10.8.1.11")
    [shown] = client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"]
    by_address = {a["PrivateIpAddress"]: a for a in shown["NetworkInterfaces"][0]["PrivateIpAddresses"]}
    assert by_address["10.8.1.11"]["Association"]["PublicIp"] == allocation["PublicIp"], by_address
    assert "Association" not in by_address["10.8.1.10"] and "PublicIpAddress" not in shown, shown
    [address] = client.describe_addresses(AllocationIds=[allocation["AllocationId"]])["Addresses"]
    assert (address["InstanceId"], address["PrivateIpAddress"]) == (instance_id, "10.8.1.11")
    # Unassigning the address ends its association; the Elastic IP stays the account's.
    client.unassign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=["10.8.1.11"])
    [address] = client.describe_addresses(AllocationIds=[allocation["AllocationId"]])["Addresses"]
    assert "AssociationId" not in address, address

    # The instance goes, its addresses with it.
    client.terminate_instances(InstanceIds=[instance_id])
    wait_states(client, [instance_id], "terminated")
    [again] = client.run_instances(**base, SubnetId=subnet_id, PrivateIpAddress="10.8.1.21")["Instances"]
    client.terminate_instances(InstanceIds=[again["InstanceId"]])
    wait_states(client, [again["InstanceId"]], "terminated")

    # Asking both ways for different primaries, or two primaries, is refused; so is one
    # instance's address list for many.
    fails("InvalidParameterCombination", None, client.run_instances, **base, NetworkInterfaces=[
        {"DeviceIndex": 0, "SubnetId": subnet_id, "PrivateIpAddress": "10.8.1.30",
         "PrivateIpAddresses": [{"PrivateIpAddress": "10.8.1.31", "Primary": True}]}])
    fails("InvalidParameterValue", None, client.run_instances, **base, NetworkInterfaces=[
        {"DeviceIndex": 0, "SubnetId": subnet_id, "PrivateIpAddresses": [
            {"PrivateIpAddress": "10.8.1.30", "Primary": True}, {"PrivateIpAddress": "10.8.1.31", "Primary": True}]}])
    fails("InvalidParameterValue", None, client.run_instances, ImageId=image_id, InstanceType="t3.nano",
          MinCount=2, MaxCount=2, NetworkInterfaces=[
              {"DeviceIndex": 0, "SubnetId": subnet_id,
               "PrivateIpAddresses": [{"PrivateIpAddress": "10.8.1.31", "Primary": False}]}])

    # The default VPC is a VPC like any other: its guests take secondary addresses too.
    [plain] = client.run_instances(**base)["Instances"]
    client.assign_private_ip_addresses(NetworkInterfaceId=plain["NetworkInterfaces"][0]["NetworkInterfaceId"],
                                       SecondaryPrivateIpAddressCount=1)
    [shown] = client.describe_instances(InstanceIds=[plain["InstanceId"]])["Reservations"][0]["Instances"]
    assert len(shown["NetworkInterfaces"][0]["PrivateIpAddresses"]) == 2, shown
    client.terminate_instances(InstanceIds=[plain["InstanceId"]])
    wait_states(client, [plain["InstanceId"]], "terminated")
    client.delete_network_interface(NetworkInterfaceId=other["NetworkInterfaceId"])
    client.release_address(AllocationId=allocation["AllocationId"])
    delete_vpc(client, vpc_id, gateway, subnets=[subnet_id])


def test_an_interface_of_one_s_own_as_an_instance_s_primary_one(cloud):
    """RunInstances with `NetworkInterfaceId` at device index 0, as Terraform's `network_interface`
    block sends it: the instance takes the interface's subnet, addresses, MAC and groups; the
    interface is in use meanwhile, and comes back available with its addresses, tags and Elastic
    IP when the instance goes (EC2 keeps an interface it did not make, unless
    `DeleteOnTermination` says otherwise). A primary interface made at launch with
    `DeleteOnTermination=false` stays too."""
    _, client, image_id = cloud
    vpc_id = client.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet_id = client.create_subnet(VpcId=vpc_id, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group_id = client.create_security_group(GroupName="front", Description="d", VpcId=vpc_id)["GroupId"]
    made = client.create_network_interface(
        SubnetId=subnet_id, PrivateIpAddress="10.9.1.50", Groups=[group_id], Description="front",
        TagSpecifications=[{"ResourceType": "network-interface", "Tags": [{"Key": "Name", "Value": "front"}]}],
    )["NetworkInterface"]
    eni, mac = made["NetworkInterfaceId"], made["MacAddress"]
    client.assign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=["10.9.1.51"])
    gateway = client.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    client.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc_id)
    allocation = client.allocate_address(Domain="vpc")["AllocationId"]
    client.associate_address(AllocationId=allocation, NetworkInterfaceId=eni)
    base = dict(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1)

    [instance] = client.run_instances(**base, NetworkInterfaces=[{"DeviceIndex": 0, "NetworkInterfaceId": eni}])[
        "Instances"]
    instance_id = instance["InstanceId"]
    primary = instance["NetworkInterfaces"][0]
    assert (instance["SubnetId"], instance["VpcId"], instance["PrivateIpAddress"]) == (subnet_id, vpc_id, "10.9.1.50")
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group_id]
    assert (primary["NetworkInterfaceId"], primary["MacAddress"], primary["Description"]) == (eni, mac, "front")
    assert primary["Attachment"]["DeleteOnTermination"] is False and primary["Attachment"]["DeviceIndex"] == 0
    assert private_addresses(primary) == [("10.9.1.50", True), ("10.9.1.51", False)]
    [in_use] = client.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]
    assert (in_use["Status"], in_use["Attachment"]["InstanceId"], in_use["Attachment"]["DeviceIndex"]) == (
        "in-use", instance_id, 0), in_use
    assert in_use["TagSet"] == [{"Key": "Name", "Value": "front"}], in_use
    [address] = client.describe_addresses(AllocationIds=[allocation])["Addresses"]
    assert (address["InstanceId"], address["NetworkInterfaceId"]) == (instance_id, eni), address
    # In use: no second instance takes it, nor any launch that names more than the interface.
    fails("InvalidNetworkInterface.InUse", None, client.run_instances, **base,
          NetworkInterfaces=[{"DeviceIndex": 0, "NetworkInterfaceId": eni}])
    fails("InvalidParameterCombination", None, client.run_instances, **base,
          NetworkInterfaces=[{"DeviceIndex": 0, "NetworkInterfaceId": eni, "SubnetId": subnet_id}])
    fails("InvalidParameterValue", None, client.run_instances, ImageId=image_id, InstanceType="t3.nano",
          MinCount=2, MaxCount=2, NetworkInterfaces=[{"DeviceIndex": 0, "NetworkInterfaceId": eni}])
    fails("InvalidNetworkInterfaceID.NotFound", None, client.run_instances, **base,
          NetworkInterfaces=[{"DeviceIndex": 0, "NetworkInterfaceId": "eni-0123456789abcdef0"}])

    client.terminate_instances(InstanceIds=[instance_id])
    wait_states(client, [instance_id], "terminated")
    [back] = client.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]
    assert (back["Status"], back["MacAddress"], back["Description"], back["TagSet"]) == (
        "available", mac, "front", [{"Key": "Name", "Value": "front"}]), back
    assert "Attachment" not in back and private_addresses(back) == [("10.9.1.50", True), ("10.9.1.51", False)]
    assert [g["GroupId"] for g in back["Groups"]] == [group_id]
    [address] = client.describe_addresses(AllocationIds=[allocation])["Addresses"]
    assert address["NetworkInterfaceId"] == eni and "InstanceId" not in address, address
    # Its addresses are still its own: no launch takes them.
    fails("InvalidIPAddress.InUse", None, client.run_instances, **base, SubnetId=subnet_id,
          PrivateIpAddress="10.9.1.51")

    # Taken again, to go with the instance this time.
    client.disassociate_address(AssociationId=address["AssociationId"])
    [again] = client.run_instances(**base, NetworkInterfaces=[
        {"DeviceIndex": 0, "NetworkInterfaceId": eni, "DeleteOnTermination": True}])["Instances"]
    client.terminate_instances(InstanceIds=[again["InstanceId"]])
    wait_states(client, [again["InstanceId"]], "terminated")
    fails("InvalidNetworkInterfaceID.NotFound", None, client.describe_network_interfaces, NetworkInterfaceIds=[eni])
    [reused] = client.run_instances(**base, SubnetId=subnet_id, PrivateIpAddress="10.9.1.51")["Instances"]

    # A primary interface made at launch and kept.
    [kept] = client.run_instances(**base, NetworkInterfaces=[
        {"DeviceIndex": 0, "SubnetId": subnet_id, "DeleteOnTermination": False, "Description": "kept"}])["Instances"]
    kept_eni = kept["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert kept["NetworkInterfaces"][0]["Attachment"]["DeleteOnTermination"] is False
    client.terminate_instances(InstanceIds=[kept["InstanceId"], reused["InstanceId"]])
    wait_states(client, [kept["InstanceId"], reused["InstanceId"]], "terminated")
    [left] = client.describe_network_interfaces(NetworkInterfaceIds=[kept_eni])["NetworkInterfaces"]
    assert (left["Status"], left["Description"], left["PrivateIpAddress"]) == (
        "available", "kept", kept["PrivateIpAddress"]), left

    client.delete_network_interface(NetworkInterfaceId=kept_eni)
    client.release_address(AllocationId=allocation)
    delete_vpc(client, vpc_id, gateway, subnets=[subnet_id], groups=[group_id])
