use ec2api::{CreateVolumePermission, DescribeSnapshotAttributeOutput, DescribeSnapshotAttributeRequest, Ec2Error};

use crate::context::Ctx;

/// `createVolumePermission` or `productCodes` of a snapshot the caller owns.
pub async fn handle(
    ctx: &Ctx,
    req: DescribeSnapshotAttributeRequest,
) -> Result<DescribeSnapshotAttributeOutput, Ec2Error> {
    super::check_ids(std::slice::from_ref(&req.snapshot_id), backend::ResourceKind::Snapshot)?;
    if !["createVolumePermission", "productCodes"].contains(&req.attribute.as_str()) {
        return Err(Ec2Error::invalid_value(
            "Attribute",
            &req.attribute,
            "Expected createVolumePermission or productCodes.",
        ));
    }
    let account = ctx.account().to_owned();
    let id = req.snapshot_id.clone();
    let snapshot = ctx.snapshot(move |b| b.owned_snapshot(&account, &id)).await?;
    let mut out = DescribeSnapshotAttributeOutput { snapshot_id: Some(snapshot.id.clone()), ..Default::default() };
    if req.attribute == "productCodes" {
        out.product_codes = Some(vec![]);
    } else {
        let everyone =
            snapshot.public.then(|| CreateVolumePermission { group: Some("all".into()), ..Default::default() });
        let accounts = snapshot
            .create_volume_permissions
            .iter()
            .map(|a| CreateVolumePermission { user_id: Some(a.clone()), ..Default::default() });
        out.create_volume_permissions = Some(everyone.into_iter().chain(accounts).collect());
    }
    Ok(out)
}
