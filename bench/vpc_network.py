#!/usr/bin/env python3
"""VPC data-plane benchmark (issue 16): throughput and round trips between two interfaces of a
VPC, on one host and across two lab hosts, against the underlay the tunnels ride on.

1. `scripts/lab up 2` (each lab host an OVN chassis with its own Open vSwitch on the userspace
   datapath, Geneve between them), iperf3 from Debian's packages, and `stratus serve` on the
   lab with `[network] ovn_northbound`.
2. Through Stratus: a VPC 10.0.0.0/16, a subnet, a group that lets the VPC in, and three
   network interfaces in it. Each interface's end is a namespace plugged in as its port (as
   its guest's NIC would be: the same logical port, port security and stateful ACLs), two on
   lab host 1 and one on lab host 2. Guests are not used: under TCG their CPU, not the
   network, would be measured.
3. Three paths, each measured the same way: `iperf3` TCP for --seconds one way (one stream),
   then 200 pings 10 ms apart (round trips: median, p99):
   - `same host`: the two interfaces on lab host 1 (OVS's userspace datapath, ACLs, no tunnel);
   - `across hosts`: lab host 1 to lab host 2 (Geneve over the underlay);
   - `underlay`: lab host 1's tunnel endpoint to lab host 2's, with no OVN in the way (the
     physical path the tunnel rides on): the baseline.
4. Security-group changes: a fourth interface on lab host 2, in a group of its own with no
   ingress rule, pinged every 10 ms from lab host 1 while a rule letting that ping in is
   authorized and revoked --rule-changes times (Stratus's default sweep): from the request to
   the first answer after an authorize, and to the last answer after a revoke (p50, p99).
5. `vpc-network.json` in --out, and tables on stdout. The datapath is reported as found
   (`ovs-vsctl get bridge br-int datapath_type` on a lab host).

    bench/vpc_network.py [--out DIR] [--seconds 10] [--rule-changes 20]
                         [--stratus-bin target/release/stratus]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import REPO, Stratus, Trace, lab_lock, log, run, run_main, table

NB = "unix:/run/stratus/ovn/ovnnb_db.sock"
LAB_DIR = Path("/var/lib/stratus/lab")


def lab_host(index: int) -> tuple[str, str]:
    """A lab host's namespace and its Open vSwitch database."""
    return f"stratus-h{index}", f"unix:{LAB_DIR}/h{index}/ovs/db.sock"


class End:
    """A namespace plugged into a lab host's integration bridge as an interface's logical port."""

    def __init__(self, name: str, host: int, port: str, mac: str, address: str, router: str):
        self.name, self.ns = name, f"stratus-probe-{name}"
        self.host_ns, self.db = lab_host(host)
        run("ip", "netns", "add", self.ns)
        run("ip", "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        run("ip", "link", "set", name, "netns", self.host_ns)
        run("ip", "netns", "exec", self.host_ns, "ip", "link", "set", name, "up")
        # The userspace datapath takes what the kernel hands it: no checksum offload.
        run("ip", "netns", "exec", self.host_ns, "ethtool", "-K", name, "tx", "off")
        run("ip", "netns", "exec", self.ns, "ethtool", "-K", "eth0", "tx", "off")
        for command in (["link", "set", "lo", "up"], ["link", "set", "eth0", "address", mac],
                        ["addr", "add", f"{address}/24", "dev", "eth0"], ["link", "set", "eth0", "mtu", "1400"],
                        ["link", "set", "eth0", "up"], ["route", "add", "default", "via", router]):
            run("ip", "-n", self.ns, *command)
        run("ovs-vsctl", f"--db={self.db}", "--timeout=10", "add-port", "br-int", name, "--",
            "set", "Interface", name, f"external_ids:iface-id={port}")

    def close(self) -> None:
        run("ovs-vsctl", f"--db={self.db}", "--timeout=10", "--if-exists", "del-port", "br-int", self.name,
            check=False)
        run("ip", "netns", "del", self.ns, check=False)


def measure(client_ns: str, server_ns: str, server_address: str, seconds: int) -> dict:
    """iperf3 one way (one TCP stream), then 200 pings 10 ms apart."""
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", server_address],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        done = run("ip", "netns", "exec", client_ns, "iperf3", "-c", server_address, "-t", str(seconds), "-J",
                   timeout=seconds + 60)
        answer = json.loads(done.stdout)
        gbits = answer["end"]["sum_received"]["bits_per_second"] / 1e9
        retransmits = answer["end"]["sum_sent"].get("retransmits")
    finally:
        server.kill()
        server.wait()
    pings = run("ip", "netns", "exec", client_ns, "ping", "-n", "-c", "200", "-i", "0.01", server_address,
                timeout=60, check=False).stdout
    rtts = sorted(float(t) for t in re.findall(r"time=([\d.]+) ms", pings))
    p = lambda q: rtts[min(len(rtts) - 1, int(q * len(rtts)))] if rtts else None
    return {"gbit_per_s": round(gbits, 3), "retransmits": retransmits, "rtt_ms_p50": p(0.5), "rtt_ms_p99": p(0.99),
            "rtt_ms_mean": round(statistics.mean(rtts), 3) if rtts else None, "pings_answered": len(rtts)}


def rule_changes(ec2, group: str, client_ns: str, address: str, source: str, cycles: int) -> dict:
    """Authorize and revoke a rule letting `source` ping `address`, `cycles` times: how long
    until the first answer after each authorize and the last after each revoke (ms)."""
    permission = [{"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": f"{source}/32"}]}]
    trace = Trace(client_ns, address)
    opened, closed = [], []
    try:
        for _ in range(cycles):
            t0 = time.time()
            ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=permission)
            while not any(s > t0 for s in trace.stamps):
                if time.time() - t0 > 30:
                    raise RuntimeError("an authorized rule was not enforced within 30 s")
                time.sleep(0.01)
                trace.poll()
            opened.append((min(s for s in trace.stamps if s > t0) - t0) * 1000)
            time.sleep(0.3)
            t1 = time.time()
            ec2.revoke_security_group_ingress(GroupId=group, IpPermissions=permission)
            # Enforced once no answer came for a second.
            while time.time() - max([t1] + trace.stamps) < 1.0:
                if time.time() - t1 > 30:
                    raise RuntimeError("a revoked rule was still let through after 30 s")
                time.sleep(0.01)
                trace.poll()
            closed.append((max([t1] + trace.stamps) - t1) * 1000)
    finally:
        trace.stop()
    q = lambda values, f: round(sorted(values)[min(len(values) - 1, int(f * len(values)))], 1)
    return {"authorize_ms": {"p50": q(opened, 0.5), "p99": q(opened, 0.99), "all": [round(v, 1) for v in opened]},
            "revoke_ms": {"p50": q(closed, 0.5), "p99": q(closed, 0.99), "all": [round(v, 1) for v in closed]}}


def measure_all() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rule-changes", type=int, default=20)
    parser.add_argument("--stratus-bin", type=Path, default=REPO / "target/release/stratus")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    if not shutil.which("iperf3"):
        run("apt-get", "install", "-y", "-q", "--no-install-recommends", "iperf3", timeout=600)
    lab = run(str(REPO / "scripts/lab"), "up", "2", timeout=600).stdout
    config = Path(re.search(r"^config=(\S+)$", lab, re.MULTILINE).group(1)).read_text()
    datapath = run("ovs-vsctl", f"--db={lab_host(1)[1]}", "get", "bridge", "br-int", "datapath_type").stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="stratus-bench-vpc-network-"))
    stratus = None
    ends: list[End] = []
    results = {}
    rules: dict = {}
    try:
        stratus = Stratus(args.stratus_bin.resolve(), work / "data", config=config + f'\n[network]\novn_northbound = "{NB}"\n')
        ec2 = stratus.client()
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="bench", Description="the VPC", VpcId=vpc)["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}])
        ruled = ec2.create_security_group(GroupName="ruled", Description="no ingress yet", VpcId=vpc)["GroupId"]
        interfaces = [ec2.create_network_interface(SubnetId=subnet, PrivateIpAddress=f"10.0.1.{20 + i}",
                                                   Groups=[ruled if i == 3 else group])["NetworkInterface"]
                      for i in range(4)]
        ports = {}
        deadline = time.monotonic() + 30
        while len(ports) < 4:
            if time.monotonic() > deadline:
                raise RuntimeError("Stratus did not make the interfaces' ports in OVN")
            for eni in interfaces:
                found = run("ovn-nbctl", f"--db={NB}", "--bare", "--columns=name", "find", "Logical_Switch_Port",
                            f"external_ids:stratus-owner={eni['NetworkInterfaceId']}").stdout.strip()
                if found:
                    ports[eni["NetworkInterfaceId"]] = found
            time.sleep(0.2)
        for n, (eni, host) in enumerate(zip(interfaces, (1, 1, 2, 2))):
            ends.append(End(f"bv{n}", host, ports[eni["NetworkInterfaceId"]], eni["MacAddress"],
                            eni["PrivateIpAddress"], "10.0.1.1"))
        deadline = time.monotonic() + 60
        while run("ip", "netns", "exec", ends[0].ns, "ping", "-c", "1", "-W", "1", "10.0.1.22",
                  check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the interfaces do not reach each other across the lab hosts")
        paths = {
            "same host": (ends[0].ns, ends[1].ns, "10.0.1.21"),
            "across hosts": (ends[0].ns, ends[2].ns, "10.0.1.22"),
            "underlay": (lab_host(1)[0], lab_host(2)[0], "10.89.0.12"),
        }
        for name, (client, server, address) in paths.items():
            log(f"{name}: iperf3 {args.seconds} s and 200 pings to {address}")
            results[name] = measure(client, server, address, args.seconds)
            log(f"{name}: {results[name]}")
        log(f"security-group changes: {args.rule_changes} authorizations and revocations")
        rules = rule_changes(ec2, ruled, ends[0].ns, "10.0.1.23", "10.0.1.20", args.rule_changes)
        log(f"rules: {rules}")
    finally:
        for end in ends:
            end.close()
        if stratus is not None:
            stratus.stop()
        shutil.rmtree(work, ignore_errors=True)
        run(str(REPO / "scripts/lab"), "down", timeout=300, check=False)

    report = {"kind": "vpc-network", "datapath": datapath, "seconds": args.seconds, "paths": results,
              "rule_changes": rules}
    (args.out / "vpc-network.json").write_text(json.dumps(report, indent=2) + "\n")
    base = results["underlay"]["gbit_per_s"]
    rows = [[name, f"{r['gbit_per_s']:.2f}", f"{r['gbit_per_s'] / base:.2f}" if base else "-",
             str(r["retransmits"]), f"{r['rtt_ms_p50']}", f"{r['rtt_ms_p99']}"] for name, r in results.items()]
    print(f"\nVPC data plane (Open vSwitch datapath: {datapath}; iperf3 one TCP stream for {args.seconds} s; "
          "200 pings 10 ms apart)\n")
    print(table(["path", "Gbit/s", "of underlay", "retransmits", "RTT p50 ms", "RTT p99 ms"], rows))
    print(f"\nSecurity-group change to enforced across hosts ({args.rule_changes} of each, ms)\n")
    print(table(["change", "p50", "p99"], [[k.removesuffix("_ms"), str(v["p50"]), str(v["p99"])]
                                           for k, v in rules.items()]))
    print(f"written: {args.out / 'vpc-network.json'}")


def main() -> None:
    with lab_lock():
        measure_all()


if __name__ == "__main__":
    run_main(main)
