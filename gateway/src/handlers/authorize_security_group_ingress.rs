use ec2api::{AuthorizeSecurityGroupIngressOutput, AuthorizeSecurityGroupIngressRequest, Ec2Error};

use super::rules::{authorize, group_ref, rule_specs, Legacy};
use crate::context::Ctx;

pub async fn handle(
    ctx: &Ctx,
    req: AuthorizeSecurityGroupIngressRequest,
) -> Result<AuthorizeSecurityGroupIngressOutput, Ec2Error> {
    let group = group_ref(req.group_id, req.group_name)?;
    let legacy = Legacy {
        ip_protocol: req.ip_protocol,
        from_port: req.from_port,
        to_port: req.to_port,
        cidr_ip: req.cidr_ip,
        source_group_name: req.source_security_group_name,
    };
    let specs = rule_specs(req.ip_permissions, legacy)?;
    let rules = authorize(ctx, group, false, specs, req.tag_specifications).await?;
    Ok(AuthorizeSecurityGroupIngressOutput { r#return: Some(true), security_group_rules: Some(rules) })
}
