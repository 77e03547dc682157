use std::borrow::Cow;

use ec2api::Code;
use ec2api::{DescribeSecurityGroupsOutput, DescribeSecurityGroupsRequest, Ec2Error, SecurityGroup};
use storage::{RulePeer, SecurityGroupRecord, SecurityGroupRuleRecord};

use super::describe::Describe;
use super::rules::{groups_and_tags, permissions};
use super::{arn, one, tag_list, NO_TAGS};
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
    let describe = describe.paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let (groups, tags) = groups_and_tags(ctx).await?;
    let default_vpc = &ctx.principal.default_vpc_id;
    if let Some(missing) = names.iter().find(|n| !groups.iter().any(|g| &g.name == *n && &g.vpc_id == default_vpc)) {
        return Err(Ec2Error::new(
            Code::InvalidGroupNotFound,
            format!("The security group '{missing}' does not exist in default VPC '{default_vpc}'"),
        ));
    }
    let with_tags = groups.iter().map(|g| (g, tags.get(&g.id).map_or(NO_TAGS, Vec::as_slice)));
    let (items, next_token) =
        describe.page(with_tags, |g| &g.id, fields, |g| names.is_empty() || names.contains(&g.name))?;
    let security_groups = items
        .into_iter()
        .map(|(g, tags)| SecurityGroup {
            group_id: Some(g.id.clone()),
            group_name: Some(g.name.clone()),
            description: Some(g.description.clone()),
            owner_id: Some(g.account.clone()),
            vpc_id: Some(g.vpc_id.clone()),
            ip_permissions: Some(permissions(g.rules.iter().filter(|r| !r.egress))),
            ip_permissions_egress: Some(permissions(g.rules.iter().filter(|r| r.egress))),
            security_group_arn: Some(arn(&ctx.region, &g.account, "security-group", &g.id)),
            tags: Some(tag_list(tags)),
        })
        .collect();
    Ok(DescribeSecurityGroupsOutput { security_groups: Some(security_groups), next_token })
}
