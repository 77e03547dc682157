use base64::Engine;
use ec2api::{Ec2Error, GetConsoleOutputOutput, GetConsoleOutputRequest};

use super::{check_ids, timestamp};
use crate::context::Ctx;

/// The serial console log's tail; `Latest` asks for the newest output, which is what the log
/// always holds.
pub async fn handle(ctx: &Ctx, req: GetConsoleOutputRequest) -> Result<GetConsoleOutputOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.instance_id), backend::ResourceKind::Instance)?;
    let account = ctx.account().to_owned();
    let id = req.instance_id.clone();
    let bytes = ctx.call(move |b| b.console_output(&account, &id)).await?;
    Ok(GetConsoleOutputOutput {
        instance_id: Some(req.instance_id),
        output: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        timestamp: Some(timestamp(backend::now_ms())),
    })
}
