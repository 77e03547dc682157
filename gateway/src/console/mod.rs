//! The web console: the cloud in a browser, served by `stratus serve` under `/console/` on the
//! API's own listener.
//!
//! The page is a small script application (`gateway/console/`, built into the binary by
//! [`assets`]). It holds no data of its own: every list and every action is an EC2 (or
//! CloudWatch) request, posted to this module, which runs it through the very path a signed
//! request takes ([`crate::server::execute`], [`crate::cloudwatch::execute`]) as the session's
//! account. So the console can do exactly what the account could do with the aws cli, gets the
//! same errors, and a tenant cannot reach another's resources or an admin's by URL: the
//! domain refuses, as it refuses the cli.
//!
//! One request, end to end:
//! 1. `GET /console/` and `/console/assets/*`: the built-in files, with a content security
//!    policy that lets the page load nothing but its own scripts and styles.
//! 2. `POST /console/api/session` (JSON: access key id and secret): the secret is checked
//!    against the key's account (constant time); the answer sets an HttpOnly, SameSite=Strict
//!    cookie (Secure behind TLS) naming a [`session`], and tells the page its CSRF token.
//!    `GET` says who is signed in; `DELETE` signs out.
//! 3. Every state change (`POST`, `DELETE`) must carry the session's CSRF token in
//!    `X-CSRF-Token` and, when the browser says where it comes from, come from this origin.
//! 4. `POST /console/api/ec2` (an EC2 query form) and `POST /console/api/monitoring`
//!    (CloudWatch's JSON protocol) answer in those services' own formats.
//! 5. `GET /console/api/migrations/{id}/events`: a live migration's progress, pushed as
//!    server-sent events until it ends ([`events`]); `…/trace`: its ping trace (admins).
//! 6. `GET /console/api/instances/{id}/serial`: the instance's serial console, a WebSocket
//!    ([`serial`]).

mod assets;
mod events;
mod serial;
pub mod session;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::accounts::Principal;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::config::ConsoleSettings;
use crate::server::{AppState, PeerAddr};
use session::{Session, Sessions};

pub type ConsoleBody = BoxBody<Bytes, Infallible>;
pub type ConsoleResponse = Response<ConsoleBody>;

/// The cookie that names a session (over plain HTTP).
pub const COOKIE: &str = "stratus_console";
/// Its name behind TLS.
pub const SECURE_COOKIE: &str = "__Host-stratus_console";
/// Where the console lives.
pub const PREFIX: &str = "/console";

pub struct Console {
    enabled: bool,
    pub sessions: Sessions,
}

impl Console {
    pub fn new(settings: &ConsoleSettings) -> Self {
        Self {
            enabled: settings.enabled,
            sessions: Sessions::new(
                Duration::from_secs(settings.session_secs.max(1)),
                Duration::from_secs(settings.idle_secs.max(1)),
            ),
        }
    }
}

/// Whether the request is the console's.
pub fn wants(path: &str) -> bool {
    path == PREFIX || path.strip_prefix(PREFIX).is_some_and(|rest| rest.starts_with('/'))
}

fn with_security_headers(mut response: ConsoleResponse) -> ConsoleResponse {
    let headers = response.headers_mut();
    // Nothing but the console's own files, no framing, no inline script: a tenant's tag or
    // console output shown on a page cannot become script.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> ConsoleResponse {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A console error as the page reads it: `{"code", "message"}`.
fn problem(status: StatusCode, code: &str, message: &str) -> ConsoleResponse {
    full(status, "application/json", json!({ "code": code, "message": message }).to_string())
}

/// An EC2 error (a domain refusal, a body too large, a throttle) as the page reads it.
fn ec2_problem(e: &ec2api::Ec2Error) -> ConsoleResponse {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    problem(status, e.code(), e.message())
}

fn cross_origin() -> ConsoleResponse {
    problem(StatusCode::FORBIDDEN, "CrossOrigin", "The request did not come from the console's own page.")
}

fn stale_csrf() -> ConsoleResponse {
    problem(
        StatusCode::FORBIDDEN,
        "InvalidCsrfToken",
        "The page's security token is missing or stale. Reload the page.",
    )
}

fn signed_out() -> ConsoleResponse {
    problem(StatusCode::UNAUTHORIZED, "SignedOut", "Your session has ended. Sign in again.")
}

/// Answers one console request; never fails.
pub async fn handle<B>(state: &Arc<AppState>, request: Request<B>, request_id: &str) -> ConsoleResponse
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<tower::BoxError>,
{
    if !state.console.enabled {
        return with_security_headers(problem(StatusCode::NOT_FOUND, "NotFound", "The console is turned off."));
    }
    let path = request.uri().path().strip_prefix(PREFIX).unwrap_or_default().to_owned();
    let method = request.method().clone();
    let response = match (&method, path.as_str()) {
        (&Method::GET | &Method::HEAD, "") => {
            let mut response = full(StatusCode::PERMANENT_REDIRECT, "text/plain", "");
            response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/console/"));
            response
        }
        (&Method::GET | &Method::HEAD, "/") => assets::serve("index.html", request.headers()),
        (&Method::GET | &Method::HEAD, p) if p.starts_with("/assets/") => {
            assets::serve(&p["/assets/".len()..], request.headers())
        }
        (&Method::GET, p) if serial_instance(p).is_some() => {
            let id = serial_instance(p).unwrap_or_default().to_owned();
            serial::open(state, request, &id).await
        }
        (_, p) if p.starts_with("/api/") => api(state, request, &path, request_id).await,
        _ => problem(StatusCode::NOT_FOUND, "NotFound", "There is no such page."),
    };
    with_security_headers(response)
}

/// The instance named by a serial console path, `/api/instances/{id}/serial`.
fn serial_instance(path: &str) -> Option<&str> {
    let id = path.strip_prefix("/api/instances/")?.strip_suffix("/serial")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// The session cookie's value, if the request has it (the `__Host-` one behind TLS).
fn token(headers: &HeaderMap) -> Option<&str> {
    let name = if over_tls(headers) { SECURE_COOKIE } else { COOKIE };
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value)
}

/// Whether a state change comes from the console's own origin, as far as the browser says:
/// `Sec-Fetch-Site` and `Origin` are set by browsers, never by another site's script. A
/// browser that sends `Sec-Fetch-Site` is believed (it is right behind a proxy that rewrites
/// `Host`, too); one that only sends `Origin` must name the host it addressed (the proxy's
/// `X-Forwarded-Host` and `-Proto` when present), with the scheme it used.
fn same_origin(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = header("origin") else { return true };
    let host = header("x-forwarded-host").or_else(|| header("host")).unwrap_or_default();
    let scheme = if over_tls(headers) { "https" } else { "http" };
    origin.strip_prefix(scheme).and_then(|o| o.strip_prefix("://")).is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// Whether the browser reached us over TLS (directly or through a proxy that says so).
fn over_tls(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// The session cookie. Behind TLS it is a `__Host-` cookie (Secure, for this host only, path
/// `/`), which neither a sibling domain nor a plain-HTTP page can plant.
fn cookie(value: &str, max_age: u64, tls: bool) -> HeaderValue {
    let text = if tls {
        format!("{SECURE_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}; Secure")
    } else {
        format!("{COOKIE}={value}; Path={PREFIX}/; HttpOnly; SameSite=Strict; Max-Age={max_age}")
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("stratus_console=; Max-Age=0"))
}

/// The body, read within the API's size and time limits ([`crate::server::read_body`]).
async fn read_body<B>(state: &AppState, headers: &HeaderMap, body: B) -> Result<Bytes, ConsoleResponse>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<tower::BoxError>,
{
    crate::server::read_body(&state.limits, headers, body).await.map_err(|e| ec2_problem(&e))
}

/// The caller of an API request: its session, still valid, and the account its key names now.
fn caller(state: &AppState, token: &str) -> Option<(Session, Principal)> {
    let session = state.console.sessions.get(token, Instant::now())?;
    match state.backend.principal(&session.access_key_id) {
        Ok(Some(principal)) if principal.account_id == session.account_id => Some((session, principal)),
        // The key was deleted or moved: the session it opened ends with it.
        Ok(_) => {
            state.console.sessions.close(token);
            None
        }
        Err(error) => {
            tracing::error!(%error, "reading a console session's principal");
            None
        }
    }
}

fn whoami(session: &Session, principal: &Principal, lifetime: Duration) -> serde_json::Value {
    let ends_in = lifetime.saturating_sub(session.started.elapsed());
    json!({
        "accountId": principal.account_id,
        "accessKeyId": session.access_key_id,
        "admin": principal.admin,
        "csrfToken": session.csrf,
        "expiresInSeconds": ends_in.as_secs(),
    })
}

async fn api<B>(state: &Arc<AppState>, request: Request<B>, path: &str, request_id: &str) -> ConsoleResponse
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<tower::BoxError>,
{
    let (parts, body) = request.into_parts();
    let changes = parts.method != Method::GET && parts.method != Method::HEAD;
    if changes && !same_origin(&parts.headers) {
        return cross_origin();
    }
    if path == "/api/session" && parts.method == Method::POST {
        let source = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
        return sign_in(state, &parts.headers, body, source).await;
    }
    let Some((session, principal)) = token(&parts.headers).and_then(|token| caller(state, token)) else {
        return signed_out();
    };
    if changes {
        let presented = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !session.csrf_matches(presented) {
            return stale_csrf();
        }
    }
    match (&parts.method, path) {
        (&Method::GET, "/api/session") => full(
            StatusCode::OK,
            "application/json",
            whoami(&session, &principal, state.console.sessions.lifetime).to_string(),
        ),
        (&Method::DELETE, "/api/session") => {
            if let Some(token) = token(&parts.headers) {
                state.console.sessions.close(token);
            }
            let mut response = full(StatusCode::OK, "application/json", "{}");
            response.headers_mut().insert(header::SET_COOKIE, cookie("", 0, over_tls(&parts.headers)));
            response
        }
        (&Method::POST, "/api/ec2") => {
            let body = match read_body(state, &parts.headers, body).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            let started = Instant::now();
            let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
            let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
            let region = state.backend.topology().regions[0].name.clone();
            let mut decoded = "-";
            let outcome = crate::server::execute(state, principal, region, host, pairs, request_id, &mut decoded).await;
            crate::server::render(outcome, decoded, request_id, started).map(BodyExt::boxed)
        }
        (&Method::POST, "/api/monitoring") => {
            let body = match read_body(state, &parts.headers, body).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            let started = Instant::now();
            let operation = parts
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .and_then(|t| t.rsplit_once('.'))
                .map(|(_, op)| op.to_owned());
            let protocol = cwapi::Protocol::Json;
            // Charged as a signed request is: by what it names (an unnamed one as a read).
            if !state.account_allowed(&principal.account_id, operation.as_deref().unwrap_or("GetMetricData")) {
                let error = crate::cloudwatch::from_ec2(&crate::server::throttled());
                return crate::cloudwatch::render(Err(error), protocol, "-", request_id, started).map(BodyExt::boxed);
            }
            let mut decoded = "-";
            let outcome = crate::cloudwatch::execute(
                state,
                principal,
                protocol,
                operation.as_deref(),
                &body,
                request_id,
                &mut decoded,
            )
            .await;
            crate::cloudwatch::render(outcome, protocol, decoded, request_id, started).map(BodyExt::boxed)
        }
        (&Method::GET, p) if p.starts_with("/api/migrations/") => {
            if !principal.admin {
                return problem(StatusCode::FORBIDDEN, "UnauthorizedOperation", "Migrations are for admin accounts.");
            }
            let rest = p.strip_prefix("/api/migrations/").unwrap_or_default();
            if let Some(id) = rest.strip_suffix("/trace").filter(|id| !id.is_empty() && !id.contains('/')) {
                return events::trace(&state.backend, id);
            }
            let id = rest.strip_suffix("/events");
            match id.filter(|id| !id.is_empty() && !id.contains('/')) {
                Some(id) => {
                    // The stream ends with the session (sign-out, expiry) or the key's admin right.
                    let token = token(&parts.headers).unwrap_or_default().to_owned();
                    let watcher = Arc::clone(state);
                    let still_allowed = move || caller(&watcher, &token).is_some_and(|(_, principal)| principal.admin);
                    events::migration(Arc::clone(&state.backend), id.to_owned(), still_allowed)
                }
                None => problem(StatusCode::NOT_FOUND, "NotFound", "There is no such console request."),
            }
        }
        _ => problem(StatusCode::NOT_FOUND, "NotFound", "There is no such console request."),
    }
}

/// What an unknown key's secret is compared with.
const DUMMY_SECRET: &str = "0000000000000000000000000000000000000000";

async fn sign_in<B>(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    body: B,
    source: Option<std::net::IpAddr>,
) -> ConsoleResponse
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<tower::BoxError>,
{
    // Guessing secrets costs what an unsigned API request costs: the address's small bucket.
    if let Some(source) = source {
        if !state.anonymous_allowed(source) {
            return problem(StatusCode::TOO_MANY_REQUESTS, "Throttling", "Too many sign-in attempts; wait a moment.");
        }
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !is_json {
        return problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "InvalidRequest", "Sign in with a JSON body.");
    }
    let body = match read_body(state, headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Credentials {
        access_key_id: String,
        secret_access_key: String,
    }
    let Ok(credentials) = serde_json::from_slice::<Credentials>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "InvalidRequest", "Give an access key id and its secret access key.");
    };
    let refused = || {
        problem(
            StatusCode::UNAUTHORIZED,
            "AuthFailure",
            "The access key id or the secret access key is wrong. Check both (the secret is case-sensitive).",
        )
    };
    let principal = match state.backend.principal(credentials.access_key_id.trim()) {
        Ok(Some(principal)) => principal,
        Ok(None) => {
            // The same comparison as for a known key, so that its time tells nothing.
            let _ = DUMMY_SECRET.as_bytes().ct_eq(credentials.secret_access_key.as_bytes());
            return refused();
        }
        Err(error) => {
            tracing::error!(%error, "reading a principal to sign in");
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "The console could not check the credentials.",
            );
        }
    };
    if !bool::from(principal.secret_access_key.as_bytes().ct_eq(credentials.secret_access_key.as_bytes())) {
        return refused();
    }
    // A session the browser already held (perhaps one planted on it) ends here.
    if let Some(old) = token(headers) {
        state.console.sessions.close(old);
    }
    let (token, session) =
        state.console.sessions.open(credentials.access_key_id.trim(), &principal.account_id, Instant::now());
    tracing::info!(account = %principal.account_id, "console sign-in");
    let lifetime = state.console.sessions.lifetime;
    let mut response = full(StatusCode::OK, "application/json", whoami(&session, &principal, lifetime).to_string());
    response.headers_mut().insert(header::SET_COOKIE, cookie(&token, lifetime.as_secs(), over_tls(headers)));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_owns_its_prefix_only() {
        assert!(wants("/console"));
        assert!(wants("/console/"));
        assert!(wants("/console/api/ec2"));
        assert!(!wants("/consoles"));
        assert!(!wants("/"));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; stratus_console=abc; b=2"));
        assert_eq!(token(&headers), Some("abc"));
        headers.insert(header::COOKIE, HeaderValue::from_static("xstratus_console=abc"));
        assert_eq!(token(&headers), None);
    }

    #[test]
    fn another_origin_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8773"));
        assert!(same_origin(&headers), "a client that says nothing (curl) is judged by its token");
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8773"));
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://127.0.0.1:8773"));
        assert!(!same_origin(&headers), "another scheme is another origin");
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8773"));
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&headers));
        // Behind a TLS proxy that rewrites Host: the browser's own word, or the forwarded host.
        let mut proxied = HeaderMap::new();
        proxied.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8773"));
        proxied.insert("x-forwarded-host", HeaderValue::from_static("cloud.example"));
        proxied.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        proxied.insert(header::ORIGIN, HeaderValue::from_static("https://cloud.example"));
        assert!(same_origin(&proxied));
        proxied.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&proxied));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_behind_tls() {
        let plain = cookie("t", 60, false);
        let plain = plain.to_str().unwrap();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict") && !plain.contains("Secure"));
        let tls = cookie("t", 60, true);
        let tls = tls.to_str().unwrap();
        assert!(tls.starts_with("__Host-stratus_console=t; Path=/;") && tls.ends_with("; Secure"), "{tls}");
        // Each is read where it is set.
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("stratus_console=plain; __Host-stratus_console=tls"));
        assert_eq!(token(&headers), Some("plain"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(token(&headers), Some("tls"));
    }
}
