use backend::volumes::VolumeChange;
use ec2api::Code;
use ec2api::{Ec2Error, ModifyVolumeOutput, ModifyVolumeRequest};

use super::shapes::modification;
use super::{check_ids, positive};
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: ModifyVolumeRequest) -> Result<ModifyVolumeOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.volume_id), backend::ResourceKind::Volume)?;
    if req.multi_attach_enabled == Some(true) {
        return Err(Ec2Error::new(
            Code::UnsupportedOperation,
            "Multi-Attach is chosen when a volume is made (CreateVolume with MultiAttachEnabled).",
        ));
    }
    let change = VolumeChange {
        size_gib: positive(req.size, "Size")?.map(u64::from),
        volume_type: req.volume_type,
        iops: positive(req.iops, "Iops")?,
        throughput: positive(req.throughput, "Throughput")?,
    };
    let account = ctx.account().to_owned();
    let record = ctx.call(move |b| b.modify_volume(&account, &req.volume_id, change)).await?;
    Ok(ModifyVolumeOutput { volume_modification: modification(&record) })
}
