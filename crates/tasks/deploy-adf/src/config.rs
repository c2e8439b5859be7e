//! Per-environment values: a config file that changes objects' JSON before they are deployed,
//! in the two forms `azure.datafactory.tools` users know.
//!
//! CSV (`type,name,path,value`, header first): `path` is relative to `properties` (or starts
//! with `$.`, from the object's root: `$.properties.typeProperties.url`); a leading `+` adds
//! the path, `-` removes it, otherwise the value replaces an existing one. JSON:
//! `{"type.name": [{"name": "$.properties.…", "value": …, "action": "add|update|remove"}]}`.
//! `factory.<name>` lines change the factory document's properties (global parameters).
//! `type` and `name` take `*`/`?` wildcards; values expand `$(variable)` (the pipeline's
//! variables) and `$Env:NAME` (the agent's environment). A line naming an object or a path
//! that does not exist is an error naming the line.

use serde_json::{Map, Value};

use crate::source::{matches, wildcard, Object};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Add,
    Update,
    Remove,
}

/// One change, with where it was written for messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub line: String,
    pub pattern: String,
    pub path: Vec<Step>,
    pub action: Action,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
}

fn parse_path(text: &str, line: &str) -> Result<Vec<Step>, String> {
    let text = text.trim();
    let (rooted, rest) = match text.strip_prefix("$.") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut steps = Vec::new();
    for part in rest.split('.') {
        let (key, mut indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            steps.push(Step::Key(key.to_owned()));
        }
        while let Some(after) = indices.strip_prefix('[') {
            let end = after
                .find(']')
                .ok_or_else(|| format!("{line}: the path '{text}' has an unclosed '['"))?;
            let n = after[..end].parse::<usize>().map_err(|_| {
                format!(
                    "{line}: the path '{text}' has a non-numeric index '{}'",
                    &after[..end]
                )
            })?;
            steps.push(Step::Index(n));
            indices = &after[end + 1..];
        }
        if key.is_empty() && part.is_empty() {
            return Err(format!("{line}: the path '{text}' has an empty part"));
        }
    }
    if rooted {
        // From the object's root: only `properties` is deployed.
        match steps.first() {
            Some(Step::Key(k)) if k == "properties" => {
                steps.remove(0);
            }
            _ => {
                return Err(format!(
                    "{line}: the path '{text}' must start with '$.properties.' (only an object's properties are deployed)"
                ))
            }
        }
    }
    if steps.is_empty() {
        return Err(format!("{line}: the path '{text}' names no property"));
    }
    Ok(steps)
}

/// Splits one CSV line (quotes, doubled quotes inside them).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// `$(name)` and `$Env:NAME` in `text`; an unknown one is an error.
fn expand(
    text: &str,
    line: &str,
    variable: &dyn Fn(&str) -> Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$(") {
            let end = after
                .find(')')
                .ok_or_else(|| format!("{line}: '$(' without ')' in the value"))?;
            let name = &after[..end];
            let value = variable(name).ok_or_else(|| {
                format!("{line}: the variable '{name}' is not set (define it in the pipeline or its variable group)")
            })?;
            out.push_str(&value);
            rest = &after[end + 1..];
        } else if tail.len() >= 5 && tail[..5].eq_ignore_ascii_case("$env:") {
            let after = &tail[5..];
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..end];
            let value = env(name)
                .ok_or_else(|| format!("{line}: the environment variable '{name}' is not set"))?;
            out.push_str(&value);
            rest = &after[end..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A value as written: JSON when it reads as an object or array, text otherwise (an update
/// keeps a number or boolean a number or boolean, see [`apply`]).
fn value_of(text: &str) -> Value {
    let t = text.trim();
    if t.starts_with('{') || t.starts_with('[') {
        if let Ok(v) = serde_json::from_str(t) {
            return v;
        }
    }
    Value::String(text.to_owned())
}

/// Reads a config file (`.csv` or `.json` by extension).
pub fn parse(
    file: &str,
    text: &str,
    variable: &dyn Fn(&str) -> Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Change>, String> {
    let text = text.trim_start_matches('\u{feff}');
    let mut changes = Vec::new();
    if file.to_ascii_lowercase().ends_with(".json") {
        let doc: Map<String, Value> = serde_json::from_str(text).map_err(|e| {
            format!(
                "the config file '{file}' is not a JSON object of \"type.name\": [changes]: {e}"
            )
        })?;
        for (pattern, items) in doc {
            let items = items.as_array().ok_or_else(|| {
                format!(
                    "{file}: \"{pattern}\" must be an array of {{\"name\", \"value\", \"action\"}}"
                )
            })?;
            for (i, item) in items.iter().enumerate() {
                let line = format!("{file}, \"{pattern}\" item {}", i + 1);
                let path = item
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{line}: \"name\" (the JSON path) is missing"))?;
                let action = match item
                    .get("action")
                    .and_then(Value::as_str)
                    .unwrap_or("update")
                {
                    a if a.eq_ignore_ascii_case("add") => Action::Add,
                    a if a.eq_ignore_ascii_case("update") => Action::Update,
                    a if a.eq_ignore_ascii_case("remove") => Action::Remove,
                    other => {
                        return Err(format!(
                            "{line}: action '{other}' is not add, update or remove"
                        ))
                    }
                };
                let value = match item.get("value") {
                    Some(Value::String(s)) => value_of(&expand(s, &line, variable, env)?),
                    Some(other) => other.clone(),
                    None if action == Action::Remove => Value::Null,
                    None => return Err(format!("{line}: \"value\" is missing")),
                };
                changes.push(Change {
                    path: parse_path(path, &line)?,
                    line,
                    pattern: pattern.clone(),
                    action,
                    value,
                });
            }
        }
        return Ok(changes);
    }
    let mut lines = text.lines().enumerate().filter(|(_, l)| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    });
    let header = lines.next().map(|(_, l)| csv_fields(l)).unwrap_or_default();
    let header: Vec<String> = header
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if header != ["type", "name", "path", "value"] {
        return Err(format!(
            "{file}, line 1: the header must be 'type,name,path,value' (found '{}')",
            header.join(",")
        ));
    }
    for (n, text) in lines {
        let line = format!("{file}, line {}", n + 1);
        let fields = csv_fields(text);
        if fields.len() < 3 || fields.len() > 4 {
            return Err(format!(
                "{line}: expected type,name,path,value ({} fields found)",
                fields.len()
            ));
        }
        let (kind, name, path) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
        let (action, path) = match path.chars().next() {
            Some('+') => (Action::Add, &path[1..]),
            Some('-') => (Action::Remove, &path[1..]),
            _ => (Action::Update, path),
        };
        let raw = fields.get(3).cloned().unwrap_or_default();
        if raw.is_empty() && action != Action::Remove {
            return Err(format!("{line}: the value is empty"));
        }
        changes.push(Change {
            path: parse_path(path, &line)?,
            value: value_of(&expand(&raw, &line, variable, env)?),
            pattern: format!("{kind}.{name}"),
            line,
            action,
        });
    }
    Ok(changes)
}

/// Applies every change to the objects it matches, and `factory.<name>` lines to the factory
/// document's properties (its global parameters); an error stops it (the task then writes
/// nothing).
pub fn apply(
    changes: &[Change],
    objects: &mut [Object],
    mut factory: Option<(&str, &mut Value)>,
) -> Result<usize, String> {
    let mut applied = 0;
    for change in changes {
        let mut matched = false;
        if let Some((kind, name)) = change.pattern.split_once('.') {
            if kind.eq_ignore_ascii_case("factory") {
                if let Some((factory_name, doc)) = factory.as_mut() {
                    if wildcard(name, factory_name) {
                        matched = true;
                        let properties = &mut doc["properties"];
                        if !properties.is_object() {
                            *properties = Value::Object(Map::new());
                        }
                        apply_one(change, properties)
                            .map_err(|e| format!("{}: factory.{factory_name}: {e}", change.line))?;
                        applied += 1;
                    }
                }
            }
        }
        for o in objects
            .iter_mut()
            .filter(|o| matches(&change.pattern, &o.key))
        {
            matched = true;
            apply_one(change, &mut o.properties)
                .map_err(|e| format!("{}: {} ({}): {e}", change.line, o.key, o.file))?;
            applied += 1;
        }
        if !matched {
            return Err(format!(
                "{}: no object in the source matches '{}'",
                change.line, change.pattern
            ));
        }
    }
    Ok(applied)
}

fn describe(path: &[Step]) -> String {
    let mut s = String::from("properties");
    for step in path {
        match step {
            Step::Key(k) => s.push_str(&format!(".{k}")),
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn apply_one(change: &Change, properties: &mut Value) -> Result<(), String> {
    let (last, parents) = change.path.split_last().expect("paths are never empty");
    let mut node = properties;
    for (i, step) in parents.iter().enumerate() {
        let next = match step {
            Step::Key(k) => {
                if change.action == Action::Add && node.is_object() && node.get(k).is_none() {
                    node[k.as_str()] = Value::Object(Map::new());
                }
                node.get_mut(k.as_str())
            }
            Step::Index(n) => node.get_mut(*n),
        };
        node = next
            .ok_or_else(|| format!("the path {} does not exist", describe(&change.path[..=i])))?;
    }
    let missing = || format!("the path {} does not exist", describe(&change.path));
    match (change.action, last) {
        (Action::Remove, Step::Key(k)) => node
            .as_object_mut()
            .and_then(|m| m.remove(k))
            .map(drop)
            .ok_or_else(missing),
        (Action::Remove, Step::Index(n)) => match node.as_array_mut() {
            Some(items) if *n < items.len() => {
                items.remove(*n);
                Ok(())
            }
            _ => Err(missing()),
        },
        (Action::Add, Step::Key(k)) => match node.as_object_mut() {
            Some(m) => {
                m.insert(k.clone(), change.value.clone());
                Ok(())
            }
            None => Err(format!(
                "{} is not an object: nothing can be added to it",
                describe(&change.path[..change.path.len() - 1])
            )),
        },
        (Action::Add, Step::Index(_)) => match node.as_array_mut() {
            Some(items) => {
                items.push(change.value.clone());
                Ok(())
            }
            None => Err(missing()),
        },
        (Action::Update, step) => {
            let target = match step {
                Step::Key(k) => node.get_mut(k.as_str()),
                Step::Index(n) => node.get_mut(*n),
            }
            .ok_or_else(|| format!("{} (use '+' or action add to add it)", missing()))?;
            *target = keep_type(target, &change.value);
            Ok(())
        }
    }
}

/// A text value replacing a number or a boolean becomes one when it reads as one.
fn keep_type(old: &Value, new: &Value) -> Value {
    if let Value::String(s) = new {
        match old {
            Value::Number(_) => {
                if let Ok(n) = serde_json::from_str::<serde_json::Number>(s.trim()) {
                    return Value::Number(n);
                }
            }
            Value::Bool(_) => {
                if let Ok(b) = s.trim().to_ascii_lowercase().parse::<bool>() {
                    return Value::Bool(b);
                }
            }
            _ => {}
        }
    }
    new.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Key, Kind};
    use serde_json::json;

    fn none(_: &str) -> Option<String> {
        None
    }

    fn objects() -> Vec<Object> {
        vec![
            Object {
                key: Key::new(Kind::LinkedService, "LS_Lake"),
                file: "linkedService/LS_Lake.json".into(),
                properties: json!({"type": "AzureBlobFS", "typeProperties": {"url": "https://dev.dfs.core.windows.net"}}),
            },
            Object {
                key: Key::new(Kind::Pipeline, "PL_Load"),
                file: "pipeline/PL_Load.json".into(),
                properties: json!({"parameters": {"batch": {"type": "int", "defaultValue": 10}}, "activities": [{"name": "a"}, {"name": "b"}]}),
            },
        ]
    }

    #[test]
    fn csv_update_add_remove_with_expansion() {
        let vars = |n: &str| (n == "env").then(|| "prd".to_owned());
        let env = |n: &str| (n == "REGION").then(|| "weu".to_owned());
        let text = "type,name,path,value\nlinkedService,LS_*,typeProperties.url,\"https://$(env)$Env:REGION.dfs.core.windows.net\"\npipeline,PL_Load,parameters.batch.defaultValue,50\npipeline,PL_Load,+annotations,\"[\"\"x\"\"]\"\npipeline,PL_Load,-activities[1],\n";
        let changes = parse("prd.csv", text, &vars, &env).unwrap();
        let mut o = objects();
        assert_eq!(apply(&changes, &mut o, None).unwrap(), 4);
        assert_eq!(
            o[0].properties["typeProperties"]["url"],
            "https://prdweu.dfs.core.windows.net"
        );
        assert_eq!(o[1].properties["parameters"]["batch"]["defaultValue"], 50);
        assert_eq!(o[1].properties["annotations"], json!(["x"]));
        assert_eq!(o[1].properties["activities"], json!([{"name": "a"}]));
    }

    #[test]
    fn json_form() {
        let text = r#"{"linkedService.LS_Lake": [{"name": "$.properties.typeProperties.url", "value": "https://prd", "action": "update"}]}"#;
        let changes = parse("prd.json", text, &none, &none).unwrap();
        let mut o = objects();
        apply(&changes, &mut o, None).unwrap();
        assert_eq!(o[0].properties["typeProperties"]["url"], "https://prd");
        // The factory's global parameters.
        let text = "type,name,path,value\nfactory,adf-*,globalParameters.environment.value,prd\n";
        let changes = parse("prd.csv", text, &none, &none).unwrap();
        let mut doc = serde_json::json!({"properties": {"globalParameters": {"environment": {"type": "string", "value": "dev"}}}});
        apply(&changes, &mut objects(), Some(("adf-sales", &mut doc))).unwrap();
        assert_eq!(
            doc["properties"]["globalParameters"]["environment"]["value"],
            "prd"
        );
        let e = apply(&changes, &mut objects(), None).unwrap_err();
        assert!(
            e.contains("no object in the source matches 'factory.adf-*'"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse(
            "c.csv",
            "type,name,path,value\nlinkedService,LS_Lake,typeProperties.url,$(nope)\n",
            &none,
            &none,
        )
        .unwrap_err();
        assert!(e.contains("c.csv, line 2") && e.contains("'nope'"), "{e}");
        let changes = parse(
            "c.csv",
            "type,name,path,value\n\nlinkedService,LS_Lake,typeProperties.uri,x\n",
            &none,
            &none,
        )
        .unwrap();
        let e = apply(&changes, &mut objects(), None).unwrap_err();
        assert!(
            e.contains("c.csv, line 3")
                && e.contains("properties.typeProperties.uri does not exist"),
            "{e}"
        );
        let changes = parse(
            "c.csv",
            "type,name,path,value\ndataset,DS_*,typeProperties.x,1\n",
            &none,
            &none,
        )
        .unwrap();
        let e = apply(&changes, &mut objects(), None).unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("no object in the source matches 'dataset.DS_*'"),
            "{e}"
        );
        let e = parse("c.csv", "a,b\n", &none, &none).unwrap_err();
        assert!(e.contains("header"), "{e}");
    }
}
