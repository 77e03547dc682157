use std::borrow::Cow;

use backend::listing::tag_page_key;
use backend::tags::TagView;
use ec2api::{DescribeTagsOutput, DescribeTagsRequest, Ec2Error, TagDescription};

use super::describe::Describe;
use super::{one, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &["key", "value", "resource-id", "resource-type"];

fn fields<'a>(tag: &'a TagView, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "key" => one(&tag.key),
        "value" => one(&tag.value),
        "resource-id" => one(&tag.resource_id),
        "resource-type" => one(tag.resource_kind.resource_type()),
        _ => vec![],
    }
}

pub async fn handle(ctx: &Ctx, req: DescribeTagsRequest) -> Result<DescribeTagsOutput, Ec2Error> {
    let describe = Describe::of(ctx, "DescribeTags").filters(req.filters.as_deref(), FILTERS)?.paged(
        req.max_results,
        req.next_token.as_deref(),
        5,
        1000,
    )?;
    // An exact resource-id filter reads those resources' tags alone.
    let mut query = describe.list_query();
    query.ids =
        describe.filters.exact_values("resource-id").unwrap_or_default().into_iter().map(str::to_owned).collect();
    // An exact resource-type filter reads the tags of those kinds alone (ids start with their
    // kind's prefix); a type no kind has reads nothing.
    query.id_prefixes = describe.filters.exact_values("resource-type").map(|types| {
        backend::ResourceKind::ALL
            .iter()
            .filter(|kind| types.contains(&kind.resource_type()))
            .map(|kind| kind.prefix().to_owned())
            .collect()
    });
    let Describe { filters, page, .. } = describe;
    let account = ctx.account().to_owned();
    let listed = ctx
        .snapshot(move |b| {
            b.list_tags(&account, &query, |tag| filters.matches(&Row { item: tag, tags: NO_TAGS, fields }))
        })
        .await?;
    let next_token = listed.more.then(|| listed.items.last().map(|t| page.token_after(&tag_page_key(t)))).flatten();
    Ok(DescribeTagsOutput {
        tags: Some(
            listed
                .items
                .into_iter()
                .map(|t| TagDescription {
                    resource_type: Some(t.resource_kind.resource_type().to_owned()),
                    resource_id: Some(t.resource_id),
                    key: Some(t.key),
                    value: Some(t.value),
                })
                .collect(),
        ),
        next_token,
    })
}
