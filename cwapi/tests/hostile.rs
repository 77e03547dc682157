//! Constraint violations give the documented errors; hostile bodies give errors, never panics.

use cwapi::*;
use proptest::prelude::*;

fn query(body: &str) -> Result<Operation, CwError> {
    decode(Protocol::Query, None, body.as_bytes())
}

const GMS: &str = "Action=GetMetricStatistics&Version=2010-08-01&Namespace=AWS%2FEC2&MetricName=CPU\
                   &StartTime=2024-05-01T12:00:00Z&EndTime=1714570200&Period=60";

fn err(result: Result<Operation, CwError>) -> CwError {
    match result {
        Ok(op) => panic!("decoded {op:?}"),
        Err(e) => e,
    }
}

#[test]
fn missing_required_members_name_the_query_path() {
    let e = err(query("Action=GetMetricStatistics&Version=2010-08-01&MetricName=CPU"));
    assert_eq!(e.code, ErrorCode::MissingParameter);
    assert_eq!(e.message, "The parameter Namespace is required.");

    let e = err(query(
        "Action=GetMetricData&Version=2010-08-01&StartTime=1&EndTime=2\
         &MetricDataQueries.member.1.Id=a&MetricDataQueries.member.2.Label=x",
    ));
    assert_eq!(e.code, ErrorCode::MissingParameter);
    assert_eq!(e.message, "The parameter MetricDataQueries.member.2.Id is required.");

    let json =
        br#"{"MetricDataQueries":[{"Id":"a","MetricStat":{"Period":60,"Stat":"Average"}}],"StartTime":1,"EndTime":2}"#;
    let e = err(decode(Protocol::Json, Some("GetMetricData"), json));
    assert_eq!(e.message, "The parameter MetricDataQueries.member.1.MetricStat.Metric is required.");

    let e = err(query("Action=PutMetricData&Version=2010-08-01&Namespace=N&MetricData.member.1.Value=1"));
    assert_eq!(e.message, "The parameter MetricData.member.1.MetricName is required.");

    // A map entry without its value.
    let e = err(query(
        "Action=PutMetricData&Version=2010-08-01&Namespace=N\
         &EntityMetricData.member.1.Entity.KeyAttributes.entry.1.key=Type",
    ));
    assert_eq!(e.code, ErrorCode::MissingParameter);
    assert_eq!(e.message, "The parameter EntityMetricData.member.1.Entity.KeyAttributes.entry.1.value is required.");
}

#[test]
fn constraint_violations_are_invalid_parameter_value() {
    let e = err(query(&format!("{GMS}&Statistics.member.1=Bogus")));
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    assert!(e.message.contains("Bogus") && e.message.contains("Statistics.member.1"), "{}", e.message);

    let long = "x".repeat(256);
    let e = err(query(&GMS.replace("MetricName=CPU", &format!("MetricName={long}"))));
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    assert_eq!(e.message, "The parameter MetricName must be between 1 and 255 characters long.");
    // 255 characters of two bytes each are fine: lengths count characters.
    assert!(query(&GMS.replace("MetricName=CPU", &format!("MetricName={}", "%C3%A9".repeat(255)))).is_ok());

    let e = err(query(&GMS.replace("Period=60", "Period=0")));
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    assert!(e.message.contains("Period"), "{}", e.message);

    let six = (1..=6).map(|i| format!("&Statistics.member.{i}=Sum")).collect::<String>();
    let e = err(query(&format!("{GMS}{six}")));
    assert_eq!(e.message, "The collection Statistics must contain between 1 and 5 members; it has 6.");

    // botocore sends an empty list as `Statistics=`; the model wants at least one.
    let e = err(query(&format!("{GMS}&Statistics=")));
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);

    let e = err(query(&GMS.replace("MetricName=CPU", "MetricName=")));
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);

    let json = br#"{"Namespace":"N","MetricData":[{"MetricName":"m","Unit":"Parsecs"}]}"#;
    let e = err(decode(Protocol::Json, Some("PutMetricData"), json));
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    assert!(e.message.contains("MetricData.member.1.Unit"), "{}", e.message);

    let json = br#"{"Namespace":"N","EntityMetricData":[{"Entity":{"KeyAttributes":{"Type":"Service"}}}]}"#;
    let e = err(decode(Protocol::Json, Some("PutMetricData"), json));
    assert!(e.message.contains("EntityMetricData.member.1.Entity.KeyAttributes"), "{}", e.message);
}

#[test]
fn wrong_types_name_the_member() {
    for (body, member) in [
        (&br#"{"Namespace":"N","MetricName":"m","StartTime":1,"EndTime":2,"Period":"60"}"#[..], "Period"),
        (br#"{"Namespace":5}"#, "Namespace"),
        (br#"{"Namespace":"N","MetricName":"m","StartTime":"yesterday","EndTime":2,"Period":60}"#, "StartTime"),
        (br#"{"Namespace":"N","MetricName":"m","StartTime":1,"EndTime":2,"Period":1.5}"#, "Period"),
        (
            br#"{"Namespace":"N","MetricName":"m","StartTime":1,"EndTime":2,"Period":60,"Dimensions":{"a":1}}"#,
            "Dimensions",
        ),
    ] {
        let e = err(decode(Protocol::Json, Some("GetMetricStatistics"), body));
        assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{e}");
        assert!(e.message.contains(member), "{}", e.message);
    }
    let e = err(query(&format!("{GMS}&Period=sixty")));
    assert!(e.message.contains("Period"), "{}", e.message);
    // NaN and infinities: botocore sends them as strings in JSON and half floats in CBOR.
    let e = err(decode(
        Protocol::Json,
        Some("PutMetricData"),
        br#"{"Namespace":"N","MetricData":[{"MetricName":"m","Value":"NaN"}]}"#,
    ));
    assert!(e.message.contains("MetricData.member.1.Value"), "{}", e.message);
    let e = err(query("Action=PutMetricData&Version=2010-08-01&Namespace=N&MetricData.member.1.MetricName=m&MetricData.member.1.Value=Infinity"));
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    let mut cbor = vec![0xa2, 0x69];
    cbor.extend_from_slice(b"Namespace");
    cbor.extend_from_slice(&[0x61, b'N', 0x6a]);
    cbor.extend_from_slice(b"MetricData");
    cbor.extend_from_slice(&[0x81, 0xa2, 0x6a]);
    cbor.extend_from_slice(b"MetricName");
    cbor.extend_from_slice(&[0x61, b'm', 0x65]);
    cbor.extend_from_slice(b"Value");
    cbor.extend_from_slice(&[0xf9, 0x7e, 0x00]);
    let e = err(decode(Protocol::Cbor, Some("PutMetricData"), &cbor));
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    assert!(e.message.contains("MetricData.member.1.Value"), "{}", e.message);
}

#[test]
fn unknown_members_are_ignored_and_nulls_are_absent() {
    let json = br#"{"Namespace":"N","Future":{"deep":[1,2,3]},"MetricName":null}"#;
    let op = decode(Protocol::Json, Some("ListMetrics"), json).unwrap();
    assert_eq!(op, Operation::ListMetrics(ListMetricsInput { namespace: Some("N".into()), ..Default::default() }));
    let op = query("Action=ListMetrics&Version=2010-08-01&Namespace=N&Future.Thing.member.1=x").unwrap();
    assert_eq!(op, Operation::ListMetrics(ListMetricsInput { namespace: Some("N".into()), ..Default::default() }));
}

#[test]
fn query_lists_compact_gaps_in_index_order() {
    let op = query(&format!("{GMS}&Statistics.member.7=Sum&Statistics.member.2=Average&Statistics.member.30=Maximum"))
        .unwrap();
    let Operation::GetMetricStatistics(input) = op else { panic!() };
    assert_eq!(input.statistics, Some(vec!["Average".into(), "Sum".into(), "Maximum".into()]));
    assert_eq!(input.start_time, Some(1714564800.0));
    assert_eq!(input.end_time, Some(1714570200.0));
    // Offsets and fractions.
    let op =
        query(&GMS.replace("StartTime=2024-05-01T12:00:00Z", "StartTime=2024-05-01T14%3A00%3A00.5%2B02%3A00")).unwrap();
    let Operation::GetMetricStatistics(input) = op else { panic!() };
    assert_eq!(input.start_time, Some(1714564800.5));
}

#[test]
fn operations_and_versions() {
    let e = err(decode(Protocol::Json, Some("DeleteAlarms"), b"{}"));
    assert_eq!(e.code, ErrorCode::InvalidAction);
    assert_eq!(e.message, "Could not find operation DeleteAlarms for version 2010-08-01");
    assert_eq!(e.code.status(), 400);
    let e = err(decode(Protocol::Cbor, None, b""));
    assert_eq!(e.code, ErrorCode::InvalidAction);
    let e = err(query("Action=ListMetrics&Version=2009-01-01"));
    assert_eq!(e.code, ErrorCode::InvalidAction);
    assert_eq!(e.message, "Could not find operation ListMetrics for version 2009-01-01");
    let e = err(query("Action=ListMetrics"));
    assert_eq!(e.code, ErrorCode::MissingParameter);
    let e = err(query("Version=2010-08-01"));
    assert_eq!(e.code, ErrorCode::MissingParameter);
    assert_eq!(query("Version=2010-08-01&Action=ListMetrics").unwrap().name(), "ListMetrics");

    let mut headers = http::HeaderMap::new();
    assert_eq!(detect("POST", "/", &headers), None);
    assert_eq!(
        detect("POST", "/service/GraniteServiceVersion20100801/operation/ListMetrics", &headers),
        Some((Protocol::Cbor, Some("ListMetrics".into())))
    );
    assert_eq!(detect("GET", "/service/GraniteServiceVersion20100801/operation/ListMetrics", &headers), None);
    headers.insert("X-Amz-Target", http::HeaderValue::from_static("GraniteServiceVersion20100801.PutMetricData"));
    assert_eq!(detect("POST", "/", &headers), Some((Protocol::Json, Some("PutMetricData".into()))));
    headers.insert("X-Amz-Target", http::HeaderValue::from_static("DynamoDB_20120810.PutItem"));
    assert_eq!(detect("POST", "/", &headers), None);
}

#[test]
fn malformed_bodies() {
    for body in [&b"{"[..], b"[1,2]", b"null", b"\"x\"", b"{\"Namespace\":\"N\"} trailing"] {
        let e = err(decode(Protocol::Json, Some("ListMetrics"), body));
        assert_eq!(e.code, ErrorCode::SerializationException, "{body:?}: {e}");
    }
    // Byte strings, unsupported tags, non-text keys, trailing bytes, undefined-length garbage.
    for body in [
        &[0xa1, 0x69, b'N', b'a', b'm', b'e', b's', b'p', b'a', b'c', b'e', 0x41, b'x'][..],
        &[0xa1, 0x61, b'x', 0xd8, 0x63, 0x01],
        &[0xa1, 0x01, 0x02],
        &[0xa0, 0xa0],
        &[0xff],
        &[0x81, 0x01],
    ] {
        let e = err(decode(Protocol::Cbor, Some("ListMetrics"), body));
        assert_eq!(e.code, ErrorCode::SerializationException, "{body:?}: {e}");
    }
    // Non-UTF-8, raw or percent-encoded, and broken escapes.
    for body in
        [&b"Action=ListMetrics&Version=2010-08-01&Namespace=\xff"[..], b"Action=ListMetrics&Namespace=%FF", b"A=%G1"]
    {
        let e = err(decode(Protocol::Query, None, body));
        assert_eq!(e.code, ErrorCode::MalformedQueryString, "{body:?}: {e}");
    }
    let e = err(query(&format!("{GMS}&Statistics.member.1.5=Sum")));
    assert_eq!(e.message, "The parameter Statistics.member.1 must be a string.");
    for bad in ["0", "x", "-1", "+1", "99999999999999999999999"] {
        let e = err(query(&format!("{GMS}&Statistics.member.{bad}=Sum")));
        assert_eq!(e.code, ErrorCode::MalformedQueryString, "{bad}: {e}");
    }
    let e = err(query(&format!("{GMS}&Statistics.member.1=Sum&Statistics.member.01=Sum")));
    assert_eq!(e.code, ErrorCode::MalformedQueryString);
}

#[test]
fn deep_nesting_is_refused() {
    let mut cbor = vec![0xa1, 0x61, b'x'];
    cbor.extend(std::iter::repeat_n(0x81, 100_000));
    cbor.push(0x01);
    assert_eq!(err(decode(Protocol::Cbor, Some("ListMetrics"), &cbor)).code, ErrorCode::SerializationException);
    let mut indefinite = vec![0xa1, 0x61, b'x'];
    indefinite.extend(std::iter::repeat_n(0x9f, 100_000));
    assert_eq!(err(decode(Protocol::Cbor, Some("ListMetrics"), &indefinite)).code, ErrorCode::SerializationException);
    let json = format!("{{\"x\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(
        err(decode(Protocol::Json, Some("ListMetrics"), json.as_bytes())).code,
        ErrorCode::SerializationException
    );
    let name = vec!["a"; 1000].join(".");
    assert_eq!(
        err(query(&format!("Action=ListMetrics&Version=2010-08-01&{name}=1"))).code,
        ErrorCode::MalformedQueryString
    );
}

#[test]
fn huge_lists_and_forms_are_refused() {
    let items = vec!["{\"Name\":\"a\",\"Value\":\"b\"}"; 1001].join(",");
    let json = format!("{{\"Namespace\":\"N\",\"MetricName\":\"m\",\"Dimensions\":[{items}]}}");
    let e = err(decode(Protocol::Json, Some("ListMetrics"), json.as_bytes()));
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    assert!(e.message.contains("Dimensions"), "{}", e.message);

    let form: String = (1..=1001).map(|i| format!("&MetricData.member.{i}.MetricName=m")).collect();
    let e = err(query(&format!("Action=PutMetricData&Version=2010-08-01&Namespace=N{form}")));
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    let ok: String = (1..=1000).map(|i| format!("&MetricData.member.{i}.MetricName=m")).collect();
    assert!(query(&format!("Action=PutMetricData&Version=2010-08-01&Namespace=N{ok}")).is_ok());

    let many: String = (0..100_001).map(|i| format!("&p{i}=1")).collect();
    let e = err(query(&format!("Action=ListMetrics&Version=2010-08-01{many}")));
    assert_eq!(e.code, ErrorCode::MalformedQueryString);

    // A CBOR array that claims 2^32 members and has none: no preallocation, just an error.
    let mut cbor = vec![0xa1, 0x6a];
    cbor.extend_from_slice(b"Dimensions");
    cbor.extend_from_slice(&[0x9b, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(err(decode(Protocol::Cbor, Some("ListMetrics"), &cbor)).code, ErrorCode::SerializationException);
}

#[test]
fn every_truncation_of_a_botocore_request_is_handled() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/requests");
    for (file, protocol) in [
        ("PutMetricData.cbor.body", Protocol::Cbor),
        ("GetMetricData.cbor.body", Protocol::Cbor),
        ("PutMetricData.json.body", Protocol::Json),
        ("PutMetricData.query.body", Protocol::Query),
    ] {
        let body = std::fs::read(dir.join(file)).unwrap();
        let op = if protocol == Protocol::Query { None } else { Some(file.split('.').next().unwrap()) };
        for len in 0..body.len() {
            let _ = decode(protocol, op, &body[..len]);
        }
        if protocol == Protocol::Cbor {
            // A cut CBOR body is always an error (the empty prefix is an empty input).
            for len in 1..body.len() {
                assert!(decode(protocol, op, &body[..len]).is_err(), "{file} cut at {len}");
            }
        }
    }
}

fn any_protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![Just(Protocol::Cbor), Just(Protocol::Json), Just(Protocol::Query)]
}

fn any_operation() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("GetMetricStatistics"),
        Just("GetMetricData"),
        Just("ListMetrics"),
        Just("PutMetricData"),
        Just("Nope")
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(protocol in any_protocol(), op in any_operation(), body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(protocol, Some(op), &body);
    }

    #[test]
    fn mutated_botocore_requests_never_panic(
        variant in prop_oneof![Just("cbor"), Just("json"), Just("query")],
        op in any_operation().prop_filter("served", |op| *op != "Nope"),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/requests");
        let mut body = std::fs::read(dir.join(format!("{op}.{variant}.body"))).unwrap();
        for (at, byte) in flips {
            let i = at.index(body.len());
            body[i] = byte;
        }
        let protocol = match variant { "cbor" => Protocol::Cbor, "json" => Protocol::Json, _ => Protocol::Query };
        let _ = decode(protocol, Some(op), &body);
    }

    #[test]
    fn random_form_structure_never_panics(pairs in proptest::collection::vec(("[A-Za-z.0-9]{0,24}", "[a-z0-9:%.+-]{0,8}"), 0..40)) {
        let mut body = String::from("Action=PutMetricData&Version=2010-08-01");
        for (k, v) in pairs {
            body.push('&');
            body.push_str(&k);
            body.push('=');
            body.push_str(&v);
        }
        let _ = decode(Protocol::Query, None, body.as_bytes());
    }

    /// Outputs of arbitrary strings and numbers always encode, in every protocol.
    #[test]
    fn outputs_always_encode(label in ".*", value in any::<f64>(), ts in any::<f64>(), protocol in any_protocol()) {
        let output = Output::GetMetricStatistics(GetMetricStatisticsOutput {
            label: Some(label),
            datapoints: Some(vec![Datapoint { timestamp: Some(ts), sum: Some(value), ..Default::default() }]),
        });
        let reply = encode(protocol, &output, "r");
        prop_assert_eq!(reply.status, 200);
        prop_assert!(!reply.body.is_empty());
    }
}
