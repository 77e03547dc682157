use ec2api::{CreateInternetGatewayOutput, CreateInternetGatewayRequest, Ec2Error};

use super::networks::gateway;
use super::tags_from_specs;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: CreateInternetGatewayRequest) -> Result<CreateInternetGatewayOutput, Ec2Error> {
    let tags = tags_from_specs(req.tag_specifications, "internet-gateway")?;
    let (account, shown) = (ctx.account().to_owned(), tags.clone());
    let record = ctx.call(move |b| b.create_internet_gateway(&account, &tags)).await?;
    Ok(CreateInternetGatewayOutput { internet_gateway: Some(gateway(&record, &shown)) })
}
