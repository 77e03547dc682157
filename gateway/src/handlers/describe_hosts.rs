use std::borrow::Cow;

use backend::dedicated::family;
use backend::maintenance::HostView;
use ec2api::{
    AvailableCapacity, DescribeHostsOutput, DescribeHostsRequest, Ec2Error, HostInstance, HostProperties,
    HostUtilization, StratusControlPlane, StratusHost, StratusReplica,
};
use storage::HostAllocationRecord;

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

/// A pool host as the caller may see it: with its allocation, if it is dedicated, and the
/// operator's details (URI, utilization) for admins only.
struct Seen {
    view: HostView,
    allocation: Option<HostAllocationRecord>,
    admin: bool,
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

fn fields<'a>(seen: &'a Seen, name: &str) -> Vec<Cow<'a, str>> {
    let view = &seen.view;
    let allocation = seen.allocation.as_ref();
    match name {
        "availability-zone" => one(&view.host.zone),
        "state" => one(state(view)),
        "host-maintenance" => one(on_off(view.maintenance)),
        // An undedicated host takes any instance of default tenancy, as if auto-placed.
        "auto-placement" => one(on_off(allocation.is_none_or(|a| a.auto_placement))),
        "instance-type" => match allocation.and_then(|a| a.instance_type.as_deref()) {
            Some(t) => one(t),
            None => view.instances.iter().map(|r| Cow::Borrowed(r.instance_type.as_str())).collect(),
        },
        _ => vec![],
    }
}

fn shape(seen: &Seen, tags: &[(String, String)]) -> StratusHost {
    let (view, allocation) = (&seen.view, seen.allocation.as_ref());
    let (host, usage) = (&view.host, &view.usage);
    let vcpu_room = usage.vcpu_capacity() as u64;
    let memory_room = usage.memory_capacity_mib() as u64;
    let running = view.instances.iter().filter(|r| r.state == storage::InstanceState::Running).count();
    StratusHost {
        host_id: Some(host.id.clone()),
        availability_zone: Some(host.zone.clone()),
        state: Some(state(view).into()),
        host_maintenance: Some(if view.maintenance { "on" } else { "off" }.into()),
        auto_placement: Some(on_off(allocation.is_none_or(|a| a.auto_placement)).into()),
        host_recovery: Some(on_off(allocation.is_some_and(|a| a.host_recovery)).into()),
        allocation_time: allocation.map(|a| super::timestamp(a.allocated_ms)),
        owner_id: allocation.map(|a| a.account.clone()),
        tags: Some(super::tag_list(tags)),
        host_properties: Some(HostProperties {
            cores: int(u64::from(usage.vcpus)),
            sockets: Some(1),
            total_v_cpus: int(vcpu_room),
            instance_family: allocation.and_then(|a| {
                a.instance_family.clone().or_else(|| a.instance_type.as_deref().map(|t| family(t).to_owned()))
            }),
            instance_type: allocation.and_then(|a| a.instance_type.clone()),
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
        uri: seen.admin.then(|| host.config.uri.clone()),
        utilization: seen.admin.then(|| HostUtilization {
            cpu_percent: Some((host.load() * 1000.0).round() / 10.0),
            memory_used_mi_b: long(usage.used_memory_mib),
            memory_free_mi_b: long(memory_room.saturating_sub(usage.used_memory_mib)),
            disk_used_mi_b: long(usage.used_disk_mib),
            disk_free_mi_b: usage.disk_mib.and_then(|d| long(d.saturating_sub(usage.used_disk_mib))),
            instances_running: int(running as u64),
            reachable: host.reachable(),
        }),
    }
}

/// The pool's hosts for admin accounts (EC2's shape plus utilization and URI); the hosts
/// dedicated to the caller for other accounts (AllocateHosts), as on EC2.
pub async fn handle(ctx: &Ctx, req: DescribeHostsRequest) -> Result<DescribeHostsOutput, Ec2Error> {
    let describe = Describe::of(ctx, "DescribeHosts")
        .ids(req.host_ids, backend::ResourceKind::Host)?
        .filters(req.filter.as_deref(), FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 500)?;
    let (account, admin) = (ctx.account().to_owned(), ctx.principal.admin);
    let (seen, tags) = ctx
        .snapshot(move |b| {
            let mut allocations = b.host_allocations()?;
            let seen: Vec<Seen> = b
                .host_views()?
                .into_iter()
                .map(|view| {
                    let allocation = allocations.remove(&view.host.id);
                    Seen { view, allocation, admin }
                })
                .filter(|s| admin || s.allocation.as_ref().is_some_and(|a| a.account == account))
                .collect();
            let tags = b.tags_of(&account, seen.iter().map(|s| s.view.host.id.as_str()))?;
            Ok((seen, tags))
        })
        .await?;
    // Apart from the snapshot: the leases are read on connections of their own.
    let control_plane = if admin { Some(ctx.call(|b| b.control_plane()).await?) } else { None };
    let tagged = seen.iter().map(|s| (s, tags.get(&s.view.host.id).map_or(NO_TAGS, Vec::as_slice)));
    let (items, next_token) = describe.page(tagged, |s| &s.view.host.id, fields, |_| true)?;
    Ok(DescribeHostsOutput {
        hosts: Some(items.into_iter().map(|(s, tags)| shape(s, tags)).collect()),
        next_token,
        control_plane: control_plane.map(control_plane_shape),
    })
}

/// Admins see the Stratus processes too: with several replicas, which serve and which leads.
fn control_plane_shape(plane: backend::leadership::ControlPlane) -> StratusControlPlane {
    StratusControlPlane {
        store: Some(plane.store.into()),
        leader_epoch: plane.leader.as_ref().map(|(_, epoch)| *epoch),
        leader_id: plane.leader.map(|(id, _)| id),
        replicas: Some(
            plane
                .replicas
                .into_iter()
                .map(|r| StratusReplica {
                    replica_id: Some(r.id),
                    state: Some(r.state.into()),
                    last_seen: Some(super::timestamp(r.last_seen_ms)),
                })
                .collect(),
        ),
    }
}
