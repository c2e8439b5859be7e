//! Test support (feature `testing`): run a task binary as the agent would — a cleared
//! environment built per the agent contract (`INPUT_*`, `SECRET_*`, `SYSTEM_*`,
//! `AGENT_TEMPDIRECTORY`, …) — parse its logging commands, and carry the variables it sets to
//! the next step of a [`Job`], like the agent does for later steps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};

use task_sdk::agent_env::AgentEnv;
use task_sdk::command::{self, Command};
use task_sdk::TaskResult;

/// What one step printed and how it ended.
#[derive(Debug, Clone)]
pub struct StepRun {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    pub commands: Vec<Command>,
}

impl StepRun {
    fn from_output(stdout: Vec<u8>, stderr: Vec<u8>, exit_code: Option<i32>) -> StepRun {
        let stdout = String::from_utf8_lossy(&stdout).into_owned();
        let commands = stdout.lines().filter_map(command::parse).collect();
        StepRun {
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            stdout,
            exit_code,
            commands,
        }
    }

    /// The result as the agent decides it for a Node-handled task (contract §4).
    pub fn result(&self) -> TaskResult {
        let reported = self
            .commands
            .iter()
            .filter(|c| c.name() == "task.complete")
            .filter_map(|c| c.property("result").and_then(TaskResult::parse))
            .max()
            .unwrap_or(TaskResult::Succeeded);
        if self.exit_code != Some(0) {
            TaskResult::Failed
        } else {
            reported
        }
    }

    fn issues(&self, kind: &str) -> Vec<String> {
        self.commands
            .iter()
            .filter(|c| c.name() == "task.logissue" && c.property("type") == Some(kind))
            .map(|c| c.data.clone())
            .collect()
    }

    pub fn errors(&self) -> Vec<String> {
        self.issues("error")
    }

    pub fn warnings(&self) -> Vec<String> {
        self.issues("warning")
    }

    /// `task.setvariable` commands: name → (value, secret, output).
    pub fn variables(&self) -> BTreeMap<String, (String, bool, bool)> {
        self.commands
            .iter()
            .filter(|c| c.name() == "task.setvariable")
            .filter_map(|c| {
                let name = c.property("variable")?.to_owned();
                Some((
                    name,
                    (c.data.clone(), c.flag("issecret"), c.flag("isoutput")),
                ))
            })
            .collect()
    }

    /// The value of a variable the step set (job or output).
    pub fn variable(&self, name: &str) -> Option<String> {
        self.variables().get(name).map(|v| v.0.clone())
    }

    /// Lines that are not logging commands (what the log shows as plain text).
    pub fn plain_lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| command::parse(l).is_none())
            .collect()
    }

    /// Everything, for assertion messages.
    pub fn log(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.exit_code, self.stdout, self.stderr
        )
    }

    /// Panics when `secret` appears anywhere except where the agent consumes it: a
    /// `task.setsecret` line, or a `task.setvariable` line marked secret.
    pub fn assert_no_secret(&self, secret: &str) {
        for line in self.stdout.lines().chain(self.stderr.lines()) {
            if !line.contains(secret) {
                continue;
            }
            let allowed = command::parse(line).is_some_and(|c| {
                c.name() == "task.setsecret"
                    || (c.name() == "task.setvariable" && c.flag("issecret"))
            });
            assert!(allowed, "a secret leaked in: {line}\n{}", self.log());
        }
    }
}

/// A job: a sequence of steps sharing variables, on one agent.
#[derive(Debug)]
pub struct Job {
    /// What every step gets (system variables, public variables set so far), built by
    /// task-sdk's [`AgentEnv`], the same builder azp-local uses.
    pub env: AgentEnv,
    temp: tempfile::TempDir,
    steps: u32,
}

impl Default for Job {
    fn default() -> Self {
        Job::new()
    }
}

impl Job {
    /// A job with the variables the agent always sets, a temp dir, and `HOME` inside it (so a
    /// test never writes to the real home).
    pub fn new() -> Job {
        let temp = tempfile::tempdir().expect("a temp dir");
        let home = temp.path().join("home");
        let agent_temp = temp.path().join("agent-temp");
        let work = temp.path().join("s");
        for dir in [&home, &agent_temp, &work] {
            std::fs::create_dir_all(dir).expect("job dirs");
        }
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let mut env = AgentEnv::new();
        for (k, v) in [
            ("Agent.TempDirectory", path(&agent_temp)),
            ("Agent.OS", "Linux".to_owned()),
            ("System.DefaultWorkingDirectory", path(&work)),
            ("Build.SourcesDirectory", path(&work)),
            (
                "System.TeamProjectId",
                "6b1f3a0e-0000-4000-8000-000000000001".to_owned(),
            ),
            ("System.PlanId", format!("plan-{}", std::process::id())),
            ("System.JobId", "job-0001".to_owned()),
            ("System.HostType", "build".to_owned()),
            (
                "System.CollectionUri",
                "https://dev.azure.com/example/".to_owned(),
            ),
            // Keep retry-heavy failures quick.
            (task_sdk::RETRY_BUDGET_VARIABLE, "3".to_owned()),
        ] {
            env.variable(k, &v);
        }
        env.set("HOME", &path(&home))
            .set("PATH", &std::env::var("PATH").unwrap_or_default());
        Job {
            env,
            temp,
            steps: 0,
        }
    }

    /// The job's temp folder (holds `home/`, `agent-temp/`, `s/`).
    pub fn dir(&self) -> &Path {
        self.temp.path()
    }

    pub fn home(&self) -> PathBuf {
        self.temp.path().join("home")
    }

    /// Sets a pipeline variable (`secret` → `SECRET_<NAME>`).
    pub fn set_variable(&mut self, name: &str, value: &str, secret: bool) {
        if secret {
            self.env.secret(name, value);
        } else {
            self.env.variable(name, value);
        }
    }

    /// The process for a step: the job's environment plus `inputs` (`INPUT_<NAME>`), a new
    /// task instance id. `binary` runs directly, or as its shipped build through the launcher
    /// (launcher-testkit).
    pub fn command(&mut self, binary: &Path, inputs: &[(&str, &str)]) -> Process {
        self.steps += 1;
        let mut env = self.env.clone();
        env.variable("System.TaskInstanceId", &format!("task-{:04}", self.steps));
        for (name, value) in inputs {
            env.input(name, value);
        }
        let mut process = launcher_testkit::command(binary);
        process.env_clear().envs(env.build());
        process.current_dir(self.temp.path().join("s"));
        process
    }

    /// Starts a step with piped output (to signal it before it ends).
    pub fn spawn(&mut self, binary: &Path, inputs: &[(&str, &str)]) -> Child {
        self.command(binary, inputs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the task binary starts")
    }

    /// Collects a spawned step and applies its variables to the job.
    pub fn finish(&mut self, child: Child) -> StepRun {
        let output = child.wait_with_output().expect("the task binary ends");
        let run = StepRun::from_output(output.stdout, output.stderr, output.status.code());
        self.apply(&run);
        run
    }

    /// Runs a step to its end and applies the variables it set to later steps.
    pub fn run(&mut self, binary: &Path, inputs: &[(&str, &str)]) -> StepRun {
        let child = self.spawn(binary, inputs);
        self.finish(child)
    }

    /// What the agent does with a step's `task.setvariable` commands for later steps:
    /// job variables by name (secrets as `SECRET_*`); output variables as `<step>.<name>`,
    /// here under the step name `step<N>`.
    fn apply(&mut self, run: &StepRun) {
        for (name, (value, secret, output)) in run.variables() {
            let name = if output {
                format!("step{}.{name}", self.steps)
            } else {
                name
            };
            self.set_variable(&name, &value, secret);
        }
    }
}

/// Where `cargo test` put the binaries of this workspace: next to the test's own binary's
/// parent (`target/<profile>/`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_owned()
}

/// The path of a sibling task binary, building it first (`cargo build -p <package>`) so a
/// test in one task crate can run the others (cargo only builds a package's own binaries for
/// its tests).
pub fn sibling_binary(package: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = launcher_testkit::clear_cargo_test_env(&mut Process::new(cargo))
        .args(["build", "--quiet", "-p", package, "--bin", package])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build -p {package} failed");
    let path = bin_dir().join(format!("{package}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Runs `work` with a Databricks client for `url` and `token`, on a runtime of its own: for
/// tests that arrange the workspace directly before running a task.
pub fn with_workspace<F, Fut, T>(url: &str, token: &str, work: F) -> T
where
    F: FnOnce(databricks::Workspace) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a test runtime");
    let settings = task_sdk::http::settings_from_agent(&task_sdk::Agent::default(), "test", "0")
        .expect("default HTTP settings");
    let http = task_sdk::HttpClient::new(
        task_sdk::http::client(&settings).expect("an HTTP client"),
        Default::default(),
    );
    let ws = databricks::Workspace::new(url, databricks::Auth::Token(token.to_owned()), http)
        .expect("a workspace URL");
    runtime.block_on(work(ws))
}
