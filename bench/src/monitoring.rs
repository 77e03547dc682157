//! `monitoring`: what the metric history costs ([`backend::monitoring`]).
//!
//! 1. Collection: instances running on fake hosts ([`backend::fake`], counters moving between
//!    samples), sampled by [`Backend::collect`] over and over. Each collection is timed whole
//!    and split into its host calls (the baseline: what the drivers take, here next to
//!    nothing, so the figure is Stratus's own cost) and its store write; per host and per
//!    instance.
//! 2. Store bytes per instance-day: a day of samples every 10 s for a few instances, folded
//!    into a file-backed store as collection folds them; the file's size and redb's allocated
//!    pages, divided.
//! 3. Queries: a store holding many instances' history (default 10,000 over 24 hours),
//!    asked for one instance's CPUUtilization over 24 hours at a 1-minute period, and for 100
//!    instances' (as one GetMetricData with 100 metric stat queries), p50 and p99; beside the
//!    baseline of reading the same rows straight from the store.
//!
//! Writes `monitoring.json`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use backend::fake::FakeCloud;
use backend::hosts::{Host, HostConfig, HostPool};
use backend::hypervisor::{Accelerator, DomainCounters, DomainSpec, Hypervisor};
use backend::monitoring::{instance_series, MetricQuery, EC2_NAMESPACE};
use backend::{now_ms, Backend, Topology};
use serde::Serialize;
use storage::metrics::{Aggregate, Point, TIERS};
use storage::tables::{INSTANCES, METRIC_SERIES};
use storage::{MetricSeriesRecord, Store};

#[derive(Serialize)]
struct CollectFigure {
    hosts: usize,
    instances: usize,
    samples: usize,
    collect_ms_median: f64,
    host_calls_ms_median: f64,
    store_ms_median: f64,
    micros_per_host: f64,
    micros_per_instance: f64,
    /// The whole collection over its host calls alone.
    ratio_to_host_calls: f64,
}

#[derive(Serialize)]
struct QueryFigure {
    what: String,
    p50_ms: f64,
    p99_ms: f64,
    baseline_p50_ms: f64,
    baseline_p99_ms: f64,
    datapoints: usize,
}

#[derive(Serialize)]
struct Report {
    collection: Vec<CollectFigure>,
    bytes_per_instance_day_file: f64,
    bytes_per_instance_day_allocated: f64,
    history_instances: usize,
    history_hours: u32,
    history_file_bytes: u64,
    history_load_secs: f64,
    queries: Vec<QueryFigure>,
}

const ACCOUNT: &str = "123456789012";

fn median(values: &mut [f64]) -> f64 {
    percentile(values, 50.0)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil().max(1.0) as usize;
    values[rank.min(values.len()) - 1]
}

fn spec(name: &str) -> DomainSpec {
    DomainSpec {
        name: name.into(),
        uuid: format!("{:0>32}", name.trim_start_matches("i-")),
        vcpus: 2,
        memory_mib: 512,
        accelerator: Accelerator::Test,
        disk: "/nowhere.qcow2".into(),
        root_key: None,
        volumes: Vec::new(),
        kernel: None,
        initrd: None,
        cmdline: None,
        mac: "52:54:00:00:00:01".into(),
        port: "00000000-0000-0000-0000-000000000000".into(),
        nics: Vec::new(),
        console_log: "/nowhere.log".into(),
        instance_type: "t3.nano".into(),
        metadata: None,
    }
}

/// A backend on fake hosts, their world, and each instance as (host URI, instance id).
type Fleet = (Arc<Backend>, FakeCloud, Vec<(String, String)>);

/// `hosts` fake hosts with `per_host` running instances each, recorded in a file-backed store.
fn fleet(dir: &Path, hosts: usize, per_host: usize) -> Result<Fleet> {
    let cloud = FakeCloud::new();
    let configs: Vec<HostConfig> = (0..hosts).map(|h| HostConfig::new(&format!("fake://bench-{h}"))).collect();
    let pool = HostPool::new(configs.iter().map(|config| {
        let mut config = config.clone();
        config.accelerator = Some(Accelerator::Test);
        let driver = cloud.host(&config.uri);
        Host::new(config, "us-east-1a".into(), driver)
    }));
    let topology = Topology { hosts: configs.clone(), ..Topology::default() };
    let store = Store::open(&dir.join(format!("collect-{hosts}-{per_host}.redb")))?;
    let b = Arc::new(Backend::with_hosts(store, topology, pool).with_data_dir(dir));
    // Records of running instances, written as a template's copies (launching thousands
    // through the lifecycle would measure the lifecycle).
    let template = serde_json::json!({
        "id": "", "account": ACCOUNT, "reservation_id": "r-0", "image_id": "ami-00000000000000001",
        "instance_type": "t3.nano", "vcpus": 2, "memory_mib": 512, "zone": "us-east-1a", "host_id": "",
        "domain_uuid": "", "state": "running", "state_reason": null, "state_transition_reason": "",
        "force_stop": false, "booted": true, "launch_time_ms": 0, "terminated_ms": null, "ami_launch_index": 0,
        "key_name": null, "user_data": null, "vpc_id": "vpc-1", "subnet_id": "subnet-1",
        "network_interface_id": "eni-1", "private_ip": "10.0.0.1", "mac": "52:54:00:00:00:01",
        "security_group_ids": [], "client_token": null, "disable_api_termination": false,
        "disable_api_stop": false, "shutdown_behavior": "stop", "ebs_optimized": false, "monitoring": false,
        "dir": "/nowhere", "root_disk_bytes": 0
    });
    let mut watched = Vec::new();
    for (h, config) in configs.iter().enumerate() {
        let driver = cloud.host(&config.uri);
        for i in 0..per_host {
            let id = format!("i-{:017x}", h * 1_000_000 + i + 1);
            driver.define(&spec(&id))?;
            driver.start(&id)?;
            watched.push((config.uri.clone(), id.clone()));
            let mut value = template.clone();
            value["id"] = id.clone().into();
            value["host_id"] = config.host_id().into();
            let record: storage::InstanceRecord =
                serde_json::from_value(value).context("the bench's instance record template is out of date")?;
            b.store().write(|tx| tx.insert(&INSTANCES, &format!("{ACCOUNT}/{id}"), &record))?;
        }
    }
    Ok((b, cloud, watched))
}

fn collection(dir: &Path, hosts: usize, per_host: usize, samples: usize) -> Result<CollectFigure> {
    let (b, cloud, watched) = fleet(dir, hosts, per_host)?;
    b.collect()?; // baselines
    let (mut whole, mut calls, mut store) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=samples as u64 {
        for (uri, id) in &watched {
            let c = round * 1000;
            cloud.set_counters(
                uri,
                id,
                DomainCounters {
                    cpu_time_ns: c * 1_000_000,
                    net_rx_bytes: c,
                    net_tx_bytes: c,
                    disk_read_ops: round,
                    ..Default::default()
                },
            );
        }
        let started = Instant::now();
        let report = b.collect()?;
        whole.push(started.elapsed().as_secs_f64() * 1000.0);
        calls.push(report.sample_took.as_secs_f64() * 1000.0);
        store.push(report.store_took.as_secs_f64() * 1000.0);
    }
    let (collect_ms, calls_ms, store_ms) = (median(&mut whole), median(&mut calls), median(&mut store));
    let instances = hosts * per_host;
    Ok(CollectFigure {
        hosts,
        instances,
        samples,
        collect_ms_median: collect_ms,
        host_calls_ms_median: calls_ms,
        store_ms_median: store_ms,
        micros_per_host: collect_ms * 1000.0 / hosts as f64,
        micros_per_instance: if instances > 0 { collect_ms * 1000.0 / instances as f64 } else { 0.0 },
        ratio_to_host_calls: if calls_ms > 0.0 { collect_ms / calls_ms } else { 0.0 },
    })
}

/// One minute of an instance's samples (six, ten seconds apart), as collection folds them.
fn minute_of_samples(series: &str, minute: u32, seed: u64) -> Point {
    let mut values = Vec::with_capacity(12);
    let wobble = |k: u64| {
        (seed.wrapping_mul(6364136223846793005).wrapping_add(k.wrapping_mul(1442695040888963407)) >> 40) as f64
    };
    for metric in 0..12u8 {
        let mut aggregate: Option<Aggregate> = None;
        for s in 0..6u64 {
            let v = match metric {
                0 => (wobble(s) % 10_000.0) / 100.0, // CPU, a percentage with decimals
                1..=8 => (wobble(s + u64::from(metric)) % 50_000.0).floor(), // bytes and counts
                _ => 0.0,                            // passed checks
            };
            match &mut aggregate {
                Some(a) => a.merge(&Aggregate::one(v)),
                None => aggregate = Some(Aggregate::one(v)),
            }
        }
        values.extend(aggregate.map(|a| (metric, a)));
    }
    Point { series: series.to_owned(), minute, values }
}

/// A day of 10-second samples for `instances`, minute by minute: the store's bytes per
/// instance-day, from the file and from redb's allocated pages.
fn bytes_per_day(dir: &Path, instances: usize) -> Result<(f64, f64)> {
    let path = dir.join("day.redb");
    let store = Store::open(&path)?;
    let empty_file = std::fs::metadata(&path)?.len() as f64;
    let empty_alloc = store.stored_bytes()? as f64;
    let start = (now_ms() / 60_000) as u32 / 1440 * 1440;
    for minute in start..start + 1440 {
        let points: Vec<Point> = (0..instances)
            .map(|i| minute_of_samples(&format!("{ACCOUNT}/i-{i:017x}"), minute, (i as u64) << 20 | u64::from(minute)))
            .collect();
        store.merge_points(&points)?;
    }
    let file = std::fs::metadata(&path)?.len() as f64 - empty_file;
    let allocated = store.stored_bytes()? as f64 - empty_alloc;
    Ok((file / instances as f64, allocated / instances as f64))
}

fn queries(dir: &Path, instances: usize, hours: u32, report: &mut Report) -> Result<()> {
    let path = dir.join("history.redb");
    let store = Store::open(&path)?;
    let end_minute = (now_ms() / 60_000) as u32;
    let start_minute = end_minute - hours * 60;
    let loading = Instant::now();
    // Instance-major batches: each chunk's rows go in in key order.
    for batch in (0..instances).collect::<Vec<_>>().chunks(50) {
        let mut points = Vec::with_capacity(batch.len() * (hours as usize) * 60);
        for &i in batch {
            let series = instance_series(ACCOUNT, &format!("i-{i:017x}"));
            for minute in start_minute..end_minute {
                points.push(minute_of_samples(&series, minute, (i as u64) << 20 | u64::from(minute)));
            }
        }
        store.merge_points(&points)?;
        store.write(|tx| {
            for &i in batch {
                let id = format!("i-{i:017x}");
                let record = MetricSeriesRecord {
                    namespace: EC2_NAMESPACE.into(),
                    account: ACCOUNT.into(),
                    dimensions: vec![
                        ("InstanceId".into(), id.clone()),
                        ("InstanceType".into(), "t3.nano".into()),
                        ("ImageId".into(), "ami-00000000000000001".into()),
                    ],
                    last_minute: end_minute,
                    metric: None,
                    unit: None,
                };
                tx.insert(&METRIC_SERIES, &instance_series(ACCOUNT, &id), &record)?;
            }
            Ok::<_, storage::Error>(())
        })?;
    }
    report.history_load_secs = loading.elapsed().as_secs_f64();
    report.history_file_bytes = std::fs::metadata(&path)?.len();
    let b = Backend::with_hosts(store, Topology::default(), HostPool::new(Vec::new()));
    let query = |i: usize| MetricQuery {
        namespace: EC2_NAMESPACE.into(),
        metric_name: "CPUUtilization".into(),
        dimensions: vec![("InstanceId".into(), format!("i-{i:017x}"))],
        start_ms: i64::from(start_minute) * 60_000,
        end_ms: i64::from(end_minute) * 60_000,
        period_secs: 60,
    };
    let baseline = |i: usize| -> Result<usize> {
        let series = instance_series(ACCOUNT, &format!("i-{i:017x}"));
        Ok(b.store().read_points(&series, &TIERS[0], start_minute, end_minute)?.len())
    };
    for (what, per_call, calls) in [("one instance, 24 h at 1 minute", 1usize, 200usize), ("100 instances", 100, 30)] {
        let what = if hours == 24 { what.to_owned() } else { what.replace("24 h", &format!("{hours} h")) };
        let (mut times, mut floors, mut datapoints) = (Vec::new(), Vec::new(), 0);
        for call in 0..calls {
            let first = (call * 7919) % instances.max(1);
            let started = Instant::now();
            for k in 0..per_call {
                datapoints = b.metric_statistics(ACCOUNT, false, &query((first + k) % instances))?.len();
            }
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            let started = Instant::now();
            for k in 0..per_call {
                baseline((first + k) % instances)?;
            }
            floors.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        report.queries.push(QueryFigure {
            what,
            p50_ms: percentile(&mut times, 50.0),
            p99_ms: percentile(&mut times, 99.0),
            baseline_p50_ms: percentile(&mut floors, 50.0),
            baseline_p99_ms: percentile(&mut floors, 99.0),
            datapoints,
        });
    }
    Ok(())
}

pub struct Options {
    pub fleets: Vec<(usize, usize)>,
    pub samples: usize,
    pub day_instances: usize,
    pub history_instances: usize,
    pub history_hours: u32,
}

pub fn run(out: &Path, options: &Options) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let dir = std::env::temp_dir().join(format!("stratus-bench-monitoring-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> Result<Report> {
        let mut report = Report {
            collection: Vec::new(),
            bytes_per_instance_day_file: 0.0,
            bytes_per_instance_day_allocated: 0.0,
            history_instances: options.history_instances,
            history_hours: options.history_hours,
            history_file_bytes: 0,
            history_load_secs: 0.0,
            queries: Vec::new(),
        };
        for &(hosts, per_host) in &options.fleets {
            let figure = collection(&dir, hosts, per_host, options.samples)?;
            println!(
                "collect: {hosts} host(s) x {per_host} instance(s): {:.2} ms (host calls {:.2} ms, store {:.2} ms); {:.0} µs/host, {:.1} µs/instance; {:.1}x the host calls",
                figure.collect_ms_median,
                figure.host_calls_ms_median,
                figure.store_ms_median,
                figure.micros_per_host,
                figure.micros_per_instance,
                figure.ratio_to_host_calls
            );
            report.collection.push(figure);
        }
        let (file, allocated) = bytes_per_day(&dir, options.day_instances)?;
        (report.bytes_per_instance_day_file, report.bytes_per_instance_day_allocated) = (file, allocated);
        println!("store: {file:.0} bytes per instance-day (file), {allocated:.0} allocated by redb");
        queries(&dir, options.history_instances, options.history_hours, &mut report)?;
        println!(
            "history: {} instances x {} h loaded in {:.1} s, {} bytes",
            options.history_instances, options.history_hours, report.history_load_secs, report.history_file_bytes
        );
        for q in &report.queries {
            println!(
                "query {}: p50 {:.2} ms, p99 {:.2} ms ({} datapoints); reading the rows alone: p50 {:.2} ms, p99 {:.2} ms",
                q.what, q.p50_ms, q.p99_ms, q.datapoints, q.baseline_p50_ms, q.baseline_p99_ms
            );
        }
        Ok(report)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    std::fs::write(out.join("monitoring.json"), serde_json::to_vec_pretty(&report)?)?;
    Ok(())
}
