use std::borrow::Cow;

use ec2api::{DescribeVolumesOutput, DescribeVolumesRequest, Ec2Error};
use storage::VolumeRecord;

use super::describe::Describe;
use super::one;
use super::shapes::volume;
use crate::context::Ctx;

const FILTERS: &[&str] = &[
    "attachment.attach-time",
    "attachment.delete-on-termination",
    "attachment.device",
    "attachment.instance-id",
    "attachment.status",
    "availability-zone",
    "create-time",
    "encrypted",
    "multi-attach-enabled",
    "size",
    "snapshot-id",
    "status",
    "volume-id",
    "volume-type",
];

fn fields<'a>(v: &'a VolumeRecord, name: &str) -> Vec<Cow<'a, str>> {
    // Every attachment of a Multi-Attach volume counts.
    let each = |f: fn(&'a storage::VolumeAttachmentRecord) -> Cow<'a, str>| v.attachments().map(f).collect();
    match name {
        "attachment.attach-time" => {
            each(|a| Cow::Owned(ec2api::xml::format_timestamp(&super::timestamp(a.attach_time_ms))))
        }
        "attachment.delete-on-termination" => each(|a| Cow::Owned(a.delete_on_termination.to_string())),
        "attachment.device" => each(|a| Cow::Borrowed(a.device.as_str())),
        "attachment.instance-id" => each(|a| Cow::Borrowed(a.instance_id.as_str())),
        "attachment.status" => each(|a| Cow::Borrowed(a.state.name())),
        "availability-zone" => one(&v.zone),
        "create-time" => one(ec2api::xml::format_timestamp(&super::timestamp(v.created_ms))),
        "encrypted" => one(v.encryption.is_some().to_string()),
        "multi-attach-enabled" => one(v.multi_attach.to_string()),
        "size" => one(v.size_gib.to_string()),
        "snapshot-id" => v.snapshot_id.as_deref().map(one).unwrap_or_default(),
        "status" => one(v.state.name()),
        "volume-id" => one(&v.id),
        "volume-type" => one(&v.volume_type),
        _ => vec![],
    }
}

pub async fn handle(ctx: &Ctx, req: DescribeVolumesRequest) -> Result<DescribeVolumesOutput, Ec2Error> {
    let (items, next_token) = Describe::of(ctx, "DescribeVolumes")
        .ids(req.volume_ids, backend::ResourceKind::Volume)?
        .filters(req.filters.as_deref(), FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 500)?
        .list::<VolumeRecord>(ctx, fields, |_| true)
        .await?;
    Ok(DescribeVolumesOutput { volumes: Some(items.iter().map(|i| volume(&i.record, &i.tags)).collect()), next_token })
}
