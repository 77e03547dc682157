use ec2api::{Ec2Error, ModifySubnetAttributeOutput, ModifySubnetAttributeRequest};

use crate::context::Ctx;

/// `MapPublicIpOnLaunch` is the attribute Stratus keeps; the IPv6, customer-owned and DNS
/// record ones are accepted only as what they are here (off, and `ip-name` hostnames).
pub async fn handle(ctx: &Ctx, req: ModifySubnetAttributeRequest) -> Result<ModifySubnetAttributeOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.subnet_id), backend::ResourceKind::Subnet)?;
    let on = |v: &Option<ec2api::AttributeBooleanValue>| v.as_ref().and_then(|v| v.value) == Some(true);
    let unsupported = [
        ("AssignIpv6AddressOnCreation", on(&req.assign_ipv6_address_on_creation)),
        ("EnableDns64", on(&req.enable_dns64)),
        ("MapCustomerOwnedIpOnLaunch", on(&req.map_customer_owned_ip_on_launch)),
        ("EnableResourceNameDnsARecordOnLaunch", on(&req.enable_resource_name_dns_a_record_on_launch)),
        ("EnableResourceNameDnsAAAARecordOnLaunch", on(&req.enable_resource_name_dns_aaaa_record_on_launch)),
        (
            "PrivateDnsHostnameTypeOnLaunch",
            req.private_dns_hostname_type_on_launch.as_deref().is_some_and(|t| t != "ip-name"),
        ),
    ];
    if let Some((name, _)) = unsupported.iter().find(|(_, asked)| *asked) {
        return Err(Ec2Error::new(ec2api::Code::UnsupportedOperation, format!("{name} is not supported.")));
    }
    let (account, id) = (ctx.account().to_owned(), req.subnet_id);
    if let Some(map) = req.map_public_ip_on_launch {
        let map = map.value.unwrap_or(false);
        ctx.call(move |b| b.modify_subnet(&account, &id, map)).await?;
    } else {
        // Nothing Stratus keeps changes, but the subnet must still be the caller's.
        ctx.call(move |b| b.subnet(&account, &id).map(drop)).await?;
    }
    Ok(ec2api::xml::ReturnTrue)
}
