use std::borrow::Cow;

use backend::maintenance::HostView;
use ec2api::{
    AvailableCapacity, DescribeHostsOutput, DescribeHostsRequest, Ec2Error, HostInstance, HostProperties,
    HostUtilization, StratusHost,
};

use super::describe::Describe;
use super::{int, long, one, NO_TAGS};
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

fn shape(view: &HostView) -> StratusHost {
    let (host, usage) = (&view.host, &view.usage);
    let vcpu_room = usage.vcpu_capacity() as u64;
    let memory_room = usage.memory_capacity_mib() as u64;
    let running = view.instances.iter().filter(|r| r.state == storage::InstanceState::Running).count();
    StratusHost {
        host_id: Some(host.id.clone()),
        availability_zone: Some(host.zone.clone()),
        state: Some(state(view).into()),
        host_maintenance: Some(if view.maintenance { "on" } else { "off" }.into()),
        auto_placement: Some("on".into()),
        host_recovery: Some("off".into()),
        host_properties: Some(HostProperties {
            cores: int(u64::from(usage.vcpus)),
            sockets: Some(1),
            total_v_cpus: int(vcpu_room),
            instance_family: None,
            instance_type: None,
        }),
        available_capacity: Some(AvailableCapacity {
            available_v_cpus: int(vcpu_room.saturating_sub(u64::from(usage.used_vcpus))),
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
            memory_used_mi_b: long(usage.used_memory_mib),
            memory_free_mi_b: long(memory_room.saturating_sub(usage.used_memory_mib)),
            disk_used_mi_b: long(usage.used_disk_mib),
            disk_free_mi_b: usage.disk_mib.and_then(|d| long(d.saturating_sub(usage.used_disk_mib))),
            instances_running: int(running as u64),
            reachable: host.reachable(),
        }),
        ..Default::default()
    }
}

/// The pool's hosts for admin accounts (EC2's shape plus utilization and URI); other accounts
/// have no dedicated hosts, as on EC2.
pub async fn handle(ctx: &Ctx, req: DescribeHostsRequest) -> Result<DescribeHostsOutput, Ec2Error> {
    let describe = Describe::of(ctx, "DescribeHosts")
        .ids(req.host_ids, backend::ResourceKind::Host)?
        .filters(req.filter.as_deref(), FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 500)?;
    let views = if ctx.principal.admin { ctx.call(|b| b.host_views()).await? } else { vec![] };
    let (items, next_token) = describe.page(views.iter().map(|v| (v, NO_TAGS)), |v| &v.host.id, fields, |_| true)?;
    Ok(DescribeHostsOutput { hosts: Some(items.into_iter().map(|(v, _)| shape(v)).collect()), next_token })
}
