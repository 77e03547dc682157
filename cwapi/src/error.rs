//! The wire error: a CloudWatch error code and a message shown to users verbatim.
//!
//! Every code the crate (or the gateway on its behalf) answers with is an [`ErrorCode`]: its
//! query code, HTTP status, fault side and the shape name that goes into the CBOR/JSON `__type`
//! are data in one table. The modeled errors (`InvalidParameterValueException`, …) keep the
//! model's shape names so that botocore can build the modeled exception class from the body as
//! well as from the `x-amzn-query-error` header; unmodeled codes use the code as the shape name.

use std::fmt;

/// Whose fault an error is, as the query protocol's `<Type>` and the `x-amzn-query-error`
/// header's second half say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The request was wrong; retrying it unchanged will not help.
    Sender,
    /// The service failed.
    Receiver,
}

impl Fault {
    /// `Sender` or `Receiver`.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Sender => "Sender",
            Fault::Receiver => "Receiver",
        }
    }
}

macro_rules! codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $wire:literal, $status:literal, $fault:ident, $shape:literal;)+) => {
        /// The error codes the CloudWatch endpoint answers with, as CloudWatch's query protocol
        /// names them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl ErrorCode {
            /// Every code, for tests that walk the table.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The code as the query protocol and `x-amzn-query-error` carry it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)+
                }
            }

            /// The HTTP status the code is answered with.
            pub fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)+
                }
            }

            /// Whose fault it is.
            pub fn fault(self) -> Fault {
                match self {
                    $(ErrorCode::$variant => Fault::$fault,)+
                }
            }

            /// The error shape's name, as the CBOR/JSON `__type` carries it after the namespace.
            pub fn shape_name(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $shape,)+
                }
            }
        }
    };
}

codes! {
    /// A required member is absent (the model's `MissingRequiredParameterException`).
    MissingParameter = "MissingParameter", 400, Sender, "MissingRequiredParameterException";
    /// A member's value breaks the model's constraints or is of the wrong type (the model's
    /// `InvalidParameterValueException`).
    InvalidParameterValue = "InvalidParameterValue", 400, Sender, "InvalidParameterValueException";
    /// Members that cannot be given together (the model's `InvalidParameterCombinationException`).
    InvalidParameterCombination = "InvalidParameterCombination", 400, Sender,
        "InvalidParameterCombinationException";
    /// A `NextToken` this endpoint did not hand out (the model's `InvalidNextToken`).
    InvalidNextToken = "InvalidNextToken", 400, Sender, "InvalidNextToken";
    /// Anything unexpected; the cause is in the log, never on the wire (the model's
    /// `InternalServiceFault`).
    InternalServiceError = "InternalServiceError", 500, Receiver, "InternalServiceFault";
    /// The operation (or the query `Version`) names nothing this endpoint serves.
    InvalidAction = "InvalidAction", 400, Sender, "InvalidAction";
    /// A CBOR or JSON body that cannot be read as a map of the input's members: not CBOR/JSON
    /// at all, truncated, nested too deep, byte strings, unsupported tags, non-text keys.
    SerializationException = "SerializationException", 400, Sender, "SerializationException";
    /// A query body that cannot be read: not UTF-8, malformed percent escapes, list indexes that
    /// are not positive numbers, names nested too deep, too many parameters.
    MalformedQueryString = "MalformedQueryString", 400, Sender, "MalformedQueryString";
    /// The caller may not do this.
    AccessDenied = "AccessDenied", 403, Sender, "AccessDenied";
    /// The access key is unknown.
    InvalidClientTokenId = "InvalidClientTokenId", 403, Sender, "InvalidClientTokenId";
    /// The request carries no signature at all.
    MissingAuthenticationToken = "MissingAuthenticationToken", 403, Sender, "MissingAuthenticationToken";
    /// The signature is not the one the access key's secret gives.
    SignatureDoesNotMatch = "SignatureDoesNotMatch", 403, Sender, "SignatureDoesNotMatch";
    /// The signature's parts cannot be read.
    IncompleteSignature = "IncompleteSignature", 400, Sender, "IncompleteSignature";
    /// The request's time is too far from the server's.
    RequestExpired = "RequestExpired", 400, Sender, "RequestExpired";
    /// The caller's rate limit is spent. botocore retries `Throttling` whatever the status (it is
    /// in its throttling codes), and 400 is what CloudWatch's query API has always answered it with.
    Throttling = "Throttling", 400, Sender, "Throttling";
    /// The body is larger than the endpoint accepts.
    RequestEntityTooLarge = "RequestEntityTooLarge", 413, Sender, "RequestEntityTooLarge";
    /// A per-account limit (metrics, dimensions) would be exceeded.
    LimitExceeded = "LimitExceeded", 400, Sender, "LimitExceededException";
    /// The service cannot answer now; botocore retries 503s.
    ServiceUnavailable = "ServiceUnavailable", 503, Receiver, "ServiceUnavailable";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CloudWatch error as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CwError {
    pub code: ErrorCode,
    pub message: String,
}

impl CwError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CwError { code, message: message.into() }
    }

    /// `MissingParameter` for the member at `path` (query style: `MetricData.member.1.MetricName`).
    pub fn missing(path: &str) -> Self {
        Self::new(ErrorCode::MissingParameter, format!("The parameter {path} is required."))
    }

    /// `InvalidParameterValue` with a message naming the member.
    pub fn invalid_value(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterValue, message)
    }

    /// `InvalidParameterCombination`.
    pub fn invalid_combination(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterCombination, message)
    }

    /// `InvalidAction` for an operation this endpoint does not serve.
    pub fn invalid_action(operation: &str) -> Self {
        Self::invalid_action_for_version(operation, crate::API_VERSION)
    }

    /// `InvalidAction` as CloudWatch words it: the operation is looked up per API version.
    pub fn invalid_action_for_version(operation: &str, version: &str) -> Self {
        Self::new(ErrorCode::InvalidAction, format!("Could not find operation {operation} for version {version}"))
    }

    /// `SerializationException` for a CBOR or JSON body that cannot be read.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::SerializationException, message)
    }

    /// `MalformedQueryString` for a query body that cannot be read.
    pub fn malformed_query(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::MalformedQueryString, message)
    }

    /// `InternalServiceError`; the message goes on the wire, so keep causes out of it.
    pub fn internal() -> Self {
        Self::new(ErrorCode::InternalServiceError, "An internal error occurred.")
    }
}

impl fmt::Display for CwError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for CwError {}
