//! Security groups, enforced on the hosts with libvirt's nwfilter.
//!
//! Every instance's NIC references a filter of its own, `stratus-<instance id>`, defined on the
//! host it runs on. The filter is a pure function of redb ([`allowed`], then [`filter_xml`]):
//! the instance's MAC and address, its groups' rules, and the addresses of the instances in the
//! groups those rules name.
//! - L2 (ebtables): frames from the guest must carry its MAC, IPv4 packets its address (DHCP's
//!   `0.0.0.0` excepted) and ARP its own MAC and address, so that no guest passes for another
//!   (the metadata service tells instances apart by their address); no guest answers DHCP.
//!   Only IPv4 and ARP pass at all: guests have no IPv6, and a VLAN tag would hide a frame from
//!   the checks.
//! - L3 (iptables with conntrack; libvirt matches state on every accept): DHCP from the router
//!   and the metadata service are always reachable, as on EC2; then one accept per rule and peer address, ingress
//!   rules as `in`, egress rules as `out`; the replies of an accepted connection pass both ways;
//!   everything else is dropped.
//!
//! A boot defines the filter before the domain starts, a migration on the target before the
//! guest moves. Every sweep recomputes the filters of the running instances and redefines the
//! ones that changed, which libvirt applies to the running guest at once: rule and membership
//! changes land within a sweep interval. Hosts on libvirt's test driver have no nwfilter, so
//! nothing is enforced there.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use storage::tables::SECURITY_GROUPS;
use storage::{InstanceRecord, InstanceState, RulePeer, SecurityGroupRecord};

use crate::hosts::Host;
use crate::hypervisor::Accelerator;
use crate::network::router_of;
use crate::{Backend, Error, Result};

/// The metadata service's address; guests always reach it on port 80.
pub const METADATA_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// What a rule lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    All,
    Tcp {
        from: u16,
        to: u16,
    },
    Udp {
        from: u16,
        to: u16,
    },
    /// ICMP type and code; `None` is any.
    Icmp {
        kind: Option<u8>,
        code: Option<u8>,
    },
    /// Another IP protocol nwfilter knows by name (esp, ah, sctp, udplite).
    Named(&'static str),
}

/// One accept: ingress from `peer`, or egress to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Allow {
    pub ingress: bool,
    pub protocol: Protocol,
    pub peer: Ipv4Addr,
    pub prefix: u8,
}

pub fn filter_name(instance_id: &str) -> String {
    format!("stratus-{instance_id}")
}

/// The instances that count as members of each group: those that hold their address.
pub fn group_members(records: &[InstanceRecord]) -> HashMap<String, Vec<Ipv4Addr>> {
    let mut members: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
    for record in records.iter().filter(|r| !matches!(r.state, InstanceState::Terminated)) {
        let Ok(address) = record.private_ip.parse::<Ipv4Addr>() else { continue };
        for group in &record.security_group_ids {
            members.entry(group.clone()).or_default().push(address);
        }
    }
    members
}

/// What `record`'s groups allow, ordered and without repeats. Rules nwfilter cannot express
/// (IPv6 peers, prefix lists, protocols it has no name for) allow nothing.
pub fn allowed(
    record: &InstanceRecord,
    groups: &HashMap<String, SecurityGroupRecord>,
    members: &HashMap<String, Vec<Ipv4Addr>>,
) -> Vec<Allow> {
    let mut allows = BTreeSet::new();
    for rule in record.security_group_ids.iter().filter_map(|id| groups.get(id)).flat_map(|g| &g.rules) {
        let Some(protocol) = protocol(&rule.protocol, rule.from_port, rule.to_port) else { continue };
        let peers: Vec<(Ipv4Addr, u8)> = match &rule.peer {
            RulePeer::Ipv4 { cidr } => parse_cidr(cidr).into_iter().collect(),
            RulePeer::Group { group_id, .. } => {
                members.get(group_id).map(|m| m.iter().map(|a| (*a, 32)).collect()).unwrap_or_default()
            }
            RulePeer::Ipv6 { .. } | RulePeer::PrefixList { .. } => Vec::new(),
        };
        for (peer, prefix) in peers {
            allows.insert(Allow { ingress: !rule.egress, protocol, peer, prefix });
        }
    }
    allows.into_iter().collect()
}

fn protocol(name: &str, from: Option<i32>, to: Option<i32>) -> Option<Protocol> {
    let port = |p: Option<i32>, default: u16| p.and_then(|p| u16::try_from(p).ok()).unwrap_or(default);
    let icmp = |p: Option<i32>| p.and_then(|p| u8::try_from(p).ok());
    Some(match name {
        "-1" => Protocol::All,
        "tcp" => Protocol::Tcp { from: port(from, 0), to: port(to, 65535) },
        "udp" => Protocol::Udp { from: port(from, 0), to: port(to, 65535) },
        "icmp" => Protocol::Icmp { kind: icmp(from), code: icmp(to) },
        "50" => Protocol::Named("esp"),
        "51" => Protocol::Named("ah"),
        "132" => Protocol::Named("sctp"),
        "136" => Protocol::Named("udplite"),
        _ => return None,
    })
}

fn parse_cidr(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (address, prefix) = cidr.split_once('/')?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some((address.parse().ok()?, prefix))
}

/// The nwfilter XML for one instance whose subnet's router (and DHCP server) is `router`.
/// Priorities order the rules: anti-spoofing first, then the services every instance may use,
/// then the groups' accepts, then the final drop.
/// Its UUID names the installation that made it ([`crate::ownership::filter_uuid`]).
pub fn filter_xml(
    installation: &str,
    instance_id: &str,
    mac: &str,
    address: &str,
    router: Ipv4Addr,
    allows: &[Allow],
) -> String {
    let name = filter_name(instance_id);
    let uuid = crate::ownership::filter_uuid(installation, &name);
    let mut xml = format!("<filter name='{name}' chain='root'><uuid>{uuid}</uuid>");
    let mut rule = |action: &str, direction: &str, priority: i32, body: String| {
        let _ = write!(xml, "<rule action='{action}' direction='{direction}' priority='{priority}'>{body}</rule>");
    };
    // L2: the guest speaks only as itself, only IPv4 and ARP (no VLAN tags, no IPv6, nothing
    // else the checks below would not look into), and serves no DHCP to others.
    rule("drop", "out", -900, format!("<mac match='no' srcmacaddr='{mac}'/>"));
    rule("drop", "out", -895, "<ip protocol='udp' srcportstart='67'/>".into());
    rule("return", "out", -890, "<ip srcipaddr='0.0.0.0' protocol='udp' srcportstart='68' dstportstart='67'/>".into());
    rule("drop", "out", -880, format!("<ip match='no' srcipaddr='{address}'/>"));
    rule("return", "out", -870, "<arp arpsrcipaddr='0.0.0.0'/>".into());
    rule("drop", "out", -860, format!("<arp match='no' arpsrcmacaddr='{mac}'/>"));
    rule("drop", "out", -850, format!("<arp match='no' arpsrcipaddr='{address}'/>"));
    rule("return", "inout", -840, "<mac protocolid='ipv4'/>".into());
    rule("return", "inout", -835, "<mac protocolid='arp'/>".into());
    rule("drop", "inout", -830, "<mac/>".into());
    // L3: DHCP from the router and the metadata service, whatever the groups say.
    rule("accept", "out", -500, "<udp srcportstart='68' dstportstart='67' statematch='false'/>".into());
    rule(
        "accept",
        "in",
        -500,
        format!("<udp srcipaddr='{router}' srcportstart='67' dstportstart='68' statematch='false'/>"),
    );
    rule("accept", "out", -490, format!("<tcp dstipaddr='{METADATA_ADDRESS}' dstportstart='80'/>"));
    for allow in allows {
        let (direction, peer) = if allow.ingress { ("in", "src") } else { ("out", "dst") };
        let peer = format!("{peer}ipaddr='{}' {peer}ipmask='{}'", allow.peer, allow.prefix);
        let body = match allow.protocol {
            Protocol::All => format!("<all {peer}/>"),
            Protocol::Tcp { from, to } => format!("<tcp {peer} dstportstart='{from}' dstportend='{to}'/>"),
            Protocol::Udp { from, to } => format!("<udp {peer} dstportstart='{from}' dstportend='{to}'/>"),
            Protocol::Icmp { kind, code } => {
                let kind = kind.map(|k| format!(" type='{k}'")).unwrap_or_default();
                let code = code.map(|c| format!(" code='{c}'")).unwrap_or_default();
                format!("<icmp {peer}{kind}{code}/>")
            }
            Protocol::Named(name) => format!("<{name} {peer}/>"),
        };
        rule("accept", direction, 0, body);
    }
    rule("drop", "inout", 900, "<all/>".into());
    xml.push_str("</filter>");
    xml
}

/// The groups by id and their members' addresses: what [`instance_filter`] reads.
struct FilterInputs {
    groups: HashMap<String, SecurityGroupRecord>,
    members: HashMap<String, Vec<Ipv4Addr>>,
}

fn instance_filter(installation: &str, record: &InstanceRecord, inputs: &FilterInputs) -> String {
    let address: Ipv4Addr = record.private_ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
    let allows = allowed(record, &inputs.groups, &inputs.members);
    filter_xml(installation, &record.id, &record.mac, &record.private_ip, router_of(address), &allows)
}

/// Whether two definitions of a filter hold the same rules, whatever their UUIDs.
fn same_rules(a: &str, b: &str) -> bool {
    let rules = |xml: &str| xml.split_once("</uuid>").map_or(xml, |(_, rules)| rules).to_owned();
    rules(a) == rules(b)
}

/// Defines a filter on `host` and answers the XML defined. A filter defined before filters
/// carried their installation keeps its old UUID, which libvirt insists on: such a filter is
/// redefined under that one.
fn define_on(host: &Host, xml: String) -> Result<String> {
    match host.driver.define_filter(&xml) {
        Err(crate::hypervisor::DriverError::Failed(message)) if message.contains("already exists with uuid") => {
            let name = xml.split_once("name='").and_then(|(_, r)| r.split_once('\'')).map_or("", |(n, _)| n);
            let marked = xml.split_once("<uuid>").and_then(|(_, r)| r.split_once("</uuid>")).map_or("", |(u, _)| u);
            let legacy = xml.replacen(marked, &crate::ownership::legacy_filter_uuid(name), 1);
            host.driver.define_filter(&legacy).map_err(Error::Driver)?;
            Ok(legacy)
        }
        Err(error) => Err(Error::Driver(error)),
        Ok(()) => Ok(xml),
    }
}

impl Backend {
    /// Whether instances on `host` get filters (not on libvirt's test driver).
    pub(crate) fn enforces(host: &Host) -> bool {
        host.accelerator != Accelerator::Test
    }

    /// What every filter is made of, read once for a batch: the groups (of `account`, or of
    /// all) by id, and their members among `records`.
    fn filter_inputs(&self, account: Option<&str>, records: &[InstanceRecord]) -> Result<FilterInputs> {
        let prefix = account.map(|a| format!("{a}/")).unwrap_or_default();
        let groups = self
            .store()
            .read(|tx| tx.scan(&SECURITY_GROUPS, &prefix))?
            .into_iter()
            .map(|(_, g)| (g.id.clone(), g))
            .collect();
        Ok(FilterInputs { groups, members: group_members(records) })
    }

    /// Whether any host enforces filters (a pool of test-driver hosts has none to keep).
    pub(crate) fn enforces_anywhere(&self) -> bool {
        self.hosts().iter().any(|h| Self::enforces(h))
    }

    /// Defines `record`'s filter on `host` (before a boot or a migration there) and answers its
    /// name, or `None` where filters are not enforced.
    pub(crate) fn prepare_filter(&self, host: &Host, record: &InstanceRecord) -> Result<Option<String>> {
        // A VPC of its own is OVN's to guard, not nwfilter's.
        if !Self::enforces(host) || self.ovn_port(record)?.is_some() {
            return Ok(None);
        }
        // Groups and their members belong to one account: the instance's is all it can name.
        let inputs = self.filter_inputs(Some(&record.account), &self.instances(&record.account)?)?;
        let xml = define_on(host, instance_filter(self.installation()?, record, &inputs))?;
        self.applied_filters().insert((host.id.clone(), record.id.clone()), xml);
        Ok(Some(filter_name(&record.id)))
    }

    /// Forgets `instance_id`'s filter on `host` once no domain there uses it.
    pub(crate) fn drop_filter(&self, host: &Host, instance_id: &str) {
        if !Self::enforces(host) {
            return;
        }
        self.applied_filters().remove(&(host.id.clone(), instance_id.to_owned()));
        if let Err(error) = host.driver.undefine_filter(&filter_name(instance_id)) {
            tracing::warn!(instance = %instance_id, host = %host.id, %error, "could not remove the instance's filter");
        }
    }

    /// Brings the filters of the running instances in `records` up to date with redb; called
    /// by every sweep. Only filters that changed are redefined.
    pub(crate) fn sync_filters(&self, records: &[InstanceRecord]) -> Result<()> {
        if !self.enforces_anywhere() {
            return Ok(());
        }
        let inputs = self.filter_inputs(None, records)?;
        let installation = self.installation()?;
        let own_vpcs: std::collections::BTreeSet<String> = self
            .store()
            .read(|tx| tx.scan(&storage::tables::VPCS, ""))?
            .into_iter()
            .filter(|(_, vpc)| !vpc.shares_bridge())
            .map(|(key, _)| key)
            .collect();
        let on_bridge = |r: &&InstanceRecord| !own_vpcs.contains(&format!("{}/{}", r.account, r.vpc_id));
        for record in
            records.iter().filter(|r| r.state == InstanceState::Running && r.migration.is_none()).filter(on_bridge)
        {
            let Some(host) = self.hosts().get(&record.host_id).filter(|h| Self::enforces(h)) else { continue };
            let xml = instance_filter(installation, record, &inputs);
            let key = (host.id.clone(), record.id.clone());
            if self.applied_filters().get(&key).is_some_and(|applied| same_rules(applied, &xml)) {
                continue;
            }
            match define_on(host, xml) {
                Ok(xml) => {
                    tracing::info!(instance = %record.id, host = %host.id, "security group filter updated");
                    self.applied_filters().insert(key, xml);
                }
                Err(error) => {
                    tracing::warn!(instance = %record.id, %error, "updating the filter failed; retried next sweep")
                }
            }
        }
        Ok(())
    }

    fn applied_filters(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), String>> {
        self.applied_filters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::SecurityGroupRuleRecord;

    fn rule(
        egress: bool,
        protocol: &str,
        ports: (Option<i32>, Option<i32>),
        peer: RulePeer,
    ) -> SecurityGroupRuleRecord {
        SecurityGroupRuleRecord {
            id: "sgr-1".into(),
            egress,
            protocol: protocol.into(),
            from_port: ports.0,
            to_port: ports.1,
            peer,
            description: None,
        }
    }

    fn group(id: &str, rules: Vec<SecurityGroupRuleRecord>) -> SecurityGroupRecord {
        SecurityGroupRecord {
            id: id.into(),
            account: "a".into(),
            vpc_id: "vpc-1".into(),
            name: id.into(),
            description: String::new(),
            default: false,
            rules,
            created_ms: 0,
        }
    }

    fn instance(id: &str, ip: &str, groups: &[&str], state: InstanceState) -> InstanceRecord {
        let mut record: InstanceRecord = serde_json::from_value(serde_json::json!({
            "id": id, "account": "a", "reservation_id": "r", "image_id": "ami", "instance_type": "t3.nano",
            "vcpus": 2, "memory_mib": 512, "zone": "z", "host_id": "h", "domain_uuid": "u", "state": state,
            "state_reason": null, "state_transition_reason": "", "force_stop": false, "booted": true,
            "launch_time_ms": 0, "terminated_ms": null, "ami_launch_index": 0, "key_name": null, "user_data": null,
            "vpc_id": "vpc-1", "subnet_id": "s", "network_interface_id": "eni", "private_ip": ip,
            "mac": "52:54:00:00:00:01", "security_group_ids": [], "client_token": null,
            "disable_api_termination": false, "disable_api_stop": false, "shutdown_behavior": "stop",
            "ebs_optimized": false, "monitoring": false, "dir": "/d", "root_disk_bytes": 0
        }))
        .unwrap();
        record.security_group_ids = groups.iter().map(|g| g.to_string()).collect();
        record
    }

    #[test]
    fn rules_become_accepts_per_peer_and_group_member() {
        let web = group(
            "sg-web",
            vec![
                rule(false, "tcp", (Some(22), Some(22)), RulePeer::Ipv4 { cidr: "0.0.0.0/0".into() }),
                rule(false, "-1", (None, None), RulePeer::Group { group_id: "sg-app".into(), account: "a".into() }),
                rule(false, "icmp", (Some(8), Some(-1)), RulePeer::Ipv4 { cidr: "10.0.0.0/8".into() }),
                rule(true, "udp", (Some(53), Some(53)), RulePeer::Ipv4 { cidr: "172.31.0.2/32".into() }),
                // Nothing nwfilter can enforce here: allows nothing.
                rule(false, "tcp", (Some(80), Some(80)), RulePeer::Ipv6 { cidr: "::/0".into() }),
                rule(false, "47", (None, None), RulePeer::Ipv4 { cidr: "0.0.0.0/0".into() }),
            ],
        );
        let app = group("sg-app", vec![]);
        let groups: HashMap<_, _> = [web, app].into_iter().map(|g| (g.id.clone(), g)).collect();
        let records = vec![
            instance("i-web", "172.31.0.4", &["sg-web"], InstanceState::Running),
            instance("i-app1", "172.31.0.5", &["sg-app"], InstanceState::Running),
            instance("i-app2", "172.31.0.6", &["sg-app"], InstanceState::Stopped),
            instance("i-gone", "172.31.0.7", &["sg-app"], InstanceState::Terminated),
        ];
        let members = group_members(&records);
        let allows = allowed(&records[0], &groups, &members);
        let any = |a: [u8; 4]| Ipv4Addr::from(a);
        assert_eq!(
            allows,
            vec![
                Allow {
                    ingress: false,
                    protocol: Protocol::Udp { from: 53, to: 53 },
                    peer: any([172, 31, 0, 2]),
                    prefix: 32
                },
                Allow { ingress: true, protocol: Protocol::All, peer: any([172, 31, 0, 5]), prefix: 32 },
                Allow { ingress: true, protocol: Protocol::All, peer: any([172, 31, 0, 6]), prefix: 32 },
                Allow {
                    ingress: true,
                    protocol: Protocol::Tcp { from: 22, to: 22 },
                    peer: any([0, 0, 0, 0]),
                    prefix: 0
                },
                Allow {
                    ingress: true,
                    protocol: Protocol::Icmp { kind: Some(8), code: None },
                    peer: any([10, 0, 0, 0]),
                    prefix: 8
                },
            ]
        );
        // An instance of a group nobody references gets no accepts of its own.
        assert!(allowed(&records[1], &groups, &members).is_empty());
    }

    const ID: &str = "0123456789abcdef";

    #[test]
    fn filter_guards_identity_then_allows_then_drops() {
        let allows = [
            Allow {
                ingress: true,
                protocol: Protocol::Tcp { from: 22, to: 22 },
                peer: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
            },
            Allow {
                ingress: false,
                protocol: Protocol::Icmp { kind: None, code: None },
                peer: Ipv4Addr::new(10, 1, 2, 3),
                prefix: 32,
            },
        ];
        let router = router_of(Ipv4Addr::new(172, 31, 0, 9));
        assert_eq!(router, Ipv4Addr::new(172, 31, 0, 1));
        let xml = filter_xml(ID, "i-1", "52:54:00:aa:bb:cc", "172.31.0.9", router, &allows);
        assert!(xml.starts_with("<filter name='stratus-i-1' chain='root'><uuid>") && xml.ends_with("</filter>"));
        assert_eq!(xml, filter_xml(ID, "i-1", "52:54:00:aa:bb:cc", "172.31.0.9", router, &allows), "one UUID per name");
        assert!(xml.contains("<uuid>01234567-89ab-cdef-"), "the installation's mark: {xml}");
        let other = filter_xml("fedcba9876543210", "i-1", "52:54:00:aa:bb:cc", "172.31.0.9", router, &allows);
        assert!(same_rules(&xml, &other) && xml != other, "rules compare without the UUID");
        let position = |part: &str| xml.find(part).unwrap_or_else(|| panic!("{part} missing from {xml}"));
        let spoof_mac = position("<mac match='no' srcmacaddr='52:54:00:aa:bb:cc'/>");
        let spoof_ip = position("<ip match='no' srcipaddr='172.31.0.9'/>");
        let other_l2 = position("<rule action='drop' direction='inout' priority='-830'><mac/></rule>");
        let dhcp = position("<udp srcipaddr='172.31.0.1' srcportstart='67' dstportstart='68' statematch='false'/>");
        let metadata = position("<tcp dstipaddr='169.254.169.254' dstportstart='80'/>");
        let ssh = position(
            "direction='in' priority='0'><tcp srcipaddr='0.0.0.0' srcipmask='0' dstportstart='22' dstportend='22'/>",
        );
        let icmp = position("direction='out' priority='0'><icmp dstipaddr='10.1.2.3' dstipmask='32'/>");
        let drop = position("<rule action='drop' direction='inout' priority='900'><all/></rule>");
        assert!(spoof_mac < spoof_ip && spoof_ip < other_l2 && other_l2 < dhcp && dhcp < metadata);
        assert!(metadata < ssh && ssh < icmp && icmp < drop);
        assert!(
            xml.contains("<rule action='drop' direction='out' priority='-895'><ip protocol='udp' srcportstart='67'/>")
        );
        // Priorities, not document order, decide for libvirt: check they agree.
        let priorities: Vec<i32> = xml
            .match_indices("priority='")
            .map(|(i, m)| xml[i + m.len()..].split('\'').next().unwrap().parse().unwrap())
            .collect();
        assert!(priorities.windows(2).all(|w| w[0] <= w[1]), "{priorities:?}");
    }
}
