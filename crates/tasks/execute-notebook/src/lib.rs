//! The `executenotebook` task: checks that the notebook exists, starts a one-time run of it
//! (`runs/submit`: no job is left behind) on an existing cluster, a new cluster or serverless
//! compute, with an idempotency token so that a retried request never starts a second run,
//! and hands the run id to `waitexecution` (`AZDO_DATABRICKS_RUNID`). Optionally waits for the
//! run itself, with the same code as `waitexecution`.
//!
//! It does not create jobs, install libraries or start clusters by itself (Databricks starts
//! a terminated cluster for the run).

pub mod params;

use databricks::{Compute, ObjectType, RunId, SubmitRun};
use databricks_task_common::idempotency::run_token;
use databricks_task_common::wait::{wait_and_report, WaitOptions};
use databricks_task_common::{explain, Connection};
use task_sdk::{out, Agent, TaskContext, TaskError};

pub use databricks_task_common::RUN_ID_VARIABLE;

/// Where the run goes, from the inputs: exactly one of a cluster id, a new-cluster spec, or
/// serverless.
pub fn compute(agent: &Agent) -> Result<Compute, TaskError> {
    let cluster = agent.input("existingClusterId");
    let spec = agent.input("newClusterSpec");
    let serverless = agent.bool_input("serverless", false);
    match (cluster, spec, serverless) {
        (Some(id), None, false) => Ok(Compute::ExistingCluster(id)),
        (None, Some(spec), false) => {
            let value: serde_json::Value = serde_json::from_str(&spec).map_err(|e| {
                TaskError::new(format!(
                    "input 'New cluster spec (JSON)' (newClusterSpec) is not valid JSON: {e}"
                ))
            })?;
            if !value.is_object() {
                return Err(TaskError::new(
                    "input 'New cluster spec (JSON)' (newClusterSpec) must be a JSON object with spark_version, node_type_id, num_workers, …",
                ));
            }
            Ok(Compute::NewCluster(value))
        }
        (None, None, true) => Ok(Compute::Serverless),
        (None, None, false) => Err(TaskError::new(
            "no compute for the run: set 'Cluster ID' (existingClusterId), or a 'New cluster spec (JSON)' (newClusterSpec), or turn on 'Run on serverless compute' (serverless)",
        )),
        _ => Err(TaskError::new(
            "more than one compute is set: use only one of 'Cluster ID' (existingClusterId), 'New cluster spec (JSON)' (newClusterSpec) and 'Run on serverless compute' (serverless)",
        )),
    }
}

fn default_run_name(agent: &Agent, notebook: &str) -> String {
    let name = notebook.rsplit('/').next().unwrap_or(notebook);
    match (
        agent.variable("Build.DefinitionName"),
        agent.variable("Build.BuildNumber"),
    ) {
        (Some(def), Some(number)) => format!("{def} {number}: {name}"),
        _ => format!("Azure Pipelines: {name}"),
    }
}

/// The task's body.
pub async fn run(ctx: TaskContext) -> Result<(), TaskError> {
    let agent = &ctx.agent;
    let notebook = agent.required_input("notebookPath")?;
    if !notebook.starts_with('/') {
        return Err(TaskError::new(format!(
            "input 'Notebook path' (notebookPath) must be an absolute workspace path such as /Shared/project/notebook, got '{notebook}'"
        )));
    }
    let notebook = notebook.trim_end_matches('/').to_owned();
    let parameters = params::parse(&agent.input("executionParams").unwrap_or_default())?;
    let compute = compute(agent)?;
    let wait = agent
        .bool_input("waitForCompletion", false)
        .then(|| WaitOptions::from_inputs(agent))
        .transpose()?;

    let http = ctx.http_client()?;
    let conn = Connection::resolve(agent, &http)?;
    let ws = conn.workspace(http)?;

    match ws.get_status(&notebook).await.map_err(|e| explain(&conn, e))? {
        None => {
            return Err(TaskError::new(format!(
                "notebook {notebook} not found in the workspace {}: check 'Notebook path' (absolute, without extension such as .py) and that it was deployed before this step",
                conn.host
            )))
        }
        Some(info) if info.object_type != ObjectType::Notebook => {
            return Err(TaskError::new(format!(
                "{notebook} is a {} in the workspace {}, not a notebook: check 'Notebook path'",
                format!("{:?}", info.object_type).to_ascii_lowercase(),
                conn.host
            )))
        }
        Some(_) => {}
    }

    let run_name = agent
        .input("runName")
        .unwrap_or_else(|| default_run_name(agent, &notebook));
    // What the step submits is part of the token: the same step submitting something else
    // (a re-run with other inputs) is a different run.
    let fingerprint = format!(
        "{notebook}\n{}\n{compute:?}",
        serde_json::to_string(&parameters).unwrap_or_default()
    );
    let request = SubmitRun {
        run_name,
        notebook_path: notebook.clone(),
        base_parameters: parameters,
        compute,
        timeout_seconds: None,
        idempotency_token: run_token(agent, &fingerprint),
    };
    let run_id: RunId = ws.submit_run(&request).await.map_err(|e| {
        let hint = match &request.compute {
            Compute::ExistingCluster(_) if e.is_not_found() => {
                ". Check 'Cluster ID' (existingClusterId): it must be the ID of a cluster of this workspace, as in the cluster page's URL (…/clusters/<cluster id>)"
            }
            _ => "",
        };
        let e = explain(&conn, e).context_for(&notebook);
        TaskError::new(format!("{}{hint}", e.message()))
    })?;
    out::set_variable(RUN_ID_VARIABLE, &run_id.to_string(), false);
    out::set_output("runId", &run_id.to_string(), false);
    let page = match ws.get_run(run_id).await {
        Ok(run) => run.run_page_url,
        Err(e) => {
            out::warning(&format!(
                "started run {run_id}, but could not read its page address: {e}"
            ));
            None
        }
    };
    match &page {
        Some(url) => {
            out::info(&format!(
                "Started Databricks run {run_id} of {notebook}: {url}"
            ));
            out::set_output("runPageUrl", url, false);
        }
        None => out::info(&format!("Started Databricks run {run_id} of {notebook}")),
    }
    match wait {
        Some(opts) => wait_and_report(&ws, &conn, run_id, opts).await,
        None => Ok(()),
    }
}

trait SubmitContext {
    fn context_for(self, notebook: &str) -> TaskError;
}

impl SubmitContext for TaskError {
    fn context_for(self, notebook: &str) -> TaskError {
        TaskError::new(format!(
            "starting a run of {notebook} failed: {}",
            self.message()
        ))
    }
}
