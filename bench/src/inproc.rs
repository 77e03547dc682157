//! Stratus's own cost per request, without a network or a load generator in the way: the
//! gateway's request handler called in a loop on one thread, over an in-memory store holding
//! `instances` instances (launched through the backend, no hosts driven). Requests are signed
//! up front and replayed, so what is timed is what the server does: SigV4 verification,
//! decoding, the backend's reads, and the XML answer. Repeatable under `valgrind --tool=callgrind`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context, Result};
use backend::hosts::HostConfig;
use backend::instances::LaunchRequest;
use backend::{Backend, Topology};
use bytes::Bytes;
use gateway::config::Limits;
use gateway::server::{handle, AppState};
use http_body_util::{BodyExt, Full};
use serde::Serialize;

use crate::load::Signer;

#[derive(Serialize)]
struct Cost {
    request: &'static str,
    instances: usize,
    iterations: usize,
    micros_per_request: f64,
}

fn backend(dir: &std::path::Path, instances: usize) -> Result<(Arc<Backend>, String, String, Vec<String>)> {
    let mut host = HostConfig::new("test:///default");
    (host.vcpus, host.memory_mib) = (Some(1_000_000), Some(1_000_000_000));
    let topology = Topology { hosts: vec![host], ..Topology::default() };
    // A file, as a server keeps it (redb copies every page it reads from its in-memory backend).
    let store = storage::Store::open(&dir.join("state.redb"))?;
    let b = Backend::new(store, topology).with_data_dir(dir);
    let admin = b.bootstrap_admin()?.context("a fresh store has no admin yet")?;
    let principal = b.principal(&admin.access_key_id)?.context("the admin exists")?;
    let disk = dir.join("image.qcow2");
    let created =
        std::process::Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&disk).arg("64M").status()?;
    if !created.success() {
        bail!("qemu-img create failed");
    }
    let image = b.register_image(
        &principal.account_id,
        backend::images::NewImage {
            name: "inproc".into(),
            disk: disk.to_string_lossy().into_owned(),
            ..Default::default()
        },
    )?;
    let mut ids = Vec::new();
    while ids.len() < instances {
        let count = (instances - ids.len()).min(100) as u32;
        let launch = LaunchRequest {
            image_id: image.id.clone(),
            instance_type: "t3.nano".into(),
            min_count: count,
            max_count: count,
            tags: vec![("batch".into(), format!("b{}", ids.len() / 100))],
            ..Default::default()
        };
        ids.extend(
            b.run_instances(&principal.account_id, &principal.default_vpc_id, launch)?.into_iter().map(|r| r.id),
        );
    }
    let needles: Vec<String> = ids.iter().step_by((ids.len() / 10).max(1)).take(10).cloned().collect();
    b.create_tags(&principal.account_id, &needles, &[("needle".into(), "yes".into())])?;
    Ok((Arc::new(b), admin.access_key_id, admin.secret_access_key, ids))
}

/// A request that can be replayed: its parts, rebuilt for each call.
struct Replay {
    parts: http::request::Parts,
    body: Bytes,
}

impl Replay {
    fn new(request: http::Request<Full<Bytes>>) -> Result<Self> {
        let (parts, body) = request.into_parts();
        let body = futures_body(body)?;
        Ok(Self { parts, body })
    }

    fn request(&self) -> http::Request<Full<Bytes>> {
        let mut request = http::Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.parts.method.clone();
        *request.uri_mut() = self.parts.uri.clone();
        *request.headers_mut() = self.parts.headers.clone();
        request
    }
}

fn futures_body(body: Full<Bytes>) -> Result<Bytes> {
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    Ok(runtime.block_on(body.collect())?.to_bytes())
}

fn time(state: &Arc<AppState>, requests: &[Replay], iterations: usize) -> Result<f64> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        // Once first, and each answer checked: a fast error is no measurement.
        for replay in requests {
            let response = handle(Arc::clone(state), replay.request()).await;
            if response.status() != 200 {
                let body = response.into_body().collect().await?.to_bytes();
                bail!("HTTP error: {}", String::from_utf8_lossy(&body));
            }
        }
        let started = Instant::now();
        for i in 0..iterations {
            let response = handle(Arc::clone(state), requests[i % requests.len()].request()).await;
            std::hint::black_box(response.into_body().collect().await?.to_bytes());
        }
        Ok(started.elapsed().as_secs_f64() * 1e6 / iterations as f64)
    })
}

pub fn run(out: &std::path::Path, instances: usize, iterations: usize, only: Option<&str>) -> Result<()> {
    let dir = tempfile_dir()?;
    let (backend, key, secret, ids) = backend(&dir, instances)?;
    let state = Arc::new(AppState::new(
        backend,
        Limits { requests_per_second: 1_000_000_000, burst: 1_000_000_000, ..Limits::default() },
    ));
    let signer = Signer::new("127.0.0.1:8773".parse()?, &key, &secret, "us-east-1");
    let sign = |pairs: &[(&str, &str)]| -> Result<Replay> {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        Replay::new(signer.request_at(body, SystemTime::now())?)
    };
    let v = "2016-11-15";
    let mut results = Vec::new();
    let by_id: Vec<Replay> = ids
        .iter()
        .step_by((ids.len() / 256).max(1))
        .map(|id| sign(&[("Action", "DescribeInstances"), ("Version", v), ("InstanceId.1", id)]))
        .collect::<Result<_>>()?;
    let cases: Vec<(&'static str, Vec<Replay>, usize)> = vec![
        ("DescribeRegions", vec![sign(&[("Action", "DescribeRegions"), ("Version", v)])?], iterations),
        ("DescribeInstances by id", by_id, iterations),
        (
            "DescribeInstances tag filter (10 match)",
            vec![sign(&[
                ("Action", "DescribeInstances"),
                ("Version", v),
                ("Filter.1.Name", "tag:needle"),
                ("Filter.1.Value.1", "yes"),
            ])?],
            (iterations / 10).max(1),
        ),
        (
            "DescribeInstances, all",
            vec![sign(&[("Action", "DescribeInstances"), ("Version", v)])?],
            (iterations / instances.max(1)).max(3),
        ),
    ];
    for (request, replays, n) in cases.into_iter().filter(|(r, _, _)| only.is_none_or(|o| r.contains(o))) {
        let micros = time(&state, &replays, n)?;
        println!("{request:<42} {instances:>7} instances  {micros:>10.1} µs/request  ({n} calls)");
        results.push(Cost { request, instances, iterations: n, micros_per_request: micros });
    }
    std::fs::create_dir_all(out)?;
    let path = out.join(format!("inproc-{instances}.json"));
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(
            &serde_json::json!({ "kind": "inproc", "machine": crate::machine(), "costs": results }),
        )?,
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("stratus-inproc-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
