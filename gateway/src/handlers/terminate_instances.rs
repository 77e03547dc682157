use ec2api::{Ec2Error, TerminateInstancesOutput, TerminateInstancesRequest};

use super::check_ids;
use super::shapes::state_changes;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: TerminateInstancesRequest) -> Result<TerminateInstancesOutput, Ec2Error> {
    check_ids(&req.instance_ids, backend::ResourceKind::Instance)?;
    let account = ctx.account().to_owned();
    let changes = ctx.call(move |b| b.terminate_instances(&account, &req.instance_ids)).await?;
    Ok(TerminateInstancesOutput { terminating_instances: Some(state_changes(changes)) })
}
