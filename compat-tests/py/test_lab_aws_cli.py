"""Live migration and host maintenance with the real aws cli, on two lab hosts (`scripts/lab`).

The extension actions come from Stratus's botocore model, loaded the documented way
(`aws configure add-model`). Guests are real (TCG here): the moved guest's serial counter must go
on without a reboot, and a drained host must end up empty with every guest still running.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BOOT_MARKER, aws, clean_env, create_account, import_image, require_qemu, write_credentials

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "ec2api/model/stratus/2016-11-15/service-2.json"


@pytest.fixture
def lab():
    require_qemu()
    out = subprocess.run([str(REPO / "scripts/lab"), "up", "2"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    config = re.search(r"^config=(\S+)$", out.stdout, re.MULTILINE).group(1)
    yield Path(config).read_text()
    subprocess.run([str(REPO / "scripts/lab"), "down"], capture_output=True, timeout=120)


def counter(console: str) -> int:
    return max((int(n) for n in re.findall(r"stratus-counter (\d+)", console)), default=0)


def imds_answers(console: str) -> list[tuple[int, str]]:
    """The test guest's `stratus-imds n=N instance-id=ID` lines: (counter, id)."""
    return [(int(n), i) for n, i in re.findall(r"stratus-imds n=(\d+) instance-id=(\S+)", console)]


def test_migrate_and_drain_with_the_aws_cli(lab, server_factory, test_image, tmp_path):
    server = server_factory(config=lab + "\n[instances]\nsweep_interval_ms = 500\nstop_timeout_secs = 20\n",
                            metadata=True)
    home = tmp_path / "home"
    home.mkdir()
    added = subprocess.run(["aws", "configure", "add-model", "--service-model", f"file://{MODEL}",
                            "--service-name", "stratus"], env=clean_env(HOME=str(home)),
                           capture_output=True, text=True)
    assert added.returncode == 0, added.stderr

    def ok(*args, service="ec2", creds=None):
        code, out, err = aws(server, *args, service=service, home=home, creds=creds)
        assert code == 0, f"aws {service} {' '.join(args)} failed ({code}):\n{err}"
        return json.loads(out) if out.strip() else {}

    def hosts():
        return {h["HostId"]: h for h in ok("describe-hosts", service="stratus")["Hosts"]}

    def console(instance_id):
        return ok("get-console-output", "--instance-id", instance_id).get("Output", "")

    def wait_migration(migration_id, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            m = ok("describe-instance-migrations", "--migration-ids", migration_id, service="stratus")["Migrations"][0]
            if m["Status"] in ("completed", "failed", "cancelled"):
                return m
            assert time.monotonic() < deadline, f"migration still {m['Status']}"
            time.sleep(0.5)

    image_id = import_image(server, test_image, "lab image")
    ids = [i["InstanceId"] for i in ok("run-instances", "--image-id", image_id, "--instance-type", "t3.nano",
                                          "--count", "3")["Instances"]]
    ok("wait", "instance-running", "--instance-ids", *ids)
    placement = {i: h for h, v in hosts().items() for i in (x["InstanceId"] for x in v["Instances"])}
    assert len(set(placement.values())) == 2, "spread: both hosts are used"
    crowded = max(set(placement.values()), key=list(placement.values()).count)
    lone = next(i for i, h in placement.items() if h != crowded)
    deadline = time.monotonic() + 120
    while BOOT_MARKER not in console(lone):
        assert time.monotonic() < deadline, "the guest did not boot"
        time.sleep(2)
    before = counter(console(lone))
    address = ok("describe-instances", "--instance-ids", lone)["Reservations"][0]["Instances"][0]["PrivateIpAddress"]

    def pings(seconds=5):
        return subprocess.run(["ping", "-c", "1", "-w", str(seconds), address], capture_output=True).returncode == 0

    # Security groups hold on the lab hosts too: the host's ping gets in once the group says so.
    assert not pings(3), "the default group must keep the host's ping out"
    ok("authorize-security-group-ingress", "--group-name", "default", "--protocol", "icmp", "--port", "-1",
       "--cidr", "172.31.0.1/32")
    assert pings(20), "ICMP authorized, yet no answer"

    # Move the lone instance over to the crowded host; the guest runs on without a reboot.
    migration = ok("migrate-instance", "--instance-id", lone, "--target-host-id", crowded,
                   service="stratus")["Migration"]
    assert migration["Status"] in ("queued", "preparing", "copying", "completed")
    done = wait_migration(migration["MigrationId"])
    assert done["Status"] == "completed", done
    assert done["TargetHostId"] == crowded and done["TotalTimeMillis"] > 0 and done["MemoryTotalBytes"] > 0
    print(f"migration: total {done['TotalTimeMillis']} ms, downtime {done['DowntimeMillis']} ms")
    assert {x["InstanceId"] for x in hosts()[crowded]["Instances"]} == set(ids)
    time.sleep(2.5)
    after = console(lone)
    assert after.count(BOOT_MARKER) == 1 and counter(after) > before, "the counter went on without a reboot"
    # The metadata service still knows the guest on its new host (the guest asks every 5 s).
    moved_at = counter(after)
    deadline = time.monotonic() + 30
    while not any(n > moved_at for n, _ in imds_answers(console(lone))):
        assert time.monotonic() < deadline, "no metadata answer after the migration"
        time.sleep(2)
    assert {i for _, i in imds_answers(console(lone))} == {lone}, "answered as another instance"
    # The same rules on the destination, and still kept up to date there.
    assert pings(10), "the group's ICMP rule did not follow the guest"
    ok("revoke-security-group-ingress", "--group-name", "default", "--protocol", "icmp", "--port", "-1",
       "--cidr", "172.31.0.1/32")
    deadline = time.monotonic() + 10
    while pings(1):
        assert time.monotonic() < deadline, "revoked on the destination, yet the guest still answers"
    # The stock EC2 model reads the same answer (without Stratus's fields).
    assert crowded in {h["HostId"] for h in ok("describe-hosts")["Hosts"]}

    # Only admins migrate.
    user = create_account(server, "not-an-admin")
    creds = write_credentials(tmp_path / "user-creds", user.access_key, user.secret_key)
    code, _, err = aws(server, "migrate-instance", "--instance-id", lone, service="stratus", home=home, creds=creds)
    assert code != 0 and "UnauthorizedOperation" in err, err

    # Drain the host running all three: it empties, every guest still running, nothing new lands there.
    ok("modify-hosts", "--host-ids", crowded, "--host-maintenance", "on", service="stratus")
    deadline = time.monotonic() + 240
    while hosts()[crowded]["Instances"]:
        assert time.monotonic() < deadline, "the drain did not finish"
        time.sleep(1)
    assert hosts()[crowded]["HostMaintenance"] == "on"
    states = {i["InstanceId"]: i["State"]["Name"] for r in ok("describe-instances", "--instance-ids", *ids)["Reservations"]
              for i in r["Instances"]}
    assert set(states.values()) == {"running"}, states
    drained = [m for m in ok("describe-instance-migrations", service="stratus")["Migrations"]
               if m["SourceHostId"] == crowded]
    assert len(drained) == 3 and all(m["Status"] == "completed" for m in drained), drained
    extra = ok("run-instances", "--image-id", image_id, "--instance-type", "t3.nano")["Instances"][0]["InstanceId"]
    assert extra not in {x["InstanceId"] for x in hosts()[crowded]["Instances"]}
    ok("modify-hosts", "--host-ids", crowded, "--host-maintenance", "off", service="stratus")
    assert hosts()[crowded]["HostMaintenance"] == "off"

    # Stratus killed in the middle of a (slowed) migration: after a restart the migration is
    # settled from what libvirt reports, and exactly one host runs the guest, the one Stratus names.
    config = server.config.read_text()
    slow = ok("migrate-instance", "--instance-id", ids[0], "--bandwidth-mi-bps", "4", service="stratus")["Migration"]
    time.sleep(3)
    server.proc.kill()
    server.proc.wait(timeout=10)
    server = server_factory(data_dir=server.data_dir, name="restarted", config=config)
    settled = wait_migration(slow["MigrationId"], timeout=180)
    assert settled["Status"] in ("completed", "failed"), settled
    print(f"killed mid-migration, settled as {settled['Status']}: {settled.get('ErrorMessage')}")
    running_on = [h["HostId"] for h in hosts().values()
                  if ids[0] in subprocess.run(["virsh", "-c", h["Uri"], "list", "--name"], capture_output=True,
                                              text=True).stdout.split()]
    named = [h for h, v in hosts().items() if ids[0] in {x["InstanceId"] for x in v["Instances"]}]
    assert running_on == named and len(named) == 1, (running_on, named)
    assert ok("describe-instances", "--instance-ids", ids[0])["Reservations"][0]["Instances"][0]["State"]["Name"] \
        == "running"

    ok("terminate-instances", "--instance-ids", *ids, extra)
    ok("wait", "instance-terminated", "--instance-ids", *ids, extra)
