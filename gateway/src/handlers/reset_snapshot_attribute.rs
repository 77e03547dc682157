use ec2api::{Ec2Error, ResetSnapshotAttributeOutput, ResetSnapshotAttributeRequest};

use crate::context::Ctx;

/// `createVolumePermission`: the snapshot is its owner's alone again.
pub async fn handle(ctx: &Ctx, req: ResetSnapshotAttributeRequest) -> Result<ResetSnapshotAttributeOutput, Ec2Error> {
    if req.attribute != "createVolumePermission" {
        return Err(Ec2Error::invalid_value("Attribute", &req.attribute, "Expected createVolumePermission."));
    }
    super::check_ids(std::slice::from_ref(&req.snapshot_id), backend::ResourceKind::Snapshot)?;
    let account = ctx.account().to_owned();
    let id = req.snapshot_id;
    ctx.call(move |b| b.change_volume_permissions(&account, &id, None)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
