use ec2api::{DetachNetworkInterfaceOutput, DetachNetworkInterfaceRequest, Ec2Error};

use crate::context::Ctx;

/// `Force` changes nothing: the NIC is pulled from the guest either way.
pub async fn handle(ctx: &Ctx, req: DetachNetworkInterfaceRequest) -> Result<DetachNetworkInterfaceOutput, Ec2Error> {
    let id = req.attachment_id;
    let well_formed =
        id.strip_prefix("eni-attach-").is_some_and(|hex| !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()));
    if !well_formed {
        return Err(Ec2Error::invalid_value("AttachmentId", &id, "Expected eni-attach- and hexadecimal digits."));
    }
    let account = ctx.account().to_owned();
    ctx.call(move |b| b.detach_network_interface(&account, &id)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
