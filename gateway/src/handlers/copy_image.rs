use backend::images::ImageCopy;
use ec2api::{Code, CopyImageOutput, CopyImageRequest, Ec2Error};

use super::tags_from_specs;
use crate::context::Ctx;

/// A copy of an image the caller may launch (its own, a public one or one shared with it),
/// from any region Stratus serves into the caller's; `pending` until the disk is copied.
pub async fn handle(ctx: &Ctx, req: CopyImageRequest) -> Result<CopyImageOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.source_image_id), backend::ResourceKind::Image)?;
    if req.encrypted == Some(true) || req.kms_key_id.is_some() {
        return Err(Ec2Error::new(Code::UnsupportedOperation, "Encrypted images are not supported yet.".to_owned()));
    }
    if req.destination_outpost_arn.is_some() {
        return Err(Ec2Error::new(Code::UnsupportedOperation, "Stratus has no Outposts.".to_owned()));
    }
    let mut tags = tags_from_specs(req.tag_specifications, "image")?;
    let copy_tags = req.copy_image_tags == Some(true);
    let source_region = req.source_region;
    let account = ctx.account().to_owned();
    let copy = ImageCopy {
        source_image_id: req.source_image_id,
        name: req.name,
        description: req.description,
        client_token: req.client_token.filter(|t| !t.is_empty()),
        tags: Vec::new(),
    };
    let image = ctx
        .call(move |b| {
            if !b.topology().regions.iter().any(|r| r.name == source_region) {
                return Err(backend::Error::InvalidParameter {
                    name: "SourceRegion",
                    message: format!("Invalid region: {source_region}"),
                });
            }
            // The source's own tags come along only from an image of the caller's: another
            // account's tags are not the caller's to see.
            if copy_tags {
                let source = b.image(&account, &copy.source_image_id)?;
                if source.owner == account {
                    let mut own = b.tags_of(&account, [source.id.as_str()])?.remove(&source.id).unwrap_or_default();
                    own.retain(|(k, _)| !tags.iter().any(|(t, _)| t == k));
                    tags.extend(own);
                }
            }
            b.copy_image(&account, ImageCopy { tags, ..copy })
        })
        .await?;
    Ok(CopyImageOutput { image_id: Some(image.id) })
}
