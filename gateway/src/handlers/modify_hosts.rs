use backend::dedicated::HostChange;
use ec2api::{Code, Ec2Error, ModifyHostsOutput, ModifyHostsRequest};

use super::on_off;
use super::release_hosts::unsuccessful;
use crate::context::Ctx;

/// Per host, as EC2 answers: a tenant changes its dedicated hosts' `AutoPlacement`,
/// `HostRecovery` and (while empty) `InstanceType` or `InstanceFamily`; an admin also takes
/// pool hosts in and out of maintenance (`HostMaintenance=on` drains them by live migration,
/// a Stratus extension of the action).
pub async fn handle(ctx: &Ctx, req: ModifyHostsRequest) -> Result<ModifyHostsOutput, Ec2Error> {
    super::check_ids(&req.host_ids, backend::ResourceKind::Host)?;
    let maintenance = on_off("HostMaintenance", req.host_maintenance.as_deref())?;
    if maintenance.is_some() && !ctx.principal.admin {
        return Err(Ec2Error::new(
            Code::UnauthorizedOperation,
            "You are not authorized to perform this operation: HostMaintenance needs an admin account.".to_owned(),
        ));
    }
    if req.instance_type.is_some() && req.instance_family.is_some() {
        return Err(Ec2Error::new(
            Code::InvalidParameterCombination,
            "Specify either an instance type or an instance family, not both.".to_owned(),
        ));
    }
    let change = HostChange {
        auto_placement: on_off("AutoPlacement", req.auto_placement.as_deref())?,
        host_recovery: on_off("HostRecovery", req.host_recovery.as_deref())?,
        instance_type: req.instance_type,
        instance_family: req.instance_family,
    };
    let changes_allocation = change != HostChange::default();
    if maintenance.is_none() && !changes_allocation {
        return Err(Ec2Error::missing_parameter("AutoPlacement"));
    }
    let account = ctx.account().to_owned();
    let ids = req.host_ids;
    let results = ctx
        .call(move |b| {
            Ok(ids
                .into_iter()
                .map(|id| {
                    let mut result = Ok(());
                    if changes_allocation {
                        result = b.modify_host_allocation(&account, &id, &change);
                    }
                    if let (Ok(()), Some(on)) = (&result, maintenance) {
                        result = b.set_maintenance(&id, on);
                    }
                    (id, result)
                })
                .collect::<Vec<_>>())
        })
        .await?;
    let mut out = ModifyHostsOutput { successful: Some(vec![]), unsuccessful: Some(vec![]) };
    for (id, result) in results {
        match result {
            Ok(()) => out.successful.get_or_insert_with(Vec::new).push(id),
            Err(error) => out.unsuccessful.get_or_insert_with(Vec::new).push(unsuccessful(id, error)),
        }
    }
    Ok(out)
}
