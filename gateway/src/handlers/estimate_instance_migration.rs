use ec2api::{Ec2Error, EstimateInstanceMigrationOutput, EstimateInstanceMigrationRequest, InstanceMigrationEstimate};

use super::check_ids;
use crate::context::Ctx;

/// Stratus extension (admin): measures the guest on its host for a second (on the blocking
/// pool) and answers the prediction; nothing is recorded or moved.
pub async fn handle(
    ctx: &Ctx,
    req: EstimateInstanceMigrationRequest,
) -> Result<EstimateInstanceMigrationOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.instance_id), backend::ResourceKind::Instance)?;
    let options = super::migrate_instance::options(
        req.max_downtime_millis,
        req.bandwidth_mi_bps,
        req.auto_converge,
        req.allow_post_copy,
        req.timeout_seconds,
    )?;
    let plan =
        ctx.call(move |b| b.estimate_migration(&req.instance_id, req.target_host_id.as_deref(), &options)).await?;
    let long = |v: u64| Some(i64::try_from(v).unwrap_or(i64::MAX));
    let (inputs, estimate) = (&plan.inputs, &plan.estimate);
    Ok(EstimateInstanceMigrationOutput {
        migration_estimate: Some(InstanceMigrationEstimate {
            instance_id: Some(plan.instance_id.clone()),
            source_host_id: Some(plan.source_host.clone()),
            target_host_id: Some(plan.target_host.clone()),
            memory_bytes: long(inputs.memory_bytes),
            resident_bytes: long(plan.resident_bytes),
            first_pass_bytes: long(inputs.resident_bytes),
            first_pass_read_millis: long(inputs.scan_ms),
            disk_bytes: long(inputs.disk_bytes),
            dirty_rate_bytes_per_second: long(inputs.dirty_rate_bytes_per_sec),
            bandwidth_bytes_per_second: long(inputs.bandwidth_bytes_per_sec),
            bandwidth_source: Some(plan.bandwidth_source.name().to_owned()),
            setup_millis: long(inputs.setup_ms),
            predicted_ending: Some(estimate.ending.name().to_owned()),
            precopy_converges: Some(estimate.precopy_converges),
            predicted_iterations: long(u64::from(estimate.iterations())),
            predicted_total_millis: estimate.total_ms.and_then(long),
            predicted_downtime_millis: long(estimate.downtime_ms),
            predicted_throttle_percent: long(u64::from(estimate.throttle_percent)),
        }),
    })
}
