//! Console sessions: who a browser signed in as, until when, and the token its state changes
//! must carry.
//!
//! A session is made by signing in with an access key id and its secret (checked against the
//! account's key, in constant time). The browser keeps only the session's random token, in an
//! HttpOnly cookie; the secret is never sent back. Sessions live in memory: a restart signs
//! everyone out, which is the safe direction. The store keeps only a digest of each token, so
//! that what is in memory cannot be replayed as a cookie.
//!
//! A session ends at the first of: sign-out, its lifetime (`session_secs` after sign-in), being
//! idle for `idle_secs`, or its access key no longer naming the account (checked on each use
//! by the caller).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How many sessions one access key may hold at once; signing in once more drops its oldest.
pub const PER_KEY: usize = 32;
/// How many sessions the server holds in all; past that the oldest is dropped.
pub const TOTAL: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub access_key_id: String,
    pub account_id: String,
    /// The token every state change must carry in `X-CSRF-Token`.
    pub csrf: String,
    pub started: Instant,
    pub last_used: Instant,
}

impl Session {
    /// Whether the session still holds at `now`.
    pub fn alive(&self, now: Instant, lifetime: Duration, idle: Duration) -> bool {
        now.saturating_duration_since(self.started) < lifetime && now.saturating_duration_since(self.last_used) < idle
    }

    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        !presented.is_empty() && bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

pub struct Sessions {
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
    pub lifetime: Duration,
    pub idle: Duration,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    pub fn new(lifetime: Duration, idle: Duration) -> Self {
        Self { by_digest: Mutex::new(HashMap::new()), lifetime, idle }
    }

    /// A new session for the key: its token (for the cookie) and the session.
    pub fn open(&self, access_key_id: &str, account_id: &str, now: Instant) -> (String, Session) {
        let token = random_hex();
        let session = Session {
            access_key_id: access_key_id.to_owned(),
            account_id: account_id.to_owned(),
            csrf: random_hex(),
            started: now,
            last_used: now,
        };
        let mut all = self.by_digest.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, s| s.alive(now, self.lifetime, self.idle));
        let oldest = |all: &HashMap<[u8; 32], Session>, same_key: bool| {
            all.iter()
                .filter(|(_, s)| !same_key || s.access_key_id == access_key_id)
                .min_by_key(|(_, s)| s.started)
                .map(|(d, _)| *d)
        };
        if all.values().filter(|s| s.access_key_id == access_key_id).count() >= PER_KEY {
            if let Some(d) = oldest(&all, true) {
                all.remove(&d);
            }
        }
        if all.len() >= TOTAL {
            if let Some(d) = oldest(&all, false) {
                all.remove(&d);
            }
        }
        all.insert(digest(&token), session.clone());
        (token, session)
    }

    /// The session of `token`, if it still holds (its idle clock restarts); an expired one is
    /// forgotten.
    pub fn get(&self, token: &str, now: Instant) -> Option<Session> {
        let key = digest(token);
        let mut all = self.by_digest.lock().unwrap_or_else(|p| p.into_inner());
        let session = all.get_mut(&key)?;
        if !session.alive(now, self.lifetime, self.idle) {
            all.remove(&key);
            return None;
        }
        session.last_used = now;
        Some(session.clone())
    }

    /// Ends the session of `token` (sign-out, or its key gone).
    pub fn close(&self, token: &str) {
        self.by_digest.lock().unwrap_or_else(|p| p.into_inner()).remove(&digest(token));
    }

    pub fn len(&self) -> usize {
        self.by_digest.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new(Duration::from_secs(100), Duration::from_secs(10))
    }

    #[test]
    fn a_token_finds_its_session_and_nothing_else_does() {
        let s = sessions();
        let now = Instant::now();
        let (token, session) = s.open("AKIA1", "111", now);
        assert_eq!(token.len(), 64);
        assert_eq!(s.get(&token, now).unwrap().account_id, "111");
        assert!(s.get(&session.csrf, now).is_none(), "the CSRF token is not a session token");
        assert!(s.get("", now).is_none());
        assert!(session.csrf_matches(&session.csrf));
        assert!(!session.csrf_matches(""));
        assert!(!session.csrf_matches(&token));
    }

    #[test]
    fn idle_and_lifetime_end_a_session() {
        let s = sessions();
        let t0 = Instant::now();
        let (token, _) = s.open("AKIA1", "111", t0);
        // Used every 9 s it stays alive past the idle limit...
        for i in 1..=10 {
            assert!(s.get(&token, t0 + Duration::from_secs(9 * i)).is_some(), "use {i}");
        }
        // ...but not past its lifetime.
        assert!(s.get(&token, t0 + Duration::from_secs(100)).is_none());
        assert!(s.is_empty(), "an expired session is forgotten");
        let (idle, _) = s.open("AKIA1", "111", t0);
        assert!(s.get(&idle, t0 + Duration::from_secs(10)).is_none());
    }

    #[test]
    fn sign_out_ends_only_that_session() {
        let s = sessions();
        let now = Instant::now();
        let (a, _) = s.open("AKIA1", "111", now);
        let (b, _) = s.open("AKIA1", "111", now);
        s.close(&a);
        assert!(s.get(&a, now).is_none());
        assert!(s.get(&b, now).is_some());
    }

    #[test]
    fn one_key_holds_a_bounded_number_of_sessions() {
        let s = sessions();
        let t0 = Instant::now();
        let first = s.open("AKIA1", "111", t0).0;
        for i in 1..=PER_KEY as u64 {
            s.open("AKIA1", "111", t0 + Duration::from_millis(i));
        }
        let other = s.open("AKIA2", "222", t0).0;
        assert_eq!(s.len(), PER_KEY + 1);
        assert!(s.get(&first, t0 + Duration::from_secs(1)).is_none(), "the oldest made room");
        assert!(s.get(&other, t0 + Duration::from_secs(1)).is_some(), "another key's session stays");
    }
}
