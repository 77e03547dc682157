use backend::interfaces::NewInterface;
use backend::listing::InterfaceView;
use backend::ResourceKind;
use ec2api::{Code, CreateNetworkInterfaceOutput, CreateNetworkInterfaceRequest, Ec2Error};

use super::network_interface_shape::{address, secondary_count, shape};
use super::{check_ids, tags_from_specs};
use crate::context::Ctx;

/// An interface of its own in a subnet: a given or the lowest free address, secondary ones by
/// value or by count, the VPC's default group unless groups are named.
pub async fn handle(ctx: &Ctx, req: CreateNetworkInterfaceRequest) -> Result<CreateNetworkInterfaceOutput, Ec2Error> {
    let tags = tags_from_specs(req.tag_specifications, "network-interface")?;
    let unsupported = |what: &str| Ec2Error::new(Code::UnsupportedOperation, format!("{what} is not supported."));
    if req.ipv6_address_count.unwrap_or(0) > 0
        || req.ipv6_addresses.as_ref().is_some_and(|a| !a.is_empty())
        || req.ipv4_prefix_count.unwrap_or(0) > 0
        || req.ipv4_prefixes.as_ref().is_some_and(|a| !a.is_empty())
        || req.ipv6_prefix_count.unwrap_or(0) > 0
        || req.ipv6_prefixes.as_ref().is_some_and(|a| !a.is_empty())
        || req.enable_primary_ipv6 == Some(true)
    {
        return Err(unsupported("IPv6 addresses and prefixes"));
    }
    if req.interface_type.as_deref().is_some_and(|t| t != "interface") {
        return Err(unsupported("An interface type other than `interface`"));
    }
    check_ids(std::slice::from_ref(&req.subnet_id), ResourceKind::Subnet)?;
    let groups = req.groups.unwrap_or_default();
    check_ids(&groups, ResourceKind::SecurityGroup)?;
    // `PrivateIpAddresses.N`: one may be the primary; the others are secondary.
    let mut primary =
        req.private_ip_address.filter(|a| !a.is_empty()).map(|a| address("PrivateIpAddress", &a)).transpose()?;
    let mut secondary = Vec::new();
    for (index, spec) in req.private_ip_addresses.unwrap_or_default().into_iter().enumerate() {
        let name = format!("PrivateIpAddresses.{}.PrivateIpAddress", index + 1);
        let Some(text) = spec.private_ip_address else { return Err(Ec2Error::missing_parameter(&name)) };
        let ip = address(&name, &text)?;
        match (spec.primary == Some(true), primary) {
            (true, Some(given)) if given != ip => {
                return Err(Ec2Error::new(
                    Code::InvalidParameterCombination,
                    "A primary address is given twice (PrivateIpAddress and PrivateIpAddresses).",
                ))
            }
            (true, _) => primary = Some(ip),
            (false, _) => secondary.push(ip),
        }
    }
    if primary.is_none() && !secondary.is_empty() {
        primary = Some(secondary.remove(0));
    }
    let count = secondary_count(req.secondary_private_ip_address_count)?;
    let new = NewInterface {
        subnet_id: req.subnet_id,
        private_ip: primary,
        secondary,
        secondary_count: count,
        groups,
        description: req.description.unwrap_or_default(),
        client_token: req.client_token.clone(),
    };
    let account = ctx.account().to_owned();
    let (record, tags, names) = ctx
        .call(move |b| {
            let record = b.create_network_interface(&account, new, &tags)?;
            // A retry by client token answers the interface with the tags it has.
            let shown = b.tags_of(&account, [record.id.as_str()])?.remove(&record.id).unwrap_or_default();
            let names = b.security_group_names_of(&account, record.security_group_ids.iter().map(String::as_str))?;
            Ok((record, shown, names))
        })
        .await?;
    Ok(CreateNetworkInterfaceOutput {
        network_interface: Some(shape(
            &InterfaceView::of_own(&record),
            &tags,
            &ctx.region,
            &names,
            &Default::default(),
        )),
        client_token: req.client_token,
    })
}
