use backend::key_pairs::KeyPairRef;
use ec2api::{DeleteKeyPairOutput, DeleteKeyPairRequest, Ec2Error};

use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DeleteKeyPairRequest) -> Result<DeleteKeyPairOutput, Ec2Error> {
    let which = match (req.key_pair_id, req.key_name) {
        (Some(id), _) => KeyPairRef::Id(id),
        (None, Some(name)) => KeyPairRef::Name(name),
        (None, None) => return Err(Ec2Error::missing_parameter("KeyName or KeyPairId")),
    };
    let account = ctx.account().to_owned();
    let deleted = ctx.call(move |b| b.delete_key_pair(&account, &which)).await?;
    Ok(DeleteKeyPairOutput { r#return: Some(true), key_pair_id: deleted })
}
