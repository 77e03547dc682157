use ec2api::{Ec2Error, ModifyEbsDefaultKmsKeyIdOutput, ModifyEbsDefaultKmsKeyIdRequest};

use crate::context::Ctx;

/// Chooses the KMS key new encrypted volumes name (a key id, alias or ARN, shown as its ARN).
pub async fn handle(
    ctx: &Ctx,
    req: ModifyEbsDefaultKmsKeyIdRequest,
) -> Result<ModifyEbsDefaultKmsKeyIdOutput, Ec2Error> {
    let (account, region) = (ctx.account().to_owned(), ctx.region.clone());
    let key = ctx.call(move |b| b.set_ebs_default_kms_key(&account, &region, Some(&req.kms_key_id))).await?;
    Ok(ModifyEbsDefaultKmsKeyIdOutput { kms_key_id: Some(key) })
}
