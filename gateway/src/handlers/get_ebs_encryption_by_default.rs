use ec2api::{Ec2Error, GetEbsEncryptionByDefaultOutput, GetEbsEncryptionByDefaultRequest};

use crate::context::Ctx;

/// Whether the caller's account encrypts every new volume ([`backend::encryption`]).
pub async fn handle(
    ctx: &Ctx,
    _: GetEbsEncryptionByDefaultRequest,
) -> Result<GetEbsEncryptionByDefaultOutput, Ec2Error> {
    let defaults = ctx.read(|b| b.ebs_defaults(ctx.account()))?;
    Ok(GetEbsEncryptionByDefaultOutput { ebs_encryption_by_default: Some(defaults.encrypt), sse_type: None })
}
