#!/usr/bin/env python3
"""Launch benchmark: what Stratus adds to starting a guest, against libvirt driven by hand,
with and without the guest's security-group filter.

1. `scripts/setup-host` (idempotent), `scripts/build-test-image`, then `stratus serve` on a
   free loopback port with a fresh data dir and its embedded defaults (the local
   qemu:///system host) but for the network: `ovn_northbound = "none"`, the hosts' bridge and
   nwfilter (`launch_ovn.py` measures the default, OVN), and the test image imported.
2. Warm-up, untimed: one instance through Stratus, whose domain XML (`virsh dumpxml
   --inactive`) becomes the template of the virsh runs and whose security-group filter
   (`virsh nwfilter-dumpxml stratus-<id>`) that of the virsh-filtered runs; then one run of
   each virsh path.
3. R repetitions of the three paths, their order rotated by one each time (S F V, F V S,
   V S F, ...):
   - stratus: RunInstances, then DescribeInstances every 15 ms until `running` (signed
     requests read as raw XML: a boto3 call costs more CPU than the guest can spare); the boot
     marker is watched for in the instance's console log (every 5 ms). Then TerminateInstances.
   - virsh: the template made standalone (own name, UUID, MAC, qcow2 overlay over the same
     image, console log; no nwfilter), its overlay made beforehand (untimed), then one `virsh`
     process runs `define` and `start` (one connection, as Stratus keeps one): `running` is
     when it returns, the marker as above. Then destroy and undefine.
   - virsh-filtered: the same, but the domain keeps a filter of its own (named as the domain):
     the template's filter with the warm-up instance's MAC and address replaced by the
     guest's, so it allows what a Stratus guest of the default group is allowed. As Stratus
     defines the filter within its launch, the one `virsh` process runs `nwfilter-define`,
     `define` and `start`. The filter is undefined after the domain.
   All clocks start when the request leaves (RunInstances sent / virsh spawned). Stratus
   against virsh-filtered is what Stratus's orchestration adds; virsh-filtered against virsh
   is what nwfilter's instantiation at start costs.
4. `launch.json` in --out, and a table on stdout.

    bench/launch.py [--out DIR] [--reps 5] [--stratus-bin target/release/stratus]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from common import (BOOT_MARKER, REPO, SHORT, VIAS, Stratus, Watch, build_test_image, cell, filter_copy, instance,
                    log, ratio, remove_domain, remove_filter, rotation, run, run_main, standalone_xml,
                    summary, table, terminate, virsh, wait_running)

URI = "qemu:///system"
INSTANCE_TYPE = "t3.nano"
# Outside what Stratus hands out first (it leases from 172.31.0.4 up): never in use by an instance.
VIRSH_ADDRESS = "172.31.15.250"
MARKER_TIMEOUT = 120.0
RUNNING_POLL = 0.015


def launch_stratus(stratus: Stratus, ec2, image_id: str) -> dict:
    t0 = time.monotonic()
    instance_id = ec2.run_instances(ImageId=image_id, InstanceType=INSTANCE_TYPE, MinCount=1,
                                    MaxCount=1)["Instances"][0]["InstanceId"]
    marker = Watch(stratus.console_path(instance_id), BOOT_MARKER)
    try:
        deadline = t0 + MARKER_TIMEOUT
        running, note = wait_running(stratus, instance_id, deadline, RUNNING_POLL)
        booted = marker.wait(max(0.0, deadline - time.monotonic())) if running else None
        if running and booted is None:
            note = f"no boot marker within {MARKER_TIMEOUT:.0f} s"
    finally:
        marker.wait(0)
        terminate(ec2, instance_id)
    return result("stratus", t0, running, booted, note or instance_id)


def launch_virsh(template: str, template_filter: str | None, base_disk: str, work: Path, name: str) -> dict:
    """The virsh path, or virsh-filtered given the template's filter."""
    base = work / name
    base.mkdir()
    disk, console = base / "root.qcow2", base / "console.log"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base_disk, str(disk))
    mac = "52:54:00:be:0c:01"
    xml = base / "domain.xml"
    commands = f"define {xml} ; start {name}"
    if template_filter is not None:
        filter_xml = base / "filter.xml"
        filter_xml.write_text(filter_copy(template_filter, template, name, mac, VIRSH_ADDRESS))
        commands = f"nwfilter-define {filter_xml} ; {commands}"
    xml.write_text(standalone_xml(template, name, disk, console, mac, VIRSH_ADDRESS,
                                  None if template_filter is None else name))
    marker = Watch(console, BOOT_MARKER)
    booted, running, note = None, None, ""
    try:
        t0 = time.monotonic()
        proc = virsh(URI, commands, check=False)
        if proc.returncode == 0:
            running = time.monotonic()
            booted = marker.wait(MARKER_TIMEOUT - (time.monotonic() - t0))
            if booted is None:
                note = f"no boot marker within {MARKER_TIMEOUT:.0f} s"
        else:
            note = f"virsh failed: {proc.stderr.strip()}"
    finally:
        marker.wait(0)
        remove_domain(URI, name)
        if template_filter is not None:
            remove_filter(URI, name)
        shutil.rmtree(base, ignore_errors=True)
    return result("virsh" if template_filter is None else "virsh-filtered", t0, running, booted, note or name)


def result(via: str, t0: float, running: float | None, booted: float | None, note: str) -> dict:
    ms = lambda t: None if t is None else round((t - t0) * 1000, 1)
    return {"via": via, "to_running_ms": ms(running), "to_marker_ms": ms(booted),
            "ok": running is not None and booted is not None, "note": note}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--stratus-bin", type=Path, default=REPO / "target/release/stratus")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    run(str(REPO / "scripts/setup-host"), timeout=600)
    image = build_test_image()
    accelerator = Path("/var/lib/stratus/accelerator").read_text().strip()
    work = Path(tempfile.mkdtemp(prefix="stratus-bench-launch-"))
    stratus = None
    runs = []
    try:
        # The hosts' bridge and nwfilter, which this benchmark measures (launch_ovn.py: OVN's).
        stratus = Stratus(args.stratus_bin.resolve(), work / "data", config='[network]\novn_northbound = "none"\n')
        ec2 = stratus.client()
        image_id = stratus.import_image(image, "bench-launch")

        log("warm-up: one instance through Stratus (its domain XML and filter are the virsh templates), "
            "one run of each virsh path")
        instance_id = ec2.run_instances(ImageId=image_id, InstanceType=INSTANCE_TYPE, MinCount=1,
                                        MaxCount=1)["Instances"][0]["InstanceId"]
        try:
            deadline = time.monotonic() + MARKER_TIMEOUT
            while instance(ec2, instance_id)["State"]["Name"] != "running":
                if time.monotonic() > deadline:
                    raise RuntimeError("the warm-up instance did not start")
                time.sleep(0.1)
            template = virsh(URI, "dumpxml", "--inactive", instance_id).stdout
            template_filter = virsh(URI, "nwfilter-dumpxml", f"stratus-{instance_id}").stdout
        finally:
            terminate(ec2, instance_id)
        filters = {"virsh": None, "virsh-filtered": template_filter}
        for via in filters:
            launch_virsh(template, filters[via], image.disk, work, f"bench-launch-{os.getpid()}-warmup-{via}")

        for rep in range(args.reps):
            for via in rotation(list(VIAS), rep):
                if via == "stratus":
                    r = launch_stratus(stratus, ec2, image_id)
                else:
                    name = f"bench-launch-{os.getpid()}-{rep}-{via}"
                    r = launch_virsh(template, filters[via], image.disk, work, name)
                r["rep"] = rep
                runs.append(r)
                log(f"rep {rep} {via}: running {r['to_running_ms']} ms, marker {r['to_marker_ms']} ms"
                    f"{'' if r['ok'] else '  BROKEN: ' + r['note']}")
            if not stratus.alive():
                raise RuntimeError(f"stratus serve died (see {stratus.log_path})")
    finally:
        if stratus is not None:
            stratus.stop()
        shutil.rmtree(work, ignore_errors=True)

    metrics = ("to_running_ms", "to_marker_ms")
    summaries = {via: {metric: summary([r[metric] for r in runs if r["via"] == via and r["ok"]]) for metric in metrics}
                 for via in VIAS}
    report = {"kind": "launch", "repetitions": args.reps, "accelerator": accelerator, "runs": runs,
              "summary": summaries}
    (args.out / "launch.json").write_text(json.dumps(report, indent=2) + "\n")

    pairs = list(zip(VIAS, VIAS[1:]))  # stratus against virsh-filtered, virsh-filtered against virsh
    rows = []
    for metric in metrics:
        m = {via: summaries[via][metric] for via in VIAS}
        rows.append([metric] + [cell(m[via]) for via in VIAS] + [ratio(m[a], m[b]) for a, b in pairs]
                    + [f"{m[a]['median'] - m[b]['median']:+.0f}" if m[a]["n"] and m[b]["n"] else "-" for a, b in pairs])
    broken = [r for r in runs if not r["ok"]]
    print(f"\nLaunch ({accelerator}, {args.reps} repetitions, ms: median (min–max); S = stratus, "
          "F = virsh-filtered, V = virsh; ratios and differences of medians)\n")
    print(table(["metric", *VIAS] + [f"{SHORT[a]}/{SHORT[b]}" for a, b in pairs]
                + [f"{SHORT[a]} − {SHORT[b]}" for a, b in pairs], rows))
    print(f"\n{len(broken)} broken run(s)" + "".join(f"\n  {r['via']} rep {r['rep']}: {r['note']}" for r in broken))
    print(f"written: {args.out / 'launch.json'}")


if __name__ == "__main__":
    run_main(main)
