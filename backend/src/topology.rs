//! Regions, availability zones and instance types: what the cloud offers, from config.

use serde::Deserialize;

use crate::hosts::HostConfig;
use crate::scheduler::Policy;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub regions: Vec<Region>,
    #[serde(default = "default_instance_types")]
    pub instance_types: Vec<InstanceTypeSpec>,
    /// The virtualisation hosts; one `qemu:///system` host when none are given.
    #[serde(default = "default_hosts")]
    pub hosts: Vec<HostConfig>,
    #[serde(default)]
    pub placement: Policy,
}

pub fn default_hosts() -> Vec<HostConfig> {
    vec![HostConfig::new("qemu:///system")]
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub name: String,
    pub zones: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceTypeSpec {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    #[serde(default)]
    pub burstable: bool,
}

impl Default for Topology {
    fn default() -> Self {
        Self {
            regions: vec![Region { name: "us-east-1".into(), zones: vec!["us-east-1a".into()] }],
            instance_types: default_instance_types(),
            hosts: default_hosts(),
            placement: Policy::default(),
        }
    }
}

/// Every type of AWS's catalogue ([`crate::catalogue`]), with AWS's vCPU and memory figures.
pub fn default_instance_types() -> Vec<InstanceTypeSpec> {
    crate::catalogue::all().iter().map(crate::catalogue::Facts::spec).collect()
}

/// AWS's short zone id: `us-east-1a` → `use1-az1`.
pub fn zone_id(region: &str, zone: &str) -> String {
    let parts: Vec<&str> = region.split('-').collect();
    let short: String = match parts.as_slice() {
        [first, middle @ .., last] => {
            let initials: String = middle.iter().filter_map(|p| p.chars().next()).collect();
            format!("{first}{initials}{last}")
        }
        _ => region.to_owned(),
    };
    let letter = zone.strip_prefix(region).and_then(|s| s.chars().next()).unwrap_or('a');
    let index = (letter as u32).saturating_sub('a' as u32) + 1;
    format!("{short}-az{index}")
}

/// The AWS partition a region belongs to, and that partition's domain: `cn-*` regions are
/// `aws-cn` under `amazonaws.com.cn`, `us-gov-*` ones `aws-us-gov`, the rest `aws`.
pub fn partition(region: &str) -> (&'static str, &'static str) {
    if region.starts_with("cn-") {
        ("aws-cn", "amazonaws.com.cn")
    } else if region.starts_with("us-gov-") {
        ("aws-us-gov", "amazonaws.com")
    } else {
        ("aws", "amazonaws.com")
    }
}

impl Topology {
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// The region `zone` is in; the first region for a zone of none.
    pub fn region_of(&self, zone: &str) -> &str {
        let region = self.regions.iter().find(|r| r.zones.iter().any(|z| z == zone)).or(self.regions.first());
        region.map_or("", |r| r.name.as_str())
    }

    /// The first zone of the first region: where hosts without a zone live.
    pub fn default_zone(&self) -> &str {
        self.regions.first().and_then(|r| r.zones.first()).map_or("", String::as_str)
    }

    pub fn instance_type(&self, name: &str) -> Option<&InstanceTypeSpec> {
        self.instance_types.iter().find(|t| t.name == name)
    }

    /// Config sanity: at least one region, each with zones named after it, no duplicates.
    pub fn validate(&self) -> Result<(), String> {
        if self.regions.is_empty() {
            return Err("at least one region is needed".into());
        }
        let mut zones = std::collections::BTreeSet::new();
        for region in &self.regions {
            if region.zones.is_empty() {
                return Err(format!("region {} has no availability zones", region.name));
            }
            for zone in &region.zones {
                if !zone.starts_with(&region.name) || zone.len() != region.name.len() + 1 {
                    return Err(format!("zone {zone} must be the region name plus one letter"));
                }
                if !zones.insert(zone) {
                    return Err(format!("zone {zone} is listed twice"));
                }
            }
        }
        if self.regions.iter().enumerate().any(|(i, r)| self.regions[..i].iter().any(|o| o.name == r.name)) {
            return Err("a region is listed twice".into());
        }
        if self.hosts.is_empty() {
            return Err("at least one host is needed".into());
        }
        let mut uris = std::collections::BTreeSet::new();
        for host in &self.hosts {
            if !uris.insert(&host.uri) {
                return Err(format!("host {} is listed twice", host.uri));
            }
            if let Some(zone) = &host.zone {
                if !zones.contains(zone) {
                    return Err(format!("host {} is in zone {zone}, which no region has", host.uri));
                }
            }
            if !(host.cpu_ratio > 0.0 && host.memory_ratio > 0.0) {
                return Err(format!("host {} needs positive overcommit ratios", host.uri));
            }
            // The same path names the folder for Stratus and for the host: relative, it would
            // be read from two working directories.
            if host.disk_dir.as_ref().is_some_and(|d| !d.is_absolute()) {
                return Err(format!("host {}'s disk_dir must be an absolute path", host.uri));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for t in &self.instance_types {
            if t.vcpus == 0 || t.memory_mib == 0 || !names.insert(&t.name) {
                return Err(format!("instance type {} is empty or listed twice", t.name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_ids_follow_aws() {
        assert_eq!(zone_id("us-east-1", "us-east-1a"), "use1-az1");
        assert_eq!(zone_id("eu-central-1", "eu-central-1c"), "euc1-az3");
        assert_eq!(zone_id("pc-east-1", "pc-east-1b"), "pce1-az2");
        assert_eq!(zone_id("cn-north-1", "cn-north-1a"), "cnn1-az1");
        assert_eq!(zone_id("us-gov-west-1", "us-gov-west-1b"), "usgw1-az2");
    }

    #[test]
    fn defaults_are_valid_and_carry_aws_figures() {
        let t = Topology::default();
        t.validate().unwrap();
        let micro = t.instance_type("t3.micro").unwrap();
        assert_eq!((micro.vcpus, micro.memory_mib, micro.burstable), (2, 1024, true));
        assert_eq!(t.instance_type("c5.xlarge").unwrap().memory_mib, 8192);
    }

    #[test]
    fn bad_zones_are_refused() {
        let mut t = Topology::default();
        t.regions[0].zones.push("eu-west-1a".into());
        assert!(t.validate().is_err());
        let mut t = Topology::default();
        t.regions[0].zones.push("us-east-1a".into());
        assert!(t.validate().is_err());
    }

    #[test]
    fn a_hosts_own_storage_is_an_absolute_path() {
        let mut t = Topology::default();
        t.hosts[0].disk_dir = Some("/srv/stratus/h1".into());
        t.validate().unwrap();
        t.hosts[0].disk_dir = Some("srv/stratus/h1".into());
        assert!(t.validate().unwrap_err().contains("disk_dir must be an absolute path"));
    }
}
