use backend::ResourceKind;
use ec2api::{Code, CreateNatGatewayOutput, CreateNatGatewayRequest, Ec2Error};

use super::nat_gateway_shape::shape;
use super::tags_from_specs;
use crate::context::Ctx;

/// A public NAT gateway in a subnet, with an Elastic IP of the account.
pub async fn handle(ctx: &Ctx, req: CreateNatGatewayRequest) -> Result<CreateNatGatewayOutput, Ec2Error> {
    let tags = tags_from_specs(req.tag_specifications, "natgateway")?;
    backend::nat_gateways::validate_connectivity(req.connectivity_type.as_deref()).map_err(crate::errors::to_ec2)?;
    if req.secondary_allocation_ids.as_ref().is_some_and(|s| !s.is_empty())
        || req.secondary_private_ip_addresses.as_ref().is_some_and(|s| !s.is_empty())
        || req.secondary_private_ip_address_count.unwrap_or(0) > 0
        || req.private_ip_address.is_some()
        || req.availability_mode.is_some()
    {
        return Err(Ec2Error::new(
            Code::UnsupportedOperation,
            "Secondary addresses, a chosen private address and regional availability are not supported yet.",
        ));
    }
    let subnet = req.subnet_id.ok_or_else(|| Ec2Error::missing_parameter("SubnetId"))?;
    super::check_ids(std::slice::from_ref(&subnet), ResourceKind::Subnet)?;
    let allocation = req.allocation_id.ok_or_else(|| Ec2Error::missing_parameter("AllocationId"))?;
    super::check_ids(std::slice::from_ref(&allocation), ResourceKind::ElasticIp)?;
    let (account, token, shown) = (ctx.account().to_owned(), req.client_token.clone(), tags.clone());
    let nat = ctx.call(move |b| b.create_nat_gateway(&account, &subnet, &allocation, token.as_deref(), &tags)).await?;
    Ok(CreateNatGatewayOutput { nat_gateway: Some(shape(&nat, &shown, "available")), client_token: req.client_token })
}
