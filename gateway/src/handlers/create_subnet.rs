use ec2api::{CreateSubnetOutput, CreateSubnetRequest, Ec2Error};

use super::networks::{subnet, SubnetView};
use super::tags_from_specs;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: CreateSubnetRequest) -> Result<CreateSubnetOutput, Ec2Error> {
    let tags = tags_from_specs(req.tag_specifications, "subnet")?;
    super::check_ids(std::slice::from_ref(&req.vpc_id), backend::ResourceKind::Vpc)?;
    if req.ipv6_native == Some(true) || req.ipv6_cidr_block.is_some() || req.ipv4_ipam_pool_id.is_some() {
        return Err(Ec2Error::new(
            ec2api::Code::UnsupportedOperation,
            "IPv6 and IPAM subnets are not supported: give CidrBlock.",
        ));
    }
    let cidr = req.cidr_block.ok_or_else(|| Ec2Error::missing_parameter("CidrBlock"))?;
    let (account, region, shown) = (ctx.account().to_owned(), ctx.region.clone(), tags.clone());
    let view = ctx
        .call(move |b| {
            let record = b.create_subnet(
                &account,
                &req.vpc_id,
                &cidr,
                req.availability_zone.as_deref(),
                req.availability_zone_id.as_deref(),
                &tags,
            )?;
            b.store().read(|tx| SubnetView::of(b, tx, &region, record))
        })
        .await?;
    Ok(CreateSubnetOutput { subnet: Some(subnet(&view, &shown)) })
}
