use std::borrow::Cow;

use backend::topology::{zone_id, InstanceTypeSpec};
use ec2api::{
    DescribeInstanceTypeOfferingsOutput, DescribeInstanceTypeOfferingsRequest, Ec2Error, InstanceTypeOffering,
};

use super::describe::Describe;
use super::{one, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &["location", "instance-type"];

fn fields<'a>(offering: &'a InstanceTypeOffering, name: &str) -> Vec<Cow<'a, str>> {
    let value = match name {
        "location" => &offering.location,
        "instance-type" => &offering.instance_type,
        _ => return vec![],
    };
    value.as_deref().map(one).unwrap_or_default()
}

pub async fn handle(
    ctx: &Ctx,
    req: DescribeInstanceTypeOfferingsRequest,
) -> Result<DescribeInstanceTypeOfferingsOutput, Ec2Error> {
    let location_type = req.location_type.unwrap_or_else(|| "region".into());
    let mut describe = Describe::of(ctx, "DescribeInstanceTypeOfferings").filters(req.filters.as_deref(), FILTERS)?;
    describe.narrowed_by("location-type", std::slice::from_ref(&location_type));
    let Describe { filters, page, .. } = describe.paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let topology = ctx.backend.topology();
    let region = topology.region(&ctx.region).ok_or_else(Ec2Error::internal)?;
    let locations: Vec<String> = match location_type.as_str() {
        "region" => vec![region.name.clone()],
        "availability-zone" => region.zones.clone(),
        "availability-zone-id" => region.zones.iter().map(|z| zone_id(&region.name, z)).collect(),
        other => {
            return Err(Ec2Error::invalid_value(
                "LocationType",
                other,
                "Expected: region, availability-zone, availability-zone-id.",
            ))
        }
    };
    // What the pool can run: a type whose guests the hosts boot, and one of which fits a host of
    // the location (its zone, or any zone of the region) whatever runs there now.
    let sizes = ctx.call(|b| Ok(b.zone_sizes())).await?;
    let fits = |zones: &[&String], spec: &InstanceTypeSpec| {
        backend::catalogue::runs_on_x86(&spec.name)
            && zones
                .iter()
                .filter_map(|z| sizes.get(*z))
                .flatten()
                .any(|(vcpus, memory)| f64::from(spec.vcpus) <= *vcpus && spec.memory_mib as f64 <= *memory)
    };
    let zones_of = |index: usize| -> Vec<&String> {
        match location_type.as_str() {
            "region" => region.zones.iter().collect(),
            _ => vec![&region.zones[index]],
        }
    };
    let mut offerings: Vec<(String, InstanceTypeOffering)> = locations
        .iter()
        .enumerate()
        .flat_map(|(index, location)| {
            let zones = zones_of(index);
            topology.instance_types.iter().filter(move |t| fits(&zones, t)).map(|t| InstanceTypeOffering {
                instance_type: Some(t.name.clone()),
                location: Some(location.clone()),
                location_type: Some(location_type.clone()),
            })
        })
        .filter(|o| filters.matches(&Row { item: o, tags: NO_TAGS, fields }))
        .map(|o| {
            (format!("{}\u{1}{}", o.location.as_deref().unwrap_or(""), o.instance_type.as_deref().unwrap_or("")), o)
        })
        .collect();
    offerings.sort_by(|a, b| a.0.cmp(&b.0));
    let (offerings, next_token) = page.page(offerings, |(key, _)| key);
    Ok(DescribeInstanceTypeOfferingsOutput {
        instance_type_offerings: Some(offerings.into_iter().map(|(_, o)| o).collect()),
        next_token,
    })
}
