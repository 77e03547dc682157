use std::borrow::Cow;

use backend::monitoring::Checks;
use ec2api::{
    DescribeInstanceStatusOutput, DescribeInstanceStatusRequest, Ec2Error, InstanceStatus, InstanceStatusDetails,
    InstanceStatusSummary,
};
use storage::{InstanceRecord, InstanceState};

use super::describe::Describe;
use super::shapes::state;
use super::{one, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &[
    "availability-zone",
    "instance-state-name",
    "instance-state-code",
    "instance-status.status",
    "system-status.status",
];

/// A record with its computed statuses.
struct Statuses<'r> {
    record: &'r InstanceRecord,
    system: &'static str,
    instance: &'static str,
}

fn fields<'a>(item: &'a Statuses<'_>, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "availability-zone" => one(&item.record.zone),
        "instance-state-name" => one(item.record.state.name()),
        "instance-state-code" => one(item.record.state.code().to_string()),
        "instance-status.status" => one(item.instance),
        "system-status.status" => one(item.system),
        _ => vec![],
    }
}

/// The checks of the monitoring's last sample ([`backend::monitoring::status_checks`]), the
/// same that its `StatusCheckFailed` metrics record: the system check passes while the host
/// answers and knows the domain, the instance check while the domain runs. A running instance
/// not sampled yet is `initializing`; one whose host the sweep finds impaired is impaired.
fn statuses(record: &InstanceRecord, host_impaired: bool, checks: Option<Checks>) -> (&'static str, &'static str) {
    match (record.state, checks) {
        (InstanceState::Running, _) if host_impaired => ("impaired", "insufficient-data"),
        (InstanceState::Running, None) => ("initializing", "initializing"),
        (InstanceState::Running, Some(checks)) => (
            if checks.system_ok { "ok" } else { "impaired" },
            match checks.instance_ok {
                Some(true) => "ok",
                Some(false) => "impaired",
                None => "insufficient-data",
            },
        ),
        (InstanceState::Pending, _) => ("initializing", "initializing"),
        _ => ("not-applicable", "not-applicable"),
    }
}

fn statuses_of(b: &backend::Backend, record: &InstanceRecord) -> (&'static str, &'static str) {
    statuses(record, b.host_impaired(record), b.status_checks(&record.id))
}

fn summary(status: &str, check: &str) -> InstanceStatusSummary {
    InstanceStatusSummary {
        status: Some(status.to_owned()),
        details: Some(vec![InstanceStatusDetails {
            name: Some(check.to_owned()),
            status: Some(
                match status {
                    "ok" => "passed",
                    "impaired" => "failed",
                    "initializing" => "initializing",
                    _ => "insufficient-data",
                }
                .to_owned(),
            ),
            impaired_since: None,
        }]),
    }
}

pub async fn handle(ctx: &Ctx, req: DescribeInstanceStatusRequest) -> Result<DescribeInstanceStatusOutput, Ec2Error> {
    let all = req.include_all_instances.unwrap_or(false);
    let (items, next_token) = Describe::of(ctx, "DescribeInstanceStatus")
        .ids(req.instance_ids, backend::ResourceKind::Instance)?
        .filters(req.filters.as_deref(), FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?
        .list_by::<InstanceRecord>(ctx, move |b, filters, record, _| {
            let (system, instance) = statuses_of(b, record);
            let item = Statuses { record, system, instance };
            (all || record.state == InstanceState::Running)
                && filters.matches(&Row { item: &item, tags: NO_TAGS, fields })
        })
        .await?;
    let instance_statuses = items
        .into_iter()
        .map(|i| {
            let (system, instance) = statuses_of(&ctx.backend, &i.record);
            InstanceStatus {
                instance_id: Some(i.record.id.clone()),
                availability_zone: Some(i.record.zone.clone()),
                instance_state: Some(state(i.record.state)),
                system_status: Some(summary(system, "reachability")),
                instance_status: Some(summary(instance, "reachability")),
                events: Some(vec![]),
                ..Default::default()
            }
        })
        .collect();
    Ok(DescribeInstanceStatusOutput { instance_statuses: Some(instance_statuses), next_token })
}
