use backend::interfaces::InterfaceChange;
use ec2api::{Code, Ec2Error, ModifyNetworkInterfaceAttributeOutput, ModifyNetworkInterfaceAttributeRequest};

use super::check_ids;
use crate::context::Ctx;

/// One attribute per call, as on EC2: groups, description, `SourceDestCheck`, or the
/// attachment's `DeleteOnTermination`.
pub async fn handle(
    ctx: &Ctx,
    req: ModifyNetworkInterfaceAttributeRequest,
) -> Result<ModifyNetworkInterfaceAttributeOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.network_interface_id), backend::ResourceKind::NetworkInterface)?;
    if req.ena_srd_specification.is_some()
        || req.enable_primary_ipv6.is_some()
        || req.connection_tracking_specification.is_some()
        || req.associate_public_ip_address.is_some()
        || req.associated_subnet_ids.as_ref().is_some_and(|s| !s.is_empty())
    {
        return Err(Ec2Error::new(
            Code::UnsupportedOperation,
            "Only Groups, Description, SourceDestCheck and Attachment.DeleteOnTermination can be changed here.",
        ));
    }
    let mut changes = Vec::new();
    if let Some(groups) = req.groups.filter(|g| !g.is_empty()) {
        check_ids(&groups, backend::ResourceKind::SecurityGroup)?;
        changes.push(InterfaceChange::Groups(groups));
    }
    if let Some(description) = req.description {
        changes.push(InterfaceChange::Description(description.value.unwrap_or_default()));
    }
    if let Some(check) = req.source_dest_check {
        let value = check.value.ok_or_else(|| Ec2Error::missing_parameter("SourceDestCheck.Value"))?;
        changes.push(InterfaceChange::SourceDestCheck(value));
    }
    if let Some(attachment) = req.attachment {
        let attachment_id =
            attachment.attachment_id.ok_or_else(|| Ec2Error::missing_parameter("Attachment.AttachmentId"))?;
        let delete = attachment
            .delete_on_termination
            .ok_or_else(|| Ec2Error::missing_parameter("Attachment.DeleteOnTermination"))?;
        changes.push(InterfaceChange::DeleteOnTermination { attachment_id, delete });
    }
    let change = match changes.len() {
        0 => return Err(Ec2Error::new(Code::MissingParameter, "No attributes specified.")),
        1 => changes.remove(0),
        _ => {
            return Err(Ec2Error::new(
                Code::InvalidParameterCombination,
                "Fields for multiple attribute types specified: only one attribute can be modified at a time.",
            ))
        }
    };
    let account = ctx.account().to_owned();
    ctx.call(move |b| b.modify_network_interface(&account, &req.network_interface_id, change)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
