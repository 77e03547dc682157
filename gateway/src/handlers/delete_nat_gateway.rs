use ec2api::{DeleteNatGatewayOutput, DeleteNatGatewayRequest, Ec2Error};

use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DeleteNatGatewayRequest) -> Result<DeleteNatGatewayOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.nat_gateway_id), backend::ResourceKind::NatGateway)?;
    let (account, id) = (ctx.account().to_owned(), req.nat_gateway_id);
    let nat = ctx.call(move |b| b.delete_nat_gateway(&account, &id)).await?;
    Ok(DeleteNatGatewayOutput { nat_gateway_id: Some(nat.id) })
}
