//! The `waitexecution` task: waits for the run the previous `executenotebook` started
//! (`AZDO_DATABRICKS_RUNID`, or the `runId` input) and reports its end — the exit value on
//! success; the state message, error and trace on failure. Cancelling the pipeline cancels
//! the run. The waiting itself is `databricks_task_common::wait`, shared with
//! `executenotebook`.

use databricks::RunId;
use databricks_task_common::wait::{wait_and_report, WaitOptions};
use databricks_task_common::Connection;
use task_sdk::{out, Agent, TaskContext, TaskError};

pub use databricks_task_common::RUN_ID_VARIABLE;

/// The run to wait for: the input, else the variable.
pub fn run_id(agent: &Agent) -> Result<RunId, TaskError> {
    let (raw, from) = match agent.input("runId") {
        Some(v) => (v, "input 'Run ID' (runId)"),
        None => match agent.variable(RUN_ID_VARIABLE).filter(|v| !v.trim().is_empty()) {
            Some(v) => (v, "the job variable AZDO_DATABRICKS_RUNID"),
            None => {
                return Err(TaskError::new(
                    "no run to wait for: add Execute Databricks notebook (executenotebook) before this step in the same job (it sets AZDO_DATABRICKS_RUNID), or give 'Run ID' (runId)",
                ))
            }
        },
    };
    raw.parse::<RunId>().map_err(|_| {
        TaskError::new(format!(
            "{from} must be a Databricks run id (a number), got '{raw}'"
        ))
    })
}

/// The task's body.
pub async fn run(ctx: TaskContext) -> Result<(), TaskError> {
    let agent = &ctx.agent;
    let run_id = run_id(agent)?;
    let opts = WaitOptions::from_inputs(agent)?;
    let http = ctx.http_client()?;
    let conn = Connection::resolve(agent, &http)?;
    let ws = conn.workspace(http)?;
    out::info(&format!(
        "Waiting for Databricks run {run_id} on {}",
        conn.host
    ));
    wait_and_report(&ws, &conn, run_id, opts).await
}
