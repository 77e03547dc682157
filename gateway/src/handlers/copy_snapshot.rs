use ec2api::{Code, CopySnapshotOutput, CopySnapshotRequest, Ec2Error};

use super::{tag_list, tags_from_specs};
use crate::context::Ctx;

/// A copy of a snapshot the caller may use (its own, a public one or one shared with it),
/// from any region Stratus serves into the caller's; `pending` until its data is copied.
pub async fn handle(ctx: &Ctx, req: CopySnapshotRequest) -> Result<CopySnapshotOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.source_snapshot_id), backend::ResourceKind::Snapshot)?;
    if req.encrypted == Some(true) || req.kms_key_id.is_some() {
        return Err(Ec2Error::new(Code::UnsupportedOperation, "Encrypted snapshots are not supported yet.".to_owned()));
    }
    if req.destination_outpost_arn.is_some() {
        return Err(Ec2Error::new(Code::UnsupportedOperation, "Stratus has no Outposts.".to_owned()));
    }
    let tags = tags_from_specs(req.tag_specifications, "snapshot")?;
    let description = req.description.unwrap_or_default();
    let source_region = req.source_region;
    let account = ctx.account().to_owned();
    let tags_in = tags.clone();
    let snapshot = ctx
        .call(move |b| {
            if !b.topology().regions.iter().any(|r| r.name == source_region) {
                return Err(backend::Error::InvalidParameter {
                    name: "SourceRegion",
                    message: format!("Invalid region: {source_region}"),
                });
            }
            b.copy_snapshot(&account, &req.source_snapshot_id, &description, &tags_in)
        })
        .await?;
    Ok(CopySnapshotOutput { snapshot_id: Some(snapshot.id), tags: Some(tag_list(&tags)) })
}
