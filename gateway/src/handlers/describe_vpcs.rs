use backend::ResourceKind;
use ec2api::{DescribeVpcsOutput, DescribeVpcsRequest, Ec2Error};

use super::describe::Describe;
use super::networks::{vpc, vpc_fields, VPC_FILTERS};
use super::NO_TAGS;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DescribeVpcsRequest) -> Result<DescribeVpcsOutput, Ec2Error> {
    let describe = Describe::of(ctx, "DescribeVpcs")
        .ids(req.vpc_ids, ResourceKind::Vpc)?
        .filters(req.filters.as_deref(), VPC_FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let account = ctx.account().to_owned();
    let (vpcs, tags) = ctx
        .snapshot(move |b| {
            let vpcs = b.vpcs(&account)?;
            let tags = b.tags_of(&account, vpcs.iter().map(|v| v.id.as_str()))?;
            Ok((vpcs, tags))
        })
        .await?;
    let rows = vpcs.iter().map(|v| (v, tags.get(&v.id).map_or(NO_TAGS, Vec::as_slice)));
    let (items, next_token) = describe.page(rows, |v| &v.id, vpc_fields, |_| true)?;
    Ok(DescribeVpcsOutput { vpcs: Some(items.into_iter().map(|(v, t)| vpc(v, t)).collect()), next_token })
}
