use ec2api::Code;
use ec2api::{Ec2Error, StopInstancesOutput, StopInstancesRequest};

use super::check_ids;
use super::shapes::state_changes;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: StopInstancesRequest) -> Result<StopInstancesOutput, Ec2Error> {
    check_ids(&req.instance_ids, backend::ResourceKind::Instance)?;
    if req.hibernate == Some(true) {
        return Err(Ec2Error::new(Code::UnsupportedHibernationConfiguration, "Stratus instances do not hibernate"));
    }
    let account = ctx.account().to_owned();
    let force = req.force.unwrap_or(false) || req.skip_os_shutdown.unwrap_or(false);
    let changes = ctx.call(move |b| b.stop_instances(&account, &req.instance_ids, force)).await?;
    Ok(StopInstancesOutput { stopping_instances: Some(state_changes(changes)) })
}
