//! One job: its workspace, its state between steps, each step's condition, timeout, retries
//! and result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::expr::Outcome;
use crate::identity::guid;
use crate::output::Row;
use crate::pipeline::{Job, Pipeline, Shell, Stage, Step, StepKind};
use crate::process;
use crate::variables::{env_name, Masker, Variables};

use super::schedule::{evaluate, StepScope};
use super::{worst, Engine, JobState};

impl Engine<'_> {
    pub(super) fn run_job(&mut self, pipeline: &Pipeline, stage: &Stage, job: &Job) -> Outcome {
        let started = Instant::now();
        let mut vars = self.scope_variables(pipeline, Some(stage), Some(job));
        // Every job of every run is a new job to the service; tasks key idempotency on it.
        vars.set_force("System.JobId", &guid(), false);
        let ws = self.job_dir(Some(stage), Some(job));
        for sub in ["a", "b", "_temp", "TestResults"] {
            if let Err(e) = std::fs::create_dir_all(ws.join(sub)) {
                self.printer.error(&format!(
                    "cannot create the job's workspace {}: {e}",
                    ws.display()
                ));
                return Outcome::Failed;
            }
        }
        let mut masker = Masker::default();
        for v in vars.iter().filter(|v| v.secret) {
            masker.add(&v.value);
        }
        let mut state = JobState {
            vars,
            masker,
            prepend_path: Vec::new(),
            endpoints: self.settings.endpoints.clone(),
            task_variables: BTreeMap::new(),
            outcome: Outcome::Succeeded,
            canceled: false,
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
        let job_path = self.job_path(stage, job);

        // Deployment jobs download the run's artifacts first, as the service does.
        let downloads_none = job.steps.iter().any(|s| matches!(&s.kind, StepKind::Download { source, .. } if source.eq_ignore_ascii_case("none")));
        if job.deployment && !downloads_none {
            let t = Instant::now();
            self.step_counter += 1;
            self.printer.step_start(
                self.step_counter,
                "Download artifacts (deployment job)",
                "download-artifacts",
            );
            let (outcome, note) = self.download(&mut state, None, None);
            self.printer.step_end(outcome, t.elapsed(), &note);
            self.rows.push(Row {
                path: format!("{job_path} / Download artifacts"),
                outcome,
                duration: t.elapsed(),
                note,
            });
            state.outcome = worst(state.outcome, outcome);
        }

        for step in &job.steps {
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
            if !evaluate(step.condition.as_ref(), &StepScope(&state), self.printer) {
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
            let (mut outcome, mut note) = self.run_step(&mut state, step, timeout);
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
                (outcome, note) = self.run_step(&mut state, step, timeout);
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
                    job.timeout_minutes.unwrap_or(0)
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
        if deadline.is_some_and(|d| Instant::now() >= d) {
            state.outcome = Outcome::Failed;
        }
        if state.canceled || process::cancel_requested() {
            return Outcome::Canceled;
        }
        state.outcome
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
