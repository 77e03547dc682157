//! The Stratus domain, behind the gateway and above storage.
//!
//! Every operation is a synchronous method on [`Backend`] that validates its input, reads or
//! writes redb through one [`storage::Store`] transaction, and answers with domain views or a
//! typed [`Error`]. The gateway runs these calls off its async executor and maps [`Error`] to
//! EC2 codes in one place.
//!
//! Work on virtualisation hosts never happens inside a request: requests record the new
//! state and kick the [`conductor`], which drives libvirt on blocking threads and keeps redb
//! and the hosts reconciled.
//!
//! Areas: [`accounts`] (who may call, and with which keys), [`key_pairs`], [`tags`] (generic
//! over resource ids), the [`topology`] of regions, zones, instance types and hosts,
//! [`images`], [`instances`] and their [`network`] and [`security_groups`], [`volumes`] and
//! snapshots, placement by the pure [`scheduler`], the
//! [`hosts`] pool behind the [`hypervisor::Hypervisor`] contract and its [`libvirt`] driver.

pub mod accounts;
pub mod addresses;
pub mod attributes;
pub mod bridge;
pub mod catalogue;
pub mod conductor;
pub mod dedicated;
pub mod disk;
pub mod encryption;
pub mod escalation;
pub mod fake;
pub mod hosts;
pub mod hypervisor;
pub mod ids;
pub mod images;
pub mod instances;
pub mod interfaces;
pub mod key_pairs;
pub mod launch_templates;
pub mod leadership;
pub mod libvirt;
pub mod listing;
pub mod maintenance;
pub mod migration;
pub mod migration_plan;
pub mod monitoring;
pub mod nat_gateways;
pub mod network;
pub mod ownership;
pub mod ping_trace;
pub mod scheduler;
pub mod security_groups;
pub mod serial_console;
pub mod sharing;
pub mod tags;
pub mod telemetry;
pub mod topology;
pub mod volumes;
pub mod vpc_network;
pub mod vpcs;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use hosts::HostPool;
use storage::Store;
use tokio::sync::mpsc;

pub use topology::Topology;

/// The kinds of resource an id can name; the prefix of an id tells its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Instance,
    Image,
    Volume,
    Snapshot,
    SecurityGroup,
    SecurityGroupRule,
    KeyPair,
    Vpc,
    Subnet,
    NetworkInterface,
    Reservation,
    Host,
    Migration,
    InternetGateway,
    RouteTable,
    NatGateway,
    NetworkAcl,
    DhcpOptions,
    ElasticIp,
    LaunchTemplate,
}

impl ResourceKind {
    const PREFIXES: &'static [(&'static str, ResourceKind)] = &[
        ("i-", Self::Instance),
        ("ami-", Self::Image),
        ("vol-", Self::Volume),
        ("snap-", Self::Snapshot),
        ("sg-", Self::SecurityGroup),
        ("sgr-", Self::SecurityGroupRule),
        ("key-", Self::KeyPair),
        ("vpc-", Self::Vpc),
        ("subnet-", Self::Subnet),
        ("eni-", Self::NetworkInterface),
        ("r-", Self::Reservation),
        ("h-", Self::Host),
        ("mig-", Self::Migration),
        ("igw-", Self::InternetGateway),
        ("rtb-", Self::RouteTable),
        ("nat-", Self::NatGateway),
        ("acl-", Self::NetworkAcl),
        ("dopt-", Self::DhcpOptions),
        ("eipalloc-", Self::ElasticIp),
        ("lt-", Self::LaunchTemplate),
    ];

    pub const ALL: &'static [ResourceKind] = &[
        Self::Instance,
        Self::Image,
        Self::Volume,
        Self::Snapshot,
        Self::SecurityGroup,
        Self::SecurityGroupRule,
        Self::KeyPair,
        Self::Vpc,
        Self::Subnet,
        Self::NetworkInterface,
        Self::Reservation,
        Self::Host,
        Self::Migration,
        Self::InternetGateway,
        Self::RouteTable,
        Self::NatGateway,
        Self::NetworkAcl,
        Self::DhcpOptions,
        Self::ElasticIp,
        Self::LaunchTemplate,
    ];

    /// What ids of this kind start with (`vol-`).
    pub fn prefix(self) -> &'static str {
        Self::PREFIXES.iter().find(|(_, kind)| *kind == self).map_or("", |(prefix, _)| prefix)
    }

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
            Self::SecurityGroupRule => "security-group-rule",
            Self::KeyPair => "key-pair",
            Self::Vpc => "vpc",
            Self::Subnet => "subnet",
            Self::NetworkInterface => "network-interface",
            Self::Reservation => "reservation",
            Self::Host => "dedicated-host",
            Self::Migration => "migration",
            Self::InternetGateway => "internet-gateway",
            Self::RouteTable => "route-table",
            Self::NatGateway => "natgateway",
            Self::NetworkAcl => "network-acl",
            Self::DhcpOptions => "dhcp-options",
            Self::ElasticIp => "elastic-ip",
            Self::LaunchTemplate => "launch-template",
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
    /// A security group named in a VPC that has none of that name
    #[error("The security group '{name}' does not exist in VPC '{vpc_id}'")]
    SecurityGroupNameNotFound { name: String, vpc_id: String },
    /// A security group name taken in the VPC
    #[error("The security group '{name}' already exists for VPC '{vpc_id}'")]
    SecurityGroupDuplicate { name: String, vpc_id: String },
    /// A rule that the group has already
    #[error("the specified rule \"{0}\" already exists")]
    PermissionDuplicate(String),
    /// A rule to revoke that the group does not have
    #[error("The specified rule does not exist in this security group ({0}).")]
    PermissionNotFound(String),
    /// Too many rules in one direction of a group
    #[error("The maximum number of rules per security group has been reached.")]
    RulesLimitExceeded,
    /// Something still uses the resource
    #[error("{0}")]
    DependencyViolation(String),
    /// A resource that may not be deleted by users
    #[error("{0}")]
    CannotDelete(String),
    /// A parameter the request needs and did not carry
    #[error("The request must contain the parameter {0}")]
    MissingParameter(String),
    /// The resource is not in a state that allows the operation
    #[error("{0}")]
    IncorrectState(String),
    /// The volume is attached
    #[error("{0}")]
    VolumeInUse(String),
    /// The volume and the instance are in different zones
    #[error("{0}")]
    ZoneMismatch(String),
    /// No such attachment
    #[error("{0}")]
    AttachmentNotFound(String),
    /// A modification is under way already
    #[error("{0}")]
    IncorrectModificationState(String),
    /// The operation does not apply to this resource
    #[error("{0}")]
    UnsupportedOperation(String),
    /// A parameter given without another that it needs
    #[error("{0}")]
    ParameterDependency(String),
    /// Parameters that cannot be given together
    #[error("{0}")]
    ParameterCombination(String),
    /// A launch template name that names none of the account's
    #[error("The specified launch template, with template name {0}, does not exist.")]
    LaunchTemplateNameNotFound(String),
    /// A launch template name the account has given already
    #[error("Launch template name already in use.")]
    LaunchTemplateNameTaken(String),
    /// A version the launch template does not have
    #[error("Could not find the specified version {version} for the launch template with ID {template_id}.")]
    LaunchTemplateVersionNotFound { template_id: String, version: String },
    /// More of something than an account may keep
    #[error("{0}")]
    LaunchTemplateLimit(String),
    /// An account id (or group) an image or snapshot cannot be shared with
    #[error("{message}")]
    InvalidAttributeItem { kind: ResourceKind, message: String },
    /// No pool host is free to dedicate
    #[error("There is no Dedicated Host capacity available to fulfill your request in {0}.")]
    InsufficientHostCapacity(String),
    /// No dedicated host of the account's takes the instance
    #[error("There is not enough capacity on the Dedicated Host to launch or start the instance ({0}).")]
    InsufficientCapacityOnHost(String),
    /// A launch's `BlockDeviceMapping.N` that cannot be made
    #[error("{0}")]
    InvalidBlockDeviceMapping(String),
    /// An instance type the hosts of the zone cannot run (its guests are not x86-64)
    #[error(
        "Your requested instance type ({instance_type}) is not supported in your requested Availability Zone ({zone})."
    )]
    UnsupportedInZone { instance_type: String, zone: String },
    /// An id that names no kind of resource
    #[error("The ID '{0}' is not valid")]
    MalformedId(String),
    /// A VPC block outside what EC2 allows
    #[error("The CIDR '{0}' is invalid.")]
    VpcRange(String),
    /// A subnet block outside its VPC or of a size EC2 does not allow
    #[error("The CIDR '{0}' is invalid.")]
    SubnetRange(String),
    /// A subnet block overlapping another subnet of the VPC
    #[error("The CIDR '{0}' conflicts with another subnet")]
    SubnetConflict(String),
    /// The account has no default VPC
    #[error("No default VPC for this user")]
    NoDefaultVpc,
    /// CreateDefaultVpc while there is one
    #[error("A Default VPC already exists for this account in this region.")]
    DefaultVpcExists,
    /// CreateDefaultSubnet where the zone has one
    #[error("A Default Subnet already exists in availability zone {0}.")]
    DefaultSubnetExists(String),
    /// An attachment or association that exists already
    #[error("Resource {0} is already associated.")]
    AlreadyAssociated(String),
    /// A gateway detached from a VPC it is not attached to
    #[error("resource {gateway} is not attached to network {vpc}")]
    GatewayNotAttached { gateway: String, vpc: String },
    /// A route whose destination the table has already
    #[error("The route identified by {0} already exists.")]
    RouteAlreadyExists(String),
    /// No route of that destination in the table
    #[error("no route with destination-cidr-block {destination} in route table {table}")]
    RouteNotFound { destination: String, table: String },
    /// The public address pool has no free address
    #[error("The maximum number of addresses has been reached.")]
    AddressLimitExceeded,
    /// A public address the account does not hold
    #[error("Address {0} not found.")]
    AddressNotFound(String),
    /// An address pointed into a VPC that has no internet gateway
    #[error("Network {0} is not attached to any internet gateway")]
    VpcWithoutGateway(String),
    /// An address that a NAT gateway uses
    #[error("The address {allocation} is in use by {user}.")]
    AddressInUseBy { allocation: String, user: String },
    /// An address released while something points at it
    #[error("The address {allocation} is associated ({association}): disassociate it first.")]
    AddressAssociated { allocation: String, association: String },
    /// A network interface attached (or an instance's own) where a detached one is needed
    #[error("{0}")]
    InterfaceInUse(String),
    /// No network interface attachment of that id
    #[error("The attachment ID '{0}' does not exist")]
    AttachmentIdNotFound(String),
    /// An instance has as many attachments as it may
    #[error("{0}")]
    AttachmentLimitExceeded(String),
    /// An interface would hold more private addresses than it may
    #[error("{0}")]
    AddressLimit(String),
    /// No route table association of that id
    #[error("The association ID '{0}' does not exist")]
    AssociationNotFound(String),
    /// A parameter value the domain rejects
    #[error("{message}")]
    InvalidParameter { name: &'static str, message: String },
    /// Too many tags on one resource
    #[error("The maximum number of tags for resource '{0}' has been reached.")]
    TagLimitExceeded(String),
    /// An account or access key that already exists
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// An image of that name exists already in the account
    #[error("AMI name '{0}' is already in use by an AMI owned by this account")]
    ImageNameDuplicate(String),
    /// The image exists but cannot be launched (still being made, or failed)
    #[error("The image id '[{0}]' is not available")]
    ImageUnavailable(String),
    /// The image is visible to the caller (public) but belongs to another account
    #[error("Not authorized for image:{0}")]
    NotImageOwner(String),
    /// The snapshot is visible to the caller (public or shared) but belongs to another account
    #[error("Not authorized for snapshot:{0}")]
    NotSnapshotOwner(String),
    /// No host has room for the request
    #[error("There is not enough capacity to fulfill your request for instance type '{0}'.")]
    InsufficientCapacity(String),
    /// A ClientToken reused with different parameters
    #[error("The client token '{0}' was used before with different parameters")]
    IdempotentParameterMismatch(String),
    /// The subnet has no free address left
    #[error("There are not enough free addresses in subnet '{0}' to satisfy the requested number of instances.")]
    AddressesExhausted(String),
    /// `PrivateIpAddress` names an address another instance holds
    #[error("Address {0} is in use.")]
    AddressInUse(String),
    /// The instance's state does not allow the transition
    #[error("The instance '{id}' is not in a state from which it can be {verb} ({state}).")]
    IncorrectInstanceState { id: String, state: &'static str, verb: &'static str },
    /// An attribute of the resource forbids the operation
    #[error("{0}")]
    OperationNotPermitted(String),
    /// The account has not enabled serial console access
    #[error("EC2 serial console access is disabled for this account. Enable it with EnableSerialConsoleAccess (in the console: the instance's Serial console tab).")]
    SerialConsoleAccessDisabled,
    /// As many serial console sessions run as the server allows
    #[error("Too many serial console sessions are open on this server; close one and try again.")]
    SerialConsoleSessionLimit,
    /// The migration has already ended
    #[error("The migration '{id}' has already ended ({status})")]
    MigrationFinished { id: String, status: &'static str },
    /// The instance's host is no longer in the configuration
    #[error("host {0} is not configured")]
    HostGone(String),
    /// A virtualisation host failed
    #[error("host: {0}")]
    Driver(#[from] hypervisor::DriverError),
    /// A file operation on the data dir failed
    #[error("{0}")]
    Io(String),
    /// storage failed
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

impl Error {
    /// The store could not answer now (the database unreachable, or this replica's turn over):
    /// no verdict on the resource the work was about, which is retried. An unreadable record
    /// is not such a failure: it will not heal by itself.
    pub(crate) fn store_unavailable(&self) -> bool {
        matches!(self, Error::Storage(storage::Error::Db(_) | storage::Error::Fenced(_)))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `InvalidParameterValue` for the named parameter.
pub(crate) fn invalid(name: &'static str, message: impl Into<String>) -> Error {
    Error::InvalidParameter { name, message: message.into() }
}

pub struct Backend {
    store: Store,
    topology: Topology,
    hosts: HostPool,
    data_dir: PathBuf,
    stop_timeout: Duration,
    kicks: OnceLock<mpsc::UnboundedSender<String>>,
    paging_secret: OnceLock<String>,
    /// This data dir's installation id ([`ownership`]).
    installation: OnceLock<String>,
    /// What the last inventory found of other installations.
    foreign: std::sync::RwLock<ownership::Foreign>,
    /// Where Elastic IPs come from.
    public_network: addresses::PublicNetwork,
    /// The OVN whose northbound state follows the store, if one is configured.
    ovn: Option<vpc_network::OvnSync>,
    /// Access keys recently looked up, with when ([`accounts::PRINCIPAL_TTL`]).
    principals: std::sync::RwLock<std::collections::HashMap<String, (accounts::Principal, std::time::Instant)>>,
    /// What the metrics collector remembers between samples ([`monitoring`]).
    monitoring: monitoring::Collector,
    /// The dirty rates EstimateInstanceMigration measured lately ([`migration`]).
    dirty_rates: migration::DirtyRates,
    /// Serial console sessions running now ([`serial_console`]).
    serial_seats: serial_console::Seats,
    /// This replica's turn at the conductor's work, when several share the store.
    leadership: Option<std::sync::Arc<leadership::Leadership>>,
    /// How this process is named to admins (its machine and API address).
    process_name: String,
}

impl Backend {
    /// A backend whose hosts get libvirt drivers, which connect on first use.
    pub fn new(store: Store, topology: Topology) -> Self {
        let hosts = HostPool::from_config(&topology.hosts, topology.default_zone());
        Self::with_hosts(store, topology, hosts)
    }

    pub fn with_hosts(store: Store, topology: Topology, hosts: HostPool) -> Self {
        Self {
            store,
            topology,
            hosts,
            data_dir: PathBuf::from("stratus-data"),
            stop_timeout: Duration::from_secs(60),
            kicks: OnceLock::new(),
            paging_secret: OnceLock::new(),
            installation: OnceLock::new(),
            foreign: Default::default(),
            public_network: Default::default(),
            ovn: None,
            principals: Default::default(),
            monitoring: Default::default(),
            dirty_rates: Default::default(),
            serial_seats: Default::default(),
            leadership: None,
            process_name: "stratus".into(),
        }
    }

    /// How admins see this process named (`DescribeHosts`); a replica's is its lease holder's.
    pub fn with_process_name(mut self, name: String) -> Self {
        self.process_name = name;
        self
    }

    pub fn process_name(&self) -> &str {
        match &self.leadership {
            Some(leadership) => leadership.holder(),
            None => &self.process_name,
        }
    }

    /// Where instance disks and imported images live; libvirt needs it absolute.
    pub fn with_data_dir(mut self, data_dir: &Path) -> Self {
        self.data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
        self
    }

    /// How long a stop waits for the guest to power off before pulling the plug.
    pub fn with_stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    pub fn hosts(&self) -> &HostPool {
        &self.hosts
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// What Describe page tokens are sealed with: made once per store and kept in it, so that
    /// tokens outlive restarts and no client can forge or alter one.
    pub fn paging_secret(&self) -> Result<&str> {
        self.kept_value(&self.paging_secret, "paging", || {
            (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
        })
    }

    /// The value kept under `key` in the store's secrets, made by `make` the first time and
    /// cached in `cell`.
    pub(crate) fn kept_value<'a>(
        &self,
        cell: &'a OnceLock<String>,
        key: &str,
        make: impl FnOnce() -> String,
    ) -> Result<&'a str> {
        if let Some(value) = cell.get() {
            return Ok(value);
        }
        let value = self.store().write(|tx| {
            if let Some(existing) = tx.get(&storage::tables::SECRETS, key)? {
                return Ok::<_, Error>(existing.value);
            }
            let value = make();
            tx.insert(&storage::tables::SECRETS, key, &storage::SecretRecord { value: value.clone() })?;
            Ok(value)
        })?;
        Ok(cell.get_or_init(|| value))
    }

    pub fn stop_timeout(&self) -> Duration {
        self.stop_timeout
    }

    pub fn policy(&self) -> scheduler::Policy {
        self.topology.placement
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

    /// One host on libvirt's in-process test driver, with its files under `dir`.
    pub fn test_driver_backend(dir: &std::path::Path) -> Backend {
        let mut host = hosts::HostConfig::new("test:///default");
        (host.vcpus, host.memory_mib) = (Some(64), Some(65536));
        let topology = Topology { hosts: vec![host], ..Topology::default() };
        Backend::new(Store::in_memory().unwrap(), topology)
            .with_data_dir(dir)
            .with_stop_timeout(std::time::Duration::from_secs(1))
    }

    /// One t3.nano of `image_id`, launched and driven to running.
    pub fn running_instance(b: &Backend, account: &str, image_id: &str) -> storage::InstanceRecord {
        let req = instances::LaunchRequest {
            image_id: image_id.to_owned(),
            instance_type: "t3.nano".into(),
            min_count: 1,
            max_count: 1,
            ..Default::default()
        };
        let record = b.run_instances(account, "vpc-1", req).unwrap().remove(0);
        b.converge(&format!("{account}/{}", record.id)).unwrap();
        record
    }

    /// A 64 MiB qcow2 disk in `dir`.
    pub fn test_disk(dir: &std::path::Path) -> String {
        let path = dir.join(format!("disk-{}.qcow2", rand::random::<u32>()));
        let status = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&path)
            .arg("64M")
            .status()
            .unwrap();
        assert!(status.success());
        path.to_string_lossy().into_owned()
    }
}
