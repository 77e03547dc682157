use backend::ResourceKind;
use ec2api::{DescribeInternetGatewaysOutput, DescribeInternetGatewaysRequest, Ec2Error};
use storage::InternetGatewayRecord;

use super::describe::Describe;
use super::networks::{gateway, gateway_fields, GATEWAY_FILTERS};
use crate::context::Ctx;

pub async fn handle(
    ctx: &Ctx,
    req: DescribeInternetGatewaysRequest,
) -> Result<DescribeInternetGatewaysOutput, Ec2Error> {
    let (items, next_token) = Describe::of(ctx, "DescribeInternetGateways")
        .ids(req.internet_gateway_ids, ResourceKind::InternetGateway)?
        .filters(req.filters.as_deref(), GATEWAY_FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?
        .list::<InternetGatewayRecord>(ctx, gateway_fields, |_| true)
        .await?;
    Ok(DescribeInternetGatewaysOutput {
        internet_gateways: Some(items.iter().map(|i| gateway(&i.record, &i.tags)).collect()),
        next_token,
    })
}
