//! Jobs, deployment jobs and stages, with their names and dependencies checked.

use std::collections::HashSet;

use crate::yaml::{Node, Pos};

use super::graph::find_cycle;
use super::load::{is_identifier, Loader, DEPLOYMENT_KEYS, JOB_KEYS, STAGE_KEYS};
use super::model::{Job, Problem, Stage, Step};

impl Loader<'_> {
    pub(super) fn job(&mut self, node: &Node) -> Option<Job> {
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
