use ec2api::{AuthorizeSecurityGroupIngressOutput, AuthorizeSecurityGroupIngressRequest, Ec2Error};

use super::rules::{authorize, group_ref, legacy, rule_specs};
use crate::context::Ctx;

pub async fn handle(
    ctx: &Ctx,
    req: AuthorizeSecurityGroupIngressRequest,
) -> Result<AuthorizeSecurityGroupIngressOutput, Ec2Error> {
    let group = group_ref(req.group_id, req.group_name, "GroupId")?;
    let specs = rule_specs(req.ip_permissions, legacy!(req))?;
    let rules = authorize(ctx, group, false, specs, req.tag_specifications).await?;
    Ok(AuthorizeSecurityGroupIngressOutput { r#return: Some(true), security_group_rules: Some(rules) })
}
