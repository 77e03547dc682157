//! The accounts' networks as OVN should hold them (issue 16, in progress).
//!
//! Every account's default VPC becomes a logical router, each of its default subnets (one per
//! zone, [`crate::network`]) a logical switch on that router with OVN's DHCP, and every
//! instance that is not terminated a switch port named by its network interface id, with its
//! MAC and address and port security. VPCs of different accounts are different routers, so the
//! same address in two accounts never meets.
//!
//! [`desired`] is a pure function of the store's records. When a northbound database is
//! configured ([`Backend::with_ovn`]), each sweep reconciles OVN with it ([`Backend::sync_ovn`]):
//! at once when the wanted network changed, and every [`FULL_RECONCILE`] anyway, which repairs
//! drift and finishes whatever a crash interrupted. Guests are not plugged into OVN yet: their
//! NICs stay on the hosts' bridge until the data-plane increment.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ovn::{Desired, Dhcp, Router, RouterPort, Switch, SwitchPort};
use sha2::{Digest, Sha256};
use storage::tables::ACCOUNTS;
use storage::{InstanceRecord, InstanceState};

use crate::network::Subnet;
use crate::{Backend, Result};

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
                    name: i.id.clone(),
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

    /// The configured OVN northbound database and, when it does not answer, why. `None`
    /// without OVN. Blocks.
    pub fn ovn_check(&self) -> Option<(String, Option<String>)> {
        let sync = self.ovn.as_ref()?;
        let answer = sync.northbound.nbctl(&["ls-list"]);
        Some((sync.northbound.db().to_owned(), answer.err().map(|e| e.to_string())))
    }

    /// What OVN should hold for this installation now.
    pub fn desired_network(&self, interfaces: &[Interface]) -> Result<Desired> {
        let accounts = self.store().read(|tx| tx.scan(&ACCOUNTS, ""))?;
        let vpcs: Vec<(String, String, Vec<Subnet>)> = accounts
            .into_iter()
            .map(|(_, a)| {
                let subnets = self.subnets(&a.id, &a.default_vpc_id);
                (a.default_vpc_id, crate::network::VPC_CIDR.to_owned(), subnets)
            })
            .collect();
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
        let (a, z) = (b.subnets("111111111111", "vpc-a"), b.subnets("222222222222", "vpc-z"));
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
        assert_eq!(d.switches[1].ports[0].name, "eni-2");
        // An interface of a subnet no VPC lists is not wanted anywhere.
        let stray = desired("0123456789abcdef", &vpcs[..1], &interfaces);
        assert_eq!(stray.switches.iter().map(|s| s.ports.len()).sum::<usize>(), 1);
    }
}
