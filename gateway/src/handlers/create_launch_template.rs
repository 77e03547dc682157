use backend::launch_templates::NewTemplate;
use ec2api::{CreateLaunchTemplateOutput, CreateLaunchTemplateRequest, Ec2Error};

use super::launch_template_shape::{check_name, launch_template, saved_data};
use super::tags_from_specs;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: CreateLaunchTemplateRequest) -> Result<CreateLaunchTemplateOutput, Ec2Error> {
    check_name(&req.launch_template_name)?;
    let tags = tags_from_specs(req.tag_specifications, "launch-template")?;
    let new = NewTemplate {
        name: req.launch_template_name,
        description: req.version_description,
        data: saved_data(&req.launch_template_data)?,
        client_token: req.client_token.filter(|t| !t.is_empty()),
        tags,
    };
    let account = ctx.account().to_owned();
    let (template, tags) = ctx
        .call(move |b| {
            let (template, _) = b.create_launch_template(&account, new)?;
            let tags = b.tags_of(&account, [template.id.as_str()])?.remove(&template.id).unwrap_or_default();
            Ok((template, tags))
        })
        .await?;
    Ok(CreateLaunchTemplateOutput { launch_template: Some(launch_template(&template, &tags)), warning: None })
}
