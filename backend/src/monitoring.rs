//! Monitoring: every host sampled on an interval, its instances' usage kept as history, and
//! the queries CloudWatch's API and the console ask of it.
//!
//! 1. [`Backend::start_monitoring`] runs [`Backend::collect`] every interval on a blocking
//!    thread: every host is asked at once, each through its own bridge with its limit and
//!    timeout, for one bulk sample ([`crate::hypervisor::Hypervisor::sample`]).
//! 2. Counters become metrics against the instance's previous sample ([`usage`], pure): CPU
//!    time over elapsed time and vCPUs gives `CPUUtilization`, counter deltas give bytes and
//!    operations per sample. A baseline belongs to one host: after a live migration (a new
//!    QEMU process, counters from zero) the first sample on the new host only sets the
//!    baseline, so the series (named by instance id) goes on with one sample missing.
//! 3. Status checks come from the same sample ([`status_checks`]): a host that does not answer
//!    or does not know the domain fails the system check; a domain that does not run, the
//!    instance check. An unreachable host leaves a gap in usage, never an error.
//! 4. Values fold into per-minute aggregates of every tier in the store ([`storage::metrics`]);
//!    an index of series ([`storage::tables::METRIC_SERIES`]) names them for ListMetrics.
//!    Tiers older than their retention are dropped in the background.
//! 5. Queries ([`Backend::metric_statistics`]) read one account's series (hosts' only for an
//!    admin), merge them per period and answer the statistics ([`Datapoint`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use storage::metrics::Aggregate;
use storage::metrics::{Point, Row, Tier, TIERS};
use storage::tables::METRIC_SERIES;
use storage::{InstanceState, MetricSeriesRecord, Reads};

use crate::hypervisor::{DomainCounters, DomainSample, HostSample, PowerState};
use crate::{now_ms, Backend, Result};

pub const EC2_NAMESPACE: &str = "AWS/EC2";
pub const HOST_NAMESPACE: &str = "Stratus/Host";

/// A metric Stratus keeps: its CloudWatch name and unit. Its index in its list is its number
/// in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    pub name: &'static str,
    pub unit: &'static str,
}

const fn def(name: &'static str, unit: &'static str) -> MetricDef {
    MetricDef { name, unit }
}

/// `AWS/EC2`'s instance metrics, as EC2 names them.
pub const INSTANCE_METRICS: [MetricDef; 12] = [
    def("CPUUtilization", "Percent"),
    def("NetworkIn", "Bytes"),
    def("NetworkOut", "Bytes"),
    def("NetworkPacketsIn", "Count"),
    def("NetworkPacketsOut", "Count"),
    def("DiskReadBytes", "Bytes"),
    def("DiskWriteBytes", "Bytes"),
    def("DiskReadOps", "Count"),
    def("DiskWriteOps", "Count"),
    def("StatusCheckFailed", "Count"),
    def("StatusCheckFailed_Instance", "Count"),
    def("StatusCheckFailed_System", "Count"),
];
const STATUS_FAILED: u8 = 9;
const STATUS_INSTANCE: u8 = 10;
const STATUS_SYSTEM: u8 = 11;

/// `Stratus/Host`'s metrics.
pub const HOST_METRICS: [MetricDef; 4] = [
    def("CPUUtilization", "Percent"),
    def("MemoryUsed", "Bytes"),
    def("MemoryFree", "Bytes"),
    def("Instances", "Count"),
];

/// How long each tier is kept, in days: CloudWatch's 15, 63 and 455 unless configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub days: [u32; 3],
}

impl Default for Retention {
    fn default() -> Self {
        Self { days: [15, 63, 455] }
    }
}

/// The series name of an instance's history.
pub fn instance_series(account: &str, instance_id: &str) -> String {
    format!("{account}/{instance_id}")
}

/// The series name of a host's history (no account starts with `~`).
pub fn host_series(host_id: &str) -> String {
    format!("~host/{host_id}")
}

/// The series name of an account's custom metric: a digest of its namespace, name and
/// dimensions (sorted), under the account (no instance id starts with `~`).
pub fn custom_series(account: &str, namespace: &str, metric: &str, dimensions: &[(String, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for part in [namespace, metric].into_iter().chain(dimensions.iter().flat_map(|(n, v)| [n.as_str(), v.as_str()])) {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    let hex: String = digest.finalize()[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{account}/~c/{hex}")
}

/// The namespaces Stratus publishes itself, which PutMetricData may not write to.
pub fn reserved_namespace(namespace: &str) -> bool {
    namespace.starts_with("AWS/") || namespace.starts_with("Stratus/")
}

/// One datum of PutMetricData, checked: its metric, its dimensions (sorted by name), when,
/// and the samples it brings.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    pub metric_name: String,
    pub dimensions: Vec<(String, String)>,
    pub at_ms: i64,
    pub aggregate: Aggregate,
    pub unit: Option<String>,
}

/// A domain's counters at one moment, on one host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    pub at: Instant,
    pub counters: DomainCounters,
}

/// The usage metrics between two samples of one QEMU process, or `None` when they cannot be
/// compared (a counter went back: the process was replaced).
pub fn usage(before: &Baseline, now: &Baseline, vcpus: u32) -> Option<Vec<(u8, f64)>> {
    let (a, b) = (&before.counters, &now.counters);
    let elapsed_ns = now.at.checked_duration_since(before.at)?.as_nanos() as f64;
    let pairs = [
        (a.net_rx_bytes, b.net_rx_bytes),
        (a.net_tx_bytes, b.net_tx_bytes),
        (a.net_rx_packets, b.net_rx_packets),
        (a.net_tx_packets, b.net_tx_packets),
        (a.disk_read_bytes, b.disk_read_bytes),
        (a.disk_write_bytes, b.disk_write_bytes),
        (a.disk_read_ops, b.disk_read_ops),
        (a.disk_write_ops, b.disk_write_ops),
    ];
    if elapsed_ns <= 0.0 || b.cpu_time_ns < a.cpu_time_ns || pairs.iter().any(|(x, y)| y < x) {
        return None;
    }
    let vcpus = if b.vcpus > 0 { b.vcpus } else { vcpus.max(1) };
    let cpu = ((b.cpu_time_ns - a.cpu_time_ns) as f64 / (elapsed_ns * f64::from(vcpus)) * 100.0).clamp(0.0, 100.0);
    let mut values = vec![(0, cpu)];
    values.extend(pairs.iter().enumerate().map(|(i, (x, y))| (i as u8 + 1, (y - x) as f64)));
    Some(values)
}

/// What one sample says of an instance's status checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checks {
    /// The host answered and knows the domain.
    pub system_ok: bool,
    /// The domain runs (unknown while the system check fails).
    pub instance_ok: Option<bool>,
}

/// The status checks of an instance from its domain in its host's sample (`None`: the host did
/// not answer, or does not know the domain).
pub fn status_checks(domain: Option<&DomainSample>) -> Checks {
    match domain {
        None => Checks { system_ok: false, instance_ok: None },
        Some(domain) => Checks { system_ok: true, instance_ok: Some(domain.state == PowerState::Running) },
    }
}

fn check_values(checks: Checks) -> Vec<(u8, f64)> {
    let failed = |ok: bool| if ok { 0.0 } else { 1.0 };
    let mut values = vec![(STATUS_SYSTEM, failed(checks.system_ok))];
    if let Some(ok) = checks.instance_ok {
        values.push((STATUS_INSTANCE, failed(ok)));
    }
    values.push((STATUS_FAILED, failed(checks.system_ok && checks.instance_ok != Some(false))));
    values
}

/// Each host's last CPU reading: its own busy/total, or its guests' CPU time over the time
/// elapsed (a host that does not report its own).
#[derive(Debug, Clone, Copy)]
struct HostBaseline {
    at: Instant,
    cpu_ns: Option<(u64, u64)>,
    guest_cpu_ns: u64,
}

/// What the collector remembers between samples (in memory: a restart costs one sample).
#[derive(Default)]
pub struct Collector {
    instances: Mutex<HashMap<String, (String, Baseline)>>,
    hosts: Mutex<HashMap<String, HostBaseline>>,
    /// The last checks per instance id, for DescribeInstanceStatus.
    checks: Mutex<HashMap<String, Checks>>,
    /// The last sample of each host that answered, with when it was taken (Prometheus).
    samples: Mutex<HashMap<String, (i64, Arc<HostSample>)>>,
    retention: Mutex<Retention>,
    /// The store's size as the last collection read it (a scrape must not wait on the store).
    store_bytes: std::sync::atomic::AtomicU64,
    /// The index records this process wrote, by series ([`Backend::stale_series`]).
    indexed: Mutex<HashMap<String, Indexed>>,
    /// Each instance the last collection watched: its account and type (Prometheus labels).
    labels: Mutex<HashMap<String, InstanceLabels>>,
}

/// What the collector remembers of an index record it wrote: its minute and a digest of its
/// dimensions. Whole records, kept for every running instance, were a third of the
/// collector's memory (jeprof: 6 of 18 MiB with 10,000 running).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Indexed {
    last_minute: u32,
    dimensions: u64,
}

impl Indexed {
    fn of(record: &MetricSeriesRecord) -> Self {
        use std::hash::{Hash, Hasher};
        // A fixed-key hasher: the digest only has to match within this process. Two
        // dimension lists with one digest would refresh an hour late, never wrongly.
        let mut hasher = std::hash::DefaultHasher::new();
        record.dimensions.hash(&mut hasher);
        Self { last_minute: record.last_minute, dimensions: hasher.finish() }
    }
}

/// Whose an instance is and what type, as the last collection found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceLabels {
    pub account_id: String,
    pub instance_type: String,
}

/// What one collection did, for logs and the benchmark.
#[derive(Debug, Default, Clone)]
pub struct CollectReport {
    pub hosts: usize,
    pub unreachable: usize,
    pub instances: usize,
    pub points: usize,
    pub sample_took: Duration,
    pub store_took: Duration,
}

/// An instance as the collector needs it.
struct Watched {
    account: String,
    id: String,
    host_id: String,
    target: Option<String>,
    vcpus: u32,
    instance_type: String,
    image_id: String,
}

/// Minutes since the epoch; times past what a u32 holds (year 10136) saturate.
fn minute_of(ms: i64) -> u32 {
    u32::try_from(ms.max(0) / 60_000).unwrap_or(u32::MAX)
}

impl Backend {
    /// Samples every host once and records what it found. Blocks (on every host at once).
    pub fn collect(&self) -> Result<CollectReport> {
        let collector = &self.monitoring;
        let mut report = CollectReport::default();
        let watched: Vec<Watched> = self.store().read(|tx| {
            let mut out = Vec::new();
            tx.for_each_live_instance(|_, r| {
                if r.state == InstanceState::Running {
                    out.push(Watched {
                        account: r.account,
                        id: r.id,
                        host_id: r.host_id,
                        target: r.migration_target,
                        vcpus: r.vcpus,
                        instance_type: r.instance_type,
                        image_id: r.image_id,
                    });
                }
            })?;
            Ok::<_, crate::Error>(out)
        })?;
        let started = Instant::now();
        let hosts: Vec<_> = self.hosts().iter().cloned().collect();
        let samples: Vec<(String, Option<HostSample>, Instant)> = std::thread::scope(|scope| {
            let handles: Vec<_> = hosts
                .iter()
                .map(|host| scope.spawn(move || (host.id.clone(), host.driver.sample().ok(), Instant::now())))
                .collect();
            // A host whose call panicked counts as not answering; the list stays aligned
            // with `hosts`.
            handles
                .into_iter()
                .zip(&hosts)
                .map(|(h, host)| h.join().unwrap_or_else(|_| (host.id.clone(), None, Instant::now())))
                .collect()
        });
        report.sample_took = started.elapsed();
        report.hosts = samples.len();
        let at_ms = now_ms();
        let minute = minute_of(at_ms);
        // Each answering host's domains by name: every instance is looked up in one or two of
        // them (a scan of the host's list per instance was quadratic in the fleet).
        type Domains<'s> = HashMap<&'s str, &'s DomainSample>;
        let by_host: HashMap<&str, (Option<Domains>, Instant)> = samples
            .iter()
            .map(|(id, s, at)| {
                let domains = s.as_ref().map(|s| s.domains.iter().map(|d| (d.name.as_str(), d)).collect());
                (id.as_str(), (domains, *at))
            })
            .collect();
        let mut points = Vec::new();
        let mut series = Vec::new();
        // Instances found running per host (the host's other domains are not Stratus's).
        let mut running_on: HashMap<String, usize> = HashMap::new();
        {
            let mut baselines = collector.instances.lock().unwrap_or_else(|p| p.into_inner());
            let mut checks_now = HashMap::new();
            for instance in &watched {
                // During a migration the guest is on one of two hosts: where it runs, else
                // whichever knows it (the source keeps a stopped definition for a moment).
                let candidates: Vec<(&String, Option<&DomainSample>, Instant)> = std::iter::once(&instance.host_id)
                    .chain(&instance.target)
                    .filter_map(|h| {
                        let (domains, at) = by_host.get(h.as_str())?;
                        Some((h, domains.as_ref().and_then(|d| d.get(instance.id.as_str()).copied()), *at))
                    })
                    .collect();
                let (host_id, domain, at) = candidates
                    .iter()
                    .find(|(_, d, _)| d.is_some_and(|d| d.state == PowerState::Running))
                    .or_else(|| candidates.iter().find(|(_, d, _)| d.is_some()))
                    .or_else(|| candidates.first())
                    .copied()
                    .unwrap_or((&instance.host_id, None, Instant::now()));
                let checks = status_checks(domain);
                checks_now.insert(instance.id.clone(), checks);
                let mut values = check_values(checks);
                match domain {
                    Some(domain) => {
                        if domain.state == PowerState::Running {
                            *running_on.entry(host_id.clone()).or_default() += 1;
                        }
                        let now = Baseline { at, counters: domain.counters };
                        if let Some((previous_host, before)) = baselines.get(&instance.id) {
                            if previous_host == host_id {
                                values.extend(usage(before, &now, instance.vcpus).unwrap_or_default());
                            }
                        }
                        baselines.insert(instance.id.clone(), (host_id.clone(), now));
                    }
                    None => {
                        baselines.remove(&instance.id);
                    }
                }
                let name = instance_series(&instance.account, &instance.id);
                series.push((
                    name.clone(),
                    MetricSeriesRecord {
                        namespace: EC2_NAMESPACE.into(),
                        account: instance.account.clone(),
                        dimensions: vec![
                            ("InstanceId".into(), instance.id.clone()),
                            ("InstanceType".into(), instance.instance_type.clone()),
                            ("ImageId".into(), instance.image_id.clone()),
                        ],
                        last_minute: minute,
                        metric: None,
                        unit: None,
                    },
                ));
                points.push(Point { series: name, minute, values: to_row(values) });
            }
            // Instances no longer running leave their baselines behind.
            baselines.retain(|id, _| checks_now.contains_key(id));
            *collector.checks.lock().unwrap_or_else(|p| p.into_inner()) = checks_now;
        }
        report.instances = watched.len();
        *collector.labels.lock().unwrap_or_else(|p| p.into_inner()) = watched
            .iter()
            .map(|w| {
                (w.id.clone(), InstanceLabels { account_id: w.account.clone(), instance_type: w.instance_type.clone() })
            })
            .collect();
        {
            let mut host_baselines = collector.hosts.lock().unwrap_or_else(|p| p.into_inner());
            let mut last = collector.samples.lock().unwrap_or_else(|p| p.into_inner());
            for ((host_id, sample, at), host) in samples.iter().zip(&hosts) {
                let Some(sample) = sample else {
                    report.unreachable += 1;
                    host_baselines.remove(host_id);
                    last.remove(host_id);
                    continue;
                };
                let guest_cpu_ns = sample.domains.iter().map(|d| d.counters.cpu_time_ns).sum();
                let now = HostBaseline { at: *at, cpu_ns: sample.cpu_ns, guest_cpu_ns };
                let mut values = Vec::new();
                if let Some(before) = host_baselines.get(host_id) {
                    if let Some(cpu) = host_cpu(before, &now, host.capacity().map_or(1, |c| c.vcpus)) {
                        values.push((0, cpu));
                    }
                }
                host_baselines.insert(host_id.clone(), now);
                let total = sample.memory_total_kib * 1024;
                let used = match sample.memory_free_kib {
                    Some(free) => total.saturating_sub(free * 1024),
                    // Without the host's own figure: what its guests were given.
                    None => sample.domains.iter().map(|d| d.counters.memory_kib * 1024).sum::<u64>().min(total),
                };
                values.push((1, used as f64));
                values.push((2, total.saturating_sub(used) as f64));
                values.push((3, running_on.get(host_id).copied().unwrap_or(0) as f64));
                let name = host_series(host_id);
                series.push((
                    name.clone(),
                    MetricSeriesRecord {
                        namespace: HOST_NAMESPACE.into(),
                        account: String::new(),
                        dimensions: vec![("HostId".into(), host_id.clone())],
                        last_minute: minute,
                        metric: None,
                        unit: None,
                    },
                ));
                points.push(Point { series: name, minute, values: to_row(values) });
                last.insert(host_id.clone(), (at_ms, Arc::new(sample.clone())));
            }
        }
        let storing = Instant::now();
        report.points = points.len();
        let stale = self.stale_series(&series, minute);
        self.store().merge_points_with(&points, |tx| {
            for (name, record) in &stale {
                tx.insert(&METRIC_SERIES, name, record)?;
            }
            Ok::<_, crate::Error>(())
        })?;
        let bytes = self.store().size_bytes()?;
        collector.store_bytes.store(bytes, Ordering::Relaxed);
        // Remembered once committed, never before.
        let mut indexed = collector.indexed.lock().unwrap_or_else(|p| p.into_inner());
        indexed.extend(stale.into_iter().map(|(name, record)| (name.clone(), Indexed::of(record))));
        indexed.retain(|_, record| record.last_minute + 24 * 60 > minute);
        drop(indexed);
        report.store_took = storing.elapsed();
        crate::telemetry::global().collect_seconds.observe(started.elapsed().as_secs_f64());
        Ok(report)
    }

    /// The series new to the index, and those whose record is an hour old or changed (to
    /// refresh it): the index costs a write per series per hour, not per sample. What was
    /// written is remembered here, so a collection reads no record to decide (after a restart
    /// the first collection writes every series once).
    fn stale_series<'s>(
        &self,
        series: &'s [(String, MetricSeriesRecord)],
        minute: u32,
    ) -> Vec<&'s (String, MetricSeriesRecord)> {
        let indexed = self.monitoring.indexed.lock().unwrap_or_else(|p| p.into_inner());
        series
            .iter()
            .filter(|(name, record)| {
                !indexed.get(name).is_some_and(|known| {
                    known.last_minute + 60 > minute && known.dimensions == Indexed::of(record).dimensions
                })
            })
            .collect()
    }

    /// Records an account's custom metric data (PutMetricData) in one transaction: each
    /// datum folds into its metric's series, which the index names for ListMetrics.
    pub fn put_metric_data(&self, account: &str, namespace: &str, data: Vec<Datum>) -> Result<()> {
        let mut points = Vec::with_capacity(data.len());
        let mut series: HashMap<String, MetricSeriesRecord> = HashMap::new();
        for datum in data {
            let name = custom_series(account, namespace, &datum.metric_name, &datum.dimensions);
            let minute = minute_of(datum.at_ms);
            let record = series.entry(name.clone()).or_insert_with(|| MetricSeriesRecord {
                namespace: namespace.to_owned(),
                account: account.to_owned(),
                dimensions: datum.dimensions.clone(),
                last_minute: minute,
                metric: Some(datum.metric_name.clone()),
                unit: None,
            });
            record.last_minute = record.last_minute.max(minute);
            if datum.unit.is_some() {
                record.unit.clone_from(&datum.unit);
            }
            points.push(Point { series: name, minute, values: vec![(0, datum.aggregate)] });
        }
        // One transaction: data put is either all there, listed, or not there at all.
        self.store().merge_points_with(&points, |tx| {
            for (name, mut record) in series {
                if let Some(known) = tx.get(&METRIC_SERIES, &name)? {
                    record.last_minute = record.last_minute.max(known.last_minute);
                    record.unit = record.unit.or(known.unit);
                }
                tx.insert(&METRIC_SERIES, &name, &record)?;
            }
            Ok::<_, crate::Error>(())
        })
    }

    /// The status checks the last sample gave an instance; `None` before its first sample.
    pub fn status_checks(&self, instance_id: &str) -> Option<Checks> {
        self.monitoring.checks.lock().unwrap_or_else(|p| p.into_inner()).get(instance_id).copied()
    }

    /// The last sample of every host that answered it, with when (ms since the epoch).
    pub fn last_samples(&self) -> Vec<(String, i64, Arc<HostSample>)> {
        let last = self.monitoring.samples.lock().unwrap_or_else(|p| p.into_inner());
        last.iter().map(|(id, (at, s))| (id.clone(), *at, Arc::clone(s))).collect()
    }

    /// The store's size in bytes, as the last collection read it.
    pub fn store_bytes(&self) -> u64 {
        self.monitoring.store_bytes.load(Ordering::Relaxed)
    }

    /// The account and type of each instance the last collection watched.
    pub fn instance_labels(&self) -> HashMap<String, InstanceLabels> {
        self.monitoring.labels.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Drops history older than each tier's retention; answers how many tables went.
    pub fn prune_metrics(&self, retention: &Retention) -> Result<usize> {
        let minute = minute_of(now_ms());
        let mut dropped = 0;
        for (tier, days) in TIERS.iter().zip(retention.days) {
            dropped += self.store().prune_points(tier, minute.saturating_sub(days.saturating_mul(24 * 60)))?;
        }
        // Series with no history left leave the index (and ListMetrics).
        let cutoff = minute.saturating_sub(retention.days[2].saturating_mul(24 * 60));
        let gone: Vec<String> = self.store().read(|tx| {
            let mut gone = Vec::new();
            tx.for_each(&METRIC_SERIES, "", |key, record: MetricSeriesRecord| {
                if record.last_minute < cutoff {
                    gone.push(key.to_owned());
                }
            })?;
            Ok::<_, crate::Error>(gone)
        })?;
        if !gone.is_empty() {
            self.store().write(|tx| {
                for key in &gone {
                    tx.remove(&METRIC_SERIES, key)?;
                }
                Ok::<_, crate::Error>(())
            })?;
        }
        Ok(dropped)
    }

    /// Collects every `interval` (a collection that overruns skips the ticks it covers) and
    /// prunes every hour, until the process ends.
    pub fn start_monitoring(self: &Arc<Self>, interval: Duration, retention: Retention) {
        *self.monitoring.retention.lock().unwrap_or_else(|p| p.into_inner()) = retention;
        let backend = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut last_prune: Option<Instant> = None;
            loop {
                // Each collection is awaited before the next tick: one at a time.
                ticker.tick().await;
                let prune = last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600));
                if prune {
                    last_prune = Some(Instant::now());
                }
                let worker = Arc::clone(&backend);
                // One replica samples the hosts: the one with the conductor's turn.
                let done = tokio::task::spawn_blocking(move || {
                    worker.as_conductor(|| {
                        if prune {
                            if let Err(error) = worker.prune_metrics(&retention) {
                                tracing::warn!(%error, "pruning metric history failed");
                            }
                        }
                        worker.collect()
                    })
                })
                .await;
                match done {
                    Ok(Some(Ok(report))) => tracing::debug!(?report, "metrics collected"),
                    Ok(Some(Err(error))) => tracing::warn!(%error, "collecting metrics failed"),
                    Ok(None) => {}
                    Err(error) => tracing::error!(%error, "the metrics collector panicked"),
                }
            }
        });
    }
}

fn host_cpu(before: &HostBaseline, now: &HostBaseline, vcpus: u32) -> Option<f64> {
    if let (Some((busy_a, total_a)), Some((busy_b, total_b))) = (before.cpu_ns, now.cpu_ns) {
        let total = total_b.checked_sub(total_a)?;
        return (total > 0).then(|| (busy_b.saturating_sub(busy_a) as f64 / total as f64 * 100.0).clamp(0.0, 100.0));
    }
    let elapsed = now.at.checked_duration_since(before.at)?.as_nanos() as f64 * f64::from(vcpus.max(1));
    let used = now.guest_cpu_ns.checked_sub(before.guest_cpu_ns)?;
    (elapsed > 0.0).then(|| (used as f64 / elapsed * 100.0).clamp(0.0, 100.0))
}

fn to_row(values: Vec<(u8, f64)>) -> Row {
    values.into_iter().map(|(m, v)| (m, Aggregate::one(v))).collect()
}

// ---- Queries ----

/// One period of a query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    /// The period's start, ms since the epoch.
    pub at_ms: i64,
    pub aggregate: Aggregate,
    /// The samples' values with how many times each came, when every bucket held one value
    /// only (then percentiles are exact, as CloudWatch allows for statistic sets whose minimum
    /// equals their maximum); `None` otherwise.
    pub values: Option<Vec<(f64, u64)>>,
}

impl Datapoint {
    /// The `p`th percentile (0–100) of the period's samples, when it can be told exactly.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let values = self.values.as_ref()?;
        if !(0.0..=100.0).contains(&p) || self.aggregate.count == 0 {
            return None;
        }
        let mut sorted = values.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Nearest rank.
        let rank = ((p / 100.0) * self.aggregate.count as f64).ceil().max(1.0) as u64;
        let mut seen: u64 = 0;
        for (value, count) in sorted {
            seen = seen.saturating_add(count);
            if seen >= rank {
                return Some(value);
            }
        }
        None
    }
}

/// What a query asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<(String, String)>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub period_secs: u32,
}

/// A metric as ListMetrics names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MetricName {
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<(String, String)>,
}

/// The metric's number in its namespace's list.
pub fn metric_index(namespace: &str, name: &str) -> Option<u8> {
    let list: &[MetricDef] = match namespace {
        EC2_NAMESPACE => &INSTANCE_METRICS,
        HOST_NAMESPACE => &HOST_METRICS,
        _ => return None,
    };
    list.iter().position(|m| m.name == name).map(|i| i as u8)
}

/// The unit of a metric Stratus keeps.
pub fn metric_unit(namespace: &str, name: &str) -> Option<&'static str> {
    let list: &[MetricDef] = if namespace == EC2_NAMESPACE { &INSTANCE_METRICS } else { &HOST_METRICS };
    metric_index(namespace, name).map(|i| list[i as usize].unit)
}

/// The dimensions an instance series is listed under, beside its own (`InstanceId`): the
/// aggregates EC2 publishes per type and per image, and over every instance.
const GROUPING: [&str; 2] = ["InstanceType", "ImageId"];

/// Whether a series answers a query's dimensions: its own id, a grouping attribute it has,
/// or none (every series of the namespace).
fn series_matches(record: &MetricSeriesRecord, dimensions: &[(String, String)]) -> bool {
    match dimensions {
        [] => true,
        [(name, value)] => record.dimensions.iter().any(|(n, v)| n == name && v == value),
        _ => false,
    }
}

/// The tier a query reads: the finest whose buckets divide the period and whose retention
/// still covers the start, else the finest that covers it.
pub fn tier_for(start_ms: i64, now_ms: i64, period_secs: u32, retention: &Retention) -> &'static Tier {
    let age_days = (now_ms - start_ms).max(0) as f64 / 86_400_000.0;
    let covering = TIERS.iter().zip(retention.days).filter(|(_, days)| age_days <= f64::from(*days));
    covering
        .clone()
        .find(|(t, _)| period_secs.is_multiple_of(t.bucket_minutes * 60))
        .or_else(|| covering.clone().next())
        .map_or(&TIERS[2], |(t, _)| t)
}

/// Merges rows of one metric into periods of `period_secs` from `start_ms` (rounded down to
/// the tier's bucket): pure, for tests.
pub fn into_periods(
    rows: impl IntoIterator<Item = (u32, Aggregate)>,
    start_ms: i64,
    period_secs: u32,
    tier: &Tier,
) -> Vec<Datapoint> {
    let bucket_ms = i64::from(tier.bucket_minutes) * 60_000;
    let origin = start_ms.div_euclid(bucket_ms) * bucket_ms;
    let period_ms = i64::from(period_secs.max(1)) * 1000;
    let mut periods: std::collections::BTreeMap<i64, Datapoint> = Default::default();
    for (bucket, aggregate) in rows {
        let at = i64::from(bucket) * 60_000;
        let start = origin + (at - origin).div_euclid(period_ms) * period_ms;
        let exact = aggregate.min == aggregate.max;
        let point = periods.entry(start).or_insert_with(|| Datapoint {
            at_ms: start,
            aggregate: Aggregate { count: 0, min: f64::INFINITY, max: f64::NEG_INFINITY, sum: 0.0 },
            values: Some(Vec::new()),
        });
        point.aggregate.merge(&aggregate);
        match (&mut point.values, exact) {
            (Some(values), true) => match values.iter_mut().find(|(v, _)| *v == aggregate.min) {
                Some((_, count)) => *count = count.saturating_add(aggregate.count),
                None => values.push((aggregate.min, aggregate.count)),
            },
            (values, _) => *values = None,
        }
    }
    periods.into_values().filter(|p| p.aggregate.count > 0).collect()
}

impl Backend {
    /// How long history is kept, as the monitoring loop was started with.
    pub fn retention(&self) -> Retention {
        *self.monitoring.retention.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The series of `account` in `namespace` (hosts: only for an admin).
    fn visible_series(&self, account: &str, admin: bool, namespace: &str) -> Result<Vec<(String, MetricSeriesRecord)>> {
        let prefix = match namespace {
            EC2_NAMESPACE => format!("{account}/"),
            HOST_NAMESPACE if admin => "~host/".to_owned(),
            _ => return Ok(Vec::new()),
        };
        let cutoff = minute_of(now_ms()).saturating_sub(self.retention().days[2].saturating_mul(24 * 60));
        let mut all = self.store().read(|tx| tx.scan(&METRIC_SERIES, &prefix))?;
        all.retain(|(_, r)| r.namespace == namespace && r.last_minute >= cutoff);
        Ok(all)
    }

    /// The tier a query reads and the minutes `[from, to)` it reads there: never beyond what
    /// the tier keeps (its retention back, two hours ahead), so a query's cost is bounded
    /// whatever times it names. `None` when nothing can answer: the range is empty, or the
    /// tier's buckets do not divide the period (CloudWatch answers no data then too).
    fn range_of(&self, query: &MetricQuery) -> Option<(&'static Tier, u32, u32)> {
        let retention = self.retention();
        let now = now_ms();
        let tier = tier_for(query.start_ms, now, query.period_secs, &retention);
        if !query.period_secs.is_multiple_of(tier.bucket_minutes * 60) {
            return None;
        }
        let kept_from = minute_of(now).saturating_sub(retention.days[usize::from(tier.index)].saturating_mul(24 * 60));
        let from = minute_of(query.start_ms).max(kept_from);
        let to = minute_of(query.end_ms.saturating_add(59_999)).min(minute_of(now).saturating_add(120));
        (from < to).then_some((tier, from, to))
    }

    /// The series of that name, if the index has it.
    fn one_series(&self, name: &str) -> Result<Vec<(String, MetricSeriesRecord)>> {
        let found = self.store().read(|tx| tx.get(&METRIC_SERIES, name))?;
        Ok(found.map(|record| (name.to_owned(), record)).into_iter().collect())
    }

    /// The datapoints of one metric for a caller, period by period: its own instances' series
    /// (or the hosts', for an admin), merged when the dimensions name a group.
    pub fn metric_statistics(&self, account: &str, admin: bool, query: &MetricQuery) -> Result<Vec<Datapoint>> {
        if !matches!(query.namespace.as_str(), EC2_NAMESPACE | HOST_NAMESPACE) {
            return self.custom_statistics(account, query);
        }
        let Some(index) = metric_index(&query.namespace, &query.metric_name) else { return Ok(Vec::new()) };
        let series = match (query.namespace.as_str(), query.dimensions.as_slice()) {
            // One series, named by its own dimension: one read, not a scan of the account's.
            (EC2_NAMESPACE, [(name, id)]) if name == "InstanceId" => self.one_series(&instance_series(account, id))?,
            (HOST_NAMESPACE, [(name, id)]) if name == "HostId" && admin => self.one_series(&host_series(id))?,
            (HOST_NAMESPACE, _) if !admin => Vec::new(),
            _ => self.visible_series(account, admin, &query.namespace)?,
        };
        let Some((tier, from, to)) = self.range_of(query) else { return Ok(Vec::new()) };
        let mut rows = Vec::new();
        for (name, _) in series.iter().filter(|(_, r)| series_matches(r, &query.dimensions)) {
            for (bucket, row) in self.store().read_points(name, tier, from, to)? {
                let at = i64::from(bucket) * 60_000;
                if at + i64::from(tier.bucket_minutes) * 60_000 <= query.start_ms || at >= query.end_ms {
                    continue;
                }
                if let Some((_, aggregate)) = row.into_iter().find(|(m, _)| *m == index) {
                    rows.push((bucket, aggregate));
                }
            }
        }
        Ok(into_periods(rows, query.start_ms, query.period_secs, tier))
    }

    /// A custom metric's datapoints: the one series of exactly these dimensions, as in
    /// CloudWatch (no aggregation across dimensions for custom metrics).
    fn custom_statistics(&self, account: &str, query: &MetricQuery) -> Result<Vec<Datapoint>> {
        let mut dimensions = query.dimensions.clone();
        dimensions.sort();
        let name = custom_series(account, &query.namespace, &query.metric_name, &dimensions);
        let Some((_, record)) = self.one_series(&name)?.pop() else { return Ok(Vec::new()) };
        if record.account != account || record.namespace != query.namespace || record.dimensions != dimensions {
            return Ok(Vec::new());
        }
        let Some((tier, from, to)) = self.range_of(query) else { return Ok(Vec::new()) };
        let rows = self.store().read_points(&name, tier, from, to)?.into_iter().filter_map(|(bucket, row)| {
            let at = i64::from(bucket) * 60_000;
            let inside = at + i64::from(tier.bucket_minutes) * 60_000 > query.start_ms && at < query.end_ms;
            let aggregate = row.into_iter().find(|(m, _)| *m == 0)?.1;
            inside.then_some((bucket, aggregate))
        });
        Ok(into_periods(rows, query.start_ms, query.period_secs, tier))
    }

    /// The unit a custom metric was put with, if any.
    pub fn custom_unit(&self, account: &str, query: &MetricQuery) -> Result<Option<String>> {
        let mut dimensions = query.dimensions.clone();
        dimensions.sort();
        let name = custom_series(account, &query.namespace, &query.metric_name, &dimensions);
        Ok(self.one_series(&name)?.pop().and_then(|(_, r)| r.unit))
    }

    /// The metrics a caller can read, with data in the last `within_minutes` (CloudWatch lists
    /// two weeks' worth), sorted.
    pub fn list_metrics(
        &self,
        account: &str,
        admin: bool,
        namespace: Option<&str>,
        within_minutes: u32,
    ) -> Result<Vec<MetricName>> {
        let cutoff = minute_of(now_ms()).saturating_sub(within_minutes);
        let mut out = std::collections::BTreeSet::new();
        for ns in [EC2_NAMESPACE, HOST_NAMESPACE].into_iter().filter(|ns| namespace.is_none_or(|n| n == *ns)) {
            let list: &[MetricDef] = if ns == EC2_NAMESPACE { &INSTANCE_METRICS } else { &HOST_METRICS };
            for (_, record) in self.visible_series(account, admin, ns)? {
                if record.last_minute < cutoff {
                    continue;
                }
                let own = record.dimensions.first().cloned();
                let groups = record.dimensions.iter().filter(|(n, _)| GROUPING.contains(&n.as_str())).cloned();
                let dimension_sets = own.into_iter().chain(groups).map(|d| vec![d]).chain(std::iter::once(Vec::new()));
                for dimensions in dimension_sets {
                    for metric in list {
                        out.insert(MetricName {
                            namespace: ns.into(),
                            metric_name: metric.name.into(),
                            dimensions: dimensions.clone(),
                        });
                    }
                }
            }
        }
        if namespace.is_none_or(|n| !matches!(n, EC2_NAMESPACE | HOST_NAMESPACE)) {
            let custom = self.store().read(|tx| tx.scan(&METRIC_SERIES, &format!("{account}/~c/")))?;
            for (_, record) in custom {
                if record.last_minute < cutoff || namespace.is_some_and(|n| n != record.namespace) {
                    continue;
                }
                let Some(metric_name) = record.metric else { continue };
                out.insert(MetricName { namespace: record.namespace, metric_name, dimensions: record.dimensions });
            }
        }
        Ok(out.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Instant {
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *ORIGIN.get_or_init(Instant::now) + Duration::from_secs(secs)
    }

    #[test]
    fn cpu_utilization_is_cpu_time_over_elapsed_time_and_vcpus() {
        let before = Baseline { at: at(0), counters: DomainCounters { cpu_time_ns: 0, ..Default::default() } };
        // 10 s of wall time, 2 vCPUs: 5 s of CPU time is a quarter of what they could give.
        let now = Baseline {
            at: at(10),
            counters: DomainCounters {
                cpu_time_ns: 5_000_000_000,
                net_rx_bytes: 1500,
                disk_write_ops: 3,
                ..Default::default()
            },
        };
        let values = usage(&before, &now, 2).unwrap();
        assert_eq!(values[0], (0, 25.0));
        assert_eq!(values[1], (1, 1500.0), "NetworkIn is the bytes received in the interval");
        assert_eq!(values[8], (8, 3.0), "DiskWriteOps");
        // The guest's own vCPU count wins over the record's.
        let four = Baseline { counters: DomainCounters { vcpus: 4, ..now.counters }, ..now };
        assert_eq!(usage(&before, &four, 2).unwrap()[0], (0, 12.5));
        // Never above 100 %, and a counter that went back (a new QEMU process) is no sample.
        let busy = Baseline { counters: DomainCounters { cpu_time_ns: 50_000_000_000, ..Default::default() }, ..now };
        assert_eq!(usage(&before, &busy, 2).unwrap()[0], (0, 100.0));
        assert_eq!(usage(&now, &before, 2), None);
        let reset =
            Baseline { at: at(20), counters: DomainCounters { cpu_time_ns: 6_000_000_000, ..Default::default() } };
        assert_eq!(usage(&now, &reset, 2), None, "NetworkIn went back");
    }

    #[test]
    fn status_checks_fail_for_an_unanswering_host_or_a_stopped_domain() {
        let domain = |state| DomainSample { name: "i-1".into(), state, counters: Default::default() };
        assert_eq!(status_checks(None), Checks { system_ok: false, instance_ok: None });
        let running = domain(PowerState::Running);
        assert_eq!(status_checks(Some(&running)), Checks { system_ok: true, instance_ok: Some(true) });
        let paused = domain(PowerState::Paused);
        let checks = status_checks(Some(&paused));
        assert_eq!(checks.instance_ok, Some(false));
        assert_eq!(check_values(checks), vec![(STATUS_SYSTEM, 0.0), (STATUS_INSTANCE, 1.0), (STATUS_FAILED, 1.0)]);
        assert_eq!(check_values(status_checks(None)), vec![(STATUS_SYSTEM, 1.0), (STATUS_FAILED, 1.0)]);
    }

    #[test]
    fn periods_merge_buckets_and_percentiles_need_uniform_buckets() {
        let minute = 28_000_000u32; // divisible by 5 and by 60
        let start_ms = i64::from(minute) * 60_000;
        let rows = vec![
            (minute, Aggregate::one(10.0)),
            (minute + 1, Aggregate { count: 2, min: 20.0, max: 20.0, sum: 40.0 }),
            (minute + 5, Aggregate { count: 2, min: 1.0, max: 3.0, sum: 4.0 }),
        ];
        let points = into_periods(rows, start_ms + 30_000, 300, &TIERS[0]);
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].at_ms, start_ms, "periods start on the minute");
        assert_eq!(points[0].aggregate, Aggregate { count: 3, min: 10.0, max: 20.0, sum: 50.0 });
        assert_eq!(points[0].percentile(50.0), Some(20.0));
        assert_eq!(points[0].percentile(0.0), Some(10.0));
        assert_eq!(points[0].percentile(100.0), Some(20.0));
        assert_eq!(points[1].at_ms, start_ms + 300_000);
        assert_eq!(points[1].percentile(50.0), None, "a bucket of different values hides its distribution");
        assert!(into_periods(Vec::new(), start_ms, 60, &TIERS[0]).is_empty(), "no samples, no datapoint");
    }

    #[test]
    fn queries_read_the_finest_tier_that_covers_them() {
        let now = 1_800_000_000_000;
        let day = 86_400_000;
        let r = Retention::default();
        assert_eq!(tier_for(now - day, now, 60, &r).index, 0);
        assert_eq!(tier_for(now - day, now, 300, &r).index, 0);
        assert_eq!(tier_for(now - 20 * day, now, 60, &r).index, 1, "minutes are kept 15 days");
        assert_eq!(tier_for(now - 20 * day, now, 3600, &r).index, 1);
        assert_eq!(tier_for(now - 100 * day, now, 300, &r).index, 2);
    }
}
