use ec2api::{DeleteNetworkInterfaceOutput, DeleteNetworkInterfaceRequest, Ec2Error};

use super::check_ids;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DeleteNetworkInterfaceRequest) -> Result<DeleteNetworkInterfaceOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.network_interface_id), backend::ResourceKind::NetworkInterface)?;
    let account = ctx.account().to_owned();
    ctx.call(move |b| b.delete_network_interface(&account, &req.network_interface_id)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
