use backend::ResourceKind;
use ec2api::{DescribeNetworkAclsOutput, DescribeNetworkAclsRequest, Ec2Error};
use storage::NetworkAclRecord;

use super::describe::Describe;
use super::networks::{network_acl, network_acl_fields, NetworkAclView, NETWORK_ACL_FILTERS};
use super::Row;
use crate::context::Ctx;

/// Each VPC's default ACL, the only ACLs there are, paged from the store's table of them: a
/// page reads its ACLs and their VPCs' subnets, not the account's VPCs and subnets.
pub async fn handle(ctx: &Ctx, req: DescribeNetworkAclsRequest) -> Result<DescribeNetworkAclsOutput, Ec2Error> {
    let describe = Describe::of(ctx, "DescribeNetworkAcls")
        .ids(req.network_acl_ids, ResourceKind::NetworkAcl)?
        .filters(req.filters.as_deref(), NETWORK_ACL_FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    // A VPC's ACL id is derived from the VPC's: a VPC filter names the ACLs it can match.
    let vpcs = describe.filters.exact_values("vpc-id").unwrap_or_default();
    let implied = vpcs.into_iter().map(|vpc| storage::derived::network_acl_id(ctx.account(), vpc)).collect();
    let (acls, next_token) = describe
        .implying(implied)
        .list_shown::<NetworkAclRecord, _>(
            ctx,
            // Filters may ask for the associations: the VPC's subnets, read in the page's read.
            |_, tx, filters, record, tags| {
                if filters.is_empty() {
                    return Ok(true);
                }
                let subnets = backend::vpcs::vpc_subnet_ids_in(tx, &record.account, &record.vpc_id)?;
                let view = NetworkAclView { acl: record.clone(), subnets };
                Ok(filters.matches(&Row { item: &view, tags, fields: network_acl_fields }))
            },
            |b, item| {
                let acl = item.record;
                let subnets = b.store().read(|tx| backend::vpcs::vpc_subnet_ids_in(tx, &acl.account, &acl.vpc_id))?;
                Ok(network_acl(&NetworkAclView { acl, subnets }, &item.tags))
            },
        )
        .await?;
    Ok(DescribeNetworkAclsOutput { network_acls: Some(acls), next_token })
}
