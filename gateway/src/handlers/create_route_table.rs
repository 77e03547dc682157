use ec2api::{CreateRouteTableOutput, CreateRouteTableRequest, Ec2Error};

use super::networks::route_table;
use super::tags_from_specs;
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: CreateRouteTableRequest) -> Result<CreateRouteTableOutput, Ec2Error> {
    let tags = tags_from_specs(req.tag_specifications, "route-table")?;
    super::check_ids(std::slice::from_ref(&req.vpc_id), backend::ResourceKind::Vpc)?;
    let (account, shown) = (ctx.account().to_owned(), tags.clone());
    let view = ctx
        .call(move |b| {
            let table = b.create_route_table(&account, &req.vpc_id, &tags)?;
            b.store().read(|tx| super::describe_route_tables::view(tx, table))
        })
        .await?;
    Ok(CreateRouteTableOutput { route_table: Some(route_table(&view, &shown)), client_token: req.client_token })
}
