use ec2api::{Ec2Error, StartInstancesOutput, StartInstancesRequest};

use super::check_ids;
use super::shapes::state_changes;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: StartInstancesRequest) -> Result<StartInstancesOutput, Ec2Error> {
    check_ids(&req.instance_ids, backend::ResourceKind::Instance)?;
    let account = ctx.account().to_owned();
    let changes = ctx.call(move |b| b.start_instances(&account, &req.instance_ids)).await?;
    Ok(StartInstancesOutput { starting_instances: Some(state_changes(changes)) })
}
