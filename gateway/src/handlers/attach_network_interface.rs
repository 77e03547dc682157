use ec2api::{AttachNetworkInterfaceOutput, AttachNetworkInterfaceRequest, Code, Ec2Error};

use super::check_ids;
use crate::context::Ctx;

/// The NIC is hot-plugged by the instance's converge; the attachment shows `attaching` until
/// then, as on EC2.
pub async fn handle(ctx: &Ctx, req: AttachNetworkInterfaceRequest) -> Result<AttachNetworkInterfaceOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.network_interface_id), backend::ResourceKind::NetworkInterface)?;
    check_ids(std::slice::from_ref(&req.instance_id), backend::ResourceKind::Instance)?;
    if req.network_card_index.unwrap_or(0) != 0 {
        return Err(Ec2Error::new(Code::UnsupportedOperation, "Instances here have one network card (index 0)."));
    }
    if req.ena_srd_specification.is_some() || req.ena_queue_count.is_some() {
        return Err(Ec2Error::new(Code::UnsupportedOperation, "ENA Express and ENA queues are not supported."));
    }
    let index = u32::try_from(req.device_index).map_err(|_| {
        Ec2Error::invalid_value("DeviceIndex", &req.device_index.to_string(), "It must not be negative.")
    })?;
    let account = ctx.account().to_owned();
    let attachment = ctx
        .call(move |b| b.attach_network_interface(&account, &req.network_interface_id, &req.instance_id, index))
        .await?;
    Ok(AttachNetworkInterfaceOutput { attachment_id: Some(attachment), network_card_index: Some(0) })
}
