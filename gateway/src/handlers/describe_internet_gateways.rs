use backend::ResourceKind;
use ec2api::{DescribeInternetGatewaysOutput, DescribeInternetGatewaysRequest, Ec2Error};

use super::describe::Describe;
use super::networks::{gateway, gateway_fields, GATEWAY_FILTERS};
use super::NO_TAGS;
use crate::context::Ctx;

pub async fn handle(
    ctx: &Ctx,
    req: DescribeInternetGatewaysRequest,
) -> Result<DescribeInternetGatewaysOutput, Ec2Error> {
    let describe = Describe::of(ctx, "DescribeInternetGateways")
        .ids(req.internet_gateway_ids, ResourceKind::InternetGateway)?
        .filters(req.filters.as_deref(), GATEWAY_FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let account = ctx.account().to_owned();
    let (gateways, tags) = ctx
        .snapshot(move |b| {
            let gateways = b.internet_gateways(&account)?;
            let tags = b.tags_of(&account, gateways.iter().map(|g| g.id.as_str()))?;
            Ok((gateways, tags))
        })
        .await?;
    let rows = gateways.iter().map(|g| (g, tags.get(&g.id).map_or(NO_TAGS, Vec::as_slice)));
    let (page, next_token) = describe.page(rows, |g| &g.id, gateway_fields, |_| true)?;
    Ok(DescribeInternetGatewaysOutput {
        internet_gateways: Some(page.into_iter().map(|(g, t)| gateway(g, t)).collect()),
        next_token,
    })
}
