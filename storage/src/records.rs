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
    /// EBS encryption by default: every new volume of the account is encrypted.
    #[serde(default)]
    pub ebs_encryption_by_default: bool,
    /// The KMS key id new encrypted volumes name when the request names none (EC2's
    /// ModifyEbsDefaultKmsKeyId); `None`: the account's AWS-managed key.
    #[serde(default)]
    pub ebs_default_kms_key_id: Option<String>,
    /// Whether the account may open its instances' serial consoles (EC2's
    /// EnableSerialConsoleAccess); off until it asks.
    #[serde(default)]
    pub serial_console_access: bool,
}

impl Record for AccountRecord {
    const VERSION: u8 = 3;
    const READS: &'static [u8] = &[1, 2];
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

/// A series of metric history ([`crate::metrics`]): what names it in CloudWatch's terms.
/// Key: the series' name (`{account}/{instance id}`, `~host/{host id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSeriesRecord {
    pub namespace: String,
    /// The owner; empty for the installation's own (hosts).
    pub account: String,
    /// Its dimensions, as CloudWatch shows them (`InstanceId`…), and the attributes queries
    /// group by (`InstanceType`, `ImageId`).
    pub dimensions: Vec<(String, String)>,
    /// The last minute with a sample (minutes since the epoch), as of the last write: kept
    /// within an hour of the truth.
    pub last_minute: u32,
    /// A custom metric's name (PutMetricData): its series holds that one metric. `None` for
    /// Stratus's own series, which hold their namespace's every metric.
    #[serde(default)]
    pub metric: Option<String>,
    /// A custom metric's unit, as it was last put.
    #[serde(default)]
    pub unit: Option<String>,
}

impl Record for MetricSeriesRecord {
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
    const DERIVED: bool = true;

    fn derive(tx: &crate::WriteTx, key: &str, old: Option<&Self>, new: Option<&Self>) -> crate::Result<()> {
        crate::derived::derive_tag(tx, key, old, new)
    }
}

/// A machine image. Key: `{owner account}/{image id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub description: String,
    pub architecture: String,
    /// The root disk, a path every host can read.
    pub disk: String,
    /// `qcow2` or `raw`.
    pub disk_format: String,
    pub virtual_size_bytes: u64,
    /// Direct boot: kernel, initrd and command line, when the disk is not bootable by itself.
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
    /// Launchable by every account.
    pub public: bool,
    /// Accounts besides the owner that may see and launch it (`launchPermission`).
    #[serde(default)]
    pub launch_permissions: Vec<String>,
    /// Files under the data dir that go when the image is deregistered (imported images).
    pub owned_files: Vec<String>,
    pub created_ms: i64,
    /// Images made by CreateImage are `pending` until their disk is copied.
    #[serde(default)]
    pub state: ImageState,
    /// The instance a CreateImage copies from, while pending.
    #[serde(default)]
    pub source_instance: Option<String>,
    /// Why a CreateImage failed.
    #[serde(default)]
    pub state_reason: Option<StateReason>,
    /// The image a CopyImage copies, while pending.
    #[serde(default)]
    pub copy_of: Option<String>,
    /// CopyImage's `ClientToken`.
    #[serde(default)]
    pub client_token: Option<String>,
}

impl ImageRecord {
    /// Whether `account` may see and launch the image: its owner, anyone when public, and the
    /// accounts it is shared with.
    pub fn launchable_by(&self, account: &str) -> bool {
        self.owner == account || self.public || self.launch_permissions.iter().any(|a| a == account)
    }
}

/// An image's state, with EC2's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageState {
    Pending,
    #[default]
    Available,
    Failed,
}

impl ImageState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Available => "available",
            Self::Failed => "failed",
        }
    }
}

/// Version 2 added `state`, `source_instance` and `state_reason`: an older binary must not
/// take a pending image for an available one.
impl Record for ImageRecord {
    const VERSION: u8 = 2;
    const READS: &'static [u8] = &[1];
    const DERIVED: bool = true;

    fn derive(tx: &crate::WriteTx, _key: &str, old: Option<&Self>, new: Option<&Self>) -> crate::Result<()> {
        crate::derived::derive_image(tx, old, new)
    }
}

/// An instance's lifecycle state, with EC2's names and codes. The transitional states
/// (`Pending`, `Stopping`, `ShuttingDown`) are also the work still to do: whoever finds an
/// instance in one of them, after a restart too, drives it on to the next stable state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl InstanceState {
    pub const ALL: [Self; 6] =
        [Self::Pending, Self::Running, Self::ShuttingDown, Self::Terminated, Self::Stopping, Self::Stopped];

    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::ShuttingDown => "shutting-down",
            Self::Terminated => "terminated",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
        }
    }

    pub fn code(self) -> i32 {
        match self {
            Self::Pending => 0,
            Self::Running => 16,
            Self::ShuttingDown => 32,
            Self::Terminated => 48,
            Self::Stopping => 64,
            Self::Stopped => 80,
        }
    }

    /// Whether an instance in this state holds capacity on its host.
    pub fn holds_capacity(self) -> bool {
        matches!(self, Self::Pending | Self::Running | Self::Stopping | Self::ShuttingDown)
    }
}

/// Why an instance is in its state (EC2's `StateReason`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateReason {
    pub code: String,
    pub message: String,
}

/// Key: `{account}/{instance id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub id: String,
    pub account: String,
    pub reservation_id: String,
    pub image_id: String,
    pub instance_type: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub zone: String,
    /// The host that holds (or last held) the domain.
    pub host_id: String,
    /// The libvirt domain's UUID; the domain's name is the instance id.
    pub domain_uuid: String,
    pub state: InstanceState,
    pub state_reason: Option<StateReason>,
    pub state_transition_reason: String,
    /// Stop without waiting for the guest (`Force`).
    pub force_stop: bool,
    /// Has run at least once: a failed restart leaves it stopped, not terminated.
    pub booted: bool,
    pub launch_time_ms: i64,
    pub terminated_ms: Option<i64>,
    pub ami_launch_index: u32,
    pub key_name: Option<String>,
    /// Base64, as the client sent it.
    pub user_data: Option<String>,
    pub vpc_id: String,
    pub subnet_id: String,
    pub network_interface_id: String,
    pub private_ip: String,
    pub mac: String,
    pub security_group_ids: Vec<String>,
    pub client_token: Option<String>,
    pub disable_api_termination: bool,
    pub disable_api_stop: bool,
    /// `stop` or `terminate`: what a shutdown from inside the guest means.
    pub shutdown_behavior: String,
    pub ebs_optimized: bool,
    pub monitoring: bool,
    /// The instance's own files (root overlay, console log), under the data dir.
    pub dir: String,
    pub root_disk_bytes: u64,
    /// The live migration under way, if any (its id).
    #[serde(default)]
    pub migration: Option<String>,
    /// The host a migration under way is moving it to: it holds capacity there too.
    #[serde(default)]
    pub migration_target: Option<String>,
    /// `standard` or `unlimited` for burstable types (EC2's credit specification).
    #[serde(default)]
    pub cpu_credits: Option<String>,
    /// How the guest may reach the instance metadata service.
    #[serde(default)]
    pub metadata: MetadataOptions,
    /// The key pair's OpenSSH public key as it was at launch: the metadata service serves it
    /// even if the key pair is deleted later, as EC2 does.
    #[serde(default)]
    pub public_key: Option<String>,
    /// The public address it was given at launch (`MapPublicIpOnLaunch`,
    /// `AssociatePublicIpAddress`), held in the pool until it is terminated; an Elastic IP
    /// associated with it stands in front of this one.
    #[serde(default)]
    pub public_ip: Option<String>,
    /// EC2's `SourceDestCheck` of its primary interface: OVN's port security holds the guest
    /// to its MAC and address unless it is off (a NAT or routing instance).
    #[serde(default = "checked")]
    pub source_dest_check: bool,
    /// Secondary private addresses of its primary interface (at launch, or
    /// AssignPrivateIpAddresses), leased in its VPC like the primary one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondary_ips: Vec<String>,
    /// Its primary interface is an interface of its own (one the account had, named by
    /// `NetworkInterfaceId` at device index 0, or one made at launch with a description or
    /// `DeleteOnTermination=false`): what that interface's record holds beyond the instance's
    /// fields, so that it comes back, available, when the instance goes (unless
    /// `delete_on_termination`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_interface: Option<KeptInterface>,
    /// `Placement.Tenancy=host`: the instance runs on dedicated hosts of its account only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedicated: Option<DedicatedPlacement>,
    /// ModifyInstanceAttribute `kernel`: the image whose kernel the instance boots from
    /// instead of its own image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_image: Option<String>,
    /// ModifyInstanceAttribute `ramdisk`: the image whose initrd it boots with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramdisk_image: Option<String>,
}

/// Where an instance of `host` tenancy may run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DedicatedPlacement {
    /// `Affinity=host`: on this host alone, across stops and starts; otherwise any dedicated
    /// host of the account's with auto-placement on.
    pub affinity_host: Option<String>,
}

/// A pool host dedicated to one account (AllocateHosts) until it is released. Key: host id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostAllocationRecord {
    pub host_id: String,
    pub account: String,
    pub zone: String,
    /// The instance type, or the family, the host takes.
    pub instance_type: Option<String>,
    pub instance_family: Option<String>,
    /// Instances launched with `Tenancy=host` and no `HostId` may land here.
    pub auto_placement: bool,
    /// Recorded: a private cloud's host recovery is its operator's.
    pub host_recovery: bool,
    pub allocated_ms: i64,
    pub client_token: Option<String>,
}

impl Record for HostAllocationRecord {
    const VERSION: u8 = 1;
}

/// See [`InstanceRecord::kept_interface`]; the instance record holds the interface's id, MAC,
/// addresses, groups and source/destination check meanwhile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptInterface {
    pub description: String,
    pub created_ms: i64,
    pub client_token: Option<String>,
    /// It goes with the instance (EC2's default for an interface made at launch; an
    /// interface the account had is kept by default).
    pub delete_on_termination: bool,
}

fn checked() -> bool {
    true
}

/// Version 2 added the migration fields: an older binary must not stop or move an instance
/// that is migrating. Version 3 added the credit specification, version 4 the metadata
/// options and the launch key, version 5 the public address, version 6 the source/destination
/// check, version 7 the primary interface's secondary addresses, version 8 the kept primary
/// interface (an older binary would delete it with the instance), version 9 the dedicated
/// placement and the kernel and ramdisk chosen apart from the image.
impl Record for InstanceRecord {
    const VERSION: u8 = 9;
    const READS: &'static [u8] = &[1, 2, 3, 4, 5, 6, 7, 8];
    const DERIVED: bool = true;

    fn derive(tx: &crate::WriteTx, key: &str, old: Option<&Self>, new: Option<&Self>) -> crate::Result<()> {
        crate::derived::derive_instance(tx, key, old, new)
    }
}

/// EC2's `InstanceMetadataOptions`, as the metadata service applies them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataOptions {
    /// Requests must carry an IMDSv2 session token (`HttpTokens=required`).
    pub tokens_required: bool,
    /// `HttpEndpoint`: the service answers this instance at all.
    pub endpoint_enabled: bool,
    /// `HttpPutResponseHopLimit`: the IP TTL of the service's answers, so a token cannot be
    /// fetched from further away than this many hops (containers behind the guest).
    pub hop_limit: u8,
    /// `InstanceMetadataTags`: the instance's tags under `meta-data/tags/instance`.
    pub tags_enabled: bool,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        Self { tokens_required: false, endpoint_enabled: true, hop_limit: 1, tags_enabled: false }
    }
}

/// What an operator decided about a host. Key: host id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostStateRecord {
    /// Out of placement, and drained of running instances by live migration.
    pub maintenance: bool,
    pub changed_ms: i64,
}

impl Record for HostStateRecord {
    const VERSION: u8 = 1;
}

/// How a live migration may run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationOptions {
    /// The longest pause the switch-over may take.
    pub max_downtime_ms: Option<u64>,
    pub bandwidth_mibps: Option<u64>,
    /// Slow the guest's vCPUs down until the copy converges.
    pub auto_converge: bool,
    /// Switch to post-copy (the guest runs on the target while memory follows) when
    /// pre-copy does not converge.
    pub allow_post_copy: bool,
    /// Abort after this long; the guest stays on the source.
    pub timeout_secs: Option<u64>,
}

/// A migration's progress as the host reports it; figures the host did not give are zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgress {
    pub time_elapsed_ms: u64,
    pub setup_time_ms: u64,
    /// The guest's pause at switch-over (completed jobs); for a running job, the pause QEMU
    /// expects it would take now.
    pub downtime_ms: u64,
    pub memory_total_bytes: u64,
    pub memory_processed_bytes: u64,
    pub memory_remaining_bytes: u64,
    pub dirty_rate_bytes_per_sec: u64,
    pub bandwidth_bytes_per_sec: u64,
    /// QEMU's iterations (its syncs of the dirty memory: one as memory starts to move, one as
    /// each pass ends, one at the switch-over).
    pub iterations: u64,
    /// Pages the target asked for after switching to post-copy.
    pub post_copy_requests: u64,
    /// How much auto-converge slows the guest's vCPUs now (QEMU's throttle, %).
    #[serde(default)]
    pub throttle_percent: u64,
    /// Disks copied to the target (hosts without shared storage): the copy runs before memory
    /// moves and mirrors the guest's writes until the switch-over.
    #[serde(default)]
    pub disk_total_bytes: u64,
    #[serde(default)]
    pub disk_processed_bytes: u64,
    #[serde(default)]
    pub disk_remaining_bytes: u64,
    /// Pages QEMU found zero (read, not sent) and the bytes it sent as whole pages: what the
    /// estimate's path fit reads from completed migrations.
    #[serde(default)]
    pub memory_zero_pages: u64,
    #[serde(default)]
    pub memory_normal_bytes: u64,
}

/// Where a live migration is, with the names the extension API reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationStatus {
    Queued,
    Preparing,
    Copying,
    PostCopy,
    Completing,
    Completed,
    Failed,
    Cancelled,
}

impl MigrationStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Preparing => "preparing",
            Self::Copying => "copying",
            Self::PostCopy => "post-copy",
            Self::Completing => "completing",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// One live migration of an instance between hosts. Key: the migration id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationRecord {
    pub id: String,
    /// The instance's account and id.
    pub account: String,
    pub instance_id: String,
    pub source_host: String,
    pub target_host: String,
    pub status: MigrationStatus,
    pub options: MigrationOptions,
    /// The latest progress (the final statistics once completed).
    pub progress: JobProgress,
    pub cancel_requested: bool,
    /// An admin asked to switch to post-copy now (StartInstanceMigrationPostCopy).
    #[serde(default)]
    pub post_copy_requested: bool,
    /// A ping trace runs (or ran) beside the migration; its figures once it ended.
    #[serde(default)]
    pub ping_traced: bool,
    #[serde(default)]
    pub ping: Option<PingSummary>,
    pub error: Option<String>,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
    /// What was predicted before it started (`backend::migration_plan`); `None` when the
    /// source could not measure the guest.
    #[serde(default)]
    pub prediction: Option<MigrationPrediction>,
    /// The downtime allowed now: the escalation raises it within `options.max_downtime_ms`
    /// (`backend::escalation`); 0 until the migration starts.
    #[serde(default)]
    pub downtime_limit_ms: u64,
    /// What happened, in order: passes, escalations, the switch-over, the end.
    #[serde(default)]
    pub events: Vec<MigrationEvent>,
    /// The instance's folder on the target when the two hosts do not share it (either keeps
    /// its instances' disks on storage of its own): the root disk is copied there as the guest
    /// moves, and the instance's folder becomes it when the migration completes. `None`: the
    /// disk stays where it is, on storage both hosts share.
    #[serde(default)]
    pub target_dir: Option<String>,
    /// How long the guest stood still at a switch to post-copy, measured by Stratus (see
    /// `backend::migration`): libvirt's downtime for such a migration may run on to the end of
    /// the copy, while the guest already runs on the target.
    #[serde(default)]
    pub post_copy_pause_ms: Option<u64>,
    /// The highest bandwidth QEMU reported over its last window before a reading while memory
    /// moved in pre-copy: what the path carried when QEMU sent whole pages. 0 until seen.
    #[serde(default)]
    pub peak_bandwidth_bytes_per_sec: u64,
}

/// One entry of a migration's timeline, with the figures of that moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationEvent {
    /// Since the migration was requested (its `created_ms`).
    pub at_ms: u64,
    pub kind: MigrationEventKind,
    /// The pass over memory under way.
    pub iteration: u64,
    pub remaining_bytes: u64,
    pub dirty_rate_bytes_per_sec: u64,
    pub bandwidth_bytes_per_sec: u64,
    pub throttle_percent: u64,
    /// The downtime allowed from then on.
    pub downtime_limit_ms: u64,
    #[serde(default)]
    pub message: Option<String>,
}

/// What a [`MigrationEvent`] records, with the names the extension API reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationEventKind {
    /// Memory starts to move, with the starting downtime allowance.
    #[default]
    Started,
    /// A new pass over memory.
    Pass,
    /// The escalation allowed more downtime.
    DowntimeRaised,
    /// QEMU's auto-converge changed its throttle.
    Throttled,
    /// The guest switched to the target; its memory follows on demand.
    PostCopy,
    /// Pre-copy had nothing left to send: the guest pauses and the target takes over.
    SwitchOver,
    /// Stopped by a cancel, the timeout or the budget (the message says which).
    Aborted,
    Completed,
    Failed,
    Cancelled,
}

impl MigrationEventKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Pass => "pass",
            Self::DowntimeRaised => "downtime-raised",
            Self::Throttled => "throttled",
            Self::PostCopy => "post-copy",
            Self::SwitchOver => "switch-over",
            Self::Aborted => "aborted",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl Record for MigrationRecord {
    const VERSION: u8 = 1;
}

/// A migration's prediction and what it was made from, kept beside what happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationPrediction {
    /// `pre-copy`, `auto-converge`, `post-copy` or `abort`.
    pub ending: String,
    pub total_ms: Option<u64>,
    pub downtime_ms: u64,
    /// Counted as QEMU counts them ([`JobProgress::iterations`]); predictions recorded
    /// before 2026-12-07 counted the passes alone (two fewer).
    pub iterations: u32,
    pub dirty_rate_bytes_per_sec: u64,
    /// The guest's QEMU's resident memory then, and what the first pass was expected to send
    /// of it.
    pub resident_bytes: u64,
    pub first_pass_bytes: u64,
    pub bandwidth_bytes_per_sec: u64,
    /// What the first pass was expected to spend reading pages it does not send.
    #[serde(default)]
    pub first_pass_read_ms: u64,
}

/// What a migration's ping trace measured (`backend::ping_trace`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingSummary {
    pub sent: u32,
    pub answered: u32,
    /// The longest time between two consecutive answers (ms).
    pub largest_gap_ms: u32,
}

/// A migration's ping trace: each probe's send time (µs from the trace's start) and its
/// round trip (µs; none if lost), and when the migration call returned. Key: the migration id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationTraceRecord {
    pub interval_ms: u32,
    pub probes: Vec<(u64, Option<u32>)>,
    pub switch_over_us: Option<u64>,
}

impl Record for MigrationTraceRecord {
    const VERSION: u8 = 1;
}

/// A RunInstances `ClientToken`, remembered with a digest of the request it came with.
/// Key: `{account}/{token}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientTokenRecord {
    pub reservation_id: String,
    pub request_digest: String,
    pub instance_ids: Vec<String>,
}

impl Record for ClientTokenRecord {
    const VERSION: u8 = 1;
}

/// A private IP handed to an instance (or an interface, a NAT gateway). Every VPC is an address
/// space of its own: key `{vpc id}/{address}`. (Keys of the bare address are from a Stratus
/// whose default VPCs shared the hosts' bridge; a start moves them.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub instance_key: String,
    pub mac: String,
}

impl Record for LeaseRecord {
    const VERSION: u8 = 1;
    const DERIVED: bool = true;

    fn derive(tx: &crate::WriteTx, key: &str, _old: Option<&Self>, new: Option<&Self>) -> crate::Result<()> {
        crate::derived::derive_lease(tx, key, new.is_some())
    }
}

/// Where a security group rule lets traffic come from (ingress) or go to (egress).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RulePeer {
    Ipv4 {
        cidr: String,
    },
    Ipv6 {
        cidr: String,
    },
    /// Instances in another group (or this one), of `account`.
    Group {
        group_id: String,
        account: String,
    },
    PrefixList {
        id: String,
    },
}

/// One rule: one protocol and port range, one peer (EC2's `SecurityGroupRule`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroupRuleRecord {
    pub id: String,
    pub egress: bool,
    /// `-1` (all), `tcp`, `udp`, `icmp`, `icmpv6`, or another protocol number.
    pub protocol: String,
    /// Ports for tcp and udp; ICMP type and code for icmp and icmpv6; none otherwise.
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub peer: RulePeer,
    pub description: Option<String>,
}

/// Key: `{account}/{group id}`; names are unique per VPC (`SECURITY_GROUP_NAMES`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroupRecord {
    pub id: String,
    pub account: String,
    pub vpc_id: String,
    pub name: String,
    pub description: String,
    /// The VPC's `default` group: it cannot be deleted.
    pub default: bool,
    /// Ingress and egress rules, in the order they were authorized.
    pub rules: Vec<SecurityGroupRuleRecord>,
    pub created_ms: i64,
}

impl Record for SecurityGroupRecord {
    const VERSION: u8 = 1;
    const DERIVED: bool = true;

    fn derive(tx: &crate::WriteTx, _key: &str, old: Option<&Self>, new: Option<&Self>) -> crate::Result<()> {
        crate::derived::derive_security_group(tx, old, new)
    }
}

/// A group's id and name, read without its rules (instance views name their groups).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SecurityGroupName {
    pub id: String,
    pub name: String,
}

impl crate::Part<SecurityGroupRecord> for SecurityGroupName {}

/// A volume's state, with EC2's names (`in-use` while attached).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeState {
    /// Its file is being made.
    Creating,
    Available,
    InUse,
    Error,
}

impl VolumeState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Available => "available",
            Self::InUse => "in-use",
            Self::Error => "error",
        }
    }
}

/// Where an attachment is; `attaching` and `detaching` are also the work still to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachmentState {
    Attaching,
    Attached,
    Detaching,
}

impl AttachmentState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Attaching => "attaching",
            Self::Attached => "attached",
            Self::Detaching => "detaching",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeAttachmentRecord {
    pub instance_id: String,
    /// The device name the user gave (`/dev/sdf`); the guest sees a virtio disk.
    pub device: String,
    pub state: AttachmentState,
    pub attach_time_ms: i64,
    pub delete_on_termination: bool,
}

/// Where a ModifyVolume is, with EC2's names (Stratus has no `optimizing` phase: a grown
/// file is done).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModificationState {
    Modifying,
    Completed,
    Failed,
}

impl ModificationState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Modifying => "modifying",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// A ModifyVolume and how far it got (EC2's `VolumeModification`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeModificationRecord {
    pub state: ModificationState,
    pub status_message: Option<String>,
    pub original_size_gib: u64,
    pub target_size_gib: u64,
    pub original_type: String,
    pub target_type: String,
    pub original_iops: Option<u32>,
    pub target_iops: Option<u32>,
    pub original_throughput: Option<u32>,
    pub target_throughput: Option<u32>,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
}

/// How a volume's or snapshot's file is encrypted: LUKS inside qcow2, opened with a passphrase
/// of its own that Stratus keeps here and hands to a host only for the moment QEMU opens the
/// disk (as a libvirt secret named by `secret_uuid`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Encryption {
    /// The KMS key id the user named (or the account's default), echoed as EC2 does: Stratus
    /// has no KMS, and the data key below is its own.
    pub kms_key_id: String,
    /// The passphrase: 32 random bytes, base64 (LUKS wants text).
    pub passphrase: String,
    /// The libvirt secret that carries the passphrase on a host.
    pub secret_uuid: String,
}

/// Never prints the passphrase (records are logged with `{:?}`).
impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryption")
            .field("kms_key_id", &self.kms_key_id)
            .field("secret_uuid", &self.secret_uuid)
            .finish_non_exhaustive()
    }
}

/// A block volume: a qcow2 file every host can reach. Key: `{account}/{volume id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub id: String,
    pub account: String,
    pub zone: String,
    pub size_gib: u64,
    /// `gp2`, `gp3`, `io1`, `io2`, `st1`, `sc1` or `standard`: recorded, not enforced.
    pub volume_type: String,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
    pub snapshot_id: Option<String>,
    pub state: VolumeState,
    pub attachment: Option<VolumeAttachmentRecord>,
    /// An instance's root disk (made by RunInstances, attached as `vda`).
    pub root: bool,
    pub path: String,
    pub client_token: Option<String>,
    pub modification: Option<VolumeModificationRecord>,
    pub created_ms: i64,
    /// Set when the volume's file is encrypted (LUKS inside qcow2, or inside raw for a
    /// Multi-Attach volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// Multi-Attach (io1, io2): several guests share the volume, whose file is raw (the only
    /// format QEMU lets two processes write at once).
    #[serde(default)]
    pub multi_attach: bool,
    /// A Multi-Attach volume's attachments besides `attachment`, in the order they were made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_attachments: Vec<VolumeAttachmentRecord>,
}

impl VolumeRecord {
    /// Every attachment: the first, then a Multi-Attach volume's others.
    pub fn attachments(&self) -> impl Iterator<Item = &VolumeAttachmentRecord> {
        self.attachment.iter().chain(&self.shared_attachments)
    }

    /// Its attachment to one instance.
    pub fn attachment_of(&self, instance_id: &str) -> Option<&VolumeAttachmentRecord> {
        self.attachments().find(|a| a.instance_id == instance_id)
    }

    pub fn attachment_of_mut(&mut self, instance_id: &str) -> Option<&mut VolumeAttachmentRecord> {
        self.attachment.iter_mut().chain(&mut self.shared_attachments).find(|a| a.instance_id == instance_id)
    }

    /// Adds an attachment: the first, or one more of a Multi-Attach volume.
    pub fn attach(&mut self, attachment: VolumeAttachmentRecord) {
        if self.attachment.is_none() {
            self.attachment = Some(attachment);
        } else {
            self.shared_attachments.push(attachment);
        }
    }

    /// Ends its attachment to one instance; the next one, if any, becomes the first.
    pub fn detach(&mut self, instance_id: &str) -> Option<VolumeAttachmentRecord> {
        if self.attachment.as_ref().is_some_and(|a| a.instance_id == instance_id) {
            let gone = self.attachment.take();
            if !self.shared_attachments.is_empty() {
                self.attachment = Some(self.shared_attachments.remove(0));
            }
            return gone;
        }
        let at = self.shared_attachments.iter().position(|a| a.instance_id == instance_id)?;
        Some(self.shared_attachments.remove(at))
    }
}

impl Record for VolumeRecord {
    const VERSION: u8 = 3;
    const READS: &'static [u8] = &[1, 2];
    const DERIVED: bool = true;

    fn derive(tx: &crate::WriteTx, _key: &str, old: Option<&Self>, new: Option<&Self>) -> crate::Result<()> {
        crate::derived::derive_volume(tx, old, new)
    }
}

/// A snapshot's state, with EC2's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotState {
    Pending,
    Completed,
    Error,
}

impl SnapshotState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Error => "error",
        }
    }
}

/// A point-in-time copy of a volume. Key: `{account}/{snapshot id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub id: String,
    pub account: String,
    pub volume_id: String,
    pub volume_size_gib: u64,
    pub description: String,
    pub state: SnapshotState,
    pub state_message: Option<String>,
    pub path: String,
    pub start_ms: i64,
    /// Volumes can be made from it by every account.
    #[serde(default)]
    pub public: bool,
    /// Accounts besides the owner that may see it and make volumes from it
    /// (`createVolumePermission`).
    #[serde(default)]
    pub create_volume_permissions: Vec<String>,
    /// The snapshot a CopySnapshot copies, while pending.
    #[serde(default)]
    pub copy_of: Option<String>,
    /// CreateSnapshots: the snapshots of one instance's volumes taken in one pause of the guest.
    #[serde(default)]
    pub set: Option<String>,
    /// Set when the snapshot's file is encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

impl SnapshotRecord {
    /// Whether `account` may see the snapshot and make volumes from it.
    pub fn usable_by(&self, account: &str) -> bool {
        self.account == account || self.public || self.create_volume_permissions.iter().any(|a| a == account)
    }
}

impl Record for SnapshotRecord {
    const VERSION: u8 = 2;
    const READS: &'static [u8] = &[1];
    const DERIVED: bool = true;

    fn derive(tx: &crate::WriteTx, _: &str, old: Option<&Self>, new: Option<&Self>) -> crate::Result<()> {
        crate::derived::derive_snapshot(tx, old, new)
    }
}

/// A launch template: its versions are kept apart ([`LaunchTemplateVersionRecord`]). Key:
/// `{account}/{launch template id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchTemplateRecord {
    pub id: String,
    pub name: String,
    pub account: String,
    pub created_ms: i64,
    pub default_version: u64,
    /// The highest version number the template has now.
    pub latest_version: u64,
    /// The number the next version gets: numbers are never given twice, even after the latest
    /// version is deleted.
    pub next_version: u64,
    /// How many versions it has now (kept here so that adding one need not count them).
    pub version_count: u64,
    pub client_token: Option<String>,
}

impl Record for LaunchTemplateRecord {
    const VERSION: u8 = 1;
}

/// One version of a launch template. Key: `{account}/{template id}/{number, 20 digits}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchTemplateVersionRecord {
    pub template_id: String,
    pub number: u64,
    pub description: Option<String>,
    pub created_ms: i64,
    /// The launch parameters as the request gave them: a saved request, in the protocol's own
    /// shape (EC2's `RequestLaunchTemplateData`, as JSON), so that every field EC2 takes comes
    /// back from Describe as it was given, whether or not Stratus acts on it at launch.
    pub data: serde_json::Value,
    pub client_token: Option<String>,
}

impl Record for LaunchTemplateVersionRecord {
    const VERSION: u8 = 1;
}

/// A secret of this installation's, made once and kept with the data. Key: what it is for
/// (`paging`: what Describe page tokens are sealed with).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretRecord {
    /// Hex.
    pub value: String,
}

impl Record for SecretRecord {
    const VERSION: u8 = 1;
}

/// A VPC. Key: `{account}/{vpc id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VpcRecord {
    pub id: String,
    pub account: String,
    /// Its primary IPv4 CIDR block, canonical (`10.0.0.0/16`).
    pub cidr: String,
    /// The account's default VPC (at most one at a time).
    pub default: bool,
    pub dns_support: bool,
    pub dns_hostnames: bool,
    pub address_usage_metrics: bool,
    /// `default` or `dedicated`.
    pub tenancy: String,
    pub created_ms: i64,
    /// Whether its guests were put on the hosts' shared Linux bridge (addresses unique across
    /// accounts) by a Stratus before every VPC was on OVN: a default VPC made where OVN was not
    /// configured. `None` in records older than the field: a default VPC's. A start moves such
    /// VPCs to OVN (`backend::vpcs`); new default VPCs say `false`, other VPCs `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_bridge: Option<bool>,
}

impl VpcRecord {
    /// Whether it is still on the hosts' old shared bridge ([`VpcRecord::on_bridge`]).
    pub fn shares_bridge(&self) -> bool {
        self.on_bridge.unwrap_or(self.default)
    }
}

impl Record for VpcRecord {
    const VERSION: u8 = 1;
    const DERIVED: bool = true;

    fn derive(tx: &crate::WriteTx, _key: &str, old: Option<&Self>, new: Option<&Self>) -> crate::Result<()> {
        crate::derived::derive_vpc(tx, old, new)
    }
}

/// A subnet of a VPC, in one zone. Key: `{account}/{subnet id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubnetRecord {
    pub id: String,
    pub account: String,
    pub vpc_id: String,
    pub cidr: String,
    pub zone: String,
    /// One of the default VPC's subnets, the one instances of its zone land in.
    pub default_for_az: bool,
    pub map_public_ip_on_launch: bool,
    pub created_ms: i64,
}

impl Record for SubnetRecord {
    const VERSION: u8 = 1;
    const DERIVED: bool = true;

    fn derive(tx: &crate::WriteTx, _key: &str, old: Option<&Self>, new: Option<&Self>) -> crate::Result<()> {
        crate::derived::derive_subnet(tx, old, new)
    }
}

/// An internet gateway, attached to at most one VPC. Key: `{account}/{igw id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InternetGatewayRecord {
    pub id: String,
    pub account: String,
    pub vpc_id: Option<String>,
    pub created_ms: i64,
    /// While attached to a VPC: the public address of that VPC's router on the
    /// public network (held in `PUBLIC_ADDRESSES` under `{account}/{gateway id}`).
    #[serde(default)]
    pub public_ip: Option<String>,
}

impl Record for InternetGatewayRecord {
    const VERSION: u8 = 2;
    const READS: &'static [u8] = &[1];
}

/// Where a route sends what matches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "kebab-case")]
pub enum RouteTarget {
    /// Inside the VPC: the route every table has for the VPC's own CIDR.
    Local,
    InternetGateway(String),
    NatGateway(String),
    NetworkInterface(String),
    Instance(String),
}

/// One route: a destination CIDR and where it goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteRecord {
    pub destination: String,
    pub target: RouteTarget,
    /// `CreateRouteTable` (made with the table) or `CreateRoute`.
    pub origin: String,
}

/// A table's association: the VPC's main one (no subnet), or one subnet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteTableAssociationRecord {
    pub id: String,
    pub subnet_id: Option<String>,
}

/// A route table of a VPC. Key: `{account}/{route table id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteTableRecord {
    pub id: String,
    pub account: String,
    pub vpc_id: String,
    /// The local route first, then the others in the order they were made.
    pub routes: Vec<RouteRecord>,
    /// The main association (if this is the VPC's main table) and the subnets'.
    pub associations: Vec<RouteTableAssociationRecord>,
    pub created_ms: i64,
}

impl RouteTableRecord {
    /// Whether this is its VPC's main table.
    pub fn main(&self) -> bool {
        self.associations.iter().any(|a| a.subnet_id.is_none())
    }
}

impl Record for RouteTableRecord {
    const VERSION: u8 = 1;
}

/// Where an Elastic IP points: an instance's network interface and its private address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressAssociationRecord {
    pub id: String,
    pub instance_id: Option<String>,
    pub network_interface_id: String,
    pub private_ip: String,
    pub vpc_id: String,
    pub subnet_id: String,
}

/// An Elastic IP of an account, from the installation's public pool. Key:
/// `{account}/{allocation id}`; the address itself is unique across accounts
/// (`PUBLIC_ADDRESSES`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressRecord {
    pub allocation_id: String,
    pub account: String,
    pub public_ip: String,
    pub association: Option<AddressAssociationRecord>,
    pub created_ms: i64,
}

impl Record for AddressRecord {
    const VERSION: u8 = 1;
    const DERIVED: bool = true;

    fn derive(tx: &crate::WriteTx, _key: &str, old: Option<&Self>, new: Option<&Self>) -> crate::Result<()> {
        crate::derived::derive_address(tx, old, new)
    }
}

/// A network interface made with CreateNetworkInterface; an instance's primary interface is
/// part of its [`InstanceRecord`]. Attached to an instance, it is one more NIC of its guest
/// (hot-plugged while the guest runs). Key: `{account}/{network interface id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkInterfaceRecord {
    pub id: String,
    pub account: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub zone: String,
    pub mac: String,
    /// Its primary private address, leased in its VPC like an instance's.
    pub private_ip: String,
    /// Secondary private addresses (AssignPrivateIpAddresses), leased too.
    pub secondary_ips: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub description: String,
    /// Off: the interface may send and receive for addresses that are not its own (a NAT
    /// instance, a router), as EC2's `SourceDestCheck`.
    pub source_dest_check: bool,
    pub attachment: Option<InterfaceAttachmentRecord>,
    pub created_ms: i64,
    /// CreateNetworkInterface's `ClientToken`: a retry answers this interface.
    pub client_token: Option<String>,
    /// The attachment that ended last, shown as `detached` to whoever asks for it by its id,
    /// as EC2 answers for a while after a detach (Terraform waits for that status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_attachment: Option<InterfaceAttachmentRecord>,
}

impl NetworkInterfaceRecord {
    /// Every private address it holds, the primary first.
    pub fn addresses(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.private_ip).chain(&self.secondary_ips)
    }
}

impl Record for NetworkInterfaceRecord {
    const VERSION: u8 = 1;
    const DERIVED: bool = true;

    fn derive(tx: &crate::WriteTx, _key: &str, old: Option<&Self>, new: Option<&Self>) -> crate::Result<()> {
        crate::derived::derive_network_interface(tx, old, new)
    }
}

/// A network interface's attachment to an instance; `attaching` and `detaching` are also the
/// work its instance still has to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterfaceAttachmentRecord {
    /// `eni-attach-…`.
    pub id: String,
    pub instance_id: String,
    pub device_index: u32,
    pub state: AttachmentState,
    pub attach_time_ms: i64,
    pub delete_on_termination: bool,
}

/// A NAT gateway: one Elastic IP, one address of its subnet; private subnets routed to it get
/// out through it, and nothing gets in. Key: `{account}/{nat gateway id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NatGatewayRecord {
    pub id: String,
    pub account: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub allocation_id: String,
    pub public_ip: String,
    /// Its (requester-managed) network interface and address in the subnet.
    pub network_interface_id: String,
    pub private_ip: String,
    pub client_token: Option<String>,
    pub created_ms: i64,
}

impl Record for NatGatewayRecord {
    const VERSION: u8 = 1;
}
