use ec2api::{DeleteInternetGatewayOutput, DeleteInternetGatewayRequest, Ec2Error};

use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DeleteInternetGatewayRequest) -> Result<DeleteInternetGatewayOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.internet_gateway_id), backend::ResourceKind::InternetGateway)?;
    let (account, id) = (ctx.account().to_owned(), req.internet_gateway_id);
    ctx.call(move |b| b.delete_internet_gateway(&account, &id)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
