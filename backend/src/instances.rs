//! Instances: launch, stop, start, reboot, terminate.
//!
//! 1. A request (RunInstances, StopInstances…) validates, decides and writes the new state in
//!    one redb transaction: placement, addresses and the `ClientToken` are taken atomically,
//!    so concurrent launches never overfill a host or share an address, and a retried
//!    request finds its first answer.
//! 2. It answers at once with a transitional state (`pending`, `stopping`,
//!    `shutting-down`) and kicks the conductor.
//! 3. The conductor ([`crate::conductor`]) drives each transitional instance to its next
//!    stable state through the host's driver ([`Backend::converge`]), and its sweep finds
//!    any that were left behind by a crash.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};
use storage::tables::{CLIENT_TOKENS, HOST_USAGE, INSTANCES, INSTANCE_IDS};
use storage::{
    ClientTokenRecord, ImageRecord, InstanceRecord, InstanceState, MetadataOptions, Reads, StateReason, WriteTx,
};

use crate::hosts::Host;
use crate::hypervisor::{DomainSpec, DriverError, PowerState};
use crate::network::{self, Subnet};
use crate::scheduler::{self, Demand, HostSnapshot};
use crate::{dedicated, ids, invalid, now_ms, security_groups, tags, volumes, Backend, Error, ResourceKind, Result};

/// Largest `UserData`, decoded, as in EC2.
pub const MAX_USER_DATA: usize = 16 * 1024;

/// A RunInstances request, as the domain sees it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LaunchRequest {
    pub image_id: String,
    pub instance_type: String,
    pub min_count: u32,
    pub max_count: u32,
    pub key_name: Option<String>,
    /// Base64.
    pub user_data: Option<String>,
    pub zone: Option<String>,
    pub subnet_id: Option<String>,
    /// `AssociatePublicIpAddress`: a public address at launch (default: the subnet's
    /// `MapPublicIpOnLaunch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub associate_public_ip: Option<bool>,
    pub security_group_ids: Vec<String>,
    /// Groups named instead (`SecurityGroup.N`), in the default VPC.
    pub security_group_names: Vec<String>,
    pub client_token: Option<String>,
    pub disable_api_termination: bool,
    pub disable_api_stop: bool,
    pub shutdown_behavior: Option<String>,
    pub ebs_optimized: bool,
    pub monitoring: bool,
    pub tags: Vec<(String, String)>,
    /// Tags for each instance's network interface (`ResourceType=network-interface`).
    pub interface_tags: Vec<(String, String)>,
    /// Tags for each instance's root volume (`ResourceType=volume`).
    pub volume_tags: Vec<(String, String)>,
    /// The root volume as `BlockDeviceMapping` for the root device sets it.
    pub root_volume: RootVolumeRequest,
    /// Further volumes made and attached at launch (`BlockDeviceMapping.N` for other devices;
    /// left out of the client token's digest when there are none, as requests were before).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<volumes::LaunchVolume>,
    /// `standard` or `unlimited` (burstable types only).
    pub cpu_credits: Option<String>,
    /// `PrivateIpAddress`: this address instead of the subnet's lowest free one.
    pub private_ip: Option<Ipv4Addr>,
    /// Secondary addresses of the primary interface (`NetworkInterface.N` at device index 0:
    /// `PrivateIpAddresses` not primary), and how many more of its subnet, lowest free first
    /// (`SecondaryPrivateIpAddressCount`). Both left out of the client token's digest when
    /// none are asked, as requests were before them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secondary_ips: Vec<Ipv4Addr>,
    #[serde(skip_serializing_if = "is_zero")]
    pub secondary_count: u32,
    /// `NetworkInterfaceId` at device index 0: an available interface of the account's own
    /// becomes the instance's primary one, with its subnet, addresses and groups (one
    /// instance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_interface: Option<String>,
    /// The primary interface's `Description` (a new one) and `DeleteOnTermination` (default:
    /// one made at launch goes with the instance, one the account had stays).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_delete_on_termination: Option<bool>,
    pub metadata: MetadataOptions,
    /// `Placement.Tenancy=host`: on a dedicated host of the account's ([`crate::dedicated`]),
    /// the one `host_id` names or one with auto-placement on; `affinity_host`: on that host for
    /// good (left out of the client token's digest when not asked, as requests were before).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tenancy_host: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub affinity_host: bool,
    /// The launch template and version the request was made from (`LaunchTemplate`): the
    /// instances carry them as EC2's `aws:ec2launchtemplate:*` tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_template: Option<(String, u64)>,
    /// `KernelId` / `RamdiskId`: images whose kernel or initrd the instance boots with
    /// (ModifyInstanceAttribute's `kernel` and `ramdisk`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramdisk_image: Option<String>,
    /// `NetworkInterface.N` at device index 1 and up (left out of the client token's digest
    /// when there are none, as requests were before them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_interfaces: Vec<ExtraInterface>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A further network interface of each instance launched (`NetworkInterface.N` at device
/// index 1 and up): one of the account's own, or a new one in a subnet of the instance's VPC
/// and zone. Either is attached in the launch's own transaction and defined with the guest's
/// first start.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ExtraInterface {
    pub device_index: u32,
    /// `NetworkInterfaceId`: an interface of the account's own, available.
    pub existing: Option<String>,
    /// Where a new one is made.
    pub subnet_id: Option<String>,
    pub private_ip: Option<Ipv4Addr>,
    /// Secondary addresses asked by value (`PrivateIpAddresses` not primary).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secondary_ips: Vec<Ipv4Addr>,
    pub secondary_count: u32,
    pub groups: Vec<String>,
    pub description: String,
    /// Default: a new interface goes with the instance, an existing one stays.
    pub delete_on_termination: Option<bool>,
}

/// What RunInstances may say about the root volume; the rest comes from the image.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RootVolumeRequest {
    pub size_gib: Option<u64>,
    pub volume_type: Option<String>,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
    pub delete_on_termination: Option<bool>,
    // Left out of the client token's digest when not given, as requests were before them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

/// The credit specification EC2 gives a type when none is asked for.
pub fn default_cpu_credits(spec: &crate::topology::InstanceTypeSpec) -> Option<String> {
    spec.burstable.then(|| if spec.name.starts_with("t2.") { "standard" } else { "unlimited" }.to_owned())
}

/// A state change as Stop/Start/TerminateInstances report it.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub instance_id: String,
    pub previous: InstanceState,
    pub current: InstanceState,
}

fn not_found(id: &str) -> Error {
    Error::ResourceNotFound { kind: ResourceKind::Instance, id: id.to_owned() }
}

fn instance_key(account: &str, id: &str) -> String {
    format!("{account}/{id}")
}

fn validate_launch(req: &LaunchRequest) -> Result<()> {
    if req.min_count < 1 || req.max_count < req.min_count {
        return Err(invalid("MinCount", "MinCount must be at least 1 and no greater than MaxCount"));
    }
    if let Some(data) = &req.user_data {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| invalid("UserData", "Invalid BASE64 encoding of user data."))?;
        if decoded.len() > MAX_USER_DATA {
            return Err(invalid("UserData", format!("User data is limited to {MAX_USER_DATA} bytes")));
        }
    }
    match req.shutdown_behavior.as_deref() {
        None | Some("stop") | Some("terminate") => {}
        Some(other) => {
            return Err(invalid(
                "InstanceInitiatedShutdownBehavior",
                format!("Value ({other}) for parameter instanceInitiatedShutdownBehavior is invalid. Expected: 'stop', 'terminate'."),
            ))
        }
    }
    if let Some(credits) = &req.cpu_credits {
        if credits != "standard" && credits != "unlimited" {
            return Err(invalid(
                "CreditSpecification.CpuCredits",
                format!("Value ({credits}) for parameter cpuCredits is invalid. Expected: 'standard', 'unlimited'."),
            ));
        }
    }
    tags::validate_tags(&req.tags)?;
    tags::validate_tags(&req.volume_tags)?;
    tags::validate_tags(&req.interface_tags)
}

/// A launch as checked before its transaction.
struct Launch {
    vpc_id: String,
    image: storage::ImageRecord,
    spec: crate::topology::InstanceTypeSpec,
    subnets: Vec<Subnet>,
    /// The subnet asked for (by id or zone), if any.
    subnet: Option<Subnet>,
    root: volumes::PlannedVolume,
    /// Further volumes, checked ([`LaunchRequest::volumes`]).
    volumes: Vec<volumes::PlannedVolume>,
    cpu_credits: Option<String>,
    /// The hosts as last probed; the transaction charges them with what the store holds.
    hosts: Vec<HostSnapshot>,
    /// The subnet of each new further interface ([`LaunchRequest::extra_interfaces`]).
    extra_subnets: Vec<Option<Subnet>>,
}

/// An instance's primary interface as its launch makes or adopts it.
pub(crate) struct PrimaryNic {
    pub id: String,
    pub mac: String,
    pub private_ip: String,
    pub secondary_ips: Vec<String>,
    pub groups: Vec<String>,
    pub source_dest_check: bool,
    pub public_ip: Option<String>,
    pub kept: Option<storage::KeptInterface>,
}

/// What a launch names that must exist in the account: its key pair and groups.
struct Named {
    public_key: Option<String>,
    group_ids: Vec<String>,
}

impl Named {
    fn resolve(tx: &WriteTx, account: &str, vpc_id: &str, req: &LaunchRequest) -> Result<Self> {
        let public_key = match &req.key_name {
            Some(name) => Some(crate::key_pairs::public_key(tx, account, name)?),
            None => None,
        };
        let group_ids = security_groups::resolve_launch_groups(
            tx,
            account,
            vpc_id,
            &req.security_group_ids,
            &req.security_group_names,
        )?;
        Ok(Self { public_key, group_ids })
    }
}

/// The reservation an earlier request with the same client token made (`IdempotentParameterMismatch`
/// when the request differs).
fn earlier_launch(tx: &WriteTx, account: &str, req: &LaunchRequest) -> Result<Option<Vec<InstanceRecord>>> {
    let Some(token) = &req.client_token else { return Ok(None) };
    let Some(previous) = tx.get(&CLIENT_TOKENS, &format!("{account}/{token}"))? else { return Ok(None) };
    if previous.request_digest != digest(req) {
        return Err(Error::IdempotentParameterMismatch(token.clone()));
    }
    let mut records = Vec::new();
    for id in &previous.instance_ids {
        records.extend(tx.get(&INSTANCES, &instance_key(account, id))?);
    }
    Ok(Some(records))
}

fn digest(req: &LaunchRequest) -> String {
    let mut canonical = req.clone();
    canonical.client_token = None;
    let json = serde_json::to_vec(&canonical).unwrap_or_default();
    Sha256::digest(json).iter().map(|b| format!("{b:02x}")).collect()
}

/// Charges each host with what its instances hold: storage keeps that total in step with
/// every instance write ([`storage::derived`]), under the rule [`charge`] states.
pub(crate) fn charge_usage(tx: &impl Reads, snapshots: &mut [HostSnapshot]) -> Result<()> {
    for host in snapshots.iter_mut() {
        if let Some(usage) = tx.get(&HOST_USAGE, &host.id)? {
            host.used_vcpus = u32::try_from(usage.vcpus).unwrap_or(u32::MAX);
            host.used_memory_mib = usage.memory_mib;
            host.used_disk_mib = usage.disk_mib;
        }
    }
    Ok(())
}

/// Charges the instance to its host, and its vCPUs and memory to the host it is migrating to
/// (both hold them until the switch-over; the disk is shared and stays where it is counted).
fn charge(snapshots: &mut [HostSnapshot], record: &InstanceRecord) {
    for host_id in std::iter::once(&record.host_id).chain(&record.migration_target) {
        if let Some(host) = snapshots.iter_mut().find(|h| &h.id == host_id) {
            host.used_vcpus += record.vcpus;
            host.used_memory_mib += record.memory_mib;
            if *host_id == record.host_id {
                host.used_disk_mib += disk_mib(record);
            }
        }
    }
}

/// Stop, terminate and reboot wait for a live migration to end (or be cancelled): one host
/// runs the guest at any time, and it is the one the record names.
fn refuse_if_migrating(record: &InstanceRecord, verb: &'static str) -> Result<()> {
    match &record.migration {
        Some(_) => Err(Error::IncorrectInstanceState { id: record.id.clone(), state: "migrating", verb }),
        None => Ok(()),
    }
}

/// What an existing instance needs of a host, in its own zone.
pub(crate) fn demand_of(record: &InstanceRecord) -> Demand {
    Demand {
        vcpus: record.vcpus,
        memory_mib: record.memory_mib,
        disk_mib: disk_mib(record),
        zone: Some(record.zone.clone()),
    }
}

fn disk_mib(record: &InstanceRecord) -> u64 {
    record.root_disk_bytes.div_ceil(1 << 20)
}

impl Backend {
    /// Host snapshots without usage: size, zone, ratios and whether the host answers. A host
    /// that has never been probed is probed now (outside any transaction).
    pub(crate) fn host_snapshots(&self) -> Vec<HostSnapshot> {
        // A host in maintenance takes nothing new; if redb cannot say, assume none is.
        let maintenance = self.maintenance_hosts().unwrap_or_default();
        self.hosts()
            .iter()
            .map(|host| {
                let reachable = match host.reachable() {
                    None => host.probe().reachable,
                    known => known,
                };
                let capacity = host.capacity();
                HostSnapshot {
                    id: host.id.clone(),
                    zone: host.zone.clone(),
                    schedulable: reachable == Some(true)
                        && capacity.is_some()
                        && !maintenance.get(&host.id).copied().unwrap_or(false),
                    vcpus: capacity.map_or(0, |c| c.vcpus),
                    memory_mib: capacity.map_or(0, |c| c.memory_mib),
                    disk_mib: host.config.disk_mib,
                    cpu_ratio: host.config.cpu_ratio,
                    memory_ratio: host.config.memory_ratio,
                    used_vcpus: 0,
                    used_memory_mib: 0,
                    used_disk_mib: 0,
                    load: host.load(),
                }
            })
            .collect()
    }

    /// Each zone's hosts' sizes for scheduling (vCPUs and MiB, their overcommit ratios
    /// applied), whatever runs on them now: what DescribeInstanceTypeOfferings offers there.
    /// Hosts never asked for their size are asked. Blocks.
    pub fn zone_sizes(&self) -> std::collections::BTreeMap<String, Vec<(f64, f64)>> {
        let mut sizes: std::collections::BTreeMap<String, Vec<(f64, f64)>> = std::collections::BTreeMap::new();
        for host in self.hosts().iter() {
            let capacity = match host.capacity() {
                Some(known) => Some(known),
                None => {
                    host.probe();
                    host.capacity()
                }
            };
            if let Some(c) = capacity {
                let size = (f64::from(c.vcpus) * host.config.cpu_ratio, c.memory_mib as f64 * host.config.memory_ratio);
                sizes.entry(host.zone.clone()).or_default().push(size);
            }
        }
        sizes
    }

    /// RunInstances: places, records and kicks; answers the reservation's instances.
    /// `default_vpc` is the account's default VPC as its principal last said.
    pub fn run_instances(&self, account: &str, default_vpc: &str, req: LaunchRequest) -> Result<Vec<InstanceRecord>> {
        let launch = self.prepare_launch(account, default_vpc, &req)?;
        let (records, created) = self.store().write(|tx| {
            if let Some(earlier) = earlier_launch(tx, account, &req)? {
                return Ok((earlier, false));
            }
            let named = Named::resolve(tx, account, &launch.vpc_id, &req)?;
            let (subnet, hosts) = self.place_launch(tx, account, &launch, &req)?;
            let records = self.record_launch(tx, account, &launch, &req, &named, (&subnet, &hosts))?;
            Ok::<_, Error>((records, true))
        })?;
        if created {
            // Their ports in OVN now, not at the next sweep: the guests boot meanwhile.
            self.network_changed();
            for record in &records {
                self.kick(&instance_key(account, &record.id));
            }
        }
        Ok(records)
    }

    /// The subnet of the interface a launch takes as its primary one: an interface of the
    /// account's own; or, for a retry of the launch that took it, its instance's subnet (the
    /// transaction then finds the earlier launch, or answers that the interface is in use).
    fn primary_interface_subnet(&self, account: &str, id: &str, req: &LaunchRequest) -> Result<String> {
        if req.max_count > 1 {
            return Err(Error::InvalidParameter {
                name: "NetworkInterface.N",
                message:
                    "NetworkInterface.1.NetworkInterfaceId names one interface, which only one instance can have: \
                          launch one instance."
                        .into(),
            });
        }
        self.store().read(|tx| {
            if let Some(own) = tx.get(&storage::tables::NETWORK_INTERFACES, &instance_key(account, id))? {
                return Ok(own.subnet_id);
            }
            let holder = crate::listing::primary_interface_owner(tx, account, id)?;
            match holder.map(|key| tx.get(&INSTANCES, &key)).transpose()?.flatten() {
                Some(instance) => Ok(instance.subnet_id),
                None => Err(Error::ResourceNotFound { kind: ResourceKind::NetworkInterface, id: id.to_owned() }),
            }
        })
    }

    /// What a launch needs before its transaction, checked: the image, the type, the subnet
    /// asked for, the root volume and the hosts as last seen.
    fn prepare_launch(&self, account: &str, default_vpc: &str, req: &LaunchRequest) -> Result<Launch> {
        validate_launch(req)?;
        let image = self.image(account, &req.image_id)?;
        if image.state != storage::ImageState::Available {
            return Err(Error::ImageUnavailable(image.id));
        }
        if let Some(kernel) = &req.kernel_image {
            self.check_boot_file_image(account, kernel, true)?;
        }
        if let Some(ramdisk) = &req.ramdisk_image {
            self.check_boot_file_image(account, ramdisk, false)?;
        }
        let spec = self
            .topology()
            .instance_type(&req.instance_type)
            .ok_or_else(|| invalid("InstanceType", format!("Invalid value '{}' for InstanceType.", req.instance_type)))?
            .clone();
        // A subnet named by id (or the primary interface's) decides the VPC; otherwise the
        // launch goes to the default VPC's default subnets (EC2's `VPCIdNotSpecified` when the
        // account has no default VPC).
        let subnet_id = match &req.primary_interface {
            Some(id) => Some(self.primary_interface_subnet(account, id, req)?),
            None => req.subnet_id.clone(),
        };
        let (vpc_id, subnets) = match &subnet_id {
            Some(id) => {
                let subnet = self.subnet(account, id)?;
                (subnet.vpc_id.clone(), vec![subnet])
            }
            None => {
                let vpc_id = self.default_vpc(account, default_vpc)?.ok_or(Error::NoDefaultVpc)?;
                let subnets = self.subnets(account, &vpc_id)?.into_iter().filter(|s| s.default_for_az).collect();
                (vpc_id, subnets)
            }
        };
        self.ensure_vpc_networking(&format!("Instances in {vpc_id}"))?;
        let subnet = match (&subnet_id, &req.zone) {
            (Some(_), zone) => {
                let subnet = &subnets[0];
                if zone.as_ref().is_some_and(|z| *z != subnet.zone) {
                    return Err(invalid("Placement.AvailabilityZone", "The subnet is in another availability zone"));
                }
                Some(subnet.clone())
            }
            (None, Some(zone)) => Some(
                subnets
                    .iter()
                    .find(|s| &s.zone == zone)
                    .ok_or_else(|| {
                        invalid("Placement.AvailabilityZone", format!("Invalid availability zone: [{zone}]"))
                    })?
                    .clone(),
            ),
            (None, None) => None,
        };
        // The hosts boot x86-64 guests: a type of another architecture is offered nowhere.
        if !crate::catalogue::runs_on_x86(&spec.name) {
            let zone = subnet.as_ref().or(subnets.first()).map(|s| s.zone.clone()).unwrap_or_default();
            return Err(Error::UnsupportedInZone { instance_type: spec.name.clone(), zone });
        }
        if req.private_ip.is_some() && req.max_count > 1 {
            return Err(invalid("PrivateIpAddress", "A private address can be given for one instance only"));
        }
        if !req.secondary_ips.is_empty() && req.max_count > 1 {
            return Err(invalid(
                "NetworkInterface.N.PrivateIpAddresses",
                "Secondary private addresses can be given for one instance only",
            ));
        }
        crate::interfaces::check_address_count(1 + req.secondary_ips.len() + req.secondary_count as usize)?;
        let extra_subnets = self.check_extra_interfaces(account, req, &vpc_id)?;
        // Without a subnet asked for, a further interface's subnet decides the zone, as on EC2.
        let subnet = match (subnet, extra_subnets.iter().flatten().next()) {
            (None, Some(extra)) => subnets.iter().find(|s| s.zone == extra.zone).cloned(),
            (subnet, _) => subnet,
        };
        let image_gib = image.virtual_size_bytes.div_ceil(1 << 30).max(1);
        let root_size = req.root_volume.size_gib.unwrap_or(image_gib);
        if root_size < image_gib {
            return Err(invalid(
                "BlockDeviceMapping.Ebs.VolumeSize",
                format!("Volume of size {root_size}GB is smaller than the image's {image_gib}GB."),
            ));
        }
        let root_type = req.root_volume.volume_type.clone().unwrap_or_else(|| "gp2".into());
        let (root_iops, root_throughput) =
            volumes::volume_settings(&root_type, root_size, req.root_volume.iops, req.root_volume.throughput)?;
        let region = self.topology().region_of(subnet.as_ref().map_or("", |s| s.zone.as_str())).to_owned();
        let root_ask = crate::encryption::EncryptionAsk {
            encrypted: req.root_volume.encrypted,
            kms_key_id: req.root_volume.kms_key_id.clone(),
        };
        let root = volumes::PlannedVolume {
            device: volumes::ROOT_DEVICE.into(),
            snapshot_id: None,
            size_gib: root_size,
            volume_type: root_type,
            iops: root_iops,
            throughput: root_throughput,
            delete_on_termination: req.root_volume.delete_on_termination.unwrap_or(true),
            kms_key_id: crate::encryption::kms_key_for(
                &root_ask,
                None,
                &self.ebs_defaults(account)?,
                &region,
                account,
            )?,
        };
        let volumes = self.plan_launch_volumes(account, &region, &req.volumes)?;
        let cpu_credits =
            if spec.burstable { req.cpu_credits.clone().or_else(|| default_cpu_credits(&spec)) } else { None };
        Ok(Launch {
            vpc_id,
            image,
            spec,
            subnets,
            subnet,
            root,
            volumes,
            cpu_credits,
            hosts: self.host_snapshots(),
            extra_subnets,
        })
    }

    /// Picks the subnet (one reservation lands in one zone: the one asked for, else the one that
    /// takes most) and a host for each instance, charging the hosts with what the store holds.
    fn place_launch(
        &self,
        tx: &WriteTx,
        account: &str,
        launch: &Launch,
        req: &LaunchRequest,
    ) -> Result<(Subnet, Vec<String>)> {
        let mut snapshots = launch.hosts.clone();
        charge_usage(tx, &mut snapshots)?;
        // Dedicated hosts: another account's never, the account's own for `host` tenancy only.
        let allocations = dedicated::allocations_in(tx)?;
        let want = dedicated::HostWant {
            account,
            instance_type: &launch.spec.name,
            dedicated: req.tenancy_host,
            host_id: req.host_id.as_deref(),
        };
        if let Some(host_id) = &req.host_id {
            if allocations.get(host_id).is_none_or(|a| a.account != account) {
                return Err(Error::ResourceNotFound { kind: ResourceKind::Host, id: host_id.clone() });
            }
        }
        snapshots.retain(|h| dedicated::may_place(&h.id, allocations.get(&h.id), &want));
        if req.tenancy_host && snapshots.is_empty() {
            return Err(Error::InsufficientCapacityOnHost(launch.spec.name.clone()));
        }
        let zones: Vec<&Subnet> = match (&launch.subnet, req.private_ip) {
            (Some(s), _) => vec![s],
            // A given address decides the subnet, hence the zone.
            (None, Some(ip)) => launch.subnets.iter().filter(|s| s.contains(ip)).collect(),
            (None, None) => launch.subnets.iter().collect(),
        };
        if let (true, Some(ip)) = (zones.is_empty(), req.private_ip) {
            return Err(invalid("PrivateIpAddress", format!("Address {ip} is in none of the VPC's subnets")));
        }
        let disk_mib = launch.image.virtual_size_bytes.div_ceil(1 << 20);
        let (subnet, placed) = zones
            .into_iter()
            .map(|s| {
                let demand = Demand {
                    vcpus: launch.spec.vcpus,
                    memory_mib: launch.spec.memory_mib,
                    disk_mib,
                    zone: Some(s.zone.clone()),
                };
                (s, scheduler::place(&snapshots, &demand, req.max_count as usize, self.policy()))
            })
            .max_by_key(|(_, placed)| placed.len())
            .ok_or_else(|| Error::InsufficientCapacity(req.instance_type.clone()))?;
        if placed.len() < req.min_count as usize {
            return Err(if req.tenancy_host {
                Error::InsufficientCapacityOnHost(req.instance_type.clone())
            } else {
                Error::InsufficientCapacity(req.instance_type.clone())
            });
        }
        Ok((subnet.clone(), placed.into_iter().map(|i| snapshots[i].id.clone()).collect()))
    }

    /// A launch's new primary interface: its addresses leased in `subnet` for the instance at
    /// `key`, the groups named, a public address when the subnet or the request says so.
    #[allow(clippy::too_many_arguments)]
    fn new_primary(
        &self,
        tx: &WriteTx,
        req: &LaunchRequest,
        subnet: &Subnet,
        key: &str,
        named: &Named,
        now: i64,
    ) -> Result<PrimaryNic> {
        let mac = network::new_mac();
        let ip = match req.private_ip {
            Some(ip) => network::lease_given_address(tx, subnet, ip, key, &mac)?,
            None => network::lease_address(tx, subnet, key, &mac)?,
        };
        let secondary_ips =
            crate::interfaces::lease_more(tx, subnet, key, &mac, &req.secondary_ips, req.secondary_count)?;
        Ok(PrimaryNic {
            id: ids::resource_id("eni"),
            mac,
            private_ip: ip.to_string(),
            secondary_ips,
            groups: named.group_ids.clone(),
            source_dest_check: true,
            public_ip: self.public_address_at_launch(tx, req, subnet, key)?,
            kept: (req.primary_description.is_some() || req.primary_delete_on_termination == Some(false)).then(|| {
                storage::KeptInterface {
                    description: req.primary_description.clone().unwrap_or_default(),
                    created_ms: now,
                    client_token: None,
                    delete_on_termination: req.primary_delete_on_termination.unwrap_or(true),
                }
            }),
        })
    }

    /// The public address an instance launched into `subnet` gets: when asked for
    /// (`AssociatePublicIpAddress`), or by the subnet's `MapPublicIpOnLaunch` for an instance
    /// with one interface, as on EC2. One the subnet's default asks for is given up when the
    /// shared pool is empty (the launch goes on without it), so that no account can stop
    /// others' launches by holding every address.
    fn public_address_at_launch(
        &self,
        tx: &WriteTx,
        req: &LaunchRequest,
        subnet: &Subnet,
        holder: &str,
    ) -> Result<Option<String>> {
        let wanted = req.associate_public_ip.unwrap_or(subnet.map_public_ip && req.extra_interfaces.is_empty());
        if !wanted {
            return Ok(None);
        }
        match crate::addresses::take_public_address(tx, &self.public_network(), holder) {
            Ok(address) => Ok(Some(address.to_string())),
            Err(Error::AddressLimitExceeded) if req.associate_public_ip.is_none() => {
                // Said once a minute at most: a busy cloud with a small pool launches many so.
                static SAID: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
                let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
                if said.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    *said = Some(Instant::now());
                    tracing::warn!(
                        holder,
                        "the public pool is empty: instances launch without a public address (widen [network] \
                         public_cidr, or release Elastic IPs)"
                    );
                }
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }

    /// Records one reservation of pending instances on `hosts`: addresses leased, root volumes,
    /// tags, and the client token that makes a retry find them.
    fn record_launch(
        &self,
        tx: &WriteTx,
        account: &str,
        launch: &Launch,
        req: &LaunchRequest,
        named: &Named,
        (subnet, hosts): (&Subnet, &[String]),
    ) -> Result<Vec<InstanceRecord>> {
        // The subnet (and its VPC) may have gone since the launch was checked.
        crate::vpcs::subnet_in(tx, account, &subnet.id)?;
        crate::vpcs::vpc_in(tx, account, &subnet.vpc_id)?;
        let reservation_id = ids::resource_id("r");
        let now = now_ms();
        let mut records = Vec::new();
        let member_ids = ids::member_ids("i", &reservation_id, hosts.len());
        // The launch's volumes sit beside its instances too (ids::member_ids).
        let mut volume_ids =
            ids::member_ids("vol", &reservation_id, hosts.len() * (1 + launch.volumes.len())).into_iter();
        for ((index, host_id), id) in hosts.iter().enumerate().zip(member_ids) {
            let key = instance_key(account, &id);
            let nic = match &req.primary_interface {
                Some(interface_id) => crate::interfaces::adopt_interface(tx, account, interface_id, subnet, &key, req)?,
                None => self.new_primary(tx, req, subnet, &key, named, now)?,
            };
            let record = InstanceRecord {
                id: id.clone(),
                account: account.to_owned(),
                reservation_id: reservation_id.clone(),
                image_id: launch.image.id.clone(),
                instance_type: launch.spec.name.clone(),
                vcpus: launch.spec.vcpus,
                memory_mib: launch.spec.memory_mib,
                zone: subnet.zone.clone(),
                host_id: host_id.clone(),
                domain_uuid: ec2_uuid(),
                state: InstanceState::Pending,
                state_reason: Some(StateReason { code: "pending".into(), message: "pending".into() }),
                state_transition_reason: String::new(),
                force_stop: false,
                booted: false,
                launch_time_ms: now,
                terminated_ms: None,
                ami_launch_index: index as u32,
                key_name: req.key_name.clone(),
                user_data: req.user_data.clone(),
                vpc_id: launch.vpc_id.clone(),
                subnet_id: subnet.id.clone(),
                network_interface_id: nic.id,
                private_ip: nic.private_ip,
                mac: nic.mac,
                security_group_ids: nic.groups,
                client_token: req.client_token.clone(),
                disable_api_termination: req.disable_api_termination,
                disable_api_stop: req.disable_api_stop,
                shutdown_behavior: req.shutdown_behavior.clone().unwrap_or_else(|| "stop".into()),
                ebs_optimized: req.ebs_optimized,
                monitoring: req.monitoring,
                dir: self.instance_dir_on(host_id, &id).to_string_lossy().into_owned(),
                root_disk_bytes: launch.image.virtual_size_bytes,
                migration: None,
                migration_target: None,
                cpu_credits: launch.cpu_credits.clone(),
                metadata: req.metadata.clone(),
                public_key: named.public_key.clone(),
                public_ip: nic.public_ip,
                source_dest_check: nic.source_dest_check,
                secondary_ips: nic.secondary_ips,
                kept_interface: nic.kept,
                dedicated: req
                    .tenancy_host
                    .then(|| storage::DedicatedPlacement { affinity_host: req.affinity_host.then(|| host_id.clone()) }),
                kernel_image: req.kernel_image.clone(),
                ramdisk_image: req.ramdisk_image.clone(),
            };
            tx.insert(&INSTANCES, &key, &record)?;
            let root_id = volume_ids.next().unwrap_or_else(|| ids::resource_id("vol"));
            volumes::insert_launch_volume(
                tx,
                &record,
                (root_id, &root_disk_path(&record)),
                &launch.root,
                &req.volume_tags,
            )?;
            for planned in &launch.volumes {
                let id = volume_ids.next().unwrap_or_else(|| ids::resource_id("vol"));
                let path = self.volume_path(&id);
                volumes::insert_launch_volume(tx, &record, (id, &path), planned, &req.volume_tags)?;
            }
            tags::put_tags(tx, account, &id, &req.tags)?;
            if let Some((template, version)) = &req.launch_template {
                tags::put_tags(tx, account, &id, &crate::launch_templates::system_tags(template, *version))?;
            }
            if req.primary_interface.is_none() {
                tags::put_tags(tx, account, &record.network_interface_id, &req.interface_tags)?;
            }
            for (extra, extra_subnet) in req.extra_interfaces.iter().zip(&launch.extra_subnets) {
                self.attach_at_launch(tx, &record, extra, extra_subnet.as_ref(), &req.interface_tags)?;
            }
            records.push(record);
        }
        if let Some(token) = &req.client_token {
            let remembered = ClientTokenRecord {
                reservation_id,
                request_digest: digest(req),
                instance_ids: records.iter().map(|r| r.id.clone()).collect(),
            };
            tx.insert(&CLIENT_TOKENS, &format!("{account}/{token}"), &remembered)?;
        }
        Ok(records)
    }

    /// Every instance of `account`, by id.
    pub fn instances(&self, account: &str) -> Result<Vec<InstanceRecord>> {
        Ok(self.store().read(|tx| tx.scan(&INSTANCES, &format!("{account}/")))?.into_iter().map(|(_, r)| r).collect())
    }

    /// The instance with this id, whichever account holds it, with its key.
    pub(crate) fn find_instance(tx: &impl Reads, id: &str) -> Result<Option<(String, InstanceRecord)>> {
        let Some((entry, _)) = tx.scan(&INSTANCE_IDS, &format!("{id}/"))?.into_iter().next() else { return Ok(None) };
        let account = &entry[id.len() + 1..];
        let key = instance_key(account, id);
        Ok(tx.get(&INSTANCES, &key)?.map(|r| (key, r)))
    }

    /// Every instance of every account that is not terminated.
    pub fn live_instance_records(&self) -> Result<Vec<InstanceRecord>> {
        let mut records = Vec::new();
        self.store().read(|tx| tx.for_each_live_instance(|_, r| records.push(r)))?;
        Ok(records)
    }

    pub(crate) fn image_in_use(&self, image_id: &str) -> Result<bool> {
        // A pending copy of it (CopyImage) still reads its files too.
        let copying = self.store().read(|tx| {
            Ok::<_, Error>(
                tx.scan(&storage::tables::IMAGES, "")?
                    .into_iter()
                    .any(|(_, i)| i.state == storage::ImageState::Pending && i.copy_of.as_deref() == Some(image_id)),
            )
        })?;
        // An instance that boots another image's kernel or initrd needs those files too.
        let uses = |r: &InstanceRecord| {
            r.image_id == image_id
                || r.kernel_image.as_deref() == Some(image_id)
                || r.ramdisk_image.as_deref() == Some(image_id)
        };
        Ok(copying || self.live_instance_records()?.iter().any(uses))
    }

    /// Applies `change` to each named instance in one transaction, after checking that every
    /// id exists; answers the state changes in request order and kicks the changed ones.
    fn transition(
        &self,
        account: &str,
        ids: &[String],
        mut change: impl FnMut(&WriteTx, &mut InstanceRecord) -> Result<()>,
    ) -> Result<Vec<StateChange>> {
        let (changes, kicks) = self.store().write(|tx| {
            let mut records = Vec::new();
            for id in ids {
                let record = tx.get(&INSTANCES, &instance_key(account, id))?.ok_or_else(|| not_found(id))?;
                records.push(record);
            }
            let mut changes = Vec::new();
            let mut kicks = Vec::new();
            for mut record in records {
                let previous = record.state;
                change(tx, &mut record)?;
                if record.state != previous || record.force_stop {
                    tx.insert(&INSTANCES, &instance_key(account, &record.id), &record)?;
                    kicks.push(instance_key(account, &record.id));
                }
                changes.push(StateChange { instance_id: record.id.clone(), previous, current: record.state });
            }
            Ok::<_, Error>((changes, kicks))
        })?;
        for key in kicks {
            self.kick(&key);
        }
        Ok(changes)
    }

    pub fn stop_instances(&self, account: &str, ids: &[String], force: bool) -> Result<Vec<StateChange>> {
        self.transition(account, ids, |_, r| {
            refuse_if_migrating(r, "stopped")?;
            match r.state {
                InstanceState::Running => {
                    if r.disable_api_stop {
                        return Err(Error::OperationNotPermitted(format!(
                            "The instance '{}' may not be stopped. Modify its 'disableApiStop' instance attribute and try again.",
                            r.id
                        )));
                    }
                    r.state = InstanceState::Stopping;
                    r.force_stop = force;
                    r.state_transition_reason = format!("User initiated ({})", timestamp_text(now_ms()));
                    r.state_reason = Some(StateReason {
                        code: "Client.UserInitiatedShutdown".into(),
                        message: "Client.UserInitiatedShutdown: User initiated shutdown".into(),
                    });
                }
                InstanceState::Stopping => r.force_stop |= force,
                InstanceState::Stopped => {}
                state => return Err(Error::IncorrectInstanceState { id: r.id.clone(), state: state.name(), verb: "stopped" }),
            }
            Ok(())
        })
    }

    pub fn start_instances(&self, account: &str, ids: &[String]) -> Result<Vec<StateChange>> {
        self.ensure_vpc_networking("Instances")?;
        let base = self.host_snapshots();
        // Usage is read once per request, then charged with each instance this request starts.
        let mut usage: Option<(Vec<HostSnapshot>, std::collections::HashMap<String, storage::HostAllocationRecord>)> =
            None;
        self.transition(account, ids, |tx, r| {
            match r.state {
                InstanceState::Stopped => {
                    // Back where it was if that host still has room; anywhere in its zone if not.
                    let (snapshots, allocations) = match &mut usage {
                        Some(read) => read,
                        None => {
                            let mut snapshots = base.clone();
                            charge_usage(tx, &mut snapshots)?;
                            usage.insert((snapshots, dedicated::allocations_in(tx)?))
                        }
                    };
                    let demand = demand_of(r);
                    let want = dedicated::HostWant::of(r);
                    let eligible: Vec<usize> = (0..snapshots.len())
                        .filter(|&i| dedicated::may_place(&snapshots[i].id, allocations.get(&snapshots[i].id), &want))
                        .collect();
                    let pool: Vec<HostSnapshot> = eligible.iter().map(|&i| snapshots[i].clone()).collect();
                    // Its own host first: one named at launch stays its host even with
                    // auto-placement off.
                    let home_want = dedicated::HostWant { host_id: Some(&r.host_id), ..want };
                    let home = snapshots.iter().position(|h| h.id == r.host_id).filter(|&i| {
                        let allocation = allocations.get(&snapshots[i].id);
                        dedicated::may_place(&snapshots[i].id, allocation, &want)
                            || (want.dedicated && dedicated::may_place(&snapshots[i].id, allocation, &home_want))
                    });
                    // Its disk on its host's own storage: there or nowhere.
                    let pinned = Path::new(&r.dir) != self.instance_dir(&r.id);
                    let placed = home
                        .filter(|&i| !scheduler::place(&snapshots[i..=i], &demand, 1, self.policy()).is_empty())
                        .or_else(|| {
                            let elsewhere = scheduler::place(&pool, &demand, 1, self.policy());
                            elsewhere.first().map(|&j| eligible[j]).filter(|_| !pinned)
                        })
                        .ok_or_else(|| {
                            if want.dedicated {
                                Error::InsufficientCapacityOnHost(r.instance_type.clone())
                            } else {
                                Error::InsufficientCapacity(r.instance_type.clone())
                            }
                        })?;
                    r.host_id = snapshots[placed].id.clone();
                    charge(snapshots, r);
                    r.state = InstanceState::Pending;
                    r.force_stop = false;
                    r.state_reason = None;
                    r.state_transition_reason = String::new();
                }
                InstanceState::Pending | InstanceState::Running => {}
                state => {
                    return Err(Error::IncorrectInstanceState {
                        id: r.id.clone(),
                        state: state.name(),
                        verb: "started",
                    })
                }
            }
            Ok(())
        })
    }

    pub fn terminate_instances(&self, account: &str, ids: &[String]) -> Result<Vec<StateChange>> {
        self.transition(account, ids, |_, r| {
            refuse_if_migrating(r, "terminated")?;
            if r.disable_api_termination && r.state != InstanceState::Terminated {
                return Err(Error::OperationNotPermitted(format!(
                    "The instance '{}' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.",
                    r.id
                )));
            }
            if !matches!(r.state, InstanceState::Terminated | InstanceState::ShuttingDown) {
                r.state = InstanceState::ShuttingDown;
                r.state_transition_reason = format!("User initiated ({})", timestamp_text(now_ms()));
                r.state_reason = Some(StateReason {
                    code: "Client.UserInitiatedShutdown".into(),
                    message: "Client.UserInitiatedShutdown: User initiated shutdown".into(),
                });
            }
            Ok(())
        })
    }

    /// Reboots running instances at once (EC2 reports no state change for a reboot).
    pub fn reboot_instances(&self, account: &str, ids: &[String]) -> Result<()> {
        let records = self.store().read(|tx| {
            ids.iter()
                .map(|id| tx.get(&INSTANCES, &instance_key(account, id))?.ok_or_else(|| not_found(id)))
                .collect::<Result<Vec<_>>>()
        })?;
        if let Some(r) = records.iter().find(|r| {
            matches!(
                r.state,
                InstanceState::Terminated
                    | InstanceState::ShuttingDown
                    | InstanceState::Stopped
                    | InstanceState::Stopping
            )
        }) {
            return Err(Error::IncorrectInstanceState { id: r.id.clone(), state: r.state.name(), verb: "rebooted" });
        }
        for record in &records {
            refuse_if_migrating(record, "rebooted")?;
        }
        for record in records.iter().filter(|r| r.state == InstanceState::Running) {
            let host = self.host_of(record)?;
            host.driver.reboot(&record.id).map_err(Error::Driver)?;
        }
        Ok(())
    }

    /// The tail of the instance's serial console log (EC2 keeps the last 64 KiB).
    pub fn console_output(&self, account: &str, id: &str) -> Result<Vec<u8>> {
        let record =
            self.store().read(|tx| tx.get(&INSTANCES, &instance_key(account, id)))?.ok_or_else(|| not_found(id))?;
        let bytes = std::fs::read(console_path(&record)).unwrap_or_default();
        let start = bytes.len().saturating_sub(64 * 1024);
        Ok(bytes[start..].to_vec())
    }

    /// Whether the instance's host is gone or stopped answering (its status is `impaired`).
    pub fn host_impaired(&self, record: &InstanceRecord) -> bool {
        self.hosts().get(&record.host_id).is_none_or(|h| h.reachable() == Some(false))
    }

    fn host_of(&self, record: &InstanceRecord) -> Result<&std::sync::Arc<Host>> {
        self.hosts().get(&record.host_id).ok_or_else(|| Error::HostGone(record.host_id.clone()))
    }

    /// Instance `id`'s folder on the storage every host shares.
    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.data_dir().join("instances").join(id)
    }

    /// Instance `id`'s folder on host `host_id`: on the host's own storage when it has some
    /// (its `disk_dir`), else on the shared one.
    pub fn instance_dir_on(&self, host_id: &str, id: &str) -> PathBuf {
        match self.hosts().get(host_id).and_then(|h| h.config.disk_dir.as_ref()) {
            Some(dir) => dir.join(id),
            None => self.instance_dir(id),
        }
    }

    /// Writes `f`'s change if the instance is still in state `expected`: a user's request
    /// that came in meanwhile wins over the conductor's older view.
    fn update_if(&self, key: &str, expected: InstanceState, f: impl FnOnce(&mut InstanceRecord)) -> Result<bool> {
        self.update_when(key, expected, |r| {
            f(r);
            true
        })
    }

    /// Like [`Backend::update_if`], where `f` may still decline (answer `false`) after a look.
    fn update_when(
        &self,
        key: &str,
        expected: InstanceState,
        f: impl FnOnce(&mut InstanceRecord) -> bool,
    ) -> Result<bool> {
        self.store().write(|tx| {
            let Some(mut record) = tx.get(&INSTANCES, key)? else { return Ok(false) };
            if record.state != expected || !f(&mut record) {
                return Ok(false);
            }
            tx.insert(&INSTANCES, key, &record)?;
            Ok::<_, Error>(true)
        })
    }

    pub(crate) fn launch(&self, key: &str, record: InstanceRecord) -> Result<()> {
        let result = self.boot(&record);
        match result {
            // The store failed (a database failover): nothing is wrong with the instance, whose
            // launch the sweep retries (starting a domain that already runs is no error).
            Err(error) if error.store_unavailable() => Err(error),
            Ok(()) => {
                self.update_if(key, InstanceState::Pending, |r| {
                    r.state = InstanceState::Running;
                    r.state_reason = None;
                    r.booted = true;
                })?;
                Ok(())
            }
            // A host that does not answer may come back: the sweep retries.
            Err(Error::Driver(DriverError::Unreachable(why))) => {
                tracing::warn!(instance = %record.id, %why, "host unreachable, launch postponed");
                Ok(())
            }
            Err(error) => {
                // The cause (driver or qemu-img text, host paths) is for the operator's log only.
                tracing::warn!(instance = %record.id, %error, "launch failed");
                let reason = StateReason {
                    code: "Server.InternalError".into(),
                    message: "Server.InternalError: Internal error on launch".into(),
                };
                if record.booted {
                    // A restart that failed leaves the instance stopped, its disk intact.
                    self.update_if(key, InstanceState::Pending, |r| {
                        r.state = InstanceState::Stopped;
                        r.state_reason = Some(reason);
                    })?;
                } else {
                    self.update_if(key, InstanceState::Pending, |r| {
                        r.state = InstanceState::ShuttingDown;
                        r.state_reason = Some(reason);
                    })?;
                    self.kick(key);
                }
                Ok(())
            }
        }
    }

    fn boot(&self, record: &InstanceRecord) -> Result<()> {
        let host = self.host_of(record)?;
        let image = self.any_image(&record.image_id)?;
        let dir = Path::new(&record.dir);
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("creating {}: {e}", dir.display())))?;
        let disk = root_disk_path(record);
        let volumes = self.instance_volumes(&record.account, &record.id)?;
        let root_encryption = volumes.iter().find(|v| v.root).and_then(|v| v.encryption.as_ref());
        if !disk.exists() {
            let image = image.as_ref().ok_or_else(|| Error::Io(format!("image {} is gone", record.image_id)))?;
            let size = volumes.iter().find(|v| v.root).map(|v| v.size_gib << 30);
            let passphrase = root_encryption.map(|e| e.passphrase.as_str());
            crate::disk::create_overlay(Path::new(&image.disk), &image.disk_format, &disk, passphrase, size)?;
        }
        if !record.booted {
            // The volumes its launch made besides the root get their files with the first boot.
            for volume in volumes.iter().filter(|v| !v.root && !Path::new(&v.path).exists()) {
                self.make_volume_file(volume)?;
            }
        }
        // The kernel and its arguments come from the image; a deregistered image's are gone,
        // so such an instance boots from its disk. A kernel or ramdisk chosen apart
        // (ModifyInstanceAttribute) comes from its image instead, while that image lasts.
        let chosen = |id: &Option<String>| -> Result<Option<ImageRecord>> {
            Ok(match id {
                Some(id) => self.any_image(id)?,
                None => None,
            })
        };
        let kernel_image = chosen(&record.kernel_image)?.filter(|i| i.kernel.is_some());
        let ramdisk_image = chosen(&record.ramdisk_image)?.filter(|i| i.initrd.is_some());
        let (kernel, initrd, cmdline) = match image.or_else(|| kernel_image.clone()) {
            Some(image) if image.kernel.is_some() || kernel_image.is_some() => {
                let subnet = self.subnet(&record.account, &record.subnet_id).ok();
                let mut cmdline =
                    image.cmdline.clone().or_else(|| kernel_image.as_ref().and_then(|k| k.cmdline.clone()));
                let cmdline = cmdline.get_or_insert_with(String::new);
                if let Some(subnet) = subnet {
                    cmdline.push_str(&format!(" {}", ip_argument(record, &subnet)));
                }
                let kernel = kernel_image.and_then(|k| k.kernel).or(image.kernel);
                let initrd = ramdisk_image.and_then(|r| r.initrd).or(image.initrd);
                (kernel, initrd, Some(cmdline.clone()))
            }
            _ => (None, None, None),
        };
        // OVN serves the NIC: addresses, DHCP, routing, security groups.
        let spec = DomainSpec {
            name: record.id.clone(),
            uuid: record.domain_uuid.clone(),
            vcpus: record.vcpus,
            memory_mib: record.memory_mib,
            accelerator: host.accelerator,
            disk,
            root_key: root_encryption.map(crate::hypervisor::DiskKey::of),
            volumes: volumes::boot_disks(&volumes, &record.id),
            kernel,
            initrd,
            cmdline,
            mac: record.mac.clone(),
            port: self.ovn_port(record)?,
            nics: self.extra_nics(record)?,
            console_log: console_path(record),
            instance_type: record.instance_type.clone(),
            metadata: Some(self.domain_mark(record)?),
        };
        host.lending_keys(&spec.keys(), || {
            host.driver.define(&spec)?;
            host.driver.start(&record.id)
        })
        .map_err(Error::Driver)
    }

    pub(crate) fn power_off(&self, key: &str, record: InstanceRecord) -> Result<()> {
        let host = self.host_of(&record)?;
        let driver = &host.driver;
        if !record.force_stop {
            match driver.shutdown(&record.id) {
                Ok(()) | Err(DriverError::NoDomain(_)) => {}
                Err(e @ DriverError::Unreachable(_)) => return Err(Error::Driver(e)),
                Err(e) => tracing::warn!(instance = %record.id, error = %e, "ACPI shutdown refused; forcing"),
            }
            let started = Instant::now();
            let mut asked = started;
            while started.elapsed() < self.stop_timeout() && is_running(driver.state(&record.id))? {
                if self
                    .store()
                    .read(|tx| tx.get(&INSTANCES, key))?
                    .is_some_and(|r| r.force_stop || r.state != InstanceState::Stopping)
                {
                    break;
                }
                // A guest still booting misses the power button: press it again now and then.
                if asked.elapsed() >= Duration::from_secs(2) {
                    let _ = driver.shutdown(&record.id);
                    asked = Instant::now();
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        tolerate_missing(driver.destroy(&record.id))?;
        self.update_if(key, InstanceState::Stopping, |r| {
            r.state = InstanceState::Stopped;
            r.force_stop = false;
        })?;
        Ok(())
    }

    pub(crate) fn tear_down(&self, key: &str, record: InstanceRecord) -> Result<()> {
        // A host removed from config has nothing left to tear down.
        if let Ok(host) = self.host_of(&record) {
            tolerate_missing(host.driver.destroy(&record.id))?;
            tolerate_missing(host.driver.undefine(&record.id))?;
        }
        self.release_instance_volumes(&record)?;
        if let Err(error) = std::fs::remove_dir_all(&record.dir) {
            if error.kind() != std::io::ErrorKind::NotFound {
                return Err(Error::Io(format!("removing {}: {error}", record.dir)));
            }
        }
        self.store().write(|tx| {
            let Some(mut current) = tx.get(&INSTANCES, key)? else { return Ok(()) };
            if current.state != InstanceState::ShuttingDown {
                return Ok(());
            }
            let scope = network::lease_scope(&current.vpc_id);
            if current.kept_interface.as_ref().is_some_and(|k| !k.delete_on_termination) {
                // The interface stays, available, with its addresses, tags and Elastic IPs.
                crate::interfaces::give_back_primary_interface(tx, &current, &scope)?;
            } else {
                for address in std::iter::once(&current.private_ip).chain(&current.secondary_ips) {
                    network::release_address(tx, &scope, address, key)?;
                }
                // The interface goes with the instance, and its tags with it.
                tags::drop_tags(tx, &current.account, &current.network_interface_id)?;
            }
            crate::addresses::release_instance_addresses(tx, &current.account, &current.id)?;
            self.release_instance_interfaces(tx, &current)?;
            if let Some(address) = current.public_ip.take() {
                crate::addresses::give_back_public_address(tx, &address, key)?;
            }
            current.state = InstanceState::Terminated;
            current.terminated_ms = Some(now_ms());
            tx.insert(&INSTANCES, key, &current)?;
            Ok::<_, Error>(())
        })?;
        Ok(())
    }

    /// Forgets the instances at `keys` (the sweep found them terminated longer than
    /// `retention` ago), with their tags.
    pub(crate) fn purge_terminated(&self, keys: &[String], retention: Duration) -> Result<usize> {
        // The sweep calls this every interval: commit only when something has expired.
        if keys.is_empty() {
            return Ok(0);
        }
        let cutoff = now_ms() - retention.as_millis() as i64;
        self.store().write(|tx| {
            let mut purged = 0;
            for key in keys {
                // Gone already, or changed since the sweep read it: nothing to forget.
                let Some(record) = tx.get(&INSTANCES, key)? else { continue };
                if record.state != InstanceState::Terminated || record.terminated_ms.is_none_or(|t| t > cutoff) {
                    continue;
                }
                tx.remove(&INSTANCES, key)?;
                tags::drop_tags(tx, &record.account, &record.id)?;
                purged += 1;
            }
            Ok::<_, Error>(purged)
        })
    }

    /// The sweep's verdict on a running instance whose domain is gone or off: the guest shut
    /// itself down, so it becomes stopped, or is terminated if it asked for that.
    /// `host_id` is the host that was seen without the guest: if the instance has moved (or
    /// started moving) since, that proves nothing.
    pub(crate) fn guest_powered_off(&self, key: &str, host_id: &str) -> Result<()> {
        let mut terminate = false;
        let changed = self.update_when(key, InstanceState::Running, |r| {
            if r.host_id != host_id || r.migration.is_some() {
                return false;
            }
            let reason = StateReason {
                code: "Client.InstanceInitiatedShutdown".into(),
                message: "Client.InstanceInitiatedShutdown: Instance initiated shutdown".into(),
            };
            r.state_reason = Some(reason);
            r.state_transition_reason = format!("Instance initiated shutdown ({})", timestamp_text(now_ms()));
            terminate = r.shutdown_behavior == "terminate";
            r.state = if terminate { InstanceState::ShuttingDown } else { InstanceState::Stopped };
            true
        })?;
        if changed && terminate {
            self.kick(key);
        }
        Ok(())
    }
}

/// A domain that is already gone is as good as one just removed.
pub(crate) fn tolerate_missing(result: Result<(), DriverError>) -> Result<()> {
    match result {
        Ok(()) | Err(DriverError::NoDomain(_)) => Ok(()),
        Err(e) => Err(Error::Driver(e)),
    }
}

fn is_running(state: Result<Option<PowerState>, DriverError>) -> Result<bool> {
    let state = state.map_err(Error::Driver)?;
    Ok(state.is_some_and(|s| !s.is_off()))
}

/// An instance's root disk, in its folder.
pub(crate) const ROOT_DISK_FILE: &str = "root.qcow2";

pub(crate) fn root_disk_path(record: &InstanceRecord) -> PathBuf {
    Path::new(&record.dir).join(ROOT_DISK_FILE)
}

pub fn console_path(record: &InstanceRecord) -> PathBuf {
    Path::new(&record.dir).join("console.log")
}

/// A random UUID that starts with `ec2`: the guest reads it as its SMBIOS system UUID, which
/// is how software tells that it runs on EC2.
fn ec2_uuid() -> String {
    format!("ec2{}", &uuid::Uuid::new_v4().to_string()[3..])
}

/// The kernel's `ip=` argument: address, router, netmask, hostname, device, no autoconf.
fn ip_argument(record: &InstanceRecord, subnet: &Subnet) -> String {
    let ip: Ipv4Addr = record.private_ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
    format!("ip={ip}::{}:{}:{}:eth0:off", subnet.router(), subnet.netmask(), record.id)
}

/// EC2's `StateTransitionReason` time format: `2026-11-25 10:00:00 GMT`.
fn timestamp_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%d %H:%M:%S GMT").to_string()
}
