"""What the OVN scenarios share: the databases `scripts/setup-host` starts, and probes (network
namespaces plugged into a logical switch, as a guest would be) on this machine's chassis or on a
lab host's (`scripts/lab`)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BOOT_MARKER, QEMU_CONFIG, forget_ovn_installation, wait_states

NB = "unix:/run/stratus/ovn/ovnnb_db.sock"
CONF = "unix:/run/stratus/ovn/conf.sock"
CONFIG = QEMU_CONFIG + f'\n[network]\novn_northbound = "{NB}"\n'


def require_ovn() -> None:
    if not Path(NB.removeprefix("unix:")).exists() or not shutil.which("ovn-nbctl"):
        if os.environ.get("STRATUS_TEST_QEMU") == "1":
            pytest.fail("OVN is not running: run scripts/setup-host")
        pytest.skip("OVN is not running: run scripts/setup-host")


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return done


def nbctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run("ovn-nbctl", f"--db={NB}", "--timeout=10", *args, check=check)


class Probe:
    """A namespace on a subnet's logical switch: a port the test adds, unmarked, so Stratus's
    reconciliation leaves it alone. Plugged into this machine's br-int, or into a lab host's
    (`host`: its namespace and Open vSwitch database). With `port`, it plugs in as that existing
    logical port of Stratus's instead (a network interface's, as its guest would)."""

    def __init__(self, name: str, switch: str, mac: str, address: str, router: str,
                 host: tuple[str, str] | None = None, port: str | None = None):
        self.name, self.ns = name, f"stratus-probe-{name}"
        self.port = port or name
        self.host_ns, self.db = host if host else (None, CONF)
        run("ip", "netns", "add", self.ns)
        run("ip", "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        if self.host_ns:
            run("ip", "link", "set", name, "netns", self.host_ns)
        run(*self.in_host("ip", "link", "set", name, "up"))
        # The userspace datapath takes what the kernel hands it: no checksum offload.
        run(*self.in_host("ethtool", "-K", name, "tx", "off"))
        run("ip", "netns", "exec", self.ns, "ethtool", "-K", "eth0", "tx", "off")
        for command in (["link", "set", "lo", "up"], ["link", "set", "eth0", "address", mac],
                        ["addr", "add", f"{address}/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
                        ["route", "add", "default", "via", router]):
            run("ip", "-n", self.ns, *command)
        if not port:
            nbctl("lsp-add", switch, name, "--", "lsp-set-addresses", name, f"{mac} {address}")
        run("ovs-vsctl", f"--db={self.db}", "--timeout=10", "add-port", "br-int", name, "--",
            "set", "Interface", name, f"external_ids:iface-id={self.port}")

    def in_host(self, *command: str) -> tuple[str, ...]:
        """`command` in the namespace the probe's host end lives in."""
        return ("ip", "netns", "exec", self.host_ns, *command) if self.host_ns else command

    def answers(self, address: str) -> bool:
        """One ping, one second to answer."""
        done = run("ip", "netns", "exec", self.ns, "ping", "-c", "1", "-W", "1", "-n", "-q", address, check=False)
        return done.returncode == 0

    def reaches(self, address: str, tries: int = 1) -> bool:
        for _ in range(tries):
            done = run("ip", "netns", "exec", self.ns, "ping", "-c", "2", "-i", "0.3", "-W", "1", "-n", "-q",
                       address, check=False)
            if done.returncode == 0:
                return True
        return False

    def mac_of(self, address: str) -> str | None:
        words = run("ip", "-n", self.ns, "neigh", "show", address).stdout.split()
        return words[words.index("lladdr") + 1] if "lladdr" in words else None

    def close(self) -> None:
        run("ovs-vsctl", f"--db={self.db}", "--timeout=10", "--if-exists", "del-port", "br-int", self.name,
            check=False)
        if self.port == self.name:
            nbctl("--if-exists", "lsp-del", self.name, check=False)
        run("ip", "netns", "del", self.ns, check=False)
        run(*self.in_host("ip", "link", "del", self.name), check=False)


# Prints the source address of every ICMP packet the namespace receives for three seconds.
SNIFF = """
import socket, sys, threading
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(0.2)
print("ready", flush=True)
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
while not done.is_set():
    try:
        packet = s.recv(2048)
    except socket.timeout:
        continue
    print(socket.inet_ntoa(packet[12:16]), flush=True)
"""


class Internet:
    """The public network's far side: a namespace on br-ex holding its router's address
    (`gateway`, as `a.b.c.d/len`), as an uplink would. Not the default public network's: this
    machine holds 198.51.100.1 on br-ex itself."""

    def __init__(self, gateway: str):
        self.gateway = gateway
        self.link, self.ns = f"si{os.getpid() % 100000}", f"stratus-internet-{os.getpid()}"
        run("ip", "netns", "add", self.ns)
        run("ip", "link", "add", self.link, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        run("ip", "link", "set", self.link, "up")
        run("ethtool", "-K", self.link, "tx", "off")
        run("ip", "netns", "exec", self.ns, "ethtool", "-K", "eth0", "tx", "off")
        for command in (["link", "set", "lo", "up"], ["addr", "add", gateway, "dev", "eth0"],
                        ["link", "set", "eth0", "up"]):
            run("ip", "-n", self.ns, *command)
        run("ovs-vsctl", f"--db={CONF}", "--timeout=10", "add-port", "br-ex", self.link)

    @classmethod
    def of(cls, server) -> "Internet":
        """The far side of a test server's own public network (conftest gives each one)."""
        network = ipaddress.ip_network(server.public_cidr)
        return cls(f"{network[1]}/{network.prefixlen}")

    @property
    def address(self) -> str:
        return self.gateway.split("/")[0]

    def answers(self, address: str) -> bool:
        done = run("ip", "netns", "exec", self.ns, "ping", "-c", "1", "-W", "1", "-n", "-q", address, check=False)
        return done.returncode == 0

    def connects(self, address: str, port: int, timeout: float = 3.0) -> bool:
        """Whether a TCP connection from the internet to `address:port` is accepted."""
        done = run("ip", "netns", "exec", self.ns, "timeout", str(timeout), "bash", "-c",
                   f"</dev/tcp/{address}/{port}", check=False)
        return done.returncode == 0

    def command(self, *args: str) -> list[str]:
        """`args` run from the internet's side."""
        return ["ip", "netns", "exec", self.ns, *args]

    def sources_seen(self, while_doing) -> set[str]:
        """The source addresses of the ICMP packets that reach the internet while `while_doing()`
        runs (a raw socket in the namespace sees every one)."""
        # It listens from its "ready" until told to stop (its stdin closes), however long
        # starting it and `while_doing` take on a loaded machine.
        listener = subprocess.Popen(["ip", "netns", "exec", self.ns, "python3", "-c", SNIFF],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert listener.stdout.readline().strip() == "ready", "the sniffer did not start"
        while_doing()
        time.sleep(0.5)  # the last replies in flight
        out, _ = listener.communicate(input="", timeout=30)
        return set(out.split())

    def close(self) -> None:
        run("ovs-vsctl", f"--db={CONF}", "--timeout=10", "--if-exists", "del-port", "br-ex", self.link, check=False)
        run("ip", "netns", "del", self.ns, check=False)
        run("ip", "link", "del", self.link, check=False)


def booted(client, instance_id: str, timeout: float = 180) -> None:
    """Waits for the test guest's boot marker on its console."""
    deadline = time.monotonic() + timeout
    while BOOT_MARKER not in client.get_console_output(InstanceId=instance_id).get("Output", ""):
        assert time.monotonic() < deadline, f"{instance_id} did not boot"
        time.sleep(1)


def tear_down(server, clients: dict, made: dict, probes: list) -> None:
    """Ends an OVN scenario: its probes, every account's instances (`made[who]["instances"]`),
    the server, and its installation's OVN rows."""
    for probe in probes:
        probe.close()
    for who, client in clients.items():
        ids = [i["InstanceId"] for i in made.get(who, {}).get("instances", {}).values()]
        if ids:
            client.terminate_instances(InstanceIds=ids)
            wait_states(client, ids, "terminated", timeout=120)
    server.stop()
    forget_ovn_installation((server.data_dir / "installation").read_text().strip())
