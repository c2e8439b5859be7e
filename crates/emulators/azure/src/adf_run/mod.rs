//! Executes a Data Factory pipeline run: activities in dependency order (`dependsOn` with
//! `Succeeded`/`Failed`/`Completed`/`Skipped`), parameters, variables, expressions, control
//! flow, child pipelines and Databricks notebooks; other activity types are noted as not
//! executed (or fail with `--adf-strict`). The run's result follows Data Factory's rule: every
//! leaf activity must succeed, and a skipped leaf is judged by the activities it depends on.
//!
//! A run executes in its own task from the moment it is created; [`Progress`] is what the run's
//! status and activity-run answers read.

mod activities;
pub mod expr;

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, Weak},
};

use serde_json::{json, Map, Value};

use crate::{clock, Shared};

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded,
    /// The run's message (`Operation on target X failed: …`).
    Failed(String),
    Cancelled,
}

/// What a running pipeline has done so far.
#[derive(Debug, Default)]
pub struct Progress {
    /// `queryActivityRuns` records, in start order.
    pub activity_runs: Vec<Value>,
    pub outcome: Option<Outcome>,
    /// Set by a cancel request; the run stops before its next activity.
    pub cancel: bool,
}

/// Shared handle on a run's progress.
pub type ProgressRef = Arc<Mutex<Progress>>;

fn lock(p: &ProgressRef) -> std::sync::MutexGuard<'_, Progress> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// Who started a run, for a child run of `ExecutePipeline`.
#[derive(Debug, Clone)]
pub struct Parent {
    pub run_id: String,
    pub group_id: String,
    pub pipeline_name: String,
    pub activity_name: String,
}

/// One run being executed.
struct Run {
    shared: Weak<Shared>,
    factory_id: String,
    pipeline_name: String,
    run_id: String,
    /// The `pipeline()` object expressions see.
    pipeline: Value,
    progress: ProgressRef,
    /// `emulatorFail` = true: the first activity fails (a test hook).
    fail_first: Mutex<bool>,
}

/// The variables and finished activities a list of activities sees.
#[derive(Clone, Default)]
struct Frame {
    variables: Map<String, Value>,
    activities: Map<String, Value>,
    item: Option<Value>,
}

impl Frame {
    fn scope<'a>(&'a self, run: &'a Run) -> expr::Scope<'a> {
        expr::Scope {
            pipeline: &run.pipeline,
            variables: &self.variables,
            activities: &self.activities,
            item: self.item.as_ref(),
        }
    }
}

/// How one activity ended.
struct End {
    status: &'static str,
    output: Value,
    /// `{errorCode, message, failureType}`.
    error: Option<Value>,
}

impl End {
    fn ok(output: Value) -> End {
        End {
            status: "Succeeded",
            output,
            error: None,
        }
    }

    fn fail(code: &str, message: impl Into<String>) -> End {
        End {
            status: "Failed",
            output: json!({}),
            error: Some(
                json!({"errorCode": code, "message": message.into(), "failureType": "UserError"}),
            ),
        }
    }
}

/// A list's result: `Err` carries the failed activity's name and error, or `None` when the
/// run was cancelled.
type ListResult = Result<(), Option<(String, Value)>>;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Starts executing a run in its own task. `parameters` are the resolved run parameters;
/// `factory` is the factory resource (for global parameters): the caller holds the state lock.
#[allow(clippy::too_many_arguments)]
pub fn start(
    shared: &Shared,
    factory_id: &str,
    pipeline_name: &str,
    run_id: &str,
    group_id: &str,
    properties: &Value,
    parameters: &Map<String, Value>,
    parent: Option<&Parent>,
    factory: Option<&Value>,
) -> ProgressRef {
    let progress: ProgressRef = Arc::default();
    let factory_name = factory_id.rsplit('/').next().unwrap_or_default();
    let global = factory
        .and_then(|f| f["properties"]["globalParameters"].as_object().cloned())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.get("value").cloned().unwrap_or(Value::Null)))
        .collect::<Map<_, _>>();
    let now = clock::iso(clock::now_ms());
    let pipeline = json!({
        "parameters": parameters,
        "globalParameters": global,
        "RunId": run_id,
        "GroupId": group_id,
        "Pipeline": pipeline_name,
        "DataFactory": factory_name,
        "TriggerType": if parent.is_some() { "PipelineActivity" } else { "Manual" },
        "TriggerName": if parent.is_some() { "PipelineActivity" } else { "Manual" },
        "TriggerId": group_id,
        "TriggerTime": now,
        "TriggeredByPipelineName": parent.map(|p| p.pipeline_name.clone()),
        "TriggeredByPipelineRunId": parent.map(|p| p.run_id.clone()),
    });
    let mut frame = Frame::default();
    for (name, decl) in properties
        .get("variables")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let default = decl.get("defaultValue").cloned().unwrap_or_else(|| {
            match decl.get("type").and_then(Value::as_str) {
                Some("Array") => json!([]),
                Some("Boolean") => json!(false),
                _ => Value::Null,
            }
        });
        frame.variables.insert(name.clone(), default);
    }
    let fail_first = parameters.get("emulatorFail").is_some_and(|v| {
        v == &json!(true) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
    });
    let run = Arc::new(Run {
        shared: shared.me.clone(),
        factory_id: factory_id.to_string(),
        pipeline_name: pipeline_name.to_string(),
        run_id: run_id.to_string(),
        pipeline,
        progress: progress.clone(),
        fail_first: Mutex::new(fail_first),
    });
    let activities = properties
        .get("activities")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        lock(&progress).outcome = Some(Outcome::Failed(
            "The emulator could not execute the run outside its server.".into(),
        ));
        return progress;
    };
    runtime.spawn(async move {
        let result = run.clone().run_list(activities, &mut frame).await;
        let outcome = match result {
            Ok(()) => Outcome::Succeeded,
            Err(None) => Outcome::Cancelled,
            Err(Some((name, error))) => Outcome::Failed(format!(
                "Operation on target {name} failed: {}",
                error["message"].as_str().unwrap_or_default()
            )),
        };
        let mut p = lock(&run.progress);
        if p.cancel {
            for record in &mut p.activity_runs {
                if record["status"] == "InProgress" {
                    record["status"] = json!("Cancelled");
                }
            }
        }
        p.outcome = Some(if p.cancel {
            Outcome::Cancelled
        } else {
            outcome
        });
    });
    progress
}

fn dependencies(activity: &Value) -> Vec<(String, Vec<String>)> {
    activity
        .get("dependsOn")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["activity"].as_str().unwrap_or_default().to_string(),
                d["dependencyConditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            )
        })
        .collect()
}

fn condition_holds(condition: &str, status: &str) -> bool {
    match condition {
        "Completed" => status == "Succeeded" || status == "Failed",
        c => c.eq_ignore_ascii_case(status),
    }
}

fn name_of(activity: &Value) -> String {
    activity["name"].as_str().unwrap_or("activity").to_string()
}

impl Run {
    fn cancelled(&self) -> bool {
        lock(&self.progress).cancel
    }

    fn shared(&self) -> Option<Arc<Shared>> {
        self.shared.upgrade()
    }

    /// Runs `activities` in dependency order and judges the list by Data Factory's leaf rule.
    fn run_list<'a>(
        self: Arc<Self>,
        activities: Vec<Value>,
        frame: &'a mut Frame,
    ) -> BoxFuture<'a, ListResult> {
        Box::pin(async move {
            let names: Vec<String> = activities.iter().map(name_of).collect();
            let deps: HashMap<String, Vec<(String, Vec<String>)>> = activities
                .iter()
                .map(|a| (name_of(a), dependencies(a)))
                .collect();
            let mut status: HashMap<String, &'static str> = HashMap::new();
            let mut errors: HashMap<String, Value> = HashMap::new();
            // Invalid wiring is refused before anything runs, as Data Factory refuses to publish it.
            for (name, ds) in &deps {
                if let Some((missing, _)) = ds.iter().find(|(d, _)| !names.contains(d)) {
                    return Err(Some((
                        name.clone(),
                        json!({"errorCode": "BadRequest", "message": format!("Activity '{name}' depends on '{missing}', which is not in the same pipeline or container."), "failureType": "UserError"}),
                    )));
                }
            }
            while status.len() < activities.len() {
                let ready = activities.iter().find(|a| {
                    let n = name_of(a);
                    !status.contains_key(&n) && deps[&n].iter().all(|(d, _)| status.contains_key(d))
                });
                let Some(activity) = ready else {
                    let stuck = names
                        .iter()
                        .find(|n| !status.contains_key(*n))
                        .cloned()
                        .unwrap_or_default();
                    return Err(Some((
                        stuck.clone(),
                        json!({"errorCode": "BadRequest", "message": format!("Activity '{stuck}' is part of a dependency cycle."), "failureType": "UserError"}),
                    )));
                };
                let name = name_of(activity);
                let runs = deps[&name].iter().all(|(d, conditions)| {
                    conditions.iter().any(|c| condition_holds(c, status[d]))
                });
                if !runs {
                    status.insert(name, "Skipped");
                    continue;
                }
                if self.cancelled() {
                    return Err(None);
                }
                let end = self.clone().run_activity(activity.clone(), frame).await;
                if self.cancelled() {
                    return Err(None);
                }
                let mut result = json!({"output": end.output, "status": end.status});
                if let Some(e) = &end.error {
                    result["error"] = e.clone();
                    errors.insert(name.clone(), e.clone());
                }
                frame.activities.insert(name.clone(), result);
                status.insert(name, end.status);
            }
            // Leaves: activities nothing in this list depends on.
            let depended: Vec<&String> = deps.values().flatten().map(|(d, _)| d).collect();
            fn judge(
                name: &str,
                status: &HashMap<String, &'static str>,
                deps: &HashMap<String, Vec<(String, Vec<String>)>>,
                errors: &HashMap<String, Value>,
            ) -> Result<(), (String, Value)> {
                match status[name] {
                    "Succeeded" => Ok(()),
                    "Skipped" => deps[name]
                        .iter()
                        .try_for_each(|(d, _)| judge(d, status, deps, errors)),
                    _ => Err((
                        name.to_string(),
                        errors.get(name).cloned().unwrap_or(Value::Null),
                    )),
                }
            }
            for name in names.iter().filter(|n| !depended.contains(n)) {
                judge(name, &status, &deps, &errors).map_err(Some)?;
            }
            Ok(())
        })
    }

    /// Runs one activity and records its activity run.
    fn run_activity<'a>(
        self: Arc<Self>,
        activity: Value,
        frame: &'a mut Frame,
    ) -> BoxFuture<'a, End> {
        Box::pin(async move {
            let name = name_of(&activity);
            let kind = activity["type"].as_str().unwrap_or("Unknown").to_string();
            let start = clock::now_ms();
            let activity_run_id = clock::guid();
            let raw = activity.get("typeProperties").cloned().unwrap_or(json!({}));
            let index = {
                let mut p = lock(&self.progress);
                p.activity_runs.push(json!({
                    "activityRunId": activity_run_id,
                    "activityName": name,
                    "activityType": kind,
                    "pipelineName": self.pipeline_name,
                    "pipelineRunId": self.run_id,
                    "status": "InProgress",
                    "activityRunStart": clock::iso(start),
                    "activityRunEnd": null,
                    "durationInMs": null,
                    "input": {},
                    "output": {},
                    "error": {"errorCode": "", "message": "", "failureType": "", "target": name, "details": ""},
                    "linkedServiceName": activity["linkedServiceName"]["referenceName"].as_str().unwrap_or(""),
                    "iterationHash": "",
                    "retryAttempt": null,
                    "userProperties": activity.get("userProperties").cloned().unwrap_or(json!({})),
                }));
                p.activity_runs.len() - 1
            };
            let end = self
                .clone()
                .execute(&activity, &kind, &raw, &activity_run_id, frame, index)
                .await;
            let finish = clock::now_ms();
            let mut p = lock(&self.progress);
            let record = &mut p.activity_runs[index];
            record["status"] = json!(end.status);
            record["activityRunEnd"] = json!(clock::iso(finish));
            record["durationInMs"] = json!(finish.saturating_sub(start));
            record["output"] = end.output.clone();
            if let Some(e) = &end.error {
                for key in ["errorCode", "message", "failureType"] {
                    record["error"][key] = e[key].clone();
                }
            }
            end
        })
    }

    async fn execute(
        self: Arc<Self>,
        activity: &Value,
        kind: &str,
        raw: &Value,
        activity_run_id: &str,
        frame: &mut Frame,
        index: usize,
    ) -> End {
        // Test hooks: a scripted failure, or the run parameter `emulatorFail`.
        if let Some(f) = raw.get("emulatorFailure") {
            let scope = frame.scope(&self);
            let field = |k: &str, default: &str| {
                f.get(k)
                    .map(|v| {
                        expr::eval_value(v, &scope)
                            .map(|v| expr::text(&v))
                            .unwrap_or_default()
                    })
                    .unwrap_or_else(|| default.to_string())
            };
            return End {
                status: "Failed",
                output: json!({}),
                error: Some(json!({
                    "errorCode": field("errorCode", "2200"),
                    "message": field("message", "The activity failed."),
                    "failureType": field("failureType", "UserError"),
                })),
            };
        }
        {
            let mut first = self.fail_first.lock().unwrap_or_else(|e| e.into_inner());
            if std::mem::take(&mut *first) {
                return End::fail(
                    "EmulatorFailure",
                    "The run parameter emulatorFail asked the emulator to fail this run.",
                );
            }
        }
        // Containers evaluate their inner activities' properties themselves, later.
        let nested = [
            "ifTrueActivities",
            "ifFalseActivities",
            "activities",
            "cases",
            "defaultActivities",
        ];
        let mut shallow = raw.clone();
        if let Some(m) = shallow.as_object_mut() {
            m.retain(|k, _| !nested.contains(&k.as_str()));
        }
        let props = match expr::eval_value(&shallow, &frame.scope(&self)) {
            Ok(v) => v,
            Err(e) => {
                return End::fail(
                    "InvalidTemplate",
                    format!(
                        "The expression in activity '{}' could not be evaluated: {e}",
                        name_of(activity)
                    ),
                )
            }
        };
        {
            let mut p = lock(&self.progress);
            p.activity_runs[index]["input"] = props.clone();
        }
        match kind {
            "SetVariable" | "AppendVariable" => variable(kind, &props, frame),
            "Wait" => {
                let secs = props["waitTimeInSeconds"]
                    .as_f64()
                    .or_else(|| {
                        props["waitTimeInSeconds"]
                            .as_str()
                            .and_then(|s| s.parse().ok())
                    })
                    .unwrap_or(0.0);
                // In slices, so that a cancel request stops the wait.
                let until = tokio::time::Instant::now()
                    + std::time::Duration::from_secs_f64(secs.clamp(0.0, 7.0 * 86_400.0));
                while tokio::time::Instant::now() < until && !self.cancelled() {
                    tokio::time::sleep_until(
                        until.min(
                            tokio::time::Instant::now() + std::time::Duration::from_millis(50),
                        ),
                    )
                    .await;
                }
                End::ok(json!({}))
            }
            "Fail" => End {
                status: "Failed",
                output: json!({}),
                error: Some(json!({
                    "errorCode": expr::text(&props["errorCode"]),
                    "message": expr::text(&props["message"]),
                    "failureType": "UserError",
                })),
            },
            "IfCondition" => {
                let condition = match expr::eval_value(&raw["expression"], &frame.scope(&self)) {
                    Ok(Value::Bool(b)) => b,
                    Ok(other) => {
                        return End::fail(
                            "InvalidTemplate",
                            format!(
                                "The expression of '{}' must be a boolean, not '{}'.",
                                name_of(activity),
                                expr::text(&other)
                            ),
                        )
                    }
                    Err(e) => return End::fail("InvalidTemplate", e),
                };
                let branch = if condition {
                    "ifTrueActivities"
                } else {
                    "ifFalseActivities"
                };
                let inner = raw[branch].as_array().cloned().unwrap_or_default();
                match self.clone().run_list(inner, frame).await {
                    Ok(()) => End::ok(json!({"ifCondition": condition})),
                    Err(e) => inner_failure(Err(e)),
                }
            }
            "ForEach" => self.for_each(raw, &props, frame).await,
            "ExecutePipeline" => self.execute_pipeline(activity, &props).await,
            "DatabricksNotebook" => {
                activities::databricks_notebook(&self, activity, &props, activity_run_id).await
            }
            other => activities::not_executed(&self, other),
        }
    }

    async fn for_each(self: Arc<Self>, raw: &Value, props: &Value, frame: &mut Frame) -> End {
        let items = match &props["items"] {
            Value::Array(items) => items.clone(),
            other => {
                return End::fail(
                    "InvalidTemplate",
                    format!(
                        "The items of a ForEach must be an array, not '{}'.",
                        expr::text(other)
                    ),
                )
            }
        };
        let body = raw["activities"].as_array().cloned().unwrap_or_default();
        let sequential = props["isSequential"].as_bool().unwrap_or(false);
        let batch = if sequential {
            1
        } else {
            props["batchCount"].as_u64().unwrap_or(20).clamp(1, 50) as usize
        };
        let mut failure = None;
        for chunk in items.chunks(batch) {
            // Iterations of a batch run concurrently, each with its own copy of the frame;
            // variables they changed are merged back in iteration order (appends keep all).
            let mut tasks = tokio::task::JoinSet::new();
            for (i, item) in chunk.iter().enumerate() {
                let mut f = frame.clone();
                f.item = Some(item.clone());
                let run = self.clone();
                let body = body.clone();
                tasks.spawn(async move {
                    let result = run.run_list(body, &mut f).await;
                    (i, f.variables, result)
                });
            }
            let mut done = Vec::new();
            while let Some(joined) = tasks.join_next().await {
                if let Ok(d) = joined {
                    done.push(d);
                }
            }
            done.sort_by_key(|(i, _, _)| *i);
            let before = frame.variables.clone();
            for (_, vars, result) in done {
                for (k, v) in vars {
                    match (before.get(&k), &v, frame.variables.get_mut(&k)) {
                        (Some(Value::Array(old)), Value::Array(new), Some(Value::Array(cur)))
                            if new.len() > old.len() && new.starts_with(old) =>
                        {
                            cur.extend(new[old.len()..].iter().cloned());
                        }
                        (old, new, Some(cur)) if old != Some(new) => *cur = new.clone(),
                        _ => {}
                    }
                }
                if let Err(e) = result {
                    failure.get_or_insert(e);
                }
            }
            if self.cancelled() {
                return End::fail("Cancelled", "The run was cancelled.");
            }
        }
        match failure {
            None => End::ok(json!({})),
            Some(e) => inner_failure(Err(e)),
        }
    }

    async fn execute_pipeline(self: Arc<Self>, activity: &Value, props: &Value) -> End {
        let Some(shared) = self.shared() else {
            return End::fail("InternalServerError", "The emulator is stopping.");
        };
        let child = props["pipeline"]["referenceName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let wait = props["waitOnCompletion"].as_bool().unwrap_or(false);
        let supplied = props["parameters"].as_object().cloned().unwrap_or_default();
        let parent = Parent {
            run_id: self.run_id.clone(),
            group_id: self.pipeline["GroupId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            pipeline_name: self.pipeline_name.clone(),
            activity_name: name_of(activity),
        };
        let started =
            crate::adf::start_child_run(&shared, &self.factory_id, &child, supplied, &parent);
        let (run_id, progress) = match started {
            Ok(s) => s,
            Err(message) => return End::fail("BadRequest", message),
        };
        let output = json!({"pipelineName": child, "pipelineRunId": run_id});
        if !wait {
            return End::ok(output);
        }
        loop {
            let outcome = lock(&progress).outcome.clone();
            match outcome {
                Some(Outcome::Succeeded) => return End::ok(output),
                Some(Outcome::Failed(message)) => {
                    let mut end = End::fail("2011", message);
                    end.output = output;
                    return end;
                }
                Some(Outcome::Cancelled) => {
                    return End::fail(
                        "2011",
                        format!("The child pipeline run {run_id} was cancelled."),
                    )
                }
                None => {}
            }
            if self.cancelled() {
                lock(&progress).cancel = true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

fn inner_failure(result: ListResult) -> End {
    match result {
        Ok(()) => End::ok(json!({})),
        Err(None) => End::fail("Cancelled", "The run was cancelled."),
        Err(Some((name, error))) => End {
            status: "Failed",
            output: json!({}),
            error: Some(json!({
                "errorCode": error["errorCode"].clone(),
                "message": format!(
                    "Activity failed because an inner activity failed; Inner activity name: {name}, Error: {}",
                    error["message"].as_str().unwrap_or_default()
                ),
                "failureType": error["failureType"].clone(),
            })),
        },
    }
}

fn variable(kind: &str, props: &Value, frame: &mut Frame) -> End {
    let name = props["variableName"].as_str().unwrap_or_default();
    let Some(current) = frame.variables.get_mut(name) else {
        return End::fail(
            "InvalidTemplate",
            format!("The variable '{name}' is not declared in the pipeline's variables."),
        );
    };
    let value = props["value"].clone();
    if kind == "SetVariable" {
        *current = value.clone();
        End::ok(json!({"name": name, "value": value}))
    } else {
        match current {
            Value::Array(items) => {
                items.push(value);
                End::ok(json!({}))
            }
            _ => End::fail(
                "InvalidTemplate",
                format!("AppendVariable needs an Array variable; '{name}' is not one."),
            ),
        }
    }
}
