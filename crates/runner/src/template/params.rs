//! Template and pipeline `parameters:`: their declarations (typed, or the older
//! `name: default` mapping), and binding the values a reference passes to them, with the
//! server's checks: a value for every parameter without a default, no unknown parameters,
//! the declared type, the `values:` list.

use crate::expr::Val;
use crate::yaml::{Node, Pos, Value};

use super::Problems;

/// A declared parameter type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    Number,
    Boolean,
    Object,
    Step,
    StepList,
    Job,
    JobList,
    Deployment,
    DeploymentList,
    Stage,
    StageList,
    /// `environment`, `filePath`, `secureFile`, `serviceConnection`: a name.
    Name,
    /// `pool`: a name or a mapping.
    Pool,
    /// The older untyped form: any value.
    Any,
}

const TYPES: &[(&str, Type)] = &[
    ("string", Type::String),
    ("number", Type::Number),
    ("boolean", Type::Boolean),
    ("object", Type::Object),
    ("step", Type::Step),
    ("stepList", Type::StepList),
    ("job", Type::Job),
    ("jobList", Type::JobList),
    ("deployment", Type::Deployment),
    ("deploymentList", Type::DeploymentList),
    ("stage", Type::Stage),
    ("stageList", Type::StageList),
    ("environment", Type::Name),
    ("filePath", Type::Name),
    ("secureFile", Type::Name),
    ("serviceConnection", Type::Name),
    ("pool", Type::Pool),
];

/// The keys that start a step, a job, a deployment job and a stage.
const STEP_KEYS: &[&str] = &[
    "task",
    "script",
    "bash",
    "pwsh",
    "powershell",
    "checkout",
    "download",
    "downloadBuild",
    "getPackage",
    "publish",
    "reviewApp",
    "template",
];

/// How messages name the pipeline's own parameters (given with `--param`).
pub const PIPELINE: &str = "the pipeline";

/// Whether a value of type `ty` is written as YAML (a mapping or a list) on the command line.
pub fn structured(ty: Type) -> bool {
    !matches!(ty, Type::String | Type::Number | Type::Boolean | Type::Name)
}

#[derive(Debug, Clone)]
pub struct Decl {
    pub name: String,
    pub ty: Type,
    pub default: Option<Node>,
    pub values: Option<Vec<String>>,
    pub pos: Pos,
}

/// The parameters a file declares (`node` is its `parameters:`). Problems are reported and
/// the bad declarations left out.
pub fn declarations(node: Option<&Node>, problems: &mut Problems) -> Vec<Decl> {
    let Some(node) = node else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match &node.value {
        _ if node.is_null() => {}
        // The older form: `name: default`, any type.
        Value::Map(entries) => {
            for (k, v) in entries {
                out.push(Decl {
                    name: k.as_str().unwrap_or_default().to_owned(),
                    ty: Type::Any,
                    default: Some(v.clone()),
                    values: None,
                    pos: k.pos,
                });
            }
        }
        Value::Seq(items) => {
            for item in items {
                if let Some(d) = declaration(item, problems) {
                    if out
                        .iter()
                        .any(|o: &Decl| o.name.eq_ignore_ascii_case(&d.name))
                    {
                        problems.error(
                            item.pos,
                            format!("parameter '{}' is declared twice", d.name),
                        );
                    } else {
                        out.push(d);
                    }
                }
            }
        }
        Value::Scalar { .. } => problems.error(
            node.pos,
            "'parameters' must be a list of declarations ('- name: …, type: …, default: …')",
        ),
    }
    out
}

fn declaration(item: &Node, problems: &mut Problems) -> Option<Decl> {
    let Some(entries) = item.as_map() else {
        problems.error(
            item.pos,
            "a parameter declaration must be a mapping with 'name' and 'type'",
        );
        return None;
    };
    for (k, _) in entries {
        let key = k.as_str().unwrap_or_default();
        if !["name", "displayName", "type", "default", "values"].contains(&key) {
            problems.error(
                k.pos,
                format!("unknown key '{key}' in a parameter declaration (expected name, displayName, type, default, values)"),
            );
        }
    }
    let Some(name) = item
        .get("name")
        .and_then(Node::as_str)
        .filter(|n| !n.is_empty())
    else {
        problems.error(item.pos, "a parameter declaration needs 'name'");
        return None;
    };
    let ty = match item.get("type").and_then(Node::as_str) {
        None => Type::String,
        Some(t) => match TYPES.iter().find(|(n, _)| n.eq_ignore_ascii_case(t)) {
            Some((_, ty)) => *ty,
            None => {
                let names: Vec<&str> = TYPES.iter().map(|(n, _)| *n).collect();
                problems.error(
                    item.get("type").map_or(item.pos, |n| n.pos),
                    format!(
                        "parameter '{name}' has an unknown type '{t}' (types: {})",
                        names.join(", ")
                    ),
                );
                return None;
            }
        },
    };
    let values = match item.get("values") {
        None => None,
        Some(v) => match v.as_seq() {
            Some(items) => Some(
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect(),
            ),
            None => {
                problems.error(
                    v.pos,
                    format!("'values' of parameter '{name}' must be a list"),
                );
                None
            }
        },
    };
    let decl = Decl {
        name: name.to_owned(),
        ty,
        default: item.get("default").cloned(),
        values,
        pos: item.pos,
    };
    if let Some(d) = &decl.default {
        // A default must itself be a valid value.
        if let Err(message) = convert(&decl, d) {
            problems.error(
                d.pos,
                format!("the default of parameter '{name}': {message}"),
            );
        }
    }
    Some(decl)
}

/// Binds `given` (the reference's `parameters:` mapping, already expanded) to `decls`; the
/// result is the `parameters` object template expressions see. `at` is the reference, `what`
/// names the template for messages.
pub fn bind(
    decls: &[Decl],
    given: Option<&Node>,
    at: Pos,
    what: &str,
    problems: &mut Problems,
) -> Val {
    let legacy = decls.iter().all(|d| d.ty == Type::Any);
    let given_entries: &[(Node, Node)] = match given {
        None => &[],
        Some(n) if n.is_null() => &[],
        Some(n) => match n.as_map() {
            Some(e) => e,
            None => {
                problems.error(
                    n.pos,
                    format!("the parameters of {what} must be a mapping 'name: value'"),
                );
                &[]
            }
        },
    };
    let mut out: Vec<(String, Val)> = Vec::new();
    // Given, even when the value was wrong (reported once, not again as missing).
    let mut given_names: Vec<&str> = Vec::new();
    for (k, v) in given_entries {
        let key = k.as_str().unwrap_or_default();
        match decls.iter().find(|d| d.name.eq_ignore_ascii_case(key)) {
            Some(d) => {
                given_names.push(&d.name);
                match convert(d, v) {
                    Ok(val) => out.push((d.name.clone(), val)),
                    Err(message) => problems.error(v.pos, message),
                }
            }
            // The older untyped form takes any parameter.
            None if legacy => out.push((key.to_owned(), Val::from_node(v))),
            None => {
                let names: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
                problems.error(
                    k.pos,
                    format!(
                        "unexpected parameter '{key}': {what} declares {}",
                        if names.is_empty() {
                            "no parameters".to_owned()
                        } else {
                            names.join(", ")
                        }
                    ),
                );
            }
        }
    }
    for d in decls {
        if given_names.contains(&d.name.as_str()) {
            continue;
        }
        match &d.default {
            Some(default) => {
                if let Ok(v) = convert(d, default) {
                    out.push((d.name.clone(), v));
                }
            }
            None => problems.error(
                at,
                format!(
                    "a value for the '{}' parameter must be provided ({what} declares it without a default{})",
                    d.name,
                    if what == PIPELINE { format!(": pass --param {}=VALUE", d.name) } else { String::new() }
                ),
            ),
        }
    }
    Val::Object(out)
}

fn kind(node: &Node) -> &'static str {
    if node.is_null() {
        "null"
    } else {
        node.kind()
    }
}

/// Whether `node` is a mapping that starts like one of `keys`.
fn starts_with(node: &Node, keys: &[&str]) -> bool {
    node.as_map().is_some_and(|m| {
        m.iter()
            .any(|(k, _)| k.as_str().is_some_and(|k| keys.contains(&k)))
    })
}

fn list(d: &Decl, node: &Node, item_keys: &[&str], item: &str) -> Result<Val, String> {
    if node.is_null() {
        return Ok(Val::Array(Vec::new()));
    }
    let Some(items) = node.as_seq() else {
        return Err(format!(
            "parameter '{}' expects a list of {item}s, not {}",
            d.name,
            kind(node)
        ));
    };
    for i in items {
        if !starts_with(i, item_keys) {
            return Err(format!(
                "parameter '{}' expects a list of {item}s; the item at line {} is not a {item} (expected a mapping with {})",
                d.name,
                i.pos.line,
                item_keys.join(" or ")
            ));
        }
    }
    Ok(Val::from_node(node))
}

fn one(d: &Decl, node: &Node, keys: &[&str], item: &str) -> Result<Val, String> {
    if starts_with(node, keys) {
        Ok(Val::from_node(node))
    } else {
        Err(format!(
            "parameter '{}' expects a {item} (a mapping with {}), not {}",
            d.name,
            keys.join(" or "),
            kind(node)
        ))
    }
}

/// A value given for (or the default of) parameter `d`, checked against its type and values.
fn convert(d: &Decl, node: &Node) -> Result<Val, String> {
    let scalar = || {
        node.as_str().map(str::to_owned).ok_or_else(|| {
            format!(
                "parameter '{}' expects a {}, not {}",
                d.name,
                match d.ty {
                    Type::Number => "number",
                    Type::Boolean => "boolean",
                    _ => "string",
                },
                kind(node)
            )
        })
    };
    let value = match d.ty {
        Type::Any | Type::Object => Val::from_node(node),
        Type::String | Type::Name => Val::Str(scalar()?),
        Type::Number => {
            let text = scalar()?;
            match text.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Val::Num(n),
                _ => {
                    return Err(format!(
                        "the value '{text}' of parameter '{}' is not a number",
                        d.name
                    ))
                }
            }
        }
        Type::Boolean => {
            let text = scalar()?;
            match text.to_ascii_lowercase().as_str() {
                "true" => Val::Bool(true),
                "false" => Val::Bool(false),
                _ => {
                    return Err(format!(
                        "the value '{text}' of parameter '{}' is not a boolean (true or false)",
                        d.name
                    ))
                }
            }
        }
        Type::Pool => Val::from_node(node),
        Type::Step => one(d, node, STEP_KEYS, "step")?,
        Type::StepList => list(d, node, STEP_KEYS, "step")?,
        Type::Job => one(d, node, &["job", "template"], "job")?,
        Type::JobList => list(d, node, &["job", "deployment", "template"], "job")?,
        Type::Deployment => one(d, node, &["deployment", "template"], "deployment job")?,
        Type::DeploymentList => list(d, node, &["deployment", "template"], "deployment job")?,
        Type::Stage => one(d, node, &["stage", "template"], "stage")?,
        Type::StageList => list(d, node, &["stage", "template"], "stage")?,
    };
    if let Some(allowed) = &d.values {
        let text = node.as_str().unwrap_or_default();
        if !allowed.is_empty() && !allowed.iter().any(|a| a == text) {
            return Err(format!(
                "the value '{text}' of parameter '{}' is not one of its values: {}",
                d.name,
                allowed.join(", ")
            ));
        }
    }
    Ok(value)
}
