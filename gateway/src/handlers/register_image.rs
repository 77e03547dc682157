use backend::images::NewImage;
use ec2api::{Ec2Error, RegisterImageOutput, RegisterImageRequest};

use super::tags_from_specs;
use crate::context::Ctx;

/// `ImageLocation` is a disk path the hosts can read; `KernelId` and `RamdiskId` may be paths
/// too, for direct kernel boot. Accounts other than admin ones may only point into the data
/// dir's `images/` folder, so that nobody boots a host file they could not read.
pub async fn handle(ctx: &Ctx, req: RegisterImageRequest) -> Result<RegisterImageOutput, Ec2Error> {
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
    let admin = ctx.principal.admin;
    let image = ctx
        .call(move |b| {
            if !admin {
                b.check_user_image_paths(&new)?;
            }
            b.register_image(&account, new)
        })
        .await?;
    Ok(RegisterImageOutput { image_id: Some(image.id) })
}
