//! The shape descriptors: what `generated.rs` says about each model shape, and what the generic
//! protocol code walks to turn wire forms into the canonical tree and back.

/// One model shape: its kind and the constraints the model puts on it.
#[derive(Debug)]
pub struct Shape {
    /// The model's name for the shape (`MetricDatum`).
    pub name: &'static str,
    pub kind: Kind,
    /// Minimum length (strings: characters; lists and maps: entries) or value (integers).
    pub min: Option<i64>,
    /// Maximum length or value, like `min`.
    pub max: Option<i64>,
    /// The values an enum string may take; empty for any string.
    pub enum_values: &'static [&'static str],
}

/// What a shape's values are. Timestamps are epoch seconds (fractional allowed) in the tree.
#[derive(Debug)]
pub enum Kind {
    String,
    Integer,
    Double,
    Boolean,
    Timestamp,
    Structure { members: &'static [Member] },
    List { member: &'static Shape },
    Map { key: &'static Shape, value: &'static Shape },
}

/// A structure's member, in the model's order (which is the XML order too).
#[derive(Debug)]
pub struct Member {
    /// The member's name on every wire (CloudWatch uses no `locationName`s).
    pub name: &'static str,
    pub shape: &'static Shape,
    pub required: bool,
}

/// One operation: its name, input shape, and output shape with the query `…Result` wrapper.
#[derive(Debug)]
pub struct OperationDesc {
    pub name: &'static str,
    pub input: &'static Shape,
    /// None when the model gives the operation no output (PutMetricData).
    pub output: Option<&'static Shape>,
    pub result_wrapper: Option<&'static str>,
}

impl OperationDesc {
    /// The operation of that name, if the crate serves it.
    pub fn find(name: &str) -> Option<&'static OperationDesc> {
        crate::generated::OPERATIONS.iter().find(|op| op.name == name)
    }
}
