//! Runs a loaded pipeline the way the service and the agent do: stages and jobs in
//! dependency order, conditions, the job's variables and their updates between steps, the
//! task environment (contract §2), results (contract §4), artifacts in a local pipeline
//! workspace, cancellation and timeouts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::commands::{Interpreter, Shown, Update};
use crate::endpoints::{system_connection, Endpoint};
use crate::expr::{Outcome, Scope};
use crate::identity::{guid, RunIdentity};
use crate::manifest::{Handler, Manifest};
use crate::output::{Printer, Row};
use crate::pipeline::{Condition, Job, Pipeline, Shell, Stage, Step, StepKind, VarDef};
use crate::process::{self, Spawn, Stream};
use crate::variables::{env_name, Masker, Variables};
use crate::varsfile::VarValue;

/// Everything a run needs besides the pipeline.
pub struct Settings {
    /// The run's plan id, build id and number, attempt.
    pub identity: RunIdentity,
    /// The checkout: `Build.SourcesDirectory` and `System.DefaultWorkingDirectory`.
    pub sources_dir: PathBuf,
    /// Holds one folder per job (its `Pipeline.Workspace`) and the published artifacts.
    pub work_dir: PathBuf,
    /// Folders holding task binaries (next to azp-local).
    pub binaries: Vec<PathBuf>,
    /// Lowest precedence: emulator variables, then the vars file's own.
    pub base_variables: Vec<(String, VarValue)>,
    pub groups: BTreeMap<String, Vec<(String, VarValue)>>,
    /// Highest precedence: `--var` and `--secret`.
    pub overrides: Vec<(String, VarValue)>,
    pub endpoints: Vec<Endpoint>,
    /// The environment tasks inherit (azp-local's own, cleaned of agent variables).
    pub base_env: Vec<(String, String)>,
}

/// The run's outcome and its rows, for the exit code and tests.
pub struct RunResult {
    pub outcome: Outcome,
    pub rows: Vec<Row>,
}

fn step_title(step: &Step, vars: &Variables) -> String {
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

fn replace_ignore_case(text: &str, needle: &str, with: &str) -> String {
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

/// What the job knows while its steps run.
struct JobState {
    vars: Variables,
    masker: Masker,
    prepend_path: Vec<String>,
    endpoints: Vec<Endpoint>,
    task_variables: BTreeMap<String, Vec<(String, String, bool)>>,
    outcome: Outcome,
    canceled: bool,
}

struct StepScope<'a>(&'a JobState);

impl Scope for StepScope<'_> {
    fn variable(&self, name: &str) -> Option<String> {
        self.0.vars.value(name).map(str::to_owned)
    }
    fn outcomes(&self, _: &[String]) -> Result<Vec<Outcome>, String> {
        Ok(vec![self.0.outcome])
    }
    fn canceled(&self) -> bool {
        self.0.canceled
    }
}

/// The scope of a job's or stage's condition: its dependencies' outcomes.
struct DependencyScope<'a> {
    vars: &'a Variables,
    deps: Vec<(String, Outcome)>,
    canceled: bool,
}

impl Scope for DependencyScope<'_> {
    fn variable(&self, name: &str) -> Option<String> {
        self.vars.value(name).map(str::to_owned)
    }
    fn outcomes(&self, names: &[String]) -> Result<Vec<Outcome>, String> {
        if names.is_empty() {
            return Ok(self.deps.iter().map(|(_, o)| *o).collect());
        }
        names
            .iter()
            .map(|n| {
                self.dependency(n)
                    .ok_or_else(|| format!("'{n}' is not a dependency"))
            })
            .collect()
    }
    fn dependency(&self, name: &str) -> Option<Outcome> {
        self.deps
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, o)| *o)
    }
    fn canceled(&self) -> bool {
        self.canceled
    }
}

fn evaluate(condition: Option<&Condition>, scope: &dyn Scope, printer: &mut Printer) -> bool {
    match condition {
        None => {
            scope
                .outcomes(&[])
                .map(|o| o.iter().all(|o| o.is_success()))
                .unwrap_or(false)
                && !scope.canceled()
        }
        Some(c) => match c.expr.eval(scope) {
            Ok(v) => v.truthy(),
            Err(e) => {
                printer.error(&format!("condition '{}' cannot be evaluated: {e}", c.text));
                false
            }
        },
    }
}

/// Orders items so that each comes after its dependencies, keeping the written order
/// otherwise. The loader has rejected cycles and unknown names.
fn dependency_order<T>(
    items: &[T],
    name: impl Fn(&T) -> &str,
    deps: impl Fn(&T) -> &[String],
) -> Vec<&T> {
    let mut done: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    while out.len() < items.len() {
        let before = out.len();
        for item in items {
            let n = name(item);
            if done.iter().any(|d| d.eq_ignore_ascii_case(n)) {
                continue;
            }
            if deps(item)
                .iter()
                .all(|d| done.iter().any(|x| x.eq_ignore_ascii_case(d)))
            {
                done.push(n);
                out.push(item);
            }
        }
        if out.len() == before {
            break;
        }
    }
    out
}

fn worst(a: Outcome, b: Outcome) -> Outcome {
    match (a, b) {
        (Outcome::Skipped, x) | (x, Outcome::Skipped) => x,
        (a, b) => a.max(b),
    }
}

pub struct Engine<'a> {
    pub settings: &'a Settings,
    pub printer: &'a mut Printer,
    rows: Vec<Row>,
    step_counter: usize,
    artifacts_dir: PathBuf,
    collection_token: String,
    /// The checkout's branch and commit, read once.
    git: (Option<String>, Option<String>),
}

impl<'a> Engine<'a> {
    pub fn new(settings: &'a Settings, printer: &'a mut Printer) -> Engine<'a> {
        let artifacts_dir = settings.work_dir.join("_artifacts");
        let collection_token = format!("azp-local-{:016x}", fastrand::u64(..));
        let git = (
            git_branch(&settings.sources_dir),
            git_head(&settings.sources_dir),
        );
        Engine {
            settings,
            printer,
            rows: Vec::new(),
            step_counter: 0,
            artifacts_dir,
            collection_token,
            git,
        }
    }

    pub fn run(mut self, pipeline: &Pipeline) -> RunResult {
        let started = Instant::now();
        let mut stage_outcomes: Vec<(String, Outcome)> = Vec::new();
        let stage_refs = dependency_order(
            &pipeline.stages,
            |s| s.name.as_str(),
            |s| s.depends_on.as_slice(),
        );
        for stage in stage_refs {
            let deps = dependency_outcomes(&stage.depends_on, &stage_outcomes);
            let vars = self.scope_variables(pipeline, Some(stage), None);
            let scope = DependencyScope {
                vars: &vars,
                deps,
                canceled: process::cancel_requested(),
            };
            let title = stage
                .display_name
                .clone()
                .unwrap_or_else(|| stage.name.clone());
            if !stage.implicit {
                self.printer.stage(&title);
            }
            let run = evaluate(stage.condition.as_ref(), &scope, self.printer);
            let outcome = if run {
                self.run_stage(pipeline, stage)
            } else {
                let why = stage
                    .condition
                    .as_ref()
                    .map(|c| format!("condition '{}' was false", c.text))
                    .unwrap_or_else(|| "a dependency did not succeed".into());
                self.printer.note(&format!("stage skipped: {why}"));
                for job in &stage.jobs {
                    self.rows.push(Row {
                        path: self.job_path(stage, job),
                        outcome: Outcome::Skipped,
                        duration: Duration::ZERO,
                        note: String::new(),
                    });
                }
                Outcome::Skipped
            };
            stage_outcomes.push((stage.name.clone(), outcome));
        }
        let mut overall = stage_outcomes
            .iter()
            .fold(Outcome::Skipped, |acc, (_, o)| worst(acc, *o));
        if overall == Outcome::Skipped {
            overall = Outcome::Succeeded;
        }
        if process::cancel_requested() {
            overall = Outcome::Canceled;
        }
        self.printer.table(&self.rows, started.elapsed(), overall);
        RunResult {
            outcome: overall,
            rows: self.rows,
        }
    }

    fn job_path(&self, stage: &Stage, job: &Job) -> String {
        let mut parts = Vec::new();
        if !stage.implicit {
            parts.push(stage.name.clone());
        }
        if !job.implicit {
            parts.push(job.name.clone());
        }
        parts.join(" / ")
    }

    fn run_stage(&mut self, pipeline: &Pipeline, stage: &Stage) -> Outcome {
        let mut outcomes: Vec<(String, Outcome)> = Vec::new();
        for job in dependency_order(
            &stage.jobs,
            |j| j.name.as_str(),
            |j| j.depends_on.as_slice(),
        ) {
            let deps = dependency_outcomes(&job.depends_on, &outcomes);
            let vars = self.scope_variables(pipeline, Some(stage), Some(job));
            let scope = DependencyScope {
                vars: &vars,
                deps,
                canceled: process::cancel_requested(),
            };
            let title = job.display_name.clone().unwrap_or_else(|| job.name.clone());
            if !job.implicit {
                self.printer.job(&title);
            }
            let outcome = if evaluate(job.condition.as_ref(), &scope, self.printer) {
                let mut o = self.run_job(pipeline, stage, job);
                if o == Outcome::Failed && job.continue_on_error {
                    o = Outcome::SucceededWithIssues;
                }
                o
            } else {
                let why = job
                    .condition
                    .as_ref()
                    .map(|c| format!("condition '{}' was false", c.text))
                    .unwrap_or_else(|| "a dependency did not succeed".into());
                self.printer.note(&format!("job skipped: {why}"));
                self.rows.push(Row {
                    path: self.job_path(stage, job),
                    outcome: Outcome::Skipped,
                    duration: Duration::ZERO,
                    note: String::new(),
                });
                Outcome::Skipped
            };
            outcomes.push((job.name.clone(), outcome));
        }
        outcomes
            .iter()
            .fold(Outcome::Skipped, |acc, (_, o)| worst(acc, *o))
    }

    /// The variables of a scope, lowest precedence first: predefined, emulators and vars
    /// file, pipeline, stage, job (with their groups), then `--var`/`--secret`.
    fn scope_variables(
        &self,
        pipeline: &Pipeline,
        stage: Option<&Stage>,
        job: Option<&Job>,
    ) -> Variables {
        let mut vars = Variables::new();
        self.predefined(&mut vars, stage, job);
        for (name, v) in &self.settings.base_variables {
            vars.set_force(name, &v.value, v.secret);
        }
        let mut defs: Vec<&VarDef> = pipeline.variables.iter().collect();
        if let Some(s) = stage {
            defs.extend(&s.variables);
        }
        if let Some(j) = job {
            defs.extend(&j.variables);
        }
        for def in defs {
            match def {
                VarDef::Value {
                    name,
                    value,
                    read_only,
                } => {
                    vars.set_force(name, value, false);
                    if *read_only {
                        let _ = vars.set(name, value, false, true);
                    }
                }
                VarDef::Group { name, .. } => {
                    for (n, v) in self.settings.groups.get(name).into_iter().flatten() {
                        vars.set_force(n, &v.value, v.secret);
                    }
                }
            }
        }
        for (name, v) in &self.settings.overrides {
            vars.set_force(name, &v.value, v.secret);
        }
        vars.expand_values();
        vars
    }

    fn job_dir(&self, stage: Option<&Stage>, job: Option<&Job>) -> PathBuf {
        let name = match (stage, job) {
            (Some(s), Some(j)) if !s.implicit => format!("{}_{}", s.name, j.name),
            (_, Some(j)) => j.name.clone(),
            _ => "pipeline".into(),
        };
        self.settings.work_dir.join(name)
    }

    fn predefined(&self, vars: &mut Variables, stage: Option<&Stage>, job: Option<&Job>) {
        let sources = self.settings.sources_dir.display().to_string();
        let ws = self.job_dir(stage, job);
        let p = |d: &Path| d.display().to_string();
        let repo_name = self
            .settings
            .sources_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("self")
            .to_owned();
        let os = match std::env::consts::OS {
            "linux" => "Linux",
            "macos" => "Darwin",
            "windows" => "Windows_NT",
            other => other,
        };
        let arch = match std::env::consts::ARCH {
            "x86_64" => "X64",
            "aarch64" => "ARM64",
            "x86" => "X86",
            other => other,
        };
        let stage_name = stage
            .map(|s| s.name.clone())
            .unwrap_or_else(|| "__default".into());
        let job_name = job.map(|j| j.name.clone()).unwrap_or_else(|| "Job".into());
        let branch = self.git.0.clone().unwrap_or_else(|| "main".into());
        let id = &self.settings.identity;
        let defaults: Vec<(&str, String)> = vec![
            ("Pipeline.Workspace", p(&ws)),
            ("Agent.BuildDirectory", p(&ws)),
            ("Agent.WorkFolder", p(&self.settings.work_dir)),
            ("Agent.TempDirectory", p(&ws.join("_temp"))),
            (
                "Agent.ToolsDirectory",
                p(&self.settings.work_dir.join("_tool")),
            ),
            ("Agent.HomeDirectory", p(&self.settings.work_dir)),
            ("Agent.Name", "azp-local".into()),
            (
                "Agent.MachineName",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()),
            ),
            ("Agent.OS", os.into()),
            ("Agent.OSArchitecture", arch.into()),
            (
                "Agent.JobName",
                job.and_then(|j| j.display_name.clone())
                    .unwrap_or_else(|| job_name.clone()),
            ),
            ("Agent.JobStatus", "Succeeded".into()),
            ("Agent.Id", "1".into()),
            ("Build.SourcesDirectory", sources.clone()),
            ("Build.Repository.LocalPath", sources.clone()),
            ("System.DefaultWorkingDirectory", sources.clone()),
            ("Build.BinariesDirectory", p(&ws.join("b"))),
            ("Build.ArtifactStagingDirectory", p(&ws.join("a"))),
            ("Build.StagingDirectory", p(&ws.join("a"))),
            ("System.ArtifactsDirectory", p(&ws.join("a"))),
            ("Common.TestResultsDirectory", p(&ws.join("TestResults"))),
            ("Build.Repository.Name", repo_name.clone()),
            ("Build.Repository.Provider", "Git".into()),
            ("Build.Repository.Uri", format!("file://{sources}")),
            ("Build.BuildId", id.build_id.to_string()),
            ("Build.BuildNumber", id.build_number.clone()),
            ("Build.DefinitionName", repo_name),
            ("Build.Reason", "Manual".into()),
            (
                "Build.RequestedFor",
                std::env::var("USER").unwrap_or_else(|_| "azp-local".into()),
            ),
            ("Build.SourceBranch", format!("refs/heads/{branch}")),
            (
                "Build.SourceBranchName",
                branch.rsplit('/').next().unwrap_or(&branch).to_owned(),
            ),
            (
                "Build.SourceVersion",
                self.git.1.clone().unwrap_or_default(),
            ),
            ("System.TeamProject", "local".into()),
            (
                "System.TeamProjectId",
                "00000000-0000-4000-8000-00000000a2b1".into(),
            ),
            ("System.CollectionUri", "http://localhost/azp-local/".into()),
            (
                "System.TeamFoundationCollectionUri",
                "http://localhost/azp-local/".into(),
            ),
            (
                "System.CollectionId",
                "00000000-0000-4000-8000-00000000c011".into(),
            ),
            ("System.DefinitionId", "1".into()),
            ("System.HostType", "build".into()),
            ("System.PlanId", id.plan_id.clone()),
            ("System.TimelineId", id.plan_id.clone()),
            ("System.JobAttempt", id.attempt.to_string()),
            ("System.PhaseAttempt", id.attempt.to_string()),
            ("System.StageAttempt", id.attempt.to_string()),
            ("System.StageName", stage_name.clone()),
            (
                "System.StageDisplayName",
                stage
                    .and_then(|s| s.display_name.clone())
                    .unwrap_or(stage_name),
            ),
            ("System.JobName", job_name.clone()),
            ("System.PhaseName", job_name),
            ("System.Debug", "false".into()),
            ("System.PullRequest.IsFork", "False".into()),
            ("System.AccessToken", self.collection_token.clone()),
        ];
        for (name, value) in defaults {
            vars.set_force(name, &value, name == "System.AccessToken");
        }
    }

    fn run_job(&mut self, pipeline: &Pipeline, stage: &Stage, job: &Job) -> Outcome {
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

    fn run_step(
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

    fn absolute(&self, state: &JobState, path: &str) -> PathBuf {
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

    fn publish(&mut self, state: &mut JobState, path: &str, artifact: &str) -> (Outcome, String) {
        let artifact = state.vars.expand(artifact);
        let source = self.absolute(state, &state.vars.expand(path));
        let target = self.artifacts_dir.join(&artifact);
        if !source.exists() {
            let msg = format!(
                "Path does not exist: {}",
                state.masker.mask(&source.display().to_string())
            );
            self.printer.shown(&Shown::Error(msg.clone()));
            return (Outcome::Failed, msg);
        }
        if target.exists() {
            let msg = format!("an artifact named '{artifact}' was already published in this run");
            self.printer.shown(&Shown::Error(msg.clone()));
            return (Outcome::Failed, msg);
        }
        match copy_tree(&source, &target) {
            Ok(n) => {
                self.printer.shown(&Shown::Out(format!(
                    "published {n} file(s) from {} as artifact '{artifact}'",
                    source.display()
                )));
                (Outcome::Succeeded, String::new())
            }
            Err(e) => {
                let msg = format!("cannot publish {}: {e}", source.display());
                self.printer.shown(&Shown::Error(msg.clone()));
                (Outcome::Failed, msg)
            }
        }
    }

    fn download(
        &mut self,
        state: &mut JobState,
        artifact: Option<&str>,
        path: Option<&str>,
    ) -> (Outcome, String) {
        let ws = PathBuf::from(state.vars.value("Pipeline.Workspace").unwrap_or("."));
        let names: Vec<String> = match artifact {
            Some(a) => vec![a.to_owned()],
            None => {
                let mut names: Vec<String> = std::fs::read_dir(&self.artifacts_dir)
                    .map(|d| {
                        d.flatten()
                            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                names.sort();
                names
            }
        };
        if names.is_empty() {
            self.printer.shown(&Shown::Out(
                "no artifacts published in this run so far".into(),
            ));
        }
        for name in names {
            let source = self.artifacts_dir.join(&name);
            if !source.exists() {
                let msg =
                    format!("artifact '{name}' was not published by an earlier job of this run");
                self.printer.shown(&Shown::Error(msg.clone()));
                return (Outcome::Failed, msg);
            }
            let target = match (path, artifact) {
                (Some(p), Some(_)) => self.absolute(state, p),
                (Some(p), None) => self.absolute(state, p).join(&name),
                (None, _) => ws.join(&name),
            };
            match copy_tree(&source, &target) {
                Ok(n) => self.printer.shown(&Shown::Out(format!(
                    "downloaded artifact '{name}' ({n} file(s)) to {}",
                    target.display()
                ))),
                Err(e) => {
                    let msg = format!("cannot download artifact '{name}': {e}");
                    self.printer.shown(&Shown::Error(msg.clone()));
                    return (Outcome::Failed, msg);
                }
            }
        }
        (Outcome::Succeeded, String::new())
    }

    /// The environment every step gets: azp-local's own, `PATH` with prepended folders,
    /// public variables, and `TF_BUILD`.
    fn common_env(&self, state: &JobState) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> = self.settings.base_env.iter().cloned().collect();
        let mut public = Vec::new();
        for v in state.vars.iter() {
            let key = env_name(&v.name);
            if v.secret || key == "PATH" {
                continue;
            }
            env.insert(key, v.value.clone());
            public.push(v.name.clone());
        }
        env.insert(
            "VSTS_PUBLIC_VARIABLES".into(),
            serde_json::to_string(&public).unwrap_or_default(),
        );
        env.insert("TF_BUILD".into(), "True".into());
        if !state.prepend_path.is_empty() {
            let mut dirs: Vec<PathBuf> =
                state.prepend_path.iter().rev().map(PathBuf::from).collect();
            if let Some(old) = env.get("PATH") {
                dirs.extend(std::env::split_paths(old));
            }
            if let Ok(path) = std::env::join_paths(dirs) {
                env.insert("PATH".into(), path.to_string_lossy().into_owned());
            }
        }
        env.into_iter().collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn run_script(
        &mut self,
        state: &mut JobState,
        step: &Step,
        shell: Shell,
        script: &str,
        working_directory: Option<&str>,
        fail_on_stderr: bool,
        extra_env: Vec<(String, String)>,
        timeout: Option<Duration>,
    ) -> (Outcome, String) {
        let temp = PathBuf::from(state.vars.value("Agent.TempDirectory").unwrap_or("."));
        let _ = std::fs::create_dir_all(&temp);
        let body = state.vars.expand(script);
        let (program, args, file) = match shell {
            Shell::Bash => {
                let file = temp.join(format!("{:016x}.sh", fastrand::u64(..)));
                (
                    PathBuf::from("bash"),
                    vec![
                        "--noprofile".to_owned(),
                        "--norc".to_owned(),
                        file.display().to_string(),
                    ],
                    file,
                )
            }
            Shell::Pwsh | Shell::PowerShell => {
                let file = temp.join(format!("{:016x}.ps1", fastrand::u64(..)));
                (
                    PathBuf::from("pwsh"),
                    vec![
                        "-NoLogo".into(),
                        "-NoProfile".into(),
                        "-NonInteractive".into(),
                        "-Command".into(),
                        format!(". '{}'", file.display()),
                    ],
                    file,
                )
            }
        };
        let body = match shell {
            Shell::Bash => body,
            _ => format!("$ErrorActionPreference = 'stop'\n{body}\nif ((Test-Path -LiteralPath variable:\\LASTEXITCODE)) {{ exit $LASTEXITCODE }}\n"),
        };
        if let Err(e) = std::fs::write(&file, body) {
            return (Outcome::Failed, format!("cannot write the script: {e}"));
        }
        let mut env = self.common_env(state);
        for (k, v) in &step.env {
            env.push((k.clone(), state.vars.expand(v)));
        }
        env.extend(extra_env);
        let cwd = working_directory
            .map(|w| self.absolute(state, &state.vars.expand(w)))
            .unwrap_or_else(|| self.absolute(state, "."));
        self.printer.shown(&Shown::Command(format!(
            "{} {}",
            program.display(),
            args.join(" ")
        )));
        let spawn = Spawn {
            program,
            args,
            cwd,
            env,
            timeout,
        };
        let result = self.spawn_and_interpret(
            state,
            &spawn,
            Interpreter {
                debug: is_true(state.vars.value("System.Debug")),
                ..Default::default()
            },
            step,
            fail_on_stderr,
            None,
        );
        let _ = std::fs::remove_file(&file);
        result
    }

    fn run_task(
        &mut self,
        state: &mut JobState,
        step: &Step,
        manifest: &Manifest,
        inputs: &[(String, String)],
        timeout: Option<Duration>,
    ) -> (Outcome, String) {
        let handler = match manifest.handler(&self.settings.binaries) {
            Ok(h) => h,
            Err(e) => {
                self.printer.shown(&Shown::Error(e.clone()));
                return (Outcome::Failed, e);
            }
        };
        let (mut env, missing) = self.task_env(state, manifest, inputs);
        if let Some(msg) = missing {
            self.printer.shown(&Shown::Error(msg.clone()));
            return (Outcome::Failed, msg);
        }
        for (k, v) in &step.env {
            env.push((k.clone(), state.vars.expand(v)));
        }
        let cwd = self.absolute(state, ".");
        let (program, args) = match &handler {
            Handler::Node { name, target, eol } => {
                if *eol {
                    self.printer.shown(&Shown::Warning(format!("Task '{}' uses the {name} handler, which is end-of-life; move it to Node20_1 or Node24", manifest.name)));
                }
                (
                    PathBuf::from("node"),
                    vec![manifest.dir.join(target).display().to_string()],
                )
            }
            Handler::Binary(path) => (path.clone(), Vec::new()),
        };
        self.printer.shown(&Shown::Section(format!(
            "Task {} {}.x ({})",
            manifest.name,
            manifest.major,
            manifest.dir.display()
        )));
        let interpreter = Interpreter {
            output_variables: manifest.output_variables.clone(),
            settable: manifest.settable_variables.clone(),
            debug: is_true(state.vars.value("System.Debug")),
            ..Default::default()
        };
        let spawn = Spawn {
            program,
            args,
            cwd,
            env,
            timeout,
        };
        self.spawn_and_interpret(
            state,
            &spawn,
            interpreter,
            step,
            false,
            Some(&manifest.name),
        )
    }

    /// The task's environment (contract §2). Returns an error message for a connection the
    /// run does not know.
    fn task_env(
        &self,
        state: &mut JobState,
        manifest: &Manifest,
        given: &[(String, String)],
    ) -> (Vec<(String, String)>, Option<String>) {
        let mut env = self.common_env(state);
        let secrets: Vec<&crate::variables::Var> = state.vars.iter().filter(|v| v.secret).collect();
        let secret_names: Vec<String> = secrets.iter().map(|v| v.name.clone()).collect();
        for v in &secrets {
            env.push((format!("SECRET_{}", env_name(&v.name)), v.value.clone()));
        }
        env.push((
            "VSTS_SECRET_VARIABLES".into(),
            serde_json::to_string(&secret_names).unwrap_or_default(),
        ));
        let mut connections: Vec<Endpoint> = Vec::new();
        let mut problem = None;
        for input in &manifest.inputs {
            // Defaults first, the step's inputs over them, both trimmed; macros expanded once.
            let raw = given
                .iter()
                .find(|(n, _)| n == &input.name)
                .map(|(_, v)| v.clone())
                .or_else(|| input.default.clone())
                .unwrap_or_default();
            let mut value = state.vars.expand(raw.trim()).trim().to_owned();
            if input.is_file_path() && !value.is_empty() && !Path::new(&value).is_absolute() {
                value = self.absolute(state, &value).display().to_string();
            }
            if input.is_connected_service() && !value.is_empty() {
                let mut ids = Vec::new();
                for reference in value.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                    match state.endpoints.iter().find(|e| {
                        e.id.eq_ignore_ascii_case(reference)
                            || e.name
                                .as_deref()
                                .is_some_and(|n| n.eq_ignore_ascii_case(reference))
                    }) {
                        Some(e) => {
                            ids.push(e.id.clone());
                            connections.push(e.clone());
                        }
                        None => {
                            problem.get_or_insert_with(|| format!(
                                "input '{}' names the service connection '{reference}', which this run does not have: define it in the vars file's 'endpoints', with --endpoint id=<file.json>, or use --emulators",
                                input.name
                            ));
                        }
                    }
                }
                value = ids.join(",");
            }
            env.push((format!("INPUT_{}", env_name(&input.name)), value));
        }
        for e in &connections {
            env.extend(e.env());
        }
        let vss = state
            .endpoints
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case("SYSTEMVSSCONNECTION"))
            .cloned()
            .unwrap_or_else(|| {
                system_connection(
                    state.vars.value("System.CollectionUri").unwrap_or_default(),
                    &self.collection_token,
                )
            });
        env.extend(vss.env());
        for (name, value, secret) in state
            .task_variables
            .get(&manifest.name.to_ascii_lowercase())
            .into_iter()
            .flatten()
        {
            let _ = secret;
            env.push((
                format!("VSTS_TASKVARIABLE_{}", env_name(name)),
                value.clone(),
            ));
        }
        (env, problem)
    }

    fn spawn_and_interpret(
        &mut self,
        state: &mut JobState,
        spawn: &Spawn,
        mut interpreter: Interpreter,
        step: &Step,
        fail_on_stderr: bool,
        task: Option<&str>,
    ) -> (Outcome, String) {
        let mut stderr_lines = 0usize;
        let printer = &mut *self.printer;
        let masker = &mut state.masker;
        let result = process::run(spawn, &mut |stream, line| {
            if stream == Stream::Stderr {
                stderr_lines += 1;
            }
            let shown = interpreter.line(line, masker);
            printer.raw(&masker.mask(line));
            for s in &shown {
                printer.shown(s);
            }
        });
        let ended = match result {
            Ok(e) => e,
            Err(e) => {
                let msg = format!("cannot start {}: {e}", spawn.program.display());
                self.printer.shown(&Shown::Error(msg.clone()));
                return (Outcome::Failed, msg);
            }
        };
        let mut note = String::new();
        let mut outcome = interpreter.result(ended.ok());
        if ended.canceled {
            outcome = Outcome::Canceled;
            note = "canceled".into();
        } else if ended.timed_out {
            outcome = Outcome::Failed;
            note = format!(
                "timed out after {}",
                crate::output::duration_text(spawn.timeout.unwrap_or_default())
            );
        } else if ended.code != Some(0) {
            note = match ended.code {
                Some(c) => format!("exit code {c}"),
                None => "ended by a signal".into(),
            };
        } else if interpreter.command_failed {
            note = "a logging command failed".into();
        } else if let Some(m) = &interpreter.complete_message {
            if outcome != Outcome::Succeeded {
                note = state.masker.mask(m);
            }
        }
        if fail_on_stderr && stderr_lines > 0 && outcome != Outcome::Canceled {
            outcome = Outcome::Failed;
            note = format!("{stderr_lines} line(s) on stderr (failOnStderr)");
        }
        if interpreter.errors > 0 || interpreter.warnings > 0 {
            let counts = format!(
                "{} error(s), {} warning(s)",
                interpreter.errors, interpreter.warnings
            );
            note = if note.is_empty() {
                counts
            } else {
                format!("{note}; {counts}")
            };
        }
        self.apply_updates(state, interpreter.updates, step, task);
        (outcome, note)
    }

    fn apply_updates(
        &mut self,
        state: &mut JobState,
        updates: Vec<Update>,
        step: &Step,
        task: Option<&str>,
    ) {
        for update in updates {
            match update {
                Update::Variable {
                    name,
                    value,
                    secret,
                    read_only,
                    output,
                } => {
                    if secret {
                        state.masker.add(&value);
                    }
                    let name = if output {
                        match &step.name {
                            Some(step_name) => format!("{step_name}.{name}"),
                            // The agent names such a step itself; nothing later can refer to it.
                            None => continue,
                        }
                    } else {
                        name
                    };
                    if let Err(e) = state.vars.set(&name, &value, secret, read_only || output) {
                        self.printer.warning(&e.to_string());
                    }
                }
                Update::PrependPath(dir) => {
                    state.prepend_path.retain(|d| d != &dir);
                    state.prepend_path.push(dir);
                }
                Update::TaskVariable {
                    name,
                    value,
                    secret,
                } => {
                    if secret {
                        state.masker.add(&value);
                    }
                    if let Some(task) = task {
                        state
                            .task_variables
                            .entry(task.to_ascii_lowercase())
                            .or_default()
                            .push((name, value, secret));
                    }
                }
                Update::Endpoint {
                    id,
                    field,
                    key,
                    value,
                } => match state
                    .endpoints
                    .iter_mut()
                    .find(|e| e.id.eq_ignore_ascii_case(&id))
                {
                    Some(e) => e.set(&field, key.as_deref(), &value),
                    None => self.printer.warning(&format!(
                        "task.setendpoint: no service connection '{id}' in this run"
                    )),
                },
                Update::BuildNumber(n) => state.vars.set_force("Build.BuildNumber", &n, false),
                Update::UploadArtifact { name, path } => {
                    let source = self.absolute(state, &path);
                    let target = self.artifacts_dir.join(&name);
                    if let Err(e) = copy_tree(&source, &target) {
                        self.printer
                            .warning(&format!("artifact.upload of {}: {e}", source.display()));
                    }
                }
            }
        }
    }
}

fn is_true(v: Option<&str>) -> bool {
    v.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Copies a file or folder; returns the number of files.
pub fn copy_tree(source: &Path, target: &Path) -> std::io::Result<usize> {
    if source.is_file() {
        // An artifact is a folder: a published file keeps its name inside it.
        std::fs::create_dir_all(target)?;
        std::fs::copy(source, target.join(source.file_name().unwrap_or_default()))?;
        return Ok(1);
    }
    std::fs::create_dir_all(target)?;
    let mut n = 0;
    for entry in std::fs::read_dir(source)? {
        let entry = entry?;
        let from = entry.path();
        let to = target.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            n += copy_tree(&from, &to)?;
        } else {
            std::fs::copy(&from, &to)?;
            n += 1;
        }
    }
    Ok(n)
}

fn git_output(dir: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn git_branch(dir: &Path) -> Option<String> {
    git_output(dir, &["rev-parse", "--abbrev-ref", "HEAD"]).filter(|b| b != "HEAD")
}

fn git_head(dir: &Path) -> Option<String> {
    git_output(dir, &["rev-parse", "HEAD"])
}

/// The outcome of each stage or job named in `depends_on` (names compare case-insensitively,
/// as on the service); one that has not run counts as skipped.
fn dependency_outcomes(
    depends_on: &[String],
    outcomes: &[(String, Outcome)],
) -> Vec<(String, Outcome)> {
    depends_on
        .iter()
        .map(|d| {
            let outcome = outcomes
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(d))
                .map(|(_, o)| *o)
                .unwrap_or(Outcome::Skipped);
            (d.clone(), outcome)
        })
        .collect()
}
