//! The optional TOML config: regions and zones, instance types, request limits.
//!
//! ```toml
//! [[regions]]
//! name = "us-east-1"
//! zones = ["us-east-1a", "us-east-1b"]
//!
//! offered_instance_types = ["t3.*", "m5.*"]   # default: all of AWS's catalogue
//!
//! [[instance_types]]          # a type of your own, or another size for one of AWS's
//! name = "x1.tiny"
//! vcpus = 1
//! memory_mib = 256
//! burstable = true
//!
//! placement = "pack"          # or "spread", "load-aware"
//!
//! [[hosts]]                    # replaces the default single host `qemu:///system`
//! uri = "qemu+tcp://10.0.0.2/system"
//! zone = "us-east-1b"
//! accelerator = "kvm"          # or "tcg"; the local default is what setup-host recorded
//! cpu_ratio = 4.0
//! memory_ratio = 1.0
//! chassis = "host-b"         # its OVN chassis (Open vSwitch system-id), which its guests' ports bind to
//! disk_dir = "/srv/stratus/h2" # its own storage for its instances' folders (absolute; unset: shared)
//!
//! [instances]
//! stop_timeout_secs = 60
//! sweep_interval_ms = 1000
//!
//! [monitoring]
//! interval_ms = 10000            # how often every host is sampled
//! retention_days = [15, 63, 455] # 1-minute, 5-minute and 1-hour history, as CloudWatch keeps it
//!
//! [limits]
//! max_body_bytes = 1048576
//! request_timeout_secs = 30      # a whole request, once its headers are in
//! header_timeout_secs = 20       # to send a request's headers; idle keep-alive connections too
//! body_timeout_secs = 20         # to send a request's body (then 400 RequestTimeout)
//! max_connections = 4096
//! max_connections_per_address = 256
//! requests_per_second = 1000     # per account and class of action (read, mutate)
//! burst = 2000
//! anonymous_per_second = 20      # unsigned or failed-auth requests, per source address
//! anonymous_burst = 40
//!
//! [network]
//! ovn_northbound = "unix:/run/ovn/ovnnb_db.sock"   # default: setup-host's OVN; "none": records only
//! public_cidr = "198.51.100.0/24"                  # the public network Elastic IPs come from
//! public_gateway = "198.51.100.1"                  # its router (default: the block's first address)
//! gateway_chassis = "host-1"                       # where NAT happens (default: this machine)
//!
//! [storage]
//! backend = "redb"               # or "postgres"
//! cache_mib = 48                 # redb's page cache
//! url = "postgresql://stratus@db1,db2/stratus?target_session_attrs=read-write"
//! connections = 16               # PostgreSQL connections at most
//! lease_secs = 10                # the conductor's lease among replicas (PostgreSQL)
//! ```

use std::path::Path;

use anyhow::{Context, Result};
use backend::hosts::HostConfig;
use backend::hypervisor::Accelerator;
use backend::scheduler::Policy;
use backend::topology::{default_hosts, default_instance_types, InstanceTypeSpec, Region};
use backend::Topology;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub regions: Option<Vec<Region>>,
    /// Which of AWS's instance types are offered (EC2 patterns: `*`, `?`); default: all.
    pub offered_instance_types: Option<Vec<String>>,
    /// Types of the operator's own, added to those offered (or replacing the size of one of
    /// AWS's of the same name).
    pub instance_types: Option<Vec<InstanceTypeSpec>>,
    pub hosts: Option<Vec<HostConfig>>,
    #[serde(default)]
    pub placement: Policy,
    #[serde(default)]
    pub instances: InstanceSettings,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub storage: StorageSettings,
    #[serde(default)]
    pub network: NetworkSettings,
    #[serde(default)]
    pub monitoring: MonitoringSettings,
    #[serde(default)]
    pub console: ConsoleSettings,
}

/// The web console under `/console/` ([`crate::console`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    pub enabled: bool,
    /// How long a sign-in lasts, however busy.
    pub session_secs: u64,
    /// How long a session may go unused.
    pub idle_secs: u64,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self { enabled: true, session_secs: 8 * 3600, idle_secs: 3600 }
    }
}

/// How hosts are sampled and how long their history is kept ([`backend::monitoring`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringSettings {
    pub interval_ms: u64,
    /// Days of 1-minute, 5-minute and 1-hour aggregates.
    pub retention_days: [u32; 3],
}

impl Default for MonitoringSettings {
    fn default() -> Self {
        Self { interval_ms: 10_000, retention_days: backend::monitoring::Retention::default().days }
    }
}

/// Where `scripts/setup-host` runs OVN's northbound database: the embedded default's network.
pub const DEFAULT_OVN_NORTHBOUND: &str = "unix:/run/stratus/ovn/ovnnb_db.sock";

/// Where the accounts' VPCs are built.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSettings {
    /// The OVN northbound database (`unix:/path`, `tcp:host:6641`) whose routers, switches,
    /// ports and DHCP options Stratus keeps in step with its store. Unset: the one
    /// `scripts/setup-host` starts ([`DEFAULT_OVN_NORTHBOUND`]) when it runs. `"none"`: no
    /// network engine: VPCs, subnets and addresses are records only, for hosts that run no
    /// guests (libvirt's test driver); launches onto real hosts are refused.
    pub ovn_northbound: Option<String>,
    /// The operator's public network, where Elastic IPs come from (default: the documentation
    /// range `198.51.100.0/24`; `scripts/setup-host` gives this machine its router address).
    pub public_cidr: Option<String>,
    /// The public network's router; default: the block's first address.
    pub public_gateway: Option<String>,
    /// The OVN chassis whose gateway ports carry the VPCs' public traffic; default: this
    /// machine (`scripts/setup-host` names its chassis after the hostname).
    pub gateway_chassis: Option<String>,
}

impl NetworkSettings {
    /// The OVN northbound database Stratus keeps in step, if any (see `ovn_northbound`).
    pub fn ovn(&self) -> Option<String> {
        resolve_ovn(self.ovn_northbound.as_deref(), |path| Path::new(path).exists())
    }

    /// The public network as the backend takes it.
    pub fn public_network(&self) -> Result<backend::addresses::PublicNetwork> {
        match &self.public_cidr {
            Some(cidr) => backend::addresses::PublicNetwork::parse(cidr, self.public_gateway.as_deref())
                .map_err(anyhow::Error::msg)
                .context("invalid [network] public_cidr / public_gateway"),
            None if self.public_gateway.is_some() => {
                anyhow::bail!("[network] public_gateway needs public_cidr")
            }
            None => Ok(Default::default()),
        }
    }
}

/// `ovn_northbound` as configured (`None`: unset) to the database used; `socket_exists` says
/// whether a `unix:` path is there.
fn resolve_ovn(configured: Option<&str>, socket_exists: impl Fn(&str) -> bool) -> Option<String> {
    match configured {
        Some("none") => None,
        Some(db) => Some(db.to_owned()),
        None => {
            let path = DEFAULT_OVN_NORTHBOUND.trim_start_matches("unix:");
            if socket_exists(path) {
                Some(DEFAULT_OVN_NORTHBOUND.to_owned())
            } else {
                tracing::warn!(
                    "OVN is not running here ({DEFAULT_OVN_NORTHBOUND} is missing): guests get no network, \
                     so launches onto real hosts are refused. Run scripts/setup-host (it starts OVN) and \
                     restart Stratus, or set [network] ovn_northbound."
                );
                None
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// Where the state lives: the embedded redb file in the data dir, or PostgreSQL.
    pub backend: StoreKind,
    /// redb's page cache, in MiB: what of the database stays in Stratus's memory.
    pub cache_mib: usize,
    /// PostgreSQL's connection string (libpq's URL or key=value form; several hosts with
    /// `target_session_attrs=read-write` too).
    pub url: Option<String>,
    /// How many PostgreSQL connections the server keeps at most.
    pub connections: u32,
    /// PostgreSQL: how long the conductor's lease lasts unrenewed, in seconds. A replica
    /// takes over within about this long of its holder's death.
    pub lease_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Redb,
    Postgres,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            backend: StoreKind::Redb,
            cache_mib: storage::DEFAULT_CACHE_MIB,
            url: None,
            connections: 16,
            lease_secs: 10,
        }
    }
}

impl StorageSettings {
    /// The PostgreSQL connection string, when the store is PostgreSQL.
    pub fn postgres_url(&self) -> anyhow::Result<Option<&str>> {
        match (self.backend, self.url.as_deref()) {
            (StoreKind::Redb, _) => Ok(None),
            (StoreKind::Postgres, Some(url)) if !url.trim().is_empty() => Ok(Some(url)),
            (StoreKind::Postgres, _) => {
                anyhow::bail!("[storage] backend = \"postgres\" needs url = \"postgresql://user@host/database\"")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstanceSettings {
    /// How long StopInstances waits for the guest before powering it off.
    pub stop_timeout_secs: u64,
    /// How often the conductor reconciles redb with the hosts.
    pub sweep_interval_ms: u64,
}

impl Default for InstanceSettings {
    fn default() -> Self {
        Self { stop_timeout_secs: 60, sweep_interval_ms: 1000 }
    }
}

/// Where `scripts/setup-host` records which accelerator boots guests on this machine.
pub const ACCELERATOR_RECORD: &str = "/var/lib/stratus/accelerator";

/// The accelerator of a local host without one configured: what setup-host found, else KVM.
fn local_accelerator(record: &Path) -> Option<Accelerator> {
    match std::fs::read_to_string(record).ok()?.trim() {
        "tcg" => Some(Accelerator::Tcg),
        "kvm" => Some(Accelerator::Kvm),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout_secs: u64,
    pub header_timeout_secs: u64,
    pub body_timeout_secs: u64,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub requests_per_second: u32,
    pub burst: u32,
    pub anonymous_per_second: u32,
    pub anonymous_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            request_timeout_secs: 30,
            header_timeout_secs: 20,
            body_timeout_secs: 20,
            max_connections: 4096,
            max_connections_per_address: 256,
            requests_per_second: 1000,
            burst: 2000,
            anonymous_per_second: 20,
            anonymous_burst: 40,
        }
    }
}

impl Config {
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else { return Ok(Self::default()) };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        let config: Config = match toml::from_str(&text) {
            // Hosts' guests shared a Linux bridge before every VPC was on OVN.
            Err(error) if error.message().contains("unknown field `bridge`") => anyhow::bail!(
                "parsing config {}: remove `bridge` from [[hosts]]: guests plug into OVN's integration \
                 bridge (br-int) now, on every host",
                path.display()
            ),
            parsed => parsed.with_context(|| format!("parsing config {}", path.display()))?,
        };
        config.topology().validate().map_err(anyhow::Error::msg).context("invalid config")?;
        anyhow::ensure!(
            !config.instance_types().is_empty(),
            "offered_instance_types matches none of AWS's instance types and [[instance_types]] adds none"
        );
        config.network.public_network()?;
        let limits = &config.limits;
        anyhow::ensure!(limits.requests_per_second > 0, "limits.requests_per_second must be positive");
        anyhow::ensure!(limits.anonymous_per_second > 0, "limits.anonymous_per_second must be positive");
        anyhow::ensure!(
            limits.max_connections > 0 && limits.max_connections_per_address > 0,
            "limits.max_connections and limits.max_connections_per_address must be positive"
        );
        anyhow::ensure!(config.instances.sweep_interval_ms > 0, "instances.sweep_interval_ms must be positive");
        anyhow::ensure!(config.monitoring.interval_ms >= 100, "monitoring.interval_ms must be at least 100");
        let days = config.monitoring.retention_days;
        anyhow::ensure!(
            days[0] > 0 && days[0] <= days[1] && days[1] <= days[2] && days[2] <= 36_500,
            "monitoring.retention_days must be positive, at most 36500, and keep coarser tiers at least as long as finer ones"
        );
        Ok(config)
    }

    pub fn topology(&self) -> Topology {
        Topology {
            regions: self.regions.clone().unwrap_or_else(|| Topology::default().regions),
            instance_types: self.instance_types(),
            hosts: self.hosts.clone().unwrap_or_else(default_hosts),
            placement: self.placement,
        }
    }

    /// AWS's catalogue as `offered_instance_types` narrows it, with `[[instance_types]]` added.
    fn instance_types(&self) -> Vec<InstanceTypeSpec> {
        let mut types = default_instance_types();
        if let Some(patterns) = &self.offered_instance_types {
            let patterns: Vec<ec2api::filter::Pattern> =
                patterns.iter().map(|p| ec2api::filter::Pattern::new(p)).collect();
            types.retain(|t| patterns.iter().any(|p| p.matches(&t.name)));
        }
        for own in self.instance_types.iter().flatten() {
            match types.iter_mut().find(|t| t.name == own.name) {
                Some(offered) => *offered = own.clone(),
                None => types.push(own.clone()),
            }
        }
        types
    }

    /// The topology with local hosts' accelerators filled in from setup-host's record.
    pub fn resolved_topology(&self) -> Topology {
        let mut topology = self.topology();
        for host in &mut topology.hosts {
            let local = host.uri.starts_with("qemu:///");
            if host.accelerator.is_none() && local {
                host.accelerator = local_accelerator(Path::new(ACCELERATOR_RECORD));
            }
        }
        topology
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_means_defaults() {
        let config: Config = toml::from_str("").unwrap();
        let topology = config.topology();
        assert_eq!(topology.regions[0].name, "us-east-1");
        assert_eq!(topology.regions[0].zones, ["us-east-1a"]);
        assert_eq!(config.limits, Limits::default());
    }

    #[test]
    fn regions_and_limits_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[[regions]]\nname = \"pc-east-1\"\nzones = [\"pc-east-1a\", \"pc-east-1b\"]\n[limits]\nburst = 5\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.topology().regions[0].zones.len(), 2);
        assert_eq!(config.limits.burst, 5);
        std::fs::write(&path, "[[regions]]\nname = \"pc-east-1\"\nzones = [\"elsewhere-1a\"]\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
        std::fs::write(&path, "colour = 1\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
        // A host's guest bridge from before OVN: said what to do about.
        std::fs::write(&path, "[[hosts]]\nuri = 'qemu:///system'\nbridge = 'stratus0'\n").unwrap();
        let error = format!("{:#}", Config::load(Some(&path)).unwrap_err());
        assert!(error.contains("remove `bridge` from [[hosts]]"), "{error}");
    }

    #[test]
    fn aws_instance_types_narrowed_and_extended() {
        let all: Config = toml::from_str("").unwrap();
        let names = |c: &Config| c.topology().instance_types.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        assert!(names(&all).len() > 1000 && names(&all).contains(&"t2.micro".to_owned()));
        let text = "offered_instance_types = ['t2.*', 'm5.larg?']\n\
                    [[instance_types]]\nname = 'x1.tiny'\nvcpus = 1\nmemory_mib = 256\n\
                    [[instance_types]]\nname = 't2.micro'\nvcpus = 1\nmemory_mib = 2048\n";
        let narrowed: Config = toml::from_str(text).unwrap();
        let offered = names(&narrowed);
        assert!(offered.iter().all(|n| n.starts_with("t2.") || n == "m5.large" || n == "x1.tiny"), "{offered:?}");
        assert!(offered.contains(&"m5.large".to_owned()) && offered.contains(&"x1.tiny".to_owned()));
        let micro = narrowed.topology().instance_type("t2.micro").cloned().unwrap();
        assert_eq!(micro.memory_mib, 2048, "the config's size wins");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "offered_instance_types = ['z9.*']\n").unwrap();
        let error = format!("{:#}", Config::load(Some(&path)).unwrap_err());
        assert!(error.contains("matches none"), "{error}");
    }

    #[test]
    fn hosts_placement_and_instance_settings() {
        let text = "placement = 'spread'\n[[hosts]]\nuri = 'test:///default'\ncpu_ratio = 2.0\n\
                    [[hosts]]\nuri = 'qemu+tcp://10.1.0.2/system'\naccelerator = 'tcg'\n\
                    [instances]\nstop_timeout_secs = 5\n[storage]\ncache_mib = 16\n\
                    [network]\novn_northbound = 'unix:/run/ovn/ovnnb_db.sock'\n";
        let config: Config = toml::from_str(text).unwrap();
        let topology = config.topology();
        assert_eq!(topology.placement, Policy::Spread);
        assert_eq!(topology.hosts.len(), 2);
        assert_eq!(topology.hosts[1].accelerator, Some(Accelerator::Tcg));
        assert_eq!(config.instances.stop_timeout_secs, 5);
        assert_eq!(config.instances.sweep_interval_ms, 1000);
        assert_eq!(config.storage.cache_mib, 16);
        assert_eq!(config.network.ovn_northbound.as_deref(), Some("unix:/run/ovn/ovnnb_db.sock"));
        assert_eq!(resolve_ovn(Some("tcp:10.0.0.1:6641"), |_| false).as_deref(), Some("tcp:10.0.0.1:6641"));
        assert_eq!(resolve_ovn(Some("none"), |_| true), None, "records only when asked");
        let seen = std::cell::Cell::new(None);
        let unset = resolve_ovn(None, |path| {
            seen.set(Some(path.to_owned()));
            true
        });
        assert_eq!(unset.as_deref(), Some(DEFAULT_OVN_NORTHBOUND), "setup-host's OVN by default");
        assert_eq!(seen.take().as_deref(), Some("/run/stratus/ovn/ovnnb_db.sock"));
        assert_eq!(resolve_ovn(None, |_| false), None, "without OVN running, the embedded default still starts");
        let public: Config = toml::from_str("[network]\npublic_cidr = '198.51.100.0/28'\n").unwrap();
        let network = public.network.public_network().unwrap();
        assert_eq!(
            (network.cidr.to_string(), network.gateway.to_string()),
            ("198.51.100.0/28".into(), "198.51.100.1".into())
        );
        assert_eq!(Config::default().network.public_network().unwrap(), Default::default());
        let bad: Config =
            toml::from_str("[network]\npublic_cidr = '198.51.100.0/28'\npublic_gateway = '10.0.0.1'\n").unwrap();
        assert!(bad.network.public_network().is_err());
        assert_eq!(Config::default().storage.cache_mib, storage::DEFAULT_CACHE_MIB);
        assert_eq!(Config::default().topology().hosts[0].uri, "qemu:///system");
        let dup = "[[hosts]]\nuri = 'test:///default'\n[[hosts]]\nuri = 'test:///default'\n";
        assert!(toml::from_str::<Config>(dup).unwrap().topology().validate().is_err());
    }

    #[test]
    fn the_recorded_accelerator_applies_to_local_hosts_only() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("accelerator");
        assert_eq!(local_accelerator(&record), None);
        std::fs::write(&record, "tcg\n").unwrap();
        assert_eq!(local_accelerator(&record), Some(Accelerator::Tcg));
        std::fs::write(&record, "kvm").unwrap();
        assert_eq!(local_accelerator(&record), Some(Accelerator::Kvm));
    }
}
