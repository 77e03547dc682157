use ec2api::{Ec2Error, ModifyLaunchTemplateOutput, ModifyLaunchTemplateRequest};

use super::launch_template_shape::{launch_template, template_ref, version_ref};
use crate::context::Ctx;

/// What ModifyLaunchTemplate changes: the default version.
pub async fn handle(ctx: &Ctx, req: ModifyLaunchTemplateRequest) -> Result<ModifyLaunchTemplateOutput, Ec2Error> {
    let template = template_ref(req.launch_template_id, req.launch_template_name)?;
    let account = ctx.account().to_owned();
    let (record, tags) = match req.default_version.filter(|v| !v.is_empty()) {
        Some(text) => {
            let version = version_ref("SetDefaultVersion", &text)?;
            ctx.call(move |b| {
                let record = b.set_default_launch_template_version(&account, &template, version)?;
                let tags = b.tags_of(&account, [record.id.as_str()])?.remove(&record.id).unwrap_or_default();
                Ok((record, tags))
            })
            .await?
        }
        None => {
            ctx.call(move |b| {
                let record = b.launch_template(&account, &template)?;
                let tags = b.tags_of(&account, [record.id.as_str()])?.remove(&record.id).unwrap_or_default();
                Ok((record, tags))
            })
            .await?
        }
    };
    Ok(ModifyLaunchTemplateOutput { launch_template: Some(launch_template(&record, &tags)) })
}
