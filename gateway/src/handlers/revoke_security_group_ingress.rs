use ec2api::{Ec2Error, RevokeSecurityGroupIngressOutput, RevokeSecurityGroupIngressRequest};

use super::rules::{group_ref, legacy, revoke, rule_specs};
use crate::context::Ctx;

pub async fn handle(
    ctx: &Ctx,
    req: RevokeSecurityGroupIngressRequest,
) -> Result<RevokeSecurityGroupIngressOutput, Ec2Error> {
    let group = group_ref(req.group_id, req.group_name, "GroupId")?;
    let specs = rule_specs(req.ip_permissions, legacy!(req))?;
    let revoked = revoke(ctx, group, false, specs, req.security_group_rule_ids.unwrap_or_default()).await?;
    Ok(RevokeSecurityGroupIngressOutput {
        r#return: Some(true),
        revoked_security_group_rules: Some(revoked),
        unknown_ip_permissions: None,
    })
}
