use ec2api::{Ec2Error, ReleaseAddressOutput, ReleaseAddressRequest};

use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: ReleaseAddressRequest) -> Result<ReleaseAddressOutput, Ec2Error> {
    if let Some(id) = &req.allocation_id {
        super::check_ids(std::slice::from_ref(id), backend::ResourceKind::ElasticIp)?;
    }
    let account = ctx.account().to_owned();
    let (allocation, public_ip) = (req.allocation_id, req.public_ip);
    ctx.call(move |b| {
        let allocation = match (allocation, public_ip) {
            (Some(id), _) => id,
            (None, Some(ip)) => b.allocation_of(&account, &ip)?,
            (None, None) => return Err(backend::Error::MissingParameter("AllocationId".into())),
        };
        b.release_address(&account, &allocation)
    })
    .await?;
    Ok(ec2api::xml::ReturnTrue)
}
