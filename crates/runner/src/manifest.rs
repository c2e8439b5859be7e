//! Task folders: `task.json` (contract §5) and how to start the task (contract §1), and how
//! `azp-local` finds a task folder by name.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// One input of a task.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub label: String,
    pub kind: String,
    pub aliases: Vec<String>,
    pub default: Option<String>,
    pub required: bool,
    pub has_visible_rule: bool,
}

impl Input {
    pub fn is_file_path(&self) -> bool {
        self.kind.eq_ignore_ascii_case("filePath")
    }

    pub fn is_connected_service(&self) -> bool {
        self.kind
            .to_ascii_lowercase()
            .starts_with("connectedservice")
    }

    /// Whether the YAML key `key` names this input (its name or an alias, any case).
    pub fn answers_to(&self, key: &str) -> bool {
        self.name.eq_ignore_ascii_case(key)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(key))
    }
}

/// How the task is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    /// `node <dir>/<target>`; `eol` is set for Node, Node10, Node16.
    Node {
        name: String,
        target: String,
        eol: bool,
    },
    /// A native binary named by launcher.json (a development task folder).
    Binary(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub dir: PathBuf,
    pub id: String,
    pub name: String,
    pub friendly_name: String,
    pub major: u64,
    pub instance_name_format: String,
    pub inputs: Vec<Input>,
    pub output_variables: Vec<String>,
    /// `restrictions.settableVariables.allowed`, when the task restricts them.
    pub settable_variables: Option<Vec<String>>,
    execution: Vec<(String, String)>,
    launcher_binary: Option<String>,
}

/// Why a task folder cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid task.json: {message}", path.display())]
    Json { path: PathBuf, message: String },
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Manifest {
    /// Reads `<dir>/task.json` (and `<dir>/launcher.json` when present).
    pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join("task.json");
        let raw = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        // task.json files written on Windows often start with a BOM.
        let json: Value =
            serde_json::from_str(raw.trim_start_matches('\u{feff}')).map_err(|e| {
                ManifestError::Json {
                    path: path.clone(),
                    message: e.to_string(),
                }
            })?;
        let bad = |what: &str| ManifestError::Json {
            path: path.clone(),
            message: what.to_owned(),
        };
        let name = json["name"]
            .as_str()
            .ok_or_else(|| bad("no \"name\""))?
            .to_owned();
        let major = match &json["version"]["Major"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| bad("no \"version.Major\""))?;
        let mut inputs = Vec::new();
        for i in json["inputs"].as_array().into_iter().flatten() {
            let Some(input_name) = i["name"].as_str() else {
                return Err(bad("an input without \"name\""));
            };
            inputs.push(Input {
                name: input_name.to_owned(),
                label: i["label"].as_str().unwrap_or(input_name).to_owned(),
                kind: i["type"].as_str().unwrap_or("string").to_owned(),
                aliases: i["aliases"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect(),
                default: text(&i["defaultValue"]),
                required: i["required"].as_bool().unwrap_or(false),
                has_visible_rule: i["visibleRule"]
                    .as_str()
                    .is_some_and(|r| !r.trim().is_empty()),
            });
        }
        let execution = json["execution"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v["target"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let launcher_binary = std::fs::read_to_string(dir.join("launcher.json"))
            .ok()
            .and_then(|raw| serde_json::from_str::<Value>(&raw).ok())
            .and_then(|v| v["binary"].as_str().map(str::to_owned));
        let settable = &json["restrictions"]["settableVariables"]["allowed"];
        Ok(Manifest {
            dir: dir.to_path_buf(),
            id: json["id"].as_str().unwrap_or_default().to_owned(),
            friendly_name: json["friendlyName"].as_str().unwrap_or(&name).to_owned(),
            instance_name_format: json["instanceNameFormat"]
                .as_str()
                .unwrap_or(&name)
                .to_owned(),
            name,
            major,
            inputs,
            output_variables: json["outputVariables"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["name"].as_str().map(str::to_owned))
                .collect(),
            settable_variables: settable.as_array().map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            }),
            execution,
            launcher_binary,
        })
    }

    /// The input a YAML key names (by name or alias).
    pub fn input(&self, key: &str) -> Option<&Input> {
        self.inputs.iter().find(|i| i.answers_to(key))
    }

    /// The Node handler the agent would pick on Linux/macOS (contract §1): lowest priority
    /// wins, Node24 < Node20_1 < Node16 < Node10 < Node. `Err` names what the task offers.
    pub fn node_handler(&self) -> Result<Handler, String> {
        const ORDER: [(&str, bool); 5] = [
            ("Node24", false),
            ("Node20_1", false),
            ("Node16", true),
            ("Node10", true),
            ("Node", true),
        ];
        for (handler, eol) in ORDER {
            if let Some((name, target)) = self
                .execution
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(handler))
            {
                return Ok(Handler::Node {
                    name: name.clone(),
                    target: target.clone(),
                    eol,
                });
            }
        }
        Err(self
            .execution
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(", "))
    }

    /// How to start this task: the Node handler when the folder is packaged (has the
    /// handler's target file), else the launcher.json binary (`binaries` are the folders to
    /// look in, then PATH; a name with a `/` is relative to the task folder).
    pub fn handler(&self, binaries: &[PathBuf]) -> Result<Handler, String> {
        let node = self.node_handler();
        if let Ok(Handler::Node { target, .. }) = &node {
            if !target.is_empty() && self.dir.join(target).is_file() {
                return node;
            }
        }
        if let Some(binary) = &self.launcher_binary {
            if binary.contains('/') {
                let path = self.dir.join(binary);
                return if path.is_file() {
                    Ok(Handler::Binary(path))
                } else {
                    Err(format!(
                        "launcher.json names {}, which does not exist",
                        path.display()
                    ))
                };
            }
            let mut dirs: Vec<PathBuf> = binaries.to_vec();
            if let Some(path) = std::env::var_os("PATH") {
                dirs.extend(std::env::split_paths(&path));
            }
            for dir in dirs {
                let candidate = dir.join(binary);
                if candidate.is_file() {
                    return Ok(Handler::Binary(candidate));
                }
            }
            return Err(format!(
                "the task's binary '{binary}' was not found next to azp-local or on PATH; build it with `cargo build -p <its crate>`"
            ));
        }
        match node {
            Ok(Handler::Node { target, .. }) => Err(format!(
                "the handler target {} does not exist and the folder has no launcher.json",
                self.dir.join(target).display()
            )),
            Ok(h) => Ok(h),
            Err(offered) if offered.is_empty() => Err("task.json has no \"execution\"".into()),
            Err(offered) => Err(format!(
                "The current operating system is not capable of running this task (it offers only: {offered})"
            )),
        }
    }
}

/// Where task folders are searched, in order.
#[derive(Debug, Clone, Default)]
pub struct TaskPath {
    pub dirs: Vec<PathBuf>,
    /// Folders holding task binaries (next to azp-local).
    pub binaries: Vec<PathBuf>,
}

impl TaskPath {
    /// `--tasks-dir` folders, then `AZP_LOCAL_TASKS` (a path list), then `task-manifests`
    /// found above the executable or the current folder.
    pub fn discover(explicit: &[PathBuf]) -> TaskPath {
        let mut dirs: Vec<PathBuf> = explicit.to_vec();
        if let Some(list) = std::env::var_os("AZP_LOCAL_TASKS") {
            dirs.extend(std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()));
        }
        let exe = std::env::current_exe().ok();
        let exe_dir = exe.as_ref().and_then(|e| e.parent().map(Path::to_path_buf));
        let mut starts: Vec<PathBuf> = Vec::new();
        if let Some(d) = &exe_dir {
            starts.push(d.clone());
        }
        if let Ok(cwd) = std::env::current_dir() {
            starts.push(cwd);
        }
        for start in starts {
            if let Some(found) = start
                .ancestors()
                .map(|a| a.join("task-manifests"))
                .find(|p| p.is_dir())
            {
                if !dirs.contains(&found) {
                    dirs.push(found);
                }
            }
        }
        let mut binaries = Vec::new();
        if let Some(d) = exe_dir {
            // Test binaries live in target/<profile>/deps; task binaries one level up.
            if d.file_name().is_some_and(|n| n == "deps") {
                if let Some(parent) = d.parent() {
                    binaries.push(parent.to_path_buf());
                }
            }
            binaries.push(d);
        }
        TaskPath { dirs, binaries }
    }

    /// Finds the folder of task `name` (a folder name, or a task.json `name`), case-insensitively.
    pub fn find(&self, name: &str) -> Option<Manifest> {
        for dir in &self.dirs {
            let direct = dir.join(name);
            if direct.join("task.json").is_file() {
                if let Ok(m) = Manifest::load(&direct) {
                    return Some(m);
                }
            }
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            entries.sort();
            for folder in entries {
                if !folder.join("task.json").is_file() {
                    continue;
                }
                let folder_matches = folder
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.eq_ignore_ascii_case(name));
                if let Ok(m) = Manifest::load(&folder) {
                    if folder_matches || m.name.eq_ignore_ascii_case(name) {
                        return Some(m);
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, task: &str) {
        std::fs::write(dir.join("task.json"), task).unwrap();
    }

    #[test]
    fn picks_the_node_handler_by_priority() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            r#"{"name":"t","version":{"Major":1},"execution":{"Node16":{"target":"a.js"},"Node20_1":{"target":"b.js"},"Process":{"target":"x.exe"}}}"#,
        );
        let m = Manifest::load(dir.path()).unwrap();
        assert_eq!(
            m.node_handler(),
            Ok(Handler::Node {
                name: "Node20_1".into(),
                target: "b.js".into(),
                eol: false
            })
        );
    }

    #[test]
    fn process_only_task_cannot_run_here() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            r#"{"name":"t","version":{"Major":"2"},"execution":{"Process":{"target":"x.exe"}}}"#,
        );
        let m = Manifest::load(dir.path()).unwrap();
        assert_eq!(m.major, 2);
        let err = m.handler(&[]).unwrap_err();
        assert!(err.contains("not capable"), "{err}");
    }

    #[test]
    fn inputs_answer_to_aliases() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            r#"{"name":"t","version":{"Major":0},"inputs":[{"name":"connectedServiceName","aliases":["azureSubscription"],"type":"connectedService:AzureRM","required":true}]}"#,
        );
        let m = Manifest::load(dir.path()).unwrap();
        let input = m.input("AzureSubscription").unwrap();
        assert!(input.is_connected_service() && input.required);
        assert!(m.input("nope").is_none());
    }
}
