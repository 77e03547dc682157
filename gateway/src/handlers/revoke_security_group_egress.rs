use ec2api::{Ec2Error, RevokeSecurityGroupEgressOutput, RevokeSecurityGroupEgressRequest};

use super::rules::{group_ref, revoke, rule_specs, Legacy};
use crate::context::Ctx;

pub async fn handle(
    ctx: &Ctx,
    req: RevokeSecurityGroupEgressRequest,
) -> Result<RevokeSecurityGroupEgressOutput, Ec2Error> {
    let group = group_ref(Some(req.group_id), None)?;
    let legacy = Legacy {
        ip_protocol: req.ip_protocol,
        from_port: req.from_port,
        to_port: req.to_port,
        cidr_ip: req.cidr_ip,
        source_group_name: req.source_security_group_name,
    };
    let specs = rule_specs(req.ip_permissions, legacy)?;
    let revoked = revoke(ctx, group, true, specs, req.security_group_rule_ids.unwrap_or_default()).await?;
    Ok(RevokeSecurityGroupEgressOutput {
        r#return: Some(true),
        revoked_security_group_rules: Some(revoked),
        unknown_ip_permissions: None,
    })
}
