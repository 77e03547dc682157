use std::borrow::Cow;

use backend::maintenance::HostView;
use ec2api::filter::FilterSet;
use ec2api::pagination::PageRequest;
use ec2api::{
    AvailableCapacity, DescribeHostsOutput, DescribeHostsRequest, Ec2Error, HostInstance, HostProperties,
    HostUtilization, StratusHost,
};

use super::{one, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &["availability-zone", "state", "host-maintenance", "instance-type", "auto-placement"];

/// EC2's allocation state: a host that stops answering is `under-assessment`.
fn state(view: &HostView) -> &'static str {
    if view.host.reachable() == Some(false) {
        "under-assessment"
    } else {
        "available"
    }
}

fn fields<'a>(view: &'a HostView, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "availability-zone" => one(&view.host.zone),
        "state" => one(state(view)),
        "host-maintenance" => one(if view.maintenance { "on" } else { "off" }),
        "auto-placement" => one("on"),
        "instance-type" => view.instances.iter().map(|r| Cow::Borrowed(r.instance_type.as_str())).collect(),
        _ => vec![],
    }
}

fn mib(v: u64) -> Option<i64> {
    Some(i64::try_from(v).unwrap_or(i64::MAX))
}

fn shape(view: &HostView) -> StratusHost {
    let host = &view.host;
    let capacity = host.capacity().unwrap_or(backend::hypervisor::HostInfo { vcpus: 0, memory_mib: 0 });
    let vcpu_room = (f64::from(capacity.vcpus) * host.config.cpu_ratio) as u64;
    let memory_room = (capacity.memory_mib as f64 * host.config.memory_ratio) as u64;
    let used_vcpus: u64 = view.instances.iter().map(|r| u64::from(r.vcpus)).sum();
    let used_memory: u64 = view.instances.iter().map(|r| r.memory_mib).sum();
    let used_disk: u64 = view.instances.iter().map(|r| r.root_disk_bytes.div_ceil(1 << 20)).sum();
    let running = view.instances.iter().filter(|r| r.state == storage::InstanceState::Running).count();
    StratusHost {
        host_id: Some(host.id.clone()),
        availability_zone: Some(host.zone.clone()),
        state: Some(state(view).into()),
        host_maintenance: Some(if view.maintenance { "on" } else { "off" }.into()),
        auto_placement: Some("on".into()),
        host_recovery: Some("off".into()),
        host_properties: Some(HostProperties {
            cores: Some(capacity.vcpus as i32),
            sockets: Some(1),
            total_v_cpus: Some(vcpu_room.min(i32::MAX as u64) as i32),
            instance_family: None,
            instance_type: None,
        }),
        available_capacity: Some(AvailableCapacity {
            available_v_cpus: Some(vcpu_room.saturating_sub(used_vcpus).min(i32::MAX as u64) as i32),
            available_instance_capacity: Some(vec![]),
        }),
        instances: Some(
            view.instances
                .iter()
                .map(|r| HostInstance {
                    instance_id: Some(r.id.clone()),
                    instance_type: Some(r.instance_type.clone()),
                    owner_id: Some(r.account.clone()),
                })
                .collect(),
        ),
        uri: Some(host.config.uri.clone()),
        utilization: Some(HostUtilization {
            cpu_percent: Some((host.load() * 1000.0).round() / 10.0),
            memory_used_mi_b: mib(used_memory),
            memory_free_mi_b: mib(memory_room.saturating_sub(used_memory)),
            disk_used_mi_b: mib(used_disk),
            disk_free_mi_b: host.config.disk_mib.map(|d| d.saturating_sub(used_disk)).and_then(mib),
            instances_running: Some(running as i32),
            reachable: host.reachable(),
        }),
        ..Default::default()
    }
}

/// The pool's hosts for admin accounts (EC2's shape plus utilization and URI); other accounts
/// have no dedicated hosts, as on EC2.
pub async fn handle(ctx: &Ctx, req: DescribeHostsRequest) -> Result<DescribeHostsOutput, Ec2Error> {
    let ids = req.host_ids.unwrap_or_default();
    let filters = FilterSet::new(req.filter.as_deref(), FILTERS)?;
    let page = PageRequest::new(req.max_results, req.next_token.as_deref(), 5, 500)?;
    if !ctx.principal.admin {
        if let Some(id) = ids.first() {
            return Err(Ec2Error::new("InvalidHostID.NotFound", format!("The host ID '{id}' does not exist")));
        }
        return Ok(DescribeHostsOutput { hosts: Some(vec![]), next_token: None });
    }
    let views = ctx.call(|b| b.host_views()).await?;
    if let Some(missing) = ids.iter().find(|id| !views.iter().any(|v| &v.host.id == *id)) {
        return Err(Ec2Error::new("InvalidHostID.NotFound", format!("The host ID '{missing}' does not exist")));
    }
    let matching: Vec<&HostView> = views
        .iter()
        .filter(|v| ids.is_empty() || ids.contains(&v.host.id))
        .filter(|v| filters.matches(&Row { item: *v, tags: NO_TAGS, fields }))
        .collect();
    let (items, next_token) = page.page(matching, |v| &v.host.id);
    Ok(DescribeHostsOutput { hosts: Some(items.into_iter().map(shape).collect()), next_token })
}
