//! The accounts' networks as OVN should hold them (issue 16, in progress).
//!
//! Every VPC ([`crate::vpcs`]) becomes a logical router, each of its subnets a logical switch
//! on that router with OVN's DHCP, and every
//! instance that is not terminated a switch port (named by a UUID derived from its network
//! interface id, [`port_name`]), with its MAC and address and port security. VPCs of different accounts are different routers, so the
//! same address in two accounts never meets.
//!
//! [`desired`] is a pure function of the store's records. When a northbound database is
//! configured ([`Backend::with_ovn`]), each sweep reconciles OVN with it ([`Backend::sync_ovn`]):
//! at once when the wanted network changed, and every [`FULL_RECONCILE`] anyway, which repairs
//! drift and finishes whatever a crash interrupted.
//!
//! Guests of a VPC of their own are plugged into OVN: their NIC goes into the host's
//! integration bridge as their logical port ([`Backend::ovn_port`]), and OVN's DHCP, router and
//! port security serve them. The default VPCs' guests still sit on the hosts' Linux bridge
//! (their addresses are unique across accounts there), guarded by nwfilter.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ovn::{Desired, Dhcp, Router, RouterPort, Switch, SwitchPort};
use sha2::{Digest, Sha256};
use storage::tables::VPCS;
use storage::{InstanceRecord, InstanceState};

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
}

impl Interface {
    pub fn of(record: &InstanceRecord) -> Option<Self> {
        (record.state != InstanceState::Terminated).then(|| Self {
            id: record.network_interface_id.clone(),
            subnet_id: record.subnet_id.clone(),
            mac: record.mac.clone(),
            address: record.private_ip.clone(),
        })
    }
}

/// Open vSwitch's integration bridge on every host, which `ovn-controller` programs.
pub const INTEGRATION_BRIDGE: &str = "br-int";

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
pub fn desired(installation: &str, vpcs: &[(String, String, Vec<Subnet>)], interfaces: &[Interface]) -> Desired {
    let mut by_subnet: BTreeMap<&str, Vec<&Interface>> = BTreeMap::new();
    for interface in interfaces {
        by_subnet.entry(interface.subnet_id.as_str()).or_default().push(interface);
    }
    let mut out = Desired { installation: installation.to_owned(), ..Default::default() };
    for (vpc_id, vpc_cidr, subnets) in vpcs {
        let mut router = Router { name: format!("stratus-{vpc_id}"), owner: vpc_id.clone(), ports: Vec::new() };
        for subnet in subnets {
            let router_port = format!("stratus-{}-rtr", subnet.id);
            let mac = router_mac(&subnet.id);
            router.ports.push(RouterPort {
                name: router_port.clone(),
                mac: mac.clone(),
                networks: vec![format!("{}/{}", subnet.router(), subnet.prefix)],
            });
            let mut ports: Vec<SwitchPort> = by_subnet
                .get(subnet.id.as_str())
                .into_iter()
                .flatten()
                .map(|i| SwitchPort {
                    name: port_name(installation, &i.id),
                    owner: i.id.clone(),
                    mac: i.mac.clone(),
                    addresses: vec![i.address.clone()],
                    port_security: true,
                })
                .collect();
            ports.sort_by(|a, b| a.name.cmp(&b.name));
            out.switches.push(Switch {
                name: format!("stratus-{}", subnet.id),
                owner: subnet.id.clone(),
                router_port: Some(router_port),
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
    out
}

/// The OVN a backend writes to, and what it last wrote.
pub(crate) struct OvnSync {
    pub northbound: ovn::Northbound,
    /// What the last successful reconciliation made OVN hold, and when.
    pub last: std::sync::Mutex<Option<(Desired, Instant)>>,
}

impl Backend {
    /// Keeps OVN's northbound database at `db` (`unix:/…/ovnnb_db.sock`) in step with the store.
    pub fn with_ovn(mut self, db: &str) -> Self {
        self.ovn = Some(OvnSync { northbound: ovn::Northbound::new(db), last: Default::default() });
        self
    }

    /// The OVN logical port an instance's NIC is plugged in as, when its VPC is one of its own
    /// (not a default VPC, whose guests share the hosts' bridge).
    pub fn ovn_port(&self, record: &InstanceRecord) -> Result<Option<String>> {
        let vpc = self.store().read(|tx| tx.get(&VPCS, &format!("{}/{}", record.account, record.vpc_id)))?;
        if crate::network::lease_scope(vpc.as_ref()).is_empty() {
            return Ok(None);
        }
        Ok(Some(port_name(self.installation()?, &record.network_interface_id)))
    }

    /// Whether instances can be given a VPC of their own here: OVN is configured, or no host
    /// runs guests that could use a network (libvirt's test driver).
    pub(crate) fn ensure_vpc_networking(&self, vpc_id: &str) -> Result<()> {
        let runs_guests = self.hosts().iter().any(|h| h.accelerator != crate::hypervisor::Accelerator::Test);
        if self.ovn.is_some() || !runs_guests {
            return Ok(());
        }
        Err(Error::UnsupportedOperation(format!(
            "Instances in {vpc_id} need OVN, which this Stratus is not configured with: run scripts/setup-host \
             and set [network] ovn_northbound (see the README's VPC networking section)."
        )))
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
        let vpcs = self.store().read(|tx| tx.scan(&VPCS, ""))?;
        let vpcs: Vec<(String, String, Vec<Subnet>)> = vpcs
            .into_iter()
            .map(|(_, v)| Ok((v.id.clone(), v.cidr.clone(), self.subnets(&v.account, &v.id)?)))
            .collect::<Result<_>>()?;
        Ok(desired(self.installation()?, &vpcs, interfaces))
    }

    /// Reconciles OVN with the store when what is wanted changed or [`FULL_RECONCILE`] passed;
    /// a no-op without a configured OVN. Blocks on `ovn-nbctl`. Called by every sweep.
    pub fn sync_ovn(&self, interfaces: &[Interface]) -> Result<Option<ovn::Applied>> {
        let Some(sync) = &self.ovn else { return Ok(None) };
        let wanted = self.desired_network(interfaces)?;
        {
            let last = sync.last.lock().unwrap_or_else(|p| p.into_inner());
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
        Interface { id: id.into(), subnet_id: subnet.into(), mac: "52:54:00:00:00:01".into(), address: address.into() }
    }

    #[test]
    fn each_account_is_a_router_each_subnet_a_switch_each_interface_a_port() {
        let b = backend();
        b.default_vpc("111111111111", "vpc-a").unwrap();
        b.default_vpc("222222222222", "vpc-z").unwrap();
        let (a, z) = (b.subnets("111111111111", "vpc-a").unwrap(), b.subnets("222222222222", "vpc-z").unwrap());
        let vpcs = vec![
            ("vpc-a".to_owned(), "172.31.0.0/16".to_owned(), a.clone()),
            ("vpc-z".to_owned(), "172.31.0.0/16".to_owned(), z.clone()),
        ];
        // The same address in both accounts: two ports on two switches of two routers.
        let interfaces = [interface("eni-1", &a[0].id, "172.31.0.4"), interface("eni-2", &z[0].id, "172.31.0.4")];
        let d = desired("0123456789abcdef", &vpcs, &interfaces);
        assert_eq!(d.routers.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["stratus-vpc-a", "stratus-vpc-z"]);
        assert_eq!(d.routers[0].ports[0].networks, ["172.31.0.1/20"]);
        let switch = &d.switches[0];
        assert_eq!((switch.owner.as_str(), switch.ports.len()), (a[0].id.as_str(), 1));
        assert_eq!(switch.ports[0].address_entry(), "52:54:00:00:00:01 172.31.0.4");
        let dhcp = switch.dhcp.as_ref().unwrap();
        assert_eq!(
            (dhcp.cidr.as_str(), dhcp.router.as_str(), dhcp.dns_server.as_str()),
            ("172.31.0.0/20", "172.31.0.1", "172.31.0.2")
        );
        assert_eq!(dhcp.server_mac, d.routers[0].ports[0].mac, "DHCP answers from the router's port");
        assert_ne!(d.routers[0].ports[0].mac, d.routers[1].ports[0].mac);
        assert_eq!(d.switches[1].ports[0].name, port_name("0123456789abcdef", "eni-2"));
        assert_eq!(d.switches[1].ports[0].owner, "eni-2");
        assert_eq!(port_name("0123456789abcdef", "eni-2").len(), 36, "a UUID, as libvirt names ports");
        assert_ne!(port_name("0123456789abcdef", "eni-2"), port_name("fedcba9876543210", "eni-2"));
        // An interface of a subnet no VPC lists is not wanted anywhere.
        let stray = desired("0123456789abcdef", &vpcs[..1], &interfaces);
        assert_eq!(stray.switches.iter().map(|s| s.ports.len()).sum::<usize>(), 1);
    }
}
