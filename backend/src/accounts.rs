//! Accounts and their access keys.
//!
//! Every resource belongs to one account; the gateway finds the account from the access key of
//! a signed request. The first start of an empty data dir creates an admin account
//! ([`Backend::bootstrap_admin`]); more come from `stratus account create`.

use storage::tables::{ACCESS_KEYS, ACCOUNTS};
use storage::{AccessKeyRecord, AccountRecord};

use crate::{ids, invalid, now_ms, Backend, Error, Result};

/// What `stratus account create` asks for; ids and keys are minted unless given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewAccount {
    pub name: String,
    pub admin: bool,
    pub account_id: Option<String>,
    pub access_key: Option<(String, String)>,
}

/// A new account and the keys to use it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    pub account_id: String,
    pub name: String,
    pub admin: bool,
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AccountSummary {
    pub account_id: String,
    pub name: String,
    pub admin: bool,
    pub access_key_ids: Vec<String>,
}

/// How long [`Backend::principal`] trusts what it read.
pub const PRINCIPAL_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// Who signed a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub account_id: String,
    pub admin: bool,
    pub secret_access_key: String,
    pub default_vpc_id: String,
}

fn validate(new: &NewAccount) -> Result<()> {
    let name_ok = !new.name.is_empty()
        && new.name.len() <= 64
        && new.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !name_ok {
        return Err(invalid("name", "An account name is 1 to 64 letters, digits, '-', '_' or '.'"));
    }
    if let Some(id) = &new.account_id {
        if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("account-id", format!("An account id is 12 digits, not '{id}'")));
        }
    }
    if let Some((key_id, secret)) = &new.access_key {
        if !(16..=128).contains(&key_id.len()) || !key_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid("access-key-id", "An access key id is 16 to 128 letters and digits"));
        }
        if secret.len() < 16 || secret.len() > 128 || secret.chars().any(char::is_whitespace) {
            return Err(invalid("secret-access-key", "A secret access key is 16 to 128 characters without spaces"));
        }
    }
    Ok(())
}

impl Backend {
    pub fn create_account(&self, new: NewAccount) -> Result<Credentials> {
        validate(&new)?;
        self.store().write(|tx| {
            let accounts = tx.scan(&ACCOUNTS, "")?;
            if accounts.iter().any(|(_, a)| a.name == new.name) {
                return Err(Error::AlreadyExists(format!("The account name '{}'", new.name)));
            }
            let account_id = new.account_id.clone().unwrap_or_else(ids::account_id);
            if tx.get(&ACCOUNTS, &account_id)?.is_some() {
                return Err(Error::AlreadyExists(format!("The account id '{account_id}'")));
            }
            let (access_key_id, secret_access_key) =
                new.access_key.clone().unwrap_or_else(|| (ids::access_key_id(), ids::secret_access_key()));
            if tx.get(&ACCESS_KEYS, &access_key_id)?.is_some() {
                return Err(Error::AlreadyExists(format!("The access key id '{access_key_id}'")));
            }
            let created_ms = now_ms();
            tx.insert(
                &ACCOUNTS,
                &account_id,
                &AccountRecord {
                    id: account_id.clone(),
                    name: new.name.clone(),
                    admin: new.admin,
                    default_vpc_id: ids::resource_id("vpc"),
                    created_ms,
                    ebs_encryption_by_default: false,
                    ebs_default_kms_key_id: None,
                    serial_console_access: false,
                },
            )?;
            crate::vpcs::ensure_default_network(tx, self.topology(), &account_id, "", self.public_network())?;
            tx.insert(
                &ACCESS_KEYS,
                &access_key_id,
                &AccessKeyRecord {
                    access_key_id: access_key_id.clone(),
                    secret_access_key: secret_access_key.clone(),
                    account_id: account_id.clone(),
                    created_ms,
                },
            )?;
            Ok(Credentials { account_id, name: new.name.clone(), admin: new.admin, access_key_id, secret_access_key })
        })
    }

    /// Creates the admin account when there is no account at all.
    pub fn bootstrap_admin(&self) -> Result<Option<Credentials>> {
        if self.store().read(|tx| tx.scan(&ACCOUNTS, ""))?.is_empty() {
            let admin = NewAccount { name: "admin".into(), admin: true, ..Default::default() };
            return self.create_account(admin).map(Some);
        }
        Ok(None)
    }

    pub fn list_accounts(&self) -> Result<Vec<AccountSummary>> {
        self.store().read(|tx| {
            let keys = tx.scan(&ACCESS_KEYS, "")?;
            Ok(tx
                .scan(&ACCOUNTS, "")?
                .into_iter()
                .map(|(_, a)| AccountSummary {
                    access_key_ids: keys
                        .iter()
                        .filter(|(_, k)| k.account_id == a.id)
                        .map(|(_, k)| k.access_key_id.clone())
                        .collect(),
                    account_id: a.id,
                    name: a.name,
                    admin: a.admin,
                })
                .collect())
        })
    }

    /// The principal an access key belongs to, if any.
    /// Who holds `access_key_id`. Every request asks, so answers are kept for
    /// [`PRINCIPAL_TTL`]: keys are only ever added, and a later change would show within it.
    pub fn principal(&self, access_key_id: &str) -> Result<Option<Principal>> {
        let now = std::time::Instant::now();
        let cache = self.principals.read().unwrap_or_else(|p| p.into_inner());
        if let Some((principal, _)) = cache.get(access_key_id).filter(|(_, at)| now.duration_since(*at) < PRINCIPAL_TTL)
        {
            return Ok(Some(principal.clone()));
        }
        drop(cache);
        let found = self.lookup_principal(access_key_id)?;
        if let Some(principal) = &found {
            let mut cache = self.principals.write().unwrap_or_else(|p| p.into_inner());
            // Unknown keys are never kept, so the map holds at most the keys that exist.
            cache.insert(access_key_id.to_owned(), (principal.clone(), now));
        }
        Ok(found)
    }

    /// Drops the remembered principals (their default VPC changed).
    pub(crate) fn forget_principals(&self) {
        self.principals.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn lookup_principal(&self, access_key_id: &str) -> Result<Option<Principal>> {
        self.store().read(|tx| {
            let Some(key) = tx.get(&ACCESS_KEYS, access_key_id)? else { return Ok(None) };
            let Some(account) = tx.get(&ACCOUNTS, &key.account_id)? else { return Ok(None) };
            Ok(Some(Principal {
                account_id: account.id,
                admin: account.admin,
                secret_access_key: key.secret_access_key,
                default_vpc_id: account.default_vpc_id,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::backend;

    #[test]
    fn bootstrap_happens_once() {
        let b = backend();
        let admin = b.bootstrap_admin().unwrap().expect("first start creates the admin");
        assert!(admin.admin);
        assert!(b.bootstrap_admin().unwrap().is_none());
        let p = b.principal(&admin.access_key_id).unwrap().unwrap();
        assert_eq!((p.account_id, p.secret_access_key), (admin.account_id, admin.secret_access_key));
    }

    #[test]
    fn given_ids_and_keys_are_kept_and_duplicates_refused() {
        let b = backend();
        let new = NewAccount {
            name: "team-a".into(),
            admin: false,
            account_id: Some("123456789012".into()),
            access_key: Some(("AKIAEXAMPLEKEY00001".into(), "secret-secret-secret".into())),
        };
        let c = b.create_account(new.clone()).unwrap();
        assert_eq!(c.account_id, "123456789012");
        assert_eq!(c.access_key_id, "AKIAEXAMPLEKEY00001");
        assert!(matches!(b.create_account(new.clone()), Err(Error::AlreadyExists(_))));
        let renamed = NewAccount { name: "team-b".into(), ..new };
        assert!(matches!(b.create_account(renamed), Err(Error::AlreadyExists(_))));
        let list = b.list_accounts().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].access_key_ids, ["AKIAEXAMPLEKEY00001"]);
    }

    #[test]
    fn bad_names_and_ids_are_refused() {
        let b = backend();
        for new in [
            NewAccount { name: "".into(), ..Default::default() },
            NewAccount { name: "has space".into(), ..Default::default() },
            NewAccount { name: "ok".into(), account_id: Some("12".into()), ..Default::default() },
            NewAccount { name: "ok".into(), access_key: Some(("short".into(), "x".repeat(20))), ..Default::default() },
        ] {
            assert!(matches!(b.create_account(new), Err(Error::InvalidParameter { .. })));
        }
        assert!(b.list_accounts().unwrap().is_empty());
    }
}
