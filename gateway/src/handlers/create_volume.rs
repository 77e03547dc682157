use backend::encryption::EncryptionAsk;
use backend::volumes::NewVolume;
use ec2api::{CreateVolumeOutput, CreateVolumeRequest, Ec2Error};

use super::shapes::volume;
use super::{positive, tags_from_specs};
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: CreateVolumeRequest) -> Result<CreateVolumeOutput, Ec2Error> {
    let zone = req
        .availability_zone
        .filter(|z| !z.is_empty())
        .ok_or_else(|| Ec2Error::missing_parameter("AvailabilityZone"))?;
    let tags = tags_from_specs(req.tag_specifications, "volume")?;
    // A retried request (same ClientToken) carries the same tags as the first.
    let echoed = tags.clone();
    let new = NewVolume {
        zone,
        size_gib: positive(req.size, "Size")?.map(u64::from),
        volume_type: req.volume_type,
        iops: positive(req.iops, "Iops")?,
        throughput: positive(req.throughput, "Throughput")?,
        snapshot_id: req.snapshot_id.filter(|s| !s.is_empty()),
        client_token: req.client_token.filter(|t| !t.is_empty()),
        tags,
        encryption: EncryptionAsk { encrypted: req.encrypted, kms_key_id: req.kms_key_id.filter(|k| !k.is_empty()) },
        multi_attach: req.multi_attach_enabled == Some(true),
    };
    let account = ctx.account().to_owned();
    let record = ctx.call(move |b| b.create_volume(&account, new)).await?;
    Ok(volume(&record, &echoed))
}
