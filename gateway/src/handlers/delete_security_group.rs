use ec2api::{DeleteSecurityGroupOutput, DeleteSecurityGroupRequest, Ec2Error};

use super::rules::group_ref;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DeleteSecurityGroupRequest) -> Result<DeleteSecurityGroupOutput, Ec2Error> {
    let group = group_ref(req.group_id, req.group_name, "GroupId")?;
    let account = ctx.account().to_owned();
    let vpc = ctx.principal.default_vpc_id.clone();
    let id = ctx.call(move |b| b.delete_security_group(&account, &vpc, &group)).await?;
    Ok(DeleteSecurityGroupOutput { group_id: Some(id), r#return: Some(true) })
}
