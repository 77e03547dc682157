//! Minting identifiers: EC2's shapes, random enough never to repeat.

use rand::distributions::{Alphanumeric, Uniform};
use rand::Rng;

/// `prefix` + 17 lowercase hex digits, as EC2's long ids.
pub fn resource_id(prefix: &str) -> String {
    let mut rng = rand::thread_rng();
    let hex: String = (0..17).map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0')).collect();
    format!("{prefix}-{hex}")
}

/// An id in EC2's shape that is always the same for the same `parts`: for resources every
/// account has one of (default subnets, default security groups), made when first needed.
pub fn derived_id(prefix: &str, parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(parts.join("/").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{}", &hex[..17])
}

/// Twelve digits, not starting with 0.
pub fn account_id() -> String {
    let mut rng = rand::thread_rng();
    let first = rng.gen_range(1..10);
    let rest: String = (0..11).map(|_| char::from_digit(rng.gen_range(0..10), 10).unwrap_or('0')).collect();
    format!("{first}{rest}")
}

/// `AKIA` + 16 upper-case letters and digits.
pub fn access_key_id() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::thread_rng();
    let dist = Uniform::from(0..CHARS.len());
    let body: String = (0..16).map(|_| CHARS[rng.sample(dist)] as char).collect();
    format!("AKIA{body}")
}

/// 40 letters and digits.
pub fn secret_access_key() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let id = resource_id("key");
        assert_eq!(id.len(), 21);
        assert!(crate::ResourceKind::of_id(&id).is_some());
        let account = account_id();
        assert!(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && !account.starts_with('0'));
        assert!(access_key_id().starts_with("AKIA") && access_key_id().len() == 20);
        assert_eq!(secret_access_key().len(), 40);
        assert_ne!(resource_id("i"), resource_id("i"));
    }
}
