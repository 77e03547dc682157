#!/usr/bin/env python3
"""VPC launch benchmark (issue 16): what Stratus adds to starting a guest on OVN, against the
same guest plugged into the same logical switch by hand with virsh.

1. `scripts/setup-host` (idempotent: OVN under /run/stratus/ovn), `scripts/build-test-image`,
   then `stratus serve` with `[network] ovn_northbound` naming that OVN (where the account's
   default VPC is a network of its own, as every VPC is), and the test image imported.
2. A pinger's end: a namespace plugged into the default subnet's logical switch as a port of
   our own (unmarked: Stratus's reconciliation leaves it alone) at 172.31.15.200. The default
   security group lets ICMP in from it.
3. Warm-up, untimed: one instance through Stratus, whose domain XML (`virsh dumpxml
   --inactive`) becomes the template of the virsh runs; then one virsh run.
4. R repetitions of both paths, their order rotated by one each time:
   - stratus: RunInstances; DescribeInstances every 15 ms until `running`; the boot marker on
     the console log; and the first answer to a ping sent every 10 ms from the namespace,
     started as RunInstances answers with the address: the guest is on the network, its port
     bound on this chassis and its rules in. Then TerminateInstances.
   - virsh: a logical switch port of its own, made beforehand with the guest's MAC and address
     (untimed, as Stratus's port exists before its guest starts too), and the template made
     standalone with that port as its NIC's `interfaceid`; one `virsh` process defines and
     starts it; the same marker and first answer. Then the domain and the port go.
   Clocks start when the request leaves (RunInstances sent / virsh spawned). The pinger's
   neighbour cache is flushed before each run (every guest has a new MAC).
5. `launch-ovn.json` in --out, and a table on stdout.

    bench/launch_ovn.py [--out DIR] [--reps 5] [--stratus-bin target/release/stratus]
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

from common import (BOOT_MARKER, REPO, Stratus, Trace, Watch, build_test_image, cell, instance, log, ratio,
                    remove_domain, rotation, run, run_main, standalone_xml, summary, table, terminate, virsh,
                    wait_running)

URI = "qemu:///system"
NB = "unix:/run/stratus/ovn/ovnnb_db.sock"
CONF = "unix:/run/stratus/ovn/conf.sock"
INSTANCE_TYPE = "t3.nano"
PINGER_ADDRESS = "172.31.15.200"
# Outside what Stratus hands out first (it leases from 172.31.0.4 up).
VIRSH_ADDRESS = "172.31.15.250"
VIRSH_MAC = "52:54:00:be:0c:02"
MARKER_TIMEOUT = 120.0
RUNNING_POLL = 0.015
PATHS = ("stratus", "virsh")


def nbctl(*args: str) -> str:
    return run("ovn-nbctl", f"--db={NB}", "--timeout=10", *args).stdout


class Pinger:
    """A namespace on the subnet's switch that pings a guest every 10 ms from the moment it is
    told to, and says when the first answer came."""

    def __init__(self, switch: str):
        self.name = f"bp{os.getpid() % 100000}"
        self.ns = f"stratus-probe-{self.name}"
        run("ip", "netns", "add", self.ns)
        run("ip", "link", "add", self.name, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        run("ip", "link", "set", self.name, "up")
        # The userspace datapath takes what the kernel hands it: no checksum offload.
        run("ethtool", "-K", self.name, "tx", "off")
        run("ip", "netns", "exec", self.ns, "ethtool", "-K", "eth0", "tx", "off")
        for command in (["link", "set", "lo", "up"], ["link", "set", "eth0", "address", "02:00:00:00:be:01"],
                        ["addr", "add", f"{PINGER_ADDRESS}/20", "dev", "eth0"], ["link", "set", "eth0", "up"]):
            run("ip", "-n", self.ns, *command)
        nbctl("lsp-add", switch, self.name, "--", "lsp-set-addresses", self.name, f"02:00:00:00:be:01 {PINGER_ADDRESS}")
        run("ovs-vsctl", f"--db={CONF}", "--timeout=10", "add-port", "br-int", self.name, "--",
            "set", "Interface", self.name, f"external_ids:iface-id={self.name}")
        self.trace: Trace | None = None

    def start(self, address: str) -> None:
        run("ip", "-n", self.ns, "neigh", "flush", "all")
        self.trace = Trace(self.ns, address)

    def stop(self) -> list[float]:
        """Ends the pinging; answers the stamps of every answer."""
        assert self.trace is not None
        stamps, self.trace = self.trace.stop(), None
        return stamps

    def first_answer(self, timeout: float) -> float | None:
        """The wall-clock time (`time.time()`) of the first answer, or None; then stops."""
        assert self.trace is not None
        deadline = time.monotonic() + timeout
        while not self.trace.stamps and time.monotonic() < deadline:
            time.sleep(0.02)
            self.trace.poll()
        stamps = self.stop()
        return stamps[0] if stamps else None

    def close(self) -> None:
        if self.trace is not None:
            self.stop()
        run("ovs-vsctl", f"--db={CONF}", "--timeout=10", "--if-exists", "del-port", "br-int", self.name, check=False)
        run("ovn-nbctl", f"--db={NB}", "--timeout=10", "--if-exists", "lsp-del", self.name, check=False)
        run("ip", "netns", "del", self.ns, check=False)
        run("ip", "link", "del", self.name, check=False)


def pinger_on_default_subnet(ec2) -> tuple[str, Pinger]:
    """The logical switch of the account's default subnet in the first zone (once Stratus made
    it), a pinger on it, and the default group letting its pings in."""
    [subnet] = [s for s in ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
                if s["CidrBlock"] == "172.31.0.0/20"]
    switch = f"stratus-{subnet['SubnetId']}"
    deadline = time.monotonic() + 30
    while switch not in nbctl("ls-list"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Stratus did not make {switch} in OVN")
        time.sleep(0.2)
    pinger = Pinger(switch)
    [group] = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [subnet["VpcId"]]},
                                                    {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
    ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[
        {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": f"{PINGER_ADDRESS}/32"}]}])
    return switch, pinger


def report_paths(path: Path, kind: str, reps: int, accelerator: str, runs: list[dict], metrics: tuple[str, ...],
                 title: str) -> None:
    """Writes the runs and their medians to `path`, and a table of Stratus beside virsh."""
    summaries = {p: {m: summary([r[m] for r in runs if r["via"] == p and r["ok"]]) for m in metrics} for p in PATHS}
    report = {"kind": kind, "repetitions": reps, "accelerator": accelerator, "runs": runs, "summary": summaries}
    path.write_text(json.dumps(report, indent=2) + "\n")
    rows = []
    for metric in metrics:
        s, v = summaries["stratus"][metric], summaries["virsh"][metric]
        rows.append([metric, cell(s), cell(v), ratio(s, v),
                     f"{s['median'] - v['median']:+.0f}" if s["n"] and v["n"] else "-"])
    broken = [r for r in runs if not r["ok"]]
    print(f"\n{title}\n")
    print(table(["metric", "stratus", "virsh", "S/V", "S − V"], rows))
    print(f"\n{len(broken)} broken run(s)" + "".join(f"\n  {r['via']} rep {r['rep']}: {r['note']}" for r in broken))
    print(f"written: {path}")


def result(path: str, t0: float, wall0: float, running: float | None, booted: float | None,
           answered: float | None, note: str) -> dict:
    ms = lambda t: None if t is None else round((t - t0) * 1000, 1)
    return {"via": path, "to_running_ms": ms(running), "to_marker_ms": ms(booted),
            "to_network_ms": None if answered is None else round((answered - wall0) * 1000, 1),
            "ok": None not in (running, booted, answered), "note": note}


def launch_stratus(stratus: Stratus, ec2, image_id: str, pinger: Pinger) -> dict:
    wall0, t0 = time.time(), time.monotonic()
    [launched] = ec2.run_instances(ImageId=image_id, InstanceType=INSTANCE_TYPE, MinCount=1, MaxCount=1)["Instances"]
    instance_id = launched["InstanceId"]
    pinger.start(launched["PrivateIpAddress"])
    marker = Watch(stratus.console_path(instance_id), BOOT_MARKER)
    booted = answered = None
    try:
        deadline = t0 + MARKER_TIMEOUT
        running, note = wait_running(stratus, instance_id, deadline, RUNNING_POLL)
        if running is not None:
            booted = marker.wait(max(0.0, deadline - time.monotonic()))
            answered = pinger.first_answer(max(1.0, deadline - time.monotonic()))
        note = note or ("" if None not in (running, booted, answered) else "no marker or no answer in time")
    finally:
        marker.wait(0)
        terminate(ec2, instance_id)
    return result("stratus", t0, wall0, running, booted, answered, note or instance_id)


def launch_virsh(template: str, switch: str, base_disk: str, work: Path, name: str, pinger: Pinger) -> dict:
    base = work / name
    base.mkdir()
    disk, console, xml = base / "root.qcow2", base / "console.log", base / "domain.xml"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base_disk, str(disk))
    port = str(uuid.uuid4())
    nbctl("lsp-add", switch, port, "--", "lsp-set-addresses", port, f"{VIRSH_MAC} {VIRSH_ADDRESS}")
    domain = standalone_xml(template, name, disk, console, VIRSH_MAC, VIRSH_ADDRESS)
    domain, plugged = re.subn(r"interfaceid=(['\"])[0-9a-f-]+\1", f"interfaceid='{port}'", domain)
    if plugged != 1:
        raise RuntimeError("the template's NIC names no OVN port (interfaceid)")
    xml.write_text(domain)
    marker = Watch(console, BOOT_MARKER)
    running = booted = answered = None
    note = ""
    try:
        wall0, t0 = time.time(), time.monotonic()
        pinger.start(VIRSH_ADDRESS)
        proc = virsh(URI, f"define {xml} ; start {name}", check=False)
        if proc.returncode == 0:
            running = time.monotonic()
            booted = marker.wait(MARKER_TIMEOUT - (time.monotonic() - t0))
            answered = pinger.first_answer(max(1.0, MARKER_TIMEOUT - (time.monotonic() - t0)))
        else:
            note = f"virsh failed: {proc.stderr.strip()}"
    finally:
        marker.wait(0)
        remove_domain(URI, name)
        run("ovn-nbctl", f"--db={NB}", "--timeout=10", "--if-exists", "lsp-del", port, check=False)
        shutil.rmtree(base, ignore_errors=True)
    return result("virsh", t0, wall0, running, booted, answered, note or name)


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
    work = Path(tempfile.mkdtemp(prefix="stratus-bench-launch-ovn-"))
    stratus = pinger = None
    runs = []
    try:
        stratus = Stratus(args.stratus_bin.resolve(), work / "data",
                          config=f'[network]\novn_northbound = "{NB}"\n\n[instances]\nsweep_interval_ms = 500\n')
        ec2 = stratus.client()
        image_id = stratus.import_image(image, "bench-launch-ovn")
        switch, pinger = pinger_on_default_subnet(ec2)

        log("warm-up: one instance through Stratus (its domain XML is the virsh template), one virsh run")
        warm = launch_stratus(stratus, ec2, image_id, pinger)
        if not warm["ok"]:
            raise RuntimeError(f"the warm-up launch failed: {warm['note']}")
        [launched] = ec2.run_instances(ImageId=image_id, InstanceType=INSTANCE_TYPE, MinCount=1,
                                       MaxCount=1)["Instances"]
        try:
            while instance(ec2, launched["InstanceId"])["State"]["Name"] != "running":
                time.sleep(0.1)
            template = virsh(URI, "dumpxml", "--inactive", launched["InstanceId"]).stdout
        finally:
            terminate(ec2, launched["InstanceId"])
        launch_virsh(template, switch, image.disk, work, f"bench-launch-ovn-{os.getpid()}-warmup", pinger)

        for rep in range(args.reps):
            for path in rotation(list(PATHS), rep):
                if path == "stratus":
                    r = launch_stratus(stratus, ec2, image_id, pinger)
                else:
                    r = launch_virsh(template, switch, image.disk, work, f"bench-launch-ovn-{os.getpid()}-{rep}", pinger)
                r["rep"] = rep
                runs.append(r)
                log(f"rep {rep} {path}: running {r['to_running_ms']} ms, marker {r['to_marker_ms']} ms, "
                    f"network {r['to_network_ms']} ms{'' if r['ok'] else '  BROKEN: ' + r['note']}")
            if not stratus.alive():
                raise RuntimeError(f"stratus serve died (see {stratus.log_path})")
    finally:
        if pinger is not None:
            pinger.close()
        if stratus is not None:
            stratus.stop()
        shutil.rmtree(work, ignore_errors=True)

    report_paths(args.out / "launch-ovn.json", "launch-ovn", args.reps, accelerator, runs,
                 ("to_running_ms", "to_marker_ms", "to_network_ms"),
                 f"Launch on OVN ({accelerator}, {args.reps} repetitions, ms: median (min–max); S = stratus, "
                 "V = virsh on the same logical switch; ratio and difference of medians)")


if __name__ == "__main__":
    run_main(main)
