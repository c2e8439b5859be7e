//! Jobs, deployment jobs and stages, with their names and dependencies checked.

use std::collections::HashSet;

use crate::yaml::{Node, Pos};

use super::graph::find_cycle;
use super::load::{is_identifier, Loader, DEPLOYMENT_KEYS, JOB_KEYS, STAGE_KEYS};
use super::model::{DeployKind, Job, Legs, Lifecycle, Problem, Stage, Step};

impl Loader<'_> {
    pub(super) fn job(&mut self, node: &Node) -> Option<Job> {
        if let Some(name_node) = node.get("deployment") {
            self.check_keys(node, DEPLOYMENT_KEYS, &[], "deployment job");
            let name = self.text(Some(name_node), "deployment")?;
            let (environment, resource) = match node.get("environment") {
                None => (None, None),
                Some(e) => match e.as_str() {
                    // `env.resource`: the environment and one of its resources.
                    Some(text) => match text.split_once('.') {
                        Some((env, res)) => (Some(env.to_owned()), Some(res.to_owned())),
                        None => (Some(text.to_owned()), None),
                    },
                    None => (
                        self.text(e.get("name"), "environment.name"),
                        self.text(e.get("resourceName"), "environment.resourceName"),
                    ),
                },
            };
            let lifecycle = match node.get("strategy") {
                Some(strategy) => self.lifecycle(strategy, resource),
                None => {
                    self.error(
                        node.pos,
                        format!("deployment '{name}' needs 'strategy' (runOnce, rolling or canary) with its hooks, e.g. 'strategy: runOnce: deploy: steps'"),
                    );
                    None
                }
            };
            let mut job = self.job_common(node, name, Vec::new(), true, environment);
            job.lifecycle = lifecycle;
            return Some(job);
        }
        if let Some(name_node) = node.get("job") {
            self.check_keys(node, JOB_KEYS, &[], "job");
            let name = self.text(Some(name_node), "job")?;
            let legs = self.legs(node.get("strategy"));
            let steps = self.steps(node.get("steps"));
            let mut job = self.job_common(node, name, steps, false, None);
            job.legs = legs;
            return Some(job);
        }
        self.error(node.pos, "a job must start with 'job:' or 'deployment:'");
        None
    }

    /// A job's `strategy`: `matrix` (+ `maxParallel`) or `parallel`.
    pub(super) fn legs(&mut self, node: Option<&Node>) -> Legs {
        let Some(node) = node else {
            return Legs::One;
        };
        if node.as_map().is_none() {
            self.error(
                node.pos,
                "'strategy' must be a mapping with 'matrix' or 'parallel'",
            );
            return Legs::One;
        }
        self.check_keys(
            node,
            &["matrix", "maxParallel", "parallel"],
            &[],
            "job strategy",
        );
        let number = |l: &mut Self, key: &str, min: u64| -> Option<u64> {
            let n = node.get(key)?;
            let text = l.text(Some(n), key)?;
            match text.trim().parse::<u64>() {
                Ok(v) if v >= min => Some(v),
                _ => {
                    l.error(
                        n.pos,
                        format!("'{key}' must be a whole number of at least {min}, not '{text}'"),
                    );
                    None
                }
            }
        };
        match (node.get("matrix"), node.get("parallel")) {
            (Some(_), Some(p)) => {
                self.error(p.pos, "a job strategy has 'matrix' or 'parallel', not both");
                Legs::One
            }
            (None, Some(_)) => {
                if let Some(m) = node.get("maxParallel") {
                    self.error(
                        m.pos,
                        "'maxParallel' goes with 'matrix', not with 'parallel'",
                    );
                }
                number(self, "parallel", 1)
                    .map(Legs::Parallel)
                    .unwrap_or(Legs::One)
            }
            (Some(matrix), None) => {
                let max_parallel = number(self, "maxParallel", 0);
                if matrix
                    .as_str()
                    .is_some_and(|t| t.trim_start().starts_with("$["))
                {
                    self.error(matrix.pos, "a matrix made by a runtime expression ($[ ]) is not supported by azp-local: write the matrix in the YAML");
                    return Legs::One;
                }
                let Some(entries) = matrix.as_map() else {
                    self.error(
                        matrix.pos,
                        "'matrix' must be a mapping of names to variables",
                    );
                    return Legs::One;
                };
                let mut legs: Vec<(String, Vec<(String, String)>)> = Vec::new();
                for (key, vars) in entries {
                    let Some(name) = self.text(Some(key), "matrix") else {
                        continue;
                    };
                    // The service's rule for configuration names.
                    if !name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        || name.len() > 100
                    {
                        self.error(key.pos, format!("matrix name '{name}' must start with a letter and hold only letters, digits and '_' (at most 100)"));
                        continue;
                    }
                    if legs.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                        self.error(key.pos, format!("two matrix entries are named '{name}'"));
                        continue;
                    }
                    let mut values = Vec::new();
                    match vars.as_map() {
                        Some(map) => {
                            for (k, v) in map {
                                match (k.as_str(), v.as_str()) {
                                    (Some(k), Some(v)) => values.push((k.to_owned(), v.to_owned())),
                                    _ => self.error(
                                        k.pos,
                                        format!(
                                            "matrix '{name}': a variable must be 'name: value'"
                                        ),
                                    ),
                                }
                            }
                        }
                        None if vars.is_null() => {}
                        None => self.error(
                            vars.pos,
                            format!("matrix '{name}' must be a mapping of variables"),
                        ),
                    }
                    legs.push((name, values));
                }
                if legs.is_empty() {
                    // The service makes one job even from an empty matrix.
                    return Legs::One;
                }
                Legs::Matrix { legs, max_parallel }
            }
            (None, None) => {
                self.error(node.pos, "'strategy' needs 'matrix' or 'parallel'");
                Legs::One
            }
        }
    }

    /// A deployment's `strategy`: `runOnce`, `rolling` or `canary` with its hooks.
    fn lifecycle(&mut self, strategy: &Node, resource: Option<String>) -> Option<Lifecycle> {
        self.check_keys(
            strategy,
            &["runOnce", "rolling", "canary"],
            &[],
            "deployment strategy",
        );
        let present: Vec<&str> = ["runOnce", "rolling", "canary"]
            .into_iter()
            .filter(|k| strategy.get(k).is_some())
            .collect();
        let [which] = present.as_slice() else {
            self.error(
                strategy.pos,
                "a deployment strategy is one of 'runOnce', 'rolling' or 'canary'",
            );
            return None;
        };
        let body = strategy.get(which)?;
        let extra: &[&str] = match *which {
            "rolling" => &["maxParallel"],
            "canary" => &["increments"],
            _ => &[],
        };
        self.check_keys(
            body,
            &[
                "preDeploy",
                "deploy",
                "routeTraffic",
                "postRouteTraffic",
                "on",
            ],
            extra,
            &format!("{which} strategy"),
        );
        let kind = match *which {
            "rolling" => DeployKind::Rolling,
            "canary" => {
                let mut increments = Vec::new();
                match body.get("increments").and_then(Node::as_seq) {
                    Some(items) => {
                        for item in items {
                            match item.as_str().map(str::trim) {
                                Some(n) if n.parse::<u64>().is_ok_and(|v| v > 0) => increments.push(n.to_owned()),
                                _ => self.error(item.pos, "a canary increment must be a positive whole number (a percentage)"),
                            }
                        }
                    }
                    None => self.error(
                        body.pos,
                        "a canary strategy needs 'increments', e.g. [10, 20]",
                    ),
                }
                DeployKind::Canary(increments)
            }
            _ => DeployKind::RunOnce,
        };
        let mut hooks = Vec::new();
        for hook in ["preDeploy", "deploy", "routeTraffic", "postRouteTraffic"] {
            if let Some(h) = body.get(hook) {
                self.check_keys(h, &["steps", "pool"], &[], hook);
                hooks.push((hook.to_owned(), self.steps(h.get("steps"))));
            }
        }
        if let Some(on) = body.get("on") {
            self.check_keys(on, &["success", "failure"], &[], "'on' hooks");
            for hook in ["success", "failure"] {
                if let Some(h) = on.get(hook) {
                    self.check_keys(h, &["steps", "pool"], &[], &format!("on.{hook}"));
                    hooks.push((hook.to_owned(), self.steps(h.get("steps"))));
                }
            }
        }
        Some(Lifecycle {
            kind,
            resource,
            hooks,
        })
    }

    pub(super) fn job_common(
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
            legs: Legs::One,
            lifecycle: None,
            implicit: false,
            name,
        }
    }

    pub(super) fn jobs(&mut self, node: Option<&Node>) -> Vec<Job> {
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

    pub(super) fn stage(&mut self, node: &Node, previous: Option<&str>) -> Option<Stage> {
        let Some(name_node) = node.get("stage") else {
            self.error(node.pos, "a stage must start with 'stage:'");
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
