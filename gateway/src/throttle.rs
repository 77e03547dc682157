//! Who may send how much: token buckets per account and per source address.
//!
//! EC2 throttles each account on its own, with separate buckets for reading (`Describe*`,
//! `Get*`) and for changing things, so one tenant's loop cannot use another's share. Requests
//! that prove no account (unsigned, or whose signature fails) are charged to their source
//! address instead, in a bucket of their own: anonymous floods are refused cheaply, before any
//! signature is checked, and never touch a tenant's bucket. Buckets of keys not seen for a
//! while are forgotten ([`Throttle::forget_idle`]), so memory follows the active clients.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Limits;

/// The bucket an action draws from, as EC2 splits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionClass {
    Read,
    Mutate,
}

impl ActionClass {
    pub fn of(action: &str) -> Self {
        if action.starts_with("Describe") || action.starts_with("Get") || action.starts_with("List") {
            Self::Read
        } else {
            Self::Mutate
        }
    }
}

pub struct Throttle {
    accounts: DefaultKeyedRateLimiter<(String, ActionClass)>,
    anonymous: DefaultKeyedRateLimiter<IpAddr>,
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate))
}

impl Throttle {
    pub fn new(limits: &Limits) -> Self {
        Self {
            accounts: RateLimiter::keyed(quota(limits.requests_per_second, limits.burst)),
            anonymous: RateLimiter::keyed(quota(limits.anonymous_per_second, limits.anonymous_burst)),
        }
    }

    /// Takes a token from the account's bucket for this class of action.
    pub fn account(&self, account_id: &str, class: ActionClass) -> bool {
        self.accounts.check_key(&(account_id.to_owned(), class)).is_ok()
    }

    /// Takes a token from the source address's bucket for requests that prove no account.
    pub fn anonymous(&self, source: IpAddr) -> bool {
        self.anonymous.check_key(&source).is_ok()
    }

    /// Drops buckets that are full again (their keys sent nothing lately).
    pub fn forget_idle(&self) {
        self.accounts.retain_recent();
        self.accounts.shrink_to_fit();
        self.anonymous.retain_recent();
        self.anonymous.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_second: u32, burst: u32) -> Limits {
        Limits {
            requests_per_second: per_second,
            burst,
            anonymous_per_second: per_second,
            anonymous_burst: burst,
            ..Limits::default()
        }
    }

    #[test]
    fn accounts_and_classes_have_buckets_of_their_own() {
        let t = Throttle::new(&limits(1, 2));
        assert!(t.account("a", ActionClass::Read));
        assert!(t.account("a", ActionClass::Read));
        assert!(!t.account("a", ActionClass::Read), "a's read bucket is empty");
        assert!(t.account("a", ActionClass::Mutate), "its mutate bucket is not");
        assert!(t.account("b", ActionClass::Read), "nor is b's");
    }

    #[test]
    fn anonymous_traffic_is_charged_per_address() {
        let t = Throttle::new(&limits(1, 1));
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        assert!(t.anonymous(a));
        assert!(!t.anonymous(a));
        assert!(t.anonymous(b));
        assert!(t.account("tenant", ActionClass::Read), "accounts are untouched");
        t.forget_idle();
    }

    #[test]
    fn classes_follow_ec2s_split() {
        assert_eq!(ActionClass::of("DescribeInstances"), ActionClass::Read);
        assert_eq!(ActionClass::of("GetConsoleOutput"), ActionClass::Read);
        assert_eq!(ActionClass::of("RunInstances"), ActionClass::Mutate);
    }
}
