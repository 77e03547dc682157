use ec2api::{
    Code, DeleteLaunchTemplateVersionsOutput, DeleteLaunchTemplateVersionsRequest,
    DeleteLaunchTemplateVersionsResponseErrorItem, DeleteLaunchTemplateVersionsResponseSuccessItem, Ec2Error,
    ResponseError,
};

use super::launch_template_shape::template_ref;
use crate::context::Ctx;

/// The most versions one request deletes, as on EC2.
const MAX_VERSIONS: usize = 200;

/// Each version is deleted or refused on its own; the answer lists both.
pub async fn handle(
    ctx: &Ctx,
    req: DeleteLaunchTemplateVersionsRequest,
) -> Result<DeleteLaunchTemplateVersionsOutput, Ec2Error> {
    let template = template_ref(req.launch_template_id, req.launch_template_name)?;
    if req.versions.is_empty() {
        return Err(Ec2Error::missing_parameter("LaunchTemplateVersion"));
    }
    if req.versions.len() > MAX_VERSIONS {
        return Err(Ec2Error::new(
            Code::InvalidParameterValue,
            format!("You can delete up to {MAX_VERSIONS} launch template versions per request."),
        ));
    }
    let account = ctx.account().to_owned();
    let versions = req.versions;
    let (record, deleted, refused) =
        ctx.call(move |b| b.delete_launch_template_versions(&account, &template, &versions)).await?;
    Ok(DeleteLaunchTemplateVersionsOutput {
        successfully_deleted_launch_template_versions: Some(
            deleted
                .into_iter()
                .map(|number| DeleteLaunchTemplateVersionsResponseSuccessItem {
                    launch_template_id: Some(record.id.clone()),
                    launch_template_name: Some(record.name.clone()),
                    version_number: super::long(number),
                })
                .collect(),
        ),
        unsuccessfully_deleted_launch_template_versions: Some(
            refused
                .into_iter()
                .map(|r| DeleteLaunchTemplateVersionsResponseErrorItem {
                    launch_template_id: Some(record.id.clone()),
                    launch_template_name: Some(record.name.clone()),
                    version_number: r.version.parse().ok(),
                    response_error: Some(ResponseError { code: Some(r.code.to_owned()), message: Some(r.message) }),
                })
                .collect(),
        ),
    })
}
