use backend::ResourceKind;
use ec2api::{AddressAttribute, DescribeAddressesAttributeOutput, DescribeAddressesAttributeRequest, Ec2Error};
use storage::AddressRecord;

use super::describe::Describe;
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
    // A page of the account's addresses from their table, in allocation id order.
    let (addresses, next_token) = Describe::of(ctx, "DescribeAddressesAttribute")
        .ids(req.allocation_ids, ResourceKind::ElasticIp)?
        .paged(req.max_results, req.next_token.as_deref(), 1, 1000)?
        .list_shown::<AddressRecord, _>(
            ctx,
            |_, _, _, _, _| Ok(true),
            |_, item| {
                Ok(AddressAttribute {
                    allocation_id: Some(item.record.allocation_id),
                    public_ip: Some(item.record.public_ip),
                    ..Default::default()
                })
            },
        )
        .await?;
    Ok(DescribeAddressesAttributeOutput { addresses: Some(addresses), next_token })
}
