use ec2api::Code;
use ec2api::{CreateImageOutput, CreateImageRequest, Ec2Error};

use super::{check_ids, tag_pairs};
use crate::context::Ctx;

/// Answers at once with the new image id; the image is `pending` until its disk is copied.
pub async fn handle(ctx: &Ctx, req: CreateImageRequest) -> Result<CreateImageOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.instance_id), backend::ResourceKind::Instance)?;
    if req.block_device_mappings.as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(Ec2Error::new(
            Code::UnsupportedOperation,
            "An image holds the instance's root disk only; BlockDeviceMapping is not supported",
        ));
    }
    // Tags for `image` go on the image; `snapshot` tags have no snapshot to land on yet.
    let mut tags = Vec::new();
    for (index, spec) in req.tag_specifications.unwrap_or_default().into_iter().enumerate() {
        let path = format!("TagSpecification.{}", index + 1);
        match spec.resource_type.as_deref() {
            Some("image") => tags.extend(tag_pairs(spec.tags, &format!("{path}.Tag"))?),
            Some("snapshot") => {}
            other => {
                return Err(Ec2Error::invalid_value(
                    &format!("{path}.ResourceType"),
                    other.unwrap_or_default(),
                    "Expected 'image' or 'snapshot'.",
                ))
            }
        }
    }
    let account = ctx.account().to_owned();
    let description = req.description.unwrap_or_default();
    let image = ctx.call(move |b| b.create_image(&account, &req.instance_id, &req.name, &description, &tags)).await?;
    Ok(CreateImageOutput { image_id: Some(image.id) })
}
