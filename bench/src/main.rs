//! `stratus-bench`: Stratus measured against its peers, side by side, on one machine.
//!
//! - `api`: a SigV4 load generator ([`load`]) against Stratus, moto_server and a bare hyper
//!   server ([`bare`]) as the store grows ([`api`]); writes `api.json`.
//! - `scheduler`: one placement over 10,000 hosts holding 100,000 instances ([`scheduler`]);
//!   writes `scheduler.json`.
//! - `inproc`: the gateway's request handler in a loop, over an in-memory store ([`inproc`]):
//!   Stratus's CPU per request with nothing else on the path; writes `inproc-N.json`.
//! - `pages`: what one Describe page costs as one account grows ([`pages`]); writes
//!   `pages.json`.
//! - `ovn`: Stratus's reconciliation of 1,000 OVN ports against the northbound database
//!   `scripts/setup-host` runs, beside a bare `ovn-nbctl` batch ([`ovn`]); writes `ovn.json`.
//! - `monitoring`: metric collection per host and instance, history bytes per instance-day,
//!   and CloudWatch queries over a large history ([`monitoring`]); writes `monitoring.json`.
//! - `report`: tables and SVG plots from a results directory (`api.json`, `inproc-N.json`,
//!   `scheduler.json`), for `docs/benchmarks.md` ([`report`]).
//! - `bare-server`: the ceiling, as its own process.
//!
//! Nothing here passes or fails on a number: figures are printed and stored, and the targets
//! are judged in the report.

mod api;
mod bare;
mod inproc;
mod load;
mod monitoring;
mod ovn;
mod pages;
mod report;
mod scheduler;
mod systems;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// The allocator the `stratus` binary runs on (`gateway::heap`, whose options this binary
/// takes too): the in-process benchmarks (`inproc`, `pages`) time the request path as the
/// server runs it. On glibc's malloc, allocation took about a third of a pages run's CPU samples
/// (perf); on jemalloc a fourteenth.
#[global_allocator]
static HEAP: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "stratus-bench", about = "Benchmarks Stratus against moto_server, a bare hyper server and virsh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The API benchmark (needs root for the lab hosts, unless --quick).
    Api {
        /// Where api.json and the systems' logs go.
        #[arg(long, default_value = "bench/results/latest")]
        out: PathBuf,
        /// The Stratus binary (a release build).
        #[arg(long, default_value = "target/release/stratus")]
        stratus_bin: PathBuf,
        /// A small run on the in-process test driver: 120 and 320 instances, moto included.
        #[arg(long)]
        quick: bool,
        /// Leave moto_server out.
        #[arg(long)]
        no_moto: bool,
        /// Store sizes to measure at (default 1000,10000,100000; --quick: 120,320).
        #[arg(long, value_delimiter = ',')]
        stages: Option<Vec<usize>>,
        /// Instances the measured account holds at most; a larger store is filled by other
        /// accounts (Stratus only).
        #[arg(long, default_value_t = 10_000)]
        account_size: usize,
        /// Seconds each measured window lasts (after one second of warm-up).
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Concurrencies of the by-id runs (default 1,8,64; --quick: 1,8).
        #[arg(long, value_delimiter = ',')]
        concurrency: Option<Vec<usize>>,
        /// How many times each by-id pair (bare server, then each system) is measured at each
        /// concurrency: the report gives the ratio's median and range over the rounds.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// redb's page cache for Stratus, MiB (`[storage] cache_mib`; its default when absent).
        #[arg(long)]
        cache_mib: Option<usize>,
        /// Also measure a Stratus whose state is in this (empty) PostgreSQL database, as
        /// `stratus-pg` (`scripts/postgres createdb bench_api` makes one).
        #[arg(long)]
        postgres: Option<String>,
    },
    /// One placement over many hosts and instances.
    Scheduler {
        #[arg(long, default_value = "bench/results/latest")]
        out: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        hosts: usize,
        #[arg(long, default_value_t = 100_000)]
        instances: usize,
    },
    /// Stratus's own CPU cost per request: the request handler in a loop, no network.
    Inproc {
        #[arg(long, default_value = "bench/results/latest")]
        out: PathBuf,
        #[arg(long, default_value_t = 1_000)]
        instances: usize,
        #[arg(long, default_value_t = 20_000)]
        iterations: usize,
        /// Only the requests whose name holds this text.
        #[arg(long)]
        only: Option<String>,
    },
    /// What one Describe page costs as one account grows (the handler in a loop, no network).
    Pages {
        #[arg(long, default_value = "bench/results/latest")]
        out: PathBuf,
        /// Instances the account holds at each stage (volumes: a tenth of that).
        #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
        sizes: Vec<usize>,
        /// Calls per timed page.
        #[arg(long, default_value_t = 200)]
        calls: usize,
        /// redb's page cache, as `[storage] cache_mib` sets it for `stratus serve`.
        #[arg(long, default_value_t = storage::DEFAULT_CACHE_MIB)]
        cache_mib: usize,
        /// Keep each size's filled store under this folder, and time the ones found there
        /// instead of filling them again (for profiling: filling 100,000 takes minutes).
        #[arg(long)]
        keep: Option<PathBuf>,
        /// Only the cases of this action, or `ACTION:FILTER` (e.g. `DescribeInstances:none`),
        /// several apart by commas, and no walks.
        #[arg(long)]
        only: Option<String>,
    },
    /// Stratus's reconciliation of many OVN ports, beside a bare ovn-nbctl batch (needs OVN:
    /// scripts/setup-host).
    Ovn {
        #[arg(long, default_value = "bench/results/latest")]
        out: PathBuf,
        #[arg(long, default_value = "unix:/run/stratus/ovn/ovnnb_db.sock")]
        northbound: String,
        #[arg(long, default_value_t = 1_000)]
        ports: usize,
        #[arg(long, default_value_t = 5)]
        repetitions: usize,
    },
    /// Metric collection, history size and CloudWatch queries over a large history.
    Monitoring {
        #[arg(long, default_value = "bench/results/latest")]
        out: PathBuf,
        /// Fleets to collect from, as HOSTSxINSTANCES_PER_HOST.
        #[arg(long, value_delimiter = ',', default_value = "1x0,1x100,1x1000,10x100")]
        fleets: Vec<String>,
        /// Timed collections per fleet.
        #[arg(long, default_value_t = 20)]
        samples: usize,
        /// Instances whose day of samples measures the bytes per instance-day.
        #[arg(long, default_value_t = 20)]
        day_instances: usize,
        /// Instances whose history the queries run against, and how many hours of it.
        #[arg(long, default_value_t = 10_000)]
        history_instances: usize,
        #[arg(long, default_value_t = 24)]
        history_hours: u32,
    },
    /// Tables and plots from a results directory.
    Report {
        #[arg(long, default_value = "bench/results/latest")]
        results: PathBuf,
        /// Where the SVG plots and the tables (results.md) go.
        #[arg(long, default_value = "docs/bench")]
        out: PathBuf,
    },
    /// A bare hyper server answering a fixed ~1 KB body.
    BareServer {
        #[arg(long)]
        listen: SocketAddr,
    },
}

/// What machine the figures come from.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, m)| m.trim().to_owned()));
    let memory_kib: Option<u64> = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse().ok()));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    serde_json::json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "memory_gib": memory_kib.map(|k| (k as f64 / 1024.0 / 1024.0).round()),
        "kernel": kernel.trim(),
        "date": chrono::Utc::now().to_rfc3339(),
    })
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Api {
            out,
            stratus_bin,
            quick,
            no_moto,
            stages,
            account_size,
            seconds,
            concurrency,
            rounds,
            cache_mib,
            postgres,
        } => {
            let stages = stages.unwrap_or_else(|| if quick { vec![120, 320] } else { vec![1_000, 10_000, 100_000] });
            let concurrencies = concurrency.unwrap_or_else(|| if quick { vec![1, 8] } else { vec![1, 8, 64] });
            let options = api::Options {
                out,
                stratus_bin: std::path::absolute(stratus_bin)?,
                quick,
                moto: !no_moto,
                stages,
                account_size,
                concurrencies,
                rounds: rounds.max(1),
                cache_mib,
                measure: Duration::from_secs_f64(seconds),
                postgres,
            };
            runtime.block_on(api::run(options))
        }
        Command::Scheduler { out, hosts, instances } => scheduler::run(&out, hosts, instances),
        Command::Pages { out, sizes, calls, cache_mib, keep, only } => {
            pages::run(&out, &sizes, calls, cache_mib, keep.as_deref(), only.as_deref())
        }
        Command::Inproc { out, instances, iterations, only } => {
            inproc::run(&out, instances, iterations, only.as_deref())
        }
        Command::Ovn { out, northbound, ports, repetitions } => ovn::run(&out, &northbound, ports, repetitions),
        Command::Monitoring { out, fleets, samples, day_instances, history_instances, history_hours } => {
            let fleets = fleets
                .iter()
                .map(|f| {
                    let (hosts, per_host) = f.split_once('x').context("a fleet is HOSTSxINSTANCES_PER_HOST")?;
                    Ok((hosts.parse()?, per_host.parse()?))
                })
                .collect::<Result<Vec<_>>>()?;
            let options = monitoring::Options { fleets, samples, day_instances, history_instances, history_hours };
            monitoring::run(&out, &options)
        }
        Command::Report { results, out } => report::run(&results, &out),
        Command::BareServer { listen } => runtime.block_on(bare::serve(listen)),
    }
}
