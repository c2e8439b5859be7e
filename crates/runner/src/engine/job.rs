//! One job: its workspace, its state between steps, each step's condition, timeout, retries
//! and result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::expr::{Outcome, Val};
use crate::identity::guid;
use crate::output::Row;
use crate::pipeline::{DeployKind, Job, Lifecycle, Pipeline, Shell, Stage, Step, StepKind};
use crate::process;
use crate::variables::{env_name, Masker, Variables};

use super::runtime::Leg;
use super::schedule::{evaluate, StepScope};
use super::{worst, Engine, JobState};

impl Engine<'_> {
    /// Runs one copy of a job; returns its outcome and its output variables.
    pub(super) fn run_job(
        &mut self,
        pipeline: &Pipeline,
        stage: &Stage,
        job: &Job,
        leg: &Leg,
        contexts: &[(String, Val)],
        deps: &[(String, Outcome)],
    ) -> (Outcome, Vec<(String, String)>) {
        let started = Instant::now();
        let mut job_path = self.job_path(stage, job);
        if let Some(suffix) = &leg.suffix {
            job_path = format!("{job_path} {suffix}");
        }
        let (mut vars, errors) =
            self.scope_variables(pipeline, Some(stage), Some(job), Some(leg), contexts, deps);
        if !errors.is_empty() {
            for e in &errors {
                self.printer.error(&format!("job '{}': {e}", job.name));
            }
            self.rows.push(Row {
                path: job_path,
                outcome: Outcome::Failed,
                duration: Duration::ZERO,
                note: "a variable could not be evaluated".into(),
            });
            return (Outcome::Failed, Vec::new());
        }
        // Every job of every run is a new job to the service; tasks key idempotency on it.
        vars.set_force("System.JobId", &guid(), false);
        let ws = self.job_dir(Some(stage), Some(job), Some(leg));
        for sub in ["a", "b", "_temp", "TestResults"] {
            if let Err(e) = std::fs::create_dir_all(ws.join(sub)) {
                self.printer.error(&format!(
                    "cannot create the job's workspace {}: {e}",
                    ws.display()
                ));
                return (Outcome::Failed, Vec::new());
            }
        }
        let mut masker = Masker::default();
        for v in vars.iter().filter(|v| v.secret) {
            masker.add(&v.value);
        }
        for secret in &self.secret_outputs {
            masker.add(secret);
        }
        let mut state = JobState {
            vars,
            masker,
            prepend_path: Vec::new(),
            endpoints: self.settings.endpoints.clone(),
            task_variables: BTreeMap::new(),
            outcome: Outcome::Succeeded,
            canceled: false,
            outputs: Vec::new(),
            output_prefixes: leg.output_prefix.iter().cloned().collect(),
        };
        for e in &state.endpoints {
            for s in e.secrets() {
                state.masker.add(s);
            }
        }
        state.masker.add(&self.collection_token);
        let deadline = job
            .timeout_minutes
            .filter(|m| *m > 0)
            .map(|m| started + Duration::from_secs(m * 60));
        let run = JobRun {
            path: job_path,
            deadline,
            timeout_minutes: job.timeout_minutes.unwrap_or(0),
        };
        match &job.lifecycle {
            Some(lifecycle) => self.run_lifecycle(&mut state, job, lifecycle, &run),
            None => self.run_steps(&mut state, &job.steps, &run),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            state.outcome = Outcome::Failed;
        }
        let outputs = std::mem::take(&mut state.outputs);
        if state.canceled || process::cancel_requested() {
            return (Outcome::Canceled, outputs);
        }
        (state.outcome, outputs)
    }

    /// A deployment job's hooks in the service's order: preDeploy; deploy, routeTraffic,
    /// postRouteTraffic (once per canary increment); then on.success or on.failure. Each
    /// hook is a job of its own on the service, named as its output variables show
    /// (`<job>` for runOnce, `<hook>_<increment>` for canary, `<hook>_<resource>` for
    /// rolling); locally they share one workspace.
    fn run_lifecycle(
        &mut self,
        state: &mut JobState,
        job: &Job,
        lifecycle: &Lifecycle,
        run: &JobRun,
    ) {
        let strategy = match &lifecycle.kind {
            DeployKind::RunOnce => "runOnce",
            DeployKind::Rolling => "rolling",
            DeployKind::Canary(_) => "canary",
        };
        state.vars.set_force("Strategy.Name", strategy, false);
        state.vars.set_force("Strategy.Action", "deploy", false);
        let rounds: Vec<Option<&str>> = match &lifecycle.kind {
            DeployKind::Canary(increments) => increments.iter().map(|i| Some(i.as_str())).collect(),
            _ => vec![None],
        };
        let resource = lifecycle.resource.as_deref();
        let mut plan: Vec<(&str, Option<&str>)> = vec![("preDeploy", None)];
        for round in &rounds {
            for hook in ["deploy", "routeTraffic", "postRouteTraffic"] {
                plan.push((hook, *round));
            }
        }
        for (hook, increment) in plan {
            let Some(steps) = lifecycle.hook(hook) else {
                continue;
            };
            self.enter_hook(state, job, lifecycle, hook, increment);
            if hook == "deploy" {
                // The service injects the artifact download into the deploy hook.
                let none = steps.iter().any(|s| matches!(&s.kind, StepKind::Download { source, .. } if source.eq_ignore_ascii_case("none")));
                if !none {
                    self.download_all(state, &run.path);
                }
            }
            let hook_run = JobRun {
                path: hook_path(&run.path, hook, increment.or(resource)),
                ..*run
            };
            self.run_steps(state, steps, &hook_run);
        }
        // on.failure when a hook failed, on.success otherwise; the hook starts as a new job
        // (its steps' default condition holds), the job keeps the worse result.
        let failed = state.outcome == Outcome::Failed || state.canceled;
        let hook = if failed { "failure" } else { "success" };
        if let Some(steps) = lifecycle.hook(hook) {
            let before = state.outcome;
            state.outcome = Outcome::Succeeded;
            self.enter_hook(state, job, lifecycle, hook, None);
            let hook_run = JobRun {
                path: hook_path(&run.path, &format!("on.{hook}"), None),
                ..*run
            };
            self.run_steps(state, steps, &hook_run);
            state.outcome = worst(before, state.outcome);
        }
    }

    /// Sets what a hook's steps see: `Strategy.Increment` and the prefixes of their output
    /// variables.
    fn enter_hook(
        &mut self,
        state: &mut JobState,
        job: &Job,
        lifecycle: &Lifecycle,
        hook: &str,
        increment: Option<&str>,
    ) {
        if let Some(i) = increment {
            state.vars.set_force("Strategy.Increment", i, false);
        }
        let resource = lifecycle.resource.as_deref();
        state.output_prefixes = match (&lifecycle.kind, increment, resource) {
            (DeployKind::Canary(_), Some(i), _) => vec![format!("{hook}_{i}")],
            (DeployKind::Canary(_), None, _) => vec![hook.to_owned()],
            (DeployKind::Rolling, _, r) => vec![format!("{hook}_{}", r.unwrap_or("local"))],
            // runOnce: the job's name; with a resource also `<Hook>_<resource>`.
            (DeployKind::RunOnce, _, Some(r)) => {
                let mut c = hook.chars();
                let cap: String = c
                    .next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default();
                vec![job.name.clone(), format!("{cap}_{r}")]
            }
            (DeployKind::RunOnce, _, None) => vec![job.name.clone()],
        };
    }

    /// The deployment's automatic download of every artifact published so far.
    fn download_all(&mut self, state: &mut JobState, job_path: &str) {
        let t = Instant::now();
        self.step_counter += 1;
        self.printer.step_start(
            self.step_counter,
            "Download artifacts (deployment job)",
            "download-artifacts",
        );
        let (outcome, note) = self.download(state, None, None);
        self.printer.step_end(outcome, t.elapsed(), &note);
        self.rows.push(Row {
            path: format!("{job_path} / Download artifacts"),
            outcome,
            duration: t.elapsed(),
            note,
        });
        state.outcome = worst(state.outcome, outcome);
    }

    /// Runs steps in order with their conditions, timeouts, retries and results.
    fn run_steps(&mut self, state: &mut JobState, steps: &[Step], run: &JobRun) {
        let job_path = run.path.as_str();
        let deadline = run.deadline;
        for step in steps {
            state.canceled = state.canceled || process::cancel_requested();
            let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
            let title = step_title(step, &state.vars);
            let path = if job_path.is_empty() {
                title.clone()
            } else {
                format!("{job_path} / {title}")
            };
            if timed_out {
                self.rows.push(Row {
                    path,
                    outcome: Outcome::Skipped,
                    duration: Duration::ZERO,
                    note: "job timed out".into(),
                });
                continue;
            }
            if !step.enabled {
                self.rows.push(Row {
                    path,
                    outcome: Outcome::Skipped,
                    duration: Duration::ZERO,
                    note: "enabled: false".into(),
                });
                continue;
            }
            state
                .vars
                .set_force("Agent.JobStatus", state.outcome.as_str(), false);
            if !evaluate(step.condition.as_ref(), &StepScope(state), self.printer) {
                self.rows.push(Row {
                    path,
                    outcome: Outcome::Skipped,
                    duration: Duration::ZERO,
                    note: step
                        .condition
                        .as_ref()
                        .map(|c| format!("condition: {}", c.text))
                        .unwrap_or_else(|| "an earlier step failed".into()),
                });
                continue;
            }
            let t = Instant::now();
            self.step_counter += 1;
            let stem = step.name.clone().unwrap_or_else(|| title.clone());
            self.printer
                .step_start(self.step_counter, &state.masker.mask(&title), &stem);
            let step_timeout = step
                .timeout_minutes
                .filter(|m| *m > 0)
                .map(|m| Duration::from_secs(m * 60));
            let job_left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let timeout = match (step_timeout, job_left) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // Each step is a new task instance (a retry keeps it, as on the agent).
            state
                .vars
                .set_force("System.TaskInstanceId", &guid(), false);
            state
                .vars
                .set_force("System.TaskDisplayName", &title, false);
            state.vars.set_force(
                "System.TaskInstanceName",
                step.name.as_deref().unwrap_or(&stem),
                false,
            );
            let (mut outcome, mut note) = self.run_step(&mut *state, step, timeout);
            // retryCountOnTaskFailure: run a failed step again, as the agent does.
            let mut attempt = 0;
            while outcome == Outcome::Failed
                && attempt < step.retries
                && !process::cancel_requested()
                && deadline.is_none_or(|d| Instant::now() < d)
            {
                attempt += 1;
                self.printer.warning(&format!(
                    "retrying the failed step (attempt {} of {})",
                    attempt + 1,
                    step.retries + 1
                ));
                let job_left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                let timeout = match (step_timeout, job_left) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                (outcome, note) = self.run_step(&mut *state, step, timeout);
            }
            if attempt > 0 {
                note = if note.is_empty() {
                    format!("attempt {}", attempt + 1)
                } else {
                    format!("{note}; attempt {}", attempt + 1)
                };
            }
            if outcome == Outcome::Failed && step.continue_on_error {
                outcome = Outcome::SucceededWithIssues;
                note = if note.is_empty() {
                    "continueOnError".into()
                } else {
                    format!("{note}; continueOnError")
                };
            }
            if deadline.is_some_and(|d| Instant::now() >= d) && outcome == Outcome::Failed {
                note = format!(
                    "the job ran longer than its timeoutInMinutes ({} min)",
                    run.timeout_minutes
                );
            }
            self.printer.step_end(outcome, t.elapsed(), &note);
            self.rows.push(Row {
                path,
                outcome,
                duration: t.elapsed(),
                note,
            });
            if outcome == Outcome::Canceled {
                state.canceled = true;
            } else {
                state.outcome = worst(state.outcome, outcome);
            }
        }
    }

    pub(super) fn run_step(
        &mut self,
        state: &mut JobState,
        step: &Step,
        timeout: Option<Duration>,
    ) -> (Outcome, String) {
        match &step.kind {
            StepKind::Task {
                manifest, inputs, ..
            } => self.run_task(state, step, manifest, inputs, timeout),
            StepKind::Mapped {
                reference,
                command,
                inputs,
            } => match command {
                None => {
                    self.printer
                        .note(&format!("{reference} is mapped to 'skip' in the vars file"));
                    (Outcome::Skipped, "mapped to skip".into())
                }
                Some(cmd) => {
                    let env: Vec<(String, String)> = inputs
                        .iter()
                        .map(|(k, v)| {
                            (
                                format!("INPUT_{}", env_name(k)),
                                state.vars.expand(v).trim().to_owned(),
                            )
                        })
                        .collect();
                    let (o, n) =
                        self.run_script(state, step, Shell::Bash, cmd, None, false, env, timeout);
                    (
                        o,
                        if n.is_empty() {
                            "local command".into()
                        } else {
                            n
                        },
                    )
                }
            },
            StepKind::Unknown { reference } => {
                self.printer.warning(&format!("task '{reference}' is not available to azp-local: step skipped (map it in the vars file's 'tasks' to run a local command)"));
                (Outcome::Skipped, "unknown task".into())
            }
            StepKind::Script {
                shell,
                script,
                working_directory,
                fail_on_stderr,
            } => {
                let env = Vec::new();
                self.run_script(
                    state,
                    step,
                    *shell,
                    script,
                    working_directory.as_deref(),
                    *fail_on_stderr,
                    env,
                    timeout,
                )
            }
            StepKind::Checkout { repository } => {
                let repo = repository.trim();
                if repo.eq_ignore_ascii_case("self") {
                    self.printer.note(&format!(
                        "sources: {} (the local folder; nothing to fetch)",
                        self.settings.sources_dir.display()
                    ));
                    (Outcome::Succeeded, String::new())
                } else if repo.eq_ignore_ascii_case("none") {
                    (Outcome::Succeeded, String::new())
                } else {
                    self.printer.warning(&format!("checkout of '{repo}' skipped: azp-local uses the local folder as the only repository"));
                    (Outcome::Skipped, "other repository".into())
                }
            }
            StepKind::Publish { path, artifact } => self.publish(state, path, artifact),
            StepKind::Download {
                source,
                artifact,
                path,
            } => {
                if source.eq_ignore_ascii_case("none") {
                    return (Outcome::Succeeded, String::new());
                }
                if !source.eq_ignore_ascii_case("current") {
                    self.printer.warning(&format!("download from '{source}' skipped: a local run has only the current run's artifacts"));
                    return (Outcome::Skipped, "other pipeline".into());
                }
                let artifact = artifact.as_ref().map(|a| state.vars.expand(a));
                let path = path.as_ref().map(|p| state.vars.expand(p));
                self.download(state, artifact.as_deref(), path.as_deref())
            }
        }
    }

    pub(super) fn absolute(&self, state: &JobState, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            PathBuf::from(
                state
                    .vars
                    .value("System.DefaultWorkingDirectory")
                    .unwrap_or("."),
            )
            .join(p)
        }
    }
}

pub(super) fn step_title(step: &Step, vars: &Variables) -> String {
    if let Some(d) = &step.display_name {
        return vars.expand(d);
    }
    match &step.kind {
        StepKind::Task {
            manifest, inputs, ..
        } => {
            let mut title = manifest.instance_name_format.clone();
            for input in &manifest.inputs {
                let value = inputs
                    .iter()
                    .find(|(n, _)| n == &input.name)
                    .map(|(_, v)| v.clone())
                    .or_else(|| input.default.clone())
                    .unwrap_or_default();
                title = replace_ignore_case(&title, &format!("$({})", input.name), &value);
            }
            vars.expand(&title)
        }
        StepKind::Mapped { reference, .. } | StepKind::Unknown { reference } => reference.clone(),
        StepKind::Script { script, shell, .. } => {
            let first = script
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            let shell = match shell {
                Shell::Bash => "Run",
                _ => "PowerShell",
            };
            let short: String = first.chars().take(60).collect();
            format!(
                "{shell}: {short}{}",
                if first.chars().count() > 60 {
                    "…"
                } else {
                    ""
                }
            )
        }
        StepKind::Checkout { repository } => format!("Checkout {repository}"),
        StepKind::Publish { artifact, .. } => format!("Publish Pipeline Artifact: {artifact}"),
        StepKind::Download { artifact, .. } => format!(
            "Download Pipeline Artifact: {}",
            artifact.as_deref().unwrap_or("all")
        ),
    }
}

pub(super) fn replace_ignore_case(text: &str, needle: &str, with: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let needle_lower = needle.to_ascii_lowercase();
    let mut out = String::new();
    let mut at = 0;
    while let Some(i) = lower[at..].find(&needle_lower) {
        out.push_str(&text[at..at + i]);
        out.push_str(with);
        at += i + needle.len();
    }
    out.push_str(&text[at..]);
    out
}

/// Where and how long a job (or one of its hooks) runs.
#[derive(Clone)]
struct JobRun {
    /// The job's path in the final table.
    path: String,
    deadline: Option<Instant>,
    timeout_minutes: u64,
}

fn hook_path(job_path: &str, hook: &str, qualifier: Option<&str>) -> String {
    let hook = match qualifier {
        Some(q) => format!("{hook} {q}"),
        None => hook.to_owned(),
    };
    if job_path.is_empty() {
        hook
    } else {
        format!("{job_path} / {hook}")
    }
}
