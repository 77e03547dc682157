use std::borrow::Cow;

use ec2api::filter::FilterSet;
use ec2api::pagination::PageRequest;
use ec2api::{DescribeInstanceMigrationsOutput, DescribeInstanceMigrationsRequest, Ec2Error};
use storage::MigrationRecord;

use super::shapes::migration;
use super::{one, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &["migration-id", "instance-id", "status", "source-host-id", "target-host-id"];

fn fields<'a>(m: &'a MigrationRecord, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "migration-id" => one(&m.id),
        "instance-id" => one(&m.instance_id),
        "status" => one(m.status.name()),
        "source-host-id" => one(&m.source_host),
        "target-host-id" => one(&m.target_host),
        _ => vec![],
    }
}

/// Stratus extension (admin): ordered by id, paginated.
pub async fn handle(
    ctx: &Ctx,
    req: DescribeInstanceMigrationsRequest,
) -> Result<DescribeInstanceMigrationsOutput, Ec2Error> {
    let ids = req.migration_ids.unwrap_or_default();
    let instances = req.instance_ids.unwrap_or_default();
    let filters = FilterSet::new(req.filters.as_deref(), FILTERS)?;
    let page = PageRequest::new(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let all = ctx.call(|b| b.migrations()).await?;
    super::ensure_found(backend::ResourceKind::Migration, &ids, |id| all.iter().any(|m| &m.id == id))?;
    let mut matching: Vec<&MigrationRecord> = all
        .iter()
        .filter(|m| ids.is_empty() || ids.contains(&m.id))
        .filter(|m| instances.is_empty() || instances.contains(&m.instance_id))
        .filter(|m| filters.matches(&Row { item: *m, tags: NO_TAGS, fields }))
        .collect();
    matching.sort_by(|a, b| a.id.cmp(&b.id));
    let (items, next_token) = page.page(matching, |m| &m.id);
    Ok(DescribeInstanceMigrationsOutput { migrations: Some(items.into_iter().map(migration).collect()), next_token })
}
