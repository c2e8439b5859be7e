//! Runs a loaded pipeline the way the service and the agent do: stages and jobs in
//! dependency order, conditions, the job's variables and their updates between steps, the
//! task environment (contract §2), results (contract §4), artifacts in a local pipeline
//! workspace, cancellation and timeouts.

mod artifacts;
mod job;
mod predefined;
mod runtime;
mod schedule;
mod steps;
mod task_env;

pub use artifacts::copy_tree;
use predefined::{git_branch, git_head};
use runtime::StageRecord;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use crate::endpoints::Endpoint;
use crate::expr::Outcome;
use crate::identity::RunIdentity;
use crate::output::{Printer, Row};
use crate::pipeline::{Job, Stage};
use crate::variables::{Masker, Variables};
use crate::varsfile::VarValue;

/// Everything a run needs besides the pipeline.
pub struct Settings {
    /// The run's plan id, build id and number, attempt.
    pub identity: RunIdentity,
    /// Kept between runs of this sources folder: the build counter, `counter()` values.
    pub state_dir: PathBuf,
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

/// What the job knows while its steps run.
struct JobState {
    vars: Variables,
    masker: Masker,
    prepend_path: Vec<String>,
    endpoints: Vec<Endpoint>,
    task_variables: BTreeMap<String, Vec<(String, String, bool)>>,
    outcome: Outcome,
    canceled: bool,
    /// Output variables for later jobs, `[<prefix>.]<step>.<var>`.
    outputs: Vec<(String, String)>,
    /// What prefixes outputs set now (a copy's or a deployment hook's name); more than one
    /// when the service knows the hook by two names.
    output_prefixes: Vec<String>,
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
    /// Finished stages, their jobs' results and outputs.
    stages_done: Vec<StageRecord>,
    /// Values of secret output variables: masked in every later job.
    secret_outputs: Vec<String>,
    /// `$[ ]` values of root and stage variables, evaluated once per run.
    runtime_cache: RefCell<HashMap<String, String>>,
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
            stages_done: Vec::new(),
            secret_outputs: Vec::new(),
            runtime_cache: RefCell::new(HashMap::new()),
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
}

fn is_true(v: Option<&str>) -> bool {
    v.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}
