use backend::launch_templates::NewVersion;
use ec2api::{CreateLaunchTemplateVersionOutput, CreateLaunchTemplateVersionRequest, Ec2Error};

use super::launch_template_shape::{saved_data, template_ref, version, version_ref};
use crate::context::Ctx;

pub async fn handle(
    ctx: &Ctx,
    req: CreateLaunchTemplateVersionRequest,
) -> Result<CreateLaunchTemplateVersionOutput, Ec2Error> {
    let new = NewVersion {
        template: template_ref(req.launch_template_id, req.launch_template_name)?,
        source: req.source_version.as_deref().map(|v| version_ref("SourceVersion", v)).transpose()?,
        description: req.version_description,
        data: saved_data(&req.launch_template_data)?,
        client_token: req.client_token.filter(|t| !t.is_empty()),
    };
    let account = ctx.account().to_owned();
    let (template, made) = ctx.call(move |b| b.create_launch_template_version(&account, new)).await?;
    Ok(CreateLaunchTemplateVersionOutput { launch_template_version: Some(version(&template, &made)), warning: None })
}
