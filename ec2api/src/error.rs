//! The wire error: an EC2 error code and a message shown to users verbatim.
//!
//! The HTTP status of a code is data ([`STATUS_BY_CODE`]); every code not listed is a 400,
//! as with EC2. The request id is attached when the envelope is rendered.

use std::borrow::Cow;
use std::fmt;

/// An EC2 error as it goes on the wire. Boxed so that `Result<T, Ec2Error>` stays small.
#[derive(Clone, PartialEq, Eq)]
pub struct Ec2Error(Box<Inner>);

#[derive(Clone, PartialEq, Eq)]
struct Inner {
    code: Cow<'static, str>,
    message: String,
}

/// HTTP status for the codes that are not a plain 400.
pub const STATUS_BY_CODE: &[(&str, u16)] = &[
    ("AuthFailure", 401),
    ("MissingAuthenticationToken", 401),
    ("SignatureDoesNotMatch", 403),
    ("UnauthorizedOperation", 403),
    ("OptInRequired", 403),
    ("DryRunOperation", 412),
    ("RequestEntityTooLarge", 413),
    ("InternalError", 500),
    ("RequestLimitExceeded", 503),
    ("ServiceUnavailable", 503),
    ("Unavailable", 503),
];

impl Ec2Error {
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self(Box::new(Inner { code: code.into(), message: message.into() }))
    }

    pub fn code(&self) -> &str {
        &self.0.code
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    pub fn status(&self) -> u16 {
        STATUS_BY_CODE.iter().find(|(code, _)| *code == self.code()).map_or(400, |(_, status)| *status)
    }

    pub fn missing_parameter(name: &str) -> Self {
        Self::new("MissingParameter", format!("The request must contain the parameter {}", echo(name)))
    }

    pub fn unknown_parameter(name: &str) -> Self {
        Self::new("UnknownParameter", format!("The parameter {} is not recognized", echo(name)))
    }

    /// `InvalidParameterValue` naming the parameter, the value, and why it is wrong.
    pub fn invalid_value(name: &str, value: &str, why: &str) -> Self {
        Self::new(
            "InvalidParameterValue",
            format!("Value ({}) for parameter {} is invalid. {why}", echo(value), echo(name)),
        )
    }

    pub fn invalid_action(action: &str) -> Self {
        Self::new("InvalidAction", format!("The action {action} is not valid for this web service."))
    }

    /// The answer to anything unexpected; the cause goes to the log, never to the wire.
    pub fn internal() -> Self {
        Self::new(
            "InternalError",
            "An internal error has occurred. Please try again; if it persists, contact your administrator.",
        )
    }
}

/// The longest piece of a request an error message repeats: enough to recognise it, never a
/// megabyte echoed back (or logged) because a client sent one.
const MAX_ECHO_CHARS: usize = 128;

/// `text` as an error message repeats it: cut at [`MAX_ECHO_CHARS`] with `...` after.
pub fn echo(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(MAX_ECHO_CHARS) {
        Some((cut, _)) => Cow::Owned(format!("{}...", &text[..cut])),
        None => Cow::Borrowed(text),
    }
}

impl fmt::Debug for Ec2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl fmt::Display for Ec2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Ec2Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_comes_from_the_table_and_defaults_to_400() {
        assert_eq!(Ec2Error::new("DryRunOperation", "").status(), 412);
        assert_eq!(Ec2Error::new("RequestLimitExceeded", "").status(), 503);
        assert_eq!(Ec2Error::new("AuthFailure", "").status(), 401);
        assert_eq!(Ec2Error::missing_parameter("KeyName").status(), 400);
        assert_eq!(Ec2Error::new("InvalidKeyPair.NotFound", "").status(), 400);
    }

    #[test]
    fn messages_repeat_at_most_a_little_of_the_request() {
        let huge = "x".repeat(100_000);
        let err = Ec2Error::invalid_value(&huge, &huge, "Expected less.");
        assert!(err.message().len() < 400, "{}", err.message().len());
        assert!(Ec2Error::unknown_parameter(&huge).message().ends_with("... is not recognized"));
        assert_eq!(echo("ü".repeat(200).as_str()).chars().count(), MAX_ECHO_CHARS + 3);
    }

    #[test]
    fn messages_name_the_parameter() {
        assert_eq!(Ec2Error::missing_parameter("KeyName").message(), "The request must contain the parameter KeyName");
        assert!(Ec2Error::invalid_value("KeyType", "dsa", "Expected: rsa, ed25519.")
            .message()
            .contains("(dsa) for parameter KeyType"));
    }
}
