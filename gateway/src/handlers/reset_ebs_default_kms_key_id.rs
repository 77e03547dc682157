use ec2api::{Ec2Error, ResetEbsDefaultKmsKeyIdOutput, ResetEbsDefaultKmsKeyIdRequest};

use crate::context::Ctx;

/// Back to the account's AWS-managed key.
pub async fn handle(ctx: &Ctx, _: ResetEbsDefaultKmsKeyIdRequest) -> Result<ResetEbsDefaultKmsKeyIdOutput, Ec2Error> {
    let (account, region) = (ctx.account().to_owned(), ctx.region.clone());
    let key = ctx.call(move |b| b.set_ebs_default_kms_key(&account, &region, None)).await?;
    Ok(ResetEbsDefaultKmsKeyIdOutput { kms_key_id: Some(key) })
}
