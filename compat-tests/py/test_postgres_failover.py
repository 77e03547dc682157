"""The database's own failover (issue 20, item 4): Stratus keeps its state on a PostgreSQL
primary with a synchronous standby (`scripts/postgres pair`); the primary is killed (every
process, kill -9) in the middle of a RunInstances burst and the standby promoted, as Patroni or
pg_auto_failover would. Stratus finds the new primary by itself (libpq's multi-host URL with
`target_session_attrs=read-write`); every launch it acknowledged is there, once; a launch that
failed during the outage and is retried with its ClientToken becomes one instance, not two.

The hosts are libvirt's test driver: the database is what this test is about. Needs PostgreSQL
from Debian's packages (scripts/setup-tools installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import BotoCoreError, ClientError

import conftest
from conftest import REPO, Stratus, ec2_client, free_port, wait_for_binary
from conftest import wait_until as wait

POSTGRES = str(REPO / "scripts" / "postgres")
WORKERS = 6


@pytest.fixture
def database_pair():
    """A primary and its synchronous standby on loopback, in a directory the postgres role can
    reach (pytest's own are root's alone); stopped and removed after."""
    top = Path(f"/tmp/stratus-pg-pair-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    out = subprocess.run([POSTGRES, "pair", str(top), str(free_port()), str(free_port())], capture_output=True,
                         text=True, timeout=180)
    try:
        assert out.returncode == 0, out.stderr
        url = out.stdout.strip().splitlines()[-1].removeprefix("url=")
        assert url.startswith("postgresql://") and "target_session_attrs=read-write" in url, url
        yield top, url
    finally:
        subprocess.run([POSTGRES, "stop", str(top)], capture_output=True, timeout=60)
        shutil.rmtree(top, ignore_errors=True)


def test_the_primary_dies_mid_burst_and_the_promoted_standby_has_every_acknowledged_launch(
        tmp_path, database_pair, test_image):
    top, url = database_pair
    config = tmp_path / "stratus.toml"
    config.write_text(f"""
[[hosts]]
uri = "test:///default"
vcpus = 512
memory_mib = 262144
cpu_ratio = 1.0

[instances]
stop_timeout_secs = 2
sweep_interval_ms = 200

[network]
ovn_northbound = "none"

[storage]
backend = "postgres"
url = "{url}"
connections = 8
lease_secs = 3
""")
    server = Stratus(bin=wait_for_binary(), data_dir=tmp_path / "data", port=free_port(),
                     log_path=tmp_path / "stratus.log", config=config).start()
    try:
        run_burst(server, conftest.import_image(server, test_image, "failover"), top)
    finally:
        server.stop()


def run_burst(server: Stratus, image_id: str, top: Path):
    acknowledged: dict[str, str] = {}  # ClientToken -> the instance its launch was answered with
    failures: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    crashed_workers: list[BaseException] = []  # a thread's failure is not pytest's: kept here

    def worker():
        try:
            launches()
        except BaseException as e:  # noqa: B036
            crashed_workers.append(e)

    def launches():
        client = ec2_client(server)
        while not stop.is_set():
            token = uuid.uuid4().hex
            # As an SDK user would: the same token until the launch is answered.
            deadline = time.monotonic() + 120
            while True:
                try:
                    answer = client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1,
                                                  MaxCount=1, ClientToken=token)
                    with lock:
                        acknowledged[token] = answer["Instances"][0]["InstanceId"]
                    time.sleep(0.1)
                    break
                except ClientError as e:
                    with lock:
                        failures.append(e.response["Error"]["Code"])
                except BotoCoreError as e:  # a timeout: the server must not stall
                    with lock:
                        failures.append(type(e).__name__)
                assert time.monotonic() < deadline, f"launch {token} never answered"
                time.sleep(0.2)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()

    def count() -> int:
        with lock:
            return len(acknowledged)

    wait(lambda: count() >= 12, 60, "launches before the crash")
    subprocess.run([POSTGRES, "crash", str(top / "primary")], check=True, timeout=30)
    crashed, before = time.monotonic(), count()
    time.sleep(2)  # the database is gone for a while: requests fail, none hangs
    subprocess.run([POSTGRES, "promote", str(top)], check=True, timeout=60)
    wait(lambda: count() >= before + 12, 90, "launches answered by the promoted standby")
    print(f"12 more launches answered {time.monotonic() - crashed:.1f} s after the crash; "
          f"{len(failures)} failed attempts, retried with their tokens: {sorted(set(failures))}")
    stop.set()
    for thread in threads:
        thread.join(timeout=150)
        assert not thread.is_alive(), "a launch was never answered"
    assert not crashed_workers, crashed_workers
    assert server.proc.poll() is None, "the server died with its database"

    client = ec2_client(server)
    # Every acknowledged launch is there, once; nothing else is.
    found = {i["InstanceId"]: i for r in client.describe_instances()["Reservations"] for i in r["Instances"]}
    ids = set(acknowledged.values())
    assert len(ids) == len(acknowledged), "two tokens answered with one instance"
    assert set(found) == ids, f"lost: {ids - set(found)}; not acknowledged: {set(found) - ids}"
    for instance in found.values():
        assert instance["ClientToken"] in acknowledged
        assert acknowledged[instance["ClientToken"]] == instance["InstanceId"]
    # A retry after the failover is answered as the first answer was.
    for token, instance_id in list(acknowledged.items())[:: max(1, len(acknowledged) // 8)]:
        again = client.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                     ClientToken=token)
        assert again["Instances"][0]["InstanceId"] == instance_id
    # The conductor works on the new primary: every launch runs, then goes.
    conftest.wait_states(client, sorted(ids), "running", timeout=120)
    client.terminate_instances(InstanceIds=sorted(ids))
    conftest.wait_states(client, sorted(ids), "terminated", timeout=120)

