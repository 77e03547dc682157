#!/usr/bin/env python3
"""Migration benchmark: live migration through Stratus against the same migration by virsh,
with and without the guest's security-group filter.

1. `scripts/lab up 2` (two libvirt hosts in network namespaces, shared storage, one guest L2
   segment), then `stratus serve` on the lab's config plus one instance type per memory size,
   and the test image imported three times: idle, dirtying memory (`stratus.dirty=`), and
   with a TCP sink (`stratus.sink=`). The default security group lets the root namespace's
   router address (172.31.0.1) ping the guests and reach the sink (the virsh-filtered guests'
   filters are copies of a Stratus guest's: they let the same in).
2. Cases: (memory) idle guests of 256, 512, 1024 and 2048 MiB; (dirty) and (download) one size
   under a memory-dirtying load or a download pushed into the guest, each with the policies
   default, auto-converge and post-copy. Each case runs R repetitions of the paths of
   --vias (all three by default), their order rotated by one each time (S F V, F V S, V S F).
3. One run: a fresh guest boots (on the host Stratus placed it, for virsh the same host as the
   last Stratus guest), its load gets going, a 10 ms pinger (`ping -i 0.01 -D -O`) runs for
   1 s, then the migration to the other host, then 1.5 s more of pinging, then checks:
   - stratus: MigrateInstance, then DescribeInstanceMigrations every 20 ms until it is final;
     the figures are Stratus's (libvirt's completed job on the target).
   - virsh: the domain Stratus defined for the same type and image (`dumpxml --inactive`, from
     an instance launched for the purpose) made standalone (own name, UUID, MAC, overlay,
     console log, address; no nwfilter), and `virsh migrate --live --p2p --persistent
     --undefinesource --unsafe` with the flags Stratus adds for the policy
     (backend/src/libvirt: --auto-converge, --postcopy); for post-copy the switch is made as
     Stratus's monitor makes it (polled every 250 ms, after 4 iterations with memory left:
     backend/src/migration.rs). Figures from `virsh domjobinfo --completed` on the target.
   - virsh-filtered: the same, but the domain keeps a filter of its own (named as the domain):
     the filter Stratus defined for the template's instance (`nwfilter-dumpxml`), with its MAC
     and address replaced by the guest's, so it allows what a Stratus guest is allowed.
     It is defined on the source with the domain, and on the target just before the
     migration, within the wall time, as Stratus defines it there between MigrateInstance
     and the migration (backend/src/migration.rs, `prepare_filter`); it costs one `virsh`
     process and connection more than Stratus's open one. Undefined on both after the domain.
   The wall time runs from the request (MigrateInstance sent / the target's filter or the
   migration spawned) to the end (the job seen final / virsh exited); the total time is
   libvirt's job alone on every path. Stratus against virsh-filtered is what Stratus's
   orchestration adds; virsh-filtered against virsh is what the filter costs.
   A run is `ok` only if the migration completed, the guest runs on the target, it went on
   counting on its console without rebooting or printing a kernel error, QEMU logged no
   device error, the pinger had replies in both the second before and the last second
   after, a download kept its connection, and the dirtier found every page holding what it
   wrote (two passes after the switch-over).
   A broken run keeps its console and QEMU logs in <out>/broken/; a lab host that stops
   answering ends the benchmark (every run after would fail the same way).
4. `migration.json` in --out (the first repetition of the 512 MiB idle case keeps its ping
   trace), and a table on stdout. Lab, server, domains, filters and files are removed at the
   end, also on failure or Ctrl-C.

    bench/migration.py [--quick] [--reps 3] [--vias stratus,virsh-filtered,virsh] [--out DIR]
                       [--stratus-bin target/release/stratus]
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from common import (BOOT_MARKER, GUEST_BROKEN, REPO, SHORT, VIAS, Stratus, Watch, build_test_image, cell,
                    filter_copy, lab_lock, log, ratio, remove_domain, remove_filter, rotation, run, run_main,
                    standalone_xml, summary, table, terminate, virsh)

PING_INTERVAL_MS = 10
PRE_SECONDS, POST_SECONDS = 1.0, 1.5
STATUS_POLL = 0.020
# backend/src/migration.rs: POLL and POST_COPY_AFTER_ITERATIONS.
STRATUS_MONITOR_POLL = 0.250
POST_COPY_AFTER_ITERATIONS = 4
ROUTER = "172.31.0.1"
SINK_PORT = 5001
# Outside what Stratus hands out first (it leases from 172.31.0.4 up): never in use by an instance.
VIRSH_ADDRESS = "172.31.15.251"
BOOT_TIMEOUT = 120.0
DIRTY_CHECK_TIMEOUT = 30.0
POLICIES = ["default", "auto-converge", "post-copy"]


@dataclass(frozen=True)
class Case:
    experiment: str  # memory | dirty | download
    memory_mib: int
    load: str  # idle | dirty | download
    policy: str


def cases(quick: bool, load_memory: int) -> list[Case]:
    if quick:
        return [Case("memory", 256, "idle", "default"), Case("memory", 512, "idle", "default"),
                Case("dirty", 512, "dirty", "post-copy")]
    return ([Case("memory", m, "idle", "default") for m in (256, 512, 1024, 2048)]
            + [Case(load, load_memory, load, p) for load in ("dirty", "download") for p in POLICIES])


# --- measuring instruments ---------------------------------------------------------------------


class Pinger:
    """`ping -i 0.01 -D -O` to the guest (iputils, in its own process so that our own work
    does not delay it). Reply lines carry a wall-clock timestamp and the RTT; the send time
    of a probe is its reply's time minus its RTT, interpolated by sequence number for probes
    that got no reply."""

    def __init__(self, address: str):
        self.proc = subprocess.Popen(["ping", "-n", "-D", "-O", "-i", str(PING_INTERVAL_MS / 1000), address],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def stop(self) -> "PingTrace":
        self.proc.send_signal(signal.SIGINT)  # ping prints its summary and exits
        out, _ = self.proc.communicate(timeout=10)
        return PingTrace(out)


class PingTrace:
    def __init__(self, transcript: str):
        self.replies: dict[int, tuple[float, float]] = {}  # seq -> (received at, rtt s), wall clock
        highest = -1
        for m in re.finditer(r"^\[(\d+\.\d+)\] .*?icmp_seq=(\d+)(?: ttl=\d+ time=([\d.]+) ms)?", transcript, re.M):
            seq = int(m.group(2))
            highest = max(highest, seq)
            if m.group(3) is not None:
                self.replies[seq] = (float(m.group(1)), float(m.group(3)) / 1000)
        self.probes = highest  # ping numbers from 1
        known = sorted((seq, received - rtt) for seq, (received, rtt) in self.replies.items())
        seqs = [k[0] for k in known]
        self.sent: dict[int, float] = {}
        for seq in range(1, self.probes + 1) if known else ():
            i = bisect.bisect_left(seqs, seq)
            if i < len(known) and seqs[i] == seq:
                self.sent[seq] = known[i][1]
            elif 0 < i < len(known):
                (s0, t0), (s1, t1) = known[i - 1], known[i]
                self.sent[seq] = t0 + (t1 - t0) * (seq - s0) / (s1 - s0)
            else:  # before the first reply or after the last: at the nominal interval
                s0, t0 = known[min(i, len(known) - 1)]
                self.sent[seq] = t0 + (seq - s0) * PING_INTERVAL_MS / 1000

    def received_between(self, start: float, end: float) -> int:
        return sum(1 for received, _ in self.replies.values() if start <= received < end)

    def largest_gap(self) -> tuple[float, float] | None:
        """(start, length) of the longest time without a reply, both in seconds (wall clock)."""
        times = sorted(received for received, _ in self.replies.values())
        gaps = [(a, b - a) for a, b in zip(times, times[1:])]
        return max(gaps, key=lambda g: g[1]) if gaps else None

    def samples(self, origin: float) -> list[list]:
        """[ms since `origin` the probe was sent, RTT in ms or null], one per probe."""
        out = []
        for seq, t in sorted(self.sent.items()):
            reply = self.replies.get(seq)
            out.append([round((t - origin) * 1000, 2), round(reply[1] * 1000, 3) if reply else None])
        return out


class Download:
    """Pushes bytes into the guest's sink as fast as it takes them, from a thread."""

    def __init__(self, address: str, port: int):
        deadline = time.monotonic() + 30
        while True:  # the guest's `nc -l` may not listen yet
            try:
                self.sock = socket.create_connection((address, port), timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.sock.settimeout(0.5)
        self.sent: list[tuple[float, int]] = []  # (wall clock, bytes so far), every 100 ms
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._push, daemon=True)
        self._thread.start()

    def _push(self) -> None:
        chunk = bytes(range(1, 256)) * 257  # never zero pages in the guest's buffers
        total, mark = 0, 0.0
        while not self._stop.is_set():
            try:
                total += self.sock.send(chunk)
            except socket.timeout:
                pass
            except OSError as e:
                self.error = f"download connection broke: {e}"
                return
            now = time.time()
            if now - mark >= 0.1:
                self.sent.append((now, total))
                mark = now

    def rate_mib_s(self, start: float, end: float) -> float | None:
        points = [p for p in self.sent if start <= p[0] <= end]
        if len(points) < 2 or points[-1][0] == points[0][0]:
            return None
        return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0]) / 2**20

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


# --- the ways to run a guest and migrate it -----------------------------------------------------


@dataclass
class Migrated:
    """What one migration reported."""
    ok: bool
    wall_ms: float
    total_ms: float | None = None
    downtime_ms: float | None = None
    data_mib: float | None = None
    iterations: int | None = None
    post_copy: bool = False
    error: str = ""
    phases: str = ""  # Stratus's statuses and when they were first seen


class Lab:
    """The lab, Stratus on it, and what both paths share."""

    def __init__(self, args, work: Path):
        self.args, self.work = args, work
        out = run(str(REPO / "scripts/lab"), "up", "2", timeout=300).stdout
        config_path = Path(re.search(r"^config=(\S+)$", out, re.M).group(1))
        self.lab_dir = config_path.parent
        memories = sorted({c.memory_mib for c in cases(args.quick, args.load_memory)})
        types = "".join(f'\n[[instance_types]]\nname = "{type_name(m)}"\nvcpus = 1\nmemory_mib = {m}\n'
                        for m in memories)
        # The hosts' bridge, as the virsh baseline's guests (migration_ovn.py: OVN's network).
        self.stratus = Stratus(args.stratus_bin.resolve(), work / "data",
                               config_path.read_text() + types + '\n[network]\novn_northbound = "none"\n')
        try:
            self._prepare(args)
        except BaseException:
            self.stratus.stop()
            raise

    def _prepare(self, args) -> None:
        self.ec2 = self.stratus.client()
        self.ext = self.stratus.client("stratus")
        image = build_test_image()
        self.base_disk = image.disk
        self.images = {
            "idle": self.stratus.import_image(image, "bench-idle"),
            "dirty": self.stratus.import_image(image, "bench-dirty",
                                               f"stratus.dirty={args.dirty_mib} stratus.dirty_rate={args.dirty_rate}"),
            "download": self.stratus.import_image(image, "bench-download", f"stratus.sink={SINK_PORT}"),
        }
        for perm in ({"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1},
                     {"IpProtocol": "tcp", "FromPort": SINK_PORT, "ToPort": SINK_PORT}):
            self.ec2.authorize_security_group_ingress(
                GroupName="default", IpPermissions=[{**perm, "IpRanges": [{"CidrIp": f"{ROUTER}/32"}]}])
        self.hosts = {h["HostId"]: h["Uri"] for h in self.ext.describe_hosts()["Hosts"]}
        self.uris = sorted(self.hosts.values())
        self.templates: dict[tuple[str, int], tuple[str, str]] = {}
        self.last_source = self.uris[0]

    def other(self, uri: str) -> str:
        return next(u for u in self.uris if u != uri)

    def qemu_log(self, uri: str, name: str) -> Path:
        # The lab bind-mounts <lab dir>/h<i>/log over /var/log/libvirt for host i (10.88.0.1<i>).
        host = int(re.search(r"10\.88\.0\.1(\d+)", uri).group(1))
        return self.lab_dir / f"h{host}" / "log" / "qemu" / f"{name}.log"

    def template(self, load: str, memory_mib: int) -> tuple[str, str]:
        """The domain XML Stratus writes for this image and size, and the security-group filter
        it defines for the instance (from an instance launched for the purpose, the first time)."""
        key = (load, memory_mib)
        if key not in self.templates:
            guest = StratusGuest(self, Case("template", memory_mib, load, "default"))
            try:
                guest.launch(wait_boot=False)
                self.templates[key] = (virsh(guest.source, "dumpxml", "--inactive", guest.name).stdout,
                                       virsh(guest.source, "nwfilter-dumpxml", f"stratus-{guest.name}").stdout)
            finally:
                guest.remove()
        return self.templates[key]

    def silent_hosts(self) -> list[str]:
        return [uri for uri in self.uris if virsh(uri, "list", check=False, timeout=15).returncode != 0]

    def close(self) -> None:
        self.stratus.stop()


def type_name(memory_mib: int) -> str:
    return f"bench.m{memory_mib}"


class StratusGuest:
    via = "stratus"

    def __init__(self, lab: Lab, case: Case):
        self.lab, self.case = lab, case
        self.name = self.source = self.target = self.address = None

    def launch(self, wait_boot: bool = True) -> None:
        ec2 = self.lab.ec2
        self.name = ec2.run_instances(ImageId=self.lab.images[self.case.load], InstanceType=type_name(self.case.memory_mib),
                                      MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        self.console = self.lab.stratus.console_path(self.name)
        ready = Watch(self.console, ready_pattern(self.case.load)) if wait_boot else None
        deadline = time.monotonic() + BOOT_TIMEOUT
        while (state := self.describe()["State"]["Name"]) != "running":
            if state != "pending" or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} is {state}, not running")
            time.sleep(0.1)
        self.address = self.describe()["PrivateIpAddress"]
        self.source = self.host_uri()
        self.target = self.lab.other(self.source)
        self.lab.last_source = self.source
        if ready is not None and ready.wait(BOOT_TIMEOUT) is None:
            raise RuntimeError(f"{self.name} did not boot (or its load did not start)")

    def describe(self) -> dict:
        return self.lab.ec2.describe_instances(InstanceIds=[self.name])["Reservations"][0]["Instances"][0]

    def host_uri(self) -> str | None:
        for host in self.lab.ext.describe_hosts()["Hosts"]:
            if any(i["InstanceId"] == self.name for i in host.get("Instances", [])):
                return host["Uri"]
        return None

    def migrate(self, policy: str) -> Migrated:
        target_id = next(h for h, uri in self.lab.hosts.items() if uri == self.target)
        t0 = time.monotonic()
        migration_id = self.lab.ext.migrate_instance(
            InstanceId=self.name, TargetHostId=target_id, AutoConverge=policy == "auto-converge",
            AllowPostCopy=policy == "post-copy", TimeoutSeconds=self.lab.args.timeout)["Migration"]["MigrationId"]
        phases = {}  # status -> ms after MigrateInstance was sent when first seen
        deadline = t0 + self.lab.args.timeout + 120
        while True:
            xml = self.lab.stratus.query({"Action": "DescribeInstanceMigrations", "MigrationId.1": migration_id})
            status = re.search(r"<status>([\w-]+)</status>", xml).group(1)
            phases.setdefault(status, round((time.monotonic() - t0) * 1000))
            if status in ("completed", "failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"migration {migration_id} still {status} long after its timeout")
            time.sleep(STATUS_POLL)
        wall = (time.monotonic() - t0) * 1000
        m = self.lab.ext.describe_instance_migrations(MigrationIds=[migration_id])["Migrations"][0]
        return Migrated(ok=status == "completed", wall_ms=wall, total_ms=m.get("TotalTimeMillis"),
                        downtime_ms=m.get("DowntimeMillis"),
                        data_mib=m["MemoryProcessedBytes"] / 2**20 if "MemoryProcessedBytes" in m else None,
                        iterations=m.get("Iterations"), post_copy="post-copy" in phases,
                        error="" if status == "completed" else f"{status}: {m.get('ErrorMessage', '')}",
                        phases=" ".join(f"{k} {v}" for k, v in phases.items()))

    def runs_on_target(self) -> bool:
        return self.describe()["State"]["Name"] == "running" and self.host_uri() == self.target

    def remove(self) -> None:
        if self.name is None:
            return
        deadline = time.monotonic() + self.lab.args.timeout + 60
        while True:  # refused while a migration runs: wait for it to end
            try:
                return terminate(self.lab.ec2, self.name)
            except ClientError as e:
                if e.response["Error"]["Code"] != "IncorrectInstanceState" or time.monotonic() > deadline:
                    raise
                time.sleep(1)


class VirshGuest:
    """The virsh path, or virsh-filtered (`filtered`): the domain's filter is then a copy of
    the template's, named as the domain."""

    def __init__(self, lab: Lab, case: Case, name: str, filtered: bool):
        self.lab, self.case, self.name, self.filtered = lab, case, name, filtered
        self.via = "virsh-filtered" if filtered else "virsh"
        self.dir = lab.work / name
        self.console = self.dir / "console.log"
        self.filter_xml = self.dir / "filter.xml"
        self.address = VIRSH_ADDRESS
        self.source = self.target = None
        self.defined = False
        self.filter_hosts: list[str] = []  # where the filter may be defined

    def launch(self) -> None:
        template, template_filter = self.lab.template(self.case.load, self.case.memory_mib)
        # From where the last Stratus guest started (the template's, if none yet), the same way.
        self.source = self.lab.last_source
        self.target = self.lab.other(self.source)
        self.dir.mkdir()
        disk = self.dir / "root.qcow2"
        run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", self.lab.base_disk, str(disk))
        mac = "52:54:00:be:%02x:%02x" % (random.randrange(256), random.randrange(256))
        xml = self.dir / "domain.xml"
        xml.write_text(standalone_xml(template, self.name, disk, self.console, mac, self.address,
                                      self.name if self.filtered else None))
        commands = f"define {xml} ; start {self.name}"
        if self.filtered:
            self.filter_xml.write_text(filter_copy(template_filter, template, self.name, mac, self.address))
            self.filter_hosts.append(self.source)
            commands = f"nwfilter-define {self.filter_xml} ; {commands}"
        ready = Watch(self.console, ready_pattern(self.case.load))
        self.defined = True
        virsh(self.source, commands)
        if ready.wait(BOOT_TIMEOUT) is None:
            raise RuntimeError(f"{self.name} did not boot (or its load did not start)")

    def migrate(self, policy: str) -> Migrated:
        flags = ["--live", "--p2p", "--persistent", "--undefinesource", "--unsafe"]
        flags += {"default": [], "auto-converge": ["--auto-converge"], "post-copy": ["--postcopy"]}[policy]
        done = threading.Event()
        switched = threading.Event()
        timed_out = threading.Event()

        def abort() -> None:  # as Stratus's TimeoutSeconds: abort, unless already in post-copy
            if not switched.is_set():
                timed_out.set()
                virsh(self.source, "domjobabort", self.name, check=False)

        def switch_to_post_copy() -> None:  # as Stratus's monitor does it
            while not done.wait(STRATUS_MONITOR_POLL):
                job = jobinfo(self.source, self.name)
                if job.get("iteration", 0) >= POST_COPY_AFTER_ITERATIONS and job.get("memory_remaining_mib", 0) > 0:
                    if virsh(self.source, "migrate-postcopy", self.name, check=False).returncode == 0:
                        switched.set()
                    return

        timer = threading.Timer(self.lab.args.timeout, abort)
        monitor = threading.Thread(target=switch_to_post_copy, daemon=True) if policy == "post-copy" else None
        t0 = time.monotonic()
        if self.filtered:  # the filter must be on the target before the guest is
            self.filter_hosts.append(self.target)
            answer = virsh(self.target, "nwfilter-define", str(self.filter_xml), check=False)
            if answer.returncode != 0:
                return Migrated(ok=False, wall_ms=(time.monotonic() - t0) * 1000,
                                error=f"could not define the filter on the target: {answer.stderr.strip()}")
        proc = subprocess.Popen(["virsh", "-q", "-c", self.source, "migrate", *flags, self.name, self.target],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        timer.start()
        if monitor is not None:
            monitor.start()
        _, err = proc.communicate()
        wall = (time.monotonic() - t0) * 1000
        done.set()
        timer.cancel()
        if monitor is not None:
            monitor.join()
        if proc.returncode != 0:
            why = f"timed out after {self.lab.args.timeout} s" if timed_out.is_set() else err.strip()
            return Migrated(ok=False, wall_ms=wall, error=f"failed: {why}", post_copy=switched.is_set())
        # After a post-copy switch the target may finish its side a moment after the source.
        deadline = time.monotonic() + 10
        while "time_elapsed_ms" not in (job := jobinfo(self.target, self.name, completed=True)):
            if time.monotonic() > deadline:
                return Migrated(ok=False, wall_ms=wall, error="no completed job statistics on the target",
                                post_copy=switched.is_set())
            time.sleep(0.1)
        return Migrated(ok=True, wall_ms=wall, total_ms=job.get("time_elapsed_ms"), downtime_ms=job.get("total_downtime_ms"),
                        data_mib=job.get("memory_processed_mib"), iterations=job.get("iteration"),
                        post_copy=switched.is_set())

    def runs_on_target(self) -> bool:
        on_target = virsh(self.target, "domstate", self.name, check=False).stdout.strip()
        on_source = virsh(self.source, "domstate", self.name, check=False)
        return on_target == "running" and on_source.returncode != 0

    def remove(self) -> None:
        if self.defined:
            for uri in self.lab.uris:
                remove_domain(uri, self.name)
        for uri in self.filter_hosts:
            remove_filter(uri, self.name)
        shutil.rmtree(self.dir, ignore_errors=True)


def ready_pattern(load: str) -> str:
    """The console line after which the guest and its load are up."""
    return {"idle": BOOT_MARKER, "dirty": r"stratus-dirty pass=1 ", "download": r"stratus-info sink="}[load]


UNITS = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "TiB": 2**20}


def jobinfo(uri: str, name: str, completed: bool = False) -> dict:
    """`virsh domjobinfo`, the fields used here: time_elapsed_ms, total_downtime_ms,
    memory_processed_mib, memory_remaining_mib, iteration."""
    proc = virsh(uri, "domjobinfo", *(["--completed"] if completed else []), name, check=False)
    job = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(":")
        key = re.sub(r"\W+", "_", key.strip().lower())
        parts = value.split()
        if not parts:
            continue
        try:
            number = float(parts[0])
        except ValueError:
            continue
        if key == "iteration":
            job[key] = int(number)
        elif len(parts) > 1 and parts[1] == "ms":
            job[f"{key}_ms"] = number
        elif len(parts) > 1 and parts[1] in UNITS:
            job[f"{key}_mib"] = number * UNITS[parts[1]]
    return job


# --- one run ------------------------------------------------------------------------------------


def keep_logs(lab: Lab, guest, record: dict) -> None:
    """A broken run's console and QEMU logs, into <out>/broken/ for a look afterwards."""
    label = "-".join(str(record[k]) for k in ("experiment", "memory_mib", "policy", "via", "rep"))
    keep = lab.args.out / "broken" / label
    keep.mkdir(parents=True, exist_ok=True)
    logs = [(getattr(guest, "console", None), "console.log")] + [
        (lab.qemu_log(uri, guest.name), f"qemu-{uri.split('/')[2]}.log") for uri in lab.uris if guest.name]
    for path, name in logs:
        if path is not None and path.exists():
            shutil.copyfile(path, keep / name)


def counter(text: str) -> int:
    return max((int(n) for n in re.findall(r"stratus-counter (\d+)", text)), default=0)


def measure(lab: Lab, guest, case: Case, rep: int) -> tuple[dict, dict | None]:
    """Boots the guest, migrates it under its load with the pinger on, checks it; answers the
    run's record and its ping trace."""
    record = {"experiment": case.experiment, "memory_mib": case.memory_mib, "load": case.load,
              "policy": case.policy, "via": guest.via, "rep": rep, "total_ms": None, "downtime_ms": None,
              "wall_ms": None, "data_mib": None, "max_ping_gap_ms": None, "ping_replies": 0, "ok": False, "note": "",
              "migration_completed": False}
    trace = None
    problems = []
    download = pinger = None
    try:
        guest.launch()
        if case.load == "download":
            download = Download(guest.address, SINK_PORT)
        pinger = Pinger(guest.address)
        time.sleep(PRE_SECONDS)
        console_before = counter(guest.console.read_text(errors="replace"))
        start_wall = time.time()
        migrated = guest.migrate(case.policy)
        end_wall = start_wall + migrated.wall_ms / 1000
        passes = guest.console.read_text(errors="replace").count("stratus-dirty pass=")
        time.sleep(POST_SECONDS)
        pings = pinger.stop()
        pinger = None
        if case.load == "dirty" and migrated.ok:
            # Two more passes of the dirtier after the switch-over read every page it wrote;
            # no use waiting for them from a guest that already broke or stopped counting.
            deadline = time.monotonic() + DIRTY_CHECK_TIMEOUT
            counted, counted_at = counter(guest.console.read_text(errors="replace")), time.monotonic()
            while (text := guest.console.read_text(errors="replace")).count("stratus-dirty pass=") < passes + 2:
                if counter(text) > counted:
                    counted, counted_at = counter(text), time.monotonic()
                if GUEST_BROKEN.search(text):
                    break
                if time.monotonic() - counted_at > 5:
                    problems.append("the guest stopped counting on its console")
                    break
                if time.monotonic() > deadline:
                    problems.append(f"the dirtier did not finish two passes within {DIRTY_CHECK_TIMEOUT} s")
                    break
                time.sleep(0.1)
        console = guest.console.read_text(errors="replace")
        record.update(total_ms=migrated.total_ms, downtime_ms=migrated.downtime_ms,
                      wall_ms=round(migrated.wall_ms, 1),
                      data_mib=None if migrated.data_mib is None else round(migrated.data_mib, 1),
                      ping_replies=len(pings.replies), migration_completed=migrated.ok)
        notes = [f"source {guest.source.split('/')[2]}", f"iterations {migrated.iterations}"]
        if migrated.phases:
            notes.append(f"phases (ms) {migrated.phases}")
        if migrated.post_copy:
            notes.append("switched to post-copy")
        if not migrated.ok:
            problems.append(migrated.error)
        elif not guest.runs_on_target():
            problems.append("the guest does not run on the target")
        if counter(console) <= console_before:
            problems.append("the console counter stopped")
        if console.count(BOOT_MARKER) != 1:
            problems.append("the guest rebooted")
        broken = GUEST_BROKEN.search(console) or next(
            (m for uri in (guest.source, guest.target) for p in [lab.qemu_log(uri, guest.name)] if p.exists()
             for m in [GUEST_BROKEN.search(p.read_text(errors="replace"))] if m), None)
        if broken:
            problems.append(f"guest or QEMU error: {broken.group(0)!r}")
        before = pings.received_between(start_wall - PRE_SECONDS, start_wall)
        after = pings.received_between(end_wall + POST_SECONDS - 1, end_wall + POST_SECONDS)
        expected = 1000 / PING_INTERVAL_MS
        if before < expected / 2 or after < expected / 2:
            problems.append(f"pinger: {before} replies in the second before, {after} in the last second after")
        gap = pings.largest_gap()
        if gap is not None and before and after:
            record["max_ping_gap_ms"] = round(gap[1] * 1000, 1)
        if download is not None:
            if download.error:
                problems.append(download.error)
            rates = [download.rate_mib_s(start_wall - PRE_SECONDS, start_wall),
                     download.rate_mib_s(end_wall, end_wall + POST_SECONDS)]
            notes.append("download MiB/s before/after: " + "/".join("-" if r is None else f"{r:.1f}" for r in rates))
        if case == Case("memory", 512, "idle", "default") and rep == 0:
            trace = {"via": guest.via, "memory_mib": 512, "interval_ms": PING_INTERVAL_MS,
                     "samples": pings.samples(start_wall),
                     "switchover_ms": None if gap is None else round((gap[0] - start_wall) * 1000, 1)}
        record["ok"] = not problems
        record["note"] = "; ".join(problems + notes)
    except Exception as e:  # a broken run is recorded, and the next one goes on
        record["note"] = f"run broken: {type(e).__name__}: {e}"
    finally:
        if not record["ok"]:
            keep_logs(lab, guest, record)
        if pinger is not None:
            pinger.proc.kill()
            pinger.proc.wait()
        if download is not None:
            download.stop()
        try:
            guest.remove()
        except Exception as e:
            record["ok"] = False
            record["note"] += f"; could not remove the guest: {e}"
            log(f"could not remove {guest.name}: {e}")
    return record, trace


# --- report -------------------------------------------------------------------------------------


def print_table(runs: list[dict]) -> None:
    """Per case, one row per path over its ok runs; where some of its guests broke after a
    completed migration, a second row (`+broken`) over all its completed migrations, without
    the ping gap; then the ratios of the medians of successive paths (S/F, F/V; S/V without F)."""
    metrics = ("total_ms", "downtime_ms", "wall_ms", "max_ping_gap_ms")
    vias = [via for via in VIAS if any(r["via"] == via for r in runs)]
    pairs = list(zip(vias, vias[1:]))
    rows = []
    for key in dict.fromkeys((r["experiment"], r["memory_mib"], r["load"], r["policy"]) for r in runs):
        of = {via: [r for r in runs if (r["experiment"], r["memory_mib"], r["load"], r["policy"]) == key
                    and r["via"] == via] for via in vias}
        ok = {via: {metric: summary([r[metric] for r in of[via] if r["ok"]]) for metric in metrics} for via in vias}
        label = f"{key[0]} {key[1]} MiB {key[3]}"
        for via in vias:
            rows.append([label, via, f"{sum(r['ok'] for r in of[via])}/{len(of[via])}"]
                        + [cell(ok[via][metric]) for metric in metrics])
            label = ""
            if any(r["migration_completed"] and not r["ok"] for r in of[via]):
                rows.append(["", "  +broken guests", ""]
                            + [cell(summary([r[metric] for r in of[via] if r["migration_completed"]]))
                               for metric in metrics[:3]] + [""])
        for a, b in pairs:
            rows.append(["", f"{SHORT[a]}/{SHORT[b]}", ""] + [ratio(ok[a][m], ok[b][m]) for m in metrics])
    print("\nMigration (ms: median (min–max); S = stratus, F = virsh-filtered, V = virsh; "
          "X/Y = ratio of medians)\n")
    print(table(["case", "via", "runs ok", "total", "downtime", "wall", "ping gap"], rows))
    broken = [r for r in runs if not r["ok"]]
    print(f"\n{len(broken)} broken run(s)" + "".join(
        f"\n  {r['experiment']} {r['memory_mib']} {r['policy']} {r['via']} rep {r['rep']}: {r['note']}"
        for r in broken))


def measure_all() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repetition; 256 and 512 MiB; one load case")
    parser.add_argument("--vias", default=",".join(VIAS), help="the paths to run, comma-separated")
    parser.add_argument("--stratus-bin", type=Path, default=REPO / "target/release/stratus")
    parser.add_argument("--load-memory", type=int, default=1024, help="guest MiB of the load cases")
    parser.add_argument("--dirty-mib", type=int, default=256, help="MiB the dirtying load keeps writing")
    parser.add_argument("--dirty-rate", type=int, default=0, help="MiB/s of pages it dirties (0: flat out)")
    parser.add_argument("--timeout", type=int, default=60, help="seconds before a migration is aborted")
    args = parser.parse_args()
    if args.quick:
        args.reps = 1
    vias = args.vias.split(",")
    if not set(vias) <= set(VIAS):
        parser.error(f"--vias: a comma-separated choice of {', '.join(VIAS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    accelerator = Path("/var/lib/stratus/accelerator").read_text().strip() if Path(
        "/var/lib/stratus/accelerator").exists() else "unknown"

    work = Path(tempfile.mkdtemp(prefix="stratus-bench-migration-"))
    runs, traces = [], []
    lab = None
    aborted = None
    started = time.monotonic()
    try:
        lab = Lab(args, work)
        n = 0
        for case in cases(args.quick, args.load_memory):
            for rep in range(args.reps):
                for via in rotation(vias, rep):
                    n += 1
                    guest = StratusGuest(lab, case) if via == "stratus" else \
                        VirshGuest(lab, case, f"bench-mig-{os.getpid()}-{n}", filtered=via == "virsh-filtered")
                    record, trace = measure(lab, guest, case, rep)
                    runs.append(record)
                    if trace is not None:
                        traces.append(trace)
                    log(f"{case.experiment} {case.memory_mib} MiB {case.load} {case.policy} {via} rep {rep}: "
                        f"total {record['total_ms']} downtime {record['downtime_ms']} wall {record['wall_ms']} "
                        f"gap {record['max_ping_gap_ms']} ms; {'ok' if record['ok'] else 'BROKEN'}: {record['note']}")
                    if not lab.stratus.alive():
                        raise RuntimeError(f"stratus serve died (see {lab.stratus.log_path})")
                    # Every run after would fail the same way: stop, keeping what was measured.
                    # (The lab is one per machine: another `scripts/lab down`, as the test
                    # suite's lab tests run, takes ours down too.)
                    if not record["ok"] and (silent := lab.silent_hosts()):
                        raise RuntimeError(f"lab host(s) {', '.join(silent)} stopped answering")
    except RuntimeError as e:
        aborted = str(e)
        log(f"aborted: {aborted}")
    finally:
        if lab is not None:
            lab.close()
            shutil.copyfile(lab.stratus.log_path, args.out / "stratus-migration.log")
        run(str(REPO / "scripts/lab"), "down", timeout=300, check=False)
        shutil.rmtree(work, ignore_errors=True)
        report = {"kind": "migration", "accelerator": accelerator, "aborted": aborted, "runs": runs,
                  "ping_traces": traces}
        (args.out / "migration.json").write_text(json.dumps(report, indent=2) + "\n")
        log(f"{len(runs)} runs in {time.monotonic() - started:.0f} s; written {args.out / 'migration.json'}")
    print_table(runs)
    if aborted:
        raise SystemExit(f"aborted after {len(runs)} runs: {aborted}")


def main() -> None:
    with lab_lock():
        measure_all()


if __name__ == "__main__":
    run_main(main)
