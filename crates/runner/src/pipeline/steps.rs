//! Steps: script, task (checked against its task.json), checkout, publish, download.

use std::collections::HashSet;

use crate::yaml::{Node, Pos};

use super::load::{is_identifier, Loader, STEP_COMMON};
use super::model::{Problem, Shell, Step, StepKind};

impl Loader<'_> {
    pub(super) fn steps(&mut self, node: Option<&Node>) -> Vec<Step> {
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

    pub(super) fn step(&mut self, node: &Node) -> Option<Step> {
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

    pub(super) fn task(&mut self, node: &Node, task: &Node) -> Option<StepKind> {
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
}
