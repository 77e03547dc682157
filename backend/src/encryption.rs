//! Encryption at rest of volumes and snapshots, EC2's way, without a KMS.
//!
//! 1. An encrypted volume's file is a qcow2 with LUKS inside: what the guest writes is sealed
//!    under a data key that only the volume's passphrase opens. Every volume and snapshot gets
//!    a random passphrase of its own ([`seal`]), kept in its record ([`storage::Encryption`]).
//! 2. A host gets a passphrase as a libvirt secret (ephemeral and private) only for the moment
//!    QEMU opens the disk: a start, a hot-plug, an incoming migration
//!    ([`crate::hosts::Host::lending_keys`]).
//! 3. Copies are re-encrypted by qemu-img under the new record's passphrase ([`crate::disk`]):
//!    a snapshot of an encrypted volume, a volume from an encrypted snapshot, a copied
//!    snapshot asked to be encrypted.
//! 4. Stratus has no KMS. The KMS key a request names (or the account's default, or the
//!    account's AWS-managed key) is checked for form, shown as the ARN EC2 shows, and echoed;
//!    the data keys are Stratus's own.
//!
//! EC2's rules, as [`kms_key_for`] applies them: a new volume is encrypted when asked, when its
//! snapshot is, or when the account encrypts by default; `Encrypted=false` does not undo the
//! last two; a `KmsKeyId` needs encryption.

use storage::tables::ACCOUNTS;
use storage::Encryption;

use crate::{invalid, Backend, Error, Result};

/// What a request says of a new volume's or snapshot's encryption.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncryptionAsk {
    pub encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
}

/// An account's EBS settings (EC2's EbsEncryptionByDefault and EbsDefaultKmsKeyId).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EbsDefaults {
    pub encrypt: bool,
    /// As set by ModifyEbsDefaultKmsKeyId (an ARN); `None`: the AWS-managed key.
    pub kms_key_id: Option<String>,
}

/// The alias EC2 answers GetEbsDefaultKmsKeyId with while no key was chosen.
pub const MANAGED_KEY_ALIAS: &str = "alias/aws/ebs";

/// The id of an account's AWS-managed EBS key: stable, and the same in every region.
fn managed_key_id(account: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("stratus:kms:aws/ebs:{account}").as_bytes()).to_string()
}

/// The ARN of the account's AWS-managed EBS key in `region`.
pub fn managed_key_arn(region: &str, account: &str) -> String {
    let partition = crate::topology::partition(region).0;
    format!("arn:{partition}:kms:{region}:{account}:key/{}", managed_key_id(account))
}

/// Whether `kms_key_id` is the account's AWS-managed key, which EC2 never lets a shared
/// snapshot use.
pub fn is_managed_key(kms_key_id: &str, account: &str) -> bool {
    kms_key_id.ends_with(&format!(":{account}:key/{}", managed_key_id(account)))
}

fn is_key_id(id: &str) -> bool {
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    uuid::Uuid::try_parse(id).is_ok_and(|u| u.hyphenated().to_string() == id.to_ascii_lowercase())
        || id.strip_prefix("mrk-").is_some_and(|rest| rest.len() == 32 && hex(rest))
}

fn is_alias_name(name: &str) -> bool {
    (1..=250).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
}

/// A KMS key as EC2 shows it: a key id or `alias/…` becomes the caller's ARN in `region`
/// (`alias/aws/ebs` the AWS-managed key's); an ARN stays as given, whosever it is.
pub fn kms_key_arn(given: &str, region: &str, account: &str) -> Result<String> {
    let refused = || {
        invalid(
            "KmsKeyId",
            format!("Value ({given}) for parameter kmsKeyId is invalid. Expected a KMS key id, alias, key ARN or alias ARN."),
        )
    };
    let partition = crate::topology::partition(region).0;
    if given == MANAGED_KEY_ALIAS {
        return Ok(managed_key_arn(region, account));
    }
    if is_key_id(given) {
        return Ok(format!("arn:{partition}:kms:{region}:{account}:key/{}", given.to_ascii_lowercase()));
    }
    if let Some(name) = given.strip_prefix("alias/") {
        return if is_alias_name(name) {
            Ok(format!("arn:{partition}:kms:{region}:{account}:{given}"))
        } else {
            Err(refused())
        };
    }
    let parts: Vec<&str> = given.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", p, "kms", r, owner, resource]
            if p.starts_with("aws")
                && !r.is_empty()
                && owner.len() == 12
                && owner.bytes().all(|b| b.is_ascii_digit())
                && (resource.strip_prefix("key/").is_some_and(is_key_id)
                    || resource.strip_prefix("alias/").is_some_and(is_alias_name)) =>
        {
            Ok(given.to_owned())
        }
        _ => Err(refused()),
    }
}

/// The KMS key a new volume (or snapshot copy) is encrypted under, by EC2's rules, or `None`
/// when it stays plain. `source` is the encryption of the snapshot it is made from.
pub fn kms_key_for(
    ask: &EncryptionAsk,
    source: Option<&Encryption>,
    defaults: &EbsDefaults,
    region: &str,
    account: &str,
) -> Result<Option<String>> {
    let encrypted = ask.encrypted == Some(true) || source.is_some() || defaults.encrypt;
    if let Some(given) = &ask.kms_key_id {
        if !encrypted {
            return Err(Error::ParameterDependency(
                "The parameter KmsKeyId requires the parameter Encrypted to be set.".into(),
            ));
        }
        return kms_key_arn(given, region, account).map(Some);
    }
    if !encrypted {
        return Ok(None);
    }
    Ok(Some(match (source, &defaults.kms_key_id) {
        (Some(source), _) if ask.encrypted.is_none() || defaults.kms_key_id.is_none() => source.kms_key_id.clone(),
        (_, Some(default)) => default.clone(),
        _ => managed_key_arn(region, account),
    }))
}

/// A new record's encryption under `kms_key_id`: a passphrase and a libvirt secret of its own.
pub fn seal(kms_key_id: String) -> Encryption {
    Encryption { kms_key_id, passphrase: crate::disk::new_passphrase(), secret_uuid: uuid::Uuid::new_v4().to_string() }
}

impl Backend {
    /// The account's EBS settings.
    pub fn ebs_defaults(&self, account: &str) -> Result<EbsDefaults> {
        let record = self.store().read(|tx| tx.get(&ACCOUNTS, account))?;
        Ok(record.map_or_else(EbsDefaults::default, |a| EbsDefaults {
            encrypt: a.ebs_encryption_by_default,
            kms_key_id: a.ebs_default_kms_key_id,
        }))
    }

    /// Enable/DisableEbsEncryptionByDefault; answers the new setting.
    pub fn set_ebs_encryption_by_default(&self, account: &str, on: bool) -> Result<bool> {
        self.change_account(account, |a| a.ebs_encryption_by_default = on)?;
        Ok(on)
    }

    /// ModifyEbsDefaultKmsKeyId (`Some`) and ResetEbsDefaultKmsKeyId (`None`); answers the key
    /// as GetEbsDefaultKmsKeyId will.
    pub fn set_ebs_default_kms_key(&self, account: &str, region: &str, key: Option<&str>) -> Result<String> {
        let arn = key.map(|k| kms_key_arn(k, region, account)).transpose()?;
        self.change_account(account, |a| a.ebs_default_kms_key_id = arn.clone())?;
        Ok(arn.unwrap_or_else(|| MANAGED_KEY_ALIAS.to_owned()))
    }

    pub(crate) fn change_account(&self, account: &str, change: impl FnOnce(&mut storage::AccountRecord)) -> Result<()> {
        self.store().write(|tx| {
            let mut record =
                tx.get(&ACCOUNTS, account)?.ok_or_else(|| Error::Io(format!("account {account} is gone")))?;
            change(&mut record);
            tx.insert(&ACCOUNTS, account, &record)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "123456789012";
    const KEY: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    fn ask(encrypted: Option<bool>, kms: Option<&str>) -> EncryptionAsk {
        EncryptionAsk { encrypted, kms_key_id: kms.map(str::to_owned) }
    }

    #[test]
    fn kms_keys_are_shown_as_ec2_shows_them() {
        let arn = format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY}");
        assert_eq!(kms_key_arn(KEY, "us-east-1", ACCOUNT).unwrap(), arn);
        assert_eq!(kms_key_arn(&arn, "eu-west-1", ACCOUNT).unwrap(), arn, "an ARN stays as given");
        assert_eq!(
            kms_key_arn("alias/team", "cn-north-1", ACCOUNT).unwrap(),
            format!("arn:aws-cn:kms:cn-north-1:{ACCOUNT}:alias/team")
        );
        assert_eq!(
            kms_key_arn("mrk-0123456789abcdef0123456789abcdef", "us-east-1", ACCOUNT).unwrap(),
            format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/mrk-0123456789abcdef0123456789abcdef")
        );
        let other = format!("arn:aws:kms:us-east-1:210987654321:key/{KEY}");
        assert_eq!(kms_key_arn(&other, "us-east-1", ACCOUNT).unwrap(), other, "another account's key may be named");
        let managed = kms_key_arn(MANAGED_KEY_ALIAS, "us-east-1", ACCOUNT).unwrap();
        assert_eq!(managed, managed_key_arn("us-east-1", ACCOUNT));
        assert!(is_managed_key(&managed, ACCOUNT) && !is_managed_key(&arn, ACCOUNT));
        assert!(!is_managed_key(&managed, "210987654321"), "one account's managed key is not another's");
        for bad in [
            "",
            "key",
            "1234",
            "alias/",
            "alias/a b",
            "arn:aws:kms:us-east-1:1234:key/x",
            "arn:aws:s3:::b",
            KEY.replace('-', "").as_str(),
        ] {
            assert!(
                matches!(kms_key_arn(bad, "us-east-1", ACCOUNT), Err(Error::InvalidParameter { name: "KmsKeyId", .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn what_is_encrypted_follows_ec2s_rules() {
        let off = EbsDefaults::default();
        let on = EbsDefaults { encrypt: true, kms_key_id: None };
        let region = "us-east-1";
        let managed = managed_key_arn(region, ACCOUNT);
        let mine = format!("arn:aws:kms:{region}:{ACCOUNT}:key/{KEY}");
        let plain = |a: &EncryptionAsk, d: &EbsDefaults| kms_key_for(a, None, d, region, ACCOUNT).unwrap();
        assert_eq!(plain(&ask(None, None), &off), None);
        assert_eq!(plain(&ask(Some(false), None), &off), None);
        assert_eq!(plain(&ask(Some(true), None), &off), Some(managed.clone()));
        assert_eq!(plain(&ask(Some(true), Some(KEY)), &off), Some(mine.clone()));
        assert_eq!(
            plain(&ask(Some(false), None), &on),
            Some(managed.clone()),
            "the default cannot be turned off per volume"
        );
        let chosen = EbsDefaults { encrypt: true, kms_key_id: Some(mine.clone()) };
        assert_eq!(plain(&ask(None, None), &chosen), Some(mine.clone()));
        let error = kms_key_for(&ask(None, Some(KEY)), None, &off, region, ACCOUNT).unwrap_err();
        assert!(matches!(error, Error::ParameterDependency(_)), "{error:?}");

        // From an encrypted snapshot: encrypted, under its key unless another is named.
        let snapshot = seal(mine.clone());
        let from = |a: &EncryptionAsk, d: &EbsDefaults| kms_key_for(a, Some(&snapshot), d, region, ACCOUNT).unwrap();
        assert_eq!(from(&ask(Some(false), None), &off), Some(mine.clone()));
        assert_eq!(from(&ask(None, Some(MANAGED_KEY_ALIAS)), &off), Some(managed));
        let other =
            EbsDefaults { encrypt: false, kms_key_id: Some("arn:aws:kms:us-east-1:123456789012:alias/x".into()) };
        assert_eq!(from(&ask(Some(true), None), &other).unwrap(), "arn:aws:kms:us-east-1:123456789012:alias/x");
    }

    #[test]
    fn every_seal_is_its_own() {
        let (a, b) = (seal("k".into()), seal("k".into()));
        assert_ne!(a.passphrase, b.passphrase);
        assert_ne!(a.secret_uuid, b.secret_uuid);
        assert!(!format!("{a:?}").contains(&a.passphrase), "records are logged: the passphrase never is");
    }
}
