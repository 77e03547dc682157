use std::borrow::Cow;

use backend::launch_templates::{VersionRef, VersionsPage, VersionsQuery};
use ec2api::{Code, DescribeLaunchTemplateVersionsOutput, DescribeLaunchTemplateVersionsRequest, Ec2Error};
use serde_json::Value;
use storage::{LaunchTemplateRecord, LaunchTemplateVersionRecord};

use super::describe::Describe;
use super::launch_template_shape::{template_ref, version, version_ref};
use super::one;
use crate::context::Ctx;

const FILTERS: &[&str] = &[
    "create-time",
    "ebs-optimized",
    "http-endpoint",
    "http-protocol-ipv4",
    "host-resource-group-arn",
    "http-tokens",
    "iam-instance-profile",
    "image-id",
    "instance-type",
    "is-default-version",
    "kernel-id",
    "license-configuration-arn",
    "network-card-index",
    "ram-disk-id",
];

/// One version with its template.
struct Row<'a> {
    template: &'a LaunchTemplateRecord,
    version: &'a LaunchTemplateVersionRecord,
}

/// A saved field of the version's data, as text.
fn saved<'a>(data: &'a Value, path: &[&str]) -> Vec<Cow<'a, str>> {
    let mut at = data;
    for step in path {
        match at.get(step) {
            Some(next) => at = next,
            None => return vec![],
        }
    }
    match at {
        Value::String(text) => one(text.as_str()),
        Value::Bool(on) => one(on.to_string()),
        Value::Number(n) => one(n.to_string()),
        _ => vec![],
    }
}

fn fields<'a>(row: &'a Row<'_>, name: &str) -> Vec<Cow<'a, str>> {
    let data = &row.version.data;
    match name {
        "create-time" => one(ec2api::xml::format_timestamp(&super::timestamp(row.version.created_ms))),
        "is-default-version" => one((row.version.number == row.template.default_version).to_string()),
        "ebs-optimized" => saved(data, &["ebs_optimized"]),
        "http-endpoint" => saved(data, &["metadata_options", "http_endpoint"]),
        "http-protocol-ipv4" => saved(data, &["metadata_options", "http_protocol_ipv4"]),
        "http-tokens" => saved(data, &["metadata_options", "http_tokens"]),
        "host-resource-group-arn" => saved(data, &["placement", "host_resource_group_arn"]),
        "iam-instance-profile" => {
            let mut found = saved(data, &["iam_instance_profile", "arn"]);
            found.extend(saved(data, &["iam_instance_profile", "name"]));
            found
        }
        "image-id" => saved(data, &["image_id"]),
        "instance-type" => saved(data, &["instance_type"]),
        "kernel-id" => saved(data, &["kernel_id"]),
        "ram-disk-id" => saved(data, &["ram_disk_id"]),
        _ => vec![],
    }
}

fn bound(name: &str, text: Option<String>) -> Result<Option<u64>, Ec2Error> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => match text.parse::<u64>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(Ec2Error::invalid_value(name, &text, "Expected a version number.")),
        },
    }
}

/// One template's versions (all, those named, or those between `MinVersion` and
/// `MaxVersion`), or with no template the `$Latest` and `$Default` versions of every template.
pub async fn handle(
    ctx: &Ctx,
    req: DescribeLaunchTemplateVersionsRequest,
) -> Result<DescribeLaunchTemplateVersionsOutput, Ec2Error> {
    let named_template = req.launch_template_id.is_some() || req.launch_template_name.is_some();
    let template =
        named_template.then(|| template_ref(req.launch_template_id, req.launch_template_name)).transpose()?;
    let texts = req.versions.unwrap_or_default();
    let versions = texts.iter().map(|t| version_ref("LaunchTemplateVersion", t)).collect::<Result<Vec<_>, _>>()?;
    if template.is_none() && versions.iter().any(|v| matches!(v, VersionRef::Number(_))) {
        return Err(Ec2Error::new(
            Code::InvalidParameterCombination,
            "Without a launch template ID or name, only the versions $Latest and $Default can be described.".to_owned(),
        ));
    }
    let (min, max) = (bound("MinVersion", req.min_version)?, bound("MaxVersion", req.max_version)?);
    let mut describe = Describe::of(ctx, "DescribeLaunchTemplateVersions").filters(req.filters.as_deref(), FILTERS)?;
    describe.narrowed_by("template", &[format!("{template:?}")]);
    describe.narrowed_by("versions", &texts);
    describe.narrowed_by("range", &[format!("{min:?}-{max:?}")]);
    let describe = describe.paged(req.max_results, req.next_token.as_deref(), 1, 200)?;
    // Without a template, `Versions` is required to name the aliases; with none, EC2 lists
    // every template's `$Latest` and `$Default`.
    let named = match (&template, versions.is_empty()) {
        (None, true) => vec![VersionRef::Latest, VersionRef::Default],
        _ => versions,
    };
    let query = VersionsQuery {
        template,
        named,
        min,
        max,
        after: describe.page.after.clone(),
        limit: describe.page.max_results,
    };
    let Describe { filters, page, .. } = describe;
    let account = ctx.account().to_owned();
    let listed = ctx
        .snapshot(move |b| {
            b.launch_template_versions(&account, &query, |template, version| {
                filters.matches(&super::Row { item: &Row { template, version }, tags: super::NO_TAGS, fields })
            })
        })
        .await?;
    let last = listed.more.then(|| listed.versions.last().map(|(t, v)| VersionsPage::key(t, v))).flatten();
    Ok(DescribeLaunchTemplateVersionsOutput {
        launch_template_versions: Some(listed.versions.iter().map(|(t, v)| version(t, v)).collect()),
        next_token: last.map(|last| page.token_after(&last)),
    })
}
