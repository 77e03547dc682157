use backend::hypervisor::MigrationOptions;
use ec2api::{Ec2Error, MigrateInstanceOutput, MigrateInstanceRequest};

use super::check_instance_ids;
use super::shapes::migration;
use crate::context::Ctx;

/// A non-negative option, or `InvalidParameterValue` naming it.
fn positive(name: &str, value: Option<i64>) -> Result<Option<u64>, Ec2Error> {
    value
        .map(|v| {
            u64::try_from(v).map_err(|_| Ec2Error::invalid_value(name, &v.to_string(), "Expected a positive number."))
        })
        .transpose()
}

/// Stratus extension (admin): answers the queued migration at once.
pub async fn handle(ctx: &Ctx, req: MigrateInstanceRequest) -> Result<MigrateInstanceOutput, Ec2Error> {
    check_instance_ids(std::slice::from_ref(&req.instance_id))?;
    let options = MigrationOptions {
        max_downtime_ms: positive("MaxDowntimeMillis", req.max_downtime_millis)?,
        bandwidth_mibps: positive("BandwidthMiBps", req.bandwidth_mi_bps)?,
        auto_converge: req.auto_converge.unwrap_or(false),
        allow_post_copy: req.allow_post_copy.unwrap_or(false),
        timeout_secs: positive("TimeoutSeconds", req.timeout_seconds)?,
    };
    let record =
        ctx.call(move |b| b.migrate_instance(&req.instance_id, req.target_host_id.as_deref(), options)).await?;
    Ok(MigrateInstanceOutput { migration: Some(migration(&record)) })
}
