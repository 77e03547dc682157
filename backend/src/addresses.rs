//! Elastic IPs: public addresses from the installation's pool, held by accounts and pointed at
//! their instances' network interfaces (issue 16).
//!
//! 1. The pool is one IPv4 block on the operator's public network ([`PublicNetwork`]; by
//!    default the documentation range `198.51.100.0/24` with its gateway at `.1`). Each address
//!    is held by at most one account at a time ([`storage::tables::PUBLIC_ADDRESSES`]);
//!    AllocateAddress takes the lowest free one.
//! 2. An address is associated with an instance (its primary interface) or an interface, in a
//!    VPC with an internet gateway attached, as on EC2; another association needs
//!    `AllowReassociation`. An instance that goes keeps nothing: its association goes with it.
//! 3. An associated address cannot be released, and a VPC's gateway cannot be detached while
//!    addresses are mapped into it.
//! 4. A VPC with an internet gateway attached takes one address of the pool too: its
//!    router's on the public network, which answers for the VPC's Elastic IPs (AWS hides it).
//!
//! What OVN makes of an association (1:1 NAT on the VPC's router) is [`crate::vpc_network`].

use std::net::Ipv4Addr;

use storage::tables::{ADDRESSES, ADDRESS_ASSOCIATIONS, INSTANCES, INTERNET_GATEWAYS, NAT_GATEWAYS, PUBLIC_ADDRESSES};
use storage::{AddressAssociationRecord, AddressRecord, InstanceState, NameRecord, Reads, WriteTx};

use crate::vpcs::Cidr;
use crate::{ids, invalid, now_ms, tags, Backend, Error, ResourceKind, Result};

/// The operator's public network: where Elastic IPs come from and where their traffic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicNetwork {
    pub cidr: Cidr,
    /// The public network's router (the way to the internet).
    pub gateway: Ipv4Addr,
}

impl Default for PublicNetwork {
    fn default() -> Self {
        Self {
            cidr: Cidr { network: Ipv4Addr::new(198, 51, 100, 0), prefix: 24 },
            gateway: Ipv4Addr::new(198, 51, 100, 1),
        }
    }
}

impl PublicNetwork {
    /// Reads `cidr` and `gateway` as the operator configures them.
    pub fn parse(cidr: &str, gateway: Option<&str>) -> std::result::Result<Self, String> {
        let cidr = Cidr::parse(cidr).filter(|c| c.prefix <= 30).ok_or_else(|| {
            format!("public network {cidr}: expected a CIDR block of at least 4 addresses, host bits clear")
        })?;
        let gateway = match gateway {
            Some(text) => text.parse().map_err(|_| format!("public gateway {text}: expected an IPv4 address"))?,
            None => Ipv4Addr::from(u32::from(cidr.network) + 1),
        };
        let network = Self { cidr, gateway };
        if !network.contains(gateway) {
            return Err(format!("public gateway {gateway} is outside {}", network.cidr));
        }
        Ok(network)
    }

    pub(crate) fn contains(&self, address: Ipv4Addr) -> bool {
        self.cidr.contains(Cidr { network: address, prefix: 32 })
    }

    /// The addresses that can be handed out: all but the network's own, its broadcast address
    /// and the gateway.
    pub fn pool(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let first = u32::from(self.cidr.network);
        let size = 1u32 << (32 - self.cidr.prefix);
        (first + 1..first + size - 1).map(Ipv4Addr::from).filter(move |a| *a != self.gateway)
    }
}

fn key(account: &str, id: &str) -> String {
    format!("{account}/{id}")
}

pub(crate) fn address_in(tx: &impl Reads, account: &str, allocation_id: &str) -> Result<AddressRecord> {
    tx.get(&ADDRESSES, &key(account, allocation_id))?
        .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::ElasticIp, id: allocation_id.to_owned() })
}

/// The account's address whose association is `association_id`.
fn address_associated(tx: &impl Reads, account: &str, association_id: &str) -> Result<AddressRecord> {
    tx.scan(&ADDRESSES, &format!("{account}/"))?
        .into_iter()
        .map(|(_, a)| a)
        .find(|a| a.association.as_ref().is_some_and(|x| x.id == association_id))
        .ok_or_else(|| Error::AssociationNotFound(association_id.to_owned()))
}

/// Takes the lowest free address of the pool for `holder` (`{account}/{id}`).
pub(crate) fn take_public_address(tx: &WriteTx, network: &PublicNetwork, holder: &str) -> Result<Ipv4Addr> {
    for address in network.pool() {
        if tx.get(&PUBLIC_ADDRESSES, &address.to_string())?.is_none() {
            tx.insert(&PUBLIC_ADDRESSES, &address.to_string(), &NameRecord { id: holder.to_owned() })?;
            return Ok(address);
        }
    }
    Err(Error::AddressLimitExceeded)
}

/// Gives `address` back to the pool if `holder` holds it.
pub(crate) fn give_back_public_address(tx: &WriteTx, address: &str, holder: &str) -> Result<()> {
    if tx.get(&PUBLIC_ADDRESSES, address)?.is_some_and(|n| n.id == holder) {
        tx.remove(&PUBLIC_ADDRESSES, address)?;
    }
    Ok(())
}

/// The NAT gateway whose address `allocation_id` is, if any: that association is the NAT
/// gateway's for as long as it exists.
fn held_by_nat(tx: &impl Reads, account: &str, allocation_id: &str) -> Result<Option<String>> {
    Ok(tx
        .scan(&NAT_GATEWAYS, &format!("{account}/"))?
        .into_iter()
        .map(|(_, n)| n)
        .find(|n| n.allocation_id == allocation_id)
        .map(|n| n.id))
}

/// Drops the associations that point at `instance_id` (it is going).
pub(crate) fn release_instance_addresses(tx: &WriteTx, account: &str, instance_id: &str) -> Result<()> {
    for (address_key, mut address) in tx.scan(&ADDRESSES, &format!("{account}/"))? {
        if address.association.as_ref().is_some_and(|a| a.instance_id.as_deref() == Some(instance_id)) {
            address.association = None;
            tx.insert(&ADDRESSES, &address_key, &address)?;
        }
    }
    Ok(())
}

/// The account's addresses associated with interface `interface_id`, under their keys, read
/// through the associations' interface index: not every address of the account.
pub(crate) fn associated_with(
    tx: &impl Reads,
    account: &str,
    interface_id: &str,
) -> Result<Vec<(String, AddressRecord)>> {
    let prefix = storage::derived::address_associations_prefix(account, interface_id);
    let mut keys = Vec::new();
    tx.walk_keys(&ADDRESS_ASSOCIATIONS, &prefix, None, |entry, _| {
        keys.push(key(account, &entry[prefix.len()..]));
        Ok(true)
    })?;
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    Ok(tx.get_many(&ADDRESSES, &keys)?)
}

/// The associations that point at interface `interface_id` name `instance_id` as theirs: the
/// instance it became the primary interface of, or none once it outlives that instance.
pub(crate) fn name_interface_instance(
    tx: &WriteTx,
    account: &str,
    interface_id: &str,
    instance_id: Option<&str>,
) -> Result<()> {
    for (address_key, mut address) in associated_with(tx, account, interface_id)? {
        if let Some(association) = address.association.as_mut() {
            association.instance_id = instance_id.map(str::to_owned);
            tx.insert(&ADDRESSES, &address_key, &address)?;
        }
    }
    Ok(())
}

/// Drops the associations that point at the interface `interface_id` (it is going).
pub(crate) fn release_interface_addresses(tx: &WriteTx, account: &str, interface_id: &str) -> Result<()> {
    for (address_key, mut address) in associated_with(tx, account, interface_id)? {
        address.association = None;
        tx.insert(&ADDRESSES, &address_key, &address)?;
    }
    Ok(())
}

/// Drops the association that points at `private_ip` of `interface_id` (the address is going).
pub(crate) fn release_private_address(tx: &WriteTx, account: &str, interface_id: &str, private_ip: &str) -> Result<()> {
    for (address_key, mut address) in associated_with(tx, account, interface_id)? {
        if address.association.as_ref().is_some_and(|a| a.private_ip == private_ip) {
            address.association = None;
            tx.insert(&ADDRESSES, &address_key, &address)?;
        }
    }
    Ok(())
}

/// `addresses` with, for each pointed at an interface of its own, the instance that interface
/// is attached to now (a point read of that interface).
fn with_instances(tx: &impl Reads, account: &str, mut addresses: Vec<AddressRecord>) -> Result<Vec<AddressRecord>> {
    for association in addresses.iter_mut().filter_map(|a| a.association.as_mut()) {
        if association.instance_id.is_some() {
            continue;
        }
        let interface =
            tx.get(&storage::tables::NETWORK_INTERFACES, &key(account, &association.network_interface_id))?;
        association.instance_id = interface
            .and_then(|i| i.attachment)
            .filter(|a| a.state == storage::AttachmentState::Attached)
            .map(|a| a.instance_id);
    }
    Ok(addresses)
}

/// What an association points at: an instance's primary interface, or an interface of its own
/// (with the instance it is attached to, if any).
struct Pointee {
    instance_id: Option<String>,
    network_interface_id: String,
    /// Its private addresses, the primary first.
    addresses: Vec<String>,
    vpc_id: String,
    subnet_id: String,
}

fn pointee(tx: &impl Reads, account: &str, target: &Target) -> Result<Pointee> {
    let live = |i: &storage::InstanceRecord| i.state != InstanceState::Terminated;
    let of_instance = |i: &storage::InstanceRecord| Pointee {
        instance_id: Some(i.id.clone()),
        network_interface_id: i.network_interface_id.clone(),
        addresses: std::iter::once(&i.private_ip).chain(&i.secondary_ips).cloned().collect(),
        vpc_id: i.vpc_id.clone(),
        subnet_id: i.subnet_id.clone(),
    };
    match target {
        Target::Instance(id) => tx
            .get(&INSTANCES, &key(account, id))?
            .filter(live)
            .map(|i| of_instance(&i))
            .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Instance, id: id.clone() }),
        Target::NetworkInterface(id) => {
            if let Some(interface) = tx.get(&storage::tables::NETWORK_INTERFACES, &key(account, id))? {
                return Ok(Pointee {
                    instance_id: None,
                    network_interface_id: interface.id.clone(),
                    addresses: interface.addresses().cloned().collect(),
                    vpc_id: interface.vpc_id.clone(),
                    subnet_id: interface.subnet_id.clone(),
                });
            }
            let owner = crate::listing::primary_interface_owner(tx, account, id)?;
            owner
                .and_then(|instance_key| tx.get(&INSTANCES, &instance_key).transpose())
                .transpose()?
                .filter(live)
                .map(|i| of_instance(&i))
                .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::NetworkInterface, id: id.clone() })
        }
    }
}

/// Whether any public address of the account is mapped into `vpc_id` (an Elastic IP, or an
/// instance's own).
pub(crate) fn mapped_into(tx: &impl Reads, account: &str, vpc_id: &str) -> Result<bool> {
    let elastic = tx
        .scan(&ADDRESSES, &format!("{account}/"))?
        .iter()
        .any(|(_, a)| a.association.as_ref().is_some_and(|x| x.vpc_id == vpc_id));
    Ok(elastic || tx.any_live_instance_with(account, "vpc-id", vpc_id, |i| i.public_ip.is_some())?)
}

/// What AssociateAddress points the address at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Instance(String),
    NetworkInterface(String),
}

impl Backend {
    pub fn public_network(&self) -> PublicNetwork {
        self.public_network
    }

    /// Takes addresses for Elastic IPs from `network`.
    pub fn with_public_network(mut self, network: PublicNetwork) -> Self {
        self.public_network = network;
        self
    }

    /// The account's Elastic IPs, every one (EC2 does not page DescribeAddresses: an account
    /// holds a few, from a pool the operator sizes). See [`Backend::addresses_named`].
    pub fn addresses(&self, account: &str) -> Result<Vec<AddressRecord>> {
        self.addresses_named(account, &[], &[])
    }

    /// The account's Elastic IPs with these allocation ids or public addresses, by point reads;
    /// those that name none of the account's are simply not among them. With neither, every
    /// one. One pointed at an interface of its own shows the instance that interface is
    /// attached to now (the association itself names the interface alone, as the interface may
    /// move between instances).
    pub fn addresses_named(
        &self,
        account: &str,
        allocation_ids: &[String],
        public_ips: &[String],
    ) -> Result<Vec<AddressRecord>> {
        self.store().read(|tx| {
            if allocation_ids.is_empty() && public_ips.is_empty() {
                let every = tx.scan(&ADDRESSES, &format!("{account}/"))?.into_iter().map(|(_, a)| a).collect();
                return with_instances(tx, account, every);
            }
            let mut keys: Vec<String> = allocation_ids.iter().map(|id| key(account, id)).collect();
            // The pool's holders of the addresses (one read for all on PostgreSQL), those that
            // are this account's (the pool lends addresses to gateways and instances too,
            // under other keys, which name no Elastic IP below).
            let ips: Vec<&str> = public_ips.iter().map(String::as_str).collect();
            for (_, holder) in tx.get_many(&PUBLIC_ADDRESSES, &ips)? {
                if holder.id.split_once('/').is_some_and(|(owner, _)| owner == account) {
                    keys.push(holder.id);
                }
            }
            keys.sort_unstable();
            keys.dedup();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let addresses = tx.get_many(&ADDRESSES, &keys)?.into_iter().map(|(_, a)| a).collect();
            with_instances(tx, account, addresses)
        })
    }

    /// The account's Elastic IPs associated with interface `interface_id` (one candidate of a
    /// filter that reads public addresses): a walk of that interface's entries in the
    /// associations' index.
    pub fn addresses_on_interface(&self, account: &str, interface_id: &str) -> Result<Vec<AddressRecord>> {
        self.store().read(|tx| Ok(associated_with(tx, account, interface_id)?.into_iter().map(|(_, a)| a).collect()))
    }

    /// The account's Elastic IPs associated with these interfaces (a page of instances or
    /// interfaces shows its own): one walk of the account's keys in the associations' interface
    /// index (only associated addresses are there, a few from the operator's pool, none for most
    /// accounts), then the addresses of the page's interfaces alone, in one read. Not a walk per
    /// interface: on PostgreSQL each would be a round trip, for nothing in most pages.
    pub fn addresses_on_interfaces<'a>(
        &self,
        account: &str,
        interfaces: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<AddressRecord>> {
        let wanted: std::collections::HashSet<&str> = interfaces.into_iter().collect();
        self.store().read(|tx| {
            let prefix = format!("{account}/");
            let mut keys = Vec::new();
            tx.walk_keys(&ADDRESS_ASSOCIATIONS, &prefix, None, |entry, _| {
                if let Some((interface, allocation)) = entry[prefix.len()..].split_once('/') {
                    if wanted.contains(interface) {
                        keys.push(key(account, allocation));
                    }
                }
                Ok(true)
            })?;
            keys.sort_unstable();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            Ok(tx.get_many(&ADDRESSES, &keys)?.into_iter().map(|(_, a)| a).collect())
        })
    }

    /// AllocateAddress: the lowest free address of the pool. (A chosen address is not offered:
    /// whether it is free would tell what other accounts hold.)
    pub fn allocate_address(&self, account: &str, tags: &[(String, String)]) -> Result<AddressRecord> {
        tags::validate_tags(tags)?;
        let network = self.public_network;
        let allocation_id = ids::resource_id("eipalloc");
        self.store().write(|tx| {
            let address = take_public_address(tx, &network, &key(account, &allocation_id))?;
            let record = AddressRecord {
                allocation_id: allocation_id.clone(),
                account: account.to_owned(),
                public_ip: address.to_string(),
                association: None,
                created_ms: now_ms(),
            };
            tx.insert(&ADDRESSES, &key(account, &allocation_id), &record)?;
            tags::put_tags(tx, account, &allocation_id, tags)?;
            Ok(record)
        })
    }

    /// The allocation id of the account's address `public_ip` (requests may name it so).
    pub fn allocation_of(&self, account: &str, public_ip: &str) -> Result<String> {
        // Addresses the pool lent to something else (a gateway, an instance's own) are no
        // Elastic IPs: not found.
        self.store().read(|tx| {
            let holder = tx.get(&PUBLIC_ADDRESSES, public_ip)?.map(|n| n.id);
            match holder.as_deref().and_then(|h| h.split_once('/')) {
                Some((owner, allocation))
                    if owner == account && tx.get(&ADDRESSES, &key(account, allocation))?.is_some() =>
                {
                    Ok(allocation.to_owned())
                }
                _ => Err(Error::AddressNotFound(public_ip.to_owned())),
            }
        })
    }

    /// AssociateAddress: answers the association id.
    pub fn associate_address(
        &self,
        account: &str,
        allocation_id: &str,
        target: &Target,
        private_ip: Option<&str>,
        allow_reassociation: bool,
    ) -> Result<String> {
        self.network_changed_after(self.store().write(|tx| {
            let mut address = address_in(tx, account, allocation_id)?;
            let instance = pointee(tx, account, target)?;
            let private_ip = match private_ip {
                Some(asked) if !instance.addresses.iter().any(|a| a == asked) => {
                    return Err(invalid(
                        "PrivateIpAddress",
                        format!("The private address {asked} is not an address of {}", instance.network_interface_id),
                    ))
                }
                Some(asked) => asked.to_owned(),
                None => instance.addresses[0].clone(),
            };
            let gateways = tx.scan(&INTERNET_GATEWAYS, &format!("{account}/"))?;
            if !gateways.iter().any(|(_, g)| g.vpc_id.as_deref() == Some(instance.vpc_id.as_str())) {
                return Err(Error::VpcWithoutGateway(instance.vpc_id.clone()));
            }
            if let Some(nat) = held_by_nat(tx, account, allocation_id)? {
                return Err(Error::AddressInUseBy { allocation: allocation_id.to_owned(), user: nat });
            }
            if let Some(current) = &address.association {
                let same =
                    current.network_interface_id == instance.network_interface_id && current.private_ip == private_ip;
                if !same && !allow_reassociation {
                    return Err(Error::AlreadyAssociated(format!("{allocation_id} (associated with {})", current.id)));
                }
                if same {
                    return Ok(current.id.clone());
                }
            }
            // One Elastic IP per private address: one it has already is disassociated (and stays
            // the account's), as EC2 does.
            for (other_key, mut other) in tx.scan(&ADDRESSES, &format!("{account}/"))? {
                let holds = other.association.as_ref().is_some_and(|a| {
                    a.network_interface_id == instance.network_interface_id && a.private_ip == private_ip
                });
                if holds && other.allocation_id != allocation_id {
                    other.association = None;
                    tx.insert(&ADDRESSES, &other_key, &other)?;
                }
            }
            let association = AddressAssociationRecord {
                id: ids::resource_id("eipassoc"),
                instance_id: instance.instance_id.clone(),
                network_interface_id: instance.network_interface_id.clone(),
                private_ip,
                vpc_id: instance.vpc_id.clone(),
                subnet_id: instance.subnet_id.clone(),
            };
            address.association = Some(association.clone());
            tx.insert(&ADDRESSES, &key(account, allocation_id), &address)?;
            Ok(association.id)
        }))
    }

    /// DisassociateAddress.
    pub fn disassociate_address(&self, account: &str, association_id: &str) -> Result<()> {
        self.network_changed_after(self.store().write(|tx| {
            let mut address = address_associated(tx, account, association_id)?;
            if let Some(nat) = held_by_nat(tx, account, &address.allocation_id)? {
                return Err(Error::AddressInUseBy { allocation: address.allocation_id, user: nat });
            }
            address.association = None;
            tx.insert(&ADDRESSES, &key(account, &address.allocation_id), &address)?;
            Ok(())
        }))
    }

    /// ReleaseAddress: back to the pool, once nothing points at it.
    pub fn release_address(&self, account: &str, allocation_id: &str) -> Result<()> {
        self.store().write(|tx| {
            let address = address_in(tx, account, allocation_id)?;
            if let Some(association) = &address.association {
                return Err(Error::AddressAssociated {
                    allocation: allocation_id.to_owned(),
                    association: association.id.clone(),
                });
            }
            tx.remove(&ADDRESSES, &key(account, allocation_id))?;
            give_back_public_address(tx, &address.public_ip, &key(account, allocation_id))?;
            tags::drop_tags(tx, account, allocation_id)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_leaves_out_the_network_broadcast_and_gateway() {
        let network = PublicNetwork::parse("198.51.100.0/29", Some("198.51.100.6")).unwrap();
        let pool: Vec<String> = network.pool().map(|a| a.to_string()).collect();
        assert_eq!(pool, ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5"]);
        assert_eq!(PublicNetwork::default().pool().next(), Some(Ipv4Addr::new(198, 51, 100, 2)));
        assert!(PublicNetwork::parse("198.51.100.0/24", Some("192.0.2.1")).is_err());
        assert!(PublicNetwork::parse("198.51.100.1/24", None).is_err());
        assert!(PublicNetwork::parse("198.51.100.0/31", None).is_err());
    }
}
