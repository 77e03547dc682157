#!/usr/bin/env python3
"""Describe pages over HTTP, Stratus beside moto_server, as the account grows (issue 23).

For each size, both servers get the same account of N instances (one per reservation, as in
`stratus-bench pages`: DescribeInstances pages count reservations; tagged `batch=bN` by the
hundred), then the same boto3 client (SigV4, keep-alive, no retries) times
DescribeInstances pages: `MaxResults` 5 and 50, the first page and one from the middle of the
walk. Timed calls are signed by botocore and sent over one keep-alive connection, and their
answers are read but not parsed: what is timed is the server, not boto3's XML parser.

  bench/pages_moto.py --stratus target/release/stratus --sizes 1000,10000 --calls 50 --out DIR

Stratus runs on libvirt's test driver (no guests), moto_server from the environment (pip).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import http.client
import re
import urllib.parse

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config

REGION = "us-east-1"
BATCH = 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} did not listen on {port} within {timeout:.0f} s")


def client(port: int, key: str, secret: str):
    config = Config(retries={"max_attempts": 1}, read_timeout=600, max_pool_connections=1)
    return boto3.client("ec2", region_name=REGION, endpoint_url=f"http://127.0.0.1:{port}",
                        aws_access_key_id=key, aws_secret_access_key=secret, config=config)


def start_moto(work: Path):
    port = free_port()
    log = open(work / "moto.log", "wb")
    proc = subprocess.Popen(["moto_server", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    wait_port(port, proc, "moto_server")
    ec2 = client(port, "testing", "testing")
    image = ec2.describe_images(Owners=["amazon"], MaxResults=5)["Images"][0]["ImageId"]
    return proc, ec2, image


def start_stratus(binary: str, work: Path):
    data = work / "stratus-data"
    config = work / "stratus.toml"
    config.write_text("[[hosts]]\nuri = 'test:///default'\nvcpus = 10000000\nmemory_mib = 10000000000\n"
                      "[limits]\nrequests_per_second = 100000\nburst = 100000\n")
    port = free_port()
    log = open(work / "stratus.log", "wb")
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data),
                             "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    wait_port(port, proc, "stratus serve")
    creds = data / "admin-credentials"
    for _ in range(100):
        if creds.exists() and "aws_secret_access_key" in creds.read_text():
            break
        time.sleep(0.1)
    fields = dict(line.split(" = ", 1) for line in creds.read_text().splitlines() if " = " in line)
    disk = work / "image.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    imported = subprocess.run([binary, "image", "import", str(disk), "--name", "pages", "--data-dir", str(data)],
                              check=True, capture_output=True, text=True)
    image = imported.stdout.strip().splitlines()[-1]
    return proc, client(port, fields["aws_access_key_id"], fields["aws_secret_access_key"]), image


def fill(ec2, image: str, count: int, keep_one_in_three: bool) -> None:
    """`count` instances; with `keep_one_in_three`, two of every three are terminated at once
    (they stay listed, as on EC2, and give their address back: one default subnet of Stratus
    holds 4,091 addresses; moto's is larger)."""
    for n in range(count):
        tags = [{"ResourceType": "instance", "Tags": [{"Key": "batch", "Value": f"b{n // BATCH}"}]}]
        launched = ec2.run_instances(ImageId=image, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                     TagSpecifications=tags)
        if keep_one_in_three and n % 3:
            ec2.terminate_instances(InstanceIds=[launched["Instances"][0]["InstanceId"]])


class Raw:
    """Signed DescribeInstances calls over one keep-alive connection, answers unparsed."""

    def __init__(self, ec2):
        self.credentials = ec2._request_signer._credentials
        self.endpoint = ec2.meta.endpoint_url
        parsed = urllib.parse.urlparse(self.endpoint)
        self.connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=600)

    def describe(self, **params) -> bytes:
        form = {"Action": "DescribeInstances", "Version": "2016-11-15", **{k: str(v) for k, v in params.items()}}
        request = AWSRequest(method="POST", url=self.endpoint + "/", data=urllib.parse.urlencode(form),
                             headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        SigV4Auth(self.credentials, "ec2", REGION).add_auth(request)
        self.connection.request("POST", "/", body=request.body, headers=dict(request.headers))
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            sys.exit(f"DescribeInstances {params}: {response.status} {body[:300]!r}")
        return body


def reservations(body: bytes) -> int:
    return len(re.findall(rb"<reservationId>", body))


def timed(call, calls: int) -> float:
    """p50 of `calls` calls, in milliseconds (after one warm-up)."""
    call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def middle_token(ec2, page: int, stored: int) -> str | None:
    """The token of a page from the middle of the walk at `page` a page."""
    target, seen, token = stored // 2, 0, None
    while seen < target:
        kwargs = {"MaxResults": page} if token is None else {"MaxResults": page, "NextToken": token}
        answer = ec2.describe_instances(**kwargs)
        seen += sum(len(r["Instances"]) for r in answer["Reservations"])
        token = answer.get("NextToken")
        if not token:
            return None
    return token


def measure(name: str, ec2, image: str, size: int, calls: int) -> list[dict]:
    started = time.monotonic()
    fill(ec2, image, size, keep_one_in_three=name == "stratus" and size > 4000)
    print(f"{name}: {size} instances in {time.monotonic() - started:.0f} s", file=sys.stderr)
    out = []
    raw = Raw(ec2)
    for page in (5, 50):
        if reservations(raw.describe(MaxResults=page)) != page:
            sys.exit(f"{name}: a first page of {page} does not hold {page} reservations")
        first = timed(lambda: raw.describe(MaxResults=page), calls)
        token = middle_token(ec2, page, size)
        middle = timed(lambda: raw.describe(MaxResults=page, NextToken=token), calls) if token else None
        out.append({"server": name, "stored": size, "max_results": page, "first_ms": first, "middle_ms": middle})
        print(f"{name:8} {size:>7} stored  MaxResults={page:<3} first {first:8.2f} ms  middle "
              f"{'-' if middle is None else f'{middle:.2f} ms'}", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stratus", default="target/release/stratus")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--out", default="bench/results/pages-moto")
    parser.add_argument("--servers", default="moto,stratus")
    args = parser.parse_args()
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        for name in args.servers.split(","):
            work = Path(tempfile.mkdtemp(prefix=f"pages-{name}-{size}-"))
            proc, ec2, image = start_moto(work) if name == "moto" else start_stratus(args.stratus, work)
            try:
                results.extend(measure(name, ec2, image, size, args.calls))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
                shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "pages-moto.json" if args.servers == "moto,stratus" else f"pages-{args.servers.replace(',', '-')}.json"
    (out / name).write_text(json.dumps(results, indent=2) + "\n")
    print(f"results in {out / name}", file=sys.stderr)


if __name__ == "__main__":
    main()
