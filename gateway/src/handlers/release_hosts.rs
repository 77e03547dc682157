use ec2api::{Ec2Error, ReleaseHostsOutput, ReleaseHostsRequest, UnsuccessfulItem, UnsuccessfulItemError};

use crate::context::Ctx;

/// Each host goes back to the pool on its own, or is answered unsuccessful with why.
pub async fn handle(ctx: &Ctx, req: ReleaseHostsRequest) -> Result<ReleaseHostsOutput, Ec2Error> {
    super::check_ids(&req.host_ids, backend::ResourceKind::Host)?;
    let account = ctx.account().to_owned();
    let ids = req.host_ids;
    let results = ctx
        .call(move |b| Ok(ids.into_iter().map(|id| (b.release_host(&account, &id), id)).collect::<Vec<_>>()))
        .await?;
    let mut out = ReleaseHostsOutput { successful: Some(vec![]), unsuccessful: Some(vec![]) };
    for (result, id) in results {
        match result {
            Ok(()) => out.successful.get_or_insert_with(Vec::new).push(id),
            Err(error) => out.unsuccessful.get_or_insert_with(Vec::new).push(unsuccessful(id, error)),
        }
    }
    Ok(out)
}

/// One host a request could not act on, with EC2's code and message.
pub fn unsuccessful(id: String, error: backend::Error) -> UnsuccessfulItem {
    let error = crate::errors::to_ec2(error);
    UnsuccessfulItem {
        resource_id: Some(id),
        error: Some(UnsuccessfulItemError {
            code: Some(error.code().to_owned()),
            message: Some(error.message().to_owned()),
        }),
    }
}
