//! Subnets as launches see them, and the addresses instances get.
//!
//! The VPCs and subnets themselves are records ([`crate::vpcs`]). Every VPC, an account's
//! default one included, is an address space of its own ([`lease_scope`]): two VPCs, of one
//! account or of two, may hold the same address, and OVN keeps them apart
//! ([`crate::vpc_network`]). As on AWS, the first four addresses of a subnet and its last are
//! reserved; `.1` is the VPC router's port on the subnet, which OVN's DHCP names as the
//! guests' router.

use std::net::Ipv4Addr;

use storage::derived::{lease_block_key, LEASE_BLOCK};
use storage::tables::{LEASES, LEASE_BLOCKS};
use storage::{LeaseBlockRecord, LeaseRecord, Reads, WriteTx};

use crate::{Backend, Error, Result};

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
    /// Where its addresses are leased: its VPC's address space ([`lease_scope`]).
    pub lease_scope: String,
}

impl Subnet {
    /// A subnet record as launches use it.
    pub fn of(record: &storage::SubnetRecord, zone_index: usize) -> Self {
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
            lease_scope: lease_scope(&record.vpc_id),
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
        let (first, end) = self.assignable_range();
        (first..end).map(Ipv4Addr::from)
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & u32::from(self.netmask()) == u32::from(self.network)
    }

    /// The addresses instances may get, as numbers: `first..end`. (`network + size` would not
    /// fit in 32 bits for the last subnet of the address space: the broadcast address does.)
    fn assignable_range(&self) -> (u32, u32) {
        let base = u32::from(self.network);
        (base + 4, base + (self.size() - 1))
    }

    /// How many addresses instances may get, for DescribeSubnets.
    pub fn assignable_count(&self) -> u32 {
        self.size() - 5
    }
}

/// Where a VPC's addresses are leased ([`Subnet::lease_scope`]): `{vpc id}/`, a space of its
/// own. (Keys without a scope are leases of the hosts' shared bridge, from a Stratus before
/// every VPC was on OVN: [`crate::vpcs`] moves them under their holder's VPC at start.)
pub fn lease_scope(vpc_id: &str) -> String {
    format!("{vpc_id}/")
}

/// A new locally administered MAC in QEMU's `52:54:00` range.
pub fn new_mac() -> String {
    let bytes: [u8; 3] = rand::random();
    format!("52:54:00:{:02x}:{:02x}:{:02x}", bytes[0], bytes[1], bytes[2])
}

/// Takes the lowest free address of `subnet` for `instance_key`, inside the caller's
/// transaction (so concurrent launches never share an address). The leased addresses are
/// found in storage's bitmaps of 4,096 ([`storage::derived`]), not by asking address by address.
pub(crate) fn lease_address(tx: &WriteTx, subnet: &Subnet, instance_key: &str, mac: &str) -> Result<Ipv4Addr> {
    let mut taken = None;
    for_each_block(subnet, |block_key, block_start, from, to| {
        let block = tx.get(&LEASE_BLOCKS, block_key)?.unwrap_or_else(LeaseBlockRecord::empty);
        taken = block.first_free(from, to).map(|bit| Ipv4Addr::from(block_start + bit as u32));
        Ok(taken.is_none())
    })?;
    let address = taken.ok_or_else(|| Error::AddressesExhausted(subnet.id.clone()))?;
    let key = subnet.lease_key(address);
    tx.insert(&LEASES, &key, &LeaseRecord { instance_key: instance_key.to_owned(), mac: mac.to_owned() })?;
    Ok(address)
}

/// Hands `f` each lease bitmap that covers the subnet's assignable addresses, in order: its
/// key, the number of its first address, and the bits of the subnet in it (`from..to`), until
/// `f` answers false.
fn for_each_block(subnet: &Subnet, mut f: impl FnMut(&str, u32, usize, usize) -> Result<bool>) -> Result<()> {
    let (first, end) = subnet.assignable_range();
    let mut from = first;
    while from < end {
        let (block_key, offset) = lease_block_key(&subnet.lease_scope, Ipv4Addr::from(from));
        let block_start = from - offset as u32;
        // Saturating: the last block of the address space ends past 32 bits.
        let block_end = block_start.saturating_add(LEASE_BLOCK).min(end);
        if !f(&block_key, block_start, offset, (block_end - block_start) as usize)? {
            break;
        }
        from = block_end;
    }
    Ok(())
}

/// Addresses of `subnet` not leased to any instance, read in `tx`: counted in the lease
/// bitmaps, a read per 4,096 addresses, not by reading the VPC's leases (as many as its
/// instances).
fn free_in(tx: &impl Reads, subnet: &Subnet) -> Result<u32> {
    let mut used = 0;
    for_each_block(subnet, |block_key, _, from, to| {
        if let Some(block) = tx.get(&LEASE_BLOCKS, block_key)? {
            used += block.count(from, to);
        }
        Ok(true)
    })?;
    Ok(subnet.assignable_count().saturating_sub(used))
}

/// Takes `address` of `subnet` for `instance_key` (RunInstances' `PrivateIpAddress`).
pub(crate) fn lease_given_address(
    tx: &WriteTx,
    subnet: &Subnet,
    address: Ipv4Addr,
    instance_key: &str,
    mac: &str,
) -> Result<Ipv4Addr> {
    if !subnet.assignable().any(|a| a == address) {
        return Err(crate::invalid(
            "PrivateIpAddress",
            format!("Address {address} is not an assignable address of subnet {} ({})", subnet.id, subnet.cidr()),
        ));
    }
    let key = subnet.lease_key(address);
    if tx.get(&LEASES, &key)?.is_some() {
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
    /// The instance that holds `address` in the address space `scope` ([`lease_scope`]).
    pub fn instance_in(&self, scope: &str, address: Ipv4Addr) -> Result<Option<storage::InstanceRecord>> {
        self.store().read(|tx| {
            let Some(lease) = tx.get(&LEASES, &format!("{scope}{address}"))? else { return Ok(None) };
            Ok(tx.get(&storage::tables::INSTANCES, &lease.instance_key)?)
        })
    }

    /// One subnet of the account, by id.
    pub fn subnet(&self, account: &str, id: &str) -> Result<Subnet> {
        let record = self.store().read(|tx| crate::vpcs::subnet_in(tx, account, id))?;
        Ok(self.subnet_of(&record))
    }

    /// The subnets of `vpc_id` (in the account), zone by zone.
    pub fn subnets(&self, account: &str, vpc_id: &str) -> Result<Vec<Subnet>> {
        let zones: Vec<&String> = self.topology().regions.iter().flat_map(|r| r.zones.iter()).collect();
        self.store().read(|tx| {
            let mut subnets: Vec<Subnet> = tx
                .scan(&storage::tables::SUBNETS, &format!("{account}/"))?
                .iter()
                .filter(|(_, s)| s.vpc_id == vpc_id)
                .map(|(_, s)| Subnet::of(s, zones.iter().position(|z| **z == s.zone).unwrap_or(usize::MAX)))
                .collect();
            subnets.sort_by_key(|a| (a.zone_index, a.network));
            Ok(subnets)
        })
    }

    /// Addresses of a subnet not leased to any instance.
    pub fn free_addresses(&self, subnet: &Subnet) -> Result<u32> {
        self.store().read(|tx| free_in(tx, subnet))
    }

    /// As [`Backend::free_addresses`], for the subnet `record` describes, inside a read the
    /// caller holds (a listing's: on PostgreSQL a read nested in another is not in its
    /// snapshot).
    pub fn free_addresses_in(&self, tx: &impl Reads, record: &storage::SubnetRecord) -> Result<u32> {
        free_in(tx, &self.subnet_of(record))
    }

    /// The subnet `record` describes, placed among the topology's zones.
    pub fn subnet_of(&self, record: &storage::SubnetRecord) -> Subnet {
        let mut zones = self.topology().regions.iter().flat_map(|r| r.zones.iter());
        Subnet::of(record, zones.position(|z| *z == record.zone).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::backend;

    /// The default VPC's subnets of an account without a record, made on first use.
    fn default_subnets(b: &Backend, account: &str, vpc: &str) -> Vec<Subnet> {
        assert_eq!(b.default_vpc(account, vpc).unwrap().as_deref(), Some(vpc));
        b.subnets(account, vpc).unwrap()
    }

    #[test]
    fn the_last_subnet_of_the_address_space_leases_and_counts_to_its_end() {
        let b = backend();
        let vpc = b.create_vpc("a", "255.255.0.0/16", None, &[]).unwrap();
        let record = b.create_subnet("a", &vpc.id, "255.255.255.240/28", None, None, &[]).unwrap();
        let subnet = b.subnet("a", &record.id).unwrap();
        assert_eq!(b.free_addresses(&subnet).unwrap(), 11);
        let mut leased = Vec::new();
        for n in 0..11 {
            let who = format!("a/i-{n}");
            leased.push(b.store().write(|tx| lease_address(tx, &subnet, &who, "m")).unwrap());
        }
        assert_eq!(leased.first(), Some(&Ipv4Addr::new(255, 255, 255, 244)));
        assert_eq!(leased.last(), Some(&Ipv4Addr::new(255, 255, 255, 254)), "the broadcast address is kept");
        assert_eq!(b.free_addresses(&subnet).unwrap(), 0);
        let full = b.store().write(|tx| lease_address(tx, &subnet, "a/i-x", "m"));
        assert!(matches!(full, Err(Error::AddressesExhausted(_))), "{full:?}");
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
            let taken = b.store().write(|tx| lease_given_address(tx, subnet, wanted, who, "m")).unwrap();
            assert_eq!(taken, wanted);
        }
        let again = b.store().write(|tx| lease_given_address(tx, &subnets[0], wanted, "a/i-3", "m"));
        assert!(matches!(again, Err(Error::AddressInUse(_))), "{again:?}");
        assert_eq!(b.free_addresses(&subnets[0]).unwrap(), 250);
        let lowest = b.store().write(|tx| lease_address(tx, &subnets[1], "b/i-4", "m")).unwrap();
        assert_eq!(lowest, Ipv4Addr::new(10, 0, 1, 4));
        let holders = subnets
            .each_ref()
            .map(|s| b.store().read(|tx| tx.get(&LEASES, &s.lease_key(wanted))).unwrap().map(|l| l.instance_key));
        assert_eq!(holders, [Some("a/i-1".to_owned()), Some("b/i-2".to_owned())], "each VPC's lease is its own");
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
        assert_eq!(s.lease_scope, "vpc-1/", "a default VPC is an address space of its own");
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
                Ok::<_, Error>((lease_address(tx, &subnet, "a/i-1", "m1")?, lease_address(tx, &subnet, "b/i-2", "m2")?))
            })
            .unwrap();
        assert_eq!(first, Ipv4Addr::new(172, 31, 0, 4));
        assert_eq!(second, Ipv4Addr::new(172, 31, 0, 5));
        b.store().write(|tx| release_address(tx, &subnet.lease_scope, "172.31.0.4", "someone/else")).unwrap();
        b.store().write(|tx| release_address(tx, &subnet.lease_scope, "172.31.0.4", "a/i-1")).unwrap();
        let again = b.store().write(|tx| lease_address(tx, &subnet, "c/i-3", "m3")).unwrap();
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
                    .map(|i| lease_address(tx, &subnet, &format!("a/i-{i}"), "m"))
                    .collect::<Result<Vec<_>>>()
            })
            .unwrap();
        assert_eq!(all, subnet.assignable().collect::<Vec<_>>(), "lowest first, every one once");
        let full = b.store().write(|tx| lease_address(tx, &subnet, "a/i-x", "m"));
        assert!(matches!(full, Err(Error::AddressesExhausted(_))), "{full:?}");
        b.store().write(|tx| release_address(tx, &subnet.lease_scope, "172.31.7.9", "a/i-1797")).unwrap();
        let back = b.store().write(|tx| lease_address(tx, &subnet, "a/i-y", "m")).unwrap();
        assert_eq!(back, Ipv4Addr::new(172, 31, 7, 9));
    }

    #[test]
    fn a_given_address_is_taken_only_if_assignable_and_free() {
        let b = backend();
        let subnet = default_subnets(&b, "a", "vpc-1").remove(0);
        let wanted = Ipv4Addr::new(172, 31, 9, 20);
        let taken = b.store().write(|tx| lease_given_address(tx, &subnet, wanted, "a/i-1", "m1")).unwrap();
        assert_eq!(taken, wanted);
        let again = b.store().write(|tx| lease_given_address(tx, &subnet, wanted, "b/i-2", "m2"));
        assert!(matches!(again, Err(Error::AddressInUse(ref a)) if a == "172.31.9.20"), "{again:?}");
        for reserved in [[172, 31, 0, 1], [172, 31, 0, 3], [172, 31, 15, 255], [172, 31, 16, 4], [10, 0, 0, 4]] {
            let refused = b.store().write(|tx| lease_given_address(tx, &subnet, reserved.into(), "c/i-3", "m3"));
            assert!(matches!(refused, Err(Error::InvalidParameter { name: "PrivateIpAddress", .. })), "{reserved:?}");
        }
        // The lowest-free allocation steps around a given address.
        let next = b.store().write(|tx| lease_address(tx, &subnet, "d/i-4", "m4")).unwrap();
        assert_eq!(next, Ipv4Addr::new(172, 31, 0, 4));
        assert_eq!(
            b.instance_in(&subnet.lease_scope, wanted).unwrap(),
            None,
            "a lease without an instance record names no one"
        );
    }
}
