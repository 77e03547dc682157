//! The accounts' networks as OVN should hold them.
//!
//! Every VPC ([`crate::vpcs`]), each account's default one included, becomes a logical router,
//! each of its subnets a logical switch on that router with OVN's DHCP, and every instance that
//! is not terminated a switch port (named by a UUID derived from its network interface id,
//! [`port_name`]), with its MAC and addresses and port security. VPCs of different accounts are
//! different routers, so the same address in two accounts never meets. Security groups are port
//! groups with ACLs.
//!
//! [`desired`] is a pure function of the store's records. When a northbound database is
//! configured ([`Backend::with_ovn`]), each sweep reconciles OVN with it ([`Backend::sync_ovn`]):
//! at once when the wanted network changed, and every [`FULL_RECONCILE`] anyway, which repairs
//! drift and finishes whatever a crash interrupted. Without one (libvirt's test driver, the
//! fake) the network is records only, and launches onto hosts that run real guests are refused
//! ([`Backend::ensure_vpc_networking`]).
//!
//! Guests are plugged into OVN: their NIC goes into the host's integration bridge as their
//! logical port ([`Backend::ovn_port`]), and OVN's DHCP, router, ACLs and port security serve
//! them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ovn::{Acl, Desired, Dhcp, PortGroup, Router, RouterPort, Switch, SwitchPort};
use sha2::{Digest, Sha256};
use storage::tables::{ADDRESSES, INSTANCES, INTERNET_GATEWAYS, NAT_GATEWAYS, ROUTE_TABLES, SECURITY_GROUPS, VPCS};
use storage::{InstanceRecord, InstanceState, Reads, RulePeer, SecurityGroupRecord};

use crate::network::Subnet;
use crate::{Backend, Error, Result};

/// How often OVN is reconciled even when nothing changed here.
pub const FULL_RECONCILE: Duration = Duration::from_secs(30);

/// The MTU guests are told: what fits in a Geneve-encapsulated 1500-byte underlay packet.
pub const OVERLAY_MTU: u32 = 1400;

/// An instance as its switch port needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub id: String,
    pub subnet_id: String,
    pub mac: String,
    pub address: String,
    /// Its security groups, which OVN enforces.
    pub groups: Vec<String>,
    /// The public address it was given at launch, if any.
    pub public_ip: Option<String>,
    /// Its secondary private addresses.
    pub secondary: Vec<String>,
    /// EC2's `SourceDestCheck`: OVN's port security holds it to its MAC and addresses.
    pub source_dest_check: bool,
    /// The chassis its port is bound to: its guest's host's, and while the guest migrates the
    /// target's too ([`ovn::SwitchPort::requested_chassis`]); empty where a host's is unknown.
    pub chassis: Vec<String>,
}

impl Interface {
    /// An instance's primary interface, while the instance is not terminated.
    pub fn of(record: &InstanceRecord) -> Option<Self> {
        (record.state != InstanceState::Terminated).then(|| Self {
            id: record.network_interface_id.clone(),
            subnet_id: record.subnet_id.clone(),
            mac: record.mac.clone(),
            address: record.private_ip.clone(),
            groups: record.security_group_ids.clone(),
            public_ip: record.public_ip.clone(),
            secondary: record.secondary_ips.clone(),
            source_dest_check: record.source_dest_check,
            chassis: Vec::new(),
        })
    }

    pub fn with_chassis(self, chassis: Vec<String>) -> Self {
        Self { chassis, ..self }
    }

    /// An interface of its own, attached or not (its port waits unbound until a guest plugs it).
    pub fn of_own(record: &storage::NetworkInterfaceRecord) -> Self {
        Self {
            id: record.id.clone(),
            subnet_id: record.subnet_id.clone(),
            mac: record.mac.clone(),
            address: record.private_ip.clone(),
            groups: record.security_group_ids.clone(),
            public_ip: None,
            secondary: record.secondary_ips.clone(),
            source_dest_check: record.source_dest_check,
            chassis: Vec::new(),
        }
    }
}

/// The ports of interfaces of their own, each bound where the instance it is attached to runs
/// (`chassis_of` answers by the instance's `{account}/{id}` key).
pub(crate) fn own_interfaces<'a>(
    own: &'a [(String, storage::NetworkInterfaceRecord)],
    chassis_of: impl Fn(&str) -> Option<Vec<String>> + 'a,
) -> impl Iterator<Item = Interface> + 'a {
    own.iter().map(move |(_, i)| {
        let instance = i.attachment.as_ref().map(|a| format!("{}/{}", i.account, a.instance_id));
        Interface::of_own(i).with_chassis(instance.and_then(|k| chassis_of(&k)).unwrap_or_default())
    })
}

/// The physical network name of the public network in each chassis's bridge mappings
/// (`ovn-bridge-mappings=public:br-ex`, which `scripts/setup-host` sets).
pub const PUBLIC_NETWORK_NAME: &str = "public";

/// The public network as the routers' gateway ports need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Public {
    pub network: crate::addresses::PublicNetwork,
    /// The chassis that carries gateway traffic (NAT happens there).
    pub chassis: String,
}

/// A VPC as OVN needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VpcView {
    pub id: String,
    pub cidr: String,
    pub subnets: Vec<Subnet>,
    /// Its router's address on the public network while an internet gateway is attached (VPCs
    /// of their own).
    pub public_ip: Option<String>,
    /// Elastic IPs mapped into it: (public, private).
    pub elastic_ips: Vec<(String, String)>,
    /// For each subnet id, the destinations its route table sends to the internet gateway.
    pub internet_routes: BTreeMap<String, Vec<String>>,
    /// For each subnet id, the destinations its route table sends to a working NAT gateway, with
    /// that gateway's public address.
    pub nat_routes: BTreeMap<String, Vec<(String, String)>>,
    /// For each subnet id, the destinations its route table sends through a guest (an instance
    /// or a network interface), with the address they go to.
    pub guest_routes: BTreeMap<String, Vec<(String, String)>>,
}

/// Where guests reach the instance metadata service.
pub const METADATA_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// A VPC's way to the metadata service: a port on its first subnet, at that subnet's fourth
/// address (the one AWS keeps for future use), behind which the machine Stratus runs on answers
/// in a namespace of its own; the VPC's router sends `169.254.169.254` there. Guests on other
/// hosts reach it across the overlay (see [`crate::vpc_network`]'s module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataPort {
    pub vpc_id: String,
    /// The logical switch port (and the OVS interface's `iface-id`).
    pub name: String,
    pub switch: String,
    pub mac: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// The subnet's router, the way back to the VPC's other subnets.
    pub router: Ipv4Addr,
}

/// The metadata port of a VPC with at least one subnet; `None` for one without.
pub fn metadata_port(vpc_id: &str, subnets: &[Subnet]) -> Option<MetadataPort> {
    let subnet = subnets.iter().min_by_key(|s| (s.zone_index, s.network))?;
    Some(MetadataPort {
        vpc_id: vpc_id.to_owned(),
        name: format!("stratus-{vpc_id}-meta"),
        switch: format!("stratus-{}", subnet.id),
        mac: router_mac(&format!("{vpc_id}/metadata")),
        address: Ipv4Addr::from(u32::from(subnet.network) + 3),
        prefix: subnet.prefix,
        router: subnet.router(),
    })
}

/// Policy priorities: a subnet's route becomes a policy at this base plus its destination's
/// prefix length, so that the most specific route wins, as in an EC2 route table. A route to
/// the gateway lets the subnet's traffic out, one through a guest reroutes it to that guest's
/// address; with a gateway, anything else that leaves the VPC is dropped (no route, no
/// internet, even with an Elastic IP, as on EC2).
const ROUTE_PRIORITY: u16 = 200;
/// The metadata service is reached whatever the route tables say.
const METADATA_PRIORITY: u16 = 300;
/// Above every route: nothing leaves the VPC with a source that is not the VPC's.
const SPOOF_DROP_PRIORITY: u16 = 299;
const ROUTE_DROP_PRIORITY: u16 = 50;

/// The policy priority of a route to `destination` (a CIDR).
fn route_priority(destination: &str) -> u16 {
    ROUTE_PRIORITY + destination.rsplit_once('/').and_then(|(_, p)| p.parse::<u16>().ok()).unwrap_or(0)
}

/// What a subnet's route to `destination` lets through the router.
fn route_match(cidr: &str, destination: &str) -> String {
    if destination == "0.0.0.0/0" {
        format!("ip4.src == {cidr}")
    } else {
        format!("ip4.src == {cidr} && ip4.dst == {destination}")
    }
}

/// The router's way out: its gateway port on the public network (bound to the gateway
/// chassis), the default route to the public network's router, 1:1 NAT for each Elastic IP,
/// and the route tables as policies.
fn plan_internet(router: &mut Router, public: &Public, vpc: &VpcView, address: &str) {
    router.ports.push(RouterPort {
        name: format!("stratus-{}-gw", vpc.id),
        mac: router_mac(&format!("{}/gateway", vpc.id)),
        networks: vec![format!("{address}/{}", public.network.cidr.prefix)],
        gateway_chassis: Some(public.chassis.clone()),
    });
    router
        .static_routes
        .push(ovn::StaticRoute { prefix: "0.0.0.0/0".into(), nexthop: public.network.gateway.to_string() });
    for (external, logical) in &vpc.elastic_ips {
        router.nats.push(ovn::Nat {
            kind: "dnat_and_snat",
            external_ip: external.clone(),
            logical_ip: logical.clone(),
        });
    }
    for subnet in &vpc.subnets {
        let cidr = subnet.cidr();
        for destination in vpc.internet_routes.get(&subnet.id).into_iter().flatten() {
            let matches = route_match(&cidr, destination);
            let priority = route_priority(destination);
            router.policies.push(ovn::Policy { priority, matches, action: "allow", nexthop: None });
        }
        for (destination, external) in vpc.nat_routes.get(&subnet.id).into_iter().flatten() {
            let matches = route_match(&cidr, destination);
            let priority = route_priority(destination);
            router.policies.push(ovn::Policy { priority, matches, action: "allow", nexthop: None });
            let snat = ovn::Nat { kind: "snat", external_ip: external.clone(), logical_ip: cidr.clone() };
            if !router.nats.contains(&snat) {
                router.nats.push(snat);
            }
        }
    }
    router.nats.sort();
}

/// Routes through guests: what a subnet sends to a destination outside the VPC (its own
/// addresses stay local, as the local route is the most specific there) goes to the guest's
/// address instead, whose port lets it in only with `SourceDestCheck` off, as on EC2. OVN
/// applies policies after routing, which drops what no route covers: without a default route
/// (no gateway) each destination also gets a static route (to the first guest named for it),
/// and subnets whose tables do not route there are held back by the drop below. With the
/// gateway's default route no static route is added: one would lead every subnet's traffic
/// there, whatever its table says (policies that allow keep the routing's choice).
fn plan_guest_routes(router: &mut Router, vpc: &VpcView) {
    let default_route = router.static_routes.iter().any(|r| r.prefix == "0.0.0.0/0");
    for subnet in &vpc.subnets {
        let cidr = subnet.cidr();
        for (destination, nexthop) in vpc.guest_routes.get(&subnet.id).into_iter().flatten() {
            router.policies.push(ovn::Policy {
                priority: route_priority(destination),
                matches: format!("{} && !(ip4.dst == {})", route_match(&cidr, destination), vpc.cidr),
                action: "reroute",
                nexthop: Some(nexthop.clone()),
            });
            if !default_route && !router.static_routes.iter().any(|r| r.prefix == *destination) {
                router.static_routes.push(ovn::StaticRoute { prefix: destination.clone(), nexthop: nexthop.clone() });
            }
        }
    }
}

/// With a way out of the VPC (a gateway, or a route through a guest), whatever a subnet sends
/// out of it that its table does not route is dropped: no route, no way, as on EC2. So is
/// whatever leaves with a source outside the VPC (a guest without its source/destination
/// check may send any): the gateway translates only the VPC's own addresses, as AWS's does.
fn plan_route_drops(router: &mut Router, vpc: &VpcView) {
    router.policies.push(ovn::Policy {
        priority: SPOOF_DROP_PRIORITY,
        matches: format!("!(ip4.src == {cidr}) && !(ip4.dst == {cidr})", cidr = vpc.cidr),
        action: "drop",
        nexthop: None,
    });
    for subnet in &vpc.subnets {
        router.policies.push(ovn::Policy {
            priority: ROUTE_DROP_PRIORITY,
            matches: format!("ip4.src == {} && !(ip4.dst == {})", subnet.cidr(), vpc.cidr),
            action: "drop",
            nexthop: None,
        });
    }
}

/// ACL priorities, as Neutron's OVN driver sets them: what a group allows above the drop.
const DROP_PRIORITY: u16 = 1001;
const ALLOW_PRIORITY: u16 = 1002;

/// A security group's port group: an identifier, as ACL matches refer to it.
pub fn group_port_group(group_id: &str) -> String {
    format!("stratus_{}", group_id.replace('-', "_"))
}

/// The port group of every guarded port of an installation: what no group allows is dropped.
fn guarded_port_group(installation: &str) -> String {
    format!("stratus_{installation}_guarded")
}

/// Drop IP both ways unless a group allows it; a guest's DHCP requests always pass (OVN answers
/// them after the ACL stage).
fn guard_acls(group: &str) -> Vec<Acl> {
    vec![
        Acl {
            direction: "from-lport",
            priority: DROP_PRIORITY,
            matches: format!("inport == @{group} && ip"),
            action: "drop",
        },
        Acl {
            direction: "to-lport",
            priority: DROP_PRIORITY,
            matches: format!("outport == @{group} && ip"),
            action: "drop",
        },
        Acl {
            direction: "from-lport",
            priority: ALLOW_PRIORITY,
            matches: format!("inport == @{group} && udp && udp.src == 68 && udp.dst == 67"),
            action: "allow",
        },
        // The metadata service, whatever the groups say, as on AWS.
        Acl {
            direction: "from-lport",
            priority: ALLOW_PRIORITY,
            matches: format!("inport == @{group} && ip4.dst == {METADATA_ADDRESS} && tcp && tcp.dst == 80"),
            action: "allow-related",
        },
    ]
}

/// Lets ICMP echo requests from the VPC's metadata port (`address`, its first subnet's fourth,
/// reserved address, which no guest holds) in to the group's ports, whatever the rules say: a
/// live migration's ping trace ([`crate::ping_trace`]) comes from there. Nothing else of the
/// VPC uses that address, and other VPCs' traffic reaches these ports only through their
/// router's NAT, with another source.
fn probe_acl(group: &str, address: Ipv4Addr) -> Acl {
    Acl {
        direction: "to-lport",
        priority: ALLOW_PRIORITY,
        matches: format!("outport == @{group} && ip4.src == {address} && icmp4 && icmp4.type == 8"),
        action: "allow-related",
    }
}

/// One security group rule as the ACL that allows it on its group's port group (`group`), or
/// `None` for what has no meaning on an IPv4 overlay (IPv6 ranges, prefix lists, ICMPv6) or a
/// peer group that OVN does not hold. Stateful: replies to what it allows pass too.
pub fn rule_acl(
    group: &str,
    rule: &storage::SecurityGroupRuleRecord,
    peer_group: impl Fn(&str) -> Option<String>,
) -> Option<Acl> {
    let (direction, port, peer_field) =
        if rule.egress { ("from-lport", "inport", "ip4.dst") } else { ("to-lport", "outport", "ip4.src") };
    let mut parts = vec![format!("{port} == @{group}"), "ip4".to_owned()];
    match &rule.peer {
        RulePeer::Ipv4 { cidr } if cidr == "0.0.0.0/0" => {}
        RulePeer::Ipv4 { cidr } => parts.push(format!("{peer_field} == {cidr}")),
        RulePeer::Group { group_id, .. } => parts.push(format!("{peer_field} == ${}_ip4", peer_group(group_id)?)),
        RulePeer::Ipv6 { .. } | RulePeer::PrefixList { .. } => return None,
    }
    match (rule.protocol.as_str(), rule.from_port, rule.to_port) {
        ("-1", _, _) => {}
        (protocol @ ("tcp" | "udp"), Some(from), Some(to)) => {
            parts.push(protocol.to_owned());
            if (from, to) != (0, 65535) {
                parts.push(if from == to {
                    format!("{protocol}.dst == {from}")
                } else {
                    format!("{protocol}.dst >= {from} && {protocol}.dst <= {to}")
                });
            }
        }
        ("icmp", kind, code) => {
            parts.push("icmp4".to_owned());
            if let Some(kind) = kind.filter(|k| *k >= 0) {
                parts.push(format!("icmp4.type == {kind}"));
                if let Some(code) = code.filter(|c| *c >= 0) {
                    parts.push(format!("icmp4.code == {code}"));
                }
            }
        }
        ("icmpv6", _, _) => return None,
        (number, _, _) => parts.push(format!("ip.proto == {}", number.parse::<u8>().ok()?)),
    }
    Some(Acl { direction, priority: ALLOW_PRIORITY, matches: parts.join(" && "), action: "allow-related" })
}

/// Open vSwitch's integration bridge on every host, which `ovn-controller` programs.
pub const INTEGRATION_BRIDGE: &str = "br-int";

/// The network namespace of this machine that is a VPC's metadata port (made and served by the
/// gateway's metadata plane).
pub fn metadata_namespace(vpc_id: &str) -> String {
    format!("stratus-meta-{vpc_id}")
}

/// The host end of the veth into [`metadata_namespace`], the port plugged into
/// [`INTEGRATION_BRIDGE`] (interface names are at most 15 bytes). Its Open vSwitch interface
/// carries `external_ids:stratus-installation` and `stratus-vpc`, so that what an installation
/// left here is found without its data dir.
pub fn metadata_link(vpc_id: &str) -> String {
    let digest = Sha256::digest(vpc_id.as_bytes());
    let hex: String = digest.iter().take(7).map(|b| format!("{b:02x}")).collect();
    format!("sm{}", &hex[..13])
}

/// The VPCs whose metadata ends on this machine carry `installation`'s mark. Blocks.
pub fn marked_metadata_ends(installation: &str) -> std::result::Result<Vec<String>, String> {
    let output = std::process::Command::new("ovs-vsctl")
        .args(["--timeout=10", "--bare", "--columns=external_ids", "find", "Interface"])
        .arg(format!("external_ids:stratus-installation={installation}"))
        .output()
        .map_err(|e| format!("ovs-vsctl: {e}"))?;
    if !output.status.success() {
        return Err(format!("ovs-vsctl find: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    // `--bare` prints a map as `key=value key=value`, one row per line.
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|pair| pair.strip_prefix("stratus-vpc="))
        .map(|vpc| vpc.trim_matches('"').to_owned())
        .collect())
}

/// Removes a VPC's metadata end from this machine: its plug and its namespace. Blocks.
pub fn remove_metadata_end(vpc_id: &str) -> std::result::Result<(), String> {
    let run = |program: &str, args: &[&str]| {
        let output = std::process::Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
        }
    };
    let link = metadata_link(vpc_id);
    let plug = run("ovs-vsctl", &["--timeout=10", "--if-exists", "del-port", INTEGRATION_BRIDGE, &link]);
    let namespace = metadata_namespace(vpc_id);
    let gone = if std::path::Path::new("/run/netns").join(&namespace).exists() {
        run("ip", &["netns", "del", &namespace])
    } else {
        Ok(())
    };
    plug.and(gone)
}

/// The logical switch port of an interface: a UUID, since libvirt's `<virtualport>` names the
/// port it plugs by UUID (`interfaceid`); the interface's id is the row's owner mark.
pub fn port_name(installation: &str, interface_id: &str) -> String {
    let d = Sha256::digest(format!("{installation}/{interface_id}").as_bytes());
    let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// A stable locally administered MAC for a router port, from what it serves.
fn router_mac(subnet_id: &str) -> String {
    let digest = Sha256::digest(subnet_id.as_bytes());
    format!("02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", digest[0], digest[1], digest[2], digest[3], digest[4])
}

/// The VPC's DNS server, as AWS places it: its base address plus two.
fn dns_server(vpc_cidr: &str) -> String {
    let base: Ipv4Addr = vpc_cidr.split('/').next().and_then(|a| a.parse().ok()).unwrap_or(Ipv4Addr::UNSPECIFIED);
    Ipv4Addr::from(u32::from(base) + 2).to_string()
}

/// What OVN should hold for `installation`: each VPC (its id and CIDR) with its subnets, and
/// the interfaces in them. Interfaces of subnets not listed are left out.
///
/// Every interface is guarded: every one is in the installation's drop
/// group, and in the port group of each of its security groups (`groups`: those of VPCs of
/// their own), whose rules become the ACLs that let traffic through ([`rule_acl`]).
pub fn desired(
    installation: &str,
    public: Option<&Public>,
    vpcs: &[VpcView],
    interfaces: &[Interface],
    groups: &[SecurityGroupRecord],
) -> Desired {
    let mut by_subnet: BTreeMap<&str, Vec<&Interface>> = BTreeMap::new();
    for interface in interfaces {
        by_subnet.entry(interface.subnet_id.as_str()).or_default().push(interface);
    }
    let mut out = Desired { installation: installation.to_owned(), ..Default::default() };
    let mut gateway_legs = Vec::new();
    for vpc in vpcs {
        let (vpc_id, vpc_cidr) = (&vpc.id, &vpc.cidr);
        let mut router = Router {
            name: format!("stratus-{vpc_id}"),
            owner: vpc_id.clone(),
            ports: Vec::new(),
            static_routes: Vec::new(),
            nats: Vec::new(),
            policies: Vec::new(),
        };
        if let (Some(public), Some(address)) = (public, &vpc.public_ip) {
            plan_internet(&mut router, public, vpc, address);
            gateway_legs.push(format!("stratus-{vpc_id}-gw"));
        }
        plan_guest_routes(&mut router, vpc);
        if vpc.public_ip.is_some() && public.is_some() || !router.policies.is_empty() {
            plan_route_drops(&mut router, vpc);
        }
        router.policies.sort();
        router.policies.dedup();
        let metadata = metadata_port(vpc_id, &vpc.subnets);
        if let Some(port) = &metadata {
            router
                .static_routes
                .push(ovn::StaticRoute { prefix: format!("{METADATA_ADDRESS}/32"), nexthop: port.address.to_string() });
            router.static_routes.sort();
            if !router.policies.is_empty() {
                router.policies.push(ovn::Policy {
                    priority: METADATA_PRIORITY,
                    matches: format!("ip4.dst == {METADATA_ADDRESS}"),
                    action: "allow",
                    nexthop: None,
                });
                router.policies.sort();
            }
        }
        for subnet in &vpc.subnets {
            let router_port = format!("stratus-{}-rtr", subnet.id);
            let mac = router_mac(&subnet.id);
            router.ports.push(RouterPort {
                name: router_port.clone(),
                mac: mac.clone(),
                networks: vec![format!("{}/{}", subnet.router(), subnet.prefix)],
                gateway_chassis: None,
            });
            let mut ports: Vec<SwitchPort> = by_subnet
                .get(subnet.id.as_str())
                .into_iter()
                .flatten()
                .map(|i| SwitchPort {
                    name: port_name(installation, &i.id),
                    owner: i.id.clone(),
                    mac: i.mac.clone(),
                    addresses: std::iter::once(&i.address).chain(&i.secondary).cloned().collect(),
                    port_security: i.source_dest_check,
                    service: false,
                    requested_chassis: i.chassis.clone(),
                })
                .collect();
            if let Some(port) = metadata.as_ref().filter(|p| p.switch == format!("stratus-{}", subnet.id)) {
                ports.push(SwitchPort {
                    name: port.name.clone(),
                    owner: vpc_id.clone(),
                    mac: port.mac.clone(),
                    addresses: vec![port.address.to_string()],
                    port_security: false,
                    service: true,
                    requested_chassis: Vec::new(),
                });
            }
            ports.sort_by(|a, b| a.name.cmp(&b.name));
            out.switches.push(Switch {
                name: format!("stratus-{}", subnet.id),
                owner: subnet.id.clone(),
                router_port: Some(router_port),
                gateway_legs: Vec::new(),
                localnet: None,
                dhcp: Some(Dhcp {
                    cidr: subnet.cidr(),
                    router: subnet.router().to_string(),
                    server_mac: mac,
                    mtu: OVERLAY_MTU,
                    dns_server: dns_server(vpc_cidr),
                    lease_secs: 3600,
                }),
                ports,
            });
        }
        out.routers.push(router);
    }
    // The public network reaches a VPC only through its Elastic IPs: whatever comes to the
    // router's gateway addressed to the VPC's private addresses is dropped on the public
    // switch, before the router (NAT-ed traffic still carries its public address there).
    for vpc in vpcs.iter().filter(|v| public.is_some() && v.public_ip.is_some()) {
        let name = format!("stratus_{}_gw", vpc.id.replace('-', "_"));
        out.port_groups.push(PortGroup {
            acls: vec![
                // In: nothing addressed to a private address or the metadata service.
                Acl {
                    direction: "to-lport",
                    priority: DROP_PRIORITY,
                    matches: format!("outport == @{name} && ip4.dst == {{{}, {METADATA_ADDRESS}}}", vpc.cidr),
                    action: "drop",
                },
                // Out: nothing the router did not translate (a guest without a public address
                // whose subnet is routed to the gateway must not speak with its private one).
                Acl {
                    direction: "from-lport",
                    priority: DROP_PRIORITY,
                    matches: format!("inport == @{name} && ip4.src == {}", vpc.cidr),
                    action: "drop",
                },
            ],
            name,
            owner: vpc.id.clone(),
            ports: vec![format!("stratus-{}-gw-leg", vpc.id)],
        });
    }
    if !gateway_legs.is_empty() {
        out.switches.push(Switch {
            name: format!("stratus-{installation}-public"),
            owner: "public".into(),
            router_port: None,
            gateway_legs,
            localnet: Some(PUBLIC_NETWORK_NAME.into()),
            dhcp: None,
            ports: Vec::new(),
        });
    }
    let own_subnets: std::collections::BTreeSet<&str> =
        vpcs.iter().flat_map(|v| v.subnets.iter().map(|s| s.id.as_str())).collect();
    let guarded: Vec<&Interface> = interfaces.iter().filter(|i| own_subnets.contains(i.subnet_id.as_str())).collect();
    if guarded.is_empty() && groups.is_empty() {
        return out;
    }
    let port_of = |i: &&Interface| port_name(installation, &i.id);
    let known: std::collections::BTreeSet<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    let guard = guarded_port_group(installation);
    let mut all_ports: Vec<String> = guarded.iter().map(port_of).collect();
    all_ports.sort();
    out.port_groups.push(PortGroup {
        name: guard.clone(),
        owner: guard.clone(),
        ports: all_ports,
        acls: guard_acls(&guard),
    });
    // Each VPC's end on this machine may ping its guests (the migrations' ping traces).
    let probes: BTreeMap<&str, Ipv4Addr> = vpcs
        .iter()
        .filter_map(|v| metadata_port(&v.id, &v.subnets).map(|port| (v.id.as_str(), port.address)))
        .collect();
    for group in groups {
        let name = group_port_group(&group.id);
        let mut ports: Vec<String> = guarded.iter().filter(|i| i.groups.contains(&group.id)).map(port_of).collect();
        ports.sort();
        let peer = |id: &str| known.contains(id).then(|| group_port_group(id));
        let mut acls: Vec<Acl> = group.rules.iter().filter_map(|rule| rule_acl(&name, rule, peer)).collect();
        if let Some(address) = probes.get(group.vpc_id.as_str()) {
            acls.push(probe_acl(&name, *address));
        }
        acls.sort();
        acls.dedup();
        out.port_groups.push(PortGroup { name, owner: group.id.clone(), ports, acls });
    }
    out
}

/// The OVN a backend writes to, and what it last wrote.
pub(crate) struct OvnSync {
    pub northbound: ovn::Northbound,
    /// What the last successful reconciliation made OVN hold, and when.
    pub last: std::sync::Mutex<Option<(Desired, Instant)>>,
    /// The gateway chassis.
    pub chassis: String,
    /// Held while a reconciliation reads and writes: the sweep's and an immediate one
    /// ([`Backend::sync_ovn_now`]) would otherwise plan from the same state and collide.
    pub reconciling: std::sync::Mutex<()>,
    /// Set once this installation's rows were removed ([`Backend::withdraw_network`]): no
    /// reconciliation puts them back.
    pub withdrawn: std::sync::atomic::AtomicBool,
}

/// This machine's hostname: the chassis name `scripts/setup-host` gives it.
/// Binds the installation's service ports (the VPCs' metadata ports) to `chassis` alone: that
/// of the replica serving them. With replicas on several machines each machine that once led
/// keeps a plug with the port's name; only the leader's may claim the port, or OVN would bind it
/// back and forth between machines.
fn bind_services_to(wanted: &mut Desired, chassis: &str) {
    for port in wanted.switches.iter_mut().flat_map(|s| s.ports.iter_mut()).filter(|p| p.service) {
        port.requested_chassis = vec![chassis.to_owned()];
    }
}

fn default_chassis() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

impl Backend {
    /// Keeps OVN's northbound database at `db` (`unix:/…/ovnnb_db.sock`) in step with the store.
    pub fn with_ovn(mut self, db: &str) -> Self {
        self.ovn = Some(OvnSync {
            northbound: ovn::Northbound::new(db),
            last: Default::default(),
            chassis: default_chassis(),
            reconciling: Default::default(),
            withdrawn: Default::default(),
        });
        self
    }

    /// The chassis whose gateway ports carry the VPCs' public traffic (default: this
    /// machine, whose `system-id` `scripts/setup-host` sets to its hostname).
    pub fn with_gateway_chassis(mut self, chassis: &str) -> Self {
        if let Some(sync) = &mut self.ovn {
            sync.chassis = chassis.to_owned();
        }
        self
    }

    fn gateway_chassis(&self) -> String {
        self.ovn.as_ref().map_or_else(default_chassis, |s| s.chassis.clone())
    }

    /// The chassis a host's guests' ports are bound to: the configured one, or this machine's
    /// for a local libvirt.
    fn chassis_of_host(&self, host_id: &str) -> Option<String> {
        let host = self.hosts().get(host_id)?;
        host.config.chassis.clone().or_else(|| host.config.uri.starts_with("qemu:///").then(default_chassis))
    }

    /// Where an instance's ports are bound: its host's chassis, and while it migrates the
    /// target's after it; nothing when a host's chassis is unknown.
    pub(crate) fn requested_chassis(&self, record: &InstanceRecord) -> Vec<String> {
        let hosts = std::iter::once(&record.host_id).chain(&record.migration_target);
        hosts.map(|h| self.chassis_of_host(h)).collect::<Option<Vec<_>>>().unwrap_or_default()
    }

    /// Every interface OVN should hold ports for now, read from the store: instances that are
    /// not terminated, and the interfaces of their own (attached ones bound where their
    /// instance runs).
    pub fn interfaces_now(&self) -> Result<Vec<Interface>> {
        let (instances, own) = self.store().read(|tx| {
            let mut instances = Vec::new();
            tx.for_each_live_instance(|key, r| instances.push((key.to_owned(), r)))?;
            Ok::<_, Error>((instances, tx.scan(&storage::tables::NETWORK_INTERFACES, "")?))
        })?;
        let mut chassis = std::collections::HashMap::new();
        let mut interfaces = Vec::new();
        for (key, record) in &instances {
            let Some(interface) = Interface::of(record) else { continue };
            let bound = self.requested_chassis(record);
            chassis.insert(key.as_str(), bound.clone());
            interfaces.push(interface.with_chassis(bound));
        }
        interfaces.extend(own_interfaces(&own, |key| chassis.get(key).cloned()));
        Ok(interfaces)
    }

    /// Reconciles OVN with the store at once (when a port's binding must change now: a
    /// migration starts or ends). A no-op without OVN; failures are logged, the sweep retries.
    pub(crate) fn sync_ovn_now(&self) {
        if self.ovn.is_none() {
            return;
        }
        let read_at = Instant::now();
        if let Err(error) = self.interfaces_now().and_then(|interfaces| self.sync_ovn(&interfaces, read_at)) {
            tracing::warn!(%error, "reconciling OVN failed; the next sweep tries again");
        }
    }

    /// The OVN logical port an instance's primary NIC is plugged in as.
    pub fn ovn_port(&self, record: &InstanceRecord) -> Result<String> {
        Ok(port_name(self.installation()?, &record.network_interface_id))
    }

    /// Whether guests can be given a network here (`what` needs one: a launch, a start, a
    /// hot-plug): OVN is configured, or no host runs guests that could use a network (libvirt's
    /// test driver, the fake: records only).
    pub(crate) fn ensure_vpc_networking(&self, what: &str) -> Result<()> {
        let runs_guests = self.hosts().iter().any(|h| h.accelerator != crate::hypervisor::Accelerator::Test);
        if self.ovn.is_some() || !runs_guests {
            return Ok(());
        }
        Err(Error::UnsupportedOperation(format!(
            "{what} need OVN, which this Stratus runs without: run scripts/setup-host (it starts OVN) and \
             restart Stratus, or name your OVN in [network] ovn_northbound (see the README's VPC networking \
             section)."
        )))
    }

    /// The metadata ports of every VPC (what the hosts' metadata namespaces serve).
    pub fn metadata_ports(&self) -> Result<Vec<MetadataPort>> {
        let vpcs = self.store().read(|tx| tx.scan(&VPCS, ""))?;
        let mut ports = Vec::new();
        for (_, vpc) in vpcs {
            ports.extend(metadata_port(&vpc.id, &self.subnets(&vpc.account, &vpc.id)?));
        }
        Ok(ports)
    }

    /// The configured OVN northbound database and, when it does not answer, why. `None`
    /// without OVN. Blocks.
    pub fn ovn_check(&self) -> Option<(String, Option<String>)> {
        let sync = self.ovn.as_ref()?;
        let answer = sync.northbound.nbctl(&["ls-list"]);
        Some((sync.northbound.db().to_owned(), answer.err().map(|e| e.to_string())))
    }

    /// What OVN should hold for this installation now: every VPC of every account.
    pub fn desired_network(&self, interfaces: &[Interface]) -> Result<Desired> {
        let (vpcs, groups, gateways, tables, addresses, nats) = self.store().read(|tx| {
            Ok::<_, Error>((
                tx.scan(&VPCS, "")?,
                tx.scan(&SECURITY_GROUPS, "")?,
                tx.scan(&INTERNET_GATEWAYS, "")?,
                tx.scan(&ROUTE_TABLES, "")?,
                tx.scan(&ADDRESSES, "")?,
                tx.scan(&NAT_GATEWAYS, "")?,
            ))
        })?;
        // A NAT gateway's Elastic IP translates its subnets' traffic (SNAT), never the way in.
        let nat_interfaces: std::collections::BTreeSet<&str> =
            nats.iter().map(|(_, n)| n.network_interface_id.as_str()).collect();
        // Instances' own public addresses, where no Elastic IP stands in front of them (from the
        // sweep's interfaces: no second read of every instance).
        let elastic: std::collections::BTreeSet<&str> = addresses
            .iter()
            .filter_map(|(_, a)| a.association.as_ref().map(|x| x.network_interface_id.as_str()))
            .collect();
        let groups: Vec<SecurityGroupRecord> = groups.into_iter().map(|(_, g)| g).collect();
        let mut views = Vec::new();
        for (_, vpc) in vpcs {
            let subnets = self.subnets(&vpc.account, &vpc.id)?;
            let mine =
                |account: &str, id: &Option<String>| account == vpc.account && id.as_deref() == Some(vpc.id.as_str());
            let gateway = gateways.iter().map(|(_, g)| g).find(|g| mine(&g.account, &g.vpc_id));
            let public_ip = gateway.and_then(|g| g.public_ip.clone());
            let elastic_ips = addresses
                .iter()
                .filter_map(|(_, a)| {
                    let association = a.association.as_ref()?;
                    (a.account == vpc.account
                        && association.vpc_id == vpc.id
                        && !nat_interfaces.contains(association.network_interface_id.as_str()))
                    .then(|| (a.public_ip.clone(), association.private_ip.clone()))
                })
                .chain(interfaces.iter().filter_map(|i| {
                    let mine = subnets.iter().any(|s| s.id == i.subnet_id);
                    let shown = mine && !elastic.contains(i.id.as_str());
                    shown.then(|| Some((i.public_ip.clone()?, i.address.clone()))).flatten()
                }))
                .collect();
            let vpc_tables: Vec<&storage::RouteTableRecord> =
                tables.iter().map(|(_, t)| t).filter(|t| t.account == vpc.account && t.vpc_id == vpc.id).collect();
            let main = vpc_tables.iter().find(|t| t.main());
            let table_of = |subnet_id: &str| {
                let own_table = vpc_tables
                    .iter()
                    .find(|t| t.associations.iter().any(|a| a.subnet_id.as_deref() == Some(subnet_id)));
                own_table.or(main).copied()
            };
            let mut internet_routes = BTreeMap::new();
            for subnet in &subnets {
                let Some(table) = table_of(&subnet.id) else { continue };
                let destinations: Vec<String> = table
                    .routes
                    .iter()
                    .filter(|r| {
                        gateway.is_some_and(|g| r.target == storage::RouteTarget::InternetGateway(g.id.clone()))
                    })
                    .map(|r| r.destination.clone())
                    .collect();
                internet_routes.insert(subnet.id.clone(), destinations);
            }
            // A NAT gateway works when its own subnet is routed to the internet gateway.
            let working: BTreeMap<&str, &str> = nats
                .iter()
                .map(|(_, n)| n)
                .filter(|n| n.account == vpc.account && n.vpc_id == vpc.id)
                .filter(|n| {
                    internet_routes.get(&n.subnet_id).is_some_and(|d: &Vec<String>| d.iter().any(|d| d == "0.0.0.0/0"))
                })
                .map(|n| (n.id.as_str(), n.public_ip.as_str()))
                .collect();
            let mut nat_routes = BTreeMap::new();
            for subnet in &subnets {
                let Some(table) = table_of(&subnet.id) else { continue };
                let routes: Vec<(String, String)> = table
                    .routes
                    .iter()
                    .filter_map(|r| match &r.target {
                        storage::RouteTarget::NatGateway(id) => {
                            working.get(id.as_str()).map(|ip| (r.destination.clone(), (*ip).to_owned()))
                        }
                        _ => None,
                    })
                    .collect();
                nat_routes.insert(subnet.id.clone(), routes);
            }
            // Routes through guests lead to the address of the interface they name (an
            // instance's: its primary one), wherever that interface is plugged.
            let address_of = |target: &storage::RouteTarget| -> Result<Option<String>> {
                Ok(match target {
                    storage::RouteTarget::NetworkInterface(id) => {
                        interfaces.iter().find(|i| i.id == *id).map(|i| i.address.clone())
                    }
                    storage::RouteTarget::Instance(id) => self
                        .store()
                        .read(|tx| tx.get(&INSTANCES, &format!("{}/{id}", vpc.account)))?
                        .filter(|i| i.vpc_id == vpc.id && i.state != InstanceState::Terminated)
                        .map(|i| i.private_ip),
                    _ => None,
                })
            };
            // Each table once, whichever subnets follow it.
            let mut by_table: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
            let mut guest_routes = BTreeMap::new();
            for subnet in &subnets {
                let Some(table) = table_of(&subnet.id) else { continue };
                if !by_table.contains_key(table.id.as_str()) {
                    let mut routes = Vec::new();
                    for route in &table.routes {
                        if let Some(address) = address_of(&route.target)? {
                            routes.push((route.destination.clone(), address));
                        }
                    }
                    by_table.insert(table.id.as_str(), routes);
                }
                guest_routes.insert(subnet.id.clone(), by_table[table.id.as_str()].clone());
            }
            views.push(VpcView {
                id: vpc.id,
                cidr: vpc.cidr,
                subnets,
                public_ip,
                elastic_ips,
                internet_routes,
                nat_routes,
                guest_routes,
            });
        }
        let public = Public { network: self.public_network(), chassis: self.gateway_chassis() };
        let mut wanted = desired(self.installation()?, Some(&public), &views, interfaces, &groups);
        // With replicas, the conductor computes this, so this replica leads and serves the VPCs'
        // metadata, from ends plugged on its own machine. One process needs no binding: its
        // ends are the only ones.
        if self.leadership().is_some() {
            bind_services_to(&mut wanted, &default_chassis());
        }
        // Its routers name the data dir: another installation can tell whether this one is gone.
        wanted.data_dir = self.data_dir().to_string_lossy().into_owned();
        Ok(wanted)
    }

    /// Reconciles OVN with the store when what is wanted changed or [`FULL_RECONCILE`] passed;
    /// a no-op without a configured OVN. Blocks on `ovn-nbctl`. Called by every sweep.
    /// `interfaces` were read at `read_at`: a reconciliation from a later read (an immediate
    /// one, [`Backend::sync_ovn_now`]) wins, and this one does nothing rather than put back
    /// what it had changed.
    /// Stops keeping OVN in step and removes everything this installation holds there (its
    /// VPCs' routers, switches, ports, port groups and DHCP options): for tests, whose conductor
    /// may still sweep after they end, and for an installation taken down for good. Waits for a
    /// reconciliation under way; later ones do nothing. A no-op without OVN. Blocks.
    pub fn withdraw_network(&self) -> Result<()> {
        let Some(sync) = &self.ovn else { return Ok(()) };
        let _one_at_a_time = sync.reconciling.lock().unwrap_or_else(|p| p.into_inner());
        sync.withdrawn.store(true, std::sync::atomic::Ordering::Release);
        let forget = Desired { installation: self.installation()?.to_owned(), ..Default::default() };
        sync.northbound
            .reconcile(&forget)
            .map(drop)
            .map_err(|e| Error::Io(format!("removing this installation's rows from OVN: {e}")))
    }

    pub fn sync_ovn(&self, interfaces: &[Interface], read_at: Instant) -> Result<Option<ovn::Applied>> {
        let Some(sync) = &self.ovn else { return Ok(None) };
        let _one_at_a_time = sync.reconciling.lock().unwrap_or_else(|p| p.into_inner());
        if sync.withdrawn.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(None);
        }
        let wanted = self.desired_network(interfaces)?;
        {
            let last = sync.last.lock().unwrap_or_else(|p| p.into_inner());
            if last.as_ref().is_some_and(|(_, at)| *at > read_at) {
                return Ok(None);
            }
            if last.as_ref().is_some_and(|(applied, at)| *applied == wanted && at.elapsed() < FULL_RECONCILE) {
                return Ok(None);
            }
        }
        match sync.northbound.reconcile(&wanted) {
            Ok(applied) => {
                if applied.commands > 0 {
                    tracing::info!(commands = applied.commands, "OVN brought in step");
                }
                *sync.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((wanted, Instant::now()));
                Ok(Some(applied))
            }
            Err(error) => {
                tracing::warn!(%error, "reconciling OVN failed; the next sweep tries again");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::backend;

    fn interface(id: &str, subnet: &str, address: &str) -> Interface {
        Interface {
            id: id.into(),
            subnet_id: subnet.into(),
            mac: "52:54:00:00:00:01".into(),
            address: address.into(),
            groups: vec!["sg-web".into()],
            public_ip: None,
            secondary: Vec::new(),
            source_dest_check: true,
            chassis: Vec::new(),
        }
    }

    #[test]
    fn each_account_is_a_router_each_subnet_a_switch_each_interface_a_port() {
        let b = backend();
        b.default_vpc("111111111111", "vpc-a").unwrap();
        b.default_vpc("222222222222", "vpc-z").unwrap();
        let (a, z) = (b.subnets("111111111111", "vpc-a").unwrap(), b.subnets("222222222222", "vpc-z").unwrap());
        let view = |id: &str, subnets: &Vec<Subnet>| VpcView {
            id: id.into(),
            cidr: "172.31.0.0/16".into(),
            subnets: subnets.clone(),
            ..Default::default()
        };
        let vpcs = vec![view("vpc-a", &a), view("vpc-z", &z)];
        // The same address in both accounts: two ports on two switches of two routers.
        let interfaces = [interface("eni-1", &a[0].id, "172.31.0.4"), interface("eni-2", &z[0].id, "172.31.0.4")];
        let d = desired("0123456789abcdef", None, &vpcs, &interfaces, &[]);
        assert_eq!(d.routers.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["stratus-vpc-a", "stratus-vpc-z"]);
        assert_eq!(d.routers[0].ports[0].networks, ["172.31.0.1/20"]);
        let switch = &d.switches[0];
        // The interface's port, and the VPC's metadata port.
        assert_eq!((switch.owner.as_str(), switch.ports.len()), (a[0].id.as_str(), 2));
        let port = |switch: &Switch, owner: &str| switch.ports.iter().find(|p| p.owner == owner).cloned().unwrap();
        assert_eq!(port(switch, "eni-1").address_entry(), "52:54:00:00:00:01 172.31.0.4");
        let dhcp = switch.dhcp.as_ref().unwrap();
        assert_eq!(
            (dhcp.cidr.as_str(), dhcp.router.as_str(), dhcp.dns_server.as_str()),
            ("172.31.0.0/20", "172.31.0.1", "172.31.0.2")
        );
        assert_eq!(dhcp.server_mac, d.routers[0].ports[0].mac, "DHCP answers from the router's port");
        assert_ne!(d.routers[0].ports[0].mac, d.routers[1].ports[0].mac);
        assert_eq!(port(&d.switches[1], "eni-2").name, port_name("0123456789abcdef", "eni-2"));
        assert_eq!(port_name("0123456789abcdef", "eni-2").len(), 36, "a UUID, as libvirt names ports");
        assert_ne!(port_name("0123456789abcdef", "eni-2"), port_name("fedcba9876543210", "eni-2"));
        let guard = &d.port_groups[0];
        assert_eq!(guard.name, guarded_port_group("0123456789abcdef"));
        let mut both = [port_name("0123456789abcdef", "eni-1"), port_name("0123456789abcdef", "eni-2")];
        both.sort();
        assert_eq!(guard.ports, both, "default VPCs' ports are guarded by OVN's ACLs like any other");
        // An interface of a subnet no VPC lists is not wanted anywhere.
        let stray = desired("0123456789abcdef", None, &vpcs[..1], &interfaces, &[]);
        let wanted: Vec<&str> =
            stray.switches.iter().flat_map(|s| &s.ports).filter_map(|p| p.owner.strip_prefix("eni-")).collect();
        assert_eq!(wanted, ["1"]);
    }

    fn rule(
        egress: bool,
        protocol: &str,
        ports: (Option<i32>, Option<i32>),
        peer: RulePeer,
    ) -> storage::SecurityGroupRuleRecord {
        storage::SecurityGroupRuleRecord {
            id: "sgr-1".into(),
            egress,
            protocol: protocol.into(),
            from_port: ports.0,
            to_port: ports.1,
            peer,
            description: None,
        }
    }

    #[test]
    fn rules_compile_to_stateful_acls_on_their_group() {
        let cidr = |c: &str| RulePeer::Ipv4 { cidr: c.into() };
        let known = |id: &str| (id == "sg-app").then(|| group_port_group(id));
        let matches = |r: storage::SecurityGroupRuleRecord| rule_acl("stratus_sg_web", &r, known).map(|a| a.matches);
        let ssh =
            rule_acl("stratus_sg_web", &rule(false, "tcp", (Some(22), Some(22)), cidr("10.0.0.0/16")), known).unwrap();
        assert_eq!((ssh.direction, ssh.action, ssh.priority), ("to-lport", "allow-related", 1002));
        assert_eq!(ssh.matches, "outport == @stratus_sg_web && ip4 && ip4.src == 10.0.0.0/16 && tcp && tcp.dst == 22");
        assert_eq!(
            matches(rule(false, "udp", (Some(1000), Some(2000)), cidr("0.0.0.0/0"))).unwrap(),
            "outport == @stratus_sg_web && ip4 && udp && udp.dst >= 1000 && udp.dst <= 2000"
        );
        assert_eq!(
            matches(rule(true, "-1", (None, None), cidr("0.0.0.0/0"))).unwrap(),
            "inport == @stratus_sg_web && ip4",
            "all traffic out"
        );
        assert_eq!(
            matches(rule(
                false,
                "icmp",
                (Some(8), Some(-1)),
                RulePeer::Group { group_id: "sg-app".into(), account: "a".into() }
            ))
            .unwrap(),
            "outport == @stratus_sg_web && ip4 && ip4.src == $stratus_sg_app_ip4 && icmp4 && icmp4.type == 8"
        );
        assert_eq!(
            matches(rule(false, "47", (None, None), cidr("192.0.2.0/24"))).unwrap(),
            "outport == @stratus_sg_web && ip4 && ip4.src == 192.0.2.0/24 && ip.proto == 47"
        );
        assert_eq!(
            matches(rule(false, "tcp", (Some(0), Some(65535)), cidr("0.0.0.0/0"))).unwrap(),
            "outport == @stratus_sg_web && ip4 && tcp"
        );
        // Nothing an IPv4 overlay could enforce, or a group OVN does not hold: no ACL (denied).
        assert_eq!(matches(rule(false, "tcp", (Some(22), Some(22)), RulePeer::Ipv6 { cidr: "::/0".into() })), None);
        assert_eq!(matches(rule(false, "icmpv6", (None, None), cidr("0.0.0.0/0"))), None);
        let elsewhere = RulePeer::Group { group_id: "sg-gone".into(), account: "a".into() };
        assert_eq!(matches(rule(false, "-1", (None, None), elsewhere)), None);
    }

    #[test]
    fn interfaces_of_own_vpcs_are_guarded_by_their_groups() {
        let b = backend();
        let vpc = b.create_vpc("111111111111", "10.0.0.0/16", None, &[]).unwrap();
        let record = b.create_subnet("111111111111", &vpc.id, "10.0.1.0/24", None, None, &[]).unwrap();
        let subnets = b.subnets("111111111111", &vpc.id).unwrap();
        let vpcs = vec![VpcView { id: vpc.id.clone(), cidr: vpc.cidr.clone(), subnets, ..Default::default() }];
        let web = SecurityGroupRecord {
            id: "sg-web".into(),
            account: "111111111111".into(),
            vpc_id: vpc.id.clone(),
            name: "web".into(),
            description: "d".into(),
            default: false,
            rules: vec![rule(false, "tcp", (Some(80), Some(80)), RulePeer::Ipv4 { cidr: "0.0.0.0/0".into() })],
            created_ms: 0,
        };
        let d = desired("0123456789abcdef", None, &vpcs, &[interface("eni-1", &record.id, "10.0.1.10")], &[web]);
        let port = port_name("0123456789abcdef", "eni-1");
        let [guard, web] = &d.port_groups[..] else { panic!("{:?}", d.port_groups) };
        assert_eq!((guard.name.as_str(), &guard.ports), ("stratus_0123456789abcdef_guarded", &vec![port.clone()]));
        assert!(guard.acls.iter().any(|a| a.action == "drop" && a.direction == "to-lport"));
        assert!(guard.acls.iter().any(|a| a.action == "allow" && a.matches.contains("udp.dst == 67")), "DHCP passes");
        assert_eq!((web.name.as_str(), &web.ports), ("stratus_sg_web", &vec![port]));
        // Its rule, and the VPC's end on this machine pinging in (the migrations' ping traces).
        let end = metadata_port(&vpcs[0].id, &vpcs[0].subnets).unwrap().address;
        assert_eq!(web.acls.len(), 2, "{:?}", web.acls);
        let probe = format!("outport == @stratus_sg_web && ip4.src == {end} && icmp4 && icmp4.type == 8");
        assert!(web.acls.iter().any(|a| a.matches == probe && a.direction == "to-lport"), "{:?}", web.acls);
    }

    #[test]
    fn a_gateway_brings_nat_a_default_route_and_the_route_tables_as_policies() {
        let b = backend();
        let vpc = b.create_vpc("111111111111", "10.0.0.0/16", None, &[]).unwrap();
        let public = b.create_subnet("111111111111", &vpc.id, "10.0.1.0/24", None, None, &[]).unwrap();
        let private = b.create_subnet("111111111111", &vpc.id, "10.0.2.0/24", None, None, &[]).unwrap();
        let view = VpcView {
            id: vpc.id.clone(),
            cidr: vpc.cidr.clone(),
            subnets: b.subnets("111111111111", &vpc.id).unwrap(),
            public_ip: Some("198.51.100.2".into()),
            elastic_ips: vec![("198.51.100.3".into(), "10.0.1.10".into())],
            internet_routes: [(public.id.clone(), vec!["0.0.0.0/0".into()]), (private.id.clone(), vec![])].into(),
            nat_routes: [(private.id.clone(), vec![("0.0.0.0/0".to_owned(), "198.51.100.4".to_owned())])].into(),
            guest_routes: [(public.id.clone(), vec![("192.168.7.0/24".to_owned(), "10.0.2.50".to_owned())])].into(),
        };
        let net = Public { network: Default::default(), chassis: "host-1".into() };
        let d = desired("0123456789abcdef", Some(&net), std::slice::from_ref(&view), &[], &[]);
        let router = &d.routers[0];
        let gateway = router.ports.iter().find(|p| p.gateway_chassis.is_some()).unwrap();
        assert_eq!(
            (gateway.networks.as_slice(), gateway.gateway_chassis.as_deref()),
            (&["198.51.100.2/24".to_owned()][..], Some("host-1"))
        );
        assert_eq!(
            router.static_routes,
            [
                ovn::StaticRoute { prefix: "0.0.0.0/0".into(), nexthop: "198.51.100.1".into() },
                ovn::StaticRoute { prefix: "169.254.169.254/32".into(), nexthop: "10.0.1.3".into() },
            ],
            "the way out and the way to the metadata service's port on the first subnet (what goes \
             through a guest rides the default route to its policy)"
        );
        assert_eq!(
            router.nats,
            [
                ovn::Nat { kind: "dnat_and_snat", external_ip: "198.51.100.3".into(), logical_ip: "10.0.1.10".into() },
                ovn::Nat { kind: "snat", external_ip: "198.51.100.4".into(), logical_ip: "10.0.2.0/24".into() },
            ],
            "the Elastic IP both ways, the NAT gateway's subnet out only"
        );
        let policies: Vec<(u16, &str, &str, Option<&str>)> =
            router.policies.iter().map(|p| (p.priority, p.matches.as_str(), p.action, p.nexthop.as_deref())).collect();
        assert_eq!(
            policies,
            [
                (50, "ip4.src == 10.0.1.0/24 && !(ip4.dst == 10.0.0.0/16)", "drop", None),
                (50, "ip4.src == 10.0.2.0/24 && !(ip4.dst == 10.0.0.0/16)", "drop", None),
                (200, "ip4.src == 10.0.1.0/24", "allow", None),
                (200, "ip4.src == 10.0.2.0/24", "allow", None),
                (
                    224,
                    "ip4.src == 10.0.1.0/24 && ip4.dst == 192.168.7.0/24 && !(ip4.dst == 10.0.0.0/16)",
                    "reroute",
                    Some("10.0.2.50")
                ),
                (299, "!(ip4.src == 10.0.0.0/16) && !(ip4.dst == 10.0.0.0/16)", "drop", None),
                (300, "ip4.dst == 169.254.169.254", "allow", None),
            ],
            "each subnet gets out through its table's route: the gateway, the NAT gateway, or a guest \
             for a more specific destination"
        );
        let meta = d.switches.iter().flat_map(|s| &s.ports).find(|p| p.service).expect("a metadata port");
        assert_eq!((meta.addresses.as_slice(), meta.port_security), (&["10.0.1.3".to_owned()][..], false));
        // Bound where the serving replica runs; guests' ports keep theirs.
        let mut bound = d.clone();
        bind_services_to(&mut bound, "replica-2");
        let before = d.switches.iter().flat_map(|s| &s.ports);
        for (port, was) in bound.switches.iter().flat_map(|s| &s.ports).zip(before) {
            let want = if port.service { vec!["replica-2".to_owned()] } else { was.requested_chassis.clone() };
            assert_eq!(port.requested_chassis, want, "{}", port.name);
        }
        assert!(bound.switches.iter().flat_map(|s| &s.ports).any(|p| p.service && !p.requested_chassis.is_empty()));
        let [fence] = &d.port_groups[..] else { panic!("{:?}", d.port_groups) };
        assert_eq!(fence.ports, [format!("stratus-{}-gw-leg", vpc.id)]);
        assert_eq!(
            fence.acls[0].matches,
            format!("outport == @{} && ip4.dst == {{10.0.0.0/16, 169.254.169.254}}", fence.name)
        );
        assert_eq!(fence.acls[1].matches, format!("inport == @{} && ip4.src == 10.0.0.0/16", fence.name));
        let public_switch = d.switches.iter().find(|s| s.localnet.is_some()).unwrap();
        assert_eq!((public_switch.localnet.as_deref(), public_switch.gateway_legs.len()), (Some("public"), 1));
        // Without a gateway: no way out at all, and no public switch.
        let closed = desired(
            "0123456789abcdef",
            Some(&net),
            &[VpcView { public_ip: None, guest_routes: Default::default(), ..view.clone() }],
            &[],
            &[],
        );
        assert!(closed.routers[0].nats.is_empty() && closed.routers[0].policies.is_empty());
        let routes: Vec<&str> = closed.routers[0].static_routes.iter().map(|r| r.prefix.as_str()).collect();
        assert_eq!(routes, ["169.254.169.254/32"], "only the way to the metadata service");
        assert!(closed.switches.iter().all(|s| s.localnet.is_none()));
        // Without a gateway, a route through a guest is a way out too: the other subnet, whose
        // table has no such route, is held back.
        let through = desired("0123456789abcdef", Some(&net), &[VpcView { public_ip: None, ..view }], &[], &[]);
        let actions: Vec<(u16, &str)> = through.routers[0].policies.iter().map(|p| (p.priority, p.action)).collect();
        assert_eq!(actions, [(50, "drop"), (50, "drop"), (224, "reroute"), (299, "drop"), (300, "allow")]);
        // Without a default route, the destination needs one of its own to reach the policies.
        assert!(through.routers[0]
            .static_routes
            .contains(&ovn::StaticRoute { prefix: "192.168.7.0/24".into(), nexthop: "10.0.2.50".into() }));
    }
}
