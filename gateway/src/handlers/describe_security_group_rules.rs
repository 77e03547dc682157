use std::borrow::Cow;

use ec2api::{DescribeSecurityGroupRulesOutput, DescribeSecurityGroupRulesRequest, Ec2Error};
use storage::{SecurityGroupRecord, SecurityGroupRuleRecord};

use super::describe::Describe;
use super::rules::{groups_and_tags, rule_view};
use super::{one, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &["group-id", "security-group-rule-id"];

/// A rule with the group it belongs to, for the filter engine.
struct InGroup<'a> {
    group: &'a SecurityGroupRecord,
    rule: &'a SecurityGroupRuleRecord,
}

fn fields<'a>(item: &'a InGroup<'_>, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "group-id" => one(&item.group.id),
        "security-group-rule-id" => one(&item.rule.id),
        _ => vec![],
    }
}

pub async fn handle(
    ctx: &Ctx,
    req: DescribeSecurityGroupRulesRequest,
) -> Result<DescribeSecurityGroupRulesOutput, Ec2Error> {
    let describe = Describe::of(ctx, "DescribeSecurityGroupRules")
        .ids(req.security_group_rule_ids, backend::ResourceKind::SecurityGroupRule)?
        .filters(req.filters.as_deref(), FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let (groups, tags) = groups_and_tags(ctx).await?;
    let rules: Vec<InGroup> =
        groups.iter().flat_map(|group| group.rules.iter().map(move |rule| InGroup { group, rule })).collect();
    let with_tags = rules.iter().map(|r| (r, tags.get(&r.rule.id).map_or(NO_TAGS, Vec::as_slice)));
    let (items, next_token) = describe.page(with_tags, |r| &r.rule.id, fields, |_| true)?;
    let views = items.iter().map(|(r, tags)| rule_view(r.group, r.rule, tags)).collect();
    Ok(DescribeSecurityGroupRulesOutput { security_group_rules: Some(views), next_token })
}
