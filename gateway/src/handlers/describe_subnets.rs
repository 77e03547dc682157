use std::borrow::Cow;

use backend::network::Subnet;
use backend::topology::zone_id;
use ec2api::filter::FilterSet;
use ec2api::{DescribeSubnetsOutput, DescribeSubnetsRequest, Ec2Error};

use super::{one, tag_list, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &[
    "subnet-id",
    "vpc-id",
    "availability-zone",
    "availability-zone-id",
    "cidr-block",
    "cidr",
    "default-for-az",
    "state",
    "owner-id",
];

/// A subnet with the figures that need the region and the leases.
struct Item {
    subnet: Subnet,
    zone_id: String,
    cidr: String,
    owner: String,
    free: u32,
}

fn fields<'a>(item: &'a Item, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "subnet-id" => one(&item.subnet.id),
        "vpc-id" => one(&item.subnet.vpc_id),
        "availability-zone" => one(&item.subnet.zone),
        "availability-zone-id" => one(&item.zone_id),
        "cidr-block" | "cidr" => one(&item.cidr),
        "default-for-az" => one("true"),
        "state" => one("available"),
        "owner-id" => one(&item.owner),
        _ => vec![],
    }
}

pub async fn handle(ctx: &Ctx, req: DescribeSubnetsRequest) -> Result<DescribeSubnetsOutput, Ec2Error> {
    let filters = FilterSet::new(req.filters.as_deref(), FILTERS)?;
    let ids = req.subnet_ids.unwrap_or_default();
    let account = ctx.account().to_owned();
    let vpc = ctx.principal.default_vpc_id.clone();
    let region = ctx.region.clone();
    let (items, tags) = ctx
        .call(move |b| {
            let items = b
                .subnets(&account, &vpc)
                .into_iter()
                .map(|subnet| {
                    Ok(Item {
                        zone_id: zone_id(&region, &subnet.zone),
                        cidr: subnet.cidr(),
                        owner: account.clone(),
                        free: b.free_addresses(&subnet)?,
                        subnet,
                    })
                })
                .collect::<backend::Result<Vec<_>>>()?;
            let tags = b.tags_of(&account, items.iter().map(|i| i.subnet.id.as_str()))?;
            Ok((items, tags))
        })
        .await?;
    super::ensure_found(backend::ResourceKind::Subnet, &ids, |id| items.iter().any(|i| &i.subnet.id == id))?;
    let subnets = items
        .iter()
        .filter(|i| ids.is_empty() || ids.contains(&i.subnet.id))
        .map(|i| (i, tags.get(&i.subnet.id).map_or(NO_TAGS, Vec::as_slice)))
        .filter(|(i, t)| filters.matches(&Row { item: *i, tags: t, fields }))
        .map(|(i, t)| ec2api::Subnet {
            subnet_id: Some(i.subnet.id.clone()),
            vpc_id: Some(i.subnet.vpc_id.clone()),
            availability_zone: Some(i.subnet.zone.clone()),
            availability_zone_id: Some(i.zone_id.clone()),
            cidr_block: Some(i.cidr.clone()),
            available_ip_address_count: Some(i.free as i32),
            default_for_az: Some(true),
            map_public_ip_on_launch: Some(false),
            state: Some("available".into()),
            owner_id: Some(i.owner.clone()),
            assign_ipv6_address_on_creation: Some(false),
            subnet_arn: Some(format!("arn:aws:ec2:{}:{}:subnet/{}", ctx.region, i.owner, i.subnet.id)),
            tags: (!t.is_empty()).then(|| tag_list(t)),
            ..Default::default()
        })
        .collect();
    Ok(DescribeSubnetsOutput { subnets: Some(subnets), next_token: None })
}
