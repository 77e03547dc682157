//! A network interface as EC2 shows it (DescribeNetworkInterfaces, CreateNetworkInterface), the
//! filters DescribeNetworkInterfaces knows, and the address parsing its actions share.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::Ipv4Addr;

use backend::listing::InterfaceView;
use ec2api::{
    Ec2Error, GroupIdentifier, NetworkInterface, NetworkInterfaceAssociation, NetworkInterfaceAttachment,
    NetworkInterfacePrivateIpAddress,
};

use super::shapes::{private_dns_name, public_dns_name};
use super::{one, tag_list, timestamp};

pub const FILTERS: &[&str] = &[
    "network-interface-id",
    "attachment.instance-id",
    "attachment.instance-owner-id",
    "attachment.attachment-id",
    "attachment.device-index",
    "attachment.status",
    "attachment.delete-on-termination",
    "availability-zone",
    "group-id",
    "mac-address",
    "owner-id",
    "private-ip-address",
    "addresses.private-ip-address",
    "addresses.primary",
    "association.public-ip",
    "private-dns-name",
    "requester-managed",
    "status",
    "subnet-id",
    "vpc-id",
    "interface-type",
    "source-dest-check",
    "description",
];

/// An Elastic IP pointed at one private address of an interface.
#[derive(Debug, Clone)]
pub struct Mapped {
    pub public_ip: String,
    pub allocation_id: String,
    pub association_id: String,
}

/// Elastic IPs by (interface id, private address).
pub type PublicIps = HashMap<(String, String), Mapped>;

pub fn public_ips(addresses: Vec<storage::AddressRecord>) -> PublicIps {
    addresses
        .into_iter()
        .filter_map(|a| {
            let x = a.association?;
            Some((
                (x.network_interface_id, x.private_ip),
                Mapped { public_ip: a.public_ip, allocation_id: a.allocation_id, association_id: x.id },
            ))
        })
        .collect()
}

/// The public address in front of one private address: its Elastic IP, or (for an instance's
/// own interface) the address its instance was given at launch.
fn public_of<'a>(v: &'a InterfaceView, address: &str, public: &'a PublicIps) -> Option<(&'a str, Option<&'a Mapped>)> {
    match public.get(&(v.id.clone(), address.to_owned())) {
        Some(m) => Some((m.public_ip.as_str(), Some(m))),
        None if address == v.private_ip => v.public_ip.as_deref().map(|p| (p, None)),
        None => None,
    }
}

pub fn fields<'a>(v: &'a InterfaceView, name: &str, region: &str, public: &PublicIps) -> Vec<Cow<'a, str>> {
    let attachment = v.attachment.as_ref();
    let addresses = || std::iter::once(&v.private_ip).chain(&v.secondary_ips);
    match name {
        "network-interface-id" => one(&v.id),
        "attachment.instance-id" => attachment.map(|a| Cow::Borrowed(a.instance_id.as_str())).into_iter().collect(),
        "attachment.instance-owner-id" => attachment.map(|_| Cow::Borrowed(v.account.as_str())).into_iter().collect(),
        "owner-id" => one(&v.account),
        "attachment.attachment-id" => attachment.map(|a| Cow::Borrowed(a.id.as_str())).into_iter().collect(),
        "attachment.device-index" => attachment.map(|a| Cow::Owned(a.device_index.to_string())).into_iter().collect(),
        "attachment.status" => attachment.map(|a| Cow::Borrowed(a.state)).into_iter().collect(),
        "attachment.delete-on-termination" => {
            attachment.map(|a| Cow::Owned(a.delete_on_termination.to_string())).into_iter().collect()
        }
        "availability-zone" => one(&v.zone),
        "group-id" => v.security_group_ids.iter().map(|g| Cow::Borrowed(g.as_str())).collect(),
        "mac-address" => one(&v.mac),
        "private-ip-address" | "addresses.private-ip-address" => {
            addresses().map(|a| Cow::Borrowed(a.as_str())).collect()
        }
        "addresses.primary" => {
            addresses().enumerate().map(|(i, _)| Cow::Borrowed(if i == 0 { "true" } else { "false" })).collect()
        }
        "association.public-ip" => {
            addresses().filter_map(|a| public_of(v, a, public).map(|(p, _)| Cow::Owned(p.to_owned()))).collect()
        }
        "private-dns-name" => one(private_dns_name(&v.private_ip, region)),
        "requester-managed" => one("false"),
        "status" => one(v.status()),
        "subnet-id" => one(&v.subnet_id),
        "vpc-id" => one(&v.vpc_id),
        "interface-type" => one("interface"),
        "source-dest-check" => one(v.source_dest_check.to_string()),
        "description" => one(&v.description),
        _ => vec![],
    }
}

/// A candidate of a Describe page, with what its filters read besides the interface.
pub struct Candidate<'a> {
    pub view: &'a InterfaceView,
    pub region: &'a str,
    pub public: &'a PublicIps,
}

pub fn candidate_fields<'a>(c: &'a Candidate<'_>, name: &str) -> Vec<Cow<'a, str>> {
    fields(c.view, name, c.region, c.public)
}

pub fn groups(v: &InterfaceView, names: &HashMap<String, String>) -> Vec<GroupIdentifier> {
    v.security_group_ids
        .iter()
        .map(|id| GroupIdentifier { group_id: Some(id.clone()), group_name: names.get(id).cloned() })
        .collect()
}

pub fn attachment(v: &InterfaceView) -> Option<NetworkInterfaceAttachment> {
    v.attachment.as_ref().map(|a| NetworkInterfaceAttachment {
        attachment_id: Some(a.id.clone()),
        attach_time: Some(timestamp(a.attach_time_ms)),
        delete_on_termination: Some(a.delete_on_termination),
        device_index: Some(a.device_index as i32),
        network_card_index: Some(0),
        instance_id: Some(a.instance_id.clone()),
        instance_owner_id: Some(v.account.clone()),
        status: Some(a.state.into()),
        ..Default::default()
    })
}

pub fn shape(
    v: &InterfaceView,
    tags: &[(String, String)],
    region: &str,
    names: &HashMap<String, String>,
    public: &PublicIps,
) -> NetworkInterface {
    let association = |address: &str| {
        public_of(v, address, public).map(|(ip, mapped)| NetworkInterfaceAssociation {
            public_ip: Some(ip.to_owned()),
            public_dns_name: Some(public_dns_name(ip, region)),
            // A launch's public address is Amazon's on EC2, an Elastic IP the account's.
            ip_owner_id: Some(if mapped.is_some() { v.account.clone() } else { "amazon".into() }),
            allocation_id: mapped.map(|m| m.allocation_id.clone()),
            association_id: mapped.map(|m| m.association_id.clone()),
            ..Default::default()
        })
    };
    let addresses = std::iter::once(&v.private_ip)
        .chain(&v.secondary_ips)
        .enumerate()
        .map(|(index, address)| NetworkInterfacePrivateIpAddress {
            primary: Some(index == 0),
            private_dns_name: Some(private_dns_name(address, region)),
            private_ip_address: Some(address.clone()),
            association: association(address),
        })
        .collect();
    NetworkInterface {
        network_interface_id: Some(v.id.clone()),
        attachment: attachment(v),
        association: association(&v.private_ip),
        availability_zone: Some(v.zone.clone()),
        description: Some(v.description.clone()),
        groups: Some(groups(v, names)),
        interface_type: Some("interface".into()),
        ipv6_addresses: Some(vec![]),
        mac_address: Some(v.mac.clone()),
        owner_id: Some(v.account.clone()),
        private_dns_name: Some(private_dns_name(&v.private_ip, region)),
        private_ip_address: Some(v.private_ip.clone()),
        private_ip_addresses: Some(addresses),
        requester_managed: Some(false),
        source_dest_check: Some(v.source_dest_check),
        status: Some(v.status().into()),
        subnet_id: Some(v.subnet_id.clone()),
        vpc_id: Some(v.vpc_id.clone()),
        tag_set: Some(tag_list(tags)),
        ..Default::default()
    }
}

/// A private IPv4 address parameter, or EC2's `InvalidParameterValue` naming it.
pub fn address(name: &str, text: &str) -> Result<Ipv4Addr, Ec2Error> {
    text.parse().map_err(|_| Ec2Error::invalid_value(name, text, "Expected an IPv4 address."))
}

/// `SecondaryPrivateIpAddressCount`: absent is none; a negative count is refused by name.
pub fn secondary_count(count: Option<i32>) -> Result<u32, Ec2Error> {
    let count = count.unwrap_or(0);
    u32::try_from(count).map_err(|_| {
        Ec2Error::invalid_value("SecondaryPrivateIpAddressCount", &count.to_string(), "It must not be negative.")
    })
}
