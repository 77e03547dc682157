use ec2api::{Code, CreateVolumePermission, Ec2Error, ModifySnapshotAttributeOutput, ModifySnapshotAttributeRequest};

use super::permissions;
use crate::context::Ctx;

/// Who may make volumes from the snapshot: `CreateVolumePermission.Add/Remove.N`, or the older
/// `Attribute=createVolumePermission` with `OperationType`, `UserId.N` and `UserGroup.N`.
/// Owner only.
pub async fn handle(ctx: &Ctx, req: ModifySnapshotAttributeRequest) -> Result<ModifySnapshotAttributeOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.snapshot_id), backend::ResourceKind::Snapshot)?;
    if let Some(attribute) = req.attribute.as_deref().filter(|a| *a != "createVolumePermission") {
        return Err(Ec2Error::invalid_value("Attribute", attribute, "Expected createVolumePermission."));
    }
    let entries = |list: Option<Vec<CreateVolumePermission>>| -> Vec<permissions::Entry> {
        list.unwrap_or_default().into_iter().map(|p| (p.group, p.user_id)).collect()
    };
    let (add, remove) = req.create_volume_permission.map(|m| (entries(m.add), entries(m.remove))).unwrap_or_default();
    let change = permissions::change(
        add,
        remove,
        (req.operation_type, req.user_ids, req.group_names),
        Code::InvalidParameterValue,
    )?;
    let account = ctx.account().to_owned();
    let id = req.snapshot_id;
    ctx.call(move |b| b.change_volume_permissions(&account, &id, Some(&change))).await?;
    Ok(ec2api::xml::ReturnTrue)
}
