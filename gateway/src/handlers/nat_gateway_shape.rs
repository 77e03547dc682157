//! A NAT gateway as EC2 shows it, and the filters DescribeNatGateways knows.

use std::borrow::Cow;

use ec2api::{NatGateway, NatGatewayAddress};
use storage::NatGatewayRecord;

use super::{one, tag_list, timestamp};

pub const FILTERS: &[&str] = &["nat-gateway-id", "state", "subnet-id", "vpc-id"];

pub fn fields<'a>(n: &'a NatGatewayRecord, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "nat-gateway-id" => one(&n.id),
        "state" => one("available"),
        "subnet-id" => one(&n.subnet_id),
        "vpc-id" => one(&n.vpc_id),
        _ => vec![],
    }
}

/// `state`: `available` while it exists, `deleted` in DeleteNatGateway's answer.
pub fn shape(n: &NatGatewayRecord, tags: &[(String, String)], state: &str) -> NatGateway {
    NatGateway {
        nat_gateway_id: Some(n.id.clone()),
        vpc_id: Some(n.vpc_id.clone()),
        subnet_id: Some(n.subnet_id.clone()),
        state: Some(state.into()),
        connectivity_type: Some("public".into()),
        create_time: Some(timestamp(n.created_ms)),
        nat_gateway_addresses: Some(vec![NatGatewayAddress {
            allocation_id: Some(n.allocation_id.clone()),
            public_ip: Some(n.public_ip.clone()),
            private_ip: Some(n.private_ip.clone()),
            network_interface_id: Some(n.network_interface_id.clone()),
            is_primary: Some(true),
            status: Some("succeeded".into()),
            ..Default::default()
        }]),
        tags: (!tags.is_empty()).then(|| tag_list(tags)),
        ..Default::default()
    }
}
