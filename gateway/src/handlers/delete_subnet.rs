use ec2api::{DeleteSubnetOutput, DeleteSubnetRequest, Ec2Error};

use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DeleteSubnetRequest) -> Result<DeleteSubnetOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.subnet_id), backend::ResourceKind::Subnet)?;
    let (account, id) = (ctx.account().to_owned(), req.subnet_id);
    ctx.call(move |b| b.delete_subnet(&account, &id)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
