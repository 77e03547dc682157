//! SigV4 verification.
//!
//! 1. Find the signature: the `Authorization` header, or `X-Amz-*` query parameters
//!    (presigned URL). Neither → `MissingAuthenticationToken`; unparsable → `IncompleteSignature`.
//! 2. Check the scope `<date>/<region>/ec2/aws4_request`: a region Stratus does not serve is
//!    `AuthFailure`; the request time must be within five minutes (`RequestExpired`), and a
//!    presigned URL must not have expired.
//! 3. Look the access key up (`AuthFailure` when unknown).
//! 4. Compute the signature the client must have sent and compare the two in constant time
//!    (`SignatureDoesNotMatch`). What every SDK sends (a signed `Authorization` header, path `/`,
//!    no query string, sorted lowercase header names, one value each) takes the fast path: the
//!    canonical request is streamed into SHA-256 as it is walked, never built, and the signing
//!    key (four HMACs) comes from a per-thread cache keyed by secret, date, region and service.
//!    Anything else (presigned URLs, query strings, unusual paths or headers) is re-signed by
//!    aws-sigv4 as a client would sign it, so the rules for rare shapes stay the SDK's own. A
//!    differential test holds the fast path to the slow one.
//!
//! Why not a verification crate: `scratchstack-aws-signature` (the maintained one) validates a
//! whole `http` 0.2 request through a tower service, with regex-based canonicalisation that
//! allocates per request, and would pull a second `http`/`hyper` generation and `ring` 0.16
//! into the build; it removes none of the cost measured here (deriving the key every time and
//! building the canonical request).

use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use chrono::{NaiveDateTime, TimeZone, Timelike, Utc};
use ec2api::Code;
use ec2api::Ec2Error;
use hmac::{Hmac, Mac};
use http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);
const MAX_PRESIGN_EXPIRY_SECS: u64 = 7 * 24 * 3600;

/// The `X-Amz-*` query parameters of a presigned URL; they are not API parameters.
pub const PRESIGN_PARAMS: &[&str] =
    &["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"];

/// What a request claims, before it is verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub access_key_id: String,
    pub region: String,
    /// The service the request was signed for: `ec2`, or `monitoring` (CloudWatch).
    pub service: String,
    signed_headers: Vec<String>,
    signature: String,
    time: SystemTime,
    /// `Some(seconds)` for a presigned URL.
    expires: Option<u64>,
}

fn incomplete(why: &str) -> Ec2Error {
    Ec2Error::new(Code::IncompleteSignature, why.to_owned())
}

/// `YYYYMMDDTHHMMSSZ`, strictly: chrono alone accepts spaces, one-digit fields and second 60,
/// and a date that reads as another day must never meet that day's signing key.
fn parse_amz_date(text: &str) -> Result<SystemTime, Ec2Error> {
    let malformed = || incomplete("X-Amz-Date must be in the ISO8601 basic format YYYYMMDD'T'HHMMSS'Z'");
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 16
        && bytes[..8].iter().all(u8::is_ascii_digit)
        && bytes[8] == b'T'
        && bytes[9..15].iter().all(u8::is_ascii_digit)
        && bytes[15] == b'Z';
    if !shaped {
        return Err(malformed());
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ").map_err(|_| malformed())?;
    // Digits in place, chrono refuses out-of-range fields but keeps second 60 as a leap second
    // (a fraction past 59, the next day's midnight as a time): refused too. No formatting back
    // on every request.
    if naive.nanosecond() >= 1_000_000_000 {
        return Err(malformed());
    }
    Ok(Utc.from_utc_datetime(&naive).into())
}

/// The services the endpoint answers, by signing name.
pub const SERVICES: [&str; 2] = ["ec2", "monitoring"];

/// `AKID/20261125/us-east-1/ec2/aws4_request` → (AKID, region, service), checking the other parts.
fn parse_scope(credential: &str, amz_date: &str) -> Result<(String, String, String), Ec2Error> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, terminator] = parts.as_slice() else {
        return Err(incomplete("Credential must have the form <key>/<date>/<region>/ec2/aws4_request"));
    };
    if key.is_empty() || region.is_empty() || *terminator != "aws4_request" {
        return Err(incomplete("Credential must have the form <key>/<date>/<region>/ec2/aws4_request"));
    }
    if !SERVICES.contains(service) {
        return Err(Ec2Error::new(
            Code::SignatureDoesNotMatch,
            format!("Credential should be scoped to correct service: 'ec2', not '{}'", ec2api::error::echo(service)),
        ));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) || amz_date.get(..8) != Some(*date) {
        return Err(Ec2Error::new(
            Code::SignatureDoesNotMatch,
            "Date in Credential scope does not match YYYYMMDD from X-Amz-Date",
        ));
    }
    Ok(((*key).to_owned(), (*region).to_owned(), (*service).to_owned()))
}

/// Reads the claim from the header or the query; `query` holds the decoded query pairs.
pub fn claim(headers: &http::HeaderMap, query: &[(String, String)]) -> Result<Claim, Ec2Error> {
    if let Some(header) = headers.get(http::header::AUTHORIZATION) {
        let header = header.to_str().map_err(|_| incomplete("Authorization header is not ASCII"))?;
        let rest = header
            .strip_prefix(ALGORITHM)
            .filter(|r| r.starts_with(' '))
            .ok_or_else(|| incomplete("Unsupported Authorization algorithm; use AWS4-HMAC-SHA256"))?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for field in rest.split(',') {
            match field.trim().split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => return Err(incomplete("Authorization header has an unknown or malformed field")),
            }
        }
        let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
            return Err(incomplete("Authorization header requires Credential, SignedHeaders and Signature"));
        };
        let amz_date = headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| incomplete("Authorization header requires an X-Amz-Date header"))?;
        let (access_key_id, region, service) = parse_scope(credential, amz_date)?;
        return Ok(Claim {
            access_key_id,
            region,
            service,
            signed_headers: signed.split(';').map(str::to_owned).collect(),
            signature: signature.to_owned(),
            time: parse_amz_date(amz_date)?,
            expires: None,
        });
    }
    let get = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let Some(signature) = get("X-Amz-Signature") else {
        return Err(Ec2Error::new(Code::MissingAuthenticationToken, "Request is missing Authentication Token"));
    };
    if get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(incomplete("X-Amz-Algorithm must be AWS4-HMAC-SHA256"));
    }
    let (Some(credential), Some(amz_date), Some(signed), Some(expires)) =
        (get("X-Amz-Credential"), get("X-Amz-Date"), get("X-Amz-SignedHeaders"), get("X-Amz-Expires"))
    else {
        return Err(incomplete(
            "Presigned URLs require X-Amz-Credential, X-Amz-Date, X-Amz-SignedHeaders and X-Amz-Expires",
        ));
    };
    let expires: u64 = expires.parse().map_err(|_| incomplete("X-Amz-Expires must be a number of seconds"))?;
    if expires > MAX_PRESIGN_EXPIRY_SECS {
        return Err(Ec2Error::new(Code::AuthFailure, "X-Amz-Expires must be at most 604800 seconds"));
    }
    let (access_key_id, region, service) = parse_scope(credential, amz_date)?;
    Ok(Claim {
        access_key_id,
        region,
        service,
        signed_headers: signed.split(';').map(str::to_owned).collect(),
        signature: signature.to_owned(),
        time: parse_amz_date(amz_date)?,
        expires: Some(expires),
    })
}

/// Checks the time of the claim against `now`.
pub fn check_time(claim: &Claim, now: SystemTime) -> Result<(), Ec2Error> {
    let expired = || Ec2Error::new(Code::RequestExpired, "Request has expired.");
    let too_new = claim.time.duration_since(now).is_ok_and(|ahead| ahead > MAX_SKEW);
    let age = now.duration_since(claim.time).unwrap_or_default();
    let too_old = match claim.expires {
        Some(expires) => age > Duration::from_secs(expires),
        None => age > MAX_SKEW,
    };
    if too_new || too_old {
        return Err(expired());
    }
    Ok(())
}

fn mismatch() -> Ec2Error {
    Ec2Error::new(
        Code::SignatureDoesNotMatch,
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
    )
}

/// Checks the claimed signature of the request against the one `secret` gives.
pub fn verify(
    claim: &Claim,
    secret: &str,
    parts: &Parts,
    query: &[(String, String)],
    body: &[u8],
) -> Result<(), Ec2Error> {
    if !claim.signed_headers.iter().any(|h| h == "host") {
        return Err(incomplete("SignedHeaders must include host"));
    }
    match verify_fast(claim, secret, parts, query, body) {
        Some(verdict) => verdict,
        None => verify_by_resigning(claim, secret, parts, query, body),
    }
}

/// Whether a header name is in canonical form: lowercase token characters.
fn is_canonical_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A path aws-sigv4 leaves as it is: unreserved characters and single slashes, no dot segments.
fn is_plain_path(path: &str) -> bool {
    path.starts_with('/')
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~/".contains(&b))
        && !path.contains("//")
        && !path.split('/').any(|segment| segment == "." || segment == "..")
}

/// The fast path (see the module docs); `None` when the request is not of its shape.
fn verify_fast(
    claim: &Claim,
    secret: &str,
    parts: &Parts,
    query: &[(String, String)],
    body: &[u8],
) -> Option<Result<(), Ec2Error>> {
    let path = parts.uri.path();
    if claim.expires.is_some() || !query.is_empty() || parts.uri.query().is_some() || !is_plain_path(path) {
        return None;
    }
    // aws-sigv4 always signs the date header: a request that did not is the slow path's to refuse.
    if !claim.signed_headers.iter().any(|h| h == "x-amz-date") {
        return None;
    }
    // Names strictly ascending (sorted, no repeats) and each header present once, with a value
    // aws-sigv4 would not rewrite (no runs of spaces inside).
    let mut values: [&[u8]; 16] = [b""; 16];
    if claim.signed_headers.len() > values.len() {
        return None;
    }
    let mut previous = "";
    for (slot, name) in values.iter_mut().zip(&claim.signed_headers) {
        if !is_canonical_name(name) || name.as_str() <= previous {
            return None;
        }
        previous = name;
        let mut found = parts.headers.get_all(name.as_str()).iter();
        let (Some(value), None) = (found.next(), found.next()) else {
            // Absent: a mismatch either way. Repeated: the slow path decides.
            return None;
        };
        // Visible ASCII only, as aws-sigv4 takes it (the slow path decides the rest).
        let value = value.to_str().ok()?.trim_matches(' ');
        if value.contains("  ") || (name == "x-amz-date" && value.len() != 16) {
            return None;
        }
        *slot = value.as_bytes();
    }
    let amz_date = parts.headers.get("x-amz-date")?.as_bytes();

    let mut payload = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(body), &mut payload).ok()?;
    let mut canonical = Sha256::new();
    canonical.update(parts.method.as_str());
    canonical.update(b"\n");
    canonical.update(path);
    canonical.update(b"\n\n"); // the empty query string
    for (name, value) in claim.signed_headers.iter().zip(values) {
        canonical.update(name);
        canonical.update(b":");
        canonical.update(value);
        canonical.update(b"\n");
    }
    canonical.update(b"\n");
    for (i, name) in claim.signed_headers.iter().enumerate() {
        if i > 0 {
            canonical.update(b";");
        }
        canonical.update(name);
    }
    canonical.update(b"\n");
    canonical.update(payload);
    let mut canonical_hex = [0u8; 64];
    hex::encode_to_slice(canonical.finalize(), &mut canonical_hex).ok()?;

    let date = amz_date.get(..8)?;
    let key = signing_key(secret, date, claim)?;
    let mut to_sign = <Hmac<Sha256> as Mac>::new_from_slice(&key).ok()?;
    for piece in [
        ALGORITHM.as_bytes(),
        b"\n",
        amz_date,
        b"\n",
        date,
        b"/",
        claim.region.as_bytes(),
        b"/",
        claim.service.as_bytes(),
        b"/aws4_request\n",
        &canonical_hex,
    ] {
        to_sign.update(piece);
    }
    let mut expected = [0u8; 64];
    hex::encode_to_slice(to_sign.finalize().into_bytes(), &mut expected).ok()?;
    Some(if bool::from(expected.ct_eq(claim.signature.as_bytes())) { Ok(()) } else { Err(mismatch()) })
}

/// A derived signing key, for one secret, day, region and service.
struct CachedKey {
    secret: String,
    date: [u8; 8],
    region: String,
    service: String,
    key: [u8; 32],
}

/// Signing keys per thread: a handful of callers per day cover nearly every request.
const CACHED_KEYS: usize = 32;

thread_local! {
    static KEYS: RefCell<Vec<CachedKey>> = const { RefCell::new(Vec::new()) };
}

/// The signing key for `secret` on `date` (YYYYMMDD) in the claim's region and service:
/// derived once (aws-sigv4's derivation), then served from the cache.
fn signing_key(secret: &str, date: &[u8], claim: &Claim) -> Option<[u8; 32]> {
    let date: [u8; 8] = date.try_into().ok()?;
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        // The caller picks the date and region, and so which cached secrets are compared:
        // compared in constant time.
        let hit = keys.iter().find(|k| {
            k.date == date
                && k.region == claim.region
                && k.service == claim.service
                && bool::from(k.secret.as_bytes().ct_eq(secret.as_bytes()))
        });
        if let Some(hit) = hit {
            return Some(hit.key);
        }
        let key: [u8; 32] =
            v4::generate_signing_key(secret, claim.time, &claim.region, &claim.service).as_ref().try_into().ok()?;
        if keys.len() == CACHED_KEYS {
            keys.remove(0); // the oldest entry
        }
        keys.push(CachedKey {
            secret: secret.to_owned(),
            date,
            region: claim.region.clone(),
            service: claim.service.clone(),
            key,
        });
        Some(key)
    })
}

/// The slow path: re-signs the request with aws-sigv4 as a client would and compares.
fn verify_by_resigning(
    claim: &Claim,
    secret: &str,
    parts: &Parts,
    query: &[(String, String)],
    body: &[u8],
) -> Result<(), Ec2Error> {
    let mut headers = Vec::with_capacity(claim.signed_headers.len());
    for name in &claim.signed_headers {
        if name == "x-amz-date" {
            continue; // the signer inserts it from the claimed time
        }
        let value = parts.headers.get(name.as_str()).and_then(|v| v.to_str().ok()).ok_or_else(mismatch)?;
        headers.push((name.as_str(), value));
    }
    let host = headers.iter().find(|(name, _)| *name == "host").map(|(_, v)| *v).ok_or_else(mismatch)?;
    let unsigned_query: Vec<(&str, &str)> = query
        .iter()
        .filter(|(k, _)| claim.expires.is_none() || !PRESIGN_PARAMS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut uri = format!("http://{host}{}", parts.uri.path());
    if !unsigned_query.is_empty() {
        uri.push('?');
        uri.push_str(&form_urlencoded::Serializer::new(String::new()).extend_pairs(unsigned_query).finish());
    }

    let mut settings = SigningSettings::default();
    settings.excluded_headers = None;
    if let Some(expires) = claim.expires {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(expires));
    }
    let identity: Identity = Credentials::new(&claim.access_key_id, secret, None, None, "stratus").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&claim.region)
        .name(&claim.service)
        .time(claim.time)
        .settings(settings)
        .build()
        .map_err(|_| mismatch())?
        .into();
    let request = SignableRequest::new(parts.method.as_str(), uri, headers.into_iter(), SignableBody::Bytes(body))
        .map_err(|_| mismatch())?;
    let expected = sign(request, &params).map_err(|_| mismatch())?;
    if bool::from(expected.signature().as_bytes().ct_eq(claim.signature.as_bytes())) {
        Ok(())
    } else {
        Err(mismatch())
    }
}

#[cfg(test)]
mod tests {
    //! The fast path against aws-sigv4: requests signed as an SDK signs them (and then
    //! tampered with) must get the same verdict from both paths.

    use super::*;
    use proptest::prelude::*;

    const TIME: u64 = 1_796_000_000; // 2026-11-30

    /// A request as a client sends it: signed by aws-sigv4 with (secret, region, service) over
    /// `headers`, `path` and `query`.
    fn signed_request(
        (secret, region, service): (&str, &str, &str),
        method: &str,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> http::Request<()> {
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(TIME);
        let identity: Identity = Credentials::new("AKIDTEST", secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let uri = if query.is_empty() {
            format!("http://stratus.test{path}")
        } else {
            format!("http://stratus.test{path}?{query}")
        };
        let mut request = http::Request::builder().method(method).uri(&uri);
        request = request.header("host", "stratus.test");
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let mut request = request.body(()).unwrap();
        let signable = SignableRequest::new(
            method,
            uri.clone(),
            request.headers().iter().map(|(k, v)| (k.as_str(), v.to_str().unwrap())),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        instructions.apply_to_request_http1x(&mut request);
        request
    }

    fn query_pairs(parts: &Parts) -> Vec<(String, String)> {
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect()
    }

    /// Both paths' verdicts; the fast one is `None` when the request is not of its shape.
    fn verdicts(parts: &Parts, secret: &str, body: &[u8]) -> (Option<bool>, bool) {
        let query = query_pairs(parts);
        let claim = claim(&parts.headers, &query).unwrap();
        let fast = verify_fast(&claim, secret, parts, &query, body).map(|v| v.is_ok());
        let slow = verify_by_resigning(&claim, secret, parts, &query, body).is_ok();
        (fast, slow)
    }

    fn header() -> impl Strategy<Value = (String, String)> {
        (
            prop::sample::select(vec![
                "content-type",
                "x-amz-target",
                "x-custom",
                "User-Agent",
                "x-amz-security-token",
            ]),
            "[ -~]{0,24}",
        )
            .prop_map(|(n, v)| (n.to_owned(), v))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn fast_path_agrees_with_aws_sigv4(
            secret in "[A-Za-z0-9/+]{40}",
            region in prop::sample::select(vec!["us-east-1", "eu-west-1"]),
            service in prop::sample::select(vec!["ec2", "monitoring"]),
            method in prop::sample::select(vec!["POST", "GET"]),
            path in prop::sample::select(vec!["/", "/a", "/a/b.c", "/./x", "/a//b", "/%7Ex", "/x/../y"]),
            query in prop::sample::select(vec!["", "Action=DescribeRegions", "b=2&a=1&a=0"]),
            headers in prop::collection::vec(header(), 0..4),
            body in prop::collection::vec(any::<u8>(), 0..64),
            tamper in 0u8..5,
        ) {
            // Header values the http crate refuses cannot be sent at all.
            let mut seen = std::collections::HashSet::new();
            let headers: Vec<_> = headers.into_iter().filter(|(n, _)| seen.insert(n.to_lowercase())).collect();
            let request = signed_request((&secret, region, service), method, path, query, &headers, &body);
            let (mut parts, ()) = request.into_parts();
            let mut body = body;
            let mut secret = secret;
            match tamper {
                0 => {}
                1 => body.push(b'x'),
                2 => secret.push('x'),
                3 => {
                    let auth = parts.headers[http::header::AUTHORIZATION].to_str().unwrap().to_owned();
                    let last = auth.chars().last().unwrap();
                    let flipped = format!("{}{}", &auth[..auth.len() - 1], if last == '0' { '1' } else { '0' });
                    parts.headers.insert(http::header::AUTHORIZATION, flipped.parse().unwrap());
                }
                _ => {
                    parts.headers.insert("x-amz-date", "20261130T000001Z".parse().unwrap());
                }
            }
            let (fast, slow) = verdicts(&parts, &secret, &body);
            prop_assert_eq!(slow, tamper == 0, "aws-sigv4 itself");
            if let Some(fast) = fast {
                prop_assert_eq!(fast, slow);
            }
            // What every SDK sends must take the fast path.
            if path == "/" && query.is_empty() && !headers.iter().any(|(_, v)| v.trim_matches(' ').contains("  ")) && tamper != 4 {
                prop_assert!(fast.is_some(), "an SDK's request took the slow path");
            }
        }
    }

    #[test]
    fn signing_keys_are_cached_per_secret_and_scope() {
        let headers = vec![("content-type".to_owned(), "application/x-www-form-urlencoded; charset=utf-8".to_owned())];
        let body = b"Action=DescribeRegions&Version=2016-11-15";
        for secret in ["first-secret", "second-secret", "first-secret"] {
            for region in ["us-east-1", "eu-west-1"] {
                let (parts, ()) = signed_request((secret, region, "ec2"), "POST", "/", "", &headers, body).into_parts();
                assert_eq!(verdicts(&parts, secret, body), (Some(true), true));
                // The other secret's cached key must not verify it.
                let other = if secret == "first-secret" { "second-secret" } else { "first-secret" };
                assert_eq!(verdicts(&parts, other, body), (Some(false), false));
            }
        }
    }

    /// aws-sigv4 signs the date whatever the list says (the date is in the string to sign
    /// anyway), so such a request is its to judge.
    #[test]
    fn unsigned_date_header_is_left_to_aws_sigv4() {
        let (mut parts, ()) = signed_request(("s", "us-east-1", "ec2"), "POST", "/", "", &[], b"").into_parts();
        let auth = parts.headers[http::header::AUTHORIZATION].to_str().unwrap().replace(";x-amz-date", "");
        parts.headers.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        assert_eq!(verdicts(&parts, "s", b""), (None, true));
    }
}

#[cfg(test)]
mod date_tests {
    use super::*;

    /// A date chrono would bend into another day (second 60, spaces, short fields) is refused,
    /// so that no request is checked, or its key cached, under a day it does not name.
    #[test]
    fn request_dates_are_read_strictly() {
        for bad in ["20261130T235960Z", "202611 1T000000Z", "20261130T2359Z", "2026113OT000000Z", "20261130T000000"] {
            assert!(parse_amz_date(bad).is_err(), "{bad}");
        }
        assert!(parse_amz_date("20261130T235959Z").is_ok());
        let at = "20261130T000000Z";
        assert!(parse_scope("AK/2026113/us-east-1/ec2/aws4_request", at).is_err(), "a shorter scope date");
        assert!(parse_scope("AK//us-east-1/ec2/aws4_request", at).is_err(), "an empty scope date");
        assert!(parse_scope("AK/20261201/us-east-1/ec2/aws4_request", at).is_err(), "another day");
        assert!(parse_scope("AK/20261130/us-east-1/ec2/aws4_request", at).is_ok());
    }
}
