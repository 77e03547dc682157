use ec2api::{Ec2Error, EnableEbsEncryptionByDefaultOutput, EnableEbsEncryptionByDefaultRequest};

use crate::context::Ctx;

/// From now on every new volume of the caller's account is encrypted, whatever it asks.
pub async fn handle(
    ctx: &Ctx,
    _: EnableEbsEncryptionByDefaultRequest,
) -> Result<EnableEbsEncryptionByDefaultOutput, Ec2Error> {
    let account = ctx.account().to_owned();
    let on = ctx.call(move |b| b.set_ebs_encryption_by_default(&account, true)).await?;
    Ok(EnableEbsEncryptionByDefaultOutput { ebs_encryption_by_default: Some(on) })
}
