//! Sharing an image (`launchPermission`) or a snapshot (`createVolumePermission`) with other
//! accounts or with everyone: the owner's list of accounts and a public flag, changed by one
//! pure function that both attributes use.
//!
//! Account ids are checked for their shape only (twelve digits), never for existence: an
//! answer that differed for an account that exists would tell one tenant which others do.

use crate::{Error, ResourceKind, Result};

/// The most accounts one image or snapshot is shared with.
pub const MAX_SHARED_WITH: usize = 1000;

/// A Modify…Attribute change of who may use a resource: `Add` and `Remove` lists, each of
/// account ids and of the group `all`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PermissionChange {
    pub add: Vec<String>,
    pub remove: Vec<String>,
    pub add_all: bool,
    pub remove_all: bool,
}

impl PermissionChange {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty() && !self.add_all && !self.remove_all
    }
}

/// Who may use a resource besides its owner.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Permissions {
    pub public: bool,
    pub accounts: Vec<String>,
}

fn is_account_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
}

/// `permissions` with `change` applied: removals after additions, as EC2 applies one request;
/// the owner itself is never listed (it may always use what it owns). `kind` is what is
/// shared, for the error EC2 answers.
pub fn apply(
    permissions: &Permissions,
    change: &PermissionChange,
    owner: &str,
    kind: ResourceKind,
) -> Result<Permissions> {
    let refused = |message: String| Error::InvalidAttributeItem { kind, message };
    if change.is_empty() {
        return Err(Error::MissingParameter("LaunchPermission or UserId or UserGroup".into()));
    }
    for id in change.add.iter().chain(&change.remove) {
        if !is_account_id(id) {
            return Err(refused(format!("Invalid attribute item value \"{id}\" for userId item type.")));
        }
    }
    let mut next = permissions.clone();
    next.public = (next.public || change.add_all) && !change.remove_all;
    for id in &change.add {
        if id != owner && !next.accounts.contains(id) {
            next.accounts.push(id.clone());
        }
    }
    next.accounts.retain(|id| !change.remove.contains(id));
    if next.accounts.len() > MAX_SHARED_WITH {
        return Err(refused(format!("A resource can be shared with at most {MAX_SHARED_WITH} accounts.")));
    }
    next.accounts.sort();
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "111111111111";
    const B: &str = "222222222222";
    const OWNER: &str = "999999999999";

    fn change(add: &[&str], remove: &[&str], add_all: bool, remove_all: bool) -> PermissionChange {
        PermissionChange {
            add: add.iter().map(|s| s.to_string()).collect(),
            remove: remove.iter().map(|s| s.to_string()).collect(),
            add_all,
            remove_all,
        }
    }

    #[test]
    fn adds_removes_and_keeps_the_owner_out() {
        let none = Permissions::default();
        let shared = apply(&none, &change(&[B, A, OWNER, A], &[], false, false), OWNER, ResourceKind::Image).unwrap();
        assert_eq!(shared, Permissions { public: false, accounts: vec![A.into(), B.into()] });
        let public = apply(&shared, &change(&[], &[A], true, false), OWNER, ResourceKind::Image).unwrap();
        assert_eq!(public, Permissions { public: true, accounts: vec![B.into()] });
        let private = apply(&public, &change(&[], &[], false, true), OWNER, ResourceKind::Image).unwrap();
        assert_eq!(private, Permissions { public: false, accounts: vec![B.into()] });
        // Removing what is not there is no error, as on EC2.
        assert_eq!(apply(&private, &change(&[], &[A], false, false), OWNER, ResourceKind::Image).unwrap(), private);
    }

    #[test]
    fn refuses_what_is_not_an_account_and_empty_changes() {
        let none = Permissions::default();
        for bad in ["12345", "all", "11111111111a", ""] {
            let result = apply(&none, &change(&[bad], &[], false, false), OWNER, ResourceKind::Image);
            assert!(matches!(result, Err(Error::InvalidAttributeItem { .. })), "{bad:?}");
        }
        assert!(matches!(
            apply(&none, &PermissionChange::default(), OWNER, ResourceKind::Image),
            Err(Error::MissingParameter(_))
        ));
        let many: Vec<String> = (0..=MAX_SHARED_WITH).map(|n| format!("{n:012}")).collect();
        let too_many = PermissionChange { add: many, ..Default::default() };
        assert!(apply(&none, &too_many, OWNER, ResourceKind::Image).is_err());
    }
}
