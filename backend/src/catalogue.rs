//! AWS's instance-type catalogue (issue 17): the facts DescribeInstanceTypes answers for every
//! type EC2 publishes, so that `t2.micro`, `m1.small` or `p3dn.24xlarge` mean here what they mean
//! there.
//!
//! The table is data, not code: `backend/data/instance_types.tsv`, generated from AWS's own
//! DescribeInstanceTypes answers as moto ships them (`scripts/regen-instance-types`), one line
//! per type, and parsed once on first use. The topology offers every type in it unless the
//! config narrows or extends the list ([`crate::topology`]).

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::topology::InstanceTypeSpec;

const TABLE: &str = include_str!("../data/instance_types.tsv");

/// The type RunInstances launches when the request names none, as EC2 does.
pub const DEFAULT_INSTANCE_TYPE: &str = "m1.small";

/// One instance type as AWS describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Facts {
    pub name: String,
    pub vcpus: u32,
    pub cores: u32,
    pub threads_per_core: u32,
    pub memory_mib: u64,
    pub architectures: Vec<String>,
    pub clock_ghz: Option<f64>,
    pub manufacturer: String,
    pub burstable: bool,
    pub current_generation: bool,
    pub bare_metal: bool,
    pub free_tier: bool,
    /// `nitro` or `xen`; none for bare metal.
    pub hypervisor: Option<String>,
    pub network_performance: String,
    pub max_interfaces: Option<u32>,
    pub ipv4_per_interface: Option<u32>,
    pub ipv6_per_interface: Option<u32>,
    pub ipv6_supported: bool,
    pub ena_support: String,
    pub ebs_optimized_support: String,
    pub ebs_encryption_support: String,
    pub ebs_nvme_support: String,
    /// Instance storage, in GB, when the type has any.
    pub storage_gb: Option<u64>,
    /// Its disks: count, size in GB, `ssd` or `hdd`.
    pub storage_disks: Vec<(u32, u64, String)>,
    /// Its GPUs: count, manufacturer, name, memory of each in MiB.
    pub gpus: Vec<(u32, String, String, u64)>,
    pub usage_classes: Vec<String>,
    pub virtualization_types: Vec<String>,
    pub root_device_types: Vec<String>,
    pub boot_modes: Vec<String>,
    pub placement_strategies: Vec<String>,
    pub dedicated_hosts: bool,
    pub hibernation: bool,
    pub auto_recovery: bool,
}

impl Facts {
    /// What the scheduler needs of it.
    pub fn spec(&self) -> InstanceTypeSpec {
        InstanceTypeSpec {
            name: self.name.clone(),
            vcpus: self.vcpus,
            memory_mib: self.memory_mib,
            burstable: self.burstable,
        }
    }
}

/// Whether the hosts can run guests of `name`: they boot x86-64 guests, and a type of the
/// operator's own (not in the catalogue) is one of those.
pub fn runs_on_x86(name: &str) -> bool {
    facts(name).is_none_or(|f| f.architectures.iter().any(|a| a == "x86_64"))
}

/// Every type of the catalogue, by name order.
pub fn all() -> &'static [Facts] {
    &table().0
}

/// The catalogue's facts of `name`.
pub fn facts(name: &str) -> Option<&'static Facts> {
    let (all, index) = table();
    index.get(name).map(|&i| &all[i])
}

fn table() -> &'static (Vec<Facts>, HashMap<String, usize>) {
    static TABLE_PARSED: OnceLock<(Vec<Facts>, HashMap<String, usize>)> = OnceLock::new();
    TABLE_PARSED.get_or_init(|| {
        let all = parse(TABLE).unwrap_or_else(|e| panic!("backend/data/instance_types.tsv: {e}"));
        let index = all.iter().enumerate().map(|(i, f)| (f.name.clone(), i)).collect();
        (all, index)
    })
}

/// The table's lines as facts; the header names the columns, so their order may change.
pub fn parse(text: &str) -> Result<Vec<Facts>, String> {
    let mut lines = text.lines().filter(|l| !l.starts_with('#') && !l.is_empty());
    let header: Vec<&str> = lines.next().ok_or("no header")?.split('\t').collect();
    let mut out = Vec::new();
    for (number, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split('\t').collect();
        if cells.len() != header.len() {
            return Err(format!("line {} has {} fields, the header {}", number + 3, cells.len(), header.len()));
        }
        let row: HashMap<&str, &str> = header.iter().copied().zip(cells).collect();
        let cell = |name: &str| row.get(name).copied().unwrap_or("");
        let number_of = |name: &str| -> Result<u64, String> {
            cell(name).parse().map_err(|_| format!("{}: {name} is not a number: {:?}", cell("name"), cell(name)))
        };
        let optional = |name: &str| cell(name).parse::<u32>().ok();
        let flag = |name: &str| cell(name) == "1";
        let list = |name: &str| -> Vec<String> {
            cell(name).split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
        };
        let text_of = |name: &str| cell(name).to_owned();
        let storage_disks = cell("storage_disks")
            .split(';')
            .filter_map(|disk| {
                let (count, rest) = disk.split_once('x')?;
                let (size, kind) = rest.split_once(':')?;
                Some((count.parse().ok()?, size.parse().ok()?, kind.to_owned()))
            })
            .collect();
        let gpus = cell("gpus")
            .split(';')
            .filter_map(|gpu| {
                let (count, rest) = gpu.split_once('x')?;
                let mut parts = rest.splitn(3, ':');
                let (maker, name, memory) = (parts.next()?, parts.next()?, parts.next()?);
                Some((count.parse().ok()?, maker.to_owned(), name.to_owned(), memory.parse().ok()?))
            })
            .collect();
        out.push(Facts {
            name: text_of("name"),
            vcpus: number_of("vcpus")? as u32,
            cores: number_of("cores")? as u32,
            threads_per_core: number_of("threads_per_core")? as u32,
            memory_mib: number_of("memory_mib")?,
            architectures: list("architectures"),
            clock_ghz: cell("clock_ghz").parse().ok(),
            manufacturer: text_of("manufacturer"),
            burstable: flag("burstable"),
            current_generation: flag("current_generation"),
            bare_metal: flag("bare_metal"),
            free_tier: flag("free_tier"),
            hypervisor: Some(text_of("hypervisor")).filter(|h| !h.is_empty()),
            network_performance: text_of("network_performance"),
            max_interfaces: optional("max_interfaces"),
            ipv4_per_interface: optional("ipv4_per_interface"),
            ipv6_per_interface: optional("ipv6_per_interface"),
            ipv6_supported: flag("ipv6_supported"),
            ena_support: text_of("ena_support"),
            ebs_optimized_support: text_of("ebs_optimized_support"),
            ebs_encryption_support: text_of("ebs_encryption_support"),
            ebs_nvme_support: text_of("ebs_nvme_support"),
            storage_gb: cell("storage_gb").parse().ok(),
            storage_disks,
            gpus,
            usage_classes: list("usage_classes"),
            virtualization_types: list("virtualization_types"),
            root_device_types: list("root_device_types"),
            boot_modes: list("boot_modes"),
            placement_strategies: list("placement_strategies"),
            dedicated_hosts: flag("dedicated_hosts"),
            hibernation: flag("hibernation"),
            auto_recovery: flag("auto_recovery"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_holds_what_ec2_users_name() {
        assert!(all().len() > 1000, "{}", all().len());
        assert!(all().windows(2).all(|w| w[0].name < w[1].name), "by name");
        let micro = facts("t2.micro").unwrap();
        assert_eq!((micro.vcpus, micro.memory_mib, micro.burstable), (1, 1024, true));
        assert_eq!(micro.hypervisor.as_deref(), Some("xen"));
        assert_eq!(micro.architectures, ["i386", "x86_64"]);
        let small = facts(DEFAULT_INSTANCE_TYPE).unwrap();
        assert_eq!((small.vcpus, small.memory_mib, small.current_generation), (1, 1740, false));
        assert_eq!(small.storage_disks, [(1, 160, "hdd".to_owned())]);
        let p3dn = facts("p3dn.24xlarge").unwrap();
        assert_eq!((p3dn.vcpus, p3dn.cores, p3dn.threads_per_core), (96, 48, 2));
        assert_eq!(p3dn.gpus, [(8, "NVIDIA".to_owned(), "V100".to_owned(), 32768)]);
        assert!(facts("a1.large").unwrap().architectures == ["arm64"]);
        let metal = facts("c5.metal").unwrap();
        assert!(metal.bare_metal && metal.hypervisor.is_none());
        for name in ["t1.micro", "t3a.nano", "m5d.xlarge", "t3.nano", "c5.large"] {
            assert!(facts(name).is_some(), "{name}");
        }
        assert_eq!(facts("z9.enormous"), None);
    }

    #[test]
    fn a_broken_table_says_where() {
        let text = "# c\nname\tvcpus\tcores\tthreads_per_core\tmemory_mib\nx.large\t2\t1\t2\n";
        assert!(parse(text).unwrap_err().contains("line 3"));
        let text = "name\tvcpus\tcores\tthreads_per_core\tmemory_mib\nx.large\tmany\t1\t2\t5\n";
        assert!(parse(text).unwrap_err().contains("vcpus is not a number"));
    }
}
