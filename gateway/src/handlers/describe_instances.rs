use std::borrow::Cow;

use ec2api::Code;
use ec2api::{DescribeInstancesOutput, DescribeInstancesRequest, Ec2Error, GroupIdentifier, Reservation};
use storage::InstanceRecord;

use super::describe::Describe;
use super::shapes::{instance, Joins, WithDns};
use super::{one, Row};
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
    "architecture",
    "hypervisor",
    "virtualization-type",
    "root-device-type",
    "root-device-name",
    "tenancy",
    "placement-group-name",
    "instance-lifecycle",
    "source-dest-check",
    "metadata-options.http-tokens",
    "metadata-options.http-endpoint",
    "metadata-options.http-put-response-hop-limit",
    "metadata-options.instance-metadata-tags",
    "network-interface.addresses.private-ip-address",
    "network-interface.addresses.primary",
    "network-interface.private-ip-address",
    "network-interface.mac-address",
    "network-interface.subnet-id",
    "network-interface.vpc-id",
    "network-interface.owner-id",
    "network-interface.group-id",
    "network-interface.source-dest-check",
    "network-interface.status",
    "network-interface.attachment.device-index",
    "network-interface.attachment.status",
    "network-interface.requester-managed",
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
        // What every instance here is (DescribeInstances shows the same).
        "architecture" => one("x86_64"),
        "hypervisor" => one("xen"),
        "virtualization-type" => one("hvm"),
        "root-device-type" => one("ebs"),
        "root-device-name" => one(backend::volumes::ROOT_DEVICE),
        "tenancy" => one("default"),
        // On-demand instances have no lifecycle value, and there are no placement groups.
        "instance-lifecycle" | "placement-group-name" => vec![],
        "source-dest-check" => one(r.source_dest_check.to_string()),
        "metadata-options.http-tokens" => one(if r.metadata.tokens_required { "required" } else { "optional" }),
        "metadata-options.http-endpoint" => one(if r.metadata.endpoint_enabled { "enabled" } else { "disabled" }),
        "metadata-options.http-put-response-hop-limit" => one(r.metadata.hop_limit.to_string()),
        "metadata-options.instance-metadata-tags" => one(if r.metadata.tags_enabled { "enabled" } else { "disabled" }),
        // The instance's primary interface (interfaces attached beyond it are the interfaces'
        // own records: DescribeNetworkInterfaces filters them).
        "network-interface.addresses.private-ip-address" if live => {
            std::iter::once(&r.private_ip).chain(&r.secondary_ips).map(|a| Cow::Borrowed(a.as_str())).collect()
        }
        "network-interface.addresses.primary" if live => {
            let mut flags = vec![Cow::Borrowed("true")];
            if !r.secondary_ips.is_empty() {
                flags.push(Cow::Borrowed("false"));
            }
            flags
        }
        "network-interface.private-ip-address" if live => one(&r.private_ip),
        "network-interface.mac-address" if live => one(&r.mac),
        "network-interface.subnet-id" if live => one(&r.subnet_id),
        "network-interface.vpc-id" if live => one(&r.vpc_id),
        "network-interface.owner-id" if live => one(&r.account),
        "network-interface.group-id" if live => {
            r.security_group_ids.iter().map(|g| Cow::Borrowed(g.as_str())).collect()
        }
        "network-interface.source-dest-check" if live => one(r.source_dest_check.to_string()),
        "network-interface.status" if live => one("in-use"),
        "network-interface.attachment.device-index" if live => one("0"),
        "network-interface.attachment.status" if live => one("attached"),
        "network-interface.requester-managed" if live => one("false"),
        _ => vec![],
    }
}

/// Pages are reservations, in reservation id order, each with its matching instances; the
/// page reads the reservations it holds and joins their volumes and groups alone.
pub async fn handle(ctx: &Ctx, req: DescribeInstancesRequest) -> Result<DescribeInstancesOutput, Ec2Error> {
    if req.instance_ids.as_ref().is_some_and(|ids| !ids.is_empty()) && req.max_results.is_some() {
        return Err(Ec2Error::new(
            Code::InvalidParameterCombination,
            "The parameter instancesSet cannot be used with the parameter maxResults",
        ));
    }
    let describe = Describe::of(ctx, "DescribeInstances")
        .ids(req.instance_ids, backend::ResourceKind::Instance)?
        .filters(req.filters.as_deref(), FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let query = describe.list_query();
    let Describe { filters, page, .. } = describe;
    let account = ctx.account().to_owned();
    let region = ctx.region.clone();
    let (listed, joins) = ctx
        .call(move |b| {
            let listed = b.list_reservations(&account, &query, |record, tags| {
                filters.matches(&Row { item: &WithDns::new(record, &region), tags, fields })
            })?;
            let records: Vec<InstanceRecord> =
                listed.items.iter().flat_map(|(_, members)| members.iter().map(|i| i.record.clone())).collect();
            let joins = Joins::for_instances(b, &account, &records)?;
            Ok((listed, joins))
        })
        .await?;
    if !listed.missing.is_empty() {
        return Err(crate::errors::not_found(backend::ResourceKind::Instance, &listed.missing));
    }
    let next_token = listed.more.then(|| listed.items.last().map(|(r, _)| page.token_after(r))).flatten();
    let region = ctx.region.as_str();
    let reservations = listed
        .items
        .into_iter()
        .map(|(reservation_id, mut members)| {
            members.sort_by_key(|i| i.record.ami_launch_index);
            Reservation {
                owner_id: members.first().map(|i| i.record.account.clone()),
                reservation_id: Some(reservation_id),
                groups: Some(Vec::<GroupIdentifier>::new()),
                instances: Some(members.iter().map(|i| instance(&i.record, &i.tags, region, &joins)).collect()),
                requester_id: None,
            }
        })
        .collect();
    Ok(DescribeInstancesOutput { reservations: Some(reservations), next_token })
}
