//! What the agent hands a task process: inputs, variables and secrets (contract §2).
//!
//! [`Agent`] is a snapshot of the environment taken once at start-up. Secret variables
//! (`SECRET_*`) are moved out of the process environment into the snapshot, so child
//! processes never inherit them, and registered with the agent before anything is printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::secrets;

/// The environment variable with the task launcher's TLS tunnel address (`127.0.0.1:<port>`;
/// docs/tls-tunnel.md).
pub const LAUNCHER_TUNNEL_VARIABLE: &str = "AZDO_DATA_TASKS_TLS_TUNNEL";
/// The environment variable with the tunnel's per-run token (a secret).
pub const LAUNCHER_TUNNEL_TOKEN_VARIABLE: &str = "AZDO_DATA_TASKS_TLS_TUNNEL_TOKEN";

/// Variables the launcher sets for this process alone; children must not inherit them.
const LAUNCHER_VARIABLES: [&str; 2] = [LAUNCHER_TUNNEL_VARIABLE, LAUNCHER_TUNNEL_TOKEN_VARIABLE];

/// The agent's name mapping for variables and inputs: `.` and space become `_`, then
/// upper-case (VarUtil.ConvertToEnvVariableFormat).
pub fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '.' | ' ' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// A problem with one input, naming it by label and name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input '{label}' ({name}) {problem}")]
pub struct InputError {
    pub name: String,
    pub label: String,
    pub problem: String,
}

/// How [`Agent::pick_input`] compares a value with the option labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickMatch {
    /// ASCII case ignored.
    IgnoreCase,
    /// ASCII case, white space, `_` and `-` ignored: for the Microsoft tasks' picklists whose
    /// labels have spaces (`Resource Group`), which pipelines write in several ways.
    IgnoreCaseAndSeparators,
}

impl PickMatch {
    fn key(self, text: &str) -> String {
        match self {
            PickMatch::IgnoreCase => text.trim().to_ascii_lowercase(),
            PickMatch::IgnoreCaseAndSeparators => text
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
                .collect::<String>()
                .to_ascii_lowercase(),
        }
    }
}

/// The task's view of its environment.
#[derive(Debug, Clone, Default)]
pub struct Agent {
    env: HashMap<String, String>,
    secrets: HashMap<String, String>,
    labels: HashMap<String, String>,
}

impl Agent {
    /// Takes the process environment: moves `SECRET_*` out of it and registers every secret
    /// value with the agent. Call before any other thread starts (the environment is
    /// process-global).
    ///
    /// The launcher's tunnel variables are removed too: they are for this process only.
    pub fn from_process() -> Agent {
        let mut env = HashMap::new();
        let mut secret_keys = Vec::new();
        for (key, value) in std::env::vars_os() {
            let (Ok(key), Ok(value)) = (key.into_string(), value.into_string()) else {
                continue;
            };
            if key.starts_with("SECRET_") || LAUNCHER_VARIABLES.contains(&key.as_str()) {
                secret_keys.push(key.clone());
            }
            env.insert(key, value);
        }
        for key in &secret_keys {
            // Safe in edition 2021; called before the runtime starts any thread.
            std::env::remove_var(key);
        }
        Agent::from_vars(env)
    }

    /// Builds a snapshot from explicit variables (tests, and tasks run in-process).
    /// `SECRET_*` entries become secrets and are registered.
    pub fn from_vars<I, K, V>(vars: I) -> Agent
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut agent = Agent::default();
        for (key, value) in vars {
            let (key, value) = (key.into(), value.into());
            match key.strip_prefix("SECRET_") {
                Some(name) => {
                    secrets::register(&value);
                    agent.secrets.insert(name.to_owned(), value);
                }
                None => {
                    if key == LAUNCHER_TUNNEL_TOKEN_VARIABLE {
                        secrets::register(&value);
                    }
                    agent.env.insert(key, value);
                }
            }
        }
        agent
    }

    /// Input labels for error messages, read from the task's own task.json
    /// (`include_str!` it): the user sees the label the web editor shows.
    pub fn with_manifest_labels(mut self, task_json: &str) -> Agent {
        #[derive(serde::Deserialize)]
        struct Manifest {
            #[serde(default)]
            inputs: Vec<ManifestInput>,
        }
        #[derive(serde::Deserialize)]
        struct ManifestInput {
            name: String,
            #[serde(default)]
            label: String,
        }
        if let Ok(manifest) = serde_json::from_str::<Manifest>(task_json) {
            for input in manifest.inputs {
                if !input.label.is_empty() {
                    self.labels.insert(input.name, input.label);
                }
            }
        }
        self
    }

    /// A raw environment variable of the snapshot (not a secret).
    pub fn env(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    fn error(&self, name: &str, problem: impl Into<String>) -> InputError {
        InputError {
            name: name.to_owned(),
            label: self
                .labels
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.to_owned()),
            problem: problem.into(),
        }
    }

    /// An input, trimmed; `None` when missing or empty.
    pub fn input(&self, name: &str) -> Option<String> {
        let key = format!("INPUT_{}", env_name(name));
        self.env
            .get(&key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The first non-empty input among a name and its aliases. The agent exports an input
    /// under its canonical name whatever name the YAML used; the aliases are read too so that
    /// a runner that passes YAML names through still works.
    pub fn input_any(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|n| self.input(n))
    }

    /// A picklist input: the value of the option whose label matches, `default` when the
    /// input is empty; anything else is an error naming the input and the allowed labels.
    pub fn pick_input<T: Copy>(
        &self,
        name: &str,
        default: T,
        options: &[(&str, T)],
        matching: PickMatch,
    ) -> Result<T, InputError> {
        let Some(raw) = self.input(name) else {
            return Ok(default);
        };
        let wanted = matching.key(&raw);
        options
            .iter()
            .find(|(label, _)| matching.key(label) == wanted)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let allowed: Vec<String> = options.iter().map(|(l, _)| format!("'{l}'")).collect();
                self.error(
                    name,
                    format!("is '{raw}', which is not one of {}", allowed.join(", ")),
                )
            })
    }

    /// A required input: missing or empty is an error naming it.
    pub fn required_input(&self, name: &str) -> Result<String, InputError> {
        self.input(name)
            .ok_or_else(|| self.error(name, "is required but empty: set it in the task's inputs"))
    }

    /// A boolean as task-lib reads it: true only for `true` in any case; missing → `default`.
    pub fn bool_input(&self, name: &str, default: bool) -> bool {
        match self.input(name) {
            Some(v) => v.eq_ignore_ascii_case("true"),
            None => default,
        }
    }

    /// An integer input; a value that is not a whole number is an error naming the input.
    pub fn int_input(&self, name: &str) -> Result<Option<i64>, InputError> {
        self.input(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| self.error(name, format!("must be a whole number, got '{v}'")))
            })
            .transpose()
    }

    /// An integer input within `range`.
    pub fn int_input_in(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, InputError> {
        match self.int_input(name)? {
            Some(v) if !range.contains(&v) => Err(self.error(
                name,
                format!(
                    "must be between {} and {}, got {v}",
                    range.start(),
                    range.end()
                ),
            )),
            other => Ok(other),
        }
    }

    /// A path input that must exist. Relative paths are taken from
    /// `System.DefaultWorkingDirectory`, as the agent roots `filePath` inputs.
    pub fn path_input(&self, name: &str) -> Result<Option<PathBuf>, InputError> {
        let Some(raw) = self.input(name) else {
            return Ok(None);
        };
        let mut path = PathBuf::from(&raw);
        if path.is_relative() {
            if let Some(root) = self.variable("System.DefaultWorkingDirectory") {
                path = Path::new(&root).join(path);
            }
        }
        if !path.exists() {
            return Err(self.error(
                name,
                format!(
                    "points to '{}', which does not exist: check the path and that the files were checked out or downloaded",
                    path.display()
                ),
            ));
        }
        Ok(Some(path))
    }

    /// A JSON input parsed into `T`; a parse error names the input and the position.
    pub fn json_input<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, InputError> {
        self.input(name)
            .map(|v| {
                serde_json::from_str(&v)
                    .map_err(|e| self.error(name, format!("is not valid JSON: {e}")))
            })
            .transpose()
    }

    /// A variable: public (`A_B`) or secret (`SECRET_A_B`, already moved into the snapshot).
    pub fn variable(&self, name: &str) -> Option<String> {
        let key = env_name(name);
        self.secrets
            .get(&key)
            .or_else(|| self.env.get(&key))
            .cloned()
    }

    /// Whether `System.Debug` is on.
    pub fn debug(&self) -> bool {
        self.variable("System.Debug")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Every environment entry of the snapshot whose key starts with `prefix`.
    pub(crate) fn env_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.env
            .iter()
            .filter(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"{"inputs":[{"name":"notebooksFolderPath","label":"Notebooks folder","type":"filePath"}]}"#;

    fn agent(vars: &[(&str, &str)]) -> Agent {
        Agent::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .with_manifest_labels(MANIFEST)
    }

    #[test]
    fn names_map_like_the_agent() {
        assert_eq!(
            env_name("System.Default Working.dir"),
            "SYSTEM_DEFAULT_WORKING_DIR"
        );
        assert_eq!(env_name("notebooksFolderPath"), "NOTEBOOKSFOLDERPATH");
    }

    #[test]
    fn inputs_are_trimmed_and_empty_is_missing() {
        let a = agent(&[("INPUT_URL", "  https://x  "), ("INPUT_TOKEN", "   ")]);
        assert_eq!(a.input("url").as_deref(), Some("https://x"));
        assert_eq!(a.input("token"), None);
        assert_eq!(a.input("Url").as_deref(), Some("https://x"));
    }

    #[test]
    fn required_input_error_names_label_and_name() {
        let a = agent(&[]);
        let e = a.required_input("notebooksFolderPath").unwrap_err();
        assert_eq!(
            e.to_string(),
            "input 'Notebooks folder' (notebooksFolderPath) is required but empty: set it in the task's inputs"
        );
        let e = a.required_input("other").unwrap_err();
        assert!(e.to_string().starts_with("input 'other' (other)"));
    }

    #[test]
    fn booleans_read_like_task_lib() {
        let a = agent(&[
            ("INPUT_A", "TRUE"),
            ("INPUT_B", "yes"),
            ("INPUT_C", "True "),
        ]);
        assert!(a.bool_input("a", false));
        assert!(!a.bool_input("b", true));
        assert!(a.bool_input("c", false));
        assert!(a.bool_input("missing", true));
    }

    #[test]
    fn typed_getters_name_the_problem() {
        let a = agent(&[
            ("INPUT_N", "12"),
            ("INPUT_BAD", "twelve"),
            ("INPUT_J", r#"{"a":"b"}"#),
            ("INPUT_BADJSON", "{a"),
        ]);
        assert_eq!(a.int_input("n").unwrap(), Some(12));
        assert!(a
            .int_input("bad")
            .unwrap_err()
            .to_string()
            .contains("must be a whole number, got 'twelve'"));
        assert!(a
            .int_input_in("n", 1..=10)
            .unwrap_err()
            .to_string()
            .contains("between 1 and 10"));
        let j: HashMap<String, String> = a.json_input("j").unwrap().unwrap();
        assert_eq!(j["a"], "b");
        assert!(a
            .json_input::<serde_json::Value>("badjson")
            .unwrap_err()
            .to_string()
            .contains("is not valid JSON"));
    }

    #[test]
    fn picklists_and_aliases() {
        let a = agent(&[
            ("INPUT_SCOPE", "resource_group"),
            ("INPUT_MODE", "INCREMENTAL"),
            ("INPUT_AZURESUBSCRIPTION", "conn"),
        ]);
        let options = [("Resource Group", 1), ("Subscription", 2)];
        let loose = PickMatch::IgnoreCaseAndSeparators;
        assert_eq!(a.pick_input("scope", 0, &options, loose).unwrap(), 1);
        assert_eq!(a.pick_input("missing", 0, &options, loose).unwrap(), 0);
        let e = a
            .pick_input("scope", 0, &options, PickMatch::IgnoreCase)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "(scope) is 'resource_group', which is not one of 'Resource Group', 'Subscription'"
            ),
            "{e}"
        );
        let modes = [("Incremental", 'i'), ("Complete", 'c')];
        assert_eq!(
            a.pick_input("mode", 'c', &modes, PickMatch::IgnoreCase)
                .unwrap(),
            'i'
        );
        assert_eq!(
            a.input_any(&["ConnectedServiceName", "azureSubscription"])
                .as_deref(),
            Some("conn")
        );
        assert_eq!(a.input_any(&["ConnectedServiceName"]), None);
    }

    #[test]
    fn path_input_must_exist_and_is_rooted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.txt"), "x").unwrap();
        let root = dir.path().to_str().unwrap();
        let a = agent(&[
            ("SYSTEM_DEFAULTWORKINGDIRECTORY", root),
            ("INPUT_NOTEBOOKSFOLDERPATH", "f.txt"),
            ("INPUT_MISSING", "nope"),
        ]);
        assert_eq!(
            a.path_input("notebooksFolderPath").unwrap(),
            Some(dir.path().join("f.txt"))
        );
        let e = a.path_input("missing").unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn variables_public_and_secret() {
        let a = agent(&[
            ("BUILD_SOURCESDIRECTORY", "/src"),
            ("SECRET_MY_TOKEN", "s3cr3t-value"),
        ]);
        assert_eq!(
            a.variable("Build.SourcesDirectory").as_deref(),
            Some("/src")
        );
        assert_eq!(a.variable("my.token").as_deref(), Some("s3cr3t-value"));
        assert_eq!(crate::secrets::mask("t=s3cr3t-value"), "t=***");
    }

    #[test]
    fn from_process_removes_secrets_from_the_environment() {
        // Run in a child process: the environment is process-global and tests are threads.
        if std::env::var("TASK_SDK_SECRET_CHILD").is_ok() {
            let agent = Agent::from_process();
            assert_eq!(
                agent.variable("child.secret").as_deref(),
                Some("child-secret-value")
            );
            assert!(std::env::var("SECRET_CHILD_SECRET").is_err());
            let inherited = std::process::Command::new("sh")
                .args(["-c", "printf %s \"$SECRET_CHILD_SECRET\""])
                .output()
                .unwrap();
            assert!(inherited.stdout.is_empty(), "a child inherited the secret");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "agent::tests::from_process_removes_secrets_from_the_environment",
                "--nocapture",
            ])
            .env("TASK_SDK_SECRET_CHILD", "1")
            .env("SECRET_CHILD_SECRET", "child-secret-value")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "child failed: {stdout}");
        assert!(
            stdout.contains("##vso[task.setsecret]child-secret-value"),
            "the secret was not registered: {stdout}"
        );
    }
}
