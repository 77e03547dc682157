use std::borrow::Cow;

use backend::ResourceKind;
use ec2api::{DescribeLaunchTemplatesOutput, DescribeLaunchTemplatesRequest, Ec2Error};
use storage::LaunchTemplateRecord;

use super::describe::Describe;
use super::launch_template_shape::{check_name, launch_template};
use super::one;
use crate::context::Ctx;

const FILTERS: &[&str] = &["create-time", "launch-template-name", "launch-template-id"];

fn fields<'a>(t: &'a LaunchTemplateRecord, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "create-time" => one(ec2api::xml::format_timestamp(&super::timestamp(t.created_ms))),
        "launch-template-name" => one(&t.name),
        "launch-template-id" => one(&t.id),
        _ => vec![],
    }
}

/// Templates by id, by name (each name must name one of the account's) or all of them.
pub async fn handle(ctx: &Ctx, req: DescribeLaunchTemplatesRequest) -> Result<DescribeLaunchTemplatesOutput, Ec2Error> {
    let names = req.launch_template_names.unwrap_or_default();
    for name in &names {
        check_name(name)?;
    }
    let mut ids = req.launch_template_ids.unwrap_or_default();
    let mut describe = Describe::of(ctx, "DescribeLaunchTemplates")
        .ids(Some(ids.clone()), ResourceKind::LaunchTemplate)?
        .filters(req.filters.as_deref(), FILTERS)?;
    describe.narrowed_by("names", &names);
    let mut describe = describe.paged(req.max_results, req.next_token.as_deref(), 1, 200)?;
    if !names.is_empty() {
        let account = ctx.account().to_owned();
        let named = names.clone();
        ids.extend(ctx.snapshot(move |b| b.launch_template_ids(&account, &named)).await?);
        ids.sort();
        ids.dedup();
        describe.ids = ids;
    }
    let (items, next_token) = describe.list::<LaunchTemplateRecord>(ctx, fields, |_| true).await?;
    Ok(DescribeLaunchTemplatesOutput {
        launch_templates: Some(items.iter().map(|i| launch_template(&i.record, &i.tags)).collect()),
        next_token,
    })
}
