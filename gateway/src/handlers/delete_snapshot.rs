use ec2api::{DeleteSnapshotOutput, DeleteSnapshotRequest, Ec2Error};

use super::check_ids;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DeleteSnapshotRequest) -> Result<DeleteSnapshotOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.snapshot_id), backend::ResourceKind::Snapshot)?;
    let account = ctx.account().to_owned();
    ctx.call(move |b| b.delete_snapshot(&account, &req.snapshot_id)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
