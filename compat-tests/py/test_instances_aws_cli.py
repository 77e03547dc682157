"""The aws cli driving real QEMU guests on the embedded default (each account's default VPC on
the machine's OVN, the machine itself the public network's router): run 2 → wait running →
console shows the boot marker → the host pings the guest's public address → stop → resize →
start → image the running guest → terminate → wait terminated, disks gone."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from pathlib import Path

from conftest import BOOT_MARKER, DEFAULT_PUBLIC_CIDR, QEMU_CONFIG, aws, import_image, require_qemu


def ok(server, *args, timeout: float = 300) -> dict:
    code, out, err = aws(server, *args, timeout=timeout)
    assert code == 0, f"aws ec2 {' '.join(args)} failed ({code}):\n{err}"
    return json.loads(out) if out.strip() else {}


def test_instance_lifecycle_on_real_qemu(server_factory, test_image):
    require_qemu()
    # The public network this machine is the router of (203.0.113.1 on br-ex): as in the README.
    server = server_factory(config=QEMU_CONFIG, public=DEFAULT_PUBLIC_CIDR)
    image_id = import_image(server, test_image, "cli test image")
    # The cli's own `--secondary-private-ip-address-count` asks through NetworkInterface.1.
    launched = ok(server, "run-instances", "--image-id", image_id, "--count", "2", "--instance-type", "t3.nano",
                  "--secondary-private-ip-address-count", "1",
                  "--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value=cli-test}]")
    ids = [i["InstanceId"] for i in launched["Instances"]]
    assert len(ids) == 2
    ok(server, "wait", "instance-running", "--instance-ids", *ids)
    described = ok(server, "describe-instances", "--filters", "Name=tag:Name,Values=cli-test",
                   "Name=instance-state-name,Values=running")
    instances = [i for r in described["Reservations"] for i in r["Instances"]]
    assert sorted(i["InstanceId"] for i in instances) == sorted(ids)

    first = instances[0]
    deadline = time.monotonic() + 90
    while True:
        console = ok(server, "get-console-output", "--instance-id", first["InstanceId"], "--latest")
        text = console.get("Output", "")  # the cli decodes the base64 itself
        if BOOT_MARKER in text:
            break
        assert time.monotonic() < deadline, f"no boot marker on the console:\n{text[-2000:]}"
        time.sleep(2)
    for i in instances:
        held = [(a["PrivateIpAddress"], a["Primary"]) for a in i["NetworkInterfaces"][0]["PrivateIpAddresses"]]
        assert len(held) == 2 and held[0] == (i["PrivateIpAddress"], True) and not held[1][1], held
    # The default subnet maps a public address at launch, as EC2's does.
    assert ipaddress.ip_address(first["PublicIpAddress"]) in ipaddress.ip_network(DEFAULT_PUBLIC_CIDR), first
    assert first["PrivateIpAddress"].startswith("172.31."), first

    # The default group lets in only its own members: the host's ping is dropped until the
    # group allows ICMP (security groups are OVN's ACLs).
    def ping(seconds: int) -> bool:
        # `-c 1 -w N`: done at the first reply; a TCG guest on a busy machine may answer late.
        return subprocess.run(["ping", "-c", "1", "-w", str(seconds), first["PublicIpAddress"]],
                              capture_output=True).returncode == 0

    assert not ping(3), "the default group must not let the host's ping in"
    ok(server, "authorize-security-group-ingress", "--group-name", "default", "--protocol", "icmp", "--port", "-1",
       "--cidr", "0.0.0.0/0")
    assert ping(20), "ICMP authorized, yet the guest does not answer"

    ok(server, "stop-instances", "--instance-ids", ids[0])
    ok(server, "wait", "instance-stopped", "--instance-ids", ids[0])
    ok(server, "modify-instance-attribute", "--instance-id", ids[0], "--instance-type", "Value=t3.micro")
    attribute = ok(server, "describe-instance-attribute", "--instance-id", ids[0], "--attribute", "instanceType")
    assert attribute["InstanceType"] == {"Value": "t3.micro"}
    ok(server, "start-instances", "--instance-ids", ids[0])
    ok(server, "wait", "instance-running", "--instance-ids", ids[0])
    # An image of the running guest, which runs on.
    image = ok(server, "create-image", "--instance-id", ids[0], "--name", "cli image", "--no-reboot")["ImageId"]
    ok(server, "wait", "image-available", "--image-ids", image)
    ok(server, "wait", "instance-running", "--instance-ids", ids[0])
    ok(server, "deregister-image", "--image-id", image)
    terminated = ok(server, "terminate-instances", "--instance-ids", *ids)
    assert all(c["CurrentState"]["Name"] == "shutting-down" for c in terminated["TerminatingInstances"])
    ok(server, "wait", "instance-terminated", "--instance-ids", *ids)
    for instance_id in ids:
        assert not (Path(server.data_dir) / "instances" / instance_id).exists(), "the instance's disk is gone"
