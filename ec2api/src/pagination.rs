//! Generic `MaxResults` / `NextToken` paging.
//!
//! Items are listed in a stable order by a key (a resource id). A token names the last key of
//! the previous page, so it survives restarts, works from another process, and skips nothing
//! that existed when the first page was read. It is sealed with the query's scope (a key the
//! gateway derives from the installation's secret, the caller's account, the action and the
//! query): a token altered, forged, or shown to another account or another query is refused.
//! Tokens are opaque to clients (base64url of a versioned payload, then the seal); an empty
//! `NextToken=` means absent, as the aws cli sends it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Code, Ec2Error};

const TOKEN_VERSION: &str = "2";

/// What one Describe call asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Items per page; `None` is everything.
    pub max_results: Option<usize>,
    /// Resume after this key.
    pub after: Option<String>,
    /// What tokens of this query carry (see the module doc).
    scope: String,
}

impl PageRequest {
    /// Validates `MaxResults` against the action's `[min, max]` and decodes `NextToken`, which
    /// must have been made for `scope`.
    pub fn new(
        max_results: Option<i32>,
        next_token: Option<&str>,
        min: i32,
        max: i32,
        scope: &str,
    ) -> Result<Self, Ec2Error> {
        let max_results = match max_results {
            None => None,
            Some(n) if (min..=max).contains(&n) => Some(n as usize),
            Some(n) => {
                return Err(Ec2Error::invalid_value(
                    "MaxResults",
                    &n.to_string(),
                    &format!("Expected a value between {min} and {max}."),
                ))
            }
        };
        let after = match next_token.filter(|t| !t.is_empty()) {
            None => None,
            Some(token) => Some(decode_token(token, scope)?),
        };
        Ok(Self { max_results, after, scope: scope.to_owned() })
    }

    /// The token that resumes after `last_key`.
    pub fn token_after(&self, last_key: &str) -> String {
        let payload = format!("{TOKEN_VERSION}:{last_key}");
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), seal(&self.scope, &payload))
    }

    /// Cuts one page out of `items`, which must be sorted by `key`. Returns the page and the
    /// token for the next one, if more remain.
    pub fn page<T>(&self, items: Vec<T>, key: impl Fn(&T) -> &str) -> (Vec<T>, Option<String>) {
        let mut rest: Vec<T> = match &self.after {
            Some(after) => items.into_iter().filter(|i| key(i) > after.as_str()).collect(),
            None => items,
        };
        match self.max_results {
            Some(n) if rest.len() > n => {
                rest.truncate(n);
                let token = rest.last().map(|last| self.token_after(key(last)));
                (rest, token)
            }
            _ => (rest, None),
        }
    }
}

/// HMAC-SHA256 of the payload under the scope, 128 bits of it in hex.
fn seal(scope: &str, payload: &str) -> String {
    // HMAC takes keys of any length; an empty seal would match nothing.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(scope.as_bytes()) else { return String::new() };
    mac.update(payload.as_bytes());
    mac.finalize().into_bytes()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str, scope: &str) -> Result<String, Ec2Error> {
    token
        .split_once('.')
        .and_then(|(encoded, sealed)| {
            let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
            // Compared in constant time, as a signature is.
            let expected = seal(scope, &payload);
            let same = expected.len() == sealed.len()
                && expected.bytes().zip(sealed.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
            let key = payload.strip_prefix(TOKEN_VERSION)?.strip_prefix(':')?;
            same.then(|| key.to_owned())
        })
        .ok_or_else(|| {
            Ec2Error::new(
                Code::InvalidParameterValue,
                format!("The NextToken value '{}' is not valid", crate::error::echo(token)),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("k-{i:03}")).collect()
    }

    #[test]
    fn pages_walk_everything_once() {
        let mut token: Option<String> = None;
        let mut seen = Vec::new();
        loop {
            let req = PageRequest::new(Some(5), token.as_deref(), 5, 1000, "s").unwrap();
            let (page, next) = req.page(keys(12), |k| k.as_str());
            assert!(page.len() <= 5);
            seen.extend(page);
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, keys(12));
    }

    #[test]
    fn exact_fit_has_no_next_token_and_empty_token_is_absent() {
        let req = PageRequest::new(Some(5), Some(""), 5, 1000, "s").unwrap();
        assert_eq!(req.after, None);
        let (page, next) = req.page(keys(5), |k| k.as_str());
        assert_eq!(page.len(), 5);
        assert_eq!(next, None);
    }

    #[test]
    fn a_token_resumes_after_its_key_even_if_that_item_is_gone() {
        let token = PageRequest::new(None, None, 5, 1000, "s").unwrap().token_after("k-004");
        let req = PageRequest::new(None, Some(&token), 5, 1000, "s").unwrap();
        let items: Vec<String> = keys(10).into_iter().filter(|k| k != "k-004").collect();
        let (page, _) = req.page(items, |k| k.as_str());
        assert_eq!(page.first().map(String::as_str), Some("k-005"));
    }

    #[test]
    fn bad_input_is_invalid_parameter_value() {
        assert_eq!(PageRequest::new(Some(4), None, 5, 1000, "s").unwrap_err().code(), "InvalidParameterValue");
        assert_eq!(PageRequest::new(Some(1001), None, 5, 1000, "s").unwrap_err().code(), "InvalidParameterValue");
        let garbage = PageRequest::new(None, Some("garbage!"), 5, 1000, "s").unwrap_err();
        assert_eq!(garbage.code(), "InvalidParameterValue");
    }

    #[test]
    fn a_token_is_refused_outside_its_scope_and_when_tampered_with() {
        let token = PageRequest::new(None, None, 5, 1000, "scope-a").unwrap().token_after("k-004");
        assert!(PageRequest::new(None, Some(&token), 5, 1000, "scope-a").is_ok());
        let elsewhere = PageRequest::new(None, Some(&token), 5, 1000, "scope-b").unwrap_err();
        assert_eq!(elsewhere.code(), "InvalidParameterValue");
        for at in [0, 3, token.len() - 1] {
            let mut tampered = token.clone().into_bytes();
            tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(tampered).unwrap();
            assert!(PageRequest::new(None, Some(&tampered), 5, 1000, "scope-a").is_err(), "{tampered}");
        }
    }
}
