use std::borrow::Cow;

use ec2api::{DescribeSecurityGroupRulesOutput, DescribeSecurityGroupRulesRequest, Ec2Error};
use storage::{SecurityGroupRecord, SecurityGroupRuleRecord};

use super::describe::Describe;
use super::rules::rule_view;
use super::{one, Row};
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
    // A page walks the account's rule index and reads the groups of its rules alone.
    let query = describe.list_query();
    let Describe { filters, page, .. } = describe;
    let (account, vpc) = (ctx.account().to_owned(), ctx.principal.default_vpc_id.clone());
    let listed = ctx
        .snapshot(move |b| {
            b.ensure_default_security_group(&account, &vpc)?;
            b.list_group_rules(&account, &query, |group, rule, tags| {
                filters.matches(&Row { item: &InGroup { group, rule }, tags, fields })
            })
        })
        .await?;
    if !listed.missing.is_empty() {
        return Err(crate::errors::not_found(backend::ResourceKind::SecurityGroupRule, &listed.missing));
    }
    let next_token = listed.more.then(|| listed.items.last().map(|i| page.token_after(&i.rule.id))).flatten();
    let views = listed.items.iter().map(|i| rule_view(&i.group, &i.rule, &i.tags)).collect();
    Ok(DescribeSecurityGroupRulesOutput { security_group_rules: Some(views), next_token })
}
