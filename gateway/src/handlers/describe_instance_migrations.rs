use std::borrow::Cow;

use ec2api::{DescribeInstanceMigrationsOutput, DescribeInstanceMigrationsRequest, Ec2Error};
use storage::MigrationRecord;

use super::describe::Describe;
use super::one;
use super::shapes::migration;
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
    let instances = req.instance_ids.unwrap_or_default();
    let mut describe = Describe::of(ctx, "DescribeInstanceMigrations")
        .ids(req.migration_ids, backend::ResourceKind::Migration)?
        .filters(req.filters.as_deref(), FILTERS)?;
    describe.narrowed_by("instances", &instances);
    let describe = describe.paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let (items, next_token) = describe
        .list(ctx, fields, move |m: &MigrationRecord| instances.is_empty() || instances.contains(&m.instance_id))
        .await?;
    Ok(DescribeInstanceMigrationsOutput {
        migrations: Some(items.iter().map(|item| migration(&item.record)).collect()),
        next_token,
    })
}
