use ec2api::{
    AccountAttribute, AccountAttributeValue, DescribeAccountAttributesOutput, DescribeAccountAttributesRequest,
    Ec2Error,
};

use crate::context::Ctx;

pub async fn handle(
    ctx: &Ctx,
    req: DescribeAccountAttributesRequest,
) -> Result<DescribeAccountAttributesOutput, Ec2Error> {
    let (account, hint) = (ctx.account().to_owned(), ctx.principal.default_vpc_id.clone());
    let default_vpc = ctx.snapshot(move |b| b.default_vpc(&account, &hint)).await?;
    let known: [(&str, Vec<String>); 6] = [
        ("supported-platforms", vec!["VPC".into()]),
        ("default-vpc", vec![default_vpc.unwrap_or_else(|| "none".into())]),
        ("max-instances", vec!["20".into()]),
        ("vpc-max-security-groups-per-interface", vec!["5".into()]),
        ("max-elastic-ips", vec!["5".into()]),
        ("vpc-max-elastic-ips", vec!["5".into()]),
    ];
    let wanted = req.attribute_names.unwrap_or_default();
    if let Some(unknown) = wanted.iter().find(|w| !known.iter().any(|(name, _)| name == *w)) {
        return Err(Ec2Error::invalid_value("AttributeName", unknown, "Expected a known account attribute name."));
    }
    let attributes = known
        .into_iter()
        .filter(|(name, _)| wanted.is_empty() || wanted.iter().any(|w| w == name))
        .map(|(name, values)| AccountAttribute {
            attribute_name: Some(name.to_owned()),
            attribute_values: Some(
                values.into_iter().map(|v| AccountAttributeValue { attribute_value: Some(v) }).collect(),
            ),
        })
        .collect();
    Ok(DescribeAccountAttributesOutput { account_attributes: Some(attributes) })
}
