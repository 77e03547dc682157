#!/usr/bin/env python3
"""Takeover time of the conductor among replicas on PostgreSQL (issue 20): two `stratus serve`
on one database; the leader is killed with SIGKILL `--kills` times, each at a random moment of
its lease (restarted each time, so the roles alternate), and each takeover is timed from the
kill to `stratus cluster status` naming the other replica. Nothing renews a dead leader's lease: the bound is the lease itself
(`--lease-secs`) plus a quarter of it, the follower's retry period.

  bench/takeover.py --stratus target/release/stratus --kills 10 --lease-secs 10 --out DIR

Needs the PostgreSQL of `scripts/postgres up`; the replicas run on libvirt's test driver (the
lease does not depend on the hosts).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, cell, free_port, log, summary, table  # noqa: E402

CONFIG = """
[[hosts]]
uri = "test:///default"

[network]
ovn_northbound = "none"

[storage]
backend = "postgres"
url = "{url}"
lease_secs = {lease}
"""


class Replica:
    def __init__(self, binary: Path, data_dir: Path, config: Path, name: str):
        self.binary, self.data_dir, self.config, self.name = binary, data_dir, config, name
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log_path = self.data_dir.parent / f"{self.name}.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as out:
            self.proc = subprocess.Popen([str(self.binary), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir",
                                          str(self.data_dir), "--config", str(self.config), "--metrics-listen", "off"],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while f"serving the EC2 API on http://127.0.0.1:{self.port}" not in log_path.read_text(errors="replace")[offset:]:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} did not start (see {log_path})")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def leader(binary: Path, config: Path, data_dir: Path) -> str | None:
    out = subprocess.run([str(binary), "cluster", "status", "--config", str(config), "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=30).stdout
    found = re.search(r"^leader: (\S+) \(epoch", out, re.MULTILINE)
    return found.group(1) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stratus", type=Path, default=Path("target/release/stratus"))
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--lease-secs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    binary = args.stratus.resolve()
    postgres = str(REPO / "scripts" / "postgres")
    subprocess.run([postgres, "up"], check=True, capture_output=True)
    subprocess.run([postgres, "dropdb", "bench_takeover"], capture_output=True)
    url = re.search(r"url=(\S+)", subprocess.run([postgres, "createdb", "bench_takeover"], check=True,
                                                  capture_output=True, text=True).stdout).group(1)
    work = Path(tempfile.mkdtemp(prefix="stratus-takeover-"))
    data_dir = work / "data"
    data_dir.mkdir()
    config = work / "stratus.toml"
    config.write_text(CONFIG.format(url=url, lease=args.lease_secs))
    replicas = [Replica(binary, data_dir, config, "a"), Replica(binary, data_dir, config, "b")]
    times = []
    try:
        for r in replicas:
            r.start()
        for kill in range(args.kills):
            deadline = time.monotonic() + 60
            while not (name := leader(binary, config, data_dir)):
                if time.monotonic() > deadline:
                    raise RuntimeError("no leader")
                time.sleep(0.05)
            victim = next(r for r in replicas if f"/127.0.0.1:{r.port}/" in name)
            # At a random point of the leader's renewal cycle, not just after it took over.
            time.sleep(random.uniform(0, args.lease_secs))
            other = next(r for r in replicas if r is not victim)
            killed = time.monotonic()
            victim.kill()
            while not ((now := leader(binary, config, data_dir)) and f"/127.0.0.1:{other.port}/" in now):
                if time.monotonic() - killed > args.lease_secs * 3 + 30:
                    raise RuntimeError(f"no takeover after kill {kill + 1}")
                time.sleep(0.05)
            took = time.monotonic() - killed
            times.append(took)
            log(f"kill {kill + 1}: {victim.name} killed, {other.name} leads after {took:.2f} s")
            victim.start()
    finally:
        for r in replicas:
            r.kill()
        subprocess.run([postgres, "dropdb", "bench_takeover"], capture_output=True)
    result = {"kind": "takeover", "lease_secs": args.lease_secs, "kills": args.kills, "seconds": summary(times),
              "runs": times}
    (args.out / "takeover.json").write_text(json.dumps(result, indent=1))
    print(table(["lease", "kills", "takeover s, median (min–max)", "÷ lease"],
                [[f"{args.lease_secs} s", str(args.kills), cell(result["seconds"], 2),
                  f"{result['seconds']['median'] / args.lease_secs:.2f}"]]))


if __name__ == "__main__":
    main()
