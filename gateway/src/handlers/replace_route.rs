use ec2api::{Ec2Error, ReplaceRouteOutput, ReplaceRouteRequest};

use super::routes::route_of;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, mut req: ReplaceRouteRequest) -> Result<ReplaceRouteOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.route_table_id), backend::ResourceKind::RouteTable)?;
    let local = req.local_target == Some(true);
    let (destination, target) = route_of!(req, local)?;
    let (account, table) = (ctx.account().to_owned(), req.route_table_id);
    ctx.call(move |b| b.put_route(&account, &table, &destination, &target, true)).await?;
    Ok(ec2api::xml::ReturnTrue)
}
