use std::borrow::Cow;

use ec2api::{DescribeVolumesModificationsOutput, DescribeVolumesModificationsRequest, Ec2Error};
use storage::VolumeRecord;

use super::describe::Describe;
use super::one;
use super::shapes::modification;
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
    let (items, next_token) = Describe::of(ctx, "DescribeVolumesModifications")
        .ids(req.volume_ids, backend::ResourceKind::Volume)?
        .filters(req.filters.as_deref(), FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 500)?
        .list::<VolumeRecord>(ctx, fields, |v| v.modification.is_some())
        .await?;
    Ok(DescribeVolumesModificationsOutput {
        volumes_modifications: Some(items.iter().filter_map(|i| modification(&i.record)).collect()),
        next_token,
    })
}
