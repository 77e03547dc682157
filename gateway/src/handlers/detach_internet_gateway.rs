use backend::ResourceKind;
use ec2api::{DetachInternetGatewayOutput, DetachInternetGatewayRequest, Ec2Error};

use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DetachInternetGatewayRequest) -> Result<DetachInternetGatewayOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.internet_gateway_id), ResourceKind::InternetGateway)?;
    super::check_ids(std::slice::from_ref(&req.vpc_id), ResourceKind::Vpc)?;
    let (account, gateway, vpc) = (ctx.account().to_owned(), req.internet_gateway_id, req.vpc_id);
    ctx.call(move |b| b.detach_internet_gateway(&account, &gateway, &vpc)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
