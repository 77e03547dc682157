use std::borrow::Cow;

use ec2api::filter::FilterSet;
use ec2api::pagination::PageRequest;
use ec2api::{
    DescribeInstanceStatusOutput, DescribeInstanceStatusRequest, Ec2Error, InstanceStatus, InstanceStatusDetails,
    InstanceStatusSummary,
};
use storage::{InstanceRecord, InstanceState};

use super::shapes::state;
use super::{check_ids, one, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &[
    "availability-zone",
    "instance-state-name",
    "instance-state-code",
    "instance-status.status",
    "system-status.status",
];

/// A record with its computed statuses.
struct Item {
    record: InstanceRecord,
    system: &'static str,
    instance: &'static str,
}

fn fields<'a>(item: &'a Item, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "availability-zone" => one(&item.record.zone),
        "instance-state-name" => one(item.record.state.name()),
        "instance-state-code" => one(item.record.state.code().to_string()),
        "instance-status.status" => one(item.instance),
        "system-status.status" => one(item.system),
        _ => vec![],
    }
}

/// System status follows the host; instance status follows the guest: `ok` once running,
/// `initializing` while pending, `not-applicable` when not running.
fn statuses(record: &InstanceRecord, host_impaired: bool) -> (&'static str, &'static str) {
    match record.state {
        InstanceState::Running if host_impaired => ("impaired", "impaired"),
        InstanceState::Running => ("ok", "ok"),
        InstanceState::Pending => ("initializing", "initializing"),
        _ => ("not-applicable", "not-applicable"),
    }
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
    let ids = req.instance_ids.unwrap_or_default();
    check_ids(&ids, backend::ResourceKind::Instance)?;
    let filters = FilterSet::new(req.filters.as_deref(), FILTERS)?;
    let page = PageRequest::new(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let all = req.include_all_instances.unwrap_or(false);
    let account = ctx.account().to_owned();
    let items = ctx
        .call(move |b| {
            Ok(b.instances(&account)?
                .into_iter()
                .map(|record| {
                    let (system, instance) = statuses(&record, b.host_impaired(&record));
                    Item { record, system, instance }
                })
                .collect::<Vec<_>>())
        })
        .await?;
    super::ensure_found(backend::ResourceKind::Instance, &ids, |id| items.iter().any(|i| &i.record.id == id))?;
    let matching: Vec<Item> = items
        .into_iter()
        .filter(|i| ids.is_empty() || ids.contains(&i.record.id))
        .filter(|i| all || i.record.state == InstanceState::Running)
        .filter(|i| filters.matches(&Row { item: i, tags: NO_TAGS, fields }))
        .collect();
    let (items, next_token) = page.page(matching, |i| &i.record.id);
    let instance_statuses = items
        .into_iter()
        .map(|i| InstanceStatus {
            instance_id: Some(i.record.id.clone()),
            availability_zone: Some(i.record.zone.clone()),
            instance_state: Some(state(i.record.state)),
            system_status: Some(summary(i.system, "reachability")),
            instance_status: Some(summary(i.instance, "reachability")),
            events: Some(vec![]),
            ..Default::default()
        })
        .collect();
    Ok(DescribeInstanceStatusOutput { instance_statuses: Some(instance_statuses), next_token })
}
