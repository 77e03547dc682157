use ec2api::{CreateTagsOutput, CreateTagsRequest, Ec2Error};

use super::tag_pairs;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: CreateTagsRequest) -> Result<CreateTagsOutput, Ec2Error> {
    let tags = tag_pairs(Some(req.tags), "Tag")?;
    let account = ctx.account().to_owned();
    ctx.call(move |b| b.create_tags(&account, &req.resources, &tags)).await?;
    Ok(CreateTagsOutput::default())
}
