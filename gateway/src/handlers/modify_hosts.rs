use ec2api::Code;
use ec2api::{Ec2Error, ModifyHostsOutput, ModifyHostsRequest, UnsuccessfulItem, UnsuccessfulItemError};

use crate::context::Ctx;

/// Stratus extension of EC2's action (admin): `HostMaintenance=on` takes hosts out of
/// placement and drains them by live migration; `off` returns them. Per host, as EC2 answers.
pub async fn handle(ctx: &Ctx, req: ModifyHostsRequest) -> Result<ModifyHostsOutput, Ec2Error> {
    // Placement is always automatic and hosts carry any instance type: nothing else to change.
    let others = [
        ("AutoPlacement", req.auto_placement.is_some()),
        ("HostRecovery", req.host_recovery.is_some()),
        ("InstanceType", req.instance_type.is_some()),
        ("InstanceFamily", req.instance_family.is_some()),
    ];
    if let Some((name, _)) = others.iter().find(|(_, given)| *given) {
        return Err(Ec2Error::new(
            Code::UnsupportedOperation,
            format!("Stratus hosts take HostMaintenance only, not {name}"),
        ));
    }
    let on = match req.host_maintenance.as_deref() {
        Some("on") => true,
        Some("off") => false,
        Some(other) => return Err(Ec2Error::invalid_value("HostMaintenance", other, "Expected: 'on', 'off'.")),
        None => return Err(Ec2Error::missing_parameter("HostMaintenance")),
    };
    let ids = req.host_ids;
    let results = ctx
        .call(move |b| {
            Ok(ids
                .into_iter()
                .map(|id| {
                    let r = b.set_maintenance(&id, on);
                    (id, r)
                })
                .collect::<Vec<_>>())
        })
        .await?;
    let mut out = ModifyHostsOutput { successful: Some(vec![]), unsuccessful: Some(vec![]) };
    for (id, result) in results {
        match result {
            Ok(()) => out.successful.get_or_insert_with(Vec::new).push(id),
            Err(error) => {
                let error = crate::errors::to_ec2(error);
                out.unsuccessful.get_or_insert_with(Vec::new).push(UnsuccessfulItem {
                    resource_id: Some(id),
                    error: Some(UnsuccessfulItemError {
                        code: Some(error.code().to_owned()),
                        message: Some(error.message().to_owned()),
                    }),
                })
            }
        }
    }
    Ok(out)
}
