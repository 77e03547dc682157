use std::borrow::Cow;

use backend::tags::TagView;
use ec2api::filter::FilterSet;
use ec2api::pagination::PageRequest;
use ec2api::{DescribeTagsOutput, DescribeTagsRequest, Ec2Error, TagDescription};

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

/// Tags page by resource id and key, joined by a character no id contains.
fn page_key(tag: &TagView) -> String {
    format!("{}\u{1}{}", tag.resource_id, tag.key)
}

pub async fn handle(ctx: &Ctx, req: DescribeTagsRequest) -> Result<DescribeTagsOutput, Ec2Error> {
    let filters = FilterSet::new(req.filters.as_deref(), FILTERS)?;
    let page = PageRequest::new(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let account = ctx.account().to_owned();
    let tags = ctx.call(move |b| b.tags(&account)).await?;
    let mut matching: Vec<(String, TagView)> = tags
        .into_iter()
        .filter(|t| filters.matches(&Row { item: t, tags: NO_TAGS, fields }))
        .map(|t| (page_key(&t), t))
        .collect();
    matching.sort_by(|a, b| a.0.cmp(&b.0));
    let (items, next_token) = page.page(matching, |(key, _)| key);
    Ok(DescribeTagsOutput {
        tags: Some(
            items
                .into_iter()
                .map(|(_, t)| TagDescription {
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
