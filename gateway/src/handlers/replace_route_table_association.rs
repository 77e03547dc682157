use ec2api::{Ec2Error, ReplaceRouteTableAssociationOutput, ReplaceRouteTableAssociationRequest};

use super::networks::association_state;
use crate::context::Ctx;

pub async fn handle(
    ctx: &Ctx,
    req: ReplaceRouteTableAssociationRequest,
) -> Result<ReplaceRouteTableAssociationOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.route_table_id), backend::ResourceKind::RouteTable)?;
    let (account, association, table) = (ctx.account().to_owned(), req.association_id, req.route_table_id);
    let id = ctx.call(move |b| b.replace_route_table_association(&account, &association, &table)).await?;
    Ok(ReplaceRouteTableAssociationOutput { new_association_id: Some(id), association_state: association_state() })
}
