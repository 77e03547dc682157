use backend::encryption::EncryptionAsk;
use ec2api::{Code, CopySnapshotOutput, CopySnapshotRequest, Ec2Error};

use super::{tag_list, tags_from_specs};
use crate::context::Ctx;

/// A copy of a snapshot the caller may use (its own, a public one or one shared with it),
/// from any region Stratus serves into the caller's; `pending` until its data is copied.
pub async fn handle(ctx: &Ctx, req: CopySnapshotRequest) -> Result<CopySnapshotOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.source_snapshot_id), backend::ResourceKind::Snapshot)?;
    if req.destination_outpost_arn.is_some() {
        return Err(Ec2Error::new(Code::UnsupportedOperation, "Stratus has no Outposts.".to_owned()));
    }
    let tags = tags_from_specs(req.tag_specifications, "snapshot")?;
    let description = req.description.unwrap_or_default();
    let source_region = req.source_region;
    let ask = EncryptionAsk { encrypted: req.encrypted, kms_key_id: req.kms_key_id.filter(|k| !k.is_empty()) };
    let region = ctx.region.clone();
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
            b.copy_snapshot(&account, &req.source_snapshot_id, &description, &tags_in, (&ask, &region))
        })
        .await?;
    Ok(CopySnapshotOutput { snapshot_id: Some(snapshot.id), tags: Some(tag_list(&tags)) })
}
