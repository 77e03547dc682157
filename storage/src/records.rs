//! The persisted records. Each carries a layout version (see [`Record`]); times are Unix
//! milliseconds.

use serde::{Deserialize, Serialize};

use crate::Record;

/// Key: account id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub id: String,
    pub name: String,
    pub admin: bool,
    pub default_vpc_id: String,
    pub created_ms: i64,
}

impl Record for AccountRecord {
    const VERSION: u8 = 1;
}

/// Key: access key id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: String,
    pub created_ms: i64,
}

impl Record for AccessKeyRecord {
    const VERSION: u8 = 1;
}

/// Key: `{account}/{key pair id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyPairRecord {
    pub id: String,
    pub name: String,
    pub key_type: String,
    pub fingerprint: String,
    /// The OpenSSH public key line.
    pub public_key: String,
    pub created_ms: i64,
}

impl Record for KeyPairRecord {
    const VERSION: u8 = 1;
}

/// A unique name inside an account. Key: `{account}/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameRecord {
    pub id: String,
}

impl Record for NameRecord {
    const VERSION: u8 = 1;
}

/// Key: `{account}/{resource id}/{tag key}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagRecord {
    pub resource_id: String,
    pub key: String,
    pub value: String,
}

impl Record for TagRecord {
    const VERSION: u8 = 1;
}
