use std::borrow::Cow;
use std::collections::BTreeMap;

use backend::instances::Selection;
use ec2api::filter::FilterSet;
use ec2api::pagination::PageRequest;
use ec2api::Code;
use ec2api::{DescribeInstancesOutput, DescribeInstancesRequest, Ec2Error, GroupIdentifier, Reservation};
use storage::InstanceRecord;

use super::shapes::{instance, Joins, WithDns};
use super::{check_ids, one, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &[
    "instance-id",
    "instance-state-name",
    "instance-state-code",
    "instance-type",
    "image-id",
    "availability-zone",
    "key-name",
    "private-ip-address",
    "private-dns-name",
    "subnet-id",
    "vpc-id",
    "reservation-id",
    "owner-id",
    "network-interface.network-interface-id",
    "instance.group-id",
    "launch-index",
];

fn fields<'a>(item: &'a WithDns<'_>, name: &str) -> Vec<Cow<'a, str>> {
    let r = item.record;
    let live = r.state != storage::InstanceState::Terminated;
    match name {
        "instance-id" => one(&r.id),
        "instance-state-name" => one(r.state.name()),
        "instance-state-code" => one(r.state.code().to_string()),
        "instance-type" => one(&r.instance_type),
        "image-id" => one(&r.image_id),
        "availability-zone" => one(&r.zone),
        "key-name" => r.key_name.as_deref().map(one).unwrap_or_default(),
        "private-ip-address" if live => one(&r.private_ip),
        "private-dns-name" if live => one(&item.dns),
        "subnet-id" if live => one(&r.subnet_id),
        "vpc-id" if live => one(&r.vpc_id),
        "reservation-id" => one(&r.reservation_id),
        "owner-id" => one(&r.account),
        "network-interface.network-interface-id" if live => one(&r.network_interface_id),
        "instance.group-id" => r.security_group_ids.iter().map(|g| Cow::Borrowed(g.as_str())).collect(),
        "launch-index" => one(r.ami_launch_index.to_string()),
        _ => vec![],
    }
}

pub async fn handle(ctx: &Ctx, req: DescribeInstancesRequest) -> Result<DescribeInstancesOutput, Ec2Error> {
    let ids = req.instance_ids.unwrap_or_default();
    if !ids.is_empty() && req.max_results.is_some() {
        return Err(Ec2Error::new(
            Code::InvalidParameterCombination,
            "The parameter instancesSet cannot be used with the parameter maxResults",
        ));
    }
    check_ids(&ids, backend::ResourceKind::Instance)?;
    let filters = FilterSet::new(req.filters.as_deref(), FILTERS)?;
    let page = PageRequest::new(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    // Ids, given or filtered by exactly, and exact tag filters narrow what is read; any
    // other query reads the account's instances and filters them all.
    let named: Option<Vec<String>> =
        filters.exact_values("instance-id").map(|v| v.iter().map(|id| id.to_string()).collect());
    let tagged = filters.exact_tag();
    let selection = match (&named, &tagged) {
        _ if !ids.is_empty() => Selection::Ids(&ids),
        (Some(named), _) => Selection::Ids(named),
        (None, Some((key, values))) => Selection::Tagged { key, values },
        (None, None) => Selection::Account,
    };
    let views = ctx.read(|b| b.instance_views(ctx.account(), selection))?;
    let (records, tags) = (&views.records, &views.tags);
    let joins = Joins { group_names: views.group_names, volumes: views.volumes };
    super::ensure_found(backend::ResourceKind::Instance, &ids, |id| records.iter().any(|r| &r.id == id))?;
    let region = ctx.region.as_str();
    // Reservations keep their instances together and page as a whole, ordered by id.
    let mut reservations: BTreeMap<String, Vec<&InstanceRecord>> = BTreeMap::new();
    for record in records {
        let record_tags = tags.get(&record.id).map_or(NO_TAGS, Vec::as_slice);
        let wanted = ids.is_empty() || ids.contains(&record.id);
        let item = WithDns::new(record, region);
        if wanted && filters.matches(&Row { item: &item, tags: record_tags, fields }) {
            reservations.entry(record.reservation_id.clone()).or_default().push(record);
        }
    }
    let (items, next_token) = page.page(reservations.into_iter().collect(), |(id, _)| id);
    let reservations = items
        .into_iter()
        .map(|(reservation_id, mut members)| {
            members.sort_by_key(|r| r.ami_launch_index);
            Reservation {
                owner_id: members.first().map(|r| r.account.clone()),
                reservation_id: Some(reservation_id),
                groups: Some(Vec::<GroupIdentifier>::new()),
                instances: Some(
                    members
                        .iter()
                        .map(|r| instance(r, tags.get(&r.id).map_or(NO_TAGS, Vec::as_slice), region, &joins))
                        .collect(),
                ),
                requester_id: None,
            }
        })
        .collect();
    Ok(DescribeInstancesOutput { reservations: Some(reservations), next_token })
}
