//! Network interfaces of their own (issue 16): CreateNetworkInterface and what follows it.
//!
//! An instance's primary interface lives in its [`InstanceRecord`]; an interface made with
//! CreateNetworkInterface is a record of its own ([`NetworkInterfaceRecord`]) in one subnet, with
//! addresses leased in its VPC exactly like an instance's (so no instance or other interface
//! gets them), its security groups and a MAC. The flow:
//!
//! 1. Create leases its primary address (given or the lowest free) and any secondary ones.
//! 2. Attach records an attachment `attaching` at a device index (1 and up; 0 is the
//!    instance's own) and kicks the instance. The instance's converge
//!    ([`Backend::settle_instance_interfaces`]) hot-plugs the NIC into a running guest (or only
//!    settles the record for a stopped one, whose next start defines the domain with it) and
//!    marks it `attached`. Detach is the same the other way; a failed plug leaves the interface
//!    available again, as EC2 does.
//! 3. OVN gets a switch port per interface ([`crate::vpc_network`]): its addresses, its groups,
//!    and port security unless `SourceDestCheck` is off.
//! 4. An instance that terminates detaches its interfaces, or deletes those attached with
//!    `DeleteOnTermination`.
//! 5. A launch may take an available interface as the instance's primary one
//!    ([`adopt_interface`]): the interface's record goes, its leases pass to the instance, and
//!    the instance record holds it (`kept_interface`) until the instance goes, when it comes
//!    back available with its addresses, tags and Elastic IPs ([`give_back_primary_interface`])
//!    unless `DeleteOnTermination`. One reader of an interface's state, the instance record,
//!    while it is the primary one: no two records to keep in step.

use std::net::Ipv4Addr;

use storage::tables::{ATTACHMENT_IDS, INSTANCES, INTERFACE_ATTACHMENTS, NETWORK_INTERFACES};
use storage::{
    AttachmentState, InstanceRecord, InstanceState, InterfaceAttachmentRecord, NetworkInterfaceRecord, Reads, WriteTx,
};

use crate::hypervisor::Nic;
use crate::network::{self, Subnet};
use crate::{ids, invalid, now_ms, tags, Backend, Error, ResourceKind, Result};

/// How many interfaces an instance may have, its own included (EC2's smallest types allow 2;
/// Stratus allows what a small guest's PCI slots comfortably take).
pub const MAX_INTERFACES: u32 = 8;
/// How many private addresses one interface may hold, its primary included.
pub const MAX_ADDRESSES: usize = 10;

fn key(account: &str, id: &str) -> String {
    format!("{account}/{id}")
}

fn not_found(id: &str) -> Error {
    Error::ResourceNotFound { kind: ResourceKind::NetworkInterface, id: id.to_owned() }
}

pub(crate) fn interface_in(tx: &impl Reads, account: &str, id: &str) -> Result<NetworkInterfaceRecord> {
    tx.get(&NETWORK_INTERFACES, &key(account, id))?.ok_or_else(|| not_found(id))
}

/// The interfaces of its own attached to an instance, by device index.
pub(crate) fn attached_to(tx: &impl Reads, account: &str, instance_id: &str) -> Result<Vec<NetworkInterfaceRecord>> {
    let prefix = format!("{account}/{instance_id}/");
    let mut attached = Vec::new();
    for (index_key, _) in tx.scan(&INTERFACE_ATTACHMENTS, &prefix)? {
        if let Some(record) = tx.get(&NETWORK_INTERFACES, &key(account, &index_key[prefix.len()..]))? {
            attached.push(record);
        }
    }
    attached.sort_by_key(|i| i.attachment.as_ref().map_or(0, |a| a.device_index));
    Ok(attached)
}

/// The interface of its own (under its key) that attachment `attachment_id` attaches now, read
/// through the attachment ids' index: not every interface of the account.
fn attached_by(
    tx: &impl Reads,
    account: &str,
    attachment_id: &str,
) -> Result<Option<(String, NetworkInterfaceRecord)>> {
    let prefix = storage::derived::attachment_ids_prefix(account, attachment_id);
    let Some(entry) = crate::listing::first_key(tx, &ATTACHMENT_IDS, &prefix)? else { return Ok(None) };
    let record_key = key(account, &entry[prefix.len()..]);
    // The entry is written with the record, in one transaction; the record's own attachment
    // is what the caller acts on, so it is the one checked.
    let record = tx.get(&NETWORK_INTERFACES, &record_key)?;
    Ok(record.filter(|r| r.attachment.as_ref().is_some_and(|a| a.id == attachment_id)).map(|r| (record_key, r)))
}

/// Whether an interface of its own sits in `subnet_id` (which may then not go).
pub(crate) fn in_subnet(tx: &impl Reads, account: &str, subnet_id: &str) -> Result<bool> {
    Ok(tx.scan(&NETWORK_INTERFACES, &format!("{account}/"))?.iter().any(|(_, i)| i.subnet_id == subnet_id))
}

/// Whether an interface of its own is in `group_id` (which may then not go).
pub(crate) fn in_group(tx: &impl Reads, account: &str, group_id: &str) -> Result<bool> {
    Ok(tx
        .scan(&NETWORK_INTERFACES, &format!("{account}/"))?
        .iter()
        .any(|(_, i)| i.security_group_ids.iter().any(|g| g == group_id)))
}

/// The groups an interface of `vpc_id` is put in: those named (each of that VPC), or the VPC's
/// default group when none is.
fn groups_of(tx: &WriteTx, account: &str, vpc_id: &str, ids: &[String]) -> Result<Vec<String>> {
    crate::security_groups::resolve_launch_groups(tx, account, vpc_id, ids, &[])
}

/// Gives back every address `record` holds.
fn release_addresses(tx: &WriteTx, scope: &str, record: &NetworkInterfaceRecord) -> Result<()> {
    let holder = key(&record.account, &record.id);
    for address in record.addresses() {
        network::release_address(tx, scope, address, &holder)?;
    }
    Ok(())
}

/// What CreateNetworkInterface asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewInterface {
    pub subnet_id: String,
    pub private_ip: Option<Ipv4Addr>,
    /// Secondary addresses asked by value.
    pub secondary: Vec<Ipv4Addr>,
    /// How many more secondary addresses to take, lowest free first.
    pub secondary_count: u32,
    pub groups: Vec<String>,
    pub description: String,
    /// A retry with the same token answers the interface the first request made.
    pub client_token: Option<String>,
}

/// What ModifyNetworkInterfaceAttribute changes (one attribute per call on EC2).
#[derive(Debug, Clone, PartialEq)]
pub enum InterfaceChange {
    Groups(Vec<String>),
    Description(String),
    SourceDestCheck(bool),
    DeleteOnTermination { attachment_id: String, delete: bool },
}

/// A new interface of its own in `subnet` as `req` asks: its groups resolved, its addresses
/// leased (not yet stored).
fn new_interface(tx: &WriteTx, account: &str, subnet: &Subnet, req: &NewInterface) -> Result<NetworkInterfaceRecord> {
    let groups = groups_of(tx, account, &subnet.vpc_id, &req.groups)?;
    let id = ids::resource_id("eni");
    let holder = key(account, &id);
    let mac = network::new_mac();
    let primary = match req.private_ip {
        Some(ip) => network::lease_given_address(tx, subnet, ip, &holder, &mac)?,
        None => network::lease_address(tx, subnet, &holder, &mac)?,
    };
    let secondary_ips = lease_more(tx, subnet, &holder, &mac, &req.secondary, req.secondary_count)?;
    Ok(NetworkInterfaceRecord {
        id,
        account: account.to_owned(),
        vpc_id: subnet.vpc_id.clone(),
        subnet_id: subnet.id.clone(),
        zone: subnet.zone.clone(),
        mac,
        private_ip: primary.to_string(),
        secondary_ips,
        security_group_ids: groups,
        description: req.description.clone(),
        source_dest_check: true,
        attachment: None,
        created_ms: now_ms(),
        client_token: req.client_token.clone(),
        ended_attachment: None,
    })
}

/// Checks how many addresses an interface asks for.
pub(crate) fn check_address_count(asked: usize) -> Result<()> {
    if asked > MAX_ADDRESSES {
        return Err(Error::InvalidParameter {
            name: "SecondaryPrivateIpAddressCount",
            message: format!("Network interfaces hold at most {MAX_ADDRESSES} private addresses here ({asked} asked)."),
        });
    }
    Ok(())
}

/// Whose addresses AssignPrivateIpAddresses changes: an interface of its own, or an instance
/// (its primary interface), by its record's key, which is also what holds their leases.
struct Holder {
    lease_key: String,
    subnet_id: String,
    instance: bool,
}

/// The record of a [`Holder`], as read in a transaction.
enum Held {
    Own(Box<NetworkInterfaceRecord>),
    Instance(Box<InstanceRecord>),
}

impl Holder {
    fn read(&self, tx: &impl Reads, id: &str) -> Result<Held> {
        if self.instance {
            let record = tx.get(&INSTANCES, &self.lease_key)?.filter(|i| i.state != InstanceState::Terminated);
            return record.map(|r| Held::Instance(Box::new(r))).ok_or_else(|| not_found(id));
        }
        tx.get(&NETWORK_INTERFACES, &self.lease_key)?.map(|r| Held::Own(Box::new(r))).ok_or_else(|| not_found(id))
    }
}

impl Held {
    fn interface_id(&self) -> &str {
        match self {
            Self::Own(own) => &own.id,
            Self::Instance(instance) => &instance.network_interface_id,
        }
    }

    fn vpc_id(&self) -> &str {
        match self {
            Self::Own(own) => &own.vpc_id,
            Self::Instance(instance) => &instance.vpc_id,
        }
    }

    fn mac(&self) -> &str {
        match self {
            Self::Own(own) => &own.mac,
            Self::Instance(instance) => &instance.mac,
        }
    }

    fn primary(&self) -> &str {
        match self {
            Self::Own(own) => &own.private_ip,
            Self::Instance(instance) => &instance.private_ip,
        }
    }

    fn secondary(&mut self) -> &mut Vec<String> {
        match self {
            Self::Own(own) => &mut own.secondary_ips,
            Self::Instance(instance) => &mut instance.secondary_ips,
        }
    }

    fn holds(&self, address: &str) -> bool {
        let secondary = match self {
            Self::Own(own) => &own.secondary_ips,
            Self::Instance(instance) => &instance.secondary_ips,
        };
        self.primary() == address || secondary.iter().any(|a| a == address)
    }

    fn write(&self, tx: &WriteTx, key: &str) -> Result<()> {
        match self {
            Self::Own(own) => tx.insert(&NETWORK_INTERFACES, key, own.as_ref())?,
            Self::Instance(instance) => tx.insert(&INSTANCES, key, instance.as_ref())?,
        }
        Ok(())
    }
}

/// With `AllowReassignment`: another interface of the account (of its own, or an instance's
/// primary one) that holds `address` as a secondary address of `subnet` lets it go. The lease
/// names the holder; a primary address never moves.
fn take_secondary_from_others(
    tx: &WriteTx,
    subnet: &Subnet,
    account: &str,
    taker_key: &str,
    address: Ipv4Addr,
) -> Result<()> {
    let Some(lease) = tx.get(&storage::tables::LEASES, &subnet.lease_key(address))? else { return Ok(()) };
    let holder_key = lease.instance_key;
    if holder_key == taker_key || !holder_key.starts_with(&format!("{account}/")) {
        return Ok(());
    }
    let own = tx.get(&NETWORK_INTERFACES, &holder_key)?.is_some();
    let holder = Holder { lease_key: holder_key.clone(), subnet_id: subnet.id.clone(), instance: !own };
    let Ok(mut held) = holder.read(tx, &holder_key) else { return Ok(()) };
    let text = address.to_string();
    if !held.secondary().contains(&text) {
        return Ok(());
    }
    held.secondary().retain(|a| *a != text);
    network::release_address(tx, &subnet.lease_scope, &text, &holder_key)?;
    crate::addresses::release_private_address(tx, account, held.interface_id(), &text)?;
    held.write(tx, &holder_key)
}

/// Takes the addresses `wanted` (by value) and `count` more for `holder` in `subnet`.
pub(crate) fn lease_more(
    tx: &WriteTx,
    subnet: &Subnet,
    holder: &str,
    mac: &str,
    wanted: &[Ipv4Addr],
    count: u32,
) -> Result<Vec<String>> {
    let mut taken = Vec::new();
    for address in wanted {
        taken.push(network::lease_given_address(tx, subnet, *address, holder, mac)?.to_string());
    }
    for _ in 0..count {
        taken.push(network::lease_address(tx, subnet, holder, mac)?.to_string());
    }
    Ok(taken)
}

impl Backend {
    /// Every interface of its own of the account.
    pub fn network_interfaces(&self, account: &str) -> Result<Vec<NetworkInterfaceRecord>> {
        Ok(self
            .store()
            .read(|tx| tx.scan(&NETWORK_INTERFACES, &format!("{account}/")))?
            .into_iter()
            .map(|(_, i)| i)
            .collect())
    }

    /// The interfaces of their own attached to these instances, by instance id.
    pub fn interfaces_of_instances<'a>(
        &self,
        account: &str,
        instance_ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<std::collections::HashMap<String, Vec<NetworkInterfaceRecord>>> {
        self.store().read(|tx| {
            let mut found = std::collections::HashMap::new();
            for id in instance_ids {
                let attached = attached_to(tx, account, id)?;
                if !attached.is_empty() {
                    found.insert(id.to_owned(), attached);
                }
            }
            Ok(found)
        })
    }

    /// CreateNetworkInterface.
    pub fn create_network_interface(
        &self,
        account: &str,
        req: NewInterface,
        tags: &[(String, String)],
    ) -> Result<NetworkInterfaceRecord> {
        tags::validate_tags(tags)?;
        let subnet = self.subnet(account, &req.subnet_id)?;
        check_address_count(1 + req.secondary.len() + req.secondary_count as usize)?;
        self.store().write(|tx| {
            if let Some(token) = &req.client_token {
                let earlier = tx.scan(&NETWORK_INTERFACES, &format!("{account}/"))?;
                if let Some((_, made)) = earlier.into_iter().find(|(_, i)| i.client_token.as_ref() == Some(token)) {
                    if made.subnet_id != req.subnet_id {
                        return Err(Error::IdempotentParameterMismatch(token.clone()));
                    }
                    return Ok(made);
                }
            }
            // The subnet (and its VPC) may have gone since it was read.
            crate::vpcs::subnet_in(tx, account, &subnet.id)?;
            let record = new_interface(tx, account, &subnet, &req)?;
            tx.insert(&NETWORK_INTERFACES, &key(account, &record.id), &record)?;
            tags::put_tags(tx, account, &record.id, tags)?;
            Ok(record)
        })
    }

    /// DeleteNetworkInterface: only a detached one; its addresses go back to its subnet and an
    /// Elastic IP on it is disassociated (it stays the account's).
    pub fn delete_network_interface(&self, account: &str, id: &str) -> Result<()> {
        self.store().write(|tx| {
            let record = match tx.get(&NETWORK_INTERFACES, &key(account, id))? {
                Some(record) => record,
                None => {
                    // An instance's own interface goes with its instance.
                    if crate::listing::primary_interface_owner(tx, account, id)?.is_some() {
                        return Err(Error::InterfaceInUse(format!(
                            "The network interface '{id}' is currently in use."
                        )));
                    }
                    return Err(not_found(id));
                }
            };
            if record.attachment.is_some() {
                return Err(Error::InterfaceInUse(format!("The network interface '{id}' is currently in use.")));
            }
            self.drop_interface(tx, &record)
        })
    }

    /// Removes a detached interface: addresses, Elastic IP associations, tags.
    fn drop_interface(&self, tx: &WriteTx, record: &NetworkInterfaceRecord) -> Result<()> {
        let account = &record.account;
        release_addresses(tx, &network::lease_scope(&record.vpc_id), record)?;
        crate::addresses::release_interface_addresses(tx, account, &record.id)?;
        tags::drop_tags(tx, account, &record.id)?;
        tx.remove(&NETWORK_INTERFACES, &key(account, &record.id))?;
        Ok(())
    }

    /// AttachNetworkInterface: answers the attachment id. The NIC is plugged by the instance's
    /// converge.
    pub fn attach_network_interface(
        &self,
        account: &str,
        id: &str,
        instance_id: &str,
        device_index: u32,
    ) -> Result<String> {
        self.ensure_vpc_networking("Network interfaces")?;
        let attachment = self.store().write(|tx| {
            let mut record = interface_in(tx, account, id)?;
            let instance = tx
                .get(&INSTANCES, &key(account, instance_id))?
                .filter(|i| i.state != InstanceState::Terminated)
                .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Instance, id: instance_id.to_owned() })?;
            if let Some(current) = &record.attachment {
                return Err(Error::InterfaceInUse(format!(
                    "Interface: {id} in use (attached to {} as {}).",
                    current.instance_id, current.id
                )));
            }
            crate::volumes::check_attachable(&instance)?;
            if instance.vpc_id != record.vpc_id {
                return Err(invalid(
                    "NetworkInterfaceId",
                    format!("The network interface {id} and instance {instance_id} are in different VPCs."),
                ));
            }
            if instance.zone != record.zone {
                return Err(invalid(
                    "NetworkInterfaceId",
                    format!("The network interface {id} and instance {instance_id} are in different availability zones."),
                ));
            }
            let others = attached_to(tx, account, instance_id)?;
            let taken = device_index == 0 || others.iter().any(|o| o.attachment.as_ref().is_some_and(|a| a.device_index == device_index));
            if taken {
                return Err(invalid(
                    "DeviceIndex",
                    format!("Instance '{instance_id}' already has an interface attached at device index '{device_index}'."),
                ));
            }
            if device_index >= MAX_INTERFACES || others.len() as u32 + 1 >= MAX_INTERFACES {
                return Err(Error::AttachmentLimitExceeded(format!(
                    "Instance '{instance_id}' may have at most {MAX_INTERFACES} network interfaces (device indexes 0 to {}).",
                    MAX_INTERFACES - 1
                )));
            }
            let attachment = InterfaceAttachmentRecord {
                id: ids::resource_id("eni-attach"),
                instance_id: instance_id.to_owned(),
                device_index,
                state: AttachmentState::Attaching,
                attach_time_ms: now_ms(),
                delete_on_termination: false,
            };
            record.attachment = Some(attachment.clone());
            tx.insert(&NETWORK_INTERFACES, &key(account, id), &record)?;
            Ok::<_, Error>(attachment)
        })?;
        self.kick(&key(account, instance_id));
        Ok(attachment.id)
    }

    /// DetachNetworkInterface, by attachment id. `force` is accepted: the NIC is pulled from
    /// the guest either way (a guest cannot refuse a NIC's unplug as it can a disk's).
    pub fn detach_network_interface(&self, account: &str, attachment_id: &str) -> Result<()> {
        let instance_id = self.store().write(|tx| {
            let found = attached_by(tx, account, attachment_id)?;
            let Some((record_key, mut record)) = found else {
                // An instance's own interface stays with it.
                let primary = attachment_id.strip_prefix("eni-attach-").map(|hex| format!("eni-{hex}"));
                if let Some(eni) = primary {
                    if crate::listing::primary_interface_owner(tx, account, &eni)?.is_some() {
                        return Err(Error::OperationNotPermitted(
                            "The network interface at device index 0 cannot be detached.".into(),
                        ));
                    }
                }
                return Err(Error::AttachmentIdNotFound(attachment_id.to_owned()));
            };
            let Some(attachment) = record.attachment.as_mut() else { unreachable!("found by its attachment") };
            let instance = tx.get(&INSTANCES, &key(account, &attachment.instance_id))?;
            if instance.as_ref().is_some_and(|i| i.migration.is_some()) {
                return Err(Error::IncorrectInstanceState {
                    id: attachment.instance_id.clone(),
                    state: "migrating",
                    verb: "detached from",
                });
            }
            attachment.state = AttachmentState::Detaching;
            let instance_id = attachment.instance_id.clone();
            tx.insert(&NETWORK_INTERFACES, &record_key, &record)?;
            Ok::<_, Error>(instance_id)
        })?;
        self.kick(&key(account, &instance_id));
        Ok(())
    }

    /// ModifyNetworkInterfaceAttribute. An instance's own interface takes new groups (they are
    /// its instance's); its other attributes are fixed here.
    pub fn modify_network_interface(&self, account: &str, id: &str, change: InterfaceChange) -> Result<()> {
        self.network_changed_after(self.store().write(|tx| {
            let Some(mut record) = tx.get(&NETWORK_INTERFACES, &key(account, id))? else {
                let Some(instance_key) = crate::listing::primary_interface_owner(tx, account, id)? else {
                    return Err(not_found(id));
                };
                let Some(mut instance) = tx.get(&INSTANCES, &instance_key)? else { return Err(not_found(id)) };
                return match change {
                    InterfaceChange::Groups(groups) => {
                        instance.security_group_ids = groups_of(tx, account, &instance.vpc_id, &groups)?;
                        tx.insert(&INSTANCES, &instance_key, &instance)?;
                        Ok(())
                    }
                    InterfaceChange::SourceDestCheck(on) => {
                        crate::attributes::set_source_dest_check(&mut instance, on);
                        tx.insert(&INSTANCES, &instance_key, &instance)?;
                        Ok(())
                    }
                    _ => Err(Error::UnsupportedOperation(format!(
                        "{id} is the primary interface of {}: only its security groups and its \
                         source/destination check can change here.",
                        instance.id
                    ))),
                };
            };
            match change {
                InterfaceChange::Groups(groups) => {
                    record.security_group_ids = groups_of(tx, account, &record.vpc_id, &groups)?;
                }
                InterfaceChange::Description(description) => record.description = description,
                InterfaceChange::SourceDestCheck(check) => record.source_dest_check = check,
                InterfaceChange::DeleteOnTermination { attachment_id, delete } => match record.attachment.as_mut() {
                    Some(a) if a.id == attachment_id => a.delete_on_termination = delete,
                    _ => return Err(Error::AttachmentIdNotFound(attachment_id)),
                },
            }
            tx.insert(&NETWORK_INTERFACES, &key(account, id), &record)?;
            Ok(())
        }))
    }

    /// AssignPrivateIpAddresses: `addresses` by value and `count` more of the interface's
    /// subnet, on an interface of its own or an instance's primary one. With
    /// `allow_reassignment`, an address another interface of the account holds as a secondary
    /// one moves here. Answers the addresses assigned.
    pub fn assign_private_addresses(
        &self,
        account: &str,
        id: &str,
        addresses: &[Ipv4Addr],
        count: u32,
        allow_reassignment: bool,
    ) -> Result<Vec<String>> {
        let holder = self.address_holder(account, id)?;
        let subnet = self.subnet(account, &holder.subnet_id)?;
        self.network_changed_after(self.store().write(|tx| {
            let mut current = holder.read(tx, id)?;
            let wanted: Vec<Ipv4Addr> = addresses.iter().copied().filter(|a| !current.holds(&a.to_string())).collect();
            if 1 + current.secondary().len() + wanted.len() + count as usize > MAX_ADDRESSES {
                return Err(Error::AddressLimit(format!(
                    "Number of private addresses will exceed limit. {id} may hold {MAX_ADDRESSES}."
                )));
            }
            if allow_reassignment {
                for address in &wanted {
                    take_secondary_from_others(tx, &subnet, account, &holder.lease_key, *address)?;
                }
            }
            let mac = current.mac().to_owned();
            let taken = lease_more(tx, &subnet, &holder.lease_key, &mac, &wanted, count)?;
            current.secondary().extend(taken.iter().cloned());
            current.write(tx, &holder.lease_key)?;
            Ok(taken)
        }))
    }

    /// UnassignPrivateIpAddresses: secondary addresses only.
    pub fn unassign_private_addresses(&self, account: &str, id: &str, addresses: &[String]) -> Result<()> {
        let holder = self.address_holder(account, id)?;
        self.network_changed_after(self.store().write(|tx| {
            let mut current = holder.read(tx, id)?;
            if let Some(stranger) = addresses.iter().find(|a| !current.secondary().contains(a)) {
                return Err(invalid(
                    "PrivateIpAddress",
                    format!("Some of the specified addresses are not assigned to interface {id} ({stranger})."),
                ));
            }
            let scope = network::lease_scope(current.vpc_id());
            for address in addresses {
                network::release_address(tx, &scope, address, &holder.lease_key)?;
                crate::addresses::release_private_address(tx, account, id, address)?;
            }
            current.secondary().retain(|a| !addresses.contains(a));
            current.write(tx, &holder.lease_key)?;
            Ok(())
        }))
    }

    /// Who holds the addresses of interface `id`: an interface of its own, or the instance
    /// whose primary interface it is.
    fn address_holder(&self, account: &str, id: &str) -> Result<Holder> {
        self.store().read(|tx| {
            if let Some(own) = tx.get(&NETWORK_INTERFACES, &key(account, id))? {
                return Ok(Holder { lease_key: key(account, id), subnet_id: own.subnet_id, instance: false });
            }
            let Some(instance_key) = crate::listing::primary_interface_owner(tx, account, id)? else {
                return Err(not_found(id));
            };
            let instance = tx.get(&INSTANCES, &instance_key)?.filter(|i| i.state != InstanceState::Terminated);
            let Some(instance) = instance else { return Err(not_found(id)) };
            Ok(Holder { lease_key: instance_key, subnet_id: instance.subnet_id, instance: true })
        })
    }

    /// The NICs an instance's domain is defined with beyond its own: its attached interfaces
    /// (those being plugged too, so that a start in between defines them).
    pub(crate) fn extra_nics(&self, record: &InstanceRecord) -> Result<Vec<Nic>> {
        let attached = self.store().read(|tx| attached_to(tx, &record.account, &record.id))?;
        let installation = self.installation()?;
        Ok(attached
            .iter()
            .filter(|i| i.attachment.as_ref().is_some_and(|a| a.state != AttachmentState::Detaching))
            .map(|i| nic_of(installation, i))
            .collect())
    }

    /// The instance's part of its interfaces' work, run inside the instance's converge: plug
    /// and unplug. A running guest gets its NICs hot-plugged; for one that does not run only
    /// the records change. An instance with nothing waiting costs one read.
    pub(crate) fn settle_instance_interfaces(&self, record: &InstanceRecord) -> Result<()> {
        let waiting: Vec<NetworkInterfaceRecord> = self
            .store()
            .read(|tx| attached_to(tx, &record.account, &record.id))?
            .into_iter()
            .filter(|i| i.attachment.as_ref().is_some_and(|a| a.state != AttachmentState::Attached))
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        // libvirt's test driver cannot hot-plug a NIC (and runs no guest that could use one):
        // there, as for a guest that does not run, only the records change.
        let host = match self.hosts().get(&record.host_id) {
            Some(host) if record.state != InstanceState::Terminated && !host.config.is_test_driver() => {
                let running = host.driver.state(&record.id).map_err(Error::Driver)?.is_some_and(|s| !s.is_off());
                running.then_some(host.as_ref())
            }
            _ => None,
        };
        let installation = self.installation()?.to_owned();
        for interface in waiting {
            let Some(attachment) = interface.attachment.clone() else { continue };
            let record_key = key(&interface.account, &interface.id);
            match attachment.state {
                AttachmentState::Attaching => {
                    let nic = nic_of(&installation, &interface);
                    let result = host.map_or(Ok(()), |h| h.driver.attach_interface(&record.id, &nic));
                    if let Err(error) = &result {
                        tracing::warn!(interface = %interface.id, instance = %record.id, %error, "plugging the NIC failed");
                    }
                    self.end_interface_step(&record_key, &attachment.id, AttachmentState::Attaching, result.is_ok())?;
                }
                AttachmentState::Detaching => {
                    let nic = nic_of(&installation, &interface);
                    if let Some(Err(error)) = host.map(|h| h.driver.detach_interface(&record.id, &nic)) {
                        tracing::warn!(interface = %interface.id, instance = %record.id, %error, "unplug pending");
                        continue;
                    }
                    self.end_interface_step(&record_key, &attachment.id, AttachmentState::Detaching, false)?;
                }
                AttachmentState::Attached => {}
            }
        }
        Ok(())
    }

    /// Ends a plug or unplug of attachment `attachment_id` that is still at `step`: attached if
    /// `attached`, otherwise the interface is detached and available. A detach asked while the
    /// plug ran finds the attachment at `detaching` and is left for the next converge.
    fn end_interface_step(
        &self,
        record_key: &str,
        attachment_id: &str,
        step: AttachmentState,
        attached: bool,
    ) -> Result<()> {
        self.store().write(|tx| {
            let Some(mut current) = tx.get(&NETWORK_INTERFACES, record_key)? else { return Ok(()) };
            match current.attachment.as_mut() {
                Some(a) if a.id == attachment_id && a.state == step && attached => a.state = AttachmentState::Attached,
                Some(a) if a.id == attachment_id && a.state == step => {
                    let ended = current.attachment.take();
                    if step == AttachmentState::Detaching {
                        current.ended_attachment = ended;
                    }
                }
                _ => return Ok(()),
            }
            tx.insert(&NETWORK_INTERFACES, record_key, &current)?;
            Ok::<_, Error>(())
        })
    }

    /// A terminating instance's interfaces: detached, or deleted when attached with
    /// `DeleteOnTermination`. Runs inside the tear-down's transaction.
    pub(crate) fn release_instance_interfaces(&self, tx: &WriteTx, record: &InstanceRecord) -> Result<()> {
        for mut interface in attached_to(tx, &record.account, &record.id)? {
            if interface.attachment.as_ref().is_some_and(|a| a.delete_on_termination) {
                interface.attachment = None;
                self.drop_interface(tx, &interface)?;
            } else {
                interface.ended_attachment = interface.attachment.take();
                tx.insert(&NETWORK_INTERFACES, &key(&record.account, &interface.id), &interface)?;
            }
        }
        Ok(())
    }
}

/// Takes interface `id` of the account's own as the primary one of the instance at `key`
/// being launched in `subnet`: its record goes (the instance's holds it meanwhile, see
/// [`storage::InstanceRecord::kept_interface`]) and its addresses' leases pass to the instance.
pub(crate) fn adopt_interface(
    tx: &WriteTx,
    account: &str,
    id: &str,
    subnet: &Subnet,
    instance_key: &str,
    req: &crate::instances::LaunchRequest,
) -> Result<crate::instances::PrimaryNic> {
    let Some(record) = tx.get(&NETWORK_INTERFACES, &key(account, id))? else {
        // Another instance's primary interface (it took it first), or gone.
        return Err(match crate::listing::primary_interface_owner(tx, account, id)? {
            Some(_) => Error::InterfaceInUse(format!("Interface: {id} in use.")),
            None => not_found(id),
        });
    };
    if let Some(current) = &record.attachment {
        return Err(Error::InterfaceInUse(format!(
            "Interface: {id} in use (attached to {} as {}).",
            current.instance_id, current.id
        )));
    }
    if record.subnet_id != subnet.id {
        return Err(not_found(id));
    }
    let holder = key(account, id);
    for address in record.addresses() {
        let lease_key = format!("{}{address}", subnet.lease_scope);
        if let Some(mut lease) = tx.get(&storage::tables::LEASES, &lease_key)?.filter(|l| l.instance_key == holder) {
            lease.instance_key = instance_key.to_owned();
            tx.insert(&storage::tables::LEASES, &lease_key, &lease)?;
        }
    }
    tx.remove(&NETWORK_INTERFACES, &holder)?;
    let instance_id = instance_key.split_once('/').map_or(instance_key, |(_, id)| id);
    crate::addresses::name_interface_instance(tx, account, id, Some(instance_id))?;
    Ok(crate::instances::PrimaryNic {
        id: record.id,
        mac: record.mac,
        private_ip: record.private_ip,
        secondary_ips: record.secondary_ips,
        groups: record.security_group_ids,
        source_dest_check: record.source_dest_check,
        public_ip: None,
        kept: Some(storage::KeptInterface {
            description: record.description,
            created_ms: record.created_ms,
            client_token: record.client_token,
            delete_on_termination: req.primary_delete_on_termination.unwrap_or(false),
        }),
    })
}

/// An instance that goes gives its kept primary interface back: a record of its own again,
/// available, holding the addresses' leases (in the VPC `scope`), its tags, and its Elastic
/// IPs (no longer the instance's).
pub(crate) fn give_back_primary_interface(tx: &WriteTx, instance: &InstanceRecord, scope: &str) -> Result<()> {
    let Some(kept) = &instance.kept_interface else { return Ok(()) };
    let account = &instance.account;
    let holder = key(account, &instance.network_interface_id);
    let instance_key = key(account, &instance.id);
    for address in std::iter::once(&instance.private_ip).chain(&instance.secondary_ips) {
        let lease_key = format!("{scope}{address}");
        if let Some(mut lease) =
            tx.get(&storage::tables::LEASES, &lease_key)?.filter(|l| l.instance_key == instance_key)
        {
            lease.instance_key = holder.clone();
            tx.insert(&storage::tables::LEASES, &lease_key, &lease)?;
        }
    }
    crate::addresses::name_interface_instance(tx, account, &instance.network_interface_id, None)?;
    let record = NetworkInterfaceRecord {
        id: instance.network_interface_id.clone(),
        account: account.clone(),
        vpc_id: instance.vpc_id.clone(),
        subnet_id: instance.subnet_id.clone(),
        zone: instance.zone.clone(),
        mac: instance.mac.clone(),
        private_ip: instance.private_ip.clone(),
        secondary_ips: instance.secondary_ips.clone(),
        security_group_ids: instance.security_group_ids.clone(),
        description: kept.description.clone(),
        source_dest_check: instance.source_dest_check,
        attachment: None,
        created_ms: kept.created_ms,
        client_token: kept.client_token.clone(),
        ended_attachment: None,
    };
    tx.insert(&NETWORK_INTERFACES, &holder, &record)?;
    Ok(())
}

/// An interface as a guest NIC: a port of OVN's integration bridge.
pub(crate) fn nic_of(installation: &str, interface: &NetworkInterfaceRecord) -> Nic {
    Nic { mac: interface.mac.clone(), port: crate::vpc_network::port_name(installation, &interface.id) }
}

impl Backend {
    /// Checks a launch's further interfaces ([`crate::instances::ExtraInterface`]) before its transaction:
    /// device indexes, what may go to several instances, and each new one's subnet (in the
    /// launch's VPC), which it answers in order.
    pub(crate) fn check_extra_interfaces(
        &self,
        account: &str,
        req: &crate::instances::LaunchRequest,
        vpc_id: &str,
    ) -> Result<Vec<Option<Subnet>>> {
        let mut subnets = Vec::new();
        for (n, extra) in req.extra_interfaces.iter().enumerate() {
            let path = |field: &str| format!("NetworkInterface.{}.{field}", n + 1);
            if extra.device_index == 0 || extra.device_index >= MAX_INTERFACES {
                return Err(Error::AttachmentLimitExceeded(format!(
                    "Instances may have at most {MAX_INTERFACES} network interfaces here (device indexes 0 to {}).",
                    MAX_INTERFACES - 1
                )));
            }
            if req.extra_interfaces[..n].iter().any(|e| e.device_index == extra.device_index) {
                return Err(invalid(
                    "NetworkInterface.N.DeviceIndex",
                    "Each network interface requires a unique device index.",
                ));
            }
            if req.max_count > 1
                && (extra.existing.is_some() || extra.private_ip.is_some() || !extra.secondary_ips.is_empty())
            {
                return Err(Error::InvalidParameter {
                    name: "NetworkInterface.N",
                    message: format!(
                        "{} names one interface or address, which only one instance can have: launch one instance.",
                        path(if extra.existing.is_some() { "NetworkInterfaceId" } else { "PrivateIpAddress" })
                    ),
                });
            }
            check_address_count(1 + extra.secondary_ips.len() + extra.secondary_count as usize)?;
            let subnet = match (&extra.existing, &extra.subnet_id) {
                (None, Some(id)) => {
                    let subnet = self.subnet(account, id)?;
                    if subnet.vpc_id != vpc_id {
                        return Err(Error::InvalidParameter {
                            name: "NetworkInterface.N.SubnetId",
                            message: format!("The subnet {id} is not in the instance's VPC {vpc_id}."),
                        });
                    }
                    Some(subnet)
                }
                (None, None) => return Err(Error::MissingParameter(path("SubnetId"))),
                (Some(_), _) => None,
            };
            subnets.push(subnet);
        }
        Ok(subnets)
    }

    /// Gives an instance being launched one of its further interfaces, in the launch's
    /// transaction: an available one of the account's (`extra.existing`) or a new one in
    /// `subnet`, attached at its device index as `attaching`. The instance's first converge
    /// settles the attachment before the guest is defined, with the NIC.
    pub(crate) fn attach_at_launch(
        &self,
        tx: &WriteTx,
        instance: &InstanceRecord,
        extra: &crate::instances::ExtraInterface,
        subnet: Option<&Subnet>,
        tags: &[(String, String)],
    ) -> Result<()> {
        let account = &instance.account;
        let mut record = match (&extra.existing, subnet) {
            (Some(id), _) => {
                let record = interface_in(tx, account, id)?;
                if let Some(current) = &record.attachment {
                    return Err(Error::InterfaceInUse(format!(
                        "Interface: {id} in use (attached to {} as {}).",
                        current.instance_id, current.id
                    )));
                }
                record
            }
            (None, Some(subnet)) => {
                // The subnet may have gone since it was read.
                crate::vpcs::subnet_in(tx, account, &subnet.id)?;
                let req = NewInterface {
                    subnet_id: subnet.id.clone(),
                    private_ip: extra.private_ip,
                    secondary: extra.secondary_ips.clone(),
                    secondary_count: extra.secondary_count,
                    groups: extra.groups.clone(),
                    description: extra.description.clone(),
                    ..Default::default()
                };
                let record = new_interface(tx, account, subnet, &req)?;
                tags::put_tags(tx, account, &record.id, tags)?;
                record
            }
            (None, None) => return Err(Error::MissingParameter("NetworkInterface.N.SubnetId".into())),
        };
        if record.vpc_id != instance.vpc_id || record.zone != instance.zone {
            return Err(invalid(
                "NetworkInterface.N",
                format!(
                    "The network interface {} ({}, {}) and instance {} ({}, {}) must share a VPC and an availability zone.",
                    record.id, record.vpc_id, record.zone, instance.id, instance.vpc_id, instance.zone
                ),
            ));
        }
        record.attachment = Some(InterfaceAttachmentRecord {
            id: ids::resource_id("eni-attach"),
            instance_id: instance.id.clone(),
            device_index: extra.device_index,
            state: AttachmentState::Attaching,
            attach_time_ms: now_ms(),
            delete_on_termination: extra.delete_on_termination.unwrap_or(extra.existing.is_none()),
        });
        tx.insert(&NETWORK_INTERFACES, &key(account, &record.id), &record)?;
        Ok(())
    }
}
