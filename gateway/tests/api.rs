//! The request flow through `server::handle`, with requests signed by aws-sigv4 as a client
//! would sign them: authentication codes, protocol errors, throttling, and account isolation;
//! and through `server::serve` on a real socket: connection caps, idle, slow-header and
//! slow-body clients.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backend::accounts::NewAccount;
use bytes::Bytes;
use common::*;
use gateway::config::Limits;
use http::Request;
use http_body_util::Full;

#[tokio::test]
async fn a_signed_request_is_answered() {
    let f = fixture();
    let (status, body) = call(&f, "Action=DescribeRegions&Version=2016-11-15").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<regionName>us-east-1</regionName>"));
    assert!(body.contains("<requestId>"));
}

#[tokio::test]
async fn auth_failures_have_their_own_codes() {
    let f = fixture();
    let body = "Action=DescribeRegions&Version=2016-11-15";
    let mut wrong_secret = Signing::of(&f.admin);
    wrong_secret.secret = "not-the-secret-at-all";
    let (status, answer) = send(&f, signed_post(body, &wrong_secret)).await;
    assert_eq!((status, code(&answer)), (403, "SignatureDoesNotMatch"));

    let mut unknown = Signing::of(&f.admin);
    unknown.key = "AKIAUNKNOWNUNKNOWN00";
    let (status, answer) = send(&f, signed_post(body, &unknown)).await;
    assert_eq!((status, code(&answer)), (401, "AuthFailure"));

    let mut elsewhere = Signing::of(&f.admin);
    elsewhere.region = "xx-nowhere-1";
    let (status, answer) = send(&f, signed_post(body, &elsewhere)).await;
    assert_eq!((status, code(&answer)), (401, "AuthFailure"));
    assert!(answer.contains("xx-nowhere-1"));

    let mut old = Signing::of(&f.admin);
    old.time = SystemTime::now() - Duration::from_secs(600);
    assert_eq!(code(&send(&f, signed_post(body, &old)).await.1), "RequestExpired");
    let mut future = Signing::of(&f.admin);
    future.time = SystemTime::now() + Duration::from_secs(600);
    assert_eq!(code(&send(&f, signed_post(body, &future)).await.1), "RequestExpired");

    let unsigned = Request::post("/").header("host", HOST).body(Full::new(Bytes::from(body))).unwrap();
    let (status, answer) = send(&f, unsigned).await;
    assert_eq!((status, code(&answer)), (401, "MissingAuthenticationToken"));

    let garbled = Request::post("/")
        .header("host", HOST)
        .header("authorization", "AWS4-HMAC-SHA256 Credential=x")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    assert_eq!(code(&send(&f, garbled).await.1), "IncompleteSignature");
}

#[tokio::test]
async fn tampering_after_signing_is_detected() {
    let f = fixture();
    let s = Signing::of(&f.admin);
    let request = signed_post("Action=DescribeRegions&Version=2016-11-15", &s);
    let (parts, _) = request.into_parts();
    let tampered_body = Request::from_parts(parts, Full::new(Bytes::from("Action=DescribeRegions&Version=2016-11-16")));
    assert_eq!(code(&send(&f, tampered_body).await.1), "SignatureDoesNotMatch");

    let mut request = signed_post("Action=DescribeRegions&Version=2016-11-15", &s);
    request.headers_mut().insert("content-type", "text/plain".parse().unwrap());
    assert_eq!(code(&send(&f, request).await.1), "SignatureDoesNotMatch");

    let mut request = signed_post("Action=DescribeRegions&Version=2016-11-15", &s);
    let date = request.headers()["x-amz-date"].to_str().unwrap().to_owned();
    let shifted = format!("{}{}", &date[..14], if date.ends_with("0Z") { "1Z" } else { "0Z" });
    request.headers_mut().insert("x-amz-date", shifted.parse().unwrap());
    assert_eq!(code(&send(&f, request).await.1), "SignatureDoesNotMatch");
}

#[tokio::test]
async fn presigned_urls_work_until_they_expire() {
    let f = fixture();
    let query = "Action=DescribeRegions&Version=2016-11-15";
    let (status, body) = send(&f, presigned_get(query, &Signing::of(&f.admin), Duration::from_secs(300))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("us-east-1"));

    let mut old = Signing::of(&f.admin);
    old.time = SystemTime::now() - Duration::from_secs(120);
    assert_eq!(code(&send(&f, presigned_get(query, &old, Duration::from_secs(60))).await.1), "RequestExpired");

    let request = presigned_get(query, &Signing::of(&f.admin), Duration::from_secs(300));
    let uri = request.uri().to_string().replace("DescribeRegions", "DescribeAvailabilityZones");
    let forged = Request::get(uri).header("host", HOST).body(Full::new(Bytes::new())).unwrap();
    assert_eq!(code(&send(&f, forged).await.1), "SignatureDoesNotMatch");
}

#[tokio::test]
async fn protocol_errors() {
    let f = fixture();
    for (body, expected, status) in [
        ("Action=NoSuchThing&Version=2016-11-15", "InvalidAction", 400),
        ("Version=2016-11-15", "MissingParameter", 400),
        ("Action=DescribeRegions", "MissingParameter", 400),
        ("Action=CreateKeyPair&Version=2016-11-15", "MissingParameter", 400),
        ("Action=DescribeRegions&Version=2016-11-15&Foo=bar", "UnknownParameter", 400),
        (
            "Action=DescribeKeyPairs&Version=2016-11-15&Filter.1.Name=colour&Filter.1.Value.1=x",
            "InvalidParameterValue",
            400,
        ),
        ("Action=DescribeInstanceTypes&Version=2016-11-15&MaxResults=2", "InvalidParameterValue", 400),
        ("Action=DescribeTags&Version=2016-11-15&NextToken=%21%21", "InvalidParameterValue", 400),
        ("Action=CreateKeyPair&Version=2016-11-15&KeyName=k&DryRun=true", "DryRunOperation", 412),
        ("Action=CreateTags&Version=2016-11-15&ResourceId.1=bogus&Tag.1.Key=a", "InvalidID", 400),
        (
            "Action=CreateTags&Version=2016-11-15&ResourceId.1=i-0123456789abcdef0&Tag.1.Key=a",
            "InvalidInstanceID.NotFound",
            400,
        ),
        ("Action=DescribeInstanceTypes&Version=2016-11-15&InstanceType.1=z9.huge", "InvalidInstanceType", 400),
    ] {
        let (got_status, answer) = call(&f, body).await;
        assert_eq!((code(&answer), got_status), (expected, status), "{body}: {answer}");
        assert!(answer.contains("<RequestID>"));
    }
    // The dry run created nothing.
    let (_, answer) = call(&f, "Action=DescribeKeyPairs&Version=2016-11-15").await;
    assert!(answer.contains("<keySet/>"), "{answer}");
}

#[tokio::test]
async fn malformed_input_never_breaks_the_server() {
    let f = fixture();
    for body in [
        "Action=DescribeKeyPairs&Version=2016-11-15&Filter.x.Name=a",
        "Action=DescribeKeyPairs&Version=2016-11-15&Filter.1=a",
        "Action=DescribeKeyPairs&Version=2016-11-15&Filter.1.Name.Deep.Deeper=a",
        "Action=DescribeKeyPairs&Version=2016-11-15&KeyName.99999999999999999999=a",
        "Action=DescribeKeyPairs&Version=2016-11-15&%FF%FE=%00",
        "Action=ImportKeyPair&Version=2016-11-15&KeyName=k&PublicKeyMaterial=%%%",
        "Action=ImportKeyPair&Version=2016-11-15&KeyName=k&PublicKeyMaterial=AAAA",
        "Action=CreateKeyPair&Version=2016-11-15&KeyName=",
        "Action=DescribeTags&Version=2016-11-15&MaxResults=-1",
        "Action=DescribeTags&Version=2016-11-15&MaxResults=99999999999999",
        "&&&==&",
    ] {
        let (status, answer) = call(&f, body).await;
        assert!((400..500).contains(&status), "{body} → {status} {answer}");
    }
    assert_eq!(call(&f, "Action=DescribeRegions&Version=2016-11-15").await.0, 200);
}

#[tokio::test]
async fn large_bodies_are_refused() {
    let f = fixture_with(Limits { max_body_bytes: 1024, ..Limits::default() });
    let body = format!("Action=DescribeRegions&Version=2016-11-15&Pad={}", "x".repeat(2048));
    let (status, answer) = call(&f, &body).await;
    assert_eq!((status, code(&answer)), (413, "RequestEntityTooLarge"));
}

#[tokio::test]
async fn throttling_answers_503_request_limit_exceeded() {
    let f = fixture_with(Limits { requests_per_second: 1, burst: 2, ..Limits::default() });
    let mut codes = Vec::new();
    for _ in 0..4 {
        let (status, answer) = call(&f, "Action=DescribeRegions&Version=2016-11-15").await;
        codes.push((status, code(&answer).to_owned()));
    }
    assert_eq!(codes[0].0, 200);
    assert!(codes.contains(&(503, "RequestLimitExceeded".to_owned())), "{codes:?}");
}

#[tokio::test]
async fn accounts_do_not_see_each_other() {
    let f = fixture();
    let other = f.state.backend.create_account(NewAccount { name: "other".into(), ..Default::default() }).unwrap();
    let (status, created) = call(&f, "Action=CreateKeyPair&Version=2016-11-15&KeyName=mine&KeyType=ed25519").await;
    assert_eq!(status, 200, "{created}");
    let id = created.split("<keyPairId>").nth(1).unwrap().split('<').next().unwrap().to_owned();
    let as_other = |body: String| signed_post(&body, &Signing::of(&other));
    let (_, listing) = send(&f, as_other("Action=DescribeKeyPairs&Version=2016-11-15".into())).await;
    assert!(listing.contains("<keySet/>"), "{listing}");
    let (_, by_name) = send(&f, as_other("Action=DescribeKeyPairs&Version=2016-11-15&KeyName.1=mine".into())).await;
    assert_eq!(code(&by_name), "InvalidKeyPair.NotFound");
    let (_, tag) =
        send(&f, as_other(format!("Action=CreateTags&Version=2016-11-15&ResourceId.1={id}&Tag.1.Key=a"))).await;
    assert_eq!(code(&tag), "InvalidKeyPair.NotFound");
    let (_, delete) = send(&f, as_other(format!("Action=DeleteKeyPair&Version=2016-11-15&KeyPairId={id}"))).await;
    assert_eq!(code(&delete), "InvalidKeyPair.NotFound");
    let (_, same_name) =
        send(&f, as_other("Action=CreateKeyPair&Version=2016-11-15&KeyName=mine&KeyType=ed25519".into())).await;
    assert!(same_name.contains("<keyName>mine</keyName>"), "{same_name}");
    let (_, still) = call(&f, "Action=DescribeKeyPairs&Version=2016-11-15").await;
    assert!(still.contains(&id));
}

#[tokio::test]
async fn parameter_names_deeper_than_the_model_are_refused_cheaply() {
    let f = fixture();
    // 14,000 levels once overflowed the server's stack and killed the process.
    for name in [format!("Action.a{}", ".a".repeat(14_000)), format!("Filter.1{}", ".a".repeat(14_000))] {
        let started = std::time::Instant::now();
        let (status, answer) = call(&f, &format!("Action=DescribeRegions&Version=2016-11-15&{name}=x")).await;
        assert_eq!((status, code(&answer)), (400, "UnknownParameter"), "{}", &answer[..answer.len().min(300)]);
        assert!(answer.len() < 1024, "the answer repeats at most a little of the name: {}", answer.len());
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }
    assert_eq!(call(&f, "Action=DescribeRegions&Version=2016-11-15").await.0, 200);
}

fn from(mut request: Request<Full<Bytes>>, address: &str) -> Request<Full<Bytes>> {
    request.extensions_mut().insert(gateway::server::PeerAddr(address.parse().unwrap()));
    request
}

#[tokio::test]
async fn anonymous_floods_are_charged_to_their_address_not_to_tenants() {
    let f = fixture_with(Limits { anonymous_per_second: 1, anonymous_burst: 5, ..Limits::default() });
    let body = "Action=DescribeRegions&Version=2016-11-15";
    let mut refused = 0;
    for _ in 0..50 {
        let unsigned = Request::post("/").header("host", HOST).body(Full::new(Bytes::from(body))).unwrap();
        let (status, answer) = send(&f, from(unsigned, "127.0.0.2:40000")).await;
        match status {
            401 => assert_eq!(code(&answer), "MissingAuthenticationToken"),
            503 => refused += 1,
            other => panic!("{other}: {answer}"),
        }
        let mut forged = Signing::of(&f.admin);
        forged.secret = "guessed-wrong";
        let (status, _) = send(&f, from(signed_post(body, &forged), "127.0.0.2:40001")).await;
        assert!(status == 403 || status == 503, "{status}");
    }
    assert!(refused >= 40, "the flood's address ran out of tokens: {refused} of 50 refused");
    // The admin, from its own address and even from the flooding one, is not throttled.
    for address in ["127.0.0.1:50000", "127.0.0.2:50001"] {
        for _ in 0..20 {
            let (status, answer) = send(&f, from(signed_post(body, &Signing::of(&f.admin)), address)).await;
            assert_eq!(status, 200, "{answer}");
        }
    }
}

#[tokio::test]
async fn one_tenant_exhausting_its_bucket_leaves_others_theirs() {
    let f = fixture_with(Limits { requests_per_second: 1, burst: 3, ..Limits::default() });
    let noisy = f.state.backend.create_account(NewAccount { name: "noisy".into(), ..Default::default() }).unwrap();
    let describe = "Action=DescribeRegions&Version=2016-11-15";
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(send(&f, signed_post(describe, &Signing::of(&noisy))).await.0);
    }
    let refused = statuses.iter().filter(|s| **s == 503).count();
    assert!((6..=7).contains(&refused), "{statuses:?}");
    // Its mutating bucket is separate from its reading one, as on EC2.
    let (status, answer) = send(
        &f,
        signed_post("Action=CreateKeyPair&Version=2016-11-15&KeyName=k&KeyType=ed25519", &Signing::of(&noisy)),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    for _ in 0..3 {
        let (status, answer) = call(&f, describe).await;
        assert_eq!(status, 200, "the admin keeps its share: {answer}");
    }
}

#[tokio::test]
async fn tenants_cannot_register_host_files_and_cannot_tell_which_exist() {
    let f = fixture();
    let tenant = f.state.backend.create_account(NewAccount { name: "tenant".into(), ..Default::default() }).unwrap();
    let existing = std::env::current_exe().unwrap();
    let mut answers = Vec::new();
    for (name, path) in [
        ("ImageLocation", existing.display().to_string()),
        ("ImageLocation", "/nonexistent/disk.qcow2".to_owned()),
        ("KernelId", existing.display().to_string()),
        ("RamdiskId", "/etc/shadow".to_owned()),
    ] {
        let location = if name == "ImageLocation" { String::new() } else { "&ImageLocation=/x".to_owned() };
        let body = format!("Action=RegisterImage&Version=2016-11-15&Name=stolen&{name}={path}{location}");
        let (status, answer) = send(&f, signed_post(&body, &Signing::of(&tenant))).await;
        let message = answer.split("<Message>").nth(1).unwrap().split("</Message>").next().unwrap().to_owned();
        answers.push((status, code(&answer).to_owned(), message));
    }
    assert_eq!(answers[0].1, "UnauthorizedOperation", "{answers:?}");
    assert!(answers.iter().all(|a| *a == answers[0]), "every refusal is the same: {answers:?}");
    let (_, listing) = send(&f, signed_post("Action=DescribeImages&Version=2016-11-15", &Signing::of(&tenant))).await;
    assert!(listing.contains("<imagesSet/>"), "{listing}");
}

/// A server on a loopback port of its own, with `limits`; stops when the test's runtime does.
async fn listening(limits: Limits) -> (Fixture, std::net::SocketAddr) {
    let f = fixture_with(limits);
    let listener = gateway::server::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(gateway::server::serve(listener, Arc::clone(&f.state), std::future::pending()));
    (f, address)
}

/// A connection from `source` (any 127/8 address is this machine).
async fn connect_from(source: &str, server: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

/// A signed POST of `body` as HTTP/1.1 bytes: head, then body.
fn wire(body: &str, s: &Signing) -> (Vec<u8>, Vec<u8>) {
    let (parts, _) = signed_post(body, s).into_parts();
    let mut head = format!("{} {} HTTP/1.1\r\n", parts.method, parts.uri.path_and_query().unwrap());
    for (name, value) in &parts.headers {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    (head.into_bytes(), body.as_bytes().to_vec())
}

/// Reads until the server closes the connection or `limit` passes: what it sent, and whether it closed.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

/// One signed DescribeRegions over a fresh connection from 127.0.0.1: its status and how long it took.
async fn signed_request_over_tcp(f: &Fixture, server: std::net::SocketAddr) -> (String, Duration) {
    use tokio::io::AsyncWriteExt;
    let started = std::time::Instant::now();
    let mut stream = connect_from("127.0.0.1", server).await;
    let (head, body) = wire("Action=DescribeRegions&Version=2016-11-15", &Signing::of(&f.admin));
    let mut request = head;
    request.extend_from_slice(&body);
    stream.write_all(&request).await.unwrap();
    let mut status = String::new();
    let mut buf = [0u8; 16];
    use tokio::io::AsyncReadExt;
    if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
        status = String::from_utf8_lossy(&buf[..n]).into_owned();
    }
    (status, started.elapsed())
}

fn quick_timeouts() -> Limits {
    Limits { header_timeout_secs: 1, body_timeout_secs: 1, ..Limits::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_header_connections_are_closed() {
    use tokio::io::AsyncWriteExt;
    let (f, server) = listening(quick_timeouts()).await;
    let mut idle = connect_from("127.0.0.1", server).await;
    let mut trickle = connect_from("127.0.0.1", server).await;
    trickle.write_all(b"POST / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    for stream in [&mut idle, &mut trickle] {
        let (_, closed) = read_until_closed(stream, Duration::from_secs(5)).await;
        assert!(closed, "a connection that sends no whole request is closed");
    }
    // A kept-alive connection that asks nothing more is closed too.
    let mut kept = connect_from("127.0.0.1", server).await;
    let (head, body) = wire("Action=DescribeRegions&Version=2016-11-15", &Signing::of(&f.admin));
    kept.write_all(&[head, body].concat()).await.unwrap();
    let (answer, closed) = read_until_closed(&mut kept, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "idle keep-alive connections are closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_gets_request_timeout() {
    use tokio::io::AsyncWriteExt;
    let (f, server) = listening(quick_timeouts()).await;
    let mut stream = connect_from("127.0.0.1", server).await;
    let (head, body) = wire("Action=DescribeRegions&Version=2016-11-15", &Signing::of(&f.admin));
    stream.write_all(&head).await.unwrap();
    stream.write_all(&body[..5]).await.unwrap();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("<Code>RequestTimeout</Code>"), "{answer}");
    assert!(closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_held_open_from_one_address_do_not_lock_others_out() {
    let limits = Limits { max_connections_per_address: 50, max_connections: 400, ..Limits::default() };
    let (f, server) = listening(limits).await;
    // Far more silent connections than one address may hold (each one past the cap is closed
    // as soon as it is accepted).
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(connect_from("127.0.0.2", server).await);
    }
    let (status, took) = signed_request_over_tcp(&f, server).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let mut closed = 0;
    for stream in &mut held {
        if read_until_closed(stream, Duration::from_millis(20)).await.1 {
            closed += 1;
        }
    }
    assert!(closed >= 250, "connections past the cap are closed at once: {closed} of 300");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_addresses_filling_every_place_do_not_lock_a_newcomer_out() {
    let limits = Limits { max_connections_per_address: 40, max_connections: 120, ..Limits::default() };
    let (f, server) = listening(limits).await;
    // Ten addresses hold every place there is between them (and try for more).
    let mut held = Vec::new();
    for n in 2..12 {
        for _ in 0..40 {
            held.push(connect_from(&format!("127.0.0.{n}"), server).await);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A newcomer holding nothing takes the place of a connection of the busiest address.
    for _ in 0..3 {
        let (status, took) = signed_request_over_tcp(&f, server).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
        assert!(took < Duration::from_secs(1), "{took:?}");
    }
    let mut closed = 0;
    for stream in &mut held {
        if read_until_closed(stream, Duration::from_millis(10)).await.1 {
            closed += 1;
        }
    }
    assert!(closed >= 400 - 120, "at most the total cap stays open: {closed} of 400 closed");
}
