use ec2api::{AttributeValue, DescribeInstanceAttributeOutput, DescribeInstanceAttributeRequest, Ec2Error};

use super::shapes::{Joins, ROOT_DEVICE};
use super::{attribute as value, check_ids, flag};
use crate::context::Ctx;

/// Every attribute name EC2 defines, from botocore's model.
const ATTRIBUTES: &[&str] = ec2api::values::INSTANCE_ATTRIBUTE_NAME;

pub async fn handle(
    ctx: &Ctx,
    req: DescribeInstanceAttributeRequest,
) -> Result<DescribeInstanceAttributeOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.instance_id), backend::ResourceKind::Instance)?;
    if !ATTRIBUTES.contains(&req.attribute.as_str()) {
        return Err(Ec2Error::invalid_value(
            "Attribute",
            &req.attribute,
            &format!("Expected one of: {}.", ATTRIBUTES.join(", ")),
        ));
    }
    let account = ctx.account().to_owned();
    let id = req.instance_id.clone();
    let (r, joins) = ctx
        .snapshot(move |b| {
            let record = b.instance(&account, &id)?;
            let joins = Joins::for_instances(b, &account, std::slice::from_ref(&record))?;
            Ok((record, joins))
        })
        .await?;
    let mut out = DescribeInstanceAttributeOutput { instance_id: Some(r.id.clone()), ..Default::default() };
    match req.attribute.as_str() {
        "instanceType" => out.instance_type = value(&r.instance_type),
        // The image a kernel or ramdisk was chosen from (ModifyInstanceAttribute); empty while
        // the instance boots its own image's, as EC2 answers for HVM instances.
        "kernel" => out.kernel_id = Some(AttributeValue { value: r.kernel_image.clone() }),
        "ramdisk" => out.ramdisk_id = Some(AttributeValue { value: r.ramdisk_image.clone() }),
        "userData" => out.user_data = Some(AttributeValue { value: r.user_data.clone() }),
        "disableApiTermination" => out.disable_api_termination = flag(r.disable_api_termination),
        "disableApiStop" => out.disable_api_stop = flag(r.disable_api_stop),
        "instanceInitiatedShutdownBehavior" => out.instance_initiated_shutdown_behavior = value(&r.shutdown_behavior),
        "rootDeviceName" => out.root_device_name = value(ROOT_DEVICE),
        "blockDeviceMapping" => out.block_device_mappings = Some(joins.block_devices(&r)),
        "productCodes" => out.product_codes = Some(vec![]),
        "sourceDestCheck" => out.source_dest_check = flag(r.source_dest_check),
        "groupSet" => out.groups = Some(joins.groups(&r)),
        "ebsOptimized" => out.ebs_optimized = flag(r.ebs_optimized),
        "sriovNetSupport" => out.sriov_net_support = Some(Default::default()),
        "enaSupport" => out.ena_support = flag(false),
        _ => out.enclave_options = Some(ec2api::EnclaveOptions { enabled: Some(false) }),
    }
    Ok(out)
}
