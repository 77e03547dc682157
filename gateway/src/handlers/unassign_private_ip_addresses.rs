use ec2api::{Code, Ec2Error, UnassignPrivateIpAddressesOutput, UnassignPrivateIpAddressesRequest};

use super::check_ids;
use super::network_interface_shape::address;
use crate::context::Ctx;

/// Secondary addresses only; an Elastic IP on one of them is disassociated with it.
pub async fn handle(
    ctx: &Ctx,
    req: UnassignPrivateIpAddressesRequest,
) -> Result<UnassignPrivateIpAddressesOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.network_interface_id), backend::ResourceKind::NetworkInterface)?;
    if req.ipv4_prefixes.as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(Ec2Error::new(Code::UnsupportedOperation, "IPv4 prefixes are not supported."));
    }
    let listed = req.private_ip_addresses.unwrap_or_default();
    if listed.is_empty() {
        return Err(Ec2Error::missing_parameter("PrivateIpAddress"));
    }
    // Written back as parsed, so that `010.0.1.5` means the address the records hold.
    let addresses = listed
        .iter()
        .enumerate()
        .map(|(i, a)| address(&format!("PrivateIpAddress.{}", i + 1), a).map(|ip| ip.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let account = ctx.account().to_owned();
    ctx.call(move |b| b.unassign_private_addresses(&account, &req.network_interface_id, &addresses)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
