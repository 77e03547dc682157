use backend::dedicated::HostRequest;
use ec2api::{AllocateHostsOutput, AllocateHostsRequest, Code, Ec2Error};

use super::{on_off, tags_from_specs};
use crate::context::Ctx;

/// The most hosts one request dedicates.
const MAX_QUANTITY: i32 = 100;

/// Whole pool hosts of a zone, dedicated to the caller's account, all or none.
pub async fn handle(ctx: &Ctx, req: AllocateHostsRequest) -> Result<AllocateHostsOutput, Ec2Error> {
    let zone = req
        .availability_zone
        .filter(|z| !z.is_empty())
        .ok_or_else(|| Ec2Error::missing_parameter("AvailabilityZone"))?;
    if req.outpost_arn.is_some() || req.asset_ids.is_some() {
        return Err(Ec2Error::new(Code::UnsupportedOperation, "Stratus has no Outposts.".to_owned()));
    }
    if req.instance_type.is_some() == req.instance_family.is_some() {
        return Err(Ec2Error::new(
            Code::InvalidParameterCombination,
            "Specify either an instance type or an instance family, not both.".to_owned(),
        ));
    }
    let quantity = req.quantity.unwrap_or(1);
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(Ec2Error::invalid_value("Quantity", &quantity.to_string(), "Expected 1 to 100."));
    }
    let new = HostRequest {
        zone,
        instance_type: req.instance_type,
        instance_family: req.instance_family,
        quantity: quantity as u32,
        // Off unless asked, as the EC2 API reference gives it: only launches naming the host.
        auto_placement: on_off("AutoPlacement", req.auto_placement.as_deref())?.unwrap_or(false),
        host_recovery: on_off("HostRecovery", req.host_recovery.as_deref())?.unwrap_or(false),
        client_token: req.client_token.filter(|t| !t.is_empty()),
        tags: tags_from_specs(req.tag_specifications, "dedicated-host")?,
    };
    let account = ctx.account().to_owned();
    let made = ctx.call(move |b| b.allocate_hosts(&account, new)).await?;
    Ok(AllocateHostsOutput { host_ids: Some(made.into_iter().map(|a| a.host_id).collect()) })
}
