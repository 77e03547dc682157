//! The canonical tree of an output → CBOR and XML bodies, guided by the output shape's
//! descriptor (JSON needs no guide: the tree is already JSON 1.0's form).
//!
//! The descriptor is what tells a timestamp (epoch seconds in the tree) from a double: CBOR
//! writes it as tag 1, XML as ISO 8601 with milliseconds.

use chrono::{DateTime, SecondsFormat};
use ciborium::Value as Cbor;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use serde_json::Value;

use crate::error::CwError;
use crate::shape::{Kind, OperationDesc, Shape};
use crate::XML_NAMESPACE;

// ---------------------------------------------------------------------------------------------
// CBOR

/// A CBOR map: the output's members, or an empty map when the operation has no output.
pub fn cbor_body(shape: Option<&Shape>, tree: Option<&Value>) -> Vec<u8> {
    let value = match (shape, tree) {
        (Some(shape), Some(tree)) => to_cbor(shape, tree),
        _ => Cbor::Map(Vec::new()),
    };
    cbor_bytes(&value)
}

/// A CBOR map of text keys and text values (the error body).
pub fn cbor_text_map(entries: &[(&str, &str)]) -> Vec<u8> {
    let map = entries.iter().map(|(k, v)| (Cbor::Text(k.to_string()), Cbor::Text(v.to_string()))).collect();
    cbor_bytes(&Cbor::Map(map))
}

fn cbor_bytes(value: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing plain values into a Vec cannot fail; an empty map is the fallback regardless.
    if ciborium::ser::into_writer(value, &mut out).is_err() {
        out = vec![0xa0];
    }
    out
}

fn to_cbor(shape: &Shape, value: &Value) -> Cbor {
    match (&shape.kind, value) {
        (Kind::Structure { members }, Value::Object(map)) => Cbor::Map(
            members
                .iter()
                .filter_map(|m| {
                    let v = map.get(m.name).filter(|v| !v.is_null())?;
                    Some((Cbor::Text(m.name.to_string()), to_cbor(m.shape, v)))
                })
                .collect(),
        ),
        (Kind::List { member }, Value::Array(items)) => Cbor::Array(items.iter().map(|v| to_cbor(member, v)).collect()),
        (Kind::Map { value: element, .. }, Value::Object(map)) => {
            Cbor::Map(map.iter().map(|(k, v)| (Cbor::Text(k.clone()), to_cbor(element, v))).collect())
        }
        // Whole seconds go as an integer (what botocore itself sends), others as a double.
        (Kind::Timestamp, Value::Number(n)) => {
            let secs = n.as_f64().unwrap_or(0.0);
            let inner = if secs.fract() == 0.0 && secs.abs() < 9.0e15 {
                Cbor::Integer((secs as i64).into())
            } else {
                Cbor::Float(secs)
            };
            Cbor::Tag(1, Box::new(inner))
        }
        (Kind::Double, Value::Number(n)) => Cbor::Float(n.as_f64().unwrap_or(0.0)),
        (Kind::Integer, Value::Number(n)) => match n.as_i64() {
            Some(i) => Cbor::Integer(i.into()),
            None => Cbor::Float(n.as_f64().unwrap_or(0.0)),
        },
        (_, other) => loose_cbor(other),
    }
}

/// A value whose shape the descriptor does not match (cannot come from a generated struct):
/// written as it is rather than dropped silently.
fn loose_cbor(value: &Value) -> Cbor {
    match value {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cbor::Integer(i.into()),
            None => Cbor::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Cbor::Text(s.clone()),
        Value::Array(items) => Cbor::Array(items.iter().map(loose_cbor).collect()),
        Value::Object(map) => Cbor::Map(map.iter().map(|(k, v)| (Cbor::Text(k.clone()), loose_cbor(v))).collect()),
    }
}

// ---------------------------------------------------------------------------------------------
// XML

/// Element names are the model's plain ASCII member names; text is escaped by quick-xml.
struct Xml {
    writer: Writer<Vec<u8>>,
}

impl Xml {
    fn new() -> Self {
        Xml { writer: Writer::new(Vec::with_capacity(1024)) }
    }

    // Writing into a Vec cannot fail, so the results of write_event are dropped.
    fn start(&mut self, name: &str) {
        let _ = self.writer.write_event(Event::Start(BytesStart::new(name)));
    }

    fn start_root(&mut self, name: &str) {
        let mut start = BytesStart::new(name);
        start.push_attribute(("xmlns", XML_NAMESPACE));
        let _ = self.writer.write_event(Event::Start(start));
    }

    fn end(&mut self, name: &str) {
        let _ = self.writer.write_event(Event::End(BytesEnd::new(name)));
    }

    /// Text as XML 1.0 can carry it: quick-xml escapes the markup characters; a carriage return
    /// is written as a character reference (a parser would turn a raw one into a newline), and
    /// characters XML 1.0 cannot hold at all become U+FFFD, so a stored label never makes a
    /// response unreadable.
    fn text(&mut self, text: &str) {
        for (i, piece) in text.split('\r').enumerate() {
            if i > 0 {
                let _ = self.writer.write_event(Event::Text(BytesText::from_escaped("&#13;")));
            }
            if piece.is_empty() {
                continue;
            }
            let clean: std::borrow::Cow<str> = if piece.chars().all(xml_char) {
                piece.into()
            } else {
                piece.chars().map(|c| if xml_char(c) { c } else { '\u{FFFD}' }).collect::<String>().into()
            };
            let _ = self.writer.write_event(Event::Text(BytesText::new(&clean)));
        }
    }

    fn text_element(&mut self, name: &str, text: &str) {
        self.start(name);
        self.text(text);
        self.end(name);
    }

    fn finish(self) -> Vec<u8> {
        self.writer.into_inner()
    }
}

fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// `<OpResponse xmlns=…><OpResult>…</OpResult><ResponseMetadata>…</ResponseMetadata></OpResponse>`;
/// no result element when the operation has no output.
pub fn xml_response(desc: &OperationDesc, tree: Option<&Value>, request_id: &str) -> Vec<u8> {
    let mut xml = Xml::new();
    let root = format!("{}Response", desc.name);
    xml.start_root(&root);
    if let (Some(shape), Some(tree)) = (desc.output, tree) {
        let wrapper = desc.result_wrapper.map(str::to_string).unwrap_or_else(|| format!("{}Result", desc.name));
        xml.start(&wrapper);
        write_members(&mut xml, shape, tree);
        xml.end(&wrapper);
    }
    xml.start("ResponseMetadata");
    xml.text_element("RequestId", request_id);
    xml.end("ResponseMetadata");
    xml.end(&root);
    xml.finish()
}

/// `<ErrorResponse xmlns=…><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`.
pub fn xml_error(error: &CwError, request_id: &str) -> Vec<u8> {
    let mut xml = Xml::new();
    xml.start_root("ErrorResponse");
    xml.start("Error");
    xml.text_element("Type", error.code.fault().as_str());
    xml.text_element("Code", error.code.as_str());
    xml.text_element("Message", &error.message);
    xml.end("Error");
    xml.text_element("RequestId", request_id);
    xml.end("ErrorResponse");
    xml.finish()
}

/// A structure's members in the model's order (the model's `xmlOrder` is that order too).
fn write_members(xml: &mut Xml, shape: &Shape, value: &Value) {
    let (Kind::Structure { members }, Value::Object(map)) = (&shape.kind, value) else {
        return;
    };
    for m in members.iter() {
        if let Some(v) = map.get(m.name).filter(|v| !v.is_null()) {
            write_value(xml, m.name, m.shape, v);
        }
    }
}

fn write_value(xml: &mut Xml, name: &str, shape: &Shape, value: &Value) {
    match (&shape.kind, value) {
        (Kind::Structure { .. }, _) => {
            xml.start(name);
            write_members(xml, shape, value);
            xml.end(name);
        }
        (Kind::List { member }, Value::Array(items)) => {
            xml.start(name);
            for v in items {
                write_value(xml, "member", member, v);
            }
            xml.end(name);
        }
        (Kind::Map { key, value: element }, Value::Object(map)) => {
            xml.start(name);
            for (k, v) in map {
                xml.start("entry");
                write_value(xml, "key", key, &Value::String(k.clone()));
                write_value(xml, "value", element, v);
                xml.end("entry");
            }
            xml.end(name);
        }
        (Kind::Timestamp, Value::Number(n)) => xml.text_element(name, &iso8601(n.as_f64().unwrap_or(0.0))),
        (Kind::Double, Value::Number(n)) => xml.text_element(name, &double(n.as_f64().unwrap_or(0.0))),
        (_, Value::String(s)) => xml.text_element(name, s),
        (_, Value::Bool(b)) => xml.text_element(name, if *b { "true" } else { "false" }),
        (_, Value::Number(n)) => xml.text_element(name, &n.to_string()),
        _ => {}
    }
}

/// Epoch seconds as `2024-05-01T12:00:00.250Z` (UTC, milliseconds). Out of chrono's range the
/// number itself is written; botocore's timestamp parser reads epoch numbers too.
pub fn iso8601(secs: f64) -> String {
    let millis = (secs * 1000.0).round();
    if millis.abs() < 8.0e15 {
        if let Some(t) = DateTime::from_timestamp_millis(millis as i64) {
            return t.to_rfc3339_opts(SecondsFormat::Millis, true);
        }
    }
    double(secs)
}

/// The shortest text that parses back to the same double (Rust's `Debug` for f64 is
/// round-trip exact and uses an exponent for very large and very small values, which Python's
/// `float()` reads).
pub fn double(f: f64) -> String {
    format!("{f:?}")
}
