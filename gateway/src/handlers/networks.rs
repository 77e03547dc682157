//! VPCs, subnets, internet gateways, route tables, network ACLs and DHCP options as EC2 shows
//! them, with the filter fields their Describe actions know. The records are
//! [`backend::vpcs`]'; network ACLs and DHCP options are not records: every VPC has its default
//! ACL (allow all, as AWS makes it) and every account one DHCP options set (AWS's DNS), both
//! with ids derived from what they belong to.

use std::borrow::Cow;

use backend::ids::derived_id;
use ec2api::{
    AttributeValue, DhcpConfiguration, DhcpOptions, InternetGateway, InternetGatewayAttachment, NetworkAcl,
    NetworkAclAssociation, NetworkAclEntry, PrivateDnsNameOptionsOnLaunch, Route, RouteTable, RouteTableAssociation,
    RouteTableAssociationState, Vpc, VpcCidrBlockAssociation, VpcCidrBlockState,
};
use storage::{InternetGatewayRecord, RouteTableRecord, RouteTarget, SubnetRecord, VpcRecord};

use super::{one, tag_list};

fn tags_of(tags: &[(String, String)]) -> Option<Vec<ec2api::Tag>> {
    (!tags.is_empty()).then(|| tag_list(tags))
}

fn yes_no(on: bool) -> Cow<'static, str> {
    Cow::Borrowed(if on { "true" } else { "false" })
}

/// The account's DHCP options set, which every VPC uses.
pub fn dhcp_options_id(account: &str) -> String {
    derived_id("dopt", &[account])
}

/// The domain AWS's DHCP hands out in `region`.
fn domain_name(region: &str) -> String {
    if region == "us-east-1" {
        "ec2.internal".into()
    } else {
        format!("{region}.compute.internal")
    }
}

fn cidr_association_id(vpc: &VpcRecord) -> String {
    derived_id("vpc-cidr-assoc", &[&vpc.account, &vpc.id, &vpc.cidr])
}

pub const VPC_FILTERS: &[&str] = &[
    "cidr",
    "cidr-block-association.cidr-block",
    "cidr-block-association.association-id",
    "cidr-block-association.state",
    "dhcp-options-id",
    "ipv6-cidr-block-association.ipv6-cidr-block",
    "ipv6-cidr-block-association.ipv6-pool",
    "ipv6-cidr-block-association.association-id",
    "ipv6-cidr-block-association.state",
    "is-default",
    "owner-id",
    "state",
    "vpc-id",
];

pub fn vpc_fields<'a>(v: &'a VpcRecord, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "cidr" | "cidr-block-association.cidr-block" => one(&v.cidr),
        "cidr-block-association.association-id" => one(cidr_association_id(v)),
        "cidr-block-association.state" => one("associated"),
        "dhcp-options-id" => one(dhcp_options_id(&v.account)),
        "is-default" => vec![yes_no(v.default)],
        "owner-id" => one(&v.account),
        "state" => one("available"),
        "vpc-id" => one(&v.id),
        _ => vec![],
    }
}

pub fn vpc(v: &VpcRecord, tags: &[(String, String)]) -> Vpc {
    Vpc {
        vpc_id: Some(v.id.clone()),
        owner_id: Some(v.account.clone()),
        cidr_block: Some(v.cidr.clone()),
        cidr_block_association_set: Some(vec![VpcCidrBlockAssociation {
            association_id: Some(cidr_association_id(v)),
            cidr_block: Some(v.cidr.clone()),
            cidr_block_state: Some(VpcCidrBlockState { state: Some("associated".into()), status_message: None }),
        }]),
        dhcp_options_id: Some(dhcp_options_id(&v.account)),
        instance_tenancy: Some(v.tenancy.clone()),
        is_default: Some(v.default),
        state: Some("available".into()),
        tags: tags_of(tags),
        ..Default::default()
    }
}

pub const SUBNET_FILTERS: &[&str] = &[
    "availability-zone",
    "availability-zone-id",
    "available-ip-address-count",
    "cidr-block",
    "cidr",
    "cidrBlock",
    "customer-owned-ipv4-pool",
    "default-for-az",
    "enable-dns64",
    "enable-lni-at-device-index",
    "ipv6-cidr-block-association.ipv6-cidr-block",
    "ipv6-cidr-block-association.association-id",
    "ipv6-cidr-block-association.state",
    "ipv6-native",
    "map-customer-owned-ip-on-launch",
    "map-public-ip-on-launch",
    "outpost-arn",
    "owner-id",
    "private-dns-name-options-on-launch.hostname-type",
    "private-dns-name-options-on-launch.enable-resource-name-dns-a-record",
    "private-dns-name-options-on-launch.enable-resource-name-dns-aaaa-record",
    "state",
    "subnet-arn",
    "subnet-id",
    "vpc-id",
];

/// A subnet with what its view needs beyond the record.
pub struct SubnetView {
    pub record: SubnetRecord,
    pub zone_id: String,
    pub free: u32,
    pub arn: String,
}

impl SubnetView {
    /// A subnet with its zone id, ARN and free addresses, these read in `tx`.
    pub fn of(
        b: &backend::Backend,
        tx: &impl storage::Reads,
        region: &str,
        record: SubnetRecord,
    ) -> backend::Result<Self> {
        let free = b.free_addresses_in(tx, &record)?;
        Ok(Self {
            zone_id: backend::topology::zone_id(region, &record.zone),
            arn: super::arn(region, &record.account, "subnet", &record.id),
            free,
            record,
        })
    }
}

pub fn subnet_fields<'a>(s: &'a SubnetView, name: &str) -> Vec<Cow<'a, str>> {
    let r = &s.record;
    match name {
        "availability-zone" => one(&r.zone),
        "availability-zone-id" => one(&s.zone_id),
        "available-ip-address-count" => one(s.free.to_string()),
        "cidr-block" | "cidr" | "cidrBlock" => one(&r.cidr),
        "default-for-az" => vec![yes_no(r.default_for_az)],
        "enable-dns64" | "ipv6-native" | "map-customer-owned-ip-on-launch" => vec![yes_no(false)],
        "map-public-ip-on-launch" => vec![yes_no(r.map_public_ip_on_launch)],
        "owner-id" => one(&r.account),
        "private-dns-name-options-on-launch.hostname-type" => one("ip-name"),
        "private-dns-name-options-on-launch.enable-resource-name-dns-a-record"
        | "private-dns-name-options-on-launch.enable-resource-name-dns-aaaa-record" => vec![yes_no(false)],
        "state" => one("available"),
        "subnet-arn" => one(&s.arn),
        "subnet-id" => one(&r.id),
        "vpc-id" => one(&r.vpc_id),
        _ => vec![],
    }
}

pub fn subnet(s: &SubnetView, tags: &[(String, String)]) -> ec2api::Subnet {
    let r = &s.record;
    ec2api::Subnet {
        subnet_id: Some(r.id.clone()),
        vpc_id: Some(r.vpc_id.clone()),
        availability_zone: Some(r.zone.clone()),
        availability_zone_id: Some(s.zone_id.clone()),
        cidr_block: Some(r.cidr.clone()),
        available_ip_address_count: Some(i32::try_from(s.free).unwrap_or(i32::MAX)),
        default_for_az: Some(r.default_for_az),
        map_public_ip_on_launch: Some(r.map_public_ip_on_launch),
        map_customer_owned_ip_on_launch: Some(false),
        enable_dns64: Some(false),
        ipv6_native: Some(false),
        enable_lni_at_device_index: None,
        state: Some("available".into()),
        owner_id: Some(r.account.clone()),
        assign_ipv6_address_on_creation: Some(false),
        private_dns_name_options_on_launch: Some(PrivateDnsNameOptionsOnLaunch {
            hostname_type: Some("ip-name".into()),
            enable_resource_name_dns_a_record: Some(false),
            enable_resource_name_dns_aaaa_record: Some(false),
        }),
        subnet_arn: Some(s.arn.clone()),
        tags: tags_of(tags),
        ..Default::default()
    }
}

pub const GATEWAY_FILTERS: &[&str] = &["attachment.state", "attachment.vpc-id", "internet-gateway-id", "owner-id"];

pub fn gateway_fields<'a>(g: &'a InternetGatewayRecord, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "attachment.state" => g.vpc_id.iter().map(|_| Cow::Borrowed("available")).collect(),
        "attachment.vpc-id" => g.vpc_id.iter().map(|v| Cow::Borrowed(v.as_str())).collect(),
        "internet-gateway-id" => one(&g.id),
        "owner-id" => one(&g.account),
        _ => vec![],
    }
}

pub fn gateway(g: &InternetGatewayRecord, tags: &[(String, String)]) -> InternetGateway {
    InternetGateway {
        internet_gateway_id: Some(g.id.clone()),
        owner_id: Some(g.account.clone()),
        attachments: Some(
            g.vpc_id
                .iter()
                .map(|v| InternetGatewayAttachment { state: Some("available".into()), vpc_id: Some(v.clone()) })
                .collect(),
        ),
        tags: tags_of(tags),
    }
}

pub const ROUTE_TABLE_FILTERS: &[&str] = &[
    "association.gateway-id",
    "association.route-table-association-id",
    "association.route-table-id",
    "association.subnet-id",
    "association.main",
    "owner-id",
    "route-table-id",
    "route.destination-cidr-block",
    "route.destination-ipv6-cidr-block",
    "route.destination-prefix-list-id",
    "route.egress-only-internet-gateway-id",
    "route.gateway-id",
    "route.instance-id",
    "route.nat-gateway-id",
    "route.transit-gateway-id",
    "route.origin",
    "route.state",
    "route.vpc-peering-connection-id",
    "vpc-id",
];

/// A route table with, for each route, whether its target is there (`active`) or gone
/// (`blackhole`).
pub struct RouteTableView {
    pub record: RouteTableRecord,
    pub active: Vec<bool>,
    /// For each route to an instance or a network interface that is active: the instance and
    /// the interface it leads to, both shown as EC2 does.
    pub through: Vec<Option<(String, String)>>,
}

fn route_gateway(target: &RouteTarget) -> Option<&str> {
    match target {
        RouteTarget::Local => Some("local"),
        RouteTarget::InternetGateway(id) => Some(id),
        _ => None,
    }
}

pub fn route_table_fields<'a>(t: &'a RouteTableView, name: &str) -> Vec<Cow<'a, str>> {
    let r = &t.record;
    let routes = || r.routes.iter();
    match name {
        "association.route-table-association-id" => {
            r.associations.iter().map(|a| Cow::Borrowed(a.id.as_str())).collect()
        }
        "association.route-table-id" => r.associations.iter().map(|_| Cow::Borrowed(r.id.as_str())).collect(),
        "association.subnet-id" => {
            r.associations.iter().filter_map(|a| a.subnet_id.as_deref()).map(Cow::Borrowed).collect()
        }
        "association.main" => r.associations.iter().map(|a| yes_no(a.subnet_id.is_none())).collect(),
        "owner-id" => one(&r.account),
        "route-table-id" => one(&r.id),
        "route.destination-cidr-block" => routes().map(|x| Cow::Borrowed(x.destination.as_str())).collect(),
        "route.gateway-id" => routes().filter_map(|x| route_gateway(&x.target)).map(Cow::Borrowed).collect(),
        "route.instance-id" => routes()
            .filter_map(|x| match &x.target {
                RouteTarget::Instance(id) => Some(Cow::Borrowed(id.as_str())),
                _ => None,
            })
            .collect(),
        "route.nat-gateway-id" => routes()
            .filter_map(|x| match &x.target {
                RouteTarget::NatGateway(id) => Some(Cow::Borrowed(id.as_str())),
                _ => None,
            })
            .collect(),
        "route.origin" => routes().map(|x| Cow::Borrowed(x.origin.as_str())).collect(),
        "route.state" => t.active.iter().map(|a| Cow::Borrowed(if *a { "active" } else { "blackhole" })).collect(),
        "vpc-id" => one(&r.vpc_id),
        _ => vec![],
    }
}

pub fn association_state() -> Option<RouteTableAssociationState> {
    Some(RouteTableAssociationState { state: Some("associated".into()), status_message: None })
}

pub fn route_table(t: &RouteTableView, tags: &[(String, String)]) -> RouteTable {
    let r = &t.record;
    let routes = r
        .routes
        .iter()
        .zip(&t.active)
        .zip(&t.through)
        .map(|((route, active), through)| {
            let mut out = Route {
                destination_cidr_block: Some(route.destination.clone()),
                origin: Some(route.origin.clone()),
                state: Some(if *active { "active" } else { "blackhole" }.into()),
                gateway_id: route_gateway(&route.target).map(str::to_owned),
                ..Default::default()
            };
            match &route.target {
                RouteTarget::NatGateway(id) => out.nat_gateway_id = Some(id.clone()),
                RouteTarget::NetworkInterface(id) => out.network_interface_id = Some(id.clone()),
                RouteTarget::Instance(id) => out.instance_id = Some(id.clone()),
                RouteTarget::Local | RouteTarget::InternetGateway(_) => {}
            }
            if let Some((instance, interface)) = through {
                out.instance_id = Some(instance.clone());
                out.instance_owner_id = Some(r.account.clone());
                out.network_interface_id = Some(interface.clone());
            }
            out
        })
        .collect();
    RouteTable {
        route_table_id: Some(r.id.clone()),
        vpc_id: Some(r.vpc_id.clone()),
        owner_id: Some(r.account.clone()),
        routes: Some(routes),
        associations: Some(
            r.associations
                .iter()
                .map(|a| RouteTableAssociation {
                    main: Some(a.subnet_id.is_none()),
                    route_table_association_id: Some(a.id.clone()),
                    route_table_id: Some(r.id.clone()),
                    subnet_id: a.subnet_id.clone(),
                    association_state: association_state(),
                    ..Default::default()
                })
                .collect(),
        ),
        propagating_vgws: Some(Vec::new()),
        tags: tags_of(tags),
    }
}

pub const NETWORK_ACL_FILTERS: &[&str] = &[
    "association.association-id",
    "association.network-acl-id",
    "association.subnet-id",
    "default",
    "entry.cidr",
    "entry.icmp.code",
    "entry.icmp.type",
    "entry.ipv6-cidr",
    "entry.port-range.from",
    "entry.port-range.to",
    "entry.protocol",
    "entry.rule-action",
    "entry.egress",
    "entry.rule-number",
    "network-acl-id",
    "owner-id",
    "vpc-id",
];

/// A VPC's default network ACL: it allows everything both ways, as AWS's does, and every
/// subnet of the VPC is associated with it.
pub struct NetworkAclView {
    pub acl: storage::NetworkAclRecord,
    /// Its VPC's subnets, each associated with it.
    pub subnets: Vec<String>,
}

impl NetworkAclView {
    fn association_id(&self, subnet: &str) -> String {
        derived_id("aclassoc", &[&self.acl.id, subnet])
    }
}

/// The default ACL's entries: (rule number, egress, action).
const ACL_ENTRIES: [(i32, bool, &str); 4] =
    [(100, false, "allow"), (32767, false, "deny"), (100, true, "allow"), (32767, true, "deny")];

pub fn network_acl_fields<'a>(a: &'a NetworkAclView, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "association.association-id" => a.subnets.iter().map(|s| Cow::Owned(a.association_id(s))).collect(),
        "association.network-acl-id" => a.subnets.iter().map(|_| Cow::Borrowed(a.acl.id.as_str())).collect(),
        "association.subnet-id" => a.subnets.iter().map(|s| Cow::Borrowed(s.as_str())).collect(),
        "default" => one("true"),
        "entry.cidr" => one("0.0.0.0/0"),
        "entry.protocol" => one("-1"),
        "entry.rule-action" => vec![Cow::Borrowed("allow"), Cow::Borrowed("deny")],
        "entry.egress" => vec![yes_no(true), yes_no(false)],
        "entry.rule-number" => vec![Cow::Borrowed("100"), Cow::Borrowed("32767")],
        "network-acl-id" => one(&a.acl.id),
        "owner-id" => one(&a.acl.account),
        "vpc-id" => one(&a.acl.vpc_id),
        _ => vec![],
    }
}

pub fn network_acl(a: &NetworkAclView, tags: &[(String, String)]) -> NetworkAcl {
    NetworkAcl {
        network_acl_id: Some(a.acl.id.clone()),
        vpc_id: Some(a.acl.vpc_id.clone()),
        owner_id: Some(a.acl.account.clone()),
        is_default: Some(true),
        entries: Some(
            ACL_ENTRIES
                .iter()
                .map(|(number, egress, action)| NetworkAclEntry {
                    cidr_block: Some("0.0.0.0/0".into()),
                    egress: Some(*egress),
                    protocol: Some("-1".into()),
                    rule_action: Some((*action).into()),
                    rule_number: Some(*number),
                    ..Default::default()
                })
                .collect(),
        ),
        associations: Some(
            a.subnets
                .iter()
                .map(|s| NetworkAclAssociation {
                    network_acl_association_id: Some(a.association_id(s)),
                    network_acl_id: Some(a.acl.id.clone()),
                    subnet_id: Some(s.clone()),
                })
                .collect(),
        ),
        tags: Some(tag_list(tags)),
    }
}

pub const DHCP_FILTERS: &[&str] = &["dhcp-options-id", "key", "value", "owner-id"];

/// The account's DHCP options set.
pub struct DhcpView {
    pub id: String,
    pub account: String,
    pub options: Vec<(&'static str, String)>,
}

impl DhcpView {
    pub fn of(account: &str, region: &str) -> Self {
        Self {
            id: dhcp_options_id(account),
            account: account.to_owned(),
            options: vec![("domain-name", domain_name(region)), ("domain-name-servers", "AmazonProvidedDNS".into())],
        }
    }
}

pub fn dhcp_fields<'a>(d: &'a DhcpView, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "dhcp-options-id" => one(&d.id),
        "key" => d.options.iter().map(|(k, _)| Cow::Borrowed(*k)).collect(),
        "value" => d.options.iter().map(|(_, v)| Cow::Borrowed(v.as_str())).collect(),
        "owner-id" => one(&d.account),
        _ => vec![],
    }
}

pub fn dhcp(d: &DhcpView) -> DhcpOptions {
    DhcpOptions {
        dhcp_options_id: Some(d.id.clone()),
        owner_id: Some(d.account.clone()),
        dhcp_configurations: Some(
            d.options
                .iter()
                .map(|(k, v)| DhcpConfiguration {
                    key: Some((*k).into()),
                    values: Some(vec![AttributeValue { value: Some(v.clone()) }]),
                })
                .collect(),
        ),
        tags: Some(Vec::new()),
    }
}
