use ec2api::{AttachVolumeOutput, AttachVolumeRequest, Ec2Error};

use super::check_ids;
use super::shapes::volume_attachment;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: AttachVolumeRequest) -> Result<AttachVolumeOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.volume_id), backend::ResourceKind::Volume)?;
    check_ids(std::slice::from_ref(&req.instance_id), backend::ResourceKind::Instance)?;
    let account = ctx.account().to_owned();
    let instance_id = req.instance_id.clone();
    let record = ctx.call(move |b| b.attach_volume(&account, &req.volume_id, &req.instance_id, &req.device)).await?;
    let attachment = record.attachment_of(&instance_id).ok_or_else(Ec2Error::internal)?;
    Ok(volume_attachment(&record, attachment))
}
