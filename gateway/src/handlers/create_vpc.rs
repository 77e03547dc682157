use ec2api::{CreateVpcOutput, CreateVpcRequest, Ec2Error};

use super::networks::vpc;
use super::tags_from_specs;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: CreateVpcRequest) -> Result<CreateVpcOutput, Ec2Error> {
    let tags = tags_from_specs(req.tag_specifications, "vpc")?;
    if req.ipv4_ipam_pool_id.is_some()
        || req.amazon_provided_ipv6_cidr_block == Some(true)
        || req.ipv6_cidr_block.is_some()
    {
        return Err(Ec2Error::new(
            ec2api::Code::UnsupportedOperation,
            "IPAM pools and IPv6 blocks are not supported: give CidrBlock.",
        ));
    }
    let cidr = req.cidr_block.ok_or_else(|| Ec2Error::missing_parameter("CidrBlock"))?;
    let account = ctx.account().to_owned();
    let shown = tags.clone();
    let record = ctx.call(move |b| b.create_vpc(&account, &cidr, req.instance_tenancy.as_deref(), &tags)).await?;
    Ok(CreateVpcOutput { vpc: Some(vpc(&record, &shown)) })
}
