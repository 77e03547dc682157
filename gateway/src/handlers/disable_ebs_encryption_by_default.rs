use ec2api::{DisableEbsEncryptionByDefaultOutput, DisableEbsEncryptionByDefaultRequest, Ec2Error};

use crate::context::Ctx;

/// New volumes are encrypted again only when they ask (or come from an encrypted snapshot);
/// those made meanwhile stay encrypted.
pub async fn handle(
    ctx: &Ctx,
    _: DisableEbsEncryptionByDefaultRequest,
) -> Result<DisableEbsEncryptionByDefaultOutput, Ec2Error> {
    let account = ctx.account().to_owned();
    let on = ctx.call(move |b| b.set_ebs_encryption_by_default(&account, false)).await?;
    Ok(DisableEbsEncryptionByDefaultOutput { ebs_encryption_by_default: Some(on) })
}
