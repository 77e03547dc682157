//! Key pairs: generated (RSA 2048 or ED25519) or imported (from an OpenSSH line, an RFC 4716
//! file, PEM or DER, [`parse_public`]), fingerprinted the way AWS does.
//!
//! AWS fingerprints differ by origin and type:
//! - created RSA: SHA-1 of the private key as PKCS#8 DER, colon-separated hex;
//! - imported RSA: MD5 of the public key as DER SubjectPublicKeyInfo, colon-separated hex;
//! - ED25519 (either): base64 of the SHA-256 of the OpenSSH public key blob, as `ssh-keygen -l`
//!   prints it, with the padding AWS keeps.

use base64::Engine;
use md5::Md5;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, LineEnding, PrivateKey, PublicKey};
use storage::tables::{KEY_PAIRS, KEY_PAIR_NAMES};
use storage::{KeyPairRecord, NameRecord, Reads};

use crate::tags::{drop_tags, put_tags, validate_tags};
use crate::{ids, now_ms, Backend, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    Ed25519,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa => "rsa",
            Self::Ed25519 => "ed25519",
        }
    }
}

/// A key pair as Describe shows it.
pub type KeyPair = KeyPairRecord;

/// How a request names a key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPairRef {
    Name(String),
    Id(String),
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn ed25519_fingerprint(public: &PublicKey) -> Result<String> {
    let blob = public.to_bytes().map_err(|e| Error::InvalidKeyFormat(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(blob)))
}

fn key_error(e: impl std::fmt::Display) -> Error {
    Error::InvalidKeyFormat(e.to_string())
}

/// A new key: (type, fingerprint, OpenSSH public line, private key PEM).
fn generate(key_type: KeyType, name: &str) -> Result<(String, String, String)> {
    match key_type {
        KeyType::Rsa => {
            let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(key_error)?;
            let pkcs8 = private.to_pkcs8_der().map_err(key_error)?;
            let fingerprint = colon_hex(&Sha1::digest(pkcs8.as_bytes()));
            let ssh_public = ssh_key::public::RsaPublicKey::try_from(private.to_public_key()).map_err(key_error)?;
            let public = PublicKey::new(KeyData::Rsa(ssh_public), name).to_openssh().map_err(key_error)?;
            let pem = private.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).map_err(key_error)?;
            Ok((fingerprint, public, pem.to_string()))
        }
        KeyType::Ed25519 => {
            let mut private = PrivateKey::random(&mut rand::thread_rng(), Algorithm::Ed25519).map_err(key_error)?;
            private.set_comment(name);
            let fingerprint = ed25519_fingerprint(private.public_key())?;
            let public = private.public_key().to_openssh().map_err(key_error)?;
            let pem = private.to_openssh(LineEnding::LF).map_err(key_error)?;
            Ok((fingerprint, public, pem.to_string()))
        }
    }
}

/// An RFC 4716 ("SSH2") public key file: headers (`Tag: value`, continued by a trailing `\`),
/// then the key's wire blob in base64.
fn rfc4716(text: &str) -> Result<PublicKey> {
    let mut body = String::new();
    let mut continued = false;
    for line in text.lines().map(str::trim).skip(1) {
        if line.starts_with("---- END SSH2 PUBLIC KEY ----") {
            let blob = base64::engine::general_purpose::STANDARD.decode(&body).map_err(key_error)?;
            return PublicKey::from_bytes(&blob).map_err(key_error);
        }
        if continued || line.contains(':') {
            continued = line.ends_with('\\');
        } else {
            body.push_str(line);
        }
    }
    Err(key_error("no END line"))
}

/// The DER a PEM block holds.
fn pem_body(text: &str) -> Result<Vec<u8>> {
    let body: String = text.lines().map(str::trim).filter(|l| !l.starts_with("-----") && !l.contains(':')).collect();
    base64::engine::general_purpose::STANDARD.decode(body).map_err(key_error)
}

/// The SubjectPublicKeyInfo of an ED25519 key: this prefix, then its 32 bytes (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// A public key as DER: an RSA key's SubjectPublicKeyInfo or PKCS#1 form, or an ED25519 key's
/// SubjectPublicKeyInfo.
fn from_der(der: &[u8]) -> Result<PublicKey> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::traits::PublicKeyParts;
    if let Some(key) = der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        let key: [u8; 32] = key.try_into().map_err(|_| key_error("an ED25519 key is 32 bytes"))?;
        return Ok(PublicKey::new(KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(key)), ""));
    }
    let rsa = rsa::RsaPublicKey::from_public_key_der(der)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_der(der))
        .map_err(|_| key_error("neither an RSA nor an ED25519 public key"))?;
    let ssh_rsa = ssh_key::public::RsaPublicKey {
        e: ssh_key::Mpint::from_positive_bytes(&rsa.e().to_bytes_be()).map_err(key_error)?,
        n: ssh_key::Mpint::from_positive_bytes(&rsa.n().to_bytes_be()).map_err(key_error)?,
    };
    Ok(PublicKey::new(KeyData::Rsa(ssh_rsa), ""))
}

/// Parses imported material in the formats EC2 takes: an OpenSSH public key line, an RFC 4716
/// SSH2 public key file, or the key as DER (base64) or PEM (SubjectPublicKeyInfo, or PKCS#1 for
/// RSA). Answers (type, fingerprint, OpenSSH public line).
fn parse_public(material: &[u8]) -> Result<(KeyType, String, String)> {
    let text = std::str::from_utf8(material).map_err(|_| key_error("not text"))?.trim();
    let compact: String = text.split_whitespace().collect();
    let public = if text.starts_with("---- BEGIN SSH2 PUBLIC KEY ----") {
        rfc4716(text)?
    } else if text.starts_with("-----BEGIN ") {
        from_der(&pem_body(text)?)?
    } else if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(&compact).map_err(drop).and_then(|der| {
        // A bare base64 blob is DER; an OpenSSH line has its type and a space first.
        if text.starts_with("ssh-") {
            Err(())
        } else {
            Ok(der)
        }
    }) {
        from_der(&der)?
    } else {
        PublicKey::from_openssh(text).map_err(key_error)?
    };
    match public.key_data() {
        KeyData::Rsa(ssh_rsa) => {
            // Built from the parts, as AWS also takes 1024-bit keys, which ssh-key's conversion refuses.
            let part = |m: &ssh_key::Mpint| m.as_positive_bytes().map(rsa::BigUint::from_bytes_be);
            let (Some(n), Some(e)) = (part(&ssh_rsa.n), part(&ssh_rsa.e)) else {
                return Err(key_error("malformed RSA key"));
            };
            let rsa_public = rsa::RsaPublicKey::new(n, e).map_err(key_error)?;
            let spki = rsa_public.to_public_key_der().map_err(key_error)?;
            let line = public.to_openssh().map_err(key_error)?;
            Ok((KeyType::Rsa, colon_hex(&Md5::digest(spki.as_bytes())), line))
        }
        KeyData::Ed25519(_) => {
            let line = public.to_openssh().map_err(key_error)?;
            Ok((KeyType::Ed25519, ed25519_fingerprint(&public)?, line))
        }
        other => Err(Error::InvalidKeyFormat(format!("{} keys are not supported", other.algorithm()))),
    }
}

fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 || !name.is_ascii() {
        return Err(Error::InvalidParameter {
            name: "KeyName",
            message: "A key pair name is 1 to 255 ASCII characters".into(),
        });
    }
    Ok(())
}

fn record_key(account: &str, id: &str) -> String {
    format!("{account}/{id}")
}

/// The OpenSSH public key of the account's key pair `name`, inside the caller's transaction.
pub(crate) fn public_key(tx: &storage::WriteTx, account: &str, name: &str) -> Result<String> {
    let missing = || Error::KeyPairNotFound(name.to_owned());
    let id = tx.get(&KEY_PAIR_NAMES, &record_key(account, name))?.ok_or_else(missing)?.id;
    Ok(tx.get(&KEY_PAIRS, &record_key(account, &id))?.ok_or_else(missing)?.public_key)
}

impl Backend {
    /// Creates a key pair; answers it with its private key, which Stratus does not keep.
    pub fn create_key_pair(
        &self,
        account: &str,
        name: &str,
        key_type: KeyType,
        tags: &[(String, String)],
    ) -> Result<(KeyPair, String)> {
        validate_name(name)?;
        validate_tags(tags)?;
        let (fingerprint, public_key, private_pem) = generate(key_type, name)?;
        let pair = self.store_key_pair(account, name, key_type, fingerprint, public_key, tags)?;
        Ok((pair, private_pem))
    }

    pub fn import_key_pair(
        &self,
        account: &str,
        name: &str,
        material: &[u8],
        tags: &[(String, String)],
    ) -> Result<KeyPair> {
        validate_name(name)?;
        validate_tags(tags)?;
        let (key_type, fingerprint, public_key) = parse_public(material)?;
        self.store_key_pair(account, name, key_type, fingerprint, public_key, tags)
    }

    fn store_key_pair(
        &self,
        account: &str,
        name: &str,
        key_type: KeyType,
        fingerprint: String,
        public_key: String,
        tags: &[(String, String)],
    ) -> Result<KeyPair> {
        self.store().write(|tx| {
            let name_key = record_key(account, name);
            if tx.get(&KEY_PAIR_NAMES, &name_key)?.is_some() {
                return Err(Error::KeyPairDuplicate(name.to_owned()));
            }
            let pair = KeyPairRecord {
                id: ids::resource_id("key"),
                name: name.to_owned(),
                key_type: key_type.as_str().to_owned(),
                fingerprint,
                public_key,
                created_ms: now_ms(),
            };
            tx.insert(&KEY_PAIRS, &record_key(account, &pair.id), &pair)?;
            tx.insert(&KEY_PAIR_NAMES, &name_key, &NameRecord { id: pair.id.clone() })?;
            put_tags(tx, account, &pair.id, tags)?;
            Ok(pair)
        })
    }

    /// The account's key pairs, ordered by id.
    pub fn key_pairs(&self, account: &str) -> Result<Vec<KeyPair>> {
        self.key_pairs_named(account, &[], &[])
    }

    /// The account's key pairs that `names` or `ids` name, by point reads (a name through the
    /// names table), each once, ordered by id; those that name nothing are left out. With
    /// neither, every key pair of the account (DescribeKeyPairs is not paged: its answer is the
    /// whole list). Terraform's `aws_key_pair` reads its pair by name or id at every plan.
    pub fn key_pairs_named(&self, account: &str, names: &[String], ids: &[String]) -> Result<Vec<KeyPair>> {
        self.store().read(|tx| {
            if names.is_empty() && ids.is_empty() {
                let pairs = tx.scan(&KEY_PAIRS, &format!("{account}/"))?;
                return Ok(pairs.into_iter().map(|(_, pair)| pair).collect());
            }
            // Two reads in all on PostgreSQL: the names' ids, then the pairs (in key order, which
            // is id order within the account).
            let name_keys: Vec<String> = names.iter().map(|name| record_key(account, name)).collect();
            let name_keys: Vec<&str> = name_keys.iter().map(String::as_str).collect();
            let mut wanted: std::collections::BTreeSet<String> = ids.iter().cloned().collect();
            wanted.extend(tx.get_many(&KEY_PAIR_NAMES, &name_keys)?.into_iter().map(|(_, named)| named.id));
            let pair_keys: Vec<String> = wanted.iter().map(|id| record_key(account, id)).collect();
            let pair_keys: Vec<&str> = pair_keys.iter().map(String::as_str).collect();
            Ok(tx.get_many(&KEY_PAIRS, &pair_keys)?.into_iter().map(|(_, pair)| pair).collect())
        })
    }

    /// Deletes a key pair; answers its id, or `None` when there was none (EC2 succeeds then).
    pub fn delete_key_pair(&self, account: &str, which: &KeyPairRef) -> Result<Option<String>> {
        self.store().write(|tx| {
            let id = match which {
                KeyPairRef::Id(id) => id.clone(),
                KeyPairRef::Name(name) => match tx.get(&KEY_PAIR_NAMES, &record_key(account, name))? {
                    Some(entry) => entry.id,
                    None => return Ok(None),
                },
            };
            let Some(pair) = tx.get(&KEY_PAIRS, &record_key(account, &id))? else {
                return match which {
                    KeyPairRef::Id(id) => Err(Error::KeyPairNotFound(id.clone())),
                    KeyPairRef::Name(_) => Ok(None),
                };
            };
            tx.remove(&KEY_PAIRS, &record_key(account, &id))?;
            tx.remove(&KEY_PAIR_NAMES, &record_key(account, &pair.name))?;
            drop_tags(tx, account, &id)?;
            Ok(Some(id))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::backend;
    use rsa::traits::PublicKeyParts;

    const ACCOUNT: &str = "111111111111";

    #[test]
    fn created_keys_carry_pem_and_a_fingerprint_of_their_kind() {
        let b = backend();
        let (rsa, pem) = b.create_key_pair(ACCOUNT, "r", KeyType::Rsa, &[]).unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert_eq!(rsa.fingerprint.len(), 59, "20 bytes of SHA-1 as colon hex");
        assert!(rsa.public_key.starts_with("ssh-rsa "));
        // The fingerprint is the SHA-1 of the PKCS#8 form of exactly this private key.
        let private = <rsa::RsaPrivateKey as rsa::pkcs1::DecodeRsaPrivateKey>::from_pkcs1_pem(&pem).unwrap();
        assert_eq!(colon_hex(&Sha1::digest(private.to_pkcs8_der().unwrap().as_bytes())), rsa.fingerprint);

        let (ed, pem) = b.create_key_pair(ACCOUNT, "e", KeyType::Ed25519, &[]).unwrap();
        assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(ed.fingerprint.ends_with('=') && ed.fingerprint.len() == 44);
        let private = PrivateKey::from_openssh(&pem).unwrap();
        assert_eq!(private.public_key().to_openssh().unwrap(), ed.public_key);
    }

    #[test]
    fn imported_keys_are_fingerprinted_like_aws() {
        let b = backend();
        let private = PrivateKey::random(&mut rand::thread_rng(), Algorithm::Ed25519).unwrap();
        let line = private.public_key().to_openssh().unwrap();
        let imported = b.import_key_pair(ACCOUNT, "ed", line.as_bytes(), &[]).unwrap();
        let expected = private.public_key().fingerprint(ssh_key::HashAlg::Sha256).to_string();
        assert_eq!(format!("SHA256:{}", imported.fingerprint.trim_end_matches('=')), expected);
        assert_eq!(imported.key_type, "ed25519");

        let rsa_private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        let ssh_public = ssh_key::public::RsaPublicKey {
            e: ssh_key::Mpint::from_positive_bytes(&rsa_private.e().to_bytes_be()).unwrap(),
            n: ssh_key::Mpint::from_positive_bytes(&rsa_private.n().to_bytes_be()).unwrap(),
        };
        let line = PublicKey::new(KeyData::Rsa(ssh_public), "me").to_openssh().unwrap();
        let imported = b.import_key_pair(ACCOUNT, "rsa", line.as_bytes(), &[]).unwrap();
        let spki = rsa_private.to_public_key().to_public_key_der().unwrap();
        assert_eq!(imported.fingerprint, colon_hex(&Md5::digest(spki.as_bytes())));
        assert_eq!(imported.fingerprint.len(), 47);
    }

    #[test]
    fn every_format_ec2_imports_is_the_same_key() {
        use rsa::pkcs1::EncodeRsaPublicKey;
        let b = backend();
        let rsa_private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let rsa_public = rsa_private.to_public_key();
        let ssh_public = PublicKey::new(
            KeyData::Rsa(ssh_key::public::RsaPublicKey::try_from(rsa_public.clone()).unwrap()),
            "me@laptop",
        );
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        // RFC 4716, with a header continued over two lines, as `ssh-keygen -e` may write it.
        let blob = b64(&ssh_public.to_bytes().unwrap());
        let wrapped: Vec<&str> = blob.as_bytes().chunks(70).map(|c| std::str::from_utf8(c).unwrap()).collect();
        let rfc4716 = format!(
            "---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"2048-bit RSA, converted \\\nby me\"\n{}\n---- END SSH2 PUBLIC KEY ----\n",
            wrapped.join("\n")
        );
        let spki = rsa_public.to_public_key_der().unwrap();
        let formats = [
            ssh_public.to_openssh().unwrap(),
            rfc4716,
            rsa_public.to_public_key_pem(rsa::pkcs8::LineEnding::LF).unwrap(),
            rsa_public.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap(),
            b64(spki.as_bytes()),
        ];
        let expected = colon_hex(&Md5::digest(spki.as_bytes()));
        let line = ssh_public.to_openssh().unwrap();
        let key_part = line.rsplit_once(' ').unwrap().0;
        for (i, material) in formats.iter().enumerate() {
            let pair = b.import_key_pair(ACCOUNT, &format!("rsa-{i}"), material.as_bytes(), &[]).unwrap();
            assert_eq!((pair.key_type.as_str(), pair.fingerprint.as_str()), ("rsa", expected.as_str()), "{material}");
            assert!(pair.public_key.starts_with(key_part), "{material}: {}", pair.public_key);
        }

        let ed = PrivateKey::random(&mut rand::thread_rng(), Algorithm::Ed25519).unwrap();
        let KeyData::Ed25519(raw) = ed.public_key().key_data() else { unreachable!() };
        let der = [&ED25519_SPKI_PREFIX[..], &raw.0[..]].concat();
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", b64(&der));
        let fingerprints: Vec<String> = [ed.public_key().to_openssh().unwrap(), b64(&der), pem]
            .iter()
            .enumerate()
            .map(|(i, m)| b.import_key_pair(ACCOUNT, &format!("ed-{i}"), m.as_bytes(), &[]).unwrap().fingerprint)
            .collect();
        assert!(fingerprints.iter().all(|f| *f == fingerprints[0]), "{fingerprints:?}");
        for garbage in [
            "---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
            "AAAA",
        ] {
            assert!(matches!(
                b.import_key_pair(ACCOUNT, "bad", garbage.as_bytes(), &[]),
                Err(Error::InvalidKeyFormat(_))
            ));
        }
    }

    #[test]
    fn names_are_unique_per_account_and_garbage_is_refused() {
        let b = backend();
        b.create_key_pair(ACCOUNT, "k", KeyType::Ed25519, &[]).unwrap();
        assert!(matches!(b.create_key_pair(ACCOUNT, "k", KeyType::Ed25519, &[]), Err(Error::KeyPairDuplicate(_))));
        b.create_key_pair("222222222222", "k", KeyType::Ed25519, &[]).unwrap();
        assert!(matches!(b.import_key_pair(ACCOUNT, "x", b"not a key", &[]), Err(Error::InvalidKeyFormat(_))));
        assert!(matches!(b.create_key_pair(ACCOUNT, "", KeyType::Rsa, &[]), Err(Error::InvalidParameter { .. })));
        assert_eq!(b.key_pairs(ACCOUNT).unwrap().len(), 1);
    }

    #[test]
    fn pairs_named_are_read_by_name_or_id_alone() {
        let b = backend();
        let (k1, _) = b.create_key_pair(ACCOUNT, "one", KeyType::Ed25519, &[]).unwrap();
        let (k2, _) = b.create_key_pair(ACCOUNT, "two", KeyType::Ed25519, &[]).unwrap();
        b.create_key_pair(ACCOUNT, "three", KeyType::Ed25519, &[]).unwrap();
        let (other, _) = b.create_key_pair("222222222222", "one", KeyType::Ed25519, &[]).unwrap();
        let ids_of = |pairs: Vec<KeyPair>| pairs.into_iter().map(|p| p.id).collect::<Vec<_>>();
        let mut both = vec![k1.id.clone(), k2.id.clone()];
        both.sort();
        let named = |names: &[&str], ids: &[&str]| {
            let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            ids_of(b.key_pairs_named(ACCOUNT, &owned(names), &owned(ids)).unwrap())
        };
        assert_eq!(named(&["one"], &[]), vec![k1.id.clone()]);
        assert_eq!(named(&["two", "one", "nope"], &[]), both, "each once, by id; a missing name left out");
        assert_eq!(named(&["one"], &[&k2.id, &k1.id]), both, "names and ids together, each once");
        assert_eq!(named(&[], &[&other.id]), Vec::<String>::new(), "another account's id names nothing");
        assert_eq!(b.key_pairs(ACCOUNT).unwrap().len(), 3, "neither: all of them");
    }

    #[test]
    fn delete_by_name_or_id_and_missing_names_succeed() {
        let b = backend();
        let (k, _) = b.create_key_pair(ACCOUNT, "k", KeyType::Ed25519, &[("a".into(), "b".into())]).unwrap();
        assert_eq!(b.delete_key_pair(ACCOUNT, &KeyPairRef::Name("nope".into())).unwrap(), None);
        assert!(matches!(
            b.delete_key_pair(ACCOUNT, &KeyPairRef::Id("key-0000000000000000a".into())),
            Err(Error::KeyPairNotFound(_))
        ));
        assert_eq!(b.delete_key_pair("222222222222", &KeyPairRef::Name("k".into())).unwrap(), None);
        assert_eq!(b.delete_key_pair(ACCOUNT, &KeyPairRef::Name("k".into())).unwrap(), Some(k.id));
        assert!(b.key_pairs(ACCOUNT).unwrap().is_empty());
        assert!(b.tags(ACCOUNT).unwrap().is_empty(), "tags go with the key pair");
        // The name is free again.
        b.create_key_pair(ACCOUNT, "k", KeyType::Ed25519, &[]).unwrap();
    }
}
