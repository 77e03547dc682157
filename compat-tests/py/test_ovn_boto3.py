"""Stratus keeps OVN's northbound database in step with its store (issue 16, in progress), end
to end: `stratus serve` with `[network] ovn_northbound` pointed at the OVN that
`scripts/setup-host` starts, driven by boto3.

Each account's default VPC becomes a logical router, each default subnet a switch with OVN's
DHCP options, each instance a port with its MAC and address; a terminated instance's port goes;
a `kill -9` and a restart find OVN as it should be, a row deleted meanwhile comes back; nothing
of other installations or of the operator is touched. Guests are not plugged into OVN yet.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from conftest import (TEST_DRIVER_HOSTS, create_account, ec2_client, forget_ovn_installation, import_image, server_env,
                      wait_states)

from ovn_helpers import NB, require_ovn

# A public network of its own (TEST-NET-1): its default VPCs' routers take public addresses,
# which must not meet those of the real-guest scenarios that may run beside it.
CONFIG = TEST_DRIVER_HOSTS + f'\n[network]\novn_northbound = "{NB}"\npublic_cidr = "192.0.2.0/24"\n'


def nbctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ovn-nbctl", f"--db={NB}", "--timeout=10", *args], capture_output=True, text=True,
                          timeout=30)


def port_of(eni: str) -> str | None:
    """The switch port of a network interface: named by a UUID, the interface its owner mark."""
    done = nbctl("--bare", "--columns=name", "find", "Logical_Switch_Port", f"external_ids:stratus-owner={eni}")
    return done.stdout.strip() or None


def port_addresses(eni: str) -> str | None:
    port = port_of(eni)
    done = nbctl("lsp-get-addresses", port) if port else None
    return done.stdout.strip() if done and done.returncode == 0 else None


def eventually(what: str, check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.2)


def test_instances_get_ovn_ports_and_lose_them(server_factory, tmp_path, test_image):
    require_ovn()
    operator_switch = f"operator-{os.getpid()}"
    assert nbctl("ls-add", operator_switch).returncode == 0
    installation = None
    try:
        data = tmp_path / "data"
        server = server_factory(data_dir=data, name="first", config=CONFIG)
        installation = (data / "installation").read_text().strip()
        doctor = subprocess.run([str(server.bin), "doctor", "--data-dir", str(data)], capture_output=True, text=True,
                                timeout=60, env=server_env())
        assert f"[ ok ] OVN northbound: {NB} answers" in doctor.stdout, doctor.stdout + doctor.stderr
        image = import_image(server, test_image, "ovn image")
        admin = ec2_client(server)
        other = create_account(server, "other")
        theirs_client = ec2_client(server, other.access_key, other.secret_key)
        mine = admin.run_instances(ImageId=image, InstanceType="t3.nano", MinCount=2, MaxCount=2)["Instances"]
        theirs = theirs_client.run_instances(ImageId=image, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"]
        for instance in mine + theirs:
            eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
            wanted = f"{instance['NetworkInterfaces'][0]['MacAddress']} {instance['PrivateIpAddress']}"
            eventually(f"{eni}'s port", lambda: port_addresses(eni) == wanted)
        # A secondary address of an instance's own interface is on its port too (port security).
        eni0, mac0 = mine[0]["NetworkInterfaces"][0]["NetworkInterfaceId"], mine[0]["NetworkInterfaces"][0]["MacAddress"]
        admin.assign_private_ip_addresses(NetworkInterfaceId=eni0, PrivateIpAddresses=["172.31.9.99"])
        eventually("the secondary address on the port",
                   lambda: port_addresses(eni0) == f"{mac0} {mine[0]['PrivateIpAddress']} 172.31.9.99")
        # One router per account's VPC, marked as this installation's.
        routers = nbctl("--bare", "--columns=name", "find", "Logical_Router",
                        f"external_ids:stratus-installation={installation}").stdout.split()
        vpcs = {mine[0]["VpcId"], theirs[0]["VpcId"]}
        assert sorted(routers) == sorted(f"stratus-{v}" for v in vpcs), routers
        dhcp = nbctl("lsp-get-dhcpv4-options", port_of(mine[0]["NetworkInterfaces"][0]["NetworkInterfaceId"])).stdout
        assert "172.31.0.0/20" in dhcp, dhcp

        # A terminated instance's port goes.
        gone = theirs[0]
        theirs_client.terminate_instances(InstanceIds=[gone["InstanceId"]])
        wait_states(theirs_client, [gone["InstanceId"]], "terminated")
        eventually("the terminated instance's port gone",
                   lambda: port_addresses(gone["NetworkInterfaces"][0]["NetworkInterfaceId"]) is None)

        # kill -9, a row deleted meanwhile, a restart: OVN is as it should be again.
        server.kill()
        kept = mine[0]["NetworkInterfaces"][0]["NetworkInterfaceId"]
        assert nbctl("lsp-del", port_of(kept)).returncode == 0
        server = server_factory(data_dir=data, name="again", config=CONFIG)
        admin = ec2_client(server)
        eventually("the deleted port back", lambda: port_addresses(kept) is not None)
        assert nbctl("ls-list").stdout.count(operator_switch) == 1, "the operator's switch is untouched"

        # Everything terminated: only the routers and switches of the VPCs remain.
        admin.terminate_instances(InstanceIds=[i["InstanceId"] for i in mine])
        wait_states(admin, [i["InstanceId"] for i in mine], "terminated")
        eventually("no ports of this installation's instances",
                   lambda: not [p for p in nbctl("--bare", "--columns=name", "find", "Logical_Switch_Port",
                                                 f"external_ids:stratus-installation={installation}",
                                                 "type=\"\"").stdout.split() if not p.endswith("-meta")])
        server.stop()

        # The public addresses this installation's routers hold stay its own: another
        # installation started here hands none of them out (both would answer for it on the
        # public network), and says why.
        held = set(re.findall(r"(192\.0\.2\.\d+)/", nbctl(
            "--bare", "--columns=networks", "find", "Logical_Router_Port",
            f"external_ids:stratus-installation={installation}").stdout))
        assert held, "the default VPCs' routers hold public addresses"
        other = server_factory(data_dir=tmp_path / "other", name="other", config=CONFIG)
        assert f"installation {installation}: public addresses" in other.log(), other.log()[-3000:]
        other_client = ec2_client(other)
        taken = {other_client.allocate_address(Domain="vpc")["PublicIp"] for _ in range(3)}
        assert not taken & held, (taken, held)
        clean = [str(other.bin), "host", "clean", "--installation", installation, "--data-dir", str(other.data_dir)]
        dry = subprocess.run([*clean, "--dry-run"], capture_output=True, text=True, timeout=120, env=server_env())
        assert dry.returncode == 0 and "OVN rows" in dry.stdout, dry.stdout + dry.stderr
        assert nbctl("--bare", "--columns=name", "find", "Logical_Router",
                     f"external_ids:stratus-installation={installation}").stdout.split(), "a dry run removes nothing"
        done = subprocess.run(clean, capture_output=True, text=True, timeout=120, env=server_env())
        assert done.returncode == 0, done.stdout + done.stderr
        for table in ("Logical_Router", "Logical_Switch", "DHCP_Options"):
            assert not nbctl("--bare", "--columns=_uuid", "find", table,
                             f"external_ids:stratus-installation={installation}").stdout.split(), table
        # And its VPCs' metadata namespaces on this machine (a stopped Stratus leaves them up).
        assert all(f"metadata namespace stratus-meta-{v}" in dry.stdout for v in vpcs), dry.stdout
        assert not [v for v in vpcs if Path(f"/run/netns/stratus-meta-{v}").exists()], done.stdout
        assert nbctl("ls-list").stdout.count(operator_switch) == 1, "the operator's switch is untouched"
        # Its addresses are free again: the next allocations take them, lowest first.
        freed = {other_client.allocate_address(Domain="vpc")["PublicIp"] for _ in range(len(held))}
        assert freed == held, (freed, held)
    finally:
        nbctl("ls-del", operator_switch)
        if installation is None:
            return
        # The installation's rows are left for the next reconciliation of this data dir, which
        # is gone with the test.
        forget_ovn_installation(installation)


def test_routes_through_an_interface_and_an_instance_lead_to_them(server_factory, test_image):
    """A route to a network interface sends what its subnet addresses there to that interface,
    which takes it in only with its source/destination check off, as on EC2; so does a route to
    an instance, through its primary interface. Each end is a namespace plugged in as the port
    (as a guest would be) holding the routed address; a probe on a subnet the route table serves
    pings that address."""
    from ovn_helpers import Probe, run

    require_ovn()
    server = server_factory(config=CONFIG)
    client = ec2_client(server)
    probes: list[Probe] = []
    try:
        vpc = client.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        near = client.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        far = client.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24")["Subnet"]["SubnetId"]
        group = client.create_security_group(GroupName="appliance", Description="routed", VpcId=vpc)["GroupId"]
        client.authorize_security_group_ingress(GroupId=group, IpPermissions=[
            {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "10.0.1.0/24"}]}])
        eni = client.create_network_interface(SubnetId=far, PrivateIpAddress="10.0.2.50", Groups=[group])[
            "NetworkInterface"]
        eventually("the interface's port", lambda: port_of(eni["NetworkInterfaceId"]) is not None)
        table = client.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        client.associate_route_table(RouteTableId=table, SubnetId=near)
        client.create_route(RouteTableId=table, DestinationCidrBlock="192.168.77.0/24",
                            NetworkInterfaceId=eni["NetworkInterfaceId"])
        tag = os.getpid() % 10000
        appliance = Probe(f"ra{tag}", f"stratus-{far}", eni["MacAddress"], "10.0.2.50", "10.0.2.1",
                          port=port_of(eni["NetworkInterfaceId"]))
        probes.append(appliance)
        run("ip", "-n", appliance.ns, "addr", "add", "192.168.77.9/32", "dev", "lo")
        source = Probe(f"rs{tag}", f"stratus-{near}", "02:00:00:00:0c:01", "10.0.1.200", "10.0.1.1")
        probes.append(source)
        eventually("the route as a policy", lambda: "192.168.77.0/24" in nbctl("lr-policy-list", f"stratus-{vpc}").stdout)
        # The interface itself answers; what is routed through it does not while its check holds.
        eventually("the appliance's own address", lambda: source.answers("10.0.2.50"), timeout=30)
        assert not any(source.answers("192.168.77.9") for _ in range(3)), "the check let routed traffic in"
        client.modify_network_interface_attribute(NetworkInterfaceId=eni["NetworkInterfaceId"],
                                                  SourceDestCheck={"Value": False})
        eventually("the routed address through the appliance", lambda: source.answers("192.168.77.9"), timeout=30)
        # Replaced by a route to nowhere in particular, and gone: nothing gets there.
        client.delete_route(RouteTableId=table, DestinationCidrBlock="192.168.77.0/24")
        eventually("the route's removal", lambda: not source.answers("192.168.77.9"), timeout=30)

        # Through an instance (on libvirt's test driver: its port waits for whoever plugs it).
        image = import_image(server, test_image, "router image")
        [router] = client.run_instances(ImageId=image, InstanceType="t3.nano", MinCount=1, MaxCount=1, SubnetId=far,
                                        PrivateIpAddress="10.0.2.60", SecurityGroupIds=[group])["Instances"]
        primary = router["NetworkInterfaces"][0]
        client.create_route(RouteTableId=table, DestinationCidrBlock="192.168.78.0/24", InstanceId=router["InstanceId"])
        eventually("the instance's port", lambda: port_of(primary["NetworkInterfaceId"]) is not None)
        instance_end = Probe(f"ri{tag}", f"stratus-{far}", primary["MacAddress"], "10.0.2.60", "10.0.2.1",
                             port=port_of(primary["NetworkInterfaceId"]))
        probes.append(instance_end)
        run("ip", "-n", instance_end.ns, "addr", "add", "192.168.78.9/32", "dev", "lo")
        eventually("the instance's own address", lambda: source.answers("10.0.2.60"), timeout=30)
        assert not any(source.answers("192.168.78.9") for _ in range(3)), "the instance's check let routed traffic in"
        client.modify_instance_attribute(InstanceId=router["InstanceId"], SourceDestCheck={"Value": False})
        eventually("the routed address through the instance", lambda: source.answers("192.168.78.9"), timeout=30)
    finally:
        for probe in probes:
            probe.close()
        server.stop()
        forget_ovn_installation((server.data_dir / "installation").read_text().strip())


def test_a_gone_installation_s_network_is_an_orphan(server_factory, tmp_path):
    """An installation's routers name its data dir: while that data dir holds it, another
    installation leaves its network alone; once it is gone, `stratus host clean --orphans`
    removes the network from OVN and its VPCs' metadata namespaces from this machine (a dry
    run first), as it removes a gone installation's guests."""
    require_ovn()
    first_dir = tmp_path / "first"
    first = server_factory(data_dir=first_dir, name="first", config=CONFIG)
    installation = (first_dir / "installation").read_text().strip()
    routers = f"external_ids:stratus-installation={installation}"
    eventually("the first installation's routers, marked with its data dir", lambda: str(first_dir) in nbctl(
        "--bare", "--columns=external_ids", "find", "Logical_Router", routers).stdout)
    vpc = nbctl("--bare", "--columns=name", "find", "Logical_Router", routers).stdout.split()[0].removeprefix(
        "stratus-")
    eventually("its metadata namespace", lambda: Path(f"/run/netns/stratus-meta-{vpc}").exists())
    first.kill()
    second = server_factory(data_dir=tmp_path / "second", name="second", config=CONFIG)
    clean = [str(second.bin), "host", "clean", "--orphans", "--data-dir", str(second.data_dir)]

    def dry_run() -> str:
        done = subprocess.run([*clean, "--dry-run"], capture_output=True, text=True, timeout=120, env=server_env())
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert f"network-of-{installation}" not in dry_run(), "a live installation's network is no orphan"
    shutil.rmtree(first_dir)
    listed = dry_run()
    assert f"network-of-{installation}" in listed and f"stratus-meta-{vpc}" in listed, listed
    assert nbctl("--bare", "--columns=name", "find", "Logical_Router", routers).stdout.split(), "a dry run removes nothing"
    done = subprocess.run(clean, capture_output=True, text=True, timeout=120, env=server_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert not nbctl("--bare", "--columns=name", "find", "Logical_Router", routers).stdout.split(), done.stdout
    assert not Path(f"/run/netns/stratus-meta-{vpc}").exists(), done.stdout
    # The second installation's own network is untouched.
    own = (second.data_dir / "installation").read_text().strip()
    assert nbctl("--bare", "--columns=name", "find", "Logical_Router",
                 f"external_ids:stratus-installation={own}").stdout.split()
