//! Tags, generic over resource ids.
//!
//! A tag lives under `{account}/{resource id}/{key}`; the id's prefix tells the resource's
//! kind, and each kind answers whether an id exists in the caller's account.

use std::collections::BTreeMap;

use storage::derived::tag_index_prefix;
use storage::tables::{
    IMAGES, INSTANCES, INTERNET_GATEWAYS, KEY_PAIRS, ROUTE_TABLES, SECURITY_GROUPS, SNAPSHOTS, SUBNETS, TAGS,
    TAG_INDEX, VOLUMES, VPCS,
};
use storage::{Reads, TagRecord, WriteTx};

use crate::{Backend, Error, ResourceKind, Result};

/// Most tags one resource may carry, as in EC2.
pub const MAX_TAGS_PER_RESOURCE: usize = 50;

/// One tag as Describe answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct TagView {
    pub resource_id: String,
    pub resource_kind: ResourceKind,
    pub key: String,
    pub value: String,
}

/// Tags grouped by resource id, for joining into Describe answers.
pub type TagsByResource = BTreeMap<String, Vec<(String, String)>>;

/// One resource's tags, by key.
pub(crate) fn of_resource(tx: &impl Reads, account: &str, resource: &str) -> storage::Result<Vec<(String, String)>> {
    Ok(tx.scan(&TAGS, &format!("{account}/{resource}/"))?.into_iter().map(|(_, t)| (t.key, t.value)).collect())
}

/// Tags of resources asked for in id order, as a page walks them: one walk of the tag table
/// reads ahead the tags of the resources that follow, so that a page costs a seek into the
/// tag table per batch rather than one per resource (a seek's cost grows with the table's
/// depth). A resource asked for after a gap (a filter's sparse matches) is read alone, as a
/// lookup of its own would, and the walk notes where the next resource starts; while each ask
/// is for the resource just after what was read, each walk reads twice as much as the last.
/// A resource asked for before what was read is looked up alone.
pub(crate) struct TagReader<'t> {
    tx: &'t storage::ReadTx,
    account: &'t str,
    /// The tags read ahead, by resource id: every resource whose `{id}/` sorts from `from`
    /// to just before `until` (to the account's last tag with `None`) has all its tags here,
    /// or has none. Resources are compared as their keys' `{id}/` so that their order is the
    /// table's (an id that another extends with a byte below '/' sorts after it there).
    read: BTreeMap<String, Vec<(String, String)>>,
    from: String,
    until: Option<String>,
    batch: usize,
}

/// Tag rows the first read-ahead takes (one resource's), and the most one takes (a walk ends
/// with a resource, so it may take up to one resource's tags more).
const READ_AHEAD: (usize, usize) = (1, 1024);

impl<'t> TagReader<'t> {
    pub(crate) fn new(tx: &'t storage::ReadTx, account: &'t str) -> Self {
        Self { tx, account, read: BTreeMap::new(), from: String::new(), until: Some(String::new()), batch: 0 }
    }

    /// The resource's tags, by key.
    pub(crate) fn of(&mut self, resource: &str) -> storage::Result<Vec<(String, String)>> {
        let key = format!("{resource}/");
        if key < self.from {
            return of_resource(self.tx, self.account, resource);
        }
        if self.until.as_ref().is_some_and(|until| key >= *until) {
            // Going on where the last walk ended: a longer walk this time; after a gap, this
            // resource's tags alone.
            self.batch = if self.until.as_ref() == Some(&key) {
                (self.batch * 2).clamp(READ_AHEAD.0, READ_AHEAD.1)
            } else {
                READ_AHEAD.0
            };
            self.read_ahead(key)?;
        }
        Ok(self.read.get(resource).cloned().unwrap_or_default())
    }

    /// Reads at least `batch` tag rows from the first of the resource whose key form is
    /// `from`, up to a resource's end.
    fn read_ahead(&mut self, from: String) -> storage::Result<()> {
        // Nothing is read until the walk is over (an error leaves nothing half read).
        self.read.clear();
        (self.from, self.until) = (String::new(), Some(String::new()));
        let prefix = format!("{}/", self.account);
        let (mut rows, mut until, mut last) = (0, None, None::<String>);
        let (tx, read, batch) = (self.tx, &mut self.read, self.batch);
        // `{account}/{resource}/` sorts just before the resource's first tag.
        tx.walk_keys(&TAGS, &prefix, Some(&from), |key, bytes| {
            let Some((id, _)) = key[prefix.len()..].split_once('/') else { return Ok(true) };
            if last.as_deref() != Some(id) {
                if rows >= batch {
                    // Every resource before this one is read whole.
                    until = Some(format!("{id}/"));
                    return Ok(false);
                }
                last = Some(id.to_owned());
            }
            let tag: TagRecord = tx.decode(&TAGS, key, bytes)?;
            read.entry(id.to_owned()).or_default().push((tag.key, tag.value));
            rows += 1;
            Ok(true)
        })?;
        (self.from, self.until) = (from, until);
        Ok(())
    }
}

/// Hands `f` the ids of `account`'s resources whose ids start with `id_prefix` (one kind's)
/// and that are tagged `key` with one of `values`, each once, in id order from just after
/// `after`, until `f` answers false. Only the tag index's keys are read, and only as far as
/// `f` goes: a page of a tag filter stops where the page does, however many resources match.
/// A snapshot's, so that `f` may read it too.
pub(crate) fn walk_tagged(
    tx: &storage::ReadTx,
    account: &str,
    key: &str,
    values: &[String],
    id_prefix: &str,
    after: Option<&str>,
    mut f: impl FnMut(&str) -> storage::Result<bool>,
) -> storage::Result<()> {
    // Ids of other kinds share each value's range; the kind's own start where its prefix
    // does (the prefix without its last character sorts before every id that has it).
    let floor = &id_prefix[..id_prefix.len().saturating_sub(1)];
    let from = |after: Option<&str>| after.filter(|a| *a > floor).unwrap_or(floor).to_owned();
    // Whether a walk over `id` goes on: `Some(true)` an id of the kind, `Some(false)` another
    // kind's before it (skipped), `None` past the kind's range (the walk is over).
    let of_kind = |id: &str| match (id.starts_with(id_prefix), id < id_prefix) {
        (true, _) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
    };
    // The first id of the kind past `after` that is tagged `value`.
    let next = |value: &str, after: &str| -> storage::Result<Option<String>> {
        let prefix = tag_index_prefix(account, key, Some(value));
        let mut found = None;
        tx.walk_keys(&TAG_INDEX, &prefix, Some(after), |entry, _| {
            let id = &entry[prefix.len()..];
            Ok(match of_kind(id) {
                Some(true) => {
                    found = Some(id.to_owned());
                    false
                }
                Some(false) => true,
                None => false,
            })
        })?;
        Ok(found)
    };
    if let [value] = values {
        // One value: one walk, as far as `f` goes.
        let prefix = tag_index_prefix(account, key, Some(value));
        return tx.walk_keys(&TAG_INDEX, &prefix, Some(&from(after)), |entry, _| {
            let id = &entry[prefix.len()..];
            match of_kind(id) {
                Some(true) => f(id),
                Some(false) => Ok(true),
                None => Ok(false),
            }
        });
    }
    // Several: each step takes the least of the values' next ids (a seek per value; values
    // are few, as a filter names them).
    let mut cursor = from(after);
    loop {
        let mut least: Option<String> = None;
        for value in values.iter().collect::<std::collections::BTreeSet<_>>() {
            if let Some(id) = next(value, &cursor)? {
                if least.as_ref().is_none_or(|l| id < *l) {
                    least = Some(id);
                }
            }
        }
        let Some(id) = least else { return Ok(()) };
        if !f(&id)? {
            return Ok(());
        }
        cursor = id;
    }
}

/// Checks tags as EC2 does: key 1–128 characters, not `aws:`-prefixed; value at most 256.
pub fn validate_tags(tags: &[(String, String)]) -> Result<()> {
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 {
            return Err(Error::InvalidParameter {
                name: "Tag.Key",
                message: format!("Tag key '{key}' must be 1 to 128 characters long"),
            });
        }
        if reserved(key) {
            return Err(Error::InvalidParameter {
                name: "Tag.Key",
                message: "Tag keys starting with 'aws:' are reserved for internal use".into(),
            });
        }
        if value.chars().count() > 256 {
            return Err(Error::InvalidParameter {
                name: "Tag.Value",
                message: format!("Tag value for key '{key}' is longer than 256 characters"),
            });
        }
    }
    Ok(())
}

/// Whether a tag key is one of EC2's own, which users may neither set nor remove.
fn reserved(key: &str) -> bool {
    key.to_ascii_lowercase().starts_with("aws:")
}

fn tag_key(account: &str, resource: &str, key: &str) -> String {
    format!("{account}/{resource}/{key}")
}

/// Writes `tags` on one resource within `tx`, keeping the per-resource limit.
pub(crate) fn put_tags(tx: &WriteTx, account: &str, resource: &str, tags: &[(String, String)]) -> Result<()> {
    // EC2's own (`aws:`) tags do not count against the limit.
    let existing: Vec<TagRecord> = tx
        .scan(&TAGS, &format!("{account}/{resource}/"))?
        .into_iter()
        .map(|(_, t)| t)
        .filter(|t| !reserved(&t.key))
        .collect();
    let new_keys = tags.iter().filter(|(k, _)| !reserved(k) && !existing.iter().any(|t| &t.key == k)).count();
    if existing.len() + new_keys > MAX_TAGS_PER_RESOURCE {
        return Err(Error::TagLimitExceeded(resource.to_owned()));
    }
    for (key, value) in tags {
        let record = TagRecord { resource_id: resource.to_owned(), key: key.clone(), value: value.clone() };
        tx.insert(&TAGS, &tag_key(account, resource, key), &record)?;
    }
    Ok(())
}

/// Removes every tag of a resource that is being deleted.
pub(crate) fn drop_tags(tx: &WriteTx, account: &str, resource: &str) -> Result<()> {
    for (key, _) in tx.scan(&TAGS, &format!("{account}/{resource}/"))? {
        tx.remove(&TAGS, &key)?;
    }
    Ok(())
}

/// Fails unless `id` names a resource of `account`.
fn ensure_exists(tx: &WriteTx, account: &str, id: &str) -> Result<()> {
    let kind = ResourceKind::of_id(id).ok_or_else(|| Error::MalformedId(id.to_owned()))?;
    let exists = match kind {
        ResourceKind::KeyPair => tx.get(&KEY_PAIRS, &format!("{account}/{id}"))?.is_some(),
        ResourceKind::Vpc => tx.get(&VPCS, &format!("{account}/{id}"))?.is_some(),
        ResourceKind::Subnet => tx.get(&SUBNETS, &format!("{account}/{id}"))?.is_some(),
        ResourceKind::InternetGateway => tx.get(&INTERNET_GATEWAYS, &format!("{account}/{id}"))?.is_some(),
        ResourceKind::RouteTable => tx.get(&ROUTE_TABLES, &format!("{account}/{id}"))?.is_some(),
        ResourceKind::ElasticIp => tx.get(&storage::tables::ADDRESSES, &format!("{account}/{id}"))?.is_some(),
        ResourceKind::NatGateway => tx.get(&storage::tables::NAT_GATEWAYS, &format!("{account}/{id}"))?.is_some(),
        ResourceKind::Instance => tx.get(&INSTANCES, &format!("{account}/{id}"))?.is_some(),
        ResourceKind::Image => tx.get(&IMAGES, &format!("{account}/{id}"))?.is_some(),
        ResourceKind::LaunchTemplate => {
            tx.get(&storage::tables::LAUNCH_TEMPLATES, &format!("{account}/{id}"))?.is_some()
        }
        // An instance's primary interface lives as long as the instance is not terminated (found
        // by the interface index, not by reading the account's instances); one of the
        // account's own until it is deleted.
        ResourceKind::NetworkInterface => {
            crate::listing::primary_interface_owner(tx, account, id)?.is_some()
                || tx.get(&storage::tables::NETWORK_INTERFACES, &format!("{account}/{id}"))?.is_some()
        }
        ResourceKind::SecurityGroup => tx.get(&SECURITY_GROUPS, &format!("{account}/{id}"))?.is_some(),
        ResourceKind::Volume => tx.get(&VOLUMES, &format!("{account}/{id}"))?.is_some(),
        ResourceKind::Snapshot => tx.get(&SNAPSHOTS, &format!("{account}/{id}"))?.is_some(),
        // The rule index (`{account}/{rule}/{group}`), not every group of the account.
        ResourceKind::SecurityGroupRule => {
            let mut found = false;
            tx.walk_keys(&storage::tables::GROUP_RULES, &format!("{account}/{id}/"), None, |_, _| {
                found = true;
                Ok(false)
            })?;
            found
        }
        // A host is the account's to tag while it is dedicated to it.
        ResourceKind::Host => tx.get(&storage::tables::HOST_ALLOCATIONS, id)?.is_some_and(|a| a.account == account),
        ResourceKind::Reservation | ResourceKind::Migration | ResourceKind::NetworkAcl | ResourceKind::DhcpOptions => {
            false
        }
    };
    if exists {
        Ok(())
    } else {
        Err(Error::ResourceNotFound { kind, id: id.to_owned() })
    }
}

impl Backend {
    /// Adds or overwrites tags on every named resource, all or nothing.
    pub fn create_tags(&self, account: &str, resources: &[String], tags: &[(String, String)]) -> Result<()> {
        validate_tags(tags)?;
        self.store().write(|tx| {
            for resource in resources {
                ensure_exists(tx, account, resource)?;
                put_tags(tx, account, resource, tags)?;
            }
            Ok(())
        })
    }

    /// Removes tags: a key with no value removes the tag whatever its value; with a value, only
    /// when it matches. No tags at all removes every tag of the resources.
    pub fn delete_tags(&self, account: &str, resources: &[String], tags: &[(String, Option<String>)]) -> Result<()> {
        if tags.iter().any(|(key, _)| reserved(key)) {
            return Err(Error::InvalidParameter {
                name: "Tag.Key",
                message: "Tag keys starting with 'aws:' are reserved for internal use".into(),
            });
        }
        self.store().write(|tx| {
            for resource in resources {
                ensure_exists(tx, account, resource)?;
                for (key, record) in tx.scan(&TAGS, &format!("{account}/{resource}/"))? {
                    let selected = (tags.is_empty() && !reserved(&record.key))
                        || tags.iter().any(|(k, v)| *k == record.key && v.as_ref().is_none_or(|v| *v == record.value));
                    if selected {
                        tx.remove(&TAGS, &key)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Every tag of the account, ordered by resource id then key.
    pub fn tags(&self, account: &str) -> Result<Vec<TagView>> {
        let records = self.store().read(|tx| tx.scan(&TAGS, &format!("{account}/")))?;
        Ok(records
            .into_iter()
            .filter_map(|(_, t)| {
                let kind = ResourceKind::of_id(&t.resource_id)?;
                Some(TagView { resource_kind: kind, resource_id: t.resource_id, key: t.key, value: t.value })
            })
            .collect())
    }

    /// The account's tags of these resources alone (those that have any).
    pub fn tags_of<'a>(&self, account: &str, resources: impl IntoIterator<Item = &'a str>) -> Result<TagsByResource> {
        Ok(self.store().read(|tx| {
            let mut found = TagsByResource::new();
            for resource in resources {
                let tags = of_resource(tx, account, resource)?;
                if !tags.is_empty() {
                    found.insert(resource.to_owned(), tags);
                }
            }
            Ok::<_, storage::Error>(found)
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_pairs::KeyType;
    use crate::tests_support::backend;

    fn t(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    /// The read-ahead answers what a lookup of each resource alone does, whatever the order
    /// of the questions, with resources without tags, with more tags than a batch, and with
    /// another account's tags after this one's.
    #[test]
    fn the_read_ahead_answers_as_each_resource_alone() {
        let store = storage::Store::in_memory().unwrap();
        // i-00 … i-59: every third untagged, i-20 with 40 tags (more than a first batch).
        let ids: Vec<String> = (0..60).map(|n| format!("i-{n:02}")).collect();
        store
            .write(|tx| {
                for (n, id) in ids.iter().enumerate() {
                    let count = match n {
                        20 => 40,
                        n if n % 3 == 0 => 0,
                        n => 1 + n % 4,
                    };
                    let tags: Vec<(String, String)> =
                        (0..count).map(|k| t(&format!("k{k}/x"), &format!("{id}-{k}"))).collect();
                    put_tags(tx, "111111111111", id, &tags)?;
                    put_tags(tx, "222222222222", id, &[t("other", "account")])?;
                }
                put_tags(tx, "111111111111", "i-30-b", &[t("after", "below")])?;
                Ok::<_, Error>(())
            })
            .unwrap();
        let alone = |id: &str| store.read(|tx| of_resource(tx, "111111111111", id)).unwrap();
        let orders: [Vec<usize>; 4] = [
            (0..60).collect(),
            (0..60).step_by(7).collect(),
            (0..60).rev().collect(),
            vec![5, 6, 30, 7, 20, 21, 59, 58, 0, 1, 2, 3],
        ];
        for order in orders {
            store
                .read(|tx| {
                    let mut reader = TagReader::new(tx, "111111111111");
                    for &n in &order {
                        assert_eq!(reader.of(&ids[n])?, alone(&ids[n]), "{} in {order:?}", ids[n]);
                    }
                    // Past the account's last tag, and an id that is not there.
                    assert_eq!(reader.of("vol-0")?, vec![]);
                    assert_eq!(reader.of("i-20x")?, vec![]);
                    // `i-30` sorts before `i-30-b` as an id, after it as a key prefix.
                    assert_eq!(reader.of("i-30-b")?, vec![t("after", "below")]);
                    assert_eq!(reader.of("i-30")?, alone("i-30"));
                    Ok::<_, storage::Error>(())
                })
                .unwrap();
        }
        assert_eq!(alone(&ids[20]).len(), 40);
    }

    #[test]
    fn create_overwrite_and_delete() {
        let b = backend();
        let kp = b.create_key_pair("111111111111", "k", KeyType::Ed25519, &[]).unwrap().0;
        let ids = vec![kp.id.clone()];
        b.create_tags("111111111111", &ids, &[t("Name", "a"), t("env", "dev")]).unwrap();
        b.create_tags("111111111111", &ids, &[t("Name", "b")]).unwrap();
        let tags = b.tags("111111111111").unwrap();
        assert_eq!(
            tags.iter().map(|t| (t.key.as_str(), t.value.as_str())).collect::<Vec<_>>(),
            [("Name", "b"), ("env", "dev")]
        );
        assert_eq!(tags[0].resource_kind, ResourceKind::KeyPair);

        b.delete_tags("111111111111", &ids, &[("env".into(), Some("prod".into()))]).unwrap();
        assert_eq!(b.tags("111111111111").unwrap().len(), 2, "a value that does not match keeps the tag");
        b.delete_tags("111111111111", &ids, &[("env".into(), None)]).unwrap();
        assert_eq!(b.tags("111111111111").unwrap().len(), 1);
        b.delete_tags("111111111111", &ids, &[]).unwrap();
        assert!(b.tags("111111111111").unwrap().is_empty());
    }

    #[test]
    fn other_accounts_and_unknown_ids_are_not_found_and_nothing_is_written() {
        let b = backend();
        let kp = b.create_key_pair("111111111111", "k", KeyType::Ed25519, &[]).unwrap().0;
        let err = b.create_tags("222222222222", std::slice::from_ref(&kp.id), &[t("a", "b")]).unwrap_err();
        assert!(matches!(err, Error::ResourceNotFound { kind: ResourceKind::KeyPair, .. }));
        let err = b.create_tags("111111111111", &[kp.id.clone(), "i-0123".into()], &[t("a", "b")]).unwrap_err();
        assert!(matches!(err, Error::ResourceNotFound { kind: ResourceKind::Instance, .. }));
        assert!(b.tags("111111111111").unwrap().is_empty(), "all or nothing");
        assert!(matches!(b.create_tags("111111111111", &["junk".into()], &[]), Err(Error::MalformedId(_))));
    }

    #[test]
    fn limits_and_reserved_keys() {
        let b = backend();
        let kp = b.create_key_pair("111111111111", "k", KeyType::Ed25519, &[]).unwrap().0;
        let many: Vec<_> = (0..51).map(|i| t(&format!("k{i}"), "v")).collect();
        assert!(matches!(
            b.create_tags("111111111111", std::slice::from_ref(&kp.id), &many),
            Err(Error::TagLimitExceeded(_))
        ));
        assert!(matches!(
            b.create_tags("111111111111", std::slice::from_ref(&kp.id), &[t("aws:x", "v")]),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(validate_tags(&[t(&"k".repeat(129), "")]).is_err());
    }
}
