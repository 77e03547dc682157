use backend::ResourceKind;
use ec2api::{DescribeNetworkAclsOutput, DescribeNetworkAclsRequest, Ec2Error};

use super::describe::Describe;
use super::networks::{network_acl, network_acl_fields, NetworkAclView, NETWORK_ACL_FILTERS};
use super::NO_TAGS;
use crate::context::Ctx;

/// Each VPC's default ACL, the only ACLs there are.
pub async fn handle(ctx: &Ctx, req: DescribeNetworkAclsRequest) -> Result<DescribeNetworkAclsOutput, Ec2Error> {
    let describe = Describe::of(ctx, "DescribeNetworkAcls")
        .ids(req.network_acl_ids, ResourceKind::NetworkAcl)?
        .filters(req.filters.as_deref(), NETWORK_ACL_FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let account = ctx.account().to_owned();
    let acls = ctx
        .snapshot(move |b| {
            let subnets = b.subnet_records(&account)?;
            Ok(b.vpcs(&account)?
                .iter()
                .map(|vpc| {
                    let mine = subnets.iter().filter(|s| s.vpc_id == vpc.id).map(|s| s.id.clone()).collect();
                    NetworkAclView::of(vpc, mine)
                })
                .collect::<Vec<_>>())
        })
        .await?;
    let (page, next_token) =
        describe.page(acls.iter().map(|a| (a, NO_TAGS)), |a| &a.id, network_acl_fields, |_| true)?;
    Ok(DescribeNetworkAclsOutput {
        network_acls: Some(page.into_iter().map(|(a, _)| network_acl(a)).collect()),
        next_token,
    })
}
