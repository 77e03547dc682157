use std::borrow::Cow;

use ec2api::filter::FilterSet;
use ec2api::pagination::PageRequest;
use ec2api::{DescribeSnapshotsOutput, DescribeSnapshotsRequest, Ec2Error};
use storage::SnapshotRecord;

use super::shapes::snapshot;
use super::{check_ids, one, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &[
    "description",
    "owner-id",
    "progress",
    "snapshot-id",
    "start-time",
    "status",
    "volume-id",
    "volume-size",
    "encrypted",
];

fn fields<'a>(s: &'a SnapshotRecord, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "description" => one(&s.description),
        "owner-id" => one(&s.account),
        "progress" => one(if s.state == storage::SnapshotState::Completed { "100%" } else { "0%" }),
        "snapshot-id" => one(&s.id),
        "start-time" => one(ec2api::xml::format_timestamp(&super::timestamp(s.start_ms))),
        "status" => one(s.state.name()),
        "volume-id" => one(&s.volume_id),
        "volume-size" => one(s.volume_size_gib.to_string()),
        "encrypted" => one("false"),
        _ => vec![],
    }
}

/// Snapshots are private to their account: `OwnerId.N` other than the caller (or `self`)
/// finds nothing.
pub async fn handle(ctx: &Ctx, req: DescribeSnapshotsRequest) -> Result<DescribeSnapshotsOutput, Ec2Error> {
    let ids = req.snapshot_ids.unwrap_or_default();
    check_ids(&ids, backend::ResourceKind::Snapshot)?;
    let filters = FilterSet::new(req.filters.as_deref(), FILTERS)?;
    let page = PageRequest::new(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let owners = req.owner_ids.unwrap_or_default();
    let account = ctx.account().to_owned();
    let caller = account.clone();
    let (snapshots, tags) = ctx.call(move |b| Ok((b.snapshots(&account)?, b.tags_by_resource(&account)?))).await?;
    super::ensure_found(backend::ResourceKind::Snapshot, &ids, |id| snapshots.iter().any(|s| &s.id == id))?;
    let tags_of = |id: &str| tags.get(id).map_or(NO_TAGS, Vec::as_slice);
    let owned = owners.is_empty() || owners.iter().any(|o| o == "self" || *o == caller);
    let matching: Vec<&SnapshotRecord> = snapshots
        .iter()
        .filter(|_| owned)
        .filter(|s| ids.is_empty() || ids.contains(&s.id))
        .filter(|s| filters.matches(&Row { item: *s, tags: tags_of(&s.id), fields }))
        .collect();
    let (items, next_token) = page.page(matching, |s| &s.id);
    Ok(DescribeSnapshotsOutput {
        snapshots: Some(items.into_iter().map(|s| snapshot(s, tags_of(&s.id))).collect()),
        next_token,
    })
}
