//! The `databricks` task: the Databricks work around a deployment, one task with a `command`
//! input (like `DotNetCoreCLI@2`), because every task folder of the .vsix carries its own
//! binary for five platforms. Each command is a module of [`commands`]; [`run`] picks one by
//! the `command` input and gives it a [`Cx`]: the inputs, and the workspace connection
//! resolved exactly as the other Databricks tasks resolve it (after `configuredatabricks`,
//! or `url`/`token`, or an AzureRM service connection with Entra ID).
//!
//! The old extension's `startcluster` task is [`run_start_cluster`]: the `startCluster`
//! command with the old input name (`clusterid`).
//!
//! Adding a command: a module in `commands/`, its name in [`COMMANDS`], one arm in [`run`],
//! its inputs (with a `visibleRule` on `command`) in task-manifests/databricks/task.json.

pub mod commands;

use databricks::Workspace;
use databricks_task_common::{explain, Connection};
use task_sdk::{Agent, HttpClient, TaskContext, TaskError};

/// The commands, as the `command` input names them (matched ignoring case).
pub const COMMANDS: &[&str] = &[
    "runJob",
    "deployJobs",
    "startCluster",
    "waitCluster",
    "restartCluster",
    "putSecrets",
    "uploadFiles",
    "installLibraries",
    "updateGitFolder",
];

/// What a command works with: the agent (inputs, variables), the one HTTP client, the
/// resolved connection and a client for its workspace.
pub struct Cx<'a> {
    pub agent: &'a Agent,
    pub http: HttpClient,
    pub conn: Connection,
    pub ws: Workspace,
}

impl<'a> Cx<'a> {
    /// Resolves the connection (task inputs, else what `configuredatabricks` set).
    pub fn connect(ctx: &'a TaskContext) -> Result<Cx<'a>, TaskError> {
        let http = ctx.http_client()?;
        let conn = Connection::resolve(&ctx.agent, &http)?;
        let ws = conn.workspace(http.clone())?;
        Ok(Cx {
            agent: &ctx.agent,
            http,
            conn,
            ws,
        })
    }

    /// A client error as the task reports it (where the credential came from, what to do).
    pub fn explain(&self, error: databricks::Error) -> TaskError {
        explain(&self.conn, error)
    }
}

/// The command the `command` input names, as spelled in [`COMMANDS`].
pub fn command(agent: &Agent) -> Result<&'static str, TaskError> {
    let given = agent.required_input("command")?;
    COMMANDS
        .iter()
        .find(|c| c.eq_ignore_ascii_case(&given))
        .copied()
        .ok_or_else(|| unknown_command(&given))
}

fn unknown_command(given: &str) -> TaskError {
    TaskError::new(format!(
        "input 'Command' (command) is '{given}', which is not a command of this task: use one of {}",
        COMMANDS.join(", ")
    ))
}

/// The databricks task's body: runs the command the `command` input names.
pub async fn run(ctx: TaskContext) -> Result<(), TaskError> {
    // An unknown command is reported before anything else (even without a connection).
    let name = command(&ctx.agent)?;
    let cx = Cx::connect(&ctx)?;
    match name {
        "runJob" => commands::run_job::run(&cx).await,
        "deployJobs" => commands::deploy_jobs::run(&cx).await,
        "startCluster" => commands::clusters::start(&cx).await,
        "waitCluster" => commands::clusters::wait(&cx).await,
        "restartCluster" => commands::clusters::restart(&cx).await,
        "putSecrets" => commands::secrets::run(&cx).await,
        "uploadFiles" => commands::upload::run(&cx).await,
        "installLibraries" => commands::libraries::run(&cx).await,
        "updateGitFolder" => commands::git_folder::run(&cx).await,
        other => Err(unknown_command(other)),
    }
}

/// The startcluster task's body: `startCluster` for the cluster in the old input `clusterid`.
pub async fn run_start_cluster(ctx: TaskContext) -> Result<(), TaskError> {
    let cluster = ctx.agent.required_input("clusterid")?;
    let cx = Cx::connect(&ctx)?;
    commands::clusters::start_named(&cx, &cluster, "clusterid").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_match_ignoring_case_and_unknown_ones_are_listed() {
        let agent = Agent::from_vars([("INPUT_COMMAND", "RUNJOB")]);
        assert_eq!(command(&agent).unwrap(), "runJob");
        let agent = Agent::from_vars([("INPUT_COMMAND", "launchRocket")]);
        let e = command(&agent).unwrap_err().message().to_owned();
        assert!(e.contains("'launchRocket'"), "{e}");
        for c in COMMANDS {
            assert!(e.contains(c), "{e}");
        }
    }
}
