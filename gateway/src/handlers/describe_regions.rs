use std::borrow::Cow;

use ec2api::filter::FilterSet;
use ec2api::Code;
use ec2api::{DescribeRegionsOutput, DescribeRegionsRequest, Ec2Error, Region};

use super::{one, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &["endpoint", "region-name", "opt-in-status"];

fn fields<'a>(region: &'a Region, name: &str) -> Vec<Cow<'a, str>> {
    let value = match name {
        "endpoint" => &region.endpoint,
        "region-name" => &region.region_name,
        "opt-in-status" => &region.opt_in_status,
        _ => return vec![],
    };
    value.as_deref().map(one).unwrap_or_default()
}

pub async fn handle(ctx: &Ctx, req: DescribeRegionsRequest) -> Result<DescribeRegionsOutput, Ec2Error> {
    let filters = FilterSet::new(req.filters.as_deref(), FILTERS)?;
    let topology = ctx.backend.topology();
    let names = req.region_names.unwrap_or_default();
    if let Some(unknown) = names.iter().find(|n| topology.region(n).is_none()) {
        return Err(Ec2Error::new(Code::InvalidParameterValue, format!("Invalid region: {unknown}")));
    }
    let regions = topology
        .regions
        .iter()
        .filter(|r| names.is_empty() || names.contains(&r.name))
        .map(|r| Region {
            region_name: Some(r.name.clone()),
            // One endpoint serves every region; the scope of the signature picks the region.
            endpoint: Some(ctx.endpoint.clone()),
            opt_in_status: Some("opt-in-not-required".into()),
            geography: None,
        })
        .filter(|r| filters.matches(&Row { item: r, tags: NO_TAGS, fields }))
        .collect();
    Ok(DescribeRegionsOutput { regions: Some(regions) })
}
