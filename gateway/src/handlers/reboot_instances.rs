use ec2api::xml::ReturnTrue;
use ec2api::{Ec2Error, RebootInstancesOutput, RebootInstancesRequest};

use super::check_ids;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: RebootInstancesRequest) -> Result<RebootInstancesOutput, Ec2Error> {
    check_ids(&req.instance_ids, backend::ResourceKind::Instance)?;
    let account = ctx.account().to_owned();
    ctx.call(move |b| b.reboot_instances(&account, &req.instance_ids)).await?;
    Ok(ReturnTrue)
}
