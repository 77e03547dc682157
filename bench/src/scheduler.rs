//! The scheduler benchmark: one placement decision over a large pool, per policy.
//!
//! The pool: `hosts` hosts of mixed sizes over three zones, already holding `instances`
//! instances of mixed types (charged the way the scheduler charges them), some hosts down.
//! Each placement (one instance, and a MaxCount-100 request) is timed many times; the
//! median and the range go to `scheduler.json`.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use backend::scheduler::{place, Demand, HostSnapshot, Policy};
use rand::{Rng, SeedableRng};
use serde::Serialize;

#[derive(Serialize)]
struct Timing {
    policy: &'static str,
    count: usize,
    placed: usize,
    repetitions: usize,
    median_us: f64,
    min_us: f64,
    max_us: f64,
}

/// A pool of `hosts` holding `instances`, reproducibly random.
pub fn pool(hosts: usize, instances: usize) -> Vec<HostSnapshot> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let zones = ["us-east-1a", "us-east-1b", "us-east-1c"];
    let mut pool: Vec<HostSnapshot> = (0..hosts)
        .map(|i| {
            let (vcpus, memory_mib) = [(32, 131_072), (64, 262_144), (96, 393_216)][rng.gen_range(0..3)];
            HostSnapshot {
                id: format!("h-{:017x}", rng.gen::<u64>() >> 4),
                zone: zones[i % zones.len()].to_owned(),
                schedulable: rng.gen_ratio(49, 50),
                vcpus,
                memory_mib,
                disk_mib: None,
                cpu_ratio: 4.0,
                memory_ratio: 1.0,
                used_vcpus: 0,
                used_memory_mib: 0,
                used_disk_mib: 0,
                load: rng.gen(),
            }
        })
        .collect();
    let types = [(2, 512), (2, 1024), (2, 4096), (4, 16_384)];
    for _ in 0..instances {
        let (vcpus, memory_mib) = types[rng.gen_range(0..types.len())];
        let host = &mut pool[rng.gen_range(0..hosts)];
        host.used_vcpus += vcpus;
        host.used_memory_mib += memory_mib;
    }
    pool
}

fn time(
    hosts: &[HostSnapshot],
    demand: &Demand,
    count: usize,
    policy: Policy,
    repetitions: usize,
) -> (usize, Vec<f64>) {
    let mut placed = 0;
    let samples = (0..repetitions)
        .map(|_| {
            let started = Instant::now();
            placed = place(hosts, demand, count, policy).len();
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    (placed, samples)
}

pub fn run(out: &Path, hosts: usize, instances: usize) -> Result<()> {
    let pool = pool(hosts, instances);
    let demand = Demand { vcpus: 2, memory_mib: 1024, disk_mib: 0, zone: Some("us-east-1b".into()) };
    let mut timings = Vec::new();
    for (name, policy) in [("pack", Policy::Pack), ("spread", Policy::Spread), ("load-aware", Policy::LoadAware)] {
        for (count, repetitions) in [(1, 500), (100, 50)] {
            let (placed, mut samples) = time(&pool, &demand, count, policy, repetitions);
            samples.sort_by(f64::total_cmp);
            let timing = Timing {
                policy: name,
                count,
                placed,
                repetitions,
                median_us: samples[samples.len() / 2],
                min_us: samples[0],
                max_us: samples[samples.len() - 1],
            };
            println!(
                "place {count:>3} over {hosts} hosts / {instances} instances, {name:<10}: median {:>8.1} µs (min {:.1}, max {:.1}), {placed} placed",
                timing.median_us, timing.min_us, timing.max_us
            );
            timings.push(timing);
        }
    }
    std::fs::create_dir_all(out)?;
    let results = serde_json::json!({
        "kind": "scheduler",
        "machine": crate::machine(),
        "hosts": hosts,
        "instances": instances,
        "timings": timings,
    });
    std::fs::write(out.join("scheduler.json"), serde_json::to_vec_pretty(&results)?)?;
    Ok(())
}
