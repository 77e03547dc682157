use backend::ResourceKind;
use ec2api::{DescribeRouteTablesOutput, DescribeRouteTablesRequest, Ec2Error};
use storage::RouteTableRecord;

use super::describe::Describe;
use super::networks::{route_table, route_table_fields, RouteTableView, ROUTE_TABLE_FILTERS};
use super::Row;
use crate::context::Ctx;

/// A route table with each route's state (`blackhole` when its gateway left the VPC or its
/// instance or interface is gone), read in `tx`.
pub fn view(tx: &impl storage::Reads, record: RouteTableRecord) -> backend::Result<RouteTableView> {
    let backend::vpcs::RouteStates { active, through } = backend::vpcs::route_states_in(tx, &record)?;
    Ok(RouteTableView { record, active, through })
}

pub async fn handle(ctx: &Ctx, req: DescribeRouteTablesRequest) -> Result<DescribeRouteTablesOutput, Ec2Error> {
    let (route_tables, next_token) = Describe::of(ctx, "DescribeRouteTables")
        .ids(req.route_table_ids, ResourceKind::RouteTable)?
        .filters(req.filters.as_deref(), ROUTE_TABLE_FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 100)?
        .list_shown::<RouteTableRecord, _>(
            ctx,
            // `route.state` is not in the record.
            |_, tx, filters, record, tags| {
                if filters.is_empty() {
                    return Ok(true); // nothing to test: the view is made once, for the answer
                }
                let view = view(tx, record.clone())?;
                Ok(filters.matches(&Row { item: &view, tags, fields: route_table_fields }))
            },
            |b, item| Ok(route_table(&b.store().read(|tx| view(tx, item.record))?, &item.tags)),
        )
        .await?;
    Ok(DescribeRouteTablesOutput { route_tables: Some(route_tables), next_token })
}
