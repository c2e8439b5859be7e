//! The pipeline model and its loader: YAML → stages → jobs → steps, checked before anything
//! runs (unknown keys, missing `dependsOn` targets, task versions and inputs, conditions),
//! every problem reported with `file:line:col`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::expr::{self, Expression, Outcome, Scope};
use crate::manifest::{Manifest, TaskPath};
use crate::variables::Variables;
use crate::yaml::{self, Node, Pos};

/// A problem found while loading, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pos: Pos,
    pub message: String,
}

#[derive(Debug, Clone)]
pub enum VarDef {
    Value {
        name: String,
        value: String,
        read_only: bool,
    },
    Group {
        name: String,
        pos: Pos,
    },
}

#[derive(Debug, Clone)]
pub struct Condition {
    pub text: String,
    pub expr: Expression,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub file: PathBuf,
    pub variables: Vec<VarDef>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub display_name: Option<String>,
    /// Names of the stages this one waits for (the previous stage when `dependsOn` is absent).
    pub depends_on: Vec<String>,
    pub condition: Option<Condition>,
    pub variables: Vec<VarDef>,
    pub jobs: Vec<Job>,
    pub implicit: bool,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub display_name: Option<String>,
    pub depends_on: Vec<String>,
    pub condition: Option<Condition>,
    pub continue_on_error: bool,
    /// `None` or 0: no limit.
    pub timeout_minutes: Option<u64>,
    pub variables: Vec<VarDef>,
    pub steps: Vec<Step>,
    /// A deployment job: downloads the run's artifacts before its steps, as the service does.
    pub deployment: bool,
    pub environment: Option<String>,
    pub implicit: bool,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub kind: StepKind,
    pub display_name: Option<String>,
    /// The reference name (`name:`), which prefixes output variables.
    pub name: Option<String>,
    pub condition: Option<Condition>,
    pub continue_on_error: bool,
    pub enabled: bool,
    pub timeout_minutes: Option<u64>,
    /// `retryCountOnTaskFailure`: how many times a failed step is run again.
    pub retries: u64,
    pub env: Vec<(String, String)>,
    pub pos: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Pwsh,
    PowerShell,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    /// A task this runner found in its task folders.
    Task {
        reference: String,
        manifest: Box<Manifest>,
        inputs: Vec<(String, String)>,
    },
    /// A task the vars file maps to a local command (or to `skip`).
    Mapped {
        reference: String,
        command: Option<String>,
        inputs: Vec<(String, String)>,
    },
    /// A task nobody provides: skipped with a warning.
    Unknown {
        reference: String,
    },
    Script {
        shell: Shell,
        script: String,
        working_directory: Option<String>,
        fail_on_stderr: bool,
    },
    Checkout {
        repository: String,
    },
    Publish {
        path: String,
        artifact: String,
    },
    Download {
        source: String,
        artifact: Option<String>,
        path: Option<String>,
    },
}

/// What the loader needs besides the YAML.
pub struct LoadContext<'a> {
    pub tasks: &'a TaskPath,
    /// Task references (`name@major` or `name`, lower-case) the vars file maps; `None` = skip.
    pub mapped: &'a dyn Fn(&str) -> Option<Option<String>>,
    /// Variables visible to `${{ }}` template expressions.
    pub template_variables: &'a Variables,
}

struct TemplateScope<'a> {
    vars: &'a Variables,
    params: &'a [(String, String)],
}

impl Scope for TemplateScope<'_> {
    fn variable(&self, name: &str) -> Option<String> {
        self.vars.value(name).map(str::to_owned)
    }
    fn context(&self, name: &str) -> Option<expr::Val> {
        name.eq_ignore_ascii_case("parameters").then(|| {
            expr::Val::Object(
                self.params
                    .iter()
                    .map(|(k, v)| (k.clone(), expr::Val::Str(v.clone())))
                    .collect(),
            )
        })
    }
    fn outcomes(&self, _: &[String]) -> Result<Vec<Outcome>, String> {
        Err("status functions cannot be used in a template expression".into())
    }
    fn canceled(&self) -> bool {
        false
    }
}

const ROOT_KEYS: &[&str] = &[
    "name",
    "trigger",
    "pr",
    "schedules",
    "resources",
    "variables",
    "parameters",
    "stages",
    "jobs",
    "steps",
    "pool",
    "lockBehavior",
    "appendCommitMessageToRunName",
    "workspace",
    "container",
    "services",
    "timeoutInMinutes",
    "cancelTimeoutInMinutes",
    "strategy",
    "extends",
];
const STAGE_KEYS: &[&str] = &[
    "stage",
    "displayName",
    "dependsOn",
    "condition",
    "variables",
    "jobs",
    "pool",
    "lockBehavior",
    "trigger",
    "isSkippable",
    "templateContext",
];
const JOB_KEYS: &[&str] = &[
    "job",
    "displayName",
    "dependsOn",
    "condition",
    "continueOnError",
    "timeoutInMinutes",
    "cancelTimeoutInMinutes",
    "variables",
    "strategy",
    "pool",
    "container",
    "services",
    "workspace",
    "steps",
    "uses",
    "templateContext",
];
const DEPLOYMENT_KEYS: &[&str] = &[
    "deployment",
    "displayName",
    "dependsOn",
    "condition",
    "continueOnError",
    "timeoutInMinutes",
    "cancelTimeoutInMinutes",
    "variables",
    "pool",
    "environment",
    "strategy",
    "workspace",
    "uses",
    "container",
    "services",
    "templateContext",
];
const STEP_COMMON: &[&str] = &[
    "displayName",
    "name",
    "condition",
    "continueOnError",
    "enabled",
    "env",
    "timeoutInMinutes",
    "retryCountOnTaskFailure",
    "target",
];

struct Loader<'a> {
    ctx: &'a LoadContext<'a>,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Loader<'_> {
    fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.problems.push(Problem {
            pos,
            message: message.into(),
        });
    }

    fn check_keys(&mut self, node: &Node, allowed: &[&str], extra: &[&str], what: &str) {
        let Some(map) = node.as_map() else { return };
        for (key, _) in map {
            let Some(k) = key.as_str() else {
                self.error(key.pos, format!("a {what} key must be a name"));
                continue;
            };
            if k.starts_with("${{") {
                self.error(
                    key.pos,
                    format!("template directive '{k}' is not supported by azp-local"),
                );
            } else if !allowed.contains(&k) && !extra.contains(&k) {
                let mut expected: Vec<&str> = allowed.iter().chain(extra).copied().collect();
                expected.sort_unstable();
                self.error(
                    key.pos,
                    format!(
                        "unknown key '{k}' in a {what} (expected one of: {})",
                        expected.join(", ")
                    ),
                );
            }
        }
    }

    fn text(&mut self, node: Option<&Node>, what: &str) -> Option<String> {
        let node = node?;
        if node.is_null() {
            return None;
        }
        match node.as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.error(
                    node.pos,
                    format!("'{what}' must be a single value, not {}", node.kind()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: Option<&Node>, what: &str, default: bool) -> bool {
        match self.text(node, what) {
            None => default,
            Some(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "y" => true,
                "false" | "no" | "off" | "n" => false,
                _ => {
                    self.error(
                        node.map(|n| n.pos).unwrap_or_default(),
                        format!("'{what}' must be true or false, not '{s}'"),
                    );
                    default
                }
            },
        }
    }

    fn minutes(&mut self, node: Option<&Node>) -> Option<u64> {
        let text = self.text(node, "timeoutInMinutes")?;
        match text.trim().parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(
                    node.map(|n| n.pos).unwrap_or_default(),
                    format!("'timeoutInMinutes' must be a whole number, not '{text}'"),
                );
                None
            }
        }
    }

    fn count(&mut self, node: Option<&Node>) -> u64 {
        let Some(text) = self.text(node, "retryCountOnTaskFailure") else {
            return 0;
        };
        match text.trim().parse::<u64>() {
            Ok(n) if n <= 10 => n,
            _ => {
                self.error(
                    node.map(|n| n.pos).unwrap_or_default(),
                    format!(
                        "'retryCountOnTaskFailure' must be a number from 0 to 10, not '{text}'"
                    ),
                );
                0
            }
        }
    }

    fn condition(&mut self, node: Option<&Node>) -> Option<Condition> {
        let text = self.text(node, "condition")?;
        match Expression::parse(&text) {
            Ok(expr) => Some(Condition { text, expr }),
            Err(e) => {
                self.error(
                    node.map(|n| n.pos).unwrap_or_default(),
                    format!("invalid condition '{text}': {e}"),
                );
                None
            }
        }
    }

    fn names(&mut self, node: Option<&Node>, what: &str) -> Option<Vec<String>> {
        let node = node?;
        if node.is_null() {
            return Some(Vec::new());
        }
        if let Some(s) = node.as_str() {
            return Some(vec![s.to_owned()]);
        }
        match node.as_seq() {
            Some(items) => Some(
                items
                    .iter()
                    .filter_map(|i| self.text(Some(i), what))
                    .collect(),
            ),
            None => {
                self.error(
                    node.pos,
                    format!("'{what}' must be a name or a list of names"),
                );
                None
            }
        }
    }

    fn variables(&mut self, node: Option<&Node>) -> Vec<VarDef> {
        let Some(node) = node else { return Vec::new() };
        let mut out = Vec::new();
        if let Some(map) = node.as_map() {
            for (k, v) in map {
                match (k.as_str(), v.as_str()) {
                    (Some(name), Some(value)) => out.push(VarDef::Value {
                        name: name.into(),
                        value: value.into(),
                        read_only: false,
                    }),
                    _ => self.error(k.pos, "a variable must be 'name: value'"),
                }
            }
        } else if let Some(items) = node.as_seq() {
            for item in items {
                if let Some(group) = item.get("group") {
                    self.check_keys(item, &["group"], &[], "variable group reference");
                    if let Some(name) = self.text(Some(group), "group") {
                        out.push(VarDef::Group {
                            name,
                            pos: group.pos,
                        });
                    }
                } else if item.get("template").is_some() {
                    self.error(
                        item.pos,
                        "variable templates are not supported by azp-local",
                    );
                } else {
                    self.check_keys(item, &["name", "value", "readonly"], &[], "variable");
                    let name = self.text(item.get("name"), "name");
                    let value = self.text(item.get("value"), "value").unwrap_or_default();
                    let read_only = self.boolean(item.get("readonly"), "readonly", false);
                    match name {
                        Some(name) => out.push(VarDef::Value {
                            name,
                            value,
                            read_only,
                        }),
                        None => self.error(item.pos, "a variable needs 'name' (or 'group')"),
                    }
                }
            }
        } else if !node.is_null() {
            self.error(node.pos, "'variables' must be a mapping or a list");
        }
        out
    }

    fn steps(&mut self, node: Option<&Node>) -> Vec<Step> {
        let Some(node) = node else { return Vec::new() };
        let Some(items) = node.as_seq() else {
            self.error(node.pos, "'steps' must be a list");
            return Vec::new();
        };
        let mut names = HashSet::new();
        let mut steps = Vec::new();
        for item in items {
            if let Some(step) = self.step(item) {
                if let Some(name) = &step.name {
                    if !is_identifier(name) {
                        self.error(
                            step.pos,
                            format!("step name '{name}' may hold only letters, digits and '_'"),
                        );
                    } else if !names.insert(name.to_ascii_lowercase()) {
                        self.error(step.pos, format!("two steps are named '{name}'"));
                    }
                }
                steps.push(step);
            }
        }
        steps
    }

    fn step(&mut self, node: &Node) -> Option<Step> {
        if node.as_map().is_none() {
            self.error(
                node.pos,
                "a step must be a mapping such as 'script: …' or 'task: …'",
            );
            return None;
        }
        let first = node
            .as_map()?
            .first()
            .and_then(|(k, _)| k.as_str())
            .unwrap_or_default()
            .to_owned();
        let kind = if let Some(task) = node.get("task") {
            self.check_keys(node, STEP_COMMON, &["task", "inputs"], "task step");
            self.task(node, task)?
        } else if let Some((key, shell)) = [
            ("script", Shell::Bash),
            ("bash", Shell::Bash),
            ("pwsh", Shell::Pwsh),
            ("powershell", Shell::PowerShell),
        ]
        .into_iter()
        .find(|(k, _)| node.get(k).is_some())
        {
            let extra: &[&str] = match shell {
                Shell::Bash => &["workingDirectory", "failOnStderr"],
                _ => &[
                    "workingDirectory",
                    "failOnStderr",
                    "errorActionPreference",
                    "ignoreLASTEXITCODE",
                ],
            };
            self.check_keys(
                node,
                STEP_COMMON,
                &[&[key][..], extra].concat(),
                &format!("{key} step"),
            );
            StepKind::Script {
                shell,
                script: self.text(node.get(key), key).unwrap_or_default(),
                working_directory: self.text(node.get("workingDirectory"), "workingDirectory"),
                fail_on_stderr: self.boolean(node.get("failOnStderr"), "failOnStderr", false),
            }
        } else if node.get("checkout").is_some() {
            self.check_keys(
                node,
                STEP_COMMON,
                &[
                    "checkout",
                    "clean",
                    "fetchDepth",
                    "fetchFilter",
                    "fetchTags",
                    "lfs",
                    "persistCredentials",
                    "submodules",
                    "path",
                    "sparseCheckoutDirectories",
                    "sparseCheckoutPatterns",
                    "workspaceRepo",
                ],
                "checkout step",
            );
            StepKind::Checkout {
                repository: self
                    .text(node.get("checkout"), "checkout")
                    .unwrap_or_default(),
            }
        } else if node.get("publish").is_some() {
            self.check_keys(node, STEP_COMMON, &["publish", "artifact"], "publish step");
            let path = self
                .text(node.get("publish"), "publish")
                .unwrap_or_default();
            let artifact = match self.text(node.get("artifact"), "artifact") {
                Some(a) => a,
                None => {
                    self.error(
                        node.pos,
                        "a publish step needs 'artifact' (its name) for a local run",
                    );
                    String::new()
                }
            };
            StepKind::Publish { path, artifact }
        } else if node.get("download").is_some() {
            self.check_keys(
                node,
                STEP_COMMON,
                &["download", "artifact", "patterns", "path"],
                "download step",
            );
            StepKind::Download {
                source: self
                    .text(node.get("download"), "download")
                    .unwrap_or_default(),
                artifact: self.text(node.get("artifact"), "artifact"),
                path: self.text(node.get("path"), "path"),
            }
        } else if node.get("template").is_some() {
            self.error(node.pos, "step templates are not supported by azp-local");
            return None;
        } else {
            self.error(node.pos, format!("unknown step kind '{first}' (expected task, script, bash, pwsh, powershell, checkout, publish or download)"));
            return None;
        };
        let mut env = Vec::new();
        if let Some(e) = node.get("env") {
            match e.as_map() {
                Some(map) => {
                    for (k, v) in map {
                        match (k.as_str(), v.as_str()) {
                            (Some(k), Some(v)) => env.push((k.to_owned(), v.to_owned())),
                            _ => self.error(k.pos, "an 'env' entry must be 'NAME: value'"),
                        }
                    }
                }
                None if e.is_null() => {}
                None => self.error(e.pos, "'env' must be a mapping"),
            }
        }
        Some(Step {
            kind,
            display_name: self.text(node.get("displayName"), "displayName"),
            name: self.text(node.get("name"), "name"),
            condition: self.condition(node.get("condition")),
            continue_on_error: self.boolean(node.get("continueOnError"), "continueOnError", false),
            enabled: self.boolean(node.get("enabled"), "enabled", true),
            timeout_minutes: self.minutes(node.get("timeoutInMinutes")),
            retries: self.count(node.get("retryCountOnTaskFailure")),
            env,
            pos: node.pos,
        })
    }

    fn task(&mut self, node: &Node, task: &Node) -> Option<StepKind> {
        let reference = self.text(Some(task), "task")?;
        let (name, major) = match reference.split_once('@') {
            Some((n, v)) => {
                match v.trim().parse::<u64>() {
                    Ok(m) => (n.trim().to_owned(), Some(m)),
                    Err(_) => {
                        self.error(task.pos, format!("'{reference}': the version after '@' must be a major version number"));
                        return None;
                    }
                }
            }
            None => (reference.trim().to_owned(), None),
        };
        let mut inputs = Vec::new();
        if let Some(i) = node.get("inputs") {
            match i.as_map() {
                Some(map) => {
                    for (k, v) in map {
                        let value = if v.is_null() {
                            Some(String::new())
                        } else {
                            v.as_str().map(str::to_owned)
                        };
                        match (k.as_str(), value) {
                            (Some(k), Some(v)) => inputs.push((k.to_owned(), v, k_pos(k, map))),
                            _ => self.error(k.pos, "a task input must be 'name: value'"),
                        }
                    }
                }
                None if i.is_null() => {}
                None => self.error(i.pos, "'inputs' must be a mapping"),
            }
        }
        fn k_pos(key: &str, map: &[(Node, Node)]) -> Pos {
            map.iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(k, _)| k.pos)
                .unwrap_or_default()
        }
        let lowered = reference.to_ascii_lowercase();
        if let Some(mapping) =
            (self.ctx.mapped)(&lowered).or_else(|| (self.ctx.mapped)(&name.to_ascii_lowercase()))
        {
            return Some(StepKind::Mapped {
                reference,
                command: mapping,
                inputs: inputs.into_iter().map(|(k, v, _)| (k, v)).collect(),
            });
        }
        let Some(manifest) = self.ctx.tasks.find(&name) else {
            self.warnings.push(Problem {
                pos: task.pos,
                message: format!("task '{reference}' is not available locally: the step will be skipped (map it to a local command in the vars file's 'tasks' to run something instead)"),
            });
            return Some(StepKind::Unknown { reference });
        };
        match major {
            None => self.error(
                task.pos,
                format!(
                    "'{name}' needs a major version: '{name}@{}'",
                    manifest.major
                ),
            ),
            Some(m) if m != manifest.major => self.error(
                task.pos,
                format!(
                    "task '{name}' has major version {} ({}), not {m}",
                    manifest.major,
                    manifest.dir.display()
                ),
            ),
            _ => {}
        }
        let mut canonical = Vec::new();
        for (key, value, pos) in inputs {
            match manifest.input(&key) {
                Some(input) => {
                    if canonical
                        .iter()
                        .any(|(n, _): &(String, String)| n == &input.name)
                    {
                        self.error(
                            pos,
                            format!("input '{}' is given twice (by name or alias)", input.name),
                        );
                    }
                    canonical.push((input.name.clone(), value));
                }
                None => {
                    let mut known: Vec<String> =
                        manifest.inputs.iter().map(|i| i.name.clone()).collect();
                    known.sort();
                    self.error(
                        pos,
                        format!(
                            "task '{name}' has no input '{key}' (its inputs: {})",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        for input in &manifest.inputs {
            let given = canonical
                .iter()
                .any(|(n, v)| n == &input.name && !v.trim().is_empty());
            let defaulted = input
                .default
                .as_deref()
                .is_some_and(|d| !d.trim().is_empty());
            if input.required && !given && !defaulted && !input.has_visible_rule {
                self.error(
                    node.pos,
                    format!(
                        "task '{name}' needs input '{}' ({})",
                        input.name, input.label
                    ),
                );
            }
        }
        Some(StepKind::Task {
            reference,
            manifest: Box::new(manifest),
            inputs: canonical,
        })
    }

    fn job(&mut self, node: &Node) -> Option<Job> {
        if let Some(name_node) = node.get("deployment") {
            self.check_keys(node, DEPLOYMENT_KEYS, &[], "deployment job");
            let name = self.text(Some(name_node), "deployment")?;
            let mut steps = Vec::new();
            match node.get("strategy") {
                Some(strategy) => {
                    self.check_keys(
                        strategy,
                        &["runOnce"],
                        &[],
                        "deployment strategy (azp-local runs runOnce)",
                    );
                    if let Some(run_once) = strategy.get("runOnce") {
                        self.check_keys(
                            run_once,
                            &[
                                "preDeploy",
                                "deploy",
                                "routeTraffic",
                                "postRouteTraffic",
                                "on",
                            ],
                            &[],
                            "runOnce strategy",
                        );
                        for phase in ["preDeploy", "deploy", "routeTraffic", "postRouteTraffic"] {
                            if let Some(p) = run_once.get(phase) {
                                self.check_keys(p, &["steps", "pool"], &[], phase);
                                steps.extend(self.steps(p.get("steps")));
                            }
                        }
                        if let Some(on) = run_once.get("on") {
                            self.error(
                                on.pos,
                                "'on: success/failure' hooks are not supported by azp-local",
                            );
                        }
                    }
                }
                None => self.error(
                    node.pos,
                    format!("deployment '{name}' needs 'strategy: runOnce: deploy: steps'"),
                ),
            }
            let environment = node.get("environment").and_then(|e| {
                e.as_str()
                    .map(str::to_owned)
                    .or_else(|| e.get("name").and_then(|n| n.as_str().map(str::to_owned)))
            });
            return Some(self.job_common(node, name, steps, true, environment));
        }
        if let Some(name_node) = node.get("job") {
            self.check_keys(node, JOB_KEYS, &[], "job");
            let name = self.text(Some(name_node), "job")?;
            if let Some(strategy) = node.get("strategy") {
                self.error(
                    strategy.pos,
                    "job strategies (matrix, parallel) are not supported by azp-local",
                );
            }
            let steps = self.steps(node.get("steps"));
            return Some(self.job_common(node, name, steps, false, None));
        }
        if node.get("template").is_some() {
            self.error(node.pos, "job templates are not supported by azp-local");
        } else {
            self.error(node.pos, "a job must start with 'job:' or 'deployment:'");
        }
        None
    }

    fn job_common(
        &mut self,
        node: &Node,
        name: String,
        steps: Vec<Step>,
        deployment: bool,
        environment: Option<String>,
    ) -> Job {
        for key in ["container", "services"] {
            if let Some(n) = node.get(key) {
                self.warnings.push(Problem {
                    pos: n.pos,
                    message: format!("'{key}' is ignored: azp-local runs the job's steps on this machine, not in containers"),
                });
            }
        }
        if !is_identifier(&name) {
            self.error(
                node.pos,
                format!("job name '{name}' may hold only letters, digits and '_'"),
            );
        }
        Job {
            display_name: self.text(node.get("displayName"), "displayName"),
            depends_on: self
                .names(node.get("dependsOn"), "dependsOn")
                .unwrap_or_default(),
            condition: self.condition(node.get("condition")),
            continue_on_error: self.boolean(node.get("continueOnError"), "continueOnError", false),
            timeout_minutes: self.minutes(node.get("timeoutInMinutes")),
            variables: self.variables(node.get("variables")),
            steps,
            deployment,
            environment,
            implicit: false,
            name,
        }
    }

    fn jobs(&mut self, node: Option<&Node>) -> Vec<Job> {
        let Some(node) = node else { return Vec::new() };
        let Some(items) = node.as_seq() else {
            self.error(node.pos, "'jobs' must be a list");
            return Vec::new();
        };
        let jobs: Vec<(Pos, Job)> = items
            .iter()
            .filter_map(|n| self.job(n).map(|j| (n.pos, j)))
            .collect();
        let mut seen = HashSet::new();
        for (pos, job) in &jobs {
            if !seen.insert(job.name.to_ascii_lowercase()) {
                self.error(*pos, format!("two jobs are named '{}'", job.name));
            }
            for dep in &job.depends_on {
                if !jobs.iter().any(|(_, j)| j.name.eq_ignore_ascii_case(dep)) {
                    let depends_pos = items
                        .iter()
                        .find(|n| n.pos == *pos)
                        .and_then(|n| n.get("dependsOn"))
                        .map(|d| d.pos)
                        .unwrap_or(*pos);
                    self.error(
                        depends_pos,
                        format!(
                            "job '{}' depends on '{dep}', which is not a job of this stage",
                            job.name
                        ),
                    );
                }
            }
        }
        let ordered: Vec<Job> = jobs.into_iter().map(|(_, j)| j).collect();
        if let Some(cycle) = find_cycle(
            ordered
                .iter()
                .map(|j| (j.name.as_str(), j.depends_on.as_slice())),
        ) {
            self.error(
                node.pos,
                format!("jobs depend on each other in a cycle: {cycle}"),
            );
        }
        ordered
    }

    fn stage(&mut self, node: &Node, previous: Option<&str>) -> Option<Stage> {
        let Some(name_node) = node.get("stage") else {
            self.error(
                node.pos,
                if node.get("template").is_some() {
                    "stage templates are not supported by azp-local"
                } else {
                    "a stage must start with 'stage:'"
                },
            );
            return None;
        };
        self.check_keys(node, STAGE_KEYS, &[], "stage");
        let name = self.text(Some(name_node), "stage")?;
        if !is_identifier(&name) {
            self.error(
                node.pos,
                format!("stage name '{name}' may hold only letters, digits and '_'"),
            );
        }
        Some(Stage {
            display_name: self.text(node.get("displayName"), "displayName"),
            depends_on: self
                .names(node.get("dependsOn"), "dependsOn")
                .unwrap_or_else(|| previous.map(|p| vec![p.to_owned()]).unwrap_or_default()),
            condition: self.condition(node.get("condition")),
            variables: self.variables(node.get("variables")),
            jobs: self.jobs(node.get("jobs")),
            implicit: false,
            name,
        })
    }
}

/// A dependency cycle, as `a -> b -> a`, if any.
fn find_cycle<'a>(nodes: impl Iterator<Item = (&'a str, &'a [String])>) -> Option<String> {
    let nodes: Vec<(&str, &[String])> = nodes.collect();
    fn visit<'a>(
        n: &'a str,
        nodes: &[(&'a str, &'a [String])],
        path: &mut Vec<&'a str>,
        done: &mut HashSet<String>,
    ) -> Option<String> {
        if let Some(i) = path.iter().position(|p| p.eq_ignore_ascii_case(n)) {
            let mut cycle: Vec<&str> = path[i..].to_vec();
            cycle.push(n);
            return Some(cycle.join(" -> "));
        }
        if done.contains(&n.to_ascii_lowercase()) {
            return None;
        }
        path.push(n);
        if let Some((_, deps)) = nodes.iter().find(|(name, _)| name.eq_ignore_ascii_case(n)) {
            for d in deps.iter() {
                if let Some(c) = visit(d, nodes, path, done) {
                    return Some(c);
                }
            }
        }
        path.pop();
        done.insert(n.to_ascii_lowercase());
        None
    }
    let mut done = HashSet::new();
    for (name, _) in &nodes {
        if let Some(c) = visit(name, &nodes, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

/// The result of loading: the pipeline, or the problems; warnings either way.
pub struct Loaded {
    pub pipeline: Option<Pipeline>,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

/// Loads a pipeline file.
pub fn load(file: &Path, text: &str, ctx: &LoadContext<'_>) -> Loaded {
    let mut loader = Loader {
        ctx,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let mut root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => {
            return Loaded {
                pipeline: None,
                problems: vec![Problem {
                    pos: e.pos,
                    message: format!("YAML syntax: {}", e.message),
                }],
                warnings: Vec::new(),
            }
        }
    };
    if root.as_map().is_none() {
        loader.error(
            root.pos,
            "a pipeline must be a mapping with 'stages', 'jobs' or 'steps'",
        );
        return Loaded {
            pipeline: None,
            problems: loader.problems,
            warnings: loader.warnings,
        };
    }
    loader.check_keys(&root, ROOT_KEYS, &[], "pipeline");
    if let Some(extends) = root.get("extends") {
        loader.error(
            extends.pos,
            "'extends' templates are not supported by azp-local",
        );
    }

    // Template expressions see the parameters' defaults and the root variables.
    let mut params = Vec::new();
    if let Some(p) = root.get("parameters").and_then(Node::as_seq) {
        for item in p {
            if let (Some(name), Some(default)) = (
                item.get("name").and_then(Node::as_str),
                item.get("default").and_then(Node::as_str),
            ) {
                params.push((name.to_owned(), default.to_owned()));
            }
        }
    }
    // A first look at the root variables, for the template scope; problems are reported by
    // the second reading below, after substitution.
    let reported = loader.problems.len();
    let root_vars = loader.variables(root.get("variables"));
    loader.problems.truncate(reported);
    let mut template_vars = ctx.template_variables.clone();
    for v in &root_vars {
        if let VarDef::Value { name, value, .. } = v {
            template_vars.set_force(name, value, false);
        }
    }
    let scope = TemplateScope {
        vars: &template_vars,
        params: &params,
    };
    let mut template_errors = Vec::new();
    substitute(&mut root, &scope, &mut template_errors);
    for (pos, message) in template_errors {
        loader.error(pos, message);
    }
    let variables = loader.variables(root.get("variables"));

    let stages = if let Some(stages) = root.get("stages") {
        for key in ["jobs", "steps"] {
            if let Some(n) = root.get(key) {
                loader.error(n.pos, format!("a pipeline has 'stages', 'jobs' or 'steps', not several of them ('{key}' here)"));
            }
        }
        let Some(items) = stages.as_seq() else {
            loader.error(stages.pos, "'stages' must be a list");
            return Loaded {
                pipeline: None,
                problems: loader.problems,
                warnings: loader.warnings,
            };
        };
        let mut out: Vec<(Pos, Stage)> = Vec::new();
        for item in items {
            let previous = out.last().map(|(_, s)| s.name.clone());
            if let Some(stage) = loader.stage(item, previous.as_deref()) {
                out.push((item.pos, stage));
            }
        }
        let mut seen = HashSet::new();
        for (pos, stage) in &out {
            if !seen.insert(stage.name.to_ascii_lowercase()) {
                loader.error(*pos, format!("two stages are named '{}'", stage.name));
            }
            for dep in &stage.depends_on {
                if !out.iter().any(|(_, s)| s.name.eq_ignore_ascii_case(dep)) {
                    loader.error(
                        *pos,
                        format!(
                            "stage '{}' depends on '{dep}', which is not a stage of this pipeline",
                            stage.name
                        ),
                    );
                }
            }
        }
        let stages: Vec<Stage> = out.into_iter().map(|(_, s)| s).collect();
        if let Some(cycle) = find_cycle(
            stages
                .iter()
                .map(|s| (s.name.as_str(), s.depends_on.as_slice())),
        ) {
            loader.error(
                stages_pos(&root),
                format!("stages depend on each other in a cycle: {cycle}"),
            );
        }
        stages
    } else {
        let jobs = if root.get("jobs").is_some() {
            if let Some(n) = root.get("steps") {
                loader.error(n.pos, "a pipeline has 'jobs' or 'steps', not both");
            }
            loader.jobs(root.get("jobs"))
        } else if root.get("steps").is_some() {
            let steps = loader.steps(root.get("steps"));
            vec![Job {
                name: "Job".into(),
                display_name: None,
                depends_on: Vec::new(),
                condition: None,
                continue_on_error: false,
                timeout_minutes: loader.minutes(root.get("timeoutInMinutes")),
                variables: Vec::new(),
                steps,
                deployment: false,
                environment: None,
                implicit: true,
            }]
        } else {
            loader.error(root.pos, "the pipeline has no 'stages', 'jobs' or 'steps'");
            Vec::new()
        };
        vec![Stage {
            name: "__default".into(),
            display_name: None,
            depends_on: Vec::new(),
            condition: None,
            variables: Vec::new(),
            jobs,
            implicit: true,
        }]
    };
    let pipeline = loader.problems.is_empty().then(|| Pipeline {
        file: file.to_path_buf(),
        variables,
        stages,
    });
    Loaded {
        pipeline,
        problems: loader.problems,
        warnings: loader.warnings,
    }
}

fn stages_pos(root: &Node) -> Pos {
    root.get("stages").map(|s| s.pos).unwrap_or(root.pos)
}

fn substitute(node: &mut Node, scope: &dyn Scope, errors: &mut Vec<(Pos, String)>) {
    match &mut node.value {
        yaml::Value::Scalar { text, .. } => {
            if text.contains("${{") {
                match expr::substitute_template(text, scope, &[]) {
                    Ok(new) => *text = new,
                    Err(e) => errors.push((node.pos, e)),
                }
            }
        }
        yaml::Value::Seq(items) => items.iter_mut().for_each(|n| substitute(n, scope, errors)),
        yaml::Value::Map(entries) => {
            for (k, v) in entries {
                // Keys holding `${{ if }}` are reported by the key checks.
                if !k.as_str().is_some_and(|s| s.starts_with("${{")) {
                    substitute(k, scope, errors);
                }
                substitute(v, scope, errors);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Loaded {
        let tasks = TaskPath::default();
        let vars = Variables::new();
        let mapped = |r: &str| (r == "usepythonversion@0").then_some(None);
        let ctx = LoadContext {
            tasks: &tasks,
            mapped: &mapped,
            template_variables: &vars,
        };
        load(Path::new("p.yml"), text, &ctx)
    }

    #[test]
    fn stages_default_to_depending_on_the_previous_one() {
        let l = load_text("stages:\n- stage: A\n  jobs:\n  - job: a\n    steps:\n    - script: echo\n- stage: B\n  jobs: []\n");
        let p = l.pipeline.unwrap();
        assert_eq!(p.stages[1].depends_on, vec!["A".to_string()]);
        assert!(p.stages[0].depends_on.is_empty());
    }

    #[test]
    fn reports_unknown_keys_and_missing_dependencies_with_lines() {
        let l = load_text("jobs:\n- job: a\n  steps:\n  - script: echo\n    displayname: x\n- job: b\n  dependsOn: c\n  steps: []\n");
        assert!(l.pipeline.is_none());
        let lines: Vec<(usize, &str)> = l
            .problems
            .iter()
            .map(|p| (p.pos.line, p.message.as_str()))
            .collect();
        assert!(
            lines
                .iter()
                .any(|(l, m)| *l == 5 && m.contains("unknown key 'displayname'")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|(l, m)| *l == 7 && m.contains("depends on 'c'")),
            "{lines:?}"
        );
    }

    #[test]
    fn unknown_and_mapped_tasks() {
        let l = load_text(
            "steps:\n- task: UsePythonVersion@0\n- task: PublishTestResults@2\n  inputs: {a: b}\n",
        );
        let p = l.pipeline.unwrap();
        assert!(matches!(
            p.stages[0].jobs[0].steps[0].kind,
            StepKind::Mapped { command: None, .. }
        ));
        assert!(matches!(
            p.stages[0].jobs[0].steps[1].kind,
            StepKind::Unknown { .. }
        ));
        assert_eq!(l.warnings.len(), 1);
        assert_eq!(l.warnings[0].pos.line, 3);
    }

    #[test]
    fn cycles_and_bad_conditions() {
        let l = load_text(
            "jobs:\n- job: a\n  dependsOn: b\n- job: b\n  dependsOn: a\n  condition: succeded()\n",
        );
        let messages: Vec<&str> = l.problems.iter().map(|p| p.message.as_str()).collect();
        assert!(messages.iter().any(|m| m.contains("cycle")), "{messages:?}");
        assert!(
            messages.iter().any(|m| m.contains("invalid condition")),
            "{messages:?}"
        );
    }

    #[test]
    fn template_expressions_use_root_variables() {
        let l = load_text("variables:\n  x: hello\nsteps:\n- script: echo ${{ variables.x }} ${{ variables['x'] }}\n");
        let p = l.pipeline.unwrap();
        match &p.stages[0].jobs[0].steps[0].kind {
            StepKind::Script { script, .. } => assert_eq!(script, "echo hello hello"),
            other => panic!("{other:?}"),
        }
    }
}
