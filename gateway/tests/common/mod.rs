//! What the gateway's integration tests share: an in-memory server state and requests signed
//! by aws-sigv4 as a client signs them.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use backend::accounts::Credentials;
use backend::{Backend, Topology};
use bytes::Bytes;
use gateway::config::Limits;
use gateway::server::{handle, AppState};
use http::Request;
use http_body_util::{BodyExt, Full};

pub const HOST: &str = "127.0.0.1:8773";
pub const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

pub struct Fixture {
    pub state: Arc<AppState>,
    pub admin: Credentials,
}

pub fn fixture_with(limits: Limits) -> Fixture {
    fixture_on(Backend::new(storage::Store::in_memory().unwrap(), Topology::default()), limits)
}

/// A fixture on a backend of the test's making (fake hosts, a data dir).
pub fn fixture_on(backend: Backend, limits: Limits) -> Fixture {
    let admin = backend.bootstrap_admin().unwrap().unwrap();
    Fixture { state: Arc::new(AppState::new(Arc::new(backend), limits)), admin }
}

pub fn fixture() -> Fixture {
    fixture_with(Limits::default())
}

pub struct Signing<'a> {
    pub key: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
    pub time: SystemTime,
}

impl<'a> Signing<'a> {
    pub fn of(c: &'a Credentials) -> Self {
        Signing { key: &c.access_key_id, secret: &c.secret_access_key, region: "us-east-1", time: SystemTime::now() }
    }
}

pub fn signed_post(body: &str, s: &Signing) -> Request<Full<Bytes>> {
    let mut request = Request::post(format!("http://{HOST}/"))
        .header("host", HOST)
        .header("content-type", FORM)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let identity: Identity = AwsCredentials::new(s.key, s.secret, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(s.region)
        .name("ec2")
        .time(s.time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [("host", HOST), ("content-type", FORM)];
    let signable = SignableRequest::new(
        "POST",
        format!("http://{HOST}/"),
        headers.into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions.apply_to_request_http1x(&mut request);
    request
}

pub fn presigned_get(query: &str, s: &Signing, expires: Duration) -> Request<Full<Bytes>> {
    let identity: Identity = AwsCredentials::new(s.key, s.secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(s.region)
        .name("ec2")
        .time(s.time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let uri = format!("http://{HOST}/?{query}");
    let signable =
        SignableRequest::new("GET", uri.clone(), [("host", HOST)].into_iter(), SignableBody::Bytes(b"")).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = Request::get(uri).header("host", HOST).body(Full::new(Bytes::new())).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    request
}

pub async fn send(f: &Fixture, request: Request<Full<Bytes>>) -> (u16, String) {
    let response = handle(Arc::clone(&f.state), request).await;
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "text/xml;charset=UTF-8");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

pub fn code(body: &str) -> &str {
    body.split("<Code>").nth(1).and_then(|rest| rest.split("</Code>").next()).unwrap_or("")
}

pub async fn call(f: &Fixture, body: &str) -> (u16, String) {
    send(f, signed_post(body, &Signing::of(&f.admin))).await
}
