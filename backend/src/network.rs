//! Subnets as launches see them, and the addresses instances get.
//!
//! The VPCs and subnets themselves are records ([`crate::vpcs`]). Where OVN is not configured,
//! the default VPCs' subnets share one L2 segment (the hosts' bridge), which is why their
//! addresses are unique across accounts ([`storage::tables::LEASES`]). Every VPC on OVN is an
//! address space of its own (its leases are keyed by the VPC), so two VPCs, default ones
//! included, may hold the same address. As on AWS, the first four addresses of a subnet and its last
//! are reserved; `.1` is the router (on the shared segment, the hosts' bridge address).
//!
//! Guests that ask for an address by DHCP (cloud images) get theirs from a dnsmasq that
//! `scripts/setup-host` runs on the segment: before each boot, Stratus writes the instance's
//! `mac,address,hostname` into one file per instance in dnsmasq's `--dhcp-hostsdir`, which
//! dnsmasq watches, and removes it when the instance is gone.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use storage::derived::{lease_block_key, LEASE_BLOCK};
use storage::tables::{LEASES, LEASE_BLOCKS};
use storage::{LeaseBlockRecord, LeaseRecord, WriteTx};

use crate::{Backend, Error, Result};

pub const VPC_CIDR: &str = crate::vpcs::DEFAULT_VPC_CIDR;
const SUBNET_PREFIX: u8 = 20;

#[derive(Debug, Clone, PartialEq)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub zone: String,
    pub zone_index: usize,
    pub network: Ipv4Addr,
    pub prefix: u8,
    /// One of the default VPC's subnets, where launches without a subnet land.
    pub default_for_az: bool,
    /// Instances launched here get a public address unless asked otherwise.
    pub map_public_ip: bool,
    /// Where its addresses are leased: empty for the hosts' shared segment, `{vpc id}/`
    /// for a VPC of its own.
    pub lease_scope: String,
}

impl Subnet {
    /// A subnet record as launches use it; `vpc` is its VPC's record.
    pub fn of(record: &storage::SubnetRecord, vpc: Option<&storage::VpcRecord>, zone_index: usize) -> Self {
        let cidr = crate::vpcs::Cidr::parse(&record.cidr);
        Self {
            id: record.id.clone(),
            vpc_id: record.vpc_id.clone(),
            zone: record.zone.clone(),
            zone_index,
            network: cidr.map_or(Ipv4Addr::UNSPECIFIED, |c| c.network),
            prefix: cidr.map_or(32, |c| c.prefix),
            default_for_az: record.default_for_az,
            map_public_ip: record.map_public_ip_on_launch,
            lease_scope: lease_scope(vpc),
        }
    }

    /// The key of this subnet's lease of `address`.
    pub fn lease_key(&self, address: Ipv4Addr) -> String {
        format!("{}{address}", self.lease_scope)
    }

    pub fn cidr(&self) -> String {
        format!("{}/{}", self.network, self.prefix)
    }

    fn size(&self) -> u32 {
        1 << (32 - self.prefix)
    }

    pub fn router(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::MAX << (32 - self.prefix))
    }

    /// Addresses instances may get: all but the first four and the last.
    pub fn assignable(&self) -> impl Iterator<Item = Ipv4Addr> {
        let base = u32::from(self.network);
        (base + 4..base + self.size() - 1).map(Ipv4Addr::from)
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & u32::from(self.netmask()) == u32::from(self.network)
    }

    /// How many addresses instances may get, for DescribeSubnets.
    pub fn assignable_count(&self) -> u32 {
        self.size() - 5
    }
}

/// Where a VPC's addresses are leased ([`Subnet::lease_scope`]): its own space on OVN, the one
/// space of the hosts' shared bridge otherwise (a VPC without a record is an old default one).
pub fn lease_scope(vpc: Option<&storage::VpcRecord>) -> String {
    match vpc {
        Some(vpc) if !vpc.shares_bridge() => format!("{}/", vpc.id),
        _ => String::new(),
    }
}

/// The default subnet an address of the VPC belongs to, as `network/prefix`.
pub fn subnet_cidr_of(address: Ipv4Addr) -> String {
    format!("{}/{SUBNET_PREFIX}", Ipv4Addr::from(u32::from(address) & (u32::MAX << (32 - SUBNET_PREFIX))))
}

/// The router (`.1`) of the default subnet an address of the VPC belongs to.
pub fn router_of(address: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(address) & (u32::MAX << (32 - SUBNET_PREFIX))) + 1)
}

/// A new locally administered MAC in QEMU's `52:54:00` range.
pub fn new_mac() -> String {
    let bytes: [u8; 3] = rand::random();
    format!("52:54:00:{:02x}:{:02x}:{:02x}", bytes[0], bytes[1], bytes[2])
}

/// dnsmasq's files beside its hosts dir, as `scripts/setup-host` lays them out.
fn dnsmasq_file(hosts_dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    hosts_dir.parent().unwrap_or(hosts_dir).join(name)
}

/// Releases the leases (`address`, `mac`) that `which` picks, with dnsmasq's `dhcp_release`.
pub(crate) fn release_leases(hosts_dir: &std::path::Path, which: impl Fn(&str, &str) -> bool) {
    let Ok(leases) = std::fs::read_to_string(dnsmasq_file(hosts_dir, "dnsmasq.leases")) else { return };
    let Ok(interface) = std::fs::read_to_string(dnsmasq_file(hosts_dir, "dnsmasq.interface")) else { return };
    // A lease line: expiry, MAC, address, hostname, client id.
    for line in leases.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, mac, ip, ..] = fields[..] else { continue };
        if which(ip, mac) {
            let released = std::process::Command::new("dhcp_release").args([interface.trim(), ip, mac]).status();
            if !released.is_ok_and(|s| s.success()) {
                tracing::warn!(%ip, %mac, "dhcp_release failed; the lease runs out by itself");
            }
        }
    }
}

pub(crate) fn reload_dnsmasq(hosts_dir: &std::path::Path) {
    let Ok(pid) = std::fs::read_to_string(dnsmasq_file(hosts_dir, "dnsmasq.pid")) else { return };
    let pid = pid.trim();
    // A stale pid file must not make us signal whatever took that pid since.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() == "dnsmasq" {
        let _ = std::process::Command::new("kill").args(["-HUP", pid]).status();
    }
}

/// Takes the lowest free address of `subnet` for `instance_key`, inside the caller's
/// transaction (so concurrent launches never share an address), stepping over the addresses
/// in `held_elsewhere` (leftovers of other installations, [`crate::ownership`]). The leased
/// addresses are found in storage's bitmaps of 4,096 ([`storage::derived`]), not by asking
/// address by address.
pub(crate) fn lease_address(
    tx: &WriteTx,
    subnet: &Subnet,
    instance_key: &str,
    mac: &str,
    held_elsewhere: &BTreeSet<Ipv4Addr>,
) -> Result<Ipv4Addr> {
    let (first, end) = (u32::from(subnet.network) + 4, u32::from(subnet.network) + subnet.size() - 1);
    let mut from = first;
    while from < end {
        let (block_key, offset) = lease_block_key(&subnet.lease_scope, Ipv4Addr::from(from));
        let block_start = from - offset as u32;
        let block_end = (block_start + LEASE_BLOCK).min(end);
        let block = tx.get(&LEASE_BLOCKS, &block_key)?.unwrap_or_else(LeaseBlockRecord::empty);
        let mut offset = offset;
        while let Some(bit) = block.first_free(offset, (block_end - block_start) as usize) {
            let address = Ipv4Addr::from(block_start + bit as u32);
            if held_elsewhere.contains(&address) {
                offset = bit + 1;
                continue;
            }
            let key = subnet.lease_key(address);
            tx.insert(&LEASES, &key, &LeaseRecord { instance_key: instance_key.to_owned(), mac: mac.to_owned() })?;
            return Ok(address);
        }
        from = block_end;
    }
    Err(Error::AddressesExhausted(subnet.id.clone()))
}

/// Takes `address` of `subnet` for `instance_key` (RunInstances' `PrivateIpAddress`).
pub(crate) fn lease_given_address(
    tx: &WriteTx,
    subnet: &Subnet,
    address: Ipv4Addr,
    instance_key: &str,
    mac: &str,
    held_elsewhere: &BTreeSet<Ipv4Addr>,
) -> Result<Ipv4Addr> {
    if !subnet.assignable().any(|a| a == address) {
        return Err(crate::invalid(
            "PrivateIpAddress",
            format!("Address {address} is not an assignable address of subnet {} ({})", subnet.id, subnet.cidr()),
        ));
    }
    let key = subnet.lease_key(address);
    if held_elsewhere.contains(&address) || tx.get(&LEASES, &key)?.is_some() {
        return Err(Error::AddressInUse(address.to_string()));
    }
    tx.insert(&LEASES, &key, &LeaseRecord { instance_key: instance_key.to_owned(), mac: mac.to_owned() })?;
    Ok(address)
}

/// Gives back `address` (in the VPC `scope`, [`lease_scope`]) if `instance_key` holds it.
pub(crate) fn release_address(tx: &WriteTx, scope: &str, address: &str, instance_key: &str) -> Result<()> {
    let key = format!("{scope}{address}");
    if tx.get(&LEASES, &key)?.is_some_and(|lease| lease.instance_key == instance_key) {
        tx.remove(&LEASES, &key)?;
    }
    Ok(())
}

impl Backend {
    /// Tells the DHCP server the instance's address (written whole, then renamed into place),
    /// marked as this installation's ([`crate::ownership`]).
    pub(crate) fn publish_dhcp_host(&self, record: &storage::InstanceRecord) -> Result<()> {
        let Some(dir) = self.dhcp_hosts_dir.as_ref().filter(|d| d.is_dir()) else { return Ok(()) };
        let line = crate::ownership::dhcp_entry(self.installation()?, self.data_dir(), &record.mac, &record.private_ip);
        let path = dir.join(&record.id);
        let partial = dir.join(format!(".{}.partial", record.id));
        let written = std::fs::write(&partial, line).and_then(|()| std::fs::rename(&partial, &path));
        if let Err(error) = written {
            tracing::warn!(instance = %record.id, %error, "could not publish the DHCP host entry");
        }
        // dnsmasq will not hand out a configured address leased to another MAC: a guest that
        // held it before (and never released it) must not keep it from this one.
        release_leases(dir, |ip, mac| ip == record.private_ip && mac != record.mac);
        reload_dnsmasq(dir);
        Ok(())
    }

    pub(crate) fn withdraw_dhcp_host(&self, record: &storage::InstanceRecord) {
        let Some(dir) = &self.dhcp_hosts_dir else { return };
        match std::fs::remove_file(dir.join(&record.id)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(instance = %record.id, %error, "could not withdraw the DHCP host entry")
            }
            Err(_) => return,
            Ok(()) => {}
        }
        release_leases(dir, |ip, mac| ip == record.private_ip && mac == record.mac);
        // dnsmasq reads new files by itself but forgets removed ones only when told.
        reload_dnsmasq(dir);
    }

    /// The instance that holds `address` on the shared segment, if any: the metadata service's
    /// way to tell who asks.
    pub fn instance_at(&self, address: Ipv4Addr) -> Result<Option<storage::InstanceRecord>> {
        self.instance_in("", address)
    }

    /// The instance that holds `address` in the address space `scope` ([`lease_scope`]).
    pub fn instance_in(&self, scope: &str, address: Ipv4Addr) -> Result<Option<storage::InstanceRecord>> {
        self.store().read(|tx| {
            let Some(lease) = tx.get(&LEASES, &format!("{scope}{address}"))? else { return Ok(None) };
            Ok(tx.get(&storage::tables::INSTANCES, &lease.instance_key)?)
        })
    }

    /// One subnet of the account, by id.
    pub fn subnet(&self, account: &str, id: &str) -> Result<Subnet> {
        let zones: Vec<&String> = self.topology().regions.iter().flat_map(|r| r.zones.iter()).collect();
        self.store().read(|tx| {
            let record = crate::vpcs::subnet_in(tx, account, id)?;
            let vpc = tx.get(&storage::tables::VPCS, &format!("{account}/{}", record.vpc_id))?;
            let index = zones.iter().position(|z| **z == record.zone).unwrap_or(usize::MAX);
            Ok(Subnet::of(&record, vpc.as_ref(), index))
        })
    }

    /// The subnets of `vpc_id` (in the account), zone by zone.
    pub fn subnets(&self, account: &str, vpc_id: &str) -> Result<Vec<Subnet>> {
        let zones: Vec<&String> = self.topology().regions.iter().flat_map(|r| r.zones.iter()).collect();
        self.store().read(|tx| {
            let vpc = tx.get(&storage::tables::VPCS, &format!("{account}/{vpc_id}"))?;
            let mut subnets: Vec<Subnet> = tx
                .scan(&storage::tables::SUBNETS, &format!("{account}/"))?
                .iter()
                .filter(|(_, s)| s.vpc_id == vpc_id)
                .map(|(_, s)| {
                    Subnet::of(s, vpc.as_ref(), zones.iter().position(|z| **z == s.zone).unwrap_or(usize::MAX))
                })
                .collect();
            subnets.sort_by_key(|a| (a.zone_index, a.network));
            Ok(subnets)
        })
    }

    /// Addresses of a subnet not leased to any instance.
    pub fn free_addresses(&self, subnet: &Subnet) -> Result<u32> {
        let leased = self.store().read(|tx| tx.scan(&LEASES, &subnet.lease_scope))?;
        let used = leased
            .iter()
            .filter_map(|(key, _)| key.strip_prefix(subnet.lease_scope.as_str()))
            .filter(|ip| ip.parse::<Ipv4Addr>().is_ok_and(|a| subnet.contains(a)))
            .count();
        Ok(subnet.assignable_count().saturating_sub(used as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::backend;

    /// No other installation holds anything.
    const NONE: BTreeSet<Ipv4Addr> = BTreeSet::new();

    /// The default VPC's subnets of an account without a record, made on first use.
    fn default_subnets(b: &Backend, account: &str, vpc: &str) -> Vec<Subnet> {
        assert_eq!(b.default_vpc(account, vpc).unwrap().as_deref(), Some(vpc));
        b.subnets(account, vpc).unwrap()
    }

    #[test]
    fn vpcs_of_their_own_lease_the_same_addresses_apart() {
        let b = backend();
        let vpcs = ["a", "b"].map(|account| b.create_vpc(account, "10.0.0.0/16", None, &[]).unwrap());
        let subnets = vpcs.each_ref().map(|v| {
            let record = b.create_subnet(&v.account, &v.id, "10.0.1.0/24", None, None, &[]).unwrap();
            b.subnets(&v.account, &v.id).unwrap().into_iter().find(|s| s.id == record.id).unwrap()
        });
        let wanted = Ipv4Addr::new(10, 0, 1, 10);
        for (subnet, who) in subnets.iter().zip(["a/i-1", "b/i-2"]) {
            let taken = b.store().write(|tx| lease_given_address(tx, subnet, wanted, who, "m", &NONE)).unwrap();
            assert_eq!(taken, wanted);
        }
        let again = b.store().write(|tx| lease_given_address(tx, &subnets[0], wanted, "a/i-3", "m", &NONE));
        assert!(matches!(again, Err(Error::AddressInUse(_))), "{again:?}");
        assert_eq!(b.free_addresses(&subnets[0]).unwrap(), 250);
        let lowest = b.store().write(|tx| lease_address(tx, &subnets[1], "b/i-4", "m", &NONE)).unwrap();
        assert_eq!(lowest, Ipv4Addr::new(10, 0, 1, 4));
        assert_eq!(b.instance_at(wanted).unwrap(), None, "the shared segment's lookup never sees a VPC's own");
        b.store().write(|tx| release_address(tx, &subnets[0].lease_scope, "10.0.1.10", "a/i-1")).unwrap();
        assert_eq!(b.free_addresses(&subnets[0]).unwrap(), 251);
        assert_eq!(b.free_addresses(&subnets[1]).unwrap(), 249);
    }

    #[test]
    fn one_subnet_per_zone_with_aws_reservations() {
        let b = backend();
        let subnets = default_subnets(&b, "111122223333", "vpc-1");
        assert_eq!(subnets.len(), 1);
        let s = &subnets[0];
        assert_eq!(s.cidr(), "172.31.0.0/20");
        assert_eq!(s.router(), Ipv4Addr::new(172, 31, 0, 1));
        assert_eq!(s.netmask(), Ipv4Addr::new(255, 255, 240, 0));
        assert_eq!(s.assignable().next(), Some(Ipv4Addr::new(172, 31, 0, 4)));
        assert_eq!(s.assignable().last(), Some(Ipv4Addr::new(172, 31, 15, 254)));
        assert_eq!(s.assignable_count() as usize, s.assignable().count());
        let last = s.assignable().last().unwrap();
        assert_eq!((subnet_cidr_of(last), router_of(last)), (s.cidr(), s.router()), "derived from any address");
        assert_eq!(s.id, default_subnets(&b, "111122223333", "vpc-1")[0].id, "ids are stable");
        assert_ne!(s.id, default_subnets(&b, "999922223333", "vpc-2")[0].id);
    }

    #[test]
    fn leases_are_unique_and_reused_after_release() {
        let b = backend();
        let subnet = default_subnets(&b, "a", "vpc-1").remove(0);
        let (first, second) = b
            .store()
            .write(|tx| {
                Ok::<_, Error>((
                    lease_address(tx, &subnet, "a/i-1", "m1", &NONE)?,
                    lease_address(tx, &subnet, "b/i-2", "m2", &NONE)?,
                ))
            })
            .unwrap();
        assert_eq!(first, Ipv4Addr::new(172, 31, 0, 4));
        assert_eq!(second, Ipv4Addr::new(172, 31, 0, 5));
        b.store().write(|tx| release_address(tx, "", "172.31.0.4", "someone/else")).unwrap();
        b.store().write(|tx| release_address(tx, "", "172.31.0.4", "a/i-1")).unwrap();
        let again = b.store().write(|tx| lease_address(tx, &subnet, "c/i-3", "m3", &NONE)).unwrap();
        assert_eq!(again, first);
        let mac = new_mac();
        assert!(mac.starts_with("52:54:00:") && mac.len() == 17);
    }

    #[test]
    fn a_full_subnet_is_exhausted_until_an_address_comes_back() {
        let b = backend();
        let subnet = default_subnets(&b, "a", "vpc-1").remove(0);
        let all = b
            .store()
            .write(|tx| {
                (0..subnet.assignable_count())
                    .map(|i| lease_address(tx, &subnet, &format!("a/i-{i}"), "m", &NONE))
                    .collect::<Result<Vec<_>>>()
            })
            .unwrap();
        assert_eq!(all, subnet.assignable().collect::<Vec<_>>(), "lowest first, every one once");
        let full = b.store().write(|tx| lease_address(tx, &subnet, "a/i-x", "m", &NONE));
        assert!(matches!(full, Err(Error::AddressesExhausted(_))), "{full:?}");
        b.store().write(|tx| release_address(tx, "", "172.31.7.9", "a/i-1797")).unwrap();
        let back = b.store().write(|tx| lease_address(tx, &subnet, "a/i-y", "m", &NONE)).unwrap();
        assert_eq!(back, Ipv4Addr::new(172, 31, 7, 9));
    }

    #[test]
    fn a_given_address_is_taken_only_if_assignable_and_free() {
        let b = backend();
        let subnet = default_subnets(&b, "a", "vpc-1").remove(0);
        let wanted = Ipv4Addr::new(172, 31, 9, 20);
        let taken = b.store().write(|tx| lease_given_address(tx, &subnet, wanted, "a/i-1", "m1", &NONE)).unwrap();
        assert_eq!(taken, wanted);
        let again = b.store().write(|tx| lease_given_address(tx, &subnet, wanted, "b/i-2", "m2", &NONE));
        assert!(matches!(again, Err(Error::AddressInUse(ref a)) if a == "172.31.9.20"), "{again:?}");
        for reserved in [[172, 31, 0, 1], [172, 31, 0, 3], [172, 31, 15, 255], [172, 31, 16, 4], [10, 0, 0, 4]] {
            let refused = b.store().write(|tx| lease_given_address(tx, &subnet, reserved.into(), "c/i-3", "m3", &NONE));
            assert!(matches!(refused, Err(Error::InvalidParameter { name: "PrivateIpAddress", .. })), "{reserved:?}");
        }
        // The lowest-free allocation steps around a given address.
        let next = b.store().write(|tx| lease_address(tx, &subnet, "d/i-4", "m4", &NONE)).unwrap();
        assert_eq!(next, Ipv4Addr::new(172, 31, 0, 4));
        assert_eq!(b.instance_at(wanted).unwrap(), None, "a lease without an instance record names no one");
    }

    #[test]
    fn addresses_held_elsewhere_are_never_handed_out() {
        let b = backend();
        let subnet = default_subnets(&b, "a", "vpc-1").remove(0);
        let held: BTreeSet<Ipv4Addr> = [[172, 31, 0, 4], [172, 31, 0, 5], [172, 31, 0, 7]].map(Ipv4Addr::from).into();
        let taken = b
            .store()
            .write(|tx| {
                (0..3).map(|i| lease_address(tx, &subnet, &format!("a/i-{i}"), "m", &held)).collect::<Result<Vec<_>>>()
            })
            .unwrap();
        assert_eq!(taken, [[172, 31, 0, 6], [172, 31, 0, 8], [172, 31, 0, 9]].map(Ipv4Addr::from));
        let asked =
            b.store().write(|tx| lease_given_address(tx, &subnet, Ipv4Addr::new(172, 31, 0, 7), "a/i-9", "m", &held));
        assert!(matches!(asked, Err(Error::AddressInUse(ref a)) if a == "172.31.0.7"), "{asked:?}");
        // Once the leftover is gone, the address is an address like any other.
        let freed = b.store().write(|tx| lease_address(tx, &subnet, "a/i-10", "m", &NONE)).unwrap();
        assert_eq!(freed, Ipv4Addr::new(172, 31, 0, 4));
    }
}
