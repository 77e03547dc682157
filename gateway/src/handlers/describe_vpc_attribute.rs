use ec2api::{DescribeVpcAttributeOutput, DescribeVpcAttributeRequest, Ec2Error};

use super::flag;
use crate::context::Ctx;

/// The default VPC resolves names and gives instances DNS hostnames, as AWS's does.
pub async fn handle(ctx: &Ctx, req: DescribeVpcAttributeRequest) -> Result<DescribeVpcAttributeOutput, Ec2Error> {
    let vpc = std::slice::from_ref(&req.vpc_id);
    super::ensure_found(backend::ResourceKind::Vpc, vpc, |id| *id == ctx.principal.default_vpc_id)?;
    let mut out = DescribeVpcAttributeOutput { vpc_id: Some(req.vpc_id), ..Default::default() };
    match req.attribute.as_str() {
        "enableDnsSupport" => out.enable_dns_support = flag(true),
        "enableDnsHostnames" => out.enable_dns_hostnames = flag(true),
        "enableNetworkAddressUsageMetrics" => out.enable_network_address_usage_metrics = flag(false),
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
