//! Host maintenance: take a host out of placement and drain it without stopping anything.
//!
//! 1. ModifyHosts `HostMaintenance=on` records the host's state in redb; from then on the
//!    scheduler skips it (launches, starts, migration targets).
//! 2. Every sweep, [`Backend::drain_step`] starts live migrations off each host in
//!    maintenance, at most [`DRAIN_CONCURRENCY`] at a time, with the scheduler choosing each
//!    target; an instance that fits nowhere is retried at the next sweep. All the state is in
//!    redb, so a drain goes on after a restart.
//! 3. `off` returns the host to placement; migrations already under way finish.

use std::collections::BTreeMap;

use storage::tables::HOST_STATES;
use storage::{HostStateRecord, InstanceRecord, InstanceState, MigrationOptions, MigrationStatus, Reads};

use crate::hosts::Host;
use crate::scheduler::HostSnapshot;
use crate::{now_ms, Backend, Error, ResourceKind, Result};

/// Live migrations a drain runs at once per host.
pub const DRAIN_CONCURRENCY: usize = 2;

/// A drain's migrations throttle a guest that dirties memory faster than it can be copied,
/// and give up after this long rather than hold a drain slot forever.
pub const DRAIN_TIMEOUT_SECS: u64 = 600;

/// After a failed drain migration, that instance waits this long before the next attempt.
pub const DRAIN_RETRY_MS: i64 = 60_000;

/// Which of a draining host's instances to migrate now: running ones not already moving, in
/// id order, up to the room `concurrency` leaves beside those in flight.
pub fn drain_candidates(on_host: &[&InstanceRecord], concurrency: usize) -> Vec<String> {
    let in_flight = on_host.iter().filter(|r| r.migration.is_some()).count();
    let mut ready: Vec<&str> = on_host
        .iter()
        .filter(|r| r.state == InstanceState::Running && r.migration.is_none())
        .map(|r| r.id.as_str())
        .collect();
    ready.sort_unstable();
    ready.into_iter().take(concurrency.saturating_sub(in_flight)).map(str::to_owned).collect()
}

/// A host as DescribeHosts shows it.
pub struct HostView {
    pub host: std::sync::Arc<Host>,
    pub maintenance: bool,
    /// Instances holding capacity on it (pending, running, stopping, shutting down).
    pub instances: Vec<InstanceRecord>,
    /// Its size and use as placement counts them (instances migrating here included).
    pub usage: HostSnapshot,
}

impl Backend {
    /// Hosts in maintenance, by id.
    pub fn maintenance_hosts(&self) -> Result<BTreeMap<String, bool>> {
        Ok(self
            .store()
            .read(|tx| tx.scan(&HOST_STATES, ""))?
            .into_iter()
            .map(|(id, state)| (id, state.maintenance))
            .collect())
    }

    /// ModifyHosts `HostMaintenance`.
    pub fn set_maintenance(&self, host_id: &str, on: bool) -> Result<()> {
        if self.hosts().get(host_id).is_none() {
            return Err(Error::ResourceNotFound { kind: ResourceKind::Host, id: host_id.to_owned() });
        }
        self.store().write(|tx| {
            tx.insert(&HOST_STATES, host_id, &HostStateRecord { maintenance: on, changed_ms: now_ms() })?;
            Ok::<_, Error>(())
        })
    }

    /// Every configured host with what runs on it.
    pub fn host_views(&self) -> Result<Vec<HostView>> {
        let maintenance = self.maintenance_hosts()?;
        let mut snapshots = self.host_snapshots();
        let records = self.store().read(|tx| {
            crate::instances::charge_usage(tx, &mut snapshots)?;
            let mut records = Vec::new();
            tx.for_each_live_instance(|_, r| records.push(r))?;
            Ok::<_, Error>(records)
        })?;
        Ok(self
            .hosts()
            .iter()
            .zip(snapshots)
            .map(|(host, usage)| HostView {
                host: host.clone(),
                maintenance: maintenance.get(&host.id).copied().unwrap_or(false),
                instances: records
                    .iter()
                    .filter(|r| r.host_id == host.id && r.state.holds_capacity())
                    .cloned()
                    .collect(),
                usage,
            })
            .collect())
    }

    /// One round of draining every host in maintenance (called by the sweep).
    pub(crate) fn drain_step(&self, records: &[InstanceRecord]) -> Result<()> {
        let maintenance = self.maintenance_hosts()?;
        if !maintenance.values().any(|on| *on) {
            return Ok(());
        }
        // Instances whose last drain attempt failed recently sit this round out.
        let now = now_ms();
        let resting: std::collections::BTreeSet<String> = self
            .migrations()?
            .into_iter()
            .filter(|m| m.status != MigrationStatus::Completed)
            .filter(|m| m.finished_ms.is_some_and(|t| now - t < DRAIN_RETRY_MS))
            .map(|m| m.instance_id)
            .collect();
        for (host_id, on) in maintenance {
            if !on || self.hosts().get(&host_id).is_none() {
                continue;
            }
            let on_host: Vec<&InstanceRecord> =
                records.iter().filter(|r| r.host_id == host_id && !resting.contains(&r.id)).collect();
            for id in drain_candidates(&on_host, DRAIN_CONCURRENCY) {
                let options = MigrationOptions {
                    auto_converge: true,
                    timeout_secs: Some(DRAIN_TIMEOUT_SECS),
                    ..Default::default()
                };
                match self.migrate_instance(&id, None, options) {
                    Ok(migration) => {
                        tracing::info!(host = %host_id, instance = %id, migration = %migration.id, "draining")
                    }
                    Err(Error::InsufficientCapacity(_)) => {
                        tracing::warn!(host = %host_id, instance = %id, "no room elsewhere yet; the drain waits")
                    }
                    Err(error) => tracing::warn!(host = %host_id, instance = %id, %error, "drain step failed"),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, state: InstanceState, migrating: bool) -> InstanceRecord {
        let json = serde_json::json!({
            "id": id, "account": "a", "reservation_id": "r", "image_id": "ami", "instance_type": "t3.nano",
            "vcpus": 2, "memory_mib": 512, "zone": "z", "host_id": "h", "domain_uuid": "u", "state": state,
            "state_reason": null, "state_transition_reason": "", "force_stop": false, "booted": true,
            "launch_time_ms": 0, "terminated_ms": null, "ami_launch_index": 0, "key_name": null, "user_data": null,
            "vpc_id": "v", "subnet_id": "s", "network_interface_id": "eni", "private_ip": "172.31.0.4",
            "mac": "52:54:00:00:00:01", "security_group_ids": [], "client_token": null,
            "disable_api_termination": false, "disable_api_stop": false, "shutdown_behavior": "stop",
            "ebs_optimized": false, "monitoring": false, "dir": "/d", "root_disk_bytes": 0,
            "migration": if migrating { Some("mig-1") } else { None },
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn drains_a_few_running_instances_at_a_time() {
        let a = record("i-a", InstanceState::Running, false);
        let b = record("i-b", InstanceState::Running, false);
        let c = record("i-c", InstanceState::Running, false);
        let moving = record("i-m", InstanceState::Running, true);
        let stopped = record("i-s", InstanceState::Stopped, false);
        assert_eq!(drain_candidates(&[&c, &a, &b, &stopped], 2), ["i-a", "i-b"]);
        assert_eq!(drain_candidates(&[&c, &a, &moving], 2), ["i-a"], "one slot left beside the one in flight");
        assert!(drain_candidates(&[&a, &moving, &moving], 2).is_empty());
        assert!(drain_candidates(&[&stopped], 2).is_empty(), "only running guests migrate");
    }
}
