"""Several `stratus serve` replicas on one PostgreSQL database (issue 20): every replica serves
the API, one at a time does the conductor's work under a lease, a replica takes over when the
leader is killed, and a leader paused past its lease leads no more when it wakes.

The replicas share a data dir (the shared storage every replica of a real installation sees),
libvirt's local daemon (real domains, which both see) and this machine's OVN, on a public
network of their own; the one with the conductor's turn serves the VPCs' metadata. Needs the
tests' PostgreSQL (`STRATUS_TEST_POSTGRES`, set by scripts/test) and QEMU (`STRATUS_TEST_QEMU`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import uuid

import pytest

import conftest
from conftest import REPO, Stratus, ec2_client, free_port, require_qemu, server_env, wait_for_binary
from conftest import wait_until as wait
from test_extensions_boto3 import stratus_client

LEASE_SECS = 3
CONFIG = f"""
[instances]
stop_timeout_secs = 5
sweep_interval_ms = 300

[network]
public_cidr = "{{public}}"

[monitoring]
interval_ms = 1000

[storage]
backend = "postgres"
url = "{{url}}"
connections = 8
lease_secs = {LEASE_SECS}
"""


@contextlib.contextmanager
def replicas(tmp_path, hosts: str = ""):
    """Starts replicas on one fresh database (with `hosts`' [[hosts]], the local daemon without);
    all are killed and the database dropped after."""
    require_qemu()
    if not os.environ.get("STRATUS_TEST_POSTGRES"):
        pytest.fail("STRATUS_TEST_POSTGRES is not set: run scripts/postgres up (scripts/test does)")
    data_dir = tmp_path / "shared-data"
    url = conftest.postgres_database(data_dir)
    config = tmp_path / "stratus.toml"
    config.write_text(hosts + CONFIG.replace("{url}", url).replace("{public}", conftest.private_public_network()))
    started: list[Stratus] = []

    def start(name: str) -> Stratus:
        server = Stratus(bin=wait_for_binary(), data_dir=data_dir, port=free_port(), log_path=tmp_path / f"{name}.log",
                         config=config)
        started.append(server.start())
        return server

    start.config = config
    start.data_dir = data_dir
    try:
        yield start
    finally:
        for server in started:
            server.kill()
        # The domains of instances a failed test left (the lab's go with the lab).
        for instance in (data_dir / "instances").glob("i-*"):
            subprocess.run(["virsh", "-c", "qemu:///system", "destroy", instance.name], capture_output=True)
            subprocess.run(["virsh", "-c", "qemu:///system", "undefine", instance.name], capture_output=True)
        try:
            conftest.forget_ovn_installation((data_dir / "installation").read_text().strip())
        except OSError:
            pass
        subprocess.run([str(REPO / "scripts" / "postgres"), "dropdb", conftest.postgres_database_name(data_dir)],
                       capture_output=True, timeout=60)


@pytest.fixture
def cluster(tmp_path):
    with replicas(tmp_path) as start:
        yield start


def leader(start) -> str | None:
    """`stratus cluster status`: the leading replica's name, or None."""
    out = subprocess.run([str(wait_for_binary()), "cluster", "status", "--config", str(start.config), "--data-dir",
                          str(start.data_dir)], capture_output=True, text=True, timeout=30, env=server_env())
    assert out.returncode == 0, out.stderr
    found = re.search(r"^leader: (\S+) \(epoch (\d+)", out.stdout, re.MULTILINE)
    return found.group(1) if found else None


def leads(start, server: Stratus) -> bool:
    name = leader(start)
    return name is not None and f"/127.0.0.1:{server.port}/" in name


def cluster_status(start) -> str:
    out = subprocess.run([str(wait_for_binary()), "cluster", "status", "--config", str(start.config), "--data-dir",
                          str(start.data_dir)], capture_output=True, text=True, timeout=30, env=server_env())
    assert out.returncode == 0, out.stderr
    return out.stdout


def replica_id(plane: dict, server: Stratus) -> str:
    [found] = [r["ReplicaId"] for r in plane["Replicas"] if f"/127.0.0.1:{server.port}/" in r["ReplicaId"]]
    return found


def replicas_seen(asked: Stratus, states: list[tuple[Stratus, str]]) -> dict | None:
    """DescribeHosts' control plane (admins), when it lists each replica in `states` (once) in
    its state there."""
    plane = stratus_client(asked).describe_hosts()["ControlPlane"]
    for server, state in states:
        if [r["State"] for r in plane["Replicas"] if f"/127.0.0.1:{server.port}/" in r["ReplicaId"]] != [state]:
            return None
    return plane


def imds_answers(client, instance_id: str) -> list[tuple[int, str]]:
    """What the test guest was told by the metadata service: it asks every 5 s and prints
    `stratus-imds n=N instance-id=ID` on its console, N its counter then."""
    output = client.get_console_output(InstanceId=instance_id).get("Output", "")
    return [(int(n), i) for n, i in re.findall(r"stratus-imds n=(\d+) instance-id=(\S+)\r?\n", output)]


def launch(client, image_id: str, token: str | None = None) -> str:
    params = dict(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1)
    if token:
        params["ClientToken"] = token
    return client.run_instances(**params)["Instances"][0]["InstanceId"]


def states(client, ids: list[str]) -> dict[str, str]:
    found = client.describe_instances(InstanceIds=ids)["Reservations"]
    return {i["InstanceId"]: i["State"]["Name"] for r in found for i in r["Instances"]}


def test_one_leader_and_a_takeover_when_it_is_killed(cluster, test_image):
    a = cluster("a")
    wait(lambda: leads(cluster, a), 15, "the first replica to lead")
    b = cluster("b")
    image_id = conftest.import_image(a, test_image, "replicated")
    ca, cb = ec2_client(a), ec2_client(b)
    assert leads(cluster, a), "a second replica does not take over a live leader"
    # Admins see both replicas and the leader, from either.
    plane = wait(lambda: replicas_seen(b, [(a, "leader"), (b, "follower")]), 10, "both replicas listed")
    assert plane["Store"] == "postgres" and plane["LeaderId"] == replica_id(plane, a)
    assert replicas_seen(a, [(a, "leader"), (b, "follower")])
    status = cluster_status(cluster)
    assert re.search(rf"^leader +[0-9.]+ s ago +\S+/127\.0\.0\.1:{a.port}/", status, re.MULTILINE), status
    assert re.search(rf"^follower +[0-9.]+ s ago +\S+/127\.0\.0\.1:{b.port}/", status, re.MULTILINE), status

    # Both serve the API: a launch through the follower is carried out by the leader.
    token = uuid.uuid4().hex
    first = launch(ca, image_id, token)
    second = launch(cb, image_id)
    wait(lambda: set(states(cb, [first, second]).values()) == {"running"}, 90, "both instances running")
    assert launch(cb, image_id, token) == first, "a ClientToken is one launch on every replica"

    # kill -9 the leader: the follower takes over within the lease, resumes what was pending,
    # and answers a retried launch as the first answer did.
    pending = launch(cb, image_id)
    killed = time.monotonic()
    a.kill()
    took = wait(lambda: leads(cluster, b) and time.monotonic() - killed, 30, "the follower to take over")
    print(f"takeover after kill -9: {took:.1f} s (lease {LEASE_SECS} s)")
    assert took <= LEASE_SECS * 2 + 2, took
    # The killed one is listed as unreachable (for an hour), the survivor as the leader.
    plane = wait(lambda: replicas_seen(b, [(a, "unreachable"), (b, "leader")]), 10, "the killed replica unreachable")
    assert plane["LeaderId"] == replica_id(plane, b)
    wait(lambda: states(cb, [pending])[pending] == "running", 90, "the pending launch to run under the new leader")
    # The new leader serves the VPC's metadata: a guest that asked the old one gets answers
    # again, from the port bound to this machine's chassis (the serving replica's).
    asked = max((n for n, _ in imds_answers(cb, first)), default=-1)
    wait(lambda: any(n > asked for n, _ in imds_answers(cb, first)), 60, "metadata answers under the new leader")
    assert {i for _, i in imds_answers(cb, first)} == {first}
    vpc = cb.describe_instances(InstanceIds=[first])["Reservations"][0]["Instances"][0]["VpcId"]
    requested = subprocess.run(["ovn-nbctl", "--db=unix:/run/stratus/ovn/ovnnb_db.sock", "get",
                                "Logical_Switch_Port", f"stratus-{vpc}-meta", "options:requested-chassis"],
                               capture_output=True, text=True).stdout.strip().strip('"')
    assert requested == socket.gethostname(), requested
    assert launch(cb, image_id, token) == first
    ids = [first, second, pending]
    assert len(states(cb, ids)) == 3
    everything = [i["InstanceId"] for r in cb.describe_instances()["Reservations"] for i in r["Instances"]]
    assert sorted(everything) == sorted(ids), "nothing duplicated, nothing lost"
    cb.terminate_instances(InstanceIds=ids)
    wait(lambda: set(states(cb, ids).values()) == {"terminated"}, 90, "every instance terminated")


def test_a_leader_paused_past_its_lease_leads_no_more(cluster, test_image):
    a = cluster("a")
    wait(lambda: leads(cluster, a), 15, "the first replica to lead")
    b = cluster("b")
    image_id = conftest.import_image(b, test_image, "replicated")
    cb = ec2_client(b)

    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        wait(lambda: leads(cluster, b), LEASE_SECS * 3 + 5, "the follower to take over from a paused leader")
        instance = launch(cb, image_id)
        wait(lambda: states(cb, [instance])[instance] == "running", 90, "a launch under the new leader")
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    # Awake again, the former leader knows it lost the lease (its own clock says its turn
    # ended; the database says another holds it) and does not take it back.
    wait(lambda: "lost the conductor lease" in a.log(), 20, "the former leader to notice")
    for _ in range(LEASE_SECS * 2 * 5):
        assert leads(cluster, b), "the former leader took the lease back from a live one"
        time.sleep(0.2)
    # It still serves the API; the leader does the work.
    ca = ec2_client(a)
    ca.terminate_instances(InstanceIds=[instance])
    wait(lambda: states(cb, [instance])[instance] == "terminated", 60, "the instance terminated")


def test_bursts_to_both_replicas_lose_and_duplicate_nothing_when_the_leader_is_killed(cluster, test_image):
    """Launches and terminations go to both replicas while the leader is killed: a client whose
    replica died retries on the other with the same ClientToken, as one behind a load balancer
    would; every acknowledged launch is one instance, every acknowledged termination ends its
    instance, and nothing stays pending under the new leader."""
    import threading

    from botocore.exceptions import BotoCoreError, ClientError

    a = cluster("a")
    wait(lambda: leads(cluster, a), 15, "the first replica to lead")
    b = cluster("b")
    image_id = conftest.import_image(b, test_image, "burst")
    launched: dict[str, str] = {}  # ClientToken -> instance
    terminated: set[str] = set()
    lock, stop = threading.Lock(), threading.Event()

    def answered(call, servers):
        """`call` on the first replica, then on the other while one fails; the answer."""
        deadline = time.monotonic() + 90
        turn = 0
        while True:
            try:
                return call(ec2_client(servers[turn % 2]))
            except (ClientError, BotoCoreError):
                assert time.monotonic() < deadline, "no replica answered for 90 s"
                turn += 1
                time.sleep(0.2)

    crashed_workers: list[BaseException] = []  # a thread's failure is not pytest's: kept here

    def worker(first: Stratus, other: Stratus):
        try:
            bursts(first, other)
        except BaseException as e:  # noqa: B036
            crashed_workers.append(e)

    def bursts(first: Stratus, other: Stratus):
        servers = [first, other]
        while not stop.is_set():
            token = uuid.uuid4().hex
            instance = answered(lambda c: launch(c, image_id, token), servers)
            with lock:
                launched[token] = instance
            answered(lambda c: c.terminate_instances(InstanceIds=[instance]), servers)
            with lock:
                terminated.add(instance)

    threads = [threading.Thread(target=worker, args=pair, daemon=True) for pair in ((a, b), (b, a), (a, b), (b, a))]
    for thread in threads:
        thread.start()
    wait(lambda: len(terminated) >= 6, 120, "a burst under the first leader")
    a.kill()
    before = len(terminated)
    wait(lambda: leads(cluster, b), LEASE_SECS * 3 + 5, "the survivor to take over")
    wait(lambda: len(terminated) >= before + 6, 120, "the burst going on under the new leader")
    stop.set()
    for thread in threads:
        thread.join(timeout=200)
        assert not thread.is_alive(), "a request was never answered"
    assert not crashed_workers, crashed_workers

    cb = ec2_client(b)
    ids = set(launched.values())
    assert len(ids) == len(launched), "two launches answered with one instance"
    everything = {i["InstanceId"]: i for r in cb.describe_instances()["Reservations"] for i in r["Instances"]}
    assert set(everything) == ids, f"lost: {ids - set(everything)}; unacknowledged: {set(everything) - ids}"
    assert terminated == ids
    # A retried launch is answered as the first answer was, on the survivor.
    for token, instance in list(launched.items())[:3]:
        assert launch(cb, image_id, token) == instance
    # Nothing stays pending: every acknowledged termination ends its instance.
    wait(lambda: set(states(cb, sorted(ids)).values()) == {"terminated"}, 120, "every instance terminated")
    print(f"{len(ids)} launches and terminations across a leader kill")


def test_migrations_in_flight_when_the_leader_is_killed_are_settled_by_the_survivor(lab, tmp_path, test_image):
    """Two lab hosts (`scripts/lab`), two replicas: a migration asked of each replica, the leader
    killed while they run. The survivor takes over and settles each from where libvirt runs the
    guest (completed or failed, never lost and never on two hosts), then migrates again."""
    with replicas(tmp_path, lab) as start:
        a = start("a")
        wait(lambda: leads(start, a), 15, "the first replica to lead")
        b = start("b")
        ext = {a.port: stratus_client(a), b.port: stratus_client(b)}
        image_id = conftest.import_image(b, test_image, "lab replicated")
        cb = ec2_client(b)
        ids = [launch(cb, image_id) for _ in range(2)]
        wait(lambda: set(states(cb, ids).values()) == {"running"}, 180, "both instances running")

        def placement(client) -> tuple[dict, dict]:
            hosts = {h["HostId"]: h for h in client.describe_hosts()["Hosts"]}
            return hosts, {i["InstanceId"]: h for h, v in hosts.items() for i in v["Instances"]}

        hosts, where = placement(ext[b.port])
        assert len(hosts) == 2 and len(set(where.values())) == 2, f"spread over both lab hosts: {where}"
        migrations = {}
        for instance, asked in zip(ids, (a, b)):
            target = next(h for h in hosts if h != where[instance])
            migration = ext[asked.port].migrate_instance(InstanceId=instance, TargetHostId=target)["Migration"]
            migrations[instance] = migration["MigrationId"]
        # At once: the one asked of the leader is under way, the other may be.
        a.kill()
        wait(lambda: leads(start, b), LEASE_SECS * 3 + 5, "the survivor to take over")

        def finished(migration_id: str):
            [m] = ext[b.port].describe_instance_migrations(MigrationIds=[migration_id])["Migrations"]
            return m if m["Status"] in ("completed", "failed", "cancelled") else None

        at_takeover = {i: ext[b.port].describe_instance_migrations(MigrationIds=[m])["Migrations"][0]["Status"]
                       for i, m in migrations.items()}
        settled = {i: wait(lambda m=m: finished(m), 180, f"migration {m} settled") for i, m in migrations.items()}
        print("migrations across the takeover:", {i: (at_takeover[i], m["Status"]) for i, m in settled.items()})
        wait(lambda: set(states(cb, ids).values()) == {"running"}, 60, "both instances running")
        hosts, where = placement(ext[b.port])
        for instance in ids:
            # Where Stratus says it is, and only there, libvirt runs it.
            running_on = [h for h, v in hosts.items()
                          if subprocess.run(["virsh", "-c", v["Uri"], "domstate", instance], capture_output=True,
                                            text=True).stdout.strip() == "running"]
            assert running_on == [where[instance]], (instance, running_on, where)

        # Under the new leader a migration runs to its end.
        instance = ids[0]
        target = next(h for h in hosts if h != where[instance])
        again = ext[b.port].migrate_instance(InstanceId=instance, TargetHostId=target)["Migration"]["MigrationId"]
        assert wait(lambda: finished(again), 180, "a migration under the new leader")["Status"] == "completed"
        assert placement(ext[b.port])[1][instance] == target
        cb.terminate_instances(InstanceIds=ids)
        wait(lambda: set(states(cb, ids).values()) == {"terminated"}, 90, "every instance terminated")
