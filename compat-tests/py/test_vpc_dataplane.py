"""VPCs of their own on real guests (QEMU, libvirt, the OVN that `scripts/setup-host` starts):
each instance's NIC is its VPC's logical switch port, plugged by libvirt into `br-int`.

Two accounts each make a VPC 10.0.0.0/16 with a subnet 10.0.1.0/24 and an instance at
10.0.1.10 (B's launched on a network interface B made first, `NetworkInterfaceId` at device
index 0); account A also has a subnet 10.0.2.0/24 with an instance at 10.0.2.10. A probe (a
network namespace plugged into a subnet's switch, as a guest would be) shows what each VPC
holds. Each guest reaches the metadata service in its own VPC, which tells it its own instance
id although both accounts' guests have the same address. Security groups are OVN's ACLs: at first no probe reaches anything (a VPC's `default`
group lets in its own members only); once each account's group allows ICMP from its probe, A's
probe reaches A's 10.0.1.10 (A's MAC answers) and A's 10.0.2.10 through the VPC's router, B's
probe reaches B's 10.0.1.10 (B's MAC) and nothing of A's; a rule revoked takes effect on the
running guests at once; a network interface attached to A's running 10.0.1.10 is hot-plugged,
takes its address by DHCP and answers on its own subnet until it is detached; once A's
10.0.1.10 is terminated, A's probe no longer reaches that address, although B's guest still
holds it.
"""

from __future__ import annotations

import ipaddress
import os
import time

from conftest import (create_account, ec2_client, forget_ovn_installation, import_image, require_qemu,
                      wait_states)
from ovn_helpers import CONF, CONFIG, Internet, Probe, booted, nbctl, require_ovn, run, tear_down


def test_same_addresses_in_two_accounts_vpcs_never_meet(server_factory, test_image):
    require_qemu()
    require_ovn()
    server = server_factory(config=CONFIG)
    image_id = import_image(server, test_image, "vpc data plane")
    other = create_account(server, "dataplane-b")
    clients = {"a": ec2_client(server), "b": ec2_client(server, other.access_key, other.secret_key)}
    made: dict[str, dict] = {}
    probes: list[Probe] = []
    try:
        for who, client in clients.items():
            vpc = client.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
            cidrs = ["10.0.1.0/24", "10.0.2.0/24"] if who == "a" else ["10.0.1.0/24"]
            subnets = [client.create_subnet(VpcId=vpc, CidrBlock=c)["Subnet"]["SubnetId"] for c in cidrs]
            instances = {}
            for subnet, cidr in zip(subnets, cidrs):
                address = cidr.replace(".0/24", ".10")
                base = dict(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1)
                if who == "a":
                    [instance] = client.run_instances(**base, SubnetId=subnet, PrivateIpAddress=address)["Instances"]
                else:
                    # B's guest runs on an interface B made first (NetworkInterfaceId at index 0).
                    eni = client.create_network_interface(SubnetId=subnet, PrivateIpAddress=address)
                    [instance] = client.run_instances(**base, NetworkInterfaces=[
                        {"DeviceIndex": 0, "NetworkInterfaceId": eni["NetworkInterface"]["NetworkInterfaceId"]}])[
                        "Instances"]
                instances[address] = instance
            made[who] = {"vpc": vpc, "subnets": subnets, "instances": instances}
        for who, client in clients.items():
            ids = [i["InstanceId"] for i in made[who]["instances"].values()]
            wait_states(client, ids, "running", timeout=120)
            for instance_id in ids:
                booted(client, instance_id)
        # Each guest reaches the metadata service in its own VPC, which knows it by (VPC,
        # address): A's and B's 10.0.1.10 are told their own instance ids.
        for who, client in clients.items():
            for instance in made[who]["instances"].values():
                marker = f"instance-id={instance['InstanceId']}"
                deadline = time.monotonic() + 90
                while marker not in client.get_console_output(InstanceId=instance["InstanceId"]).get("Output", ""):
                    assert time.monotonic() < deadline, f"{who}'s {instance['PrivateIpAddress']} never reached its metadata"
                    time.sleep(1)
        for who in clients:
            switch = f"stratus-{made[who]['subnets'][0]}"
            mac = "02:00:00:00:0a:01" if who == "a" else "02:00:00:00:0b:01"
            probes.append(Probe(f"sp{os.getpid() % 10000}{who}", switch, mac, "10.0.1.200", "10.0.1.1"))
        probe_a, probe_b = probes
        a_guest = made["a"]["instances"]["10.0.1.10"]
        b_guest = made["b"]["instances"]["10.0.1.10"]

        # libvirt plugged the guest into br-int as its logical port, checksum offload off.
        xml = run("virsh", "-c", "qemu:///system", "dumpxml", a_guest["InstanceId"]).stdout
        assert "<virtualport type='openvswitch'>" in xml and "csum='off'" in xml, xml
        bound = run("ovs-vsctl", f"--db={CONF}", "--bare", "--columns=external_ids", "find", "Interface",
                    "external_ids:attached-mac=\"" + a_guest["NetworkInterfaces"][0]["MacAddress"] + "\"").stdout
        port = nbctl("--bare", "--columns=name", "find", "Logical_Switch_Port",
                     f"external_ids:stratus-owner={a_guest['NetworkInterfaces'][0]['NetworkInterfaceId']}").stdout.strip()
        assert port and f"iface-id={port}" in bound, (port, bound)
        # Only members of a VPC's default group get in: the probes are not.
        assert not probe_a.reaches("10.0.1.10") and not probe_b.reaches("10.0.1.10"), "the default group lets in anyone"
        icmp = [{"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "10.0.1.200/32"}]}]
        groups = {}
        for who, client in clients.items():
            [group] = client.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [made[who]["vpc"]]},
                                                               {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
            groups[who] = group["GroupId"]
        started = time.monotonic()
        clients["a"].authorize_security_group_ingress(GroupId=groups["a"], IpPermissions=icmp)
        while not probe_a.answers("10.0.1.10"):
            assert time.monotonic() - started < 20, "the rule never took effect"
        print(f"rule authorized -> enforced in {time.monotonic() - started:.2f} s")  # shown with -s
        clients["b"].authorize_security_group_ingress(GroupId=groups["b"], IpPermissions=icmp)
        assert probe_a.reaches("10.0.1.10", tries=20), "A's probe does not reach A's guest"
        assert probe_a.mac_of("10.0.1.10") == a_guest["NetworkInterfaces"][0]["MacAddress"]
        assert probe_a.reaches("10.0.2.10", tries=10), "A's subnets are not routed to each other"
        assert probe_b.reaches("10.0.1.10", tries=20), "B's probe does not reach B's guest"
        assert probe_b.mac_of("10.0.1.10") == b_guest["NetworkInterfaces"][0]["MacAddress"]
        assert not probe_b.reaches("10.0.2.10"), "B reaches A's other subnet"

        # Revoked: the running guest stops answering at once; authorized again, it answers.
        started = time.monotonic()
        clients["a"].revoke_security_group_ingress(GroupId=groups["a"], IpPermissions=icmp)
        while probe_a.answers("10.0.1.10"):
            assert time.monotonic() - started < 20, "the revoked rule still lets pings in"
        print(f"rule revoked -> enforced in {time.monotonic() - started:.2f} s")
        clients["a"].authorize_security_group_ingress(GroupId=groups["a"], IpPermissions=icmp)
        assert probe_a.reaches("10.0.1.10", tries=20), "authorized again, A's guest does not answer"

        # A second network interface, in A's other subnet, hot-plugged into the running guest:
        # the guest gets its address from OVN's DHCP and answers on it (to a probe of that
        # subnet, which its group lets in); detached, it is gone from the guest and the network.
        probe_c = Probe(f"sp{os.getpid() % 10000}c", f"stratus-{made['a']['subnets'][1]}", "02:00:00:00:0a:02",
                        "10.0.2.200", "10.0.2.1")
        probes.append(probe_c)
        clients["a"].authorize_security_group_ingress(GroupId=groups["a"], IpPermissions=[
            {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "10.0.2.200/32"}]}])
        eni = clients["a"].create_network_interface(SubnetId=made["a"]["subnets"][1], PrivateIpAddress="10.0.2.20",
                                                    Groups=[groups["a"]])["NetworkInterface"]
        started = time.monotonic()
        attachment = clients["a"].attach_network_interface(
            NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=a_guest["InstanceId"], DeviceIndex=1)["AttachmentId"]
        plugged = f"eth1={eni['MacAddress']}/10.0.2.20"
        while plugged not in clients["a"].get_console_output(InstanceId=a_guest["InstanceId"]).get("Output", ""):
            assert time.monotonic() - started < 90, "the hot-plugged NIC never got its address"
            time.sleep(1)
        print(f"interface attached -> its address in the guest in {time.monotonic() - started:.1f} s")
        xml = run("virsh", "-c", "qemu:///system", "dumpxml", a_guest["InstanceId"]).stdout
        assert xml.count("<virtualport type='openvswitch'>") == 2, xml
        assert probe_c.reaches("10.0.2.20", tries=20), "the second interface does not answer"
        assert probe_c.mac_of("10.0.2.20") == eni["MacAddress"]
        [shown] = clients["a"].describe_network_interfaces(
            NetworkInterfaceIds=[eni["NetworkInterfaceId"]])["NetworkInterfaces"]
        assert (shown["Status"], shown["Attachment"]["Status"]) == ("in-use", "attached")
        clients["a"].detach_network_interface(AttachmentId=attachment)
        deadline = time.monotonic() + 60
        while clients["a"].describe_network_interfaces(
                NetworkInterfaceIds=[eni["NetworkInterfaceId"]])["NetworkInterfaces"][0]["Status"] != "available":
            assert time.monotonic() < deadline, "the interface was never detached"
            time.sleep(0.5)
        assert eni["MacAddress"] not in run("virsh", "-c", "qemu:///system", "dumpxml", a_guest["InstanceId"]).stdout
        deadline = time.monotonic() + 30
        while probe_c.answers("10.0.2.20"):
            assert time.monotonic() < deadline, "the detached interface still answers"
        clients["a"].delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])

        clients["a"].terminate_instances(InstanceIds=[a_guest["InstanceId"]])
        wait_states(clients["a"], [a_guest["InstanceId"]], "terminated", timeout=120)
        deadline = time.monotonic() + 30
        while probe_a.reaches("10.0.1.10"):
            assert time.monotonic() < deadline, "A's probe still reaches 10.0.1.10 after A's guest went"
        assert probe_b.reaches("10.0.1.10", tries=5), "B's guest is gone with A's"

        # B's VPC goes: its metadata namespace on this machine goes with it.
        probe_b.close()
        probes.remove(probe_b)
        b_ids = [i["InstanceId"] for i in made["b"]["instances"].values()]
        clients["b"].terminate_instances(InstanceIds=b_ids)
        wait_states(clients["b"], b_ids, "terminated", timeout=120)
        made["b"]["instances"] = {}
        # B's guest gave its interface back, available, holding 10.0.1.10 still.
        b_eni = b_guest["NetworkInterfaces"][0]["NetworkInterfaceId"]
        [kept] = clients["b"].describe_network_interfaces(NetworkInterfaceIds=[b_eni])["NetworkInterfaces"]
        assert (kept["Status"], kept["PrivateIpAddress"]) == ("available", "10.0.1.10"), kept
        clients["b"].delete_network_interface(NetworkInterfaceId=b_eni)
        namespace = f"stratus-meta-{made['b']['vpc']}"
        assert namespace in run("ip", "netns", "list").stdout
        for subnet in made["b"]["subnets"]:
            clients["b"].delete_subnet(SubnetId=subnet)
        clients["b"].delete_vpc(VpcId=made["b"]["vpc"])
        deadline = time.monotonic() + 20
        while namespace in run("ip", "netns", "list").stdout:
            assert time.monotonic() < deadline, "the deleted VPC's metadata namespace is still there"
            time.sleep(0.5)
    finally:
        tear_down(server, clients, made, probes)


def eventually(what: str, check, timeout: float = 30.0) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout:.0f} s"
    return time.monotonic() - started


def test_default_vpcs_on_ovn_are_each_accounts_own(server_factory, test_image):
    """With OVN, every account's default VPC is a network of its own, as on AWS: 172.31.0.0/16 in
    each account, so two accounts' guests hold the same address; the guests are plugged into
    br-int (no nwfilter, no shared bridge), get a public address at launch from their default
    subnet, are reached from the internet once their default group allows it (and only then),
    and are each told their own id by the metadata service."""
    require_qemu()
    require_ovn()
    server = server_factory(config=CONFIG)
    image_id = import_image(server, test_image, "default vpcs on ovn")
    other = create_account(server, "default-vpc-b")
    clients = {"a": ec2_client(server), "b": ec2_client(server, other.access_key, other.secret_key)}
    internet = Internet.of(server)
    made: dict[str, dict] = {}
    try:
        for who, client in clients.items():
            subnets = client.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
            [subnet] = [s for s in subnets if s["CidrBlock"] == "172.31.0.0/20"]
            assert subnet["MapPublicIpOnLaunch"] is True, subnet
            [instance] = client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                              SubnetId=subnet["SubnetId"], PrivateIpAddress="172.31.0.10")["Instances"]
            made[who] = {"vpc": subnet["VpcId"], "instances": {"172.31.0.10": instance}}
        public = {}
        for who, client in clients.items():
            [instance] = made[who]["instances"].values()
            wait_states(client, [instance["InstanceId"]], "running", timeout=120)
            booted(client, instance["InstanceId"])
            [described] = client.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"][0]["Instances"]
            assert described["PrivateIpAddress"] == "172.31.0.10"
            public[who] = described.get("PublicIpAddress", "")
            assert ipaddress.ip_address(public[who]) in ipaddress.ip_network(server.public_cidr), described
            xml = run("virsh", "-c", "qemu:///system", "dumpxml", instance["InstanceId"]).stdout
            assert "<virtualport type='openvswitch'>" in xml and "filterref" not in xml, xml
            marker = f"instance-id={instance['InstanceId']}"
            deadline = time.monotonic() + 90
            while marker not in (console := client.get_console_output(InstanceId=instance["InstanceId"]).get(
                    "Output", "")):
                assert time.monotonic() < deadline, f"{who}'s guest never reached its metadata: {console[-1500:]}"
                time.sleep(1)
        assert public["a"] != public["b"], public
        # The default group lets in its own members only; once A's allows the internet, A's
        # guest answers there and B's still does not.
        assert not internet.answers(public["a"]) and not internet.answers(public["b"])
        [group] = clients["a"].describe_security_groups(Filters=[
            {"Name": "vpc-id", "Values": [made["a"]["vpc"]]}, {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
        clients["a"].authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[
            {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": f"{internet.address}/32"}]}])
        took = eventually("A's public address answering", lambda: internet.answers(public["a"]), 60)
        print(f"default VPC guest's public address reachable {took:.2f} s after the rule")
        assert not internet.answers(public["b"]), "B's guest answers without a rule of B's"
    finally:
        internet.close()
        tear_down(server, clients, made, [])


def test_an_elastic_ip_is_reached_from_the_internet_only_through_a_route(server_factory, test_image):
    """An Elastic IP is 1:1 NAT on the VPC's router; the route table decides (no route to the
    internet gateway, no internet, even with an Elastic IP), and so do the groups; private
    addresses stay out of reach from the public side; a NAT gateway lets a private subnet out
    and nothing in."""
    require_qemu()
    require_ovn()
    server = server_factory(config=CONFIG)
    image_id = import_image(server, test_image, "vpc internet")
    client = ec2_client(server)
    internet = Internet.of(server)
    instance_id = None
    probes: list[Probe] = []
    made_private: list[str] = []
    try:
        vpc = client.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = client.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        gateway = client.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        client.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
        table = client.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        client.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
        client.associate_route_table(RouteTableId=table, SubnetId=subnet)
        [group] = client.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                           {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
        client.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[
            {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        [instance] = client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                          SubnetId=subnet, PrivateIpAddress="10.0.1.10")["Instances"]
        instance_id = instance["InstanceId"]
        allocation = client.allocate_address(Domain="vpc")
        public_ip = allocation["PublicIp"]
        wait_states(client, [instance_id], "running", timeout=120)
        booted(client, instance_id)
        association = client.associate_address(AllocationId=allocation["AllocationId"],
                                               InstanceId=instance_id)["AssociationId"]
        took = eventually("the Elastic IP answering from the internet", lambda: internet.answers(public_ip), 60)
        print(f"associated -> reachable in {took:.2f} s")
        # Even routed straight at the VPC's router, the public side never reaches a private
        # address: only the Elastic IP leads in.
        router_ip = nbctl("--bare", "--columns=networks", "list", "Logical_Router_Port",
                          f"stratus-{vpc}-gw").stdout.strip().split("/")[0]
        run("ip", "-n", internet.ns, "route", "add", "10.0.0.0/16", "via", router_ip)
        assert not internet.answers("10.0.1.10"), "the public network reaches a private address"
        run("ip", "-n", internet.ns, "route", "del", "10.0.0.0/16")
        # And nothing leaves with a private address: what a port of the public subnet without a
        # public address sends never shows on the public network.
        eventually("the public subnet's switch", lambda: nbctl("ls-list", check=False).stdout.count(subnet) == 1)
        bare = Probe(f"sb{os.getpid() % 10000}", f"stratus-{subnet}", "02:00:00:00:0d:01", "10.0.1.201", "10.0.1.1")
        probes.append(bare)
        assert public_ip in internet.sources_seen(lambda: internet.answers(public_ip)), "the sniffer sees nothing"
        seen = internet.sources_seen(lambda: bare.reaches(internet.address))
        assert "10.0.1.201" not in seen, f"a private address left for the public network: {seen}"

        # A private subnet goes out through a NAT gateway and nothing comes in: a probe there
        # reaches the internet, which has no route back to 10.0.0.0/16, so the answer comes
        # back only because the NAT gateway's address stood in for the probe's.
        private = client.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24")["Subnet"]["SubnetId"]
        made_private.append(private)
        nat_address = client.allocate_address(Domain="vpc")["AllocationId"]
        nat = client.create_nat_gateway(SubnetId=subnet, AllocationId=nat_address)["NatGateway"]["NatGatewayId"]
        private_table = client.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        client.associate_route_table(RouteTableId=private_table, SubnetId=private)
        eventually("the private subnet's switch", lambda: nbctl("ls-list", check=False).stdout.count(private) == 1)
        probe = Probe(f"sn{os.getpid() % 10000}", f"stratus-{private}", "02:00:00:00:0c:01", "10.0.2.200", "10.0.2.1")
        probes.append(probe)
        assert not probe.reaches(internet.address), "a private subnet without a route gets out"
        client.create_route(RouteTableId=private_table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
        took = eventually("the NAT gateway's way out", lambda: probe.answers(internet.address))
        print(f"NAT route -> out in {took:.2f} s")
        client.delete_nat_gateway(NatGatewayId=nat)
        eventually("the NAT gateway gone", lambda: not probe.answers(internet.address))

        # No route to the gateway: no internet, Elastic IP or not.
        client.delete_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0")
        eventually("the route's removal cutting the way", lambda: not internet.answers(public_ip))
        client.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
        eventually("the route's return", lambda: internet.answers(public_ip))
        # No group rule: nothing gets in either.
        client.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[
            {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        eventually("the group closing", lambda: not internet.answers(public_ip))
        client.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[
            {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        eventually("the group opening", lambda: internet.answers(public_ip))
        # Disassociated, the address answers for nothing.
        client.disassociate_address(AssociationId=association)
        eventually("the disassociation", lambda: not internet.answers(public_ip))
    finally:
        for probe in probes:
            probe.close()
        internet.close()
        if instance_id:
            client.terminate_instances(InstanceIds=[instance_id])
            wait_states(client, [instance_id], "terminated", timeout=120)
        server.stop()
        forget_ovn_installation((server.data_dir / "installation").read_text().strip())
