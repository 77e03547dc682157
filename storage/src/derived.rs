//! Derived tables: secondary indexes and aggregates of the primary records, kept in step by
//! every write, in the same transaction, so they can never disagree with what they derive from.
//!
//! 1. A record type with derived data says so ([`Record::DERIVED`]) and implements
//!    [`Record::derive`]; [`WriteTx::insert`] and [`WriteTx::remove`] hand it the record as it
//!    was and as it becomes.
//! 2. What is derived:
//!    - [`INSTANCE_IDS`]: instances by id alone (ids are unique across accounts);
//!    - [`RESERVATIONS`]: an account's instances by reservation, in order (DescribeInstances
//!      pages by reservation);
//!    - [`GROUP_RULES`]: an account's security group rules by rule id, with their group;
//!    - [`INTERFACES`]: an account's network interfaces by id, whether an instance's primary
//!      one or one of its own ([`crate::NetworkInterfaceRecord`]);
//!    - [`INTERFACE_ATTACHMENTS`]: interfaces of their own by the instance they are attached to;
//!    - [`ATTACHMENT_IDS`]: interfaces of their own by their attachment's id (a detach names
//!      the attachment alone);
//!    - [`HOST_USAGE`]: per host, the vCPUs, memory and disk its instances hold (the host
//!      they run on holds all three; a host they are migrating to holds vCPUs and memory);
//!    - [`TAG_INDEX`]: resources by account, tag key and value;
//!    - [`TAGGED_RESERVATIONS`]: instances by account, tag key and value, in reservation
//!      order (a DescribeInstances tag filter pages by reservation). Kept from both sides:
//!      a tag of an instance that exists, and an instance's tags as it is inserted or removed,
//!      so that either may be written first;
//!    - [`STATE_RESERVATIONS`]: instances by account and state, in reservation order (a
//!      DescribeInstances state filter, likewise);
//!    - [`ATTRIBUTE_RESERVATIONS`]: instances by account and each of the attributes
//!      [`INDEXED_ATTRIBUTES`] names (zone, subnet, VPC, type, image, key, reservation,
//!      groups), in reservation order (an exact filter on one of them, likewise);
//!    - [`VOLUME_ATTACHMENTS`]: volumes by the instance they are attached to;
//!    - [`LEASE_BLOCKS`]: a bitmap of leased addresses per block of 4,096;
//!    - [`IMAGE_IDS`]: images by id alone, across owners (DescribeImages lists an account's
//!      own, every public one and those shared with it, in id order);
//!    - [`SNAPSHOT_IDS`]: snapshots by id alone, across owners, likewise;
//!    - [`LIVE_INSTANCES`]: the instances that are not terminated (the sweep, the monitoring
//!      and OVN's ports cost what runs, not what the account once ran);
//!    - [`TERMINATIONS`]: terminated instances by the time they ended (the purge reads only
//!      those whose retention is over);
//!    - [`HOST_INSTANCES`]: the instances that are not terminated by the host they are on or
//!      migrating to, then account (whether a dedicated host is still occupied reads what is
//!      on it, not every instance of the account);
//!    - [`NETWORK_ACLS`]: each VPC's default network ACL, by account and ACL id (the ACL is
//!      implied by its VPC, and its id is derived from the VPC's, so only this table lists
//!      ACLs in their own id order, a page at a time);
//!    - [`VPC_SUBNETS`]: subnets by account and VPC (an ACL's associations, its VPC's subnets);
//!    - [`ADDRESS_ASSOCIATIONS`]: associated Elastic IPs by account and network interface (a
//!      page of instances or interfaces shows its own interfaces' public addresses).
//! 3. [`DERIVED_VERSION`] names the layout. A database opened with another version (older
//!    data, or a binary that derives differently) has its derived tables rebuilt from the
//!    primary ones, in one transaction, before anything else runs.
//!
//! [`WriteTx::insert`]: crate::WriteTx::insert
//! [`WriteTx::remove`]: crate::WriteTx::remove

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::tables::{
    ADDRESSES, ADDRESS_ASSOCIATIONS, ATTACHMENT_IDS, ATTRIBUTE_RESERVATIONS, GROUP_RULES, HOST_INSTANCES, HOST_USAGE,
    IMAGES, IMAGE_IDS, INSTANCES, INSTANCE_IDS, INTERFACES, INTERFACE_ATTACHMENTS, LEASES, LEASE_BLOCKS,
    LIVE_INSTANCES, META, NETWORK_ACLS, NETWORK_INTERFACES, RESERVATIONS, SECURITY_GROUPS, SNAPSHOTS, SNAPSHOT_IDS,
    STATE_RESERVATIONS, SUBNETS, TAGGED_RESERVATIONS, TAGS, TAG_INDEX, TERMINATIONS, VOLUMES, VOLUME_ATTACHMENTS, VPCS,
    VPC_SUBNETS,
};
use crate::{
    AddressRecord, ImageRecord, InstanceRecord, InstanceState, LeaseRecord, NetworkInterfaceRecord, Record, Result,
    SecurityGroupRecord, SnapshotRecord, SubnetRecord, Table, TagRecord, VolumeRecord, VpcRecord, WriteTx,
};

/// The layout of the derived tables; bump it whenever what they hold changes.
pub const DERIVED_VERSION: u32 = 15;

/// A key-only entry of an index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {}

impl Record for IndexEntry {
    const VERSION: u8 = 1;
}

/// What a host's instances hold of it. Key: host id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostUsageRecord {
    pub vcpus: u64,
    pub memory_mib: u64,
    pub disk_mib: u64,
}

impl Record for HostUsageRecord {
    const VERSION: u8 = 1;
}

/// Which addresses of one block of 4,096 are leased, a bit each. Key: [`lease_block_key`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseBlockRecord {
    pub leased: Vec<u64>,
}

impl Record for LeaseBlockRecord {
    const VERSION: u8 = 1;
}

/// A VPC's default network ACL, as [`NETWORK_ACLS`] lists it. Key: `{account}/{acl id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkAclRecord {
    pub id: String,
    pub account: String,
    pub vpc_id: String,
}

impl Record for NetworkAclRecord {
    const VERSION: u8 = 1;
}

/// An id in EC2's shape that is always the same for the same `parts`: for resources every
/// account or VPC has one of (default subnets and security groups, made when first needed; a
/// VPC's network ACL, kept only in [`NETWORK_ACLS`]).
pub fn derived_id(prefix: &str, parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(parts.join("/").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{}", &hex[..17])
}

/// The id of the default network ACL of `account`'s VPC `vpc_id`.
pub fn network_acl_id(account: &str, vpc_id: &str) -> String {
    derived_id("acl", &[account, vpc_id])
}

/// The [`VPC_SUBNETS`] key prefix of the subnets of `account`'s VPC `vpc_id`.
pub fn vpc_subnets_prefix(account: &str, vpc_id: &str) -> String {
    format!("{account}/{vpc_id}/")
}

/// Addresses per lease block.
pub const LEASE_BLOCK: u32 = 4096;

/// The database's own facts. Key: `derived` for the derived tables' layout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetaRecord {
    pub version: u32,
}

impl Record for MetaRecord {
    const VERSION: u8 = 1;
}

/// The block of `address` in the address space `scope` (`{vpc id}/`; empty for the leases of
/// the hosts' old shared bridge) and the address's bit in it.
pub fn lease_block_key(scope: &str, address: Ipv4Addr) -> (String, usize) {
    let bits = u32::from(address);
    (format!("{scope}{:08x}", bits & !(LEASE_BLOCK - 1)), (bits & (LEASE_BLOCK - 1)) as usize)
}

impl LeaseBlockRecord {
    pub fn empty() -> Self {
        Self { leased: vec![0; LEASE_BLOCK as usize / 64] }
    }

    pub fn is_leased(&self, bit: usize) -> bool {
        self.leased.get(bit / 64).is_some_and(|w| w & (1 << (bit % 64)) != 0)
    }

    /// The first bit in `from..to` that is free.
    pub fn first_free(&self, from: usize, to: usize) -> Option<usize> {
        let mut bit = from;
        while bit < to {
            let word = self.leased.get(bit / 64).copied().unwrap_or(0) | ((1u64 << (bit % 64)) - 1);
            if word == u64::MAX {
                bit = (bit / 64 + 1) * 64;
                continue;
            }
            let free = (bit / 64) * 64 + word.trailing_ones() as usize;
            return (free < to).then_some(free);
        }
        None
    }

    /// How many bits in `from..to` are leased.
    pub fn count(&self, from: usize, to: usize) -> u32 {
        let to = to.min(self.leased.len() * 64);
        let mut count = 0;
        let mut bit = from;
        while bit < to {
            let (word, low) = (bit / 64, bit % 64);
            let high = (to - word * 64).min(64);
            // The word's bits low..high.
            let mask = (u64::MAX >> (64 - (high - low))) << low;
            count += (self.leased[word] & mask).count_ones();
            bit = word * 64 + high;
        }
        count
    }

    fn set(&mut self, bit: usize, leased: bool) {
        if let Some(word) = self.leased.get_mut(bit / 64) {
            if leased {
                *word |= 1 << (bit % 64);
            } else {
                *word &= !(1 << (bit % 64));
            }
        }
    }
}

/// The `TAG_INDEX` key prefix of `account`'s resources tagged `key` (and `value`, if given).
/// Lengths go first so that no key or value can run into the next.
pub fn tag_index_prefix(account: &str, key: &str, value: Option<&str>) -> String {
    match value {
        Some(value) => format!("{account}/{}:{key}/{}:{value}/", key.len(), value.len()),
        None => format!("{account}/{}:{key}/", key.len()),
    }
}

fn account_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(account, _)| account)
}

/// The DescribeInstances filters whose values [`ATTRIBUTE_RESERVATIONS`] indexes, each an
/// attribute of the instance's own record. The index holds every instance, so it finds a
/// superset of a filter's matches (a terminated instance has no subnet to DescribeInstances;
/// the filter itself is tested on each record read).
pub const INDEXED_ATTRIBUTES: &[&str] = &[
    "availability-zone",
    "image-id",
    "instance-type",
    "key-name",
    "reservation-id",
    "subnet-id",
    "vpc-id",
    "instance.group-id",
];

/// The [`ATTRIBUTE_RESERVATIONS`] key prefix of `account`'s instances whose attribute `name`
/// is `value` (the value's length first, so that no value can run into the next).
pub fn attribute_prefix(account: &str, name: &str, value: &str) -> String {
    format!("{account}/{name}/{}:{value}/", value.len())
}

/// An instance's values of [`INDEXED_ATTRIBUTES`], as (filter name, value): one for each,
/// none for a missing key name, one for each of its groups.
fn attribute_values(r: &InstanceRecord) -> Vec<(&'static str, &str)> {
    let mut values = vec![
        ("availability-zone", r.zone.as_str()),
        ("image-id", r.image_id.as_str()),
        ("instance-type", r.instance_type.as_str()),
        ("reservation-id", r.reservation_id.as_str()),
        ("subnet-id", r.subnet_id.as_str()),
        ("vpc-id", r.vpc_id.as_str()),
    ];
    values.extend(r.key_name.as_deref().map(|k| ("key-name", k)));
    values.extend(r.security_group_ids.iter().map(|g| ("instance.group-id", g.as_str())));
    values
}

/// An instance's [`ATTRIBUTE_RESERVATIONS`] keys.
fn attribute_entries(r: &InstanceRecord) -> std::collections::BTreeSet<String> {
    attribute_values(r)
        .into_iter()
        .map(|(name, value)| format!("{}{}/{}", attribute_prefix(&r.account, name, value), r.reservation_id, r.id))
        .collect()
}

/// `(host id, vCPUs, memory, disk)` that the instance holds, per host.
fn holdings(record: &InstanceRecord) -> Vec<(&str, u64, u64, u64)> {
    if !record.state.holds_capacity() {
        return Vec::new();
    }
    let (vcpus, memory) = (u64::from(record.vcpus), record.memory_mib);
    let mut held = vec![(record.host_id.as_str(), vcpus, memory, record.root_disk_bytes.div_ceil(1 << 20))];
    if let Some(target) = &record.migration_target {
        held.push((target.as_str(), vcpus, memory, 0));
    }
    held
}

/// An instance's [`HOST_INSTANCES`] keys: none once terminated (or before it has a host), one
/// for the host it is on, one for the host it is migrating to.
fn host_entries(record: &InstanceRecord) -> std::collections::BTreeSet<String> {
    if record.state == InstanceState::Terminated {
        return Default::default();
    }
    [Some(record.host_id.as_str()), record.migration_target.as_deref()]
        .into_iter()
        .flatten()
        .filter(|host| !host.is_empty())
        .map(|host| host_instances_key(host, &record.account, &record.id))
        .collect()
}

/// The [`HOST_INSTANCES`] key of `account`'s instance `id` on `host`.
pub fn host_instances_key(host: &str, account: &str, id: &str) -> String {
    format!("{host}/{account}/{id}")
}

/// The [`TERMINATIONS`] key of the instance at `key` terminated at `terminated_ms`: the time in
/// fixed-width digits first, so that keys sort by it.
pub fn termination_key(terminated_ms: i64, key: &str) -> String {
    format!("{:020}/{key}", terminated_ms.max(0))
}

pub(crate) fn derive_instance(
    tx: &WriteTx,
    key: &str,
    old: Option<&InstanceRecord>,
    new: Option<&InstanceRecord>,
) -> Result<()> {
    let live = |r: &InstanceRecord| (r.state != InstanceState::Terminated).then(|| key.to_owned());
    move_entry(tx, &LIVE_INSTANCES, old.and_then(live), new.and_then(live))?;
    let ended = |r: &InstanceRecord| match (r.state, r.terminated_ms) {
        (InstanceState::Terminated, Some(at)) => Some(termination_key(at, key)),
        _ => None,
    };
    move_entry(tx, &TERMINATIONS, old.and_then(ended), new.and_then(ended))?;
    move_entries(
        tx,
        &HOST_INSTANCES,
        old.map(host_entries).unwrap_or_default(),
        new.map(host_entries).unwrap_or_default(),
    )?;
    let by_state = |r: &InstanceRecord| format!("{}/{}/{}/{}", r.account, r.state.name(), r.reservation_id, r.id);
    move_entry(tx, &STATE_RESERVATIONS, old.map(by_state), new.map(by_state))?;
    // Most writes change an instance's state alone: its attributes' entries stay as they are.
    let same_attributes = |a: &InstanceRecord, b: &InstanceRecord| {
        (&a.account, &a.id) == (&b.account, &b.id) && attribute_values(a) == attribute_values(b)
    };
    if !matches!((old, new), (Some(a), Some(b)) if same_attributes(a, b)) {
        let (before, after) =
            (old.map(attribute_entries).unwrap_or_default(), new.map(attribute_entries).unwrap_or_default());
        move_entries(tx, &ATTRIBUTE_RESERVATIONS, before, after)?;
    }
    let reservation = |r: &InstanceRecord| format!("{}/{}/{}", r.account, r.reservation_id, r.id);
    let interface = |r: &InstanceRecord| format!("{}/{}/{}", r.account, r.network_interface_id, r.id);
    match (old, new) {
        (None, Some(r)) => {
            tx.insert(&INSTANCE_IDS, &format!("{}/{}", r.id, r.account), &IndexEntry {})?;
            tx.insert(&RESERVATIONS, &reservation(r), &IndexEntry {})?;
            tx.insert(&INTERFACES, &interface(r), &IndexEntry {})?;
            for (_, tag) in tx.scan(&TAGS, &format!("{}/{}/", r.account, r.id))? {
                tx.insert(
                    &TAGGED_RESERVATIONS,
                    &tagged_reservation(&r.account, &tag, &r.reservation_id),
                    &IndexEntry {},
                )?;
            }
        }
        (Some(r), None) => {
            tx.remove(&INSTANCE_IDS, &format!("{}/{}", r.id, r.account))?;
            tx.remove(&RESERVATIONS, &reservation(r))?;
            tx.remove(&INTERFACES, &interface(r))?;
            for (_, tag) in tx.scan(&TAGS, &format!("{}/{}/", r.account, r.id))? {
                tx.remove(&TAGGED_RESERVATIONS, &tagged_reservation(&r.account, &tag, &r.reservation_id))?;
            }
        }
        _ => {}
    }
    // Net change per host, so an update that keeps the holdings writes nothing.
    let mut delta: BTreeMap<&str, [i128; 3]> = BTreeMap::new();
    for (record, sign) in [(old, -1i128), (new, 1)] {
        for (host, vcpus, memory, disk) in record.map(holdings).unwrap_or_default() {
            let entry = delta.entry(host).or_default();
            for (slot, amount) in entry.iter_mut().zip([vcpus, memory, disk]) {
                *slot += sign * i128::from(amount);
            }
        }
    }
    for (host, change) in delta.into_iter().filter(|(_, d)| d.iter().any(|x| *x != 0)) {
        let mut usage = tx.get(&HOST_USAGE, host)?.unwrap_or_default();
        let apply = |held: u64, change: i128| (i128::from(held) + change).clamp(0, i128::from(u64::MAX)) as u64;
        usage.vcpus = apply(usage.vcpus, change[0]);
        usage.memory_mib = apply(usage.memory_mib, change[1]);
        usage.disk_mib = apply(usage.disk_mib, change[2]);
        tx.insert(&HOST_USAGE, host, &usage)?;
    }
    Ok(())
}

/// Moves a record's entries in `index` from the set `old` to the set `new`: what both hold is
/// left as it is.
fn move_entries(
    tx: &WriteTx,
    index: &Table<IndexEntry>,
    old: std::collections::BTreeSet<String>,
    new: std::collections::BTreeSet<String>,
) -> Result<()> {
    for gone in old.difference(&new) {
        tx.remove(index, gone)?;
    }
    for added in new.difference(&old) {
        tx.insert(index, added, &IndexEntry {})?;
    }
    Ok(())
}

/// Moves a record's entry in `index` from `old` to `new` (`None`: the record has none).
fn move_entry(tx: &WriteTx, index: &Table<IndexEntry>, old: Option<String>, new: Option<String>) -> Result<()> {
    if old == new {
        return Ok(());
    }
    if let Some(old) = old {
        tx.remove(index, &old)?;
    }
    if let Some(new) = new {
        tx.insert(index, &new, &IndexEntry {})?;
    }
    Ok(())
}

/// The [`TAGGED_RESERVATIONS`] key of an instance's tag.
fn tagged_reservation(account: &str, tag: &TagRecord, reservation_id: &str) -> String {
    format!("{}{reservation_id}/{}", tag_index_prefix(account, &tag.key, Some(&tag.value)), tag.resource_id)
}

pub(crate) fn derive_tag(tx: &WriteTx, key: &str, old: Option<&TagRecord>, new: Option<&TagRecord>) -> Result<()> {
    let account = account_of(key);
    let entry = |t: &TagRecord| format!("{}{}", tag_index_prefix(account, &t.key, Some(&t.value)), t.resource_id);
    move_entry(tx, &TAG_INDEX, old.map(entry), new.map(entry))?;
    // An instance's tag, while the instance exists (its insertion or removal adds or takes
    // away the entries of the tags it has then).
    let Some(resource) = new.or(old).map(|t| t.resource_id.as_str()).filter(|id| id.starts_with("i-")) else {
        return Ok(());
    };
    let Some(instance) = tx.get(&INSTANCES, &format!("{account}/{resource}"))? else { return Ok(()) };
    let entry = |t: &TagRecord| tagged_reservation(account, t, &instance.reservation_id);
    move_entry(tx, &TAGGED_RESERVATIONS, old.map(entry), new.map(entry))
}

pub(crate) fn derive_volume(tx: &WriteTx, old: Option<&VolumeRecord>, new: Option<&VolumeRecord>) -> Result<()> {
    // One entry per attachment: a Multi-Attach volume is listed under each of its instances.
    let entries = |v: Option<&VolumeRecord>| -> std::collections::BTreeSet<String> {
        v.map(|v| v.attachments().map(|a| format!("{}/{}/{}", v.account, a.instance_id, v.id)).collect())
            .unwrap_or_default()
    };
    move_entries(tx, &VOLUME_ATTACHMENTS, entries(old), entries(new))
}

pub(crate) fn derive_network_interface(
    tx: &WriteTx,
    old: Option<&NetworkInterfaceRecord>,
    new: Option<&NetworkInterfaceRecord>,
) -> Result<()> {
    let listed = |i: &NetworkInterfaceRecord| format!("{}/{}/", i.account, i.id);
    move_entry(tx, &INTERFACES, old.map(listed), new.map(listed))?;
    let attached =
        |i: &NetworkInterfaceRecord| i.attachment.as_ref().map(|a| format!("{}/{}/{}", i.account, a.instance_id, i.id));
    move_entry(tx, &INTERFACE_ATTACHMENTS, old.and_then(attached), new.and_then(attached))?;
    let by_id = |i: &NetworkInterfaceRecord| {
        i.attachment.as_ref().map(|a| format!("{}{}", attachment_ids_prefix(&i.account, &a.id), i.id))
    };
    move_entry(tx, &ATTACHMENT_IDS, old.and_then(by_id), new.and_then(by_id))
}

/// Where the interface attached by `account`'s attachment `attachment_id` is listed in
/// [`ATTACHMENT_IDS`]: the entry under it names the interface.
pub fn attachment_ids_prefix(account: &str, attachment_id: &str) -> String {
    format!("{account}/{attachment_id}/")
}

pub(crate) fn derive_image(tx: &WriteTx, old: Option<&ImageRecord>, new: Option<&ImageRecord>) -> Result<()> {
    let entry = |i: &ImageRecord| format!("{}/{}", i.id, i.owner);
    move_entry(tx, &IMAGE_IDS, old.map(entry), new.map(entry))
}

pub(crate) fn derive_snapshot(tx: &WriteTx, old: Option<&SnapshotRecord>, new: Option<&SnapshotRecord>) -> Result<()> {
    let entry = |s: &SnapshotRecord| format!("{}/{}", s.id, s.account);
    move_entry(tx, &SNAPSHOT_IDS, old.map(entry), new.map(entry))
}

pub(crate) fn derive_security_group(
    tx: &WriteTx,
    old: Option<&SecurityGroupRecord>,
    new: Option<&SecurityGroupRecord>,
) -> Result<()> {
    let entries = |g: Option<&SecurityGroupRecord>| -> std::collections::BTreeSet<String> {
        g.map(|g| g.rules.iter().map(|r| format!("{}/{}/{}", g.account, r.id, g.id)).collect()).unwrap_or_default()
    };
    move_entries(tx, &GROUP_RULES, entries(old), entries(new))
}

pub(crate) fn derive_vpc(tx: &WriteTx, old: Option<&VpcRecord>, new: Option<&VpcRecord>) -> Result<()> {
    // A VPC's account and id never change: its ACL is made with it and goes with it.
    match (old, new) {
        (None, Some(vpc)) => {
            let id = network_acl_id(&vpc.account, &vpc.id);
            let acl = NetworkAclRecord { id, account: vpc.account.clone(), vpc_id: vpc.id.clone() };
            tx.insert(&NETWORK_ACLS, &format!("{}/{}", vpc.account, acl.id), &acl)
        }
        (Some(vpc), None) => {
            tx.remove(&NETWORK_ACLS, &format!("{}/{}", vpc.account, network_acl_id(&vpc.account, &vpc.id)))?;
            Ok(())
        }
        _ => Ok(()),
    }
}

pub(crate) fn derive_subnet(tx: &WriteTx, old: Option<&SubnetRecord>, new: Option<&SubnetRecord>) -> Result<()> {
    let entry = |s: &SubnetRecord| format!("{}{}", vpc_subnets_prefix(&s.account, &s.vpc_id), s.id);
    move_entry(tx, &VPC_SUBNETS, old.map(entry), new.map(entry))
}

/// Where the associated Elastic IPs of `account`'s interface `interface_id` are listed in
/// [`ADDRESS_ASSOCIATIONS`], each under its allocation id.
pub fn address_associations_prefix(account: &str, interface_id: &str) -> String {
    format!("{account}/{interface_id}/")
}

pub(crate) fn derive_address(tx: &WriteTx, old: Option<&AddressRecord>, new: Option<&AddressRecord>) -> Result<()> {
    let entry = |a: &AddressRecord| {
        let to = a.association.as_ref()?;
        Some(format!("{}{}", address_associations_prefix(&a.account, &to.network_interface_id), a.allocation_id))
    };
    move_entry(tx, &ADDRESS_ASSOCIATIONS, old.and_then(entry), new.and_then(entry))
}

pub(crate) fn derive_lease(tx: &WriteTx, key: &str, leased: bool) -> Result<()> {
    // Lease keys are addresses, after their scope; anything else has no bit to keep.
    let (scope, address) = key.rsplit_once('/').map_or(("", key), |(vpc, _)| key.split_at(vpc.len() + 1));
    let Ok(address) = address.parse::<Ipv4Addr>() else { return Ok(()) };
    let (block_key, bit) = lease_block_key(scope, address);
    let mut block = tx.get(&LEASE_BLOCKS, &block_key)?.unwrap_or_else(LeaseBlockRecord::empty);
    if block.is_leased(bit) != leased {
        block.set(bit, leased);
        tx.insert(&LEASE_BLOCKS, &block_key, &block)?;
    }
    Ok(())
}

/// Whether the store's `derived` mark says its derived tables are this layout's.
pub(crate) fn current(mark: Option<MetaRecord>) -> bool {
    mark.is_some_and(|m| m.version == DERIVED_VERSION)
}

/// Rebuilds every derived table from the primary ones unless they are of [`DERIVED_VERSION`].
pub(crate) fn ensure(tx: &WriteTx) -> Result<bool> {
    if current(tx.get(&META, "derived")?) {
        return Ok(false);
    }
    tx.clear(&INSTANCE_IDS)?;
    tx.clear(&RESERVATIONS)?;
    tx.clear(&HOST_USAGE)?;
    tx.clear(&TAG_INDEX)?;
    tx.clear(&TAGGED_RESERVATIONS)?;
    tx.clear(&STATE_RESERVATIONS)?;
    tx.clear(&ATTRIBUTE_RESERVATIONS)?;
    tx.clear(&VOLUME_ATTACHMENTS)?;
    tx.clear(&LEASE_BLOCKS)?;
    tx.clear(&IMAGE_IDS)?;
    tx.clear(&SNAPSHOT_IDS)?;
    tx.clear(&INTERFACES)?;
    tx.clear(&INTERFACE_ATTACHMENTS)?;
    tx.clear(&ATTACHMENT_IDS)?;
    tx.clear(&GROUP_RULES)?;
    tx.clear(&LIVE_INSTANCES)?;
    tx.clear(&TERMINATIONS)?;
    tx.clear(&HOST_INSTANCES)?;
    tx.clear(&NETWORK_ACLS)?;
    tx.clear(&VPC_SUBNETS)?;
    tx.clear(&ADDRESS_ASSOCIATIONS)?;
    for (key, record) in tx.scan(&INSTANCES, "")? {
        derive_instance(tx, &key, None, Some(&record))?;
    }
    for (key, record) in tx.scan(&TAGS, "")? {
        derive_tag(tx, &key, None, Some(&record))?;
    }
    for (_, record) in tx.scan(&VOLUMES, "")? {
        derive_volume(tx, None, Some(&record))?;
    }
    for (key, _) in tx.scan::<LeaseRecord>(&LEASES, "")? {
        derive_lease(tx, &key, true)?;
    }
    for (_, record) in tx.scan(&IMAGES, "")? {
        derive_image(tx, None, Some(&record))?;
    }
    for (_, record) in tx.scan(&SECURITY_GROUPS, "")? {
        derive_security_group(tx, None, Some(&record))?;
    }
    for (_, record) in tx.scan(&SNAPSHOTS, "")? {
        derive_snapshot(tx, None, Some(&record))?;
    }
    for (_, record) in tx.scan(&NETWORK_INTERFACES, "")? {
        derive_network_interface(tx, None, Some(&record))?;
    }
    for (_, record) in tx.scan(&VPCS, "")? {
        derive_vpc(tx, None, Some(&record))?;
    }
    for (_, record) in tx.scan(&SUBNETS, "")? {
        derive_subnet(tx, None, Some(&record))?;
    }
    for (_, record) in tx.scan(&ADDRESSES, "")? {
        derive_address(tx, None, Some(&record))?;
    }
    tx.insert(&META, "derived", &MetaRecord { version: DERIVED_VERSION })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::META;
    use crate::{InstanceState, Reads, Store, VolumeAttachmentRecord};

    fn instance(id: &str, host: &str, state: InstanceState, target: Option<&str>) -> InstanceRecord {
        serde_json::from_value(serde_json::json!({
            "id": id, "account": "a", "reservation_id": "r", "image_id": "ami", "instance_type": "t3.nano",
            "vcpus": 2, "memory_mib": 512, "zone": "z", "host_id": host, "domain_uuid": "u", "state": state,
            "state_reason": null, "state_transition_reason": "", "force_stop": false, "booted": true,
            "launch_time_ms": 0, "terminated_ms": null, "ami_launch_index": 0, "key_name": null, "user_data": null,
            "vpc_id": "v", "subnet_id": "s", "network_interface_id": "eni", "private_ip": "172.31.0.4",
            "mac": "52:54:00:00:00:01", "security_group_ids": [], "client_token": null,
            "disable_api_termination": false, "disable_api_stop": false, "shutdown_behavior": "stop",
            "ebs_optimized": false, "monitoring": false, "dir": "/d", "root_disk_bytes": 3 << 20,
            "migration_target": target,
        }))
        .unwrap()
    }

    fn usage(store: &Store, host: &str) -> (u64, u64, u64) {
        let u = store.read(|tx| tx.get(&HOST_USAGE, host)).unwrap().unwrap_or_default();
        (u.vcpus, u.memory_mib, u.disk_mib)
    }

    #[test]
    fn host_usage_follows_every_instance_write() {
        for (_kind, store, _db) in crate::testing::stores() {
            let put = |r: &InstanceRecord| store.write(|tx| tx.insert(&INSTANCES, &format!("a/{}", r.id), r)).unwrap();
            put(&instance("i-1", "h1", InstanceState::Pending, None));
            put(&instance("i-2", "h1", InstanceState::Running, None));
            assert_eq!(usage(&store, "h1"), (4, 1024, 6));
            // Migrating: the target holds vCPUs and memory, the disk stays counted where it is.
            put(&instance("i-2", "h1", InstanceState::Running, Some("h2")));
            assert_eq!((usage(&store, "h1"), usage(&store, "h2")), ((4, 1024, 6), (2, 512, 0)));
            // Switched over.
            put(&instance("i-2", "h2", InstanceState::Running, None));
            assert_eq!((usage(&store, "h1"), usage(&store, "h2")), ((2, 512, 3), (2, 512, 3)));
            put(&instance("i-1", "h1", InstanceState::Stopped, None));
            assert_eq!(usage(&store, "h1"), (0, 0, 0));
            let ids = |s: &Store| {
                s.read(|tx| tx.scan(&INSTANCE_IDS, "")).unwrap().into_iter().map(|(k, _)| k).collect::<Vec<_>>()
            };
            assert_eq!(ids(&store), ["i-1/a", "i-2/a"]);
            let reservations = |s: &Store| {
                s.read(|tx| tx.scan(&RESERVATIONS, "a/")).unwrap().into_iter().map(|(k, _)| k).collect::<Vec<_>>()
            };
            assert_eq!(reservations(&store), ["a/r/i-1", "a/r/i-2"]);
            store.write(|tx| tx.remove(&INSTANCES, "a/i-2")).unwrap();
            assert_eq!(reservations(&store), ["a/r/i-1"]);
            assert_eq!(usage(&store, "h2"), (0, 0, 0));
            assert_eq!(ids(&store), ["i-1/a"]);
            // A write that fails leaves the usage as it was.
            let failed: Result<()> = store.write(|tx| {
                tx.insert(&INSTANCES, "a/i-3", &instance("i-3", "h1", InstanceState::Running, None))?;
                Err(crate::Error::Db("boom".into()))
            });
            assert!(failed.is_err());
            assert_eq!(usage(&store, "h1"), (0, 0, 0));
        }
    }

    #[test]
    fn live_instances_and_terminations_follow_the_state() {
        for (_kind, store, _db) in crate::testing::stores() {
            let put = |r: &InstanceRecord| store.write(|tx| tx.insert(&INSTANCES, &format!("a/{}", r.id), r)).unwrap();
            let ended = |id: &str, at: Option<i64>| InstanceRecord {
                terminated_ms: at,
                ..instance(id, "h1", InstanceState::Terminated, None)
            };
            let live = |s: &Store| {
                let mut seen = Vec::new();
                s.read(|tx| tx.for_each_live_instance(|key, r| seen.push((key.to_owned(), r.state)))).unwrap();
                seen
            };
            let by_state = |s: &Store| -> Vec<String> {
                s.read(|tx| tx.scan(&STATE_RESERVATIONS, "a/")).unwrap().into_iter().map(|(k, _)| k).collect()
            };
            put(&instance("i-1", "h1", InstanceState::Pending, None));
            put(&instance("i-2", "h1", InstanceState::Running, None));
            put(&instance("i-3", "h1", InstanceState::Stopped, None));
            assert_eq!(by_state(&store), ["a/pending/r/i-1", "a/running/r/i-2", "a/stopped/r/i-3"]);
            assert_eq!(
                live(&store),
                [
                    ("a/i-1".to_owned(), InstanceState::Pending),
                    ("a/i-2".to_owned(), InstanceState::Running),
                    ("a/i-3".to_owned(), InstanceState::Stopped)
                ]
            );
            // Terminated: out of the live ones, into the terminations by time (one without a
            // time is never purged, as before the index).
            put(&ended("i-2", Some(2_000)));
            put(&ended("i-3", Some(1_000)));
            put(&ended("i-4", None));
            assert_eq!(live(&store), [("a/i-1".to_owned(), InstanceState::Pending)]);
            assert_eq!(
                by_state(&store),
                ["a/pending/r/i-1", "a/terminated/r/i-2", "a/terminated/r/i-3", "a/terminated/r/i-4"],
                "each instance under its state alone"
            );
            let by = |cutoff| store.read(|tx| tx.terminated_by(cutoff)).unwrap();
            assert!(by(999).is_empty());
            assert_eq!(by(1_000), ["a/i-3"]);
            assert_eq!(by(i64::MAX), ["a/i-3", "a/i-2"]);
            // Times far apart still sort by time (fixed-width digits).
            put(&ended("i-5", Some(10_000_000_000_000)));
            assert_eq!(by(i64::MAX), ["a/i-3", "a/i-2", "a/i-5"]);
            // Removed: gone from both.
            store.write(|tx| tx.remove(&INSTANCES, "a/i-3")).unwrap();
            store.write(|tx| tx.remove(&INSTANCES, "a/i-1")).unwrap();
            assert!(live(&store).is_empty());
            assert_eq!(by(i64::MAX), ["a/i-2", "a/i-5"]);
            assert_eq!(by_state(&store), ["a/terminated/r/i-2", "a/terminated/r/i-4", "a/terminated/r/i-5"]);
            // Rebuilt from the records alone (a store from before the index), they say the same.
            store
                .write(|tx| {
                    tx.clear(&TERMINATIONS)?;
                    tx.insert(&INSTANCES, "a/i-6", &instance("i-6", "h1", InstanceState::Running, None))?;
                    tx.clear(&LIVE_INSTANCES)?;
                    tx.insert(&META, "derived", &MetaRecord { version: 0 })?;
                    ensure(tx)
                })
                .unwrap();
            assert_eq!(by(i64::MAX), ["a/i-2", "a/i-5"]);
            assert_eq!(live(&store), [("a/i-6".to_owned(), InstanceState::Running)]);
        }
    }

    #[test]
    fn instances_are_indexed_by_the_hosts_they_hold() {
        for (_kind, store, _db) in crate::testing::stores() {
            let put = |r: &InstanceRecord| {
                store.write(|tx| tx.insert(&INSTANCES, &format!("{}/{}", r.account, r.id), r)).unwrap()
            };
            let on = |host: &str, account: &str| {
                store.read(|tx| tx.live_instance_on_host(host, account)).unwrap().map(|r| r.id)
            };
            let entries = || -> Vec<String> {
                store.read(|tx| tx.scan(&HOST_INSTANCES, "")).unwrap().into_iter().map(|(k, _)| k).collect()
            };
            put(&instance("i-2", "h1", InstanceState::Running, None));
            put(&instance("i-1", "h1", InstanceState::Pending, None));
            put(&InstanceRecord { account: "b".into(), ..instance("i-3", "h2", InstanceState::Running, None) });
            assert_eq!(on("h1", "a").as_deref(), Some("i-1"), "the first by id");
            assert_eq!(on("h2", "a"), None, "another account's instance is not the account's");
            assert_eq!(on("h2", "b").as_deref(), Some("i-3"));
            // Migrating: held under both hosts; moved: under the target alone.
            put(&instance("i-2", "h1", InstanceState::Running, Some("h2")));
            assert_eq!(on("h2", "a").as_deref(), Some("i-2"));
            put(&instance("i-2", "h2", InstanceState::Running, None));
            assert_eq!(entries(), ["h1/a/i-1", "h2/a/i-2", "h2/b/i-3"]);
            // Stopped instances still hold their host; terminated ones, and removed ones, do not.
            put(&instance("i-1", "h1", InstanceState::Stopped, None));
            assert_eq!(on("h1", "a").as_deref(), Some("i-1"));
            put(&instance("i-1", "h1", InstanceState::Terminated, None));
            assert_eq!(on("h1", "a"), None);
            store.write(|tx| tx.remove(&INSTANCES, "b/i-3")).unwrap();
            assert_eq!(entries(), ["h2/a/i-2"]);
            // A pending instance without a host yet is under none.
            put(&instance("i-4", "", InstanceState::Pending, None));
            assert_eq!(entries(), ["h2/a/i-2"]);
            // Rebuilt from the records alone, the index says the same.
            store
                .write(|tx| {
                    tx.clear(&HOST_INSTANCES)?;
                    tx.insert(&META, "derived", &MetaRecord { version: 0 })?;
                    ensure(tx)
                })
                .unwrap();
            assert_eq!(entries(), ["h2/a/i-2"]);
        }
    }

    #[test]
    fn each_vpc_has_its_acl_and_its_subnets_listed_under_it() {
        for (_kind, store, _db) in crate::testing::stores() {
            let vpc = |account: &str, id: &str| VpcRecord {
                id: id.into(),
                account: account.into(),
                cidr: "10.0.0.0/16".into(),
                default: false,
                dns_support: true,
                dns_hostnames: false,
                address_usage_metrics: false,
                tenancy: "default".into(),
                created_ms: 0,
                on_bridge: None,
            };
            let subnet = |account: &str, vpc: &str, id: &str| SubnetRecord {
                id: id.into(),
                account: account.into(),
                vpc_id: vpc.into(),
                cidr: "10.0.0.0/24".into(),
                zone: "z".into(),
                default_for_az: false,
                map_public_ip_on_launch: false,
                created_ms: 0,
            };
            let acls = || -> Vec<(String, String)> {
                let all = store.read(|tx| tx.scan(&NETWORK_ACLS, "")).unwrap();
                all.into_iter().map(|(k, a)| (k, a.vpc_id)).collect()
            };
            let subnets = |account: &str, vpc: &str| -> Vec<String> {
                let prefix = vpc_subnets_prefix(account, vpc);
                let keys = store.read(|tx| tx.scan(&VPC_SUBNETS, &prefix)).unwrap();
                keys.into_iter().map(|(k, _)| k[prefix.len()..].to_owned()).collect()
            };
            store
                .write(|tx| {
                    tx.insert(&VPCS, "a/vpc-1", &vpc("a", "vpc-1"))?;
                    tx.insert(&VPCS, "b/vpc-2", &vpc("b", "vpc-2"))?;
                    tx.insert(&SUBNETS, "a/subnet-2", &subnet("a", "vpc-1", "subnet-2"))?;
                    tx.insert(&SUBNETS, "a/subnet-1", &subnet("a", "vpc-1", "subnet-1"))?;
                    tx.insert(&SUBNETS, "b/subnet-3", &subnet("b", "vpc-2", "subnet-3"))
                })
                .unwrap();
            let (acl_a, acl_b) = (network_acl_id("a", "vpc-1"), network_acl_id("b", "vpc-2"));
            assert_ne!(acl_a, network_acl_id("b", "vpc-1"), "another account's ACL id");
            let mut expected = vec![(format!("a/{acl_a}"), "vpc-1".to_owned()), (format!("b/{acl_b}"), "vpc-2".into())];
            assert_eq!(acls(), expected);
            assert_eq!(subnets("a", "vpc-1"), ["subnet-1", "subnet-2"]);
            assert_eq!(subnets("b", "vpc-1"), Vec::<String>::new());
            // A change to the VPC keeps its one ACL; a deleted subnet or VPC takes its entry.
            store
                .write(|tx| tx.insert(&VPCS, "a/vpc-1", &VpcRecord { dns_hostnames: true, ..vpc("a", "vpc-1") }))
                .unwrap();
            assert_eq!(acls(), expected);
            store.write(|tx| tx.remove(&SUBNETS, "a/subnet-2")).unwrap();
            assert_eq!(subnets("a", "vpc-1"), ["subnet-1"]);
            store.write(|tx| tx.remove(&VPCS, "b/vpc-2")).unwrap();
            expected.pop();
            assert_eq!(acls(), expected);
            // Rebuilt from the records alone, the tables say the same.
            store
                .write(|tx| {
                    tx.clear(&NETWORK_ACLS)?;
                    tx.clear(&VPC_SUBNETS)?;
                    tx.insert(&META, "derived", &MetaRecord { version: 0 })?;
                    ensure(tx)
                })
                .unwrap();
            assert_eq!(acls(), expected);
            assert_eq!(subnets("a", "vpc-1"), ["subnet-1"]);
            assert_eq!(subnets("b", "vpc-2"), ["subnet-3"], "a subnet's entry stays while the subnet does");
        }
    }

    #[test]
    fn associated_addresses_are_listed_under_their_interface() {
        for (_kind, store, _db) in crate::testing::stores() {
            let address = |account: &str, id: &str, to: Option<&str>| AddressRecord {
                allocation_id: id.into(),
                account: account.into(),
                public_ip: "198.51.100.7".into(),
                association: to.map(|interface| crate::AddressAssociationRecord {
                    id: format!("eipassoc-{id}"),
                    instance_id: None,
                    network_interface_id: interface.into(),
                    private_ip: "10.0.0.5".into(),
                    vpc_id: "vpc-1".into(),
                    subnet_id: "subnet-1".into(),
                }),
                created_ms: 0,
            };
            let put = |a: &AddressRecord| {
                store.write(|tx| tx.insert(&ADDRESSES, &format!("{}/{}", a.account, a.allocation_id), a)).unwrap()
            };
            let entries = || -> Vec<String> {
                store.read(|tx| tx.scan(&ADDRESS_ASSOCIATIONS, "")).unwrap().into_iter().map(|(k, _)| k).collect()
            };
            put(&address("a", "eipalloc-1", None));
            assert!(entries().is_empty(), "an address pointed at nothing is under no interface");
            put(&address("a", "eipalloc-1", Some("eni-1")));
            put(&address("a", "eipalloc-2", Some("eni-1")));
            put(&address("b", "eipalloc-3", Some("eni-1")));
            assert_eq!(entries(), ["a/eni-1/eipalloc-1", "a/eni-1/eipalloc-2", "b/eni-1/eipalloc-3"]);
            // Moved to another interface, then disassociated, then released.
            put(&address("a", "eipalloc-1", Some("eni-2")));
            assert_eq!(entries(), ["a/eni-1/eipalloc-2", "a/eni-2/eipalloc-1", "b/eni-1/eipalloc-3"]);
            put(&address("a", "eipalloc-2", None));
            store.write(|tx| tx.remove(&ADDRESSES, "b/eipalloc-3")).unwrap();
            assert_eq!(entries(), ["a/eni-2/eipalloc-1"]);
            assert_eq!(address_associations_prefix("a", "eni-2"), "a/eni-2/");
            // Rebuilt from the records alone, the index says the same.
            store
                .write(|tx| {
                    tx.clear(&ADDRESS_ASSOCIATIONS)?;
                    tx.insert(&META, "derived", &MetaRecord { version: 0 })?;
                    ensure(tx)
                })
                .unwrap();
            assert_eq!(entries(), ["a/eni-2/eipalloc-1"]);
        }
    }

    #[test]
    fn attached_interfaces_are_listed_under_their_attachment_id() {
        for (_kind, store, _db) in crate::testing::stores() {
            let interface = |account: &str, id: &str, attachment: Option<(&str, &str)>| NetworkInterfaceRecord {
                id: id.into(),
                account: account.into(),
                vpc_id: "vpc-1".into(),
                subnet_id: "subnet-1".into(),
                zone: "z".into(),
                mac: "52:54:00:00:00:02".into(),
                private_ip: "10.0.0.6".into(),
                secondary_ips: vec![],
                security_group_ids: vec![],
                description: String::new(),
                source_dest_check: true,
                attachment: attachment.map(|(attachment_id, instance_id)| crate::InterfaceAttachmentRecord {
                    id: attachment_id.into(),
                    instance_id: instance_id.into(),
                    device_index: 1,
                    state: crate::AttachmentState::Attached,
                    attach_time_ms: 0,
                    delete_on_termination: false,
                }),
                created_ms: 0,
                client_token: None,
                ended_attachment: None,
            };
            let put = |i: &NetworkInterfaceRecord| {
                store.write(|tx| tx.insert(&NETWORK_INTERFACES, &format!("{}/{}", i.account, i.id), i)).unwrap()
            };
            let entries = || -> Vec<String> {
                store.read(|tx| tx.scan(&ATTACHMENT_IDS, "")).unwrap().into_iter().map(|(k, _)| k).collect()
            };
            put(&interface("a", "eni-1", None));
            assert!(entries().is_empty(), "an interface attached to nothing has no attachment id");
            put(&interface("a", "eni-1", Some(("eni-attach-1", "i-1"))));
            put(&interface("a", "eni-2", Some(("eni-attach-2", "i-1"))));
            put(&interface("b", "eni-3", Some(("eni-attach-3", "i-3"))));
            assert_eq!(entries(), ["a/eni-attach-1/eni-1", "a/eni-attach-2/eni-2", "b/eni-attach-3/eni-3"]);
            // Detached, then attached again under a new id, then deleted.
            put(&interface("a", "eni-1", None));
            put(&interface("a", "eni-1", Some(("eni-attach-4", "i-2"))));
            store.write(|tx| tx.remove(&NETWORK_INTERFACES, "a/eni-2")).unwrap();
            assert_eq!(entries(), ["a/eni-attach-4/eni-1", "b/eni-attach-3/eni-3"]);
            assert_eq!(attachment_ids_prefix("a", "eni-attach-4"), "a/eni-attach-4/");
            // Rebuilt from the records alone, the index says the same.
            store
                .write(|tx| {
                    tx.clear(&ATTACHMENT_IDS)?;
                    tx.insert(&META, "derived", &MetaRecord { version: 0 })?;
                    ensure(tx)
                })
                .unwrap();
            assert_eq!(entries(), ["a/eni-attach-4/eni-1", "b/eni-attach-3/eni-3"]);
        }
    }

    #[test]
    fn instance_attributes_are_indexed_by_reservation_as_they_change() {
        for (_kind, store, _db) in crate::testing::stores() {
            let put = |r: &InstanceRecord| store.write(|tx| tx.insert(&INSTANCES, &format!("a/{}", r.id), r)).unwrap();
            let found = |name: &str, value: &str| -> Vec<String> {
                let prefix = attribute_prefix("a", name, value);
                let keys = store.read(|tx| tx.scan(&ATTRIBUTE_RESERVATIONS, &prefix)).unwrap();
                keys.into_iter().map(|(k, _)| k[prefix.len()..].to_owned()).collect()
            };
            let mut one = instance("i-1", "h1", InstanceState::Running, None);
            one.security_group_ids = vec!["sg-1".into(), "sg-2".into()];
            put(&one);
            put(&InstanceRecord { reservation_id: "q".into(), ..instance("i-2", "h1", InstanceState::Stopped, None) });
            assert_eq!(found("instance-type", "t3.nano"), ["q/i-2", "r/i-1"], "in reservation order");
            assert_eq!(
                (found("reservation-id", "r"), found("availability-zone", "z")),
                (vec!["r/i-1".to_owned()], vec!["q/i-2".to_owned(), "r/i-1".to_owned()])
            );
            assert_eq!(
                (found("instance.group-id", "sg-1"), found("instance.group-id", "sg-2")),
                (vec!["r/i-1".to_owned()], vec!["r/i-1".to_owned()])
            );
            assert!(found("key-name", "").is_empty(), "no key, no entry");
            // A changed type and groups move the entries; a state change leaves them.
            one.instance_type = "t3.micro".into();
            one.security_group_ids = vec!["sg-2".into(), "sg-3".into()];
            one.state = InstanceState::Stopped;
            put(&one);
            assert_eq!(
                (found("instance-type", "t3.nano"), found("instance-type", "t3.micro")),
                (vec!["q/i-2".to_owned()], vec!["r/i-1".to_owned()])
            );
            assert!(found("instance.group-id", "sg-1").is_empty());
            assert_eq!(found("instance.group-id", "sg-3"), ["r/i-1"]);
            // A rebuild gives what the writes kept; a removal takes them all.
            let all = |s: &Store| {
                s.read(|tx| tx.scan(&ATTRIBUTE_RESERVATIONS, ""))
                    .unwrap()
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect::<Vec<_>>()
            };
            let kept = all(&store);
            assert_eq!(kept.len(), 2 * 6 + 2, "six attributes each, and i-1's two groups");
            store.write(|tx| tx.remove(&META, "derived").and_then(|_| ensure(tx).map(drop))).unwrap();
            assert_eq!(all(&store), kept);
            store.write(|tx| tx.remove(&INSTANCES, "a/i-1")).unwrap();
            store.write(|tx| tx.remove(&INSTANCES, "a/i-2")).unwrap();
            assert!(all(&store).is_empty());
        }
    }

    #[test]
    fn a_live_instance_with_an_attribute_is_found_past_a_batch_of_terminated_ones() {
        for (_kind, store, _db) in crate::testing::stores() {
            // 300 terminated instances in subnet s (more than a batch of 256), then one that
            // runs, whose reservation sorts last.
            store
                .write(|tx| {
                    for n in 0..300 {
                        let r = InstanceRecord {
                            reservation_id: format!("r{n:03}"),
                            ..instance(&format!("i-{n:03}"), "h1", InstanceState::Terminated, None)
                        };
                        tx.insert(&INSTANCES, &format!("a/{}", r.id), &r)?;
                    }
                    Ok::<_, crate::Error>(())
                })
                .unwrap();
            let any = |value: &str, f: fn(&InstanceRecord) -> bool| {
                store.read(|tx| tx.any_live_instance_with("a", "subnet-id", value, f)).unwrap()
            };
            assert!(!any("s", |_| true), "terminated ones do not count");
            let mut live =
                InstanceRecord { reservation_id: "r999".into(), ..instance("i-z", "h1", InstanceState::Running, None) };
            store.write(|tx| tx.insert(&INSTANCES, "a/i-z", &live)).unwrap();
            assert!(any("s", |_| true), "found after the first batch");
            assert!(!any("s", |i| i.public_ip.is_some()), "and asked about");
            assert!(!any("other", |_| true));
            // In a write transaction too (what a deletion asks before it deletes).
            let in_write = store.write(|tx| tx.any_live_instance_with("a", "subnet-id", "s", |_| true)).unwrap();
            assert!(in_write);
            live.state = InstanceState::Terminated;
            store.write(|tx| tx.insert(&INSTANCES, "a/i-z", &live)).unwrap();
            assert!(!any("s", |_| true));
        }
    }

    #[test]
    fn tags_volumes_and_leases_are_indexed() {
        for (_kind, store, _db) in crate::testing::stores() {
            let tag = |v: &str| TagRecord { resource_id: "i-1".into(), key: "env".into(), value: v.into() };
            store.write(|tx| tx.insert(&TAGS, "a/i-1/env", &tag("prod"))).unwrap();
            store.write(|tx| tx.insert(&TAGS, "a/i-1/env", &tag("dev"))).unwrap();
            let found = |prefix: String| -> Vec<String> {
                store.read(|tx| tx.scan(&TAG_INDEX, &prefix)).unwrap().into_iter().map(|(k, _)| k).collect()
            };
            assert!(found(tag_index_prefix("a", "env", Some("prod"))).is_empty());
            assert_eq!(
                found(tag_index_prefix("a", "env", Some("dev"))),
                [format!("{}i-1", tag_index_prefix("a", "env", Some("dev")))]
            );
            store.write(|tx| tx.remove(&TAGS, "a/i-1/env")).unwrap();
            assert!(found(tag_index_prefix("a", "env", None)).is_empty());

            let mut volume: VolumeRecord = serde_json::from_value(serde_json::json!({
                "id": "vol-1", "account": "a", "zone": "z", "size_gib": 1, "volume_type": "gp2", "iops": null,
                "throughput": null, "snapshot_id": null, "state": "available", "attachment": null, "root": false,
                "path": "/v", "client_token": null, "modification": null, "created_ms": 0,
            }))
            .unwrap();
            store.write(|tx| tx.insert(&VOLUMES, "a/vol-1", &volume)).unwrap();
            assert!(store.read(|tx| tx.scan(&VOLUME_ATTACHMENTS, "a/i-1/")).unwrap().is_empty());
            volume.attachment = Some(VolumeAttachmentRecord {
                instance_id: "i-1".into(),
                device: "/dev/sdf".into(),
                state: crate::AttachmentState::Attached,
                attach_time_ms: 0,
                delete_on_termination: false,
            });
            store.write(|tx| tx.insert(&VOLUMES, "a/vol-1", &volume)).unwrap();
            assert_eq!(store.read(|tx| tx.scan(&VOLUME_ATTACHMENTS, "a/i-1/")).unwrap().len(), 1);
            // Multi-Attach: listed under each instance; the first to go hands its place on.
            let second = VolumeAttachmentRecord { instance_id: "i-2".into(), ..volume.attachment.clone().unwrap() };
            volume.attach(second);
            store.write(|tx| tx.insert(&VOLUMES, "a/vol-1", &volume)).unwrap();
            let listed = |s: &Store| -> Vec<String> {
                s.read(|tx| tx.scan(&VOLUME_ATTACHMENTS, "a/")).unwrap().into_iter().map(|(k, _)| k).collect()
            };
            assert_eq!(listed(&store), ["a/i-1/vol-1", "a/i-2/vol-1"]);
            assert_eq!(volume.detach("i-1").unwrap().instance_id, "i-1");
            assert_eq!(volume.attachment.as_ref().unwrap().instance_id, "i-2");
            assert!(volume.shared_attachments.is_empty() && volume.detach("i-1").is_none());
            store.write(|tx| tx.insert(&VOLUMES, "a/vol-1", &volume)).unwrap();
            assert_eq!(listed(&store), ["a/i-2/vol-1"]);
            store.write(|tx| tx.remove(&VOLUMES, "a/vol-1")).unwrap();
            assert!(store.read(|tx| tx.scan(&VOLUME_ATTACHMENTS, "a/")).unwrap().is_empty());

            let lease = LeaseRecord { instance_key: "a/i-1".into(), mac: "m".into() };
            store.write(|tx| tx.insert(&LEASES, "172.31.0.4", &lease)).unwrap();
            let block = |s: &Store| s.read(|tx| tx.get(&LEASE_BLOCKS, "ac1f0000")).unwrap().unwrap();
            assert!(block(&store).is_leased(4));
            store.write(|tx| tx.remove(&LEASES, "172.31.0.4")).unwrap();
            assert!(!block(&store).is_leased(4));
            // A VPC's own address space has its own blocks: the same address is another lease.
            store.write(|tx| tx.insert(&LEASES, "vpc-1/172.31.0.4", &lease)).unwrap();
            assert!(!block(&store).is_leased(4));
            let scoped = store.read(|tx| tx.get(&LEASE_BLOCKS, "vpc-1/ac1f0000")).unwrap().unwrap();
            assert!(scoped.is_leased(4));
        }
    }

    #[test]
    fn instance_tags_are_indexed_by_reservation_whichever_is_written_first() {
        for (_kind, store, _db) in crate::testing::stores() {
            let tag = |id: &str, v: &str| TagRecord { resource_id: id.into(), key: "env".into(), value: v.into() };
            let put_tag = |id: &str, v: &str| store.write(|tx| tx.insert(&TAGS, &format!("a/{id}/env"), &tag(id, v)));
            let put = |id: &str, reservation: &str| {
                let mut r = instance(id, "h1", InstanceState::Running, None);
                r.reservation_id = reservation.into();
                store.write(|tx| tx.insert(&INSTANCES, &format!("a/{id}"), &r))
            };
            let listed = |s: &Store| -> Vec<String> {
                let prefix = tag_index_prefix("a", "env", None);
                let keys = s.read(|tx| tx.scan(&TAGGED_RESERVATIONS, &prefix)).unwrap();
                keys.into_iter().map(|(k, _)| k[prefix.len()..].to_owned()).collect()
            };
            // The instance first, then its tag; a tag first (as a launch may write), then its
            // instance; a volume's tag is not an instance's.
            put("i-1", "r-2").unwrap();
            put_tag("i-1", "prod").unwrap();
            put_tag("i-2", "prod").unwrap();
            put("i-2", "r-1").unwrap();
            store.write(|tx| tx.insert(&TAGS, "a/vol-1/env", &tag("vol-1", "prod"))).unwrap();
            assert_eq!(listed(&store), ["4:prod/r-1/i-2", "4:prod/r-2/i-1"], "in reservation order");
            // A new value moves the entry; the tag's removal takes it away.
            put_tag("i-1", "dev").unwrap();
            assert_eq!(listed(&store), ["3:dev/r-2/i-1", "4:prod/r-1/i-2"]);
            store.write(|tx| tx.remove(&TAGS, "a/i-1/env")).unwrap();
            assert_eq!(listed(&store), ["4:prod/r-1/i-2"]);
            // The instance's removal takes its tags' entries, whether the tags go before or after.
            put_tag("i-1", "dev").unwrap();
            store.write(|tx| tx.remove(&INSTANCES, "a/i-1")).unwrap();
            store.write(|tx| tx.remove(&TAGS, "a/i-1/env")).unwrap();
            store.write(|tx| tx.remove(&TAGS, "a/i-2/env")).unwrap();
            store.write(|tx| tx.remove(&INSTANCES, "a/i-2")).unwrap();
            assert!(listed(&store).is_empty());
            // A rebuild gives what the writes kept.
            put("i-3", "r-3").unwrap();
            put_tag("i-3", "prod").unwrap();
            let kept = listed(&store);
            store.write(|tx| tx.remove(&META, "derived").and_then(|_| ensure(tx).map(drop))).unwrap();
            assert_eq!(listed(&store), kept);
        }
    }

    #[test]
    fn rules_and_interfaces_are_indexed_as_they_change() {
        for (_kind, store, _db) in crate::testing::stores() {
            let rule = |id: &str| crate::SecurityGroupRuleRecord {
                id: id.into(),
                egress: false,
                protocol: "tcp".into(),
                from_port: Some(22),
                to_port: Some(22),
                peer: crate::RulePeer::Ipv4 { cidr: "0.0.0.0/0".into() },
                description: None,
            };
            let mut group = SecurityGroupRecord {
                id: "sg-1".into(),
                account: "a".into(),
                vpc_id: "vpc-1".into(),
                name: "g".into(),
                description: "d".into(),
                default: false,
                rules: vec![rule("sgr-1"), rule("sgr-2")],
                created_ms: 0,
            };
            let rules = |s: &Store| -> Vec<String> {
                s.read(|tx| tx.scan(&GROUP_RULES, "")).unwrap().into_iter().map(|(k, _)| k).collect()
            };
            store.write(|tx| tx.insert(&SECURITY_GROUPS, "a/sg-1", &group)).unwrap();
            assert_eq!(rules(&store), ["a/sgr-1/sg-1", "a/sgr-2/sg-1"]);
            group.rules = vec![rule("sgr-2"), rule("sgr-3")];
            store.write(|tx| tx.insert(&SECURITY_GROUPS, "a/sg-1", &group)).unwrap();
            assert_eq!(rules(&store), ["a/sgr-2/sg-1", "a/sgr-3/sg-1"], "a revoked rule leaves the index");
            store.write(|tx| tx.remove(&SECURITY_GROUPS, "a/sg-1")).unwrap();
            assert!(rules(&store).is_empty());

            store
                .write(|tx| tx.insert(&INSTANCES, "a/i-1", &instance("i-1", "h1", InstanceState::Running, None)))
                .unwrap();
            let interfaces = store.read(|tx| tx.scan(&INTERFACES, "a/")).unwrap();
            assert_eq!(interfaces.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["a/eni/i-1"]);
            store.write(|tx| tx.remove(&INSTANCES, "a/i-1")).unwrap();
            assert!(store.read(|tx| tx.scan(&INTERFACES, "")).unwrap().is_empty());
        }
    }

    #[test]
    fn derived_tables_of_another_layout_are_rebuilt_at_open() {
        let dir = std::env::temp_dir().join(format!("stratus-derived-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.redb");
        {
            let store = Store::open(&path).unwrap();
            store
                .write(|tx| tx.insert(&INSTANCES, "a/i-1", &instance("i-1", "h1", InstanceState::Running, None)))
                .unwrap();
            // As a database written before the derived tables existed would be.
            store
                .write(|tx| {
                    tx.clear(&HOST_USAGE)?;
                    tx.remove(&META, "derived")
                })
                .unwrap();
            assert_eq!(usage(&store, "h1"), (0, 0, 0));
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(usage(&store, "h1"), (2, 512, 3));
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn first_free_skips_full_words_and_stops_at_the_end() {
        let mut block = LeaseBlockRecord::empty();
        for bit in 0..130 {
            block.set(bit, true);
        }
        assert_eq!(block.first_free(4, 4096), Some(130));
        assert_eq!(block.first_free(4, 130), None);
        block.set(70, false);
        assert_eq!(block.first_free(4, 4096), Some(70));
        assert_eq!(block.first_free(71, 4096), Some(130));
        assert_eq!(block.first_free(200, 201), Some(200));
    }

    #[test]
    fn count_takes_the_bits_of_its_range_alone() {
        let mut block = LeaseBlockRecord::empty();
        for bit in [3, 4, 63, 64, 65, 127, 128, 1000, 4095] {
            block.set(bit, true);
        }
        let naive = |from: usize, to: usize| (from..to).filter(|b| block.is_leased(*b)).count() as u32;
        for (from, to) in
            [(0, 4096), (4, 4095), (4, 64), (63, 65), (64, 128), (65, 127), (5, 5), (1000, 1001), (0, 9000)]
        {
            assert_eq!(block.count(from, to), naive(from, to.min(4096)), "{from}..{to}");
        }
        assert_eq!(block.count(0, 4096), 9);
        assert_eq!(block.count(4, 4095), 7);
    }

    #[test]
    fn lease_blocks_split_at_4096_addresses() {
        assert_eq!(lease_block_key("", "172.31.0.4".parse().unwrap()), ("ac1f0000".into(), 4));
        assert_eq!(lease_block_key("", "172.31.16.5".parse().unwrap()), ("ac1f1000".into(), 5));
        assert_eq!(lease_block_key("", "172.31.31.255".parse().unwrap()), ("ac1f1000".into(), 4095));
    }

    #[test]
    fn tag_prefixes_cannot_run_into_each_other() {
        assert_ne!(tag_index_prefix("a", "k", Some("v/1")), tag_index_prefix("a", "k", Some("v")));
        assert!(!tag_index_prefix("a", "ab", None).starts_with(&tag_index_prefix("a", "a", None)));
    }
}
