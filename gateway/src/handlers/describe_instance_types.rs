use std::borrow::Cow;

use backend::topology::InstanceTypeSpec;
use ec2api::Code;
use ec2api::{
    DescribeInstanceTypesOutput, DescribeInstanceTypesRequest, EbsInfo, Ec2Error, InstanceTypeInfo, MemoryInfo,
    NetworkInfo, PlacementGroupInfo, ProcessorInfo, VCpuInfo,
};

use super::describe::Describe;
use super::{one, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &[
    "instance-type",
    "current-generation",
    "burstable-performance-supported",
    "free-tier-eligible",
    "bare-metal",
    "hypervisor",
    "vcpu-info.default-vcpus",
    "vcpu-info.default-cores",
    "memory-info.size-in-mib",
    "processor-info.supported-architecture",
    "supported-usage-class",
    "supported-root-device-type",
    "supported-virtualization-type",
];

fn fields<'a>(spec: &'a InstanceTypeSpec, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "instance-type" => one(&spec.name),
        "current-generation" | "supported-root-device-type" => {
            one(if name == "current-generation" { "true" } else { "ebs" })
        }
        "burstable-performance-supported" => one(spec.burstable.to_string()),
        "free-tier-eligible" => one((spec.name == "t3.micro").to_string()),
        "bare-metal" => one("false"),
        "hypervisor" => one("nitro"),
        "vcpu-info.default-vcpus" => one(spec.vcpus.to_string()),
        "vcpu-info.default-cores" => one(cores(spec).to_string()),
        "memory-info.size-in-mib" => one(spec.memory_mib.to_string()),
        "processor-info.supported-architecture" => one("x86_64"),
        "supported-usage-class" => one("on-demand"),
        "supported-virtualization-type" => one("hvm"),
        _ => vec![],
    }
}

/// Two threads per core, as on the x86 types this table models.
fn cores(spec: &InstanceTypeSpec) -> u32 {
    spec.vcpus.div_ceil(2)
}

fn info(spec: &InstanceTypeSpec) -> InstanceTypeInfo {
    let vcpus = i32::try_from(spec.vcpus).unwrap_or(i32::MAX);
    let cores = i32::try_from(cores(spec)).unwrap_or(i32::MAX);
    InstanceTypeInfo {
        instance_type: Some(spec.name.clone()),
        current_generation: Some(true),
        free_tier_eligible: Some(spec.name == "t3.micro"),
        supported_usage_classes: Some(vec!["on-demand".into()]),
        supported_root_device_types: Some(vec!["ebs".into()]),
        supported_virtualization_types: Some(vec!["hvm".into()]),
        supported_boot_modes: Some(vec!["legacy-bios".into()]),
        bare_metal: Some(false),
        hypervisor: Some("nitro".into()),
        processor_info: Some(ProcessorInfo {
            supported_architectures: Some(vec!["x86_64".into()]),
            ..Default::default()
        }),
        v_cpu_info: Some(VCpuInfo {
            default_v_cpus: Some(vcpus),
            default_cores: Some(cores),
            default_threads_per_core: Some(if vcpus > cores { 2 } else { 1 }),
            ..Default::default()
        }),
        memory_info: Some(MemoryInfo { size_in_mi_b: Some(i64::try_from(spec.memory_mib).unwrap_or(i64::MAX)) }),
        instance_storage_supported: Some(false),
        ebs_info: Some(EbsInfo {
            ebs_optimized_support: Some("default".into()),
            encryption_support: Some("supported".into()),
            nvme_support: Some("required".into()),
            ..Default::default()
        }),
        network_info: Some(NetworkInfo {
            network_performance: Some("Up to 5 Gigabit".into()),
            maximum_network_interfaces: Some(2),
            ipv4_addresses_per_interface: Some(2),
            ipv6_addresses_per_interface: Some(2),
            ipv6_supported: Some(false),
            ena_support: Some("required".into()),
            ..Default::default()
        }),
        placement_group_info: Some(PlacementGroupInfo {
            supported_strategies: Some(vec!["cluster".into(), "spread".into()]),
        }),
        hibernation_supported: Some(false),
        burstable_performance_supported: Some(spec.burstable),
        dedicated_hosts_supported: Some(false),
        auto_recovery_supported: Some(true),
        supported_in_region: Some(true),
        ..Default::default()
    }
}

pub async fn handle(ctx: &Ctx, req: DescribeInstanceTypesRequest) -> Result<DescribeInstanceTypesOutput, Ec2Error> {
    let wanted = req.instance_types.unwrap_or_default();
    let mut describe = Describe::of(ctx, "DescribeInstanceTypes").filters(req.filters.as_deref(), FILTERS)?;
    describe.narrowed_by("types", &wanted);
    let Describe { filters, page, .. } = describe.paged(req.max_results, req.next_token.as_deref(), 5, 100)?;
    let topology = ctx.backend.topology();
    let unknown: Vec<&String> = wanted.iter().filter(|w| topology.instance_type(w).is_none()).collect();
    if !unknown.is_empty() {
        let list = unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        return Err(Ec2Error::new(
            Code::InvalidInstanceType,
            format!("The following supplied instance types do not exist: [{list}]"),
        ));
    }
    let mut specs: Vec<&InstanceTypeSpec> = topology
        .instance_types
        .iter()
        .filter(|t| wanted.is_empty() || wanted.contains(&t.name))
        .filter(|t| filters.matches(&Row { item: *t, tags: NO_TAGS, fields }))
        .collect();
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    let (specs, next_token) = page.page(specs, |t| t.name.as_str());
    Ok(DescribeInstanceTypesOutput { instance_types: Some(specs.into_iter().map(info).collect()), next_token })
}
