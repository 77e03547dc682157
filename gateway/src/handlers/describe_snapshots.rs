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
        "encrypted" => one(s.encryption.is_some().to_string()),
        _ => vec![],
    }
}

/// `OwnerId.N`: `self` or account ids (`amazon` owns nothing here).
fn owned_by(s: &SnapshotRecord, owners: &[String], caller: &str) -> bool {
    owners.is_empty() || owners.iter().any(|o| if o == "self" { s.account == caller } else { s.account == *o })
}

/// `RestorableBy.N`: `all` (public snapshots), `self` (what the caller may make volumes from),
/// account ids (what that account may use, of what the caller sees).
/// Whom another owner shares with is that owner's to know: for a snapshot the caller does not
/// own, another account counts only as its owner or through `all`.
fn restorable_by(s: &SnapshotRecord, users: &[String], caller: &str) -> bool {
    users.is_empty()
        || users.iter().any(|u| match u.as_str() {
            "all" => s.public,
            "self" => s.usable_by(caller),
            account if s.account == caller => s.usable_by(account),
            account => s.public || s.account == account,
        })
}

/// The snapshots the caller may see: its own, the public ones and those shared with it, as on
/// EC2 (which is why clients pass `OwnerId=self`).
pub async fn handle(ctx: &Ctx, req: DescribeSnapshotsRequest) -> Result<DescribeSnapshotsOutput, Ec2Error> {
    let owners = req.owner_ids.unwrap_or_default();
    let users = req.restorable_by_user_ids.unwrap_or_default();
    let mut describe = Describe::of(ctx, "DescribeSnapshots")
        .ids(req.snapshot_ids, backend::ResourceKind::Snapshot)?
        .filters(req.filters.as_deref(), FILTERS)?;
    describe.narrowed_by("owners", &owners);
    describe.narrowed_by("users", &users);
    let describe = describe.paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let caller = ctx.account().to_owned();
    let (items, next_token) = describe
        .list::<SnapshotRecord>(ctx, fields, move |s| {
            owned_by(s, &owners, &caller) && restorable_by(s, &users, &caller)
        })
        .await?;
    Ok(DescribeSnapshotsOutput {
        snapshots: Some(items.iter().map(|i| snapshot(&i.record, &i.tags)).collect()),
        next_token,
    })
}
