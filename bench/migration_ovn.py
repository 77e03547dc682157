#!/usr/bin/env python3
"""VPC migration benchmark (issue 16): a live migration of a guest on OVN through Stratus,
against the same migration by virsh with the port binding moved by hand as Stratus moves it.

1. `scripts/lab up 2` (two libvirt hosts, each an OVN chassis with its own Open vSwitch,
   Geneve between them and to this machine), `stratus serve` on the lab's config with
   `[network] ovn_northbound` naming this machine's OVN (where the account's default VPC is a
   network of its own, as every VPC is), and the test image imported.
2. A pinger on this machine's chassis: a namespace plugged into the default subnet's switch as
   a port of our own at 172.31.15.200 (the default group lets ICMP in from it), so that it
   stays put while the guests move between the lab hosts.
3. Warm-up, untimed: one migration on each path. Then R repetitions of both paths, their order
   rotated; each boots a fresh idle guest, pings it
   every 10 ms from one second before the migration to 1.5 s after, then:
   - stratus: MigrateInstance to the other host, then DescribeInstanceMigrations every 20 ms
     until it is final; the figures are Stratus's (libvirt's completed job).
   - virsh: the domain Stratus defined (`dumpxml --inactive`, from an instance launched for the
     purpose) made standalone with a logical switch port of its own bound to the source's
     chassis; within the timed migration, as Stratus does it: the port bound to both chassis
     (`requested-chassis=src,dst`, `activation-strategy=rarp`), `virsh migrate --live --p2p
     --persistent --undefinesource --unsafe`, then bound to the target alone. Figures from
     `virsh domjobinfo --completed` on the target.
   The wall time runs from the request to the end (the job seen final / the binding moved);
   the total time and the downtime are libvirt's on both paths; the largest gap between two
   answers of the pinger is what the network saw.
4. `migration-ovn.json` in --out (`migration-ovn-local-disks.json` with --local-disks), and a
   table on stdout.

With --local-disks the lab's hosts keep their instances' folders on storage of their own
(`scripts/lab up 2 --local-disks`) and both paths copy the root disk: Stratus by itself; virsh
with the target's folder made first within the timed migration, as Stratus does it (an overlay
of the image, `qemu-img create`), then `--copy-storage-inc --migrate-disks vda` and the
migratable definition with the folder moved (`--xml`).

    bench/migration_ovn.py [--out DIR] [--reps 3] [--stratus-bin target/release/stratus] [--local-disks]
                           [--options '{"MaxDowntimeMillis": 1200}']
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from common import (BOOT_MARKER, REPO, Stratus, Watch, build_test_image, instance, jobinfo, lab_lock, log,
                    remove_domain, rotation, run, run_main, standalone_xml, terminate, virsh)
from launch_ovn import NB, PATHS, Pinger, nbctl, pinger_on_default_subnet, report_paths

INSTANCE_TYPE = "t3.nano"
LAB_DISKS = Path("/var/lib/stratus/lab/disks")
VIRSH_ADDRESS = "172.31.15.251"
VIRSH_MAC = "52:54:00:be:0c:03"
BOOT_TIMEOUT = 120.0


def chassis_of(uri: str) -> str:
    """A lab host's chassis (scripts/lab: host i at 10.88.0.(10+i) is lab-h<i>)."""
    index = int(re.search(r"10\.88\.0\.(\d+)", uri).group(1)) - 10
    return f"lab-h{index}"


def trace_gap(pinger: Pinger) -> tuple[float | None, int]:
    """Stops the pinger's trace: the largest gap between two answers (ms), and how many came."""
    stamps = pinger.stop()
    gap = max((b - a for a, b in zip(stamps, stamps[1:])), default=None)
    return (None if gap is None else round(gap * 1000, 1)), len(stamps)


def record(path: str, ok: bool, wall_ms: float | None, job: dict, gap: tuple[float | None, int], note: str) -> dict:
    return {"via": path, "ok": ok and gap[0] is not None, "wall_ms": wall_ms, "total_ms": job.get("total"),
            "downtime_ms": job.get("downtime"), "largest_gap_ms": gap[0], "answers": gap[1], "note": note}


def migrate_stratus(stratus: Stratus, ec2, ext, image_id: str, pinger: Pinger, hosts: dict[str, str],
                    options: dict | None = None) -> dict:
    [launched] = ec2.run_instances(ImageId=image_id, InstanceType=INSTANCE_TYPE, MinCount=1, MaxCount=1)["Instances"]
    instance_id = launched["InstanceId"]
    try:
        marker = Watch(stratus.console_path(instance_id), BOOT_MARKER)
        if marker.wait(BOOT_TIMEOUT) is None:
            return record("stratus", False, None, {}, (None, 0), "no boot marker")
        source = next(h for h, v in hosts.items()
                      if instance_id in {i["InstanceId"] for i in ext.describe_hosts(HostIds=[h])["Hosts"][0]["Instances"]})
        target = next(h for h in hosts if h != source)
        pinger.start(launched["PrivateIpAddress"])
        time.sleep(1.0)
        t0 = time.monotonic()
        migration = ext.migrate_instance(InstanceId=instance_id, TargetHostId=target, **(options or {}))["Migration"]
        while (m := ext.describe_instance_migrations(MigrationIds=[migration["MigrationId"]])["Migrations"][0])[
                "Status"] not in ("completed", "failed", "cancelled"):
            time.sleep(0.02)
        wall = round((time.monotonic() - t0) * 1000, 1)
        time.sleep(1.5)
        gap = trace_gap(pinger)
        job = {"total": m.get("TotalTimeMillis"), "downtime": m.get("DowntimeMillis")}
        result = record("stratus", m["Status"] == "completed", wall, job, gap, m.get("ErrorMessage") or instance_id)
        return {**result, "iterations": m.get("Iterations"), "downtime_limit_ms": m.get("DowntimeLimitMillis")}
    finally:
        if pinger.trace is not None:
            pinger.stop()
        terminate(ec2, instance_id)


def disks_of(uri: str) -> Path:
    """A lab host's own storage with --local-disks (scripts/lab: host i keeps it in disks/hi)."""
    return LAB_DISKS / chassis_of(uri).removeprefix("lab-")


def migrate_virsh(template: str, switch: str, base_disk: str, work: Path, name: str, pinger: Pinger,
                  source: str, target: str, local_disks: bool = False, flags: tuple[str, ...] = (),
                  keep_console: bool = False, on_booted=None, on_migrated=None) -> dict:
    """The same migration by virsh (module doc), with `flags` added to `virsh migrate`; with
    `keep_console` the result holds the guest's console log as "console"; `on_booted` is called
    with the guest's address once it has booted (to start a load on it), `on_migrated` once the
    migration and its ping trace are over, before anything is torn down."""
    base = disks_of(source) / name if local_disks else work / name
    moved = disks_of(target) / name
    base.mkdir()
    disk, console, xml = base / "root.qcow2", base / "console.log", base / "domain.xml"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base_disk, str(disk))
    port = str(uuid.uuid4())
    src, dst = chassis_of(source), chassis_of(target)
    nbctl("lsp-add", switch, port, "--", "lsp-set-addresses", port, f"{VIRSH_MAC} {VIRSH_ADDRESS}",
          "--", "lsp-set-options", port, f"requested-chassis={src}")
    domain, plugged = re.subn(r"interfaceid=(['\"])[0-9a-f-]+\1", f"interfaceid='{port}'",
                              standalone_xml(template, name, disk, console, VIRSH_MAC, VIRSH_ADDRESS))
    if plugged != 1:
        raise RuntimeError("the template's NIC names no OVN port (interfaceid)")
    xml.write_text(domain)
    try:
        virsh(source, f"define {xml} ; start {name}")
        if Watch(console, BOOT_MARKER).wait(BOOT_TIMEOUT) is None:
            return record("virsh", False, None, {}, (None, 0), "no boot marker")
        if on_booted is not None:
            on_booted(VIRSH_ADDRESS)
            time.sleep(2.0)
        pinger.start(VIRSH_ADDRESS)
        time.sleep(1.0)
        t0 = time.monotonic()
        nbctl("lsp-set-options", port, f"requested-chassis={src},{dst}", "activation-strategy=rarp")
        copy = []
        if local_disks:
            # The target's folder, as Stratus makes it: an empty overlay of the same image.
            moved.mkdir()
            run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base_disk, str(moved / disk.name))
            definition = virsh(source, "dumpxml", "--migratable", name).stdout
            (work / f"{name}-moved.xml").write_text(definition.replace(f"{base}/", f"{moved}/"))
            copy = ["--copy-storage-inc", "--migrate-disks", "vda", "--xml", str(work / f"{name}-moved.xml")]
        done = virsh(source, "migrate", "--live", "--p2p", "--persistent", "--undefinesource", "--unsafe", *copy,
                     *flags, name, target, check=False, timeout=300)
        nbctl("lsp-set-options", port, f"requested-chassis={dst}")
        wall = round((time.monotonic() - t0) * 1000, 1)
        time.sleep(1.5)
        gap = trace_gap(pinger)
        if on_migrated is not None:
            on_migrated()
        job = jobinfo(target if done.returncode == 0 else source, name, completed=True)
        figures = {"total": job.get("time_elapsed_ms"), "downtime": job.get("total_downtime_ms")}
        result = record("virsh", done.returncode == 0, wall, figures, gap, done.stderr.strip() or name)
        result["iterations"] = job.get("iteration")
        if keep_console:
            time.sleep(2)  # the guest's checker prints a pass or two on the target
            logs = [console, moved / console.name] if local_disks else [console]
            result["console"] = "".join(p.read_text(errors="replace") for p in logs if p.exists())
        return result
    finally:
        if pinger.trace is not None:
            pinger.stop()
        remove_domain(source, name)
        remove_domain(target, name)
        run("ovn-nbctl", f"--db={NB}", "--timeout=10", "--if-exists", "lsp-del", port, check=False)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(moved, ignore_errors=True)


def measure_all() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--stratus-bin", type=Path, default=REPO / "target/release/stratus")
    parser.add_argument("--sweep-ms", type=int, default=500,
                        help="Stratus's sweep interval: how often it compares every host with the store while "
                             "the migrations run (a long one takes the sweep out of the comparison)")
    parser.add_argument("--local-disks", action="store_true",
                        help="hosts without shared storage for their instances: both paths copy the root disk")
    parser.add_argument("--options", type=json.loads, default={},
                        help='MigrateInstance\'s options for the Stratus path, as JSON: {"MaxDowntimeMillis": 1200}')
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    lab = run(str(REPO / "scripts/lab"), "up", "2", *(["--local-disks"] if args.local_disks else []),
              timeout=600).stdout
    config = Path(re.search(r"^config=(\S+)$", lab, re.MULTILINE).group(1)).read_text()
    image = build_test_image()
    accelerator = Path("/var/lib/stratus/accelerator").read_text().strip()
    work = Path(tempfile.mkdtemp(prefix="stratus-bench-migration-ovn-"))
    stratus = pinger = None
    runs = []
    try:
        stratus = Stratus(args.stratus_bin.resolve(), work / "data",
                          config=config + f'\n[network]\novn_northbound = "{NB}"\n\n[instances]\nsweep_interval_ms = {args.sweep_ms}\n')
        ec2, ext = stratus.client(), stratus.client("stratus")
        image_id = stratus.import_image(image, "bench-migration-ovn")
        hosts = {h["HostId"]: h["Uri"] for h in ext.describe_hosts()["Hosts"]}
        switch, pinger = pinger_on_default_subnet(ec2)

        log("a template for the virsh runs: the domain Stratus defines for this type and image")
        [launched] = ec2.run_instances(ImageId=image_id, InstanceType=INSTANCE_TYPE, MinCount=1,
                                       MaxCount=1)["Instances"]
        try:
            while instance(ec2, launched["InstanceId"])["State"]["Name"] != "running":
                time.sleep(0.1)
            where = next(h for h in hosts if launched["InstanceId"] in
                         {i["InstanceId"] for i in ext.describe_hosts(HostIds=[h])["Hosts"][0]["Instances"]})
            template = virsh(hosts[where], "dumpxml", "--inactive", launched["InstanceId"]).stdout
        finally:
            terminate(ec2, launched["InstanceId"])
        uris = sorted(hosts.values())
        # Warm-up, untimed: one migration on each path. Without it the first migration between
        # the freshly started lab hosts took about twice as long in every run, and the rotation
        # gave that one to Stratus each time.
        log("warm-up: one migration through Stratus, one by virsh (untimed)")
        migrate_stratus(stratus, ec2, ext, image_id, pinger, hosts, args.options)
        migrate_virsh(template, switch, image.disk, work, f"bench-migration-ovn-{os.getpid()}-warm", pinger, uris[1],
                      uris[0], args.local_disks)
        for rep in range(args.reps):
            for path in rotation(list(PATHS), rep):
                if path == "stratus":
                    r = migrate_stratus(stratus, ec2, ext, image_id, pinger, hosts, args.options)
                else:
                    source, target = (uris[0], uris[1]) if rep % 2 == 0 else (uris[1], uris[0])
                    r = migrate_virsh(template, switch, image.disk, work, f"bench-migration-ovn-{os.getpid()}-{rep}",
                                      pinger, source, target, args.local_disks)
                r["rep"] = rep
                runs.append(r)
                passes = f", {r['iterations']} passes" if r.get("iterations") else ""
                log(f"rep {rep} {path}: total {r['total_ms']} ms{passes}, downtime {r['downtime_ms']} ms, wall {r['wall_ms']} ms, "
                    f"largest gap {r['largest_gap_ms']} ms{'' if r['ok'] else '  BROKEN: ' + r['note']}")
            if not stratus.alive():
                raise RuntimeError(f"stratus serve died (see {stratus.log_path})")
    finally:
        if pinger is not None:
            pinger.close()
        if stratus is not None:
            stratus.stop()
        shutil.rmtree(work, ignore_errors=True)
        run(str(REPO / "scripts/lab"), "down", timeout=300, check=False)

    kind = "migration-ovn-local-disks" if args.local_disks else "migration-ovn"
    storage = "each host's own storage: the root disk copied" if args.local_disks else "shared storage"
    if args.options:
        storage += f", Stratus with {json.dumps(args.options)}"
    report_paths(args.out / f"{kind}.json", kind, args.reps, accelerator, runs,
                 ("total_ms", "downtime_ms", "wall_ms", "largest_gap_ms"),
                 f"Live migration on OVN between two lab hosts ({accelerator}, {storage}, an idle t3.nano guest (512 MiB), "
                 f"{args.reps} repetitions, ms: median (min–max); S = stratus, V = virsh with the binding moved by "
                 "hand)")


def main() -> None:
    with lab_lock():
        measure_all()


if __name__ == "__main__":
    run_main(main)
