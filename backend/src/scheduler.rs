//! Placement: which hosts get the instances of one request.
//!
//! A pure function of host snapshots and the demand: first filter (host up, right zone,
//! room for the demand under the host's overcommit ratios), then rank by the policy, one
//! instance at a time, charging each choice to its host before the next. A request for N
//! instances is one decision: callers get as many placements as fit and decide themselves
//! whether that is enough (EC2's all-or-nothing `MinCount`).

use serde::Deserialize;

/// How to rank the hosts that fit, after OpenNebula's policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Fill the busiest host first, to keep others empty (OpenNebula's packing).
    #[default]
    Pack,
    /// Put each instance on the emptiest host (striping).
    Spread,
    /// Prefer the host whose CPUs are least used right now (load rank), then the emptiest.
    LoadAware,
}

/// What the scheduler knows of one host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSnapshot {
    pub id: String,
    pub zone: String,
    /// Up and accepting new instances.
    pub schedulable: bool,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Disk for instance files; `None` when the host does not count it.
    pub disk_mib: Option<u64>,
    pub cpu_ratio: f64,
    pub memory_ratio: f64,
    pub used_vcpus: u32,
    pub used_memory_mib: u64,
    pub used_disk_mib: u64,
    /// Measured CPU use, 0.0 (idle) to 1.0 (every CPU busy).
    pub load: f64,
}

/// What one instance needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_mib: u64,
    /// `None`: any zone.
    pub zone: Option<String>,
}

impl HostSnapshot {
    /// vCPUs the host may hand out, overcommit included.
    pub fn vcpu_capacity(&self) -> f64 {
        f64::from(self.vcpus) * self.cpu_ratio
    }

    /// Memory the host may hand out, overcommit included.
    pub fn memory_capacity_mib(&self) -> f64 {
        self.memory_mib as f64 * self.memory_ratio
    }

    fn fits(&self, demand: &Demand) -> bool {
        let cpu_room = self.vcpu_capacity() - f64::from(self.used_vcpus);
        let memory_room = self.memory_capacity_mib() - self.used_memory_mib as f64;
        let disk_ok = self.disk_mib.is_none_or(|disk| self.used_disk_mib + demand.disk_mib <= disk);
        self.schedulable
            && demand.zone.as_ref().is_none_or(|zone| *zone == self.zone)
            && f64::from(demand.vcpus) <= cpu_room
            && demand.memory_mib as f64 <= memory_room
            && disk_ok
    }

    /// How full the host is, by its scarcer resource, as a fraction of its capacity.
    fn fullness(&self) -> f64 {
        let cpu = f64::from(self.used_vcpus) / self.vcpu_capacity().max(1.0);
        let memory = self.used_memory_mib as f64 / self.memory_capacity_mib().max(1.0);
        cpu.max(memory)
    }

    fn charge(&mut self, demand: &Demand) {
        self.used_vcpus += demand.vcpus;
        self.used_memory_mib += demand.memory_mib;
        self.used_disk_mib += demand.disk_mib;
    }
}

/// Places up to `count` instances; the answer holds an index into `hosts` per placed
/// instance, in order, and is shorter than `count` when the pool runs out of room.
pub fn place(hosts: &[HostSnapshot], demand: &Demand, count: usize, policy: Policy) -> Vec<usize> {
    let mut hosts = hosts.to_vec();
    let mut chosen = Vec::with_capacity(count);
    for _ in 0..count {
        let best = hosts.iter().enumerate().filter(|(_, h)| h.fits(demand)).min_by(|(_, a), (_, b)| {
            let rank = match policy {
                Policy::Pack => b.fullness().total_cmp(&a.fullness()),
                Policy::Spread => a.fullness().total_cmp(&b.fullness()),
                Policy::LoadAware => a.load.total_cmp(&b.load).then(a.fullness().total_cmp(&b.fullness())),
            };
            // Ties go to the lower id, so that equal hosts are chosen predictably.
            rank.then_with(|| a.id.cmp(&b.id))
        });
        let Some((index, _)) = best else { break };
        hosts[index].charge(demand);
        chosen.push(index);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, zone: &str, vcpus: u32, memory_mib: u64) -> HostSnapshot {
        HostSnapshot {
            id: id.into(),
            zone: zone.into(),
            schedulable: true,
            vcpus,
            memory_mib,
            disk_mib: None,
            cpu_ratio: 1.0,
            memory_ratio: 1.0,
            used_vcpus: 0,
            used_memory_mib: 0,
            used_disk_mib: 0,
            load: 0.0,
        }
    }

    fn demand(vcpus: u32, memory_mib: u64) -> Demand {
        Demand { vcpus, memory_mib, disk_mib: 0, zone: None }
    }

    #[test]
    fn pack_fills_one_host_before_the_next() {
        let hosts = [host("h-a", "z", 4, 4096), host("h-b", "z", 4, 4096)];
        assert_eq!(place(&hosts, &demand(1, 512), 5, Policy::Pack), [0, 0, 0, 0, 1]);
    }

    #[test]
    fn pack_prefers_the_busier_host() {
        let mut busy = host("h-b", "z", 4, 4096);
        busy.used_vcpus = 2;
        let hosts = [host("h-a", "z", 4, 4096), busy];
        assert_eq!(place(&hosts, &demand(1, 512), 3, Policy::Pack), [1, 1, 0]);
    }

    #[test]
    fn spread_alternates() {
        let hosts = [host("h-a", "z", 4, 4096), host("h-b", "z", 4, 4096), host("h-c", "z", 4, 4096)];
        assert_eq!(place(&hosts, &demand(1, 512), 4, Policy::Spread), [0, 1, 2, 0]);
    }

    #[test]
    fn load_aware_prefers_the_idle_host() {
        let mut loaded = host("h-a", "z", 4, 4096);
        loaded.load = 0.9;
        let hosts = [loaded, host("h-b", "z", 4, 4096)];
        assert_eq!(place(&hosts, &demand(1, 512), 1, Policy::LoadAware), [1]);
    }

    #[test]
    fn overcommit_ratios_bound_each_host() {
        let mut h = host("h-a", "z", 2, 1024);
        h.cpu_ratio = 4.0;
        // 8 vCPUs of room, but memory (1024 MiB at ratio 1) allows only 4 × 256 MiB.
        assert_eq!(place(&[h.clone()], &demand(2, 256), 10, Policy::Pack).len(), 4);
        h.memory_ratio = 2.0;
        assert_eq!(place(&[h.clone()], &demand(2, 256), 10, Policy::Pack).len(), 4, "now vCPUs bind: 8 / 2");
        assert_eq!(place(&[h], &demand(1, 256), 10, Policy::Pack).len(), 8);
    }

    #[test]
    fn zones_down_hosts_and_disk_filter() {
        let mut down = host("h-a", "z1", 8, 8192);
        down.schedulable = false;
        let mut small_disk = host("h-c", "z2", 8, 8192);
        small_disk.disk_mib = Some(1000);
        let hosts = [down, host("h-b", "z1", 8, 8192), small_disk];
        let mut d = demand(1, 256);
        d.zone = Some("z1".into());
        assert_eq!(place(&hosts, &d, 2, Policy::Spread), [1, 1]);
        d.zone = Some("z2".into());
        d.disk_mib = 400;
        assert_eq!(place(&hosts, &d, 5, Policy::Spread), [2, 2], "two 400 MiB disks fit in 1000");
        d.zone = Some("nowhere".into());
        assert!(place(&hosts, &d, 1, Policy::Pack).is_empty());
    }

    #[test]
    fn a_demand_larger_than_any_host_places_nothing() {
        let hosts = [host("h-a", "z", 2, 1024)];
        assert!(place(&hosts, &demand(4, 512), 1, Policy::Pack).is_empty());
        assert!(place(&hosts, &demand(1, 2048), 1, Policy::Pack).is_empty());
    }
}
