//! Query decoding: form pairs → a tree of dotted segments → typed requests.
//!
//! `Filter.1.Value.2=x` becomes the path `Filter` / `1` / `Value` / `2` holding `x`. Generated
//! request types implement [`FromQuery`] by asking a [`StructDecoder`] for each member by its
//! wire name; whatever child a structure did not ask for is an `UnknownParameter`, at any depth.
//! Lists are numbered children (`Name.1`, `Name.2`, …), taken in numeric order.

use std::collections::BTreeMap;

use base64::Engine;
use chrono::{DateTime, Utc};

use crate::error::Ec2Error;

/// One node of the parameter tree: an optional value and named children.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Node {
    value: Option<String>,
    children: BTreeMap<String, Node>,
}

/// The longest parameter name accepted, in bytes; EC2's longest names are a fraction of it.
pub const MAX_PARAMETER_NAME_BYTES: usize = 256;

impl Node {
    /// Builds the tree from decoded form pairs. A repeated key keeps its last value.
    ///
    /// A name longer than [`MAX_PARAMETER_NAME_BYTES`] or with more segments than the deepest
    /// parameter of any served action ([`crate::MAX_PARAMETER_DEPTH`]) cannot be recognised:
    /// it is refused here, so the tree (and every walk over it) stays as shallow as the model.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, Ec2Error> {
        let mut root = Node::default();
        for (key, value) in pairs {
            if key.len() > MAX_PARAMETER_NAME_BYTES || key.split('.').nth(crate::MAX_PARAMETER_DEPTH).is_some() {
                return Err(Ec2Error::unknown_parameter(key));
            }
            let mut node = &mut root;
            for segment in key.split('.') {
                node = node.children.entry(segment.to_owned()).or_default();
            }
            node.value = Some(value.to_owned());
        }
        Ok(root)
    }

    /// Parses an `application/x-www-form-urlencoded` body or query string.
    pub fn parse_form(form: &[u8]) -> Result<Self, Ec2Error> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(form).into_owned().collect();
        Self::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.get(name)
    }

    /// Removes and returns a top-level child (the gateway takes `Action` and `Version` out).
    pub fn take(&mut self, name: &str) -> Option<Node> {
        self.children.remove(name)
    }

    fn is_empty(&self) -> bool {
        self.value.is_none() && self.children.is_empty()
    }

    /// The first parameter below this node, to name in an error.
    fn first_path(&self, path: &str) -> String {
        match self.children.iter().next() {
            Some((name, child)) if self.value.is_none() => child.first_path(&join(path, name)),
            _ => path.to_owned(),
        }
    }
}

/// `Filter` + `1` → `Filter.1`.
pub fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// A value decodable from a parameter node; `path` names the node in errors.
pub trait FromQuery: Sized {
    fn from_query(node: &Node, path: &str) -> Result<Self, Ec2Error>;
}

fn scalar<'a>(node: &'a Node, path: &str) -> Result<&'a str, Ec2Error> {
    if let Some((name, child)) = node.children.iter().next() {
        return Err(Ec2Error::unknown_parameter(&child.first_path(&join(path, name))));
    }
    node.value.as_deref().ok_or_else(|| Ec2Error::missing_parameter(path))
}

impl FromQuery for String {
    fn from_query(node: &Node, path: &str) -> Result<Self, Ec2Error> {
        scalar(node, path).map(str::to_owned)
    }
}

macro_rules! number_from_query {
    ($($ty:ty => $expected:literal),*) => {$(
        impl FromQuery for $ty {
            fn from_query(node: &Node, path: &str) -> Result<Self, Ec2Error> {
                let text = scalar(node, path)?;
                text.trim().parse().map_err(|_| {
                    Ec2Error::invalid_value(path, text, concat!("Expected: '", $expected, "'."))
                })
            }
        }
    )*};
}
number_from_query!(i32 => "Integer", i64 => "Long", f64 => "Double");

impl FromQuery for bool {
    fn from_query(node: &Node, path: &str) -> Result<Self, Ec2Error> {
        let text = scalar(node, path)?;
        match text {
            t if t.eq_ignore_ascii_case("true") => Ok(true),
            t if t.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(Ec2Error::invalid_value(path, text, "Expected: 'true' or 'false'.")),
        }
    }
}

/// Binary data, base64 on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl FromQuery for Blob {
    fn from_query(node: &Node, path: &str) -> Result<Self, Ec2Error> {
        let text = scalar(node, path)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map(Blob)
            .map_err(|_| Ec2Error::invalid_value(path, text, "Expected base64-encoded data."))
    }
}

/// Every timestamp is UTC.
pub type Timestamp = DateTime<Utc>;

impl FromQuery for Timestamp {
    fn from_query(node: &Node, path: &str) -> Result<Self, Ec2Error> {
        let text = scalar(node, path)?;
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| Ec2Error::invalid_value(path, text, "Expected an ISO 8601 timestamp."))
    }
}

impl<T: FromQuery> FromQuery for Vec<T> {
    fn from_query(node: &Node, path: &str) -> Result<Self, Ec2Error> {
        if node.value.is_some() {
            // `InstanceId=i-1` where `InstanceId.1=i-1` is meant.
            return Err(Ec2Error::unknown_parameter(path));
        }
        let mut numbered = Vec::with_capacity(node.children.len());
        for (name, child) in &node.children {
            match name.parse::<u32>() {
                Ok(index) if index > 0 && !name.starts_with('0') => numbered.push((index, name, child)),
                _ => return Err(Ec2Error::unknown_parameter(&child.first_path(&join(path, name)))),
            }
        }
        numbered.sort_by_key(|(index, _, _)| *index);
        numbered.into_iter().map(|(_, name, child)| T::from_query(child, &join(path, name))).collect()
    }
}

/// Decodes one structure: generated code asks for each member by wire name, then calls
/// [`StructDecoder::finish`] with every wire name the structure knows.
pub struct StructDecoder<'a> {
    node: &'a Node,
    path: &'a str,
}

impl<'a> StructDecoder<'a> {
    pub fn new(node: &'a Node, path: &'a str) -> Result<Self, Ec2Error> {
        if node.value.is_some() && !path.is_empty() {
            return Err(Ec2Error::invalid_value(
                path,
                node.value.as_deref().unwrap_or_default(),
                "Expected a structure of sub-parameters.",
            ));
        }
        Ok(Self { node, path })
    }

    pub fn optional<T: FromQuery>(&self, name: &str) -> Result<Option<T>, Ec2Error> {
        match self.node.children.get(name) {
            Some(child) if !child.is_empty() => T::from_query(child, &join(self.path, name)).map(Some),
            _ => Ok(None),
        }
    }

    pub fn required<T: FromQuery>(&self, name: &str) -> Result<T, Ec2Error> {
        self.optional(name)?.ok_or_else(|| Ec2Error::missing_parameter(&join(self.path, name)))
    }

    /// An integer member whose model shape bounds it.
    pub fn in_range<T>(&self, name: &str, value: T, min: i64, max: i64) -> Result<T, Ec2Error>
    where
        T: Copy + Into<i64>,
    {
        let wide: i64 = value.into();
        if wide < min || wide > max {
            return Err(Ec2Error::invalid_value(
                &join(self.path, name),
                &wide.to_string(),
                &format!("Expected a value between {min} and {max}."),
            ));
        }
        Ok(value)
    }

    pub fn finish(self, known: &[&str]) -> Result<(), Ec2Error> {
        match self.node.children.iter().find(|(name, _)| !known.contains(&name.as_str())) {
            Some((name, child)) => Err(Ec2Error::unknown_parameter(&child.first_path(&join(self.path, name)))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(pairs: &[(&str, &str)]) -> Node {
        Node::parse(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn names_deeper_or_longer_than_the_model_are_refused_before_the_tree_is_built() {
        // 14,000 levels once overflowed the stack (dropping and walking the tree recursed).
        let deep = format!("Filter.1{}", ".a".repeat(14_000));
        let err = Node::parse([("Action", "DescribeRegions"), (deep.as_str(), "x")]).unwrap_err();
        assert_eq!(err.code(), "UnknownParameter");
        assert!(err.message().len() < 400, "the echoed name is cut short: {}", err.message().len());

        let deepest_allowed = ["a"; crate::MAX_PARAMETER_DEPTH].join(".");
        assert!(Node::parse([(deepest_allowed.as_str(), "x")]).is_ok());
        let one_deeper = format!("{deepest_allowed}.a");
        assert_eq!(Node::parse([(one_deeper.as_str(), "x")]).unwrap_err().code(), "UnknownParameter");

        let long = "A".repeat(MAX_PARAMETER_NAME_BYTES + 1);
        assert_eq!(Node::parse([(long.as_str(), "x")]).unwrap_err().code(), "UnknownParameter");
        let ok = "A".repeat(MAX_PARAMETER_NAME_BYTES);
        assert!(Node::parse([(ok.as_str(), "x")]).is_ok());
    }

    #[test]
    fn form_bodies_decode_percent_and_plus() {
        let node = Node::parse_form(b"Action=X&Filter.1.Value.1=a+b%2Fc%C3%BC").unwrap();
        let value = node.child("Filter").and_then(|f| f.child("1")).and_then(|f| f.child("Value"));
        let list: Vec<String> = FromQuery::from_query(value.unwrap(), "Filter.1.Value").unwrap();
        assert_eq!(list, ["a b/cü"]);
    }

    #[test]
    fn lists_come_in_numeric_order_with_gaps_allowed() {
        let node = tree(&[("Id.10", "ten"), ("Id.2", "two"), ("Id.1", "one")]);
        let ids: Vec<String> = FromQuery::from_query(node.child("Id").unwrap(), "Id").unwrap();
        assert_eq!(ids, ["one", "two", "ten"]);
    }

    #[test]
    fn list_members_must_be_positive_numbers() {
        for bad in ["Id.0", "Id.x", "Id.01"] {
            let node = tree(&[(bad, "v")]);
            let err = <Vec<String>>::from_query(node.child("Id").unwrap(), "Id").unwrap_err();
            assert_eq!(err.code(), "UnknownParameter", "{bad}");
            assert!(err.message().contains(bad), "{bad}: {}", err.message());
        }
        let flat = tree(&[("Id", "v")]);
        let err = <Vec<String>>::from_query(flat.child("Id").unwrap(), "Id").unwrap_err();
        assert_eq!(err.code(), "UnknownParameter");
    }

    #[test]
    fn scalars_reject_children_and_bad_numbers() {
        let node = tree(&[("MaxCount.1", "3")]);
        let err = i32::from_query(node.child("MaxCount").unwrap(), "MaxCount").unwrap_err();
        assert_eq!(err.code(), "UnknownParameter");
        assert!(err.message().contains("MaxCount.1"));

        let node = tree(&[("MaxCount", "three")]);
        let err = i32::from_query(node.child("MaxCount").unwrap(), "MaxCount").unwrap_err();
        assert_eq!(err.code(), "InvalidParameterValue");
        assert!(err.message().contains("MaxCount"));

        let node = tree(&[("DryRun", "yes")]);
        let err = bool::from_query(node.child("DryRun").unwrap(), "DryRun").unwrap_err();
        assert_eq!(err.code(), "InvalidParameterValue");
        let node = tree(&[("DryRun", "TRUE")]);
        assert!(bool::from_query(node.child("DryRun").unwrap(), "DryRun").unwrap());
    }

    #[test]
    fn struct_decoder_reports_missing_and_unknown_members_by_full_path() {
        let node = tree(&[("Filter.1.Name", "x"), ("Filter.1.Valu.1", "y")]);
        let filter = node.child("Filter").unwrap().child("1").unwrap();
        let d = StructDecoder::new(filter, "Filter.1").unwrap();
        let name: String = d.required("Name").unwrap();
        assert_eq!(name, "x");
        let missing = d.required::<String>("Other").unwrap_err();
        assert_eq!(missing.message(), "The request must contain the parameter Filter.1.Other");
        let unknown = d.finish(&["Name", "Value"]).unwrap_err();
        assert_eq!(unknown.code(), "UnknownParameter");
        assert_eq!(unknown.message(), "The parameter Filter.1.Valu.1 is not recognized");
    }

    #[test]
    fn blobs_and_timestamps() {
        let node = tree(&[("B", "aGVsbG8="), ("Bad", "**"), ("T", "2026-11-25T02:19:25Z")]);
        let blob = Blob::from_query(node.child("B").unwrap(), "B").unwrap();
        assert_eq!(blob.0, b"hello");
        assert_eq!(Blob::from_query(node.child("Bad").unwrap(), "Bad").unwrap_err().code(), "InvalidParameterValue");
        let t = Timestamp::from_query(node.child("T").unwrap(), "T").unwrap();
        assert_eq!(t.timestamp(), 1_795_573_165);
    }

    #[test]
    fn range_checks_name_the_member() {
        let node = tree(&[]);
        let d = StructDecoder::new(&node, "").unwrap();
        assert_eq!(d.in_range("MaxResults", 5i32, 5, 1000).unwrap(), 5);
        let err = d.in_range("MaxResults", 4i32, 5, 1000).unwrap_err();
        assert!(err.message().contains("MaxResults"));
    }
}
