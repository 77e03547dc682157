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
}

/// A host as one request sees it: its snapshot plus the `placed` instances this request has
/// put there so far (the snapshots themselves are never copied or changed).
struct Charged<'a> {
    host: &'a HostSnapshot,
    vcpus: f64,
    memory_mib: f64,
    disk_mib: u64,
}

impl<'a> Charged<'a> {
    fn new(host: &'a HostSnapshot, demand: &Demand, placed: u32) -> Self {
        Self {
            host,
            vcpus: f64::from(host.used_vcpus) + f64::from(placed) * f64::from(demand.vcpus),
            memory_mib: host.used_memory_mib as f64 + f64::from(placed) * demand.memory_mib as f64,
            disk_mib: host.used_disk_mib + u64::from(placed) * demand.disk_mib,
        }
    }

    fn fits(&self, demand: &Demand) -> bool {
        let h = self.host;
        let disk_ok = h.disk_mib.is_none_or(|disk| self.disk_mib + demand.disk_mib <= disk);
        h.schedulable
            && demand.zone.as_ref().is_none_or(|zone| *zone == h.zone)
            && f64::from(demand.vcpus) <= h.vcpu_capacity() - self.vcpus
            && demand.memory_mib as f64 <= h.memory_capacity_mib() - self.memory_mib
            && disk_ok
    }

    /// How full the host is, by its scarcer resource, as a fraction of its capacity.
    fn fullness(&self) -> f64 {
        let cpu = self.vcpus / self.host.vcpu_capacity().max(1.0);
        let memory = self.memory_mib / self.host.memory_capacity_mib().max(1.0);
        cpu.max(memory)
    }
}

/// Orders two hosts that fit: `Less` when `a` is the better choice under `policy`.
fn rank(policy: Policy, a: &Charged<'_>, b: &Charged<'_>) -> std::cmp::Ordering {
    let by_policy = match policy {
        Policy::Pack => b.fullness().total_cmp(&a.fullness()),
        Policy::Spread => a.fullness().total_cmp(&b.fullness()),
        Policy::LoadAware => a.host.load.total_cmp(&b.host.load).then(a.fullness().total_cmp(&b.fullness())),
    };
    // Ties go to the lower id, so that equal hosts are chosen predictably.
    by_policy.then_with(|| a.host.id.cmp(&b.host.id))
}

/// A candidate in the heap of [`place`]: the best one compares greatest.
struct Candidate<'a> {
    index: usize,
    placed: u32,
    charged: Charged<'a>,
    policy: Policy,
}

impl PartialEq for Candidate<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Candidate<'_> {}

impl PartialOrd for Candidate<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        rank(self.policy, &other.charged, &self.charged)
    }
}

/// Places up to `count` instances; the answer holds an index into `hosts` per placed
/// instance, in order, and is shorter than `count` when the pool runs out of room.
///
/// For several, the hosts that fit go into a heap ordered by the policy; each choice takes the
/// best, charges it, and puts it back if it still fits: only the chosen host's rank changes.
pub fn place(hosts: &[HostSnapshot], demand: &Demand, count: usize, policy: Policy) -> Vec<usize> {
    if count == 1 {
        // One choice needs no heap: the best of one pass.
        let fitting =
            hosts.iter().enumerate().map(|(i, h)| (i, Charged::new(h, demand, 0))).filter(|(_, c)| c.fits(demand));
        return fitting.min_by(|(_, a), (_, b)| rank(policy, a, b)).map(|(i, _)| i).into_iter().collect();
    }
    let mut heap: std::collections::BinaryHeap<Candidate<'_>> = hosts
        .iter()
        .enumerate()
        .map(|(index, host)| Candidate { index, placed: 0, charged: Charged::new(host, demand, 0), policy })
        .filter(|c| c.charged.fits(demand))
        .collect();
    let mut chosen = Vec::with_capacity(count);
    while chosen.len() < count {
        let Some(mut best) = heap.pop() else { break };
        chosen.push(best.index);
        best.placed += 1;
        best.charged = Charged::new(best.charged.host, demand, best.placed);
        if best.charged.fits(demand) {
            heap.push(best);
        }
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

    /// The plain statement of the policy: charge a copy, take the best, again.
    fn one_at_a_time(hosts: &[HostSnapshot], demand: &Demand, count: usize, policy: Policy) -> Vec<usize> {
        let mut hosts = hosts.to_vec();
        let mut chosen = Vec::new();
        for _ in 0..count {
            let Some(best) = place(&hosts, demand, 1, policy).first().copied() else { break };
            hosts[best].used_vcpus += demand.vcpus;
            hosts[best].used_memory_mib += demand.memory_mib;
            hosts[best].used_disk_mib += demand.disk_mib;
            chosen.push(best);
        }
        chosen
    }

    #[test]
    fn a_batch_places_as_one_instance_at_a_time_would() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let hosts: Vec<HostSnapshot> = (0..60)
            .map(|i| {
                let mut h =
                    host(&format!("h{i:02}"), ["a", "b"][i % 2], rng.gen_range(2..16), rng.gen_range(1..32) * 1024);
                h.used_vcpus = rng.gen_range(0..h.vcpus);
                h.load = f64::from(rng.gen_range(0..4u8)) / 4.0;
                h.schedulable = rng.gen_ratio(9, 10);
                h.disk_mib = rng.gen_ratio(1, 2).then(|| rng.gen_range(0..8) * 1024);
                h
            })
            .collect();
        let demand = Demand { vcpus: 1, memory_mib: 1024, disk_mib: 512, zone: Some("a".into()) };
        for policy in [Policy::Pack, Policy::Spread, Policy::LoadAware] {
            let batch = place(&hosts, &demand, 400, policy);
            assert!(!batch.is_empty() && batch.len() < 400, "the pool runs out part way");
            assert_eq!(batch, one_at_a_time(&hosts, &demand, 400, policy), "{policy:?}");
        }
    }
}
