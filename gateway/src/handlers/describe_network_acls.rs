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
    let (acls, next_token) = Describe::of(ctx, "DescribeNetworkAcls")
        .ids(req.network_acl_ids, ResourceKind::NetworkAcl)?
        .filters(req.filters.as_deref(), NETWORK_ACL_FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?
        .list_shown::<NetworkAclRecord, _>(
            ctx,
            // Filters may ask for the associations: the VPC's subnets, read in the page's read.
            |_, tx, filters, record, tags| {
                if filters.is_empty() {
                    return Ok(true);
                }
                let view =
                    NetworkAclView::of(record, backend::vpcs::vpc_subnet_ids_in(tx, &record.account, &record.vpc_id)?);
                Ok(filters.matches(&Row { item: &view, tags, fields: network_acl_fields }))
            },
            |b, item| {
                let acl = item.record;
                let subnets = b.store().read(|tx| backend::vpcs::vpc_subnet_ids_in(tx, &acl.account, &acl.vpc_id))?;
                Ok(network_acl(&NetworkAclView::of(&acl, subnets), &item.tags))
            },
        )
        .await?;
    Ok(DescribeNetworkAclsOutput { network_acls: Some(acls), next_token })
}
