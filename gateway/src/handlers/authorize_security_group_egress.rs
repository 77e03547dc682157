use ec2api::{AuthorizeSecurityGroupEgressOutput, AuthorizeSecurityGroupEgressRequest, Ec2Error};

use super::rules::{authorize, group_ref, rule_specs, Legacy};
use crate::context::Ctx;

pub async fn handle(
    ctx: &Ctx,
    req: AuthorizeSecurityGroupEgressRequest,
) -> Result<AuthorizeSecurityGroupEgressOutput, Ec2Error> {
    let group = group_ref(Some(req.group_id), None)?;
    let legacy = Legacy {
        ip_protocol: req.ip_protocol,
        from_port: req.from_port,
        to_port: req.to_port,
        cidr_ip: req.cidr_ip,
        source_group_name: req.source_security_group_name,
    };
    let specs = rule_specs(req.ip_permissions, legacy)?;
    let rules = authorize(ctx, group, true, specs, req.tag_specifications).await?;
    Ok(AuthorizeSecurityGroupEgressOutput { r#return: Some(true), security_group_rules: Some(rules) })
}
