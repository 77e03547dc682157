use backend::ResourceKind;
use ec2api::{AssociateRouteTableOutput, AssociateRouteTableRequest, Ec2Error};

use super::networks::association_state;
use crate::context::Ctx;

/// A subnet's association; gateway (edge) associations are not supported.
pub async fn handle(ctx: &Ctx, req: AssociateRouteTableRequest) -> Result<AssociateRouteTableOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.route_table_id), ResourceKind::RouteTable)?;
    if req.gateway_id.is_some() || req.public_ipv4_pool.is_some() {
        return Err(Ec2Error::new(
            ec2api::Code::UnsupportedOperation,
            "Only subnets can be associated with a route table.",
        ));
    }
    let subnet = req.subnet_id.ok_or_else(|| Ec2Error::missing_parameter("SubnetId"))?;
    super::check_ids(std::slice::from_ref(&subnet), ResourceKind::Subnet)?;
    let (account, table) = (ctx.account().to_owned(), req.route_table_id);
    let id = ctx.call(move |b| b.associate_route_table(&account, &table, &subnet)).await?;
    Ok(AssociateRouteTableOutput { association_id: Some(id), association_state: association_state() })
}
