use ec2api::{DeleteVpcOutput, DeleteVpcRequest, Ec2Error};

use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DeleteVpcRequest) -> Result<DeleteVpcOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.vpc_id), backend::ResourceKind::Vpc)?;
    let (account, id) = (ctx.account().to_owned(), req.vpc_id);
    ctx.call(move |b| b.delete_vpc(&account, &id)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
