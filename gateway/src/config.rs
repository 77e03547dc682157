//! The optional TOML config: regions and zones, instance types, request limits.
//!
//! ```toml
//! [[regions]]
//! name = "us-east-1"
//! zones = ["us-east-1a", "us-east-1b"]
//!
//! [[instance_types]]          # replaces the defaults when given
//! name = "t3.micro"
//! vcpus = 2
//! memory_mib = 1024
//! burstable = true
//!
//! [limits]
//! max_body_bytes = 1048576
//! request_timeout_secs = 30
//! requests_per_second = 1000
//! burst = 2000
//! ```

use std::path::Path;

use anyhow::{Context, Result};
use backend::topology::{default_instance_types, InstanceTypeSpec, Region};
use backend::Topology;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub regions: Option<Vec<Region>>,
    pub instance_types: Option<Vec<InstanceTypeSpec>>,
    #[serde(default)]
    pub limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout_secs: u64,
    pub requests_per_second: u32,
    pub burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_body_bytes: 1 << 20, request_timeout_secs: 30, requests_per_second: 1000, burst: 2000 }
    }
}

impl Config {
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else { return Ok(Self::default()) };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        let config: Config = toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
        config.topology().validate().map_err(anyhow::Error::msg).context("invalid config")?;
        anyhow::ensure!(config.limits.requests_per_second > 0, "limits.requests_per_second must be positive");
        Ok(config)
    }

    pub fn topology(&self) -> Topology {
        let defaults = Topology::default();
        Topology {
            regions: self.regions.clone().unwrap_or(defaults.regions),
            instance_types: self.instance_types.clone().unwrap_or_else(default_instance_types),
        }
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
    }
}
