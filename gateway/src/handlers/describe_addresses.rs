use std::borrow::Cow;

use backend::ResourceKind;
use ec2api::filter::FilterSet;
use ec2api::{Address, Code, DescribeAddressesOutput, DescribeAddressesRequest, Ec2Error};
use storage::AddressRecord;

use super::{check_ids, ensure_found, one, tag_list, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &[
    "allocation-id",
    "association-id",
    "domain",
    "instance-id",
    "network-border-group",
    "network-interface-id",
    "network-interface-owner-id",
    "private-ip-address",
    "public-ip",
];

fn fields<'a>(a: &'a AddressRecord, name: &str) -> Vec<Cow<'a, str>> {
    let associated = a.association.as_ref();
    let of = |f: fn(&'a storage::AddressAssociationRecord) -> &'a str| {
        associated.map(f).into_iter().map(Cow::Borrowed).collect()
    };
    match name {
        "allocation-id" => one(&a.allocation_id),
        "association-id" => of(|x| &x.id),
        "domain" => one("vpc"),
        "instance-id" => associated.and_then(|x| x.instance_id.as_deref()).map(one).unwrap_or_default(),
        "network-interface-id" => of(|x| &x.network_interface_id),
        "network-interface-owner-id" => associated.map(|_| one(&a.account)).unwrap_or_default(),
        "private-ip-address" => of(|x| &x.private_ip),
        "public-ip" => one(&a.public_ip),
        _ => vec![],
    }
}

pub fn shape(a: &AddressRecord, tags: &[(String, String)], region: &str) -> Address {
    let associated = a.association.as_ref();
    Address {
        allocation_id: Some(a.allocation_id.clone()),
        public_ip: Some(a.public_ip.clone()),
        domain: Some("vpc".into()),
        public_ipv4_pool: Some("amazon".into()),
        network_border_group: Some(region.to_owned()),
        association_id: associated.map(|x| x.id.clone()),
        instance_id: associated.and_then(|x| x.instance_id.clone()),
        network_interface_id: associated.map(|x| x.network_interface_id.clone()),
        network_interface_owner_id: associated.map(|_| a.account.clone()),
        private_ip_address: associated.map(|x| x.private_ip.clone()),
        subnet_id: associated.map(|x| x.subnet_id.clone()),
        tags: (!tags.is_empty()).then(|| tag_list(tags)),
        ..Default::default()
    }
}

/// The account's Elastic IPs (EC2 does not page this action): those named, by point reads, or
/// every one.
pub async fn handle(ctx: &Ctx, req: DescribeAddressesRequest) -> Result<DescribeAddressesOutput, Ec2Error> {
    let filters = FilterSet::new(req.filters.as_deref(), FILTERS)?;
    let allocation_ids = req.allocation_ids.unwrap_or_default();
    check_ids(&allocation_ids, ResourceKind::ElasticIp)?;
    let public_ips = req.public_ips.unwrap_or_default();
    let account = ctx.account().to_owned();
    let (allocations, ips) = (allocation_ids.clone(), public_ips.clone());
    let (addresses, tags) = ctx
        .snapshot(move |b| {
            let addresses = b.addresses_named(&account, &allocations, &ips)?;
            let tags = b.tags_of(&account, addresses.iter().map(|a| a.allocation_id.as_str()))?;
            Ok((addresses, tags))
        })
        .await?;
    ensure_found(ResourceKind::ElasticIp, &allocation_ids, |id| addresses.iter().any(|a| a.allocation_id == *id))?;
    if let Some(missing) = public_ips.iter().find(|ip| !addresses.iter().any(|a| a.public_ip == **ip)) {
        return Err(Ec2Error::new(
            Code::InvalidAddressNotFound,
            format!("Address {} not found.", ec2api::error::echo(missing)),
        ));
    }
    let mut listed: Vec<Address> = addresses
        .iter()
        .filter(|a| allocation_ids.is_empty() || allocation_ids.contains(&a.allocation_id))
        .filter(|a| public_ips.is_empty() || public_ips.contains(&a.public_ip))
        .map(|a| (a, tags.get(&a.allocation_id).map_or(NO_TAGS, Vec::as_slice)))
        .filter(|(a, t)| filters.matches(&Row { item: *a, tags: t, fields }))
        .map(|(a, t)| shape(a, t, &ctx.region))
        .collect();
    listed.sort_by(|x, y| x.public_ip.cmp(&y.public_ip));
    Ok(DescribeAddressesOutput { addresses: Some(listed) })
}
