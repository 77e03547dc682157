use std::borrow::Cow;

use backend::catalogue::{self, Facts};
use backend::topology::InstanceTypeSpec;
use ec2api::Code;
use ec2api::{
    DescribeInstanceTypesOutput, DescribeInstanceTypesRequest, DiskInfo, EbsInfo, Ec2Error, GpuDeviceInfo,
    GpuDeviceMemoryInfo, GpuInfo, InstanceStorageInfo, InstanceTypeInfo, MemoryInfo, NetworkInfo, PlacementGroupInfo,
    ProcessorInfo, VCpuInfo,
};

use super::describe::Describe;
use super::{one, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &[
    "instance-type",
    "auto-recovery-supported",
    "bare-metal",
    "burstable-performance-supported",
    "current-generation",
    "dedicated-hosts-supported",
    "ebs-info.ebs-optimized-support",
    "ebs-info.encryption-support",
    "ebs-info.nvme-support",
    "free-tier-eligible",
    "hibernation-supported",
    "hypervisor",
    "instance-storage-info.disk.count",
    "instance-storage-info.disk.size-in-gb",
    "instance-storage-info.disk.type",
    "instance-storage-info.total-size-in-gb",
    "instance-storage-supported",
    "memory-info.size-in-mib",
    "network-info.ena-support",
    "network-info.ipv4-addresses-per-interface",
    "network-info.ipv6-addresses-per-interface",
    "network-info.ipv6-supported",
    "network-info.maximum-network-interfaces",
    "network-info.network-performance",
    "placement-group-info.supported-strategies",
    "processor-info.manufacturer",
    "processor-info.supported-architecture",
    "processor-info.sustained-clock-speed-in-ghz",
    "supported-boot-mode",
    "supported-root-device-type",
    "supported-usage-class",
    "supported-virtualization-type",
    "vcpu-info.default-cores",
    "vcpu-info.default-threads-per-core",
    "vcpu-info.default-vcpus",
];

fn many(values: &[String]) -> Vec<Cow<'_, str>> {
    values.iter().map(|v| Cow::Borrowed(v.as_str())).collect()
}

fn optional(value: Option<impl ToString>) -> Vec<Cow<'static, str>> {
    value.map(|v| Cow::Owned(v.to_string())).into_iter().collect()
}

fn fields<'a>(facts: &'a Facts, name: &str) -> Vec<Cow<'a, str>> {
    let flag = |b: bool| one(b.to_string());
    match name {
        "instance-type" => one(&facts.name),
        "auto-recovery-supported" => flag(facts.auto_recovery),
        "bare-metal" => flag(facts.bare_metal),
        "burstable-performance-supported" => flag(facts.burstable),
        "current-generation" => flag(facts.current_generation),
        "dedicated-hosts-supported" => flag(facts.dedicated_hosts),
        "ebs-info.ebs-optimized-support" => one(&facts.ebs_optimized_support),
        "ebs-info.encryption-support" => one(&facts.ebs_encryption_support),
        "ebs-info.nvme-support" => one(&facts.ebs_nvme_support),
        "free-tier-eligible" => flag(facts.free_tier),
        "hibernation-supported" => flag(facts.hibernation),
        "hypervisor" => optional(facts.hypervisor.as_ref()),
        "instance-storage-info.disk.count" => facts.storage_disks.iter().map(|d| Cow::Owned(d.0.to_string())).collect(),
        "instance-storage-info.disk.size-in-gb" => {
            facts.storage_disks.iter().map(|d| Cow::Owned(d.1.to_string())).collect()
        }
        "instance-storage-info.disk.type" => facts.storage_disks.iter().map(|d| Cow::Borrowed(d.2.as_str())).collect(),
        "instance-storage-info.total-size-in-gb" => optional(facts.storage_gb),
        "instance-storage-supported" => flag(facts.storage_gb.is_some()),
        "memory-info.size-in-mib" => one(facts.memory_mib.to_string()),
        "network-info.ena-support" => one(&facts.ena_support),
        "network-info.ipv4-addresses-per-interface" => optional(facts.ipv4_per_interface),
        "network-info.ipv6-addresses-per-interface" => optional(facts.ipv6_per_interface),
        "network-info.ipv6-supported" => flag(facts.ipv6_supported),
        "network-info.maximum-network-interfaces" => optional(facts.max_interfaces),
        "network-info.network-performance" => one(&facts.network_performance),
        "placement-group-info.supported-strategies" => many(&facts.placement_strategies),
        "processor-info.manufacturer" => one(&facts.manufacturer),
        "processor-info.supported-architecture" => many(&facts.architectures),
        "processor-info.sustained-clock-speed-in-ghz" => optional(facts.clock_ghz),
        "supported-boot-mode" => many(&facts.boot_modes),
        "supported-root-device-type" => many(&facts.root_device_types),
        "supported-usage-class" => many(&facts.usage_classes),
        "supported-virtualization-type" => many(&facts.virtualization_types),
        "vcpu-info.default-cores" => one(facts.cores.to_string()),
        "vcpu-info.default-threads-per-core" => one(facts.threads_per_core.to_string()),
        "vcpu-info.default-vcpus" => one(facts.vcpus.to_string()),
        _ => vec![],
    }
}

/// A type as this cloud offers it: AWS's facts of that name with the config's size, or, for a
/// type of the operator's own, the facts of a current x86 type on Nitro of that size.
fn facts_of(spec: &InstanceTypeSpec) -> Cow<'static, Facts> {
    // The catalogue's own types as it has them, borrowed: a page reads every offered type.
    if let Some(facts) = catalogue::facts(&spec.name)
        .filter(|f| (f.vcpus, f.memory_mib, f.burstable) == (spec.vcpus, spec.memory_mib, spec.burstable))
    {
        return Cow::Borrowed(facts);
    }
    let base = catalogue::facts(&spec.name).cloned().unwrap_or_else(|| Facts {
        threads_per_core: if spec.vcpus > 1 { 2 } else { 1 },
        architectures: vec!["x86_64".into()],
        current_generation: true,
        hypervisor: Some("nitro".into()),
        network_performance: "Up to 5 Gigabit".into(),
        max_interfaces: Some(2),
        ipv4_per_interface: Some(2),
        ipv6_per_interface: Some(2),
        ena_support: "required".into(),
        ebs_optimized_support: "default".into(),
        ebs_encryption_support: "supported".into(),
        ebs_nvme_support: "required".into(),
        usage_classes: vec!["on-demand".into()],
        virtualization_types: vec!["hvm".into()],
        root_device_types: vec!["ebs".into()],
        boot_modes: vec!["legacy-bios".into()],
        placement_strategies: vec!["cluster".into(), "partition".into(), "spread".into()],
        auto_recovery: true,
        ..Default::default()
    });
    let resized = base.vcpus != spec.vcpus;
    Cow::Owned(Facts {
        name: spec.name.clone(),
        vcpus: spec.vcpus,
        cores: if resized { spec.vcpus.div_ceil(base.threads_per_core.max(1)) } else { base.cores },
        memory_mib: spec.memory_mib,
        burstable: spec.burstable,
        ..base
    })
}

fn int(n: impl TryInto<i32>) -> Option<i32> {
    Some(n.try_into().unwrap_or(i32::MAX))
}

fn strings(values: &[String]) -> Option<Vec<String>> {
    Some(values.to_vec())
}

fn info(f: &Facts) -> InstanceTypeInfo {
    let gpu_info = (!f.gpus.is_empty()).then(|| GpuInfo {
        gpus: Some(
            f.gpus
                .iter()
                .map(|(count, manufacturer, name, memory)| GpuDeviceInfo {
                    count: int(*count),
                    manufacturer: Some(manufacturer.clone()),
                    name: Some(name.clone()),
                    memory_info: Some(GpuDeviceMemoryInfo { size_in_mi_b: int(*memory) }),
                    ..Default::default()
                })
                .collect(),
        ),
        total_gpu_memory_in_mi_b: int(f.gpus.iter().map(|g| u64::from(g.0) * g.3).sum::<u64>()),
    });
    let instance_storage_info = f.storage_gb.map(|total| InstanceStorageInfo {
        disks: Some(
            f.storage_disks
                .iter()
                .map(|(count, size, kind)| DiskInfo {
                    count: int(*count),
                    size_in_gb: Some(i64::try_from(*size).unwrap_or(i64::MAX)),
                    r#type: Some(kind.clone()),
                })
                .collect(),
        ),
        total_size_in_gb: Some(i64::try_from(total).unwrap_or(i64::MAX)),
        ..Default::default()
    });
    InstanceTypeInfo {
        instance_type: Some(f.name.clone()),
        current_generation: Some(f.current_generation),
        free_tier_eligible: Some(f.free_tier),
        supported_usage_classes: strings(&f.usage_classes),
        supported_root_device_types: strings(&f.root_device_types),
        supported_virtualization_types: strings(&f.virtualization_types),
        supported_boot_modes: strings(&f.boot_modes),
        bare_metal: Some(f.bare_metal),
        hypervisor: f.hypervisor.clone(),
        processor_info: Some(ProcessorInfo {
            supported_architectures: strings(&f.architectures),
            manufacturer: Some(f.manufacturer.clone()).filter(|m| !m.is_empty()),
            sustained_clock_speed_in_ghz: f.clock_ghz,
            ..Default::default()
        }),
        v_cpu_info: Some(VCpuInfo {
            default_v_cpus: int(f.vcpus),
            default_cores: int(f.cores),
            default_threads_per_core: int(f.threads_per_core),
            ..Default::default()
        }),
        memory_info: Some(MemoryInfo { size_in_mi_b: Some(i64::try_from(f.memory_mib).unwrap_or(i64::MAX)) }),
        instance_storage_supported: Some(f.storage_gb.is_some()),
        instance_storage_info,
        ebs_info: Some(EbsInfo {
            ebs_optimized_support: Some(f.ebs_optimized_support.clone()),
            encryption_support: Some(f.ebs_encryption_support.clone()),
            nvme_support: Some(f.ebs_nvme_support.clone()),
            ..Default::default()
        }),
        network_info: Some(NetworkInfo {
            network_performance: Some(f.network_performance.clone()),
            maximum_network_interfaces: f.max_interfaces.and_then(int),
            ipv4_addresses_per_interface: f.ipv4_per_interface.and_then(int),
            ipv6_addresses_per_interface: f.ipv6_per_interface.and_then(int),
            ipv6_supported: Some(f.ipv6_supported),
            ena_support: Some(f.ena_support.clone()),
            ..Default::default()
        }),
        gpu_info,
        placement_group_info: Some(PlacementGroupInfo { supported_strategies: strings(&f.placement_strategies) }),
        hibernation_supported: Some(f.hibernation),
        burstable_performance_supported: Some(f.burstable),
        dedicated_hosts_supported: Some(f.dedicated_hosts),
        auto_recovery_supported: Some(f.auto_recovery),
        supported_in_region: Some(true),
        ..Default::default()
    }
}

pub async fn handle(ctx: &Ctx, req: DescribeInstanceTypesRequest) -> Result<DescribeInstanceTypesOutput, Ec2Error> {
    let wanted = req.instance_types.unwrap_or_default();
    let mut describe = Describe::of(ctx, "DescribeInstanceTypes").filters(req.filters.as_deref(), FILTERS)?;
    describe.narrowed_by("types", &wanted);
    // A page of 100 when the request says nothing, as EC2 answers (the catalogue is long).
    let max_results = req.max_results.or(Some(100));
    let Describe { filters, page, .. } = describe.paged(max_results, req.next_token.as_deref(), 5, 100)?;
    let topology = ctx.backend.topology();
    let unknown: Vec<&String> = wanted.iter().filter(|w| topology.instance_type(w).is_none()).collect();
    if !unknown.is_empty() {
        let list = unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        return Err(Ec2Error::new(
            Code::InvalidInstanceType,
            format!("The following supplied instance types do not exist: [{list}]"),
        ));
    }
    let mut offered: Vec<Cow<'static, Facts>> = topology
        .instance_types
        .iter()
        .filter(|t| wanted.is_empty() || wanted.contains(&t.name))
        .map(facts_of)
        .filter(|f| filters.matches(&Row { item: &**f, tags: NO_TAGS, fields }))
        .collect();
    offered.sort_by(|a, b| a.name.cmp(&b.name));
    let (offered, next_token) = page.page(offered, |f| f.name.as_str());
    Ok(DescribeInstanceTypesOutput { instance_types: Some(offered.iter().map(|f| info(f)).collect()), next_token })
}
