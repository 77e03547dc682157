use ec2api::{Ec2Error, ImportKeyPairOutput, ImportKeyPairRequest};

use super::{tag_list, tags_from_specs};
use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: ImportKeyPairRequest) -> Result<ImportKeyPairOutput, Ec2Error> {
    let tags = tags_from_specs(req.tag_specifications, "key-pair")?;
    let account = ctx.account().to_owned();
    let tags_in = tags.clone();
    let material = req.public_key_material.0;
    let pair = ctx.call(move |b| b.import_key_pair(&account, &req.key_name, &material, &tags_in)).await?;
    Ok(ImportKeyPairOutput {
        key_pair_id: Some(pair.id),
        key_name: Some(pair.name),
        key_fingerprint: Some(pair.fingerprint),
        tags: Some(tag_list(&tags)),
    })
}
