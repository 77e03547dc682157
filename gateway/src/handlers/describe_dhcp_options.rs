use backend::ResourceKind;
use ec2api::{DescribeDhcpOptionsOutput, DescribeDhcpOptionsRequest, Ec2Error};

use super::describe::Describe;
use super::networks::{dhcp, dhcp_fields, DhcpView, DHCP_FILTERS};
use super::NO_TAGS;
use crate::context::Ctx;

/// The account's one DHCP options set (AWS's DNS and domain), which every VPC uses.
pub async fn handle(ctx: &Ctx, req: DescribeDhcpOptionsRequest) -> Result<DescribeDhcpOptionsOutput, Ec2Error> {
    let describe = Describe::of(ctx, "DescribeDhcpOptions")
        .ids(req.dhcp_options_ids, ResourceKind::DhcpOptions)?
        .filters(req.filters.as_deref(), DHCP_FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let set = DhcpView::of(ctx.account(), &ctx.region);
    let (page, next_token) = describe.page([(&set, NO_TAGS)], |d| &d.id, dhcp_fields, |_| true)?;
    Ok(DescribeDhcpOptionsOutput { dhcp_options: Some(page.into_iter().map(|(d, _)| dhcp(d)).collect()), next_token })
}
