//! The generic `Filter.N.Name` / `Filter.N.Value.M` engine every Describe action uses.
//!
//! Values of one filter are ORed, filters are ANDed. Values match whole strings with `*` (any
//! run) and `?` (any one character) as wildcards; `\*`, `\?` and `\\` match themselves. Besides
//! the names an action knows, every action understands `tag:<Key>`, `tag-key` and `tag-value`.

use std::borrow::Cow;

use crate::generated::Filter;
use crate::{Code, Ec2Error};

/// A resource the engine can test: the values it has for a filter name, and its tags.
pub trait Filterable {
    /// The resource's values for `name`, one of the names the action declared.
    fn filter_values(&self, name: &str) -> Vec<Cow<'_, str>>;
    fn tags(&self) -> &[(String, String)];
}

#[derive(Debug)]
enum Target {
    Field(String),
    Tag(String),
    TagKey,
    TagValue,
}

#[derive(Debug)]
struct Compiled {
    target: Target,
    patterns: Vec<Pattern>,
}

/// A compiled set of filters; the empty set matches everything.
#[derive(Debug, Default)]
pub struct FilterSet {
    filters: Vec<Compiled>,
}

impl FilterSet {
    /// Compiles the request's filters; a name outside `known` (or the tag names) is
    /// `InvalidParameterValue`.
    pub fn new(filters: Option<&[Filter]>, known: &[&str]) -> Result<Self, Ec2Error> {
        let mut compiled = Vec::new();
        for (index, filter) in filters.unwrap_or_default().iter().enumerate() {
            let name = filter
                .name
                .as_deref()
                .ok_or_else(|| Ec2Error::missing_parameter(&format!("Filter.{}.Name", index + 1)))?;
            let target = if let Some(key) = name.strip_prefix("tag:") {
                Target::Tag(key.to_owned())
            } else if name == "tag-key" {
                Target::TagKey
            } else if name == "tag-value" {
                Target::TagValue
            } else if known.contains(&name) {
                Target::Field(name.to_owned())
            } else {
                return Err(Ec2Error::new(Code::InvalidParameterValue, format!("The filter '{name}' is invalid")));
            };
            let values = filter.values.as_deref().unwrap_or_default();
            if values.is_empty() {
                return Err(Ec2Error::new(
                    Code::InvalidParameterValue,
                    format!("The filter '{name}' requires at least one value"),
                ));
            }
            compiled.push(Compiled { target, patterns: values.iter().map(|v| Pattern::new(v)).collect() });
        }
        Ok(Self { filters: compiled })
    }

    /// Whether any filter names a field starting with `prefix` (`block-device-mapping.`).
    pub fn uses(&self, prefix: &str) -> bool {
        self.filters.iter().any(|f| matches!(&f.target, Target::Field(field) if field.starts_with(prefix)))
    }

    /// Whether the request filters at all.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// The values a resource must have for field `name` when that filter allows literal
    /// values only (no wildcards): an index can then find every candidate. `None` when no such
    /// filter narrows the field.
    pub fn exact_values(&self, name: &str) -> Option<Vec<&str>> {
        self.filters.iter().find_map(|f| match &f.target {
            Target::Field(field) if field == name => literal_values(&f.patterns),
            _ => None,
        })
    }

    /// The first `tag:<key>` filter whose values are all literal, as (key, values).
    pub fn exact_tag(&self) -> Option<(&str, Vec<&str>)> {
        self.filters.iter().find_map(|f| match &f.target {
            Target::Tag(key) => Some((key.as_str(), literal_values(&f.patterns)?)),
            _ => None,
        })
    }

    pub fn matches(&self, resource: &dyn Filterable) -> bool {
        self.filters.iter().all(|filter| {
            let p = &filter.patterns;
            let tags = resource.tags().iter();
            match &filter.target {
                Target::Field(name) => any_match(p, resource.filter_values(name).iter().map(|v| v.as_ref())),
                Target::Tag(key) => any_match(p, tags.filter(|(k, _)| k == key).map(|(_, v)| v.as_str())),
                Target::TagKey => any_match(p, tags.map(|(k, _)| k.as_str())),
                Target::TagValue => any_match(p, tags.map(|(_, v)| v.as_str())),
            }
        })
    }
}

fn literal_values(patterns: &[Pattern]) -> Option<Vec<&str>> {
    patterns.iter().map(|p| p.literal.as_deref()).collect()
}

fn any_match<'a>(patterns: &[Pattern], mut candidates: impl Iterator<Item = &'a str>) -> bool {
    candidates.any(|c| patterns.iter().any(|p| p.matches(c)))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    AnyOne,
    AnyRun,
}

/// One filter value, compiled.
#[derive(Debug, Clone)]
pub struct Pattern {
    tokens: Vec<Token>,
    literal: Option<String>,
}

impl Pattern {
    pub fn new(text: &str) -> Self {
        let mut tokens = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '\\' => Token::Char(chars.next().unwrap_or('\\')),
                '*' => Token::AnyRun,
                '?' => Token::AnyOne,
                c => Token::Char(c),
            });
        }
        let literal = tokens
            .iter()
            .all(|t| matches!(t, Token::Char(_)))
            .then(|| tokens.iter().map(|t| if let Token::Char(c) = t { *c } else { ' ' }).collect());
        Self { tokens, literal }
    }

    pub fn matches(&self, text: &str) -> bool {
        if let Some(literal) = &self.literal {
            return literal == text;
        }
        // Iterative glob match with one backtrack point for the last `*` seen: linear in
        // practice, never exponential.
        let text: Vec<char> = text.chars().collect();
        let (mut t, mut p) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.tokens.get(p) {
                Some(Token::AnyRun) => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(Token::AnyOne) => {
                    t += 1;
                    p += 1;
                }
                Some(Token::Char(c)) if *c == text[t] => {
                    t += 1;
                    p += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|t| *t == Token::AnyRun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Res {
        name: &'static str,
        kinds: Vec<&'static str>,
        tags: Vec<(String, String)>,
    }

    impl Filterable for Res {
        fn filter_values(&self, name: &str) -> Vec<Cow<'_, str>> {
            match name {
                "name" => vec![self.name.into()],
                "kind" => self.kinds.iter().map(|k| Cow::Borrowed(*k)).collect(),
                _ => vec![],
            }
        }
        fn tags(&self) -> &[(String, String)] {
            &self.tags
        }
    }

    fn filter(name: &str, values: &[&str]) -> Filter {
        Filter { name: Some(name.into()), values: Some(values.iter().map(|v| v.to_string()).collect()) }
    }

    fn res() -> Res {
        Res {
            name: "web-1",
            kinds: vec!["a", "b"],
            tags: vec![("Role".into(), "web".into()), ("Env".into(), "dev".into())],
        }
    }

    #[test]
    fn literal_filters_tell_what_an_index_may_look_up() {
        let set = FilterSet::new(
            Some(&[filter("name", &["web-1", "web\\*"]), filter("kind", &["a*"]), filter("tag:Role", &["web", "db"])]),
            &["name", "kind"],
        )
        .unwrap();
        assert_eq!(set.exact_values("name"), Some(vec!["web-1", "web*"]), "escapes are literal");
        assert_eq!(set.exact_values("kind"), None, "a wildcard needs a scan");
        assert_eq!(set.exact_values("other"), None);
        assert_eq!(set.exact_tag(), Some(("Role", vec!["web", "db"])));
        let wild = FilterSet::new(Some(&[filter("tag:Role", &["w?b"])]), &[]).unwrap();
        assert_eq!(wild.exact_tag(), None);
    }

    #[test]
    fn wildcards() {
        for (pattern, text, expected) in [
            ("web-*", "web-1", true),
            ("web-?", "web-12", false),
            ("*-1", "web-1", true),
            ("*", "", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("ü?", "üx", true),
            ("exact", "exact", true),
            ("exact", "exact!", false),
        ] {
            assert_eq!(Pattern::new(pattern).matches(text), expected, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn values_or_and_filters_and() {
        let known = ["name", "kind"];
        let set = FilterSet::new(Some(&[filter("name", &["nope", "web-*"]), filter("kind", &["b"])]), &known).unwrap();
        assert!(set.matches(&res()));
        let set = FilterSet::new(Some(&[filter("name", &["web-*"]), filter("kind", &["c"])]), &known).unwrap();
        assert!(!set.matches(&res()));
        assert!(FilterSet::new(None, &known).unwrap().matches(&res()));
    }

    #[test]
    fn tag_filters() {
        let known: [&str; 0] = [];
        let m = |f: Filter| FilterSet::new(Some(&[f]), &known).unwrap().matches(&res());
        assert!(m(filter("tag:Role", &["web"])));
        assert!(!m(filter("tag:Role", &["dev"])));
        assert!(m(filter("tag-key", &["Env"])));
        assert!(m(filter("tag-value", &["d*"])));
        assert!(!m(filter("tag:Missing", &["*"])));
    }

    #[test]
    fn unknown_filter_names_and_empty_values_are_rejected() {
        let err = FilterSet::new(Some(&[filter("colour", &["red"])]), &["name"]).unwrap_err();
        assert_eq!(err.code(), "InvalidParameterValue");
        assert!(err.message().contains("colour"));
        let err = FilterSet::new(Some(&[filter("name", &[])]), &["name"]).unwrap_err();
        assert_eq!(err.code(), "InvalidParameterValue");
    }
}
