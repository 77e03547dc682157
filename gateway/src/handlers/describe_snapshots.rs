use std::borrow::Cow;

use ec2api::{DescribeSnapshotsOutput, DescribeSnapshotsRequest, Ec2Error};
use storage::SnapshotRecord;

use super::describe::Describe;
use super::one;
use super::shapes::snapshot;
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
    let owners = req.owner_ids.unwrap_or_default();
    let mut describe = Describe::of(ctx, "DescribeSnapshots")
        .ids(req.snapshot_ids, backend::ResourceKind::Snapshot)?
        .filters(req.filters.as_deref(), FILTERS)?;
    describe.narrowed_by("owners", &owners);
    let describe = describe.paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let owned = owners.is_empty() || owners.iter().any(|o| o == "self" || o == ctx.account());
    // Named ids are checked either way.
    let (items, next_token) = describe.list::<SnapshotRecord>(ctx, fields, |_| true).await?;
    let (items, next_token) = if owned { (items, next_token) } else { (vec![], None) };
    Ok(DescribeSnapshotsOutput {
        snapshots: Some(items.iter().map(|i| snapshot(&i.record, &i.tags)).collect()),
        next_token,
    })
}
