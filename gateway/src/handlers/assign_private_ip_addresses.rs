use ec2api::{
    AssignPrivateIpAddressesOutput, AssignPrivateIpAddressesRequest, AssignedPrivateIpAddress, Code, Ec2Error,
};

use super::check_ids;
use super::network_interface_shape::{address, secondary_count};
use crate::context::Ctx;

/// Secondary addresses of the interface's subnet, by value or by count (not both, as on EC2).
pub async fn handle(
    ctx: &Ctx,
    req: AssignPrivateIpAddressesRequest,
) -> Result<AssignPrivateIpAddressesOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.network_interface_id), backend::ResourceKind::NetworkInterface)?;
    if req.ipv4_prefix_count.unwrap_or(0) > 0 || req.ipv4_prefixes.as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(Ec2Error::new(Code::UnsupportedOperation, "IPv4 prefixes are not supported."));
    }
    let listed = req.private_ip_addresses.unwrap_or_default();
    let addresses = listed
        .iter()
        .enumerate()
        .map(|(i, a)| address(&format!("PrivateIpAddress.{}", i + 1), a))
        .collect::<Result<Vec<_>, _>>()?;
    let count = secondary_count(req.secondary_private_ip_address_count)?;
    match (addresses.is_empty(), count) {
        (false, n) if n > 0 => {
            return Err(Ec2Error::new(
                Code::InvalidParameterCombination,
                "Specify either PrivateIpAddress or SecondaryPrivateIpAddressCount, not both.",
            ))
        }
        (true, 0) => {
            return Err(Ec2Error::new(
                Code::MissingParameter,
                "Either PrivateIpAddress or SecondaryPrivateIpAddressCount must be specified.",
            ))
        }
        _ => {}
    }
    let (account, id) = (ctx.account().to_owned(), req.network_interface_id.clone());
    let reassign = req.allow_reassignment.unwrap_or(false);
    let assigned = ctx.call(move |b| b.assign_private_addresses(&account, &id, &addresses, count, reassign)).await?;
    Ok(AssignPrivateIpAddressesOutput {
        network_interface_id: Some(req.network_interface_id),
        assigned_private_ip_addresses: Some(
            assigned.into_iter().map(|a| AssignedPrivateIpAddress { private_ip_address: Some(a) }).collect(),
        ),
        assigned_ipv4_prefixes: Some(vec![]),
    })
}
