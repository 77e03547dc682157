use ec2api::{Code, Ec2Error, LaunchPermission, ModifyImageAttributeOutput, ModifyImageAttributeRequest};

use super::permissions;
use crate::context::Ctx;

/// One change per call: who may launch the image (`LaunchPermission.Add/Remove.N`, or the older
/// `Attribute=launchPermission` with `OperationType`, `UserId.N` and `UserGroup.N`), or its
/// `Description`. Owner only.
pub async fn handle(ctx: &Ctx, req: ModifyImageAttributeRequest) -> Result<ModifyImageAttributeOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.image_id), backend::ResourceKind::Image)?;
    let account = ctx.account().to_owned();
    let id = req.image_id.clone();
    let description = req
        .description
        .and_then(|d| d.value)
        .or_else(|| (req.attribute.as_deref() == Some("description")).then(|| req.value.clone().unwrap_or_default()));
    if let Some(description) = description {
        ctx.call(move |b| b.set_image_description(&account, &id, &description)).await?;
        return Ok(ec2api::xml::ReturnTrue);
    }
    if req.product_codes.is_some() || req.imds_support.is_some() {
        return Err(Ec2Error::new(
            Code::UnsupportedOperation,
            "Stratus images carry no product codes and always support IMDSv1 and v2.".to_owned(),
        ));
    }
    if req.organization_arns.is_some() || req.organizational_unit_arns.is_some() {
        return Err(Ec2Error::new(
            Code::UnsupportedOperation,
            "Stratus has no organizations: share images with account ids or with all.".to_owned(),
        ));
    }
    if req.attribute.as_deref().is_some_and(|a| a != "launchPermission")
        && (req.user_ids.is_some() || req.user_groups.is_some() || req.operation_type.is_some())
    {
        return Err(Ec2Error::invalid_value(
            "Attribute",
            req.attribute.as_deref().unwrap_or_default(),
            "UserId and UserGroup change launchPermission.",
        ));
    }
    let entries = |list: Option<Vec<LaunchPermission>>| -> Vec<permissions::Entry> {
        list.unwrap_or_default().into_iter().map(|p| (p.group, p.user_id)).collect()
    };
    let (add, remove) = req.launch_permission.map(|m| (entries(m.add), entries(m.remove))).unwrap_or_default();
    let change = permissions::change(
        add,
        remove,
        (req.operation_type, req.user_ids, req.user_groups),
        Code::InvalidAmiAttributeItemValue,
    )?;
    ctx.call(move |b| b.change_launch_permissions(&account, &id, Some(&change))).await?;
    Ok(ec2api::xml::ReturnTrue)
}
