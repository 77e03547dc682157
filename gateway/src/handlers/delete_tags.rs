use ec2api::{DeleteTagsOutput, DeleteTagsRequest, Ec2Error};

use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DeleteTagsRequest) -> Result<DeleteTagsOutput, Ec2Error> {
    // A tag without Value goes whatever its value; with Value (even empty) only on a match.
    let tags = req
        .tags
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, tag)| {
            let key = tag.key.ok_or_else(|| Ec2Error::missing_parameter(&format!("Tag.{}.Key", i + 1)))?;
            Ok((key, tag.value))
        })
        .collect::<Result<Vec<_>, Ec2Error>>()?;
    let account = ctx.account().to_owned();
    ctx.call(move |b| b.delete_tags(&account, &req.resources, &tags)).await?;
    Ok(DeleteTagsOutput::default())
}
