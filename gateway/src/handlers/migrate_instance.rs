use backend::hypervisor::MigrationOptions;
use ec2api::{Ec2Error, MigrateInstanceOutput, MigrateInstanceRequest};

use super::check_ids;
use super::shapes::migration;
use crate::context::Ctx;

/// A non-negative option, or `InvalidParameterValue` naming it.
fn non_negative(name: &str, value: Option<i64>) -> Result<Option<u64>, Ec2Error> {
    value
        .map(|v| {
            u64::try_from(v)
                .map_err(|_| Ec2Error::invalid_value(name, &v.to_string(), "Expected a number of at least 0."))
        })
        .transpose()
}

/// Stratus extension (admin): answers the queued migration at once.
pub async fn handle(ctx: &Ctx, req: MigrateInstanceRequest) -> Result<MigrateInstanceOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.instance_id), backend::ResourceKind::Instance)?;
    let options = MigrationOptions {
        max_downtime_ms: non_negative("MaxDowntimeMillis", req.max_downtime_millis)?,
        bandwidth_mibps: non_negative("BandwidthMiBps", req.bandwidth_mi_bps)?,
        auto_converge: req.auto_converge.unwrap_or(false),
        allow_post_copy: req.allow_post_copy.unwrap_or(false),
        timeout_secs: non_negative("TimeoutSeconds", req.timeout_seconds)?,
    };
    let record =
        ctx.call(move |b| b.migrate_instance(&req.instance_id, req.target_host_id.as_deref(), options)).await?;
    Ok(MigrateInstanceOutput { migration: Some(migration(&record)) })
}
