//! CloudWatch on the API's own endpoint: the metric history of [`backend::monitoring`] read
//! through `GetMetricStatistics`, `GetMetricData` and `ListMetrics`.
//!
//! One request, end to end:
//! 1. [`detect`] tells a CloudWatch request from an EC2 one before its body is read: Smithy
//!    RPC v2 CBOR by its path, JSON 1.0 by `X-Amz-Target`, the query protocol by the SigV4
//!    scope's service (`monitoring`).
//! 2. The body is read and the signature checked as for EC2 ([`crate::server::receive`]),
//!    for the service `monitoring`; the account's bucket is charged for the operation.
//! 3. [`cwapi::decode`] gives the typed operation (model constraints checked there); one
//!    handler per operation asks the backend on the blocking pool.
//! 4. The answer goes back in the protocol it came in ([`cwapi::encode`]); EC2 errors from
//!    the shared steps and domain errors become CloudWatch codes here, in [`from_ec2`] and
//!    [`from_domain`], and nowhere else.

mod get_metric_data;
mod get_metric_statistics;
mod list_metrics;
mod put_metric_data;
mod stats;

use std::sync::Arc;
use std::time::Instant;

use backend::accounts::Principal;
use backend::Backend;
use bytes::Bytes;
use cwapi::{CwError, ErrorCode, Operation, Output, Protocol};
use ec2api::Ec2Error;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;

use crate::server::{AppState, HttpResponse};

/// What a handler gets: the caller and the backend.
pub struct CwCtx {
    pub request_id: String,
    pub principal: Principal,
    pub backend: Arc<Backend>,
}

impl CwCtx {
    /// Runs a backend call on the blocking pool (history reads scan the store).
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Backend) -> backend::Result<T> + Send + 'static,
    ) -> Result<T, CwError> {
        match crate::context::on_blocking_pool(&self.backend, &self.request_id, f).await {
            Some(result) => result.map_err(|e| from_domain(&self.request_id, e)),
            None => Err(CwError::internal()),
        }
    }
}

/// Whether the request speaks CloudWatch, and in which protocol (with the operation, when the
/// path or header names it).
pub fn detect<B>(request: &Request<B>) -> Option<(Protocol, Option<String>)> {
    let (method, uri, headers) = (request.method(), request.uri(), request.headers());
    if let Some(found) = cwapi::detect(method.as_str(), uri.path(), headers) {
        return Some(found);
    }
    // The query protocol looks like EC2's: only the signature's scope tells them apart. Every
    // EC2 request passes here, so the credential is only looked at, not parsed: the full check
    // of the scope comes with authentication, and a request that merely mentions the scope
    // elsewhere fails its signature there, in CloudWatch's envelope.
    let scope = "/monitoring/aws4_request";
    let in_header =
        headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains(scope));
    let presigned = uri.query().is_some_and(|q| q.contains(scope) || q.contains("%2Fmonitoring%2Faws4_request"));
    (in_header || presigned).then_some((Protocol::Query, None))
}

/// The CloudWatch code for an error of the steps EC2 and CloudWatch share (throttling, body
/// limits, signatures).
pub fn from_ec2(error: &Ec2Error) -> CwError {
    let code = match error.code() {
        "RequestLimitExceeded" => ErrorCode::Throttling,
        "RequestEntityTooLarge" => ErrorCode::RequestEntityTooLarge,
        "AuthFailure" => ErrorCode::InvalidClientTokenId,
        "SignatureDoesNotMatch" => ErrorCode::SignatureDoesNotMatch,
        "IncompleteSignature" => ErrorCode::IncompleteSignature,
        "MissingAuthenticationToken" => ErrorCode::MissingAuthenticationToken,
        "RequestExpired" => ErrorCode::RequestExpired,
        "UnauthorizedOperation" => ErrorCode::AccessDenied,
        "RequestTimeout" | "MissingParameter" | "InvalidParameterValue" => ErrorCode::InvalidParameterValue,
        _ => ErrorCode::InternalServiceError,
    };
    let message =
        if code == ErrorCode::InternalServiceError { CwError::internal().message } else { error.message().into() };
    CwError::new(code, message)
}

/// The one place where domain errors become CloudWatch codes: history reads fail only when
/// the store does, which is the service's fault.
pub fn from_domain(request_id: &str, error: backend::Error) -> CwError {
    tracing::error!(%request_id, %error, "metric history failed");
    CwError::internal()
}

fn response(reply: cwapi::Reply) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// Answers one CloudWatch request; never fails, every error is CloudWatch's envelope in the
/// request's protocol.
pub async fn handle<B>(
    state: &AppState,
    request: Request<B>,
    protocol: Protocol,
    operation: Option<String>,
    request_id: &str,
    started: Instant,
) -> HttpResponse
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<tower::BoxError>,
{
    let mut decoded = "-";
    let outcome = answer(state, request, protocol, operation, request_id, &mut decoded).await;
    render(outcome, protocol, decoded, request_id, started)
}

type Answer = (&'static str, String, Output);

/// Logs and counts an answered operation, and encodes it in `protocol`.
pub(crate) fn render(
    outcome: Result<Answer, CwError>,
    protocol: Protocol,
    decoded: &'static str,
    request_id: &str,
    started: Instant,
) -> HttpResponse {
    let (status, action, account) = match &outcome {
        Ok((action, account, _)) => (200, *action, account.as_str()),
        Err(e) => (e.code.status(), decoded, "-"),
    };
    tracing::info!(%request_id, action, account, status, protocol = ?protocol, micros = started.elapsed().as_micros() as u64, error = ?outcome.as_ref().err());
    let code = outcome.as_ref().err().map_or("OK", |e| e.code.as_str());
    crate::prometheus::observe_request(action, code, started.elapsed().as_secs_f64());
    response(match outcome {
        Ok((_, _, output)) => cwapi::encode(protocol, &output, request_id),
        Err(error) => cwapi::encode_error(protocol, &error, request_id),
    })
}

async fn answer<B>(
    state: &AppState,
    request: Request<B>,
    protocol: Protocol,
    operation: Option<String>,
    request_id: &str,
    decoded: &mut &'static str,
) -> Result<Answer, CwError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<tower::BoxError>,
{
    let received = crate::server::receive(state, request).await.map_err(|e| from_ec2(&e))?;
    let (principal, _region) = received.authenticate(state, cwapi::SIGNING_NAME).map_err(|e| from_ec2(&e))?;
    // Charged before any decoding, by what the request names (a query form names its
    // operation only inside: the read bucket, as every CloudWatch read).
    let named = operation.as_deref().unwrap_or("GetMetricData");
    received.admit(state, &principal.account_id, named).map_err(|e| from_ec2(&e))?;
    let body = decompressed(&received, state.limits.max_body_bytes)?;
    let body = match protocol {
        // A query request may come as a GET (or presigned): its parameters are in the URL.
        Protocol::Query if body.is_empty() => Bytes::from(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(received.query.iter().filter(|(k, _)| !crate::auth::PRESIGN_PARAMS.contains(&k.as_str())))
                .finish(),
        ),
        _ => body,
    };
    execute(state, principal, protocol, operation.as_deref(), &body, request_id, decoded).await
}

/// From the body on, for a caller already known (by signature, or by a console session).
pub(crate) async fn execute(
    state: &AppState,
    principal: Principal,
    protocol: Protocol,
    operation: Option<&str>,
    body: &[u8],
    request_id: &str,
    decoded: &mut &'static str,
) -> Result<Answer, CwError> {
    let operation = cwapi::decode(protocol, operation, body)?;
    let name = operation.name();
    *decoded = name;
    let account = principal.account_id.clone();
    let ctx = CwCtx { request_id: request_id.to_owned(), principal, backend: Arc::clone(&state.backend) };
    let output = match operation {
        Operation::GetMetricStatistics(input) => get_metric_statistics::handle(&ctx, input).await?,
        Operation::GetMetricData(input) => get_metric_data::handle(&ctx, input).await?,
        Operation::ListMetrics(input) => list_metrics::handle(&ctx, input).await?,
        Operation::PutMetricData(input) => put_metric_data::handle(&ctx, input).await?,
    };
    Ok((name, account, output))
}

/// The body as the operation wrote it: botocore gzips large PutMetricData bodies (the model's
/// `requestcompression`), after signing what it sends. Inflated at most to `limit` bytes.
fn decompressed(received: &crate::server::Received, limit: usize) -> Result<Bytes, CwError> {
    use std::io::Read;
    let encoding = received.parts.headers.get(http::header::CONTENT_ENCODING).and_then(|v| v.to_str().ok());
    if !encoding.is_some_and(|e| e.split(',').any(|e| e.trim().eq_ignore_ascii_case("gzip"))) {
        return Ok(received.body.clone());
    }
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(&received.body[..])
        .take(limit as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|_| CwError::serialization("The body is not valid gzip."))?;
    if inflated.len() > limit {
        return Err(CwError::new(
            ErrorCode::RequestEntityTooLarge,
            format!("The request body is larger than {limit} bytes once decompressed"),
        ));
    }
    Ok(Bytes::from(inflated))
}

/// Dimensions as the backend takes them; a dimension without a name or value is refused.
pub fn dimensions(list: Option<Vec<cwapi::Dimension>>, member: &str) -> Result<Vec<(String, String)>, CwError> {
    list.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, d)| match (d.name, d.value) {
            (Some(name), Some(value)) => Ok((name, value)),
            (None, _) => Err(CwError::missing(&format!("{member}.member.{}.Name", i + 1))),
            (_, None) => Err(CwError::missing(&format!("{member}.member.{}.Value", i + 1))),
        })
        .collect()
}

/// A query's datapoints and its metric's unit (a custom metric's as it was put). Asking for
/// another unit than the metric's matches no data, as in CloudWatch; so does a period under
/// a minute (Stratus keeps no high-resolution data).
pub fn read(
    b: &Backend,
    account: &str,
    admin: bool,
    query: &backend::monitoring::MetricQuery,
    asked_unit: Option<&str>,
) -> backend::Result<(Vec<backend::monitoring::Datapoint>, Option<String>)> {
    let unit = match backend::monitoring::metric_unit(&query.namespace, &query.metric_name) {
        Some(unit) => Some(unit.to_owned()),
        None => b.custom_unit(account, query)?,
    };
    if asked_unit.is_some_and(|asked| Some(asked) != unit.as_deref()) || query.period_secs < 60 {
        return Ok((Vec::new(), unit));
    }
    Ok((b.metric_statistics(account, admin, query)?, unit))
}

/// Seconds since the epoch (as the protocols carry them) to milliseconds.
pub fn millis(seconds: f64) -> i64 {
    (seconds * 1000.0).round().clamp(-1e15, 1e15) as i64
}

/// Checks a period as CloudWatch does for metrics of regular (one-minute) resolution.
pub fn check_period(period: i64, member: &str) -> Result<u32, CwError> {
    if !(1..=86_400 * 455).contains(&period) {
        return Err(CwError::invalid_value(format!("The parameter {member} must be between 1 and 39312000.")));
    }
    if period % 60 != 0 && ![1, 5, 10, 20, 30].contains(&period) {
        return Err(CwError::invalid_value(format!("The parameter {member} must be a multiple of 60.")));
    }
    Ok(period as u32)
}
