//! SigV4 verification, by re-signing.
//!
//! 1. Find the signature: the `Authorization` header, or `X-Amz-*` query parameters
//!    (presigned URL). Neither → `MissingAuthenticationToken`; unparsable → `IncompleteSignature`.
//! 2. Check the scope `<date>/<region>/ec2/aws4_request`: a region Stratus does not serve is
//!    `AuthFailure`; the request time must be within five minutes (`RequestExpired`), and a
//!    presigned URL must not have expired.
//! 3. Look the access key up (`AuthFailure` when unknown).
//! 4. Re-sign with aws-sigv4, giving it exactly the client's signed headers and the raw body
//!    bytes, and compare the signatures in constant time (`SignatureDoesNotMatch`).

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use chrono::{NaiveDateTime, TimeZone, Utc};
use ec2api::Code;
use ec2api::Ec2Error;
use http::request::Parts;
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

fn parse_amz_date(text: &str) -> Result<SystemTime, Ec2Error> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ")
        .map_err(|_| incomplete("X-Amz-Date must be in the ISO8601 basic format YYYYMMDD'T'HHMMSS'Z'"))?;
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
    if !amz_date.starts_with(date) {
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

/// Re-signs the request with `secret` and compares the result with the claimed signature.
pub fn verify(
    claim: &Claim,
    secret: &str,
    parts: &Parts,
    query: &[(String, String)],
    body: &[u8],
) -> Result<(), Ec2Error> {
    let mismatch = || {
        Ec2Error::new(
            Code::SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        )
    };
    if !claim.signed_headers.iter().any(|h| h == "host") {
        return Err(incomplete("SignedHeaders must include host"));
    }
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
