"""A bounded `kill -9` campaign on libvirt's test driver (two in-process test hosts).

Each round prepares a few instances (running and stopped) and volumes, then fires a burst of
RunInstances, TerminateInstances, StopInstances, StartInstances, CreateVolume, AttachVolume,
CreateImage and MigrateInstance from three client threads, SIGKILLs the server at a random
moment (0..STRATUS_KILL_MAX_DELAY_MS after the burst starts), restarts it on the same data dir,
and checks:

- lost: every request answered 200 before the kill is in effect after the restart;
- duplicated: RunInstances and CreateVolume (the actions botocore gives a ClientToken) retried
  with their token answer the first answer's ids, and exactly one resource carries each token's
  tag; CreateImage (no token in EC2's model) retried with its name: exactly one image of that
  name; at most one migration per MigrateInstance; host usage equals what its instances hold;
  no private address twice;
- stuck: within SETTLE_TIMEOUT every instance is running/stopped/terminated, every volume
  available/in-use with settled attachments, every image available/failed, every migration
  final; cleanup (terminate, delete, deregister) then completes too;
- orphans: the test driver lives inside the server (its domains die with it and cannot be listed
  from outside), so orphan domains are read from the server's log ("domain not of this
  installation", other than the driver's own `test` domain: an instance launched while a sweep ran
  must not show up there either); orphan files from the data dir once a round is cleaned up.

What the test driver cannot show: its domains vanish with the process, so every instance
running at the kill comes back `stopped` (as after a host power loss) and an acknowledged
StartInstances can only be checked as "running or stopped, never terminated"; it has no hot-plug
(AttachVolume targets stopped instances only) and no migration (`p2p migration is not supported`),
so MigrateInstance is checked for durability and settling (always `failed` here), never for a
completed move.

STRATUS_KILL_ROUNDS (default 10, about 40 s here), STRATUS_KILL_SEED (default: time-based, printed),
STRATUS_KILL_MAX_DELAY_MS (default 300).
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import ClientError

from conftest import REGION, TEST_DRIVER_CONFIG, Stratus, import_image, start_stratus

MODELS = Path(__file__).resolve().parents[2] / "ec2api/model"
ROUNDS = int(os.environ.get("STRATUS_KILL_ROUNDS", "10"))
SEED = int(os.environ.get("STRATUS_KILL_SEED", str(int(time.time() * 1000) % 1_000_000_007)))
MAX_DELAY_MS = int(os.environ.get("STRATUS_KILL_MAX_DELAY_MS", "300"))
SETTLE_TIMEOUT = 30.0
MAX_FAILED_ROUNDS = 5
ZONE = "us-east-1a"
TAG = "kill-campaign"
NANO_VCPUS, NANO_MIB = 2, 512  # t3.nano as Stratus sizes it
FINAL_MIGRATION = {"completed", "failed", "cancelled"}
WORKERS = 3

NODE_XML = """<node>
  <cpu><mhz>2000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>32</cores>
       <threads>1</threads><active>32</active></cpu>
  <memory>16777216</memory>
</node>
"""


def campaign_config(node_xml: Path) -> str:
    """conftest's test-driver config with a second host, a private one from a node file."""
    hosts, rest = TEST_DRIVER_CONFIG.split("[instances]")
    second = hosts.replace("test:///default", f"test://{node_xml}")
    return f'placement = "spread"\n{hosts}{second}[instances]{rest}'


def clients(server: Stratus):
    """ec2 and stratus clients that never retry on their own: one attempt, one outcome."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=20,
                    max_pool_connections=WORKERS + 2)
    session = boto3.session.Session(aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
                                     region_name=REGION)
    session._session.get_component("data_loader").search_paths.insert(0, str(MODELS))
    return (session.client("ec2", endpoint_url=server.endpoint, config=config),
            session.client("stratus", endpoint_url=server.endpoint, config=config))


@dataclass
class Op:
    kind: str  # run, terminate, stop, start, create_volume, attach, create_image, migrate
    target: str | None = None  # instance id (attach: the instance; volume in `volume`)
    volume: str | None = None
    count: int = 1
    token: str | None = None
    tag: str = ""
    name: str = ""
    gap: float = 0.0
    outcome: str = "unsent"  # unsent, acked, refused (an error answer), dropped (no answer)
    answer: dict | None = None
    error: str | None = None
    sent_ms: float | None = None
    done_ms: float | None = None

    def describe(self) -> str:
        what = self.target or self.tag
        if self.kind == "attach":
            what = f"{self.volume}->{self.target}"
        return f"{self.kind}({what}) {self.outcome}{'' if self.error is None else ' ' + self.error}"


@dataclass
class Totals:
    rounds: int = 0
    kills: int = 0
    kills_mid_burst: int = 0
    sent: int = 0
    acked: int = 0
    dropped: int = 0
    refused: int = 0
    retried: int = 0
    verified: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    orphans: int = 0
    other: int = 0
    images_failed: int = 0
    migration_outcomes: Counter = field(default_factory=Counter)
    acked_by_kind: Counter = field(default_factory=Counter)
    failed_rounds: list = field(default_factory=list)


class Round:
    """One round's findings, by category."""

    def __init__(self, index: int):
        self.index = index
        self.findings: list[tuple[str, str]] = []
        self.verified = 0

    def check(self, ok: bool, category: str, message: str) -> bool:
        if ok:
            self.verified += 1
        else:
            self.findings.append((category, message))
        return ok


def call(op: Op, ec2, stratus) -> dict:
    if op.kind == "run":
        return ec2.run_instances(ImageId=op.name, InstanceType="t3.nano", MinCount=op.count, MaxCount=op.count,
                                 ClientToken=op.token, TagSpecifications=[
                                     {"ResourceType": "instance", "Tags": [{"Key": TAG, "Value": op.tag}]}])
    if op.kind == "create_volume":
        return ec2.create_volume(AvailabilityZone=ZONE, Size=1, ClientToken=op.token, TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": TAG, "Value": op.tag}]}])
    if op.kind == "terminate":
        return ec2.terminate_instances(InstanceIds=[op.target])
    if op.kind == "stop":
        return ec2.stop_instances(InstanceIds=[op.target])
    if op.kind == "start":
        return ec2.start_instances(InstanceIds=[op.target])
    if op.kind == "attach":
        return ec2.attach_volume(VolumeId=op.volume, InstanceId=op.target, Device="/dev/sdf")
    if op.kind == "create_image":
        return ec2.create_image(InstanceId=op.target, Name=op.name, TagSpecifications=[
            {"ResourceType": "image", "Tags": [{"Key": TAG, "Value": op.tag}]}])
    if op.kind == "migrate":
        return stratus.migrate_instance(InstanceId=op.target)
    raise AssertionError(op.kind)


def fire(op: Op, ec2, stratus, t0: float) -> None:
    op.sent_ms = (time.monotonic() - t0) * 1000
    try:
        op.answer = call(op, ec2, stratus)
        op.outcome = "acked"
    except ClientError as e:
        op.outcome, op.error = "refused", e.response["Error"]["Code"]
    except Exception as e:  # the connection dies with the server
        op.outcome, op.error = "dropped", type(e).__name__
    op.done_ms = (time.monotonic() - t0) * 1000


# --- reading the world -------------------------------------------------------------------------


def instances(ec2, **kw) -> list[dict]:
    pages = ec2.get_paginator("describe_instances").paginate(**kw)
    return [{**i, "ReservationId": r["ReservationId"]} for page in pages for r in page["Reservations"]
            for i in r["Instances"]]


def live_instances(ec2) -> list[dict]:
    return instances(ec2, Filters=[{"Name": "instance-state-name",
                                    "Values": ["pending", "running", "stopping", "stopped", "shutting-down"]}])


def volumes(ec2, **kw) -> list[dict]:
    return [v for page in ec2.get_paginator("describe_volumes").paginate(**kw) for v in page["Volumes"]]


def own_images(ec2, **kw) -> list[dict]:
    return ec2.describe_images(Owners=["self"], **kw)["Images"]


def migrations(stratus, **kw) -> list[dict]:
    found, token = [], None
    while True:
        page = stratus.describe_instance_migrations(**kw, **({"NextToken": token} if token else {}))
        found += page["Migrations"]
        token = page.get("NextToken")
        if not token:
            return found


def wait_for(what: str, predicate, timeout: float = SETTLE_TIMEOUT, interval: float = 0.1):
    """Polls `predicate` (returning (done, detail)) until done; answers (done, detail, seconds)."""
    start = time.monotonic()
    while True:
        done, detail = predicate()
        if done or time.monotonic() - start > timeout:
            return done, detail, time.monotonic() - start
        time.sleep(interval)


def unsettled(ec2, stratus) -> list[str]:
    """Everything that is not in a stable state, as readable lines."""
    out = []
    for i in live_instances(ec2):
        if i["State"]["Name"] not in ("running", "stopped"):
            out.append(f"instance {i['InstanceId']} {i['State']['Name']}")
    for v in volumes(ec2):
        if v["State"] not in ("available", "in-use"):
            out.append(f"volume {v['VolumeId']} {v['State']}")
        for a in v["Attachments"]:
            if a["State"] != "attached":
                out.append(f"attachment {v['VolumeId']}->{a['InstanceId']} {a['State']}")
    for im in own_images(ec2):
        if im["State"] not in ("available", "failed"):
            out.append(f"image {im['ImageId']} ({im['Name']}) {im['State']}")
    for m in migrations(stratus):
        if m["Status"] not in FINAL_MIGRATION:
            out.append(f"migration {m['MigrationId']} of {m['InstanceId']} {m['Status']}")
    return out


class LogReader:
    """The server's log (all restarts append to one file), read in slices."""

    def __init__(self, path: Path):
        self.path = path
        self.checked = 0

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def since(self, offset: int) -> str:
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def unread_problems(self) -> tuple[list[str], list[str]]:
        """(unknown domains other than the driver's own `test`, panics) since the last call."""
        text = self.since(self.checked)
        self.checked += len(text.encode())
        unknown = [line for line in text.splitlines()
                   if "domain not of this installation" in line and not line.rstrip().endswith("domain=test")]
        panics = [line for line in text.splitlines() if "panicked" in line or "RUST_BACKTRACE" in line]
        return unknown, panics

    def excerpt(self, offset: int, lines: int = 60) -> str:
        """The round's log without Describe* noise."""
        keep = [line for line in self.since(offset).splitlines()
                if not re.search(r'action="Describe[A-Za-z]*"', line)]
        return "\n".join(keep[-lines:])


# --- the campaign --------------------------------------------------------------------------------


def prepare(ec2, image_id: str, rng: random.Random, round_tag: str):
    """Running and stopped instances and available volumes to aim the burst at."""
    n_running, n_stopped, n_volumes = rng.randint(3, 5), rng.randint(2, 3), rng.randint(1, 3)
    ids = [i["InstanceId"] for i in ec2.run_instances(
        ImageId=image_id, InstanceType="t3.nano", MinCount=n_running + n_stopped, MaxCount=n_running + n_stopped,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": TAG, "Value": round_tag + "-pool"}]}],
    )["Instances"]]
    def states(wanted, iids, vids=()):
        found = {i["InstanceId"]: i["State"]["Name"] for i in instances(ec2, InstanceIds=iids)}
        found.update({v["VolumeId"]: v["State"] for v in volumes(ec2, VolumeIds=list(vids))} if vids else {})
        return all(s in wanted for s in found.values()), found

    done, detail, _ = wait_for("pool running", lambda: states(("running",), ids))
    assert done, f"setup: pool not running: {detail}"
    running, stopped = ids[:n_running], ids[n_running:]
    ec2.stop_instances(InstanceIds=stopped, Force=True)
    vols = [ec2.create_volume(AvailabilityZone=ZONE, Size=1)["VolumeId"] for _ in range(n_volumes)]
    done, detail, _ = wait_for("pool settled", lambda: states(("stopped", "available"), stopped, vols))
    assert done, f"setup: pool not settled: {detail}"
    return running, stopped, vols


def plan(rng: random.Random, running, stopped, vols, image_id: str, round_tag: str) -> list[Op]:
    ops: list[Op] = []
    images = 0

    def image_op(target):
        nonlocal images
        images += 1
        return Op("create_image", target=target, name=f"{round_tag}-img{images}", tag=f"{round_tag}-img{images}")

    for iid in running:
        kind = rng.choices(["terminate", "stop", "migrate", "create_image", "none"], [25, 20, 30, 10, 15])[0]
        if kind == "create_image" and images >= 2:
            kind = "none"
        if kind == "create_image":
            ops.append(image_op(iid))
        elif kind != "none":
            ops.append(Op(kind, target=iid))
    free_volumes = list(vols)
    for iid in stopped:
        kind = rng.choices(["start", "attach", "create_image", "terminate", "none"], [35, 30, 10, 10, 15])[0]
        if kind == "attach" and not free_volumes:
            kind = "start"
        if kind == "create_image" and images >= 2:
            kind = "none"
        if kind == "attach":
            ops.append(Op("attach", target=iid, volume=free_volumes.pop()))
        elif kind == "create_image":
            ops.append(image_op(iid))
        elif kind != "none":
            ops.append(Op(kind, target=iid))
    for k in range(rng.randint(1, 3)):
        ops.append(Op("run", count=rng.randint(1, 2), token=str(uuid.UUID(int=rng.getrandbits(128))),
                      tag=f"{round_tag}-run{k}", name=image_id))
    for k in range(rng.randint(1, 2)):
        ops.append(Op("create_volume", token=str(uuid.UUID(int=rng.getrandbits(128))), tag=f"{round_tag}-vol{k}"))
    rng.shuffle(ops)
    # Spread each worker's requests over about the kill window, so that kills land before,
    # between, during and after them.
    per_worker = max(1, -(-len(ops) // WORKERS))
    for op in ops:
        op.gap = rng.uniform(0.0, 1.2 * MAX_DELAY_MS / 1000 / per_worker)
    return ops


def burst_and_kill(server: Stratus, ops: list[Op], delay: float) -> int:
    """Fires the ops from WORKERS threads and SIGKILLs the server `delay` s in; answers how many
    requests were in flight at the kill."""
    killed = threading.Event()
    queues = [ops[w::WORKERS] for w in range(WORKERS)]
    pairs = [clients(server) for _ in range(WORKERS)]
    ready = threading.Barrier(WORKERS + 1)

    def worker(queue, ec2, stratus):
        ready.wait()
        for op in queue:
            if killed.wait(op.gap):
                return
            fire(op, ec2, stratus, t0)

    threads = [threading.Thread(target=worker, args=(q, *p), daemon=True) for q, p in zip(queues, pairs)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    ready.wait()
    time.sleep(delay)
    server.proc.kill()
    kill_ms = (time.monotonic() - t0) * 1000
    killed.set()
    server.proc.wait(timeout=10)
    server._close_log()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive(), "a client thread hung after the kill"
    return sum(1 for op in ops if op.sent_ms is not None and op.sent_ms <= kill_ms
               and (op.outcome == "dropped" or (op.done_ms or 0) > kill_ms))


def retry_tokens(rnd: Round, ops: list[Op], ec2) -> int:
    """After the restart: the client's retries of what takes a ClientToken (and of CreateImage by
    name), and exactly one resource per request."""
    retried = 0
    for op in ops:
        if op.kind in ("run", "create_volume"):
            if op.outcome in ("acked", "dropped"):
                retried += 1
                try:
                    again = call(op, ec2, None)
                except ClientError as e:
                    rnd.check(False, "duplicated", f"{op.describe()}: retry with its token refused: "
                                                   f"{e.response['Error']['Code']}")
                    continue
                if op.kind == "run":
                    first_ids = sorted(i["InstanceId"] for i in (op.answer or again)["Instances"])
                    retry_ids = sorted(i["InstanceId"] for i in again["Instances"])
                    if op.outcome == "acked":
                        rnd.check(retry_ids == first_ids and again["ReservationId"] == op.answer["ReservationId"],
                                  "duplicated", f"{op.describe()}: token retry answered {retry_ids}, first {first_ids}")
                    else:
                        op.answer = again  # what the request stands for from now on
                else:
                    if op.outcome == "acked":
                        rnd.check(again["VolumeId"] == op.answer["VolumeId"], "duplicated",
                                  f"{op.describe()}: token retry answered {again['VolumeId']}, "
                                  f"first {op.answer['VolumeId']}")
                    else:
                        op.answer = again
            # One resource per token, whatever happened (none for what never reached the server
            # and was not retried).
            want = 1 if op.outcome in ("acked", "dropped") else 0
            if op.kind == "run":
                found = instances(ec2, Filters=[{"Name": f"tag:{TAG}", "Values": [op.tag]}])
                reservations = {i.get("ReservationId") for i in found}
                ids = sorted(i["InstanceId"] for i in found)
                expected = sorted(i["InstanceId"] for i in op.answer["Instances"]) if want else []
                rnd.check(ids == expected and len(found) == op.count * want and len(reservations) == want,
                          "duplicated",
                          f"{op.describe()}: instances tagged {op.tag}: {ids} (reservations {reservations}), "
                          f"expected {expected}")
            else:
                found = [v["VolumeId"] for v in volumes(ec2, Filters=[{"Name": f"tag:{TAG}", "Values": [op.tag]}])]
                expected = [op.answer["VolumeId"]] if want else []
                rnd.check(found == expected, "duplicated", f"{op.describe()}: volumes tagged {op.tag}: {found}, "
                                                           f"expected {expected}")
        elif op.kind == "create_image" and op.outcome in ("acked", "dropped"):
            retried += 1
            deadline = time.monotonic() + 10
            while True:
                try:
                    again = call(op, ec2, None)
                    code = None
                except ClientError as e:
                    again, code = None, e.response["Error"]["Code"]
                # Right after a restart the source may still be settling (running -> stopped).
                if code in ("IncorrectInstanceState", "InvalidParameterValue") and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                break
            if op.outcome == "acked":
                rnd.check(code == "InvalidAMIName.Duplicate", "duplicated",
                          f"{op.describe()}: retry by name answered {again and again['ImageId']} / {code}, "
                          f"expected InvalidAMIName.Duplicate")
            elif again is not None:
                op.answer = again
            elif code == "InvalidAMIName.Duplicate":
                named = own_images(ec2, Filters=[{"Name": "name", "Values": [op.name]}])
                op.answer = {"ImageId": named[0]["ImageId"]} if named else None
            else:
                rnd.check(False, "other", f"{op.describe()}: retry by name refused: {code}")
    for op in ops:
        if op.kind == "create_image":
            named = sorted(im["ImageId"] for im in own_images(ec2, Filters=[{"Name": "name", "Values": [op.name]}]))
            want = [op.answer["ImageId"]] if op.answer else []
            rnd.check(named == want, "duplicated" if len(named) > 1 else "lost",
                      f"{op.describe()}: images named {op.name}: {named}, expected {want}")
    return retried


def verify(rnd: Round, ops: list[Op], ec2, stratus, totals: Totals) -> None:
    """Acknowledged work is in effect, and the pool's books balance."""
    by_id = {i["InstanceId"]: i for i in instances(ec2, Filters=[{"Name": "tag-key", "Values": [TAG]}])}
    vols = {v["VolumeId"]: v for v in volumes(ec2)}
    images = {im["ImageId"]: im for im in own_images(ec2)}
    migs = migrations(stratus)
    hosts = stratus.describe_hosts()["Hosts"]
    on_hosts = Counter(i["InstanceId"] for h in hosts for i in h["Instances"])
    host_of = {i["InstanceId"]: h["HostId"] for h in hosts for i in h["Instances"]}

    def state(iid):
        return by_id.get(iid, {}).get("State", {}).get("Name", "<missing>")

    for op in ops:
        acked = op.outcome == "acked"
        if op.kind == "run" and op.answer:
            for i in op.answer["Instances"]:
                rnd.check(state(i["InstanceId"]) in ("running", "stopped"), "lost",
                          f"{op.describe()}: {i['InstanceId']} is {state(i['InstanceId'])}")
        elif op.kind == "create_volume" and op.answer:
            v = vols.get(op.answer["VolumeId"])
            rnd.check(v is not None and v["State"] == "available", "lost",
                      f"{op.describe()}: {op.answer['VolumeId']} is {v and v['State']}")
        elif op.kind == "terminate" and acked:
            rnd.check(state(op.target) == "terminated", "lost", f"{op.describe()}: {op.target} is {state(op.target)}")
        elif op.kind == "stop" and acked:
            rnd.check(state(op.target) == "stopped", "lost", f"{op.describe()}: {op.target} is {state(op.target)}")
        elif op.kind == "start" and acked:
            # The test driver forgets its domains with the server: running (the start was
            # resumed) or stopped (it had started, then its domain vanished); never anything else.
            rnd.check(state(op.target) in ("running", "stopped"), "lost",
                      f"{op.describe()}: {op.target} is {state(op.target)}")
        elif op.kind == "attach":
            v = vols.get(op.volume)
            attached = [(a["InstanceId"], a["Device"], a["State"]) for a in (v or {}).get("Attachments", [])]
            if acked:
                rnd.check(attached == [(op.target, "/dev/sdf", "attached")] and v["State"] == "in-use", "lost",
                          f"{op.describe()}: {op.volume} is {v and v['State']} with {attached}")
            else:
                rnd.check(attached in ([], [(op.target, "/dev/sdf", "attached")]), "other",
                          f"{op.describe()}: {op.volume} is {v and v['State']} with {attached}")
        elif op.kind == "create_image" and op.answer:
            im = images.get(op.answer["ImageId"])
            ok = im is not None and im["State"] in ("available", "failed")
            rnd.check(ok, "lost", f"{op.describe()}: {op.answer['ImageId']} is {im and im['State']}")
            if im is not None and im["State"] == "failed":
                totals.images_failed += 1
                print(f"    image {im['ImageId']} failed: {im.get('StateReason')}")
        elif op.kind == "migrate":
            mine = [m for m in migs if m["InstanceId"] == op.target]
            if acked:
                mid = op.answer["Migration"]["MigrationId"]
                rnd.check([m["MigrationId"] for m in mine] == [mid], "lost" if not mine else "duplicated",
                          f"{op.describe()}: migrations of {op.target}: {[m['MigrationId'] for m in mine]}, "
                          f"expected [{mid}]")
            else:
                rnd.check(len(mine) <= 1, "duplicated", f"{op.describe()}: migrations of {op.target}: {mine}")
            for m in mine:
                reason = re.sub(r"(mig|i|h)-[0-9a-f]+", r"\1-…", m.get("ErrorMessage") or "")
                totals.migration_outcomes[f"{m['Status']}: {reason}" if reason else m["Status"]] += 1
                rnd.check(m["Status"] in FINAL_MIGRATION, "stuck", f"{op.describe()}: {m['MigrationId']} {m['Status']}")
                # Only instances holding capacity are listed on a host.
                if op.target in host_of:
                    expected = m["TargetHostId"] if m["Status"] == "completed" else m["SourceHostId"]
                    rnd.check(host_of[op.target] == expected, "other",
                              f"{op.describe()}: {op.target} on {host_of[op.target]} after a {m['Status']} "
                              f"migration, expected {expected}")
    # Books: each live instance on exactly one host, usage equal to what they hold, addresses unique.
    live = live_instances(ec2)
    holding = [i for i in live if i["State"]["Name"] in ("pending", "running", "stopping", "shutting-down")]
    for i in holding:
        rnd.check(on_hosts[i["InstanceId"]] == 1, "duplicated",
                  f"{i['InstanceId']} ({i['State']['Name']}) is listed on {on_hosts[i['InstanceId']]} hosts")
    for h in hosts:
        n = len(h["Instances"])
        used_vcpus = h["HostProperties"]["TotalVCpus"] - h["AvailableCapacity"]["AvailableVCpus"]
        used_mib = h["Utilization"]["MemoryUsedMiB"]
        rnd.check(used_vcpus == NANO_VCPUS * n and used_mib == NANO_MIB * n, "duplicated",
                  f"host {h['HostId']}: {n} instances but {used_vcpus} vCPUs / {used_mib} MiB charged")
    addresses = Counter(i.get("PrivateIpAddress") for i in live)
    twice = {a: c for a, c in addresses.items() if a and c > 1}
    rnd.check(not twice, "duplicated", f"private addresses held twice: {twice}")


def clean_up(rnd: Round, ec2, stratus, base_image: str, data_dir: Path) -> None:
    """Terminates, deletes and deregisters everything; all of it must finish, and leave no files."""
    live = [i["InstanceId"] for i in live_instances(ec2)]
    for k in range(0, len(live), 50):
        ec2.terminate_instances(InstanceIds=live[k:k + 50])
    done, detail, _ = wait_for("terminated", lambda: (not (left := [
        f"{i['InstanceId']} {i['State']['Name']}" for i in live_instances(ec2)]), left))
    rnd.check(done, "stuck", f"cleanup: instances not terminated in {SETTLE_TIMEOUT}s: {detail}")

    def volumes_gone():
        left = []
        for v in volumes(ec2):
            if v["State"] == "available":
                try:
                    ec2.delete_volume(VolumeId=v["VolumeId"])
                except ClientError as e:
                    left.append(f"{v['VolumeId']} delete refused: {e.response['Error']['Code']}")
            else:
                left.append(f"{v['VolumeId']} {v['State']} {[a['State'] for a in v['Attachments']]}")
        return not left, left

    done, detail, _ = wait_for("volumes deleted", volumes_gone, interval=0.2)
    rnd.check(done, "stuck", f"cleanup: volumes not deleted in {SETTLE_TIMEOUT}s: {detail}")
    for im in own_images(ec2):
        if im["ImageId"] != base_image:
            ec2.deregister_image(ImageId=im["ImageId"])
    files = sorted(str(p.relative_to(data_dir)) for sub in ("instances", "volumes") if (data_dir / sub).exists()
                   for p in (data_dir / sub).iterdir())
    files += sorted(f"images/{p.name}" for p in (data_dir / "images").iterdir() if p.name != base_image)
    rnd.check(not files, "orphans", f"cleanup: files left in the data dir: {files}")


def test_kill_campaign(tmp_path):
    node_xml = tmp_path / "host2.xml"
    node_xml.write_text(NODE_XML)
    config = campaign_config(node_xml)
    server_dir, data_dir = tmp_path / "server", tmp_path / "data"
    server = start_stratus(server_dir, data_dir=data_dir, config=config)
    log = LogReader(server.log_path)
    totals = Totals()
    started = time.monotonic()
    print(f"\nkill campaign: seed={SEED} rounds={ROUNDS} max_delay={MAX_DELAY_MS}ms "
          f"(reproduce: STRATUS_KILL_SEED={SEED} STRATUS_KILL_ROUNDS={ROUNDS})")
    from conftest import built_image
    base_image = import_image(server, built_image("build-test-image", 600), "kill campaign image")
    ec2, stratus = clients(server)
    hosts = stratus.describe_hosts()["Hosts"]
    assert len(hosts) == 2, hosts
    try:
        for index in range(ROUNDS):
            rng = random.Random(f"{SEED}:{index}")
            rnd = Round(index)
            round_tag = f"r{SEED}-{index}"
            round_log, round_start = log.size(), time.monotonic()
            running, stopped, vols = prepare(ec2, base_image, rng, round_tag)
            ops = plan(rng, running, stopped, vols, base_image, round_tag)
            delay = rng.uniform(0, MAX_DELAY_MS / 1000)

            in_flight = burst_and_kill(server, ops, delay)
            totals.kills += 1
            totals.kills_mid_burst += bool(in_flight) or any(op.outcome == "unsent" for op in ops)
            server = start_stratus(server_dir, data_dir=data_dir, config=config)
            ec2, stratus = clients(server)

            retried = retry_tokens(rnd, ops, ec2)
            done, left, took = wait_for("settled", lambda: (not (u := unsettled(ec2, stratus)), u))
            if not done:
                for line in left:
                    rnd.check(False, "stuck", f"not settled {SETTLE_TIMEOUT}s after the restart: {line}")
            verify(rnd, ops, ec2, stratus, totals)
            clean_up(rnd, ec2, stratus, base_image, data_dir)
            time.sleep(0.5)  # a couple of sweeps, to see any domain left behind
            unknown, panics = log.unread_problems()
            for line in unknown:
                rnd.check(False, "orphans", f"domain not of this installation: {line}")
            rnd.check(not panics, "other", f"panics in the log: {panics}")

            outcomes = Counter(op.outcome for op in ops)
            acked = [op for op in ops if op.outcome == "acked"]
            totals.rounds += 1
            totals.sent += sum(1 for op in ops if op.outcome != "unsent")
            totals.acked += len(acked)
            totals.dropped += outcomes["dropped"]
            totals.refused += outcomes["refused"]
            totals.retried += retried
            totals.verified += rnd.verified
            totals.acked_by_kind.update(op.kind for op in acked)
            for category, _ in rnd.findings:
                setattr(totals, category, getattr(totals, category) + 1)
            mix = " ".join(f"{k}x{n}" for k, n in sorted(Counter(op.kind for op in ops).items()))
            print(f"round {index + 1}/{ROUNDS} delay={delay * 1000:.0f}ms mix=[{mix}] in-flight={in_flight} "
                  f"acked={len(acked)} dropped={outcomes['dropped']} refused={outcomes['refused']} "
                  f"unsent={outcomes['unsent']} retried={retried} settled={took:.1f}s verified={rnd.verified} "
                  f"findings={len(rnd.findings)} took={time.monotonic() - round_start:.1f}s")
            for op in ops:
                if op.outcome == "refused":
                    print(f"    refused before the kill: {op.describe()}")
            if rnd.findings:
                totals.failed_rounds.append(index)
                print(f"  ROUND {index} FAILED (seed={SEED}, round={index}, delay={delay * 1000:.0f}ms):")
                for category, message in rnd.findings:
                    print(f"    [{category}] {message}")
                print("    ops: " + "; ".join(f"{op.describe()} @{op.sent_ms and round(op.sent_ms)}ms" for op in ops))
                print("  log of the round (Describe* left out):\n" + log.excerpt(round_log))
                if len(totals.failed_rounds) >= MAX_FAILED_ROUNDS:
                    print(f"  stopping after {MAX_FAILED_ROUNDS} failed rounds")
                    break
    finally:
        server.kill()
        server._close_log()
    elapsed = time.monotonic() - started
    by_kind = " ".join(f"{k}={n}" for k, n in sorted(totals.acked_by_kind.items()))
    print(f"KILL CAMPAIGN TOTALS seed={SEED} rounds={totals.rounds} kills={totals.kills} "
          f"kills-mid-burst={totals.kills_mid_burst} sent={totals.sent} acked={totals.acked} ({by_kind}) "
          f"dropped={totals.dropped} refused={totals.refused} retried={totals.retried} "
          f"checks={totals.verified} lost={totals.lost} duplicated={totals.duplicated} stuck={totals.stuck} "
          f"orphans={totals.orphans} other={totals.other} images-failed={totals.images_failed} "
          f"elapsed={elapsed:.0f}s")
    for outcome, n in totals.migration_outcomes.most_common():
        print(f"  migrations {n}x {outcome}")
    assert not totals.failed_rounds, (
        f"kill campaign seed={SEED}: rounds {totals.failed_rounds} failed (lost={totals.lost} "
        f"duplicated={totals.duplicated} stuck={totals.stuck} orphans={totals.orphans} other={totals.other}); "
        f"details above (run with -s)")
