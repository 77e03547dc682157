"""Helpers shared by the Python benchmarks (launch_ovn.py, migration_ovn.py, vpc_network.py,
pages_moto.py).

- `Stratus` runs one `stratus serve` on a free loopback port with a fresh data dir, imports
  images into it and hands out boto3 clients (`ec2`, and `stratus` for the extension API).
- `rotation`: the order of the paths compared in each repetition.
- `virsh`, `standalone_xml`, `jobinfo`: the same guest without Stratus, from the domain XML
  Stratus defined, and libvirt's figures for its migration job.
- `Watch` notices a line appearing in a console log (polled every 5 ms, in a thread).
- `summary`, `table`: medians with min and max, for the results and the printed tables.

All timings use `time.monotonic()`.
"""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOOT_MARKER = "STRATUS-TEST-GUEST BOOTED"
REGION = "us-east-1"


def rotation(vias: list[str], rep: int) -> list[str]:
    """The order of the paths in repetition `rep`: rotated by one each time, so that every
    path takes every place once in len(vias) repetitions."""
    k = rep % len(vias)
    return vias[k:] + vias[:k]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(*cmd: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_main(main) -> None:
    """Runs a benchmark's main. SIGTERM, and SIGINT even where the shell had it ignored (a
    background job), unwind like Ctrl-C, so that every `finally` cleans up."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        main()
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        raise SystemExit(130)


@dataclass
class TestImage:
    disk: str
    kernel: str
    initrd: str
    cmdline: str


def build_test_image() -> TestImage:
    """scripts/build-test-image (cached after its first build); its last line is the result."""
    last = run(str(REPO / "scripts/build-test-image"), timeout=600).stdout.strip().splitlines()[-1]
    head, cmdline = last.split(" cmdline=", 1)  # the command line runs to the end of the line
    fields = dict(kv.split("=", 1) for kv in head.split())
    return TestImage(fields["disk"], fields["kernel"], fields["initrd"], cmdline)


@contextlib.contextmanager
def lab_lock():
    """The machine's one lab (`scripts/lab`), which the test suite uses too: held from `up` to
    `down`, as the tests hold it (compat-tests/py/test_lab_aws_cli.py, backend/tests/lab.rs)."""
    path = Path("/run/stratus/lab.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stratus:
    """One `stratus serve`, on its embedded defaults unless `config` (TOML) says otherwise."""

    def __init__(self, binary: Path, data_dir: Path, config: str | None = None):
        self.binary, self.data_dir = binary, data_dir
        self.data_dir.mkdir(parents=True)
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        cmd = [str(binary), "serve", "--data-dir", str(data_dir)]
        # Hosts' own storage for their instances' folders (`disk_dir`), if the config names any.
        self.disk_dirs = re.findall(r'^disk_dir = "([^"]+)"', config or "", re.MULTILINE)
        if config is not None:
            config_path = data_dir.parent / f"{data_dir.name}.toml"
            config_path.write_text(config)
            cmd += ["--config", str(config_path)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATUS_", "AWS_"))}
        for _ in range(3):  # a free port may be taken before the server binds it
            self.port = free_port()
            with open(self.log_path, "ab") as out:
                self.proc = subprocess.Popen(cmd + ["--listen", f"127.0.0.1:{self.port}"], stdout=out,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
            if self._wait_ready():
                break
        else:
            raise RuntimeError(f"stratus serve could not bind a port (see {self.log_path})")
        creds = configparser.ConfigParser()
        creds.read(data_dir / "admin-credentials")
        self.access_key = creds["stratus"]["aws_access_key_id"].strip()
        self.secret_key = creds["stratus"]["aws_secret_access_key"].strip()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        log(f"stratus serve on {self.endpoint}, data {data_dir}, log {self.log_path}")

    def _wait_ready(self, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if b"address already in use" in self.log_path.read_bytes().lower():
                    return False
                raise RuntimeError(f"stratus serve exited with {self.proc.returncode} (see {self.log_path})")
            creds = self.data_dir / "admin-credentials"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    if creds.exists() and "aws_secret_access_key" in creds.read_text():
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"stratus serve not ready within {timeout} s (see {self.log_path})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def import_image(self, image: TestImage, name: str, extra_cmdline: str = "") -> str:
        cmdline = f"{image.cmdline} {extra_cmdline}".strip()
        out = run(str(self.binary), "image", "import", image.disk, "--name", name, "--kernel", image.kernel,
                  "--initrd", image.initrd, "--cmdline", cmdline, "--data-dir", str(self.data_dir)).stdout
        return out.strip().splitlines()[-1]

    def client(self, service: str = "ec2"):
        import boto3
        from botocore.config import Config

        # The extension's model is found through AWS_DATA_PATH, read when a session is made.
        os.environ["AWS_DATA_PATH"] = str(REPO / "ec2api/model")
        session = boto3.session.Session(aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                                        region_name=REGION)
        return session.client(service, endpoint_url=self.endpoint,
                              config=Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=60))

    def query(self, params: dict[str, str]) -> str:
        """One signed Query API call, answered as raw XML: far less CPU than a boto3 call, for
        the tight polling loops (the guests being measured share the machine's 2 cores)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        body = urllib.parse.urlencode({"Version": "2016-11-15", **params}).encode()
        req = AWSRequest(method="POST", url=self.endpoint + "/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        SigV4Auth(Credentials(self.access_key, self.secret_key), "ec2", REGION).add_auth(req)
        request = urllib.request.Request(self.endpoint + "/", data=body, headers=dict(req.headers.items()))
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.read().decode()

    def console_path(self, instance_id: str) -> Path:
        # backend/src/instances.rs: console_path(record) is <instance dir>/console.log, and the
        # instance dir is <data dir>/instances/<id>, or <disk_dir>/<id> on a host with storage
        # of its own: there, whichever folder appears first (the boot makes it at once).
        shared = self.data_dir / "instances" / instance_id
        if not self.disk_dirs:
            return shared / "console.log"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for folder in [shared, *(Path(d) / instance_id for d in self.disk_dirs)]:
                if folder.is_dir():
                    return folder / "console.log"
            time.sleep(0.01)
        raise RuntimeError(f"no folder for {instance_id} within 30 s (see {self.log_path})")


class Trace:
    """A ping every 10 ms from a namespace, its answers' wall-clock stamps (`ping -D`) read as
    they come."""

    def __init__(self, ns: str, address: str):
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, "ping", "-n", "-D", "-i", "0.01", address],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buffered = ""
        self.stamps: list[float] = []

    def _take(self, text: str) -> None:
        lines = (self.buffered + text).split("\n")
        self.buffered = lines.pop()
        for line in lines:
            if found := re.match(r"^\[(\d+\.\d+)\] \d+ bytes from", line):
                self.stamps.append(float(found.group(1)))

    def poll(self) -> None:
        """Reads what came since the last call, without waiting."""
        try:
            self._take(os.read(self.proc.stdout.fileno(), 65536).decode(errors="replace"))
        except BlockingIOError:
            pass

    def stop(self) -> list[float]:
        """Ends the pinger; answers every stamp it saw."""
        self.proc.terminate()
        os.set_blocking(self.proc.stdout.fileno(), True)
        self._take(self.proc.communicate()[0].decode(errors="replace") + "\n")
        return self.stamps


def wait_running(stratus: "Stratus", instance_id: str, deadline: float, poll: float) -> tuple[float | None, str]:
    """DescribeInstances (raw XML) every `poll` s until the instance is `running`: when it was
    seen so (`time.monotonic()`), or None and why."""
    while time.monotonic() < deadline:
        answer = stratus.query({"Action": "DescribeInstances", "InstanceId.1": instance_id})
        state = re.search(r"<instanceState>\s*<code>\d+</code>\s*<name>([\w-]+)</name>", answer).group(1)
        if state == "running":
            return time.monotonic(), ""
        if state != "pending":
            return None, f"instance became {state}"
        time.sleep(poll)
    return None, "not running in time"


def instance(ec2, instance_id: str) -> dict:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def wait_state(ec2, instance_id: str, wanted: str, timeout: float = 120, poll: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while (state := instance(ec2, instance_id)["State"]["Name"]) != wanted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{instance_id} still {state} after {timeout} s (waiting for {wanted})")
        time.sleep(poll)


def terminate(ec2, instance_id: str) -> None:
    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "terminated", timeout=90, poll=0.2)


def virsh(uri: str, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """One `virsh` process. A single argument may hold several commands separated by ` ; `
    (one process, one connection); virsh then runs each, even past a failure, and exits with
    the last one's status: end such a list with the command that needs all the others."""
    return run("virsh", "-q", "-c", uri, *args, timeout=timeout, check=check)


def remove_domain(uri: str, name: str) -> None:
    """Stops and undefines a domain of ours, whatever state it is in (or none)."""
    virsh(uri, "destroy", name, check=False, timeout=60)
    virsh(uri, "undefine", name, check=False, timeout=60)


def standalone_xml(stratus_xml: str, name: str, disk: Path, console: Path, mac: str, address: str) -> str:
    """The domain Stratus defined, as one of our own: another name, UUID (in the SMBIOS too),
    MAC, disk and console log; `address` in the kernel's `ip=`."""
    root = ET.fromstring(stratus_xml)
    old_name, old_uuid = root.findtext("name"), root.findtext("uuid")
    new_uuid = str(uuid.uuid4())
    root.find("name").text = name
    root.find("uuid").text = new_uuid
    for entry in root.iter("entry"):
        if entry.text == old_uuid:
            entry.text = new_uuid
    root.find("./devices/disk/source").set("file", str(disk))
    for source in root.findall("./devices/serial/source") + root.findall("./devices/console/source"):
        source.set("path", str(console))
    # A pty console (the serial console's) keeps its log in a <log> element instead.
    for log_element in root.findall("./devices/serial/log") + root.findall("./devices/console/log"):
        log_element.set("file", str(console))
    nic = root.find("./devices/interface")
    nic.find("mac").set("address", mac)
    cmdline = root.find("./os/cmdline")
    cmdline.text = re.sub(r"\bip=[^: ]*:", f"ip={address}:", cmdline.text).replace(old_name, name)
    return ET.tostring(root, encoding="unicode")


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


class Watch:
    """Notes when a line matching `pattern` first appears in a growing file (read every 5 ms
    from where the last read stopped, so a long console log costs nothing)."""

    def __init__(self, path: Path, pattern: str, poll: float = 0.005):
        self.path, self.pattern, self.poll = path, re.compile(pattern), poll
        self.found_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        offset, tail = 0, ""
        while not self._stop.is_set():
            try:
                with open(self.path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
            except FileNotFoundError:
                chunk = b""
            if chunk:
                now = time.monotonic()
                offset += len(chunk)
                text = tail + chunk.decode(errors="replace")
                if self.pattern.search(text):
                    self.found_at = now
                    return
                tail = text[-200:]  # a line may arrive in two reads
            time.sleep(self.poll)

    def wait(self, timeout: float) -> float | None:
        self._thread.join(timeout)
        self._stop.set()
        return self.found_at


def summary(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {"n": len(values), "median": statistics.median(values), "min": min(values), "max": max(values)}


def cell(s: dict, digits: int = 0) -> str:
    """`median (min–max)` of a summary, or `-`."""
    if not s["n"]:
        return "-"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def ratio(a: dict, b: dict) -> str:
    if not a["n"] or not b["n"] or not b["median"]:
        return "-"
    return f"{a['median'] / b['median']:.2f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])
