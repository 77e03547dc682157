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

/// A migration's options as MigrateInstance and EstimateInstanceMigration take them.
pub fn options(
    max_downtime_millis: Option<i64>,
    bandwidth_mi_bps: Option<i64>,
    auto_converge: Option<bool>,
    allow_post_copy: Option<bool>,
    timeout_seconds: Option<i64>,
) -> Result<MigrationOptions, Ec2Error> {
    Ok(MigrationOptions {
        max_downtime_ms: non_negative("MaxDowntimeMillis", max_downtime_millis)?,
        bandwidth_mibps: non_negative("BandwidthMiBps", bandwidth_mi_bps)?,
        auto_converge: auto_converge.unwrap_or(false),
        allow_post_copy: allow_post_copy.unwrap_or(false),
        timeout_secs: non_negative("TimeoutSeconds", timeout_seconds)?,
    })
}

/// Stratus extension (admin): answers the queued migration at once.
pub async fn handle(ctx: &Ctx, req: MigrateInstanceRequest) -> Result<MigrateInstanceOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.instance_id), backend::ResourceKind::Instance)?;
    let options = options(
        req.max_downtime_millis,
        req.bandwidth_mi_bps,
        req.auto_converge,
        req.allow_post_copy,
        req.timeout_seconds,
    )?;
    let record =
        ctx.call(move |b| b.migrate_instance(&req.instance_id, req.target_host_id.as_deref(), options)).await?;
    Ok(MigrateInstanceOutput { migration: Some(migration(&record)) })
}
