//! The load generator: SigV4-signed EC2 Query requests over keep-alive HTTP/1.1 connections.
//!
//! 1. [`Signer`] signs each request afresh with aws-sigv4, as an SDK would (new date, new
//!    signature), so every system under load verifies a different signature each time.
//! 2. [`closed_loop`] opens `concurrency` connections; each sends its next request as soon as
//!    the previous answer is read whole, for the warm-up and then the measured window. Every
//!    answer's status and body are checked; a wrong answer counts as an error, never as a
//!    fast success.
//! 3. Latencies go into HDR histograms (microseconds, 3 significant digits), merged at the end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context, Result};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Where requests go and who signs them.
#[derive(Clone)]
pub struct Signer {
    pub addr: SocketAddr,
    host: String,
    identity: Identity,
    region: String,
}

impl Signer {
    pub fn new(addr: SocketAddr, access_key: &str, secret: &str, region: &str) -> Self {
        let identity = Credentials::new(access_key, secret, None, None, "stratus-bench").into();
        Self { addr, host: addr.to_string(), identity, region: region.to_owned() }
    }

    /// A POST of `body` (form-encoded EC2 Query parameters), signed now.
    pub fn request(&self, body: String) -> Result<http::Request<Full<Bytes>>> {
        self.request_at(body, SystemTime::now())
    }

    /// The same, signed as of `time`.
    pub fn request_at(&self, body: String, time: SystemTime) -> Result<http::Request<Full<Bytes>>> {
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("ec2")
            .time(time)
            .settings(SigningSettings::default())
            .build()?
            .into();
        let uri = format!("http://{}/", self.host);
        let headers = [("host", self.host.as_str()), ("content-type", FORM)];
        let signable =
            SignableRequest::new("POST", uri.clone(), headers.into_iter(), SignableBody::Bytes(body.as_bytes()))?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        let mut request = http::Request::post(uri)
            .header("host", &self.host)
            .header("content-type", FORM)
            .body(Full::new(Bytes::from(body)))?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }
}

/// One keep-alive connection (reopened when the server closes it after an answer, as
/// moto_server's HTTP/1.0 server does after every one).
pub struct Connection {
    addr: SocketAddr,
    sender: http1::SendRequest<Full<Bytes>>,
    closing: bool,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self { addr, sender, closing: false })
    }

    /// Sends one request and reads the whole answer: (status, body).
    pub async fn send(&mut self, request: http::Request<Full<Bytes>>) -> Result<(u16, Bytes)> {
        if self.closing {
            *self = Self::open(self.addr).await?;
        }
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        self.closing = response.version() < http::Version::HTTP_11
            || response
                .headers()
                .get(http::header::CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// Sends one signed request on a fresh connection; an answer other than 200 is an error that
/// carries the body (the EC2 error envelope).
pub async fn call(signer: &Signer, body: String) -> Result<Bytes> {
    let mut connection = Connection::open(signer.addr).await?;
    let (status, body) = connection.send(signer.request(body)?).await?;
    if status != 200 {
        return Err(anyhow!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(body)
}

/// What one measured window found.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub concurrency: usize,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    /// The first wrong answer, if any, to say what went wrong.
    pub first_error: Option<String>,
}

impl Summary {
    /// What `histogram` (microseconds of the answers that were right) says of a window.
    pub fn of(
        concurrency: usize,
        histogram: &Histogram<u64>,
        errors: u64,
        seconds: f64,
        first_error: Option<String>,
    ) -> Self {
        let seconds = seconds.max(1e-9);
        Self {
            concurrency,
            requests: histogram.len(),
            errors,
            seconds,
            requests_per_sec: histogram.len() as f64 / seconds,
            p50_us: histogram.value_at_quantile(0.5),
            p99_us: histogram.value_at_quantile(0.99),
            max_us: histogram.max(),
            mean_us: histogram.mean(),
            first_error,
        }
    }
}

/// Makes the body of the `n`th request of a worker.
pub type BodyFn = Arc<dyn Fn(u64) -> String + Send + Sync>;
/// Whether an answer's body is right.
pub type CheckFn = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

pub struct Window {
    pub concurrency: usize,
    pub warmup: Duration,
    pub measure: Duration,
    /// Stop after this many measured requests (per run), whichever comes first.
    pub max_requests: Option<u64>,
}

struct WorkerResult {
    histogram: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

pub fn histogram() -> Histogram<u64> {
    // 1 µs to 10 minutes, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| Histogram::new(3).expect("3 digits is valid"))
}

/// Runs the window against `signer` and summarises what was measured.
pub async fn closed_loop(signers: &[Signer], window: &Window, body: BodyFn, check: CheckFn) -> Result<Summary> {
    let started = Instant::now();
    let measure_from = started + window.warmup;
    let deadline = measure_from + window.measure;
    let per_worker_cap = window.max_requests.map(|m| m.div_ceil(window.concurrency as u64));
    let mut workers = Vec::new();
    for worker in 0..window.concurrency {
        // Workers take the servers in turn (several replicas of one service).
        let signer = signers[worker % signers.len()].clone();
        let (body, check) = (Arc::clone(&body), Arc::clone(&check));
        workers.push(tokio::spawn(async move {
            let mut connection = Connection::open(signer.addr).await?;
            let mut result = WorkerResult { histogram: histogram(), errors: 0, first_error: None };
            let mut n = worker as u64 * 1_000_003;
            loop {
                let now = Instant::now();
                if now >= deadline || per_worker_cap.is_some_and(|cap| result.histogram.len() + result.errors >= cap) {
                    break;
                }
                let request = signer.request(body(n))?;
                n += 1;
                let sent = Instant::now();
                let outcome = connection.send(request).await;
                let micros = sent.elapsed().as_micros() as u64;
                if sent < measure_from {
                    if outcome.is_err() {
                        connection = Connection::open(signer.addr).await?;
                    }
                    continue;
                }
                match outcome {
                    Ok((200, answer)) if check(&answer) => {
                        result.histogram.saturating_record(micros.max(1));
                    }
                    Ok((status, answer)) => {
                        result.errors += 1;
                        result.first_error.get_or_insert_with(|| {
                            format!("HTTP {status}: {}", String::from_utf8_lossy(&answer[..answer.len().min(300)]))
                        });
                    }
                    Err(error) => {
                        result.errors += 1;
                        result.first_error.get_or_insert_with(|| error.to_string());
                        connection = Connection::open(signer.addr).await?;
                    }
                }
            }
            Ok::<_, anyhow::Error>(result)
        }));
    }
    let mut merged = histogram();
    let (mut errors, mut first_error) = (0, None);
    for worker in workers {
        let result = worker.await??;
        merged.add(&result.histogram).map_err(|e| anyhow!("merging histograms: {e}"))?;
        errors += result.errors;
        if first_error.is_none() {
            first_error = result.first_error;
        }
    }
    let seconds = Instant::now().min(deadline).saturating_duration_since(measure_from).as_secs_f64();
    Ok(Summary::of(window.concurrency, &merged, errors, seconds, first_error))
}
