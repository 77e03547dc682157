//! Volumes and snapshots: qcow2 files under the data dir, attached to guests as virtio disks.
//!
//! 1. Requests record the change and kick the conductor, as instances do. The file work for a
//!    volume is done by whoever owns it: the instance's work when it is attached (so it never
//!    overlaps a start, stop, migration or terminate of that instance), the volume's own work
//!    when it is not ([`Backend::converge_volume`]).
//! 2. CreateVolume makes the file (empty, or a copy of a snapshot) and turns `available`.
//!    AttachVolume records `attaching`; the instance's work hot-plugs the disk if the guest
//!    runs, and a stopped instance gets it at its next start, since every start defines the
//!    domain with its volumes. DetachVolume is the reverse and waits for the guest to let go.
//! 3. Every instance's root disk is a volume too, made by RunInstances and attached as `vda`;
//!    terminating the instance deletes it unless `DeleteOnTermination` is off, in which case
//!    its file moves out of the instance's folder and it stays `available`.
//! 4. CreateSnapshot copies the volume, flattened, into a standalone qcow2; a running guest is
//!    paused for the copy (QEMU flushes its disks on pause), as CreateImage does.
//! 5. ModifyVolume grows the file (`qemu-img resize`, or libvirt's block resize while the guest
//!    runs, which the guest sees at once). Type, IOPS and throughput are recorded only.
//!
//! 6. Encrypted volumes ([`crate::encryption`]) are the same files with LUKS inside; every copy
//!    above is re-encrypted under its new record's own key, and a host holds a key only while
//!    QEMU opens the disk.
//! 7. A Multi-Attach volume (io1, io2) is a raw file, attached to up to 16 instances as a
//!    `<shareable/>` disk. Each instance's work settles its own attachment; the first
//!    attachment's instance does the file work (growth is refused while attached, as QEMU
//!    would not tell the other guests).
//!
//! While a volume has a snapshot or a modification under way it is not attached or detached:
//! one piece of work at a time touches its file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use storage::tables::{INSTANCES, RETIRED_SNAPSHOTS, SNAPSHOTS, SNAPSHOT_IDS, VOLUMES, VOLUME_ATTACHMENTS};
use storage::{
    AttachmentState, InstanceRecord, InstanceState, ModificationState, Reads, SnapshotRecord, SnapshotState,
    VolumeAttachmentRecord, VolumeModificationRecord, VolumeRecord, VolumeState, WriteTx,
};

use crate::disk::Disk;
use crate::encryption::{kms_key_for, seal, EncryptionAsk};
use crate::hypervisor::{AttachedDisk, DiskKey, PowerState};
use crate::{disk, ids, invalid, now_ms, tags, Backend, Error, ResourceKind, Result};

/// The device name of every instance's root disk.
pub const ROOT_DEVICE: &str = "/dev/vda";

/// How long a guest gets to release a disk before the detach is tried again later.
const DETACH_WAIT: Duration = Duration::from_secs(20);

const GIB: u64 = 1 << 30;

/// A CreateVolume request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewVolume {
    pub zone: String,
    pub size_gib: Option<u64>,
    pub volume_type: Option<String>,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
    pub snapshot_id: Option<String>,
    pub client_token: Option<String>,
    pub tags: Vec<(String, String)>,
    pub encryption: EncryptionAsk,
    /// `MultiAttachEnabled` (io1 and io2 only).
    pub multi_attach: bool,
}

/// The most instances a Multi-Attach volume is attached to at once, as on EC2 (Nitro).
pub const MAX_SHARED_ATTACHMENTS: usize = 16;

/// A volume's file as qemu-img opens it.
fn volume_disk(volume: &VolumeRecord) -> Disk<'_> {
    Disk::of(Path::new(&volume.path), volume.encryption.as_ref()).raw(volume.multi_attach)
}

/// A ModifyVolume request: what is not given stays as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeChange {
    pub size_gib: Option<u64>,
    pub volume_type: Option<String>,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
}

/// A volume's performance settings after EC2's rules: sizes per type, IOPS and throughput
/// where the type has them (gp3 defaults 3000 IOPS and 125 MiB/s; gp2 earns 3 IOPS per GiB,
/// 100 to 16000; io1 and io2 need IOPS), nothing where it has not.
pub fn volume_settings(
    volume_type: &str,
    size_gib: u64,
    iops: Option<u32>,
    throughput: Option<u32>,
) -> Result<(Option<u32>, Option<u32>)> {
    let (min, max) = match volume_type {
        "gp2" | "gp3" => (1, 16384),
        "io1" => (4, 16384),
        "io2" => (4, 65536),
        "st1" | "sc1" => (125, 16384),
        "standard" => (1, 1024),
        other => {
            return Err(invalid(
                "VolumeType",
                format!("Value ({other}) for parameter volumeType is invalid. Expected: 'standard', 'io1', 'io2', 'gp2', 'sc1', 'st1', 'gp3'."),
            ))
        }
    };
    if !(min..=max).contains(&size_gib) {
        return Err(invalid(
            "Size",
            format!("Volume of {size_gib}GiB is outside the range for {volume_type} volumes ({min} to {max} GiB)."),
        ));
    }
    if throughput.is_some() && volume_type != "gp3" {
        return Err(invalid("Throughput", format!("Throughput is not supported for {volume_type} volumes.")));
    }
    match volume_type {
        "gp3" => {
            let iops = iops.unwrap_or(3000);
            let throughput = throughput.unwrap_or(125);
            if !(3000..=16000).contains(&iops) || !(125..=1000).contains(&throughput) {
                return Err(invalid("Iops", "gp3 volumes take 3000 to 16000 IOPS and 125 to 1000 MiB/s."));
            }
            Ok((Some(iops), Some(throughput)))
        }
        "io1" | "io2" => {
            let iops = iops.ok_or_else(|| Error::MissingParameter("Iops".into()))?;
            if !(100..=256_000).contains(&iops) {
                return Err(invalid("Iops", "io1 and io2 volumes take 100 to 256000 IOPS."));
            }
            Ok((Some(iops), None))
        }
        "gp2" if iops.is_none() => Ok((Some((size_gib * 3).clamp(100, 16000) as u32), None)),
        _ if iops.is_some() => Err(invalid("Iops", format!("IOPS cannot be set for {volume_type} volumes."))),
        _ => Ok((None, None)),
    }
}

/// The virtio target for a device name: `/dev/sdf`, `/dev/xvdf` and `/dev/vdf` are all `vdf`,
/// and the two-letter names EC2 takes for HVM guests (`/dev/xvdba`) are `vdba`. `a` is the root
/// disk's; one letter outside `b`–`z`, or two outside `a`–`z`, is refused.
pub fn guest_target(device: &str) -> Result<String> {
    let letter = ["/dev/sd", "/dev/xvd", "/dev/vd"]
        .iter()
        .find_map(|prefix| device.strip_prefix(prefix))
        .filter(|rest| match rest.as_bytes() {
            [one] => (b'b'..=b'z').contains(one),
            [first, second] => first.is_ascii_lowercase() && second.is_ascii_lowercase(),
            _ => false,
        })
        .ok_or_else(|| {
            invalid(
                "Device",
                format!("Value ({device}) for parameter device is invalid. {device} is not a valid EBS device name."),
            )
        })?;
    Ok(format!("vd{letter}"))
}

/// Whether something may be attached to `instance` now (a volume, a network interface): it
/// runs or is stopped, and is not migrating.
pub(crate) fn check_attachable(instance: &InstanceRecord) -> Result<()> {
    if !matches!(instance.state, InstanceState::Running | InstanceState::Stopped) {
        return Err(Error::IncorrectInstanceState {
            id: instance.id.clone(),
            state: instance.state.name(),
            verb: "attached to",
        });
    }
    if instance.migration.is_some() {
        return Err(Error::IncorrectInstanceState { id: instance.id.clone(), state: "migrating", verb: "attached to" });
    }
    Ok(())
}

fn not_found(id: &str) -> Error {
    Error::ResourceNotFound { kind: ResourceKind::Volume, id: id.to_owned() }
}

fn snapshot_not_found(id: &str) -> Error {
    Error::ResourceNotFound { kind: ResourceKind::Snapshot, id: id.to_owned() }
}

fn key(account: &str, id: &str) -> String {
    format!("{account}/{id}")
}

/// Who does a volume's file work: its instance when attached, itself when not.
fn owner_key(volume: &VolumeRecord) -> String {
    match &volume.attachment {
        Some(a) => key(&volume.account, &a.instance_id),
        None => key(&volume.account, &volume.id),
    }
}

fn busy(volume: &VolumeRecord) -> bool {
    volume.modification.as_ref().is_some_and(|m| m.state == ModificationState::Modifying)
}

/// Whether a volume has work waiting: a file to make, growth, an attach or detach, or one of
/// `pending`'s snapshots.
fn needs_work(volume: &VolumeRecord, pending: &[SnapshotRecord]) -> bool {
    volume.state == VolumeState::Creating
        || busy(volume)
        || volume.attachments().any(|a| a.state != AttachmentState::Attached)
        || pending.iter().any(|s| s.volume_id == volume.id)
}

/// The virtio target of an attachment: `vda` for a root disk, the device name's otherwise.
fn target_of(volume: &VolumeRecord, attachment: &VolumeAttachmentRecord) -> Result<String> {
    if volume.root {
        Ok("vda".into())
    } else {
        guest_target(&attachment.device)
    }
}

/// The disks a starting instance gets besides its root, from its volumes: those attached and
/// being attached (which the start settles), not those being detached.
pub(crate) fn boot_disks(volumes: &[VolumeRecord], instance_id: &str) -> Vec<AttachedDisk> {
    volumes
        .iter()
        .filter(|v| !v.root)
        .filter_map(|v| {
            let a = v.attachment_of(instance_id).filter(|a| a.state != AttachmentState::Detaching)?;
            Some(guest_disk(v, guest_target(&a.device).ok()?))
        })
        .collect()
}

/// A volume as the guest disk at `target`.
fn guest_disk(volume: &VolumeRecord, target: String) -> AttachedDisk {
    AttachedDisk {
        target,
        path: PathBuf::from(&volume.path),
        key: volume.encryption.as_ref().map(DiskKey::of),
        shareable: volume.multi_attach,
    }
}

/// A volume a launch makes and attaches, checked: the root (from the image) or one of
/// `BlockDeviceMapping.N`'s further devices (empty, or from a snapshot).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlannedVolume {
    pub device: String,
    pub size_gib: u64,
    pub volume_type: String,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
    pub snapshot_id: Option<String>,
    pub delete_on_termination: bool,
    /// The KMS key it is encrypted under, if it is.
    pub kms_key_id: Option<String>,
}

/// A further volume asked at launch (`BlockDeviceMapping.N` with `Ebs` for a device other
/// than the root), as the domain sees it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LaunchVolume {
    pub device: String,
    pub size_gib: Option<u64>,
    pub volume_type: Option<String>,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
    pub snapshot_id: Option<String>,
    /// Default: on, as for every volume EC2 makes at launch.
    pub delete_on_termination: Option<bool>,
    // Left out of the client token's digest when not given, as requests were before them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

/// Whether `device` names the root device, by Stratus's name or one AWS images give it.
pub fn is_root_device(device: &str) -> bool {
    ROOT_ALIASES.contains(&device)
}

/// What EC2 users name the root device (AWS images' `/dev/sda1` or `/dev/xvda`), which is
/// `/dev/vda` here.
pub const ROOT_ALIASES: [&str; 3] = [ROOT_DEVICE, "/dev/sda1", "/dev/xvda"];

/// A new volume's size: the one asked, else its snapshot's; never smaller than the snapshot.
fn size_for(asked: Option<u64>, snapshot: Option<&SnapshotRecord>) -> Result<u64> {
    match (asked, snapshot) {
        (Some(size), Some(s)) if size < s.volume_size_gib => Err(invalid(
            "Size",
            format!("Volume of {size}GiB is smaller than snapshot '{}', expect size >= {}GiB", s.id, s.volume_size_gib),
        )),
        (Some(size), _) => Ok(size),
        (None, Some(s)) => Ok(s.volume_size_gib),
        (None, None) => Err(Error::MissingParameter("size".into())),
    }
}

/// The most further volumes one launch makes for each instance (EC2's instances take a few dozen
/// attachments).
pub const MAX_LAUNCH_VOLUMES: usize = 40;

/// What a copied snapshot names as its volume, as on EC2.
pub const COPIED_VOLUME: &str = "vol-ffffffff";

/// A CreateSnapshots request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotSet {
    pub instance_id: String,
    pub exclude_boot: bool,
    /// `ExcludeDataVolumeId.N`.
    pub exclude: Vec<String>,
    pub description: String,
    pub tags: Vec<(String, String)>,
    /// `CopyTagsFromSource=volume`.
    pub copy_tags: bool,
}

/// A snapshot of `account`'s own: one it may only see (public or shared) is not its to change.
fn owned_snapshot(tx: &impl Reads, account: &str, id: &str) -> Result<SnapshotRecord> {
    match find_snapshot(tx, id)?.filter(|s| s.usable_by(account)) {
        Some(snapshot) if snapshot.account == account => Ok(snapshot),
        Some(_) => Err(Error::NotSnapshotOwner(id.to_owned())),
        None => Err(snapshot_not_found(id)),
    }
}

/// A snapshot by id, whoever owns it.
pub(crate) fn find_snapshot(tx: &impl Reads, id: &str) -> Result<Option<SnapshotRecord>> {
    // Ids are unique across accounts: the index holds one `{id}/{owner}` entry at most.
    let Some((entry, _)) = tx.scan(&SNAPSHOT_IDS, &format!("{id}/"))?.into_iter().next() else { return Ok(None) };
    let owner = &entry[id.len() + 1..];
    Ok(tx.get(&SNAPSHOTS, &key(owner, id))?)
}

/// Whether a volume made from snapshot `id` still waits for its file. Files are made under a
/// temporary name and renamed, so one that exists is whole.
fn awaits_snapshot(tx: &impl Reads, id: &str) -> Result<bool> {
    Ok(tx.scan(&VOLUMES, "")?.iter().any(|(_, v)| v.snapshot_id.as_deref() == Some(id) && !Path::new(&v.path).exists()))
}

/// A snapshot `account` may make volumes from (its own, a public one or one shared with it)
/// that is complete.
fn completed_snapshot(tx: &impl Reads, account: &str, id: &str) -> Result<SnapshotRecord> {
    let snapshot = find_snapshot(tx, id)?.filter(|s| s.usable_by(account)).ok_or_else(|| snapshot_not_found(id))?;
    if snapshot.state != SnapshotState::Completed {
        return Err(Error::IncorrectState(format!("Snapshot '{id}' is not completed.")));
    }
    Ok(snapshot)
}

/// A launch's volume, made inside RunInstances's transaction and attached to `instance` at
/// `disk`: the root disk (an overlay the first boot makes) or a further volume (whose file the
/// first boot makes, empty or from its snapshot).
pub(crate) fn insert_launch_volume(
    tx: &WriteTx,
    instance: &InstanceRecord,
    (id, disk): (String, &Path),
    planned: &PlannedVolume,
    volume_tags: &[(String, String)],
) -> Result<()> {
    let root = planned.device == ROOT_DEVICE;
    if let Some(snapshot) = &planned.snapshot_id {
        // It may have gone since the launch was checked.
        completed_snapshot(tx, &instance.account, snapshot)?;
    }
    let encryption = planned.kms_key_id.clone().map(seal);
    let volume = VolumeRecord {
        id: id.clone(),
        account: instance.account.clone(),
        zone: instance.zone.clone(),
        size_gib: planned.size_gib,
        volume_type: planned.volume_type.clone(),
        iops: planned.iops,
        throughput: planned.throughput,
        snapshot_id: planned.snapshot_id.clone(),
        state: VolumeState::InUse,
        attachment: Some(VolumeAttachmentRecord {
            instance_id: instance.id.clone(),
            device: planned.device.clone(),
            state: AttachmentState::Attached,
            attach_time_ms: instance.launch_time_ms,
            delete_on_termination: planned.delete_on_termination,
        }),
        root,
        path: disk.to_string_lossy().into_owned(),
        client_token: None,
        modification: None,
        created_ms: instance.launch_time_ms,
        encryption,
        multi_attach: false,
        shared_attachments: Vec::new(),
    };
    tx.insert(&VOLUMES, &key(&instance.account, &id), &volume)?;
    tags::put_tags(tx, &instance.account, &id, volume_tags)?;
    Ok(())
}

/// Follows an instance whose folder moved from `from` to `to` (a migration that copied its
/// disk to a host's own storage): its volumes whose file was in the folder (the root disk)
/// name the file in the new one.
pub(crate) fn move_folder(tx: &WriteTx, account: &str, instance_id: &str, from: &Path, to: &Path) -> Result<()> {
    for mut volume in attached_volumes(tx, account, instance_id)? {
        let Ok(rest) = Path::new(&volume.path).strip_prefix(from) else { continue };
        volume.path = to.join(rest).to_string_lossy().into_owned();
        tx.insert(&VOLUMES, &key(account, &volume.id), &volume)?;
    }
    Ok(())
}

/// The volumes attached to one instance, through storage's attachment index.
pub(crate) fn attached_volumes(
    tx: &impl Reads,
    account: &str,
    instance_id: &str,
) -> storage::Result<Vec<VolumeRecord>> {
    let mut volumes = Vec::new();
    for (entry, _) in tx.scan(&VOLUME_ATTACHMENTS, &format!("{account}/{instance_id}/"))? {
        let volume_id = entry.rsplit('/').next().unwrap_or_default();
        volumes.extend(tx.get(&VOLUMES, &key(account, volume_id))?);
    }
    Ok(volumes)
}

impl Backend {
    /// Where a volume's file lives: under the data dir's `volumes`, whichever instance has it
    /// (a launch volume's too, so that a kept one outlives its instance's folder).
    pub(crate) fn volume_path(&self, id: &str) -> PathBuf {
        self.volume_file(id, false)
    }

    /// A volume's file: qcow2, or raw for a Multi-Attach volume.
    fn volume_file(&self, id: &str, raw: bool) -> PathBuf {
        self.data_dir().join("volumes").join(format!("{id}.{}", if raw { "raw" } else { "qcow2" }))
    }

    fn snapshot_path(&self, id: &str) -> PathBuf {
        self.data_dir().join("snapshots").join(format!("{id}.qcow2"))
    }

    /// Every volume of `account`, by id.
    pub fn volumes(&self, account: &str) -> Result<Vec<VolumeRecord>> {
        Ok(self.store().read(|tx| tx.scan(&VOLUMES, &format!("{account}/")))?.into_iter().map(|(_, v)| v).collect())
    }

    /// The volumes attached to each of the named instances (those with any).
    pub fn volumes_of_instances<'a>(
        &self,
        account: &str,
        instance_ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashMap<String, Vec<VolumeRecord>>> {
        Ok(self.store().read(|tx| {
            let mut by_instance = HashMap::new();
            for id in instance_ids {
                let volumes = attached_volumes(tx, account, id)?;
                if !volumes.is_empty() {
                    by_instance.insert(id.to_owned(), volumes);
                }
            }
            Ok::<_, storage::Error>(by_instance)
        })?)
    }

    /// The volumes attached (or being attached or detached) to one instance.
    pub fn instance_volumes(&self, account: &str, instance_id: &str) -> Result<Vec<VolumeRecord>> {
        Ok(self.store().read(|tx| attached_volumes(tx, account, instance_id))?)
    }

    /// Checks a launch's further volumes: device names EC2 takes, none twice (`/dev/sdf` and
    /// `/dev/xvdf` are one device) nor the root's, snapshots of the account's own, sizes and
    /// settings by EC2's rules.
    pub(crate) fn plan_launch_volumes(
        &self,
        account: &str,
        region: &str,
        asked: &[LaunchVolume],
    ) -> Result<Vec<PlannedVolume>> {
        let defaults = self.ebs_defaults(account)?;
        if asked.len() > MAX_LAUNCH_VOLUMES {
            return Err(Error::InvalidBlockDeviceMapping(format!(
                "At most {MAX_LAUNCH_VOLUMES} volumes can be made at launch besides the root."
            )));
        }
        let mut targets = vec!["vda".to_owned()];
        let mut planned = Vec::new();
        for volume in asked {
            let target = guest_target(&volume.device)
                .map_err(|_| Error::InvalidBlockDeviceMapping(format!("Invalid device name {}", volume.device)))?;
            if targets.contains(&target) {
                return Err(Error::InvalidBlockDeviceMapping(format!(
                    "The device '{}' is used in more than one block-device mapping",
                    volume.device
                )));
            }
            targets.push(target);
            let snapshot = match &volume.snapshot_id {
                Some(id) => Some(self.store().read(|tx| completed_snapshot(tx, account, id))?),
                None => None,
            };
            let size_gib = size_for(volume.size_gib, snapshot.as_ref()).map_err(|e| match e {
                Error::MissingParameter(_) => Error::InvalidBlockDeviceMapping(format!(
                    "The device '{}' needs a volume size or a snapshot id",
                    volume.device
                )),
                other => other,
            })?;
            let volume_type = volume.volume_type.clone().unwrap_or_else(|| "gp2".into());
            let (iops, throughput) = volume_settings(&volume_type, size_gib, volume.iops, volume.throughput)?;
            let ask = EncryptionAsk { encrypted: volume.encrypted, kms_key_id: volume.kms_key_id.clone() };
            let kms_key_id =
                kms_key_for(&ask, snapshot.as_ref().and_then(|s| s.encryption.as_ref()), &defaults, region, account)?;
            planned.push(PlannedVolume {
                device: volume.device.clone(),
                size_gib,
                volume_type,
                iops,
                throughput,
                snapshot_id: volume.snapshot_id.clone(),
                delete_on_termination: volume.delete_on_termination.unwrap_or(true),
                kms_key_id,
            });
        }
        Ok(planned)
    }

    /// ModifyInstanceAttribute `BlockDeviceMapping`: each named device's `DeleteOnTermination`
    /// (the root by any of its names). A device the instance has no volume at is refused, and
    /// nothing changes.
    pub fn set_delete_on_termination(
        &self,
        account: &str,
        instance_id: &str,
        changes: &[(String, bool)],
    ) -> Result<()> {
        self.store().write(|tx| {
            let instance = tx
                .get(&INSTANCES, &key(account, instance_id))?
                .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Instance, id: instance_id.to_owned() })?;
            if matches!(instance.state, InstanceState::Terminated | InstanceState::ShuttingDown) {
                return Err(Error::IncorrectInstanceState {
                    id: instance_id.to_owned(),
                    state: instance.state.name(),
                    verb: "modified",
                });
            }
            let mut volumes = attached_volumes(tx, account, instance_id)?;
            for (device, on) in changes {
                let target = if is_root_device(device) { Some("vda".to_owned()) } else { guest_target(device).ok() };
                let volume = volumes.iter_mut().find(|v| {
                    v.attachment_of(instance_id).is_some_and(|a| target_of(v, a).ok() == target && target.is_some())
                });
                let Some(volume) = volume else {
                    return Err(invalid(
                        "BlockDeviceMapping",
                        format!("No device is currently mapped at {device} on instance {instance_id}"),
                    ));
                };
                if let Some(a) = volume.attachment_of_mut(instance_id) {
                    a.delete_on_termination = *on;
                }
            }
            for volume in &volumes {
                tx.insert(&VOLUMES, &key(account, &volume.id), volume)?;
            }
            Ok(())
        })
    }

    pub fn create_volume(&self, account: &str, req: NewVolume) -> Result<VolumeRecord> {
        if !self.topology().regions.iter().any(|r| r.zones.contains(&req.zone)) {
            return Err(invalid("AvailabilityZone", format!("Invalid availability zone: [{}]", req.zone)));
        }
        tags::validate_tags(&req.tags)?;
        let volume_type = req.volume_type.clone().unwrap_or_else(|| "gp2".into());
        let defaults = self.ebs_defaults(account)?;
        let region = self.topology().region_of(&req.zone).to_owned();
        let volume = self.store().write(|tx| {
            if let Some(token) = &req.client_token {
                let earlier = tx
                    .scan(&VOLUMES, &format!("{account}/"))?
                    .into_iter()
                    .map(|(_, v)| v)
                    .find(|v| v.client_token.as_ref() == Some(token));
                if let Some(earlier) = earlier {
                    let same = earlier.zone == req.zone
                        && req.size_gib.is_none_or(|s| s == earlier.size_gib)
                        && earlier.volume_type == volume_type
                        && earlier.snapshot_id == req.snapshot_id;
                    return if same { Ok(earlier) } else { Err(Error::IdempotentParameterMismatch(token.clone())) };
                }
            }
            let snapshot = req.snapshot_id.as_deref().map(|id| completed_snapshot(tx, account, id)).transpose()?;
            let size_gib = size_for(req.size_gib, snapshot.as_ref()).map_err(|e| match e {
                Error::MissingParameter(_) => Error::MissingParameter("Size".into()),
                other => other,
            })?;
            let (iops, throughput) = volume_settings(&volume_type, size_gib, req.iops, req.throughput)?;
            let source = snapshot.as_ref().and_then(|s| s.encryption.as_ref());
            let encryption = kms_key_for(&req.encryption, source, &defaults, &region, account)?.map(seal);
            if req.multi_attach && !matches!(volume_type.as_str(), "io1" | "io2") {
                return Err(Error::ParameterCombination(format!(
                    "Multi-Attach is supported only with io1 and io2 volumes, not {volume_type}."
                )));
            }
            let id = ids::resource_id("vol");
            let volume = VolumeRecord {
                id: id.clone(),
                account: account.to_owned(),
                zone: req.zone.clone(),
                size_gib,
                volume_type: volume_type.clone(),
                iops,
                throughput,
                snapshot_id: req.snapshot_id.clone(),
                state: VolumeState::Creating,
                attachment: None,
                root: false,
                path: self.volume_file(&id, req.multi_attach).to_string_lossy().into_owned(),
                client_token: req.client_token.clone(),
                modification: None,
                created_ms: now_ms(),
                encryption,
                multi_attach: req.multi_attach,
                shared_attachments: Vec::new(),
            };
            tx.insert(&VOLUMES, &key(account, &id), &volume)?;
            tags::put_tags(tx, account, &id, &req.tags)?;
            Ok(volume)
        })?;
        if volume.state == VolumeState::Creating {
            self.kick(&key(account, &volume.id));
        }
        Ok(volume)
    }

    pub fn delete_volume(&self, account: &str, id: &str) -> Result<()> {
        let volume = self.store().write(|tx| {
            let volume = tx.get(&VOLUMES, &key(account, id))?.ok_or_else(|| not_found(id))?;
            match volume.state {
                VolumeState::Available | VolumeState::Error => {}
                VolumeState::InUse => {
                    return Err(Error::VolumeInUse(format!("Volume {id} is currently attached to an instance")))
                }
                VolumeState::Creating => {
                    return Err(Error::IncorrectState(format!("The volume '{id}' is still being created.")))
                }
            }
            if busy(&volume) {
                return Err(Error::IncorrectState(format!("The volume '{id}' is being modified.")));
            }
            let snapshotting = tx
                .scan(&SNAPSHOTS, &format!("{account}/"))?
                .into_iter()
                .any(|(_, s)| s.volume_id == id && s.state == SnapshotState::Pending);
            if snapshotting {
                return Err(Error::IncorrectState(format!("The volume '{id}' has a snapshot in progress.")));
            }
            tx.remove(&VOLUMES, &key(account, id))?;
            tags::drop_tags(tx, account, id)?;
            Ok::<_, Error>(volume)
        })?;
        remove_file(Path::new(&volume.path))?;
        if volume.snapshot_id.is_some() {
            // One that failed to be made may have been the last to wait for a deleted snapshot.
            self.release_retired_snapshots()?;
        }
        Ok(())
    }

    pub fn attach_volume(&self, account: &str, id: &str, instance_id: &str, device: &str) -> Result<VolumeRecord> {
        let target = guest_target(device)?;
        let volume = self.store().write(|tx| {
            let mut volume = tx.get(&VOLUMES, &key(account, id))?.ok_or_else(|| not_found(id))?;
            let instance = tx
                .get(&INSTANCES, &key(account, instance_id))?
                .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Instance, id: instance_id.to_owned() })?;
            match volume.state {
                VolumeState::Available => {}
                // A Multi-Attach volume takes more instances, each once, up to EC2's limit.
                VolumeState::InUse if volume.multi_attach => {
                    if volume.attachment_of(instance_id).is_some() {
                        return Err(Error::VolumeInUse(format!("{id} is already attached to {instance_id}")));
                    }
                    if volume.attachments().count() >= MAX_SHARED_ATTACHMENTS {
                        return Err(Error::AttachmentLimitExceeded(format!(
                            "The Multi-Attach volume {id} is attached to {MAX_SHARED_ATTACHMENTS} instances already."
                        )));
                    }
                }
                VolumeState::InUse => {
                    return Err(Error::VolumeInUse(format!("{id} is already attached to an instance")))
                }
                state => {
                    return Err(Error::IncorrectState(format!(
                        "The volume '{id}' is not 'available' ({}).",
                        state.name()
                    )))
                }
            }
            if busy(&volume) {
                return Err(Error::IncorrectState(format!("The volume '{id}' is being modified.")));
            }
            crate::volumes::check_attachable(&instance)?;
            if volume.zone != instance.zone {
                return Err(Error::ZoneMismatch(format!(
                    "The volume '{id}' is not in the same availability zone as instance '{instance_id}'"
                )));
            }
            let taken = attached_volumes(tx, account, instance_id)?.iter().any(|v| {
                v.attachment_of(instance_id).is_some_and(|a| target_of(v, a).ok().as_deref() == Some(target.as_str()))
            });
            if taken {
                return Err(invalid(
                    "Device",
                    format!("Invalid value '{device}' for unixDevice. Attachment point {device} is already in use"),
                ));
            }
            volume.state = VolumeState::InUse;
            volume.attach(VolumeAttachmentRecord {
                instance_id: instance_id.to_owned(),
                device: device.to_owned(),
                state: AttachmentState::Attaching,
                attach_time_ms: now_ms(),
                delete_on_termination: false,
            });
            tx.insert(&VOLUMES, &key(account, id), &volume)?;
            Ok::<_, Error>(volume)
        })?;
        self.kick(&key(account, instance_id));
        Ok(volume)
    }

    pub fn detach_volume(
        &self,
        account: &str,
        id: &str,
        instance_id: Option<&str>,
        device: Option<&str>,
    ) -> Result<VolumeRecord> {
        let (volume, detached_from) = self.store().write(|tx| {
            let mut volume = tx.get(&VOLUMES, &key(account, id))?.ok_or_else(|| not_found(id))?;
            let busy_now = busy(&volume);
            if volume.attachment.is_none() {
                return Err(Error::IncorrectState(format!("Volume '{id}' is in the 'available' state.")));
            }
            // The attachment meant: the named instance's, else the only one there is.
            let which = match instance_id {
                Some(instance) => instance.to_owned(),
                None if volume.attachments().count() > 1 => {
                    return Err(Error::ParameterCombination(format!(
                        "The volume '{id}' is attached to more than one instance: name the instance (InstanceId)."
                    )))
                }
                None => volume.attachments().next().map(|a| a.instance_id.clone()).unwrap_or_default(),
            };
            let root = volume.root;
            let Some(attachment) = volume.attachment_of_mut(&which) else {
                return Err(Error::AttachmentNotFound(format!(
                    "The volume '{id}' is not attached to the instance and device given"
                )));
            };
            if device.is_some_and(|d| d != attachment.device) {
                return Err(Error::AttachmentNotFound(format!(
                    "The volume '{id}' is not attached to the instance and device given"
                )));
            }
            if busy_now {
                return Err(Error::IncorrectState(format!("The volume '{id}' is being modified.")));
            }
            let instance = tx.get(&INSTANCES, &key(account, &attachment.instance_id))?.ok_or_else(|| {
                Error::ResourceNotFound { kind: ResourceKind::Instance, id: attachment.instance_id.clone() }
            })?;
            if root && instance.state != InstanceState::Stopped {
                return Err(Error::OperationNotPermitted(format!(
                    "The root volume '{id}' can only be detached from a stopped instance."
                )));
            }
            if instance.migration.is_some() {
                return Err(Error::IncorrectInstanceState {
                    id: instance.id,
                    state: "migrating",
                    verb: "detached from",
                });
            }
            attachment.state = AttachmentState::Detaching;
            tx.insert(&VOLUMES, &key(account, id), &volume)?;
            Ok::<_, Error>((volume, which))
        })?;
        self.kick(&key(account, &detached_from));
        Ok(volume)
    }

    /// ModifyVolume: records the change as `modifying` and kicks whoever owns the file.
    pub fn modify_volume(&self, account: &str, id: &str, change: VolumeChange) -> Result<VolumeRecord> {
        let volume = self.store().write(|tx| {
            let mut volume = tx.get(&VOLUMES, &key(account, id))?.ok_or_else(|| not_found(id))?;
            if busy(&volume) {
                return Err(Error::IncorrectModificationState(format!("Volume {id} is already being modified.")));
            }
            if !matches!(volume.state, VolumeState::Available | VolumeState::InUse) {
                return Err(Error::IncorrectState(format!("The volume '{id}' is {}.", volume.state.name())));
            }
            if volume.attachments().any(|a| a.state != AttachmentState::Attached) {
                return Err(Error::IncorrectState(format!("The volume '{id}' is being attached or detached.")));
            }
            if volume.multi_attach
                && volume.attachment.is_some()
                && change.size_gib.is_some_and(|s| s != volume.size_gib)
            {
                return Err(Error::UnsupportedOperation(format!(
                    "The Multi-Attach volume '{id}' can be resized only while it is not attached."
                )));
            }
            let size = change.size_gib.unwrap_or(volume.size_gib);
            if size < volume.size_gib {
                return Err(invalid(
                    "Size",
                    format!("New size cannot be smaller than existing size of {}GiB.", volume.size_gib),
                ));
            }
            let volume_type = change.volume_type.clone().unwrap_or_else(|| volume.volume_type.clone());
            // A new type takes that type's defaults unless the request says otherwise; gp2
            // derives its IOPS from the size.
            let keep = volume_type == volume.volume_type && volume_type != "gp2";
            let (iops, throughput) = volume_settings(
                &volume_type,
                size,
                change.iops.or(if keep { volume.iops } else { None }),
                change.throughput.or(if keep { volume.throughput } else { None }),
            )?;
            volume.modification = Some(VolumeModificationRecord {
                state: ModificationState::Modifying,
                status_message: None,
                original_size_gib: volume.size_gib,
                target_size_gib: size,
                original_type: volume.volume_type.clone(),
                target_type: volume_type,
                original_iops: volume.iops,
                target_iops: iops,
                original_throughput: volume.throughput,
                target_throughput: throughput,
                start_ms: now_ms(),
                end_ms: None,
            });
            tx.insert(&VOLUMES, &key(account, id), &volume)?;
            Ok::<_, Error>(volume)
        })?;
        self.kick(&owner_key(&volume));
        Ok(volume)
    }

    pub fn create_snapshot(
        &self,
        account: &str,
        volume_id: &str,
        description: &str,
        tags_: &[(String, String)],
    ) -> Result<SnapshotRecord> {
        tags::validate_tags(tags_)?;
        let (snapshot, owner) = self.store().write(|tx| {
            let volume = tx.get(&VOLUMES, &key(account, volume_id))?.ok_or_else(|| not_found(volume_id))?;
            if !matches!(volume.state, VolumeState::Available | VolumeState::InUse) || busy(&volume) {
                return Err(Error::IncorrectState(format!(
                    "The volume '{volume_id}' cannot be snapshotted while {}.",
                    if busy(&volume) { "being modified" } else { volume.state.name() }
                )));
            }
            let snapshot = self.snapshot_of(account, &volume, description);
            let id = snapshot.id.clone();
            tx.insert(&SNAPSHOTS, &key(account, &id), &snapshot)?;
            tags::put_tags(tx, account, &id, tags_)?;
            Ok::<_, Error>((snapshot, owner_key(&volume)))
        })?;
        self.kick(&owner);
        Ok(snapshot)
    }

    pub fn snapshots(&self, account: &str) -> Result<Vec<SnapshotRecord>> {
        Ok(self.store().read(|tx| tx.scan(&SNAPSHOTS, &format!("{account}/")))?.into_iter().map(|(_, s)| s).collect())
    }

    /// A pending snapshot of `account`'s of `volume`, encrypted (under a key of its own) if the
    /// volume is.
    fn snapshot_of(&self, account: &str, volume: &VolumeRecord, description: &str) -> SnapshotRecord {
        SnapshotRecord {
            encryption: volume.encryption.as_ref().map(|e| seal(e.kms_key_id.clone())),
            ..self.new_snapshot(account, &volume.id, volume.size_gib, description)
        }
    }

    /// A pending snapshot of `account`'s of a volume (named: it may be gone by the time the
    /// snapshot is read), of no set and no copy, shared with nobody, plain.
    fn new_snapshot(&self, account: &str, volume_id: &str, size_gib: u64, description: &str) -> SnapshotRecord {
        let id = ids::resource_id("snap");
        SnapshotRecord {
            path: self.snapshot_path(&id).to_string_lossy().into_owned(),
            id,
            account: account.to_owned(),
            volume_id: volume_id.to_owned(),
            volume_size_gib: size_gib,
            description: description.to_owned(),
            state: SnapshotState::Pending,
            state_message: None,
            start_ms: now_ms(),
            public: false,
            create_volume_permissions: Vec::new(),
            copy_of: None,
            set: None,
            encryption: None,
        }
    }

    /// CreateSnapshots: one snapshot of each volume attached to the instance (the root unless
    /// `exclude_boot`, none of `exclude`), taken in one pause of a running guest, so that
    /// together they are crash-consistent. `copy_tags` gives each the tags of its volume.
    pub fn create_snapshots(&self, account: &str, req: SnapshotSet) -> Result<Vec<SnapshotRecord>> {
        tags::validate_tags(&req.tags)?;
        let set = ids::resource_id("snapset");
        let snapshots = self.store().write(|tx| {
            let instance = tx
                .get(&INSTANCES, &key(account, &req.instance_id))?
                .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Instance, id: req.instance_id.clone() })?;
            if matches!(instance.state, InstanceState::Terminated | InstanceState::ShuttingDown) {
                return Err(Error::IncorrectInstanceState {
                    id: instance.id.clone(),
                    state: instance.state.name(),
                    verb: "snapshotted",
                });
            }
            let attached = attached_volumes(tx, account, &instance.id)?;
            for excluded in &req.exclude {
                if !attached.iter().any(|v| &v.id == excluded) {
                    return Err(invalid(
                        "InstanceSpecification.ExcludeDataVolumeId",
                        format!("The volume {excluded} is not attached to instance {}.", instance.id),
                    ));
                }
            }
            let mut snapshots = Vec::new();
            // Whose work each copy is: the instance's own, or a Multi-Attach volume's first
            // attachment's instance.
            let mut owners = vec![key(account, &instance.id)];
            for volume in attached {
                let Some(attachment) = volume.attachment_of(&instance.id) else { continue };
                if (volume.root && req.exclude_boot) || req.exclude.contains(&volume.id) {
                    continue;
                }
                if attachment.state != AttachmentState::Attached || busy(&volume) {
                    return Err(Error::IncorrectState(format!(
                        "The volume '{}' cannot be snapshotted while it is being attached, detached or modified.",
                        volume.id
                    )));
                }
                let snapshot =
                    SnapshotRecord { set: Some(set.clone()), ..self.snapshot_of(account, &volume, &req.description) };
                let id = snapshot.id.clone();
                tx.insert(&SNAPSHOTS, &key(account, &id), &snapshot)?;
                let mut tags_ = if req.copy_tags { tags::of_resource(tx, account, &volume.id)? } else { Vec::new() };
                tags_.retain(|(k, _)| !req.tags.iter().any(|(t, _)| t == k));
                tags_.extend(req.tags.iter().cloned());
                tags::put_tags(tx, account, &id, &tags_)?;
                snapshots.push(snapshot);
                owners.push(owner_key(&volume));
            }
            if snapshots.is_empty() {
                return Err(invalid("InstanceSpecification", "No volume of the instance is left to snapshot."));
            }
            owners.sort();
            owners.dedup();
            Ok::<_, Error>((snapshots, owners))
        })?;
        let (snapshots, owners) = snapshots;
        for owner in owners {
            self.kick(&owner);
        }
        Ok(snapshots)
    }

    /// CopySnapshot: a pending snapshot of `account`'s with the data of one it may use (its
    /// own, a public one or one shared with it); the copy is the snapshot's own conductor work.
    /// As on EC2, a copy names no volume (`vol-ffffffff`).
    pub fn copy_snapshot(
        &self,
        account: &str,
        source_id: &str,
        description: &str,
        tags_: &[(String, String)],
        (ask, region): (&EncryptionAsk, &str),
    ) -> Result<SnapshotRecord> {
        tags::validate_tags(tags_)?;
        let defaults = self.ebs_defaults(account)?;
        let snapshot = self.store().write(|tx| {
            let source = completed_snapshot(tx, account, source_id)?;
            // A copy under its source's key shares its file (snapshot files never change);
            // one encrypted otherwise gets a key of its own and a re-encrypted file.
            let encryption = match kms_key_for(ask, source.encryption.as_ref(), &defaults, region, account)? {
                Some(kms) if source.encryption.as_ref().is_some_and(|e| e.kms_key_id == kms) => {
                    source.encryption.clone()
                }
                kms => kms.map(seal),
            };
            let snapshot = SnapshotRecord {
                copy_of: Some(source.id),
                encryption,
                ..self.new_snapshot(account, COPIED_VOLUME, source.volume_size_gib, description)
            };
            let id = snapshot.id.clone();
            tx.insert(&SNAPSHOTS, &key(account, &id), &snapshot)?;
            tags::put_tags(tx, account, &id, tags_)?;
            Ok::<_, Error>(snapshot)
        })?;
        self.kick(&key(account, &snapshot.id));
        Ok(snapshot)
    }

    /// A copied snapshot's work: the source's file linked (snapshot files never change) or
    /// copied, then completed; an error if the source has gone meanwhile.
    pub(crate) fn converge_snapshot(&self, snapshot_key: &str) -> Result<()> {
        let Some(snapshot) = self.store().read(|tx| tx.get(&SNAPSHOTS, snapshot_key))? else { return Ok(()) };
        let Some(source_id) = snapshot.copy_of.clone().filter(|_| snapshot.state == SnapshotState::Pending) else {
            return Ok(());
        };
        let result = match self.store().read(|tx| find_snapshot(tx, &source_id)) {
            // No verdict on the copy: the store failed, the work is retried.
            Err(error) if error.store_unavailable() => return Err(error),
            other => other,
        };
        let result = result.and_then(|source| {
            let source = source.ok_or_else(|| snapshot_not_found(&source_id))?;
            if let Some(dir) = Path::new(&snapshot.path).parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("creating {}: {e}", dir.display())))?;
            }
            let (from, to) = (Path::new(&source.path), Path::new(&snapshot.path));
            if snapshot.encryption == source.encryption {
                disk::link_or_copy(from, to)
            } else {
                disk::flatten(Disk::of(from, source.encryption.as_ref()), Disk::of(to, snapshot.encryption.as_ref()))
            }
        });
        self.store().write(|tx| {
            let Some(mut current) = tx.get(&SNAPSHOTS, snapshot_key)? else { return Ok(()) };
            if current.state != SnapshotState::Pending {
                return Ok(());
            }
            match &result {
                Ok(()) => current.state = SnapshotState::Completed,
                Err(error) => {
                    tracing::warn!(snapshot = %current.id, source = %source_id, %error, "CopySnapshot failed");
                    current.state = SnapshotState::Error;
                    current.state_message = Some(format!("The source snapshot {source_id} could not be copied."));
                }
            }
            current.copy_of = None;
            tx.insert(&SNAPSHOTS, snapshot_key, &current)?;
            Ok::<_, Error>(())
        })
    }

    /// ModifySnapshotAttribute `createVolumePermission`, or with no change
    /// ResetSnapshotAttribute: who besides its owner may see the snapshot and make volumes
    /// from it. Owner only.
    pub fn change_volume_permissions(
        &self,
        account: &str,
        id: &str,
        change: Option<&crate::sharing::PermissionChange>,
    ) -> Result<SnapshotRecord> {
        self.store().write(|tx| {
            let mut snapshot = owned_snapshot(tx, account, id)?;
            let now = crate::sharing::Permissions {
                public: snapshot.public,
                accounts: snapshot.create_volume_permissions.clone(),
            };
            let next = match change {
                Some(change) => crate::sharing::apply(&now, change, account, ResourceKind::Snapshot)?,
                None => crate::sharing::Permissions::default(),
            };
            // EC2's rules: no encrypted snapshot is public, and one under the account's
            // AWS-managed key is shared with nobody.
            if let Some(encryption) = &snapshot.encryption {
                let more = |n: &crate::sharing::Permissions| n.public || !n.accounts.is_empty();
                if next.public && !now.public {
                    return Err(Error::OperationNotPermitted("Encrypted snapshots cannot be made public.".into()));
                }
                if more(&next) && crate::encryption::is_managed_key(&encryption.kms_key_id, account) {
                    return Err(Error::OperationNotPermitted(
                        "Encrypted snapshots with EBS default key cannot be shared".into(),
                    ));
                }
            }
            (snapshot.public, snapshot.create_volume_permissions) = (next.public, next.accounts);
            tx.insert(&SNAPSHOTS, &key(account, id), &snapshot)?;
            Ok(snapshot)
        })
    }

    /// DescribeSnapshotAttribute's snapshot: one the caller owns.
    pub fn owned_snapshot(&self, account: &str, id: &str) -> Result<SnapshotRecord> {
        self.store().read(|tx| owned_snapshot(tx, account, id))
    }

    pub fn delete_snapshot(&self, account: &str, id: &str) -> Result<()> {
        let snapshot = self.store().write(|tx| {
            let snapshot = tx.get(&SNAPSHOTS, &key(account, id))?.ok_or_else(|| snapshot_not_found(id))?;
            if snapshot.state == SnapshotState::Pending {
                return Err(Error::IncorrectState(format!("Snapshot '{id}' is still being taken.")));
            }
            tx.remove(&SNAPSHOTS, &key(account, id))?;
            tags::drop_tags(tx, account, id)?;
            // A volume accepted from it (perhaps another account's, launched from a shared
            // snapshot) whose file is not made yet still gets the data, as on EC2: the file
            // stays, out of sight, until no such volume waits.
            let promised = awaits_snapshot(tx, id)?;
            if promised {
                tx.insert(&RETIRED_SNAPSHOTS, id, &snapshot)?;
            }
            Ok::<_, Error>((snapshot, promised))
        })?;
        match snapshot {
            (_, true) => Ok(()),
            (snapshot, false) => remove_file(Path::new(&snapshot.path)),
        }
    }

    /// Lets go of deleted snapshots no volume waits for any more. Run when a volume's file is
    /// made or a volume goes, and by the sweep, so that a crash between leaks nothing.
    pub(crate) fn release_retired_snapshots(&self) -> Result<()> {
        let retired = self.store().read(|tx| tx.scan(&RETIRED_SNAPSHOTS, ""))?;
        for (id, _) in retired {
            let released = self.store().write(|tx| {
                let Some(snapshot) = tx.get(&RETIRED_SNAPSHOTS, &id)? else { return Ok(None) };
                if awaits_snapshot(tx, &id)? {
                    return Ok(None);
                }
                tx.remove(&RETIRED_SNAPSHOTS, &id)?;
                Ok::<_, Error>(Some(snapshot))
            })?;
            if let Some(snapshot) = released {
                remove_file(Path::new(&snapshot.path))?;
            }
        }
        Ok(())
    }

    /// The conductor's work for a volume that is not attached: make its file, grow it, take
    /// its snapshots. Safe to run again at any point.
    pub(crate) fn converge_volume(&self, volume_key: &str) -> Result<()> {
        let Some(volume) = self.store().read(|tx| tx.get(&VOLUMES, volume_key))? else { return Ok(()) };
        if volume.attachment.is_some() {
            // Its instances own the file now.
            for a in volume.attachments() {
                self.kick(&key(&volume.account, &a.instance_id));
            }
            return Ok(());
        }
        if volume.state == VolumeState::Creating {
            let result = match self.make_volume_file(&volume) {
                // No verdict on the volume: the store failed, the work is retried.
                Err(error) if error.store_unavailable() => return Err(error),
                other => other,
            };
            self.store().write(|tx| {
                let Some(mut current) = tx.get(&VOLUMES, volume_key)? else { return Ok(()) };
                if current.state == VolumeState::Creating {
                    current.state = if result.is_ok() { VolumeState::Available } else { VolumeState::Error };
                    tx.insert(&VOLUMES, volume_key, &current)?;
                }
                Ok::<_, Error>(())
            })?;
            if let Err(error) = result {
                tracing::warn!(volume = %volume.id, %error, "creating the volume failed");
            }
        }
        self.volume_file_work(&volume, &self.pending_snapshots(&volume.account)?, None)
    }

    fn pending_snapshots(&self, account: &str) -> Result<Vec<SnapshotRecord>> {
        Ok(self.snapshots(account)?.into_iter().filter(|s| s.state == SnapshotState::Pending).collect())
    }

    /// The instance's part of its volumes' work, run inside the instance's converge: attach
    /// and detach, growth and snapshots. A running guest gets its disks hot-plugged; for one
    /// that does not run only the records change, and the next start defines the domain with
    /// them. An instance with nothing waiting costs one read, and no call to its host.
    pub(crate) fn settle_instance_volumes(&self, record: &InstanceRecord) -> Result<()> {
        let pending = self.pending_snapshots(&record.account)?;
        let waiting: Vec<VolumeRecord> = self
            .instance_volumes(&record.account, &record.id)?
            .into_iter()
            .filter(|v| needs_work(v, &pending))
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        let host = match self.hosts().get(&record.host_id) {
            Some(host) if record.state != InstanceState::Terminated => {
                let running = host.driver.state(&record.id).map_err(Error::Driver)?.is_some_and(|s| !s.is_off());
                running.then_some(host.as_ref())
            }
            _ => None,
        };
        // Snapshots taken together (CreateSnapshots) are copied in one pause of the guest, so
        // that they are consistent with each other, and recorded only once it runs again: a
        // crash while it is paused leaves them pending, and the retry finds the guest paused,
        // copies again and resumes it.
        let set: Vec<(&SnapshotRecord, &VolumeRecord)> = pending
            .iter()
            .filter(|s| s.set.is_some())
            .filter_map(|s| {
                let volume = waiting.iter().find(|v| v.id == s.volume_id)?;
                // A Multi-Attach volume is copied by its first attachment's instance alone, so that
                // two instances never write one snapshot file.
                let attached = volume
                    .attachment
                    .as_ref()
                    .is_some_and(|a| a.instance_id == record.id && a.state == AttachmentState::Attached);
                (attached && !busy(volume)).then_some((s, volume))
            })
            .collect();
        if !set.is_empty() {
            let paused = match host {
                Some(h) => match h.driver.state(&record.id).map_err(Error::Driver)? {
                    Some(PowerState::Running) => {
                        h.driver.suspend(&record.id).map_err(Error::Driver)?;
                        true
                    }
                    Some(PowerState::Paused) => true,
                    _ => false,
                },
                None => false,
            };
            let copied: Vec<(String, Result<()>)> =
                set.iter().map(|(s, v)| (key(&s.account, &s.id), self.copy_volume_to_snapshot(v, s, None))).collect();
            if let (true, Some(h)) = (paused, host) {
                h.driver.resume(&record.id).map_err(Error::Driver)?;
            }
            for (snapshot_key, result) in &copied {
                self.finish_snapshot(snapshot_key, result)?;
            }
        }
        let rest: Vec<SnapshotRecord> = pending.iter().filter(|s| s.set.is_none()).cloned().collect();
        self.settle_waiting(record, waiting, &rest, host)
    }

    /// Records how a snapshot's copy ended, unless it is no longer pending.
    fn finish_snapshot(&self, snapshot_key: &str, result: &Result<()>) -> Result<()> {
        if let Err(error) = result {
            if error.store_unavailable() {
                // No verdict on the snapshot: the store failed; it stays pending and is retried.
                tracing::warn!(snapshot = %snapshot_key, %error, "snapshot postponed");
                return Ok(());
            }
        }
        self.store().write(|tx| {
            let Some(mut current) = tx.get(&SNAPSHOTS, snapshot_key)? else { return Ok(()) };
            if current.state != SnapshotState::Pending {
                return Ok(());
            }
            match result {
                Ok(()) => current.state = SnapshotState::Completed,
                Err(error) => {
                    current.state = SnapshotState::Error;
                    current.state_message = Some(error.to_string());
                }
            }
            tx.insert(&SNAPSHOTS, snapshot_key, &current)?;
            Ok::<_, Error>(())
        })
    }

    fn settle_waiting(
        &self,
        record: &InstanceRecord,
        waiting: Vec<VolumeRecord>,
        pending: &[SnapshotRecord],
        host: Option<&crate::hosts::Host>,
    ) -> Result<()> {
        for volume in waiting {
            let Some(attachment) = volume.attachment_of(&record.id).cloned() else { continue };
            let target = target_of(&volume, &attachment)?;
            let volume_key = key(&volume.account, &volume.id);
            match attachment.state {
                AttachmentState::Attaching => {
                    let disk = guest_disk(&volume, target);
                    let keys: Vec<DiskKey> = disk.key.iter().cloned().collect();
                    let result =
                        host.map_or(Ok(()), |h| h.lending_keys(&keys, || h.driver.attach_disk(&record.id, &disk)));
                    if let Err(error) = &result {
                        tracing::warn!(volume = %volume.id, instance = %record.id, %error, "attach failed");
                    }
                    // A failed attachment ends as on EC2: the volume is available again.
                    self.end_attachment_step(&volume_key, &record.id, AttachmentState::Attaching, result.is_ok())?;
                }
                AttachmentState::Detaching => {
                    if let Some(Err(error)) = host.map(|h| h.driver.detach_disk(&record.id, &target, DETACH_WAIT)) {
                        // Still in the guest's hands: the sweep asks again.
                        tracing::warn!(volume = %volume.id, instance = %record.id, %error, "detach pending");
                        continue;
                    }
                    self.end_attachment_step(&volume_key, &record.id, AttachmentState::Detaching, false)?;
                }
                // A Multi-Attach volume's file work is its first attachment's instance's.
                AttachmentState::Attached if volume.attachment.as_ref().is_some_and(|a| a.instance_id != record.id) => {
                }
                AttachmentState::Attached => {
                    self.volume_file_work(&volume, pending, host.map(|h| (h, record.id.as_str(), target.as_str())))?
                }
            }
        }
        Ok(())
    }

    /// Ends an attach or detach to `instance_id` that is still at `step`: attached if
    /// `attached`, otherwise detached (and the volume available once no instance has it).
    fn end_attachment_step(
        &self,
        volume_key: &str,
        instance_id: &str,
        step: AttachmentState,
        attached: bool,
    ) -> Result<()> {
        self.store().write(|tx| {
            let Some(mut current) = tx.get(&VOLUMES, volume_key)? else { return Ok(()) };
            match current.attachment_of_mut(instance_id) {
                Some(a) if a.state == step && attached => a.state = AttachmentState::Attached,
                Some(a) if a.state == step => {
                    current.detach(instance_id);
                    if current.attachment.is_none() {
                        current.state = VolumeState::Available;
                    }
                }
                _ => return Ok(()),
            }
            tx.insert(&VOLUMES, volume_key, &current)?;
            Ok::<_, Error>(())
        })
    }

    /// Growth and snapshots of one volume, by whoever owns it; `live` names the running
    /// guest that has it as `target`, if any.
    fn volume_file_work(
        &self,
        volume: &VolumeRecord,
        pending: &[SnapshotRecord],
        live: Option<(&crate::hosts::Host, &str, &str)>,
    ) -> Result<()> {
        let volume_key = key(&volume.account, &volume.id);
        if let Some(m) = volume.modification.as_ref().filter(|_| busy(volume)) {
            let bytes = m.target_size_gib * GIB;
            let result = if m.target_size_gib == m.original_size_gib {
                Ok(())
            } else {
                match live {
                    Some((host, domain, target)) => {
                        host.driver.resize_disk(domain, target, bytes).map_err(Error::Driver)
                    }
                    None => disk::grow(volume_disk(volume), bytes),
                }
            };
            self.store().write(|tx| {
                let Some(mut current) = tx.get(&VOLUMES, &volume_key)? else { return Ok(()) };
                let Some(m) = current.modification.as_mut().filter(|m| m.state == ModificationState::Modifying) else {
                    return Ok(());
                };
                m.end_ms = Some(now_ms());
                match &result {
                    Ok(()) => {
                        m.state = ModificationState::Completed;
                        current.size_gib = m.target_size_gib;
                        current.volume_type = m.target_type.clone();
                        current.iops = m.target_iops;
                        current.throughput = m.target_throughput;
                    }
                    Err(error) => {
                        m.state = ModificationState::Failed;
                        m.status_message = Some(error.to_string());
                    }
                }
                tx.insert(&VOLUMES, &volume_key, &current)?;
                Ok::<_, Error>(())
            })?;
        }
        for snapshot in pending.iter().filter(|s| s.volume_id == volume.id) {
            let result = self.copy_volume_to_snapshot(volume, snapshot, live.map(|(host, domain, _)| (host, domain)));
            self.finish_snapshot(&key(&snapshot.account, &snapshot.id), &result)?;
        }
        Ok(())
    }

    /// Copies a volume into a standalone snapshot file, pausing a running guest meanwhile.
    fn copy_volume_to_snapshot(
        &self,
        volume: &VolumeRecord,
        snapshot: &SnapshotRecord,
        live: Option<(&crate::hosts::Host, &str)>,
    ) -> Result<()> {
        let target = Path::new(&snapshot.path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("creating {}: {e}", dir.display())))?;
        }
        let paused = match live {
            Some((host, domain)) => match host.driver.state(domain).map_err(Error::Driver)? {
                Some(PowerState::Running) => {
                    host.driver.suspend(domain).map_err(Error::Driver)?;
                    true
                }
                _ => false,
            },
            None => false,
        };
        let copied = disk::flatten(volume_disk(volume), Disk::of(target, snapshot.encryption.as_ref()));
        if paused {
            if let Some((host, domain)) = live {
                host.driver.resume(domain).map_err(Error::Driver)?;
            }
        }
        copied
    }

    /// A new volume's file: empty, or the snapshot's disk grown to the volume's size; made
    /// under a temporary name, so that a crash leaves nothing half made.
    pub(crate) fn make_volume_file(&self, volume: &VolumeRecord) -> Result<()> {
        let path = Path::new(&volume.path);
        if path.exists() {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("creating {}: {e}", dir.display())))?;
        }
        let bytes = volume.size_gib * GIB;
        match &volume.snapshot_id {
            Some(id) => {
                // Its owner may have deleted it since the volume was accepted: then it is retired.
                let snapshot = self
                    .store()
                    .read(|tx| Ok::<_, Error>(find_snapshot(tx, id)?.or(tx.get(&RETIRED_SNAPSHOTS, id)?)))?
                    .ok_or_else(|| snapshot_not_found(id))?;
                disk::copy_grown(
                    Disk::of(Path::new(&snapshot.path), snapshot.encryption.as_ref()),
                    volume_disk(volume),
                    bytes,
                )?;
                self.release_retired_snapshots()
            }
            None => disk::create(volume_disk(volume), bytes),
        }
    }

    /// A terminated instance's volumes: deleted when they say so, detached otherwise (a kept
    /// root disk moves out of the instance's folder first). Runs before the folder goes.
    pub(crate) fn release_instance_volumes(&self, record: &InstanceRecord) -> Result<()> {
        for listed in self.instance_volumes(&record.account, &record.id)? {
            let volume_key = key(&listed.account, &listed.id);
            // Decided on the volume as it is now, in one transaction: two instances of a
            // Multi-Attach volume that end together must not both see the other still there.
            let last = self.store().write(|tx| {
                let Some(mut current) = tx.get(&VOLUMES, &volume_key)? else { return Ok(None) };
                let Some(mine) = current.attachment_of(&record.id).cloned() else { return Ok(None) };
                if current.attachments().any(|a| a.instance_id != record.id) {
                    // Others still have it: only this attachment ends.
                    current.detach(&record.id);
                    tx.insert(&VOLUMES, &volume_key, &current)?;
                    return Ok(None);
                }
                if mine.delete_on_termination {
                    tx.remove(&VOLUMES, &volume_key)?;
                    tags::drop_tags(tx, &current.account, &current.id)?;
                }
                Ok::<_, Error>(Some((current, mine.delete_on_termination)))
            })?;
            let Some((volume, deleted)) = last else { continue };
            if deleted {
                remove_file(Path::new(&volume.path))?;
                if volume.snapshot_id.is_some() {
                    self.release_retired_snapshots()?;
                }
                continue;
            }
            // Ends this attachment; the volume is `state` unless another instance took it
            // meanwhile (a Multi-Attach volume's AttachVolume).
            let end = |state: VolumeState, path: Option<&Path>| {
                self.store().write(|tx| {
                    let Some(mut current) = tx.get(&VOLUMES, &volume_key)? else { return Ok(()) };
                    current.detach(&record.id);
                    if current.attachment.is_none() {
                        current.state = state;
                    }
                    if let Some(path) = path {
                        current.path = path.to_string_lossy().into_owned();
                    }
                    tx.insert(&VOLUMES, &volume_key, &current)?;
                    Ok::<_, Error>(())
                })
            };
            // A launch volume whose instance never booted has no file yet: it is made now, as
            // a new volume's is, instead of being left available with nothing behind it.
            if !record.booted && !volume.root && !Path::new(&volume.path).exists() {
                end(VolumeState::Creating, None)?;
                self.kick(&volume_key);
                continue;
            }
            let mut path = PathBuf::from(&volume.path);
            if volume.root {
                let kept = self.volume_path(&volume.id);
                if let Some(dir) = kept.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("creating {}: {e}", dir.display())))?;
                }
                if path.exists() {
                    // The overlay's backing image may go with its AMI: keep a standalone copy.
                    let encryption = volume.encryption.as_ref();
                    disk::flatten(Disk::of(&path, encryption), Disk::of(&kept, encryption))?;
                }
                path = kept;
            }
            end(VolumeState::Available, Some(&path))?;
        }
        Ok(())
    }

    /// Keys of the work volumes left unfinished (after a crash, or a guest that held on to a
    /// disk): their owners' keys.
    pub(crate) fn unfinished_volume_work(&self) -> Result<Vec<String>> {
        let pending: Vec<SnapshotRecord> = self
            .store()
            .read(|tx| tx.scan(&SNAPSHOTS, ""))?
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| s.state == SnapshotState::Pending)
            .collect();
        let mut keys: Vec<String> = Vec::new();
        self.store().read(|tx| {
            tx.for_each(&VOLUMES, "", |_, v: VolumeRecord| {
                if needs_work(&v, &pending) {
                    keys.push(owner_key(&v));
                    // A Multi-Attach volume's attach or detach is its own instance's work.
                    let moving = v.attachments().filter(|a| a.state != AttachmentState::Attached);
                    keys.extend(moving.map(|a| key(&v.account, &a.instance_id)));
                }
            })
        })?;
        // Copies of snapshots are their own work.
        keys.extend(pending.iter().filter(|s| s.copy_of.is_some()).map(|s| key(&s.account, &s.id)));
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::Io(format!("removing {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instances::{LaunchRequest, RootVolumeRequest};
    use crate::tests_support::{test_disk, test_driver_backend};

    fn virtual_size(path: &str) -> u64 {
        disk::inspect(Path::new(path)).unwrap().virtual_size_bytes
    }

    /// The whole life of volumes on the test driver, which cannot hot-plug: files, snapshots,
    /// growth, attachments to a stopped instance, and root volumes.
    /// A test-driver backend with one image of account `acct`, and its zone.
    fn with_image(dir: &Path) -> (Backend, String, storage::ImageRecord) {
        let b = test_driver_backend(dir);
        let zone = b.topology().default_zone().to_owned();
        let image = b
            .register_image(
                "acct",
                crate::images::NewImage { name: "img".into(), disk: test_disk(dir), ..Default::default() },
            )
            .unwrap();
        (b, zone, image)
    }

    #[test]
    fn volumes_snapshots_and_root_disks() {
        let dir = tempfile::tempdir().unwrap();
        let (b, zone, image) = with_image(dir.path());
        let new = |size: Option<u64>, snapshot_id: Option<String>| NewVolume {
            zone: zone.clone(),
            size_gib: size,
            volume_type: Some("gp3".into()),
            snapshot_id,
            client_token: None,
            ..Default::default()
        };
        let volume = b.create_volume("acct", new(Some(1), None)).unwrap();
        assert_eq!((volume.state, volume.iops, volume.throughput), (VolumeState::Creating, Some(3000), Some(125)));
        b.converge(&format!("acct/{}", volume.id)).unwrap();
        let volume = b.volumes("acct").unwrap().remove(0);
        assert_eq!(volume.state, VolumeState::Available);
        assert_eq!(virtual_size(&volume.path), GIB);
        assert!(matches!(b.create_volume("acct", new(None, None)), Err(Error::MissingParameter(_))));

        // Snapshot, then a bigger volume from it.
        let snapshot = b.create_snapshot("acct", &volume.id, "first", &[]).unwrap();
        b.converge(&format!("acct/{}", volume.id)).unwrap();
        let snapshot = b.snapshots("acct").unwrap().into_iter().find(|s| s.id == snapshot.id).unwrap();
        assert_eq!(snapshot.state, SnapshotState::Completed);
        assert!(matches!(
            b.create_volume("acct", new(Some(0), Some(snapshot.id.clone()))),
            Err(Error::InvalidParameter { .. })
        ));
        let copy = b.create_volume("acct", new(Some(2), Some(snapshot.id.clone()))).unwrap();
        b.converge(&format!("acct/{}", copy.id)).unwrap();
        assert_eq!(virtual_size(&copy.path), 2 * GIB);

        // Growth; shrinking is refused.
        b.modify_volume("acct", &copy.id, VolumeChange { size_gib: Some(3), ..Default::default() }).unwrap();
        assert!(matches!(
            b.modify_volume("acct", &copy.id, VolumeChange { size_gib: Some(4), ..Default::default() }),
            Err(Error::IncorrectModificationState(_))
        ));
        b.converge(&format!("acct/{}", copy.id)).unwrap();
        let grown = b.volumes("acct").unwrap().into_iter().find(|v| v.id == copy.id).unwrap();
        assert_eq!((grown.size_gib, grown.modification.unwrap().state), (3, ModificationState::Completed));
        assert_eq!(virtual_size(&copy.path), 3 * GIB);
        assert!(matches!(
            b.modify_volume("acct", &copy.id, VolumeChange { size_gib: Some(1), ..Default::default() }),
            Err(Error::InvalidParameter { .. })
        ));

        // An instance with a 2 GiB root volume that outlives it.
        let req = LaunchRequest {
            image_id: image.id.clone(),
            instance_type: "t3.nano".into(),
            min_count: 1,
            max_count: 1,
            root_volume: RootVolumeRequest {
                size_gib: Some(2),
                delete_on_termination: Some(false),
                ..Default::default()
            },
            ..Default::default()
        };
        let instance = b.run_instances("acct", "vpc-1", req).unwrap().remove(0);
        let key = format!("acct/{}", instance.id);
        b.converge(&key).unwrap();
        let root = b.instance_volumes("acct", &instance.id).unwrap().remove(0);
        assert!(root.root && root.attachment.as_ref().unwrap().device == ROOT_DEVICE);
        assert_eq!(virtual_size(&root.path), 2 * GIB, "the root disk has the volume's size");

        // The test driver cannot hot-plug: attaching to the running guest fails, as on EC2,
        // and leaves the volume available.
        b.attach_volume("acct", &volume.id, &instance.id, "/dev/sdf").unwrap();
        b.converge(&key).unwrap();
        assert_eq!(
            b.volumes("acct").unwrap().into_iter().find(|v| v.id == volume.id).unwrap().state,
            VolumeState::Available
        );
        assert!(b.attach_volume("acct", &volume.id, &instance.id, "/dev/sda").is_err());

        // A stopped instance takes it, and boots with it.
        b.stop_instances("acct", std::slice::from_ref(&instance.id), true).unwrap();
        b.converge(&key).unwrap();
        b.attach_volume("acct", &volume.id, &instance.id, "/dev/sdf").unwrap();
        assert!(matches!(
            b.attach_volume("acct", &copy.id, &instance.id, "/dev/xvdf"),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(matches!(b.delete_volume("acct", &volume.id), Err(Error::VolumeInUse(_))));
        b.converge(&key).unwrap();
        let attached = b.instance_volumes("acct", &instance.id).unwrap();
        assert_eq!(attached.len(), 2);
        assert_eq!(
            boot_disks(&attached, &instance.id),
            [AttachedDisk { target: "vdf".into(), path: volume.path.clone().into(), key: None, shareable: false }]
        );
        b.start_instances("acct", std::slice::from_ref(&instance.id)).unwrap();
        b.converge(&key).unwrap();
        assert_eq!(b.instance("acct", &instance.id).unwrap().state, InstanceState::Running);

        // Terminating keeps the root volume (as asked) and detaches the data volume.
        b.terminate_instances("acct", std::slice::from_ref(&instance.id)).unwrap();
        b.converge(&key).unwrap();
        let after = b.volumes("acct").unwrap();
        let kept_root = after.iter().find(|v| v.id == root.id).unwrap();
        assert_eq!((kept_root.state, kept_root.attachment.is_none()), (VolumeState::Available, true));
        assert!(kept_root.path.contains("/volumes/") && virtual_size(&kept_root.path) == 2 * GIB);
        assert_eq!(after.iter().find(|v| v.id == volume.id).unwrap().state, VolumeState::Available);
        assert!(!Path::new(&root.path).exists(), "the instance's folder is gone");

        for v in &after {
            b.delete_volume("acct", &v.id).unwrap();
            assert!(!Path::new(&v.path).exists());
        }
        b.delete_snapshot("acct", &snapshot.id).unwrap();
        assert!(!Path::new(&snapshot.path).exists());
    }

    #[test]
    fn launch_volumes_come_with_the_first_boot_and_go_as_their_devices_say() {
        let dir = tempfile::tempdir().unwrap();
        let (b, zone, image) = with_image(dir.path());
        let source = b.create_volume("acct", NewVolume { zone, size_gib: Some(1), ..Default::default() }).unwrap();
        b.converge(&format!("acct/{}", source.id)).unwrap();
        let snapshot = b.create_snapshot("acct", &source.id, "data", &[]).unwrap();
        b.converge(&format!("acct/{}", source.id)).unwrap();
        let launch = |volumes: Vec<LaunchVolume>| LaunchRequest {
            image_id: image.id.clone(),
            instance_type: "t3.nano".into(),
            min_count: 1,
            max_count: 1,
            volumes,
            volume_tags: vec![("team".into(), "data".into())],
            ..Default::default()
        };
        let empty = |device: &str, size: Option<u64>| LaunchVolume {
            device: device.into(),
            size_gib: size,
            volume_type: Some("gp3".into()),
            ..Default::default()
        };
        let refused = |volumes| match b.run_instances("acct", "vpc-1", launch(volumes)) {
            Err(Error::InvalidBlockDeviceMapping(message)) => message,
            other => panic!("{other:?}"),
        };
        assert!(refused(vec![empty("/dev/sdf", Some(1)), empty("/dev/xvdf", Some(1))]).contains("more than one"));
        assert!(refused(vec![empty("/dev/sdf", None)]).contains("size"));
        assert!(refused(vec![empty("/dev/hda", Some(1))]).contains("Invalid device name"));
        let from_missing =
            LaunchVolume { snapshot_id: Some("snap-0000000000000000f".into()), ..empty("/dev/sdg", None) };
        assert!(matches!(
            b.run_instances("acct", "vpc-1", launch(vec![from_missing])),
            Err(Error::ResourceNotFound { kind: ResourceKind::Snapshot, .. })
        ));
        assert!(b.instances("acct").unwrap().is_empty(), "a refused launch leaves nothing");

        let from_snapshot = LaunchVolume {
            snapshot_id: Some(snapshot.id.clone()),
            size_gib: Some(2),
            delete_on_termination: Some(false),
            ..empty("/dev/xvdg", None)
        };
        let instance = b
            .run_instances("acct", "vpc-1", launch(vec![empty("/dev/sdf", Some(1)), from_snapshot]))
            .unwrap()
            .remove(0);
        let key = format!("acct/{}", instance.id);
        let volumes = b.instance_volumes("acct", &instance.id).unwrap();
        assert_eq!(volumes.len(), 3);
        for v in &volumes {
            assert_eq!(b.tags_of("acct", [v.id.as_str()]).unwrap()[&v.id], [("team".to_owned(), "data".to_owned())]);
            assert_eq!(
                (v.state, v.attachment.as_ref().unwrap().state),
                (VolumeState::InUse, AttachmentState::Attached)
            );
        }
        let by_device = |device: &str| {
            b.instance_volumes("acct", &instance.id)
                .unwrap()
                .into_iter()
                .find(|v| v.attachment.as_ref().unwrap().device == device)
                .unwrap()
        };
        let (sdf, xvdg) = (by_device("/dev/sdf"), by_device("/dev/xvdg"));
        assert!(!Path::new(&sdf.path).exists(), "files come with the first boot, not the request");
        assert_eq!((xvdg.snapshot_id.as_deref(), xvdg.size_gib), (Some(snapshot.id.as_str()), 2));
        // Deleted before the first boot: gone from sight, its data still owed to the launch.
        b.delete_snapshot("acct", &snapshot.id).unwrap();
        assert!(b.snapshots("acct").unwrap().is_empty());
        assert!(Path::new(&snapshot.path).exists(), "kept for the volume waiting for it");
        b.converge(&key).unwrap();
        assert!(!Path::new(&snapshot.path).exists(), "let go once the volume is made");
        assert_eq!(b.instance("acct", &instance.id).unwrap().state, InstanceState::Running);
        assert_eq!((virtual_size(&sdf.path), virtual_size(&xvdg.path)), (GIB, 2 * GIB));
        assert!(sdf.path.contains("/volumes/"), "outside the instance's folder: {}", sdf.path);

        // DeleteOnTermination per device, the root by an AWS name; an unmapped device is refused.
        assert!(matches!(
            b.set_delete_on_termination("acct", &instance.id, &[("/dev/sdz".into(), false)]),
            Err(Error::InvalidParameter { .. })
        ));
        b.set_delete_on_termination("acct", &instance.id, &[("/dev/xvdf".into(), false), ("/dev/sda1".into(), true)])
            .unwrap();
        b.terminate_instances("acct", std::slice::from_ref(&instance.id)).unwrap();
        b.converge(&key).unwrap();
        let left: Vec<String> = b.volumes("acct").unwrap().into_iter().map(|v| v.id).collect();
        assert!(left.contains(&sdf.id) && left.contains(&xvdg.id), "{left:?}");
        assert_eq!(left.len(), 3, "the root went with the instance: {left:?}");
        assert!(Path::new(&sdf.path).exists() && Path::new(&xvdg.path).exists());

        // An instance that never booted leaves its kept launch volume with a file all the same.
        let kept = LaunchVolume { delete_on_termination: Some(false), ..empty("/dev/sdh", Some(1)) };
        let unborn = b.run_instances("acct", "vpc-1", launch(vec![kept])).unwrap().remove(0);
        b.terminate_instances("acct", std::slice::from_ref(&unborn.id)).unwrap();
        b.converge(&format!("acct/{}", unborn.id)).unwrap();
        let made = b.volumes("acct").unwrap().into_iter().find(|v| !left.contains(&v.id) && !v.root).unwrap();
        assert_eq!((made.state, made.attachment.is_none()), (VolumeState::Creating, true));
        b.converge(&format!("acct/{}", made.id)).unwrap();
        let made = b.volumes("acct").unwrap().into_iter().find(|v| v.id == made.id).unwrap();
        assert_eq!(made.state, VolumeState::Available);
        assert_eq!(virtual_size(&made.path), GIB);
    }

    #[test]
    fn settings_follow_ec2s_rules_per_type() {
        assert_eq!(volume_settings("gp3", 2, None, None).unwrap(), (Some(3000), Some(125)));
        assert_eq!(volume_settings("gp2", 10, None, None).unwrap(), (Some(100), None));
        assert_eq!(volume_settings("gp2", 1000, None, None).unwrap(), (Some(3000), None));
        assert_eq!(volume_settings("io1", 10, Some(500), None).unwrap(), (Some(500), None));
        assert_eq!(volume_settings("standard", 10, None, None).unwrap(), (None, None));
        assert!(matches!(volume_settings("io2", 10, None, None), Err(Error::MissingParameter(_))));
        assert!(volume_settings("st1", 10, None, None).is_err(), "st1 starts at 125 GiB");
        assert!(volume_settings("gp2", 0, None, None).is_err());
        assert!(volume_settings("gp2", 10, None, Some(200)).is_err());
        assert!(volume_settings("standard", 10, Some(100), None).is_err());
        assert!(volume_settings("fast", 10, None, None).is_err());
    }

    #[test]
    fn device_names_map_to_virtio_targets() {
        assert_eq!(guest_target("/dev/sdf").unwrap(), "vdf");
        assert_eq!(guest_target("/dev/xvdh").unwrap(), "vdh");
        assert_eq!(guest_target("/dev/vdz").unwrap(), "vdz");
        assert_eq!(guest_target("/dev/xvdba").unwrap(), "vdba");
        assert_eq!(guest_target("/dev/sdcz").unwrap(), "vdcz");
        for bad in ["/dev/sda", "/dev/vda", "/dev/sdf1", "sdf", "/dev/hdb", "/dev/sd", "/dev/xvdB", "/dev/sdabc"] {
            assert!(guest_target(bad).is_err(), "{bad}");
        }
    }
}
