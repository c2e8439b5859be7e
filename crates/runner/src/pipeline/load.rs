//! The loader: YAML → stages → jobs → steps, checked before anything runs (unknown keys,
//! missing `dependsOn` targets, task versions and inputs, conditions), every problem reported
//! with `file:line:col`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::expr::Expression;
use crate::manifest::TaskPath;
use crate::template;
use crate::variables::Variables;
use crate::yaml::{Node, Pos};

use super::graph::find_cycle;
use super::model::{Condition, Job, Pipeline, Problem, Stage, VarDef};

/// What the loader needs besides the YAML.
pub struct LoadContext<'a> {
    pub tasks: &'a TaskPath,
    /// Task references (`name@major` or `name`, lower-case) the vars file maps; `None` = skip.
    pub mapped: &'a dyn Fn(&str) -> Option<Option<String>>,
    /// Variables visible to `${{ }}` template expressions.
    pub template_variables: &'a Variables,
    /// Values of the pipeline's own parameters (`--param NAME=VALUE`).
    pub parameters: &'a [(String, String)],
    /// Local checkouts of `resources.repositories` (`--repo ALIAS=PATH`).
    pub repos: &'a [(String, PathBuf)],
    /// The root of the pipeline's repository (`/`-paths, `@self`); default: its folder.
    pub self_root: Option<PathBuf>,
}

pub(super) const ROOT_KEYS: &[&str] = &[
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

pub(super) const STAGE_KEYS: &[&str] = &[
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

pub(super) const JOB_KEYS: &[&str] = &[
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

pub(super) const DEPLOYMENT_KEYS: &[&str] = &[
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

pub(super) const STEP_COMMON: &[&str] = &[
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

pub(super) struct Loader<'a> {
    pub(super) ctx: &'a LoadContext<'a>,
    pub(super) problems: Vec<Problem>,
    pub(super) warnings: Vec<Problem>,
}

pub(super) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Loader<'_> {
    pub(super) fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.problems.push(Problem {
            pos,
            message: message.into(),
        });
    }

    pub(super) fn check_keys(&mut self, node: &Node, allowed: &[&str], extra: &[&str], what: &str) {
        let Some(map) = node.as_map() else { return };
        for (key, _) in map {
            let Some(k) = key.as_str() else {
                self.error(key.pos, format!("a {what} key must be a name"));
                continue;
            };
            if !allowed.contains(&k) && !extra.contains(&k) {
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

    pub(super) fn text(&mut self, node: Option<&Node>, what: &str) -> Option<String> {
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

    pub(super) fn boolean(&mut self, node: Option<&Node>, what: &str, default: bool) -> bool {
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

    pub(super) fn minutes(&mut self, node: Option<&Node>) -> Option<u64> {
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

    pub(super) fn count(&mut self, node: Option<&Node>) -> u64 {
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

    pub(super) fn condition(&mut self, node: Option<&Node>) -> Option<Condition> {
        let text = self.text(node, "condition")?;
        // An empty condition (a template's `condition: ''` default) is no condition.
        if text.trim().is_empty() {
            return None;
        }
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

    pub(super) fn names(&mut self, node: Option<&Node>, what: &str) -> Option<Vec<String>> {
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

    /// A `$[ ]` runtime expression value parses (it is evaluated when its job or stage
    /// starts); reports it with its line otherwise.
    pub(super) fn runtime_ok(&mut self, value: &str, pos: Pos) -> bool {
        if let Some(inner) = runtime_expression(value) {
            if let Err(e) = Expression::parse(inner) {
                self.error(
                    pos,
                    format!("invalid runtime expression '{}': {e}", value.trim()),
                );
            }
        }
        true
    }

    pub(super) fn variables(&mut self, node: Option<&Node>) -> Vec<VarDef> {
        let Some(node) = node else { return Vec::new() };
        let mut out = Vec::new();
        if let Some(map) = node.as_map() {
            for (k, v) in map {
                match (k.as_str(), v.as_str()) {
                    (Some(name), Some(value)) if self.runtime_ok(value, v.pos) => {
                        out.push(VarDef::Value {
                            name: name.into(),
                            value: value.into(),
                            read_only: false,
                        })
                    }
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
                } else {
                    self.check_keys(item, &["name", "value", "readonly"], &[], "variable");
                    let name = self.text(item.get("name"), "name");
                    let value = self.text(item.get("value"), "value").unwrap_or_default();
                    self.runtime_ok(&value, item.get("value").map_or(item.pos, |v| v.pos));
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
}

/// The expression inside a whole-value `$[ … ]`, if the value is one.
pub fn runtime_expression(value: &str) -> Option<&str> {
    value
        .trim()
        .strip_prefix("$[")?
        .strip_suffix(']')
        .map(str::trim)
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
    // Templates and `${{ }}` first, as the server does: the loader reads the plain result.
    let options = template::Options {
        variables: ctx.template_variables,
        parameters: ctx.parameters,
        repos: ctx.repos,
        self_root: ctx
            .self_root
            .clone()
            .unwrap_or_else(|| file.parent().map(Path::to_path_buf).unwrap_or_default()),
    };
    let expanded = template::expand_pipeline(file, text, &options);
    let expansion_failed = !expanded.problems.is_empty();
    loader.problems.extend(expanded.problems);
    loader.warnings.extend(expanded.warnings);
    let Some(root) = expanded.root else {
        return Loaded {
            pipeline: None,
            problems: loader.problems,
            warnings: loader.warnings,
        };
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
                legs: loader.legs(root.get("strategy")),
                lifecycle: None,
                implicit: true,
            }]
        } else {
            // Not again when a template that would have given them failed.
            if !expansion_failed {
                loader.error(root.pos, "the pipeline has no 'stages', 'jobs' or 'steps'");
            }
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

#[cfg(test)]
mod tests {
    use super::super::model::StepKind;
    use super::*;

    fn load_text(text: &str) -> Loaded {
        let tasks = TaskPath::default();
        let vars = Variables::new();
        let mapped = |r: &str| (r == "usepythonversion@0").then_some(None);
        let ctx = LoadContext {
            tasks: &tasks,
            mapped: &mapped,
            template_variables: &vars,
            parameters: &[],
            repos: &[],
            self_root: None,
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
