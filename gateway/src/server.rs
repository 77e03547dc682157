//! The HTTP server: hyper connections, a tower stack, and the request flow of the crate docs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use backend::accounts::Principal;
use backend::Backend;
use bytes::Bytes;
use ec2api::query::Node;
use ec2api::xml::{render_error, render_response};
use ec2api::{Action, Code, Ec2Error};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::auth;
use crate::config::Limits;
use crate::context::Ctx;
use crate::dispatch::dispatch;
use crate::throttle::{ActionClass, Throttle};

pub struct AppState {
    pub backend: Arc<Backend>,
    pub limits: Limits,
    throttle: Throttle,
    pub console: crate::console::Console,
}

impl AppState {
    pub fn new(backend: Arc<Backend>, limits: Limits) -> Self {
        let throttle = Throttle::new(&limits);
        let console = crate::console::Console::new(&crate::config::ConsoleSettings::default());
        Self { backend, limits, throttle, console }
    }

    pub fn with_console(mut self, settings: &crate::config::ConsoleSettings) -> Self {
        self.console = crate::console::Console::new(settings);
        self
    }

    /// Draws from `account`'s bucket for `action`'s class.
    pub fn account_allowed(&self, account: &str, action: &str) -> bool {
        self.throttle.account(account, ActionClass::of(action))
    }

    /// Draws from the bucket of requests that prove no account, for `source`.
    pub fn anonymous_allowed(&self, source: IpAddr) -> bool {
        self.throttle.anonymous(source)
    }
}

/// The address a request came from, put in its extensions by [`serve`]; a request without one
/// (in-process callers) counts as coming from the unspecified address.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

pub type HttpResponse = Response<Full<Bytes>>;

fn xml_response(status: u16, body: Vec<u8>, request_id: &str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/xml;charset=UTF-8"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

fn error_response(error: &Ec2Error, request_id: &str) -> HttpResponse {
    xml_response(error.status(), render_error(error, request_id), request_id)
}

/// Answers one request; never fails, every error is an EC2 envelope.
pub async fn handle<B>(state: Arc<AppState>, request: Request<B>) -> HttpResponse
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<tower::BoxError>,
{
    handle_with_id(state, request, uuid::Uuid::new_v4().to_string()).await
}

async fn handle_with_id<B>(state: Arc<AppState>, request: Request<B>, request_id: String) -> HttpResponse
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<tower::BoxError>,
{
    let started = Instant::now();
    if let Some((protocol, operation)) = crate::cloudwatch::detect(&request) {
        return crate::cloudwatch::handle(&state, request, protocol, operation, &request_id, started).await;
    }
    // The action, once decoded: failures after that are counted against it.
    let mut decoded = "-";
    let outcome = answer(&state, request, &request_id, &mut decoded).await;
    render(outcome, decoded, &request_id, started)
}

/// Logs and counts an answered action, and renders it in EC2's XML (an error in its envelope).
pub(crate) fn render(
    outcome: Result<Answer, Ec2Error>,
    decoded: &'static str,
    request_id: &str,
    started: Instant,
) -> HttpResponse {
    let (status, action, account) = match &outcome {
        Ok((action, account, _)) => (200, *action, account.as_str()),
        Err(e) => (e.status(), decoded, "-"),
    };
    tracing::info!(%request_id, action, account, status, micros = started.elapsed().as_micros() as u64, error = ?outcome.as_ref().err());
    let code = outcome.as_ref().err().map_or("OK", |e| e.code());
    crate::prometheus::observe_request(action, code, started.elapsed().as_secs_f64());
    match outcome {
        Ok((action, _, body)) => xml_response(200, render_response(action, body.as_ref(), request_id), request_id),
        Err(error) => {
            let mut response = error_response(&error, request_id);
            if error.code() == "RequestTimeout" {
                // The rest of a body that did not come in time is not worth waiting for.
                response.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    }
}

pub fn throttled() -> Ec2Error {
    Ec2Error::new(Code::RequestLimitExceeded, "Request limit exceeded.")
}

pub(crate) type Answer = (&'static str, String, crate::dispatch::Output);

/// A request whose body has been read, before its signature is checked.
pub struct Received {
    pub parts: http::request::Parts,
    /// The decoded query string.
    pub query: Vec<(String, String)>,
    pub body: Bytes,
    signed: bool,
    source: IpAddr,
}

/// Steps 2 and 3 of the flow: an unsigned request is charged to its address, and the body is
/// read within its size and time limits.
pub async fn receive<B>(state: &AppState, request: Request<B>) -> Result<Received, Ec2Error>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<tower::BoxError>,
{
    let source = request.extensions().get::<PeerAddr>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.ip());
    let (parts, body) = request.into_parts();
    let query: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    // Unsigned requests are refused from their address's bucket before anything else is done.
    let signed =
        parts.headers.contains_key(http::header::AUTHORIZATION) || query.iter().any(|(k, _)| k == "X-Amz-Signature");
    if !signed && !state.throttle.anonymous(source) {
        return Err(throttled());
    }
    let body = read_body(&state.limits, &parts.headers, body).await?;
    Ok(Received { parts, query, body, signed, source })
}

/// Step 3 alone: the body, bounded by `max_body_bytes` (a declared length past it is refused
/// before reading) and `body_timeout_secs`. The console reads its bodies here too.
pub async fn read_body<B>(limits: &Limits, headers: &http::HeaderMap, body: B) -> Result<Bytes, Ec2Error>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<tower::BoxError>,
{
    let too_large = || {
        Ec2Error::new(
            Code::RequestEntityTooLarge,
            format!("The request body is larger than {} bytes", limits.max_body_bytes),
        )
    };
    let declared = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limits.max_body_bytes) {
        return Err(too_large());
    }
    let body_timeout = Duration::from_secs(limits.body_timeout_secs.max(1));
    Ok(tokio::time::timeout(body_timeout, Limited::new(body, limits.max_body_bytes).collect())
        .await
        .map_err(|_| {
            Ec2Error::new(
                Code::RequestTimeout,
                "Your socket connection to the server was not read from or written to within the timeout period.",
            )
        })?
        .map_err(|_| too_large())?
        .to_bytes())
}

impl Received {
    /// Step 4: the caller and the region it signed for, for `service`. A failed signature
    /// proves no account: it is charged to its address, like no signature.
    pub fn authenticate(&self, state: &AppState, service: &str) -> Result<(Principal, String), Ec2Error> {
        authenticate(state, &self.parts, &self.query, &self.body, service).map_err(|error| {
            if self.signed && !state.throttle.anonymous(self.source) {
                throttled()
            } else {
                error
            }
        })
    }

    /// Draws from the account's bucket for the action's class.
    pub fn admit(&self, state: &AppState, account_id: &str, action: &str) -> Result<(), Ec2Error> {
        if state.account_allowed(account_id, action) {
            Ok(())
        } else {
            Err(throttled())
        }
    }
}

async fn answer<B>(
    state: &AppState,
    request: Request<B>,
    request_id: &str,
    decoded: &mut &'static str,
) -> Result<Answer, Ec2Error>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<tower::BoxError>,
{
    let incoming = receive(state, request).await?;
    let (principal, region) = incoming.authenticate(state, "ec2")?;
    let Received { parts, query, body, .. } = incoming;

    let is_form = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let mut pairs: Vec<(String, String)> =
        query.into_iter().filter(|(k, _)| !auth::PRESIGN_PARAMS.contains(&k.as_str())).collect();
    if is_form || (parts.method == http::Method::POST && !body.is_empty()) {
        pairs.extend(form_urlencoded::parse(&body).into_owned());
    }
    let host = parts.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    execute(state, principal, region, host, pairs, request_id, decoded).await
}

/// Steps 5 on, for a caller already known (by signature, or by a console session): the action
/// is decoded, checked against the caller's rights and run.
pub(crate) async fn execute(
    state: &AppState,
    principal: Principal,
    region: String,
    host: &str,
    pairs: Vec<(String, String)>,
    request_id: &str,
    decoded: &mut &'static str,
) -> Result<Answer, Ec2Error> {
    let action_name = pairs.iter().rev().find(|(k, _)| k == "Action").map(|(_, v)| v.clone());
    let action_name = action_name.ok_or_else(|| Ec2Error::missing_parameter("Action"))?;
    if !state.account_allowed(&principal.account_id, &action_name) {
        return Err(throttled());
    }
    let mut params = Node::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    params.take("Action");
    if params.take("Version").and_then(|n| n.value().map(str::to_owned)).is_none() {
        return Err(Ec2Error::missing_parameter("Version"));
    }
    let action = Action::decode(&action_name, &params)?;
    *decoded = action.name();
    if crate::handlers::ADMIN_ONLY.contains(&action.name()) && !principal.admin {
        return Err(Ec2Error::new(
            Code::UnauthorizedOperation,
            format!("You are not authorized to perform this operation: {} needs an admin account.", action.name()),
        ));
    }
    if action.dry_run() {
        return Err(Ec2Error::new(Code::DryRunOperation, "Request would have succeeded, but DryRun flag is set."));
    }
    let ctx = Ctx {
        request_id: request_id.to_owned(),
        endpoint: format!("http://{host}"),
        region,
        principal,
        backend: Arc::clone(&state.backend),
    };
    let name = action.name();
    let output = dispatch(&ctx, action).await?;
    Ok((name, ctx.principal.account_id, output))
}

/// Verifies the request's SigV4 signature: the caller and the region it signed for.
fn authenticate(
    state: &AppState,
    parts: &http::request::Parts,
    query: &[(String, String)],
    body: &[u8],
    service: &str,
) -> Result<(Principal, String), Ec2Error> {
    let claim = auth::claim(&parts.headers, query)?;
    if claim.service != service {
        return Err(Ec2Error::new(
            Code::SignatureDoesNotMatch,
            format!("Credential should be scoped to correct service: '{service}', not '{}'", claim.service),
        ));
    }
    if state.backend.topology().region(&claim.region).is_none() {
        return Err(Ec2Error::new(
            Code::AuthFailure,
            format!("Credential should be scoped to a valid region, not '{}'", ec2api::error::echo(&claim.region)),
        ));
    }
    auth::check_time(&claim, SystemTime::now())?;
    // Two point reads of a redb snapshot: cheaper here than on another thread.
    let principal = state.backend.principal(&claim.access_key_id).map_err(crate::errors::to_ec2)?.ok_or_else(|| {
        Ec2Error::new(Code::AuthFailure, "AWS was not able to validate the provided access credentials")
    })?;
    auth::verify(&claim, &principal.secret_access_key, parts, query, body)?;
    Ok((principal, claim.region))
}

/// How many connections the kernel may queue for `accept` (std's default of 128 overflows
/// under a burst of connects, and every overflow costs a client a one-second SYN retry).
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket with [`LISTEN_BACKLOG`].
pub fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Open connections by source address, each with the means to close it.
///
/// A connection past its address's cap is closed as soon as it is accepted. At the total cap,
/// a newcomer whose address holds fewer connections than the address holding the most takes
/// the place of that address's oldest connection: many addresses together cannot lock out one
/// that holds few, and one address can never hold more than `max_per_address`.
struct Connections {
    open: Mutex<Open>,
    max: usize,
    max_per_address: usize,
}

#[derive(Default)]
struct Open {
    total: usize,
    next_id: u64,
    /// Per address, its connections oldest first: (id, the signal that closes it).
    by_address: HashMap<IpAddr, Vec<(u64, Arc<tokio::sync::Notify>)>>,
}

/// One admitted connection; dropping it gives its place back.
struct Admitted {
    connections: Arc<Connections>,
    address: IpAddr,
    id: u64,
    /// Notified when a newcomer takes this connection's place.
    evicted: Arc<tokio::sync::Notify>,
}

impl Connections {
    fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Admitted> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let here = open.by_address.get(&address).map_or(0, Vec::len);
        if here >= self.max_per_address {
            return None;
        }
        if open.total >= self.max {
            let (&busiest, held) = open.by_address.iter().max_by_key(|(_, held)| held.len())?;
            if held.len() <= here + 1 {
                return None;
            }
            let held = open.by_address.get_mut(&busiest)?;
            let (_, close) = held.remove(0);
            if held.is_empty() {
                open.by_address.remove(&busiest);
            }
            open.total -= 1;
            close.notify_one();
        }
        let (id, evicted) = (open.next_id, Arc::new(tokio::sync::Notify::new()));
        open.next_id += 1;
        open.total += 1;
        open.by_address.entry(address).or_default().push((id, Arc::clone(&evicted)));
        Some(Admitted { connections: Arc::clone(self), address, id, evicted })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.connections.open.lock().unwrap_or_else(|p| p.into_inner());
        let Some(held) = open.by_address.get_mut(&self.address) else { return };
        // An evicted connection gave its place back when it was evicted.
        let Some(at) = held.iter().position(|(id, _)| *id == self.id) else { return };
        held.remove(at);
        if held.is_empty() {
            open.by_address.remove(&self.address);
        }
        open.total -= 1;
    }
}

/// Serves until `shutdown` resolves, then lets open requests finish (up to 10 s).
///
/// Every connection must send a request's headers within `header_timeout_secs` of opening or
/// of its previous answer (which also closes idle keep-alive connections), its body within
/// `body_timeout_secs` (`400 RequestTimeout`), and the request must be answered within
/// `request_timeout_secs`; connections are capped in all and per source address
/// ([`Connections`]).
pub async fn serve(listener: TcpListener, state: Arc<AppState>, shutdown: impl Future<Output = ()>) {
    let limits = state.limits.clone();
    let timeout = Duration::from_secs(limits.request_timeout_secs.max(1));
    let connections = Arc::new(Connections {
        open: Mutex::new(Open::default()),
        max: limits.max_connections,
        max_per_address: limits.max_connections_per_address,
    });
    let forget = {
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(10));
            loop {
                every.tick().await;
                state.throttle.forget_idle();
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(limits.header_timeout_secs.max(1)));
    // Every connection holds a receiver: `true` asks it to finish gracefully, and the sender
    // sees all of them gone once they have. (hyper-util's GracefulShutdown cannot watch a
    // connection that may be upgraded, as the console's serial WebSocket is.)
    let (graceful, _) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of descriptors (or a connection reset before it was taken): retrying
                        // at once would spin; the caps keep this rare.
                        tracing::warn!(%error, "accept failed; pausing 100 ms");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(admitted) = connections.admit(peer.ip()) else {
                    tracing::debug!(%peer, "connection refused: too many open");
                    continue;
                };
                // Answers go out whole at once; Nagle would only hold back the last segment.
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                let service = tower::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                    let state = Arc::clone(&state);
                    request.extensions_mut().insert(PeerAddr(peer));
                    async move {
                        let request_id = uuid::Uuid::new_v4().to_string();
                        let late = |request_id: &str| {
                            tracing::warn!(%request_id, "request did not finish in time");
                            let error = Ec2Error::new(Code::InternalError, "The request did not finish in time.");
                            error_response(&error, request_id)
                        };
                        // The console's answers may stream (server-sent events): they get a
                        // body type of their own; the API's stay unboxed.
                        if crate::console::wants(request.uri().path()) {
                            let answered =
                                tokio::time::timeout(timeout, crate::console::handle(&state, request, &request_id)).await;
                            let response = answered.unwrap_or_else(|_| late(&request_id).map(BodyExt::boxed));
                            return Ok::<_, Infallible>(response.map(Either::Right));
                        }
                        let answered = tokio::time::timeout(timeout, handle_with_id(state, request, request_id.clone())).await;
                        Ok::<_, Infallible>(answered.unwrap_or_else(|_| late(&request_id)).map(Either::Left))
                    }
                });
                let connection =
                    http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).with_upgrades();
                let mut stopping = graceful.subscribe();
                tokio::spawn(async move {
                    let mut connection = std::pin::pin!(connection);
                    let ended = tokio::select! {
                        ended = connection.as_mut() => ended,
                        () = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
                            connection.as_mut().graceful_shutdown();
                            connection.await
                        }
                        () = admitted.evicted.notified() => {
                            tracing::debug!(%peer, "connection closed for a newcomer");
                            Ok(())
                        }
                    };
                    if let Err(error) = ended {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    drop((admitted, stopping));
                });
            }
            () = &mut shutdown => break,
        }
    }
    forget.abort();
    tokio::select! {
        () = async {
            graceful.send_replace(true);
            graceful.closed().await;
        } => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open at shutdown"),
    }
}
