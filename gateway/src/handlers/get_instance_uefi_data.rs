use ec2api::{Ec2Error, GetInstanceUefiDataOutput, GetInstanceUefiDataRequest};

use crate::context::Ctx;

/// Guests boot from SeaBIOS or directly from a kernel, never UEFI: an instance has no UEFI
/// variable store, which EC2 answers with the id and no data. Terraform's `aws_ami` data
/// source asks with an image id; anything that is not one of the caller's instances is
/// `InvalidInstanceID.NotFound`, which it ignores.
pub async fn handle(ctx: &Ctx, req: GetInstanceUefiDataRequest) -> Result<GetInstanceUefiDataOutput, Ec2Error> {
    let account = ctx.account().to_owned();
    let id = req.instance_id.clone();
    let record = ctx.call(move |b| b.instance(&account, &id)).await?;
    Ok(GetInstanceUefiDataOutput { instance_id: Some(record.id), uefi_data: None })
}
