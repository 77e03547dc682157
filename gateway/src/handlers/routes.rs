//! What CreateRoute, ReplaceRoute and DeleteRoute share: the destination and the one target.

/// The destination and the one target of a CreateRoute or ReplaceRoute request (the two carry
/// the same fields; `local` is ReplaceRoute's `LocalTarget`).
macro_rules! route_of {
    ($req:expr, $local:expr) => {{
        let req = &mut $req;
        let destination = $crate::handlers::routes::destination(
            req.destination_cidr_block.take(),
            req.destination_ipv6_cidr_block.take(),
            req.destination_prefix_list_id.take(),
        );
        let target = $crate::handlers::routes::target($crate::handlers::routes::Targets {
            gateway_id: req.gateway_id.take(),
            nat_gateway_id: req.nat_gateway_id.take(),
            network_interface_id: req.network_interface_id.take(),
            instance_id: req.instance_id.take(),
            local: $local,
            others: vec![
                ("TransitGatewayId", req.transit_gateway_id.is_some()),
                ("VpcPeeringConnectionId", req.vpc_peering_connection_id.is_some()),
                ("EgressOnlyInternetGatewayId", req.egress_only_internet_gateway_id.is_some()),
                ("CarrierGatewayId", req.carrier_gateway_id.is_some()),
                ("LocalGatewayId", req.local_gateway_id.is_some()),
                ("VpcEndpointId", req.vpc_endpoint_id.is_some()),
                ("CoreNetworkArn", req.core_network_arn.is_some()),
            ],
        });
        match (destination, target) {
            (Ok(destination), Ok(target)) => Ok((destination, target)),
            (Err(error), _) | (_, Err(error)) => Err(error),
        }
    }};
}
pub(crate) use route_of;

use backend::vpcs::TargetSpec;
use backend::ResourceKind;
use ec2api::{Code, Ec2Error};

/// The destination: an IPv4 CIDR (IPv6 and prefix lists are not supported).
pub fn destination(
    cidr: Option<String>,
    ipv6: Option<String>,
    prefix_list: Option<String>,
) -> Result<String, Ec2Error> {
    if ipv6.is_some() || prefix_list.is_some() {
        return Err(Ec2Error::new(
            Code::UnsupportedOperation,
            "Only IPv4 destinations (DestinationCidrBlock) are supported.",
        ));
    }
    cidr.ok_or_else(|| Ec2Error::missing_parameter("destinationCidrBlock"))
}

/// The targets a request may name, by parameter: exactly one must be given.
pub struct Targets {
    pub gateway_id: Option<String>,
    pub nat_gateway_id: Option<String>,
    pub network_interface_id: Option<String>,
    pub instance_id: Option<String>,
    pub local: bool,
    /// Kinds Stratus has nothing of (transit gateways, peering…), by parameter name.
    pub others: Vec<(&'static str, bool)>,
}

pub fn target(t: Targets) -> Result<TargetSpec, Ec2Error> {
    if let Some((name, _)) = t.others.iter().find(|(_, given)| *given) {
        return Err(Ec2Error::new(Code::UnsupportedOperation, format!("Route targets of {name} are not supported.")));
    }
    let checked = |id: Option<String>, kind: ResourceKind| -> Result<Option<String>, Ec2Error> {
        if let Some(id) = &id {
            super::check_ids(std::slice::from_ref(id), kind)?;
        }
        Ok(id)
    };
    let gateway = match t.gateway_id {
        Some(id) if id == "local" => Some(TargetSpec::Local),
        Some(id) => checked(Some(id), ResourceKind::InternetGateway)?.map(TargetSpec::Gateway),
        None => None,
    };
    let mut given: Vec<TargetSpec> = [
        gateway,
        checked(t.nat_gateway_id, ResourceKind::NatGateway)?.map(TargetSpec::NatGateway),
        checked(t.network_interface_id, ResourceKind::NetworkInterface)?.map(TargetSpec::NetworkInterface),
        checked(t.instance_id, ResourceKind::Instance)?.map(TargetSpec::Instance),
        t.local.then_some(TargetSpec::Local),
    ]
    .into_iter()
    .flatten()
    .collect();
    match given.len() {
        1 => Ok(given.remove(0)),
        0 => Err(Ec2Error::new(
            Code::MissingParameter,
            "The request must contain exactly one of gatewayId, natGatewayId, networkInterfaceId or instanceId",
        )),
        _ => Err(Ec2Error::new(
            Code::InvalidParameterCombination,
            "The request must contain exactly one of gatewayId, natGatewayId, networkInterfaceId or instanceId",
        )),
    }
}
