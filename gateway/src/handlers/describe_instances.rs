use std::borrow::Cow;

use ec2api::Code;
use ec2api::{DescribeInstancesOutput, DescribeInstancesRequest, Ec2Error, GroupIdentifier, Reservation};
use storage::{InstanceRecord, VolumeRecord};

use super::describe::Describe;
use super::shapes::{instance, public_dns_name, Joined, Joins, WithDns};
use super::{one, Row};
use crate::context::Ctx;

const FILTERS: &[&str] = &[
    "instance-id",
    "instance-state-name",
    "instance-state-code",
    "instance-type",
    "image-id",
    "kernel-id",
    "ramdisk-id",
    "availability-zone",
    "key-name",
    "private-ip-address",
    "private-dns-name",
    "subnet-id",
    "vpc-id",
    "reservation-id",
    "owner-id",
    "network-interface.network-interface-id",
    "instance.group-id",
    "launch-index",
    "architecture",
    "hypervisor",
    "virtualization-type",
    "root-device-type",
    "root-device-name",
    "tenancy",
    "host-id",
    "affinity",
    "placement-group-name",
    "instance-lifecycle",
    "source-dest-check",
    "metadata-options.http-tokens",
    "metadata-options.http-endpoint",
    "metadata-options.http-put-response-hop-limit",
    "metadata-options.instance-metadata-tags",
    "network-interface.addresses.private-ip-address",
    "network-interface.addresses.primary",
    "network-interface.private-ip-address",
    "network-interface.mac-address",
    "network-interface.subnet-id",
    "network-interface.vpc-id",
    "network-interface.owner-id",
    "network-interface.group-id",
    "network-interface.source-dest-check",
    "network-interface.status",
    "network-interface.attachment.device-index",
    "network-interface.attachment.status",
    "network-interface.requester-managed",
    "network-interface.association.public-ip",
    "network-interface.attachment.attachment-id",
    "block-device-mapping.attach-time",
    "block-device-mapping.delete-on-termination",
    "block-device-mapping.device-name",
    "block-device-mapping.status",
    "block-device-mapping.volume-id",
    "ip-address",
    "dns-name",
];

/// Filters answered from what is kept beside the instance (its volumes, its public address,
/// the interfaces attached to it): read per instance only when one of them is asked for.
const JOINED: &[&str] = &["block-device-mapping.", "ip-address", "dns-name", "network-interface."];

/// `network-interface.addresses.primary` of an interface: `true` for its primary address, and
/// `false` too when it has secondary ones.
fn primary_flags(secondary: &[String]) -> Vec<Cow<'static, str>> {
    let mut flags = vec![Cow::Borrowed("true")];
    if !secondary.is_empty() {
        flags.push(Cow::Borrowed("false"));
    }
    flags
}

/// `field` of each interface attached to the instance beyond its primary one.
fn attached<'a>(
    item: &'a WithDns<'_>,
    field: impl Fn(&'a storage::NetworkInterfaceRecord) -> Vec<Cow<'a, str>>,
) -> Vec<Cow<'a, str>> {
    item.joined.iter().flat_map(|j| &j.interfaces).flat_map(field).collect()
}

/// The values of `name` for the instance: its own fields, then what is joined to it.
fn fields<'a>(item: &'a WithDns<'_>, name: &str) -> Vec<Cow<'a, str>> {
    let mut values = own_fields(item, name);
    let live = item.record.state != storage::InstanceState::Terminated;
    let Some(joined) = item.joined.as_ref().filter(|_| live) else { return values };
    let volume = |f: fn(&'a VolumeRecord, &'a storage::VolumeAttachmentRecord) -> Cow<'a, str>| -> Vec<Cow<'a, str>> {
        joined.volumes.iter().filter_map(|v| Some(f(v, v.attachment_of(&item.record.id)?))).collect()
    };
    let extra: Vec<Cow<'a, str>> = match name {
        "block-device-mapping.attach-time" => {
            volume(|_, a| Cow::Owned(ec2api::xml::format_timestamp(&super::timestamp(a.attach_time_ms))))
        }
        "block-device-mapping.delete-on-termination" => volume(|_, a| Cow::Owned(a.delete_on_termination.to_string())),
        "block-device-mapping.device-name" => volume(|_, a| Cow::Borrowed(a.device.as_str())),
        "block-device-mapping.status" => volume(|_, a| Cow::Borrowed(a.state.name())),
        "block-device-mapping.volume-id" => volume(|v, _| Cow::Borrowed(v.id.as_str())),
        "ip-address" | "network-interface.association.public-ip" => {
            joined.public_ip.as_deref().map(one).unwrap_or_default()
        }
        "dns-name" => joined.public_dns.as_deref().map(one).unwrap_or_default(),
        "network-interface.network-interface-id" => attached(item, |i| one(&i.id)),
        "network-interface.private-ip-address" => attached(item, |i| one(&i.private_ip)),
        "network-interface.addresses.private-ip-address" => {
            attached(item, |i| i.addresses().map(|a| Cow::Borrowed(a.as_str())).collect())
        }
        "network-interface.addresses.primary" => attached(item, |i| primary_flags(&i.secondary_ips)),
        "network-interface.mac-address" => attached(item, |i| one(&i.mac)),
        "network-interface.subnet-id" => attached(item, |i| one(&i.subnet_id)),
        "network-interface.vpc-id" => attached(item, |i| one(&i.vpc_id)),
        "network-interface.owner-id" => attached(item, |i| one(&i.account)),
        "network-interface.group-id" => {
            attached(item, |i| i.security_group_ids.iter().map(|g| Cow::Borrowed(g.as_str())).collect())
        }
        "network-interface.source-dest-check" => attached(item, |i| one(i.source_dest_check.to_string())),
        "network-interface.status" => attached(item, |_| one("in-use")),
        "network-interface.requester-managed" => attached(item, |_| one("false")),
        "network-interface.attachment.device-index" => {
            attached(item, |i| i.attachment.iter().map(|a| Cow::Owned(a.device_index.to_string())).collect())
        }
        "network-interface.attachment.status" => {
            attached(item, |i| i.attachment.iter().map(|a| Cow::Borrowed(a.state.name())).collect())
        }
        "network-interface.attachment.attachment-id" => {
            attached(item, |i| i.attachment.iter().map(|a| Cow::Borrowed(a.id.as_str())).collect())
        }
        _ => vec![],
    };
    values.extend(extra);
    values
}

fn own_fields<'a>(item: &'a WithDns<'_>, name: &str) -> Vec<Cow<'a, str>> {
    let r = item.record;
    let live = r.state != storage::InstanceState::Terminated;
    match name {
        "instance-id" => one(&r.id),
        "instance-state-name" => one(r.state.name()),
        "instance-state-code" => one(r.state.code().to_string()),
        "instance-type" => one(&r.instance_type),
        "image-id" => one(&r.image_id),
        "kernel-id" => r.kernel_image.as_deref().map(one).unwrap_or_default(),
        "ramdisk-id" => r.ramdisk_image.as_deref().map(one).unwrap_or_default(),
        "availability-zone" => one(&r.zone),
        "key-name" => r.key_name.as_deref().map(one).unwrap_or_default(),
        "private-ip-address" if live => one(&r.private_ip),
        "private-dns-name" if live => one(&item.dns),
        "subnet-id" if live => one(&r.subnet_id),
        "vpc-id" if live => one(&r.vpc_id),
        "reservation-id" => one(&r.reservation_id),
        "owner-id" => one(&r.account),
        "network-interface.network-interface-id" if live => one(&r.network_interface_id),
        "instance.group-id" => r.security_group_ids.iter().map(|g| Cow::Borrowed(g.as_str())).collect(),
        "launch-index" => one(r.ami_launch_index.to_string()),
        // What every instance here is (DescribeInstances shows the same).
        "architecture" => one("x86_64"),
        "hypervisor" => one("xen"),
        "virtualization-type" => one("hvm"),
        "root-device-type" => one("ebs"),
        "root-device-name" => one(backend::volumes::ROOT_DEVICE),
        "tenancy" => one(if r.dedicated.is_some() { "host" } else { "default" }),
        "host-id" if r.dedicated.is_some() => one(&r.host_id),
        "affinity" => r
            .dedicated
            .as_ref()
            .map(|d| one(if d.affinity_host.is_some() { "host" } else { "default" }))
            .unwrap_or_default(),
        // On-demand instances have no lifecycle value, and there are no placement groups.
        "instance-lifecycle" | "placement-group-name" => vec![],
        "source-dest-check" => one(r.source_dest_check.to_string()),
        "metadata-options.http-tokens" => one(if r.metadata.tokens_required { "required" } else { "optional" }),
        "metadata-options.http-endpoint" => one(if r.metadata.endpoint_enabled { "enabled" } else { "disabled" }),
        "metadata-options.http-put-response-hop-limit" => one(r.metadata.hop_limit.to_string()),
        "metadata-options.instance-metadata-tags" => one(if r.metadata.tags_enabled { "enabled" } else { "disabled" }),
        // The instance's primary interface (interfaces attached beyond it are the interfaces'
        // own records: DescribeNetworkInterfaces filters them).
        "network-interface.addresses.private-ip-address" if live => {
            std::iter::once(&r.private_ip).chain(&r.secondary_ips).map(|a| Cow::Borrowed(a.as_str())).collect()
        }
        "network-interface.addresses.primary" if live => primary_flags(&r.secondary_ips),
        "network-interface.private-ip-address" if live => one(&r.private_ip),
        "network-interface.mac-address" if live => one(&r.mac),
        "network-interface.subnet-id" if live => one(&r.subnet_id),
        "network-interface.vpc-id" if live => one(&r.vpc_id),
        "network-interface.owner-id" if live => one(&r.account),
        "network-interface.group-id" if live => {
            r.security_group_ids.iter().map(|g| Cow::Borrowed(g.as_str())).collect()
        }
        "network-interface.source-dest-check" if live => one(r.source_dest_check.to_string()),
        "network-interface.status" if live => one("in-use"),
        "network-interface.attachment.device-index" if live => one("0"),
        "network-interface.attachment.status" if live => one("attached"),
        "network-interface.requester-managed" if live => one("false"),
        "network-interface.attachment.attachment-id" if live => one(super::shapes::attachment_id(r)),
        _ => vec![],
    }
}

/// Pages are reservations, in reservation id order, each with its matching instances; the
/// page reads the reservations it holds and joins their volumes and groups alone.
pub async fn handle(ctx: &Ctx, req: DescribeInstancesRequest) -> Result<DescribeInstancesOutput, Ec2Error> {
    if req.instance_ids.as_ref().is_some_and(|ids| !ids.is_empty()) && req.max_results.is_some() {
        return Err(Ec2Error::new(
            Code::InvalidParameterCombination,
            "The parameter instancesSet cannot be used with the parameter maxResults",
        ));
    }
    let describe = Describe::of(ctx, "DescribeInstances")
        .ids(req.instance_ids, backend::ResourceKind::Instance)?
        .filters(req.filters.as_deref(), FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let query = describe.list_query();
    let few = describe.reads_few();
    let Describe { filters, page, .. } = describe;
    let account = ctx.account().to_owned();
    let region = ctx.region.clone();
    let (listed, joins) = ctx
        .snapshot_sized(few, move |b| {
            let joining = JOINED.iter().any(|prefix| filters.uses(prefix));
            let mut failed = None;
            let listed = b.list_reservations(&account, &query, |record, tags| {
                let mut item = WithDns::new(record, &region);
                // A terminated instance has nothing attached (Joins::for_instances).
                if joining && record.state != storage::InstanceState::Terminated {
                    let read = b.instance_volumes(&account, &record.id).and_then(|volumes| {
                        let mut interfaces = b.interfaces_of_instances(&account, [record.id.as_str()])?;
                        // The Elastic IP of its primary address, if any.
                        let elastic = b
                            .addresses_on_interface(&account, &record.network_interface_id)?
                            .into_iter()
                            .find(|a| a.association.as_ref().is_some_and(|x| x.private_ip == record.private_ip))
                            .map(|a| a.public_ip);
                        Ok((volumes, interfaces.remove(&record.id).unwrap_or_default(), elastic))
                    });
                    match read {
                        Ok((volumes, interfaces, elastic)) => {
                            let public_ip = elastic.or_else(|| record.public_ip.clone());
                            let public_dns = public_ip.as_deref().map(|p| public_dns_name(p, &region));
                            item.joined = Some(Joined { volumes, public_ip, public_dns, interfaces });
                        }
                        Err(error) => {
                            failed.get_or_insert(error);
                            return false;
                        }
                    }
                }
                filters.matches(&Row { item: &item, tags, fields })
            })?;
            if let Some(error) = failed {
                return Err(error);
            }
            let records: Vec<InstanceRecord> =
                listed.items.iter().flat_map(|(_, members)| members.iter().map(|i| i.record.clone())).collect();
            let joins = Joins::for_instances(b, &account, &records)?;
            Ok((listed, joins))
        })
        .await?;
    if !listed.missing.is_empty() {
        return Err(crate::errors::not_found(backend::ResourceKind::Instance, &listed.missing));
    }
    let next_token = listed.more.then(|| listed.items.last().map(|(r, _)| page.token_after(r))).flatten();
    let region = ctx.region.as_str();
    let reservations = listed
        .items
        .into_iter()
        .map(|(reservation_id, mut members)| {
            members.sort_by_key(|i| i.record.ami_launch_index);
            Reservation {
                owner_id: members.first().map(|i| i.record.account.clone()),
                reservation_id: Some(reservation_id),
                groups: Some(Vec::<GroupIdentifier>::new()),
                instances: Some(members.iter().map(|i| instance(&i.record, &i.tags, region, &joins)).collect()),
                requester_id: None,
            }
        })
        .collect();
    Ok(DescribeInstancesOutput { reservations: Some(reservations), next_token })
}
