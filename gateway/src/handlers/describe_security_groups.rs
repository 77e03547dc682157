use std::borrow::Cow;

use backend::listing::Item;
use ec2api::{DescribeSecurityGroupsOutput, DescribeSecurityGroupsRequest, Ec2Error, SecurityGroup};
use storage::{RulePeer, SecurityGroupRecord, SecurityGroupRuleRecord};

use super::describe::Describe;
use super::rules::permissions;
use super::{arn, one, tag_list};
use crate::context::Ctx;

const FILTERS: &[&str] = &[
    "description",
    "group-id",
    "group-name",
    "owner-id",
    "vpc-id",
    "ip-permission.cidr",
    "ip-permission.ipv6-cidr",
    "ip-permission.from-port",
    "ip-permission.to-port",
    "ip-permission.protocol",
    "ip-permission.group-id",
    "ip-permission.prefix-list-id",
    "egress.ip-permission.cidr",
    "egress.ip-permission.ipv6-cidr",
    "egress.ip-permission.from-port",
    "egress.ip-permission.to-port",
    "egress.ip-permission.protocol",
    "egress.ip-permission.group-id",
    "egress.ip-permission.prefix-list-id",
];

/// A filter over one field of every rule in one direction.
fn rule_values<'a>(
    group: &'a SecurityGroupRecord,
    egress: bool,
    field: impl Fn(&'a SecurityGroupRuleRecord) -> Option<Cow<'a, str>>,
) -> Vec<Cow<'a, str>> {
    group.rules.iter().filter(|r| r.egress == egress).filter_map(field).collect()
}

fn fields<'a>(g: &'a SecurityGroupRecord, name: &str) -> Vec<Cow<'a, str>> {
    let (egress, rule_field) = match name.strip_prefix("egress.") {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    match rule_field {
        "ip-permission.cidr" => rule_values(g, egress, |r| match &r.peer {
            RulePeer::Ipv4 { cidr } => Some(Cow::Borrowed(cidr.as_str())),
            _ => None,
        }),
        "ip-permission.ipv6-cidr" => rule_values(g, egress, |r| match &r.peer {
            RulePeer::Ipv6 { cidr } => Some(Cow::Borrowed(cidr.as_str())),
            _ => None,
        }),
        "ip-permission.group-id" => rule_values(g, egress, |r| match &r.peer {
            RulePeer::Group { group_id, .. } => Some(Cow::Borrowed(group_id.as_str())),
            _ => None,
        }),
        "ip-permission.prefix-list-id" => rule_values(g, egress, |r| match &r.peer {
            RulePeer::PrefixList { id } => Some(Cow::Borrowed(id.as_str())),
            _ => None,
        }),
        "ip-permission.protocol" => rule_values(g, egress, |r| Some(Cow::Borrowed(r.protocol.as_str()))),
        "ip-permission.from-port" => rule_values(g, egress, |r| r.from_port.map(|p| Cow::Owned(p.to_string()))),
        "ip-permission.to-port" => rule_values(g, egress, |r| r.to_port.map(|p| Cow::Owned(p.to_string()))),
        _ => match name {
            "description" => one(&g.description),
            "group-id" => one(&g.id),
            "group-name" => one(&g.name),
            "owner-id" => one(&g.account),
            "vpc-id" => one(&g.vpc_id),
            _ => vec![],
        },
    }
}

pub async fn handle(ctx: &Ctx, req: DescribeSecurityGroupsRequest) -> Result<DescribeSecurityGroupsOutput, Ec2Error> {
    let names = req.group_names.unwrap_or_default();
    let mut describe = Describe::of(ctx, "DescribeSecurityGroups")
        .ids(req.group_ids, backend::ResourceKind::SecurityGroup)?
        .filters(req.filters.as_deref(), FILTERS)?;
    describe.narrowed_by("names", &names);
    let mut describe = describe.paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let (account, vpc, asked) = (ctx.account().to_owned(), ctx.principal.default_vpc_id.clone(), names.clone());
    let named = ctx
        .snapshot(move |b| {
            b.ensure_default_security_group(&account, &vpc)?;
            b.security_group_ids_named(&account, &vpc, &asked)
        })
        .await?;
    // Names are looked up in the default VPC: the page reads those groups alone.
    if describe.ids.is_empty() {
        describe.ids = named;
    }
    let (items, next_token) =
        describe.list(ctx, fields, move |g: &SecurityGroupRecord| names.is_empty() || names.contains(&g.name)).await?;
    let security_groups = items
        .into_iter()
        .map(|Item { record: g, tags }| SecurityGroup {
            security_group_arn: Some(arn(&ctx.region, &g.account, "security-group", &g.id)),
            group_id: Some(g.id),
            group_name: Some(g.name),
            description: Some(g.description),
            owner_id: Some(g.account),
            vpc_id: Some(g.vpc_id),
            ip_permissions: Some(permissions(g.rules.iter().filter(|r| !r.egress))),
            ip_permissions_egress: Some(permissions(g.rules.iter().filter(|r| r.egress))),
            tags: Some(tag_list(&tags)),
        })
        .collect();
    Ok(DescribeSecurityGroupsOutput { security_groups: Some(security_groups), next_token })
}
