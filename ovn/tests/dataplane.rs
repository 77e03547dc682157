//! OVN's data plane, built by reconciliation and tried with packets: a whole OVN (NB and SB
//! databases, `ovn-northd`, and one hypervisor's `ovsdb-server`, `ovs-vswitchd` on the
//! userspace datapath and `ovn-controller`) runs in a temporary directory and a network
//! namespace of its own; "guests" are namespaces whose NIC is plugged into `br-int` the way
//! libvirt plugs a guest's (`external_ids:iface-id` = the switch port's name).
//!
//! Two VPCs use the very same subnet, 10.0.1.0/24, and the very same guest address 10.0.1.10:
//! each guest gets its address from OVN's DHCP, reaches its own VPC's peers (in its subnet and,
//! through the VPC's router, in another subnet), and never anything of the other VPC.
//!
//! Needs root (namespaces); skipped without it, except under the full suite.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use ovn::{Northbound, RouterPort, SwitchPort};

/// Everything started for the test; stopped and removed when dropped.
struct Lab {
    dir: PathBuf,
    tag: String,
    namespaces: Vec<String>,
    pidfiles: Vec<PathBuf>,
}

impl Lab {
    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.tag)
    }

    fn add_ns(&mut self, name: &str) -> String {
        let ns = self.ns(name);
        run("ip", &["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a daemon in `ns` with OVS's and OVN's run dir in `rundir`; it detaches and writes
    /// `pidfile`.
    fn daemon(&mut self, ns: &str, rundir: &Path, program: &str, args: &[String], name: &str) {
        let pidfile = rundir.join(format!("{name}.pid"));
        let status = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .arg(format!("--pidfile={}", pidfile.display()))
            .arg(format!("--log-file={}", rundir.join(format!("{name}.log")).display()))
            .args(["--detach", "--no-chdir"])
            .env("OVS_RUNDIR", rundir)
            .env("OVN_RUNDIR", rundir)
            .status()
            .unwrap();
        assert!(status.success(), "{program} did not start; see {}", rundir.display());
        self.pidfiles.push(pidfile);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for pidfile in self.pidfiles.iter().rev() {
            if let Ok(pid) = std::fs::read_to_string(pidfile) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = &self.dir;
    }
}

fn is_root() -> bool {
    run("id", &["-u"]).trim() == "0"
}

fn vsctl(db: &str, args: &[&str]) -> String {
    let mut all = vec![format!("--db={db}")];
    all.extend(args.iter().map(|s| (*s).to_owned()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    run("ovs-vsctl", &all)
}

/// `ping` from `ns` to `address`: whether any reply came.
fn reaches(ns: &str, address: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", "-n", "-q", address])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn overlapping_vpcs_stay_apart_and_each_serves_its_own_guests() {
    if !ovn_present() {
        eprintln!("skipped: OVN is not installed");
        return;
    }
    if !is_root() {
        assert_ne!(std::env::var("STRATUS_TEST_QEMU").as_deref(), Ok("1"), "the full suite runs as root");
        eprintln!("skipped: namespaces need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab {
        dir: dir.path().to_owned(),
        tag: format!("sovn{}", std::process::id()),
        namespaces: Vec::new(),
        pidfiles: Vec::new(),
    };
    // Central: the databases and northd (unix sockets reach across namespaces).
    let nb_db = Db::start(dir.path(), "nb", NB_SCHEMA, &[]);
    let sb_db = Db::start(dir.path(), "sb", SB_SCHEMA, &[]);
    let root = lab.dir.clone();
    let northd_args = vec![
        format!("--ovnnb-db={}", nb_db.socket()),
        format!("--ovnsb-db={}", sb_db.socket()),
        format!("--unixctl={}", root.join("northd.ctl").display()),
    ];
    let host = lab.add_ns("h");
    lab.daemon(&host, &root, "ovn-northd", &northd_args, "northd");

    // The hypervisor: its own OVS on the userspace datapath, and ovn-controller.
    let hv = root.join("hv");
    std::fs::create_dir_all(&hv).unwrap();
    let conf = hv.join("conf.db");
    run("ovsdb-tool", &["create", &conf.to_string_lossy(), VSWITCH_SCHEMA]);
    let db = format!("unix:{}", hv.join("db.sock").display());
    lab.daemon(
        &host,
        &hv,
        "ovsdb-server",
        &[
            conf.to_string_lossy().into_owned(),
            format!("--remote=punix:{}", hv.join("db.sock").display()),
            "--remote=db:Open_vSwitch,Open_vSwitch,manager_options".into(),
            format!("--unixctl={}", hv.join("ovsdb-server.ctl").display()),
        ],
        "ovsdb-server",
    );
    vsctl(&db, &["--no-wait", "init"]);
    lab.daemon(
        &host,
        &hv,
        "ovs-vswitchd",
        &[db.clone(), format!("--unixctl={}", hv.join("ovs-vswitchd.ctl").display())],
        "ovs-vswitchd",
    );
    vsctl(
        &db,
        &[
            "add-br",
            "br-int",
            "--",
            "set",
            "bridge",
            "br-int",
            "datapath_type=netdev",
            "fail-mode=secure",
            "other-config:disable-in-band=true",
        ],
    );
    vsctl(
        &db,
        &[
            "set",
            "open",
            ".",
            "external-ids:system-id=hv1",
            &format!("external-ids:ovn-remote={}", sb_db.socket()),
            "external-ids:ovn-encap-type=geneve",
            "external-ids:ovn-encap-ip=127.0.0.1",
            "external-ids:ovn-bridge-datapath-type=netdev",
        ],
    );
    lab.daemon(&host, &hv, "ovn-controller", std::slice::from_ref(&db), "ovn-controller");

    // What Stratus wants: VPC A with subnets 10.0.1.0/24 (two guests) and 10.0.2.0/24 (one),
    // VPC B with 10.0.1.0/24 and a guest at A's first guest's address.
    let nb = Northbound::new(nb_db.socket());
    let installation = "3333333333333333";
    let mut a = vpc(
        installation,
        "vpc-a",
        "subnet-a1",
        "10.0.1",
        &[("eni-a1", "02:00:00:00:0a:01", "10.0.1.10"), ("eni-a2", "02:00:00:00:0a:02", "10.0.1.11")],
    );
    let second = vpc(installation, "vpc-a", "subnet-a2", "10.0.2", &[("eni-a3", "02:00:00:00:0a:03", "10.0.2.10")]);
    a.routers[0].ports.push(RouterPort { mac: "02:00:00:00:a2:01".into(), ..second.routers[0].ports[0].clone() });
    a.switches.push(second.switches[0].clone());
    a.switches[1].dhcp.as_mut().unwrap().server_mac = "02:00:00:00:a2:01".into();
    let b = vpc(installation, "vpc-b", "subnet-b1", "10.0.1", &[("eni-b1", "02:00:00:00:0b:01", "10.0.1.10")]);
    let mut desired = a.clone();
    desired.routers.extend(b.routers);
    desired.switches.extend(b.switches);
    nb.reconcile(&desired).unwrap();

    // The guests, plugged as libvirt plugs them.
    let script = root.join("udhcpc.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$1\" in\n  deconfig) ip addr flush dev $interface; ip link set $interface up ;;\n  bound|renew) ip addr flush dev $interface; ip addr add $ip/$mask dev $interface; [ -n \"$mtu\" ] && ip link set $interface mtu $mtu; ip route replace default via $router dev $interface ;;\nesac\n",
    )
    .unwrap();
    run("chmod", &["+x", &script.to_string_lossy()]);
    let ports: Vec<&SwitchPort> = desired.switches.iter().flat_map(|s| &s.ports).collect();
    let mut guests = Vec::new();
    for (index, port) in ports.iter().enumerate() {
        let guest = lab.add_ns(&port.name);
        let plug = format!("{}p{index}", &lab.tag[..lab.tag.len().min(10)]);
        run("ip", &["link", "add", &plug, "netns", &host, "type", "veth", "peer", "name", "eth0", "netns", &guest]);
        run("ip", &["-n", &guest, "link", "set", "eth0", "address", &port.mac, "mtu", "1400", "up"]);
        // What feeds OVS's userspace datapath must not leave checksums to offload.
        run("ip", &["netns", "exec", &guest, "ethtool", "-K", "eth0", "tx", "off"]);
        run("ip", &["-n", &host, "link", "set", &plug, "up"]);
        vsctl(
            &db,
            &[
                "add-port",
                "br-int",
                &plug,
                "--",
                "set",
                "Interface",
                &plug,
                &format!("external_ids:iface-id={}", port.name),
            ],
        );
        guests.push((guest, port.addresses[0].clone()));
    }
    eventually("ports bound to the chassis", Duration::from_secs(30), || {
        nb.nbctl(&["--wait=hv", "sync"]).is_ok()
            && ports
                .iter()
                .all(|p| nb.nbctl(&["get", "Logical_Switch_Port", &p.name, "up"]).is_ok_and(|up| up.trim() == "true"))
    });

    // DHCP: each guest is told its own address by OVN.
    for (guest, address) in &guests {
        let lease = Command::new("ip")
            .args([
                "netns", "exec", guest, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "10", "-T", "1",
                "-s",
            ])
            .arg(&script)
            .output()
            .unwrap();
        assert!(lease.status.success(), "{guest}: no lease: {}", String::from_utf8_lossy(&lease.stderr));
        let shown = run("ip", &["-n", guest, "-4", "-o", "addr", "show", "eth0"]);
        assert!(shown.contains(&format!("{address}/24")), "{guest} got {shown}");
    }
    let guest = |name: &str| lab.ns(name);
    // Inside VPC A: the same subnet, and the other subnet through the router.
    eventually("a1 reaches a2", Duration::from_secs(20), || reaches(&guest("eni-a1"), "10.0.1.11"));
    assert!(reaches(&guest("eni-a1"), "10.0.2.10"), "a1 reaches a3 through A's router");
    assert!(reaches(&guest("eni-a3"), "10.0.1.10"), "a3 reaches a1 back");
    assert!(reaches(&guest("eni-b1"), "10.0.1.1"), "b1 reaches its own router");
    // Across VPCs nothing, though the addresses are the same.
    assert!(!reaches(&guest("eni-b1"), "10.0.1.11"), "b1 must not reach A's 10.0.1.11");
    assert!(!reaches(&guest("eni-b1"), "10.0.2.10"), "b1 must not reach A's other subnet");
    let neighbours = run("ip", &["-n", &guest("eni-a2"), "neigh", "show", "10.0.1.10"]);
    assert!(
        neighbours.contains("02:00:00:00:0a:01") && !neighbours.contains("0b:01"),
        "a2's 10.0.1.10 is a1: {neighbours}"
    );

    // A port removed from what is wanted stops forwarding at once.
    let mut without = desired.clone();
    without.switches[0].ports.retain(|p| p.name != "eni-a2");
    nb.reconcile(&without).unwrap();
    nb.nbctl(&["--wait=hv", "sync"]).unwrap();
    assert!(!reaches(&guest("eni-a1"), "10.0.1.11"), "a2's port is gone");
    drop(lab);
}
