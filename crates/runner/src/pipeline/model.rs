//! The pipeline model: what the loader makes of the YAML and the engine runs.

use std::path::PathBuf;

use crate::expr::Expression;
use crate::manifest::Manifest;
use crate::yaml::Pos;

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
    /// `strategy: matrix` / `parallel`: the copies of the job the service makes.
    pub legs: Legs,
    /// A deployment job's strategy and lifecycle hooks (its `steps` are then empty).
    pub lifecycle: Option<Lifecycle>,
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

/// The copies of a job the service makes from its strategy.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Legs {
    /// One job.
    #[default]
    One,
    /// `matrix`: one copy per key, with its variables; `maxParallel` is kept for the record
    /// (locally the copies run one after another).
    Matrix {
        legs: Vec<(String, Vec<(String, String)>)>,
        max_parallel: Option<u64>,
    },
    /// `parallel: N`: N copies, `Job1` … `JobN`.
    Parallel(u64),
}

/// A deployment strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployKind {
    RunOnce,
    Rolling,
    /// `increments`: the deploy, routeTraffic and postRouteTraffic hooks run once per
    /// increment.
    Canary(Vec<String>),
}

/// A deployment job's hooks, run in the service's order: preDeploy, deploy, routeTraffic,
/// postRouteTraffic (per increment for canary), then on.success or on.failure.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    pub kind: DeployKind,
    /// The environment's resource (`environment: env.resource` or `resourceName`), which names
    /// the hook jobs of a rolling deployment (`deploy_<resource>`).
    pub resource: Option<String>,
    /// `(hook name, steps)` for `preDeploy`, `deploy`, `routeTraffic`, `postRouteTraffic`,
    /// `on.success` (as `success`) and `on.failure` (as `failure`), those present.
    pub hooks: Vec<(String, Vec<Step>)>,
}

impl Lifecycle {
    pub fn hook(&self, name: &str) -> Option<&[Step]> {
        self.hooks
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.as_slice())
    }
}
