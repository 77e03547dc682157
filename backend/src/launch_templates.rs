//! Launch templates: named, versioned launch parameters that RunInstances starts from.
//!
//! 1. A template is a record of its own (name, default and latest version) beside one record
//!    per version, so that adding a version writes one small record, and a name index keeps
//!    names unique in the account.
//! 2. A version's data is the request's `LaunchTemplateData` as it came, saved as JSON in the
//!    protocol's shape: Stratus stores what EC2 stores and checks it where EC2 does, at
//!    launch. A new version may start from an earlier one (`SourceVersion`): the fields it
//!    gives replace the source's, the others are kept.
//! 3. RunInstances with `LaunchTemplate` reads one version ([`Backend::launch_template_version`])
//!    and the gateway lays the request over it; the instances carry the template's id and the
//!    version number as EC2's `aws:ec2launchtemplate:*` tags.
//!
//! Version numbers count from 1 and are never given twice; `$Latest` and `$Default` name the
//! highest and the default one.

use serde_json::Value;
use storage::tables::{LAUNCH_TEMPLATES, LAUNCH_TEMPLATE_NAMES, LAUNCH_TEMPLATE_VERSIONS};
use storage::{LaunchTemplateRecord, LaunchTemplateVersionRecord, NameRecord, Reads, WriteTx};

use crate::{ids, now_ms, tags, Backend, Error, ResourceKind, Result};

/// The most versions one template keeps, as on EC2.
pub const MAX_VERSIONS: u64 = 10_000;
/// The most templates one account keeps, as EC2's default quota.
pub const MAX_TEMPLATES: usize = 5_000;

/// A template named by id or by name (exactly one of them, which the gateway checks).
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateRef {
    Id(String),
    Name(String),
}

/// A version as requests name it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VersionRef {
    Latest,
    Default,
    Number(u64),
}

impl VersionRef {
    /// `$Latest`, `$Default` or a version number; anything else is not a version.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "$Latest" => Some(Self::Latest),
            "$Default" => Some(Self::Default),
            n => n.parse().ok().filter(|n| *n > 0).map(Self::Number),
        }
    }

    fn number(self, template: &LaunchTemplateRecord) -> u64 {
        match self {
            Self::Latest => template.latest_version,
            Self::Default => template.default_version,
            Self::Number(n) => n,
        }
    }
}

/// A CreateLaunchTemplate request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewTemplate {
    pub name: String,
    pub description: Option<String>,
    pub data: Value,
    pub client_token: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// A CreateLaunchTemplateVersion request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVersion {
    pub template: TemplateRef,
    pub source: Option<VersionRef>,
    pub description: Option<String>,
    pub data: Value,
    pub client_token: Option<String>,
}

/// What DeleteLaunchTemplateVersions answers for one version it could not delete.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRefusal {
    pub version: String,
    /// EC2's `LaunchTemplateErrorCode`.
    pub code: &'static str,
    pub message: String,
}

/// The tags EC2 puts on an instance launched from a template (reserved: users cannot change
/// them; Terraform reads the template back from them).
pub fn system_tags(template_id: &str, version: u64) -> [(String, String); 2] {
    [
        ("aws:ec2launchtemplate:id".to_owned(), template_id.to_owned()),
        ("aws:ec2launchtemplate:version".to_owned(), version.to_string()),
    ]
}

fn template_key(account: &str, id: &str) -> String {
    format!("{account}/{id}")
}

fn version_key(account: &str, id: &str, number: u64) -> String {
    format!("{account}/{id}/{number:020}")
}

/// `source` with the top-level fields of `given` laid over it: what EC2 does for a version made
/// from another, and for a request made from a template.
pub fn overlay(source: &Value, given: &Value) -> Value {
    let mut merged = source.as_object().cloned().unwrap_or_default();
    for (field, value) in given.as_object().into_iter().flatten() {
        merged.insert(field.clone(), value.clone());
    }
    Value::Object(merged)
}

/// The template a reference names in `account`.
fn find(tx: &impl Reads, account: &str, template: &TemplateRef) -> Result<LaunchTemplateRecord> {
    let id = match template {
        TemplateRef::Id(id) => id.clone(),
        TemplateRef::Name(name) => {
            tx.get(&LAUNCH_TEMPLATE_NAMES, &template_key(account, name))?
                .ok_or_else(|| Error::LaunchTemplateNameNotFound(name.clone()))?
                .id
        }
    };
    tx.get(&LAUNCH_TEMPLATES, &template_key(account, &id))?
        .ok_or(Error::ResourceNotFound { kind: ResourceKind::LaunchTemplate, id })
}

fn version_of(
    tx: &impl Reads,
    account: &str,
    template: &LaunchTemplateRecord,
    version: VersionRef,
) -> Result<LaunchTemplateVersionRecord> {
    let number = version.number(template);
    tx.get(&LAUNCH_TEMPLATE_VERSIONS, &version_key(account, &template.id, number))?.ok_or_else(|| {
        Error::LaunchTemplateVersionNotFound { template_id: template.id.clone(), version: number.to_string() }
    })
}

/// Every version of one template, oldest first.
fn versions_of(tx: &impl Reads, account: &str, id: &str) -> Result<Vec<LaunchTemplateVersionRecord>> {
    Ok(tx.scan(&LAUNCH_TEMPLATE_VERSIONS, &format!("{account}/{id}/"))?.into_iter().map(|(_, v)| v).collect())
}

fn new_version(
    tx: &WriteTx,
    account: &str,
    template: &mut LaunchTemplateRecord,
    description: Option<String>,
    data: Value,
    client_token: Option<String>,
) -> Result<LaunchTemplateVersionRecord> {
    if template.version_count >= MAX_VERSIONS {
        return Err(Error::LaunchTemplateLimit(format!(
            "The launch template {} has the most versions a template may have ({MAX_VERSIONS}): delete some first.",
            template.id
        )));
    }
    let version = LaunchTemplateVersionRecord {
        template_id: template.id.clone(),
        number: template.next_version,
        description,
        created_ms: now_ms(),
        data,
        client_token,
    };
    tx.insert(&LAUNCH_TEMPLATE_VERSIONS, &version_key(account, &template.id, version.number), &version)?;
    template.latest_version = version.number;
    template.next_version += 1;
    template.version_count += 1;
    tx.insert(&LAUNCH_TEMPLATES, &template_key(account, &template.id), template)?;
    Ok(version)
}

impl Backend {
    pub fn create_launch_template(
        &self,
        account: &str,
        req: NewTemplate,
    ) -> Result<(LaunchTemplateRecord, LaunchTemplateVersionRecord)> {
        tags::validate_tags(&req.tags)?;
        self.store().write(|tx| {
            if let Some(token) = &req.client_token {
                let earlier = tx
                    .scan(&LAUNCH_TEMPLATES, &format!("{account}/"))?
                    .into_iter()
                    .map(|(_, t)| t)
                    .find(|t| t.client_token.as_ref() == Some(token));
                if let Some(earlier) = earlier {
                    let first = tx.get(&LAUNCH_TEMPLATE_VERSIONS, &version_key(account, &earlier.id, 1))?;
                    return match first {
                        Some(first) if earlier.name == req.name && first.data == req.data => Ok((earlier, first)),
                        _ => Err(Error::IdempotentParameterMismatch(token.clone())),
                    };
                }
            }
            let name_key = template_key(account, &req.name);
            if tx.get(&LAUNCH_TEMPLATE_NAMES, &name_key)?.is_some() {
                return Err(Error::LaunchTemplateNameTaken(req.name.clone()));
            }
            if tx.scan(&LAUNCH_TEMPLATE_NAMES, &format!("{account}/"))?.len() >= MAX_TEMPLATES {
                return Err(Error::LaunchTemplateLimit(format!(
                    "The account has the most launch templates it may have ({MAX_TEMPLATES}): delete some first."
                )));
            }
            let mut template = LaunchTemplateRecord {
                id: ids::resource_id("lt"),
                name: req.name.clone(),
                account: account.to_owned(),
                created_ms: now_ms(),
                default_version: 1,
                latest_version: 0,
                next_version: 1,
                version_count: 0,
                client_token: req.client_token.clone(),
            };
            tx.insert(&LAUNCH_TEMPLATE_NAMES, &name_key, &NameRecord { id: template.id.clone() })?;
            let version = new_version(tx, account, &mut template, req.description.clone(), req.data.clone(), None)?;
            tags::put_tags(tx, account, &template.id, &req.tags)?;
            Ok((template, version))
        })
    }

    pub fn create_launch_template_version(
        &self,
        account: &str,
        req: NewVersion,
    ) -> Result<(LaunchTemplateRecord, LaunchTemplateVersionRecord)> {
        self.store().write(|tx| {
            let mut template = find(tx, account, &req.template)?;
            if let Some(token) = &req.client_token {
                let earlier = versions_of(tx, account, &template.id)?
                    .into_iter()
                    .find(|v| v.client_token.as_ref() == Some(token));
                if let Some(earlier) = earlier {
                    // The same request again finds its version; another one with the token is refused.
                    let same = req.source.is_some() || earlier.data == req.data;
                    return if same {
                        Ok((template, earlier))
                    } else {
                        Err(Error::IdempotentParameterMismatch(token.clone()))
                    };
                }
            }
            let data = match req.source {
                Some(source) => overlay(&version_of(tx, account, &template, source)?.data, &req.data),
                None => req.data.clone(),
            };
            let version =
                new_version(tx, account, &mut template, req.description.clone(), data, req.client_token.clone())?;
            Ok((template, version))
        })
    }

    /// ModifyLaunchTemplate: the default version, which must exist.
    pub fn set_default_launch_template_version(
        &self,
        account: &str,
        template: &TemplateRef,
        version: VersionRef,
    ) -> Result<LaunchTemplateRecord> {
        self.store().write(|tx| {
            let mut record = find(tx, account, template)?;
            let version = version_of(tx, account, &record, version)?;
            record.default_version = version.number;
            tx.insert(&LAUNCH_TEMPLATES, &template_key(account, &record.id), &record)?;
            Ok(record)
        })
    }

    /// DeleteLaunchTemplate: the template, every version, its name and its tags.
    pub fn delete_launch_template(&self, account: &str, template: &TemplateRef) -> Result<LaunchTemplateRecord> {
        self.store().write(|tx| {
            let record = find(tx, account, template)?;
            for (key, _) in tx.scan(&LAUNCH_TEMPLATE_VERSIONS, &format!("{account}/{}/", record.id))? {
                tx.remove(&LAUNCH_TEMPLATE_VERSIONS, &key)?;
            }
            tx.remove(&LAUNCH_TEMPLATE_NAMES, &template_key(account, &record.name))?;
            tx.remove(&LAUNCH_TEMPLATES, &template_key(account, &record.id))?;
            tags::drop_tags(tx, account, &record.id)?;
            Ok(record)
        })
    }

    /// DeleteLaunchTemplateVersions: each version given, as text, is deleted or refused on its
    /// own (the default version cannot go; a template keeps at least it).
    pub fn delete_launch_template_versions(
        &self,
        account: &str,
        template: &TemplateRef,
        versions: &[String],
    ) -> Result<(LaunchTemplateRecord, Vec<u64>, Vec<VersionRefusal>)> {
        self.store().write(|tx| {
            let mut record = find(tx, account, template)?;
            let (mut deleted, mut refused) = (Vec::new(), Vec::new());
            for text in versions {
                let refuse = |code, message: String| VersionRefusal { version: text.clone(), code, message };
                let Some(VersionRef::Number(number)) = VersionRef::parse(text) else {
                    refused.push(refuse(
                        "launchTemplateVersionDoesNotExist",
                        format!("The launch template version {text} is not a version number."),
                    ));
                    continue;
                };
                let key = version_key(account, &record.id, number);
                if number == record.default_version {
                    refused.push(refuse(
                        "unexpectedError",
                        format!("Cannot delete the default version {number} of the launch template."),
                    ));
                } else if tx.get(&LAUNCH_TEMPLATE_VERSIONS, &key)?.is_none() {
                    refused.push(refuse(
                        "launchTemplateVersionDoesNotExist",
                        format!("The launch template version {number} does not exist."),
                    ));
                } else {
                    tx.remove(&LAUNCH_TEMPLATE_VERSIONS, &key)?;
                    record.version_count = record.version_count.saturating_sub(1);
                    deleted.push(number);
                }
            }
            if !deleted.is_empty() {
                // The default version is never deleted, so some version is always left.
                record.latest_version =
                    versions_of(tx, account, &record.id)?.last().map_or(record.default_version, |v| v.number);
                tx.insert(&LAUNCH_TEMPLATES, &template_key(account, &record.id), &record)?;
            }
            Ok((record, deleted, refused))
        })
    }

    /// The template a reference names.
    pub fn launch_template(&self, account: &str, template: &TemplateRef) -> Result<LaunchTemplateRecord> {
        self.store().read(|tx| find(tx, account, template))
    }

    /// The ids of the templates named, in the order given; a name of none is refused.
    pub fn launch_template_ids(&self, account: &str, names: &[String]) -> Result<Vec<String>> {
        self.store()
            .read(|tx| names.iter().map(|name| Ok(find(tx, account, &TemplateRef::Name(name.clone()))?.id)).collect())
    }

    /// One version of a template (RunInstances' `LaunchTemplate`).
    pub fn launch_template_version(
        &self,
        account: &str,
        template: &TemplateRef,
        version: VersionRef,
    ) -> Result<(LaunchTemplateRecord, LaunchTemplateVersionRecord)> {
        self.store().read(|tx| {
            let record = find(tx, account, template)?;
            let version = version_of(tx, account, &record, version)?;
            Ok((record, version))
        })
    }

    /// Versions of one template (every one, or those named), or, with no template, the
    /// `$Latest` and `$Default` versions of every template of the account; each with its
    /// template, in template then version order.
    pub fn launch_template_versions(
        &self,
        account: &str,
        template: Option<&TemplateRef>,
        named: &[VersionRef],
    ) -> Result<Vec<(LaunchTemplateRecord, LaunchTemplateVersionRecord)>> {
        self.store().read(|tx| {
            let templates = match template {
                Some(template) => vec![find(tx, account, template)?],
                None => tx.scan(&LAUNCH_TEMPLATES, &format!("{account}/"))?.into_iter().map(|(_, t)| t).collect(),
            };
            let mut found = Vec::new();
            for record in templates {
                let versions = if named.is_empty() {
                    versions_of(tx, account, &record.id)?
                } else {
                    let mut numbers: Vec<u64> = named.iter().map(|v| v.number(&record)).collect();
                    numbers.sort_unstable();
                    numbers.dedup();
                    let mut versions = Vec::new();
                    for number in numbers {
                        versions.push(version_of(tx, account, &record, VersionRef::Number(number))?);
                    }
                    versions
                };
                found.extend(versions.into_iter().map(|v| (record.clone(), v)));
            }
            Ok(found)
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tests_support::backend;

    fn new(name: &str, data: Value) -> NewTemplate {
        NewTemplate { name: name.into(), data, ..Default::default() }
    }

    #[test]
    fn versions_count_up_never_repeat_and_keep_the_default() {
        let b = backend();
        let (template, first) = b
            .create_launch_template("a", new("web", json!({"image_id": "ami-1", "instance_type": "t2.micro"})))
            .unwrap();
        assert_eq!((template.default_version, template.latest_version, first.number), (1, 1, 1));
        assert!(matches!(b.create_launch_template("a", new("web", json!({}))), Err(Error::LaunchTemplateNameTaken(_))));
        // Another account may use the name; it sees nothing of the first's template.
        b.create_launch_template("b", new("web", json!({}))).unwrap();
        assert!(matches!(
            b.launch_template("b", &TemplateRef::Id(template.id.clone())),
            Err(Error::ResourceNotFound { kind: ResourceKind::LaunchTemplate, .. })
        ));

        // A version from the first keeps what it does not give.
        let by_name = TemplateRef::Name("web".into());
        let (_, second) = b
            .create_launch_template_version(
                "a",
                NewVersion {
                    template: by_name.clone(),
                    source: Some(VersionRef::Number(1)),
                    description: Some("bigger".into()),
                    data: json!({"instance_type": "m5.large"}),
                    client_token: Some("t".into()),
                },
            )
            .unwrap();
        assert_eq!((second.number, &second.data), (2, &json!({"image_id": "ami-1", "instance_type": "m5.large"})));
        let retried = NewVersion {
            template: by_name.clone(),
            source: Some(VersionRef::Number(1)),
            description: Some("bigger".into()),
            data: json!({"instance_type": "m5.large"}),
            client_token: Some("t".into()),
        };
        assert_eq!(b.create_launch_template_version("a", retried).unwrap().1.number, 2, "the token finds it");
        let other = NewVersion {
            template: by_name.clone(),
            source: None,
            description: None,
            data: json!({"instance_type": "c5.large"}),
            client_token: Some("t".into()),
        };
        assert!(matches!(b.create_launch_template_version("a", other), Err(Error::IdempotentParameterMismatch(_))));
        let third = NewVersion {
            template: by_name.clone(),
            source: None,
            description: None,
            data: json!({"key_name": "k"}),
            client_token: None,
        };
        assert_eq!(b.create_launch_template_version("a", third.clone()).unwrap().1.number, 3);

        let (_, latest) = b.launch_template_version("a", &by_name, VersionRef::Latest).unwrap();
        let (_, default) = b.launch_template_version("a", &by_name, VersionRef::Default).unwrap();
        assert_eq!((latest.number, default.number), (3, 1));
        assert!(matches!(
            b.set_default_launch_template_version("a", &by_name, VersionRef::Number(9)),
            Err(Error::LaunchTemplateVersionNotFound { .. })
        ));
        assert_eq!(
            b.set_default_launch_template_version("a", &by_name, VersionRef::Number(2)).unwrap().default_version,
            2
        );

        // The default cannot go; the latest can, and its number is not given again.
        let (record, deleted, refused) = b
            .delete_launch_template_versions("a", &by_name, &["2".into(), "3".into(), "7".into(), "x".into()])
            .unwrap();
        assert_eq!((deleted, record.latest_version), (vec![3], 2));
        let codes: Vec<&str> = refused.iter().map(|r| r.code).collect();
        assert_eq!(
            codes,
            ["unexpectedError", "launchTemplateVersionDoesNotExist", "launchTemplateVersionDoesNotExist"]
        );
        assert_eq!(b.create_launch_template_version("a", third).unwrap().1.number, 4);
        let all = b.launch_template_versions("a", Some(&by_name), &[]).unwrap();
        assert_eq!(all.iter().map(|(_, v)| v.number).collect::<Vec<_>>(), [1, 2, 4]);
        assert_eq!(b.launch_template("a", &by_name).unwrap().version_count, 3);
        let everyone = b.launch_template_versions("a", None, &[VersionRef::Latest, VersionRef::Default]).unwrap();
        assert_eq!(everyone.iter().map(|(_, v)| v.number).collect::<Vec<_>>(), [2, 4]);

        let gone = b.delete_launch_template("a", &by_name).unwrap();
        assert_eq!(gone.id, template.id);
        assert!(matches!(b.launch_template("a", &by_name), Err(Error::LaunchTemplateNameNotFound(_))));
        assert!(b.launch_template_versions("a", None, &[VersionRef::Latest]).unwrap().is_empty());
        b.create_launch_template("a", new("web", json!({}))).unwrap();
    }

    #[test]
    fn overlay_replaces_top_level_fields_only() {
        let source = json!({"image_id": "ami-1", "placement": {"availability_zone": "z1", "tenancy": "default"}});
        let given = json!({"placement": {"availability_zone": "z2"}});
        assert_eq!(overlay(&source, &given), json!({"image_id": "ami-1", "placement": {"availability_zone": "z2"}}));
    }
}
