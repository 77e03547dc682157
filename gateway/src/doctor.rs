//! `stratus doctor` and `stratus host clean`: what they print.
//!
//! The backend (the server's, through the admin socket, or one the CLI opens) answers how
//! each host responds and the inventory of other installations' objects
//! ([`backend::ownership`]); this machine's facts (daemons, accelerator, integration bridge) are
//! read here into a [`Machine`]. [`checks`] turns both into a list of findings, each failed
//! one with what to do, as pure functions that tests drive with made-up machines.

use std::collections::BTreeSet;

use backend::ownership::CleanStep;

use crate::admin::HostsReport;
use crate::config::ACCELERATOR_RECORD;

/// What `stratus doctor` reads about the machine it runs on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Machine {
    /// Names of the running processes (`/proc/*/comm`).
    pub processes: BTreeSet<String>,
    /// What `scripts/setup-host` recorded, if anything.
    pub accelerator_record: Option<String>,
    pub kvm_device: bool,
    /// Network interfaces that exist.
    pub interfaces: Vec<String>,
}

impl Machine {
    pub fn this() -> Self {
        let processes = std::fs::read_dir("/proc")
            .map(|dir| {
                dir.flatten()
                    .filter_map(|entry| std::fs::read_to_string(entry.path().join("comm")).ok())
                    .map(|comm| comm.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let interfaces = std::fs::read_dir("/sys/class/net")
            .map(|dir| dir.flatten().map(|entry| entry.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        Self {
            processes,
            accelerator_record: std::fs::read_to_string(ACCELERATOR_RECORD).ok().map(|s| s.trim().to_owned()),
            kvm_device: std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok(),
            interfaces,
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
    /// What to do when it is not ok.
    pub fix: Option<String>,
}

fn check(what: impl Into<String>, ok: bool, detail: impl Into<String>, fix: Option<String>) -> Check {
    Check { what: what.into(), ok, detail: detail.into(), fix: if ok { None } else { fix } }
}

/// Whether a host URI names this machine's libvirt.
fn is_local(uri: &str) -> bool {
    matches!(uri, "qemu:///system" | "qemu:///session")
}

/// Every finding, in the order printed.
pub fn checks(report: &HostsReport, machine: &Machine) -> Vec<Check> {
    let setup = "run `sudo scripts/setup-host` (it installs and starts what is missing)".to_owned();
    let mut out = Vec::new();
    let local: Vec<_> = report.hosts.iter().filter(|h| is_local(&h.uri)).collect();
    if !local.is_empty() {
        for daemon in ["libvirtd", "virtlogd"] {
            let running = machine.processes.contains(daemon);
            out.push(check(daemon, running, if running { "running" } else { "not running" }, Some(setup.clone())));
        }
        let recorded = machine.accelerator_record.clone();
        let detail = match (&recorded, machine.kvm_device) {
            (Some(a), kvm) => {
                format!("{a} (recorded by setup-host; /dev/kvm {})", if kvm { "present" } else { "absent" })
            }
            (None, _) => "not recorded".into(),
        };
        out.push(check("accelerator", recorded.is_some(), detail, Some(setup.clone())));
        // Guests plug into Open vSwitch's integration bridge, which ovn-controller programs.
        for daemon in ["ovs-vswitchd", "ovn-controller"] {
            let running = machine.processes.contains(daemon);
            let fix = format!("{setup}; guests get no network without it");
            out.push(check(daemon, running, if running { "running" } else { "not running" }, Some(fix)));
        }
        let bridge = backend::vpc_network::INTEGRATION_BRIDGE;
        let there = machine.interfaces.iter().any(|name| name == bridge);
        out.push(check(
            format!("bridge {bridge}"),
            there,
            if there { "present" } else { "missing" },
            Some(setup.clone()),
        ));
    }
    // Hosts that run guests (not libvirt's test driver) need a network engine, wherever they are.
    if report.ovn.is_none() && report.hosts.iter().any(|h| h.accelerator != "test") {
        let fix = format!("{setup}, then restart Stratus; or name your OVN in [network] ovn_northbound");
        out.push(check("OVN northbound", false, "not configured: launches are refused", Some(fix)));
    }
    for host in &report.hosts {
        let detail = match &host.error {
            None => format!("{} ({}), {} domain(s)", host.uri, host.accelerator, host.domains),
            Some(error) => format!("{}: {error}", host.uri),
        };
        let fix = if is_local(&host.uri) {
            setup.clone()
        } else {
            format!("start libvirtd on that host and check that `virsh -c {} list` works from here", host.uri)
        };
        out.push(check(format!("host {}", host.id), host.error.is_none(), detail, Some(fix)));
    }
    if let Some((db, error)) = &report.ovn {
        let detail = match error {
            None => format!("{db} answers"),
            Some(error) => format!("{db}: {error}"),
        };
        out.push(check("OVN northbound", error.is_none(), detail, Some(setup.clone())));
    }
    let inventory = &report.inventory;
    for (host, error) in &inventory.unreachable {
        out.push(check(format!("leftovers on {host}"), false, format!("unknown: {error}"), None));
    }
    let leftovers = inventory.leftovers.len();
    let detail = if leftovers == 0 {
        format!("none of other installations (this one is {})", inventory.installation)
    } else {
        let mut detail = format!("{leftovers} object(s) not of this installation ({}):", inventory.installation);
        for leftover in &inventory.leftovers {
            detail.push_str("\n      ");
            detail.push_str(&leftover.line());
        }
        detail
    };
    out.push(check("leftovers", leftovers == 0, detail, Some(inventory.hint().trim_start().to_owned())));
    out
}

/// The doctor's text, and how many findings need doing something.
pub fn render(report: &HostsReport, checks: &[Check]) -> (String, usize) {
    let mut text = format!("Stratus doctor: data dir {}\n", report.data_dir);
    for c in checks {
        text.push_str(&format!("  [{}] {}: {}\n", if c.ok { " ok " } else { "FAIL" }, c.what, c.detail));
        if let Some(fix) = &c.fix {
            for line in fix.lines() {
                text.push_str(&format!("         -> {}\n", line.trim()));
            }
        }
    }
    let problems = checks.iter().filter(|c| !c.ok).count();
    text.push_str(&match problems {
        0 => "All good.\n".to_owned(),
        n => format!("{n} finding(s) need attention.\n"),
    });
    (text, problems)
}

/// What `stratus host clean` prints.
pub fn render_clean(steps: &[CleanStep], dry_run: bool) -> String {
    if steps.is_empty() {
        return "Nothing to clean.\n".into();
    }
    let mut text = String::new();
    for step in steps {
        let verb = match (dry_run, &step.error) {
            (true, _) => "would remove",
            (false, None) => "removed",
            (false, Some(_)) => "FAILED to remove",
        };
        text.push_str(&format!("{verb} {}", step.leftover.line()));
        if let Some(error) = &step.error {
            text.push_str(&format!(": {error}"));
        }
        text.push('\n');
    }
    if dry_run {
        text.push_str("Dry run: nothing was removed. Run again without --dry-run to remove these.\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use backend::ownership::{Inventory, Leftover, ObjectKind, Owner};

    use super::*;
    use crate::admin::HostCheck;

    fn report(leftovers: Vec<Leftover>) -> HostsReport {
        HostsReport {
            data_dir: "/srv/stratus-data".into(),
            hosts: vec![HostCheck {
                id: "h-1".into(),
                uri: "qemu:///system".into(),
                accelerator: "tcg".into(),
                error: None,
                domains: 3,
            }],
            inventory: Inventory {
                installation: "0123456789abcdef".into(),
                leftovers,
                unreachable: vec![],
                ovn_networks: Default::default(),
            },
            ovn: Some(("unix:/run/stratus/ovn/ovnnb_db.sock".into(), None)),
        }
    }

    fn healthy() -> Machine {
        Machine {
            processes: ["libvirtd", "virtlogd", "ovs-vswitchd", "ovn-controller"].map(String::from).into(),
            accelerator_record: Some("tcg".into()),
            kvm_device: false,
            interfaces: vec!["br-int".into()],
        }
    }

    #[test]
    fn a_healthy_machine_without_leftovers_is_all_good() {
        let report = report(vec![]);
        let checks = checks(&report, &healthy());
        let (text, problems) = render(&report, &checks);
        assert_eq!(problems, 0, "{text}");
        assert!(text.ends_with("All good.\n") && text.contains("[ ok ] leftovers: none"), "{text}");
    }

    #[test]
    fn each_failure_says_what_to_do() {
        let old = Leftover {
            host: "h-1".into(),
            kind: ObjectKind::Domain,
            name: "i-0aaa".into(),
            owner: Owner::Gone { installation: "fedcba9876543210".into() },
            running: true,
            address: Some(Ipv4Addr::new(172, 31, 0, 4)),
        };
        let report = report(vec![old]);
        let mut machine = healthy();
        machine.processes.remove("ovn-controller");
        machine.interfaces.clear();
        let mut report = report;
        report.ovn = Some(("unix:/run/stratus/ovn/ovnnb_db.sock".into(), Some("connection refused".into())));
        let (text, problems) = render(&report, &checks(&report, &machine));
        assert_eq!(problems, 4, "ovn-controller, bridge, OVN, leftovers: {text}");
        assert!(
            text.contains("[FAIL] OVN northbound: unix:/run/stratus/ovn/ovnnb_db.sock: connection refused"),
            "{text}"
        );
        assert!(text.contains("[FAIL] bridge br-int: missing"), "{text}");
        assert!(text.contains("[FAIL] ovn-controller: not running"), "{text}");
        assert!(text.contains("scripts/setup-host"), "{text}");
        assert!(text.contains("i-0aaa") && text.contains("stratus host clean --orphans"), "{text}");
        report.ovn = None;
        let (text, _) = render(&report, &checks(&report, &healthy()));
        assert!(text.contains("[FAIL] OVN northbound: not configured: launches are refused"), "{text}");
    }

    #[test]
    fn a_dry_run_says_that_nothing_was_removed() {
        let step = CleanStep {
            leftover: Leftover {
                host: "local".into(),
                kind: ObjectKind::MetadataNamespace,
                name: "stratus-meta-vpc-0aaa".into(),
                owner: Owner::Unmarked,
                running: false,
                address: None,
            },
            error: None,
        };
        let text = render_clean(std::slice::from_ref(&step), true);
        assert!(
            text.starts_with("would remove metadata namespace stratus-meta-vpc-0aaa")
                && text.contains("nothing was removed"),
            "{text}"
        );
        let failed = CleanStep { error: Some("permission denied".into()), ..step };
        assert!(render_clean(&[failed], false).starts_with("FAILED to remove"));
        assert_eq!(render_clean(&[], false), "Nothing to clean.\n");
    }
}
