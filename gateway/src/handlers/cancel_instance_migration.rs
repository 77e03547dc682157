use ec2api::{CancelInstanceMigrationOutput, CancelInstanceMigrationRequest, Ec2Error};

use super::shapes::migration;
use crate::context::Ctx;

/// Stratus extension (admin): the migration stops at its next progress check; the guest stays
/// on its source host.
pub async fn handle(ctx: &Ctx, req: CancelInstanceMigrationRequest) -> Result<CancelInstanceMigrationOutput, Ec2Error> {
    let record = ctx.call(move |b| b.cancel_migration(&req.migration_id)).await?;
    Ok(CancelInstanceMigrationOutput { migration: Some(migration(&record)) })
}
