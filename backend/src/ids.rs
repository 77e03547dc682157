//! Minting identifiers: EC2's shapes, random enough never to repeat.

use rand::distributions::{Alphanumeric, Uniform};
use rand::Rng;

/// `prefix` + 17 lowercase hex digits, as EC2's long ids.
pub fn resource_id(prefix: &str) -> String {
    let mut rng = rand::thread_rng();
    let hex: String = (0..17).map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0')).collect();
    format!("{prefix}-{hex}")
}

/// Hex digits a member's id ([`member_ids`]) takes from its group's id.
const GROUP_DIGITS: usize = 9;

/// `count` distinct ids of `prefix` for the members of one group (the instances of one
/// reservation): each starts with the group id's first hex digits, then random ones. An
/// account's records are keyed by id, so the records, tags and attachments of one group's
/// members sit together and follow the groups' order: a page of reservations reads
/// neighbouring keys, not keys scattered over the whole account. The random part (8 digits)
/// makes two groups' members as unlikely to share an id as wholly random ids are (68 bits
/// either way), and members of one group never do.
pub fn member_ids(prefix: &str, group_id: &str, count: usize) -> Vec<String> {
    let group = group_id.rsplit_once('-').map_or(group_id, |(_, hex)| hex);
    let lead: String = group.chars().take(GROUP_DIGITS).collect();
    let mut ids: Vec<String> = Vec::with_capacity(count);
    let mut taken = std::collections::HashSet::with_capacity(count);
    while ids.len() < count {
        let id = resource_id(prefix);
        let candidate = format!("{prefix}-{lead}{}", &id[prefix.len() + 1 + lead.len()..]);
        if taken.insert(candidate.clone()) {
            ids.push(candidate);
        }
    }
    ids
}

/// An id always the same for the same parts (storage derives a VPC's ACL id with it too).
pub use storage::derived::derived_id;

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

    #[test]
    fn members_follow_their_group_and_never_repeat() {
        let (first, second) = ("r-0123456789abcdef0", "r-0123456799abcdef0");
        let members = member_ids("i", first, 300);
        let distinct: std::collections::HashSet<&String> = members.iter().collect();
        assert_eq!(distinct.len(), 300);
        for id in &members {
            assert_eq!(id.len(), 19, "{id}");
            assert!(id.starts_with("i-012345678"), "{id}");
            assert_eq!(crate::ResourceKind::of_id(id), Some(crate::ResourceKind::Instance));
        }
        // Every member of the earlier group sorts before every member of the later one.
        let later = member_ids("i", second, 300);
        assert!(members.iter().max() < later.iter().min());
    }
}
