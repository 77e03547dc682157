use backend::volumes::SnapshotSet;
use ec2api::{Code, CreateSnapshotsOutput, CreateSnapshotsRequest, Ec2Error, SnapshotInfo};

use super::{check_ids, tag_list, tags_from_specs, timestamp};
use crate::context::Ctx;

/// Crash-consistent snapshots of an instance's volumes, taken in one pause of the guest.
pub async fn handle(ctx: &Ctx, req: CreateSnapshotsRequest) -> Result<CreateSnapshotsOutput, Ec2Error> {
    let spec = req.instance_specification;
    check_ids(std::slice::from_ref(&spec.instance_id), backend::ResourceKind::Instance)?;
    let exclude = spec.exclude_data_volume_ids.unwrap_or_default();
    check_ids(&exclude, backend::ResourceKind::Volume)?;
    if req.outpost_arn.is_some() || req.location.as_deref().is_some_and(|l| l != "regional") {
        return Err(Ec2Error::new(Code::UnsupportedOperation, "Stratus has no Outposts or Local Zones.".to_owned()));
    }
    let copy_tags = match req.copy_tags_from_source.as_deref() {
        None => false,
        Some("volume") => true,
        Some(other) => return Err(Ec2Error::invalid_value("CopyTagsFromSource", other, "Expected volume.")),
    };
    let set = SnapshotSet {
        instance_id: spec.instance_id,
        exclude_boot: spec.exclude_boot_volume.unwrap_or(false),
        exclude,
        description: req.description.unwrap_or_default(),
        tags: tags_from_specs(req.tag_specifications, "snapshot")?,
        copy_tags,
    };
    let account = ctx.account().to_owned();
    let (snapshots, tags) = ctx
        .call(move |b| {
            let snapshots = b.create_snapshots(&account, set)?;
            let tags = b.tags_of(&account, snapshots.iter().map(|s| s.id.as_str()))?;
            Ok((snapshots, tags))
        })
        .await?;
    Ok(CreateSnapshotsOutput {
        snapshots: Some(
            snapshots
                .iter()
                .map(|s| SnapshotInfo {
                    snapshot_id: Some(s.id.clone()),
                    volume_id: Some(s.volume_id.clone()),
                    volume_size: super::int(s.volume_size_gib),
                    description: Some(s.description.clone()),
                    state: Some(s.state.name().into()),
                    progress: Some("0%".into()),
                    start_time: Some(timestamp(s.start_ms)),
                    owner_id: Some(s.account.clone()),
                    encrypted: Some(s.encryption.is_some()),
                    tags: Some(tag_list(tags.get(&s.id).map_or(&[][..], Vec::as_slice))),
                    ..Default::default()
                })
                .collect(),
        ),
    })
}
