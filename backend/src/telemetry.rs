//! The control plane's own health as Prometheus metrics, kept with the `prometheus-client`
//! crate: every host call's latency ([`crate::bridge`]), sweeps, the conductor's queue and
//! work, metric collection, migrations by outcome and their downtime. The gateway adds its
//! requests and serves them all, with the guests' and hosts' figures of the last sample
//! ([`crate::monitoring`]), on its metrics listener.
//!
//! One set per process ([`global`]): the figures describe the process, whatever backends it
//! holds (tests hold several; they share the counters).

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// A host call: which host, which call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub host_id: String,
    pub call: String,
}

/// How a migration ended: `completed`, `failed` or `cancelled`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// From a millisecond to about a minute.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

pub struct Telemetry {
    pub host_call_seconds: HistogramFamily<CallLabels>,
    pub sweep_seconds: Histogram,
    pub conductor_queue_depth: Gauge,
    pub conductor_work_seconds: Histogram,
    pub collect_seconds: Histogram,
    pub migrations: Family<OutcomeLabels, Counter>,
    pub migration_downtime_seconds: Histogram,
}

impl Telemetry {
    fn new() -> Self {
        Self {
            host_call_seconds: Family::new_with_constructor(latency_histogram),
            sweep_seconds: latency_histogram(),
            conductor_queue_depth: Gauge::default(),
            conductor_work_seconds: latency_histogram(),
            collect_seconds: latency_histogram(),
            migrations: Family::default(),
            // From a millisecond to about 8 s.
            migration_downtime_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
        }
    }

    /// Adds this set to `registry` (the metrics are shared, not copied).
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "stratus_host_call",
            "Latency of calls to a host's hypervisor (libvirt), by host and call",
            Unit::Seconds,
            self.host_call_seconds.clone(),
        );
        registry.register_with_unit(
            "stratus_sweep",
            "Duration of a reconciliation sweep over every host",
            Unit::Seconds,
            self.sweep_seconds.clone(),
        );
        registry.register(
            "stratus_conductor_queue_depth",
            "Instances (and other keys) the conductor is driving or has queued",
            self.conductor_queue_depth.clone(),
        );
        registry.register_with_unit(
            "stratus_conductor_work",
            "Duration of one pass of the conductor's work on an instance",
            Unit::Seconds,
            self.conductor_work_seconds.clone(),
        );
        registry.register_with_unit(
            "stratus_metrics_collect",
            "Duration of one sample of every host for monitoring",
            Unit::Seconds,
            self.collect_seconds.clone(),
        );
        registry.register("stratus_migrations", "Live migrations that ended, by outcome", self.migrations.clone());
        registry.register_with_unit(
            "stratus_migration_downtime",
            "Downtime of completed live migrations, as the target host measured it",
            Unit::Seconds,
            self.migration_downtime_seconds.clone(),
        );
    }

    /// A migration ended; `downtime_ms` is what the target measured, for completed ones.
    pub fn migration_ended(&self, outcome: &str, downtime_ms: Option<u64>) {
        self.migrations.get_or_create(&OutcomeLabels { outcome: outcome.to_owned() }).inc();
        if let Some(ms) = downtime_ms {
            self.migration_downtime_seconds.observe(ms as f64 / 1000.0);
        }
    }
}

/// The process's set.
pub fn global() -> &'static Telemetry {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(Telemetry::new)
}
