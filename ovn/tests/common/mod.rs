//! A real OVN northbound database (Debian's `ovn-central`) for the tests: `ovsdb-server` on the
//! NB schema in a temporary directory, stopped when dropped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ovn::{Desired, Dhcp, Router, RouterPort, Switch, SwitchPort};

pub const NB_SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";
pub const SB_SCHEMA: &str = "/usr/share/ovn/ovn-sb.ovsschema";

/// Whether OVN is installed; under the full suite (`STRATUS_TEST_QEMU=1`, set by
/// `scripts/test` after `scripts/setup-host` installed it) its absence is a failure.
pub fn ovn_present() -> bool {
    let present = Path::new(NB_SCHEMA).exists() && which("ovsdb-server") && which("ovn-nbctl");
    if !present && std::env::var("STRATUS_TEST_QEMU").as_deref() == Ok("1") {
        panic!("OVN is not installed: run scripts/setup-host");
    }
    present
}

pub fn which(program: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {program}")]).output().is_ok_and(|o| o.status.success())
}

pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One `ovsdb-server` serving a fresh database of `schema`, in `dir`.
pub struct Db {
    pub dir: PathBuf,
    pub name: String,
    pid: u32,
}

impl Db {
    pub fn start(dir: &Path, name: &str, schema: &str, extra: &[&str]) -> Self {
        let db = dir.join(format!("{name}.db"));
        run("ovsdb-tool", &["create", &db.to_string_lossy(), schema]);
        let sock = dir.join(format!("{name}.sock"));
        let pidfile = dir.join(format!("{name}.pid"));
        let mut args = vec![
            db.to_string_lossy().into_owned(),
            format!("--remote=punix:{}", sock.display()),
            format!("--pidfile={}", pidfile.display()),
            format!("--unixctl={}", dir.join(format!("{name}.ctl")).display()),
            format!("--log-file={}", dir.join(format!("{name}.log")).display()),
            "--no-chdir".into(),
            "--detach".into(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("ovsdb-server", &args);
        let pid = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        Self { dir: dir.to_owned(), name: name.to_owned(), pid }
    }

    pub fn socket(&self) -> String {
        format!("unix:{}", self.dir.join(format!("{}.sock", self.name)).display())
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

/// One VPC of `installation`: router `stratus-{vpc}`, one subnet `{cidr}` (a /24 whose `.1` is
/// the router), the ports given as `(name, mac, address)`, DHCP on.
pub fn vpc(installation: &str, vpc: &str, subnet: &str, net: &str, ports: &[(&str, &str, &str)]) -> Desired {
    let router_port = format!("stratus-{subnet}-rtr");
    let gateway_mac = format!("02:00:00:{:02x}:01:01", vpc.len() + subnet.len());
    Desired {
        installation: installation.into(),
        routers: vec![Router {
            name: format!("stratus-{vpc}"),
            owner: vpc.into(),
            ports: vec![RouterPort {
                name: router_port.clone(),
                mac: gateway_mac.clone(),
                networks: vec![format!("{net}.1/24")],
            }],
        }],
        switches: vec![Switch {
            name: format!("stratus-{subnet}"),
            owner: subnet.into(),
            router_port: Some(router_port),
            dhcp: Some(Dhcp {
                cidr: format!("{net}.0/24"),
                router: format!("{net}.1"),
                server_mac: gateway_mac,
                mtu: 1400,
                dns_server: format!("{net}.2"),
                lease_secs: 3600,
            }),
            ports: ports
                .iter()
                .map(|(name, mac, address)| SwitchPort {
                    name: (*name).into(),
                    owner: (*name).into(),
                    mac: (*mac).into(),
                    addresses: vec![(*address).into()],
                    port_security: true,
                })
                .collect(),
        }],
    }
}
