//! The OVN reconciliation benchmark (issue 16): what Stratus's reconciliation of `ports` ports
//! costs against the northbound database `scripts/setup-host` runs, beside a bare `ovn-nbctl`
//! run that writes the same rows in one transaction without reading anything first.
//!
//! The network: one VPC of `ports / 100` subnets (at least one), each a switch with OVN's DHCP
//! on the VPC's router, and `ports` guest ports spread over them, every one guarded (the
//! installation's drop group). Timed, each `repetitions` times on a fresh installation id:
//! 1. the first reconciliation (read an empty installation, plan, one `ovn-nbctl` batch);
//! 2. a reconciliation in step (read and plan, nothing to write), what every sweep costs;
//! 3. one port more (a launch), and one port's addresses changed;
//! 4. the baseline: the same switches and ports created by one bare `ovn-nbctl` call (what a
//!    hand-written script does when it knows nothing is there), then removed.
//!
//! Writes `ovn.json`; nothing here fails on a number.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use backend::network::Subnet;
use backend::vpc_network::{desired, Interface, VpcView};
use serde::Serialize;

#[derive(Serialize, Default)]
struct Timings {
    first_apply_ms: Vec<f64>,
    in_step_ms: Vec<f64>,
    one_port_added_ms: Vec<f64>,
    one_port_changed_ms: Vec<f64>,
    bare_nbctl_create_ms: Vec<f64>,
}

#[derive(Serialize)]
struct Results {
    machine: serde_json::Value,
    northbound: String,
    ports: usize,
    subnets: usize,
    commands_first_apply: usize,
    timings: Timings,
    median_ms: serde_json::Value,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// The VPC and its interfaces: `ports` ports over `subnets` /24 subnets of 10.0.0.0/16.
fn network(ports: usize, subnets: usize) -> (VpcView, Vec<Interface>) {
    let subnet = |i: usize| Subnet {
        id: format!("subnet-{i:017x}"),
        vpc_id: "vpc-bench".into(),
        zone: "us-east-1a".into(),
        zone_index: 0,
        network: Ipv4Addr::new(10, 0, i as u8, 0),
        prefix: 24,
        default_for_az: false,
        map_public_ip: false,
        lease_scope: "vpc-bench/".into(),
    };
    let subnets: Vec<Subnet> = (0..subnets).map(subnet).collect();
    let interfaces = (0..ports)
        .map(|p| {
            let s = &subnets[p % subnets.len()];
            let host = 4 + (p / subnets.len()) as u32;
            Interface {
                id: format!("eni-{p:017x}"),
                subnet_id: s.id.clone(),
                mac: format!("52:54:00:{:02x}:{:02x}:{:02x}", (p >> 16) & 0xff, (p >> 8) & 0xff, p & 0xff),
                address: Ipv4Addr::from(u32::from(s.network) + host).to_string(),
                groups: vec!["sg-bench".into()],
                public_ip: None,
                secondary: Vec::new(),
                source_dest_check: true,
                chassis: Vec::new(),
            }
        })
        .collect();
    let view = VpcView { id: "vpc-bench".into(), cidr: "10.0.0.0/16".into(), subnets, ..Default::default() };
    (view, interfaces)
}

fn nbctl(nb: &str, args: &[String]) -> Result<()> {
    let output = Command::new("ovn-nbctl").arg(format!("--db={nb}")).arg("--timeout=60").args(args).output()?;
    if !output.status.success() {
        bail!("ovn-nbctl failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

/// The baseline: the same switches and ports in one bare `ovn-nbctl` transaction.
fn bare_create(nb: &str, prefix: &str, view: &VpcView, interfaces: &[Interface]) -> Result<f64> {
    let mut args: Vec<String> = Vec::new();
    for subnet in &view.subnets {
        args.extend(["--".into(), "ls-add".into(), format!("{prefix}-{}", subnet.id)]);
    }
    for (i, interface) in interfaces.iter().enumerate() {
        let port = format!("{prefix}-p{i}");
        let entry = format!("{} {}", interface.mac, interface.address);
        args.extend(["--".into(), "lsp-add".into(), format!("{prefix}-{}", interface.subnet_id), port.clone()]);
        args.extend(["--".into(), "lsp-set-addresses".into(), port.clone(), entry.clone()]);
        args.extend(["--".into(), "lsp-set-port-security".into(), port, entry]);
    }
    let started = Instant::now();
    nbctl(nb, &args)?;
    let took = ms(started);
    let removal: Vec<String> =
        view.subnets.iter().flat_map(|s| ["--".into(), "ls-del".into(), format!("{prefix}-{}", s.id)]).collect();
    nbctl(nb, &removal)?;
    Ok(took)
}

pub fn run(out: &Path, nb: &str, ports: usize, repetitions: usize) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let subnets = ports.div_ceil(100).clamp(1, 250);
    let (view, interfaces) = network(ports, subnets);
    let northbound = ovn::Northbound::new(nb).with_timeout(std::time::Duration::from_secs(120));
    northbound.nbctl(&["ls-list"]).with_context(|| format!("the northbound database {nb} does not answer"))?;
    let mut timings = Timings::default();
    let mut commands_first_apply = 0;
    for round in 0..repetitions {
        let installation = format!("bench{}r{round}", std::process::id());
        let want =
            |interfaces: &[Interface]| desired(&installation, None, std::slice::from_ref(&view), interfaces, &[]);
        let wanted = want(&interfaces);
        let started = Instant::now();
        commands_first_apply = northbound.reconcile(&wanted)?.commands;
        timings.first_apply_ms.push(ms(started));
        let started = Instant::now();
        let again = northbound.reconcile(&wanted)?;
        timings.in_step_ms.push(ms(started));
        if again.commands != 0 {
            bail!("a second reconciliation of the same network ran {} commands", again.commands);
        }
        let (_, mut more) = network(ports + 1, subnets);
        let started = Instant::now();
        northbound.reconcile(&want(&more))?;
        timings.one_port_added_ms.push(ms(started));
        more[0].address = Ipv4Addr::from(u32::from(view.subnets[0].network) + 250).to_string();
        let started = Instant::now();
        northbound.reconcile(&want(&more))?;
        timings.one_port_changed_ms.push(ms(started));
        // Nothing of the round is left behind.
        northbound.reconcile(&ovn::Desired { installation: installation.clone(), ..Default::default() })?;
        timings.bare_nbctl_create_ms.push(bare_create(
            nb,
            &format!("bare{}r{round}", std::process::id()),
            &view,
            &interfaces,
        )?);
        eprintln!(
            "round {}: first apply {:.0} ms, in step {:.0} ms, bare ovn-nbctl {:.0} ms",
            round + 1,
            timings.first_apply_ms[round],
            timings.in_step_ms[round],
            timings.bare_nbctl_create_ms[round]
        );
    }
    let median_ms = serde_json::json!({
        "first_apply": median(&timings.first_apply_ms),
        "in_step": median(&timings.in_step_ms),
        "one_port_added": median(&timings.one_port_added_ms),
        "one_port_changed": median(&timings.one_port_changed_ms),
        "bare_nbctl_create": median(&timings.bare_nbctl_create_ms),
    });
    println!("{ports} ports over {subnets} subnets, median of {repetitions}: {median_ms}");
    let results = Results {
        machine: crate::machine(),
        northbound: nb.to_owned(),
        ports,
        subnets,
        commands_first_apply,
        timings,
        median_ms,
    };
    std::fs::write(out.join("ovn.json"), serde_json::to_vec_pretty(&results)?)?;
    Ok(())
}
