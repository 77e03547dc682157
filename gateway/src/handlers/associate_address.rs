use backend::addresses::Target;
use backend::ResourceKind;
use ec2api::{AssociateAddressOutput, AssociateAddressRequest, Code, Ec2Error};

use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: AssociateAddressRequest) -> Result<AssociateAddressOutput, Ec2Error> {
    let target = match (req.instance_id, req.network_interface_id) {
        (Some(id), None) => {
            super::check_ids(std::slice::from_ref(&id), ResourceKind::Instance)?;
            Target::Instance(id)
        }
        (None, Some(id)) => {
            super::check_ids(std::slice::from_ref(&id), ResourceKind::NetworkInterface)?;
            Target::NetworkInterface(id)
        }
        (Some(_), Some(_)) => {
            return Err(Ec2Error::new(
                Code::InvalidParameterCombination,
                "You may specify an instance or a network interface, but not both.",
            ))
        }
        (None, None) => return Err(Ec2Error::missing_parameter("instanceId or networkInterfaceId")),
    };
    let account = ctx.account().to_owned();
    let (allocation, public_ip) = (req.allocation_id, req.public_ip);
    let private_ip = req.private_ip_address;
    let allow = req.allow_reassociation.unwrap_or(false);
    let id = ctx
        .call(move |b| {
            let allocation = match (allocation, public_ip) {
                (Some(id), _) => id,
                (None, Some(ip)) => b.allocation_of(&account, &ip)?,
                (None, None) => return Err(backend::Error::MissingParameter("AllocationId".into())),
            };
            b.associate_address(&account, &allocation, &target, private_ip.as_deref(), allow)
        })
        .await?;
    Ok(AssociateAddressOutput { association_id: Some(id) })
}
