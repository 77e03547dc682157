//! The HTTP server: hyper connections, a tower stack, and the request flow of the crate docs.

use std::convert::Infallible;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use backend::Backend;
use bytes::Bytes;
use ec2api::query::Node;
use ec2api::xml::{render_error, render_response};
use ec2api::{Action, Ec2Error};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::auth;
use crate::config::Limits;
use crate::context::Ctx;
use crate::dispatch::dispatch;

pub struct AppState {
    pub backend: Arc<Backend>,
    pub limits: Limits,
    limiter: DefaultDirectRateLimiter,
}

impl AppState {
    pub fn new(backend: Arc<Backend>, limits: Limits) -> Self {
        let rate = NonZeroU32::new(limits.requests_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.burst).unwrap_or(rate);
        let limiter = RateLimiter::direct(Quota::per_second(rate).allow_burst(burst));
        Self { backend, limits, limiter }
    }
}

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
    let request_id = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let outcome = answer(&state, request, &request_id).await;
    let (status, action, account) = match &outcome {
        Ok((action, account, _)) => (200, *action, account.as_str()),
        Err(e) => (e.status(), "-", "-"),
    };
    tracing::info!(%request_id, action, account, status, micros = started.elapsed().as_micros() as u64, error = ?outcome.as_ref().err());
    match outcome {
        Ok((action, _, body)) => xml_response(200, render_response(action, body.as_ref(), &request_id), &request_id),
        Err(error) => error_response(&error, &request_id),
    }
}

type Answer = (&'static str, String, crate::dispatch::Output);

async fn answer<B>(state: &AppState, request: Request<B>, request_id: &str) -> Result<Answer, Ec2Error>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<tower::BoxError>,
{
    if state.limiter.check().is_err() {
        return Err(Ec2Error::new("RequestLimitExceeded", "Request limit exceeded."));
    }
    let (parts, body) = request.into_parts();
    let too_large = || {
        Ec2Error::new(
            "RequestEntityTooLarge",
            format!("The request body is larger than {} bytes", state.limits.max_body_bytes),
        )
    };
    let declared = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > state.limits.max_body_bytes) {
        return Err(too_large());
    }
    let body = Limited::new(body, state.limits.max_body_bytes).collect().await.map_err(|_| too_large())?.to_bytes();

    let query: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    let claim = auth::claim(&parts, &query)?;
    if state.backend.topology().region(&claim.region).is_none() {
        return Err(Ec2Error::new(
            "AuthFailure",
            format!("Credential should be scoped to a valid region, not '{}'", claim.region),
        ));
    }
    auth::check_time(&claim, SystemTime::now())?;
    // Two point reads of a redb snapshot: cheaper here than on another thread.
    let principal =
        state.backend.principal(&claim.access_key_id).map_err(crate::errors::to_ec2)?.ok_or_else(|| {
            Ec2Error::new("AuthFailure", "AWS was not able to validate the provided access credentials")
        })?;
    auth::verify(&claim, &principal.secret_access_key, &parts, &query, &body)?;

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
    let mut params = Node::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let action_name = params.take("Action").and_then(|n| n.value().map(str::to_owned));
    let action_name = action_name.ok_or_else(|| Ec2Error::missing_parameter("Action"))?;
    if params.take("Version").and_then(|n| n.value().map(str::to_owned)).is_none() {
        return Err(Ec2Error::missing_parameter("Version"));
    }
    let action = Action::decode(&action_name, &params)?;
    if crate::handlers::ADMIN_ONLY.contains(&action.name()) && !principal.admin {
        return Err(Ec2Error::new(
            "UnauthorizedOperation",
            format!("You are not authorized to perform this operation: {} needs an admin account.", action.name()),
        ));
    }
    if action.dry_run() {
        return Err(Ec2Error::new("DryRunOperation", "Request would have succeeded, but DryRun flag is set."));
    }
    let host = parts.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let ctx = Ctx {
        request_id: request_id.to_owned(),
        endpoint: format!("http://{host}"),
        region: claim.region,
        principal,
        backend: Arc::clone(&state.backend),
    };
    let name = action.name();
    let output = dispatch(&ctx, action).await?;
    Ok((name, ctx.principal.account_id, output))
}

/// Serves until `shutdown` resolves, then lets open requests finish (up to 10 s).
pub async fn serve(listener: TcpListener, state: Arc<AppState>, shutdown: impl Future<Output = ()>) {
    let timeout = Duration::from_secs(state.limits.request_timeout_secs.max(1));
    let service = tower::service_fn(move |request: Request<hyper::body::Incoming>| {
        let state = Arc::clone(&state);
        async move {
            let answered = tokio::time::timeout(timeout, handle(state, request)).await;
            Ok::<_, Infallible>(answered.unwrap_or_else(|_| {
                let error = Ec2Error::new("InternalError", "The request did not finish in time.");
                error_response(&error, &uuid::Uuid::new_v4().to_string())
            }))
        }
    });
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                // Answers go out whole at once; Nagle would only hold back the last segment.
                let _ = stream.set_nodelay(true);
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service.clone()));
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = watched.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open at shutdown"),
    }
}
