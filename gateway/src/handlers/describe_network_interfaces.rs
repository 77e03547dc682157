use std::borrow::Cow;

use ec2api::Code;
use ec2api::{
    DescribeNetworkInterfacesOutput, DescribeNetworkInterfacesRequest, Ec2Error, NetworkInterface,
    NetworkInterfaceAssociation, NetworkInterfaceAttachment, NetworkInterfacePrivateIpAddress,
};

use super::describe::Describe;
use super::shapes::{attachment_id, Joins, WithDns};
use super::{one, tag_list, timestamp, Row};
use crate::context::Ctx;

const FILTERS: &[&str] = &[
    "network-interface-id",
    "attachment.instance-id",
    "attachment.instance-owner-id",
    "attachment.attachment-id",
    "attachment.device-index",
    "attachment.status",
    "attachment.delete-on-termination",
    "availability-zone",
    "group-id",
    "mac-address",
    "owner-id",
    "private-ip-address",
    "addresses.private-ip-address",
    "private-dns-name",
    "status",
    "subnet-id",
    "vpc-id",
    "interface-type",
    "source-dest-check",
    "description",
];

fn fields<'a>(item: &'a WithDns<'_>, name: &str) -> Vec<Cow<'a, str>> {
    let r = item.record;
    match name {
        "network-interface-id" => one(&r.network_interface_id),
        "attachment.instance-id" => one(&r.id),
        "attachment.instance-owner-id" | "owner-id" => one(&r.account),
        "attachment.attachment-id" => one(attachment_id(r)),
        "attachment.device-index" => one("0"),
        "attachment.status" => one("attached"),
        "attachment.delete-on-termination" | "source-dest-check" => one("true"),
        "availability-zone" => one(&r.zone),
        "group-id" => r.security_group_ids.iter().map(|g| Cow::Borrowed(g.as_str())).collect(),
        "mac-address" => one(&r.mac),
        "private-ip-address" | "addresses.private-ip-address" => one(&r.private_ip),
        "private-dns-name" => one(&item.dns),
        "status" => one("in-use"),
        "subnet-id" => one(&r.subnet_id),
        "vpc-id" => one(&r.vpc_id),
        "interface-type" => one("interface"),
        "description" => one(""),
        _ => vec![],
    }
}

/// Each instance has one interface, created and deleted with it; a terminated instance's
/// interface is gone.
pub async fn handle(
    ctx: &Ctx,
    req: DescribeNetworkInterfacesRequest,
) -> Result<DescribeNetworkInterfacesOutput, Ec2Error> {
    if req.network_interface_ids.as_ref().is_some_and(|ids| !ids.is_empty()) && req.max_results.is_some() {
        return Err(Ec2Error::new(
            Code::InvalidParameterCombination,
            "The parameter NetworkInterfaceIds cannot be used with the parameter MaxResults",
        ));
    }
    let describe = Describe::of(ctx, "DescribeNetworkInterfaces")
        .ids(req.network_interface_ids, backend::ResourceKind::NetworkInterface)?
        .filters(req.filters.as_deref(), FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    // Interfaces are the instances' own until VPC networking makes them resources of their own:
    // a page walks the account's interface index and reads those instances alone.
    let mut query = describe.list_query();
    query.only_ids = describe
        .filters
        .exact_values("network-interface-id")
        .unwrap_or_default()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let Describe { filters, page, .. } = describe;
    let (account, region) = (ctx.account().to_owned(), ctx.region.clone());
    let (listed, (joins, public_ips)) = ctx
        .call(move |b| {
            let listed = b.list_interfaces(&account, &query, |record, tags| {
                let item = WithDns::new(record, &region);
                filters.matches(&Row { item: &item, tags, fields })
            })?;
            // An interface view names its groups; it has no block devices to join.
            let public_ips = b
                .addresses(&account)?
                .into_iter()
                .filter_map(|a| {
                    let association = a.association?;
                    Some((association.network_interface_id, (a.public_ip, a.allocation_id, association.id)))
                })
                .collect::<std::collections::HashMap<_, _>>();
            let joins = Joins {
                group_names: b.security_group_names(&account)?,
                volumes: Default::default(),
                public_ips: Default::default(),
            };
            Ok((listed, (joins, public_ips)))
        })
        .await?;
    if !listed.missing.is_empty() {
        return Err(crate::errors::not_found(backend::ResourceKind::NetworkInterface, &listed.missing));
    }
    let next_token =
        listed.more.then(|| listed.items.last().map(|i| page.token_after(&i.record.network_interface_id))).flatten();
    let region = ctx.region.as_str();
    let items: Vec<(WithDns, &[(String, String)])> =
        listed.items.iter().map(|i| (WithDns::new(&i.record, region), i.tags.as_slice())).collect();
    let interfaces = items
        .into_iter()
        .map(|(WithDns { record: r, dns }, tags)| {
            let association =
                public_ips.get(&r.network_interface_id).map(|(ip, allocation, id)| NetworkInterfaceAssociation {
                    public_ip: Some(ip.clone()),
                    public_dns_name: Some(super::shapes::public_dns_name(ip, region)),
                    ip_owner_id: Some(r.account.clone()),
                    allocation_id: Some(allocation.clone()),
                    association_id: Some(id.clone()),
                    ..Default::default()
                });
            NetworkInterface {
                network_interface_id: Some(r.network_interface_id.clone()),
                attachment: Some(NetworkInterfaceAttachment {
                    attachment_id: Some(attachment_id(r)),
                    attach_time: Some(timestamp(r.launch_time_ms)),
                    delete_on_termination: Some(true),
                    device_index: Some(0),
                    network_card_index: Some(0),
                    instance_id: Some(r.id.clone()),
                    instance_owner_id: Some(r.account.clone()),
                    status: Some("attached".into()),
                    ..Default::default()
                }),
                availability_zone: Some(r.zone.clone()),
                description: Some(String::new()),
                groups: Some(joins.groups(r)),
                interface_type: Some("interface".into()),
                ipv6_addresses: Some(vec![]),
                mac_address: Some(r.mac.clone()),
                owner_id: Some(r.account.clone()),
                private_dns_name: Some(dns.clone()),
                private_ip_address: Some(r.private_ip.clone()),
                private_ip_addresses: Some(vec![NetworkInterfacePrivateIpAddress {
                    primary: Some(true),
                    private_dns_name: Some(dns.clone()),
                    private_ip_address: Some(r.private_ip.clone()),
                    association: association.clone(),
                }]),
                association,
                requester_managed: Some(false),
                source_dest_check: Some(true),
                status: Some("in-use".into()),
                subnet_id: Some(r.subnet_id.clone()),
                vpc_id: Some(r.vpc_id.clone()),
                tag_set: Some(tag_list(tags)),
                ..Default::default()
            }
        })
        .collect();
    Ok(DescribeNetworkInterfacesOutput { network_interfaces: Some(interfaces), next_token })
}
