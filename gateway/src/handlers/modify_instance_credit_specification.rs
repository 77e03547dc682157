use ec2api::{
    Ec2Error, ModifyInstanceCreditSpecificationOutput, ModifyInstanceCreditSpecificationRequest,
    SuccessfulInstanceCreditSpecificationItem, UnsuccessfulInstanceCreditSpecificationItem,
    UnsuccessfulInstanceCreditSpecificationItemError,
};

use crate::context::Ctx;
use crate::errors::to_ec2;

/// Each instance succeeds or fails on its own, as EC2 reports it.
pub async fn handle(
    ctx: &Ctx,
    req: ModifyInstanceCreditSpecificationRequest,
) -> Result<ModifyInstanceCreditSpecificationOutput, Ec2Error> {
    let account = ctx.account().to_owned();
    let changes: Vec<(String, String)> = req
        .instance_credit_specifications
        .into_iter()
        .map(|item| (item.instance_id, item.cpu_credits.unwrap_or_default()))
        .collect();
    let ids: Vec<String> = changes.iter().map(|(id, _)| id.clone()).collect();
    let results = ctx.call(move |b| b.set_cpu_credits(&account, &changes)).await?;
    let mut out = ModifyInstanceCreditSpecificationOutput {
        successful_instance_credit_specifications: Some(vec![]),
        unsuccessful_instance_credit_specifications: Some(vec![]),
    };
    for (instance_id, result) in ids.into_iter().zip(results) {
        match result {
            Ok(()) => out
                .successful_instance_credit_specifications
                .get_or_insert_with(Vec::new)
                .push(SuccessfulInstanceCreditSpecificationItem { instance_id: Some(instance_id) }),
            Err(error) => {
                let error = to_ec2(error);
                out.unsuccessful_instance_credit_specifications.get_or_insert_with(Vec::new).push(
                    UnsuccessfulInstanceCreditSpecificationItem {
                        instance_id: Some(instance_id),
                        error: Some(UnsuccessfulInstanceCreditSpecificationItemError {
                            code: Some(error.code().to_owned()),
                            message: Some(error.message().to_owned()),
                        }),
                    },
                )
            }
        }
    }
    Ok(out)
}
