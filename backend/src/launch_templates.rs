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

    /// One page of DescribeLaunchTemplateVersions (see [`VersionsQuery`]): versions with their
    /// template, in template then version order, each offered to `keep` (the filters) as it is
    /// read, from just after the page token's place until the page is full and one more match
    /// shows that a next page exists.
    ///
    /// One template's versions are a walk of its range of the version table (from the token or
    /// `min`, up to `max`), or point reads of those named; with no template, the named aliases
    /// of each template in a walk of the account's templates from the token's.
    pub fn launch_template_versions(
        &self,
        account: &str,
        query: &VersionsQuery,
        mut keep: impl FnMut(&LaunchTemplateRecord, &LaunchTemplateVersionRecord) -> bool,
    ) -> Result<VersionsPage> {
        let after = query.after.as_deref().map(|key| match key.split_once('/') {
            Some((template, number)) => (template, number.parse::<u64>().unwrap_or(u64::MAX)),
            None => (key, u64::MAX),
        });
        self.store().read(|tx| {
            let mut page = VersionsPage::default();
            // Offers one version; answers whether the page wants more.
            let mut offer =
                |page: &mut VersionsPage, template: &LaunchTemplateRecord, version: LaunchTemplateVersionRecord| {
                    let past = after.is_none_or(|(t, n)| (template.id.as_str(), version.number) > (t, n));
                    if !past || !query.in_range(version.number) || !keep(template, &version) {
                        return true;
                    }
                    if query.limit.is_some_and(|n| page.versions.len() >= n) {
                        page.more = true;
                        return false;
                    }
                    page.versions.push((template.clone(), version));
                    true
                };
            // Offers one template's versions; answers whether the page wants more.
            let mut offer_template = |page: &mut VersionsPage, template: &LaunchTemplateRecord| -> Result<bool> {
                if !query.named.is_empty() {
                    let mut numbers: Vec<u64> = query.named.iter().map(|v| v.number(template)).collect();
                    numbers.sort_unstable();
                    numbers.dedup();
                    for number in numbers {
                        if !offer(page, template, version_of(tx, account, template, VersionRef::Number(number))?) {
                            return Ok(false);
                        }
                    }
                    return Ok(true);
                }
                // Every version: the walk starts past the token's place and below `min`.
                let mut from = query.min.map(|m| m.saturating_sub(1)).unwrap_or(0);
                if let Some((_, n)) = after.filter(|(t, _)| *t == template.id) {
                    from = from.max(n);
                }
                let start = (from > 0).then(|| format!("{from:020}"));
                let mut wants = true;
                tx.walk(
                    &LAUNCH_TEMPLATE_VERSIONS,
                    &format!("{account}/{}/", template.id),
                    start.as_deref(),
                    |_, v| {
                        if query.max.is_some_and(|m| v.number > m) {
                            return false;
                        }
                        wants = offer(page, template, v);
                        wants
                    },
                )?;
                Ok(wants)
            };
            match &query.template {
                Some(template) => {
                    let record = find(tx, account, template)?;
                    offer_template(&mut page, &record)?;
                }
                None => {
                    // The token's template first (it may have more to offer), then the others.
                    let resume = after.map(|(t, _)| t);
                    if let Some(t) = resume {
                        if let Some(record) = tx.get(&LAUNCH_TEMPLATES, &template_key(account, t))? {
                            if !offer_template(&mut page, &record)? {
                                return Ok(page);
                            }
                        }
                    }
                    let mut failed = None;
                    tx.walk(&LAUNCH_TEMPLATES, &format!("{account}/"), resume, |_, record| {
                        match offer_template(&mut page, &record) {
                            Ok(wants) => wants,
                            Err(error) => {
                                failed = Some(error);
                                false
                            }
                        }
                    })?;
                    if let Some(error) = failed {
                        return Err(error);
                    }
                }
            }
            Ok(page)
        })
    }
}

/// What one page of DescribeLaunchTemplateVersions asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VersionsQuery {
    /// One template's versions; `None`: the named aliases of every template.
    pub template: Option<TemplateRef>,
    /// Only these versions (of each template); none: every version.
    pub named: Vec<VersionRef>,
    /// Only versions from `min` to `max`, both included.
    pub min: Option<u64>,
    pub max: Option<u64>,
    /// Resume after this place: [`VersionsPage::key`] of the last version listed.
    pub after: Option<String>,
    /// Versions per page; `None`: all of them.
    pub limit: Option<usize>,
}

impl VersionsQuery {
    fn in_range(&self, number: u64) -> bool {
        self.min.is_none_or(|m| number >= m) && self.max.is_none_or(|m| number <= m)
    }
}

/// One page of versions, each with its template, and whether more match past them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VersionsPage {
    pub versions: Vec<(LaunchTemplateRecord, LaunchTemplateVersionRecord)>,
    pub more: bool,
}

impl VersionsPage {
    /// A version's place in the listing's order, which a page token carries.
    pub fn key(template: &LaunchTemplateRecord, version: &LaunchTemplateVersionRecord) -> String {
        format!("{}/{:020}", template.id, version.number)
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
        let listed = |template: Option<&TemplateRef>, named: &[VersionRef]| -> Vec<u64> {
            let query = VersionsQuery { template: template.cloned(), named: named.to_vec(), ..Default::default() };
            b.launch_template_versions("a", &query, |_, _| true)
                .unwrap()
                .versions
                .iter()
                .map(|(_, v)| v.number)
                .collect()
        };
        assert_eq!(listed(Some(&by_name), &[]), [1, 2, 4]);
        assert_eq!(b.launch_template("a", &by_name).unwrap().version_count, 3);
        assert_eq!(listed(None, &[VersionRef::Latest, VersionRef::Default]), [2, 4]);

        let gone = b.delete_launch_template("a", &by_name).unwrap();
        assert_eq!(gone.id, template.id);
        assert!(matches!(b.launch_template("a", &by_name), Err(Error::LaunchTemplateNameNotFound(_))));
        assert!(listed(None, &[VersionRef::Latest]).is_empty());
        b.create_launch_template("a", new("web", json!({}))).unwrap();
    }

    #[test]
    fn version_pages_resume_where_the_last_ended_and_read_no_further() {
        let b = backend();
        // Four templates of 1, 6, 3 and 9 versions; the second's default is its third.
        let mut counts = std::collections::HashMap::new();
        for (n, count) in [1u64, 6, 3, 9].into_iter().enumerate() {
            let (template, _) = b.create_launch_template("a", new(&format!("t{n}"), json!({}))).unwrap();
            for _ in 1..count {
                let version = NewVersion {
                    template: TemplateRef::Id(template.id.clone()),
                    source: None,
                    description: None,
                    data: json!({}),
                    client_token: None,
                };
                b.create_launch_template_version("a", version).unwrap();
            }
            counts.insert(template.id, count);
        }
        b.create_launch_template("b", new("theirs", json!({}))).unwrap();
        let mut templates: Vec<String> = counts.keys().cloned().collect();
        templates.sort();
        let second_id = counts.iter().find(|(_, c)| **c == 6).unwrap().0.clone();
        let second = TemplateRef::Id(second_id.clone());
        b.set_default_launch_template_version("a", &second, VersionRef::Number(3)).unwrap();

        // Every page of `query` at `size` a page, with `keep`: the versions in order, and how
        // many versions `keep` was shown in all.
        let walk = |query: &VersionsQuery, size: usize, keep: &dyn Fn(&LaunchTemplateVersionRecord) -> bool| {
            let (mut seen, mut shown, mut after) = (Vec::new(), 0, None);
            loop {
                let asked = VersionsQuery { after: after.clone(), limit: Some(size), ..query.clone() };
                let page = b
                    .launch_template_versions("a", &asked, |_, v| {
                        shown += 1;
                        keep(v)
                    })
                    .unwrap();
                assert!(page.versions.len() <= size);
                let last = page.versions.last().map(|(t, v)| VersionsPage::key(t, v));
                seen.extend(page.versions.into_iter().map(|(t, v)| (t.id, v.number)));
                match (page.more, last) {
                    (true, Some(last)) => after = Some(last),
                    _ => return (seen, shown),
                }
            }
        };
        let all = |keep: &dyn Fn(&str, u64) -> bool| -> Vec<(String, u64)> {
            templates
                .iter()
                .flat_map(|t| (1..=counts[t]).map(move |n| (t.clone(), n)))
                .filter(|(t, n)| keep(t, *n))
                .collect()
        };
        let one = VersionsQuery { template: Some(second.clone()), ..Default::default() };
        let middle = VersionsQuery { min: Some(2), max: Some(5), ..one.clone() };
        let aliases = VersionsQuery {
            template: None,
            named: vec![VersionRef::Latest, VersionRef::Default],
            ..Default::default()
        };
        let named = VersionsQuery { named: vec![VersionRef::Number(5), VersionRef::Default], ..one.clone() };
        let even = |v: &LaunchTemplateVersionRecord| v.number.is_multiple_of(2);
        for size in [1, 2, 3, 5, 100] {
            let (seen, shown) = walk(&one, size, &|_| true);
            assert_eq!(seen, all(&|t, _| t == second_id.as_str()), "size {size}");
            // Each page reads its own and the one that shows a next page exists.
            assert!(shown <= 6 + 6usize.div_ceil(size), "size {size}: {shown} shown");
            let (seen, _) = walk(&middle, size, &|_| true);
            assert_eq!(seen, all(&|t, n| t == second_id.as_str() && (2..=5).contains(&n)), "size {size}");
            let (seen, _) = walk(&middle, size, &even);
            assert_eq!(seen, all(&|t, n| t == second_id.as_str() && [2, 4].contains(&n)), "size {size}");
            let (seen, _) = walk(&named, size, &|_| true);
            assert_eq!(seen, all(&|t, n| t == second_id.as_str() && [3, 5].contains(&n)), "size {size}");
            // Without a template, each template's latest and default, in template order.
            let (seen, _) = walk(&aliases, size, &|_| true);
            let default = |t: &str| if t == second_id.as_str() { 3 } else { 1 };
            assert_eq!(seen, all(&|t, n| n == counts[t] || n == default(t)), "size {size}");
        }
        // A version named that does not exist is refused, as before paging.
        let missing = VersionsQuery { named: vec![VersionRef::Number(7)], ..one };
        assert!(matches!(
            b.launch_template_versions("a", &missing, |_, _| true),
            Err(Error::LaunchTemplateVersionNotFound { .. })
        ));
    }

    #[test]
    fn overlay_replaces_top_level_fields_only() {
        let source = json!({"image_id": "ami-1", "placement": {"availability_zone": "z1", "tenancy": "default"}});
        let given = json!({"placement": {"availability_zone": "z2"}});
        assert_eq!(overlay(&source, &given), json!({"image_id": "ami-1", "placement": {"availability_zone": "z2"}}));
    }
}
