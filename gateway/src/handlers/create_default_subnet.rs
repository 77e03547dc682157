use ec2api::{CreateDefaultSubnetOutput, CreateDefaultSubnetRequest, Ec2Error};

use super::networks::{subnet, SubnetView};
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: CreateDefaultSubnetRequest) -> Result<CreateDefaultSubnetOutput, Ec2Error> {
    if req.ipv6_native == Some(true) {
        return Err(Ec2Error::new(ec2api::Code::UnsupportedOperation, "IPv6-only subnets are not supported."));
    }
    let (account, region) = (ctx.account().to_owned(), ctx.region.clone());
    let view = ctx
        .call(move |b| {
            let record = b.create_default_subnet(
                &account,
                req.availability_zone.as_deref(),
                req.availability_zone_id.as_deref(),
            )?;
            b.store().read(|tx| SubnetView::of(b, tx, &region, record))
        })
        .await?;
    Ok(CreateDefaultSubnetOutput { subnet: Some(subnet(&view, &[])) })
}
