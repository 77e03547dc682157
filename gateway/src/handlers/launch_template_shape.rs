//! What the launch template actions share: naming a template, its answer shapes, and its data
//! as it is saved.

use backend::launch_templates::{TemplateRef, VersionRef};
use backend::ResourceKind;
use ec2api::{Code, Ec2Error, LaunchTemplate, LaunchTemplateVersion, RequestLaunchTemplateData};
use storage::{LaunchTemplateRecord, LaunchTemplateVersionRecord};

use super::{check_ids, tag_list, tag_pairs, timestamp};

/// The most a version's data may hold, as JSON: far above what EC2's fields take (user data is
/// at most 16 KiB), so that no template can fill the store.
const MAX_DATA_BYTES: usize = 64 * 1024;

/// The resource types a template's `TagSpecification.N` may name, as EC2 takes them.
const TAGGABLE_AT_LAUNCH: &[&str] =
    &["instance", "volume", "network-interface", "spot-instances-request", "elastic-gpu"];

/// A launch template name as EC2 takes it: 3 to 128 letters, digits and `-()./_`.
pub fn check_name(name: &str) -> Result<(), Ec2Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-()./_".contains(c);
    if (3..=128).contains(&name.len()) && name.chars().all(allowed) {
        return Ok(());
    }
    Err(Ec2Error::new(
        Code::InvalidLaunchTemplateNameMalformed,
        "A launch template name must be between 3 and 128 characters, and may contain letters, numbers, and the following characters: - ( ) . / _.".to_owned(),
    ))
}

/// The template a request names by `LaunchTemplateId` or `LaunchTemplateName`: one of them,
/// well formed.
pub fn template_ref(id: Option<String>, name: Option<String>) -> Result<TemplateRef, Ec2Error> {
    match (id.filter(|i| !i.is_empty()), name.filter(|n| !n.is_empty())) {
        (Some(id), None) => {
            check_ids(std::slice::from_ref(&id), ResourceKind::LaunchTemplate)?;
            Ok(TemplateRef::Id(id))
        }
        (None, Some(name)) => {
            check_name(&name)?;
            Ok(TemplateRef::Name(name))
        }
        (Some(_), Some(_)) => Err(Ec2Error::new(
            Code::InvalidParameterCombination,
            "Specify either the launch template ID or the launch template name in the request, but not both."
                .to_owned(),
        )),
        (None, None) => Err(Ec2Error::new(
            Code::MissingParameter,
            "The request must contain the parameter launchTemplateName or launchTemplateId".to_owned(),
        )),
    }
}

/// A version as a request gives it (`3`, `$Latest`, `$Default`).
pub fn version_ref(name: &str, text: &str) -> Result<VersionRef, Ec2Error> {
    VersionRef::parse(text)
        .ok_or_else(|| Ec2Error::invalid_value(name, text, "Expected a version number, $Latest or $Default."))
}

/// The request's template data as it is saved, after the checks EC2 makes when a template is
/// made: tags (their resource types and keys). The rest is checked at launch, as on EC2.
pub fn saved_data(data: &RequestLaunchTemplateData) -> Result<serde_json::Value, Ec2Error> {
    for (index, spec) in data.tag_specifications.iter().flatten().enumerate() {
        let path = format!("LaunchTemplateData.TagSpecification.{}", index + 1);
        let given = spec.resource_type.clone().unwrap_or_default();
        if !TAGGABLE_AT_LAUNCH.contains(&given.as_str()) {
            return Err(Ec2Error::invalid_value(
                &format!("{path}.ResourceType"),
                &given,
                &format!("Expected one of: {}.", TAGGABLE_AT_LAUNCH.join(", ")),
            ));
        }
        let tags = tag_pairs(spec.tags.clone(), &format!("{path}.Tag"))?;
        backend::tags::validate_tags(&tags).map_err(crate::errors::to_ec2)?;
    }
    let saved = serde_json::to_value(data).map_err(|_| Ec2Error::internal())?;
    if saved.to_string().len() > MAX_DATA_BYTES {
        return Err(Ec2Error::new(
            Code::InvalidParameterValue,
            format!("LaunchTemplateData is larger than the {} KiB a version may hold.", MAX_DATA_BYTES / 1024),
        ));
    }
    Ok(saved)
}

fn created_by(account: &str) -> String {
    format!("arn:aws:iam::{account}:root")
}

pub fn launch_template(record: &LaunchTemplateRecord, tags: &[(String, String)]) -> LaunchTemplate {
    LaunchTemplate {
        create_time: Some(timestamp(record.created_ms)),
        created_by: Some(created_by(&record.account)),
        default_version_number: super::long(record.default_version),
        latest_version_number: super::long(record.latest_version),
        launch_template_id: Some(record.id.clone()),
        launch_template_name: Some(record.name.clone()),
        operator: None,
        tags: Some(tag_list(tags)),
    }
}

pub fn version(template: &LaunchTemplateRecord, version: &LaunchTemplateVersionRecord) -> LaunchTemplateVersion {
    LaunchTemplateVersion {
        create_time: Some(timestamp(version.created_ms)),
        created_by: Some(created_by(&template.account)),
        default_version: Some(version.number == template.default_version),
        // The request's shape and the answer's have the same members: the saved request
        // reads back as the answer.
        launch_template_data: Some(serde_json::from_value(version.data.clone()).unwrap_or_default()),
        launch_template_id: Some(template.id.clone()),
        launch_template_name: Some(template.name.clone()),
        operator: None,
        version_description: version.description.clone(),
        version_number: super::long(version.number),
    }
}
