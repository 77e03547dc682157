//! Requests as botocore serializes them (fixtures/requests, written by make_fixtures.py) decode
//! to the same typed inputs in every protocol; replies of every operation and errors parse back
//! with botocore's own parsers (check_replies.py, run from here when botocore is importable).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cwapi::*;

const START_WHOLE: f64 = 1714564800.0;
const START_FRACTION: f64 = 1714564800.25;
const END: f64 = 1714570200.0;
const STAMP_WHOLE: f64 = 1714566896.0;
const STAMP_FRACTION: f64 = 1714566896.75;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/requests")
}

struct Fixture {
    body: Vec<u8>,
    meta: serde_json::Value,
}

fn fixture(op: &str, variant: &str) -> Fixture {
    let base = fixture_dir().join(format!("{op}.{variant}"));
    let body = std::fs::read(base.with_extension(format!("{variant}.body"))).expect("fixture body");
    let meta = std::fs::read(base.with_extension(format!("{variant}.meta.json"))).expect("fixture meta");
    Fixture { body, meta: serde_json::from_slice(&meta).expect("fixture meta json") }
}

fn protocol_of(variant: &str) -> Protocol {
    match variant {
        "cbor" => Protocol::Cbor,
        "json" | "json-ms" => Protocol::Json,
        _ => Protocol::Query,
    }
}

/// Decodes a fixture the way the gateway would: detect, then decode.
fn decode_fixture(op: &str, variant: &str) -> Operation {
    let f = fixture(op, variant);
    let mut headers = http::HeaderMap::new();
    for (k, v) in f.meta["headers"].as_object().expect("headers") {
        headers.insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(v.as_str().expect("header value")).expect("header value"),
        );
    }
    let method = f.meta["method"].as_str().expect("method");
    let path = f.meta["path"].as_str().expect("path");
    let detected = detect(method, path, &headers);
    let protocol = protocol_of(variant);
    let operation = match protocol {
        Protocol::Query => {
            assert_eq!(detected, None, "{op}.{variant}: a query request is the caller's to recognise");
            None
        }
        p => {
            assert_eq!(detected, Some((p, Some(op.to_string()))), "{op}.{variant}: detect");
            Some(op.to_string())
        }
    };
    match decode(protocol, operation.as_deref(), &f.body) {
        Ok(decoded) => decoded,
        Err(e) => panic!("{op}.{variant}: {e}"),
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn dims() -> Option<Vec<Dimension>> {
    Some(vec![
        Dimension { name: s("InstanceId"), value: s("i-0123456789abcdef0") },
        Dimension { name: s("Env"), value: s("prod & <test> \"quoted\" é") },
    ])
}

/// The typed inputs make_fixtures.py serialized; `fraction` for the variants that keep
/// sub-second timestamps.
fn expected(op: &str, fraction: bool) -> Operation {
    let start = Some(if fraction { START_FRACTION } else { START_WHOLE });
    let stamp = Some(if fraction { STAMP_FRACTION } else { STAMP_WHOLE });
    match op {
        "GetMetricStatistics" => Operation::GetMetricStatistics(GetMetricStatisticsInput {
            namespace: s("AWS/EC2"),
            metric_name: s("CPUUtilization"),
            dimensions: dims(),
            start_time: start,
            end_time: Some(END),
            period: Some(60),
            statistics: Some(vec!["Average".into(), "Maximum".into(), "SampleCount".into()]),
            extended_statistics: Some(vec!["p99".into(), "p50.5".into()]),
            unit: s("Percent"),
        }),
        "GetMetricData" => Operation::GetMetricData(GetMetricDataInput {
            metric_data_queries: Some(vec![
                MetricDataQuery {
                    id: s("m1"),
                    metric_stat: Some(MetricStat {
                        metric: Some(Metric {
                            namespace: s("AWS/EC2"),
                            metric_name: s("CPUUtilization"),
                            dimensions: dims(),
                        }),
                        period: Some(300),
                        stat: s("Average"),
                        unit: s("Percent"),
                    }),
                    label: s("CPU"),
                    return_data: Some(false),
                    ..Default::default()
                },
                MetricDataQuery {
                    id: s("e1"),
                    expression: s("m1 * 2"),
                    label: s("Doubled"),
                    return_data: Some(true),
                    period: Some(60),
                    ..Default::default()
                },
                MetricDataQuery {
                    id: s("m3"),
                    metric_stat: Some(MetricStat {
                        metric: Some(Metric {
                            namespace: s("Stratus/Test"),
                            metric_name: s("Latency"),
                            dimensions: None,
                        }),
                        period: Some(1),
                        stat: s("p99"),
                        unit: None,
                    }),
                    account_id: s("123456789012"),
                    ..Default::default()
                },
            ]),
            start_time: start,
            end_time: Some(END),
            next_token: s("token+/="),
            scan_by: s("TimestampAscending"),
            max_datapoints: Some(1000),
            label_options: Some(LabelOptions { timezone: s("+0130") }),
        }),
        "ListMetrics" => Operation::ListMetrics(ListMetricsInput {
            namespace: s("AWS/EC2"),
            metric_name: s("CPUUtilization"),
            dimensions: Some(vec![
                DimensionFilter { name: s("InstanceId"), value: None },
                DimensionFilter { name: s("Env"), value: s("prod") },
            ]),
            next_token: s("next"),
            recently_active: s("PT3H"),
            include_linked_accounts: Some(true),
            owning_account: s("123456789012"),
        }),
        "PutMetricData" => Operation::PutMetricData(PutMetricDataInput {
            namespace: s("Stratus/Test"),
            metric_data: Some(vec![
                MetricDatum {
                    metric_name: s("Latency"),
                    dimensions: dims(),
                    timestamp: stamp,
                    value: Some(12.5),
                    unit: s("Milliseconds"),
                    storage_resolution: Some(1),
                    ..Default::default()
                },
                MetricDatum {
                    metric_name: s("Sizes"),
                    values: Some(vec![1.0, 2.5, 1e300, -0.001]),
                    counts: Some(vec![3.0, 1.0, 2.0, 1.0]),
                    unit: s("Bytes"),
                    ..Default::default()
                },
                MetricDatum {
                    metric_name: s("Stats"),
                    timestamp: stamp,
                    statistic_values: Some(StatisticSet {
                        sample_count: Some(10.0),
                        sum: Some(55.5),
                        minimum: Some(-1.25),
                        maximum: Some(20.0),
                    }),
                    unit: s("Count"),
                    ..Default::default()
                },
            ]),
            entity_metric_data: Some(vec![EntityMetricData {
                entity: Some(Entity {
                    key_attributes: Some(BTreeMap::from([
                        ("Type".to_string(), "Service".to_string()),
                        ("Name".to_string(), "checkout".to_string()),
                        ("Environment".to_string(), "prod".to_string()),
                    ])),
                    attributes: Some(BTreeMap::from([("PlatformType".to_string(), "Generic".to_string())])),
                }),
                metric_data: Some(vec![MetricDatum {
                    metric_name: s("Requests"),
                    value: Some(7.0),
                    unit: s("Count"),
                    ..Default::default()
                }]),
            }]),
            strict_entity_validation: Some(false),
        }),
        other => panic!("no expectation for {other}"),
    }
}

const OPS: [&str; 4] = ["GetMetricStatistics", "GetMetricData", "ListMetrics", "PutMetricData"];

#[test]
fn operations_txt_matches_the_generated_table() {
    let listed = include_str!("../operations.txt");
    let names: Vec<&str> = listed.lines().filter(|l| !l.trim().is_empty()).collect();
    let table: Vec<&str> = OPERATIONS.iter().map(|op| op.name).collect();
    assert_eq!(names, table);
    assert_eq!(names, OPS);
}

#[test]
fn botocore_requests_decode_to_the_same_input_in_every_protocol() {
    for op in OPS {
        // boto3's defaults: CBOR and JSON send whole seconds, query keeps microseconds.
        assert_eq!(decode_fixture(op, "cbor"), expected(op, false), "{op}.cbor");
        assert_eq!(decode_fixture(op, "json"), expected(op, false), "{op}.json");
        assert_eq!(decode_fixture(op, "query"), expected(op, true), "{op}.query");
        assert_eq!(decode_fixture(op, "json-ms"), expected(op, true), "{op}.json-ms");
        assert_eq!(decode_fixture(op, "query-ms"), expected(op, true), "{op}.query-ms");
        assert_eq!(decode_fixture(op, "cbor").name(), op);
    }
}

#[test]
fn members_come_through_field_by_field() {
    // Spot checks that do not go through PartialEq of whole inputs.
    let Operation::GetMetricData(input) = decode_fixture("GetMetricData", "cbor") else { panic!("wrong operation") };
    let queries = input.metric_data_queries.as_deref().unwrap_or_default();
    assert_eq!(queries.len(), 3);
    assert_eq!(queries[0].id.as_deref(), Some("m1"));
    let stat = queries[0].metric_stat.as_ref().expect("MetricStat");
    assert_eq!(stat.period, Some(300));
    let metric = stat.metric.as_ref().expect("Metric");
    assert_eq!(metric.dimensions.as_ref().map(Vec::len), Some(2));
    assert_eq!(metric.dimensions.as_ref().unwrap()[1].value.as_deref(), Some("prod & <test> \"quoted\" é"));
    assert_eq!(queries[1].expression.as_deref(), Some("m1 * 2"));
    assert_eq!(queries[1].return_data, Some(true));
    assert_eq!(queries[2].account_id.as_deref(), Some("123456789012"));
    assert_eq!(input.max_datapoints, Some(1000));

    let Operation::PutMetricData(input) = decode_fixture("PutMetricData", "query") else { panic!("wrong operation") };
    let data = input.metric_data.as_deref().unwrap_or_default();
    assert_eq!(data[0].timestamp, Some(STAMP_FRACTION));
    assert_eq!(data[1].values.as_deref(), Some(&[1.0, 2.5, 1e300, -0.001][..]));
    assert_eq!(data[2].statistic_values.as_ref().and_then(|s| s.minimum), Some(-1.25));
    let entity = input.entity_metric_data.as_deref().unwrap_or_default()[0].entity.as_ref().expect("Entity");
    assert_eq!(entity.key_attributes.as_ref().and_then(|m| m.get("Name")).map(String::as_str), Some("checkout"));
}

/// Other SDKs send CBOR timestamps as tag 1 with a double, and may use indefinite lengths.
#[test]
fn cbor_fractional_timestamps_and_indefinite_lengths() {
    use ciborium::Value as C;
    let body = fixture("GetMetricStatistics", "cbor").body;
    let mut value: C = ciborium::de::from_reader(&body[..]).expect("cbor");
    if let C::Map(entries) = &mut value {
        for (k, v) in entries.iter_mut() {
            if k.as_text() == Some("StartTime") {
                *v = C::Tag(1, Box::new(C::Float(START_FRACTION)));
            }
        }
    }
    let mut fractional = Vec::new();
    ciborium::ser::into_writer(&value, &mut fractional).expect("cbor");
    let decoded = decode(Protocol::Cbor, Some("GetMetricStatistics"), &fractional).expect("decode");
    let Operation::GetMetricStatistics(input) = decoded else { panic!("wrong operation") };
    assert_eq!(input.start_time, Some(START_FRACTION));
    assert_eq!(input.end_time, Some(END));

    // {_ "Namespace": (_ "AWS/" "EC2"), "Dimensions": [_ {"Name": "Env"}]}
    let mut body = vec![0xbf, 0x69];
    body.extend_from_slice(b"Namespace");
    body.extend_from_slice(&[0x7f, 0x64]);
    body.extend_from_slice(b"AWS/");
    body.push(0x63);
    body.extend_from_slice(b"EC2");
    body.extend_from_slice(&[0xff, 0x6a]);
    body.extend_from_slice(b"Dimensions");
    body.extend_from_slice(&[0x9f, 0xa1, 0x64]);
    body.extend_from_slice(b"Name");
    body.push(0x63);
    body.extend_from_slice(b"Env");
    body.extend_from_slice(&[0xff, 0xff]);
    let decoded = decode(Protocol::Cbor, Some("ListMetrics"), &body).expect("indefinite lengths");
    assert_eq!(
        decoded,
        Operation::ListMetrics(ListMetricsInput {
            namespace: s("AWS/EC2"),
            dimensions: Some(vec![DimensionFilter { name: s("Env"), value: None }]),
            ..Default::default()
        })
    );
}

#[test]
fn empty_bodies_are_empty_inputs() {
    for protocol in [Protocol::Cbor, Protocol::Json] {
        assert_eq!(decode(protocol, Some("ListMetrics"), b""), Ok(Operation::ListMetrics(Default::default())));
        let err = decode(protocol, Some("PutMetricData"), b"").unwrap_err();
        assert_eq!(err.code, ErrorCode::MissingParameter);
        assert_eq!(err.message, "The parameter Namespace is required.");
    }
    assert_eq!(decode(Protocol::Cbor, Some("ListMetrics"), &[0xa0]), Ok(Operation::ListMetrics(Default::default())));
    assert_eq!(decode(Protocol::Json, Some("ListMetrics"), b"{}"), Ok(Operation::ListMetrics(Default::default())));
}

// ---------------------------------------------------------------------------------------------
// Replies, checked by botocore's parsers.

fn t(secs: f64) -> Option<f64> {
    Some(secs)
}

fn outputs() -> Vec<Output> {
    vec![
        Output::GetMetricStatistics(GetMetricStatisticsOutput {
            label: s("CPUUtilization <&> \"quoted\"\r\nline é"),
            datapoints: Some(vec![
                Datapoint {
                    timestamp: t(START_FRACTION),
                    sample_count: Some(3.0),
                    average: Some(0.1),
                    sum: Some(1e300),
                    minimum: Some(-2.5e-300),
                    maximum: Some(123456789.12345679),
                    unit: s("Percent"),
                    extended_statistics: Some(BTreeMap::from([("p99".to_string(), 99.5), ("p50".to_string(), 1.0)])),
                },
                Datapoint { timestamp: t(END), average: Some(5.0), unit: s("Percent"), ..Default::default() },
            ]),
        }),
        Output::GetMetricData(GetMetricDataOutput {
            metric_data_results: Some(vec![
                MetricDataResult {
                    id: s("m1"),
                    label: s("CPU"),
                    timestamps: Some(vec![START_WHOLE, STAMP_FRACTION, 1.001]),
                    values: Some(vec![1.0, 0.30000000000000004, -7.0]),
                    status_code: s("Complete"),
                    messages: Some(vec![MessageData { code: s("Note"), value: s("a & b") }]),
                },
                MetricDataResult {
                    id: s("e1"),
                    timestamps: Some(vec![]),
                    values: Some(vec![]),
                    status_code: s("PartialData"),
                    ..Default::default()
                },
            ]),
            next_token: s("token+/="),
            messages: Some(vec![MessageData { code: s("MaxQueryTimeRangeExceed"), value: s("x") }]),
        }),
        Output::ListMetrics(ListMetricsOutput {
            metrics: Some(vec![
                Metric { namespace: s("AWS/EC2"), metric_name: s("CPUUtilization"), dimensions: dims() },
                Metric { namespace: s("Stratus/Test"), metric_name: s("Latency"), dimensions: Some(vec![]) },
            ]),
            next_token: s("n"),
            owning_accounts: Some(vec!["123456789012".into(), "210987654321".into()]),
        }),
        Output::PutMetricData,
    ]
}

fn errors() -> Vec<CwError> {
    vec![
        CwError::invalid_value("The value Bogus for parameter Statistics.member.1 is not valid. <&>"),
        CwError::missing("MetricDataQueries.member.1.Id"),
        CwError::invalid_combination("Value and Values cannot be given together."),
        CwError::new(ErrorCode::InvalidNextToken, "The token is not valid."),
        CwError::internal(),
        CwError::invalid_action("DeleteEverything"),
        CwError::new(ErrorCode::Throttling, "Rate exceeded"),
        CwError::new(ErrorCode::SignatureDoesNotMatch, "The request signature we calculated does not match."),
        CwError::serialization("The request body is not valid CBOR."),
    ]
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Cbor => "smithy-rpc-v2-cbor",
        Protocol::Json => "json",
        Protocol::Query => "query",
    }
}

fn write_reply(dir: &Path, name: &str, reply: &Reply, meta: serde_json::Value) {
    std::fs::write(dir.join(format!("{name}.body")), &reply.body).expect("write body");
    let headers: serde_json::Map<String, serde_json::Value> =
        reply.headers.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(v.clone()))).collect();
    let mut meta = meta;
    meta["status"] = reply.status.into();
    meta["headers"] = headers.into();
    std::fs::write(dir.join(format!("{name}.meta.json")), serde_json::to_vec_pretty(&meta).expect("json"))
        .expect("write meta");
}

/// Writes every operation's reply and a set of errors in every protocol to a directory, then
/// has botocore parse them (tests/check_replies.py). With CWAPI_REPLIES_DIR set, the replies go
/// there and are kept.
#[test]
fn replies_parse_with_botocore() {
    let keep = std::env::var_os("CWAPI_REPLIES_DIR").map(PathBuf::from);
    let dir =
        keep.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("cwapi-replies-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("replies dir");
    for protocol in [Protocol::Cbor, Protocol::Json, Protocol::Query] {
        for output in outputs() {
            let reply = encode(protocol, &output, "req-1234");
            assert_eq!(reply.status, 200);
            let expected = match &output {
                Output::GetMetricStatistics(o) => serde_json::to_value(o).unwrap(),
                Output::GetMetricData(o) => serde_json::to_value(o).unwrap(),
                Output::ListMetrics(o) => serde_json::to_value(o).unwrap(),
                Output::PutMetricData => serde_json::json!({}),
            };
            let meta = serde_json::json!({
                "protocol": protocol_name(protocol),
                "operation": output.name(),
                "request_id": "req-1234",
                "expected": expected,
            });
            write_reply(&dir, &format!("{}.{}", output.name(), protocol_name(protocol)), &reply, meta);
        }
        for (i, error) in errors().iter().enumerate() {
            let reply = encode_error(protocol, error, "req-err");
            assert_eq!(reply.status, error.code.status());
            let meta = serde_json::json!({
                "protocol": protocol_name(protocol),
                "operation": "GetMetricStatistics",
                "request_id": "req-err",
                "error": {
                    "code": error.code.as_str(),
                    "message": error.message,
                    "type": error.code.fault().as_str(),
                    "shape": error.code.shape_name(),
                },
            });
            write_reply(&dir, &format!("error{i}.{}", protocol_name(protocol)), &reply, meta);
        }
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_replies.py");
    let has_botocore = std::process::Command::new("python3")
        .args(["-c", "import botocore"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_botocore {
        eprintln!("NOTICE: python3 with botocore is not importable; botocore did not check the replies in {dir:?}");
        return;
    }
    let out = std::process::Command::new("python3").arg(&script).arg(&dir).output().expect("run check_replies.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "check_replies.py failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("replies checked"), "check_replies.py checked nothing:\n{stdout}");
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn error_replies_carry_the_query_error_header() {
    let err = CwError::invalid_value("bad");
    for protocol in [Protocol::Cbor, Protocol::Json] {
        let reply = encode_error(protocol, &err, "r");
        assert_eq!(reply.status, 400);
        assert!(reply.headers.contains(&("x-amzn-query-error", "InvalidParameterValue;Sender".to_string())));
        assert!(reply.headers.contains(&("x-amzn-RequestId", "r".to_string())));
    }
    let reply = encode_error(Protocol::Json, &CwError::internal(), "r");
    assert_eq!(reply.status, 500);
    assert!(reply.headers.contains(&("x-amzn-query-error", "InternalServiceError;Receiver".to_string())));
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["__type"], "com.amazonaws.cloudwatch#InternalServiceFault");
    let reply = encode_error(Protocol::Query, &err, "r");
    let body = String::from_utf8(reply.body).unwrap();
    assert!(body.contains("<Type>Sender</Type><Code>InvalidParameterValue</Code><Message>bad</Message>"), "{body}");
    assert!(!reply.headers.iter().any(|(k, _)| *k == "x-amzn-query-error"));
}

#[test]
fn the_code_table_is_consistent() {
    for code in ErrorCode::ALL {
        let status = code.status();
        assert!((400..600).contains(&status), "{code}");
        assert_eq!(code.fault() == Fault::Receiver, status >= 500, "{code}");
        assert!(!code.shape_name().is_empty());
    }
    assert_eq!(ErrorCode::RequestEntityTooLarge.status(), 413);
    assert_eq!(ErrorCode::AccessDenied.status(), 403);
}
