//! Reconciliation against a real OVN northbound database: what is wanted is built in one go,
//! a second pass changes nothing, drift is repaired, what is no longer wanted goes without a
//! trace, and rows of other installations or of the operator are never touched.

mod common;

use common::*;
use ovn::Northbound;

#[test]
fn reconciliation_builds_repairs_and_removes_only_its_own_rows() {
    if !ovn_present() {
        eprintln!("skipped: OVN is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = Db::start(dir.path(), "nb", NB_SCHEMA, &[]);
    let nb = Northbound::new(db.socket());
    let nbctl = |args: &[&str]| nb.nbctl(args).unwrap();

    // Another installation's VPC with the very same addresses, and an operator's own switch.
    let theirs = vpc("2222222222222222", "vpc-b", "subnet-b", "10.0.1", &[("eni-b", "02:00:00:00:0b:10", "10.0.1.10")]);
    nb.reconcile(&theirs).unwrap();
    nbctl(&["ls-add", "operator-switch"]);

    let ours = vpc(
        "1111111111111111",
        "vpc-a",
        "subnet-a",
        "10.0.1",
        &[("eni-a1", "02:00:00:00:0a:10", "10.0.1.10"), ("eni-a2", "02:00:00:00:0a:11", "10.0.1.11")],
    );
    let first = nb.reconcile(&ours).unwrap();
    assert!(first.commands > 0);
    assert_eq!(nb.reconcile(&ours).unwrap().commands, 0, "a second pass finds everything in step");
    assert_eq!(nbctl(&["lsp-get-addresses", "eni-a1"]).trim(), "02:00:00:00:0a:10 10.0.1.10");
    assert_eq!(nbctl(&["lsp-get-port-security", "eni-a2"]).trim(), "02:00:00:00:0a:11 10.0.1.11");
    let dhcp = nbctl(&["lsp-get-dhcpv4-options", "eni-a1"]);
    assert!(dhcp.contains("10.0.1.0/24"), "{dhcp}");
    assert_eq!(nbctl(&["lsp-get-type", "stratus-subnet-a-router"]).trim(), "router");
    assert!(nbctl(&["show", "stratus-vpc-a"]).contains("10.0.1.1/24"));
    // The router names the installation's data dir (spaces and all), so that another
    // installation can tell whether this one is gone; a router that lost the mark gets it back.
    let dir = || nbctl(&["get", "Logical_Router", "stratus-vpc-a", "external_ids:stratus-data-dir"]);
    assert_eq!(dir().trim(), "\"/srv/1111111111111111 data\"");
    nbctl(&["remove", "Logical_Router", "stratus-vpc-a", "external_ids", "stratus-data-dir"]);
    assert!(nb.reconcile(&ours).unwrap().commands > 0);
    assert_eq!(dir().trim(), "\"/srv/1111111111111111 data\"");

    // Drift: a port deleted and an option changed by hand come back as they were.
    nbctl(&["lsp-del", "eni-a2"]);
    let uuid =
        nbctl(&["--bare", "--columns=_uuid", "find", "DHCP_Options", "external_ids:stratus-owner=stratus-subnet-a"]);
    nbctl(&["set", "DHCP_Options", uuid.trim(), "options:mtu=9000"]);
    assert!(nb.reconcile(&ours).unwrap().commands > 0);
    assert_eq!(nbctl(&["lsp-get-addresses", "eni-a2"]).trim(), "02:00:00:00:0a:11 10.0.1.11");
    assert!(nbctl(&["get", "DHCP_Options", uuid.trim(), "options:mtu"]).contains("1400"));
    assert_eq!(nb.reconcile(&ours).unwrap().commands, 0);

    // A port goes, then the whole VPC: nothing of ours is left, everything else is.
    let mut fewer = ours.clone();
    fewer.switches[0].ports.pop();
    nb.reconcile(&fewer).unwrap();
    assert!(nb.nbctl(&["lsp-get-addresses", "eni-a2"]).is_err(), "the port is gone");
    nb.reconcile(&ovn::Desired { installation: ours.installation.clone(), ..Default::default() }).unwrap();
    assert!(nb.current(&ours.installation).unwrap().is_empty(), "nothing of ours is left");
    let remaining = nb.current("2222222222222222").unwrap();
    assert_eq!((remaining.routers.len(), remaining.switch_ports.len(), remaining.dhcp.len()), (1, 2, 1));
    assert!(nbctl(&["ls-list"]).contains("operator-switch"));
    assert_eq!(nb.reconcile(&theirs).unwrap().commands, 0, "theirs was never touched");
}

#[test]
fn an_absent_database_is_unavailable_not_refused() {
    let nb = Northbound::new("unix:/nonexistent/ovnnb_db.sock").with_timeout(std::time::Duration::from_secs(1));
    if !ovn_present() {
        return;
    }
    let error = nb.current("1111111111111111").unwrap_err();
    assert!(matches!(error, ovn::Error::Unavailable(_)), "{error:?}");
}

#[test]
fn port_groups_and_their_acls_are_reconciled_as_a_whole() {
    if !ovn_present() {
        eprintln!("skipped: OVN is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = Db::start(dir.path(), "nb", NB_SCHEMA, &[]);
    let nb = Northbound::new(db.socket());
    let nbctl = |args: &[&str]| nb.nbctl(args).unwrap();
    let mut ours = vpc(
        "1111111111111111",
        "vpc-a",
        "subnet-a",
        "10.0.1",
        &[("eni-a1", "02:00:00:00:0a:10", "10.0.1.10"), ("eni-a2", "02:00:00:00:0a:11", "10.0.1.11")],
    );
    let acl =
        |direction, matches: &str, action| ovn::Acl { direction, priority: 1002, matches: matches.into(), action };
    ours.port_groups.push(ovn::PortGroup {
        name: "stratus_sg_a".into(),
        owner: "sg-a".into(),
        ports: vec!["eni-a1".into(), "eni-a2".into()],
        acls: vec![
            acl("to-lport", "outport == @stratus_sg_a && ip4 && ip4.src == $stratus_sg_a_ip4", "allow-related"),
            acl("from-lport", "inport == @stratus_sg_a && ip4", "allow-related"),
        ],
    });
    // Made with the ports it holds, in one transaction; a second pass has nothing to do.
    nb.reconcile(&ours).unwrap();
    assert_eq!(nb.reconcile(&ours).unwrap().commands, 0, "a second pass finds everything in step");
    let acls = nbctl(&["acl-list", "stratus_sg_a"]);
    assert!(acls.contains("ip4.src == $stratus_sg_a_ip4") && acls.contains("allow-related"), "{acls}");
    let ports = nbctl(&["--bare", "--columns=ports", "list", "Port_Group", "stratus_sg_a"]);
    assert_eq!(ports.split_whitespace().count(), 2, "{ports}");

    // A rule changed by hand is put back; a member leaves; the group goes with nothing left.
    nbctl(&["--type=port-group", "acl-del", "stratus_sg_a"]);
    assert!(nb.reconcile(&ours).unwrap().commands > 0);
    assert_eq!(nbctl(&["acl-list", "stratus_sg_a"]).lines().count(), 2);
    ours.port_groups[0].ports.pop();
    nb.reconcile(&ours).unwrap();
    let ports = nbctl(&["--bare", "--columns=ports", "list", "Port_Group", "stratus_sg_a"]);
    assert_eq!(ports.split_whitespace().count(), 1, "{ports}");
    ours.port_groups.clear();
    nb.reconcile(&ours).unwrap();
    assert!(nb.nbctl(&["list", "Port_Group", "stratus_sg_a"]).is_err(), "the group is gone");
    assert!(nbctl(&["--bare", "--columns=_uuid", "list", "ACL"]).trim().is_empty(), "and its ACLs with it");
}

#[test]
fn a_public_switch_gateway_ports_nat_routes_and_policies_settle_in_one_pass() {
    if !ovn_present() {
        eprintln!("skipped: OVN is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = Db::start(dir.path(), "nb", NB_SCHEMA, &[]);
    let nb = Northbound::new(db.socket());
    let nbctl = |args: &[&str]| nb.nbctl(args).unwrap();
    let mut ours =
        vpc("1111111111111111", "vpc-a", "subnet-a", "10.0.1", &[("eni-a1", "02:00:00:00:0a:10", "10.0.1.10")]);
    let router = &mut ours.routers[0];
    router.ports.push(ovn::RouterPort {
        name: "stratus-vpc-a-gw".into(),
        mac: "02:00:00:00:0a:fe".into(),
        networks: vec!["203.0.113.5/24".into()],
        gateway_chassis: Some("chassis-1".into()),
    });
    router.static_routes.push(ovn::StaticRoute { prefix: "0.0.0.0/0".into(), nexthop: "203.0.113.1".into() });
    router.nats.push(ovn::Nat {
        kind: "dnat_and_snat",
        external_ip: "203.0.113.9".into(),
        logical_ip: "10.0.1.10".into(),
    });
    router.policies.push(ovn::Policy {
        priority: 100,
        matches: "ip4.src == 10.0.1.0/24".into(),
        action: "allow",
        nexthop: None,
    });
    router.policies.push(ovn::Policy {
        priority: 50,
        matches: "ip4.src == 10.0.1.0/24 && !(ip4.dst == 10.0.0.0/16)".into(),
        action: "drop",
        nexthop: None,
    });
    // A route through a guest (an appliance's interface).
    router.policies.push(ovn::Policy {
        priority: 224,
        matches: "ip4.src == 10.0.1.0/24 && ip4.dst == 192.168.7.0/24".into(),
        action: "reroute",
        nexthop: Some("10.0.1.10".into()),
    });
    ours.switches.push(ovn::Switch {
        name: "stratus-1111111111111111-public".into(),
        owner: "public".into(),
        router_port: None,
        gateway_legs: vec!["stratus-vpc-a-gw".into()],
        localnet: Some("public".into()),
        dhcp: None,
        ports: Vec::new(),
    });
    nb.reconcile(&ours).unwrap();
    assert_eq!(nb.reconcile(&ours).unwrap().commands, 0, "a second pass finds everything in step");
    assert!(nbctl(&["lr-nat-list", "stratus-vpc-a"]).contains("203.0.113.9"));
    assert!(nbctl(&["lr-route-list", "stratus-vpc-a"]).contains("203.0.113.1"));
    let policies = nbctl(&["lr-policy-list", "stratus-vpc-a"]);
    assert_eq!(policies.matches("ip4.src == 10.0.1.0/24").count(), 3, "{policies}");
    assert!(policies.contains("reroute") && policies.contains("10.0.1.10"), "{policies}");
    assert!(nbctl(&["lrp-get-gateway-chassis", "stratus-vpc-a-gw"]).contains("chassis-1"));
    assert_eq!(nbctl(&["lsp-get-type", "stratus-1111111111111111-public-localnet"]).trim(), "localnet");
    assert_eq!(nbctl(&["lsp-get-type", "stratus-vpc-a-gw-leg"]).trim(), "router");

    // The address moves: one NAT row is replaced, nothing else is touched; then all of it goes.
    ours.routers[0].nats[0].logical_ip = "10.0.1.11".into();
    assert!(nb.reconcile(&ours).unwrap().commands > 0);
    assert!(nbctl(&["lr-nat-list", "stratus-vpc-a"]).contains("10.0.1.11"));
    assert_eq!(nb.reconcile(&ours).unwrap().commands, 0);
    nb.reconcile(&ovn::Desired { installation: ours.installation.clone(), ..Default::default() }).unwrap();
    assert!(nb.current(&ours.installation).unwrap().is_empty(), "nothing of ours is left");
}

#[test]
fn an_address_moves_to_another_port_in_one_pass() {
    if !ovn_present() {
        eprintln!("skipped: OVN is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = Db::start(dir.path(), "nb", NB_SCHEMA, &[]);
    let nb = Northbound::new(db.socket());
    let installation = "3333333333333333";
    let with = |ports: &[(&str, &str, &str)]| vpc(installation, "vpc-c", "subnet-c", "10.0.1", ports);
    let (c1, c2, c3) = ("02:00:00:00:0c:10", "02:00:00:00:0c:11", "02:00:00:00:0c:12");
    nb.reconcile(&with(&[("eni-c1", c1, "10.0.1.4"), ("eni-c2", c2, "10.0.1.5")])).unwrap();
    // A terminated instance's address goes to the next one launched, and two ports trade
    // addresses (a secondary address reassigned): both in the same reconciliation, which
    // ovn-nbctl would refuse if a port took an address another still held in its batch.
    nb.reconcile(&with(&[("eni-c2", c2, "10.0.1.6"), ("eni-c3", c3, "10.0.1.4")])).unwrap();
    let swapped = with(&[("eni-c2", c2, "10.0.1.4"), ("eni-c3", c3, "10.0.1.6")]);
    nb.reconcile(&swapped).unwrap();
    assert_eq!(nb.reconcile(&swapped).unwrap().commands, 0, "in step after the swap");
    let addresses = |port: &str| nb.nbctl(&["lsp-get-addresses", port]).unwrap().trim().to_owned();
    assert_eq!(addresses("eni-c2"), "02:00:00:00:0c:11 10.0.1.4");
    assert_eq!(addresses("eni-c3"), "02:00:00:00:0c:12 10.0.1.6");
    nb.reconcile(&ovn::Desired { installation: installation.into(), ..Default::default() }).unwrap();
    assert!(nb.current(installation).unwrap().is_empty());
}
