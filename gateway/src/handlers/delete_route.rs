use ec2api::{DeleteRouteOutput, DeleteRouteRequest, Ec2Error};

use super::routes::destination;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DeleteRouteRequest) -> Result<DeleteRouteOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.route_table_id), backend::ResourceKind::RouteTable)?;
    let destination =
        destination(req.destination_cidr_block, req.destination_ipv6_cidr_block, req.destination_prefix_list_id)?;
    let (account, table) = (ctx.account().to_owned(), req.route_table_id);
    ctx.call(move |b| b.delete_route(&account, &table, &destination)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
