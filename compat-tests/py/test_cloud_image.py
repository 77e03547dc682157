"""A Debian cloud image configures itself, the EC2 way, on real QEMU guests (issue 6), on the
embedded default's network: the account's default VPC on this machine's OVN (issue 16).

aws ec2 create-key-pair → run-instances with KeyName and `#cloud-config` user data → cloud-init
finds Stratus's metadata service (OVN's DHCP, SMBIOS says EC2) → `ssh -i key.pem admin@<public
address>` from the "internet" (a namespace on the public network) works, the hostname and the
user data's file are there. Then, from inside the guest: IMDSv1 and v2,
ModifyInstanceMetadataOptions, no way to pass for another instance, and the way out through the
internet gateway under the guest's public address. Security groups are OVN's ACLs: port 22 closed
until authorized and closed again after revoke, a group-to-group rule lets a member in and keeps
the internet out (B, the guest behind that rule, is the tiny test guest listening on port 22).

Also an installation started over beside a killed one (issue 24): a Stratus is killed (-9) with
a test guest running; a fresh data dir started on the same host and the same OVN names that guest
and the old installation's network in OVN (its log and `stratus doctor`), and the old data dir,
started again, still knows the guest as its own. Once the old data dir is gone, `stratus host
clean --orphans` removes the guest, the old installation's rows in OVN and its VPC's metadata
namespace.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from conftest import QEMU_CONFIG, aws, import_image, require_qemu, server_env
from ovn_helpers import NB, Internet, require_ovn

A_IP = "172.31.9.20"
B_IP = "172.31.9.21"
BOOT_TIMEOUT = 420.0
USER_DATA = """#cloud-config
write_files:
  - path: /var/tmp/stratus-user-data
    content: |
      written by user data
runcmd:
  - [sh, -c, "echo ran > /var/tmp/stratus-runcmd"]
"""


def ok(server, *args, timeout: float = 300) -> dict:
    code, out, err = aws(server, *args, timeout=timeout)
    assert code == 0, f"aws ec2 {' '.join(args)} failed ({code}):\n{err}"
    return json.loads(out) if out.strip() else {}


def wait_for(predicate, timeout: float, what: str, step: float = 0.5) -> float:
    """Polls until `predicate()`; answers how long it took."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout:.0f} s"
        time.sleep(step)
    return time.monotonic() - started


class Guest:
    """A guest reached by ssh from `via` (a command prefix: the internet's namespace)."""

    def __init__(self, address: str, key: Path, via: list[str]):
        self.address, self.key, self.via = address, key, via

    def ssh(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.via, "ssh", "-i", str(self.key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
             f"admin@{self.address}", command],
            capture_output=True, text=True, timeout=timeout)

    def run(self, command: str) -> str:
        done = self.ssh(command)
        assert done.returncode == 0, f"{command!r} failed on {self.address}: {done.stderr}"
        return done.stdout

    def can_log_in(self) -> bool:
        try:
            return self.ssh("true", timeout=20).returncode == 0
        except subprocess.TimeoutExpired:
            return False


# Run in the guest as root: the IP TTLs of the metadata service's answer to a token request.
TTL_PROBE = r"""
import socket, subprocess
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
raw.settimeout(3)
subprocess.run(["curl", "-s", "-o", "/dev/null", "-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 60",
                "http://169.254.169.254/latest/api/token"], check=True)
ttls = set()
try:
    while True:
        packet = raw.recv(65535)
        ip_header = (packet[0] & 0x0F) * 4
        payload = int.from_bytes(packet[2:4], "big") - ip_header - (packet[ip_header + 12] >> 4) * 4
        # Packets with data: the SYN-ACK leaves before the service knows who is asking.
        if packet[12:16] == bytes([169, 254, 169, 254]) and payload > 0:
            ttls.add(packet[8])
except socket.timeout:
    pass
print(sorted(ttls))
"""


def console(server, instance_id: str) -> str:
    return ok(server, "get-console-output", "--instance-id", instance_id, "--latest").get("Output", "")


def stratus_cli(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(server.bin), *args, "--data-dir", str(server.data_dir)], capture_output=True, text=True,
                          timeout=120, env=server_env())


def virsh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True, text=True, timeout=60)


def rows_of(installation: str) -> str:
    """The logical routers OVN holds for `installation`."""
    return subprocess.run(["ovn-nbctl", f"--db={NB}", "--bare", "--columns=name", "find", "Logical_Router",
                           f"external_ids:stratus-installation={installation}"],
                          capture_output=True, text=True, timeout=60).stdout


def test_an_installation_started_over_beside_a_killed_one(server_factory, test_image, tmp_path):
    """See the module's doc: two installations on one host and one OVN."""
    require_qemu()
    require_ovn()
    old_dir, new_dir = tmp_path / "old-data", tmp_path / "new-data"
    old = server_factory(data_dir=old_dir, name="old")
    old_image = import_image(old, test_image, "old-test-image")
    guest = ok(old, "run-instances", "--image-id", old_image, "--instance-type", "t3.nano",
               "--private-ip-address", A_IP)["Instances"][0]["InstanceId"]
    ok(old, "wait", "instance-running", "--instance-ids", guest)
    vpc = ok(old, "describe-vpcs")["Vpcs"][0]["VpcId"]
    old_id = (old_dir / "installation").read_text().strip()
    assert f"installation='{old_id}'" in virsh("dumpxml", guest).stdout.replace('"', "'")
    assert f"stratus-{vpc}" in rows_of(old_id), "its default VPC is a router in OVN"
    namespace = f"stratus-meta-{vpc}"
    deadline = time.monotonic() + 30
    while namespace not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout:
        assert time.monotonic() < deadline, f"no metadata namespace {namespace}"
        time.sleep(0.5)
    old.kill()

    new = server_factory(data_dir=new_dir, name="new")
    assert guest in new.log() and f"stratus host clean --installation {old_id}" in new.log(), new.log()[-3000:]
    doctor = stratus_cli(new, "doctor")
    assert doctor.returncode == 1 and guest in doctor.stdout and f"installation {old_id} (live" in doctor.stdout, \
        doctor.stdout + doctor.stderr
    assert f"network-of-{old_id}" in doctor.stdout, doctor.stdout
    new.stop()

    # The old data dir started again: its guest is its own, running, and no leftover.
    old = server_factory(data_dir=old_dir, name="old-again")
    state = ok(old, "describe-instances", "--instance-ids", guest)["Reservations"][0]["Instances"][0]["State"]
    assert state["Name"] == "running"
    assert guest not in stratus_cli(old, "doctor").stdout
    old.kill()

    # It is gone for good: its objects are orphans, removed when asked (a dry run first).
    subprocess.run(["rm", "-rf", str(old_dir)], check=True)
    new = server_factory(data_dir=new_dir, name="new-again")
    dry = stratus_cli(new, "host", "clean", "--orphans", "--dry-run")
    assert dry.returncode == 0 and guest in dry.stdout and f"network-of-{old_id}" in dry.stdout, \
        dry.stdout + dry.stderr
    assert virsh("dominfo", guest).returncode == 0, "a dry run removes nothing"
    cleaned = stratus_cli(new, "host", "clean", "--orphans")
    assert cleaned.returncode == 0 and cleaned.stdout.count("removed ") >= 3, cleaned.stdout + cleaned.stderr
    assert virsh("dominfo", guest).returncode != 0
    assert rows_of(old_id).strip() == "", "its rows in OVN are gone"
    assert namespace not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_cloud_image_key_user_data_metadata_and_security_groups(server_factory, cloud_image, test_image, tmp_path):
    require_qemu()
    require_ovn()
    server = server_factory(config=QEMU_CONFIG)
    internet = Internet.of(server)
    try:
        cloud_guests(server, internet, cloud_image, test_image, tmp_path)
    finally:
        internet.close()


def cloud_guests(server, internet: Internet, cloud_image, test_image, tmp_path):
    image_id = import_image(server, cloud_image, "debian-12-cloud")
    # B only has to accept TCP on port 22: the tiny test guest with a listener there boots in
    # seconds where a second Debian guest would take minutes of the machine's CPU.
    listener = dataclasses.replace(test_image, cmdline=f"{test_image.cmdline} stratus.sink=22")
    listener_image = import_image(server, listener, "port-22-listener")

    code, material, err = aws(server, "create-key-pair", "--key-name", "cloud", "--query", "KeyMaterial",
                              "--output", "text")
    assert code == 0, err
    key = tmp_path / "cloud.pem"
    key.write_text(material.strip() + "\n")
    key.chmod(0o600)

    ssh_group = ok(server, "create-security-group", "--group-name", "ssh", "--description", "ssh from anywhere")["GroupId"]
    ok(server, "authorize-security-group-ingress", "--group-id", ssh_group, "--protocol", "tcp", "--port", "22",
       "--cidr", "0.0.0.0/0")
    inner = ok(server, "create-security-group", "--group-name", "inner", "--description", "ssh from ssh")["GroupId"]
    ok(server, "authorize-security-group-ingress", "--group-id", inner, "--protocol", "tcp", "--port", "22",
       "--source-group", ssh_group)

    user_data = tmp_path / "user-data"
    user_data.write_text(USER_DATA)
    started = time.monotonic()
    a = ok(server, "run-instances", "--image-id", image_id, "--instance-type", "t3.micro", "--key-name", "cloud",
           "--security-group-ids", ssh_group, "--user-data", f"file://{user_data}",
           "--private-ip-address", A_IP)["Instances"][0]
    b = ok(server, "run-instances", "--image-id", listener_image, "--instance-type", "t3.nano",
           "--security-group-ids", inner, "--private-ip-address", B_IP,
           "--metadata-options", "HttpTokens=required,HttpPutResponseHopLimit=2")["Instances"][0]
    assert b["MetadataOptions"]["HttpTokens"] == "required" and b["MetadataOptions"]["HttpPutResponseHopLimit"] == 2

    # The default subnet maps public addresses at launch; the internet reaches A by its own.
    a_public, b_public = (ok(server, "describe-instances", "--instance-ids", i["InstanceId"])["Reservations"][0]
                          ["Instances"][0]["PublicIpAddress"] for i in (a, b))
    guest_a = Guest(a_public, key, internet.command())
    try:
        wait_for(guest_a.can_log_in, BOOT_TIMEOUT, f"ssh into {a['InstanceId']}", step=2)
    except AssertionError:
        pytest.fail(f"no ssh into the cloud guest; its console:\n{console(server, a['InstanceId'])[-6000:]}")
    ssh_ready = time.monotonic() - started
    print(f"\nRunInstances -> SSH ready: {ssh_ready:.1f} s")

    # cloud-init ran the EC2 way: hostname from the metadata, user data's file and command.
    assert guest_a.run("hostname").strip() == "ip-172-31-9-20"
    wait_for(lambda: guest_a.ssh("test -e /var/tmp/stratus-runcmd").returncode == 0, 120, "user data's runcmd")
    assert guest_a.run("cat /var/tmp/stratus-user-data") == "written by user data\n"
    assert "Amazon EC2" in guest_a.run("cat /sys/class/dmi/id/sys_vendor")
    assert "DataSourceEc2" in guest_a.run("cloud-id -l; cat /run/cloud-init/status.json") or \
        "aws" in guest_a.run("cloud-id")

    # The metadata service, from inside the guest.
    imds = "http://169.254.169.254/latest"
    assert guest_a.run(f"curl -sf {imds}/meta-data/instance-id") == a["InstanceId"]
    assert guest_a.run(f"curl -sf {imds}/user-data") == USER_DATA
    public_key = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True).stdout.split()[:2]
    assert guest_a.run(f"curl -sf {imds}/meta-data/public-keys/0/openssh-key").split()[:2] == public_key
    assert guest_a.run(f"curl -sf {imds}/meta-data/security-groups").strip() == "ssh"
    document = json.loads(guest_a.run(f"curl -sf {imds}/dynamic/instance-identity/document"))
    assert document["instanceId"] == a["InstanceId"] and document["privateIp"] == A_IP
    token = guest_a.run(f"curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' {imds}/api/token")
    with_token = f"curl -s -o /dev/null -w '%{{http_code}}' -H 'X-aws-ec2-metadata-token: {token}'"
    without = "curl -s -o /dev/null -w '%{http_code}'"
    assert guest_a.run(f"{with_token} {imds}/meta-data/instance-id") == "200"
    assert guest_a.run(f"{without} -H 'X-aws-ec2-metadata-token: forged' {imds}/meta-data/instance-id") == "401"

    ok(server, "modify-instance-metadata-options", "--instance-id", a["InstanceId"], "--http-tokens", "required")
    assert guest_a.run(f"{without} {imds}/meta-data/instance-id") == "401", "IMDSv1 once tokens are required"
    assert guest_a.run(f"{with_token} {imds}/meta-data/instance-id") == "200"
    ok(server, "modify-instance-metadata-options", "--instance-id", a["InstanceId"], "--http-endpoint", "disabled")
    assert guest_a.run(f"{with_token} {imds}/meta-data/instance-id") == "403"
    ok(server, "modify-instance-metadata-options", "--instance-id", a["InstanceId"], "--http-endpoint", "enabled",
       "--http-tokens", "optional")
    # The hop limit is the IP TTL of the service's answers: 1 by default, what is asked after.
    assert guest_a.run(f"sudo python3 -c {shlex.quote(TTL_PROBE)}").strip() == "[1]"
    ok(server, "modify-instance-metadata-options", "--instance-id", a["InstanceId"],
       "--http-put-response-hop-limit", "3")
    assert guest_a.run(f"sudo python3 -c {shlex.quote(TTL_PROBE)}").strip() == "[3]"
    described = ok(server, "describe-instances", "--instance-ids", a["InstanceId"])
    options = described["Reservations"][0]["Instances"][0]["MetadataOptions"]
    assert options["HttpTokens"] == "optional" and options["HttpEndpoint"] == "enabled"
    assert options["HttpPutResponseHopLimit"] == 3

    # A guest cannot pass for another: packets from B's address leave A's NIC nowhere.
    spoof = guest_a.ssh(f"sudo ip addr add {B_IP}/32 dev eth0 && echo added && "
                        f"curl -s -m 5 --interface {B_IP} {imds}/meta-data/instance-id; "
                        f"echo rc=$?; sudo ip addr del {B_IP}/32 dev eth0")
    assert "added" in spoof.stdout, f"the guest could not take the address to try: {spoof.stderr}"
    assert b["InstanceId"] not in spoof.stdout and "rc=0" not in spoof.stdout, spoof.stdout

    # Out through the internet gateway, under A's public address (1:1 NAT).
    seen = internet.sources_seen(lambda: guest_a.run(f"ping -c 2 -W 2 {internet.address}"))
    assert a_public in seen and A_IP not in seen, seen

    # Group to group: B lets in ssh from members of `ssh` (A), not from the internet.
    try:
        wait_for(lambda: guest_a.ssh(f"timeout 3 bash -c '</dev/tcp/{B_IP}/22'").returncode == 0, BOOT_TIMEOUT,
                 "A reaching B's port 22", step=2)
    except AssertionError:
        pytest.fail(f"A cannot reach B; B's console:\n{console(server, b['InstanceId'])[-6000:]}")
    assert not internet.connects(b_public, 22), "the internet is in no group B lets in"

    # Port 22 on B: closed, authorized (open within a second or so), revoked (closed as soon).
    ok(server, "authorize-security-group-ingress", "--group-id", inner, "--protocol", "tcp", "--port", "22",
       "--cidr", f"{internet.address}/32")
    opened = wait_for(lambda: internet.connects(b_public, 22), 10, "port 22 after authorize")
    ok(server, "revoke-security-group-ingress", "--group-id", inner, "--protocol", "tcp", "--port", "22",
       "--cidr", f"{internet.address}/32")
    closed = wait_for(lambda: not internet.connects(b_public, 22, timeout=1), 10, "port 22 after revoke")
    print(f"authorize -> open: {opened:.1f} s, revoke -> closed: {closed:.1f} s")

    # The last word: revoking A's port-22 rule cuts ssh within seconds.
    ok(server, "revoke-security-group-ingress", "--group-id", ssh_group, "--protocol", "tcp", "--port", "22",
       "--cidr", "0.0.0.0/0")
    cut = wait_for(lambda: not internet.connects(a_public, 22, timeout=1), 10, "ssh cut after revoke")
    assert not guest_a.can_log_in()
    print(f"revoke -> ssh cut: {cut:.1f} s")

    ok(server, "terminate-instances", "--instance-ids", a["InstanceId"], b["InstanceId"])
    ok(server, "wait", "instance-terminated", "--instance-ids", a["InstanceId"], b["InstanceId"])
