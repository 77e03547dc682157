#!/usr/bin/env python3
"""Migration planning benchmark (issue 22): how far each migration's own prediction is from
what happened, by memory size, load and policy, through Stratus on two lab hosts, each case
beside the same migration by plain virsh.

1. `scripts/lab up 2` (`--local-disks`: hosts without shared storage, both paths copy the root
   disk), `stratus serve` on the lab's config with OVN (so that Stratus traces each migration
   with its 10 ms pinger), the test image imported twice: idle, and with the memory dirtier
   (`stratus.dirty=MIB stratus.dirty_rate=RATE`: it rewrites MIB MiB at RATE MiB/s and checks
   every page it wrote). For virsh: the domains Stratus defines for each type and load, as
   templates, and a pinger of the benchmark's own on the default subnet (as in
   bench/migration_ovn.py, whose virsh path this one uses).
2. Warm-up, untimed: idle migrations through Stratus of the smallest and the largest size,
   twice each, so that the hosts have the history an estimate learns from (setup, what idle
   guests send, and reading told from sending: the path's fit needs migrations of different
   mixes), and one by virsh.
3. For each memory size (x1.tiny 256 MiB, a type the benchmark's config adds since EC2 has
   none that small; t3.nano 512 MiB, t3.micro 1 GiB, t3.small 2 GiB), each case, R
   repetitions, each path (order rotated): a fresh guest boots, runs 3 s, and is migrated to
   the other host.
   - stratus: MigrateInstance with the case's options; DescribeInstanceMigrations is polled
     until the migration is final. Each migration records its prediction as it starts (the
     guest measured for a second on the source) and what it was made from
     (PredictedFrom...), beside TotalTimeMillis (libvirt's), DowntimeMillis, Iterations, the
     ping trace's largest gap and the escalation's timeline.
   - virsh: the template made standalone with an OVN port of its own, `virsh migrate --live
     --p2p` with the case's flags, the port's binding moved by hand; libvirt's completed job
     on the target, the benchmark's pinger's largest gap.
   Cases:
   - idle, default options (pre-copy converges);
   - dirty, default options (pre-copy against the dirtier at TCG's own bandwidth);
   - download, default options: the guest takes a TCP stream into its sink, sent flat out from
     the benchmark's namespace on the default subnet (`stratus.sink=PORT`) from before the
     migration to its end; the stream's rate, longest stall and whether it broke are recorded;
   - dirty, BandwidthMiBps 32, MaxDowntimeMillis 100, TimeoutSeconds 30 (escalation: the
     allowance rises to the budget, then the migration is aborted: the prediction says when);
     virsh: `--bandwidth 32 --timeout 30` (it pauses the guest at the timeout until the rest
     is sent; it has no downtime budget to escalate to);
   - dirty, the same with AllowPostCopy (escalation ends in post-copy); virsh: `--postcopy
     --postcopy-after-precopy` at the same bandwidth;
   - download, the same two budgets (escalation, post-copy), the stream flowing throughout.
   Post-copy migrations also record the pause Stratus watched at the switch
   (PostCopyPauseMillis): libvirt's DowntimeMillis for them may run on to the end of the copy.
   Every migration's guest console is searched afterwards for a kernel panic or oops (the
   table's "panics"). With `--virsh-downtime MS`, virsh's migrations under a budget run with
   QEMU's downtime limit at MS instead of its own 300 ms: at 75, where Stratus's escalation
   starts for a 100 ms budget (`--loads download --policies escalation --virsh-downtime 75`),
   plain virsh's guests die after the move too (docs/benchmarks.md).
4. `migration-plan.json` (`migration-plan-local-disks.json`) in --out, a table on stdout, and
   with --svg DIR a plot of predicted against actual total time.

The error is predicted / actual - 1 on the total time (to the abort, for an aborted one).

    bench/migration_plan.py [--out DIR] [--reps 3] [--stratus-bin target/release/stratus] [--svg DIR]
                            [--paths stratus,virsh] [--sizes 256,512,1024,2048] [--loads idle,dirty,download]
                            [--policies pre-copy,escalation,post-copy] [--local-disks] [--virsh-downtime MS]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from common import (BOOT_MARKER, REPO, Stratus, Watch, build_test_image, cell, instance, lab_lock, log, rotation,
                    run, run_main, summary, table, terminate, virsh)
from launch_ovn import NB, PINGER_ADDRESS, Pinger, pinger_on_default_subnet
from migration_ovn import migrate_virsh

SIZES = [("x1.tiny", 256), ("t3.nano", 512), ("t3.micro", 1024), ("t3.small", 2048)]
# EC2 has no 256 MiB type: the benchmark's config adds one, as an operator would.
TINY = '\n[[instance_types]]\nname = "x1.tiny"\nvcpus = 1\nmemory_mib = 256\nburstable = true\n'
DIRTY_MIB, DIRTY_RATE = 64, 96
BUDGET = {"BandwidthMiBps": 32, "MaxDowntimeMillis": 100, "TimeoutSeconds": 30}
# Each case: load, policy, Stratus's options, and the same migration's flags for plain virsh
# (which has no escalation: past its timeout it pauses the guest until the rest is sent; its
# downtime limit stays QEMU's 300 ms).
CASES = [
    ("idle", "pre-copy", {}, ()),
    ("dirty", "pre-copy", {}, ()),
    ("download", "pre-copy", {}, ()),
    ("dirty", "escalation", BUDGET, ("--bandwidth", "32", "--timeout", "30")),
    ("dirty", "post-copy", {**BUDGET, "AllowPostCopy": True},
     ("--bandwidth", "32", "--postcopy", "--postcopy-bandwidth", "32", "--postcopy-after-precopy")),
    ("download", "escalation", BUDGET, ("--bandwidth", "32", "--timeout", "30")),
    ("download", "post-copy", {**BUDGET, "AllowPostCopy": True},
     ("--bandwidth", "32", "--postcopy", "--postcopy-bandwidth", "32", "--postcopy-after-precopy")),
]
PATHS = ("stratus", "virsh")
LOADS = ("idle", "dirty", "download")
POLICIES = ("pre-copy", "escalation", "post-copy")
# What a guest's console shows when its kernel gave up, or its NIC's driver did (after a move:
# its memory and a device's queue came over out of step; virtio marks the queue broken and the
# guest runs on without a network).
PANIC = re.compile(r"Kernel panic|BUG: |Oops: |is not a head!")
# The download load: the guest's sink (`stratus.sink=PORT`: busybox nc into /dev/null) takes a
# TCP stream sent as fast as it goes from the benchmark's namespace on the default subnet.
SINK_PORT = 5001
SENDER = r"""
import socket, sys, time
address, port = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 30
while True:
    try:
        s = socket.create_connection((address, port), timeout=2)
        break
    except OSError:
        if time.monotonic() > deadline:
            print("unreachable", flush=True)
            sys.exit(1)
        time.sleep(0.2)
s.settimeout(None)
chunk, sent = b"\xa5" * 65536, 0
last = time.monotonic()
print(f"connected {last:.3f}", flush=True)
try:
    while True:
        sent += s.send(chunk)
        now = time.monotonic()
        if now - last >= 0.1:
            print(f"{now:.3f} {sent}", flush=True)
            last = now
except OSError as e:
    print(f"broken {time.monotonic():.3f} {e}", flush=True)
"""


# How long the stream goes on after the migration: a stall that runs past its end (TCP backing
# off its retransmissions across the switch-over) is measured to where the stream moves again,
# and a stream that has not moved again by then counts as broken (a connection that died
# without a reset leaves the sender blocked, not failing).
RESUME_GRACE = 5.0


class Download:
    """The download load on one guest: a TCP stream into its sink from the pinger's namespace,
    sent flat out; `stop` says how much went, how fast, the longest the stream stalled, and
    whether it broke (a live migration keeps the guest's connections). The sender stamps its
    samples with the system's monotonic clock, which namespaces share."""

    def __init__(self, ns: str, address: str):
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-u", "-c", SENDER, address,
                                      str(SINK_PORT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.until: float | None = None

    def mark(self) -> None:
        """The migration is over: the rate counts up to now; a stall under way now is followed
        for RESUME_GRACE more, before anything else happens (the virsh path tears its guest down
        after this returns)."""
        self.until = time.monotonic()
        time.sleep(RESUME_GRACE)

    def stop(self) -> dict:
        until = self.until if self.until is not None else time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=10)
        connected = re.search(r"^connected (\d+\.\d+)$", out, re.MULTILINE)
        every = [(float(t), int(b)) for t, b in re.findall(r"^(\d+\.\d+) (\d+)$", out, re.MULTILINE)]
        samples = [(t, b) for t, b in every if t <= until]
        if connected is None or not samples:
            return {"DownloadConnected": connected is not None, "DownloadBroken": True, "DownloadMiB": 0,
                    "DownloadMiBps": None, "DownloadLargestStallMillis": None}
        start = float(connected.group(1))
        stall, since = 0.0, start
        for (_, b0), (t1, b1) in zip(samples, samples[1:]):
            if b1 > b0:
                stall, since = max(stall, t1 - since), t1
        # A stall under way at the end of the migration lasts until the stream moves again.
        last = samples[-1][1]
        resumed = next((t for t, b in every if t > until and b > last), None)
        stall = max(stall, (until if resumed is None else resumed) - since)
        sent, seconds = last, samples[-1][0] - start
        # A break after the grace (the virsh path's teardown) does not count.
        broken = any(float(t) <= until + RESUME_GRACE for t in re.findall(r"^broken (\d+\.\d+)", out, re.MULTILINE))
        return {"DownloadConnected": True,
                "DownloadBroken": broken or resumed is None,
                "DownloadMiB": round(sent / 2**20, 1),
                "DownloadMiBps": round(sent / 2**20 / seconds, 1) if seconds > 0 else None,
                "DownloadLargestStallMillis": round(stall * 1000)}


BOOT_TIMEOUT = 180.0


def host_of(ext, instance_id: str) -> str:
    for host in ext.describe_hosts()["Hosts"]:
        if instance_id in {i["InstanceId"] for i in host["Instances"]}:
            return host["HostId"]
    raise RuntimeError(f"{instance_id} is on no host")


def migrate(stratus: Stratus, ec2, ext, image_id: str, instance_type: str, options: dict,
            download_from: Pinger | None = None) -> dict:
    """One guest booted and migrated with `options`; its migration as DescribeInstanceMigrations
    answers it at the end, or a note of what went wrong. With `download_from`, the download
    load runs from 3 s before the migration to its end."""
    [launched] = ec2.run_instances(ImageId=image_id, InstanceType=instance_type, MinCount=1, MaxCount=1)["Instances"]
    instance_id = launched["InstanceId"]
    download = None
    try:
        if Watch(stratus.console_path(instance_id), BOOT_MARKER).wait(BOOT_TIMEOUT) is None:
            return {"note": "no boot marker"}
        if download_from is not None:
            download = Download(download_from.ns, instance(ec2, instance_id)["PrivateIpAddress"])
        time.sleep(3)
        source = host_of(ext, instance_id)
        target = next(h["HostId"] for h in ext.describe_hosts()["Hosts"] if h["HostId"] != source)
        started = time.monotonic()
        mid = ext.migrate_instance(InstanceId=instance_id, TargetHostId=target, **options)["Migration"]["MigrationId"]
        while True:
            m = ext.describe_instance_migrations(MigrationIds=[mid])["Migrations"][0]
            if m["Status"] in ("completed", "failed", "cancelled"):
                break
            if time.monotonic() - started > 300:
                ext.cancel_instance_migration(MigrationId=mid)
            time.sleep(0.5)
        if download is not None:
            download.mark()
        # A completed migration is final before its ping trace is: Stratus keeps pinging for a
        # second after the switch-over, then records the trace.
        deadline = time.monotonic() + 5
        while "PingsSent" not in m and time.monotonic() < deadline:
            time.sleep(0.25)
            m = ext.describe_instance_migrations(MigrationIds=[mid])["Migrations"][0]
        console = stratus.console_path(instance_id).read_text(errors="replace")
        m["PagesLost"], m["GuestPanicked"] = pages_lost(console), bool(PANIC.search(console))
        if download is not None:
            m.update(download.stop())
            download = None
        return m
    finally:
        if download is not None:
            download.stop()
        terminate(ec2, instance_id)


def pages_lost(console: str) -> int:
    """What the memory dirtier found lost, over all its passes."""
    return sum(int(n) for n in re.findall(r"stratus-dirty pass=\d+ lost=(\d+)", console))


def template(ec2, ext, image_id: str, instance_type: str) -> str:
    """The domain Stratus defines for this image and type, for the virsh runs to copy."""
    [launched] = ec2.run_instances(ImageId=image_id, InstanceType=instance_type, MinCount=1, MaxCount=1)["Instances"]
    try:
        while instance(ec2, launched["InstanceId"])["State"]["Name"] != "running":
            time.sleep(0.1)
        uri = next(h["Uri"] for h in ext.describe_hosts()["Hosts"] if h["HostId"] == host_of(ext, launched["InstanceId"]))
        return virsh(uri, "dumpxml", "--inactive", launched["InstanceId"]).stdout
    finally:
        terminate(ec2, launched["InstanceId"])


def timeline_entry(e: dict) -> list:
    """An event as [ms, type, pass, MiB left, MiB/s dirtied, MiB/s sent, throttle %]."""
    mib = lambda key: round(e.get(key, 0) / 2**20, 1)  # noqa: E731
    return [e.get("ElapsedMillis"), e["Type"], e.get("Iteration"), mib("MemoryRemainingBytes"),
            mib("DirtyRateBytesPerSecond"), mib("BandwidthBytesPerSecond"), e.get("ThrottlePercent")]


def error(m: dict) -> float | None:
    predicted, actual = m.get("PredictedTotalMillis"), m.get("TotalTimeMillis")
    if m.get("Status") == "failed" and m.get("Events"):
        # An aborted migration's libvirt figures stop at its last reading: its length is the
        # timeline's, from the start to the abort.
        started = next((e["ElapsedMillis"] for e in m["Events"] if e["Type"] == "started"), None)
        aborted = next((e["ElapsedMillis"] for e in m["Events"] if e["Type"] == "aborted"), None)
        actual = aborted - started if started is not None and aborted is not None else actual
    if not predicted or not actual:
        return None
    return predicted / actual - 1


def measure_all(args) -> list[dict]:
    lab = run(str(REPO / "scripts/lab"), "up", "2", *(["--local-disks"] if args.local_disks else []),
              timeout=600).stdout
    config = Path(re.search(r"^config=(\S+)$", lab, re.MULTILINE).group(1)).read_text()
    image = build_test_image()
    work = Path(tempfile.mkdtemp(prefix="stratus-bench-migration-plan-"))
    stratus = pinger = None
    runs = []
    sizes = [(t, m) for t, m in SIZES if m in args.sizes]
    try:
        stratus = Stratus(args.stratus_bin.resolve(), work / "data",
                          config=config + f'\n[network]\novn_northbound = "{NB}"\n' + TINY)
        ec2, ext = stratus.client(), stratus.client("stratus")
        cmdlines = {"idle": "", "dirty": f"stratus.dirty={DIRTY_MIB} stratus.dirty_rate={DIRTY_RATE}",
                    "download": f"stratus.sink={SINK_PORT}"}
        # The warm-up migrates idle guests whatever the loads.
        images = {load: stratus.import_image(image, f"bench-plan-{load}", cmdlines[load])
                  for load in dict.fromkeys(["idle", *args.loads])}
        uris = sorted(h["Uri"] for h in ext.describe_hosts()["Hosts"])
        templates = {}
        cases = [c for c in CASES if c[0] in args.loads and c[1] in args.policies]
        if "virsh" in args.paths or "download" in args.loads:
            switch, pinger = pinger_on_default_subnet(ec2)
            # Stratus's guests may be on another zone's default subnet: reach them through the
            # VPC's router.
            run("ip", "-n", pinger.ns, "route", "replace", "default", "via", "172.31.0.1")
            [group] = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["default"]}])[
                "SecurityGroups"]
            ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": SINK_PORT, "ToPort": SINK_PORT,
                 "IpRanges": [{"CidrIp": f"{PINGER_ADDRESS}/32"}]}])
        if "virsh" in args.paths:
            log("templates for the virsh runs: the domains Stratus defines for each type and load")
            templates = {(t, load): template(ec2, ext, images[load], t) for t, _ in sizes for load in images}
        # Guests of two sizes: idle guests that differ in memory read different counts of zero
        # pages for about the same bytes sent, so the host's history tells reading from sending
        # (the path's fit) before the first dirtier.
        log("warm-up: idle migrations of the smallest and largest size, twice each (untimed), for the hosts' history")
        for instance_type in (sizes[0][0], sizes[-1][0]):
            for _ in range(2):
                migrate(stratus, ec2, ext, images["idle"], instance_type, {})
        if "virsh" in args.paths:
            migrate_virsh(templates[(sizes[0][0], "idle")], switch, image.disk, work, f"bench-plan-{os.getpid()}-warm",
                          pinger, uris[1], uris[0], args.local_disks)
        for rep in range(args.reps):
            for instance_type, memory in sizes:
                for load, policy, options, flags in cases:
                    for path in rotation([p for p in PATHS if p in args.paths], rep):
                        case = {"rep": rep, "memory_mib": memory, "load": load, "policy": policy, "via": path}
                        downloading = pinger if load == "download" else None
                        if path == "stratus":
                            r = {**case, **stratus_result(migrate(stratus, ec2, ext, images[load], instance_type,
                                                                  options, downloading))}
                        else:
                            source, target = (uris[0], uris[1]) if rep % 2 == 0 else (uris[1], uris[0])
                            loads, name = [], f"bench-plan-{os.getpid()}-{len(runs)}"
                            limit = args.virsh_downtime

                            def prepare(address, name=name, source=source, limit=limit):
                                if limit is not None:
                                    virsh(source, "migrate-setmaxdowntime", name, str(limit))
                                if downloading is not None:
                                    loads.append(Download(downloading.ns, address))

                            # Nothing to do between the boot and the move: no pause for it either.
                            booted = None if downloading is None and limit is None else prepare
                            try:
                                v = migrate_virsh(templates[(instance_type, load)], switch, image.disk, work,
                                                  name, pinger, source, target,
                                                  args.local_disks, flags, keep_console=True, on_booted=booted,
                                                  on_migrated=lambda: [d.mark() for d in loads])
                            finally:
                                download = loads[0].stop() if loads else {}
                            r = {**case, "Status": "completed" if v["ok"] else "failed", "error": None,
                                 "TotalTimeMillis": v["total_ms"], "DowntimeMillis": v["downtime_ms"],
                                 "Iterations": v.get("iterations"), "PingLargestGapMillis": v["largest_gap_ms"],
                                 "PagesLost": pages_lost(v.get("console", "")), "wall_ms": v["wall_ms"],
                                 "GuestPanicked": bool(PANIC.search(v.get("console", ""))),
                                 "note": None if v["ok"] else v["note"], **download}
                        runs.append(r)
                        err = "–" if r["error"] is None else f"{r['error']:+.0%}"
                        log(f"rep {rep} {memory} MiB {load} {policy} {path}: {r['Status']} (predicted "
                            f"{r.get('PredictedEnding')}), total {r['TotalTimeMillis']} ms predicted "
                            f"{r.get('PredictedTotalMillis')} ({err}), downtime {r['DowntimeMillis']} ms, ping gap "
                            f"{r['PingLargestGapMillis']} ms, post-copy pause {r.get('PostCopyPauseMillis')} ms, lost pages {r['PagesLost']}, {r.get('events')}"
                            f"{'' if r.get('DownloadMiBps') is None else ', download ' + str(r['DownloadMiBps']) + ' MiB/s'}"
                            f"{'' if not r.get('DownloadBroken') else ' BROKEN'}"
                            f"{'' if not r.get('note') else ', ' + r['note']}")
            if not stratus.alive():
                raise RuntimeError(f"stratus serve died (see {stratus.log_path})")
    finally:
        if pinger is not None:
            pinger.close()
        if stratus is not None:
            stratus.stop()
            # The server's log goes with the results (RUST_LOG=backend::migration=debug adds each
            # progress reading of every migration).
            if args.out is not None and stratus.log_path.exists():
                args.out.mkdir(parents=True, exist_ok=True)
                shutil.copy(stratus.log_path, args.out / "stratus.log")
        shutil.rmtree(work, ignore_errors=True)
        run(str(REPO / "scripts/lab"), "down", timeout=300, check=False)
    return runs


def stratus_result(m: dict) -> dict:
    """What a Stratus migration's record says, as the results keep it."""
    keys = ("Status", "PredictedEnding", "PredictedTotalMillis", "TotalTimeMillis", "PredictedDowntimeMillis",
            "DowntimeMillis", "PostCopyPauseMillis", "PredictedIterations", "Iterations", "PingLargestGapMillis", "DowntimeLimitMillis",
            "PagesLost", "ErrorMessage", "note", "PredictedFromDirtyRateBytesPerSecond", "PredictedFromFirstPassBytes",
            "PredictedFromFirstPassReadMillis", "PredictedFromBandwidthBytesPerSecond", "MemoryProcessedBytes", "DiskProcessedBytes", "SetupTimeMillis",
            "DownloadConnected", "DownloadBroken", "DownloadMiB", "DownloadMiBps", "DownloadLargestStallMillis",
            "GuestPanicked")
    return {"error": error(m), **{k: m.get(k) for k in keys},
            "events": [e["Type"] for e in m.get("Events", []) if e["Type"] != "pass"],
            "timeline": [timeline_entry(e) for e in m.get("Events", [])]}


def report(runs: list[dict]) -> str:
    rows = []
    for _, memory in SIZES:
        for load, policy, _, _ in CASES:
            for path in PATHS:
                these = [r for r in runs if r["memory_mib"] == memory and r["load"] == load
                         and r["policy"] == policy and r.get("via", "stratus") == path]
                if not these:
                    continue
                errors = [r["error"] * 100 for r in these if r["error"] is not None]
                e = summary(errors) if errors else None
                endings = sorted({f"{r['Status']}/{r.get('PredictedEnding') or '-'}" for r in these})
                of = lambda key: cell(summary([r.get(key) for r in these if r.get(key) is not None]))  # noqa: E731
                rows.append([f"{memory} MiB", load, policy, path, ", ".join(endings), of("TotalTimeMillis"),
                             of("PredictedTotalMillis"), "-" if e is None else
                             f"{e['median']:+.0f}% ({e['min']:+.0f}…{e['max']:+.0f})", of("DowntimeMillis"), of("PostCopyPauseMillis"),
                             of("PingLargestGapMillis"), str(sum(r.get("PagesLost") or 0 for r in these)),
                             str(sum(1 for r in these if r.get("GuestPanicked"))),
                             "-" if load != "download" else
                             f"{of('DownloadMiBps')} MiB/s, stall {of('DownloadLargestStallMillis')} ms, "
                             f"{sum(1 for r in these if r.get('DownloadBroken') or not r.get('DownloadConnected'))}"
                             " broken"])
    return table(["memory", "load", "policy", "via", "status/predicted", "total", "predicted", "error", "downtime",
                  "post-copy pause", "ping gap", "pages lost", "panics", "download"], rows)


def svg(runs: list[dict], path: Path) -> None:
    """Predicted against actual total time, log-log, one mark per migration, coloured by case."""
    import math

    points = [(r, (r["PredictedTotalMillis"], r["PredictedTotalMillis"] / (1 + r["error"])))
              for r in runs if r["error"] is not None]
    if not points:
        return
    lo = min(min(p) for _, p in points) / 1.5
    hi = max(max(p) for _, p in points) * 1.5
    size, pad = 420, 50
    at = lambda v: pad + (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo)) * size  # noqa: E731
    colours = {"pre-copy": "#1f77b4", "escalation": "#d62728", "post-copy": "#2ca02c"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 2 * pad + 150}" height="{size + 2 * pad}" '
           'font-family="sans-serif" font-size="11">',
           f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="#888"/>']
    # The diagonal (exact) and the ±30% band.
    for factor, dash in ((1, ""), (1.3, ' stroke-dasharray="4 3"'), (1 / 1.3, ' stroke-dasharray="4 3"')):
        out.append(f'<line x1="{at(lo):.1f}" y1="{pad + size - (at(lo * factor) - pad):.1f}" x2="{at(hi / factor):.1f}" '
                   f'y2="{pad + size - (at(hi) - pad):.1f}" stroke="#aaa"{dash}/>')
    for v in (100, 300, 1000, 3000, 10000, 30000, 100000):
        if lo < v < hi:
            out.append(f'<text x="{at(v):.1f}" y="{pad + size + 14}" text-anchor="middle">{v / 1000:g} s</text>')
            out.append(f'<text x="{pad - 4}" y="{pad + size - (at(v) - pad) + 4:.1f}" text-anchor="end">{v / 1000:g} s</text>')
    for r, (predicted, actual) in points:
        shape = {"idle": "circle", "dirty": "rect"}.get(r["load"], "diamond")
        x, y = at(actual), pad + size - (at(predicted) - pad)
        colour = colours[r["policy"]]
        if shape == "circle":
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{2 + r["memory_mib"] / 512:.1f}" fill="{colour}" '
                       'fill-opacity="0.6"/>')
        elif shape == "rect":
            s = 2 + r["memory_mib"] / 512
            out.append(f'<rect x="{x - s:.1f}" y="{y - s:.1f}" width="{2 * s:.1f}" height="{2 * s:.1f}" '
                       f'fill="{colour}" fill-opacity="0.6"/>')
        else:
            s = 3 + r["memory_mib"] / 512
            out.append(f'<polygon points="{x:.1f},{y - s:.1f} {x + s:.1f},{y:.1f} {x:.1f},{y + s:.1f} {x - s:.1f},{y:.1f}" '
                       f'fill="{colour}" fill-opacity="0.6"/>')
    out.append(f'<text x="{pad + size / 2}" y="{pad + size + 32}" text-anchor="middle">actual total time</text>')
    out.append(f'<text x="14" y="{pad + size / 2}" transform="rotate(-90 14 {pad + size / 2})" '
               'text-anchor="middle">predicted total time</text>')
    for i, (name, colour) in enumerate(colours.items()):
        out.append(f'<rect x="{pad + size + 20}" y="{pad + 10 + 18 * i}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{pad + size + 36}" y="{pad + 19 + 18 * i}">{name}</text>')
    legend = ("circle: idle", "square: dirty", "diamond: download", "size: memory", "dashed: ±30%")
    out += [f'<text x="{pad + size + 20}" y="{pad + 84 + 16 * i}">{line}</text>' for i, line in enumerate(legend)]
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/migration-plan")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--stratus-bin", type=Path, default=REPO / "target/release/stratus")
    parser.add_argument("--svg", type=Path, help="write migration-prediction.svg here")
    parser.add_argument("--paths", type=lambda v: v.split(","), default=list(PATHS),
                        help="stratus,virsh (both by default): which paths migrate")
    parser.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[m for _, m in SIZES],
                        help="the memory sizes (MiB) to run: 256,512,1024,2048 by default")
    parser.add_argument("--loads", type=lambda v: [load for load in v.split(",") if load in LOADS or
                                                   parser.error(f"--loads: {load} is none of {', '.join(LOADS)}")],
                        default=list(LOADS),
                        help="idle,dirty,download (all by default): which loads' cases run")
    parser.add_argument("--policies", type=lambda v: [p for p in v.split(",") if p in POLICIES or
                                                      parser.error(f"--policies: {p} is none of {', '.join(POLICIES)}")],
                        default=list(POLICIES),
                        help="pre-copy,escalation,post-copy (all by default): which policies' cases run")
    parser.add_argument("--local-disks", action="store_true",
                        help="hosts without shared storage for their instances: both paths copy the root disk")
    parser.add_argument("--virsh-downtime", type=int, metavar="MS",
                        help="QEMU's downtime limit for every virsh migration (QEMU's own 300 ms by default): "
                             "at 75, the escalation's old starting allowance, guests receiving a download or "
                             "dirtying their memory die after the move under TCG, as they did after Stratus's")
    args = parser.parse_args()
    with lab_lock():
        runs = measure_all(args)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "migration-plan-local-disks" if args.local_disks else "migration-plan"
    (args.out / f"{name}.json").write_text(json.dumps(runs, indent=1) + "\n")
    print(report(runs))
    if args.svg:
        svg(runs, args.svg / "migration-prediction.svg")


if __name__ == "__main__":
    run_main(main)
