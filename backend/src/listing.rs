//! Listings: one Describe page, read for what it holds and not for what the store holds.
//!
//! 1. Candidates come in id order from the cheapest source the query allows: the ids it names
//!    (point reads), an exact tag filter (the tag index's keys for the resource's kind, walked
//!    from just after the page token's id and only as far as the page goes), or else the
//!    account's range of the resource's table, starting just after the id the page token
//!    carries.
//! 2. Each candidate is decoded and tested, with its tags, by the caller's predicate (the
//!    Describe filters). A page stops once it holds `limit` matches and one more match shows
//!    that a next page exists; nothing past that is read.
//! 3. What the page's records join (their tags here; an instance's volumes and group names in
//!    [`crate::instances`]) is read for those records alone.
//!
//! DescribeInstances pages by reservation: [`Backend::list_reservations`] walks the
//! reservation index the same way, a reservation counting once however many instances it has;
//! an exact tag filter walks the index of instance tags by reservation instead
//! ([`storage::tables::TAGGED_RESERVATIONS`]), an exact filter on the zone, subnet, VPC, type,
//! image, key, reservation or a group the index of instances by those attributes
//! ([`storage::tables::ATTRIBUTE_RESERVATIONS`]), and an exact state filter the index of
//! instances by state ([`storage::tables::STATE_RESERVATIONS`]), each in reservation order, so
//! that a page reads its page's matches however many instances match, or the account holds.

use std::collections::{BTreeMap, BTreeSet};

use storage::derived::{attribute_prefix, tag_index_prefix};
use storage::tables::{
    ATTRIBUTE_RESERVATIONS, GROUP_RULES, IMAGES, IMAGE_IDS, INSTANCES, INTERFACES, MIGRATIONS, NETWORK_INTERFACES,
    RESERVATIONS, SECURITY_GROUPS, SNAPSHOTS, STATE_RESERVATIONS, TAGGED_RESERVATIONS, TAGS, VOLUMES,
};
use storage::{
    ImageRecord, InstanceRecord, MigrationRecord, ReadTx, Record, SecurityGroupRecord, SecurityGroupRuleRecord,
    SnapshotRecord, Table, TagRecord, VolumeRecord,
};

use crate::tags::TagView;
use crate::{tags, Backend, ResourceKind, Result};

/// A record Describe lists: kept under `{account}/{id}` in its table, unless it says otherwise.
pub trait Listed: Record + Send + 'static {
    const TABLE: Table<Self>;
    const KIND: ResourceKind;
    fn id(&self) -> &str;

    /// The record `id` as `account` may see it.
    fn fetch(tx: &ReadTx, account: &str, id: &str) -> Result<Option<Self>> {
        Ok(tx.get(&Self::TABLE, &format!("{account}/{id}"))?)
    }

    /// Hands `f` the records `account` may see, in id order, from just after `after`, until
    /// `f` answers false.
    fn walk(tx: &ReadTx, account: &str, after: Option<&str>, f: &mut dyn FnMut(Self) -> bool) -> Result<()> {
        Ok(tx.walk(&Self::TABLE, &format!("{account}/"), after, |_, record| f(record))?)
    }
}

/// Images are kept by owner and listed across owners (an account sees its own, every public
/// one and those shared with it), in id order through their id index.
impl Listed for ImageRecord {
    const TABLE: Table<Self> = IMAGES;
    const KIND: ResourceKind = ResourceKind::Image;

    fn id(&self) -> &str {
        &self.id
    }

    fn fetch(tx: &ReadTx, account: &str, id: &str) -> Result<Option<Self>> {
        let Some(owner) = image_owner(tx, id)? else { return Ok(None) };
        let image = tx.get(&IMAGES, &format!("{owner}/{id}"))?;
        Ok(image.filter(|i| i.launchable_by(account)))
    }

    fn walk(tx: &ReadTx, account: &str, after: Option<&str>, f: &mut dyn FnMut(Self) -> bool) -> Result<()> {
        // Index keys are `{id}/{owner}`.
        walk_index(tx, &IMAGE_IDS, "", after, |key| {
            let Some((id, owner)) = key.split_once('/') else { return Ok(true) };
            match tx.get(&IMAGES, &format!("{owner}/{id}"))? {
                Some(image) if image.launchable_by(account) => Ok(f(image)),
                _ => Ok(true),
            }
        })
    }
}

/// Snapshots are kept by owner and listed across owners (an account sees its own, every
/// public one and those shared with it), in id order through their id index.
impl Listed for SnapshotRecord {
    const TABLE: Table<Self> = SNAPSHOTS;
    const KIND: ResourceKind = ResourceKind::Snapshot;

    fn id(&self) -> &str {
        &self.id
    }

    fn fetch(tx: &ReadTx, account: &str, id: &str) -> Result<Option<Self>> {
        Ok(crate::volumes::find_snapshot(tx, id)?.filter(|s| s.usable_by(account)))
    }

    fn walk(tx: &ReadTx, account: &str, after: Option<&str>, f: &mut dyn FnMut(Self) -> bool) -> Result<()> {
        // Index keys are `{id}/{owner}`.
        walk_index(tx, &storage::tables::SNAPSHOT_IDS, "", after, |key| {
            let Some((id, owner)) = key.split_once('/') else { return Ok(true) };
            match tx.get(&SNAPSHOTS, &format!("{owner}/{id}"))? {
                Some(snapshot) if snapshot.usable_by(account) => Ok(f(snapshot)),
                _ => Ok(true),
            }
        })
    }
}

/// Migrations are the operator's: kept and listed by id alone (admins see all of them).
impl Listed for MigrationRecord {
    const TABLE: Table<Self> = MIGRATIONS;
    const KIND: ResourceKind = ResourceKind::Migration;

    fn id(&self) -> &str {
        &self.id
    }

    fn fetch(tx: &ReadTx, _: &str, id: &str) -> Result<Option<Self>> {
        Ok(tx.get(&MIGRATIONS, id)?)
    }

    fn walk(tx: &ReadTx, _: &str, after: Option<&str>, f: &mut dyn FnMut(Self) -> bool) -> Result<()> {
        Ok(tx.walk(&MIGRATIONS, "", after, |_, record| f(record))?)
    }
}

/// Who owns image `id` (ids are unique across owners).
pub(crate) fn image_owner(tx: &ReadTx, id: &str) -> Result<Option<String>> {
    let prefix = format!("{id}/");
    Ok(first_key(tx, &IMAGE_IDS, &prefix)?.map(|key| key[prefix.len()..].to_owned()))
}

/// The key of the live instance whose primary interface is `interface_id`, if any.
pub(crate) fn primary_interface_owner(
    tx: &impl storage::Reads,
    account: &str,
    interface_id: &str,
) -> Result<Option<String>> {
    let prefix = format!("{account}/{interface_id}/");
    for (key, _) in tx.scan(&INTERFACES, &prefix)? {
        let instance = &key[prefix.len()..];
        if instance.is_empty() {
            continue;
        }
        let instance_key = format!("{account}/{instance}");
        let live = tx.get(&INSTANCES, &instance_key)?.is_some_and(|i| i.state != storage::InstanceState::Terminated);
        return Ok(live.then_some(instance_key));
    }
    Ok(None)
}

/// A network interface as Describe shows it: an instance's primary one, or one of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceView {
    pub id: String,
    pub account: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub zone: String,
    pub mac: String,
    pub private_ip: String,
    pub secondary_ips: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub description: String,
    pub source_dest_check: bool,
    pub attachment: Option<InterfaceAttachmentView>,
    /// The attachment that ended last (`detached`), for whoever asks for it by its id.
    pub ended_attachment: Option<InterfaceAttachmentView>,
    /// Made with CreateNetworkInterface (it outlives its attachments).
    pub own: bool,
    /// The public address its instance was given at launch (primary interfaces only).
    pub public_ip: Option<String>,
}

/// Where an interface is attached.
#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceAttachmentView {
    pub id: String,
    pub instance_id: String,
    pub device_index: u32,
    /// `attaching`, `attached`, `detaching` or (an ended one) `detached`.
    pub state: &'static str,
    pub attach_time_ms: i64,
    pub delete_on_termination: bool,
}

fn attachment_view(a: &storage::InterfaceAttachmentRecord, state: &'static str) -> InterfaceAttachmentView {
    InterfaceAttachmentView {
        id: a.id.clone(),
        instance_id: a.instance_id.clone(),
        device_index: a.device_index,
        state,
        attach_time_ms: a.attach_time_ms,
        delete_on_termination: a.delete_on_termination,
    }
}

impl InterfaceView {
    /// An instance's own interface, attached at device index 0 since its launch.
    pub fn primary(record: &InstanceRecord) -> Self {
        Self {
            id: record.network_interface_id.clone(),
            account: record.account.clone(),
            vpc_id: record.vpc_id.clone(),
            subnet_id: record.subnet_id.clone(),
            zone: record.zone.clone(),
            mac: record.mac.clone(),
            private_ip: record.private_ip.clone(),
            secondary_ips: record.secondary_ips.clone(),
            security_group_ids: record.security_group_ids.clone(),
            description: record.kept_interface.as_ref().map(|k| k.description.clone()).unwrap_or_default(),
            source_dest_check: record.source_dest_check,
            attachment: Some(InterfaceAttachmentView {
                id: primary_attachment_id(record),
                instance_id: record.id.clone(),
                device_index: 0,
                state: "attached",
                attach_time_ms: record.launch_time_ms,
                delete_on_termination: record.kept_interface.as_ref().is_none_or(|k| k.delete_on_termination),
            }),
            ended_attachment: None,
            own: false,
            public_ip: record.public_ip.clone(),
        }
    }

    pub fn of_own(record: &storage::NetworkInterfaceRecord) -> Self {
        Self {
            id: record.id.clone(),
            account: record.account.clone(),
            vpc_id: record.vpc_id.clone(),
            subnet_id: record.subnet_id.clone(),
            zone: record.zone.clone(),
            mac: record.mac.clone(),
            private_ip: record.private_ip.clone(),
            secondary_ips: record.secondary_ips.clone(),
            security_group_ids: record.security_group_ids.clone(),
            description: record.description.clone(),
            source_dest_check: record.source_dest_check,
            attachment: record.attachment.as_ref().map(|a| attachment_view(a, a.state.name())),
            ended_attachment: record.ended_attachment.as_ref().map(|a| attachment_view(a, "detached")),
            own: true,
            public_ip: None,
        }
    }

    /// `in-use` while attached, `available` otherwise.
    pub fn status(&self) -> &'static str {
        if self.attachment.as_ref().is_some_and(|a| a.state != "detached") {
            "in-use"
        } else {
            "available"
        }
    }
}

/// The id of an instance's primary interface attachment: `eni-attach-` and the interface's hex.
pub fn primary_attachment_id(record: &InstanceRecord) -> String {
    format!("eni-attach-{}", record.network_interface_id.trim_start_matches("eni-"))
}

/// The first key of an index under `prefix`.
pub(crate) fn first_key(
    tx: &impl storage::Reads,
    index: &Table<storage::IndexEntry>,
    prefix: &str,
) -> Result<Option<String>> {
    let mut found = None;
    tx.walk_keys(index, prefix, None, |key, _| {
        found = Some(key.to_owned());
        Ok(false)
    })?;
    Ok(found)
}

/// Walks an index whose keys are `{prefix}{id}/{…}` in order, from past every key of the id
/// `after`, until `f` answers false or fails.
fn walk_index(
    tx: &ReadTx,
    index: &Table<storage::IndexEntry>,
    prefix: &str,
    after: Option<&str>,
    mut f: impl FnMut(&str) -> Result<bool>,
) -> Result<()> {
    let after = after.map(|id| format!("{id}/\u{10ffff}"));
    let mut failed = None;
    tx.walk_keys(index, prefix, after.as_deref(), |key, _| match f(key) {
        Ok(more) => Ok(more),
        Err(error) => {
            failed = Some(error);
            Ok(false)
        }
    })?;
    failed.map_or(Ok(()), Err)
}

/// How many entries a walk of one range of [`walk_by_reservation`] reads at first, and at
/// most, when several ranges are merged (each batch doubles).
const MERGE_BATCH: (usize, usize) = (16, 1024);

/// Hands `f` the `(reservation id, instance id)` of an index whose keys are
/// `{prefix}{reservation id}/{instance id}`, over the ranges of `prefixes` (one per value a
/// filter names), in DescribeInstances' order (by reservation, then instance id), each entry
/// once, from the first reservation after `after`, until `f` answers false. Only as far as
/// `f` goes is read.
fn walk_by_reservation(
    tx: &ReadTx,
    index: &Table<storage::IndexEntry>,
    prefixes: BTreeSet<String>,
    after: Option<&str>,
    mut f: impl FnMut(&str, &str) -> storage::Result<bool>,
) -> storage::Result<()> {
    // `{reservation}0` sorts after every entry of that reservation ('/' < '0').
    let start = after.map(|r| format!("{r}0"));
    let mut pass_on = |entry: &str| match entry.split_once('/') {
        Some((reservation, instance)) => f(reservation, instance),
        None => Ok(true),
    };
    if prefixes.len() == 1 {
        let prefix = prefixes.first().map(String::as_str).unwrap_or_default();
        return tx.walk_keys(index, prefix, start.as_deref(), |key, _| pass_on(&key[prefix.len()..]));
    }
    // Several ranges: batches of each merged, as far as every range's batch reaches (an entry
    // past a batch that stopped short could still be preceded by another range's next ones).
    let (mut cursor, mut batch) = (start, MERGE_BATCH.0);
    loop {
        let mut merged = BTreeSet::new();
        let mut frontier: Option<String> = None;
        for prefix in &prefixes {
            let (mut read, mut last) = (0, None);
            tx.walk_keys(index, prefix, cursor.as_deref(), |key, _| {
                let entry = &key[prefix.len()..];
                merged.insert(entry.to_owned());
                last = Some(entry.to_owned());
                read += 1;
                Ok(read < batch)
            })?;
            if read == batch {
                frontier = frontier.into_iter().chain(last).min();
            }
        }
        for entry in merged.iter().filter(|e| frontier.as_ref().is_none_or(|f| *e <= f)) {
            if !pass_on(entry)? {
                return Ok(());
            }
        }
        match frontier {
            None => return Ok(()),
            Some(last) => cursor = Some(last),
        }
        batch = (batch * 2).min(MERGE_BATCH.1);
    }
}

/// Elastic IPs by allocation id (DescribeAddressesAttribute pages them).
impl Listed for storage::AddressRecord {
    const TABLE: Table<Self> = storage::tables::ADDRESSES;
    const KIND: ResourceKind = ResourceKind::ElasticIp;

    fn id(&self) -> &str {
        &self.allocation_id
    }
}

macro_rules! listed {
    ($($record:ty => $table:expr, $kind:expr;)*) => {$(
        impl Listed for $record {
            const TABLE: Table<Self> = $table;
            const KIND: ResourceKind = $kind;
            fn id(&self) -> &str {
                &self.id
            }
        }
    )*};
}

listed! {
    VolumeRecord => VOLUMES, ResourceKind::Volume;
    InstanceRecord => INSTANCES, ResourceKind::Instance;
    SecurityGroupRecord => SECURITY_GROUPS, ResourceKind::SecurityGroup;
    storage::LaunchTemplateRecord => storage::tables::LAUNCH_TEMPLATES, ResourceKind::LaunchTemplate;
    storage::VpcRecord => storage::tables::VPCS, ResourceKind::Vpc;
    storage::SubnetRecord => storage::tables::SUBNETS, ResourceKind::Subnet;
    storage::InternetGatewayRecord => storage::tables::INTERNET_GATEWAYS, ResourceKind::InternetGateway;
    storage::RouteTableRecord => storage::tables::ROUTE_TABLES, ResourceKind::RouteTable;
    storage::NatGatewayRecord => storage::tables::NAT_GATEWAYS, ResourceKind::NatGateway;
    storage::NetworkAclRecord => storage::tables::NETWORK_ACLS, ResourceKind::NetworkAcl;
}

/// What one page asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    /// Only these ids (each once); those that name nothing come back as `missing`.
    pub ids: Vec<String>,
    /// Only these ids, as an exact id filter narrows: ids of nothing are simply not listed.
    pub only_ids: Vec<String>,
    /// Resume after this id (for reservations: this reservation id).
    pub after: Option<String>,
    /// Matches per page; `None`: all of them.
    pub limit: Option<usize>,
    /// An exact `tag:<key>` filter: only resources tagged `key` with one of the values.
    pub tagged: Option<(String, Vec<String>)>,
    /// An exact `instance-state-name` filter (DescribeInstances): only instances in one of
    /// these states (state names, as EC2 spells them).
    pub states: Option<Vec<String>>,
    /// An exact filter on one of [`storage::derived::INDEXED_ATTRIBUTES`] (DescribeInstances),
    /// as (filter name, values).
    pub attribute: Option<(String, Vec<String>)>,
    /// Only resources whose ids start with one of these (DescribeTags' `resource-type`).
    pub id_prefixes: Option<Vec<String>>,
}

/// One listed record and its tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Item<V> {
    pub record: V,
    pub tags: Vec<(String, String)>,
}

/// One page: its items in id order, whether more match past them, and the named ids that
/// name nothing the account has.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub more: bool,
    pub missing: Vec<String>,
}

/// The predicate a page tests each candidate with.
pub type Keep<'a, V> = dyn FnMut(&V, &[(String, String)]) -> bool + 'a;

/// Collects matches until the page is full and one more shows there is a next page.
struct Filling<'k, 'a, V> {
    items: Vec<Item<V>>,
    more: bool,
    limit: Option<usize>,
    keep: &'k mut Keep<'a, V>,
}

impl<V> Filling<'_, '_, V> {
    /// Offers one candidate; answers whether the page wants more.
    fn offer(&mut self, record: V, tags: Vec<(String, String)>) -> bool {
        if !(self.keep)(&record, &tags) {
            return true;
        }
        if self.limit.is_some_and(|n| self.items.len() >= n) {
            self.more = true;
            return false;
        }
        self.items.push(Item { record, tags });
        true
    }
}

/// The ids a query names, sorted, each once, when it names any: the client's, or an exact id
/// filter's; `None` when the account's range (or an exact tag filter's) is to be walked.
fn named_ids(query: &ListQuery) -> Option<Vec<String>> {
    let sorted = |ids: &[String]| ids.iter().collect::<BTreeSet<_>>().into_iter().cloned().collect();
    if !query.ids.is_empty() {
        Some(sorted(&query.ids))
    } else if !query.only_ids.is_empty() {
        Some(sorted(&query.only_ids))
    } else {
        None
    }
}

/// One page of `account`'s records of `V`, in id order, within a snapshot.
pub(crate) fn list_in<V: Listed>(
    tx: &ReadTx,
    account: &str,
    query: &ListQuery,
    keep: &mut Keep<'_, V>,
) -> Result<Page<Item<V>>> {
    let after = query.after.as_deref();
    let mut missing = Vec::new();
    let mut filling = Filling { items: Vec::new(), more: false, limit: query.limit, keep };
    let mut tags_of = tags::TagReader::new(tx, account);
    match (named_ids(query), &query.tagged) {
        (Some(ids), _) => {
            let mut found = Vec::new();
            for id in &ids {
                match V::fetch(tx, account, id)? {
                    Some(record) => found.push(record),
                    None => missing.push(id.clone()),
                }
            }
            for record in found.into_iter().filter(|r| after.is_none_or(|a| r.id() > a)) {
                let tags = tags_of.of(record.id())?;
                if !filling.offer(record, tags) {
                    break;
                }
            }
            if query.ids.is_empty() {
                // Only the ids a client named can be missing, not those a filter found.
                missing.clear();
            }
        }
        (None, Some((key, values))) => {
            let mut failed = None;
            tags::walk_tagged(tx, account, key, values, V::KIND.prefix(), after, |id| {
                let offered = V::fetch(tx, account, id).and_then(|record| match record {
                    Some(record) => Ok(filling.offer(record, tags_of.of(id)?)),
                    None => Ok(true),
                });
                offered.or_else(|error| {
                    failed = Some(error);
                    Ok(false)
                })
            })?;
            if let Some(error) = failed {
                return Err(error);
            }
        }
        (None, None) => {
            let mut failed = None;
            V::walk(tx, account, after, &mut |record: V| match tags_of.of(record.id()) {
                Ok(tags) => filling.offer(record, tags),
                Err(error) => {
                    failed = Some(error);
                    false
                }
            })?;
            if let Some(error) = failed {
                return Err(error.into());
            }
        }
    }
    Ok(Page { items: filling.items, more: filling.more, missing })
}

/// The page key of a tag: its resource id and its key, in the tag table's order.
pub fn tag_page_key(tag: &TagView) -> String {
    format!("{}/{}", tag.resource_id, tag.key)
}

/// One rule of a DescribeSecurityGroupRules page, with its group and its tags.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleItem {
    pub group: std::sync::Arc<SecurityGroupRecord>,
    pub rule: SecurityGroupRuleRecord,
    pub tags: Vec<(String, String)>,
}

/// One reservation of a DescribeInstances page: its id and its matching instances.
pub type ReservationItem = (String, Vec<Item<InstanceRecord>>);

impl Backend {
    /// One page of `account`'s tags in (resource id, key) order; `query.ids` are resource ids
    /// to read the tags of alone, `after` a [`tag_page_key`].
    pub fn list_tags(
        &self,
        account: &str,
        query: &ListQuery,
        mut keep: impl FnMut(&TagView) -> bool,
    ) -> Result<Page<TagView>> {
        self.store().read(|tx| {
            let mut page = Page { items: Vec::new(), more: false, missing: Vec::new() };
            let mut offer = |record: TagRecord| {
                let Some(resource_kind) = ResourceKind::of_id(&record.resource_id) else { return true };
                let view =
                    TagView { resource_kind, resource_id: record.resource_id, key: record.key, value: record.value };
                if !keep(&view) {
                    return true;
                }
                if query.limit.is_some_and(|n| page.items.len() >= n) {
                    page.more = true;
                    return false;
                }
                page.items.push(view);
                true
            };
            let prefix = format!("{account}/");
            // The ranges of the table to walk, in key order: each named resource's tags, or
            // the tags of each kind asked for, or the account's.
            let ranges: BTreeSet<String> = if !query.ids.is_empty() {
                query.ids.iter().map(|id| format!("{id}/")).collect()
            } else if let Some(prefixes) = &query.id_prefixes {
                prefixes.iter().cloned().collect()
            } else {
                tx.walk(&TAGS, &prefix, query.after.as_deref(), |_, record| offer(record))?;
                return Ok(page);
            };
            for range in &ranges {
                // Resume within this range, skip it if the token is past it.
                let after = match query.after.as_deref() {
                    Some(after) if after.starts_with(range.as_str()) => Some(&after[range.len()..]),
                    Some(after) if after > range.as_str() => continue,
                    _ => None,
                };
                let mut more = true;
                tx.walk(&TAGS, &format!("{prefix}{range}"), after, |_, record| {
                    more = offer(record);
                    more
                })?;
                if !more {
                    break;
                }
            }
            Ok(page)
        })
    }

    /// One page of `account`'s network interfaces, in interface id order: instances' primary
    /// ones (terminated instances have none) and those of their own, with the interface's
    /// tags. `query.ids` and `query.only_ids` are interface ids; `after` is the last interface
    /// id of the page before.
    pub fn list_interfaces(
        &self,
        account: &str,
        query: &ListQuery,
        mut keep: impl FnMut(&InterfaceView, &[(String, String)]) -> bool,
    ) -> Result<Page<Item<InterfaceView>>> {
        self.store().read(|tx| {
            let prefix = format!("{account}/");
            let mut filling = Filling { items: Vec::new(), more: false, limit: query.limit, keep: &mut keep };
            let mut missing = Vec::new();
            // Hands one index key's interface to the page; answers whether the page wants more.
            let offer = |filling: &mut Filling<'_, '_, InterfaceView>, key: &str| -> Result<Option<bool>> {
                let Some((eni, id)) = key[prefix.len()..].split_once('/') else { return Ok(Some(true)) };
                let view = if id.is_empty() {
                    let Some(record) = tx.get(&NETWORK_INTERFACES, &format!("{account}/{eni}"))? else {
                        return Ok(None);
                    };
                    InterfaceView::of_own(&record)
                } else {
                    let Some(record) = tx.get(&INSTANCES, &format!("{account}/{id}"))? else { return Ok(None) };
                    if record.state == storage::InstanceState::Terminated {
                        return Ok(None);
                    }
                    InterfaceView::primary(&record)
                };
                let tags = tags::of_resource(tx, account, eni)?;
                Ok(Some(filling.offer(view, tags)))
            };
            let named = if !query.ids.is_empty() { &query.ids } else { &query.only_ids };
            if !named.is_empty() {
                let after = query.after.as_deref();
                for eni in named.iter().collect::<BTreeSet<_>>() {
                    let found = first_key(tx, &INTERFACES, &format!("{prefix}{eni}/"))?;
                    let wanted = after.is_none_or(|a| eni.as_str() > a);
                    match found {
                        Some(key) if wanted => match offer(&mut filling, &key)? {
                            Some(false) => break,
                            Some(true) => {}
                            None => missing.push(eni.clone()),
                        },
                        Some(_) => {}
                        None => missing.push(eni.clone()),
                    }
                }
                if query.ids.is_empty() {
                    missing.clear();
                }
                return Ok(Page { items: filling.items, more: filling.more, missing });
            }
            // Keys are `{account}/{eni}/{instance}`, or `{account}/{eni}/` for one of its own.
            walk_index(tx, &INTERFACES, &prefix, query.after.as_deref(), |key| {
                Ok(offer(&mut filling, key)?.unwrap_or(true))
            })?;
            Ok(Page { items: filling.items, more: filling.more, missing })
        })
    }

    /// One page of `account`'s security group rules, in rule id order, each with its group
    /// (read once a page) and the rule's tags. `query.ids` are rule ids; `after` is the last
    /// rule id of the page before.
    pub fn list_group_rules(
        &self,
        account: &str,
        query: &ListQuery,
        mut keep: impl FnMut(&SecurityGroupRecord, &SecurityGroupRuleRecord, &[(String, String)]) -> bool,
    ) -> Result<Page<RuleItem>> {
        self.store().read(|tx| {
            let prefix = format!("{account}/");
            let mut groups: BTreeMap<String, Option<std::sync::Arc<SecurityGroupRecord>>> = BTreeMap::new();
            let mut page = Page { items: Vec::new(), more: false, missing: Vec::new() };
            // Offers the rule an index key names; answers whether the page wants more, or None
            // when the key names nothing (a group changed under the index: not possible within
            // one snapshot, but never trusted).
            let mut offer = |page: &mut Page<RuleItem>, key: &str| -> Result<Option<bool>> {
                let Some((rule_id, group_id)) = key[prefix.len()..].split_once('/') else { return Ok(None) };
                if !groups.contains_key(group_id) {
                    let group = tx.get(&SECURITY_GROUPS, &format!("{account}/{group_id}"))?.map(std::sync::Arc::new);
                    groups.insert(group_id.to_owned(), group);
                }
                let Some(group) = groups[group_id].clone() else { return Ok(None) };
                let Some(rule) = group.rules.iter().find(|r| r.id == rule_id).cloned() else { return Ok(None) };
                let tags = tags::of_resource(tx, account, rule_id)?;
                if !keep(&group, &rule, &tags) {
                    return Ok(Some(true));
                }
                if query.limit.is_some_and(|n| page.items.len() >= n) {
                    page.more = true;
                    return Ok(Some(false));
                }
                page.items.push(RuleItem { group, rule, tags });
                Ok(Some(true))
            };
            if !query.ids.is_empty() {
                let after = query.after.as_deref();
                for rule in query.ids.iter().collect::<BTreeSet<_>>() {
                    let found = first_key(tx, &GROUP_RULES, &format!("{prefix}{rule}/"))?;
                    let outcome = match &found {
                        Some(key) if after.is_none_or(|a| rule.as_str() > a) => offer(&mut page, key)?,
                        Some(_) => Some(true),
                        None => None,
                    };
                    match outcome {
                        Some(false) => break,
                        Some(true) => {}
                        None => page.missing.push(rule.clone()),
                    }
                }
                return Ok(page);
            }
            // Keys are `{account}/{rule}/{group}`.
            walk_index(tx, &GROUP_RULES, &prefix, query.after.as_deref(), |key| {
                Ok(offer(&mut page, key)?.unwrap_or(true))
            })?;
            Ok(page)
        })
    }

    /// One page of `account`'s records of `V` (see the module doc).
    pub fn list<V: Listed>(
        &self,
        account: &str,
        query: &ListQuery,
        mut keep: impl FnMut(&V, &[(String, String)]) -> bool,
    ) -> Result<Page<Item<V>>> {
        self.list_reading(account, query, |_, record, tags| keep(record, tags))
    }

    /// As [`Backend::list`], `keep` given the page's read too: for a test of what the record
    /// joins, read in the page's snapshot (on PostgreSQL a read nested in another would take a
    /// connection and a snapshot of its own).
    pub fn list_reading<V: Listed>(
        &self,
        account: &str,
        query: &ListQuery,
        mut keep: impl FnMut(&ReadTx, &V, &[(String, String)]) -> bool,
    ) -> Result<Page<Item<V>>> {
        self.store()
            .read(|tx| list_in(tx, account, query, &mut |record: &V, tags: &[(String, String)]| keep(tx, record, tags)))
    }

    /// One page of `account`'s reservations, in reservation id order, each with the instances
    /// that `keep` keeps (a reservation with none is not listed); `limit` counts reservations.
    pub fn list_reservations(
        &self,
        account: &str,
        query: &ListQuery,
        mut keep: impl FnMut(&InstanceRecord, &[(String, String)]) -> bool,
    ) -> Result<Page<ReservationItem>> {
        self.store().read(|tx| {
            let mut page = Page { items: Vec::new(), more: false, missing: Vec::new() };
            // An instance's id starts with its reservation's (ids::member_ids): in reservation
            // order, the instances' tags are read ahead in one walk.
            let mut tags_of = tags::TagReader::new(tx, account);
            // Offers one reservation's instances; answers whether the page wants more.
            let mut offer = |page: &mut Page<ReservationItem>, reservation: String, members: Vec<InstanceRecord>| {
                let mut kept = Vec::new();
                for record in members {
                    let tags = tags_of.of(&record.id)?;
                    if keep(&record, &tags) {
                        kept.push(Item { record, tags });
                    }
                }
                if kept.is_empty() {
                    return Ok::<_, crate::Error>(true);
                }
                if query.limit.is_some_and(|n| page.items.len() >= n) {
                    page.more = true;
                    return Ok(false);
                }
                page.items.push((reservation, kept));
                Ok(true)
            };
            // Records to read by id: those the query names (grouped by reservation, in
            // reservation order).
            if let Some(ids) = named_ids(query) {
                let mut grouped: BTreeMap<String, Vec<InstanceRecord>> = BTreeMap::new();
                for id in &ids {
                    match tx.get(&INSTANCES, &format!("{account}/{id}"))? {
                        Some(record) => grouped.entry(record.reservation_id.clone()).or_default().push(record),
                        None if !query.ids.is_empty() => page.missing.push(id.clone()),
                        None => {}
                    }
                }
                let after = query.after.as_deref();
                for (reservation, members) in grouped.into_iter().filter(|(r, _)| after.is_none_or(|a| r.as_str() > a))
                {
                    if !offer(&mut page, reservation, members)? {
                        break;
                    }
                }
                return Ok(page);
            }
            // Otherwise an index in reservation order, as far as the page goes: the instances
            // an exact tag filter matches, or all of the account's. Its entries come one
            // instance at a time; a reservation is offered whole once the next one begins.
            let mut current: Option<(String, Vec<String>)> = None;
            let mut flush = |current: &mut Option<(String, Vec<String>)>, page: &mut Page<ReservationItem>| {
                let Some((reservation, ids)) = current.take() else { return Ok::<_, crate::Error>(true) };
                let mut members = Vec::with_capacity(ids.len());
                for id in ids {
                    members.extend(tx.get(&INSTANCES, &format!("{account}/{id}"))?);
                }
                offer(page, reservation, members)
            };
            let mut failed = None;
            let mut entry = |reservation: &str, id: &str| {
                if current.as_ref().is_some_and(|(r, _)| r != reservation) {
                    match flush(&mut current, &mut page) {
                        Ok(true) => {}
                        Ok(false) => return Ok(false),
                        Err(error) => {
                            failed = Some(error);
                            return Ok(false);
                        }
                    }
                }
                current.get_or_insert_with(|| (reservation.to_owned(), Vec::new())).1.push(id.to_owned());
                Ok(true)
            };
            let after = query.after.as_deref();
            // The index of the first exact filter that has one, of: a tag, an attribute, the
            // state (the other filters are tested on each record as it is read).
            let narrowed = match (&query.tagged, &query.attribute, &query.states) {
                (Some((key, values)), _, _) => Some((
                    &TAGGED_RESERVATIONS,
                    values.iter().map(|v| tag_index_prefix(account, key, Some(v))).collect(),
                )),
                (None, Some((name, values)), _) => {
                    Some((&ATTRIBUTE_RESERVATIONS, values.iter().map(|v| attribute_prefix(account, name, v)).collect()))
                }
                (None, None, Some(states)) => {
                    Some((&STATE_RESERVATIONS, states.iter().map(|s| format!("{account}/{s}/")).collect()))
                }
                (None, None, None) => None,
            };
            match narrowed {
                Some((index, prefixes)) => walk_by_reservation(tx, index, prefixes, after, &mut entry)?,
                None => {
                    // Keys are `{account}/{reservation}/{instance}`; `{reservation}0` sorts
                    // after every key of that reservation ('/' < '0') and before the next
                    // reservation's.
                    let prefix = format!("{account}/");
                    let after = after.map(|r| format!("{r}0"));
                    tx.walk_keys(&RESERVATIONS, &prefix, after.as_deref(), |key, _| {
                        match key[prefix.len()..].split_once('/') {
                            Some((reservation, id)) => entry(reservation, id),
                            None => Ok(true),
                        }
                    })?
                }
            }
            if let Some(error) = failed {
                return Err(error);
            }
            if !page.more {
                flush(&mut current, &mut page)?;
            }
            Ok(page)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::{backend, test_disk};

    #[test]
    fn images_page_across_owners_in_id_order_showing_own_and_public_only() {
        let b = backend();
        let dir = tempfile::tempdir().unwrap();
        let disk = test_disk(dir.path());
        let mut visible = BTreeSet::new();
        let mut hidden = Vec::new();
        for n in 0..18 {
            let (owner, public) = [("a", false), ("b", true), ("b", false), ("c", true)][n % 4];
            let new =
                crate::images::NewImage { name: format!("img-{n}"), disk: disk.clone(), public, ..Default::default() };
            let image = b.register_image(owner, new).unwrap();
            if owner == "a" || public {
                visible.insert(image.id);
            } else {
                hidden.push(image.id);
            }
        }
        let mut query = ListQuery { limit: Some(4), ..Default::default() };
        let mut listed = Vec::new();
        loop {
            let page = b.list::<ImageRecord>("a", &query, |_, _| true).unwrap();
            listed.extend(page.items.iter().map(|i| i.record.id.clone()));
            match page.items.last().filter(|_| page.more) {
                Some(last) => query.after = Some(last.record.id.clone()),
                None => break,
            }
        }
        assert_eq!(listed, visible.iter().cloned().collect::<Vec<_>>(), "own and public, each once, in id order");
        let named = ListQuery { ids: vec![hidden[0].clone(), listed[0].clone()], ..Default::default() };
        let page = b.list::<ImageRecord>("a", &named, |_, _| true).unwrap();
        assert_eq!(page.missing, vec![hidden[0].clone()], "another's private image is nothing to this account");
        assert!(b.image("a", &hidden[0]).is_err() && b.image("b", &hidden[0]).is_ok());
    }

    #[test]
    fn a_tag_filter_pages_its_kind_alone_in_id_order_whatever_its_values() {
        let b = backend();
        let zone = b.topology().default_zone().to_owned();
        let mut by_env: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for n in 0..120 {
            let volume = b
                .create_volume(
                    "a",
                    crate::volumes::NewVolume { zone: zone.clone(), size_gib: Some(1), ..Default::default() },
                )
                .unwrap();
            let env = ["prod", "prod", "dev", "test"][n % 4];
            let tag = vec![("env".to_owned(), env.to_owned())];
            b.store().write(|tx| tags::put_tags(tx, "a", &volume.id, &tag)).unwrap();
            by_env.entry(env).or_default().push(volume.id);
        }
        // Other kinds share the tag's index range: instances before volumes, VPCs after.
        b.store()
            .write(|tx| {
                for n in 0..30 {
                    let tag = vec![("env".to_owned(), "prod".to_owned())];
                    tags::put_tags(tx, "a", &format!("i-{n:017x}"), &tag)?;
                    tags::put_tags(tx, "a", &format!("vpc-{n:017x}"), &tag)?;
                }
                Ok::<_, crate::Error>(())
            })
            .unwrap();
        for values in [vec!["prod"], vec!["test", "prod"], vec!["dev", "nothing"]] {
            let mut expected: Vec<String> =
                values.iter().flat_map(|v| by_env.get(v).cloned().unwrap_or_default()).collect();
            expected.sort();
            let tagged = Some(("env".to_owned(), values.iter().map(|v| v.to_string()).collect()));
            let mut query = ListQuery { limit: Some(7), tagged, ..Default::default() };
            let (mut listed, mut pages) = (Vec::new(), 0);
            loop {
                let mut tested = 0;
                let page = b
                    .list::<VolumeRecord>("a", &query, |_, _| {
                        tested += 1;
                        true
                    })
                    .unwrap();
                // The page's seven and the one that shows a next page are tested, no more.
                assert!(tested <= 8, "{values:?}: {tested} volumes tested for a page of 7");
                pages += 1;
                listed.extend(page.items.iter().map(|i| i.record.id.clone()));
                match page.items.last().filter(|_| page.more) {
                    Some(last) => query.after = Some(last.record.id.clone()),
                    None => break,
                }
            }
            assert_eq!(listed, expected, "{values:?}: every match once, in id order");
            assert_eq!(pages, expected.len().div_ceil(7).max(1), "{values:?}");
        }
    }

    #[test]
    fn tags_of_some_kinds_are_read_from_their_ranges_alone() {
        let b = backend();
        let tag = vec![("k".to_owned(), "v".to_owned())];
        b.store()
            .write(|tx| {
                for n in 0..50 {
                    for prefix in ["i-", "vol-", "sg-", "snap-"] {
                        tags::put_tags(tx, "a", &format!("{prefix}{n:04x}"), &tag)?;
                    }
                }
                tags::put_tags(tx, "b", "vol-0001", &tag)
            })
            .unwrap();
        let mut query =
            ListQuery { id_prefixes: Some(vec!["vol-".into(), "sg-".into()]), limit: Some(30), ..Default::default() };
        let mut tested = 0;
        let mut walked = Vec::new();
        loop {
            let page = b
                .list_tags("a", &query, |_| {
                    tested += 1;
                    true
                })
                .unwrap();
            walked.extend(page.items.iter().map(|t| t.resource_id.clone()));
            match page.items.last().filter(|_| page.more) {
                Some(last) => query.after = Some(tag_page_key(last)),
                None => break,
            }
        }
        assert_eq!(walked.len(), 100, "every sg- and vol- tag of the account, no other");
        assert!(walked.iter().all(|id| id.starts_with("vol-") || id.starts_with("sg-")));
        assert!(walked.windows(2).all(|w| w[0] < w[1]), "in order");
        // Four pages of up to 30 (plus one look past each full page): only those ranges were read.
        assert!(tested <= 104, "{tested} tags were tested for 100 listed");
        query = ListQuery { id_prefixes: Some(vec![]), ..Default::default() };
        assert!(b.list_tags("a", &query, |_| true).unwrap().items.is_empty(), "a type no kind has lists nothing");
    }
}
