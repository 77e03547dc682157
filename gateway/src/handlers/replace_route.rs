use ec2api::{Ec2Error, ReplaceRouteOutput, ReplaceRouteRequest};

use super::routes::{destination, target, Targets};
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: ReplaceRouteRequest) -> Result<ReplaceRouteOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.route_table_id), backend::ResourceKind::RouteTable)?;
    let destination =
        destination(req.destination_cidr_block, req.destination_ipv6_cidr_block, req.destination_prefix_list_id)?;
    let target = target(Targets {
        gateway_id: req.gateway_id,
        nat_gateway_id: req.nat_gateway_id,
        network_interface_id: req.network_interface_id,
        instance_id: req.instance_id,
        local: req.local_target == Some(true),
        others: vec![
            ("TransitGatewayId", req.transit_gateway_id.is_some()),
            ("VpcPeeringConnectionId", req.vpc_peering_connection_id.is_some()),
            ("EgressOnlyInternetGatewayId", req.egress_only_internet_gateway_id.is_some()),
            ("CarrierGatewayId", req.carrier_gateway_id.is_some()),
            ("LocalGatewayId", req.local_gateway_id.is_some()),
            ("VpcEndpointId", req.vpc_endpoint_id.is_some()),
            ("CoreNetworkArn", req.core_network_arn.is_some()),
        ],
    })?;
    let (account, table) = (ctx.account().to_owned(), req.route_table_id);
    ctx.call(move |b| b.put_route(&account, &table, &destination, &target, true)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
