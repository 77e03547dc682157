use ec2api::{CreateSecurityGroupOutput, CreateSecurityGroupRequest, Ec2Error};

use super::{tag_list, tags_from_specs};
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: CreateSecurityGroupRequest) -> Result<CreateSecurityGroupOutput, Ec2Error> {
    let tags = tags_from_specs(req.tag_specifications, "security-group")?;
    let account = ctx.account().to_owned();
    let vpc = ctx.principal.default_vpc_id.clone();
    let given_vpc = req.vpc_id.filter(|v| !v.is_empty());
    let tags_for_view = tags.clone();
    let group = ctx
        .call(move |b| {
            b.create_security_group(&account, &vpc, given_vpc.as_deref(), &req.group_name, &req.description, &tags)
        })
        .await?;
    Ok(CreateSecurityGroupOutput {
        security_group_arn: Some(super::arn(&ctx.region, &group.account, "security-group", &group.id)),
        group_id: Some(group.id),
        tags: (!tags_for_view.is_empty()).then(|| tag_list(&tags_for_view)),
    })
}
