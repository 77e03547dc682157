//! Generic `MaxResults` / `NextToken` paging.
//!
//! Items are listed in a stable order by a key (a resource id). A token names the last key of
//! the previous page, so it survives restarts, works from another process, and skips nothing
//! that existed when the first page was read. Tokens are opaque to clients (base64url of a
//! versioned payload); an empty `NextToken=` means absent, as the aws cli sends it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::{Code, Ec2Error};

const TOKEN_PREFIX: &str = "1:";

/// What one Describe call asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Items per page; `None` is everything.
    pub max_results: Option<usize>,
    /// Resume after this key.
    pub after: Option<String>,
}

impl PageRequest {
    /// Validates `MaxResults` against the action's `[min, max]` and decodes `NextToken`.
    pub fn new(max_results: Option<i32>, next_token: Option<&str>, min: i32, max: i32) -> Result<Self, Ec2Error> {
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
            Some(token) => Some(decode_token(token)?),
        };
        Ok(Self { max_results, after })
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
                let token = rest.last().map(|last| encode_token(key(last)));
                (rest, token)
            }
            _ => (rest, None),
        }
    }
}

pub fn encode_token(last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{last_key}"))
}

fn decode_token(token: &str) -> Result<String, Ec2Error> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(TOKEN_PREFIX).map(str::to_owned))
        .ok_or_else(|| {
            Ec2Error::new(Code::InvalidParameterValue, format!("The NextToken value '{token}' is not valid"))
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
            let req = PageRequest::new(Some(5), token.as_deref(), 5, 1000).unwrap();
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
        let req = PageRequest::new(Some(5), Some(""), 5, 1000).unwrap();
        assert_eq!(req.after, None);
        let (page, next) = req.page(keys(5), |k| k.as_str());
        assert_eq!(page.len(), 5);
        assert_eq!(next, None);
    }

    #[test]
    fn a_token_resumes_after_its_key_even_if_that_item_is_gone() {
        let token = encode_token("k-004");
        let req = PageRequest::new(None, Some(&token), 5, 1000).unwrap();
        let items: Vec<String> = keys(10).into_iter().filter(|k| k != "k-004").collect();
        let (page, _) = req.page(items, |k| k.as_str());
        assert_eq!(page.first().map(String::as_str), Some("k-005"));
    }

    #[test]
    fn bad_input_is_invalid_parameter_value() {
        assert_eq!(PageRequest::new(Some(4), None, 5, 1000).unwrap_err().code(), "InvalidParameterValue");
        assert_eq!(PageRequest::new(Some(1001), None, 5, 1000).unwrap_err().code(), "InvalidParameterValue");
        assert_eq!(PageRequest::new(None, Some("garbage!"), 5, 1000).unwrap_err().code(), "InvalidParameterValue");
    }
}
