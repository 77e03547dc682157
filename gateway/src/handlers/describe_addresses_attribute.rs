use backend::ResourceKind;
use ec2api::{AddressAttribute, DescribeAddressesAttributeOutput, DescribeAddressesAttributeRequest, Ec2Error};

use super::describe::Describe;
use super::NO_TAGS;
use crate::context::Ctx;

/// `domain-name`: the reverse DNS record of each address. Stratus sets none, so each address is
/// listed without one, as EC2 lists an address whose PTR record was never changed.
pub async fn handle(
    ctx: &Ctx,
    req: DescribeAddressesAttributeRequest,
) -> Result<DescribeAddressesAttributeOutput, Ec2Error> {
    if let Some(attribute) = req.attribute.as_deref().filter(|a| *a != "domain-name") {
        return Err(Ec2Error::invalid_value("Attribute", attribute, "Expected 'domain-name'."));
    }
    let describe = Describe::of(ctx, "DescribeAddressesAttribute")
        .ids(req.allocation_ids, ResourceKind::ElasticIp)?
        .paged(req.max_results, req.next_token.as_deref(), 1, 1000)?;
    let account = ctx.account().to_owned();
    let addresses = ctx.snapshot(move |b| b.addresses(&account)).await?;
    let (page, next_token) =
        describe.page(addresses.iter().map(|a| (a, NO_TAGS)), |a| &a.allocation_id, |_, _| vec![], |_| true)?;
    Ok(DescribeAddressesAttributeOutput {
        addresses: Some(
            page.into_iter()
                .map(|(a, _)| AddressAttribute {
                    allocation_id: Some(a.allocation_id.clone()),
                    public_ip: Some(a.public_ip.clone()),
                    ..Default::default()
                })
                .collect(),
        ),
        next_token,
    })
}
