//! CloudWatch's wire protocols, without I/O.
//!
//! CloudWatch speaks three protocols on one endpoint, and this crate serves all of them with
//! one set of typed shapes (generated from botocore's model into [`generated`]):
//! - Smithy RPC v2 CBOR (`POST /service/GraniteServiceVersion20100801/operation/<Op>`), which
//!   the model lists first and newer SDKs choose;
//! - JSON 1.0 (`X-Amz-Target: GraniteServiceVersion20100801.<Op>`), which botocore 1.43 (boto3,
//!   the aws cli) chooses: it ranks the protocols it speaks with JSON before CBOR;
//! - the query protocol (a form with `Action` and `Version=2010-08-01`), which older SDKs use.
//!
//! A request flows through the crate in three steps:
//! 1. [`detect`] tells CBOR and JSON requests by path and header. The query protocol has no such
//!    mark: the caller recognises it (SigV4 scope service `monitoring`, or a form `Version`).
//! 2. [`decode`] turns the body into the canonical tree (a `serde_json::Value` with the model's
//!    members and types, timestamps as epoch seconds) guided by the input shape's descriptor,
//!    maps the tree onto the typed input with serde, and checks the model's constraints. Every
//!    failure is a [`CwError`] naming the member by its query-style path.
//! 3. The caller's handler answers with an [`Output`] (or a [`CwError`]); [`encode`] and
//!    [`encode_error`] write it back in the request's protocol.
//!
//! CloudWatch is `awsQueryCompatible`: CBOR and JSON error bodies carry the error shape in
//! `__type`, and the `x-amzn-query-error: <Code>;<Sender|Receiver>` header carries the query
//! error code, which botocore reports as `Error.Code` (so a client sees `InvalidParameterValue`
//! whichever protocol it speaks).

pub mod decode;
pub mod encode;
pub mod error;
pub mod generated;
pub mod shape;
pub mod validate;

pub use error::{CwError, ErrorCode, Fault};
pub use generated::*;
pub use shape::{Kind, Member, OperationDesc, Shape};

/// The API version every query request names.
pub const API_VERSION: &str = "2010-08-01";
/// The XML namespace of every query response.
pub const XML_NAMESPACE: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";
/// The service name in CBOR paths and JSON targets.
pub const TARGET_PREFIX: &str = "GraniteServiceVersion20100801";
/// The Smithy namespace of the error shapes in `__type`.
pub const ERROR_NAMESPACE: &str = "com.amazonaws.cloudwatch";
/// The SigV4 signing name (and credential-scope service) of CloudWatch.
pub const SIGNING_NAME: &str = "monitoring";

const CBOR_PATH_PREFIX: &str = "/service/GraniteServiceVersion20100801/operation/";

/// The three wire protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Smithy RPC v2 CBOR.
    Cbor,
    /// AWS JSON 1.0.
    Json,
    /// The AWS query protocol (form requests, XML responses).
    Query,
}

/// An encoded response: status, headers and body, for the caller to send as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The protocol of a CBOR or JSON request, with the operation its path or target names.
/// `None` for anything else (a query request, or not CloudWatch at all).
pub fn detect(method: &str, path: &str, headers: &http::HeaderMap) -> Option<(Protocol, Option<String>)> {
    if method.eq_ignore_ascii_case("POST") {
        if let Some(op) = path.strip_prefix(CBOR_PATH_PREFIX) {
            let op = op.split(['?', '#']).next().unwrap_or_default();
            return Some((Protocol::Cbor, (!op.is_empty()).then(|| op.to_string())));
        }
    }
    let target = headers.get("x-amz-target")?.to_str().ok()?;
    let op = target.strip_prefix(TARGET_PREFIX)?.strip_prefix('.')?;
    Some((Protocol::Json, (!op.is_empty()).then(|| op.to_string())))
}

/// A request body as the typed input of its operation.
///
/// For CBOR and JSON `operation` is the one [`detect`] found (a missing one is `InvalidAction`).
/// For the query protocol the form's `Action` names it (`operation`, if given, is used when the
/// form has none) and `Version` must be 2010-08-01. The body must be the whole request body
/// (gzip already undone, size already bounded by the caller); for a query GET, pass the URL's
/// query string.
pub fn decode(protocol: Protocol, operation: Option<&str>, body: &[u8]) -> Result<Operation, CwError> {
    match protocol {
        Protocol::Cbor | Protocol::Json => {
            let name = operation.unwrap_or_default();
            let desc = OperationDesc::find(name).ok_or_else(|| CwError::invalid_action(name))?;
            let loose =
                if protocol == Protocol::Cbor { decode::cbor_to_loose(body)? } else { decode::json_to_loose(body)? };
            if !loose.is_object() {
                return Err(CwError::serialization("The request body must be a map of the operation's members."));
            }
            let tree = decode::normalize(desc.input, loose, "")?.unwrap_or_default();
            Operation::from_tree(desc, tree)
        }
        Protocol::Query => {
            let form = decode::Form::parse(body)?;
            let name = form.action.as_deref().or(operation).unwrap_or_default();
            if name.is_empty() {
                return Err(CwError::missing("Action"));
            }
            let version = form.version.as_deref().ok_or_else(|| CwError::missing("Version"))?;
            if version != API_VERSION {
                return Err(CwError::invalid_action_for_version(name, version));
            }
            let desc = OperationDesc::find(name).ok_or_else(|| CwError::invalid_action(name))?;
            let tree = form.to_tree(desc.input)?;
            Operation::from_tree(desc, tree)
        }
    }
}

/// An operation's output in the request's protocol.
pub fn encode(protocol: Protocol, output: &Output, request_id: &str) -> Reply {
    let desc = OperationDesc::find(output.name());
    let tree = output.to_tree();
    let shape = desc.and_then(|d| d.output);
    let (content_type, body) = match protocol {
        Protocol::Cbor => (CBOR_CONTENT_TYPE, encode::cbor_body(shape, tree.as_ref())),
        Protocol::Json => {
            let tree = tree.unwrap_or_else(|| serde_json::Value::Object(Default::default()));
            (JSON_CONTENT_TYPE, serde_json::to_vec(&tree).unwrap_or_else(|_| b"{}".to_vec()))
        }
        Protocol::Query => {
            let body = match desc {
                Some(desc) => encode::xml_response(desc, tree.as_ref(), request_id),
                None => encode::xml_error(&CwError::internal(), request_id),
            };
            (XML_CONTENT_TYPE, body)
        }
    };
    Reply { status: 200, headers: headers(protocol, content_type, request_id), body }
}

/// An error in the request's protocol (see the crate docs for the query-compatible header).
pub fn encode_error(protocol: Protocol, error: &CwError, request_id: &str) -> Reply {
    let code = error.code;
    let (content_type, body) = match protocol {
        Protocol::Cbor | Protocol::Json => {
            let type_name = format!("{ERROR_NAMESPACE}#{}", code.shape_name());
            // The model's InternalServiceFault spells its member `Message`; the others `message`.
            // botocore reads either for Error.Message, but the modeled parse wants the model's.
            let message_key = if code == ErrorCode::InternalServiceError { "Message" } else { "message" };
            let entries = [("__type", type_name.as_str()), (message_key, error.message.as_str())];
            if protocol == Protocol::Cbor {
                (CBOR_CONTENT_TYPE, encode::cbor_text_map(&entries))
            } else {
                let map: serde_json::Map<String, serde_json::Value> =
                    entries.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect();
                (JSON_CONTENT_TYPE, serde_json::to_vec(&map).unwrap_or_else(|_| b"{}".to_vec()))
            }
        }
        Protocol::Query => (XML_CONTENT_TYPE, encode::xml_error(error, request_id)),
    };
    let mut headers = headers(protocol, content_type, request_id);
    if protocol != Protocol::Query {
        headers.push(("x-amzn-query-error", format!("{};{}", code.as_str(), code.fault().as_str())));
    }
    Reply { status: code.status(), headers, body }
}

const CBOR_CONTENT_TYPE: &str = "application/cbor";
const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.0";
const XML_CONTENT_TYPE: &str = "text/xml";

fn headers(protocol: Protocol, content_type: &str, request_id: &str) -> Vec<(&'static str, String)> {
    let mut headers = vec![("Content-Type", content_type.to_string()), ("x-amzn-RequestId", request_id.to_string())];
    if protocol == Protocol::Cbor {
        headers.push(("smithy-protocol", "rpc-v2-cbor".to_string()));
    }
    headers
}
