use std::borrow::Cow;

use ec2api::filter::FilterSet;
use ec2api::pagination::PageRequest;
use ec2api::{DescribeVolumesModificationsOutput, DescribeVolumesModificationsRequest, Ec2Error};
use storage::VolumeRecord;

use super::shapes::modification;
use super::{check_ids, one, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &["volume-id", "modification-state", "target-size", "target-volume-type", "original-size"];

fn fields<'a>(v: &'a VolumeRecord, name: &str) -> Vec<Cow<'a, str>> {
    let Some(m) = &v.modification else { return vec![] };
    match name {
        "volume-id" => one(&v.id),
        "modification-state" => one(m.state.name()),
        "target-size" => one(m.target_size_gib.to_string()),
        "original-size" => one(m.original_size_gib.to_string()),
        "target-volume-type" => one(m.target_type.as_str()),
        _ => vec![],
    }
}

/// Each volume's latest modification.
pub async fn handle(
    ctx: &Ctx,
    req: DescribeVolumesModificationsRequest,
) -> Result<DescribeVolumesModificationsOutput, Ec2Error> {
    let ids = req.volume_ids.unwrap_or_default();
    check_ids(&ids, backend::ResourceKind::Volume)?;
    let filters = FilterSet::new(req.filters.as_deref(), FILTERS)?;
    let page = PageRequest::new(req.max_results, req.next_token.as_deref(), 5, 500)?;
    let account = ctx.account().to_owned();
    let volumes = ctx.call(move |b| b.volumes(&account)).await?;
    super::ensure_found(backend::ResourceKind::Volume, &ids, |id| volumes.iter().any(|v| &v.id == id))?;
    let matching: Vec<&VolumeRecord> = volumes
        .iter()
        .filter(|v| v.modification.is_some() && (ids.is_empty() || ids.contains(&v.id)))
        .filter(|v| filters.matches(&Row { item: *v, tags: NO_TAGS, fields }))
        .collect();
    let (items, next_token) = page.page(matching, |v| &v.id);
    Ok(DescribeVolumesModificationsOutput {
        volumes_modifications: Some(items.into_iter().filter_map(modification).collect()),
        next_token,
    })
}
