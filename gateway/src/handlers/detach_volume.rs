use ec2api::{DetachVolumeOutput, DetachVolumeRequest, Ec2Error};

use super::check_ids;
use super::shapes::volume_attachment;
use crate::context::Ctx;

/// `Force` is accepted and changes nothing: a disk is only forgotten once the guest has let
/// go of it, so that no two guests ever write to one volume.
pub async fn handle(ctx: &Ctx, req: DetachVolumeRequest) -> Result<DetachVolumeOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.volume_id), backend::ResourceKind::Volume)?;
    let instance_id = req.instance_id.filter(|i| !i.is_empty());
    if let Some(id) = &instance_id {
        check_ids(std::slice::from_ref(id), backend::ResourceKind::Instance)?;
    }
    let device = req.device.filter(|d| !d.is_empty());
    let account = ctx.account().to_owned();
    let named = instance_id.clone();
    let record =
        ctx.call(move |b| b.detach_volume(&account, &req.volume_id, instance_id.as_deref(), device.as_deref())).await?;
    // The attachment being detached: the named instance's, else the only one.
    let attachment = match &named {
        Some(id) => record.attachment_of(id),
        None => record.attachments().find(|a| a.state == storage::AttachmentState::Detaching),
    };
    Ok(volume_attachment(&record, attachment.ok_or_else(Ec2Error::internal)?))
}
