//! The contract between the domain and a virtualisation host.
//!
//! A [`Hypervisor`] is synchronous, as libvirt's C API blocks on every call: callers run it on
//! blocking threads, never on the async executor. Domains are named by instance id. Every
//! operation is idempotent where the domain allows it (defining an existing domain redefines
//! it, destroying a stopped one succeeds), so that interrupted work can simply be redone.

use std::path::PathBuf;

use quick_xml::escape::escape;

/// How guests run on a host: hardware virtualisation, software emulation, or libvirt's test
/// driver (which takes its own domain type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accelerator {
    Kvm,
    Tcg,
    Test,
}

impl Accelerator {
    /// The libvirt `<domain type=…>`.
    pub fn domain_type(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "qemu",
            Self::Test => "test",
        }
    }
}

/// Everything a host needs to define an instance's domain.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainSpec {
    pub name: String,
    pub uuid: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub accelerator: Accelerator,
    pub disk: PathBuf,
    /// The root disk's key, when it is encrypted.
    pub root_key: Option<DiskKey>,
    /// Attached volumes, each a qcow2 file on its virtio target (`vdf`).
    pub volumes: Vec<AttachedDisk>,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
    pub mac: String,
    /// The primary NIC's OVN logical port (a UUID, as libvirt wants it): the NIC goes into Open
    /// vSwitch's integration bridge as that port.
    pub port: String,
    /// More NICs after the primary one: the network interfaces attached to the instance.
    pub nics: Vec<Nic>,
    pub console_log: PathBuf,
    /// Shown to the guest as the SMBIOS product, as EC2 does.
    pub instance_type: String,
    /// The domain's `<metadata>` element: whose it is ([`crate::ownership`]).
    pub metadata: Option<String>,
}

/// A guest NIC: a port of Open vSwitch's integration bridge
/// ([`crate::vpc_network::INTEGRATION_BRIDGE`]) that OVN knows as `port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub mac: String,
    /// Its OVN logical port.
    pub port: String,
}

/// A volume as a guest disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedDisk {
    /// The virtio target (`vdf`).
    pub target: String,
    pub path: PathBuf,
    /// Its key, when it is encrypted.
    pub key: Option<DiskKey>,
    /// A Multi-Attach volume: a raw file other guests have open too.
    pub shareable: bool,
}

/// What a host needs to open an encrypted disk (LUKS inside qcow2): the libvirt secret its
/// `<encryption>` names, and the passphrase that secret carries.
#[derive(Clone, PartialEq, Eq)]
pub struct DiskKey {
    pub secret_uuid: String,
    pub passphrase: String,
}

impl DiskKey {
    pub fn of(encryption: &storage::Encryption) -> Self {
        Self { secret_uuid: encryption.secret_uuid.clone(), passphrase: encryption.passphrase.clone() }
    }
}

/// Never prints the passphrase.
impl std::fmt::Debug for DiskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskKey").field("secret_uuid", &self.secret_uuid).finish_non_exhaustive()
    }
}

impl DomainSpec {
    /// The keys of its encrypted disks.
    pub fn keys(&self) -> Vec<DiskKey> {
        self.root_key.iter().chain(self.volumes.iter().filter_map(|v| v.key.as_ref())).cloned().collect()
    }
}

/// A domain's power state, as far as Stratus cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    Running,
    Paused,
    /// Defined but not running.
    ShutOff,
    Crashed,
    /// Between states (shutting down, blocked, no state).
    Other,
}

impl PowerState {
    /// Not running a guest: what a guest that powered itself off leaves behind.
    pub fn is_off(self) -> bool {
        matches!(self, Self::ShutOff | Self::Crashed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainStatus {
    pub name: String,
    pub state: PowerState,
    /// Cumulative CPU time of all vCPUs, in nanoseconds.
    pub cpu_time_ns: u64,
}

/// A domain's counters as the host's bulk statistics call reads them. Each only grows while
/// one QEMU process runs the guest: a restart or a live migration starts them again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomainCounters {
    /// CPU time of all vCPUs, in nanoseconds.
    pub cpu_time_ns: u64,
    /// vCPUs the guest has now; 0 when the host does not say.
    pub vcpus: u32,
    /// Memory the guest has (its balloon's size), and what its QEMU process holds resident,
    /// in KiB; 0 when the host does not say.
    pub memory_kib: u64,
    pub rss_kib: u64,
    /// Summed over every NIC.
    pub net_rx_bytes: u64,
    pub net_rx_packets: u64,
    pub net_tx_bytes: u64,
    pub net_tx_packets: u64,
    /// Summed over every disk.
    pub disk_read_bytes: u64,
    pub disk_read_ops: u64,
    pub disk_write_bytes: u64,
    pub disk_write_ops: u64,
}

/// One domain in a [`HostSample`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSample {
    pub name: String,
    pub state: PowerState,
    pub counters: DomainCounters,
}

/// What one sampling call reads off a host: its CPU and memory, and every domain's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSample {
    /// The host's busy and total CPU time (all CPUs, nanoseconds, cumulative), when it tells.
    pub cpu_ns: Option<(u64, u64)>,
    pub memory_total_kib: u64,
    /// Free memory, when the host tells.
    pub memory_free_kib: Option<u64>,
    pub domains: Vec<DomainSample>,
}

impl HostSample {
    /// What a host without bulk statistics tells: its size, and each domain's state and CPU time.
    pub fn of_domains(info: HostInfo, domains: Vec<DomainStatus>) -> Self {
        Self {
            cpu_ns: None,
            memory_total_kib: info.memory_mib * 1024,
            memory_free_kib: None,
            domains: domains
                .into_iter()
                .map(|d| DomainSample {
                    name: d.name,
                    state: d.state,
                    counters: DomainCounters { cpu_time_ns: d.cpu_time_ns, ..Default::default() },
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostInfo {
    pub vcpus: u32,
    pub memory_mib: u64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriverError {
    /// The host does not answer
    #[error("host unreachable: {0}")]
    Unreachable(String),
    /// The host has no domain of that name
    #[error("no domain {0}")]
    NoDomain(String),
    /// The host refused or failed the operation
    #[error("{0}")]
    Failed(String),
}

/// A domain's serial console, open for one session: the bytes the guest writes to its first
/// serial port, and keys sent to it. Nothing blocks: callers poll. Dropping it ends the
/// session (the guest's port stays, and its log goes on being written).
pub trait SerialConsole: Send {
    /// Bytes the guest wrote since the last call, into `buf`: `Ok(Some(n))`, or `Ok(None)`
    /// when none are waiting. `Ok(Some(0))` is the end: the guest stopped or moved, or
    /// another session took the console.
    fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, DriverError>;
    /// Sends keys to the guest; answers how many bytes were taken (0 when it is busy: send
    /// the rest later).
    fn write(&mut self, data: &[u8]) -> Result<usize, DriverError>;
}

pub trait Hypervisor: Send + Sync {
    fn host_info(&self) -> Result<HostInfo, DriverError>;
    /// Every domain the host knows, running or only defined.
    fn domains(&self) -> Result<Vec<DomainStatus>, DriverError>;
    /// The host's CPU and memory and every domain's counters, in as few round trips as the
    /// host allows (libvirt: one bulk statistics call). A host that can tell only what
    /// [`Hypervisor::domains`] tells answers with that.
    fn sample(&self) -> Result<HostSample, DriverError> {
        Ok(HostSample::of_domains(self.host_info()?, self.domains()?))
    }
    /// One domain's power state; `None` when the host has no such domain.
    fn state(&self, name: &str) -> Result<Option<PowerState>, DriverError>;
    /// Defines (or redefines) a persistent domain; does not start it.
    fn define(&self, spec: &DomainSpec) -> Result<(), DriverError>;
    /// Starts a defined domain; succeeds when it already runs.
    fn start(&self, name: &str) -> Result<(), DriverError>;
    /// Asks the guest to power off (ACPI power button); returns at once.
    fn shutdown(&self, name: &str) -> Result<(), DriverError>;
    /// Powers off at once; succeeds when it is not running.
    fn destroy(&self, name: &str) -> Result<(), DriverError>;
    fn reboot(&self, name: &str) -> Result<(), DriverError>;
    /// Forgets the domain; succeeds when there is none.
    fn undefine(&self, name: &str) -> Result<(), DriverError>;
    /// Pauses the vCPUs; QEMU drains and flushes the disks first, so the files on the host
    /// hold a crash-consistent image of the guest until [`Hypervisor::resume`].
    fn suspend(&self, name: &str) -> Result<(), DriverError>;
    /// Resumes a paused domain; succeeds when it is not paused.
    fn resume(&self, name: &str) -> Result<(), DriverError>;
    /// Reports lifecycle changes of this host's domains (started, stopped, crashed…) to
    /// `sink`, from now on and across reconnections. Hosts that cannot tell are polled.
    fn watch(&self, sink: EventSink);
    /// Live-migrates a running domain to the host at `target_uri`, peer to peer (the source
    /// host talks to the target itself); the domain ends up persistent there and undefined
    /// here. Blocks for the whole migration; on failure the guest runs on here, unless the
    /// migration had switched to post-copy (then neither host holds all of it:
    /// [`Hypervisor::post_copy_failed`]).
    ///
    /// With `storage`, the hosts do not share the instance's folder: the disks it names are
    /// copied to their place on the target (which holds them already, empty, with their
    /// backing files) while memory moves, and the guest runs there on those files.
    fn migrate(
        &self,
        name: &str,
        target_uri: &str,
        options: &MigrationOptions,
        storage: Option<&StorageCopy>,
    ) -> Result<(), DriverError>;
    /// The domain's running job (a migration), or `None` when it has none.
    fn job_progress(&self, name: &str) -> Result<Option<JobProgress>, DriverError>;
    /// The statistics of the domain's last completed job, as kept by the host it now runs on.
    fn completed_job(&self, name: &str) -> Result<Option<JobProgress>, DriverError>;
    /// Aborts the domain's running job; a migration leaves the guest where it was.
    fn abort_job(&self, name: &str) -> Result<(), DriverError>;
    /// Switches a running migration (started with post-copy allowed) to post-copy.
    fn start_post_copy(&self, name: &str) -> Result<(), DriverError>;
    /// Sets the longest pause the domain's migration may take at its switch-over; during a
    /// migration, from its next pass on.
    fn set_migration_downtime(&self, name: &str, ms: u64) -> Result<(), DriverError>;
    /// Whether the domain here is half of a guest whose post-copy migration broke: libvirt
    /// leaves the source's half paused and the target's running but waiting for pages that
    /// will not come, both marked so. `false` for a domain the host does not know.
    fn post_copy_failed(&self, name: &str) -> Result<bool, DriverError>;
    /// Hot-plugs a disk into the running guest; succeeds when it is there already. The
    /// persistent definition is not touched: every start redefines the domain with its
    /// volumes.
    fn attach_disk(&self, name: &str, disk: &AttachedDisk) -> Result<(), DriverError>;
    /// Asks the running guest to release a disk and waits until it has; succeeds when it is
    /// not there. A guest that does not let go within `wait` is a failure, tried again later.
    fn detach_disk(&self, name: &str, target: &str, wait: std::time::Duration) -> Result<(), DriverError>;
    /// Grows a disk of the running guest to `bytes`; the guest sees the new size.
    fn resize_disk(&self, name: &str, target: &str, bytes: u64) -> Result<(), DriverError>;
    /// Plugs a NIC into a running domain; one of that MAC is there already: nothing to do.
    fn attach_interface(&self, name: &str, nic: &Nic) -> Result<(), DriverError>;
    /// Unplugs the NIC (found by its MAC) from a running domain; none there: nothing to do.
    fn detach_interface(&self, name: &str, nic: &Nic) -> Result<(), DriverError>;
    /// The domain's definition as the host renders it (libvirt's domain XML, with the
    /// `<metadata>` it was given); `None` when the host has no such domain.
    fn definition(&self, name: &str) -> Result<Option<String>, DriverError>;
    /// Lends the host the keys of encrypted disks, for a start, a hot-plug or an incoming
    /// migration that opens them. On libvirt they are secrets that are ephemeral (never
    /// written to the host's disk) and private (never read back through the API).
    fn add_secrets(&self, keys: &[DiskKey]) -> Result<(), DriverError>;
    /// Takes the keys back: QEMU keeps the disks it has opened without them. Unknown ones are
    /// no error.
    fn remove_secrets(&self, secret_uuids: &[String]) -> Result<(), DriverError>;
    /// Opens the running domain's serial console for one session, ending any session opened
    /// before (one at a time, as EC2's serial console).
    fn open_console(&self, name: &str) -> Result<Box<dyn SerialConsole>, DriverError> {
        Err(DriverError::Failed(format!("this host cannot open the serial console of {name}")))
    }
    /// How fast the running guest dirties its memory, in bytes a second, measured over
    /// `period` (libvirt asks QEMU to sample pages and compare their hashes). Blocks for the
    /// period at most.
    fn dirty_rate(&self, name: &str, period: std::time::Duration) -> Result<u64, DriverError> {
        let _ = period;
        Err(DriverError::Failed(format!("this host cannot measure how fast {name} dirties its memory")))
    }
}

/// The root disk's target in every domain.
pub const ROOT_TARGET: &str = "vda";

/// What a migration between hosts that do not share an instance's folder copies: the disks
/// on `disks` (targets, `vda`…), from the folder `from_dir` on the source to `to_dir` on the
/// target, where each is made beforehand with the same size and backing file. Everything of
/// the domain's that lies in the folder (its console log too) is found in the new folder on
/// the target; its other disks (volumes) are on shared storage and stay where they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageCopy {
    pub disks: Vec<String>,
    pub from_dir: std::path::PathBuf,
    pub to_dir: std::path::PathBuf,
}

impl StorageCopy {
    /// Where `path` is on the target: in `to_dir` if it lies in `from_dir`, else unchanged.
    pub fn moved(&self, path: &std::path::Path) -> std::path::PathBuf {
        match path.strip_prefix(&self.from_dir) {
            Ok(rest) => self.to_dir.join(rest),
            Err(_) => path.to_path_buf(),
        }
    }

    /// The domain's definition `xml` with every path in `from_dir` moved to `to_dir`: what
    /// the target runs. Paths appear escaped in the XML, so the folders are matched escaped,
    /// each with its trailing `/` (a folder whose name merely starts the same is not moved).
    pub fn moved_definition(&self, xml: &str) -> String {
        let folder =
            |dir: &std::path::Path| escape(format!("{}/", dir.to_string_lossy().trim_end_matches('/'))).into_owned();
        xml.replace(&folder(&self.from_dir), &folder(&self.to_dir))
    }
}

/// The `<disk>` element of a file on a virtio target: qcow2, or raw and `<shareable/>` (QEMU
/// lets several processes write only a raw file), encrypted when it has a key. A shared disk
/// bypasses the host's page cache (`cache='none'`): guests on different hosts must see each
/// other's writes, as a cluster filesystem on a Multi-Attach volume expects.
fn disk_element(path: &std::path::Path, target: &str, key: Option<&DiskKey>, shareable: bool) -> String {
    let file = escape(path.to_string_lossy());
    let source = match key {
        None => format!("<source file='{file}'/>"),
        Some(k) => format!(
            "<source file='{file}'><encryption format='luks'><secret type='passphrase' uuid='{}'/></encryption></source>",
            escape(&k.secret_uuid)
        ),
    };
    let (driver, shared) = if shareable { ("type='raw' cache='none'", "<shareable/>") } else { ("type='qcow2'", "") };
    format!(
        "<disk type='file' device='disk'><driver name='qemu' {driver}/>{source}<target dev='{}' bus='virtio'/>{shared}</disk>",
        escape(target)
    )
}

/// The `<disk>` element of an attached volume.
pub fn disk_xml(disk: &AttachedDisk) -> String {
    disk_element(&disk.path, &disk.target, disk.key.as_ref(), disk.shareable)
}

/// The `<secret>` of a disk's key, without its value (set apart, as libvirt wants).
pub fn secret_xml(key: &DiskKey) -> String {
    format!(
        "<secret ephemeral='yes' private='yes'><uuid>{}</uuid><description>Stratus volume key</description></secret>",
        escape(&key.secret_uuid)
    )
}

/// The `<interface>` element of a NIC: a port of the integration bridge that OVN knows by its
/// interface id.
///
/// Open vSwitch's userspace datapath drops a virtio guest's TCP unless checksum offload is off
/// on both sides (../shared/design/networking.md). The MTU that fits the overlay is told to the
/// guest by virtio itself (QEMU's `host_mtu`), so that a guest configured without DHCP (a
/// kernel `ip=` line) does not send what Geneve cannot carry between hosts.
pub fn nic_xml(nic: &Nic) -> String {
    format!(
        "<interface type='bridge'><source bridge='{}'/><mac address='{}'/><model type='virtio'/>\
<virtualport type='openvswitch'><parameters interfaceid='{}'/></virtualport>\
<driver name='qemu'><host csum='off'/><guest csum='off'/></driver><mtu size='{}'/></interface>",
        crate::vpc_network::INTEGRATION_BRIDGE,
        escape(&nic.mac),
        escape(&nic.port),
        crate::vpc_network::OVERLAY_MTU
    )
}

pub use storage::{JobProgress, MigrationOptions};

/// Receives the name of a domain whose lifecycle changed. Called from the driver's event
/// thread: it must not block.
pub type EventSink = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// The libvirt domain XML for a spec: virtio disk and NIC on the integration bridge, the serial
/// console logged to a file, and direct kernel boot when the image has a kernel.
///
/// A virtio RNG feeds the guest's entropy pool from the host, as EC2's Nitro card does: without
/// it, a TCG guest's kernel waits tens of seconds for enough entropy before sshd and
/// cloud-init can go on.
///
/// The guest sees the platform as EC2 through SMBIOS (vendor `Amazon EC2`, a system UUID and
/// serial starting with `ec2`, the instance type as product): that is how cloud-init and other
/// tools tell that they run on EC2 and look for the metadata service.
pub fn domain_xml(spec: &DomainSpec) -> String {
    let mut os = String::from("<type arch='x86_64'>hvm</type><smbios mode='sysinfo'/>");
    match &spec.kernel {
        Some(kernel) => {
            os.push_str(&format!("<kernel>{}</kernel>", escape(kernel)));
            if let Some(initrd) = &spec.initrd {
                os.push_str(&format!("<initrd>{}</initrd>", escape(initrd)));
            }
            if let Some(cmdline) = &spec.cmdline {
                os.push_str(&format!("<cmdline>{}</cmdline>", escape(cmdline)));
            }
        }
        None => os.push_str("<boot dev='hd'/>"),
    }
    // KVM guests get the host's CPU model; under TCG QEMU's default model is the safe one.
    let cpu = if spec.accelerator == Accelerator::Kvm { "<cpu mode='host-model'/>" } else { "" };
    let log = escape(spec.console_log.to_string_lossy()).into_owned();
    let primary = Nic { mac: spec.mac.clone(), port: spec.port.clone() };
    format!(
        "<domain type='{kind}'>\
<name>{name}</name><uuid>{uuid}</uuid>{metadata}\
<memory unit='MiB'>{mem}</memory><vcpu>{vcpus}</vcpu>\
<sysinfo type='smbios'><bios><entry name='vendor'>Amazon EC2</entry></bios>\
<system><entry name='manufacturer'>Amazon EC2</entry><entry name='product'>{product}</entry>\
<entry name='serial'>{uuid}</entry><entry name='uuid'>{uuid}</entry></system></sysinfo>\
<os>{os}</os><features><acpi/></features>{cpu}\
<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>\
<devices>\
{disk}{volumes}{primary}{nics}\
<serial type='pty'><log file='{log}' append='on'/><target port='0'/></serial>\
<console type='pty'><log file='{log}' append='on'/><target type='serial' port='0'/></console>\
<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\
</devices></domain>",
        kind = spec.accelerator.domain_type(),
        name = escape(&spec.name),
        uuid = escape(&spec.uuid),
        mem = spec.memory_mib,
        vcpus = spec.vcpus,
        disk = disk_element(&spec.disk, ROOT_TARGET, spec.root_key.as_ref(), false),
        volumes = spec.volumes.iter().map(disk_xml).collect::<String>(),
        primary = nic_xml(&primary),
        nics = spec.nics.iter().map(nic_xml).collect::<String>(),
        product = escape(&spec.instance_type),
        metadata = spec.metadata.as_deref().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DomainSpec {
        DomainSpec {
            name: "i-0123".into(),
            uuid: "6f1c1c1e-0000-4000-8000-000000000001".into(),
            vcpus: 2,
            memory_mib: 512,
            accelerator: Accelerator::Tcg,
            disk: "/data/i-0123/root.qcow2".into(),
            root_key: None,
            volumes: vec![AttachedDisk {
                target: "vdf".into(),
                path: "/data/volumes/vol-1.qcow2".into(),
                key: None,
                shareable: false,
            }],
            kernel: Some("/img/vmlinux".into()),
            initrd: Some("/img/initrd.gz".into()),
            cmdline: Some("console=ttyS0 ip=172.31.0.4::172.31.0.1:255.255.240.0:i-0123:eth0:off".into()),
            mac: "52:54:00:aa:bb:cc".into(),
            port: "6f1c1c1e-0000-4000-8000-0000000000aa".into(),
            nics: Vec::new(),
            console_log: "/data/i-0123/console.log".into(),
            instance_type: "t3.micro".into(),
            metadata: Some(crate::ownership::owner_metadata("0123456789abcdef", "/data".as_ref(), "172.31.0.4")),
        }
    }

    #[test]
    fn direct_boot_domain() {
        let xml = domain_xml(&spec());
        assert!(xml.starts_with("<domain type='qemu'>"));
        for part in [
            "<name>i-0123</name>",
            "<memory unit='MiB'>512</memory><vcpu>2</vcpu>",
            "<kernel>/img/vmlinux</kernel><initrd>/img/initrd.gz</initrd>",
            "<source file='/data/i-0123/root.qcow2'/>",
            "<source file='/data/volumes/vol-1.qcow2'/><target dev='vdf' bus='virtio'/>",
            "<source bridge='br-int'/><mac address='52:54:00:aa:bb:cc'/>",
            "<serial type='pty'><log file='/data/i-0123/console.log' append='on'/>",
            "<parameters interfaceid='6f1c1c1e-0000-4000-8000-0000000000aa'/>",
            "<system><entry name='manufacturer'>Amazon EC2</entry><entry name='product'>t3.micro</entry>",
            "<entry name='uuid'>6f1c1c1e-0000-4000-8000-000000000001</entry>",
            "<os><type arch='x86_64'>hvm</type><smbios mode='sysinfo'/>",
            "</uuid><metadata><stratus:owner ",
            "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>",
        ] {
            assert!(xml.contains(part), "{part} missing from {xml}");
        }
        assert!(!xml.contains("<cpu"), "TCG guests keep QEMU's default CPU model");
    }

    #[test]
    fn an_ovn_nic_is_an_ovs_port_with_the_overlay_mtu() {
        let ovn = Nic { mac: "52:54:00:00:00:02".into(), port: "u-1".into() };
        let xml = nic_xml(&ovn);
        for part in [
            "<source bridge='br-int'/>",
            "<virtualport type='openvswitch'><parameters interfaceid='u-1'/></virtualport>",
            "<host csum='off'/><guest csum='off'/>",
            "<mtu size='1400'/>",
        ] {
            assert!(xml.contains(part), "{part} missing from {xml}");
        }
    }

    #[test]
    fn disk_boot_and_kvm() {
        let mut spec = spec();
        spec.kernel = None;
        spec.accelerator = Accelerator::Kvm;
        let xml = domain_xml(&spec);
        assert!(xml.starts_with("<domain type='kvm'>"));
        assert!(xml.contains("<boot dev='hd'/>") && !xml.contains("<kernel>") && !xml.contains("<initrd>"));
    }

    #[test]
    fn encrypted_disks_name_their_secret_and_never_hold_the_passphrase() {
        let key = |n: u8| DiskKey {
            secret_uuid: format!("6f1c1c1e-0000-4000-8000-00000000000{n}"),
            passphrase: "p4ss".into(),
        };
        let mut spec = spec();
        spec.root_key = Some(key(1));
        spec.volumes.push(AttachedDisk {
            target: "vdg".into(),
            path: "/data/volumes/vol-2.qcow2".into(),
            key: Some(key(2)),
            shareable: false,
        });
        spec.volumes.push(AttachedDisk {
            target: "vdh".into(),
            path: "/data/volumes/vol-3.raw".into(),
            key: Some(key(3)),
            shareable: true,
        });
        assert_eq!(spec.keys(), [key(1), key(2), key(3)]);
        let xml = domain_xml(&spec);
        for part in [
            "<source file='/data/i-0123/root.qcow2'><encryption format='luks'><secret type='passphrase' uuid='6f1c1c1e-0000-4000-8000-000000000001'/></encryption></source><target dev='vda'",
            "<source file='/data/volumes/vol-1.qcow2'/><target dev='vdf'",
            "<source file='/data/volumes/vol-2.qcow2'><encryption format='luks'><secret type='passphrase' uuid='6f1c1c1e-0000-4000-8000-000000000002'/></encryption></source><target dev='vdg'",
            "<driver name='qemu' type='raw' cache='none'/><source file='/data/volumes/vol-3.raw'><encryption format='luks'><secret type='passphrase' uuid='6f1c1c1e-0000-4000-8000-000000000003'/></encryption></source><target dev='vdh' bus='virtio'/><shareable/></disk>",
        ] {
            assert!(xml.contains(part), "{part} missing from {xml}");
        }
        let secret = secret_xml(&key(1));
        assert!(
            secret.contains("ephemeral='yes' private='yes'")
                && secret.contains("<uuid>6f1c1c1e-0000-4000-8000-000000000001</uuid>")
        );
        for text in [xml, secret, format!("{:?}", key(1))] {
            assert!(!text.contains("p4ss"), "{text}");
        }
    }

    #[test]
    fn values_are_escaped() {
        let mut spec = spec();
        spec.cmdline = Some("a=<b>&'c'".into());
        let xml = domain_xml(&spec);
        assert!(xml.contains("<cmdline>a=&lt;b&gt;&amp;&apos;c&apos;</cmdline>"));
    }

    #[test]
    fn a_storage_copy_moves_what_lies_in_the_folder_and_nothing_else() {
        let mut spec = spec();
        spec.disk = "/disks/h1/i-0123&x/root.qcow2".into();
        spec.console_log = "/disks/h1/i-0123&x/console.log".into();
        spec.volumes[0].path = "/disks/h1/i-0123&x2/vol-1.qcow2".into();
        let copy = StorageCopy {
            disks: vec![ROOT_TARGET.into()],
            from_dir: "/disks/h1/i-0123&x".into(),
            to_dir: "/disks/h2/i-0123&x/".into(),
        };
        let moved = copy.moved_definition(&domain_xml(&spec));
        assert!(moved.contains("<source file='/disks/h2/i-0123&amp;x/root.qcow2'"), "{moved}");
        assert!(moved.contains("<log file='/disks/h2/i-0123&amp;x/console.log'"), "{moved}");
        // A folder that merely starts with the same name is another one.
        assert!(moved.contains("/disks/h1/i-0123&amp;x2/vol-1.qcow2"), "{moved}");
        assert!(!moved.contains("/disks/h1/i-0123&amp;x/"), "{moved}");
    }
}
