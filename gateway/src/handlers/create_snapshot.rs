use ec2api::{CreateSnapshotOutput, CreateSnapshotRequest, Ec2Error};

use super::shapes::snapshot;
use super::{check_ids, tags_from_specs};
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: CreateSnapshotRequest) -> Result<CreateSnapshotOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.volume_id), backend::ResourceKind::Volume)?;
    let tags = tags_from_specs(req.tag_specifications, "snapshot")?;
    let description = req.description.unwrap_or_default();
    let account = ctx.account().to_owned();
    let tags_for_view = tags.clone();
    let record = ctx.call(move |b| b.create_snapshot(&account, &req.volume_id, &description, &tags)).await?;
    Ok(snapshot(&record, &tags_for_view))
}
