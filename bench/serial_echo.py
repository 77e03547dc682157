#!/usr/bin/env python3
"""The serial console's round trip (issue 19): a line typed in the console's WebSocket, to the
guest's answer back on the socket, against the same line written straight to the guest's
serial pty on the host (the floor: QEMU and the guest alone), in the same run, on one guest.

The test guest answers each line typed on its serial port with `stratus-echo <line>`
(scripts/build-test-image). Each way sends `--lines` lines, one at a time, and times each from
the write to the answer's arrival.

  bench/serial_echo.py --stratus target/release/stratus --lines 50 --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Stratus, build_test_image, cell, log, run, summary, table, virsh, wait_state  # noqa: E402

CONFIG = """
[instances]
stop_timeout_secs = 10

[network]
public_cidr = "100.127.251.0/24"
"""


def session(stratus: Stratus, instance_id: str):
    """Signs in to the console and opens the instance's serial WebSocket, as the page does."""
    import http.client

    import websocket

    conn = http.client.HTTPConnection("127.0.0.1", stratus.port, timeout=30)
    body = json.dumps({"accessKeyId": stratus.access_key, "secretAccessKey": stratus.secret_key})
    conn.request("POST", "/console/api/session", body, {"Content-Type": "application/json"})
    answer = conn.getresponse()
    cookie = answer.getheader("Set-Cookie").split(";")[0]
    csrf = json.loads(answer.read())["csrfToken"]
    conn.request("POST", "/console/api/ec2", "Action=EnableSerialConsoleAccess&Version=2016-11-15",
                 {"Cookie": cookie, "X-CSRF-Token": csrf, "Content-Type": "application/x-www-form-urlencoded"})
    conn.getresponse().read()
    query = urllib.parse.urlencode({"csrf": csrf})
    return websocket.create_connection(f"ws://127.0.0.1:{stratus.port}/console/api/instances/{instance_id}/serial?{query}",
                                       origin=f"http://127.0.0.1:{stratus.port}", cookie=cookie, timeout=30)


def through_websocket(socket, lines: int) -> list[float]:
    times = []
    for i in range(lines):
        needle = f"stratus-echo ws{i}".encode()
        seen = b""
        sent = time.perf_counter()
        socket.send_binary(f"ws{i}\r".encode())
        while needle not in seen:
            seen += socket.recv_data()[1]
        times.append((time.perf_counter() - sent) * 1000)
    return times


def through_pty(path: str, lines: int) -> list[float]:
    times = []
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        run("stty", "-F", path, "raw", "-echo")
        for i in range(lines):
            needle = f"stratus-echo pty{i}".encode()
            seen = b""
            sent = time.perf_counter()
            os.write(fd, f"pty{i}\r".encode())
            while needle not in seen:
                ready, _, _ = select.select([fd], [], [], 10)
                if not ready:
                    raise RuntimeError(f"no answer to pty{i} on {path}")
                seen += os.read(fd, 4096)
            times.append((time.perf_counter() - sent) * 1000)
    finally:
        os.close(fd)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stratus", type=Path, default=Path("target/release/stratus"))
    parser.add_argument("--lines", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    image = build_test_image()
    work = Path(tempfile.mkdtemp(prefix="stratus-serial-"))
    stratus = Stratus(args.stratus.resolve(), work / "data", CONFIG)
    ec2 = stratus.client()
    instance_id = None
    try:
        image_id = stratus.import_image(image, "serial bench")
        instance_id = ec2.run_instances(ImageId=image_id, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        wait_state(ec2, instance_id, "running", timeout=120)
        deadline = time.monotonic() + 120
        while "STRATUS-TEST-GUEST BOOTED" not in stratus.console_path(instance_id).read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise RuntimeError("the guest did not boot")
            time.sleep(1)
        xml = virsh("qemu:///system", "dumpxml", instance_id).stdout
        pty = re.search(r"<serial type='pty'>\s*<source path='([^']+)'", xml).group(1)
        log(f"{instance_id}: serial pty {pty}")
        floor = through_pty(pty, args.lines)
        socket = session(stratus, instance_id)
        console = through_websocket(socket, args.lines)
        socket.close()
    finally:
        if instance_id:
            ec2.terminate_instances(InstanceIds=[instance_id])
            try:
                wait_state(ec2, instance_id, "terminated", timeout=60)
            except Exception:  # noqa: BLE001 - the figures are what matters here
                pass
        stratus.stop()
    results = {"kind": "serial-echo", "lines": args.lines, "pty_ms": summary(floor), "websocket_ms": summary(console)}
    (args.out / "serial_echo.json").write_text(json.dumps(results, indent=1))
    print(table(["path", "round trip ms, median (min–max)"],
                [["guest's pty on the host (floor)", cell(results["pty_ms"], 1)],
                 ["console WebSocket (Stratus)", cell(results["websocket_ms"], 1)]]))


if __name__ == "__main__":
    main()
