use std::borrow::Cow;

use ec2api::filter::FilterSet;
use ec2api::pagination::PageRequest;
use ec2api::{DescribeSecurityGroupRulesOutput, DescribeSecurityGroupRulesRequest, Ec2Error};
use storage::{SecurityGroupRecord, SecurityGroupRuleRecord};

use super::rules::{groups_and_tags, rule_view};
use super::{one, Row, NO_TAGS};
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
    let ids = req.security_group_rule_ids.unwrap_or_default();
    super::check_ids(&ids, backend::ResourceKind::SecurityGroupRule)?;
    let filters = FilterSet::new(req.filters.as_deref(), FILTERS)?;
    let page = PageRequest::new(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let (groups, tags) = groups_and_tags(ctx).await?;
    let mut rules: Vec<InGroup> =
        groups.iter().flat_map(|group| group.rules.iter().map(move |rule| InGroup { group, rule })).collect();
    super::ensure_found(backend::ResourceKind::SecurityGroupRule, &ids, |id| rules.iter().any(|r| &r.rule.id == id))?;
    let tags_of = |id: &str| tags.get(id).map_or(NO_TAGS, Vec::as_slice);
    rules.retain(|r| ids.is_empty() || ids.contains(&r.rule.id));
    rules.retain(|r| filters.matches(&Row { item: r, tags: tags_of(&r.rule.id), fields }));
    rules.sort_by(|a, b| a.rule.id.cmp(&b.rule.id));
    let (items, next_token) = page.page(rules, |r| &r.rule.id);
    let views = items.iter().map(|r| rule_view(r.group, r.rule, tags_of(&r.rule.id))).collect();
    Ok(DescribeSecurityGroupRulesOutput { security_group_rules: Some(views), next_token })
}
