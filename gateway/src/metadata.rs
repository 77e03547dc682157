//! The instance metadata service (IMDS) at `169.254.169.254:80`, as EC2 serves it.
//!
//! 1. A guest connects through its VPC's router to the VPC's metadata namespace
//!    ([`crate::vpc_metadata`]). The instance is whoever holds the connection's source address
//!    in that VPC's leases: the guest's claim cannot be forged, because OVN's port security drops
//!    every packet whose source is not the instance's own address and MAC. Nothing the guest
//!    sends (headers, paths) says who it is. A migrated guest keeps its address, so it keeps its
//!    metadata.
//! 2. A token request's answer leaves with the instance's `HttpPutResponseHopLimit` as its IP
//!    TTL: tokens do not reach further than that many routers behind the guest (its
//!    containers). Each connection serves one request, so the TTL is set per request.
//! 3. `PUT /latest/api/token` (IMDSv2) issues a session token: the instance id and an expiry,
//!    signed with a key that lives as long as this process (after a restart, clients get 401
//!    and ask for a new one, as they do when a token expires). A request carrying a token must
//!    carry a valid one of this instance; without one it is served only while `HttpTokens` is
//!    `optional`. `HttpEndpoint=disabled` answers 403 to everything.
//! 4. Paths are answered from the instance's record ([`Facts`] → [`answer`], pure): listings
//!    end directories with `/`, as EC2's do, and any dated version serves what `latest` does.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use backend::Backend;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use storage::{InstanceRecord, VolumeRecord};
use tokio::net::TcpListener;

use crate::handlers::shapes::private_dns_name;

/// The longest token EC2 issues: six hours.
const MAX_TOKEN_TTL_SECS: u64 = 21_600;
const TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";

/// The metadata versions EC2 lists at `/`; every dated path is served the same tree.
const VERSIONS: &[&str] = &[
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
    "2011-01-01",
    "2011-05-01",
    "2012-01-12",
    "2014-02-25",
    "2014-11-05",
    "2015-10-20",
    "2016-04-19",
    "2016-06-30",
    "2016-09-02",
    "2018-03-28",
    "2018-08-17",
    "2018-09-24",
    "2019-10-01",
    "2020-10-27",
    "2021-01-03",
    "2021-03-23",
    "2021-07-15",
    "2022-09-24",
    "2024-04-11",
    "latest",
];

pub struct MetadataService {
    backend: Arc<Backend>,
    region: String,
    key: [u8; 32],
}

/// What the tree is made of, read from redb for one request.
#[derive(Debug, Clone)]
pub struct Facts {
    pub record: InstanceRecord,
    pub region: String,
    pub group_names: Vec<String>,
    /// Its subnet's and its VPC's address blocks.
    pub subnet_cidr: String,
    pub vpc_cidr: String,
    pub volumes: Vec<VolumeRecord>,
    /// The instance's tags, when `InstanceMetadataTags` is enabled.
    pub tags: Vec<(String, String)>,
}

/// An answer: status, plain-text body, and headers beyond the content type.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self { status: StatusCode::OK, body: body.into(), headers: Vec::new() }
    }

    fn status(status: StatusCode) -> Self {
        let reason = status.canonical_reason().unwrap_or_default();
        Self { status, body: format!("{} - {reason}\n", status.as_u16()).into_bytes(), headers: Vec::new() }
    }
}

impl MetadataService {
    pub fn new(backend: Arc<Backend>, region: String) -> Self {
        Self { backend, region, key: rand::random() }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        Hmac::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    /// A token for `instance_id` valid until `expires` (Unix seconds).
    pub fn issue_token(&self, instance_id: &str, expires: u64) -> String {
        let payload = format!("{instance_id}:{expires}");
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// Whether `token` was issued by this service for `instance_id` and is still valid at `now`.
    pub fn token_valid(&self, token: &str, instance_id: &str, now: u64) -> bool {
        let Some((payload, signature)) = token.split_once('.') else { return false };
        let (Ok(payload), Ok(signature)) = (URL_SAFE_NO_PAD.decode(payload), URL_SAFE_NO_PAD.decode(signature)) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(&payload);
        if mac.verify_slice(&signature).is_err() {
            return false;
        }
        let Ok(payload) = String::from_utf8(payload) else { return false };
        let Some((id, expires)) = payload.rsplit_once(':') else { return false };
        id == instance_id && expires.parse::<u64>().is_ok_and(|e| e > now)
    }

    /// Reads what a request of the instance at `address` in the address space `scope` (a
    /// VPC's, `{vpc id}/`) needs; `None` for an address no instance holds there.
    fn facts(&self, scope: &str, address: Ipv4Addr) -> backend::Result<Option<Facts>> {
        let Some(record) = self.backend.instance_in(scope, address)? else { return Ok(None) };
        let names = self
            .backend
            .security_group_names_of(&record.account, record.security_group_ids.iter().map(String::as_str))?;
        let group_names = record.security_group_ids.iter().filter_map(|id| names.get(id).cloned()).collect();
        let subnet_cidr = self.backend.subnet(&record.account, &record.subnet_id).map(|s| s.cidr()).unwrap_or_default();
        let vpc_cidr = self.backend.vpc(&record.account, &record.vpc_id).map(|v| v.cidr).unwrap_or_default();
        let volumes = self.backend.instance_volumes(&record.account, &record.id)?;
        let tags = if record.metadata.tags_enabled {
            self.backend.tags_of(&record.account, [record.id.as_str()])?.remove(&record.id).unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(Some(Facts { record, region: self.region.clone(), group_names, subnet_cidr, vpc_cidr, volumes, tags }))
    }

    /// Authenticates one request of `facts`' instance, then answers it.
    pub fn respond(&self, facts: &Facts, method: &Method, path: &str, headers: &HeaderMap, now: u64) -> Answer {
        let record = &facts.record;
        if !record.metadata.endpoint_enabled {
            return Answer::status(StatusCode::FORBIDDEN);
        }
        if method == Method::PUT {
            if path != "/latest/api/token" {
                return Answer::status(StatusCode::NOT_FOUND);
            }
            // A proxy in the guest must not hand tokens to others: EC2 refuses forwarded PUTs.
            if headers.contains_key("x-forwarded-for") {
                return Answer::status(StatusCode::FORBIDDEN);
            }
            let ttl = headers.get(TOKEN_TTL_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
            return match ttl {
                // SDKs read the token's lifetime from the answer's header (the Go SDK insists).
                Some(ttl @ 1..=MAX_TOKEN_TTL_SECS) => Answer {
                    headers: vec![(TOKEN_TTL_HEADER, ttl.to_string())],
                    ..Answer::ok(self.issue_token(&record.id, now + ttl))
                },
                _ => Answer::status(StatusCode::BAD_REQUEST),
            };
        }
        if method != Method::GET && method != Method::HEAD {
            return Answer::status(StatusCode::METHOD_NOT_ALLOWED);
        }
        match headers.get(TOKEN_HEADER).map(|v| v.to_str().unwrap_or_default()) {
            Some(token) if !self.token_valid(token, &record.id, now) => {
                return Answer::status(StatusCode::UNAUTHORIZED)
            }
            None if record.metadata.tokens_required => return Answer::status(StatusCode::UNAUTHORIZED),
            _ => {}
        }
        answer(facts, path)
    }
}

/// The answer to `GET path` for the instance of `facts`.
pub fn answer(facts: &Facts, path: &str) -> Answer {
    let path = path.split('?').next().unwrap_or_default();
    let trimmed = path.trim_start_matches('/');
    if trimmed.is_empty() {
        return Answer::ok(VERSIONS.join("\n"));
    }
    let (version, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let dated = version.len() == 10 && version.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    if !(version == "latest" || version == "1.0" || dated) {
        return Answer::status(StatusCode::NOT_FOUND);
    }
    let user_data = facts.record.user_data.as_deref().and_then(|d| STANDARD.decode(d).ok());
    let (category, rest) = rest.split_once('/').unwrap_or((rest, ""));
    match category {
        "" => {
            let mut listing = vec!["dynamic", "meta-data"];
            if user_data.is_some() {
                listing.push("user-data");
            }
            Answer::ok(listing.join("\n"))
        }
        "user-data" if rest.is_empty() => match user_data {
            Some(data) => Answer::ok(data),
            None => Answer::status(StatusCode::NOT_FOUND),
        },
        "meta-data" => lookup(&meta_data(facts), rest),
        "dynamic" => lookup(&dynamic(facts), rest),
        _ => Answer::status(StatusCode::NOT_FOUND),
    }
}

/// A leaf's value, or a directory's listing (children, directories ending in `/`).
fn lookup(tree: &BTreeMap<String, String>, path: &str) -> Answer {
    let path = path.trim_end_matches('/');
    if let Some(value) = tree.get(path) {
        return Answer::ok(value.clone());
    }
    let prefix = if path.is_empty() { String::new() } else { format!("{path}/") };
    let mut children: Vec<String> = Vec::new();
    for key in tree.keys().filter(|k| k.starts_with(&prefix)) {
        let rest = &key[prefix.len()..];
        let child = match rest.split_once('/') {
            Some((dir, _)) => format!("{dir}/"),
            // A leaf that is also a directory (`public-keys`) is listed as the directory.
            None if tree.keys().any(|k| k.starts_with(&format!("{key}/"))) => continue,
            None => rest.to_owned(),
        };
        if !children.contains(&child) {
            children.push(child);
        }
    }
    if children.is_empty() {
        return Answer::status(StatusCode::NOT_FOUND);
    }
    Answer::ok(children.join("\n"))
}

/// The `meta-data/` tree's leaves, by path. `public-keys/` lists itself EC2's way (`0=name`),
/// so its listing is a leaf of its own.
pub fn meta_data(facts: &Facts) -> BTreeMap<String, String> {
    let r = &facts.record;
    let hostname = private_dns_name(&r.private_ip, &facts.region);
    let mut tree = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        tree.insert(key.to_owned(), value);
    };
    put("ami-id", r.image_id.clone());
    put("ami-launch-index", r.ami_launch_index.to_string());
    put("ami-manifest-path", "(unknown)".into());
    put("hostname", hostname.clone());
    put("local-hostname", hostname.clone());
    put("local-ipv4", r.private_ip.clone());
    put("instance-action", "none".into());
    put("instance-id", r.id.clone());
    put("instance-life-cycle", "on-demand".into());
    put("instance-type", r.instance_type.clone());
    put("mac", r.mac.clone());
    put("placement/availability-zone", r.zone.clone());
    put("placement/region", facts.region.clone());
    put("profile", "default-hvm".into());
    put("reservation-id", r.reservation_id.clone());
    put("security-groups", facts.group_names.join("\n"));
    let (partition, domain) = crate::handlers::shapes::partition(&facts.region);
    put("services/domain", domain.into());
    put("services/partition", partition.into());
    put("block-device-mapping/ami", backend::volumes::ROOT_DEVICE.into());
    put("block-device-mapping/root", backend::volumes::ROOT_DEVICE.into());
    let mut data_volumes: Vec<&str> = facts
        .volumes
        .iter()
        .filter(|v| !v.root)
        .filter_map(|v| v.attachment_of(&r.id).map(|a| a.device.as_str()))
        .collect();
    data_volumes.sort_unstable();
    for (index, device) in data_volumes.iter().enumerate() {
        put(&format!("block-device-mapping/ebs{}", index + 1), device.trim_start_matches("/dev/").to_owned());
    }
    if let (Some(name), Some(key)) = (&r.key_name, &r.public_key) {
        put("public-keys", format!("0={name}"));
        put("public-keys/0/openssh-key", format!("{}\n", key.trim_end()));
    }
    let iface = format!("network/interfaces/macs/{}", r.mac);
    put(&format!("{iface}/device-number"), "0".into());
    put(&format!("{iface}/interface-id"), r.network_interface_id.clone());
    put(&format!("{iface}/local-hostname"), hostname);
    let addresses: Vec<&str> = std::iter::once(&r.private_ip).chain(&r.secondary_ips).map(String::as_str).collect();
    put(&format!("{iface}/local-ipv4s"), addresses.join("\n"));
    put(&format!("{iface}/mac"), r.mac.clone());
    put(&format!("{iface}/owner-id"), r.account.clone());
    put(&format!("{iface}/security-group-ids"), r.security_group_ids.join("\n"));
    put(&format!("{iface}/security-groups"), facts.group_names.join("\n"));
    put(&format!("{iface}/subnet-id"), r.subnet_id.clone());
    put(&format!("{iface}/subnet-ipv4-cidr-block"), facts.subnet_cidr.clone());
    put(&format!("{iface}/vpc-id"), r.vpc_id.clone());
    put(&format!("{iface}/vpc-ipv4-cidr-block"), facts.vpc_cidr.clone());
    put(&format!("{iface}/vpc-ipv4-cidr-blocks"), facts.vpc_cidr.clone());
    for (key, value) in &facts.tags {
        // A tag key with `/` cannot be a path segment; EC2 leaves such tags out too.
        if !key.contains('/') && !key.is_empty() {
            put(&format!("tags/instance/{key}"), value.clone());
        }
    }
    tree
}

fn dynamic(facts: &Facts) -> BTreeMap<String, String> {
    let r = &facts.record;
    let pending = chrono::DateTime::from_timestamp_millis(r.launch_time_ms).unwrap_or_default();
    let document = serde_json::json!({
        "accountId": r.account,
        "architecture": "x86_64",
        "availabilityZone": r.zone,
        "billingProducts": null,
        "devpayProductCodes": null,
        "marketplaceProductCodes": null,
        "imageId": r.image_id,
        "instanceId": r.id,
        "instanceType": r.instance_type,
        "kernelId": null,
        "pendingTime": pending.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "privateIp": r.private_ip,
        "ramdiskId": null,
        "region": facts.region,
        "version": "2017-09-30",
    });
    let pretty = serde_json::to_string_pretty(&document).unwrap_or_default();
    BTreeMap::from([("instance-identity/document".to_owned(), pretty)])
}

/// Serves the metadata service on `listener` until the process ends, for callers in the address
/// space `scope` (a VPC's, [`crate::vpc_metadata`]). One request per connection: the hop limit
/// (the IP TTL) applies to token answers only, and is set for each.
pub async fn serve_in(listener: TcpListener, service: Arc<MetadataService>, scope: String) {
    let scope: Arc<str> = scope.into();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, say: do not spin.
                tracing::warn!(%error, "metadata service: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = Arc::clone(&service);
        let scope = Arc::clone(&scope);
        tokio::spawn(async move {
            let SocketAddr::V4(peer) = peer else { return };
            let address = *peer.ip();
            let mut method = [0u8; 4];
            let peeked = tokio::time::timeout(Duration::from_secs(10), stream.peek(&mut method)).await;
            if matches!(peeked, Ok(Ok(4))) && &method == b"PUT " {
                let backend = Arc::clone(&service.backend);
                let in_scope = Arc::clone(&scope);
                let record = tokio::task::spawn_blocking(move || backend.instance_in(&in_scope, address)).await;
                if let Ok(Ok(Some(record))) = record {
                    let _ = stream.set_ttl(record.metadata.hop_limit.into());
                }
            }
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(
                    TokioIo::new(stream),
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let (service, scope) = (Arc::clone(&service), Arc::clone(&scope));
                        async move { Ok::<_, Infallible>(service.handle(&scope, address, request).await) }
                    }),
                );
            let _ = tokio::time::timeout(Duration::from_secs(30), connection).await;
        });
    }
}

impl MetadataService {
    async fn handle(
        self: Arc<Self>,
        scope: &str,
        address: Ipv4Addr,
        request: Request<hyper::body::Incoming>,
    ) -> Response<Full<Bytes>> {
        // Options and data may change between requests of one connection: read them afresh.
        let (lookup, scope) = (Arc::clone(&self), scope.to_owned());
        let facts = tokio::task::spawn_blocking(move || lookup.facts(&scope, address)).await;
        let answer = match facts {
            Ok(Ok(Some(facts))) => {
                let now = chrono::Utc::now().timestamp().max(0) as u64;
                self.respond(&facts, request.method(), request.uri().path(), request.headers(), now)
            }
            Ok(Ok(None)) => Answer::status(StatusCode::NOT_FOUND),
            Ok(Err(error)) => {
                tracing::warn!(%error, "metadata lookup failed");
                Answer::status(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Err(_) => Answer::status(StatusCode::INTERNAL_SERVER_ERROR),
        };
        tracing::debug!(peer = %IpAddr::V4(address), path = %request.uri().path(), status = answer.status.as_u16(), "metadata");
        let mut response = Response::new(Full::new(Bytes::from(answer.body)));
        *response.status_mut() = answer.status;
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
        for (name, value) in answer.headers {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::MetadataOptions;

    fn facts() -> Facts {
        let mut record: InstanceRecord = serde_json::from_value(serde_json::json!({
            "id": "i-0123456789abcdef0", "account": "111122223333", "reservation_id": "r-1", "image_id": "ami-1",
            "instance_type": "t3.micro", "vcpus": 2, "memory_mib": 1024, "zone": "us-east-1a", "host_id": "h",
            "domain_uuid": "ec2", "state": "running", "state_reason": null, "state_transition_reason": "",
            "force_stop": false, "booted": true, "launch_time_ms": 0, "terminated_ms": null, "ami_launch_index": 0,
            "key_name": "laptop", "user_data": STANDARD.encode("#cloud-config\nhostname: x\n"), "vpc_id": "vpc-1",
            "subnet_id": "subnet-1", "network_interface_id": "eni-1", "private_ip": "172.31.0.9",
            "mac": "52:54:00:aa:bb:cc", "security_group_ids": ["sg-1"], "client_token": null,
            "disable_api_termination": false, "disable_api_stop": false, "shutdown_behavior": "stop",
            "ebs_optimized": false, "monitoring": false, "dir": "/d", "root_disk_bytes": 0
        }))
        .unwrap();
        record.public_key = Some("ssh-rsa AAAA laptop".into());
        Facts {
            record,
            region: "us-east-1".into(),
            group_names: vec!["web".into()],
            subnet_cidr: "172.31.0.0/20".into(),
            vpc_cidr: "172.31.0.0/16".into(),
            volumes: vec![],
            tags: vec![],
        }
    }

    fn text(answer: Answer) -> String {
        assert_eq!(answer.status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer.body));
        String::from_utf8(answer.body).unwrap()
    }

    #[test]
    fn tree_as_ec2_lists_it() {
        let f = facts();
        assert!(text(answer(&f, "/")).ends_with("\nlatest"));
        assert_eq!(text(answer(&f, "/latest/")), "dynamic\nmeta-data\nuser-data");
        let top = text(answer(&f, "/latest/meta-data/"));
        for entry in
            ["ami-id", "block-device-mapping/", "instance-id", "local-ipv4", "network/", "placement/", "public-keys/"]
        {
            assert!(top.lines().any(|l| l == entry), "{entry} missing from {top}");
        }
        assert_eq!(text(answer(&f, "/latest/meta-data/instance-id")), "i-0123456789abcdef0");
        assert_eq!(text(answer(&f, "/2009-04-04/meta-data/instance-id")), "i-0123456789abcdef0", "dated versions");
        assert_eq!(text(answer(&f, "/latest/meta-data/local-hostname")), "ip-172-31-0-9.ec2.internal");
        assert!(!top.lines().any(|l| l == "public-keys"), "listed once, as a directory: {top}");
        assert_eq!(text(answer(&f, "/latest/meta-data/public-keys")), "0=laptop");
        assert_eq!(text(answer(&f, "/latest/meta-data/public-keys/0/")), "openssh-key");
        assert_eq!(text(answer(&f, "/latest/meta-data/public-keys/0/openssh-key")), "ssh-rsa AAAA laptop\n");
        assert_eq!(text(answer(&f, "/latest/meta-data/placement/availability-zone")), "us-east-1a");
        assert_eq!(text(answer(&f, "/latest/meta-data/security-groups")), "web");
        let iface = "/latest/meta-data/network/interfaces/macs/52:54:00:aa:bb:cc";
        assert_eq!(text(answer(&f, &format!("{iface}/subnet-ipv4-cidr-block"))), "172.31.0.0/20");
        assert_eq!(text(answer(&f, &format!("{iface}/local-ipv4s"))), "172.31.0.9");
        let mut secondary = facts();
        secondary.record.secondary_ips = vec!["172.31.0.10".into(), "172.31.0.11".into()];
        assert_eq!(text(answer(&secondary, &format!("{iface}/local-ipv4s"))), "172.31.0.9\n172.31.0.10\n172.31.0.11");
        assert_eq!(text(answer(&secondary, "/latest/meta-data/local-ipv4")), "172.31.0.9", "the primary alone");
        assert_eq!(text(answer(&f, "/latest/meta-data/network/interfaces/macs/")), "52:54:00:aa:bb:cc/");
        assert_eq!(text(answer(&f, "/latest/user-data")), "#cloud-config\nhostname: x\n");
        let document: serde_json::Value =
            serde_json::from_str(&text(answer(&f, "/latest/dynamic/instance-identity/document"))).unwrap();
        assert_eq!(document["instanceId"], "i-0123456789abcdef0");
        assert_eq!(document["accountId"], "111122223333");
        for missing in
            ["/latest/meta-data/nothing", "/latest/meta-data/tags/instance", "/bogus/meta-data/", "/latest/x"]
        {
            assert_eq!(answer(&f, missing).status, StatusCode::NOT_FOUND, "{missing}");
        }
        let mut bare = facts();
        bare.record.user_data = None;
        bare.record.key_name = None;
        assert_eq!(answer(&bare, "/latest/user-data").status, StatusCode::NOT_FOUND);
        assert_eq!(answer(&bare, "/latest/meta-data/public-keys/").status, StatusCode::NOT_FOUND);
        let mut tagged = facts();
        tagged.tags = vec![("Name".into(), "web-1".into()), ("a/b".into(), "skipped".into())];
        assert_eq!(text(answer(&tagged, "/latest/meta-data/tags/instance")), "Name");
        assert_eq!(text(answer(&tagged, "/latest/meta-data/tags/instance/Name")), "web-1");
    }

    #[test]
    fn tokens_are_bound_to_instance_and_time() {
        let backend = Arc::new(Backend::new(storage::Store::in_memory().unwrap(), Default::default()));
        let service = MetadataService::new(backend, "us-east-1".into());
        let token = service.issue_token("i-1", 1000);
        assert!(service.token_valid(&token, "i-1", 999));
        assert!(!service.token_valid(&token, "i-1", 1000), "expired");
        assert!(!service.token_valid(&token, "i-2", 999), "another instance's");
        let (payload, signature) = token.split_once('.').unwrap();
        let forged = format!("{}.{signature}", URL_SAFE_NO_PAD.encode("i-1:99999999"));
        assert!(!service.token_valid(&forged, "i-1", 999), "a changed payload");
        assert!(!service.token_valid(payload, "i-1", 999) && !service.token_valid("", "i-1", 0));
        let other = MetadataService::new(
            Arc::new(Backend::new(storage::Store::in_memory().unwrap(), Default::default())),
            "us-east-1".into(),
        );
        assert!(!other.token_valid(&token, "i-1", 999), "another key's");
    }

    #[test]
    fn options_decide_who_is_served() {
        let backend = Arc::new(Backend::new(storage::Store::in_memory().unwrap(), Default::default()));
        let service = MetadataService::new(backend, "us-east-1".into());
        let mut f = facts();
        let get = |f: &Facts, headers: &HeaderMap| {
            service.respond(f, &Method::GET, "/latest/meta-data/instance-id", headers, 100)
        };
        let none = HeaderMap::new();
        assert_eq!(get(&f, &none).status, StatusCode::OK, "IMDSv1 while tokens are optional");

        let put = |f: &Facts, ttl: &str, forwarded: bool| {
            let mut headers = HeaderMap::new();
            headers.insert(TOKEN_TTL_HEADER, ttl.parse().unwrap());
            if forwarded {
                headers.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
            }
            service.respond(f, &Method::PUT, "/latest/api/token", &headers, 100)
        };
        for bad in ["0", "21601", "soon"] {
            assert_eq!(put(&f, bad, false).status, StatusCode::BAD_REQUEST, "ttl {bad}");
        }
        assert_eq!(put(&f, "60", true).status, StatusCode::FORBIDDEN);
        let issued = put(&f, "60", false);
        assert_eq!(issued.headers, vec![(TOKEN_TTL_HEADER, "60".to_owned())], "the lifetime is echoed");
        let token = String::from_utf8(issued.body).unwrap();
        let mut with_token = HeaderMap::new();
        with_token.insert(TOKEN_HEADER, token.parse().unwrap());

        f.record.metadata = MetadataOptions { tokens_required: true, ..MetadataOptions::default() };
        assert_eq!(get(&f, &none).status, StatusCode::UNAUTHORIZED, "IMDSv1 refused once tokens are required");
        assert_eq!(get(&f, &with_token).status, StatusCode::OK);
        let mut bad_token = HeaderMap::new();
        bad_token.insert(TOKEN_HEADER, "nonsense".parse().unwrap());
        assert_eq!(get(&f, &bad_token).status, StatusCode::UNAUTHORIZED);
        let mut other = facts();
        other.record.id = "i-other".into();
        assert_eq!(get(&other, &with_token).status, StatusCode::UNAUTHORIZED, "a token of another instance");
        assert_eq!(
            service.respond(&f, &Method::GET, "/latest/meta-data/instance-id", &with_token, 161).status,
            StatusCode::UNAUTHORIZED,
            "expired"
        );

        f.record.metadata.endpoint_enabled = false;
        assert_eq!(get(&f, &with_token).status, StatusCode::FORBIDDEN);
        assert_eq!(put(&f, "60", false).status, StatusCode::FORBIDDEN);
    }
}
