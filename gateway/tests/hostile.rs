//! Generated hostile input against the gateway: SigV4 claims of any shape, and signed requests
//! carrying any parameters, through the whole request flow. Nothing may panic, and nothing may
//! be answered with a 500: every answer is an EC2 error a client can act on.
//!
//! CI runs a few hundred cases per property; `scripts/hostile-campaign` runs many more
//! (`PROPTEST_CASES`). Failing cases are saved under `proptest-regressions/` and replayed.

mod common;

use std::sync::Arc;

use common::*;
use gateway::auth;
use http::Request;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 300;
    }
    config
}

/// Authorization headers from pieces of real ones and noise.
fn authorization() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("AWS4-HMAC-SHA256 ".to_owned()),
        Just("Credential=".to_owned()),
        Just("AKIAEXAMPLE/20261202/us-east-1/ec2/aws4_request".to_owned()),
        Just("SignedHeaders=host;x-amz-date".to_owned()),
        Just("Signature=".to_owned()),
        Just(",".to_owned()),
        Just("/".to_owned()),
        Just("=".to_owned()),
        "[ -~]{0,16}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|p| p.concat())
}

fn presign_query() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop::sample::select(auth::PRESIGN_PARAMS.to_vec()).prop_map(str::to_owned);
    let value = prop_oneof![
        Just("AWS4-HMAC-SHA256".to_owned()),
        Just("AKIAEXAMPLE/20261202/us-east-1/ec2/aws4_request".to_owned()),
        Just("20261202T000000Z".to_owned()),
        Just("host".to_owned()),
        "[0-9]{0,20}",
        any::<String>(),
    ];
    prop::collection::vec((name, value), 0..8)
}

proptest! {
    #![proptest_config(config())]

    /// Any Authorization header, x-amz-date and presigned query: a claim, or an auth error.
    #[test]
    fn any_signature_parses_or_is_refused(
        header in authorization(),
        date in "[0-9TZ]{0,20}",
        query in presign_query(),
    ) {
        let mut request = Request::post("/").header("host", HOST);
        if let Ok(value) = http::HeaderValue::from_str(&header) {
            request = request.header("authorization", value);
        }
        if let Ok(value) = http::HeaderValue::from_str(&date) {
            request = request.header("x-amz-date", value);
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        if let Err(error) = auth::claim(&parts.headers, &query) {
            prop_assert!(matches!(error.status(), 400 | 401 | 403), "{:?}", error);
        }
    }
}

/// A parameter name of real-looking segments, or noise.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "(Filter|TagSpecification|InstanceId|Tag|IpPermissions|BlockDeviceMapping)(\\.[0-9A-Za-z]{1,6}){0,5}",
        "[A-Za-z.]{1,30}",
    ]
}

fn action() -> impl Strategy<Value = &'static str> {
    prop::sample::select(ec2api::Action::NAMES.to_vec())
}

#[test]
fn signed_requests_with_any_parameters_never_get_a_500() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Throttling answers 503 by design: a long run must not meet it.
    let f = fixture_with(gateway::config::Limits {
        requests_per_second: 1_000_000_000,
        burst: 1_000_000_000,
        ..Default::default()
    });
    let mut config = config();
    // A runner outside `proptest!` is told where its failures are kept.
    config.failure_persistence = Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/proptest-regressions/hostile-requests.txt"
    ))));
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let params = prop::collection::vec((name(), any::<String>()), 0..10);
    runner
        .run(&(action(), params), |(action, params)| {
            let mut body = form_urlencoded::Serializer::new(String::new());
            body.append_pair("Action", action).append_pair("Version", "2016-11-15");
            for (name, value) in &params {
                body.append_pair(name, value);
            }
            let body = body.finish();
            let (status, answer) = runtime.block_on(async { send_signed(&f, &body).await });
            prop_assert!(status < 500, "{action}: {status} {answer}");
            prop_assert!(answer.contains("<RequestID>") || answer.contains("<requestId>"));
            Ok(())
        })
        .unwrap();
}

async fn send_signed(f: &Fixture, body: &str) -> (u16, String) {
    let request = signed_post(body, &Signing::of(&f.admin));
    let response = gateway::server::handle(Arc::clone(&f.state), request).await;
    let status = response.status().as_u16();
    use http_body_util::BodyExt;
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}
