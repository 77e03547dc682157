use ec2api::{DeleteRouteTableOutput, DeleteRouteTableRequest, Ec2Error};

use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DeleteRouteTableRequest) -> Result<DeleteRouteTableOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.route_table_id), backend::ResourceKind::RouteTable)?;
    let (account, id) = (ctx.account().to_owned(), req.route_table_id);
    ctx.call(move |b| b.delete_route_table(&account, &id)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
