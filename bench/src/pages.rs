//! What one Describe page costs as the account grows: the gateway's request handler called in a
//! loop (no network, as in [`crate::inproc`]) over a file store holding one account's
//! `N` instances (one a reservation; 1 of 3 pending, 2 of 3 terminated, which stay listed as on
//! EC2; each tagged with its batch of 100 and with a tier, gold for every other one) and
//! `N / 10` volumes, tagged alike. For each size: DescribeInstances, DescribeVolumes and
//! DescribeTags with `MaxResults` 5, 50 and the action's largest (1000; 500 for volumes), the
//! first page and one from the middle, with no filter, a state (or status) filter, an exact
//! tag filter that matches 100 (`tag:batch`) and one that matches half (`tag:tier=gold`), and
//! for DescribeInstances one zone of the 16 the instances are spread over
//! (`availability-zone`); the account's VPCs, subnets, route tables and internet gateways
//! (its default VPC's, one subnet a zone, whose addresses the instances hold); and the time to
//! walk every page of the largest size.
//!
//! Every page is checked before it is timed: a fast error is no measurement. Every size is
//! filled before any is timed, and each case's calls alternate between the sizes, so that the
//! growth it reports is measured side by side in one run (these machines are noisy).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context, Result};
use backend::hosts::HostConfig;
use backend::instances::LaunchRequest;
use backend::volumes::NewVolume;
use backend::{Backend, Topology};
use gateway::config::Limits;
use gateway::server::{handle, AppState};
use http_body_util::BodyExt;
use serde::Serialize;

use crate::load::Signer;

#[derive(Serialize)]
struct PageCost {
    action: &'static str,
    filter: &'static str,
    max_results: usize,
    /// `first` or `middle`.
    page: &'static str,
    stored: usize,
    p50_micros: f64,
    p90_micros: f64,
    items: usize,
    /// The answer's length.
    bytes: usize,
    /// How many calls were timed.
    calls: usize,
}

#[derive(Serialize)]
struct WalkCost {
    action: &'static str,
    stored: usize,
    pages: usize,
    items: usize,
    millis: f64,
    micros_per_item: f64,
}

struct Fixture {
    state: Arc<AppState>,
    signer: Signer,
    runtime: tokio::runtime::Runtime,
}

impl Fixture {
    /// One call: its status, body and time.
    fn call(&self, pairs: &[(&str, &str)]) -> Result<(String, f64)> {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        let request = self.signer.request_at(body, SystemTime::now())?;
        self.runtime.block_on(async {
            let started = Instant::now();
            let response = handle(Arc::clone(&self.state), request).await;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            let micros = started.elapsed().as_secs_f64() * 1e6;
            if status != 200 {
                bail!("HTTP {status}: {}", String::from_utf8_lossy(&body));
            }
            Ok((String::from_utf8_lossy(&body).into_owned(), micros))
        })
    }
}

fn count(body: &str, element: &str) -> usize {
    body.matches(&format!("<{element}>")).count()
}

fn token(body: &str) -> Option<String> {
    Some(body.split("<nextToken>").nth(1)?.split("</nextToken>").next()?.to_owned())
}

/// Zones of the benchmark's region: each has a /20 subnet in the default VPC, and a third of
/// 100,000 instances stays pending, holding addresses.
const ZONES: usize = 16;

/// Every other resource is gold: a tag filter that matches half of the account.
fn tier(n: usize) -> &'static str {
    if n.is_multiple_of(2) {
        "gold"
    } else {
        "silver"
    }
}

/// The admin's keys of a kept store (`--keep`), beside it.
#[derive(Serialize, serde::Deserialize)]
struct Kept {
    access_key_id: String,
    secret_access_key: String,
}

fn fill(dir: &std::path::Path, instances: usize, cache_mib: usize) -> Result<Fixture> {
    // Fake hosts (no libvirt), one a zone: terminations are driven to their end here.
    let cloud = backend::fake::FakeCloud::new();
    let zones: Vec<String> = (0..ZONES).map(|n| format!("us-east-1-z{n:02}")).collect();
    let configs: Vec<HostConfig> = zones
        .iter()
        .map(|zone| {
            let mut host = HostConfig::new(&format!("fake://{zone}"));
            host.zone = Some(zone.clone());
            host.accelerator = Some(backend::hypervisor::Accelerator::Test);
            (host.vcpus, host.memory_mib) = (Some(10_000_000), Some(10_000_000_000));
            host
        })
        .collect();
    let pool = backend::hosts::HostPool::new(
        configs
            .iter()
            .map(|c| backend::hosts::Host::new(c.clone(), c.zone.clone().unwrap_or_default(), cloud.host(&c.uri))),
    );
    let region = backend::topology::Region { name: "us-east-1".into(), zones: zones.clone() };
    let topology = Topology { regions: vec![region], hosts: configs, ..Topology::default() };
    let kept_path = dir.join("kept.json");
    let kept: Option<Kept> = std::fs::read(&kept_path).ok().and_then(|k| serde_json::from_slice(&k).ok());
    if kept.is_none() {
        // What a fill cut short left behind.
        let _ = std::fs::remove_file(dir.join("state.redb"));
    }
    let store = storage::Store::open_with_cache(&dir.join("state.redb"), cache_mib)?;
    let b = Backend::with_hosts(store, topology, pool).with_data_dir(dir);
    if let Some(kept) = kept {
        eprintln!("  {instances} instances kept in {}", dir.display());
        return fixture(b, &kept.access_key_id, &kept.secret_access_key);
    }
    let admin = b.bootstrap_admin()?.context("a fresh store has no admin yet")?;
    let principal = b.principal(&admin.access_key_id)?.context("the admin exists")?;
    let account = principal.account_id.clone();
    let disk = dir.join("image.qcow2");
    backend::disk::create_blank(&disk, None, 64 << 20)?;
    let new = backend::images::NewImage {
        name: "pages".into(),
        disk: disk.to_string_lossy().into_owned(),
        ..Default::default()
    };
    let image = b.register_image(&account, new)?;
    let started = Instant::now();
    let mut launched = 0;
    while launched < instances {
        // One instance a reservation, as in the figures: a page of N reservations is N
        // instances.
        let n = 1;
        let launch = LaunchRequest {
            image_id: image.id.clone(),
            instance_type: "t3.nano".into(),
            min_count: n,
            max_count: n,
            zone: Some(zones[launched % ZONES].clone()),
            tags: vec![("batch".into(), format!("b{}", launched / 100)), ("tier".into(), tier(launched).into())],
            ..Default::default()
        };
        let ids: Vec<String> =
            b.run_instances(&account, &principal.default_vpc_id, launch)?.into_iter().map(|r| r.id).collect();
        // Two in three are terminated (and stay listed, as on EC2): a state filter for
        // `pending` keeps one in three.
        if launched % 3 != 0 {
            b.terminate_instances(&account, &ids)?;
            for id in &ids {
                b.converge(&format!("{account}/{id}"))?;
            }
        }
        launched += ids.len();
        if launched % 10_000 == 0 {
            eprintln!("  {launched} instances ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    for n in 0..instances / 10 {
        let tags = vec![("batch".into(), format!("b{}", n / 100)), ("tier".into(), tier(n).into())];
        b.create_volume(
            &account,
            NewVolume { zone: zones[n % ZONES].clone(), size_gib: Some(1), tags, ..Default::default() },
        )?;
    }
    eprintln!("  filled in {:.0} s", started.elapsed().as_secs_f64());
    let kept = Kept { access_key_id: admin.access_key_id.clone(), secret_access_key: admin.secret_access_key.clone() };
    std::fs::write(&kept_path, serde_json::to_vec(&kept)?)?;
    fixture(b, &kept.access_key_id, &kept.secret_access_key)
}

fn fixture(b: Backend, access_key_id: &str, secret_access_key: &str) -> Result<Fixture> {
    let state = Arc::new(AppState::new(
        Arc::new(b),
        Limits { requests_per_second: 1_000_000_000, burst: 1_000_000_000, ..Limits::default() },
    ));
    let signer = Signer::new("127.0.0.1:8773".parse()?, access_key_id, secret_access_key, "us-east-1");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(Fixture { state, signer, runtime })
}

/// (action, the element each item has once, filter name, filter parameters).
type Case = (&'static str, &'static str, &'static str, Vec<(&'static str, &'static str)>);

/// The largest `MaxResults` an action takes.
fn largest(action: &str) -> &'static str {
    match action {
        "DescribeVolumes" => "500",
        "DescribeRouteTables" => "100",
        _ => "1000",
    }
}

/// The cases, in the order they run: (action, item element, filter name, filter pairs).
fn cases() -> Vec<Case> {
    let filter = |name, value| vec![("Filter.1.Name", name), ("Filter.1.Value.1", value)];
    let mut cases = Vec::new();
    for (action, element, state) in [
        ("DescribeInstances", "reservationId", ("state", filter("instance-state-name", "pending"))),
        ("DescribeVolumes", "volumeType", ("status", filter("status", "creating"))),
    ] {
        cases.push((action, element, "none", vec![]));
        cases.push((action, element, state.0, state.1));
        cases.push((action, element, "tag", filter("tag:batch", "b7")));
        cases.push((action, element, "tag-half", filter("tag:tier", "gold")));
    }
    // One zone of 16: the attribute index (DescribeInstances only).
    cases.insert(4, ("DescribeInstances", "reservationId", "zone", filter("availability-zone", "us-east-1-z03")));
    cases.push(("DescribeTags", "resourceId", "none", vec![]));
    cases.push(("DescribeTags", "resourceId", "resource-type", filter("resource-type", "volume")));
    // The account's network, whose size does not grow with its instances: what each answer
    // shows of them (free addresses, routes to instances) must not cost a read of them all.
    for (action, element) in [
        ("DescribeVpcs", "vpcId"),
        ("DescribeSubnets", "subnetId"),
        ("DescribeRouteTables", "vpcId"),
        ("DescribeInternetGateways", "internetGatewayId"),
        ("DescribeNetworkAcls", "vpcId"),
    ] {
        cases.push((action, element, "none", vec![]));
    }
    cases
}

/// A token from the middle of the walk: half way with pages of the largest size (tokens do
/// not depend on the page size).
fn middle_token(f: &Fixture, base: &[(&str, &str)], largest: &str, stored: usize) -> Result<Option<String>> {
    let (first, _) = f.call(&[base, &[("MaxResults", largest)]].concat())?;
    let mut middle = token(&first);
    let total_pages = (stored / largest.parse::<usize>()?).max(1);
    for _ in 1..total_pages / 2 {
        let Some(t) = &middle else { break };
        let (body, _) = f.call(&[base, &[("MaxResults", largest), ("NextToken", t)]].concat())?;
        middle = token(&body).or(middle);
    }
    Ok(middle)
}

/// Marks where a case's timed calls begin, for a count of the work they do that this machine's
/// noise does not blur: under valgrind,
/// `--tool=callgrind --dump-before='*counted_calls_*'` writes a profile at each, and the one
/// each `counted_calls_end` writes holds one timed loop's work, in the order the cases print
/// (`bench/pages_count.py` runs it, each size in a process of its own). Elsewhere a call that
/// does nothing.
#[inline(never)]
fn counted_calls_begin() {
    // Bodies that differ, so that no pass folds the two markers into one.
    std::hint::black_box(1u8);
}

/// Marks where a case's timed calls end (see [`counted_calls_begin`]).
#[inline(never)]
fn counted_calls_end() {
    std::hint::black_box(2u8);
}

/// One store's figures for one request.
struct Timed {
    p50: f64,
    p90: f64,
    items: usize,
    bytes: usize,
    calls: usize,
}

/// p50 and p90 of `calls` runs of each store's request, and the items each answer holds. The
/// stores take turns call by call, so that whatever else the machine does in the meantime
/// lands on every size alike: the sizes are compared within one run, not across runs.
fn time_side_by_side(
    fixtures: &[(usize, Fixture)],
    requests: &[Vec<(&str, &str)>],
    element: &str,
    calls: usize,
) -> Result<Vec<Timed>> {
    let mut items = Vec::new();
    for ((_, f), pairs) in fixtures.iter().zip(requests) {
        let (body, _) = f.call(pairs)?;
        items.push((count(&body, element), body.len()));
    }
    let mut micros = vec![Vec::with_capacity(calls); fixtures.len()];
    counted_calls_begin();
    for _ in 0..calls {
        for (((_, f), pairs), times) in fixtures.iter().zip(requests).zip(&mut micros) {
            times.push(f.call(pairs)?.1);
        }
    }
    counted_calls_end();
    Ok(micros
        .into_iter()
        .zip(items)
        .map(|(mut times, (items, bytes))| {
            times.sort_by(f64::total_cmp);
            Timed { p50: times[times.len() / 2], p90: times[times.len() * 9 / 10], items, bytes, calls }
        })
        .collect())
}

pub fn run(
    out: &std::path::Path,
    sizes: &[usize],
    calls: usize,
    cache_mib: usize,
    keep: Option<&std::path::Path>,
    only: Option<&str>,
) -> Result<()> {
    let v = "2016-11-15";
    let mut pages = Vec::new();
    let mut walks = Vec::new();
    // Every size is filled first and kept open: each case is then timed on all of them in turn.
    let mut fixtures = Vec::new();
    let mut dirs = Vec::new();
    for &stored in sizes {
        let dir = match keep {
            Some(keep) => keep.join(format!("stored-{stored}")),
            None => std::env::temp_dir().join(format!("stratus-pages-{}-{stored}", std::process::id())),
        };
        std::fs::create_dir_all(&dir)?;
        eprintln!("filling {stored} instances");
        fixtures.push((stored, fill(&dir, stored, cache_mib)?));
        dirs.push(dir);
    }
    let wanted = |action: &str, filter: &str| {
        only.is_none_or(|o| {
            o.split(',').any(|o| o == action || o.split_once(':').is_some_and(|(a, f)| a == action && f == filter))
        })
    };
    for (action, element, filter, filter_pairs) in cases().iter().filter(|(a, _, f, _)| wanted(a, f)) {
        let base: Vec<(&str, &str)> =
            [("Action", *action), ("Version", v)].into_iter().chain(filter_pairs.iter().copied()).collect();
        let largest = largest(action);
        let middles: Vec<Option<String>> =
            fixtures.iter().map(|(stored, f)| middle_token(f, &base, largest, *stored)).collect::<Result<_>>()?;
        for max in [5usize, 50, largest.parse()?] {
            let max_text = max.to_string();
            let n = if max > 50 { (calls / 10).max(5) } else { calls };
            let mut first = base.clone();
            first.push(("MaxResults", &max_text));
            let firsts = vec![first.clone(); fixtures.len()];
            let timed = time_side_by_side(&fixtures, &firsts, element, n)?;
            for ((stored, _), t) in fixtures.iter().zip(&timed) {
                pages.push(PageCost {
                    action,
                    filter,
                    max_results: max,
                    page: "first",
                    stored: *stored,
                    p50_micros: t.p50,
                    p90_micros: t.p90,
                    items: t.items,
                    bytes: t.bytes,
                    calls: t.calls,
                });
            }
            // The middle page where every size has one.
            if middles.iter().all(Option::is_some) {
                let requests: Vec<Vec<(&str, &str)>> = middles
                    .iter()
                    .flatten()
                    .map(|t| [first.clone(), vec![("NextToken", t.as_str())]].concat())
                    .collect();
                let timed = time_side_by_side(&fixtures, &requests, element, n)?;
                for ((stored, _), t) in fixtures.iter().zip(&timed) {
                    pages.push(PageCost {
                        action,
                        filter,
                        max_results: max,
                        page: "middle",
                        stored: *stored,
                        p50_micros: t.p50,
                        p90_micros: t.p90,
                        items: t.items,
                        bytes: t.bytes,
                        calls: t.calls,
                    });
                }
            }
            let line: Vec<String> = fixtures
                .iter()
                .zip(&timed)
                .map(|((stored, _), t)| format!("{stored} stored {:.0} µs ({})", t.p50, t.items))
                .collect();
            let growth = match (timed.first(), timed.last()) {
                (Some(small), Some(large)) if timed.len() > 1 => {
                    format!("  {:+.0} %", (large.p50 / small.p50 - 1.0) * 100.0)
                }
                _ => String::new(),
            };
            println!("{action:<18} {filter:<13} {max:>5} a page  first p50: {}{growth}", line.join(", "));
        }
    }
    for (stored, f) in fixtures.iter().filter(|_| only.is_none()) {
        for (action, element) in
            [("DescribeInstances", "instanceId"), ("DescribeVolumes", "volumeType"), ("DescribeTags", "resourceId")]
        {
            let started = Instant::now();
            let (mut token_now, mut pages_walked, mut items) = (None::<String>, 0, 0);
            loop {
                let mut pairs = vec![("Action", action), ("Version", v), ("MaxResults", largest(action))];
                if let Some(t) = &token_now {
                    pairs.push(("NextToken", t));
                }
                let (body, _) = f.call(&pairs)?;
                items += count(&body, element);
                pages_walked += 1;
                match token(&body) {
                    Some(t) => token_now = Some(t),
                    None => break,
                }
            }
            let millis = started.elapsed().as_secs_f64() * 1e3;
            println!("walk {action:<18} {stored:>7} stored: {pages_walked} pages, {items} items, {millis:.0} ms");
            walks.push(WalkCost {
                action,
                stored: *stored,
                pages: pages_walked,
                items,
                millis,
                micros_per_item: millis * 1e3 / items.max(1) as f64,
            });
        }
    }
    drop(fixtures);
    for dir in dirs.iter().filter(|_| keep.is_none()) {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("pages.json"),
        serde_json::to_vec_pretty(&serde_json::json!({
            "kind": "pages", "machine": crate::machine(), "side_by_side": true, "pages": pages, "walks": walks,
        }))?,
    )?;
    Ok(())
}
