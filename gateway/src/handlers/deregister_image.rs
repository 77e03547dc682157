use ec2api::{DeregisterImageOutput, DeregisterImageRequest, Ec2Error};

use crate::context::Ctx;

pub async fn handle(ctx: &Ctx, req: DeregisterImageRequest) -> Result<DeregisterImageOutput, Ec2Error> {
    let account = ctx.account().to_owned();
    ctx.call(move |b| b.deregister_image(&account, &req.image_id)).await?;
    Ok(DeregisterImageOutput { r#return: Some(true), delete_snapshot_results: None })
}
