use backend::ResourceKind;
use ec2api::{DescribeSubnetsOutput, DescribeSubnetsRequest, Ec2Error};
use storage::SubnetRecord;

use super::describe::Describe;
use super::networks::{subnet, subnet_fields, SubnetView, SUBNET_FILTERS};
use super::Row;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DescribeSubnetsRequest) -> Result<DescribeSubnetsOutput, Ec2Error> {
    let (region, shown_region) = (ctx.region.clone(), ctx.region.clone());
    let (subnets, next_token) = Describe::of(ctx, "DescribeSubnets")
        .ids(req.subnet_ids, ResourceKind::Subnet)?
        .filters(req.filters.as_deref(), SUBNET_FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?
        .list_shown::<SubnetRecord, _>(
            ctx,
            move |b, filters, record, tags| {
                // Filters may ask for the free addresses, which the record does not hold. A
                // subnet whose view cannot be read is kept: showing it then fails the request,
                // rather than leaving it out unseen.
                match SubnetView::of(b, &region, record.clone()) {
                    Ok(view) => filters.matches(&Row { item: &view, tags, fields: subnet_fields }),
                    Err(_) => true,
                }
            },
            move |b, item| Ok(subnet(&SubnetView::of(b, &shown_region, item.record)?, &item.tags)),
        )
        .await?;
    Ok(DescribeSubnetsOutput { subnets: Some(subnets), next_token })
}
