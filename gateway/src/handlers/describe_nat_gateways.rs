use backend::ResourceKind;
use ec2api::{DescribeNatGatewaysOutput, DescribeNatGatewaysRequest, Ec2Error};
use storage::NatGatewayRecord;

use super::describe::Describe;
use super::nat_gateway_shape::{fields, shape, FILTERS};
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DescribeNatGatewaysRequest) -> Result<DescribeNatGatewaysOutput, Ec2Error> {
    let (items, next_token) = Describe::of(ctx, "DescribeNatGateways")
        .ids(req.nat_gateway_ids, ResourceKind::NatGateway)?
        .filters(req.filter.as_deref(), FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?
        .list::<NatGatewayRecord>(ctx, fields, |_| true)
        .await?;
    Ok(DescribeNatGatewaysOutput {
        nat_gateways: Some(items.iter().map(|i| shape(&i.record, &i.tags, "available")).collect()),
        next_token,
    })
}
