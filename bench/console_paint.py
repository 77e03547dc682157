#!/usr/bin/env python3
"""The console's instance list with a big pool (issue 19): time to first paint in a real
headless Chromium, with 0, 1,000 and 10,000 instances stored in the signed-in account.

The page marks `instances-listed` when the list's first page (50 instances, read server-side
with `MaxResults`) is in the document, and `instances-painted` at the next frame after it. Both
are read from the Performance API: milliseconds since the navigation started, so they include
loading the page and its scripts, the session check, DescribeInstances and drawing. Each size
is loaded `--loads` times (a reload each, after one warm-up); the empty store is the baseline
of the same run.

  bench/console_paint.py --stratus target/release/stratus --sizes 0,1000,10000 --loads 15 --out DIR

Stratus runs on libvirt's test driver (no guests); one instance per reservation (pages count
reservations, as on EC2), two of every three terminated as they are made (still listed, as on
EC2) so that the default subnet's addresses last.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Stratus, cell, log, summary, table  # noqa: E402

BATCH = 200
CONFIG = """
[[hosts]]
uri = "test:///default"
vcpus = 10000000
memory_mib = 10000000000

[network]
ovn_northbound = "none"

[limits]
requests_per_second = 100000
burst = 100000
"""


def fill(ec2, image: str, target: int, have: int) -> int:
    """One instance per reservation (a page counts reservations, as on EC2), two of every three
    terminated in batches."""
    ending = []
    while have < target:
        launched = ec2.run_instances(ImageId=image, InstanceType="t3.nano", MinCount=1, MaxCount=1)
        if have % 3:
            ending.append(launched["Instances"][0]["InstanceId"])
        if len(ending) >= BATCH:
            ec2.terminate_instances(InstanceIds=ending)
            ending = []
        have += 1
    if ending:
        ec2.terminate_instances(InstanceIds=ending)
    return have


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={tempfile.mkdtemp()}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def mark(driver, name: str, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = driver.execute_script("const m = performance.getEntriesByName(arguments[0]); "
                                      "return m.length ? m[m.length - 1].startTime : null", name)
        if found is not None:
            return float(found)
        time.sleep(0.01)
    raise RuntimeError(f"no {name} mark within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stratus", default="target/release/stratus")
    parser.add_argument("--sizes", default="0,1000,10000")
    parser.add_argument("--loads", type=int, default=15)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-console-"))
    stratus = Stratus(Path(args.stratus).resolve(), work / "data", CONFIG)
    driver = None
    results = []
    try:
        disk = work / "image.qcow2"
        import subprocess
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
        image = subprocess.run([str(stratus.binary), "image", "import", str(disk), "--name", "paint", "--data-dir",
                                str(stratus.data_dir)], check=True, capture_output=True, text=True).stdout.split()[-1]
        ec2 = stratus.client()
        driver = browser()
        url = f"{stratus.endpoint}/console/#/instances"
        driver.get(url)
        driver.find_element("id", "access-key").send_keys(stratus.access_key)
        driver.find_element("id", "secret-key").send_keys(stratus.secret_key)
        driver.find_element("css selector", "#sign-in button[type=submit]").click()
        mark(driver, "instances-listed")
        have = 0
        for size in sizes:
            started = time.monotonic()
            have = fill(ec2, image, size, have)
            log(f"{size} instances stored ({time.monotonic() - started:.0f} s to make)")
            listed, painted = [], []
            for load in range(args.loads + 1):
                driver.refresh()
                a, b = mark(driver, "instances-listed"), mark(driver, "instances-painted")
                rows = len(driver.find_elements("css selector", "tr[data-instance]"))
                assert rows == min(size, 50), f"{rows} rows on the first page with {size} stored"
                if load:  # the first load warms the caches
                    listed.append(a)
                    painted.append(b)
            results.append({"instances": size, "listed_ms": summary(listed), "painted_ms": summary(painted),
                            "raw_painted_ms": painted})
    finally:
        if driver is not None:
            driver.quit()
        stratus.stop()
    base = results[0]["painted_ms"]["median"] or 1
    rows = [[f"{r['instances']:,}", cell(r["listed_ms"], 1), cell(r["painted_ms"], 1),
             f"{r['painted_ms']['median'] / base:.2f}"] for r in results]
    print("\nConsole instance list, ms from navigation (median (min–max))\n")
    print(table(["instances stored", "first page listed", "first page painted", f"painted / {sizes[0]:,} stored"], rows))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "console_paint.json").write_text(json.dumps({"loads": args.loads, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
