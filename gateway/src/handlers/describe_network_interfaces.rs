use std::borrow::Cow;

use backend::listing::InterfaceView;
use ec2api::Code;
use ec2api::{DescribeNetworkInterfacesOutput, DescribeNetworkInterfacesRequest, Ec2Error};

use super::describe::Describe;
use super::network_interface_shape::{candidate_fields, public_ips, shape, Candidate, PublicIps, FILTERS};
use super::Row;
use crate::context::Ctx;

/// Instances' own interfaces (created and deleted with them; a terminated instance's is gone)
/// and those made with CreateNetworkInterface, in one id order.
pub async fn handle(
    ctx: &Ctx,
    req: DescribeNetworkInterfacesRequest,
) -> Result<DescribeNetworkInterfacesOutput, Ec2Error> {
    if req.network_interface_ids.as_ref().is_some_and(|ids| !ids.is_empty()) && req.max_results.is_some() {
        return Err(Ec2Error::new(
            Code::InvalidParameterCombination,
            "The parameter NetworkInterfaceIds cannot be used with the parameter MaxResults",
        ));
    }
    let describe = Describe::of(ctx, "DescribeNetworkInterfaces")
        .ids(req.network_interface_ids, backend::ResourceKind::NetworkInterface)?
        .filters(req.filters.as_deref(), FILTERS)?
        .paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    // A page walks the account's interface index and reads those interfaces alone.
    let mut query = describe.list_query();
    query.only_ids = describe
        .filters
        .exact_values("network-interface-id")
        .unwrap_or_default()
        .into_iter()
        .map(str::to_owned)
        .collect();
    // Attachments asked for by id: one that ended shows as `detached` (what Terraform waits
    // for after DetachNetworkInterface), as EC2 answers for a while after a detach.
    let asked: Vec<String> = describe
        .filters
        .exact_values("attachment.attachment-id")
        .unwrap_or_default()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let Describe { filters, page, .. } = describe;
    let (account, region) = (ctx.account().to_owned(), ctx.region.clone());
    let asked_here = asked.clone();
    let (listed, names, public) = ctx
        .snapshot(move |b| {
            // A filter on the public address tests the account's Elastic IPs (a few, from the
            // operator's pool); the answer shows the page's own.
            let filtering = filters.uses("association.");
            let every = if filtering { public_ips(b.addresses(&account)?) } else { PublicIps::default() };
            let listed = b.list_interfaces(&account, &query, |view, tags| {
                let view = as_asked(view, &asked_here);
                let candidate = Candidate { view: &view, region: &region, public: &every };
                filters.matches(&Row { item: &candidate, tags, fields: candidate_fields })
            })?;
            let public = match filtering {
                true => every,
                false => {
                    public_ips(b.addresses_on_interfaces(&account, listed.items.iter().map(|i| i.record.id.as_str()))?)
                }
            };
            let groups = listed.items.iter().flat_map(|i| i.record.security_group_ids.iter().map(String::as_str));
            let names = b.security_group_names_of(&account, groups)?;
            Ok((listed, names, public))
        })
        .await?;
    if !listed.missing.is_empty() {
        return Err(crate::errors::not_found(backend::ResourceKind::NetworkInterface, &listed.missing));
    }
    let next_token = listed.more.then(|| listed.items.last().map(|i| page.token_after(&i.record.id))).flatten();
    let interfaces = listed
        .items
        .iter()
        .map(|i| shape(&as_asked(&i.record, &asked), &i.tags, &ctx.region, &names, &public))
        .collect();
    Ok(DescribeNetworkInterfacesOutput { network_interfaces: Some(interfaces), next_token })
}

/// The interface as shown to a request that asks for `asked` attachments by id: its ended
/// attachment, if asked for, stands where its current one would be.
fn as_asked<'a>(view: &'a InterfaceView, asked: &[String]) -> Cow<'a, InterfaceView> {
    match &view.ended_attachment {
        Some(ended) if view.attachment.is_none() && asked.contains(&ended.id) => {
            Cow::Owned(InterfaceView { attachment: Some(ended.clone()), ..view.clone() })
        }
        _ => Cow::Borrowed(view),
    }
}
