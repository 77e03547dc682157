use backend::ResourceKind;
use ec2api::{DescribeSubnetsOutput, DescribeSubnetsRequest, Ec2Error};

use super::describe::Describe;
use super::networks::{subnet, subnet_fields, SubnetView, SUBNET_FILTERS};
use super::NO_TAGS;
use crate::context::Ctx;

/// The account's subnets as Describe shows them (free addresses counted from the leases).
pub fn views(b: &backend::Backend, account: &str, region: &str) -> backend::Result<Vec<SubnetView>> {
    b.subnet_records(account)?.into_iter().map(|record| SubnetView::of(b, region, record)).collect()
}

pub async fn handle(ctx: &Ctx, req: DescribeSubnetsRequest) -> Result<DescribeSubnetsOutput, Ec2Error> {
    let describe = Describe::of(ctx, "DescribeSubnets")
        .ids(req.subnet_ids, ResourceKind::Subnet)?
        .filters(req.filters.as_deref(), SUBNET_FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let (account, region) = (ctx.account().to_owned(), ctx.region.clone());
    let (items, tags) = ctx
        .snapshot(move |b| {
            let items = views(b, &account, &region)?;
            let tags = b.tags_of(&account, items.iter().map(|i| i.record.id.as_str()))?;
            Ok((items, tags))
        })
        .await?;
    let rows = items.iter().map(|s| (s, tags.get(&s.record.id).map_or(NO_TAGS, Vec::as_slice)));
    let (page, next_token) = describe.page(rows, |s| &s.record.id, subnet_fields, |_| true)?;
    Ok(DescribeSubnetsOutput { subnets: Some(page.into_iter().map(|(s, t)| subnet(s, t)).collect()), next_token })
}
