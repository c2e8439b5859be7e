//! `runJob`: runs an existing job (by id or by name) now, with job, notebook or Python
//! parameters, and waits for it as `waitexecution` does (the same code) unless `wait` is off.
//!
//! The request carries an idempotency token from the pipeline step (as `executenotebook`'s
//! submit does), so a retried request never starts a second run. Sets `Databricks.RunId` and
//! `AZDO_DATABRICKS_RUNID` (which `waitexecution` reads).

use std::collections::BTreeMap;

use databricks::{Job, JobId, RunId, RunNow};
use databricks_task_common::idempotency::run_token;
use databricks_task_common::wait::{wait_and_report, WaitOptions};
use databricks_task_common::RUN_ID_VARIABLE;
use serde_json::Value;
use task_sdk::{out, Agent, TaskError};

use crate::Cx;

/// The job variable with the run id, for later steps.
pub const RUN_ID_JOB_VARIABLE: &str = "Databricks.RunId";

/// A JSON object of text values from `input` (numbers and booleans as their JSON text);
/// empty means none.
pub fn string_map(
    agent: &Agent,
    input: &str,
    label: &str,
) -> Result<BTreeMap<String, String>, TaskError> {
    let Some(raw) = agent.input(input) else {
        return Ok(BTreeMap::new());
    };
    let bad = |why: String| TaskError::new(format!("input '{label}' ({input}) {why}"));
    let value: Value = serde_json::from_str(&raw).map_err(|e| {
        bad(format!(
            "is not valid JSON ({e}); write a JSON object such as {{\"name\": \"value\"}}"
        ))
    })?;
    let Value::Object(map) = value else {
        return Err(bad(
            "must be a JSON object such as {\"name\": \"value\"}".into()
        ));
    };
    map.into_iter()
        .map(|(key, value)| match value {
            Value::String(s) => Ok((key, s)),
            Value::Number(n) => Ok((key, n.to_string())),
            Value::Bool(b) => Ok((key, b.to_string())),
            _ => Err(bad(format!(
                "gives '{key}' a value that is not text: write it as a string, e.g. \"{key}\": \"...\""
            ))),
        })
        .collect()
}

/// A JSON array of text values from `input`; `None` when empty.
fn string_list(agent: &Agent, input: &str, label: &str) -> Result<Option<Vec<String>>, TaskError> {
    let Some(raw) = agent.input(input) else {
        return Ok(None);
    };
    let bad = || {
        TaskError::new(format!(
            "input '{label}' ({input}) must be a JSON array of strings such as [\"--date\", \"2024-01-01\"]"
        ))
    };
    let value: Value = serde_json::from_str(&raw).map_err(|_| bad())?;
    let Value::Array(items) = value else {
        return Err(bad());
    };
    items
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(bad()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The job the `job` input names: a number is a job id, anything else a name that exactly
/// one job must have.
pub async fn find_job(cx: &Cx<'_>, given: &str) -> Result<Job, TaskError> {
    if let Ok(id) = given.parse::<JobId>() {
        return cx.ws.get_job(id).await.map_err(|e| {
            if e.is_not_found() {
                TaskError::new(format!(
                    "input 'Job' (job): job {id} does not exist in the workspace {}: check the job id (the number in the job page's URL, …/jobs/<id>)",
                    cx.conn.host
                ))
            } else {
                cx.explain(e)
            }
        });
    }
    let mut named = cx
        .ws
        .list_jobs(Some(given))
        .await
        .map_err(|e| cx.explain(e))?;
    // The API's filter ignores case; a name spelled exactly as given wins over the others.
    if named.len() > 1 {
        let exact: Vec<Job> = named
            .iter()
            .filter(|j| j.name() == given)
            .cloned()
            .collect();
        if exact.len() == 1 {
            named = exact;
        }
    }
    match named.as_slice() {
        [one] => Ok(one.clone()),
        [] => {
            let all = cx.ws.list_jobs(None).await.map_err(|e| cx.explain(e))?;
            let mut names: Vec<String> = all
                .iter()
                .map(|j| format!("'{}' ({})", j.name(), j.job_id))
                .collect();
            names.sort();
            let listed = match names.len() {
                0 => "the workspace has no jobs".to_owned(),
                n if n > 20 => format!(
                    "its jobs include {} and {} more",
                    names[..20].join(", "),
                    n - 20
                ),
                _ => format!("its jobs: {}", names.join(", ")),
            };
            Err(TaskError::new(format!(
                "input 'Job' (job): no job of the workspace {} is named '{given}' ({listed})",
                cx.conn.host
            )))
        }
        many => {
            let ids: Vec<String> = many
                .iter()
                .map(|j| format!("{} ('{}')", j.job_id, j.name()))
                .collect();
            Err(TaskError::new(format!(
                "input 'Job' (job): {} jobs are named '{given}': {}. Give the job id instead, or rename the jobs so that names are unique",
                many.len(),
                ids.join(", ")
            )))
        }
    }
}

/// The command's body.
pub async fn run(cx: &Cx<'_>) -> Result<(), TaskError> {
    let agent = cx.agent;
    let given = agent.required_input("job")?;
    let job_parameters = string_map(agent, "jobParameters", "Job parameters")?;
    let notebook_params = string_map(agent, "notebookParams", "Notebook parameters")?;
    let python_params = string_list(agent, "pythonParams", "Python parameters")?;
    if !job_parameters.is_empty() && (!notebook_params.is_empty() || python_params.is_some()) {
        return Err(TaskError::new(
            "'Job parameters' (jobParameters) cannot be combined with 'Notebook parameters' (notebookParams) or 'Python parameters' (pythonParams): a job with job parameters passes them to its tasks; use one or the other",
        ));
    }
    let wait = agent
        .bool_input("wait", true)
        .then(|| WaitOptions::from_inputs(agent))
        .transpose()?;

    let job = find_job(cx, &given).await?;
    let fingerprint = format!(
        "{}\n{}\n{}\n{}",
        job.job_id,
        serde_json::to_string(&job_parameters).unwrap_or_default(),
        serde_json::to_string(&notebook_params).unwrap_or_default(),
        serde_json::to_string(&python_params).unwrap_or_default(),
    );
    let request = RunNow {
        job_id: job.job_id,
        job_parameters,
        notebook_params,
        python_params,
        idempotency_token: run_token(agent, &fingerprint),
    };
    let run_id: RunId = cx.ws.run_now(&request).await.map_err(|e| {
        TaskError::new(format!(
            "starting a run of job {} ('{}') failed: {}",
            job.job_id,
            job.name(),
            cx.explain(e).message()
        ))
    })?;
    out::set_variable(RUN_ID_JOB_VARIABLE, &run_id.to_string(), false);
    out::set_variable(RUN_ID_VARIABLE, &run_id.to_string(), false);
    out::set_output("runId", &run_id.to_string(), false);
    let page = match cx.ws.get_run(run_id).await {
        Ok(run) => run.run_page_url,
        Err(e) => {
            out::warning(&format!(
                "started run {run_id}, but could not read its page address: {e}"
            ));
            None
        }
    };
    let what = format!("job {} ('{}')", job.job_id, job.name());
    match &page {
        Some(url) => {
            out::info(&format!("Started Databricks run {run_id} of {what}: {url}"));
            out::set_output("runPageUrl", url, false);
        }
        None => out::info(&format!("Started Databricks run {run_id} of {what}")),
    }
    match wait {
        Some(opts) => wait_and_report(&cx.ws, &cx.conn, run_id, opts).await,
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_json_objects_and_arrays_of_text() {
        let agent = Agent::from_vars([
            ("INPUT_JOBPARAMETERS", r#"{"date": "2024-01-01", "n": 5}"#),
            ("INPUT_PYTHONPARAMS", r#"["--x", 1]"#),
            ("INPUT_NOTEBOOKPARAMS", r#"{"a": null}"#),
        ]);
        let map = string_map(&agent, "jobParameters", "Job parameters").unwrap();
        assert_eq!(map["n"], "5");
        assert_eq!(
            string_list(&agent, "pythonParams", "Python parameters").unwrap(),
            Some(vec!["--x".to_owned(), "1".to_owned()])
        );
        let e = string_map(&agent, "notebookParams", "Notebook parameters").unwrap_err();
        assert!(e.message().contains("(notebookParams) gives 'a'"), "{e:?}");
        let agent = Agent::from_vars([("INPUT_PYTHONPARAMS", r#"{"a": "b"}"#)]);
        assert!(string_list(&agent, "pythonParams", "Python parameters").is_err());
    }
}
