use ec2api::{DisassociateRouteTableOutput, DisassociateRouteTableRequest, Ec2Error};

use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DisassociateRouteTableRequest) -> Result<DisassociateRouteTableOutput, Ec2Error> {
    let (account, id) = (ctx.account().to_owned(), req.association_id);
    ctx.call(move |b| b.disassociate_route_table(&account, &id)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
