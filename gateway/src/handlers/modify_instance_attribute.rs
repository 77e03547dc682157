use backend::attributes::AttributeChange;
use base64::Engine;
use ec2api::Code;
use ec2api::{
    AttributeBooleanValue, AttributeValue, Ec2Error, ModifyInstanceAttributeOutput, ModifyInstanceAttributeRequest,
};

use super::check_ids;
use crate::context::Ctx;

fn text(v: Option<AttributeValue>) -> Option<String> {
    v.and_then(|v| v.value)
}

fn flag(v: Option<AttributeBooleanValue>) -> Option<bool> {
    v.and_then(|v| v.value)
}

fn boolean(name: &str, value: &str) -> Result<bool, Ec2Error> {
    value.parse().map_err(|_| Ec2Error::invalid_value(name, value, "Expected true or false."))
}

fn unsupported(name: &str) -> Ec2Error {
    Ec2Error::new(Code::UnsupportedOperation, format!("Modifying {name} is not supported by Stratus"))
}

fn source_dest_check(on: bool) -> Result<AttributeChange, Ec2Error> {
    Ok(AttributeChange::SourceDestCheck(on))
}

/// `BlockDeviceMapping.N`: what EC2 lets a running instance change of its devices, their
/// `DeleteOnTermination`.
fn delete_on_termination(
    mappings: Vec<ec2api::InstanceBlockDeviceMappingSpecification>,
) -> Result<AttributeChange, Ec2Error> {
    let mut changes = Vec::new();
    for (index, mapping) in mappings.into_iter().enumerate() {
        let path = format!("BlockDeviceMapping.{}", index + 1);
        let device = mapping.device_name.ok_or_else(|| Ec2Error::missing_parameter(&format!("{path}.DeviceName")))?;
        if mapping.no_device.is_some() || mapping.virtual_name.is_some() {
            return Err(unsupported(&format!(
                "{path}: only Ebs.DeleteOnTermination can be modified; NoDevice and VirtualName"
            )));
        }
        let on = mapping
            .ebs
            .and_then(|e| e.delete_on_termination)
            .ok_or_else(|| Ec2Error::missing_parameter(&format!("{path}.Ebs.DeleteOnTermination")))?;
        changes.push((device, on));
    }
    Ok(AttributeChange::DeleteOnTermination(changes))
}

/// Exactly one change per call, given either as `<Attribute>.Value=…` or as the older
/// `Attribute=<name>&Value=…` pair.
fn change(req: ModifyInstanceAttributeRequest) -> Result<AttributeChange, Ec2Error> {
    let mut changes = Vec::new();
    if let Some(v) = text(req.instance_type) {
        changes.push(AttributeChange::InstanceType(v));
    }
    if let Some(v) = req.user_data {
        changes.push(AttributeChange::UserData(v.value.map(|b| b.0).unwrap_or_default()));
    }
    if let Some(v) = flag(req.disable_api_termination) {
        changes.push(AttributeChange::DisableApiTermination(v));
    }
    if let Some(v) = flag(req.disable_api_stop) {
        changes.push(AttributeChange::DisableApiStop(v));
    }
    if let Some(v) = text(req.instance_initiated_shutdown_behavior) {
        changes.push(AttributeChange::ShutdownBehavior(v));
    }
    if let Some(v) = flag(req.ebs_optimized) {
        changes.push(AttributeChange::EbsOptimized(v));
    }
    if let Some(groups) = req.groups.filter(|g| !g.is_empty()) {
        changes.push(AttributeChange::SecurityGroups(groups));
    }
    if let Some(v) = flag(req.source_dest_check) {
        changes.push(source_dest_check(v)?);
    }
    if let Some(mappings) = req.block_device_mappings.filter(|m| !m.is_empty()) {
        changes.push(delete_on_termination(mappings)?);
    }
    if let Some(v) = req.kernel {
        changes.push(AttributeChange::Kernel(v.value.unwrap_or_default()));
    }
    if let Some(v) = req.ramdisk {
        changes.push(AttributeChange::Ramdisk(v.value.unwrap_or_default()));
    }
    let not_modifiable =
        [("SriovNetSupport", req.sriov_net_support.is_some()), ("EnaSupport", req.ena_support.is_some())];
    if let Some((name, _)) = not_modifiable.iter().find(|(_, given)| *given) {
        return Err(unsupported(name));
    }
    if let Some(attribute) = req.attribute {
        let value = req.value.ok_or_else(|| Ec2Error::missing_parameter("Value"))?;
        changes.push(match attribute.as_str() {
            "instanceType" => AttributeChange::InstanceType(value),
            // The value form carries user data base64-encoded, as the `UserData.Value` blob does
            // on the wire.
            "userData" => AttributeChange::UserData(
                base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .map_err(|_| Ec2Error::invalid_value("Value", "…", "Invalid BASE64 encoding of user data."))?,
            ),
            "disableApiTermination" => AttributeChange::DisableApiTermination(boolean("Value", &value)?),
            "disableApiStop" => AttributeChange::DisableApiStop(boolean("Value", &value)?),
            "instanceInitiatedShutdownBehavior" => AttributeChange::ShutdownBehavior(value),
            "ebsOptimized" => AttributeChange::EbsOptimized(boolean("Value", &value)?),
            "sourceDestCheck" => source_dest_check(boolean("Value", &value)?)?,
            "kernel" => AttributeChange::Kernel(value),
            "ramdisk" => AttributeChange::Ramdisk(value),
            "sriovNetSupport" | "enaSupport" | "blockDeviceMapping" => {
                return Err(unsupported(&attribute))
            }
            other => {
                return Err(Ec2Error::invalid_value(
                    "Attribute",
                    other,
                    "Expected instanceType, kernel, ramdisk, userData, disableApiTermination, disableApiStop, instanceInitiatedShutdownBehavior, ebsOptimized or sourceDestCheck.",
                ))
            }
        });
    }
    match changes.len() {
        0 => Err(Ec2Error::missing_parameter("Attribute")),
        1 => Ok(changes.remove(0)),
        _ => Err(Ec2Error::new(
            Code::InvalidParameterCombination,
            "Fields for multiple attribute types specified: modify one attribute per request",
        )),
    }
}

pub async fn handle(ctx: &Ctx, req: ModifyInstanceAttributeRequest) -> Result<ModifyInstanceAttributeOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.instance_id), backend::ResourceKind::Instance)?;
    let id = req.instance_id.clone();
    let change = change(req)?;
    let account = ctx.account().to_owned();
    ctx.call(move |b| b.modify_instance_attribute(&account, &id, change)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
