use std::borrow::Cow;

use ec2api::filter::FilterSet;
use ec2api::pagination::PageRequest;
use ec2api::{DescribeVolumesOutput, DescribeVolumesRequest, Ec2Error};
use storage::VolumeRecord;

use super::shapes::volume;
use super::{check_ids, one, Row, NO_TAGS};
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
    let a = v.attachment.as_ref();
    match name {
        "attachment.attach-time" => {
            a.map(|a| one(ec2api::xml::format_timestamp(&super::timestamp(a.attach_time_ms)))).unwrap_or_default()
        }
        "attachment.delete-on-termination" => a.map(|a| one(a.delete_on_termination.to_string())).unwrap_or_default(),
        "attachment.device" => a.map(|a| one(a.device.as_str())).unwrap_or_default(),
        "attachment.instance-id" => a.map(|a| one(a.instance_id.as_str())).unwrap_or_default(),
        "attachment.status" => a.map(|a| one(a.state.name())).unwrap_or_default(),
        "availability-zone" => one(&v.zone),
        "create-time" => one(ec2api::xml::format_timestamp(&super::timestamp(v.created_ms))),
        "encrypted" | "multi-attach-enabled" => one("false"),
        "size" => one(v.size_gib.to_string()),
        "snapshot-id" => v.snapshot_id.as_deref().map(one).unwrap_or_default(),
        "status" => one(v.state.name()),
        "volume-id" => one(&v.id),
        "volume-type" => one(&v.volume_type),
        _ => vec![],
    }
}

pub async fn handle(ctx: &Ctx, req: DescribeVolumesRequest) -> Result<DescribeVolumesOutput, Ec2Error> {
    let ids = req.volume_ids.unwrap_or_default();
    check_ids(&ids, backend::ResourceKind::Volume)?;
    let filters = FilterSet::new(req.filters.as_deref(), FILTERS)?;
    let page = PageRequest::new(req.max_results, req.next_token.as_deref(), 5, 500)?;
    let account = ctx.account().to_owned();
    let (volumes, tags) = ctx.call(move |b| Ok((b.volumes(&account)?, b.tags_by_resource(&account)?))).await?;
    super::ensure_found(backend::ResourceKind::Volume, &ids, |id| volumes.iter().any(|v| &v.id == id))?;
    let tags_of = |id: &str| tags.get(id).map_or(NO_TAGS, Vec::as_slice);
    let matching: Vec<&VolumeRecord> = volumes
        .iter()
        .filter(|v| ids.is_empty() || ids.contains(&v.id))
        .filter(|v| filters.matches(&Row { item: *v, tags: tags_of(&v.id), fields }))
        .collect();
    let (items, next_token) = page.page(matching, |v| &v.id);
    Ok(DescribeVolumesOutput {
        volumes: Some(items.into_iter().map(|v| volume(v, tags_of(&v.id))).collect()),
        next_token,
    })
}
