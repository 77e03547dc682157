//! Writes `ec2api/src/generated/mod.rs` from botocore's EC2 model.
//!
//! 1. Read the action list (`ec2api/actions.txt`) and the model (`service-2.json.gz`).
//! 2. Walk the shapes reachable from each action's input (they get `FromQuery`) and output
//!    (they get `XmlValue`/`XmlStruct`).
//! 3. Emit one Rust struct per structure shape, `String` aliases for string shapes (enums stay
//!    open, with their known values listed for validation), the `Action` enum with its decoder,
//!    and one `…Output` alias per action.
//!
//! Stratus's own actions come from a second model in botocore's format
//! (`ec2api/model/stratus/…/service-2.json`, which clients load too): its operations are added
//! to EC2's (replacing one of the same name), its shapes must not differ from EC2's shapes of
//! the same name.
//!
//! Usage: `ec2api-codegen MODEL.json.gz EXTENSION.json ACTIONS.txt OUT.rs` (see
//! `scripts/regen-shapes`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read;

use anyhow::{bail, Context, Result};
use heck::ToSnakeCase;
use serde_json::Value;

const RUST_KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if", "impl", "in",
    "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait",
    "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn", "abstract", "become", "box", "do",
    "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try",
];

/// Shapes saved as they came and replayed later (a launch template's data is a saved
/// RunInstances request): these and every shape below them get serde's derives, with absent
/// members left out and missing ones defaulted, so that one shape converts into another whose
/// members have the same names (`RequestLaunchTemplateData` into `ResponseLaunchTemplateData`
/// or `RunInstancesRequest`).
const SAVED_SHAPES: &[&str] = &["RequestLaunchTemplateData", "ResponseLaunchTemplateData", "RunInstancesRequest"];

/// Struct names that would shadow what the generated module uses.
const RESERVED_TYPE_NAMES: &[&str] = &["String", "Vec", "Option", "Box", "Result", "Blob", "Timestamp", "Node"];

struct Model {
    shapes: serde_json::Map<String, Value>,
    operations: serde_json::Map<String, Value>,
    version: String,
}

impl Model {
    fn shape(&self, name: &str) -> Result<&Value> {
        self.shapes.get(name).with_context(|| format!("shape {name} not in model"))
    }

    fn kind(&self, name: &str) -> Result<&str> {
        self.shape(name)?["type"].as_str().context("shape without type")
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_path, extension_path, actions_path, out_path] = args.as_slice() else {
        bail!("usage: ec2api-codegen MODEL.json.gz EXTENSION.json ACTIONS.txt OUT.rs");
    };
    let mut raw = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(model_path).context("open model")?)
        .read_to_string(&mut raw)
        .context("read model")?;
    let json: Value = serde_json::from_str(&raw)?;
    let version = std::path::Path::new(model_path)
        .ancestors()
        .find_map(|p| std::fs::read_to_string(p.join("__init__.py")).ok())
        .and_then(|init| init.lines().find(|l| l.starts_with("__version__")).map(str::to_owned))
        .map(|line| line.split('\'').nth(1).unwrap_or("unknown").to_owned())
        .unwrap_or_else(|| "unknown".into());
    let mut model = Model {
        shapes: json["shapes"].as_object().context("shapes")?.clone(),
        operations: json["operations"].as_object().context("operations")?.clone(),
        version,
    };
    let extension: Value = serde_json::from_str(&std::fs::read_to_string(extension_path).context("read extension")?)?;
    merge(&mut model, &extension)?;
    let actions: Vec<String> = std::fs::read_to_string(actions_path)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let code = generate(&model, &actions)?;
    std::fs::write(out_path, code)?;
    Ok(())
}

/// Adds the extension's operations and shapes to EC2's model.
fn merge(model: &mut Model, extension: &Value) -> Result<()> {
    for (name, shape) in extension["shapes"].as_object().context("extension shapes")? {
        match model.shapes.get(name) {
            Some(ours) if undocumented(ours) != undocumented(shape) => {
                bail!("extension shape {name} differs from EC2's shape of that name: rename it")
            }
            Some(_) => {}
            None => {
                model.shapes.insert(name.clone(), shape.clone());
            }
        }
    }
    for (name, op) in extension["operations"].as_object().context("extension operations")? {
        model.operations.insert(name.clone(), op.clone());
    }
    Ok(())
}

/// A shape without its documentation, for comparing definitions.
fn undocumented(shape: &Value) -> Value {
    match shape {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(k, _)| *k != "documentation").map(|(k, v)| (k.clone(), undocumented(v))).collect(),
        ),
        other => other.clone(),
    }
}

fn collect(model: &Model, name: &str, into: &mut BTreeSet<String>) -> Result<()> {
    if !into.insert(name.to_owned()) {
        return Ok(());
    }
    let shape = model.shape(name)?;
    match model.kind(name)? {
        "structure" => {
            for member in shape["members"].as_object().context("members")?.values() {
                collect(model, member["shape"].as_str().context("member shape")?, into)?;
            }
        }
        "list" => collect(model, shape["member"]["shape"].as_str().context("list member")?, into)?,
        "map" => bail!("map shape {name} is not supported"),
        _ => {}
    }
    Ok(())
}

/// How many dotted segments the deepest parameter name below `shape` has: a structure's member
/// adds one (`Name`), a list adds one for the index (`Name.1`), a scalar adds none.
fn parameter_depth(model: &Model, shape: &str, path: &mut Vec<String>) -> Result<usize> {
    if path.iter().any(|s| s == shape) {
        bail!("recursive input shape {shape} ({}): its parameter names have no depth bound", path.join(" > "));
    }
    path.push(shape.to_owned());
    let depth = match model.kind(shape)? {
        "structure" => {
            let mut deepest = 0;
            for member in model.shape(shape)?["members"].as_object().context("members")?.values() {
                let member_shape = member["shape"].as_str().context("member shape")?;
                deepest = deepest.max(1 + parameter_depth(model, member_shape, path)?);
            }
            deepest
        }
        "list" => {
            let member_shape = model.shape(shape)?["member"]["shape"].as_str().context("list member")?;
            1 + parameter_depth(model, member_shape, path)?
        }
        _ => 0,
    };
    path.pop();
    Ok(depth)
}

fn field_name(member: &str) -> String {
    let snake = member.to_snake_case();
    if RUST_KEYWORDS.contains(&snake.as_str()) {
        format!("r#{snake}")
    } else {
        snake
    }
}

fn type_name(shape: &str) -> String {
    if RESERVED_TYPE_NAMES.contains(&shape) {
        format!("{shape}Shape")
    } else {
        shape.to_owned()
    }
}

fn rust_type(model: &Model, shape: &str) -> Result<String> {
    Ok(match model.kind(shape)? {
        "structure" => type_name(shape),
        "list" => {
            format!("Vec<{}>", rust_type(model, model.shape(shape)?["member"]["shape"].as_str().context("member")?)?)
        }
        "string" => {
            if model.shape(shape)?.get("enum").is_some() {
                type_name(shape)
            } else {
                "String".into()
            }
        }
        "integer" => "i32".into(),
        "long" => "i64".into(),
        "boolean" => "bool".into(),
        "double" | "float" => "f64".into(),
        "timestamp" => "Timestamp".into(),
        "blob" => "Blob".into(),
        other => bail!("unsupported shape type {other} ({shape})"),
    })
}

/// botocore's EC2 serializer: queryName, else locationName capitalised, else the member name.
fn query_name(name: &str, member: &Value) -> String {
    if let Some(q) = member.get("queryName").and_then(Value::as_str) {
        return q.to_owned();
    }
    if let Some(l) = member.get("locationName").and_then(Value::as_str) {
        let mut c = l.chars();
        return c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default();
    }
    name.to_owned()
}

fn xml_name(name: &str, member: &Value) -> String {
    member.get("locationName").and_then(Value::as_str).unwrap_or(name).to_owned()
}

fn generate(model: &Model, actions: &[String]) -> Result<String> {
    let mut inputs = BTreeSet::new();
    let mut outputs = BTreeSet::new();
    for action in actions {
        let op = model.operations.get(action).with_context(|| format!("no operation {action}"))?;
        if let Some(input) = op["input"]["shape"].as_str() {
            collect(model, input, &mut inputs)?;
        }
        if let Some(output) = op["output"]["shape"].as_str() {
            collect(model, output, &mut outputs)?;
        }
    }
    let all: BTreeSet<&String> = inputs.iter().chain(outputs.iter()).collect();
    let mut saved = BTreeSet::new();
    for root in SAVED_SHAPES {
        if all.contains(&root.to_string()) {
            collect(model, root, &mut saved)?;
        }
    }
    let mut deepest = 1;
    for action in actions {
        if let Some(input) = model.operations[action.as_str()]["input"]["shape"].as_str() {
            deepest = deepest.max(parameter_depth(model, input, &mut Vec::new())?);
        }
    }

    let mut out = String::new();
    writeln!(
        out,
        "// @generated by ec2api-codegen from botocore {} (data/ec2/2016-11-15/service-2.json.gz); do not edit.\n\
         // Regenerate with `scripts/regen-shapes`.\n\
         #![allow(clippy::all, non_camel_case_types, unused_variables)]\n\n\
         use crate::query::{{Blob, FromQuery, Node, StructDecoder, Timestamp}};\n\
         use crate::xml::{{ReturnTrue, XmlStruct, XmlValue, XmlWriter}};\n\
         use crate::Ec2Error;\n",
        model.version
    )?;

    let mut enum_values = String::new();
    for name in &all {
        let shape = model.shape(name)?;
        match model.kind(name)? {
            "string" if shape.get("enum").is_some() => {
                writeln!(out, "pub type {} = String;", type_name(name))?;
                if inputs.contains(*name) {
                    let values: Vec<String> = shape["enum"]
                        .as_array()
                        .context("enum")?
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|v| format!("{v:?}"))
                        .collect();
                    writeln!(
                        enum_values,
                        "    pub const {}: &[&str] = &[{}];",
                        heck::ToShoutySnakeCase::to_shouty_snake_case(name.as_str()),
                        values.join(", ")
                    )?;
                }
            }
            "structure" => {
                let roles = Roles {
                    decodable: inputs.contains(*name),
                    writable: outputs.contains(*name),
                    saved: saved.contains(*name),
                };
                write_struct(model, name, roles, &mut out)?
            }
            _ => {}
        }
    }
    writeln!(out, "\n/// Known values of the enumerations requests use (open: upstream keeps adding).\npub mod values {{\n{enum_values}}}")?;

    // The action enum.
    writeln!(
        out,
        "\n/// The most dotted segments a parameter name of any served action has (`Filter.1.Value.2` has\n\
         /// four): a deeper name cannot be recognised, so it is refused before any tree is built.\n\
         pub const MAX_PARAMETER_DEPTH: usize = {deepest};"
    )?;
    writeln!(out, "\n/// Every action Stratus serves, with its decoded request.\n#[derive(Debug, Clone, PartialEq)]\npub enum Action {{")?;
    for action in actions {
        let input = model.operations[action.as_str()]["input"]["shape"].as_str().context("input")?;
        writeln!(out, "    {action}({}),", type_name(input))?;
    }
    writeln!(
        out,
        "}}\n\nimpl Action {{\n    pub const NAMES: &'static [&'static str] = &[{}];\n",
        actions.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ")
    )?;
    writeln!(out, "    /// Decodes the request of `action` from the parameters (without `Action` and `Version`).\n    pub fn decode(action: &str, params: &Node) -> Result<Self, Ec2Error> {{\n        match action {{")?;
    for action in actions {
        writeln!(out, "            {action:?} => FromQuery::from_query(params, \"\").map(Self::{action}),")?;
    }
    writeln!(out, "            _ => Err(Ec2Error::invalid_action(action)),\n        }}\n    }}\n")?;
    writeln!(out, "    pub fn name(&self) -> &'static str {{\n        match self {{")?;
    for action in actions {
        writeln!(out, "            Self::{action}(_) => {action:?},")?;
    }
    writeln!(out, "        }}\n    }}\n")?;
    writeln!(
        out,
        "    /// Whether the request asked for a dry run.\n    pub fn dry_run(&self) -> bool {{\n        match self {{"
    )?;
    for action in actions {
        let input = model.operations[action.as_str()]["input"]["shape"].as_str().context("input")?;
        let has = model.shape(input)?["members"].as_object().context("members")?.contains_key("DryRun");
        if has {
            writeln!(out, "            Self::{action}(r) => r.dry_run == Some(true),")?;
        } else {
            writeln!(out, "            Self::{action}(_) => false,")?;
        }
    }
    writeln!(out, "        }}\n    }}\n}}\n")?;
    for action in actions {
        let output = match model.operations[action.as_str()]["output"]["shape"].as_str() {
            Some(shape) => type_name(shape),
            None => "ReturnTrue".into(),
        };
        writeln!(out, "pub type {action}Output = {output};")?;
    }
    Ok(out)
}

/// What a structure shape is used for: decoded from requests, written in answers, saved.
struct Roles {
    decodable: bool,
    writable: bool,
    saved: bool,
}

fn write_struct(model: &Model, name: &str, roles: Roles, out: &mut String) -> Result<()> {
    let Roles { decodable, writable, saved } = roles;
    let shape = model.shape(name)?;
    let members = shape["members"].as_object().context("members")?;
    let required: BTreeSet<&str> = shape
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let ty = type_name(name);

    struct Field {
        rust: String,
        query: String,
        xml: String,
        required: bool,
        range: Option<(i64, i64)>,
    }
    let mut fields = BTreeMap::new();
    for (member_name, member) in members {
        let member_shape = member["shape"].as_str().context("member shape")?;
        let target = model.shape(member_shape)?;
        let range = match model.kind(member_shape)? {
            "integer" | "long" if target.get("min").is_some() || target.get("max").is_some() => Some((
                target.get("min").and_then(Value::as_i64).unwrap_or(i64::MIN),
                target.get("max").and_then(Value::as_i64).unwrap_or(i64::MAX),
            )),
            _ => None,
        };
        fields.insert(
            member_name.clone(),
            (
                Field {
                    rust: field_name(member_name),
                    query: query_name(member_name, member),
                    xml: xml_name(member_name, member),
                    required: required.contains(member_name.as_str()),
                    range,
                },
                rust_type(model, member_shape)?,
            ),
        );
    }

    if saved {
        writeln!(
            out,
            "\n#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]\n#[serde(default)]\npub struct {ty} {{"
        )?;
    } else {
        writeln!(out, "\n#[derive(Debug, Clone, Default, PartialEq)]\npub struct {ty} {{")?;
    }
    for (field, rust_ty) in fields.values() {
        if field.required {
            writeln!(out, "    pub {}: {rust_ty},", field.rust)?;
        } else {
            if saved {
                writeln!(out, "    #[serde(skip_serializing_if = \"Option::is_none\")]")?;
            }
            writeln!(out, "    pub {}: Option<{rust_ty}>,", field.rust)?;
        }
    }
    writeln!(out, "}}")?;

    if decodable {
        writeln!(out, "\nimpl FromQuery for {ty} {{\n    fn from_query(node: &Node, path: &str) -> Result<Self, Ec2Error> {{\n        let d = StructDecoder::new(node, path)?;\n        let value = Self {{")?;
        for (field, _) in fields.values() {
            let get = if field.required { "required" } else { "optional" };
            match field.range {
                Some((min, max)) if field.required => writeln!(
                    out,
                    "            {0}: d.in_range({1:?}, d.required({1:?})?, {min}, {max})?,",
                    field.rust, field.query
                )?,
                Some((min, max)) => writeln!(
                    out,
                    "            {0}: d.optional({1:?})?.map(|v| d.in_range({1:?}, v, {min}, {max})).transpose()?,",
                    field.rust, field.query
                )?,
                None => writeln!(out, "            {}: d.{get}({:?})?,", field.rust, field.query)?,
            }
        }
        let known: Vec<String> = fields.values().map(|(f, _)| format!("{:?}", f.query)).collect();
        writeln!(out, "        }};\n        d.finish(&[{}])?;\n        Ok(value)\n    }}\n}}", known.join(", "))?;
    }

    if writable {
        writeln!(out, "\nimpl XmlStruct for {ty} {{\n    fn write_members(&self, w: &mut XmlWriter) {{")?;
        for (field, _) in fields.values() {
            writeln!(out, "        self.{}.write_xml(w, {:?});", field.rust, field.xml)?;
        }
        writeln!(out, "    }}\n}}\n\nimpl XmlValue for {ty} {{\n    fn write_xml(&self, w: &mut XmlWriter, name: &str) {{\n        w.start(name);\n        self.write_members(w);\n        w.end(name);\n    }}\n}}")?;
    }
    Ok(())
}
