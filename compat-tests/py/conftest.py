"""Fixtures and helpers that run the real `stratus` binary for the client compatibility tests.

The binary is `$STRATUS_BIN`, or `<repo>/target/debug/stratus`. Every server listens on
127.0.0.1 only, on a free port, with a data dir of its own under pytest's tmp dir.
"""

from __future__ import annotations

import configparser
import hashlib
import fcntl
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO / "target" / "debug" / "stratus"
REGION = "us-east-1"
PROFILE = "stratus"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def stratus_bin() -> Path:
    return Path(os.environ.get("STRATUS_BIN", str(DEFAULT_BIN)))


def wait_for_binary(timeout: float = 120.0) -> Path:
    """The binary may be rebuilt under us: wait for it to (re)appear."""
    path = stratus_bin()
    deadline = time.monotonic() + timeout
    while not (path.is_file() and os.access(path, os.X_OK)):
        if time.monotonic() > deadline:
            pytest.fail(f"stratus binary not found at {path} (set STRATUS_BIN or build it)")
        time.sleep(1)
    return path


def server_env() -> dict[str, str]:
    """The environment for stratus itself: no STRATUS_* settings leaking in from the caller."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def read_credentials(path: Path, profile: str = PROFILE) -> tuple[str, str]:
    parser = configparser.ConfigParser()
    parser.read(path)
    section = parser[profile]
    return section["aws_access_key_id"].strip(), section["aws_secret_access_key"].strip()


def write_credentials(path: Path, access_key: str, secret_key: str, profile: str = PROFILE) -> Path:
    path.write_text(f"[{profile}]\naws_access_key_id = {access_key}\naws_secret_access_key = {secret_key}\n")
    return path


# The embedded default's public network: this machine holds its router address (198.51.100.1 on
# br-ex, by scripts/setup-host), so it reaches the guests' public addresses.
DEFAULT_PUBLIC_CIDR = "198.51.100.0/24"


_STARTED: list["Stratus"] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the tail of the logs of the servers that were running."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in _STARTED:
            if server.proc is not None and (server.proc.poll() is None or server in _recent()):
                report.sections.append((f"stratus log ({server.log_path})", server.log()[-4000:]))


def _recent() -> list["Stratus"]:
    return _STARTED[-3:]


OVS_PIDFILE = Path("/run/stratus/ovn/ovs-vswitchd.pid")


def _vswitchd_running() -> bool:
    try:
        pid = OVS_PIDFILE.read_text().strip()
        return Path(f"/proc/{pid}/comm").read_text().strip() == "ovs-vswitchd"
    except OSError:
        return False


def revive_open_vswitch() -> None:
    """Starts this machine's ovs-vswitchd again if it died, and says so. Debian's Open vSwitch
    (userspace datapath) once died in CI on an assertion in its conntrack (`conn_update_state`,
    lib/conntrack.c): every later test's network failed with it. `scripts/setup-host` is
    idempotent and starts only what is not running."""
    if not (OVS_PIDFILE.parent / "conf.sock").exists():
        return  # no Open vSwitch here (scripts/setup-host not run)
    if _vswitchd_running():
        return
    with open(OVS_PIDFILE.parent / "revive.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _vswitchd_running():
            return  # another test process started it meanwhile
        import sys
        print("WARNING: ovs-vswitchd is not running (see /run/stratus/ovn/ovs-vswitchd.log): starting it again",
              file=sys.stderr)
        subprocess.run([str(REPO / "scripts" / "setup-host")], capture_output=True, timeout=300)


@dataclass
class Stratus:
    """One running `stratus serve`."""

    bin: Path
    data_dir: Path
    port: int
    log_path: Path
    config: Path | None = None
    # The public network (`[network] public_cidr`) its VPCs' routers and guests take addresses of.
    public_cidr: str = DEFAULT_PUBLIC_CIDR
    proc: subprocess.Popen | None = None
    access_key: str | None = None
    secret_key: str | None = None
    account_id: str | None = None
    # Where its Prometheus metrics are scraped (`--metrics-listen`).
    metrics_port: int = field(default_factory=lambda: free_port())
    _log_file: object = field(default=None, repr=False)
    _public_lock: object = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def creds_file(self) -> Path:
        return self.data_dir / "admin-credentials"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"

    def start(self) -> "Stratus":
        wait_for_binary()
        revive_open_vswitch()
        _STARTED.append(self)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            if self._launch():
                break
            # the free port was taken in between: try others
            self.port, self.metrics_port = free_port(), free_port()
        else:
            pytest.fail(f"stratus serve could not bind a port:\n{self.log()}")
        self.account_id = _account_id_from(self.creds_file)
        return self

    def _launch(self) -> bool:
        """Starts the process and waits until it is ready; False if its port was taken."""
        self._log_file = open(self.log_path, "ab")
        log_start = self._log_file.tell()
        cmd = [str(self.bin), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir),
               "--metrics-listen", f"127.0.0.1:{self.metrics_port}"]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        self.proc = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=server_env())
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                self._close_log()
                if b"address already in use" in self.log_path.read_bytes()[log_start:].lower():
                    return False
                pytest.fail(f"stratus serve exited early with {self.proc.returncode}:\n{self.log()}")
            if self.creds_file.exists() and port_open(self.port):
                try:
                    self.access_key, self.secret_key = read_credentials(self.creds_file)
                except (KeyError, configparser.Error):
                    pass  # still being written
                else:
                    time.sleep(0.2)
                    if self.proc.poll() is None:  # the port is ours, not someone else's
                        return True
                    continue
            if time.monotonic() > deadline:
                self.kill()
                self._close_log()
                pytest.fail(f"stratus serve not ready within {READY_TIMEOUT}s:\n{self.log()}")
            time.sleep(0.1)

    def stop(self) -> int:
        """SIGTERM; asserts a clean exit (code 0) within STOP_TIMEOUT seconds."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            self._close_log()
            pytest.fail(f"stratus did not exit within {STOP_TIMEOUT}s of SIGTERM:\n{self.log()}")
        self._close_log()
        assert code == 0, f"stratus exited with {code} after SIGTERM:\n{self.log()}"
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _account_id_from(creds_file: Path) -> str | None:
    """The admin credentials file may carry the account id (as a key or a comment)."""
    try:
        text = creds_file.read_text()
    except OSError:
        return None
    m = re.search(r"account(?:[ _]?id)?\s*[=:]?\s*(\d{12})\b", text, re.IGNORECASE)
    return m.group(1) if m else None


_PUBLIC_NETWORKS = iter(range(1 << 30))


def private_public_network() -> str:
    """A public network no other running test's server uses: servers on the machine's OVN share
    br-ex, where two installations handing out the same addresses would answer for each other.
    A /24 of 100.65.0.0–100.127.255.0, picked by process and turn (two pytest processes run at
    once; 100.64.0.0/24 and the documentation ranges are the tests' fixed choices)."""
    n = (os.getpid() * 16 + next(_PUBLIC_NETWORKS)) % (63 * 256) + 256
    return f"100.{64 + n // 256}.{n % 256}.0/24"


def postgres_database_name(data_dir: Path) -> str:
    """The PostgreSQL database that stands for `data_dir`'s store (a server started again on
    the data dir finds its state there)."""
    return "t_" + hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:20]


def postgres_database(data_dir: Path) -> str:
    """The connection string of `data_dir`'s database on the tests' PostgreSQL (scripts/postgres),
    made if missing."""
    out = subprocess.run([str(REPO / "scripts" / "postgres"), "createdb", postgres_database_name(data_dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return re.search(r"^url=(\S+)$", out.stdout, re.MULTILINE).group(1)


def with_public_network(config: str, cidr: str) -> str:
    """`config` with `[network] public_cidr = cidr` unless it names one itself."""
    if "public_cidr" in config:
        return config
    line = f'public_cidr = "{cidr}"\n'
    if re.search(r"^\[network\]\s*$", config, re.MULTILINE):
        return re.sub(r"^\[network\]\s*$\n?", lambda m: "[network]\n" + line, config, count=1, flags=re.MULTILINE)
    return config + f"\n[network]\n{line}"


def start_stratus(tmp_dir: Path, data_dir: Path | None = None, config: str | None = None,
                  public: str | None = None) -> Stratus:
    """Starts a server on its own public network unless `public` names one (the default's,
    `DEFAULT_PUBLIC_CIDR`, is this machine's: only one test's server uses it at a time)."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    data_dir = data_dir or tmp_dir / "data"
    config = config or ""
    found = re.search(r'public_cidr\s*=\s*"([^"]+)"', config)
    # Without a network engine nothing of the public network reaches br-ex: no need to share.
    engine = 'ovn_northbound = "none"' not in config
    cidr = found.group(1) if found else public or (private_public_network() if engine else DEFAULT_PUBLIC_CIDR)
    config_path = tmp_dir / "stratus.toml"
    config = with_public_network(config, cidr) if engine else config
    if os.environ.get("STRATUS_TEST_STORE") == "postgres" and "[storage]" not in config:
        config += f'\n[storage]\nbackend = "postgres"\nurl = "{postgres_database(data_dir)}"\nconnections = 8\n'
    config_path.write_text(config)
    server = Stratus(bin=wait_for_binary(), data_dir=data_dir, port=free_port(), log_path=tmp_dir / "stratus.log",
                     config=config_path, public_cidr=cidr)
    if engine and cidr == DEFAULT_PUBLIC_CIDR:
        _take_default_public_network(server)
    return server.start()


_DEFAULT_PUBLIC_HOLDERS: list[Stratus] = []
_DEFAULT_PUBLIC_LOCK: list = []


def _take_default_public_network(server: Stratus) -> None:
    """Servers of this process share the default public network (one started again on its data
    dir); those of another process wait for it."""
    if not _DEFAULT_PUBLIC_HOLDERS:
        lock = open("/run/stratus-public-test.lock", "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        _DEFAULT_PUBLIC_LOCK.append(lock)
    _DEFAULT_PUBLIC_HOLDERS.append(server)
    server._public_lock = True


def _give_back_default_public_network(server: Stratus) -> None:
    _DEFAULT_PUBLIC_HOLDERS.remove(server)
    server._public_lock = None
    if not _DEFAULT_PUBLIC_HOLDERS:
        _DEFAULT_PUBLIC_LOCK.pop().close()


def retire(server: Stratus) -> None:
    """Ends a test's server for good: killed if still running, and what its installation put in
    OVN gone with its data dir (the embedded default keeps every account's default VPC there)."""
    server.kill()
    server._close_log()
    if server._public_lock is not None:
        _give_back_default_public_network(server)
    if os.environ.get("STRATUS_TEST_STORE") == "postgres":
        subprocess.run([str(REPO / "scripts" / "postgres"), "dropdb", postgres_database_name(server.data_dir)],
                       capture_output=True, timeout=60)
    try:
        installation = (server.data_dir / "installation").read_text().strip()
    except OSError:
        return
    forget_ovn_installation(installation)


@pytest.fixture(scope="session")
def stratus(tmp_path_factory):
    server = start_stratus(tmp_path_factory.mktemp("stratus"))
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is not None:
            pytest.fail(f"stratus died during the session (code {server.proc.returncode}):\n{server.log()}")
        server.stop()
        retire(server)


@pytest.fixture
def server_factory(tmp_path):
    """Starts private servers (for restart and locking tests); all are stopped at teardown."""
    started: list[Stratus] = []

    def make(data_dir: Path | None = None, name: str | None = None, config: str | None = None,
             public: str | None = None) -> Stratus:
        sub = tmp_path / (name or f"srv{len(started)}")
        # A server started again on a data dir keeps its public network.
        earlier = [s for s in started if s.data_dir == (data_dir or tmp_path / "data")]
        server = start_stratus(sub, data_dir or tmp_path / "data", config,
                               public or (earlier[-1].public_cidr if earlier else None))
        started.append(server)
        return server

    yield make
    for server in reversed(started):
        retire(server)


# --- aws cli ------------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(extra)
    return env


def aws(stratus: Stratus, *args: str, creds: Path | str | None = None, timeout: float = 120, service: str = "ec2",
        home: Path | None = None) -> tuple[int, str, str]:
    """Runs `aws ... <service> <args>` against the server; returns (returncode, stdout, stderr).
    `home` is the HOME the cli finds added models in (`aws configure add-model`)."""
    env = clean_env(
        AWS_SHARED_CREDENTIALS_FILE=str(creds or stratus.creds_file),
        AWS_CONFIG_FILE="/dev/null",
    )
    if home is not None:
        env["HOME"] = str(home)
    cmd = [
        "aws", "--profile", PROFILE, "--region", REGION, "--endpoint-url", stratus.endpoint,
        "--output", "json", service, *args,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


# --- instances ----------------------------------------------------------------------------

# A fast control plane for instance tests: libvirt's in-process test driver, quick sweeps.
TEST_DRIVER_HOSTS = """
[[hosts]]
uri = "test:///default"
vcpus = 32
memory_mib = 16384
cpu_ratio = 1.0

[instances]
stop_timeout_secs = 2
sweep_interval_ms = 200
"""
# The OVN `scripts/setup-host` runs (the embedded default's, named: test-driver hosts with it).
OVN_NETWORK = '\n[network]\novn_northbound = "unix:/run/stratus/ovn/ovnnb_db.sock"\n'
# Its guests plug into nothing: no network engine (VPCs, subnets and addresses are records only).
TEST_DRIVER_CONFIG = TEST_DRIVER_HOSTS + '\n[network]\novn_northbound = "none"\n'

# The real local QEMU daemon, as `scripts/setup-host` leaves it.
QEMU_CONFIG = """
[instances]
stop_timeout_secs = 30
sweep_interval_ms = 500
"""

BOOT_MARKER = "STRATUS-TEST-GUEST BOOTED"


@dataclass
class TestImage:
    disk: str
    kernel: str
    initrd: str
    cmdline: str


def built_image(script: str, timeout: float) -> TestImage:
    """Runs one of the image scripts (they cache their result) and reads its result line."""
    proc = subprocess.run([str(REPO / "scripts" / script)], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stderr[-4000:]}"
    last = proc.stdout.strip().splitlines()[-1]
    head, cmdline = last.split(" cmdline=", 1)  # the command line runs to the end of the line
    fields = dict(kv.split("=", 1) for kv in head.split())
    return TestImage(fields["disk"], fields["kernel"], fields["initrd"], cmdline)


@pytest.fixture(scope="session")
def test_image() -> TestImage:
    """The guest image `scripts/build-test-image` builds (cached after the first build)."""
    return built_image("build-test-image", 600)


@pytest.fixture(scope="session")
def cloud_image() -> TestImage:
    """The Debian cloud image `scripts/build-cloud-image` builds (cached after the first build)."""
    return built_image("build-cloud-image", 1500)


def require_qemu() -> None:
    """Real-QEMU tests need scripts/setup-host; under scripts/test (STRATUS_TEST_QEMU=1) a missing
    daemon is a failure, elsewhere a skip."""
    if not Path("/run/libvirt/libvirt-sock").exists():
        if os.environ.get("STRATUS_TEST_QEMU") == "1":
            pytest.fail("libvirtd is not running: run scripts/setup-host")
        pytest.skip("libvirtd is not running: run scripts/setup-host")


def admin_env(stratus: Stratus) -> dict[str, str]:
    """The environment of an admin command on `stratus`'s data dir: its config too (where its
    state lives, when that is PostgreSQL)."""
    env = server_env()
    if stratus.config is not None:
        env["STRATUS_CONFIG"] = str(stratus.config)
    return env


def import_image(stratus: Stratus, image: TestImage, name: str) -> str:
    """`stratus image import` against a running server; returns the new image id."""
    cmd = [str(stratus.bin), "image", "import", image.disk, "--name", name, "--kernel", image.kernel,
           "--initrd", image.initrd, "--cmdline", image.cmdline, "--data-dir", str(stratus.data_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=admin_env(stratus))
    assert proc.returncode == 0, f"image import failed:\n{proc.stdout}\n{proc.stderr}"
    image_id = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"ami-[0-9a-f]{17}", image_id), proc.stdout
    return image_id


def wait_until(until, timeout: float, what: str, step: float = 0.2):
    """`until()`'s first truthy value, polled every `step` s; fails the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = until()
        if value:
            return value
        time.sleep(step)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def wait_states(client, ids: list[str], wanted: str, timeout: float = 60.0) -> list[dict]:
    """Polls DescribeInstances until every instance is in `wanted`."""
    deadline = time.monotonic() + timeout
    while True:
        found = [i for r in client.describe_instances(InstanceIds=ids)["Reservations"] for i in r["Instances"]]
        states = {i["InstanceId"]: i["State"]["Name"] for i in found}
        if len(found) == len(ids) and all(s == wanted for s in states.values()):
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"instances not {wanted} within {timeout}s: {states}")
        time.sleep(0.2)


# --- boto3 --------------------------------------------------------------------------------


def ec2_client(stratus: Stratus, access_key: str | None = None, secret_key: str | None = None, region: str = REGION,
               validate: bool = True):
    """A boto3 ec2 client; `validate=False` turns off botocore's client-side parameter checks."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=access_key or stratus.access_key,
        aws_secret_access_key=secret_key or stratus.secret_key,
        region_name=region,
    )
    return session.client(
        "ec2",
        endpoint_url=stratus.endpoint,
        config=Config(retries={"max_attempts": 1, "mode": "legacy"}, connect_timeout=5, read_timeout=30,
                      parameter_validation=validate),
    )


@pytest.fixture(scope="session")
def ec2(stratus):
    return ec2_client(stratus)


# --- accounts -----------------------------------------------------------------------------


@dataclass
class Account:
    name: str
    account_id: str
    access_key: str
    secret_key: str


def create_account(stratus: Stratus, name: str, admin: bool = False) -> Account:
    cmd = [str(stratus.bin), "account", "create", name]
    if admin:
        cmd.append("--admin")
    cmd += ["--data-dir", str(stratus.data_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=admin_env(stratus))
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    values = dict(re.findall(r"^\s*(\w+)\s*=\s*(\S+)\s*$", proc.stdout, re.MULTILINE))
    for key in ("account_id", "aws_access_key_id", "aws_secret_access_key"):
        assert key in values, f"`account create` did not print {key}:\n{proc.stdout}"
    assert re.fullmatch(r"\d{12}", values["account_id"]), values["account_id"]
    return Account(name, values["account_id"], values["aws_access_key_id"], values["aws_secret_access_key"])


def two_tenants(tmp_dir: Path, test_image: TestImage) -> tuple[Stratus, str, tuple, tuple]:
    """A test-driver server with the test image imported (public) and two tenant accounts:
    the server, the image, and `(account, ec2 client)` for each tenant. The caller stops it."""
    server = start_stratus(tmp_dir, config=TEST_DRIVER_CONFIG)
    image = import_image(server, test_image, "tenants' image")
    a, b = create_account(server, "tenant-a"), create_account(server, "tenant-b")
    return server, image, (a, ec2_client(server, a.access_key, a.secret_key)), \
        (b, ec2_client(server, b.access_key, b.secret_key))


def error_of(call) -> tuple[str, str]:
    """The EC2 error code and message `call` fails with (it must fail)."""
    import pytest
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["Error"].get("Message", "")


def list_accounts(stratus: Stratus) -> str:
    cmd = [str(stratus.bin), "account", "list", "--data-dir", str(stratus.data_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=admin_env(stratus))
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# --- raw signed requests ------------------------------------------------------------------

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    @property
    def error_code(self) -> str | None:
        return xml_error(self.body)[0]

    @property
    def error_message(self) -> str | None:
        return xml_error(self.body)[1]


def strip_ns(root: ET.Element) -> ET.Element:
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


def xml_error(body: bytes) -> tuple[str | None, str | None]:
    """(Code, Message) from an EC2 error envelope `Response/Errors/Error`."""
    try:
        root = strip_ns(ET.fromstring(body))
    except ET.ParseError:
        return None, None
    if root.tag != "Response":
        return None, None
    err = root.find("./Errors/Error")
    if err is None:
        return None, None
    return err.findtext("Code"), err.findtext("Message")


def sign(
    stratus: Stratus,
    body: str | bytes,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str = REGION,
    content_type: str = FORM_CONTENT_TYPE,
) -> tuple[str, bytes, dict[str, str]]:
    """SigV4-signs a POST / with botocore; returns (url, body, headers)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    data = body.encode() if isinstance(body, str) else body
    url = stratus.endpoint + "/"
    req = AWSRequest(method="POST", url=url, data=data, headers={"Content-Type": content_type})
    creds = Credentials(access_key or stratus.access_key, secret_key or stratus.secret_key)
    SigV4Auth(creds, "ec2", region).add_auth(req)
    headers = {k: v for k, v in req.headers.items()}
    return url, data, headers


def send(url: str, data: bytes | None, headers: dict[str, str], method: str = "POST", timeout: float = 30) -> RawResponse:
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return RawResponse(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as e:
        return RawResponse(e.code, dict(e.headers.items()), e.read())


def signed_request(stratus: Stratus, body: str | bytes, **kw) -> RawResponse:
    url, data, headers = sign(stratus, body, **kw)
    return send(url, data, headers)


OVN_NB = "unix:/run/stratus/ovn/ovnnb_db.sock"


def forget_ovn_installation(installation: str) -> None:
    """Removes what an installation (whose data dir goes with its test) left in OVN's northbound
    database: its routers (with their ports, routes, NAT and policies), switches (with their
    ports), port groups (with their ACLs) and DHCP options. Otherwise a later test's
    installation would meet them: gateway ports still answering for the same public addresses."""
    def nbctl(*args: str) -> str:
        done = subprocess.run(["ovn-nbctl", f"--db={OVN_NB}", "--timeout=10", *args], capture_output=True,
                              text=True, timeout=30)
        return done.stdout
    # Each VPC of its own also has a metadata namespace on this machine, plugged into br-int by
    # a port marked with the installation and the VPC.
    marked = subprocess.run(["ovs-vsctl", "--timeout=10", "--bare", "--columns=external_ids", "find", "Interface",
                             f"external_ids:stratus-installation={installation}"], capture_output=True, text=True,
                            timeout=30).stdout
    vpcs = {pair.split("=", 1)[1].strip('"') for pair in marked.split() if pair.startswith("stratus-vpc=")}
    vpcs |= {router.removeprefix("stratus-") for router in nbctl(
        "--bare", "--columns=name", "find", "Logical_Router", f"external_ids:stratus-installation={installation}").split()}
    for vpc in vpcs:
        link = "sm" + hashlib.sha256(vpc.encode()).hexdigest()[:13]
        subprocess.run(["ovs-vsctl", "--timeout=10", "--if-exists", "del-port", "br-int", link], capture_output=True)
        subprocess.run(["ip", "netns", "del", f"stratus-meta-{vpc}"], capture_output=True)
    for table in ("Logical_Router", "Logical_Switch", "Port_Group", "DHCP_Options"):
        for uuid in nbctl("--bare", "--columns=_uuid", "find", table,
                          f"external_ids:stratus-installation={installation}").split():
            nbctl("destroy", table, uuid)


def wait_console(client, instance_id, pattern: str, count: int = 1, timeout: float = 90.0) -> list[str]:
    """The first `count` matches of `pattern` on the guest's console, once there are that many."""
    deadline = time.monotonic() + timeout
    while True:
        text = client.get_console_output(InstanceId=instance_id, Latest=True).get("Output", "")
        found = re.findall(pattern, text)
        if len(found) >= count:
            return found
        shown = "\n".join(line for line in text.splitlines() if "stratus-counter" not in line)[-3000:]
        assert time.monotonic() < deadline, f"the guest never printed {count} x {pattern!r}; console:\n{shown}"
        time.sleep(0.5)


# --- the lab: libvirt hosts in network namespaces (`scripts/lab`) ------------------------------

# The machine has one lab, which other tests (backend/tests/lab.rs) use too: each holds this lock
# from `up` to `down`.
LAB_LOCK = Path("/run/stratus/lab.lock")
LAB_DIR = Path("/var/lib/stratus/lab")


@pytest.fixture
def lab():
    require_qemu()
    LAB_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LAB_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        out = subprocess.run([str(REPO / "scripts" / "lab"), "up", "2"], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        config = re.search(r"^config=(\S+)$", out.stdout, re.MULTILINE).group(1)
        try:
            yield Path(config).read_text()
        finally:
            subprocess.run([str(REPO / "scripts" / "lab"), "down"], capture_output=True, timeout=120)
