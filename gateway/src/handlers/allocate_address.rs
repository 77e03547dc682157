use ec2api::{AllocateAddressOutput, AllocateAddressRequest, Code, Ec2Error};

use super::tags_from_specs;
use crate::context::Ctx;

/// An Elastic IP from the installation's public pool (`Domain` is `vpc`, the only kind there is).
pub async fn handle(ctx: &Ctx, req: AllocateAddressRequest) -> Result<AllocateAddressOutput, Ec2Error> {
    let tags = tags_from_specs(req.tag_specifications, "elastic-ip")?;
    if let Some(domain) = req.domain.as_deref().filter(|d| *d != "vpc") {
        return Err(Ec2Error::invalid_value("Domain", domain, "Expected 'vpc'."));
    }
    if req.public_ipv4_pool.is_some() || req.customer_owned_ipv4_pool.is_some() || req.ipam_pool_id.is_some() {
        return Err(Ec2Error::new(
            Code::UnsupportedOperation,
            "Addresses come from the installation's public pool: PublicIpv4Pool, CustomerOwnedIpv4Pool and IpamPoolId are not supported.",
        ));
    }
    // Whether a chosen address is free would tell what other accounts hold.
    if req.address.is_some() {
        return Err(Ec2Error::new(
            Code::UnsupportedOperation,
            "Addresses come from the installation's public pool: a chosen Address is not supported.",
        ));
    }
    let account = ctx.account().to_owned();
    let record = ctx.call(move |b| b.allocate_address(&account, &tags)).await?;
    Ok(AllocateAddressOutput {
        allocation_id: Some(record.allocation_id),
        public_ip: Some(record.public_ip),
        domain: Some("vpc".into()),
        public_ipv4_pool: Some("amazon".into()),
        network_border_group: Some(ctx.region.clone()),
        ..Default::default()
    })
}
