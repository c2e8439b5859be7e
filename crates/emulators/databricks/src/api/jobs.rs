//! Jobs API handlers (2.0, 2.1 and 2.2 paths).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::{id_param, json_body, App, Query};
use crate::error::{ApiError, ApiResult};
use crate::jobs::{self, Submission, TaskKind, TaskSpec};
use crate::Shared;

/// Every `existing_cluster_id` must name a cluster of this workspace.
fn check_clusters(shared: &Shared, tasks: &[TaskSpec]) -> ApiResult<()> {
    let clusters = shared
        .clusters
        .lock()
        .map_err(|_| ApiError::invalid("clusters lock poisoned"))?;
    for task in tasks {
        if let Some(id) = &task.existing_cluster_id {
            if !clusters.exists(id) {
                return Err(crate::clusters::unknown(id));
            }
        }
    }
    Ok(())
}

fn spawn_driver(shared: &Arc<Shared>, run_id: u64) {
    tokio::spawn(jobs::drive(shared.clone(), run_id));
}

/// `POST runs/submit`: a one-time run; an idempotency token returns the run it started.
pub async fn submit(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let submission = jobs::parse_submission(&json_body(&body)?)?;
    check_clusters(&shared, &submission.tasks)?;
    let now = crate::now_ms();
    let (run_id, created) = shared.with_jobs(|jobs| {
        if let Some(token) = &submission.idempotency_token {
            if let Some(existing) = jobs.idempotent_run("submit", token) {
                return (existing, false);
            }
        }
        (jobs.create_run(submission, None, None, now).0, true)
    });
    if created {
        spawn_driver(&shared, run_id);
    }
    Ok(Json(json!({ "run_id": run_id })))
}

pub async fn get_run(State(shared): App, query: Query) -> ApiResult<Json<Value>> {
    let run_id = id_param(None, query.get("run_id"), "run_id")?;
    shared
        .with_jobs(|jobs| jobs.get_run(run_id, &shared.base_url, &shared.opts.user_name))
        .map(Json)
}

pub async fn get_output(State(shared): App, query: Query) -> ApiResult<Json<Value>> {
    let run_id = id_param(None, query.get("run_id"), "run_id")?;
    shared
        .with_jobs(|jobs| jobs.get_output(run_id, &shared.base_url, &shared.opts.user_name))
        .map(Json)
}

pub async fn cancel(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let run_id = id_param(body.get("run_id"), None, "run_id")?;
    shared.with_jobs(|jobs| jobs.cancel(run_id))?;
    Ok(Json(json!({})))
}

pub async fn list_runs(State(shared): App, query: Query) -> ApiResult<Json<Value>> {
    let job_id = match query.get("job_id") {
        Some(_) => Some(id_param(None, query.get("job_id"), "job_id")?),
        None => None,
    };
    let flag = |k: &str| query.get(k).is_some_and(|v| v == "true");
    let limit = query
        .get("limit")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(20)
        .min(25);
    let offset = query
        .get("offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let filter = jobs::RunFilter {
        job_id,
        active_only: flag("active_only"),
        completed_only: flag("completed_only"),
        limit,
        offset,
    };
    let value =
        shared.with_jobs(|jobs| jobs.list_runs(&filter, &shared.base_url, &shared.opts.user_name));
    Ok(Json(value))
}

/// `POST jobs/create`: stores the settings after validating the tasks.
pub async fn create(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let mut settings = json_body(&body)?;
    let (tasks, _) = jobs::parse_tasks(&settings)?;
    check_clusters(&shared, &tasks)?;
    if let Some(obj) = settings.as_object_mut() {
        obj.entry("name").or_insert(json!("Untitled"));
        obj.insert("format".into(), json!("MULTI_TASK"));
    }
    let job_id = shared.with_jobs(|jobs| jobs.create_job(settings, crate::now_ms()));
    Ok(Json(json!({ "job_id": job_id })))
}

pub async fn get_job(State(shared): App, query: Query) -> ApiResult<Json<Value>> {
    let job_id = id_param(None, query.get("job_id"), "job_id")?;
    shared
        .with_jobs(|jobs| jobs.get_job(job_id, &shared.opts.user_name))
        .map(Json)
}

/// `GET jobs/list`: `name` (exact, ignoring case), `limit` 1–100 (default 20), `offset` or
/// `page_token`, `expand_tasks`.
pub async fn list_jobs(State(shared): App, query: Query) -> ApiResult<Json<Value>> {
    let limit = match query.get("limit") {
        None => 20,
        Some(v) => match v.parse::<usize>() {
            Ok(n @ 1..=100) => n,
            _ => {
                return Err(ApiError::invalid(format!(
                    "The limit must be between 1 and 100, got {v}."
                )))
            }
        },
    };
    let offset = match (query.get("page_token"), query.get("offset")) {
        (Some(token), _) => jobs::page_offset(token)
            .ok_or_else(|| ApiError::invalid(format!("Invalid page token: {token}")))?,
        (None, Some(o)) => o
            .parse()
            .map_err(|_| ApiError::invalid(format!("Invalid value for offset: {o}")))?,
        (None, None) => 0,
    };
    let filter = jobs::JobQuery {
        name: query.get("name").filter(|n| !n.is_empty()).cloned(),
        offset,
        limit,
        expand_tasks: query.get("expand_tasks").is_some_and(|v| v == "true"),
    };
    Ok(Json(shared.with_jobs(|jobs| {
        jobs.list_jobs(&shared.opts.user_name, &filter)
    })))
}

/// `POST jobs/reset {job_id, new_settings}`: every setting is replaced, validated as by create.
pub async fn reset_job(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let job_id = id_param(body.get("job_id"), None, "job_id")?;
    let mut settings = match body.get("new_settings") {
        Some(v @ Value::Object(_)) => v.clone(),
        None | Some(Value::Null) => {
            return Err(ApiError::invalid("Missing required field: new_settings"))
        }
        Some(_) => {
            return Err(ApiError::malformed(
                "Could not parse request object: new_settings must be an object",
            ))
        }
    };
    shared.with_jobs(|jobs| jobs.job_settings(job_id).map(|_| ()))?;
    let (tasks, _) = jobs::parse_tasks(&settings)?;
    check_clusters(&shared, &tasks)?;
    if let Some(obj) = settings.as_object_mut() {
        obj.entry("name").or_insert(json!("Untitled"));
        obj.insert("format".into(), json!("MULTI_TASK"));
    }
    shared.with_jobs(|jobs| jobs.reset_job(job_id, settings))?;
    Ok(Json(json!({})))
}

pub async fn delete_job(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let job_id = id_param(body.get("job_id"), None, "job_id")?;
    shared.with_jobs(|jobs| jobs.delete_job(job_id))?;
    Ok(Json(json!({})))
}

/// An optional `{name: string}` object of a request body (`notebook_params`,
/// `job_parameters`), refused as the service refuses a value that is not a string.
fn string_map(
    body: &Value,
    field: &str,
) -> ApiResult<Option<std::collections::BTreeMap<String, String>>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let s = v.as_str().ok_or_else(|| {
                    ApiError::malformed(format!(
                        "Could not parse request object: Expected a string value for {field}.{k}"
                    ))
                })?;
                Ok((k.clone(), s.to_string()))
            })
            .collect::<ApiResult<_>>()
            .map(Some),
        Some(_) => Err(ApiError::malformed(format!(
            "Could not parse request object: {field} must be an object"
        ))),
    }
}

/// `POST jobs/run-now`: `job_parameters` override the job's parameter defaults and reach every
/// notebook task as widgets; `notebook_params` override each notebook task's
/// `base_parameters`; `python_params` replace Python tasks' arguments.
pub async fn run_now(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let job_id = id_param(body.get("job_id"), None, "job_id")?;
    let notebook_params = string_map(&body, "notebook_params")?;
    let python_params: Option<Vec<String>> = body
        .get("python_params")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        });
    let job_parameters = string_map(&body, "job_parameters")?;
    let token = body
        .get("idempotency_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    if token.as_ref().is_some_and(|t| t.len() > 64) {
        return Err(ApiError::invalid(
            "The idempotency token must be at most 64 characters long.",
        ));
    }
    let now = crate::now_ms();
    let outcome = shared.with_jobs(|jobs| -> ApiResult<(u64, u64, bool)> {
        let settings = jobs.job_settings(job_id)?.clone();
        if let Some(token) = &token {
            if let Some(existing) = jobs.idempotent_run("run-now", token) {
                let number = jobs.run(existing).map_or(0, |r| r.number_in_job);
                return Ok((existing, number, false));
            }
        }
        let (mut tasks, single_task) = jobs::parse_tasks(&settings)?;
        // Job parameters: the job's defaults, overridden by the request, pushed down to
        // every task (notebooks read them as widgets).
        let mut effective = std::collections::BTreeMap::new();
        let mut defaults = std::collections::BTreeMap::new();
        for p in settings
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(name), Some(default)) = (
                p.get("name").and_then(Value::as_str),
                p.get("default").and_then(Value::as_str),
            ) {
                effective.insert(name.to_string(), default.to_string());
                defaults.insert(name.to_string(), default.to_string());
            }
        }
        if let Some(given) = &job_parameters {
            effective.extend(given.clone());
        }
        // As runs/get shows them: each parameter with its default and this run's value.
        let run_parameters: Vec<Value> = effective
            .iter()
            .map(|(name, value)| {
                let mut p = json!({ "name": name, "value": value });
                if let Some(default) = defaults.get(name) {
                    p["default"] = json!(default);
                }
                p
            })
            .collect();
        for task in &mut tasks {
            if let TaskKind::Notebook { .. } = task.kind {
                task.params.extend(effective.clone());
            }
            match &mut task.kind {
                TaskKind::Notebook { .. } => {
                    if let Some(params) = &notebook_params {
                        task.params.extend(params.clone());
                    }
                }
                TaskKind::PythonFile { args, .. } => {
                    if let Some(params) = &python_params {
                        *args = params.clone();
                    }
                }
                TaskKind::Other => {}
            }
        }
        let mut overriding = serde_json::Map::new();
        if let Some(p) = &notebook_params {
            overriding.insert("notebook_params".into(), json!(p));
        }
        if let Some(p) = &python_params {
            overriding.insert("python_params".into(), json!(p));
        }
        let submission = Submission {
            run_name: settings
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("Untitled")
                .to_string(),
            tasks,
            timeout_seconds: settings
                .get("timeout_seconds")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            idempotency_token: token.clone(),
            single_task,
            job_parameters: run_parameters,
        };
        let overriding = (!overriding.is_empty()).then_some(Value::Object(overriding));
        let (run_id, number) = jobs.create_run(submission, Some(job_id), overriding, now);
        Ok((run_id, number, true))
    })?;
    let (run_id, number_in_job, created) = outcome;
    if created {
        spawn_driver(&shared, run_id);
    }
    Ok(Json(
        json!({ "run_id": run_id, "number_in_job": number_in_job }),
    ))
}
