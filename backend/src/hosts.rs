//! The host pool: the configured libvirt hosts, their drivers, and what the last sweep saw.
//!
//! Hosts come from config (a libvirt URI in an availability zone, with overcommit ratios);
//! a host's id is derived from its URI, so it stays the same across restarts. The sweep
//! ([`crate::conductor`]) probes each host and records here whether it answers, its size,
//! its CPU load and its domains; the scheduler reads snapshots of that.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::bridge::HostBridge;
use crate::hypervisor::{Accelerator, DomainStatus, HostInfo, Hypervisor};
use crate::libvirt::LibvirtDriver;

/// One host as configured.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    pub uri: String,
    /// Defaults to the first zone of the first region.
    pub zone: Option<String>,
    /// Defaults to `test` for the test driver's URIs (`test:`, `test+tcp:`…), else to what `scripts/setup-host` recorded
    /// (resolved by the gateway's config), else `kvm`.
    pub accelerator: Option<Accelerator>,
    #[serde(default = "default_cpu_ratio")]
    pub cpu_ratio: f64,
    #[serde(default = "default_memory_ratio")]
    pub memory_ratio: f64,
    /// Override the size libvirt reports (to hold back part of a host, or in tests).
    pub vcpus: Option<u32>,
    pub memory_mib: Option<u64>,
    /// Disk for instance files; unlimited when not given.
    pub disk_mib: Option<u64>,
    /// Calls to the host in flight at once ([`crate::bridge`]); libvirtd itself serves five
    /// per client by default and queues the rest.
    #[serde(default = "default_max_calls")]
    pub max_calls: usize,
    /// How long a call may take before the host counts as unreachable for it (a migration
    /// is bounded by its own policy instead).
    #[serde(default = "default_call_timeout_secs")]
    pub call_timeout_secs: u64,
    /// The host's OVN chassis (its Open vSwitch `system-id`), which VPC guests' ports are bound
    /// to; a local host's is this machine's hostname, as `scripts/setup-host` sets it. Unknown:
    /// OVN binds a port wherever it is plugged.
    pub chassis: Option<String>,
    /// Where this host keeps its instances' folders (root disk, console log) on storage no
    /// other host shares: its local disk, as both the host and Stratus reach it (Stratus makes
    /// the disks there with qemu-img, as OpenNebula's SSH datastores do). Unset: the data
    /// folder's `instances/`, which every host shares. Instances move between hosts that do not
    /// share their folder with their root disk copied ([`crate::migration`]), and a stopped
    /// one starts again only here. Volumes and images stay on the shared data folder.
    pub disk_dir: Option<std::path::PathBuf>,
}

fn default_max_calls() -> usize {
    8
}

fn default_call_timeout_secs() -> u64 {
    60
}

fn default_cpu_ratio() -> f64 {
    4.0
}

fn default_memory_ratio() -> f64 {
    1.0
}

/// Whether `uri` names libvirt's in-process test driver.
pub fn is_test_uri(uri: &str) -> bool {
    uri.starts_with("test:") || uri.starts_with("test+")
}

impl HostConfig {
    /// `test:///…` in process, or `test+tcp://…` and the like: libvirt's test driver either way.
    pub fn is_test_driver(&self) -> bool {
        is_test_uri(&self.uri)
    }

    pub fn new(uri: &str) -> Self {
        Self {
            uri: uri.into(),
            zone: None,
            accelerator: None,
            cpu_ratio: default_cpu_ratio(),
            memory_ratio: default_memory_ratio(),
            vcpus: None,
            memory_mib: None,
            disk_mib: None,
            max_calls: default_max_calls(),
            call_timeout_secs: default_call_timeout_secs(),
            chassis: None,
            disk_dir: None,
        }
    }

    /// `h-` + 17 hex digits of the URI's SHA-256: stable, and never a libvirt detail.
    pub fn host_id(&self) -> String {
        let digest = Sha256::digest(self.uri.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("h-{}", &hex[..17])
    }
}

/// What the last probe of a host found.
#[derive(Debug, Clone, Default)]
pub struct HostStatus {
    /// `None` until the first probe.
    pub reachable: Option<bool>,
    pub info: Option<HostInfo>,
    pub load: f64,
    pub domains: Vec<DomainStatus>,
    pub error: Option<String>,
    last_cpu: Option<(Instant, u64)>,
}

pub struct Host {
    pub id: String,
    pub zone: String,
    pub config: HostConfig,
    pub accelerator: Accelerator,
    pub driver: Arc<dyn Hypervisor>,
    status: Mutex<HostStatus>,
    /// The disk keys lent to the host now, by secret, with how many operations need each.
    lent: Mutex<std::collections::HashMap<String, usize>>,
}

impl Host {
    /// A host whose every driver call goes through a bridge ([`crate::bridge`]).
    pub fn new(config: HostConfig, zone: String, driver: Arc<dyn Hypervisor>) -> Self {
        let test_driver = config.is_test_driver();
        let accelerator = config.accelerator.unwrap_or(if test_driver { Accelerator::Test } else { Accelerator::Kvm });
        let timeout = Duration::from_secs(config.call_timeout_secs.max(1));
        let driver = Arc::new(HostBridge::new(&config.uri, driver, config.max_calls, timeout));
        Self {
            id: config.host_id(),
            zone,
            config,
            accelerator,
            driver,
            status: Mutex::new(HostStatus::default()),
            lent: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Runs `f` while the host holds `keys` ([`crate::encryption`]): lent just before, taken
    /// back after, whatever `f` did (QEMU keeps the disks it opened). Loans are counted per
    /// key, so that two operations needing one key at once (two guests of an encrypted
    /// Multi-Attach volume starting together) share it, and it goes back with the last.
    pub fn lending_keys<T>(
        &self,
        keys: &[crate::hypervisor::DiskKey],
        f: impl FnOnce() -> std::result::Result<T, crate::hypervisor::DriverError>,
    ) -> std::result::Result<T, crate::hypervisor::DriverError> {
        if keys.is_empty() {
            return f();
        }
        let lock = || self.lent.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut lent = lock();
            let mut new: Vec<crate::hypervisor::DiskKey> = Vec::new();
            for key in keys {
                if !lent.contains_key(&key.secret_uuid) && !new.iter().any(|n| n.secret_uuid == key.secret_uuid) {
                    new.push(key.clone());
                }
            }
            if let Err(error) = if new.is_empty() { Ok(()) } else { self.driver.add_secrets(&new) } {
                // Some may have been defined before the failure.
                let uuids: Vec<String> = new.into_iter().map(|k| k.secret_uuid).collect();
                let _ = self.driver.remove_secrets(&uuids);
                return Err(error);
            }
            for key in keys {
                *lent.entry(key.secret_uuid.clone()).or_default() += 1;
            }
        }
        let result = f();
        let mut lent = lock();
        let mut done = Vec::new();
        for key in keys {
            if let Some(count) = lent.get_mut(&key.secret_uuid) {
                *count -= 1;
                if *count == 0 {
                    lent.remove(&key.secret_uuid);
                    done.push(key.secret_uuid.clone());
                }
            }
        }
        if done.is_empty() {
            return result;
        }
        if let Err(error) = self.driver.remove_secrets(&done) {
            // An ephemeral secret dies with the host's libvirtd at worst; the work is done.
            tracing::warn!(host = %self.id, %error, "could not take disk keys back");
        }
        result
    }

    /// Reads the last probe's findings without copying its domain list.
    fn with_status<T>(&self, f: impl FnOnce(&HostStatus) -> T) -> T {
        f(&self.status.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn status(&self) -> HostStatus {
        self.with_status(HostStatus::clone)
    }

    /// Whether the host answered its last probe; `None` before the first.
    pub fn reachable(&self) -> Option<bool> {
        self.with_status(|s| s.reachable)
    }

    pub fn load(&self) -> f64 {
        self.with_status(|s| s.load)
    }

    /// Size as configured, else as libvirt reported it.
    pub fn capacity(&self) -> Option<HostInfo> {
        let info = self.with_status(|s| s.info);
        match (self.config.vcpus, self.config.memory_mib) {
            (Some(vcpus), Some(memory_mib)) => Some(HostInfo { vcpus, memory_mib }),
            (vcpus, memory) => {
                info.map(|i| HostInfo { vcpus: vcpus.unwrap_or(i.vcpus), memory_mib: memory.unwrap_or(i.memory_mib) })
            }
        }
    }

    /// Asks the host for its size and domains; records whether it answered. Blocks.
    pub fn probe(&self) -> HostStatus {
        let result = self.driver.host_info().and_then(|info| Ok((info, self.driver.domains()?)));
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok((info, domains)) => {
                let now = Instant::now();
                let cpu_total: u64 = domains.iter().map(|d| d.cpu_time_ns).sum();
                if let Some((then, before)) = status.last_cpu {
                    let elapsed_ns = now.duration_since(then).as_nanos() as f64 * f64::from(info.vcpus.max(1));
                    if elapsed_ns > 0.0 {
                        status.load = (cpu_total.saturating_sub(before) as f64 / elapsed_ns).clamp(0.0, 1.0);
                    }
                }
                status.last_cpu = Some((now, cpu_total));
                status.reachable = Some(true);
                status.info = Some(info);
                status.domains = domains;
                status.error = None;
            }
            Err(error) => {
                status.reachable = Some(false);
                status.error = Some(error.to_string());
                status.last_cpu = None;
            }
        }
        status.clone()
    }
}

/// Every configured host, by id.
pub struct HostPool {
    hosts: BTreeMap<String, Arc<Host>>,
}

impl HostPool {
    pub fn new(hosts: impl IntoIterator<Item = Host>) -> Self {
        Self { hosts: hosts.into_iter().map(|h| (h.id.clone(), Arc::new(h))).collect() }
    }

    /// Hosts from config, each with a libvirt driver (which connects on first use).
    pub fn from_config(configs: &[HostConfig], default_zone: &str) -> Self {
        Self::new(configs.iter().map(|c| {
            let zone = c.zone.clone().unwrap_or_else(|| default_zone.to_owned());
            Host::new(c.clone(), zone, Arc::new(LibvirtDriver::new(&c.uri)))
        }))
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Host>> {
        self.hosts.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Host>> {
        self.hosts.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids_are_stable_and_shaped_like_ec2_ids() {
        let a = HostConfig::new("qemu:///system").host_id();
        assert_eq!(a, HostConfig::new("qemu:///system").host_id());
        assert_ne!(a, HostConfig::new("qemu+tcp://10.0.0.2/system").host_id());
        assert_eq!(crate::ResourceKind::of_id(&a), Some(crate::ResourceKind::Host));
    }

    #[test]
    fn config_defaults() {
        let config: HostConfig = toml::from_str("uri = 'qemu:///system'").unwrap();
        assert_eq!(config, HostConfig::new("qemu:///system"));
        assert!(toml::from_str::<HostConfig>("uri = 'x'\nbogus = 1").is_err());
        for uri in ["test:///default", "test+tcp://10.88.0.11/default"] {
            let test = Host::new(HostConfig::new(uri), "z".into(), Arc::new(LibvirtDriver::new("x")));
            assert_eq!(test.accelerator, Accelerator::Test, "{uri}");
        }
        let remote =
            Host::new(HostConfig::new("qemu+tcp://10.88.0.11/system"), "z".into(), Arc::new(LibvirtDriver::new("x")));
        assert_eq!(remote.accelerator, Accelerator::Kvm);
    }
}
