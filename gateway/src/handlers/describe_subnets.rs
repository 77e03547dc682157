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
            // Filters may ask for the free addresses, which the record does not hold.
            move |b, tx, filters, record, tags| {
                if filters.is_empty() {
                    return Ok(true); // nothing to test: the view is made once, for the answer
                }
                let view = SubnetView::of(b, tx, &region, record.clone())?;
                Ok(filters.matches(&Row { item: &view, tags, fields: subnet_fields }))
            },
            move |b, item| {
                let view = b.store().read(|tx| SubnetView::of(b, tx, &shown_region, item.record))?;
                Ok(subnet(&view, &item.tags))
            },
        )
        .await?;
    Ok(DescribeSubnetsOutput { subnets: Some(subnets), next_token })
}
