use ec2api::{Ec2Error, GetEbsDefaultKmsKeyIdOutput, GetEbsDefaultKmsKeyIdRequest};

use crate::context::Ctx;

/// The KMS key new encrypted volumes name when they name none: the one chosen, else
/// `alias/aws/ebs`, as EC2 answers.
pub async fn handle(ctx: &Ctx, _: GetEbsDefaultKmsKeyIdRequest) -> Result<GetEbsDefaultKmsKeyIdOutput, Ec2Error> {
    let defaults = ctx.read(|b| b.ebs_defaults(ctx.account()))?;
    let key = defaults.kms_key_id.unwrap_or_else(|| backend::encryption::MANAGED_KEY_ALIAS.to_owned());
    Ok(GetEbsDefaultKmsKeyIdOutput { kms_key_id: Some(key) })
}
