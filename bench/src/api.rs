//! The API benchmark: Stratus, moto_server and the bare hyper server, side by side in one run.
//!
//! 1. All three start at once on loopback ports. Stratus runs on libvirt test-driver hosts:
//!    in lab daemons (`scripts/lab up 3`, one host per zone) for the full run, so that the
//!    test driver's domains live outside Stratus's memory as real hosts' would; in-process
//!    `test:///default` for `--quick`.
//! 2. Stage by stage the store grows (1,000 → 10,000 → 100,000 instances; moto stops at
//!    10,000). The first 1,000 are launched one RunInstances at a time (MaxCount 1, then 100):
//!    those calls are the RunInstances measurements. Later stages launch in batches of 100;
//!    at 10,000, ten instances get a `needle` tag for the tag-filter query. Stratus's
//!    instances beyond 10,000 belong to other accounts and are terminated as soon as launched
//!    (all guests share 3 × 4,091 addresses here): they stay stored, as terminated instances
//!    do for an hour.
//! 3. At each stage, once each system is quiet after seeding (its CPU measured idle for a few
//!    seconds, [`Bench::idle`]), each scenario runs against each system in turn, at each
//!    concurrency, in the same order: bare, Stratus, moto; `--rounds` repeats the by-id pairs.
//! 4. Everything measured goes to `api.json`; [`crate::report`] turns it into tables and plots.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::load::{self, call, closed_loop, BodyFn, CheckFn, Signer, Summary, Window};
use crate::systems::{self, Process};

const VERSION: &str = "2016-11-15";
const REGION: &str = "us-east-1";
const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
/// Instances an account holds at most here: 3 zones × (4,096 − 5) addresses, with room left.
const PER_ACCOUNT: usize = 12_000;
/// moto is O(N) per request and holds everything in Python objects: it stops at this size.
const MOTO_MAX: usize = 10_000;

pub struct Options {
    pub out: PathBuf,
    pub stratus_bin: PathBuf,
    pub quick: bool,
    pub moto: bool,
    pub stages: Vec<usize>,
    /// The measured account holds at most this many; the rest of a larger store is other
    /// accounts'.
    pub account_size: usize,
    pub concurrencies: Vec<usize>,
    /// redb's page cache for Stratus (its default when `None`).
    pub cache_mib: Option<usize>,
    /// Rounds of each by-id pair (bare, then the systems) at each concurrency.
    pub rounds: usize,
    pub measure: Duration,
    /// A second Stratus with its state in this PostgreSQL database (empty), measured beside
    /// the one on redb as `stratus-pg`.
    pub postgres: Option<String>,
}

#[derive(Serialize)]
struct Run {
    scenario: &'static str,
    system: &'static str,
    stored: usize,
    /// The server's own CPU time per answered request (warm-up included): what the load
    /// generator's share of the machine cannot blur.
    server_cpu_us: Option<f64>,
    #[serde(flatten)]
    summary: Summary,
}

#[derive(Serialize)]
struct Rss {
    system: &'static str,
    stored: usize,
    rss_mib: f64,
}

/// What a system costs with no requests coming: its background work (the conductor's sweep,
/// monitoring) and what that work makes other processes do (the hosts' daemons answering it).
#[derive(Serialize)]
struct Idle {
    system: &'static str,
    stored: usize,
    /// How long the work that seeding left behind kept the system busy ([`Bench::quiet`]).
    quiet_after_s: f64,
    /// The system's own CPU, milliseconds per second.
    server_ms_per_s: f64,
    /// The whole machine's busy CPU, milliseconds per second (of 1,000 per core).
    machine_ms_per_s: f64,
}

#[derive(Serialize)]
struct Seeding {
    system: &'static str,
    stored: usize,
    seconds: f64,
}

#[derive(Serialize, Default)]
struct Results {
    kind: &'static str,
    quick: bool,
    machine: serde_json::Value,
    hosts: String,
    runs: Vec<Run>,
    rss: Vec<Rss>,
    idle: Vec<Idle>,
    seeding: Vec<Seeding>,
}

/// How long the idle cost is measured.
const IDLE_WINDOW: Duration = Duration::from_secs(5);

/// A system using less CPU than this (ms per second) is done with what seeding left it.
const QUIET_MS_PER_S: f64 = 250.0;

/// How long the benchmark waits for a system to quieten before measuring anyway.
const QUIET_LIMIT: Duration = Duration::from_secs(180);

/// CPU time the whole machine has spent busy so far (every core, all but idle and I/O wait),
/// in seconds, from /proc/stat.
fn machine_busy_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .context("no cpu line in /proc/stat")?
        .split_whitespace()
        .map(|f| f.parse::<f64>().unwrap_or(0.0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is within user already).
    let busy: f64 = fields.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum();
    Ok(busy / 100.0)
}

/// One system under test, with what the benchmark knows of it.
struct Target {
    name: &'static str,
    process: Process,
    signer: Signer,
    image: String,
    /// The measured account's instances, in launch order.
    ids: Vec<String>,
    /// Instances stored in all, the measured account's and others'.
    stored: usize,
    filler_accounts: usize,
    /// Whether ten of the measured account's instances carry `needle=yes`.
    needles: bool,
    /// How many of [`ZONES`] have a host.
    zones: usize,
    /// A second replica on the same store (PostgreSQL), measured beside this one alone.
    replica: Option<(Process, Signer)>,
}

impl Target {
    fn new(name: &'static str, process: Process, signer: Signer, image: String, zones: usize) -> Self {
        let ids = Vec::new();
        Self { name, process, signer, image, ids, stored: 0, filler_accounts: 0, needles: false, zones, replica: None }
    }

    fn endpoint(&self) -> (&'static str, Vec<(&Signer, &Process)>) {
        (self.name, vec![(&self.signer, &self.process)])
    }

    /// Both replicas, requests shared between them, when there is a second.
    fn replicated(&self) -> Option<(&'static str, Vec<(&Signer, &Process)>)> {
        let (process, signer) = self.replica.as_ref()?;
        Some(("stratus-pg-2r", vec![(&self.signer, &self.process), (signer, process)]))
    }

    /// The zone for the `n`th launch: round robin over the zones with hosts.
    fn zone(&self, n: usize) -> &'static str {
        ZONES[n % self.zones]
    }
}

fn query<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
        .finish()
}

/// The text of every `<name>` element of an EC2 answer.
pub fn texts_of(xml: &[u8], name: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let (mut inside, mut out, mut buf) = (false, Vec::new(), Vec::new());
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => inside = e.local_name().as_ref() == name.as_bytes(),
            Ok(Event::Text(t)) if inside => {
                if let Ok(text) = t.decode() {
                    out.push(text.into_owned());
                }
            }
            Ok(Event::End(_)) => inside = false,
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    out
}

fn count(xml: &[u8], needle: &str) -> usize {
    let needle = needle.as_bytes();
    xml.windows(needle.len()).filter(|w| *w == needle).count()
}

async fn run_instances(
    signer: &Signer,
    image: &str,
    count: usize,
    zone: &str,
    tag: Option<&str>,
) -> Result<Vec<String>> {
    let count = count.to_string();
    let mut pairs = vec![
        ("Action", "RunInstances"),
        ("Version", VERSION),
        ("ImageId", image),
        ("InstanceType", "t3.nano"),
        ("MinCount", count.as_str()),
        ("MaxCount", count.as_str()),
        ("Placement.AvailabilityZone", zone),
    ];
    if let Some(tag) = tag {
        pairs.extend([
            ("TagSpecification.1.ResourceType", "instance"),
            ("TagSpecification.1.Tag.1.Key", "batch"),
            ("TagSpecification.1.Tag.1.Value", tag),
        ]);
    }
    let answer = call(signer, query(&pairs)).await?;
    let ids = texts_of(&answer, "instanceId");
    if ids.len().to_string() != count {
        bail!("RunInstances answered {} instances, not {count}", ids.len());
    }
    Ok(ids)
}

/// Waits until no instance of the signer's account is pending or shutting down (Stratus's
/// conductor has finished its work on them), so that measurements do not share the CPU with it.
async fn settle(signer: &Signer, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        let answer = call(
            signer,
            query(&[
                ("Action", "DescribeInstances"),
                ("Version", VERSION),
                ("Filter.1.Name", "instance-state-name"),
                ("Filter.1.Value.1", "pending"),
                ("Filter.1.Value.2", "shutting-down"),
                ("MaxResults", "5"),
            ]),
        )
        .await?;
        if count(&answer, "<instanceState>") == 0 {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!("instances still pending after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn window(concurrency: usize, measure: Duration, max_requests: Option<u64>) -> Window {
    Window { concurrency, warmup: Duration::from_secs(1).min(measure / 2), measure, max_requests }
}

/// Requests for instances picked at random from `ids`; a right answer carries one instance.
fn describe_by_id(ids: &[String]) -> (BodyFn, CheckFn) {
    let ids: Arc<Vec<String>> = Arc::new(ids.to_vec());
    let body: BodyFn = Arc::new(move |n| {
        let id = &ids[(n.wrapping_mul(2_654_435_761) % ids.len() as u64) as usize];
        query(&[("Action", "DescribeInstances"), ("Version", VERSION), ("InstanceId.1", id)])
    });
    (body, Arc::new(|answer: &[u8]| count(answer, "<instanceState>") == 1))
}

fn fixed(pairs: &[(&str, &str)], expect_instances: usize) -> (BodyFn, CheckFn) {
    let text = query(pairs);
    let body: BodyFn = Arc::new(move |_| text.clone());
    (body, Arc::new(move |answer: &[u8]| count(answer, "<instanceState>") == expect_instances))
}

/// Every instance of the measured account by unfiltered DescribeInstances, following
/// `NextToken` where the system pages on its own (moto answers a page at a time): one sample
/// is the whole walk, timed like a client's.
async fn describe_all(bench: &mut Bench, target: &Target, samples: usize, patience: Duration) -> Result<()> {
    let mut histogram = load::histogram();
    let (mut errors, mut first_error) = (0, None);
    let (cpu_before, started) = (target.process.cpu_seconds()?, Instant::now());
    let mut pages = 0;
    while (histogram.len() as usize) + errors < samples && started.elapsed() < patience {
        let sent = Instant::now();
        let (mut found, mut token): (usize, Option<String>) = (0, None);
        let walked = loop {
            let mut pairs = vec![("Action", "DescribeInstances".to_owned()), ("Version", VERSION.to_owned())];
            pairs.extend(token.take().map(|t| ("NextToken", t)));
            match call(&target.signer, query(&pairs)).await {
                Ok(answer) => {
                    pages += 1;
                    found += count(&answer, "<instanceState>");
                    token = texts_of(&answer, "nextToken").into_iter().next().filter(|t| !t.is_empty());
                    if token.is_none() {
                        break Ok(found);
                    }
                }
                Err(error) => break Err(error),
            }
        };
        match walked {
            Ok(found) if found == target.ids.len() => histogram.saturating_record(sent.elapsed().as_micros() as u64),
            Ok(found) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{found} instances, not {}", target.ids.len()));
            }
            Err(error) => {
                errors += 1;
                first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    let walks = histogram.len();
    let summary = Summary::of(1, &histogram, errors as u64, started.elapsed().as_secs_f64(), first_error);
    let cpu = target.process.cpu_seconds()? - cpu_before;
    let server_cpu_us = (walks > 0).then(|| cpu * 1e6 / walks as f64);
    report_line("describe-all", target.name, target.stored, &summary, server_cpu_us);
    println!("    {pages} pages in {} walks", walks as usize + errors);
    bench.results.runs.push(Run {
        scenario: "describe-all",
        system: target.name,
        stored: target.stored,
        server_cpu_us,
        summary,
    });
    Ok(())
}

fn report_line(scenario: &str, system: &str, stored: usize, s: &Summary, cpu_us: Option<f64>) {
    let cpu = cpu_us.map_or(String::new(), |c| format!("  server CPU {c:.0} µs/req"));
    println!(
        "{scenario:<22} {system:<12} stored {stored:>6}  c{:<3} {:>9.0} req/s  p50 {:>8} µs  p99 {:>8} µs{cpu}  ({} requests, {} errors)",
        s.concurrency, s.requests_per_sec, s.p50_us, s.p99_us, s.requests, s.errors
    );
    if let Some(error) = &s.first_error {
        println!("    first error: {error}");
    }
}

struct Bench {
    options: Options,
    results: Results,
}

impl Bench {
    async fn measure(
        &mut self,
        scenario: &'static str,
        (target_name, endpoints): (&'static str, Vec<(&Signer, &Process)>),
        stored: usize,
        window: Window,
        (body, check): (BodyFn, CheckFn),
    ) -> Result<()> {
        // Every serving process's CPU counts (two replicas: both).
        let cpu_seconds = || endpoints.iter().map(|(_, p)| p.cpu_seconds()).sum::<Result<f64>>();
        let signers: Vec<Signer> = endpoints.iter().map(|(s, _)| (*s).clone()).collect();
        let cpu_before = cpu_seconds()?;
        let summary = closed_loop(&signers, &window, body, check).await?;
        let cpu = cpu_seconds()? - cpu_before;
        let answered = summary.requests + summary.errors;
        let warmup_share = 1.0 + window.warmup.as_secs_f64() / summary.seconds.max(1e-9);
        let server_cpu_us = (answered > 0).then(|| cpu * 1e6 / (answered as f64 * warmup_share));
        report_line(scenario, target_name, stored, &summary, server_cpu_us);
        self.results.runs.push(Run { scenario, system: target_name, stored, server_cpu_us, summary });
        Ok(())
    }

    fn rss(&mut self, target: &Target) -> Result<()> {
        let rss_mib = target.process.rss_mib()?;
        println!("rss                    {:<12} stored {:>6}  {rss_mib:.1} MiB", target.name, target.stored);
        self.results.rss.push(Rss { system: target.name, stored: target.stored, rss_mib });
        Ok(())
    }

    /// Waits until the system's work after seeding has died down (its CPU under
    /// [`QUIET_MS_PER_S`] for two seconds in a row, at most [`QUIET_LIMIT`]), so that no
    /// measured window shares the machine with it; answers how long that took.
    async fn quiet(&mut self, target: &Target) -> Result<Duration> {
        let started = Instant::now();
        let mut calm = 0;
        while calm < 2 && started.elapsed() < QUIET_LIMIT {
            let before = target.process.cpu_seconds()?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            calm = if (target.process.cpu_seconds()? - before) * 1000.0 < QUIET_MS_PER_S { calm + 1 } else { 0 };
        }
        let took = started.elapsed();
        println!(
            "quiet                  {:<12} stored {:>6}  after {:.0} s",
            target.name,
            target.stored,
            took.as_secs_f64()
        );
        Ok(took)
    }

    /// The system's and the machine's CPU over [`IDLE_WINDOW`] with no requests.
    async fn idle(&mut self, target: &Target) -> Result<()> {
        let quiet_after_s = self.quiet(target).await?.as_secs_f64();
        let (server_before, machine_before) = (target.process.cpu_seconds()?, machine_busy_seconds()?);
        // A quick run only checks that the figures come.
        let window = if self.options.quick { Duration::from_secs(1) } else { IDLE_WINDOW };
        tokio::time::sleep(window).await;
        let (server, machine) =
            (target.process.cpu_seconds()? - server_before, machine_busy_seconds()? - machine_before);
        let per_s = |cpu: f64| cpu * 1000.0 / window.as_secs_f64();
        let (server_ms_per_s, machine_ms_per_s) = (per_s(server), per_s(machine));
        println!(
            "idle                   {:<12} stored {:>6}  server {server_ms_per_s:.0} ms/s, machine {machine_ms_per_s:.0} ms/s",
            target.name, target.stored
        );
        self.results.idle.push(Idle {
            system: target.name,
            stored: target.stored,
            quiet_after_s,
            server_ms_per_s,
            machine_ms_per_s,
        });
        Ok(())
    }

    fn save(&self) -> Result<()> {
        let path = self.options.out.join("api.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&self.results)?)?;
        Ok(())
    }
}

/// RunInstances, measured: MaxCount 1 then MaxCount 100, until the target holds `upto`.
/// Each call is timed once the work of the one before has settled, so that what is measured
/// is the API call (validation, placement, a durable commit, the answer) and not the hosts'
/// work on earlier launches, which runs beside it in the background.
async fn first_launches(bench: &mut Bench, target: &mut Target, upto: usize) -> Result<()> {
    let singles = if bench.options.quick { upto.min(20) } else { upto.min(200) };
    let hundreds = (upto - singles) / 100;
    for (scenario, size, n) in [("run-instances-1", 1, singles), ("run-instances-100", 100, hundreds)] {
        if n == 0 {
            continue;
        }
        let mut histogram = load::histogram();
        let mut busy = Duration::ZERO;
        for i in 0..n {
            if target.name.starts_with("stratus") {
                settle(&target.signer, Duration::from_secs(600)).await?;
            }
            let zone = target.zone(i);
            let sent = Instant::now();
            let ids = run_instances(&target.signer, &target.image, size, zone, Some("first")).await?;
            let took = sent.elapsed();
            busy += took;
            histogram.saturating_record(took.as_micros() as u64);
            target.ids.extend(ids);
        }
        target.stored += size * n;
        let summary = Summary::of(1, &histogram, 0, busy.as_secs_f64(), None);
        report_line(scenario, target.name, target.stored, &summary, None);
        bench.results.runs.push(Run {
            scenario,
            system: target.name,
            stored: target.stored,
            server_cpu_us: None,
            summary,
        });
    }
    Ok(())
}

/// Grows the measured account to `upto` instances in batches of 100, each batch tagged.
async fn grow(target: &mut Target, upto: usize, account_size: usize) -> Result<()> {
    let mut batch = target.ids.len() / 100;
    let upto = upto.min(account_size);
    while target.ids.len() < upto {
        let size = (upto - target.ids.len()).min(100);
        let zone = target.zone(batch);
        let ids = run_instances(&target.signer, &target.image, size, zone, Some(&format!("b{batch}"))).await?;
        target.ids.extend(ids);
        target.stored += size;
        batch += 1;
    }
    Ok(())
}

/// Ten instances spread over the store get `needle=yes`.
async fn tag_needles(target: &Target) -> Result<()> {
    let step = target.ids.len() / 10;
    let mut pairs = vec![("Action".to_owned(), "CreateTags".to_owned()), ("Version".to_owned(), VERSION.to_owned())];
    for i in 0..10 {
        pairs.push((format!("ResourceId.{}", i + 1), target.ids[i * step + step / 2].clone()));
    }
    pairs.extend([("Tag.1.Key".to_owned(), "needle".to_owned()), ("Tag.1.Value".to_owned(), "yes".to_owned())]);
    call(&target.signer, query(&pairs)).await?;
    Ok(())
}

/// Instances of other accounts, until Stratus stores `upto` in all. Each account's default VPC
/// is an address space of its own (3 × 4,091 addresses here), but the public pool is one for
/// all, so these are launched and terminated at once: they stay stored, as EC2 keeps terminated
/// instances visible for an hour, and give their addresses back.
async fn fill_other_accounts(options: &Options, target: &mut Target, data_dir: &Path, upto: usize) -> Result<()> {
    let mut account = target.filler_accounts;
    while target.stored < upto {
        let (key, secret) = (format!("AKIABENCHFILLER{account:05}"), format!("filler-secret-{account:05}"));
        systems::stratus_account(&options.stratus_bin, data_dir, &format!("filler-{account}"), &key, &secret)?;
        let signer = Signer::new(target.signer.addr, &key, &secret, REGION);
        let mut held = 0;
        while held < PER_ACCOUNT && target.stored < upto {
            let size = (upto - target.stored).min(100);
            let ids = run_instances(&signer, &target.image, size, target.zone(held / 100), None).await?;
            let mut pairs = vec![
                ("Action".to_owned(), "TerminateInstances".to_owned()),
                ("Version".to_owned(), VERSION.to_owned()),
            ];
            pairs.extend(ids.iter().enumerate().map(|(i, id)| (format!("InstanceId.{}", i + 1), id.clone())));
            call(&signer, query(&pairs)).await?;
            held += size;
            target.stored += size;
            // A thousand or so in flight at most, so that no account's address space runs out.
            if held % 1000 == 0 {
                settle(&signer, Duration::from_secs(3600)).await?;
            }
        }
        settle(&signer, Duration::from_secs(3600)).await?;
        account += 1;
    }
    target.filler_accounts = account;
    Ok(())
}

/// The API's cost alone: no network engine (the guests of the test driver and of idle lab hosts
/// plug into nothing that is measured here).
fn stratus_config(dir: &Path, hosts: &[String], cache_mib: Option<usize>) -> Result<PathBuf> {
    let mut text = format!(
        "[[regions]]\nname = \"{REGION}\"\nzones = [{}]\n\n[instances]\nsweep_interval_ms = 1000\n\n[limits]\nrequests_per_second = 1000000\nburst = 1000000\n\n[network]\novn_northbound = \"none\"\n",
        ZONES.iter().map(|z| format!("\"{z}\"")).collect::<Vec<_>>().join(", ")
    );
    if let Some(mib) = cache_mib {
        text.push_str(&format!("\n[storage]\ncache_mib = {mib}\n"));
    }
    for (i, uri) in hosts.iter().enumerate() {
        text.push_str(&format!(
            "\n[[hosts]]\nuri = \"{uri}\"\nzone = \"{}\"\nvcpus = 1000000\nmemory_mib = 1000000000\n",
            ZONES[i % ZONES.len()]
        ));
    }
    let path = dir.join("stratus.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// A tiny qcow2 for Stratus's benchmark image (the test driver never reads it).
fn bench_disk(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("bench-image.qcow2");
    let status =
        std::process::Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&path).arg("64M").status()?;
    if !status.success() {
        bail!("qemu-img create failed");
    }
    Ok(path)
}

/// The benchmark's image, imported as a public one so that every account can launch it.
fn import_image(bin: &Path, data_dir: &Path, config: &Path, disk: &Path) -> Result<String> {
    let output = std::process::Command::new(bin)
        .args(["image", "import", "--name", "bench", "--data-dir"])
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .arg(disk)
        .output()?;
    if !output.status.success() {
        bail!("stratus image import: {}", String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace().find(|w| w.starts_with("ami-")).map(str::to_owned).context("no image id printed")
}

async fn moto_image(signer: &Signer) -> Result<String> {
    let answer = call(signer, query(&[("Action", "DescribeImages"), ("Version", VERSION)])).await?;
    texts_of(&answer, "imageId").into_iter().next().context("moto has no images")
}

/// Brings up the lab's hosts for the test driver; answers their URIs.
fn lab_hosts(n: usize) -> Result<Vec<String>> {
    let script = systems::repo_root().join("scripts/lab");
    let status = std::process::Command::new(&script)
        .args(["up", &n.to_string()])
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        bail!("scripts/lab up {n} failed");
    }
    Ok((1..=n).map(|i| format!("test+tcp://10.88.0.{}/default", 10 + i)).collect())
}

struct LabGuard(bool);

impl Drop for LabGuard {
    fn drop(&mut self) {
        if self.0 {
            let _ = std::process::Command::new(systems::repo_root().join("scripts/lab")).arg("down").output();
        }
    }
}

pub async fn run(options: Options) -> Result<()> {
    std::fs::create_dir_all(&options.out)?;
    let work = options.out.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let hosts = if options.quick { vec!["test:///default".to_owned()] } else { lab_hosts(ZONES.len())? };
    let _lab = LabGuard(!options.quick);
    let data_dir = work.join("stratus-data");
    let config = stratus_config(&work, &hosts, options.cache_mib)?;

    let bare = systems::bare(&work.join("bare.log"))?;
    let (stratus, (key, secret)) =
        systems::stratus(&options.stratus_bin, &config, &data_dir, &work.join("stratus.log"))?;
    let stratus_signer = Signer::new(stratus.addr, &key, &secret, REGION);
    let image = import_image(&options.stratus_bin, &data_dir, &config, &bench_disk(&work)?)?;
    let mut targets = vec![Target::new("stratus", stratus, stratus_signer, image, hosts.len())];
    if let Some(url) = &options.postgres {
        // The same server and hosts, its state in PostgreSQL: the store's cost side by side.
        let dir = work.join("pg");
        std::fs::create_dir_all(&dir)?;
        let config = stratus_config(&dir, &hosts, options.cache_mib)?;
        let mut text = std::fs::read_to_string(&config)?;
        text.push_str(&format!("\n[storage]\nbackend = \"postgres\"\nurl = \"{url}\"\n"));
        std::fs::write(&config, text)?;
        let data_dir = dir.join("stratus-data");
        let (process, (key, secret)) =
            systems::stratus(&options.stratus_bin, &config, &data_dir, &work.join("stratus-pg.log"))?;
        let signer = Signer::new(process.addr, &key, &secret, REGION);
        let image = import_image(&options.stratus_bin, &data_dir, &config, &bench_disk(&dir)?)?;
        let mut target = Target::new("stratus-pg", process, signer, image, hosts.len());
        // A second replica on the same database and data dir: describe-by-id is measured on
        // the first alone and on both sharing the requests.
        let (process, (key, secret)) =
            systems::stratus(&options.stratus_bin, &config, &data_dir, &work.join("stratus-pg-2.log"))?;
        let signer = Signer::new(process.addr, &key, &secret, REGION);
        target.replica = Some((process, signer));
        targets.push(target);
    }
    if options.moto {
        let moto = systems::moto(&work.join("moto.log"))?;
        let signer = Signer::new(moto.addr, "AKIAMOTOBENCH", "moto-secret", REGION);
        let image = moto_image(&signer).await?;
        targets.push(Target::new("moto", moto, signer, image, hosts.len()));
    }
    let bare_signer = Signer::new(bare.addr, "AKIABARE", "bare-secret", REGION);

    let mut bench = Bench {
        results: Results {
            kind: "api",
            quick: options.quick,
            machine: crate::machine(),
            hosts: hosts.join(", "),
            ..Default::default()
        },
        options,
    };
    for target in &targets {
        bench.rss(target)?;
    }
    let stages = bench.options.stages.clone();
    let concurrencies = bench.options.concurrencies.clone();
    let measure = bench.options.measure;
    let last_stage = stages.last().copied().unwrap_or(0);
    for (stage_index, &stage) in stages.iter().enumerate() {
        let live: Vec<usize> = (0..targets.len()).filter(|&i| targets[i].name != "moto" || stage <= MOTO_MAX).collect();
        for &i in &live {
            let target = &mut targets[i];
            let started = Instant::now();
            if stage_index == 0 {
                first_launches(&mut bench, target, stage).await?;
            }
            grow(target, stage, bench.options.account_size).await?;
            // The tag-filter query looks for ten needles in the account's final haystack.
            let account_full = target.ids.len() == PER_ACCOUNT.min(last_stage).min(bench.options.account_size);
            if account_full && !target.needles {
                tag_needles(target).await?;
                target.needles = true;
            }
            if target.name == "stratus" {
                fill_other_accounts(&bench.options, target, &data_dir, stage).await?;
            }
            if target.name.starts_with("stratus") {
                settle(&target.signer, Duration::from_secs(3600)).await?;
            }
            let seconds = started.elapsed().as_secs_f64();
            println!("seeded                 {:<12} stored {:>6}  in {seconds:.1} s", target.name, target.stored);
            bench.results.seeding.push(Seeding { system: target.name, stored: target.stored, seconds });
            bench.rss(target)?;
            bench.idle(target).await?;
        }
        let rounds = bench.options.rounds;
        // Rounds repeat each pair; the report sets each Stratus window against the bare one
        // just before it.
        for &c in concurrencies.iter().flat_map(|c| std::iter::repeat_n(c, rounds)) {
            let probe = describe_by_id(&targets[0].ids);
            let w = window(c, measure, None);
            bench.measure("describe-by-id", ("bare-hyper", vec![(&bare_signer, &bare)]), 0, w, probe).await?;
            for &i in &live {
                let t = &targets[i];
                let w = window(c, measure, None);
                bench.measure("describe-by-id", t.endpoint(), t.stored, w, describe_by_id(&t.ids)).await?;
                if let Some(both) = t.replicated() {
                    let w = window(c, measure, None);
                    bench.measure("describe-by-id", both, t.stored, w, describe_by_id(&t.ids)).await?;
                }
            }
        }
        for &i in &live {
            let t = &targets[i];
            // moto takes seconds to a minute for these: a few requests, one at a time.
            let (patience, cap) = if t.name == "moto" { (Duration::from_secs(900), Some(3)) } else { (measure, None) };
            if stage_index == 0 {
                describe_all(&mut bench, t, cap.map_or(50, |c| c as usize), patience).await?;
            }
            if t.needles {
                let pairs = [
                    ("Action", "DescribeInstances"),
                    ("Version", VERSION),
                    ("Filter.1.Name", "tag:needle"),
                    ("Filter.1.Value.1", "yes"),
                ];
                let w = window(1, patience, cap);
                bench.measure("describe-tag-filter", t.endpoint(), t.stored, w, fixed(&pairs, 10)).await?;
            }
        }
        bench.save()?;
    }
    bench.save()?;
    println!("results: {}", bench.options.out.join("api.json").display());
    Ok(())
}
