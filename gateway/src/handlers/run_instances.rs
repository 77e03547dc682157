use std::net::Ipv4Addr;

use backend::attributes::{apply_metadata_change, MetadataChange};
use backend::instances::{ExtraInterface, LaunchRequest, RootVolumeRequest};
use backend::volumes::{guest_target, is_root_device, LaunchVolume};
use ec2api::Code;
use ec2api::{
    BlockDeviceMapping, Ec2Error, GroupIdentifier, Reservation, RunInstancesOutput, RunInstancesRequest,
    TagSpecification,
};
use storage::MetadataOptions;

use super::launch_template_shape::{template_ref, version_ref};
use super::shapes::{instance, Joins};
use super::{positive, tags_from_specs};
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, mut req: RunInstancesRequest) -> Result<RunInstancesOutput, Ec2Error> {
    let made_from = match req.launch_template.take() {
        Some(spec) => {
            let (from_template, made_from) = from_template(ctx, spec, req).await?;
            req = from_template;
            Some(made_from)
        }
        None => None,
    };
    let (primary, extra_interfaces) = launch_interfaces(req.network_interfaces.take(), &req)?;
    let image_id = req.image_id.ok_or_else(|| Ec2Error::missing_parameter("ImageId"))?;
    for (index, count) in [("MinCount", req.min_count), ("MaxCount", req.max_count)] {
        if count < 1 {
            return Err(Ec2Error::invalid_value(index, &count.to_string(), "Expected a positive number."));
        }
    }
    let (root_volume, volumes) = block_devices(req.block_device_mappings.unwrap_or_default())?;
    let mut instance_specs = Vec::new();
    let mut interface_specs = Vec::new();
    let mut volume_specs = Vec::new();
    for (index, spec) in req.tag_specifications.unwrap_or_default().into_iter().enumerate() {
        match spec.resource_type.as_deref() {
            Some("instance") => instance_specs.push(spec),
            Some("network-interface") => interface_specs.push(spec),
            Some("volume") => volume_specs.push(spec),
            other => {
                return Err(Ec2Error::invalid_value(
                    &format!("TagSpecification.{}.ResourceType", index + 1),
                    other.unwrap_or_default(),
                    "Expected 'instance', 'volume' or 'network-interface'.",
                ))
            }
        }
    }
    let mut tags = tags_from_specs(Some(instance_specs), "instance")?;
    let interface_tags = tags_from_specs(Some(interface_specs), "network-interface")?;
    let volume_tags = tags_from_specs(Some(volume_specs), "volume")?;
    // Without `NetworkInterface.N`, the instance-level subnet, address and groups say it.
    let primary = primary.unwrap_or_else(|| PrimaryInterface {
        subnet_id: req.subnet_id,
        private_ip: req.private_ip_address,
        groups: req.security_group_ids.unwrap_or_default(),
        ..Default::default()
    });
    let placement = req.placement.unwrap_or_default();
    let (tenancy_host, affinity_host) = tenancy(&placement)?;
    let launch = LaunchRequest {
        image_id,
        instance_type: req.instance_type.unwrap_or_else(|| backend::catalogue::DEFAULT_INSTANCE_TYPE.into()),
        min_count: req.min_count as u32,
        max_count: req.max_count as u32,
        key_name: req.key_name,
        // Empty user data is none, as EC2 shows it (`<userData/>`).
        user_data: req.user_data.filter(|d| !d.is_empty()),
        zone: placement.availability_zone.filter(|z| !z.is_empty()),
        tenancy_host,
        host_id: placement.host_id.filter(|h| !h.is_empty()),
        affinity_host,
        subnet_id: primary.subnet_id.filter(|s| !s.is_empty()),
        associate_public_ip: primary.associate_public_ip,
        security_group_ids: primary.groups,
        security_group_names: req.security_groups.unwrap_or_default(),
        client_token: req.client_token.filter(|t| !t.is_empty()),
        disable_api_termination: req.disable_api_termination.unwrap_or(false),
        disable_api_stop: req.disable_api_stop.unwrap_or(false),
        shutdown_behavior: req.instance_initiated_shutdown_behavior,
        ebs_optimized: req.ebs_optimized.unwrap_or(false),
        monitoring: req.monitoring.is_some_and(|m| m.enabled),
        tags: tags.clone(),
        interface_tags,
        volume_tags,
        root_volume,
        volumes,
        cpu_credits: req.credit_specification.map(|c| c.cpu_credits),
        extra_interfaces,
        secondary_ips: primary.secondary_ips,
        secondary_count: primary.secondary_count,
        primary_interface: primary.existing,
        primary_description: primary.description,
        primary_delete_on_termination: primary.delete_on_termination,
        private_ip: match primary.private_ip.filter(|a| !a.is_empty()) {
            Some(text) => Some(
                text.parse()
                    .map_err(|_| Ec2Error::invalid_value("PrivateIpAddress", &text, "Expected an IPv4 address."))?,
            ),
            None => None,
        },
        launch_template: made_from.clone(),
        kernel_image: req.kernel_id.filter(|k| !k.is_empty()),
        ramdisk_image: req.ramdisk_id.filter(|r| !r.is_empty()),
        metadata: match req.metadata_options {
            Some(m) => apply_metadata_change(
                &MetadataOptions::default(),
                &MetadataChange {
                    http_tokens: m.http_tokens,
                    http_endpoint: m.http_endpoint,
                    hop_limit: m.http_put_response_hop_limit,
                    instance_metadata_tags: m.instance_metadata_tags,
                },
            )
            .map_err(crate::errors::to_ec2)?,
            None => MetadataOptions::default(),
        },
    };
    if let Some((id, version)) = made_from {
        tags.extend(backend::launch_templates::system_tags(&id, version));
    }
    let account = ctx.account().to_owned();
    let vpc = ctx.principal.default_vpc_id.clone();
    let (records, joins) = ctx
        .call(move |b| {
            let records = b.run_instances(&account, &vpc, launch)?;
            let joins = Joins::for_instances(b, &account, &records)?;
            Ok((records, joins))
        })
        .await?;
    let first = records.first().ok_or_else(Ec2Error::internal)?;
    Ok(Reservation {
        reservation_id: Some(first.reservation_id.clone()),
        owner_id: Some(first.account.clone()),
        groups: Some(Vec::<GroupIdentifier>::new()),
        instances: Some(records.iter().map(|r| instance(r, &tags, &ctx.region, &joins)).collect()),
        requester_id: None,
    })
}

/// `Placement.Tenancy` (a `HostId` implies `host`) and `Placement.Affinity`: whether the
/// instances go on the account's dedicated hosts, and stay on the one they land on.
fn tenancy(placement: &ec2api::Placement) -> Result<(bool, bool), Ec2Error> {
    if let Some(id) = placement.host_id.as_deref().filter(|h| !h.is_empty()) {
        super::check_ids(&[id.to_owned()], backend::ResourceKind::Host)?;
    }
    let named_host = placement.host_id.as_deref().is_some_and(|h| !h.is_empty());
    let host = match placement.tenancy.as_deref() {
        None | Some("") => named_host,
        Some("default") if named_host => {
            return Err(Ec2Error::new(
                Code::InvalidParameterCombination,
                "A HostId requires the tenancy host.".to_owned(),
            ))
        }
        Some("default") => false,
        Some("host") => true,
        Some("dedicated") => {
            return Err(Ec2Error::new(
                Code::UnsupportedOperation,
                "Dedicated Instances are not offered: allocate a Dedicated Host (AllocateHosts) and launch with the tenancy host.".to_owned(),
            ))
        }
        Some(other) => {
            return Err(Ec2Error::invalid_value("Placement.Tenancy", other, "Expected: 'default', 'dedicated', 'host'."))
        }
    };
    let affinity = match placement.affinity.as_deref() {
        None | Some("") | Some("default") => false,
        Some("host") if host => true,
        Some("host") => {
            return Err(Ec2Error::new(
                Code::InvalidParameterCombination,
                "Affinity host requires the tenancy host.".to_owned(),
            ))
        }
        Some(other) => {
            return Err(Ec2Error::invalid_value("Placement.Affinity", other, "Expected: 'default', 'host'."))
        }
    };
    Ok((host, affinity))
}

/// Launch parameters a template may hold that RunInstances has no counterpart for here.
const NOT_AT_LAUNCH: &[(&str, &str)] = &[
    ("elastic_gpu_specifications", "ElasticGpuSpecifications"),
    ("elastic_inference_accelerators", "ElasticInferenceAccelerators"),
    ("instance_requirements", "InstanceRequirements"),
];

/// The resources RunInstances makes and tags.
const TAGGED_AT_LAUNCH: [&str; 3] = ["instance", "volume", "network-interface"];

/// RunInstances from a launch template (`LaunchTemplate`): the version's saved parameters with
/// the request's own laid over them, field by field, as EC2 does; tags are merged per resource
/// type instead (a key the request gives wins). Answers the request to launch and the template
/// and version it was made from.
async fn from_template(
    ctx: &Ctx,
    spec: ec2api::LaunchTemplateSpecification,
    mut req: RunInstancesRequest,
) -> Result<(RunInstancesRequest, (String, u64)), Ec2Error> {
    let template = template_ref(spec.launch_template_id, spec.launch_template_name)?;
    let version =
        version_ref("LaunchTemplate.Version", spec.version.as_deref().filter(|v| !v.is_empty()).unwrap_or("$Default"))?;
    let account = ctx.account().to_owned();
    let (record, saved) = ctx.call(move |b| b.launch_template_version(&account, &template, version)).await?;
    let mut data = saved.data.as_object().cloned().unwrap_or_default();
    if let Some((_, name)) = NOT_AT_LAUNCH.iter().find(|(field, _)| data.contains_key(*field)) {
        return Err(Ec2Error::new(
            Code::UnsupportedOperation,
            format!("The launch template's {name} cannot be used by Stratus: make a version without it."),
        ));
    }
    // The one member the two shapes name differently.
    if let Some(ramdisk) = data.remove("ram_disk_id") {
        data.insert("ramdisk_id".into(), ramdisk);
    }
    let unusable = || {
        Ec2Error::invalid_value("LaunchTemplate", &record.id, "The launch template's data cannot be read as a launch.")
    };
    let saved_tags: Vec<TagSpecification> = match data.remove("tag_specifications") {
        Some(specs) => serde_json::from_value(specs).map_err(|_| unusable())?,
        None => Vec::new(),
    };
    let given_tags = req.tag_specifications.take().unwrap_or_default();
    let saved_devices = data.remove("block_device_mappings");
    let mut given = serde_json::to_value(&req).map_err(|_| Ec2Error::internal())?;
    let given_devices = given.as_object_mut().and_then(|g| g.remove("block_device_mappings"));
    if let Some(devices) = merge_devices(saved_devices, given_devices) {
        data.insert("block_device_mappings".into(), devices);
    }
    // Settings made of several fields take the request's fields over the template's one by
    // one (a request's availability zone keeps the template's tenancy).
    for field in ["placement", "metadata_options", "credit_specification", "monitoring"] {
        if let (Some(saved), Some(asked)) = (data.get(field), given.get(field)) {
            let merged = backend::launch_templates::overlay(saved, asked);
            if let Some(fields) = given.as_object_mut() {
                fields.insert(field.into(), merged);
            }
        }
    }
    let merged = backend::launch_templates::overlay(&serde_json::Value::Object(data), &given);
    let mut launch: RunInstancesRequest = serde_json::from_value(merged).map_err(|_| unusable())?;
    let mut specs = Vec::new();
    for resource_type in TAGGED_AT_LAUNCH {
        let mut tags: Vec<ec2api::Tag> = Vec::new();
        let of_type = |s: &&TagSpecification| s.resource_type.as_deref() == Some(resource_type);
        for tag in saved_tags
            .iter()
            .filter(of_type)
            .chain(given_tags.iter().filter(of_type))
            .flat_map(|s| s.tags.iter().flatten())
        {
            tags.retain(|t| t.key != tag.key);
            tags.push(tag.clone());
        }
        if !tags.is_empty() {
            specs.push(TagSpecification { resource_type: Some(resource_type.to_owned()), tags: Some(tags) });
        }
    }
    // Kinds RunInstances does not make here (spot requests, elastic GPUs) are refused as given.
    specs.extend(
        given_tags.into_iter().filter(|s| !TAGGED_AT_LAUNCH.contains(&s.resource_type.as_deref().unwrap_or_default())),
    );
    launch.tag_specifications = (!specs.is_empty()).then_some(specs);
    Ok((launch, (record.id, saved.number)))
}

/// A template's block devices with a request's: a device the request names again takes the
/// request's values over the template's, one by one (`Ebs.VolumeSize` alone changes the size
/// only); a new device is added. As EC2 documents it.
fn merge_devices(saved: Option<serde_json::Value>, given: Option<serde_json::Value>) -> Option<serde_json::Value> {
    use serde_json::Value;
    let (mut devices, given) = match (saved, given) {
        (Some(Value::Array(saved)), Some(Value::Array(given))) => (saved, given),
        (saved, None) => return saved,
        (_, given) => return given,
    };
    // One device by any of its names: the root's aliases, `/dev/sdf` and `/dev/xvdf`.
    let device = |mapping: &Value| -> Option<String> {
        let name = mapping.get("device_name")?.as_str()?;
        Some(if is_root_device(name) {
            "root".to_owned()
        } else {
            guest_target(name).unwrap_or_else(|_| name.to_owned())
        })
    };
    for mapping in given {
        let name = device(&mapping);
        match devices.iter_mut().find(|d| name.is_some() && device(d) == name) {
            Some(existing) => {
                let ebs = match (existing.get("ebs"), mapping.get("ebs")) {
                    (Some(old), Some(new)) => Some(backend::launch_templates::overlay(old, new)),
                    (old, new) => new.or(old).cloned(),
                };
                *existing = backend::launch_templates::overlay(existing, &mapping);
                if let (Some(ebs), Some(fields)) = (ebs, existing.as_object_mut()) {
                    fields.insert("ebs".into(), ebs);
                }
            }
            None => devices.push(mapping),
        }
    }
    Some(Value::Array(devices))
}

/// What `NetworkInterface.N` at device index 0 says of the instance's primary interface.
#[derive(Default)]
struct PrimaryInterface {
    /// `NetworkInterfaceId`: an interface of the account's own (then nothing else is given).
    existing: Option<String>,
    description: Option<String>,
    delete_on_termination: Option<bool>,
    subnet_id: Option<String>,
    private_ip: Option<String>,
    secondary_ips: Vec<Ipv4Addr>,
    secondary_count: u32,
    groups: Vec<String>,
    associate_public_ip: Option<bool>,
}

/// `NetworkInterface.N`: the one at device index 0 is the instance's primary interface, a new
/// one whose subnet, addresses and groups stand for the instance-level ones (which may then not
/// be given as well, as on EC2), or one of the account's own by `NetworkInterfaceId`; those at
/// device index 1 and up are further interfaces, made in their subnet or, by
/// `NetworkInterfaceId`, ones of the account's own. What Stratus cannot do yet is refused by
/// name.
fn launch_interfaces(
    specs: Option<Vec<ec2api::InstanceNetworkInterfaceSpecification>>,
    req: &RunInstancesRequest,
) -> Result<(Option<PrimaryInterface>, Vec<ExtraInterface>), Ec2Error> {
    let Some(specs) = specs.filter(|s| !s.is_empty()) else { return Ok((None, Vec::new())) };
    let unsupported = |what: &str| Ec2Error::new(Code::UnsupportedOperation, format!("{what} is not supported yet."));
    let combination = |message: &str| Ec2Error::new(Code::InvalidParameterCombination, message.to_owned());
    let combined = |what: &str| {
        combination(&format!(
            "Network interfaces and an instance-level {what} may not be specified on the same request"
        ))
    };
    if req.subnet_id.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(combined("subnet ID"));
    }
    if req.security_group_ids.as_ref().is_some_and(|g| !g.is_empty())
        || req.security_groups.as_ref().is_some_and(|g| !g.is_empty())
    {
        return Err(combined("security groups"));
    }
    if req.private_ip_address.as_deref().is_some_and(|a| !a.is_empty()) {
        return Err(combined("private IP address"));
    }
    let several = specs.len() > 1;
    if several && specs.iter().any(|s| s.associate_public_ip_address.is_some()) {
        return Err(combination(
            "The associatePublicIPAddress parameter cannot be specified when launching with multiple network interfaces.",
        ));
    }
    let mut primary = None;
    let mut extras: Vec<ExtraInterface> = Vec::new();
    for (n, spec) in specs.into_iter().enumerate() {
        let path = format!("NetworkInterface.{}", n + 1);
        if spec.ipv6_address_count.unwrap_or(0) > 0
            || spec.ipv6_addresses.as_ref().is_some_and(|a| !a.is_empty())
            || spec.ipv4_prefix_count.unwrap_or(0) > 0
            || spec.ipv6_prefix_count.unwrap_or(0) > 0
        {
            return Err(unsupported("IPv6 addresses and prefixes"));
        }
        let index = match spec.device_index {
            Some(index) => index,
            None if !several => 0,
            None => return Err(Ec2Error::missing_parameter(&format!("{path}.DeviceIndex"))),
        };
        let (private_ip, secondary_ips) =
            interface_addresses(&path, spec.private_ip_address, spec.private_ip_addresses.unwrap_or_default())?;
        let secondary = u32::try_from(spec.secondary_private_ip_address_count.unwrap_or(0)).map_err(|_| {
            Ec2Error::invalid_value(
                &format!("{path}.SecondaryPrivateIpAddressCount"),
                "negative",
                "Expected 0 or more.",
            )
        })?;
        if index == 0 {
            if primary.is_some() {
                return Err(duplicate_index(0));
            }
            let existing = spec.network_interface_id.filter(|id| !id.is_empty());
            if existing.is_some()
                && (spec.subnet_id.is_some()
                    || private_ip.is_some()
                    || !secondary_ips.is_empty()
                    || secondary > 0
                    || spec.groups.is_some()
                    || spec.description.is_some()
                    || spec.associate_public_ip_address.is_some())
            {
                return Err(existing_with_more());
            }
            primary = Some(PrimaryInterface {
                existing,
                description: spec.description,
                delete_on_termination: spec.delete_on_termination,
                subnet_id: spec.subnet_id,
                private_ip,
                secondary_ips,
                secondary_count: secondary,
                groups: spec.groups.unwrap_or_default(),
                associate_public_ip: spec.associate_public_ip_address,
            });
            continue;
        }
        let device_index = u32::try_from(index).map_err(|_| {
            Ec2Error::invalid_value(&format!("{path}.DeviceIndex"), &index.to_string(), "Expected 0 or more.")
        })?;
        if extras.iter().any(|e| e.device_index == device_index) {
            return Err(duplicate_index(device_index));
        }
        let existing = spec.network_interface_id.filter(|id| !id.is_empty());
        if existing.is_some()
            && (spec.subnet_id.is_some()
                || private_ip.is_some()
                || !secondary_ips.is_empty()
                || spec.groups.is_some()
                || secondary > 0
                || spec.description.is_some())
        {
            return Err(existing_with_more());
        }
        if existing.is_none() && spec.subnet_id.as_deref().is_none_or(str::is_empty) {
            return Err(Ec2Error::missing_parameter(&format!("{path}.SubnetId")));
        }
        extras.push(ExtraInterface {
            device_index,
            existing,
            subnet_id: spec.subnet_id,
            private_ip: match private_ip.filter(|a| !a.is_empty()) {
                Some(text) => Some(text.parse().map_err(|_| {
                    Ec2Error::invalid_value(&format!("{path}.PrivateIpAddress"), &text, "Expected an IPv4 address.")
                })?),
                None => None,
            },
            secondary_ips,
            secondary_count: secondary,
            groups: spec.groups.unwrap_or_default(),
            description: spec.description.unwrap_or_default(),
            delete_on_termination: spec.delete_on_termination,
        });
    }
    if primary.is_none() {
        return Err(Ec2Error::invalid_value(
            "NetworkInterface.N.DeviceIndex",
            "none at 0",
            "The instance's primary network interface (device index 0) must be among the network interfaces.",
        ));
    }
    Ok((primary, extras))
}

/// One interface's `PrivateIpAddress` and `PrivateIpAddresses`: its primary address (the one
/// marked `Primary`, else the one given alone, else the first listed; a different one given both
/// ways is refused) and its secondary addresses.
fn interface_addresses(
    path: &str,
    given: Option<String>,
    listed: Vec<ec2api::PrivateIpAddressSpecification>,
) -> Result<(Option<String>, Vec<Ipv4Addr>), Ec2Error> {
    let parse = |text: &str| {
        text.parse::<Ipv4Addr>().map_err(|_| {
            Ec2Error::invalid_value(&format!("{path}.PrivateIpAddresses"), text, "Expected an IPv4 address.")
        })
    };
    let given = given.filter(|a| !a.is_empty());
    let mut marked: Option<String> = None;
    let mut others = Vec::new();
    for entry in listed {
        let Some(address) = entry.private_ip_address.filter(|a| !a.is_empty()) else { continue };
        parse(&address)?;
        if entry.primary == Some(true) {
            if marked.is_some() {
                return Err(Ec2Error::new(
                    Code::InvalidParameterValue,
                    format!("{path}: only one private IP address can be designated as primary."),
                ));
            }
            marked = Some(address);
        } else {
            others.push(address);
        }
    }
    let primary = match (given, marked) {
        (Some(given), Some(marked)) if given != marked => {
            return Err(Ec2Error::new(
                Code::InvalidParameterCombination,
                format!("{path}: the primary private IP address {marked} differs from PrivateIpAddress {given}."),
            ))
        }
        (Some(address), _) | (None, Some(address)) => Some(address),
        (None, None) if !others.is_empty() => Some(others.remove(0)),
        (None, None) => None,
    };
    others.retain(|a| Some(a) != primary.as_ref());
    let mut secondary = Vec::new();
    for address in others {
        let address = parse(&address)?;
        if !secondary.contains(&address) {
            secondary.push(address);
        }
    }
    Ok((primary, secondary))
}

fn existing_with_more() -> Ec2Error {
    Ec2Error::new(
        Code::InvalidParameterCombination,
        "A network interface ID may not be specified with a subnet, addresses, groups, a description or a public address: they are the interface's own.".to_owned(),
    )
}

fn duplicate_index(index: u32) -> Ec2Error {
    Ec2Error::new(
        Code::InvalidParameterValue,
        format!("Each network interface requires a unique device index; {index} is given twice."),
    )
}

/// `BlockDeviceMapping.N`: the root volume's settings (for the root device, by its name or one
/// of the names AWS images give it) and further volumes, empty or from a snapshot. `NoDevice`
/// suppresses one of the image's devices, and Stratus's images have none besides the root, so
/// it leaves nothing to do; instance-store devices (`VirtualName`) are ignored, as EC2 ignores
/// them on types without instance storage.
fn block_devices(mappings: Vec<BlockDeviceMapping>) -> Result<(RootVolumeRequest, Vec<LaunchVolume>), Ec2Error> {
    let mapping_error = |message: String| Ec2Error::new(Code::InvalidBlockDeviceMapping, message);
    let mut root = RootVolumeRequest::default();
    let mut further = Vec::new();
    for (index, mapping) in mappings.into_iter().enumerate() {
        let path = format!("BlockDeviceMapping.{}", index + 1);
        let device = mapping.device_name.ok_or_else(|| Ec2Error::missing_parameter(&format!("{path}.DeviceName")))?;
        let is_root = is_root_device(&device);
        if mapping.no_device.is_some() {
            if is_root {
                return Err(mapping_error(format!("The root device {device} cannot be suppressed with NoDevice")));
            }
            continue;
        }
        let Some(ebs) = mapping.ebs else { continue };
        let size_gib = positive(ebs.volume_size, &format!("{path}.Ebs.VolumeSize"))?.map(u64::from);
        let iops = positive(ebs.iops, &format!("{path}.Ebs.Iops"))?;
        let throughput = positive(ebs.throughput, &format!("{path}.Ebs.Throughput"))?;
        if is_root {
            if ebs.snapshot_id.is_some() {
                return Err(mapping_error("The root volume comes from the image: SnapshotId cannot be set".to_owned()));
            }
            root = RootVolumeRequest {
                size_gib,
                volume_type: ebs.volume_type,
                iops,
                throughput,
                delete_on_termination: ebs.delete_on_termination,
                encrypted: ebs.encrypted,
                kms_key_id: ebs.kms_key_id.filter(|k| !k.is_empty()),
            };
            continue;
        }
        further.push(LaunchVolume {
            device,
            size_gib,
            volume_type: ebs.volume_type,
            iops,
            throughput,
            snapshot_id: ebs.snapshot_id.filter(|s| !s.is_empty()),
            delete_on_termination: ebs.delete_on_termination,
            encrypted: ebs.encrypted,
            kms_key_id: ebs.kms_key_id.filter(|k| !k.is_empty()),
        });
    }
    Ok((root, further))
}
