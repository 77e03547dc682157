use ec2api::{CreateRouteOutput, CreateRouteRequest, Ec2Error};

use super::routes::route_of;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, mut req: CreateRouteRequest) -> Result<CreateRouteOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.route_table_id), backend::ResourceKind::RouteTable)?;
    let local = false;
    let (destination, target) = route_of!(req, local)?;
    let (account, table) = (ctx.account().to_owned(), req.route_table_id);
    ctx.call(move |b| b.put_route(&account, &table, &destination, &target, false)).await?;
    Ok(CreateRouteOutput { r#return: Some(true) })
}
