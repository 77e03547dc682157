//! [`Hypervisor`] over libvirt, for any URI: `test:///default` in fast tests,
//! `qemu:///system` for the local host, `qemu+tcp://…` and friends for remote ones.
//!
//! The connection opens lazily on first use and is reopened after it dies, so a host that
//! comes back is picked up again without a restart. Every call blocks. Once watched, each
//! connection carries a lifecycle-event subscription ([`events`]), renewed with it.

mod ffi;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::enumutil::Enum;
use virt::error::ErrorNumber;
use virt::sys;

use crate::hypervisor::{
    disk_xml, domain_xml, nic_xml, secret_xml, AttachedDisk, DiskKey, DomainSample, DomainSpec, DomainStatus,
    DriverError, EventSink, HostInfo, HostSample, Hypervisor, JobProgress, MigrationOptions, Nic, PowerState,
    SerialConsole, StorageCopy,
};
use ffi::Subscription;

pub struct LibvirtDriver {
    uri: String,
    conn: Mutex<Option<Live>>,
    sink: Mutex<Option<EventSink>>,
    opened: AtomicU64,
}

/// An open connection and its event subscription (dropped first, while the connection lives).
struct Live {
    events: Option<Subscription>,
    conn: Connect,
    /// Which opening this is: a failed call drops the connection only if it is still the
    /// one the call used.
    generation: u64,
}

/// Keepalive probes every 5 s, 3 unanswered ones close the connection: a remote host that
/// vanished is noticed in seconds instead of at the next TCP timeout.
const KEEPALIVE_INTERVAL_SECS: i32 = 5;
const KEEPALIVE_COUNT: u32 = 3;

fn quiet_libvirt() {
    static ONCE: Once = Once::new();
    // libvirt prints every error to stderr by default; ours are handled and logged.
    ONCE.call_once(virt::error::clear_error_callback);
}

fn failed(e: virt::error::Error) -> DriverError {
    match e.code() {
        Enum::Known(ErrorNumber::NoDomain) => DriverError::NoDomain(e.message().to_owned()),
        Enum::Known(ErrorNumber::NoConnect | ErrorNumber::SystemError | ErrorNumber::Rpc) => {
            DriverError::Unreachable(e.message().to_owned())
        }
        _ => DriverError::Failed(e.message().to_owned()),
    }
}

fn power_state(state: &virt::domain::DomainStateEnum) -> PowerState {
    match state {
        Enum::Known(DomainState::Running) => PowerState::Running,
        Enum::Known(DomainState::Paused) => PowerState::Paused,
        Enum::Known(DomainState::Shutoff) => PowerState::ShutOff,
        Enum::Known(DomainState::Crashed) => PowerState::Crashed,
        _ => PowerState::Other,
    }
}

fn progress(stats: &virt::domain::JobStats) -> JobProgress {
    let page = stats.mem_page_size.unwrap_or(4096);
    JobProgress {
        time_elapsed_ms: stats.time_elapsed.unwrap_or(0),
        setup_time_ms: stats.setup_time.unwrap_or(0),
        downtime_ms: stats.downtime.unwrap_or(0),
        memory_total_bytes: stats.mem_total.unwrap_or(0),
        memory_processed_bytes: stats.mem_processed.unwrap_or(0),
        memory_remaining_bytes: stats.mem_remaining.unwrap_or(0),
        dirty_rate_bytes_per_sec: stats.mem_dirty_rate.unwrap_or(0).saturating_mul(page),
        bandwidth_bytes_per_sec: stats.mem_bps.unwrap_or(0),
        iterations: stats.mem_iteration.unwrap_or(0),
        post_copy_requests: stats.mem_postcopy_reqs.unwrap_or(0),
        throttle_percent: stats.auto_converge_throttle.map_or(0, |t| t.max(0) as u64),
        disk_total_bytes: stats.disk_total.unwrap_or(0),
        disk_processed_bytes: stats.disk_processed.unwrap_or(0),
        disk_remaining_bytes: stats.disk_remaining.unwrap_or(0),
        memory_zero_pages: stats.mem_constant.unwrap_or(0),
        memory_normal_bytes: stats.mem_normal_bytes.unwrap_or(0),
    }
}

/// Whether an error says "the domain is (already) not running" or "already running".
/// Whether the running domain has a disk on `target`.
fn has_disk(domain: &Domain, target: &str) -> Result<bool, DriverError> {
    let xml = domain.xml_desc(0).map_err(failed)?;
    Ok(xml.contains(&format!("<target dev='{target}'")) || xml.contains(&format!("<target dev=\"{target}\"")))
}

/// How long an unplugged NIC may take to leave the guest before the converge asks again.
const NIC_UNPLUG_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn has_nic(domain: &Domain, mac: &str) -> Result<bool, DriverError> {
    let xml = domain.xml_desc(0).map_err(failed)?.to_ascii_lowercase();
    let mac = mac.to_ascii_lowercase();
    Ok(xml.contains(&format!("<mac address='{mac}'")) || xml.contains(&format!("<mac address=\"{mac}\"")))
}

fn is_operation_invalid(e: &virt::error::Error) -> bool {
    matches!(e.code(), Enum::Known(ErrorNumber::OperationInvalid))
}

impl LibvirtDriver {
    pub fn new(uri: &str) -> Self {
        quiet_libvirt();
        ffi::start_event_loop();
        Self { uri: uri.to_owned(), conn: Mutex::new(None), sink: Mutex::new(None), opened: AtomicU64::new(0) }
    }

    fn subscribe(&self, conn: &Connect) -> Option<Subscription> {
        let sink = self.sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()?;
        let subscription = Subscription::new(conn, sink);
        if subscription.is_none() {
            tracing::warn!(uri = %self.uri, "host refused event registration; its domains are polled");
        }
        subscription
    }

    /// Runs `f` on a live connection, opening one if needed and dropping it when it broke.
    /// The lock covers only the opening: a long call (a migration) does not hold up others.
    fn with_conn<T>(&self, f: impl FnOnce(&Connect) -> Result<T, DriverError>) -> Result<T, DriverError> {
        let (conn, generation) = {
            let mut guard = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if guard.is_none() {
                let conn =
                    Connect::open(Some(&self.uri)).map_err(|e| DriverError::Unreachable(e.message().to_owned()))?;
                // Drivers without keepalive (the test driver) refuse it; nothing is lost.
                let _ = conn.set_keep_alive(KEEPALIVE_INTERVAL_SECS, KEEPALIVE_COUNT);
                let generation = self.opened.fetch_add(1, Ordering::Relaxed);
                *guard = Some(Live { events: self.subscribe(&conn), conn, generation });
            }
            let Some(live) = guard.as_ref() else { return Err(DriverError::Unreachable(self.uri.clone())) };
            (live.conn.clone(), live.generation)
        };
        let result = f(&conn);
        if matches!(result, Err(DriverError::Unreachable(_))) || !conn.is_alive().unwrap_or(false) {
            let mut guard = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if guard.as_ref().is_some_and(|live| live.generation == generation) {
                *guard = None;
            }
        }
        result
    }

    fn with_domain<T>(&self, name: &str, f: impl FnOnce(&Domain) -> Result<T, DriverError>) -> Result<T, DriverError> {
        self.with_conn(|conn| {
            let domain = conn.lookup_domain_by_name(name).map_err(failed)?;
            f(&domain)
        })
    }

    /// libvirt's test driver has no secrets (it answers "not supported") and never opens a
    /// disk, so it needs none.
    fn keeps_no_secrets(&self) -> bool {
        crate::hosts::is_test_uri(&self.uri)
    }
}

impl Hypervisor for LibvirtDriver {
    fn host_info(&self) -> Result<HostInfo, DriverError> {
        self.with_conn(|conn| {
            let info = conn.node_info().map_err(failed)?;
            Ok(HostInfo { vcpus: info.cpus, memory_mib: info.memory / 1024 })
        })
    }

    fn domains(&self) -> Result<Vec<DomainStatus>, DriverError> {
        self.with_conn(|conn| {
            // One round trip for every domain; a driver without it is asked domain by domain.
            match ffi::all_domain_stats(conn, false) {
                Ok(domains) => {
                    return Ok(domains
                        .into_iter()
                        .map(|d| DomainStatus {
                            state: power_state(&Enum::from_raw(d.state as sys::virDomainState)),
                            name: d.name,
                            cpu_time_ns: d.counters.cpu_time_ns,
                        })
                        .collect())
                }
                Err(e) if !matches!(e.code(), Enum::Known(ErrorNumber::NoSupport)) => return Err(failed(e)),
                Err(_) => {}
            }
            let mut out = Vec::new();
            for domain in conn.list_all_domains(0).map_err(failed)? {
                // A domain can vanish between the listing and the lookup: skip it.
                let (Ok(name), Ok(info)) = (domain.name(), domain.info()) else { continue };
                out.push(DomainStatus { name, state: power_state(&info.state), cpu_time_ns: info.cpu_time });
            }
            Ok(out)
        })
    }

    fn sample(&self) -> Result<HostSample, DriverError> {
        let full = self.with_conn(|conn| match ffi::all_domain_stats(conn, true) {
            Ok(domains) => {
                let info = conn.node_info().map_err(failed)?;
                Ok(Some(HostSample {
                    cpu_ns: ffi::node_cpu_ns(conn),
                    memory_total_kib: info.memory,
                    // Bytes, as libvirt answers.
                    memory_free_kib: conn.free_memory().ok().map(|b| b / 1024),
                    domains: domains
                        .into_iter()
                        .map(|d| DomainSample {
                            state: power_state(&Enum::from_raw(d.state as sys::virDomainState)),
                            name: d.name,
                            counters: d.counters,
                        })
                        .collect(),
                }))
            }
            Err(e) if matches!(e.code(), Enum::Known(ErrorNumber::NoSupport)) => Ok(None),
            Err(e) => Err(failed(e)),
        })?;
        match full {
            Some(sample) => Ok(sample),
            // A driver without bulk statistics: CPU time and state, domain by domain.
            None => Ok(HostSample::of_domains(self.host_info()?, self.domains()?)),
        }
    }

    fn state(&self, name: &str) -> Result<Option<PowerState>, DriverError> {
        match self.with_domain(name, |domain| domain.info().map_err(failed)) {
            Ok(info) => Ok(Some(power_state(&info.state))),
            Err(DriverError::NoDomain(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn define(&self, spec: &DomainSpec) -> Result<(), DriverError> {
        let xml = domain_xml(spec);
        self.with_conn(|conn| conn.define_domain_xml(&xml).map(drop).map_err(failed))
    }

    fn start(&self, name: &str) -> Result<(), DriverError> {
        self.with_domain(name, |domain| {
            if domain.is_active().map_err(failed)? {
                return Ok(());
            }
            domain.create().map(drop).map_err(failed)
        })
    }

    fn shutdown(&self, name: &str) -> Result<(), DriverError> {
        self.with_domain(name, |domain| match domain.shutdown() {
            Err(e) if is_operation_invalid(&e) => Ok(()),
            other => other.map(drop).map_err(failed),
        })
    }

    fn destroy(&self, name: &str) -> Result<(), DriverError> {
        self.with_domain(name, |domain| match domain.destroy() {
            Err(e) if is_operation_invalid(&e) => Ok(()),
            other => other.map_err(failed),
        })
    }

    fn reboot(&self, name: &str) -> Result<(), DriverError> {
        self.with_domain(name, |domain| domain.reboot(0).map_err(failed))
    }

    fn undefine(&self, name: &str) -> Result<(), DriverError> {
        match self.with_domain(name, |domain| domain.undefine().map_err(failed)) {
            Err(DriverError::NoDomain(_)) => Ok(()),
            other => other,
        }
    }

    fn suspend(&self, name: &str) -> Result<(), DriverError> {
        self.with_domain(name, |domain| match domain.info().map_err(failed)?.state {
            Enum::Known(DomainState::Paused) => Ok(()),
            _ => domain.suspend().map_err(failed),
        })
    }

    fn resume(&self, name: &str) -> Result<(), DriverError> {
        self.with_domain(name, |domain| match domain.resume() {
            Err(e) if is_operation_invalid(&e) => Ok(()),
            other => other.map_err(failed),
        })
    }

    fn migrate(
        &self,
        name: &str,
        target_uri: &str,
        options: &MigrationOptions,
        storage: Option<&StorageCopy>,
    ) -> Result<(), DriverError> {
        use virt::sys;
        // Shared storage: the disk is the same file on both hosts, which libvirt cannot tell
        // from a local one without being told (`UNSAFE`). Volumes stay shared when the root
        // disk is copied.
        let mut flags = sys::VIR_MIGRATE_LIVE
            | sys::VIR_MIGRATE_PEER2PEER
            | sys::VIR_MIGRATE_PERSIST_DEST
            | sys::VIR_MIGRATE_UNDEFINE_SOURCE
            | sys::VIR_MIGRATE_UNSAFE;
        if options.auto_converge {
            flags |= sys::VIR_MIGRATE_AUTO_CONVERGE;
        }
        if options.allow_post_copy {
            flags |= sys::VIR_MIGRATE_POSTCOPY;
        }
        // The limit holds in post-copy too (QEMU's is separate, and unlimited by default).
        let mut params = virt::domain::MigrateParameters {
            bandwidth: options.bandwidth_mibps,
            bandwidth_postcopy: options.bandwidth_mibps.map(|mib| mib.saturating_mul(1 << 20)),
            ..Default::default()
        };
        if storage.is_some() {
            // The disks named are mirrored to the target over NBD, only what their top file
            // holds (`INC`): the target has the backing file (the image) already.
            flags |= sys::VIR_MIGRATE_NON_SHARED_INC;
        }
        // The call lasts as long as the migration, on a connection of its own: on the shared
        // one, every call the monitor made meanwhile (job statistics, a downtime raise, an
        // abort) waited behind it until the next keepalive (5 s; measured on the lab, where
        // the readings of a 20 s migration came 5 s apart and saw one pass in three).
        let conn = Connect::open(Some(&self.uri)).map_err(|e| DriverError::Unreachable(e.message().to_owned()))?;
        let _ = conn.set_keep_alive(KEEPALIVE_INTERVAL_SECS, KEEPALIVE_COUNT);
        let domain = conn.lookup_domain_by_name(name).map_err(failed)?;
        if let Some(copy) = storage {
            params.migrate_disks = copy.disks.clone();
            // The target runs the guest from its own folder: the same definition, moved.
            let xml = domain.xml_desc(sys::VIR_DOMAIN_XML_MIGRATABLE).map_err(failed)?;
            params.dest_xml = Some(copy.moved_definition(&xml));
        }
        if let Some(ms) = options.max_downtime_ms {
            domain.migrate_set_max_downtime(ms, 0).map_err(failed)?;
        }
        // The source reports the target's trouble (its RPC or system errors) as its own:
        // that is a failed migration, not a source that went away.
        domain.migrate_to_uri3(Some(target_uri), params, flags).map_err(|e| match failed(e) {
            DriverError::Unreachable(message) if conn.is_alive().unwrap_or(false) => DriverError::Failed(message),
            other => other,
        })
    }

    fn job_progress(&self, name: &str) -> Result<Option<JobProgress>, DriverError> {
        self.with_domain(name, |domain| Ok(ffi::job_stats(domain, 0).map_err(failed)?.map(|s| progress(&s))))
    }

    fn completed_job(&self, name: &str) -> Result<Option<JobProgress>, DriverError> {
        self.with_domain(name, |domain| {
            // Kept for later readers (a restarted Stratus settling the migration).
            let flags = virt::sys::VIR_DOMAIN_JOB_STATS_COMPLETED | virt::sys::VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED;
            let stats = ffi::job_stats(domain, flags).map_err(failed)?;
            Ok(stats.map(|s| progress(&s)))
        })
    }

    fn abort_job(&self, name: &str) -> Result<(), DriverError> {
        self.with_domain(name, |domain| match ffi::abort_job(domain) {
            Err(e) if is_operation_invalid(&e) => Ok(()),
            other => other.map_err(failed),
        })
    }

    fn start_post_copy(&self, name: &str) -> Result<(), DriverError> {
        self.with_domain(name, |domain| ffi::start_post_copy(domain).map_err(failed))
    }

    fn post_copy_failed(&self, name: &str) -> Result<bool, DriverError> {
        match self.with_domain(name, |domain| ffi::post_copy_failed(domain).map_err(failed)) {
            Err(DriverError::NoDomain(_)) => Ok(false),
            other => other,
        }
    }

    fn set_migration_downtime(&self, name: &str, ms: u64) -> Result<(), DriverError> {
        self.with_domain(name, |domain| domain.migrate_set_max_downtime(ms, 0).map_err(failed))
    }

    fn dirty_rate(&self, name: &str, period: std::time::Duration) -> Result<u64, DriverError> {
        self.with_domain(name, |domain| {
            ffi::dirty_rate(domain, period).map_err(failed)?.ok_or_else(|| {
                DriverError::Failed(format!(
                    "{name}: QEMU published no dirty rate within 5 s of the {period:?} measured"
                ))
            })
        })
    }

    fn attach_disk(&self, name: &str, disk: &AttachedDisk) -> Result<(), DriverError> {
        self.with_domain(name, |domain| {
            if has_disk(domain, &disk.target)? {
                return Ok(());
            }
            domain.attach_device_flags(&disk_xml(disk), virt::sys::VIR_DOMAIN_AFFECT_LIVE).map_err(failed)
        })
    }

    fn detach_disk(&self, name: &str, target: &str, wait: std::time::Duration) -> Result<(), DriverError> {
        self.with_domain(name, |domain| {
            if !has_disk(domain, target)? {
                return Ok(());
            }
            // libvirt finds the disk by its target; the source may be left out.
            let xml = format!("<disk type='file' device='disk'><target dev='{target}' bus='virtio'/></disk>");
            domain.detach_device_flags(&xml, virt::sys::VIR_DOMAIN_AFFECT_LIVE).map_err(failed)?;
            // The guest releases the device when it acknowledges the unplug, on its own time.
            let deadline = std::time::Instant::now() + wait;
            while has_disk(domain, target)? {
                if std::time::Instant::now() >= deadline {
                    return Err(DriverError::Failed(format!("the guest has not released {target}")));
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Ok(())
        })
    }

    fn attach_interface(&self, name: &str, nic: &Nic) -> Result<(), DriverError> {
        self.with_domain(name, |domain| {
            if has_nic(domain, &nic.mac)? {
                return Ok(());
            }
            domain.attach_device_flags(&nic_xml(nic), virt::sys::VIR_DOMAIN_AFFECT_LIVE).map_err(failed)
        })
    }

    fn detach_interface(&self, name: &str, nic: &Nic) -> Result<(), DriverError> {
        let mac = nic.mac.as_str();
        self.with_domain(name, |domain| {
            if !has_nic(domain, mac)? {
                return Ok(());
            }
            // libvirt finds the NIC by its MAC, but parses the whole element first.
            domain.detach_device_flags(&nic_xml(nic), virt::sys::VIR_DOMAIN_AFFECT_LIVE).map_err(failed)?;
            // QEMU removes the device once the guest acknowledges the unplug.
            let deadline = std::time::Instant::now() + NIC_UNPLUG_WAIT;
            while has_nic(domain, mac)? {
                if std::time::Instant::now() >= deadline {
                    return Err(DriverError::Failed(format!("the guest has not released the NIC {mac}")));
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Ok(())
        })
    }

    fn resize_disk(&self, name: &str, target: &str, bytes: u64) -> Result<(), DriverError> {
        self.with_domain(name, |domain| {
            domain.block_resize(target, bytes, virt::sys::VIR_DOMAIN_BLOCK_RESIZE_BYTES).map_err(failed)
        })
    }

    fn definition(&self, name: &str) -> Result<Option<String>, DriverError> {
        match self.with_domain(name, |domain| domain.xml_desc(0).map_err(failed)) {
            Ok(xml) => Ok(Some(xml)),
            Err(DriverError::NoDomain(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn add_secrets(&self, keys: &[DiskKey]) -> Result<(), DriverError> {
        if keys.is_empty() || self.keeps_no_secrets() {
            return Ok(());
        }
        self.with_conn(|conn| {
            for key in keys {
                let secret = conn.define_secret_xml(&secret_xml(key), 0).map_err(failed)?;
                secret.set_value(key.passphrase.as_bytes(), 0).map_err(failed)?;
            }
            Ok(())
        })
    }

    fn remove_secrets(&self, secret_uuids: &[String]) -> Result<(), DriverError> {
        if secret_uuids.is_empty() || self.keeps_no_secrets() {
            return Ok(());
        }
        self.with_conn(|conn| {
            for uuid in secret_uuids {
                match conn.lookup_secret_by_uuid_string(uuid) {
                    Ok(secret) => secret.undefine().map_err(failed)?,
                    Err(e) if matches!(e.code(), Enum::Known(ErrorNumber::NoSecret)) => {}
                    Err(e) => return Err(failed(e)),
                }
            }
            Ok(())
        })
    }

    fn open_console(&self, name: &str) -> Result<Box<dyn SerialConsole>, DriverError> {
        self.with_conn(|conn| {
            let domain = conn.lookup_domain_by_name(name).map_err(failed)?;
            let stream = virt::stream::Stream::new(conn, sys::VIR_STREAM_NONBLOCK).map_err(failed)?;
            // FORCE: a new session takes the console from the one before (one at a time);
            // SAFE: refused when the console cannot be handed over safely.
            let flags = sys::VIR_DOMAIN_CONSOLE_FORCE | sys::VIR_DOMAIN_CONSOLE_SAFE;
            domain.open_console(None, &stream, flags).map_err(failed)?;
            Ok(Box::new(ffi::ConsoleStream::new(stream)) as Box<dyn SerialConsole>)
        })
    }

    fn watch(&self, sink: EventSink) {
        *self.sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(sink);
        let mut guard = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(live) = guard.as_mut() {
            live.events = None;
            live.events = self.subscribe(&live.conn);
        }
    }
}
