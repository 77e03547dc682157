//! The Stratus domain, behind the gateway and above storage.
//!
//! Every operation is a synchronous method on [`Backend`] that validates its input, reads or
//! writes redb through one [`storage::Store`] transaction, and answers with domain views or a
//! typed [`Error`]. The gateway runs these calls off its async executor and maps [`Error`] to
//! EC2 codes in one place.
//!
//! Areas so far: [`accounts`] (who may call, and with which keys), [`key_pairs`], [`tags`]
//! (generic over resource ids) and the [`topology`] of regions, zones and instance types.

pub mod accounts;
pub mod ids;
pub mod key_pairs;
pub mod tags;
pub mod topology;

use storage::Store;

pub use topology::Topology;

/// The kinds of resource an id can name; the prefix of an id tells its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Instance,
    Image,
    Volume,
    Snapshot,
    SecurityGroup,
    KeyPair,
    Vpc,
    Subnet,
    NetworkInterface,
    Reservation,
    Host,
}

impl ResourceKind {
    const PREFIXES: &'static [(&'static str, ResourceKind)] = &[
        ("i-", Self::Instance),
        ("ami-", Self::Image),
        ("vol-", Self::Volume),
        ("snap-", Self::Snapshot),
        ("sg-", Self::SecurityGroup),
        ("key-", Self::KeyPair),
        ("vpc-", Self::Vpc),
        ("subnet-", Self::Subnet),
        ("eni-", Self::NetworkInterface),
        ("r-", Self::Reservation),
        ("h-", Self::Host),
    ];

    /// The kind an id names, when it is well formed (`prefix` + hex).
    pub fn of_id(id: &str) -> Option<Self> {
        Self::PREFIXES.iter().find_map(|(prefix, kind)| {
            let rest = id.strip_prefix(prefix)?;
            (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit())).then_some(*kind)
        })
    }

    /// The `resource-type` EC2 reports for tags.
    pub fn resource_type(self) -> &'static str {
        match self {
            Self::Instance => "instance",
            Self::Image => "image",
            Self::Volume => "volume",
            Self::Snapshot => "snapshot",
            Self::SecurityGroup => "security-group",
            Self::KeyPair => "key-pair",
            Self::Vpc => "vpc",
            Self::Subnet => "subnet",
            Self::NetworkInterface => "network-interface",
            Self::Reservation => "reservation",
            Self::Host => "dedicated-host",
        }
    }
}

/// What can go wrong in the domain. Each variant's doc comment is its message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key pair '{0}' does not exist
    #[error("The key pair '{0}' does not exist")]
    KeyPairNotFound(String),
    /// The keypair already exists
    #[error("The keypair '{0}' already exists.")]
    KeyPairDuplicate(String),
    /// The public key is not in a format Stratus understands
    #[error("Key is not in valid OpenSSH public key format ({0})")]
    InvalidKeyFormat(String),
    /// A resource named by id does not exist in the caller's account
    #[error("The {kind:?} '{id}' does not exist")]
    ResourceNotFound { kind: ResourceKind, id: String },
    /// An id that names no kind of resource
    #[error("The ID '{0}' is not valid")]
    MalformedId(String),
    /// A parameter value the domain rejects
    #[error("{message}")]
    InvalidParameter { name: &'static str, message: String },
    /// Too many tags on one resource
    #[error("The maximum number of tags for resource '{0}' has been reached.")]
    TagLimitExceeded(String),
    /// An account or access key that already exists
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// storage failed
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub struct Backend {
    store: Store,
    topology: Topology,
}

impl Backend {
    pub fn new(store: Store, topology: Topology) -> Self {
        Self { store, topology }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_tell_their_kind() {
        assert_eq!(ResourceKind::of_id("key-0123456789abcdef0"), Some(ResourceKind::KeyPair));
        assert_eq!(ResourceKind::of_id("i-0a"), Some(ResourceKind::Instance));
        assert_eq!(ResourceKind::of_id("i-"), None);
        assert_eq!(ResourceKind::of_id("i-xyz"), None);
        assert_eq!(ResourceKind::of_id("bogus"), None);
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub fn backend() -> Backend {
        Backend::new(Store::in_memory().unwrap(), Topology::default())
    }
}
