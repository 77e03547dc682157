use ec2api::{AuthorizeSecurityGroupEgressOutput, AuthorizeSecurityGroupEgressRequest, Ec2Error};

use super::rules::{authorize, group_ref, legacy, rule_specs};
use crate::context::Ctx;

pub async fn handle(
    ctx: &Ctx,
    req: AuthorizeSecurityGroupEgressRequest,
) -> Result<AuthorizeSecurityGroupEgressOutput, Ec2Error> {
    let group = group_ref(Some(req.group_id), None, "GroupId")?;
    let specs = rule_specs(req.ip_permissions, legacy!(req))?;
    let rules = authorize(ctx, group, true, specs, req.tag_specifications).await?;
    Ok(AuthorizeSecurityGroupEgressOutput { r#return: Some(true), security_group_rules: Some(rules) })
}
