use ec2api::{DeleteVolumeOutput, DeleteVolumeRequest, Ec2Error};

use super::check_ids;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DeleteVolumeRequest) -> Result<DeleteVolumeOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.volume_id), backend::ResourceKind::Volume)?;
    let account = ctx.account().to_owned();
    ctx.call(move |b| b.delete_volume(&account, &req.volume_id)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
