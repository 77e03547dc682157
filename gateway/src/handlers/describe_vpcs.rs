use backend::ResourceKind;
use ec2api::{DescribeVpcsOutput, DescribeVpcsRequest, Ec2Error};
use storage::VpcRecord;

use super::describe::Describe;
use super::networks::{vpc, vpc_fields, VPC_FILTERS};
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DescribeVpcsRequest) -> Result<DescribeVpcsOutput, Ec2Error> {
    let (items, next_token) = Describe::of(ctx, "DescribeVpcs")
        .ids(req.vpc_ids, ResourceKind::Vpc)?
        .filters(req.filters.as_deref(), VPC_FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?
        .list::<VpcRecord>(ctx, vpc_fields, |_| true)
        .await?;
    Ok(DescribeVpcsOutput { vpcs: Some(items.iter().map(|i| vpc(&i.record, &i.tags)).collect()), next_token })
}
