use ec2api::{
    AttributeBooleanValue, AttributeValue, DescribeNetworkInterfaceAttributeOutput,
    DescribeNetworkInterfaceAttributeRequest, Ec2Error,
};

use super::check_ids;
use super::network_interface_shape::{attachment, groups};
use crate::context::Ctx;

/// One attribute per call: `description`, `groupSet`, `sourceDestCheck` or `attachment`.
pub async fn handle(
    ctx: &Ctx,
    req: DescribeNetworkInterfaceAttributeRequest,
) -> Result<DescribeNetworkInterfaceAttributeOutput, Ec2Error> {
    check_ids(std::slice::from_ref(&req.network_interface_id), backend::ResourceKind::NetworkInterface)?;
    let attribute = req.attribute.ok_or_else(|| Ec2Error::missing_parameter("Attribute"))?;
    if !["description", "groupSet", "sourceDestCheck", "attachment", "associatePublicIpAddress"]
        .contains(&attribute.as_str())
    {
        return Err(Ec2Error::invalid_value(
            "Attribute",
            &attribute,
            "Expected one of description, groupSet, sourceDestCheck, attachment, associatePublicIpAddress.",
        ));
    }
    let (account, id) = (ctx.account().to_owned(), req.network_interface_id.clone());
    let (view, names) = ctx
        .snapshot(move |b| {
            let query = backend::listing::ListQuery { ids: vec![id.clone()], ..Default::default() };
            let page = b.list_interfaces(&account, &query, |_, _| true)?;
            let view = page.items.into_iter().next().map(|i| i.record);
            let groups = view.iter().flat_map(|v| v.security_group_ids.iter().map(String::as_str));
            let names = b.security_group_names_of(&account, groups)?;
            Ok((view, names))
        })
        .await?;
    let view = view.ok_or_else(|| {
        crate::errors::not_found(
            backend::ResourceKind::NetworkInterface,
            std::slice::from_ref(&req.network_interface_id),
        )
    })?;
    let mut out =
        DescribeNetworkInterfaceAttributeOutput { network_interface_id: Some(view.id.clone()), ..Default::default() };
    match attribute.as_str() {
        "description" => out.description = Some(AttributeValue { value: Some(view.description.clone()) }),
        "groupSet" => out.groups = Some(groups(&view, &names)),
        "sourceDestCheck" => {
            out.source_dest_check = Some(AttributeBooleanValue { value: Some(view.source_dest_check) })
        }
        "attachment" => out.attachment = attachment(&view),
        _ => out.associate_public_ip_address = Some(view.public_ip.is_some()),
    }
    Ok(out)
}
