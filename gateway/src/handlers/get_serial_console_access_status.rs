use ec2api::{Ec2Error, GetSerialConsoleAccessStatusRequest, GetSerialConsoleAccessStatusResult};

use crate::context::Ctx;

/// Whether the caller's account may open serial consoles; the account manages it.
pub async fn handle(
    ctx: &Ctx,
    _: GetSerialConsoleAccessStatusRequest,
) -> Result<GetSerialConsoleAccessStatusResult, Ec2Error> {
    let on = ctx.read(|b| b.serial_console_access(ctx.account()))?;
    Ok(GetSerialConsoleAccessStatusResult {
        serial_console_access_enabled: Some(on),
        managed_by: Some("account".into()),
    })
}
