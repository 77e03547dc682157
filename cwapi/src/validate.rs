//! The checks the generated `Validate` impls call: the model's constraints (required members,
//! lengths, enum values, minimums), each failing with the member's query-style path
//! (`MetricDataQueries.member.2.Id`) whatever protocol the request came in, because that is the
//! name CloudWatch's messages use.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::CwError;
use crate::shape::Shape;

/// The model's constraints on a typed value; `path` is the value's own query-style path (empty
/// for an operation's input).
pub trait Validate {
    fn validate(&self, path: &str) -> Result<(), CwError>;
}

/// The path of `name` inside the structure at `path`.
pub fn member(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// The path of the list element at 0-based `index`.
pub fn item(path: &str, index: usize) -> String {
    format!("{path}.member.{}", index + 1)
}

/// The path of the map entry at 0-based `index` (in key order).
pub fn map_entry(path: &str, index: usize) -> String {
    format!("{path}.entry.{}", index + 1)
}

/// The path of an entry's `key` or `value`.
pub fn entry(path: &str, part: &str) -> String {
    format!("{path}.{part}")
}

pub fn required(present: bool, path: &str, name: &str) -> Result<(), CwError> {
    if present {
        Ok(())
    } else {
        Err(CwError::missing(&member(path, name)))
    }
}

/// Length (in characters, as Smithy counts them) and enum membership.
pub fn string(value: &str, shape: &Shape, path: &str) -> Result<(), CwError> {
    if !shape.enum_values.is_empty() && !shape.enum_values.contains(&value) {
        return Err(CwError::invalid_value(format!(
            "The value {value} for parameter {path} is not valid. Valid values: {}.",
            shape.enum_values.join(", ")
        )));
    }
    if shape.min.is_some() || shape.max.is_some() {
        let len = value.chars().count() as i64;
        if out_of_range(len, shape) {
            return Err(CwError::invalid_value(format!(
                "The parameter {path} must be {} characters long.",
                bounds(shape)
            )));
        }
    }
    Ok(())
}

pub fn integer(value: i64, shape: &Shape, path: &str) -> Result<(), CwError> {
    if out_of_range(value, shape) {
        return Err(CwError::invalid_value(format!(
            "The value {value} for parameter {path} is not valid: it must be {}.",
            bounds(shape)
        )));
    }
    Ok(())
}

/// The number of members of a list or entries of a map.
pub fn count(len: usize, shape: &Shape, path: &str) -> Result<(), CwError> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    if out_of_range(len, shape) {
        return Err(CwError::invalid_value(format!(
            "The collection {path} must contain {} members; it has {len}.",
            bounds(shape)
        )));
    }
    Ok(())
}

fn out_of_range(value: i64, shape: &Shape) -> bool {
    shape.min.is_some_and(|min| value < min) || shape.max.is_some_and(|max| value > max)
}

fn bounds(shape: &Shape) -> String {
    match (shape.min, shape.max) {
        (Some(min), Some(max)) => format!("between {min} and {max}"),
        (Some(min), None) => format!("at least {min}"),
        (None, Some(max)) => format!("at most {max}"),
        (None, None) => "anything".to_string(),
    }
}

/// The typed value of a canonical tree. The tree was built from the shape's descriptor, so a
/// failure here is a descriptor/struct mismatch; it is still an error, never a panic.
pub fn from_tree<T: DeserializeOwned>(tree: serde_json::Value) -> Result<T, CwError> {
    serde_json::from_value(tree)
        .map_err(|e| CwError::serialization(format!("The request body does not match the operation's input: {e}")))
}

/// The canonical tree of a typed value. Plain structs of strings, numbers and maps with string
/// keys always serialize; the fallback is for the impossible.
pub fn to_tree<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_else(|_| serde_json::Value::Object(Default::default()))
}
