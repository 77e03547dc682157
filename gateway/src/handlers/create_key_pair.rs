use backend::key_pairs::KeyType;
use ec2api::{CreateKeyPairOutput, CreateKeyPairRequest, Ec2Error};

use super::{tag_list, tags_from_specs};
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: CreateKeyPairRequest) -> Result<CreateKeyPairOutput, Ec2Error> {
    let key_type = match req.key_type.as_deref() {
        None | Some("rsa") => KeyType::Rsa,
        Some("ed25519") => KeyType::Ed25519,
        Some(other) => return Err(Ec2Error::invalid_value("KeyType", other, "Expected: rsa, ed25519.")),
    };
    if let Some(format) = req.key_format.as_deref().filter(|f| *f != "pem") {
        return Err(Ec2Error::invalid_value("KeyFormat", format, "Stratus issues keys in pem format only."));
    }
    let tags = tags_from_specs(req.tag_specifications, "key-pair")?;
    let account = ctx.account().to_owned();
    let tags_in = tags.clone();
    let (pair, pem) = ctx.call(move |b| b.create_key_pair(&account, &req.key_name, key_type, &tags_in)).await?;
    Ok(CreateKeyPairOutput {
        key_pair_id: Some(pair.id),
        key_name: Some(pair.name),
        key_fingerprint: Some(pair.fingerprint),
        key_material: Some(pem),
        tags: Some(tag_list(&tags)),
    })
}
