use std::borrow::Cow;

use backend::topology::zone_id;
use ec2api::filter::FilterSet;
use ec2api::Code;
use ec2api::{AvailabilityZone, DescribeAvailabilityZonesOutput, DescribeAvailabilityZonesRequest, Ec2Error};

use super::{one, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &[
    "zone-name",
    "zone-id",
    "region-name",
    "state",
    "zone-type",
    "group-name",
    "opt-in-status",
    "network-border-group",
];

fn fields<'a>(zone: &'a AvailabilityZone, name: &str) -> Vec<Cow<'a, str>> {
    let value = match name {
        "zone-name" => &zone.zone_name,
        "zone-id" => &zone.zone_id,
        "region-name" => &zone.region_name,
        "state" => &zone.state,
        "zone-type" => &zone.zone_type,
        "group-name" => &zone.group_name,
        "opt-in-status" => &zone.opt_in_status,
        "network-border-group" => &zone.network_border_group,
        _ => return vec![],
    };
    value.as_deref().map(one).unwrap_or_default()
}

pub async fn handle(
    ctx: &Ctx,
    req: DescribeAvailabilityZonesRequest,
) -> Result<DescribeAvailabilityZonesOutput, Ec2Error> {
    let filters = FilterSet::new(req.filters.as_deref(), FILTERS)?;
    let all = req.all_availability_zones == Some(true);
    let zones: Vec<AvailabilityZone> = ctx
        .backend
        .topology()
        .regions
        .iter()
        .filter(|r| all || r.name == ctx.region)
        .flat_map(|r| {
            r.zones.iter().map(|z| AvailabilityZone {
                zone_name: Some(z.clone()),
                zone_id: Some(zone_id(&r.name, z)),
                region_name: Some(r.name.clone()),
                state: Some("available".into()),
                zone_type: Some("availability-zone".into()),
                group_name: Some(r.name.clone()),
                group_long_name: Some(r.name.clone()),
                network_border_group: Some(r.name.clone()),
                opt_in_status: Some("opt-in-not-required".into()),
                messages: Some(vec![]),
                ..Default::default()
            })
        })
        .collect();
    let names = req.zone_names.unwrap_or_default();
    let ids = req.zone_ids.unwrap_or_default();
    let unknown = names
        .iter()
        .find(|n| !zones.iter().any(|z| z.zone_name.as_ref() == Some(*n)))
        .or_else(|| ids.iter().find(|id| !zones.iter().any(|z| z.zone_id.as_ref() == Some(*id))));
    if let Some(unknown) = unknown {
        return Err(Ec2Error::new(Code::InvalidParameterValue, format!("The zone '{unknown}' does not exist")));
    }
    let zones = zones
        .into_iter()
        .filter(|z| names.is_empty() || z.zone_name.as_ref().is_some_and(|n| names.contains(n)))
        .filter(|z| ids.is_empty() || z.zone_id.as_ref().is_some_and(|id| ids.contains(id)))
        .filter(|z| filters.matches(&Row { item: z, tags: NO_TAGS, fields }))
        .collect();
    Ok(DescribeAvailabilityZonesOutput { availability_zones: Some(zones) })
}
