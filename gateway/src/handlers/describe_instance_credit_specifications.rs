use std::borrow::Cow;

use ec2api::{
    DescribeInstanceCreditSpecificationsOutput, DescribeInstanceCreditSpecificationsRequest, Ec2Error,
    InstanceCreditSpecification,
};
use storage::{InstanceRecord, InstanceState};

use super::describe::Describe;
use super::one;
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
    let (items, next_token) = Describe::of(ctx, "DescribeInstanceCreditSpecifications")
        .ids(req.instance_ids, backend::ResourceKind::Instance)?
        .filters(req.filters.as_deref(), &["instance-id"])?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?
        .list::<InstanceRecord>(ctx, fields, |r| r.state != InstanceState::Terminated && r.cpu_credits.is_some())
        .await?;
    Ok(DescribeInstanceCreditSpecificationsOutput {
        instance_credit_specifications: Some(
            items
                .into_iter()
                .map(|i| InstanceCreditSpecification {
                    instance_id: Some(i.record.id),
                    cpu_credits: i.record.cpu_credits,
                })
                .collect(),
        ),
        next_token,
    })
}
