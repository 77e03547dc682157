use ec2api::{Ec2Error, StartInstanceMigrationPostCopyOutput, StartInstanceMigrationPostCopyRequest};

use super::shapes::migration;
use crate::context::Ctx;

/// Stratus extension (admin): the migration's monitor switches it to post-copy at its next
/// progress check.
pub async fn handle(
    ctx: &Ctx,
    req: StartInstanceMigrationPostCopyRequest,
) -> Result<StartInstanceMigrationPostCopyOutput, Ec2Error> {
    let record = ctx.call(move |b| b.start_migration_post_copy(&req.migration_id)).await?;
    Ok(StartInstanceMigrationPostCopyOutput { migration: Some(migration(&record)) })
}
