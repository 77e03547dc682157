use ec2api::{Ec2Error, EnableSerialConsoleAccessRequest, EnableSerialConsoleAccessResult};

use crate::context::Ctx;

/// From now on the caller's account may open its running instances' serial consoles
/// ([`backend::serial_console`]).
pub async fn handle(
    ctx: &Ctx,
    _: EnableSerialConsoleAccessRequest,
) -> Result<EnableSerialConsoleAccessResult, Ec2Error> {
    let account = ctx.account().to_owned();
    let on = ctx.call(move |b| b.set_serial_console_access(&account, true)).await?;
    Ok(EnableSerialConsoleAccessResult { serial_console_access_enabled: Some(on) })
}
