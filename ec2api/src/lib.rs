//! The EC2 Query protocol, without I/O.
//!
//! A request flows through this crate in four steps:
//! 1. [`query::Node::parse`] turns the form pairs of a request (`Filter.1.Value.2=x`) into a tree
//!    keyed by the dotted segments.
//! 2. [`Action::decode`] (generated from botocore's model) picks the action by name and decodes
//!    its typed request from the tree. Unknown, missing and malformed parameters become
//!    [`Ec2Error`]s that name the parameter.
//! 3. The gateway's handler for that action answers with the action's typed output.
//! 4. [`xml::render_response`] writes the output as `<{Action}Response xmlns=…>` with `<item>`
//!    lists; [`xml::render_error`] writes the EC2 error envelope.
//!
//! [`filter`] and [`pagination`] are the generic `Filter.N` engine and `MaxResults`/`NextToken`
//! paging that every Describe action shares.

pub mod error;
pub mod filter;
pub mod generated;
pub mod pagination;
pub mod query;
pub mod xml;

pub use error::{Code, Ec2Error};
pub use generated::*;

/// The API version every request names and every response carries.
pub const API_VERSION: &str = "2016-11-15";
/// The XML namespace of every EC2 response.
pub const XML_NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
