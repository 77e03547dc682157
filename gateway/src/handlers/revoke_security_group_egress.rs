use ec2api::{Ec2Error, RevokeSecurityGroupEgressOutput, RevokeSecurityGroupEgressRequest};

use super::rules::{group_ref, legacy, revoke, rule_specs};
use crate::context::Ctx;

pub async fn handle(
    ctx: &Ctx,
    req: RevokeSecurityGroupEgressRequest,
) -> Result<RevokeSecurityGroupEgressOutput, Ec2Error> {
    let group = group_ref(Some(req.group_id), None, "GroupId")?;
    let specs = rule_specs(req.ip_permissions, legacy!(req))?;
    let revoked = revoke(ctx, group, true, specs, req.security_group_rule_ids.unwrap_or_default()).await?;
    Ok(RevokeSecurityGroupEgressOutput {
        r#return: Some(true),
        revoked_security_group_rules: Some(revoked),
        unknown_ip_permissions: None,
    })
}
