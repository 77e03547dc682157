use backend::ResourceKind;
use ec2api::{DescribeNatGatewaysOutput, DescribeNatGatewaysRequest, Ec2Error};

use super::describe::Describe;
use super::nat_gateway_shape::{fields, shape, FILTERS};
use super::NO_TAGS;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DescribeNatGatewaysRequest) -> Result<DescribeNatGatewaysOutput, Ec2Error> {
    let describe = Describe::of(ctx, "DescribeNatGateways")
        .ids(req.nat_gateway_ids, ResourceKind::NatGateway)?
        .filters(req.filter.as_deref(), FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let account = ctx.account().to_owned();
    let (nats, tags) = ctx
        .snapshot(move |b| {
            let nats = b.nat_gateways(&account)?;
            let tags = b.tags_of(&account, nats.iter().map(|n| n.id.as_str()))?;
            Ok((nats, tags))
        })
        .await?;
    let rows = nats.iter().map(|n| (n, tags.get(&n.id).map_or(NO_TAGS, Vec::as_slice)));
    let (page, next_token) = describe.page(rows, |n| &n.id, fields, |_| true)?;
    Ok(DescribeNatGatewaysOutput {
        nat_gateways: Some(page.into_iter().map(|(n, t)| shape(n, t, "available")).collect()),
        next_token,
    })
}
