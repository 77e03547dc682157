use ec2api::{DescribeVpcAttributeOutput, DescribeVpcAttributeRequest, Ec2Error};

use super::flag;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DescribeVpcAttributeRequest) -> Result<DescribeVpcAttributeOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.vpc_id), backend::ResourceKind::Vpc)?;
    let (account, id) = (ctx.account().to_owned(), req.vpc_id.clone());
    let vpc = ctx.snapshot(move |b| b.vpc(&account, &id)).await?;
    let mut out = DescribeVpcAttributeOutput { vpc_id: Some(req.vpc_id), ..Default::default() };
    match req.attribute.as_str() {
        "enableDnsSupport" => out.enable_dns_support = flag(vpc.dns_support),
        "enableDnsHostnames" => out.enable_dns_hostnames = flag(vpc.dns_hostnames),
        "enableNetworkAddressUsageMetrics" => {
            out.enable_network_address_usage_metrics = flag(vpc.address_usage_metrics)
        }
        other => {
            return Err(Ec2Error::invalid_value(
                "Attribute",
                other,
                &format!("Expected one of: {}.", ec2api::values::VPC_ATTRIBUTE_NAME.join(", ")),
            ))
        }
    }
    Ok(out)
}
