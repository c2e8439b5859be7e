//! A factory's Git JSON as ADF Studio's Git integration writes it: one folder per object type
//! (`linkedService/`, `dataset/`, …, `managedVirtualNetwork/<vnet>/managedPrivateEndpoint/`)
//! of `{"name": …, "properties": …}` files, and `factory/<name>.json` with the global
//! parameters.

use std::fmt;
use std::path::{Path, PathBuf};

use azure::ObjectPath;
use serde_json::Value;

/// An object type: its folder, its name in `type.name` patterns and its REST collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    IntegrationRuntime,
    ManagedVirtualNetwork,
    ManagedPrivateEndpoint,
    Credential,
    LinkedService,
    Dataset,
    DataFlow,
    Pipeline,
    Trigger,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::ManagedVirtualNetwork,
        Kind::ManagedPrivateEndpoint,
        Kind::IntegrationRuntime,
        Kind::Credential,
        Kind::LinkedService,
        Kind::Dataset,
        Kind::DataFlow,
        Kind::Pipeline,
        Kind::Trigger,
    ];

    /// The folder name, which is also the type in `type.name` patterns.
    pub fn folder(self) -> &'static str {
        match self {
            Kind::IntegrationRuntime => "integrationRuntime",
            Kind::ManagedVirtualNetwork => "managedVirtualNetwork",
            Kind::ManagedPrivateEndpoint => "managedPrivateEndpoint",
            Kind::Credential => "credential",
            Kind::LinkedService => "linkedService",
            Kind::Dataset => "dataset",
            Kind::DataFlow => "dataflow",
            Kind::Pipeline => "pipeline",
            Kind::Trigger => "trigger",
        }
    }

    /// The REST collection segment under a factory.
    pub fn collection(self) -> &'static str {
        match self {
            Kind::IntegrationRuntime => "integrationRuntimes",
            Kind::ManagedVirtualNetwork => "managedVirtualNetworks",
            Kind::ManagedPrivateEndpoint => "managedPrivateEndpoints",
            Kind::Credential => "credentials",
            Kind::LinkedService => "linkedservices",
            Kind::Dataset => "datasets",
            Kind::DataFlow => "dataflows",
            Kind::Pipeline => "pipelines",
            Kind::Trigger => "triggers",
        }
    }

    /// The kind a `{"referenceName", "type"}` reference names.
    pub fn of_reference(reference_type: &str) -> Option<Kind> {
        Some(match reference_type {
            "LinkedServiceReference" => Kind::LinkedService,
            "DatasetReference" => Kind::Dataset,
            "DataFlowReference" => Kind::DataFlow,
            "PipelineReference" => Kind::Pipeline,
            "IntegrationRuntimeReference" => Kind::IntegrationRuntime,
            "CredentialReference" => Kind::Credential,
            "ManagedVirtualNetworkReference" => Kind::ManagedVirtualNetwork,
            _ => return None,
        })
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.folder().eq_ignore_ascii_case(text))
    }
}

/// An object's identity: kind and name (`vnet/endpoint` for a managed private endpoint).
/// Data Factory names compare ignoring case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub kind: Kind,
    pub name: String,
}

impl Key {
    pub fn new(kind: Kind, name: &str) -> Key {
        Key {
            kind,
            name: name.to_owned(),
        }
    }

    pub fn lower(&self) -> (Kind, String) {
        (self.kind, self.name.to_ascii_lowercase())
    }

    /// Where the object lives under the factory.
    pub fn path(&self) -> ObjectPath {
        match (self.kind, self.name.split_once('/')) {
            (Kind::ManagedPrivateEndpoint, Some((vnet, endpoint))) => ObjectPath {
                collection: vec![
                    "managedVirtualNetworks".into(),
                    vnet.into(),
                    "managedPrivateEndpoints".into(),
                ],
                name: endpoint.into(),
            },
            _ => ObjectPath {
                collection: vec![self.kind.collection().into()],
                name: self.name.clone(),
            },
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind.folder(), self.name)
    }
}

/// One object from the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub key: Key,
    /// Relative to the root, for messages.
    pub file: String,
    pub properties: Value,
}

/// The whole source.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub objects: Vec<Object>,
    /// `factory/<name>.json`'s file and document, when there is one.
    pub factory: Option<(String, Value)>,
}

fn read_json(root: &Path, path: &Path) -> Result<(String, Value), String> {
    let rel = path
        .strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read '{rel}': {e}"))?;
    // ADF Studio writes UTF-8, sometimes with a byte-order mark.
    let value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| format!("'{rel}' is not valid JSON: {e}"))?;
    Ok((rel, value))
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn object(root: &Path, kind: Kind, path: &Path, prefix: &str) -> Result<Object, String> {
    let (file, doc) = read_json(root, path)?;
    let name = doc
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let properties = match doc.get("properties") {
        Some(p @ Value::Object(_)) => p.clone(),
        _ => {
            return Err(format!(
                "'{file}' has no \"properties\" object: it is not a Data Factory {} as ADF Studio writes one",
                kind.folder()
            ))
        }
    };
    Ok(Object {
        key: Key::new(kind, &format!("{prefix}{name}")),
        file,
        properties,
    })
}

/// Reads every object under `root`. A folder that is missing is simply empty.
pub fn load(root: &Path) -> Result<Source, String> {
    if !root.is_dir() {
        return Err(format!(
            "the factory's Git root folder '{}' does not exist: set the input 'Git root folder' (rootFolder) to the folder holding linkedService/, pipeline/, …",
            root.display()
        ));
    }
    let mut source = Source::default();
    for kind in Kind::ALL {
        if kind == Kind::ManagedPrivateEndpoint {
            continue;
        }
        for path in json_files(&root.join(kind.folder()))? {
            source.objects.push(object(root, kind, &path, "")?);
        }
    }
    // managedVirtualNetwork/<vnet>/managedPrivateEndpoint/<pe>.json
    if let Ok(entries) = std::fs::read_dir(root.join("managedVirtualNetwork")) {
        let mut vnets: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        vnets.sort();
        for vnet in vnets {
            let vnet_name = vnet
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            for path in json_files(&vnet.join("managedPrivateEndpoint"))? {
                let o = object(
                    root,
                    Kind::ManagedPrivateEndpoint,
                    &path,
                    &format!("{vnet_name}/"),
                )?;
                source.objects.push(o);
            }
        }
    }
    let factories = json_files(&root.join("factory"))?;
    match factories.as_slice() {
        [] => {}
        [one] => source.factory = Some(read_json(root, one)?),
        _ => {
            return Err(format!(
                "'{}' holds {} factory files; ADF Studio writes one (factory/<name>.json)",
                root.join("factory").display(),
                factories.len()
            ))
        }
    }
    let mut seen = std::collections::HashMap::new();
    for o in &source.objects {
        if let Some(first) = seen.insert(o.key.lower(), &o.file) {
            return Err(format!(
                "{} is defined twice: in '{first}' and in '{}'",
                o.key, o.file
            ));
        }
    }
    if source.objects.is_empty() && source.factory.is_none() {
        return Err(format!(
            "'{}' holds no Data Factory objects (no linkedService/, dataset/, pipeline/, … folder with JSON files): check the input 'Git root folder' (rootFolder)",
            root.display()
        ));
    }
    Ok(source)
}

/// Every reference in `properties`, at any depth, as keys.
pub fn references(properties: &Value, out: &mut Vec<Key>) {
    match properties {
        Value::Object(map) => {
            if let (Some(Value::String(name)), Some(kind)) = (
                map.get("referenceName"),
                map.get("type")
                    .and_then(Value::as_str)
                    .and_then(Kind::of_reference),
            ) {
                out.push(Key::new(kind, name));
            }
            map.values().for_each(|v| references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// What an object depends on: its references, and a private endpoint's virtual network.
pub fn dependencies(key: &Key, properties: &Value) -> Vec<Key> {
    let mut deps = Vec::new();
    references(properties, &mut deps);
    if key.kind == Kind::ManagedPrivateEndpoint {
        if let Some((vnet, _)) = key.name.split_once('/') {
            deps.push(Key::new(Kind::ManagedVirtualNetwork, vnet));
        }
    }
    deps.sort();
    deps.dedup_by(|a, b| a.lower() == b.lower());
    deps
}

/// `*` and `?` wildcards, ignoring case.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// Whether `type.name` matches a `type.name` pattern (wildcards in both parts).
pub fn matches(pattern: &str, key: &Key) -> bool {
    match pattern.split_once('.') {
        Some((kind, name)) => wildcard(kind, key.kind.folder()) && wildcard(name, &key.name),
        None => wildcard(pattern, key.kind.folder()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards_and_patterns() {
        assert!(wildcard("PL_*", "pl_copy"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "ac"));
        let k = Key::new(Kind::Pipeline, "PL_Copy");
        assert!(matches("pipeline.PL_*", &k));
        assert!(matches("*.pl_copy", &k));
        assert!(matches("pipeline", &k));
        assert!(!matches("dataset.*", &k));
    }

    #[test]
    fn references_at_any_depth() {
        let p = json!({"activities": [{"type": "ExecutePipeline", "typeProperties": {"pipeline": {"referenceName": "child", "type": "PipelineReference"}}},
            {"type": "Copy", "inputs": [{"referenceName": "ds", "type": "DatasetReference"}], "linkedServiceName": {"referenceName": "ls", "type": "LinkedServiceReference"}}],
            "other": {"referenceName": "x", "type": "Unknown"}});
        let deps = dependencies(&Key::new(Kind::Pipeline, "p"), &p);
        assert_eq!(
            deps,
            vec![
                Key::new(Kind::LinkedService, "ls"),
                Key::new(Kind::Dataset, "ds"),
                Key::new(Kind::Pipeline, "child")
            ]
        );
        let pe = dependencies(
            &Key::new(Kind::ManagedPrivateEndpoint, "default/pe"),
            &json!({}),
        );
        assert_eq!(pe, vec![Key::new(Kind::ManagedVirtualNetwork, "default")]);
    }
}
