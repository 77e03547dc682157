//! Who may use an image or a snapshot, as ModifyImageAttribute and ModifySnapshotAttribute
//! give it: `….Add.N` / `….Remove.N` entries of a user id or a group, or the older form,
//! `OperationType` with `UserId.N` and `UserGroup.N`.

use backend::sharing::PermissionChange;
use ec2api::{Code, Ec2Error};

/// One `Add` or `Remove` entry: a group, a user id, or both.
pub type Entry = (Option<String>, Option<String>);

/// The change the request gives; `bad_group` is the code EC2 answers a group other than `all`
/// with.
pub fn change(
    add: Vec<Entry>,
    remove: Vec<Entry>,
    older: (Option<String>, Option<Vec<String>>, Option<Vec<String>>),
    bad_group: Code,
) -> Result<PermissionChange, Ec2Error> {
    let group_all = |group: Option<&str>| match group {
        None => Ok(false),
        Some("all") => Ok(true),
        Some(other) => {
            Err(Ec2Error::new(bad_group, format!("Invalid attribute item value \"{other}\" for group item type.")))
        }
    };
    let mut change = PermissionChange::default();
    for (entries, accounts, everyone) in
        [(add, &mut change.add, &mut change.add_all), (remove, &mut change.remove, &mut change.remove_all)]
    {
        for (group, user) in entries {
            accounts.extend(user);
            *everyone |= group_all(group.as_deref())?;
        }
    }
    let (operation, users, groups) = older;
    if operation.is_some() || users.is_some() || groups.is_some() {
        let (accounts, everyone) = match operation.as_deref() {
            Some("add") => (&mut change.add, &mut change.add_all),
            Some("remove") => (&mut change.remove, &mut change.remove_all),
            Some(other) => return Err(Ec2Error::invalid_value("OperationType", other, "Expected add or remove.")),
            None => return Err(Ec2Error::missing_parameter("OperationType")),
        };
        accounts.extend(users.unwrap_or_default());
        for group in groups.unwrap_or_default() {
            *everyone |= group_all(Some(&group))?;
        }
    }
    Ok(change)
}
