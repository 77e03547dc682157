use ec2api::{DeleteLaunchTemplateOutput, DeleteLaunchTemplateRequest, Ec2Error};

use super::launch_template_shape::{launch_template, template_ref};
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DeleteLaunchTemplateRequest) -> Result<DeleteLaunchTemplateOutput, Ec2Error> {
    let template = template_ref(req.launch_template_id, req.launch_template_name)?;
    let account = ctx.account().to_owned();
    let (record, tags) = ctx
        .call(move |b| {
            let record = b.launch_template(&account, &template)?;
            let tags = b.tags_of(&account, [record.id.as_str()])?.remove(&record.id).unwrap_or_default();
            Ok((b.delete_launch_template(&account, &backend::launch_templates::TemplateRef::Id(record.id))?, tags))
        })
        .await?;
    Ok(DeleteLaunchTemplateOutput { launch_template: Some(launch_template(&record, &tags)) })
}
