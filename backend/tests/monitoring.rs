//! Monitoring on fake hosts with scripted counters ([`backend::monitoring`]): every metric's
//! arithmetic through collection, storage and queries; gaps for an unreachable host; one
//! series across a live migration; each account sees only its own.

mod fakes;

use backend::fake::{FakeCloud, HostMode, MigrationScript};
use backend::hypervisor::{DomainCounters, MigrationOptions};
use backend::monitoring::{Datapoint, MetricQuery, EC2_NAMESPACE, HOST_NAMESPACE};
use backend::{now_ms, Backend};

const ACCOUNT: &str = "123456789012";
const OTHER: &str = "210987654321";

fn uri_of(b: &Backend, host_id: &str) -> String {
    b.hosts().get(host_id).unwrap().config.uri.clone()
}

/// Everything the instance's series holds for `metric`, as one datapoint.
fn total(b: &Backend, account: &str, metric: &str, dimensions: &[(&str, &str)]) -> Option<Datapoint> {
    let now = now_ms();
    let query = MetricQuery {
        namespace: EC2_NAMESPACE.into(),
        metric_name: metric.into(),
        dimensions: dimensions.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        start_ms: now - 3 * 3_600_000,
        end_ms: now + 3_600_000,
        period_secs: 86_400,
    };
    let mut points = b.metric_statistics(account, false, &query).unwrap();
    assert!(points.len() <= 1, "{points:?}");
    points.pop()
}

fn counters(cpu_s: u64, rx: u64, tx: u64) -> DomainCounters {
    DomainCounters {
        cpu_time_ns: cpu_s * 1_000_000_000,
        net_rx_bytes: rx,
        net_tx_bytes: tx,
        net_rx_packets: rx / 100,
        net_tx_packets: tx / 100,
        disk_read_bytes: rx * 2,
        disk_write_bytes: tx * 2,
        disk_read_ops: rx / 10,
        disk_write_ops: tx / 10,
        ..Default::default()
    }
}

#[test]
fn counters_become_metrics_with_gaps_for_outages_and_one_series_across_migration() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cloud, id, hosts): (_, FakeCloud, _, _) =
        fakes::pair_with_instance(ACCOUNT, MigrationScript::Converges, dir.path());
    let record = b.instance(ACCOUNT, &id).unwrap();
    let source = uri_of(&b, &record.host_id);
    let target_id = hosts.iter().find(|h| **h != record.host_id).unwrap().clone();

    // The first sample only sets the baseline: status checks, no usage yet.
    cloud.set_counters(&source, &id, counters(0, 0, 0));
    let report = b.collect().unwrap();
    assert_eq!((report.hosts, report.unreachable, report.instances), (2, 0, 1));
    assert!(total(&b, ACCOUNT, "CPUUtilization", &[("InstanceId", &id)]).is_none());
    let passed = total(&b, ACCOUNT, "StatusCheckFailed", &[("InstanceId", &id)]).unwrap();
    assert_eq!((passed.aggregate.count, passed.aggregate.sum), (1, 0.0));
    assert_eq!(b.status_checks(&id).map(|c| (c.system_ok, c.instance_ok)), Some((true, Some(true))));

    // Traffic: deltas are exact; CPU time beyond what the vCPUs could give is 100 %.
    cloud.set_counters(&source, &id, counters(10_000, 1500, 300));
    b.collect().unwrap();
    let net_in = total(&b, ACCOUNT, "NetworkIn", &[("InstanceId", &id)]).unwrap();
    assert_eq!((net_in.aggregate.count, net_in.aggregate.sum), (1, 1500.0));
    assert_eq!(total(&b, ACCOUNT, "NetworkOut", &[("InstanceId", &id)]).unwrap().aggregate.sum, 300.0);
    assert_eq!(total(&b, ACCOUNT, "NetworkPacketsIn", &[("InstanceId", &id)]).unwrap().aggregate.sum, 15.0);
    assert_eq!(total(&b, ACCOUNT, "NetworkPacketsOut", &[("InstanceId", &id)]).unwrap().aggregate.sum, 3.0);
    assert_eq!(total(&b, ACCOUNT, "DiskReadBytes", &[("InstanceId", &id)]).unwrap().aggregate.sum, 3000.0);
    assert_eq!(total(&b, ACCOUNT, "DiskWriteBytes", &[("InstanceId", &id)]).unwrap().aggregate.sum, 600.0);
    assert_eq!(total(&b, ACCOUNT, "DiskReadOps", &[("InstanceId", &id)]).unwrap().aggregate.sum, 150.0);
    assert_eq!(total(&b, ACCOUNT, "DiskWriteOps", &[("InstanceId", &id)]).unwrap().aggregate.sum, 30.0);
    let cpu = total(&b, ACCOUNT, "CPUUtilization", &[("InstanceId", &id)]).unwrap();
    assert_eq!((cpu.aggregate.count, cpu.aggregate.max), (1, 100.0));
    // An idle interval: 0 %, and the period's statistics cover both samples.
    b.collect().unwrap();
    let cpu = total(&b, ACCOUNT, "CPUUtilization", &[("InstanceId", &id)]).unwrap();
    assert_eq!((cpu.aggregate.count, cpu.aggregate.min, cpu.aggregate.max, cpu.aggregate.sum), (2, 0.0, 100.0, 100.0));

    // Grouped by type and image, and over all instances: the same single instance.
    assert_eq!(total(&b, ACCOUNT, "NetworkIn", &[("InstanceType", "t3.nano")]).unwrap().aggregate.sum, 1500.0);
    assert_eq!(total(&b, ACCOUNT, "NetworkIn", &[("ImageId", &record.image_id)]).unwrap().aggregate.sum, 1500.0);
    assert_eq!(total(&b, ACCOUNT, "NetworkIn", &[]).unwrap().aggregate.sum, 1500.0);
    assert!(total(&b, ACCOUNT, "NetworkIn", &[("InstanceType", "m5.large")]).is_none());

    // Another account sees nothing of it, under any dimension, and lists nothing.
    assert!(total(&b, OTHER, "NetworkIn", &[("InstanceId", &id)]).is_none());
    assert!(total(&b, OTHER, "NetworkIn", &[]).is_none());
    assert!(b.list_metrics(OTHER, false, None, 15 * 24 * 60).unwrap().is_empty());
    let listed = b.list_metrics(ACCOUNT, false, None, 15 * 24 * 60).unwrap();
    assert!(listed.iter().all(|m| m.namespace == EC2_NAMESPACE), "hosts are for admins");
    assert_eq!(listed.iter().filter(|m| m.dimensions == [("InstanceId".to_string(), id.clone())]).count(), 12);
    let admin = b.list_metrics(ACCOUNT, true, Some(HOST_NAMESPACE), 15 * 24 * 60).unwrap();
    assert_eq!(admin.iter().filter(|m| m.metric_name == "Instances" && !m.dimensions.is_empty()).count(), 2);

    // The host stops answering: a gap in usage, a failed system check, no error.
    cloud.set_mode(&source, HostMode::Unreachable);
    cloud.set_counters(&source, &id, counters(10_000, 99_999, 300));
    let report = b.collect().unwrap();
    assert_eq!(report.unreachable, 1);
    assert_eq!(b.status_checks(&id).map(|c| (c.system_ok, c.instance_ok)), Some((false, None)));
    let system = total(&b, ACCOUNT, "StatusCheckFailed_System", &[("InstanceId", &id)]).unwrap();
    assert_eq!((system.aggregate.count, system.aggregate.max), (4, 1.0));
    assert_eq!(total(&b, ACCOUNT, "StatusCheckFailed_Instance", &[("InstanceId", &id)]).unwrap().aggregate.count, 3);
    assert_eq!(total(&b, ACCOUNT, "StatusCheckFailed", &[("InstanceId", &id)]).unwrap().aggregate.sum, 1.0);
    // Back: what happened while it was away is not charged to one sample.
    cloud.set_mode(&source, HostMode::Answering);
    b.collect().unwrap();
    assert_eq!(total(&b, ACCOUNT, "NetworkIn", &[("InstanceId", &id)]).unwrap().aggregate.sum, 1500.0);
    cloud.set_counters(&source, &id, counters(10_000, 100_099, 300));
    b.collect().unwrap();
    let net_in = total(&b, ACCOUNT, "NetworkIn", &[("InstanceId", &id)]).unwrap();
    assert_eq!((net_in.aggregate.count, net_in.aggregate.sum), (3, 1600.0));

    // A live migration: counters start again on the target; the series goes on.
    let migration = b.migrate_instance(&id, Some(&target_id), MigrationOptions::default()).unwrap();
    b.converge(&format!("{ACCOUNT}/{id}")).unwrap();
    let done = b.migrations().unwrap().into_iter().find(|m| m.id == migration.id).unwrap();
    assert_eq!(done.status, storage::MigrationStatus::Completed, "{:?}", done.error);
    let target = uri_of(&b, &target_id);
    cloud.set_counters(&target, &id, counters(0, 10, 0));
    b.collect().unwrap();
    assert_eq!(b.status_checks(&id).map(|c| c.system_ok), Some(true), "found on its new host");
    assert_eq!(total(&b, ACCOUNT, "NetworkIn", &[("InstanceId", &id)]).unwrap().aggregate.sum, 1600.0);
    cloud.set_counters(&target, &id, counters(0, 510, 0));
    b.collect().unwrap();
    let net_in = total(&b, ACCOUNT, "NetworkIn", &[("InstanceId", &id)]).unwrap();
    assert_eq!((net_in.aggregate.count, net_in.aggregate.sum), (4, 2100.0), "one series, before and after");
}

/// The series index is written once an hour per series, and again at once when a series'
/// dimensions change (an instance resized while stopped comes back as another type).
#[test]
fn the_series_index_follows_a_change_of_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cloud, id, _): (_, FakeCloud, _, _) =
        fakes::pair_with_instance(ACCOUNT, MigrationScript::Converges, dir.path());
    let record = b.instance(ACCOUNT, &id).unwrap();
    let source = uri_of(&b, &record.host_id);
    let listed_type = |b: &Backend| -> Vec<String> {
        let listed = b.list_metrics(ACCOUNT, false, None, 15 * 24 * 60).unwrap();
        let mut types: Vec<String> = listed
            .iter()
            .flat_map(|m| &m.dimensions)
            .filter(|(name, _)| name == "InstanceType")
            .map(|(_, value)| value.clone())
            .collect();
        types.dedup();
        types
    };
    cloud.set_counters(&source, &id, counters(0, 0, 0));
    b.collect().unwrap();
    assert_eq!(listed_type(&b), ["t3.nano"]);
    let key = format!("{ACCOUNT}/{id}");
    b.store()
        .write(|tx| {
            let mut record = tx.get(&storage::tables::INSTANCES, &key)?.unwrap();
            record.instance_type = "m5.large".into();
            tx.insert(&storage::tables::INSTANCES, &key, &record)
        })
        .unwrap();
    b.collect().unwrap();
    assert_eq!(listed_type(&b), ["m5.large"], "rewritten within the hour");
}

#[test]
fn custom_metrics_are_one_series_per_exact_dimensions_and_their_account_s_own() {
    use backend::monitoring::{Aggregate, Datum};
    let b = Backend::with_hosts(
        storage::Store::in_memory().unwrap(),
        backend::Topology::default(),
        backend::hosts::HostPool::new(Vec::new()),
    );
    let now = now_ms();
    let dims = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut d: Vec<_> = pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        d.sort();
        d
    };
    let datum = |d: &[(&str, &str)], value: f64| Datum {
        metric_name: "Latency".into(),
        dimensions: dims(d),
        at_ms: now,
        aggregate: Aggregate::one(value),
        unit: Some("Milliseconds".into()),
    };
    let both = [("Service", "checkout"), ("Az", "a")];
    b.put_metric_data(ACCOUNT, "Shop", vec![datum(&both, 10.0), datum(&both, 30.0), datum(&both[..1], 99.0)]).unwrap();
    let query = |dimensions: &[(&str, &str)], namespace: &str| MetricQuery {
        namespace: namespace.into(),
        metric_name: "Latency".into(),
        dimensions: dimensions.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        start_ms: now - 3_600_000,
        end_ms: now + 3_600_000,
        period_secs: 86_400,
    };
    // The dimensions' order does not matter; their set does.
    let reversed = [both[1], both[0]];
    let [point] = b.metric_statistics(ACCOUNT, false, &query(&reversed, "Shop")).unwrap().try_into().unwrap();
    assert_eq!((point.aggregate.count, point.aggregate.sum, point.aggregate.max), (2, 40.0, 30.0));
    let [alone] = b.metric_statistics(ACCOUNT, false, &query(&both[..1], "Shop")).unwrap().try_into().unwrap();
    assert_eq!(alone.aggregate.sum, 99.0);
    assert!(b.metric_statistics(ACCOUNT, false, &query(&[], "Shop")).unwrap().is_empty());
    assert!(b.metric_statistics(ACCOUNT, false, &query(&both, "Other")).unwrap().is_empty());
    assert_eq!(b.custom_unit(ACCOUNT, &query(&both, "Shop")).unwrap().as_deref(), Some("Milliseconds"));
    // Any range is read only as far as history is kept: the epoch to far beyond year 10,000
    // finds the same data, at the hourly tier's cost.
    let huge = MetricQuery { start_ms: 0, end_ms: 1_000_000_000_000_000, ..query(&both, "Shop") };
    let points = b.metric_statistics(ACCOUNT, false, &huge).unwrap();
    assert_eq!(points.iter().map(|p| p.aggregate.sum).sum::<f64>(), 40.0);
    // A period the tier's buckets do not divide has no answer (as in CloudWatch).
    let uneven = MetricQuery { start_ms: now - 20 * 86_400_000, period_secs: 120, ..query(&both, "Shop") };
    assert!(b.metric_statistics(ACCOUNT, false, &uneven).unwrap().is_empty());
    let listed = b.list_metrics(ACCOUNT, false, Some("Shop"), 60).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(b.list_metrics(ACCOUNT, false, Some(EC2_NAMESPACE), 60).unwrap().is_empty());
    // Nobody else's.
    assert!(b.metric_statistics(OTHER, false, &query(&both, "Shop")).unwrap().is_empty());
    assert!(b.list_metrics(OTHER, true, None, 60).unwrap().is_empty());
}
