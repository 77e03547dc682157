use backend::images::NewImage;
use ec2api::Code;
use ec2api::{Ec2Error, RegisterImageOutput, RegisterImageRequest};

use super::tags_from_specs;
use crate::context::Ctx;

/// `ImageLocation` is a disk path the hosts can read; `KernelId` and `RamdiskId` may be paths
/// too, for direct kernel boot. Only admin accounts may name host files: a tenant could
/// otherwise boot any file Stratus can read (another account's private image among them), and
/// learn which files exist from how the refusal differs. So every tenant's refusal is the same,
/// whatever the paths name; tenants make images with CreateImage.
pub async fn handle(ctx: &Ctx, req: RegisterImageRequest) -> Result<RegisterImageOutput, Ec2Error> {
    if !ctx.principal.admin {
        return Err(Ec2Error::new(
            Code::UnauthorizedOperation,
            "You are not authorized to perform this operation: only admin accounts may register host files \
             (ImageLocation, KernelId, RamdiskId) as images; make an image of an instance with CreateImage.",
        ));
    }
    let disk = req.image_location.ok_or_else(|| Ec2Error::missing_parameter("ImageLocation"))?;
    if let Some(arch) = req.architecture.as_deref().filter(|a| *a != "x86_64") {
        return Err(Ec2Error::invalid_value("Architecture", arch, "Stratus hosts run x86_64 guests."));
    }
    let tags = tags_from_specs(req.tag_specifications, "image")?;
    let new = NewImage {
        id: None,
        name: req.name,
        description: req.description.unwrap_or_default(),
        disk,
        kernel: req.kernel_id,
        initrd: req.ramdisk_id,
        cmdline: None,
        public: false,
        owned_files: vec![],
        tags,
    };
    let account = ctx.account().to_owned();
    let image = ctx.call(move |b| b.register_image(&account, new)).await?;
    Ok(RegisterImageOutput { image_id: Some(image.id) })
}
