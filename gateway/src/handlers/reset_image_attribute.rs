use ec2api::{Ec2Error, ResetImageAttributeOutput, ResetImageAttributeRequest};

use crate::context::Ctx;

/// `launchPermission`, the one attribute EC2 resets: the image is its owner's alone again.
pub async fn handle(ctx: &Ctx, req: ResetImageAttributeRequest) -> Result<ResetImageAttributeOutput, Ec2Error> {
    if req.attribute != "launchPermission" {
        return Err(Ec2Error::invalid_value("Attribute", &req.attribute, "Expected launchPermission."));
    }
    super::check_ids(std::slice::from_ref(&req.image_id), backend::ResourceKind::Image)?;
    let account = ctx.account().to_owned();
    let id = req.image_id;
    ctx.call(move |b| b.change_launch_permissions(&account, &id, None)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
