use backend::attributes::MetadataChange;
use ec2api::{Ec2Error, ModifyInstanceMetadataOptionsRequest, ModifyInstanceMetadataOptionsResult};

use super::shapes::metadata_options;
use crate::context::Ctx;

/// Applies at once: the metadata service reads the options on every request.
pub async fn handle(
    ctx: &Ctx,
    req: ModifyInstanceMetadataOptionsRequest,
) -> Result<ModifyInstanceMetadataOptionsResult, Ec2Error> {
    let account = ctx.account().to_owned();
    let change = MetadataChange {
        http_tokens: req.http_tokens,
        http_endpoint: req.http_endpoint,
        hop_limit: req.http_put_response_hop_limit,
        instance_metadata_tags: req.instance_metadata_tags,
    };
    let id = req.instance_id;
    let record = ctx.call(move |b| b.modify_metadata_options(&account, &id, &change)).await?;
    Ok(ModifyInstanceMetadataOptionsResult {
        instance_id: Some(record.id.clone()),
        instance_metadata_options: Some(metadata_options(&record.metadata)),
    })
}
