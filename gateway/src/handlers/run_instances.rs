use std::net::Ipv4Addr;

use backend::attributes::{apply_metadata_change, MetadataChange};
use backend::instances::{ExtraInterface, LaunchRequest, RootVolumeRequest};
use backend::volumes::ROOT_DEVICE;
use ec2api::Code;
use ec2api::{BlockDeviceMapping, Ec2Error, GroupIdentifier, Reservation, RunInstancesOutput, RunInstancesRequest};
use storage::MetadataOptions;

use super::shapes::{instance, Joins};
use super::{positive, tags_from_specs};
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, mut req: RunInstancesRequest) -> Result<RunInstancesOutput, Ec2Error> {
    let (primary, extra_interfaces) = launch_interfaces(req.network_interfaces.take(), &req)?;
    let image_id = req.image_id.ok_or_else(|| Ec2Error::missing_parameter("ImageId"))?;
    for (index, count) in [("MinCount", req.min_count), ("MaxCount", req.max_count)] {
        if count < 1 {
            return Err(Ec2Error::invalid_value(index, &count.to_string(), "Expected a positive number."));
        }
    }
    let root_volume = root_volume(req.block_device_mappings.unwrap_or_default())?;
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
    let tags = tags_from_specs(Some(instance_specs), "instance")?;
    let interface_tags = tags_from_specs(Some(interface_specs), "network-interface")?;
    let volume_tags = tags_from_specs(Some(volume_specs), "volume")?;
    // Without `NetworkInterface.N`, the instance-level subnet, address and groups say it.
    let primary = primary.unwrap_or_else(|| PrimaryInterface {
        subnet_id: req.subnet_id,
        private_ip: req.private_ip_address,
        groups: req.security_group_ids.unwrap_or_default(),
        ..Default::default()
    });
    let launch = LaunchRequest {
        image_id,
        instance_type: req.instance_type.unwrap_or_else(|| backend::catalogue::DEFAULT_INSTANCE_TYPE.into()),
        min_count: req.min_count as u32,
        max_count: req.max_count as u32,
        key_name: req.key_name,
        user_data: req.user_data,
        zone: req.placement.and_then(|p| p.availability_zone).filter(|z| !z.is_empty()),
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

/// What EC2 users name the root device (AWS images' `/dev/sda1` or `/dev/xvda`), which is
/// `/dev/vda` here.
const ROOT_ALIASES: [&str; 3] = [ROOT_DEVICE, "/dev/sda1", "/dev/xvda"];

/// The root volume's settings from `BlockDeviceMapping.N` for the root device (by its name or
/// one of the names AWS images give it). Other devices are refused: further volumes are attached
/// with AttachVolume.
fn root_volume(mappings: Vec<BlockDeviceMapping>) -> Result<RootVolumeRequest, Ec2Error> {
    let mut root = RootVolumeRequest::default();
    for (index, mapping) in mappings.into_iter().enumerate() {
        let path = format!("BlockDeviceMapping.{}", index + 1);
        let device = mapping.device_name.ok_or_else(|| Ec2Error::missing_parameter(&format!("{path}.DeviceName")))?;
        if !ROOT_ALIASES.contains(&device.as_str()) {
            return Err(Ec2Error::new(
                Code::InvalidBlockDeviceMapping,
                format!("Only the root device {ROOT_DEVICE} can be mapped at launch; attach other volumes with AttachVolume ({device})."),
            ));
        }
        let Some(ebs) = mapping.ebs else { continue };
        if ebs.snapshot_id.is_some() || ebs.encrypted == Some(true) {
            return Err(Ec2Error::new(
                Code::InvalidBlockDeviceMapping,
                "The root volume comes from the image: SnapshotId and Encrypted cannot be set",
            ));
        }
        root = RootVolumeRequest {
            size_gib: positive(ebs.volume_size, &format!("{path}.Ebs.VolumeSize"))?.map(u64::from),
            volume_type: ebs.volume_type,
            iops: positive(ebs.iops, &format!("{path}.Ebs.Iops"))?,
            throughput: positive(ebs.throughput, &format!("{path}.Ebs.Throughput"))?,
            delete_on_termination: ebs.delete_on_termination,
        };
    }
    Ok(root)
}
