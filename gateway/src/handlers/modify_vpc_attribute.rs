use backend::vpcs::VpcAttribute;
use ec2api::{Ec2Error, ModifyVpcAttributeOutput, ModifyVpcAttributeRequest};

use crate::context::Ctx;

/// One attribute per call, as EC2 takes it.
pub async fn handle(ctx: &Ctx, req: ModifyVpcAttributeRequest) -> Result<ModifyVpcAttributeOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.vpc_id), backend::ResourceKind::Vpc)?;
    let value = |v: Option<ec2api::AttributeBooleanValue>| v.map(|v| v.value.unwrap_or(false));
    let given = [
        value(req.enable_dns_support).map(VpcAttribute::DnsSupport),
        value(req.enable_dns_hostnames).map(VpcAttribute::DnsHostnames),
        value(req.enable_network_address_usage_metrics).map(VpcAttribute::AddressUsageMetrics),
    ];
    let mut given = given.into_iter().flatten();
    let (Some(change), None) = (given.next(), given.next()) else {
        return Err(Ec2Error::new(
            ec2api::Code::InvalidParameterCombination,
            "Exactly one of EnableDnsSupport, EnableDnsHostnames or EnableNetworkAddressUsageMetrics must be given.",
        ));
    };
    let (account, id) = (ctx.account().to_owned(), req.vpc_id);
    ctx.call(move |b| b.modify_vpc(&account, &id, change)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
