//! Prometheus metrics on a listener of their own (`--metrics-listen`, never the API's port):
//! `GET /metrics` answers in the OpenMetrics text format, written by the `prometheus-client`
//! crate.
//!
//! What a scrape holds:
//! 1. the control plane's health ([`backend::telemetry`]) and the API's requests by action
//!    and code, with their latency ([`requests`]);
//! 2. each host's and each instance's figures from the monitoring's last sample
//!    ([`Live`], read at scrape time: a guest that is gone leaves no series behind), with
//!    `host_id`, `instance_id`, `account_id` and `instance_type` labels;
//! 3. the store's size.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use backend::Backend;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;

/// An API request: its action (`-` when none was decoded) and its answer's code (`OK` or the
/// EC2 / CloudWatch error code).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub action: String,
    pub code: String,
}

type RequestFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// From 50 µs to about 1.6 s.
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The API's requests, by action and code: their count and latency.
pub fn requests() -> &'static RequestFamily {
    static REQUESTS: OnceLock<RequestFamily> = OnceLock::new();
    REQUESTS.get_or_init(|| Family::new_with_constructor(request_histogram))
}

/// Counts one answered request.
pub fn observe_request(action: &str, code: &str, seconds: f64) {
    requests().get_or_create(&RequestLabels { action: action.to_owned(), code: code.to_owned() }).observe(seconds);
}

/// The figures read off the monitoring's last sample at each scrape.
struct Live {
    backend: Arc<Backend>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// Writes one metric family of const values.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    rows: &[(Labels<'_>, M)],
) -> Result<(), std::fmt::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, unit, kind)?;
    for (labels, value) in rows {
        value.encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let samples = self.backend.last_samples();
        let labels = self.backend.instance_labels();
        let hosts: Vec<_> = self.backend.hosts().iter().map(|h| (h.id.clone(), h.reachable())).collect();
        let up: Vec<(Labels, ConstGauge<i64>)> = hosts
            .iter()
            .map(|(id, reachable)| {
                (vec![("host_id", id.as_str())], ConstGauge::new(i64::from(*reachable == Some(true))))
            })
            .collect();
        family(
            &mut encoder,
            "stratus_host_up",
            "Whether the host answered its last probe",
            None,
            MetricType::Gauge,
            &up,
        )?;
        let bytes = Some(&Unit::Bytes);
        let seconds = Some(&Unit::Seconds);
        if let Some(heap) = crate::heap::stats() {
            for (name, help, value) in [
                ("stratus_heap_allocated", "Bytes the control plane has allocated and not freed", heap.allocated),
                ("stratus_heap_active", "Bytes in the heap's pages that hold allocations", heap.active),
                (
                    "stratus_heap_resident",
                    "Bytes of the heap resident in memory, kept free pages included",
                    heap.resident,
                ),
            ] {
                let value = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
                family(&mut encoder, name, help, bytes, MetricType::Gauge, &[(vec![], value)])?;
            }
        }
        let host_rows =
            |f: &dyn Fn(&backend::hypervisor::HostSample) -> Option<i64>| -> Vec<(Labels, ConstGauge<i64>)> {
                samples
                    .iter()
                    .filter_map(|(id, _, s)| Some((vec![("host_id", id.as_str())], ConstGauge::new(f(s)?))))
                    .collect()
            };
        family(
            &mut encoder,
            "stratus_host_memory_total",
            "The host's memory",
            bytes,
            MetricType::Gauge,
            &host_rows(&|s| Some((s.memory_total_kib * 1024) as i64)),
        )?;
        family(
            &mut encoder,
            "stratus_host_memory_free",
            "The host's free memory, when it tells",
            bytes,
            MetricType::Gauge,
            &host_rows(&|s| s.memory_free_kib.map(|k| (k * 1024) as i64)),
        )?;
        let instances_on = |host: &str| {
            samples
                .iter()
                .filter(|(id, _, _)| id == host)
                .flat_map(|(_, _, s)| s.domains.iter())
                .filter(|d| labels.contains_key(&d.name))
                .count() as i64
        };
        let counted: Vec<(Labels, ConstGauge<i64>)> = samples
            .iter()
            .map(|(id, _, _)| (vec![("host_id", id.as_str())], ConstGauge::new(instances_on(id))))
            .collect();
        family(
            &mut encoder,
            "stratus_host_instances",
            "Stratus instances on the host",
            None,
            MetricType::Gauge,
            &counted,
        )?;
        let cpu: Vec<(Labels, ConstCounter<f64>)> = samples
            .iter()
            .filter_map(|(id, _, s)| {
                Some((vec![("host_id", id.as_str())], ConstCounter::new(s.cpu_ns?.0 as f64 / 1e9)))
            })
            .collect();
        family(
            &mut encoder,
            "stratus_host_cpu_busy",
            "CPU time the host spent busy, all CPUs",
            seconds,
            MetricType::Counter,
            &cpu,
        )?;

        // Instances: only domains that are Stratus's instances.
        let domains: Vec<(Labels, &backend::hypervisor::DomainSample)> = samples
            .iter()
            .flat_map(|(host, _, s)| s.domains.iter().map(move |d| (host, d)))
            .filter_map(|(host, d)| {
                let l = labels.get(&d.name)?;
                Some((
                    vec![
                        ("instance_id", d.name.as_str()),
                        ("host_id", host.as_str()),
                        ("account_id", l.account_id.as_str()),
                        ("instance_type", l.instance_type.as_str()),
                    ],
                    d,
                ))
            })
            .collect();
        type Pick = fn(&backend::hypervisor::DomainCounters) -> u64;
        let counters: [(&str, &str, Option<&Unit>, Pick); 8] = [
            ("stratus_instance_network_receive", "Bytes the guest received, all NICs", bytes, |c| c.net_rx_bytes),
            ("stratus_instance_network_transmit", "Bytes the guest sent, all NICs", bytes, |c| c.net_tx_bytes),
            ("stratus_instance_network_receive_packets", "Packets the guest received", None, |c| c.net_rx_packets),
            ("stratus_instance_network_transmit_packets", "Packets the guest sent", None, |c| c.net_tx_packets),
            ("stratus_instance_disk_read", "Bytes the guest read, all disks", bytes, |c| c.disk_read_bytes),
            ("stratus_instance_disk_written", "Bytes the guest wrote, all disks", bytes, |c| c.disk_write_bytes),
            ("stratus_instance_disk_read_ops", "Read requests of the guest", None, |c| c.disk_read_ops),
            ("stratus_instance_disk_write_ops", "Write requests of the guest", None, |c| c.disk_write_ops),
        ];
        let cpu: Vec<(Labels, ConstCounter<f64>)> =
            domains.iter().map(|(l, d)| (l.clone(), ConstCounter::new(d.counters.cpu_time_ns as f64 / 1e9))).collect();
        family(
            &mut encoder,
            "stratus_instance_cpu",
            "CPU time of the guest's vCPUs (since its QEMU process started)",
            seconds,
            MetricType::Counter,
            &cpu,
        )?;
        for (name, help, unit, pick) in counters {
            let rows: Vec<(Labels, ConstCounter<u64>)> =
                domains.iter().map(|(l, d)| (l.clone(), ConstCounter::new(pick(&d.counters)))).collect();
            family(&mut encoder, name, help, unit, MetricType::Counter, &rows)?;
        }
        let gauge = |pick: Pick| -> Vec<(Labels, ConstGauge<i64>)> {
            domains.iter().map(|(l, d)| (l.clone(), ConstGauge::new(pick(&d.counters) as i64))).collect()
        };
        family(
            &mut encoder,
            "stratus_instance_vcpus",
            "The guest's vCPUs",
            None,
            MetricType::Gauge,
            &gauge(|c| u64::from(c.vcpus)),
        )?;
        family(
            &mut encoder,
            "stratus_instance_memory",
            "Memory the guest has (its balloon)",
            bytes,
            MetricType::Gauge,
            &gauge(|c| c.memory_kib * 1024),
        )?;
        family(
            &mut encoder,
            "stratus_instance_memory_resident",
            "Memory its QEMU process holds resident",
            bytes,
            MetricType::Gauge,
            &gauge(|c| c.rss_kib * 1024),
        )?;
        let running: Vec<(Labels, ConstGauge<i64>)> = domains
            .iter()
            .map(|(l, d)| (l.clone(), ConstGauge::new(i64::from(d.state == backend::hypervisor::PowerState::Running))))
            .collect();
        family(&mut encoder, "stratus_instance_running", "Whether the guest runs", None, MetricType::Gauge, &running)?;
        // As the last collection read it: a scrape must not wait on the store's writer.
        let store = [(Vec::new(), ConstGauge::new(self.backend.store_bytes() as i64))];
        family(&mut encoder, "stratus_store", "Space the store's database takes", bytes, MetricType::Gauge, &store)?;
        Ok(())
    }
}

/// Everything a scrape answers.
pub struct Exporter {
    registry: Registry,
}

impl Exporter {
    pub fn new(backend: Arc<Backend>) -> Self {
        let mut registry = Registry::default();
        backend::telemetry::global().register(&mut registry);
        registry.register_with_unit(
            "stratus_api_request",
            "API requests (EC2 and CloudWatch) by action and answer code, with their latency",
            Unit::Seconds,
            requests().clone(),
        );
        registry.register_collector(Box::new(Live { backend }));
        Self { registry }
    }

    /// The OpenMetrics text of a scrape.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "encoding metrics failed");
        }
        text
    }
}

fn answer(exporter: &Exporter, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    if request.uri().path() != "/metrics" {
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    }
    if request.method() != http::Method::GET && request.method() != http::Method::HEAD {
        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return response;
    }
    *response.body_mut() = Full::new(Bytes::from(exporter.render()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Serves `GET /metrics` on `listener` until the process ends; one scrape at a time per
/// connection, on the executor (a scrape reads memory and one store statistic).
pub async fn serve(listener: TcpListener, exporter: Arc<Exporter>) {
    loop {
        let (stream, _): (_, SocketAddr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a metrics connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let exporter = Arc::clone(&exporter);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = answer(&exporter, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(60), connection).await;
        });
    }
}
