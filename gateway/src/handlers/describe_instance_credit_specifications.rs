use std::borrow::Cow;

use ec2api::filter::FilterSet;
use ec2api::pagination::PageRequest;
use ec2api::{
    DescribeInstanceCreditSpecificationsOutput, DescribeInstanceCreditSpecificationsRequest, Ec2Error,
    InstanceCreditSpecification,
};
use storage::{InstanceRecord, InstanceState};

use super::{check_ids, one, Row, NO_TAGS};
use crate::context::Ctx;

fn fields<'a>(r: &'a InstanceRecord, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "instance-id" => one(&r.id),
        _ => vec![],
    }
}

/// The credit specification of burstable instances (recorded, not enforced: guests get their
/// vCPUs' full time either way). Other instances are left out, as EC2 does.
pub async fn handle(
    ctx: &Ctx,
    req: DescribeInstanceCreditSpecificationsRequest,
) -> Result<DescribeInstanceCreditSpecificationsOutput, Ec2Error> {
    let ids = req.instance_ids.unwrap_or_default();
    check_ids(&ids, backend::ResourceKind::Instance)?;
    let filters = FilterSet::new(req.filters.as_deref(), &["instance-id"])?;
    let page = PageRequest::new(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let account = ctx.account().to_owned();
    let records = ctx.call(move |b| b.instances(&account)).await?;
    super::ensure_found(backend::ResourceKind::Instance, &ids, |id| records.iter().any(|r| &r.id == id))?;
    let matching: Vec<&InstanceRecord> = records
        .iter()
        .filter(|r| r.state != InstanceState::Terminated && r.cpu_credits.is_some())
        .filter(|r| ids.is_empty() || ids.contains(&r.id))
        .filter(|r| filters.matches(&Row { item: *r, tags: NO_TAGS, fields }))
        .collect();
    let (items, next_token) = page.page(matching, |r| &r.id);
    Ok(DescribeInstanceCreditSpecificationsOutput {
        instance_credit_specifications: Some(
            items
                .into_iter()
                .map(|r| InstanceCreditSpecification {
                    instance_id: Some(r.id.clone()),
                    cpu_credits: r.cpu_credits.clone(),
                })
                .collect(),
        ),
        next_token,
    })
}
