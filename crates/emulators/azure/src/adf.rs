//! Data Factory pipeline runs (api-version 2018-06-01): create a run, poll it through
//! `Queued` → `InProgress` → `Succeeded`/`Failed`, list its activity runs, cancel it.
//!
//! Pipelines are the `Microsoft.DataFactory/factories/pipelines` resources in the emulator's
//! state, whether a template deployment, a plain PUT, or [`crate::SeedFactory`] put them there.
//! Runs advance when polled (`GET …/pipelineruns/{runId}`), never by wall-clock time.

use axum::http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::{
    adf_run::{self, Outcome, Parent, ProgressRef},
    arm::{resource_not_found, rg_not_found},
    clock,
    http::{empty, json as json_reply, Reply, Req},
    Shared,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Queued,
    InProgress,
    Succeeded,
    Failed,
    Canceling,
    Cancelled,
}

impl RunStatus {
    fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "Queued",
            RunStatus::InProgress => "InProgress",
            RunStatus::Succeeded => "Succeeded",
            RunStatus::Failed => "Failed",
            RunStatus::Canceling => "Canceling",
            RunStatus::Cancelled => "Cancelled",
        }
    }

    fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

#[derive(Debug, Clone)]
pub struct PipelineRun {
    pub run_id: String,
    pub run_group_id: String,
    pub factory_id: String,
    pub pipeline_name: String,
    pub parameters: Map<String, Value>,
    /// What the run's execution ([`crate::adf_run`]) has done so far.
    pub progress: ProgressRef,
    /// `invokedBy` of the run (a manual run, or the parent's `ExecutePipeline`).
    pub invoked_by: Value,
    pub polls: u32,
    pub queued_polls: u32,
    pub in_progress_polls: u32,
    pub status: RunStatus,
    /// Polls answered `Canceling` so far; the next one after the first answers `Cancelled`.
    pub cancel_polls: u32,
    pub start_ms: u64,
    pub end_ms: Option<u64>,
    pub last_updated_ms: u64,
}

impl PipelineRun {
    fn message(&self) -> String {
        match self.status {
            RunStatus::Failed => match &self
                .progress
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .outcome
            {
                Some(Outcome::Failed(message)) => message.clone(),
                _ => String::new(),
            },
            RunStatus::Cancelled | RunStatus::Canceling => "User cancelled the run".to_string(),
            _ => String::new(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": format!("{}/pipelineruns/{}", self.factory_id, self.run_id),
            "runId": self.run_id,
            "debugRunId": null,
            "runGroupId": self.run_group_id,
            "isLatest": true,
            "pipelineName": self.pipeline_name,
            "parameters": self.parameters,
            "runDimensions": {},
            "invokedBy": self.invoked_by,
            "runStart": clock::iso(self.start_ms),
            "runEnd": self.end_ms.map(clock::iso),
            "durationInMs": self.end_ms.map(|e| e.saturating_sub(self.start_ms)),
            "status": self.status.as_str(),
            "message": self.message(),
            "lastUpdated": clock::iso(self.last_updated_ms),
            "annotations": [],
            "pipelineReturnValue": {},
        })
    }

    /// One poll: `Queued` for `queued_polls` polls, `InProgress` for at least
    /// `in_progress_polls` and until the execution ended, then its outcome.
    fn advance(&mut self) {
        if self.status.is_terminal() {
            return;
        }
        let now = clock::now_ms();
        self.polls += 1;
        self.last_updated_ms = now;
        let outcome = self
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .outcome
            .clone();
        self.status = if self.status == RunStatus::Canceling {
            self.cancel_polls += 1;
            if self.cancel_polls == 1 {
                RunStatus::Canceling
            } else {
                self.end_ms = Some(now);
                RunStatus::Cancelled
            }
        } else if self.polls <= self.queued_polls {
            RunStatus::Queued
        } else if self.polls <= self.queued_polls + self.in_progress_polls {
            RunStatus::InProgress
        } else {
            match outcome {
                None => RunStatus::InProgress,
                Some(outcome) => {
                    self.end_ms = Some(now);
                    match outcome {
                        Outcome::Succeeded => RunStatus::Succeeded,
                        Outcome::Failed(_) => RunStatus::Failed,
                        Outcome::Cancelled => RunStatus::Cancelled,
                    }
                }
            }
        };
    }

    /// The activity runs so far; none while the run is still `Queued`.
    fn activity_runs(&self) -> Vec<Value> {
        if self.status == RunStatus::Queued {
            return Vec::new();
        }
        let mut runs = self
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .activity_runs
            .clone();
        // A cancelled run's unfinished activities were cancelled with it.
        if self.status == RunStatus::Cancelled {
            for record in runs.iter_mut().filter(|r| r["status"] == "InProgress") {
                record["status"] = json!("Cancelled");
            }
        }
        runs
    }
}

/// Read-only properties Data Factory adds to a factory; what-if does not compare them.
pub const FACTORY_READ_ONLY: [&str; 3] = ["provisioningState", "createTime", "version"];

fn quoted_etag() -> String {
    format!("\"{}\"", clock::guid())
}

/// A Data Factory resource (a factory or one of its objects) as Data Factory stores and
/// answers it, from what a client or a template wrote: its own name (`pipeline`, not
/// `factory/pipeline`), a fresh etag on every write, and for a factory `provisioningState`,
/// `createTime` (kept from `existing`) and `version`.
pub fn stored(id: &str, resource_type: &str, body: &Value, existing: Option<&Value>) -> Value {
    let name = id.rsplit('/').next().unwrap_or_default();
    let mut value = json!({"id": id, "name": name, "type": resource_type});
    let mut properties = body.get("properties").cloned().unwrap_or_else(|| json!({}));
    if resource_type.eq_ignore_ascii_case("Microsoft.DataFactory/factories") {
        for k in ["location", "tags", "identity"] {
            if let Some(v) = body.get(k).filter(|v| !v.is_null()) {
                value[k] = v.clone();
            }
        }
        let created = existing
            .and_then(|e| e["properties"]["createTime"].as_str())
            .map_or_else(|| clock::iso(clock::now_ms()), str::to_owned);
        if let Some(p) = properties.as_object_mut() {
            p.insert("provisioningState".into(), json!("Succeeded"));
            p.insert("createTime".into(), json!(created));
            p.insert("version".into(), json!("2018-06-01"));
        }
        value["properties"] = properties;
        value["eTag"] = json!(quoted_etag());
    } else {
        value["properties"] = properties;
        value["etag"] = json!(quoted_etag());
    }
    value
}

/// Whether a resource type is Data Factory's.
pub fn is_adf_type(resource_type: &str) -> bool {
    resource_type
        .to_ascii_lowercase()
        .starts_with("microsoft.datafactory/factories")
}

fn seg_is(s: &str, lit: &str) -> bool {
    s.eq_ignore_ascii_case(lit)
}

/// Whether the path below a factory is one of the run calls (and not a plain resource).
pub fn is_factory_action(tail: &[&str]) -> bool {
    match tail {
        [p, _, action] if seg_is(p, "pipelines") => seg_is(action, "createRun"),
        [runs, _] => seg_is(runs, "pipelineruns"),
        [runs, _, action] if seg_is(runs, "pipelineruns") => {
            seg_is(action, "queryActivityruns") || seg_is(action, "cancel")
        }
        [query] => seg_is(query, "queryPipelineRuns"),
        [t, _, action] if seg_is(t, "triggers") => {
            seg_is(action, "start") || seg_is(action, "stop")
        }
        _ => false,
    }
}

/// The collection (lower-case path segment under a factory) that a reference's `type` names.
fn reference_collection(reference_type: &str) -> Option<&'static str> {
    Some(match reference_type {
        "LinkedServiceReference" => "linkedservices",
        "DatasetReference" => "datasets",
        "DataFlowReference" => "dataflows",
        "PipelineReference" => "pipelines",
        "IntegrationRuntimeReference" => "integrationruntimes",
        "CredentialReference" => "credentials",
        "ManagedVirtualNetworkReference" => "managedvirtualnetworks",
        _ => return None,
    })
}

/// Every `{"referenceName": …, "type": "…Reference"}` in `value`, at any depth: (collection,
/// name).
pub fn references(value: &Value, out: &mut Vec<(&'static str, String)>) {
    match value {
        Value::Object(map) => {
            if let (Some(Value::String(name)), Some(collection)) = (
                map.get("referenceName"),
                map.get("type")
                    .and_then(Value::as_str)
                    .and_then(reference_collection),
            ) {
                out.push((collection, name.clone()));
            }
            map.values().for_each(|v| references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// Data Factory's checks before it stores a factory object (`factory_key`: the factory's
/// lower-cased id; `collection`: the object's lower-cased type segment): a started trigger
/// cannot be changed, and every object it references must exist.
pub fn check_object_write(
    resources: &std::collections::BTreeMap<String, Value>,
    factory_key: &str,
    collection: &str,
    key: &str,
    body: Option<&Value>,
) -> Result<(), Reply> {
    if collection == "triggers"
        && resources
            .get(key)
            .is_some_and(|t| t["properties"]["runtimeState"] == "Started")
    {
        return Err(trigger_enabled());
    }
    let mut refs = Vec::new();
    if let Some(properties) = body.and_then(|b| b.get("properties")) {
        references(properties, &mut refs);
    }
    for (target, name) in refs {
        let target_key = format!("{factory_key}/{target}/{}", name.to_ascii_lowercase());
        if !resources.contains_key(&target_key) {
            return Err(adf_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!(
                    "The document creation or update failed because of invalid reference '{name}'."
                ),
                None,
            ));
        }
    }
    Ok(())
}

/// What Data Factory answers to a change of a started trigger.
pub fn trigger_enabled() -> Reply {
    adf_error(
        StatusCode::BAD_REQUEST,
        "TriggerEnabledCannotUpdate",
        "Cannot update enabled Trigger; the trigger needs to be disabled first. ",
        None,
    )
}

fn adf_error(status: StatusCode, code: &str, message: &str, target: Option<&str>) -> Reply {
    json_reply(
        status,
        json!({"error": {"code": code, "message": message, "target": target, "details": null}}),
    )
}

pub fn handle(shared: &Shared, req: &Req, rg: &str, factory: &str, tail: &[&str]) -> Reply {
    let mut state = shared.lock();
    let Some(group) = state.resource_groups.get(&rg.to_ascii_lowercase()) else {
        return rg_not_found(rg);
    };
    let rg_name = group["name"].as_str().unwrap_or(rg).to_string();
    let factory_id = format!(
        "/subscriptions/{}/resourceGroups/{rg_name}/providers/Microsoft.DataFactory/factories/{factory}",
        shared.opts.subscription_id
    );
    let factory_key = factory_id.to_ascii_lowercase();
    if !state.resources.contains_key(&factory_key) {
        return resource_not_found("Microsoft.DataFactory/factories", factory, &rg_name);
    }
    match (&req.method, tail) {
        (&Method::POST, [_, trigger, action]) if seg_is(tail[0], "triggers") => {
            let key = format!("{factory_key}/triggers/{}", trigger.to_ascii_lowercase());
            let Some(stored) = state.resources.get_mut(&key) else {
                return adf_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("Entity {trigger} not found"),
                    None,
                );
            };
            let started = seg_is(action, "start");
            stored["properties"]["runtimeState"] =
                json!(if started { "Started" } else { "Stopped" });
            state.adf_writes += 1;
            empty(StatusCode::OK)
        }
        (&Method::POST, [_, pipeline, _]) if seg_is(tail[0], "pipelines") => {
            let pipeline_key = format!("{factory_key}/pipelines/{}", pipeline.to_ascii_lowercase());
            let Some(definition) = state.resources.get(&pipeline_key) else {
                return adf_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("Entity {pipeline} not found"),
                    None,
                );
            };
            let supplied = match req.json() {
                Ok(Value::Object(m)) => m,
                Ok(Value::Null) => Map::new(),
                Ok(_) => {
                    return adf_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "The request body must be a JSON object of pipeline parameters.",
                        None,
                    )
                }
                Err(reply) => return reply,
            };
            let properties = definition.get("properties").cloned().unwrap_or(Value::Null);
            let pipeline_name = definition["name"]
                .as_str()
                .and_then(|n| n.rsplit('/').next())
                .unwrap_or(pipeline)
                .to_string();
            let parameters = match run_parameters(&properties, &supplied) {
                Ok(p) => p,
                Err(name) => {
                    return adf_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!("The required pipeline parameter '{name}' is not provided."),
                        Some(&format!("pipeline/{pipeline_name}/runid/")),
                    )
                }
            };
            let factory = state.resources.get(&factory_key);
            let run = new_run(
                shared,
                &factory_id,
                &pipeline_name,
                &properties,
                parameters,
                None,
                factory,
            );
            let run_id = run.run_id.clone();
            state.runs.insert(run_id.clone(), run);
            json_reply(StatusCode::OK, json!({"runId": run_id}))
        }
        (&Method::GET, [_, run_id]) => match state.runs.get_mut(*run_id) {
            Some(run) if run.factory_id.eq_ignore_ascii_case(&factory_id) => {
                run.advance();
                json_reply(StatusCode::OK, run.to_json())
            }
            _ => run_not_found(run_id),
        },
        (&Method::POST, [_, run_id, action]) if seg_is(action, "queryActivityruns") => {
            match state.runs.get(*run_id) {
                Some(run) if run.factory_id.eq_ignore_ascii_case(&factory_id) => {
                    let query = match req
                        .json()
                        .and_then(|q| RunQuery::parse(&q, &ACTIVITY_RUN_OPERANDS, "activity runs"))
                    {
                        Ok(query) => query,
                        Err(reply) => return reply,
                    };
                    let now = clock::now_ms();
                    let runs: Vec<Value> = run
                        .activity_runs()
                        .into_iter()
                        .filter(|a| {
                            // An activity still running was updated just now.
                            let updated = a["activityRunEnd"]
                                .as_str()
                                .and_then(clock::parse_iso)
                                .unwrap_or(now);
                            query.matches(updated, |operand| {
                                a[operand_field(operand)]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_owned()
                            })
                        })
                        .collect();
                    json_reply(StatusCode::OK, json!({"value": runs}))
                }
                _ => run_not_found(run_id),
            }
        }
        (&Method::POST, [_, run_id, _]) => match state.runs.get_mut(*run_id) {
            Some(run) if run.factory_id.eq_ignore_ascii_case(&factory_id) => {
                if run.status.is_terminal() {
                    return adf_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!(
                            "Pipeline run '{run_id}' is already in terminal status '{}' and cannot be cancelled.",
                            run.status.as_str()
                        ),
                        None,
                    );
                }
                if run.status != RunStatus::Canceling {
                    run.progress
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .cancel = true;
                    run.status = RunStatus::Canceling;
                    run.last_updated_ms = clock::now_ms();
                }
                empty(StatusCode::OK)
            }
            _ => run_not_found(run_id),
        },
        (&Method::POST, [_]) => {
            let query = match req
                .json()
                .and_then(|q| RunQuery::parse(&q, &PIPELINE_RUN_OPERANDS, "pipeline runs"))
            {
                Ok(query) => query,
                Err(reply) => return reply,
            };
            let runs: Vec<Value> = state
                .runs
                .values()
                .filter(|r| {
                    r.factory_id.eq_ignore_ascii_case(&factory_id)
                        && query.matches(r.last_updated_ms, |operand| match operand {
                            "PipelineName" => r.pipeline_name.clone(),
                            "Status" => r.status.as_str().to_owned(),
                            _ => r.run_group_id.clone(),
                        })
                })
                .map(PipelineRun::to_json)
                .collect();
            json_reply(StatusCode::OK, json!({"value": runs}))
        }
        _ => adf_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("The emulator does not serve '{} {}'.", req.method, req.path),
            None,
        ),
    }
}

/// The operands a `queryPipelineRuns` filter may name (of the service's, those emulated).
const PIPELINE_RUN_OPERANDS: [&str; 3] = ["PipelineName", "Status", "RunGroupId"];
/// The operands a `queryActivityruns` filter may name (of the service's, those emulated).
const ACTIVITY_RUN_OPERANDS: [&str; 3] = ["ActivityName", "ActivityType", "Status"];

/// The activity-run record field an operand filters.
fn operand_field(operand: &str) -> &'static str {
    match operand {
        "ActivityName" => "activityName",
        "ActivityType" => "activityType",
        _ => "status",
    }
}

/// A `queryPipelineRuns` or `queryActivityruns` body (RunFilterParameters): the `lastUpdated`
/// window (both ends required) and `filters` on the given operands with `Equals`,
/// `NotEquals`, `In`, `NotIn`.
struct RunQuery {
    after_ms: u64,
    before_ms: u64,
    filters: Vec<(String, bool, Vec<String>)>,
}

impl RunQuery {
    fn parse(body: &Value, operands: &[&str], what: &str) -> Result<RunQuery, Reply> {
        let bad =
            |message: String| adf_error(StatusCode::BAD_REQUEST, "BadRequest", &message, None);
        let time = |key: &str| -> Result<u64, Reply> {
            let text = body.get(key).and_then(Value::as_str).ok_or_else(|| {
                bad(format!(
                    "The required property '{key}' is missing from the request body."
                ))
            })?;
            clock::parse_iso(text).ok_or_else(|| {
                bad(format!(
                    "The value '{text}' of '{key}' is not a valid date time."
                ))
            })
        };
        let (after_ms, before_ms) = (time("lastUpdatedAfter")?, time("lastUpdatedBefore")?);
        let mut filters = Vec::new();
        for f in body
            .get("filters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let operand = f.get("operand").and_then(Value::as_str).unwrap_or_default();
            if !operands.contains(&operand) {
                return Err(bad(format!(
                    "The emulator does not filter {what} by '{operand}'."
                )));
            }
            let equals = match f.get("operator").and_then(Value::as_str) {
                Some("Equals" | "In") => true,
                Some("NotEquals" | "NotIn") => false,
                other => {
                    return Err(bad(format!(
                        "'{}' is not a valid run query filter operator.",
                        other.unwrap_or_default()
                    )))
                }
            };
            let values = f
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            filters.push((operand.to_owned(), equals, values));
        }
        Ok(RunQuery {
            after_ms,
            before_ms,
            filters,
        })
    }

    /// Whether a run updated at `updated_ms`, whose operands' values `field` gives, matches.
    fn matches(&self, updated_ms: u64, field: impl Fn(&str) -> String) -> bool {
        let in_window = updated_ms >= self.after_ms && updated_ms <= self.before_ms;
        in_window
            && self.filters.iter().all(|(operand, equals, values)| {
                let field = field(operand);
                values.iter().any(|v| v.eq_ignore_ascii_case(&field)) == *equals
            })
    }
}

fn run_not_found(run_id: &str) -> Reply {
    adf_error(
        StatusCode::NOT_FOUND,
        "PipelineRunNotFound",
        &format!("Pipeline run '{run_id}' was not found."),
        None,
    )
}

/// Starts an `ExecutePipeline` child run of `pipeline` with `supplied` parameters: its own run
/// id, the parent's run group, `invokedBy` naming the parent. The text of `Err` says why not.
pub(crate) fn start_child_run(
    shared: &Shared,
    factory_id: &str,
    pipeline: &str,
    supplied: Map<String, Value>,
    parent: &Parent,
) -> Result<(String, ProgressRef), String> {
    let mut state = shared.lock();
    let key = format!(
        "{}/pipelines/{}",
        factory_id.to_ascii_lowercase(),
        pipeline.to_ascii_lowercase()
    );
    let properties = state
        .resources
        .get(&key)
        .map(|d| d.get("properties").cloned().unwrap_or(Value::Null))
        .ok_or_else(|| {
            format!(
                "The pipeline '{pipeline}' that activity '{}' runs does not exist in the factory.",
                parent.activity_name
            )
        })?;
    let parameters = run_parameters(&properties, &supplied).map_err(|name| {
        format!(
            "The required pipeline parameter '{name}' of pipeline '{pipeline}' is not provided."
        )
    })?;
    let factory = state.resources.get(&factory_id.to_ascii_lowercase());
    let run = new_run(
        shared,
        factory_id,
        pipeline,
        &properties,
        parameters,
        Some(parent),
        factory,
    );
    let started = (run.run_id.clone(), run.progress.clone());
    state.runs.insert(run.run_id.clone(), run);
    Ok(started)
}

/// The run's parameters: the supplied ones over the declared defaults; `Err` names a required
/// parameter that has neither.
fn run_parameters(
    properties: &Value,
    supplied: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let mut parameters = Map::new();
    if let Some(declared) = properties.get("parameters").and_then(Value::as_object) {
        for (name, decl) in declared {
            match supplied.get(name).or_else(|| decl.get("defaultValue")) {
                Some(v) => {
                    parameters.insert(name.clone(), v.clone());
                }
                None => return Err(name.clone()),
            }
        }
    }
    for (name, v) in supplied {
        parameters.entry(name.clone()).or_insert_with(|| v.clone());
    }
    Ok(parameters)
}

fn new_run(
    shared: &Shared,
    factory_id: &str,
    pipeline_name: &str,
    properties: &Value,
    parameters: Map<String, Value>,
    parent: Option<&Parent>,
    factory: Option<&Value>,
) -> PipelineRun {
    let run_id = clock::guid();
    let group_id = parent.map_or_else(|| run_id.clone(), |p| p.group_id.clone());
    let progress = adf_run::start(
        shared,
        factory_id,
        pipeline_name,
        &run_id,
        &group_id,
        properties,
        &parameters,
        parent,
        factory,
    );
    let invoked_by = match parent {
        Some(p) => {
            json!({"id": p.run_id, "name": p.activity_name, "invokedByType": "PipelineActivity",
            "pipelineName": p.pipeline_name, "pipelineRunId": p.run_id})
        }
        None => json!({"id": group_id, "name": "Manual", "invokedByType": "Manual"}),
    };
    let now = clock::now_ms();
    // Data Factory reports every parameter value as a string.
    let parameters = parameters
        .into_iter()
        .map(|(k, v)| {
            let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            (k, Value::String(s))
        })
        .collect();
    PipelineRun {
        run_group_id: group_id,
        run_id,
        factory_id: factory_id.to_string(),
        pipeline_name: pipeline_name.to_string(),
        parameters,
        progress,
        invoked_by,
        polls: 0,
        queued_polls: shared.opts.adf_queued_polls,
        in_progress_polls: shared.opts.adf_in_progress_polls,
        status: RunStatus::Queued,
        cancel_polls: 0,
        start_ms: now,
        end_ms: None,
        last_updated_ms: now,
    }
}
