//! The one outline of every Describe action: ids checked, filters compiled, a page read, ids of
//! nothing answered as EC2 answers them, and the token for the next page.
//!
//! 1. [`Describe::of`] starts from the action's name; `.ids(…)` checks that the ids look like
//!    ids of their kind (`….Malformed`), `.filters(…)` compiles the filters
//!    (`InvalidParameterValue` for a name the action does not know), `.paged(…)` checks
//!    `MaxResults` and reads `NextToken`, which must have been made for this caller and this
//!    query: tokens are sealed with the query's scope, a digest of the installation's secret,
//!    the account, the action, the ids and the filters.
//! 2. Records kept in the store come a page at a time from the backend ([`Describe::list`]):
//!    the filters are tested there, as the records are read, and the read stops when the page
//!    is full ([`backend::listing`]): volumes, snapshots, instances (by reservation), images
//!    (across owners, by the image index), security groups, their rules (by the rule index),
//!    network interfaces (by the interface index), tags, migrations, launch templates, VPCs,
//!    subnets, internet gateways, route tables, NAT gateways and network ACLs (each VPC's, kept
//!    in a derived table in ACL id order); launch template versions page from their own table
//!    in the backend too ([`backend::launch_templates`]). What is not kept in the store as records of its own
//!    (instance types and offerings, hosts, the DHCP options each account implies) is cut into
//!    pages by [`Describe::page`].
//! 3. Ids that name nothing the caller may see are one `…NotFound` naming them all.

use std::borrow::Cow;

use backend::listing::{Item, ListQuery, Listed, Page};
use backend::ResourceKind;
use ec2api::filter::FilterSet;
use ec2api::pagination::PageRequest;
use ec2api::{Ec2Error, Filter};
use sha2::{Digest, Sha256};
use storage::ReadTx;

use super::{check_ids, ensure_found, Row};
use crate::context::Ctx;

/// A Describe request on its way to a page.
/// Ids up to which a Describe by id reads in place ([`Describe::reads_few`]).
const FEW_IDS: usize = 20;

pub struct Describe {
    backend: std::sync::Arc<backend::Backend>,
    account: String,
    action: &'static str,
    kind: Option<ResourceKind>,
    pub ids: Vec<String>,
    pub filters: FilterSet,
    /// What the scope digests: ids, filters and whatever else narrows the query.
    query: String,
    /// Ids the filters imply when no id filter names any ([`Describe::implying`]).
    implied_ids: Vec<String>,
    pub page: PageRequest,
}

/// A record computed in memory, with its tags.
pub type Tagged<'a, T> = (&'a T, &'a [(String, String)]);

/// How a resource answers filter names.
pub type Fields<T> = for<'x> fn(&'x T, &str) -> Vec<Cow<'x, str>>;

impl Describe {
    pub fn of(ctx: &Ctx, action: &'static str) -> Self {
        Self {
            backend: std::sync::Arc::clone(&ctx.backend),
            account: ctx.account().to_owned(),
            action,
            kind: None,
            ids: Vec::new(),
            filters: FilterSet::default(),
            query: String::new(),
            page: PageRequest::default(),
            implied_ids: Vec::new(),
        }
    }

    /// The ids of every resource the filters can match, when the action can tell them from a
    /// filter other than the id one (a network ACL's id is derived from its VPC's): read as an
    /// exact id filter would be, the filters still tested on each.
    pub fn implying(mut self, ids: Vec<String>) -> Self {
        self.implied_ids = ids;
        self
    }

    /// The ids the request names, which must be ids of `kind`.
    pub fn ids(mut self, ids: Option<Vec<String>>, kind: ResourceKind) -> Result<Self, Ec2Error> {
        self.ids = ids.unwrap_or_default();
        check_ids(&self.ids, kind)?;
        self.kind = Some(kind);
        self.narrowed_by("ids", &self.ids.clone());
        Ok(self)
    }

    /// Whether the request names so few resources by id that its reads are a handful of point
    /// lookups ([`Ctx::snapshot_sized`]).
    pub fn reads_few(&self) -> bool {
        (1..=FEW_IDS).contains(&self.ids.len())
    }

    pub fn filters(mut self, filters: Option<&[Filter]>, known: &[&str]) -> Result<Self, Ec2Error> {
        self.filters = FilterSet::new(filters, known)?;
        for filter in filters.unwrap_or_default() {
            let name = filter.name.as_deref().unwrap_or_default();
            self.narrowed_by(name, filter.values.as_deref().unwrap_or_default());
        }
        Ok(self)
    }

    /// Something else the request narrows the listing by (owners, names…): part of the scope.
    pub fn narrowed_by(&mut self, what: &str, values: &[String]) {
        use std::fmt::Write;
        // Lengths first: no value can run into the next. (Writing to a String cannot fail.)
        let _ = write!(self.query, "{}:{what}", what.len());
        for value in values {
            let _ = write!(self.query, "|{}:{value}", value.len());
        }
        self.query.push('\n');
    }

    pub fn paged(
        mut self,
        max_results: Option<i32>,
        next_token: Option<&str>,
        min: i32,
        max: i32,
    ) -> Result<Self, Ec2Error> {
        let secret = self.backend.paging_secret().map_err(crate::errors::to_ec2)?;
        let mut digest = Sha256::new();
        for part in [secret, "\n", &self.account, "\n", self.action, "\n", &self.query] {
            digest.update(part);
        }
        let scope = hex::encode(digest.finalize());
        self.page = PageRequest::new(max_results, next_token, min, max, &scope)?;
        Ok(self)
    }

    /// What the backend reads for the page.
    pub fn list_query(&self) -> ListQuery {
        let id_filter = match self.kind {
            Some(ResourceKind::Instance) => Some("instance-id"),
            Some(ResourceKind::Volume) => Some("volume-id"),
            Some(ResourceKind::Snapshot) => Some("snapshot-id"),
            Some(ResourceKind::SecurityGroup) => Some("group-id"),
            Some(ResourceKind::Image) => Some("image-id"),
            Some(ResourceKind::Vpc) => Some("vpc-id"),
            Some(ResourceKind::Subnet) => Some("subnet-id"),
            Some(ResourceKind::InternetGateway) => Some("internet-gateway-id"),
            Some(ResourceKind::RouteTable) => Some("route-table-id"),
            Some(ResourceKind::NatGateway) => Some("nat-gateway-id"),
            Some(ResourceKind::NetworkAcl) => Some("network-acl-id"),
            _ => None,
        };
        let only_ids: Vec<String> = match id_filter.and_then(|name| self.filters.exact_values(name)) {
            Some(ids) => ids.into_iter().map(str::to_owned).collect(),
            None => self.implied_ids.clone(),
        };
        ListQuery {
            ids: self.ids.clone(),
            only_ids,
            after: self.page.after.clone(),
            limit: self.page.max_results,
            tagged: self
                .filters
                .exact_tag()
                .map(|(key, values)| (key.to_owned(), values.into_iter().map(str::to_owned).collect())),
            // A state no instance can be in matches nothing, and is not looked up.
            states: (self.kind == Some(ResourceKind::Instance))
                .then(|| self.filters.exact_values("instance-state-name"))
                .flatten()
                .map(|values| {
                    let known = |v: &&str| storage::InstanceState::ALL.iter().any(|s| s.name() == *v);
                    values.into_iter().filter(known).map(str::to_owned).collect()
                }),
            attribute: (self.kind == Some(ResourceKind::Instance))
                .then(|| {
                    storage::derived::INDEXED_ATTRIBUTES.iter().find_map(|name| {
                        let values = self.filters.exact_values(name)?;
                        Some(((*name).to_owned(), values.into_iter().map(str::to_owned).collect()))
                    })
                })
                .flatten(),
            id_prefixes: None,
        }
    }

    /// One page of the caller's records of `V`, read by the backend, filtered as it reads.
    /// `only` leaves out what the action never lists (terminated instances, say).
    pub async fn list<V: Listed>(
        self,
        ctx: &Ctx,
        fields: Fields<V>,
        only: impl Fn(&V) -> bool + Send + 'static,
    ) -> Result<(Vec<Item<V>>, Option<String>), Ec2Error> {
        self.list_by(ctx, move |_, filters, record, tags| {
            only(record) && filters.matches(&Row { item: record, tags, fields })
        })
        .await
    }

    /// As [`Describe::list`], with the test of each record in the caller's hands (for filters
    /// on what is computed from the record and the backend, not stored in it).
    pub async fn list_by<V: Listed>(
        self,
        ctx: &Ctx,
        keep: impl Fn(&backend::Backend, &FilterSet, &V, &[(String, String)]) -> bool + Send + 'static,
    ) -> Result<(Vec<Item<V>>, Option<String>), Ec2Error> {
        self.list_shown(ctx, move |b, _, filters, record, tags| Ok(keep(b, filters, record, tags)), |_, item| Ok(item))
            .await
    }

    /// As [`Describe::list_by`] for what the answer shows beyond the record: `keep` tests a
    /// record with what it reads in the page's own read (`tx`), and `show` makes each listed
    /// item into the answer's, in the same snapshot, so that what a filter saw is what the
    /// answer shows. An error of either fails the request.
    pub async fn list_shown<V: Listed, T: Send + 'static>(
        self,
        ctx: &Ctx,
        keep: impl Fn(&backend::Backend, &ReadTx, &FilterSet, &V, &[(String, String)]) -> backend::Result<bool>
            + Send
            + 'static,
        show: impl Fn(&backend::Backend, Item<V>) -> backend::Result<T> + Send + 'static,
    ) -> Result<(Vec<T>, Option<String>), Ec2Error> {
        let query = self.list_query();
        let few = self.reads_few();
        let filters = self.filters;
        let account = self.account.clone();
        let (page, last) = ctx
            .snapshot_sized(few, move |b| {
                let mut failed = None;
                let Page { items, more, missing } =
                    b.list_reading::<V>(&account, &query, |tx, record, tags| {
                        match keep(b, tx, &filters, record, tags) {
                            Ok(kept) => kept,
                            Err(error) => {
                                failed.get_or_insert(error);
                                false
                            }
                        }
                    })?;
                if let Some(error) = failed {
                    return Err(error);
                }
                let last = more.then(|| items.last().map(|i| i.record.id().to_owned())).flatten();
                if !missing.is_empty() {
                    return Ok((Err(missing), last));
                }
                let shown = items.into_iter().map(|item| show(b, item)).collect::<backend::Result<Vec<T>>>()?;
                Ok((Ok(shown), last))
            })
            .await?;
        let items = page.map_err(|missing| crate::errors::not_found(V::KIND, &missing))?;
        Ok((items, last.map(|last| self.page.token_after(&last))))
    }

    /// One page of records computed in memory, each with its tags, in `key` order: the named
    /// ids must all be among them, and what `only` and the filters keep is listed.
    pub fn page<'a, T>(
        &self,
        records: impl IntoIterator<Item = Tagged<'a, T>>,
        key: impl Fn(&T) -> &str,
        fields: Fields<T>,
        only: impl Fn(&T) -> bool,
    ) -> Result<(Vec<Tagged<'a, T>>, Option<String>), Ec2Error>
    where
        T: 'a,
    {
        let mut records: Vec<Tagged<'a, T>> = records.into_iter().collect();
        records.sort_by(|a, b| key(a.0).cmp(key(b.0)));
        if let Some(kind) = self.kind {
            ensure_found(kind, &self.ids, |id| records.iter().any(|(r, _)| key(r) == id))?;
        }
        let matching = records
            .into_iter()
            .filter(|(r, _)| self.ids.is_empty() || self.ids.iter().any(|id| key(r) == id))
            .filter(|(r, _)| only(r))
            .filter(|(r, tags)| self.filters.matches(&Row { item: *r, tags, fields }))
            .collect();
        Ok(self.page.page(matching, |(r, _)| key(r)))
    }
}
