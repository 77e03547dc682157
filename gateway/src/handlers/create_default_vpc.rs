use ec2api::{CreateDefaultVpcOutput, CreateDefaultVpcRequest, Ec2Error};

use super::networks::vpc;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, _req: CreateDefaultVpcRequest) -> Result<CreateDefaultVpcOutput, Ec2Error> {
    let account = ctx.account().to_owned();
    let record = ctx.call(move |b| b.create_default_vpc(&account)).await?;
    Ok(CreateDefaultVpcOutput { vpc: Some(vpc(&record, &[])) })
}
