use ec2api::{DisassociateAddressOutput, DisassociateAddressRequest, Ec2Error};

use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DisassociateAddressRequest) -> Result<DisassociateAddressOutput, Ec2Error> {
    let account = ctx.account().to_owned();
    let (association, public_ip) = (req.association_id, req.public_ip);
    ctx.call(move |b| {
        let association = match (association, public_ip) {
            (Some(id), _) => id,
            (None, Some(ip)) => {
                let allocation = b.allocation_of(&account, &ip)?;
                let address = b.addresses_named(&account, &[allocation], &[])?.pop();
                match address.and_then(|a| a.association) {
                    Some(association) => association.id,
                    // Nothing to undo: EC2 answers success.
                    None => return Ok(()),
                }
            }
            (None, None) => return Err(backend::Error::MissingParameter("AssociationId".into())),
        };
        b.disassociate_address(&account, &association)
    })
    .await?;
    Ok(ec2api::xml::ReturnTrue)
}
