//! Request bodies → the canonical tree, guided by the input shape's descriptor.
//!
//! The canonical tree is a `serde_json::Value` holding exactly the members the model knows,
//! with the model's types: strings, `i64` integers, finite `f64` doubles, booleans, timestamps
//! as epoch seconds, lists and string-keyed maps. Unknown members are dropped (clients may be
//! newer than the model); nulls count as absent (Smithy's rule, and botocore's parsers do the
//! same). Serde then maps the tree onto the generated structs.
//!
//! CBOR and JSON first become a loose JSON tree (CBOR's tag-1 timestamps become numbers) and
//! then share [`normalize`]; the query form is read into a tree of dotted names and converted by
//! [`from_query`]. Both bound what hostile input can make them do: nesting depth, list lengths
//! and the number of query parameters all end in an error, never a panic or a runaway stack.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime};
use ciborium::Value as Cbor;
use serde_json::{Map, Number, Value};

use crate::error::CwError;
use crate::shape::{Kind, Shape};
use crate::validate::{item, member};

/// The most members a list (or entries a map) may have in a request.
pub const MAX_LIST_MEMBERS: usize = 1000;
/// The most parameters a query body may have.
pub const MAX_QUERY_PARAMS: usize = 100_000;
/// The deepest a CBOR body may nest, and the most dot-separated parts a query name may have.
/// CloudWatch's inputs nest at most five deep; the slack is for members newer than the model.
pub const MAX_DEPTH: usize = 32;

// ---------------------------------------------------------------------------------------------
// CBOR and JSON

/// A CBOR body as a loose JSON tree. An empty body is an empty input.
pub fn cbor_to_loose(body: &[u8]) -> Result<Value, CwError> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let mut reader = body;
    let value: Cbor = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_DEPTH)
        .map_err(|e| CwError::serialization(format!("The request body is not valid CBOR: {}", cbor_error(&e))))?;
    if !reader.is_empty() {
        return Err(CwError::serialization("The request body has bytes after its CBOR data item."));
    }
    cbor_value(value)
}

fn cbor_error<T: std::fmt::Debug>(e: &ciborium::de::Error<T>) -> String {
    match e {
        ciborium::de::Error::Io(_) => "it ends early".to_string(),
        ciborium::de::Error::Syntax(at) => format!("syntax error at byte {at}"),
        ciborium::de::Error::Semantic(_, msg) => msg.clone(),
        ciborium::de::Error::RecursionLimitExceeded => "it nests too deep".to_string(),
    }
}

/// One CBOR item as loose JSON. Depth is bounded by the reader's recursion limit. Non-finite
/// floats become the strings botocore's JSON serializer would send ("NaN", "Infinity"), so that
/// [`normalize`] refuses them naming the member.
fn cbor_value(value: Cbor) -> Result<Value, CwError> {
    Ok(match value {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Text(s) => Value::String(s),
        Cbor::Integer(i) => {
            let i = i128::from(i);
            if let Ok(i) = i64::try_from(i) {
                Value::Number(i.into())
            } else if let Ok(u) = u64::try_from(i) {
                Value::Number(u.into())
            } else {
                return Err(CwError::serialization("The request body has an integer out of range."));
            }
        }
        Cbor::Float(f) => float(f),
        // Tag 1 is an epoch-seconds timestamp; the shape says where one belongs.
        Cbor::Tag(1, inner) => match *inner {
            Cbor::Integer(_) | Cbor::Float(_) => cbor_value(*inner)?,
            _ => return Err(CwError::serialization("The request body has a timestamp (tag 1) that is not a number.")),
        },
        Cbor::Tag(tag, _) => {
            return Err(CwError::serialization(format!("The request body has CBOR tag {tag}, which is not supported.")))
        }
        Cbor::Bytes(_) => {
            return Err(CwError::serialization("The request body has a byte string; CloudWatch's inputs have none."))
        }
        Cbor::Array(items) => Value::Array(items.into_iter().map(cbor_value).collect::<Result<_, _>>()?),
        Cbor::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let Cbor::Text(k) = k else {
                    return Err(CwError::serialization("The request body has a map key that is not a text string."));
                };
                map.insert(k, cbor_value(v)?);
            }
            Value::Object(map)
        }
        _ => return Err(CwError::serialization("The request body has a CBOR item of an unsupported kind.")),
    })
}

fn float(f: f64) -> Value {
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("NaN".into()),
        None if f > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

/// A JSON body as a loose tree (serde_json bounds nesting at 128). An empty body is an empty
/// input.
pub fn json_to_loose(body: &[u8]) -> Result<Value, CwError> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(body).map_err(|e| CwError::serialization(format!("The request body is not valid JSON: {e}")))
}

/// A loose tree as the canonical tree of `shape`. `None` when the value is null (absent).
pub fn normalize(shape: &Shape, value: Value, path: &str) -> Result<Option<Value>, CwError> {
    if value.is_null() {
        return Ok(None);
    }
    let wrong = |what: &str| {
        let shown =
            if path.is_empty() { "The request body".to_string() } else { format!("The value for parameter {path}") };
        Err(CwError::invalid_value(format!("{shown} must be {what}.")))
    };
    let done = match (&shape.kind, value) {
        (Kind::String, Value::String(s)) => Value::String(s),
        (Kind::String, _) => return wrong("a string"),
        (Kind::Boolean, Value::Bool(b)) => Value::Bool(b),
        (Kind::Boolean, _) => return wrong("a boolean"),
        (Kind::Integer, Value::Number(n)) => match integral(&n) {
            Some(i) => Value::Number(i.into()),
            None => return wrong("an integer"),
        },
        (Kind::Integer, _) => return wrong("an integer"),
        (Kind::Double, Value::Number(n)) => Value::Number(finite(&n, path)?),
        (Kind::Double, Value::String(s)) if is_non_finite(&s) => return Err(non_finite(path, &s)),
        (Kind::Double, _) => return wrong("a number"),
        (Kind::Timestamp, Value::Number(n)) => Value::Number(finite(&n, path)?),
        (Kind::Timestamp, Value::String(s)) => match parse_timestamp(&s) {
            Some(t) => Value::Number(finite_f64(t, path)?),
            None => return wrong("a timestamp"),
        },
        (Kind::Timestamp, _) => return wrong("a timestamp"),
        (Kind::Structure { members }, Value::Object(mut map)) => {
            let mut out = Map::new();
            for m in members.iter() {
                if let Some(v) = map.remove(m.name) {
                    if let Some(v) = normalize(m.shape, v, &member(path, m.name))? {
                        out.insert(m.name.to_string(), v);
                    }
                }
            }
            Value::Object(out)
        }
        (Kind::Structure { .. }, _) => return wrong("a structure"),
        (Kind::List { member: element }, Value::Array(items)) => {
            too_many(items.len(), path)?;
            let mut out = Vec::with_capacity(items.len());
            for (i, v) in items.into_iter().enumerate() {
                let p = item(path, i);
                match normalize(element, v, &p)? {
                    Some(v) => out.push(v),
                    None => return Err(CwError::invalid_value(format!("The parameter {p} must not be null."))),
                }
            }
            Value::Array(out)
        }
        (Kind::List { .. }, _) => return wrong("a list"),
        // Keys are strings on every wire; their constraints are the generated validation's.
        (Kind::Map { value: element, .. }, Value::Object(map)) => {
            too_many(map.len(), path)?;
            let mut out = Map::new();
            for (k, v) in map {
                if let Some(v) = normalize(element, v, &member(path, &k))? {
                    out.insert(k, v);
                }
            }
            Value::Object(out)
        }
        (Kind::Map { .. }, _) => return wrong("a map"),
    };
    Ok(Some(done))
}

fn integral(n: &Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    // 5.0 for an integer member is the same number; accept it, as the SDKs' own parsers do.
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
}

fn finite(n: &Number, path: &str) -> Result<Number, CwError> {
    finite_f64(n.as_f64().unwrap_or(f64::NAN), path)
}

fn finite_f64(f: f64, path: &str) -> Result<Number, CwError> {
    Number::from_f64(f).ok_or_else(|| non_finite(path, &f.to_string()))
}

fn is_non_finite(s: &str) -> bool {
    matches!(s, "NaN" | "Infinity" | "-Infinity")
}

fn non_finite(path: &str, shown: &str) -> CwError {
    CwError::invalid_value(format!(
        "The value {shown} for parameter {path} is not valid: CloudWatch does not accept NaN or infinite values."
    ))
}

fn too_many(len: usize, path: &str) -> Result<(), CwError> {
    if len > MAX_LIST_MEMBERS {
        return Err(CwError::invalid_value(format!(
            "The collection {path} has {len} members; at most {MAX_LIST_MEMBERS} are accepted."
        )));
    }
    Ok(())
}

/// An ISO 8601 date-time (`2024-05-01T12:00:00Z`, fractional seconds and offsets allowed; no
/// zone means UTC) or a number of epoch seconds, as epoch seconds.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9);
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.fZ"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            let t = t.and_utc();
            return Some(t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9);
        }
    }
    let looks_numeric = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
    if looks_numeric {
        return s.parse::<f64>().ok().filter(|f| f.is_finite());
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Query

/// A form body: its parameters, each name split at its dots.
pub struct Form {
    /// Action and Version, kept out of the member tree.
    pub action: Option<String>,
    pub version: Option<String>,
    root: Node,
}

/// One dotted segment: the value given for the name up to here, and the names below it.
#[derive(Default)]
struct Node {
    value: Option<String>,
    children: BTreeMap<String, Node>,
}

impl Form {
    /// Reads `a=b&c.d=e`: `+` is a space, `%XX` a byte, and the decoded bytes must be UTF-8
    /// (a lossy decoder would quietly store U+FFFD in a metric name).
    pub fn parse(body: &[u8]) -> Result<Form, CwError> {
        let mut form = Form { action: None, version: None, root: Node::default() };
        let mut count = 0usize;
        for pair in body.split(|&b| b == b'&') {
            if pair.is_empty() {
                continue;
            }
            count += 1;
            if count > MAX_QUERY_PARAMS {
                return Err(CwError::malformed_query(format!(
                    "The request has more than {MAX_QUERY_PARAMS} parameters."
                )));
            }
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let name = percent_decode(name)?;
            let value = percent_decode(value)?;
            match name.as_str() {
                "Action" => form.action = Some(value),
                "Version" => form.version = Some(value),
                _ => form.insert(&name, value)?,
            }
        }
        Ok(form)
    }

    fn insert(&mut self, name: &str, value: String) -> Result<(), CwError> {
        if name.split('.').count() > MAX_DEPTH {
            return Err(CwError::malformed_query(format!("The parameter name {name} has too many parts.")));
        }
        let mut node = &mut self.root;
        for part in name.split('.') {
            node = node.children.entry(part.to_string()).or_default();
        }
        // A repeated name: the last one wins, as in most form readers.
        node.value = Some(value);
        Ok(())
    }

    /// The canonical tree of the input `shape` (a structure).
    pub fn to_tree(&self, shape: &Shape) -> Result<Value, CwError> {
        Ok(from_query(shape, &self.root, "")?.unwrap_or_else(|| Value::Object(Map::new())))
    }
}

fn percent_decode(raw: &[u8]) -> Result<String, CwError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                let (Some(hi), Some(lo)) =
                    (raw.get(i + 1).copied().and_then(hex), raw.get(i + 2).copied().and_then(hex))
                else {
                    return Err(CwError::malformed_query("The request has a malformed percent escape."));
                };
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| CwError::malformed_query("The request's parameters are not valid UTF-8."))
}

/// The canonical tree of `shape` from the form node at `path`; `None` when nothing was given.
fn from_query(shape: &Shape, node: &Node, path: &str) -> Result<Option<Value>, CwError> {
    let wrong = |what: &str| {
        Err(CwError::invalid_value(match node.value.as_deref() {
            Some(value) => format!("The value {value} for parameter {path} is not valid: it must be {what}."),
            None => format!("The parameter {path} must be {what}."),
        }))
    };
    let scalar = node.value.as_deref();
    let done = match &shape.kind {
        Kind::String => match scalar {
            Some(s) => Value::String(s.to_string()),
            None => return wrong("a string"),
        },
        Kind::Boolean => match scalar.map(str::to_ascii_lowercase).as_deref() {
            Some("true") => Value::Bool(true),
            Some("false") => Value::Bool(false),
            _ => return wrong("true or false"),
        },
        Kind::Integer => match scalar.and_then(|s| s.trim().parse::<i64>().ok()) {
            Some(i) => Value::Number(i.into()),
            None => return wrong("an integer"),
        },
        Kind::Double => match scalar.map(str::trim) {
            Some(s) if is_non_finite(s) || s.eq_ignore_ascii_case("nan") || s.to_ascii_lowercase().contains("inf") => {
                return Err(non_finite(path, s))
            }
            Some(s) => match s.parse::<f64>() {
                Ok(f) => Value::Number(finite_f64(f, path)?),
                Err(_) => return wrong("a number"),
            },
            None => return wrong("a number"),
        },
        Kind::Timestamp => match scalar.and_then(parse_timestamp) {
            Some(t) => Value::Number(finite_f64(t, path)?),
            None => return wrong("an ISO 8601 timestamp"),
        },
        Kind::Structure { members } => {
            if node.children.is_empty() && scalar.is_some_and(|s| !s.is_empty()) {
                return wrong("a structure");
            }
            let mut out = Map::new();
            for m in members.iter() {
                if let Some(child) = node.children.get(m.name) {
                    if let Some(v) = from_query(m.shape, child, &member(path, m.name))? {
                        out.insert(m.name.to_string(), v);
                    }
                }
            }
            Value::Object(out)
        }
        Kind::List { member: element } => {
            let items = indexed(node, "member", path, &wrong)?;
            let mut out = Vec::with_capacity(items.len());
            for (n, child) in items {
                let p = format!("{path}.member.{n}");
                match from_query(element, child, &p)? {
                    Some(v) => out.push(v),
                    None => return Err(CwError::missing(&p)),
                }
            }
            Value::Array(out)
        }
        Kind::Map { key, value: element } => {
            let entries = indexed(node, "entry", path, &wrong)?;
            let mut out = Map::new();
            for (n, child) in entries {
                let p = format!("{path}.entry.{n}");
                let k = match child.children.get("key") {
                    Some(k) => from_query(key, k, &format!("{p}.key"))?,
                    None => None,
                };
                let Some(Value::String(k)) = k else {
                    return Err(CwError::missing(&format!("{p}.key")));
                };
                let v = match child.children.get("value") {
                    Some(v) => from_query(element, v, &format!("{p}.value"))?,
                    None => None,
                };
                let Some(v) = v else {
                    return Err(CwError::missing(&format!("{p}.value")));
                };
                out.insert(k, v);
            }
            Value::Object(out)
        }
    };
    Ok(Some(done))
}

/// The `X.member.N` (or `X.entry.N`) children of a list or map node, in index order: indexes
/// are 1-based, may come in any order, and gaps close up. `X=` alone is the empty collection
/// (botocore sends that for an empty list).
fn indexed<'a>(
    node: &'a Node,
    label: &str,
    path: &str,
    wrong: &dyn Fn(&str) -> Result<Option<Value>, CwError>,
) -> Result<Vec<(u64, &'a Node)>, CwError> {
    let Some(holder) = node.children.get(label) else {
        if node.children.is_empty() && node.value.as_deref().is_some_and(|v| !v.is_empty()) {
            wrong(&format!("given as {path}.{label}.N"))?;
        }
        return Ok(Vec::new());
    };
    too_many(holder.children.len(), path)?;
    let mut items = Vec::with_capacity(holder.children.len());
    for (index, child) in &holder.children {
        let n = index.parse::<u64>().ok().filter(|&n| n >= 1 && !index.starts_with('+')).ok_or_else(|| {
            CwError::malformed_query(format!(
                "{path}.{label}.{index} is not a valid index; indexes are numbers from 1."
            ))
        })?;
        items.push((n, child));
    }
    items.sort_by_key(|&(n, _)| n);
    if items.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(CwError::malformed_query(format!("{path}.{label} has an index given twice.")));
    }
    Ok(items)
}
