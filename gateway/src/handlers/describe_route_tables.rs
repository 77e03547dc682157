use backend::ResourceKind;
use ec2api::{DescribeRouteTablesOutput, DescribeRouteTablesRequest, Ec2Error};
use storage::{RouteTableRecord, RouteTarget};

use super::describe::Describe;
use super::networks::{route_table, route_table_fields, RouteTableView, ROUTE_TABLE_FILTERS};
use super::NO_TAGS;
use crate::context::Ctx;

/// Route tables with each route's state: `blackhole` when its gateway left the VPC or its
/// instance or interface is gone.
pub fn views(
    b: &backend::Backend,
    account: &str,
    tables: Vec<RouteTableRecord>,
) -> backend::Result<Vec<RouteTableView>> {
    let gateways = b.internet_gateways(account)?;
    let live = b.live_interfaces(account)?;
    let nats = b.nat_gateways(account)?;
    Ok(tables
        .into_iter()
        .map(|record| {
            let active = record
                .routes
                .iter()
                .map(|route| match &route.target {
                    RouteTarget::Local => true,
                    RouteTarget::InternetGateway(id) => {
                        gateways.iter().any(|g| g.id == *id && g.vpc_id.as_deref() == Some(record.vpc_id.as_str()))
                    }
                    RouteTarget::Instance(id) => live.iter().any(|(instance, _)| instance == id),
                    RouteTarget::NetworkInterface(id) => live.iter().any(|(_, eni)| eni == id),
                    RouteTarget::NatGateway(id) => nats.iter().any(|n| n.id == *id),
                })
                .collect();
            let through = record
                .routes
                .iter()
                .map(|route| {
                    live.iter()
                        .find(|(instance, eni)| match &route.target {
                            // An instance's route leads to its primary interface, listed first.
                            RouteTarget::Instance(id) => instance == id,
                            RouteTarget::NetworkInterface(id) => eni == id,
                            _ => false,
                        })
                        .cloned()
                })
                .collect();
            RouteTableView { record, active, through }
        })
        .collect())
}

pub async fn handle(ctx: &Ctx, req: DescribeRouteTablesRequest) -> Result<DescribeRouteTablesOutput, Ec2Error> {
    let describe = Describe::of(ctx, "DescribeRouteTables")
        .ids(req.route_table_ids, ResourceKind::RouteTable)?
        .filters(req.filters.as_deref(), ROUTE_TABLE_FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 100)?;
    let account = ctx.account().to_owned();
    let (tables, tags) = ctx
        .snapshot(move |b| {
            let tables = views(b, &account, b.route_tables(&account)?)?;
            let tags = b.tags_of(&account, tables.iter().map(|t| t.record.id.as_str()))?;
            Ok((tables, tags))
        })
        .await?;
    let rows = tables.iter().map(|t| (t, tags.get(&t.record.id).map_or(NO_TAGS, Vec::as_slice)));
    let (page, next_token) = describe.page(rows, |t| &t.record.id, route_table_fields, |_| true)?;
    Ok(DescribeRouteTablesOutput {
        route_tables: Some(page.into_iter().map(|(t, tags)| route_table(t, tags)).collect()),
        next_token,
    })
}
