use ec2api::{AttributeValue, DescribeImageAttributeOutput, DescribeImageAttributeRequest, Ec2Error, LaunchPermission};

use super::attribute as value;
use crate::context::Ctx;

/// Every attribute name EC2 defines, from botocore's model.
const ATTRIBUTES: &[&str] = ec2api::values::IMAGE_ATTRIBUTE_NAME;

/// One attribute per call, of an image the caller owns (as on EC2, a public image of
/// another account's is visible but its attributes are not).
pub async fn handle(ctx: &Ctx, req: DescribeImageAttributeRequest) -> Result<DescribeImageAttributeOutput, Ec2Error> {
    if !ATTRIBUTES.contains(&req.attribute.as_str()) {
        return Err(Ec2Error::invalid_value(
            "Attribute",
            &req.attribute,
            &format!("Expected one of: {}.", ATTRIBUTES.join(", ")),
        ));
    }
    super::check_ids(std::slice::from_ref(&req.image_id), backend::ResourceKind::Image)?;
    let account = ctx.account().to_owned();
    let id = req.image_id.clone();
    let image = ctx.snapshot(move |b| b.owned_image(&account, &id)).await?;
    let mut out = DescribeImageAttributeOutput { image_id: Some(image.id.clone()), ..Default::default() };
    match req.attribute.as_str() {
        "description" => out.description = value(image.description),
        // By the image's id, as DescribeImages names them (never a host path).
        "kernel" => out.kernel_id = Some(AttributeValue { value: image.kernel.as_ref().map(|_| image.id.clone()) }),
        "ramdisk" => out.ramdisk_id = Some(AttributeValue { value: image.initrd.as_ref().map(|_| image.id.clone()) }),
        "launchPermission" => {
            let everyone = image.public.then(|| LaunchPermission { group: Some("all".into()), ..Default::default() });
            let accounts = image
                .launch_permissions
                .iter()
                .map(|a| LaunchPermission { user_id: Some(a.clone()), ..Default::default() });
            out.launch_permissions = Some(everyone.into_iter().chain(accounts).collect());
        }
        "productCodes" => out.product_codes = Some(vec![]),
        "blockDeviceMapping" => out.block_device_mappings = Some(vec![]),
        "sriovNetSupport" => out.sriov_net_support = Some(Default::default()),
        "bootMode" => out.boot_mode = Some(Default::default()),
        "tpmSupport" => out.tpm_support = Some(Default::default()),
        "uefiData" => out.uefi_data = Some(Default::default()),
        "lastLaunchedTime" => out.last_launched_time = Some(Default::default()),
        "imdsSupport" => out.imds_support = Some(Default::default()),
        _ => out.deregistration_protection = value("disabled"),
    }
    Ok(out)
}
