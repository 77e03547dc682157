use ec2api::{DisableSerialConsoleAccessRequest, DisableSerialConsoleAccessResult, Ec2Error};

use crate::context::Ctx;

/// The caller's account may no longer open serial consoles; sessions open now run on until
/// they end.
pub async fn handle(
    ctx: &Ctx,
    _: DisableSerialConsoleAccessRequest,
) -> Result<DisableSerialConsoleAccessResult, Ec2Error> {
    let account = ctx.account().to_owned();
    let on = ctx.call(move |b| b.set_serial_console_access(&account, false)).await?;
    Ok(DisableSerialConsoleAccessResult { serial_console_access_enabled: Some(on) })
}
