//! Jobs and runs: submission, the run state machine, outputs.
//!
//! A run moves PENDING → RUNNING → TERMINATING → TERMINATED. A driver task per run
//! (see [`drive`]) advances it; handlers only read and record under a short lock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::sync::Notify;

use crate::error::{ApiError, ApiResult};
use crate::executor::Outcome;

mod driver;
pub use driver::drive;

/// The real service returns the first 5 MB of a notebook's exit value.
const MAX_RESULT_BYTES: usize = 5 * 1024 * 1024;

/// Message of a task whose code failed (wording of the databricks CLI's test server).
const TASK_FAILURE_MESSAGE: &str = "Workload failed, see run output for details";

/// A forced outcome for every run, to test how clients handle failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunFault {
    /// Every task fails with an error.
    Fail,
    /// Every run ends TIMEDOUT.
    Timeout,
    /// Every run ends in the INTERNAL_ERROR life cycle state.
    InternalError,
}

impl std::str::FromStr for RunFault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fail" | "FAILED" => Ok(RunFault::Fail),
            "timeout" | "TIMEDOUT" => Ok(RunFault::Timeout),
            "internal-error" | "INTERNAL_ERROR" => Ok(RunFault::InternalError),
            other => Err(format!(
                "run fault must be fail, timeout or internal-error, not '{other}'"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    Pending,
    Running,
    Terminating,
    Terminated,
    InternalError,
}

impl Life {
    fn as_str(self) -> &'static str {
        match self {
            Life::Pending => "PENDING",
            Life::Running => "RUNNING",
            Life::Terminating => "TERMINATING",
            Life::Terminated => "TERMINATED",
            Life::InternalError => "INTERNAL_ERROR",
        }
    }

    fn is_final(self) -> bool {
        matches!(self, Life::Terminated | Life::InternalError)
    }

    /// The `status.state` (lifecycle v2) the newer API reports.
    fn v2(self) -> &'static str {
        match self {
            Life::Pending => "PENDING",
            Life::Running => "RUNNING",
            Life::Terminating => "TERMINATING",
            Life::Terminated | Life::InternalError => "TERMINATED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultState {
    Success,
    Failed,
    TimedOut,
    Canceled,
    UpstreamFailed,
    UpstreamCanceled,
}

impl ResultState {
    fn as_str(self) -> &'static str {
        match self {
            ResultState::Success => "SUCCESS",
            ResultState::Failed => "FAILED",
            ResultState::TimedOut => "TIMEDOUT",
            ResultState::Canceled => "CANCELED",
            ResultState::UpstreamFailed => "UPSTREAM_FAILED",
            ResultState::UpstreamCanceled => "UPSTREAM_CANCELED",
        }
    }

    /// `status.termination_details` code and type.
    fn termination(self) -> (&'static str, &'static str) {
        match self {
            ResultState::Success => ("SUCCESS", "SUCCESS"),
            ResultState::Failed | ResultState::UpstreamFailed => {
                ("RUN_EXECUTION_ERROR", "CLIENT_ERROR")
            }
            ResultState::TimedOut => ("CANCELED", "CLIENT_ERROR"),
            ResultState::Canceled | ResultState::UpstreamCanceled => ("USER_CANCELED", "SUCCESS"),
        }
    }
}

/// What a task does.
#[derive(Debug, Clone)]
pub enum TaskKind {
    Notebook {
        path: String,
    },
    PythonFile {
        path: String,
        args: Vec<String>,
    },
    /// Any other task type: succeeds after `non_python_run_delay`.
    Other,
}

#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub task_key: String,
    pub depends_on: Vec<String>,
    pub kind: TaskKind,
    pub existing_cluster_id: Option<String>,
    pub timeout_seconds: u64,
    /// Widget values: `base_parameters` with `notebook_params` applied.
    pub params: BTreeMap<String, String>,
    /// The task as submitted, echoed back by runs/get.
    pub raw: Map<String, Value>,
}

#[derive(Debug, Clone)]
struct Timing {
    start_time: u64,
    running_at: Option<u64>,
    terminating_at: Option<u64>,
    end_time: Option<u64>,
}

impl Timing {
    fn new(now: u64) -> Self {
        Timing {
            start_time: now,
            running_at: None,
            terminating_at: None,
            end_time: None,
        }
    }

    fn fill(&self, out: &mut Map<String, Value>) {
        let setup = self
            .running_at
            .map_or(0, |t| t.saturating_sub(self.start_time));
        let execution = match (self.running_at, self.terminating_at.or(self.end_time)) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        };
        let cleanup = match (self.terminating_at, self.end_time) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        };
        out.insert("start_time".into(), json!(self.start_time));
        out.insert("setup_duration".into(), json!(setup));
        out.insert("execution_duration".into(), json!(execution));
        out.insert("cleanup_duration".into(), json!(cleanup));
        out.insert("end_time".into(), json!(self.end_time.unwrap_or(0)));
        if let Some(end) = self.end_time {
            out.insert(
                "run_duration".into(),
                json!(end.saturating_sub(self.start_time)),
            );
        }
    }
}

#[derive(Debug, Clone)]
struct State {
    life: Life,
    result: Option<ResultState>,
    message: String,
    user_cancelled_or_timedout: bool,
}

impl State {
    fn pending() -> Self {
        State {
            life: Life::Pending,
            result: None,
            message: String::new(),
            user_cancelled_or_timedout: false,
        }
    }

    fn render(&self) -> (Value, Value) {
        let mut state = Map::new();
        state.insert("life_cycle_state".into(), json!(self.life.as_str()));
        if let Some(result) = self.result {
            state.insert("result_state".into(), json!(result.as_str()));
        }
        state.insert("state_message".into(), json!(self.message));
        state.insert(
            "user_cancelled_or_timedout".into(),
            json!(self.user_cancelled_or_timedout),
        );
        let mut status = Map::new();
        status.insert("state".into(), json!(self.life.v2()));
        if self.life.is_final() {
            let (code, kind) = match (self.life, self.result) {
                (Life::InternalError, _) => ("INTERNAL_ERROR", "INTERNAL_ERROR"),
                (_, Some(result)) => result.termination(),
                (_, None) => ("SUCCESS", "SUCCESS"),
            };
            status.insert(
                "termination_details".into(),
                json!({"code": code, "type": kind, "message": self.message}),
            );
        }
        (Value::Object(state), Value::Object(status))
    }
}

#[derive(Debug, Clone)]
pub struct TaskRun {
    pub run_id: u64,
    pub spec: TaskSpec,
    state: State,
    timing: Timing,
    outcome: Option<Outcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunType {
    Submit,
    Job,
}

#[derive(Debug)]
pub struct Run {
    pub run_id: u64,
    pub job_id: u64,
    pub number_in_job: u64,
    pub run_name: String,
    pub run_type: RunType,
    /// 2.0 single-task submissions answer get-output on the parent run.
    pub single_task: bool,
    pub tasks: Vec<TaskRun>,
    state: State,
    timing: Timing,
    pub timeout_seconds: u64,
    pub idempotency_token: Option<String>,
    overriding_parameters: Option<Value>,
    job_parameters: Vec<Value>,
    cancel: Arc<Notify>,
}

#[derive(Debug)]
struct Job {
    created_time: u64,
    settings: Value,
    runs_started: u64,
}

/// Everything the Jobs API knows.
#[derive(Debug, Default)]
pub struct Jobs {
    runs: BTreeMap<u64, Run>,
    /// Task run id → parent run id.
    task_parent: HashMap<u64, u64>,
    jobs: BTreeMap<u64, Job>,
    idempotency: HashMap<String, u64>,
    next_id: u64,
}

/// Query of `runs/list`.
#[derive(Debug, Clone)]
pub struct RunFilter {
    pub job_id: Option<u64>,
    pub active_only: bool,
    pub completed_only: bool,
    pub limit: usize,
    pub offset: usize,
}

/// Query of `jobs/list`.
#[derive(Debug, Clone)]
pub struct JobQuery {
    pub name: Option<String>,
    pub offset: usize,
    pub limit: usize,
    pub expand_tasks: bool,
}

/// The opaque page token of `jobs/list` for a position.
pub fn page_token(offset: usize) -> String {
    format!("CAE{offset:x}")
}

/// The position a `jobs/list` page token stands for.
pub fn page_offset(token: &str) -> Option<usize> {
    usize::from_str_radix(token.strip_prefix("CAE")?, 16).ok()
}

/// A validated submission, ready to become a run.
#[derive(Debug)]
pub struct Submission {
    pub run_name: String,
    pub tasks: Vec<TaskSpec>,
    pub timeout_seconds: u64,
    pub idempotency_token: Option<String>,
    pub single_task: bool,
    /// The job's parameters with the values of this run (`[{name, default, value}]`).
    pub job_parameters: Vec<Value>,
}

fn string_map(value: Option<&Value>, field: &str) -> ApiResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (key, v) in map {
                let Some(s) = v.as_str() else {
                    return Err(ApiError::malformed(format!(
                        "Could not parse request object: Expected a string value for {field}.{key}"
                    )));
                };
                out.insert(key.clone(), s.to_string());
            }
        }
        Some(_) => {
            return Err(ApiError::malformed(format!(
                "Could not parse request object: Expected an object for {field}"
            )))
        }
    }
    Ok(out)
}

fn parse_task(raw: &Map<String, Value>, fallback_key: Option<&str>) -> ApiResult<TaskSpec> {
    let task_key = match raw.get("task_key").and_then(Value::as_str) {
        Some(key) if !key.is_empty() => key.to_string(),
        _ => match fallback_key {
            Some(key) => key.to_string(),
            None => return Err(ApiError::invalid("Task key must be specified.")),
        },
    };
    let depends_on = raw
        .get("depends_on")
        .and_then(Value::as_array)
        .map(|deps| {
            deps.iter()
                .filter_map(|d| d.get("task_key").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let (kind, params) = if let Some(nb) = raw.get("notebook_task") {
        let path = nb
            .get("notebook_path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "Notebook path must be specified for task {task_key}."
                ))
            })?;
        let params = string_map(nb.get("base_parameters"), "base_parameters")?;
        (
            TaskKind::Notebook {
                path: path.to_string(),
            },
            params,
        )
    } else if let Some(py) = raw.get("spark_python_task") {
        let path = py
            .get("python_file")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid("python_file must be specified."))?;
        let args = py
            .get("parameters")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        (
            TaskKind::PythonFile {
                path: path.trim_start_matches("file:").to_string(),
                args,
            },
            BTreeMap::new(),
        )
    } else {
        (TaskKind::Other, BTreeMap::new())
    };
    Ok(TaskSpec {
        task_key,
        depends_on,
        kind,
        existing_cluster_id: raw
            .get("existing_cluster_id")
            .and_then(Value::as_str)
            .map(str::to_string),
        timeout_seconds: raw
            .get("timeout_seconds")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        params,
        raw: raw.clone(),
    })
}

/// Parses the tasks of a submit or a job: multi-task `tasks[]`, or the legacy
/// single-task fields at the top level.
pub fn parse_tasks(body: &Value) -> ApiResult<(Vec<TaskSpec>, bool)> {
    let mut tasks = Vec::new();
    let mut single_task = false;
    match body.get("tasks") {
        Some(Value::Array(list)) if !list.is_empty() => {
            for item in list {
                let raw = item
                    .as_object()
                    .ok_or_else(|| ApiError::malformed("Could not parse request object: tasks"))?;
                tasks.push(parse_task(raw, None)?);
            }
        }
        _ => {
            let legacy = [
                "notebook_task",
                "spark_python_task",
                "spark_jar_task",
                "spark_submit_task",
            ];
            let Some(obj) = body
                .as_object()
                .filter(|o| legacy.iter().any(|k| o.contains_key(*k)))
            else {
                return Err(ApiError::invalid("At least one task is required."));
            };
            let mut raw = Map::new();
            for key in legacy
                .iter()
                .chain(["existing_cluster_id", "new_cluster", "libraries"].iter())
            {
                if let Some(v) = obj.get(*key) {
                    raw.insert((*key).to_string(), v.clone());
                }
            }
            let key = body
                .get("run_name")
                .or_else(|| body.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("Untitled");
            tasks.push(parse_task(&raw, Some(key))?);
            single_task = true;
        }
    }
    let mut keys = HashSet::new();
    for task in &tasks {
        if !keys.insert(task.task_key.as_str()) {
            return Err(ApiError::invalid(format!(
                "Task key {} is not unique.",
                task.task_key
            )));
        }
    }
    for task in &tasks {
        for dep in &task.depends_on {
            if !keys.contains(dep.as_str()) {
                return Err(ApiError::invalid(format!(
                    "Task {} depends on {dep}, which is not a task of this run.",
                    task.task_key
                )));
            }
        }
    }
    if topological_order(&tasks).is_none() {
        return Err(ApiError::invalid("The task dependencies contain a cycle."));
    }
    Ok((tasks, single_task))
}

pub fn parse_submission(body: &Value) -> ApiResult<Submission> {
    let (tasks, single_task) = parse_tasks(body)?;
    let idempotency_token = body
        .get("idempotency_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    if idempotency_token.as_ref().is_some_and(|t| t.len() > 64) {
        return Err(ApiError::invalid(
            "The idempotency token must be at most 64 characters long.",
        ));
    }
    Ok(Submission {
        run_name: body
            .get("run_name")
            .and_then(Value::as_str)
            .unwrap_or("Untitled")
            .to_string(),
        tasks,
        timeout_seconds: body
            .get("timeout_seconds")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        idempotency_token,
        single_task,
        job_parameters: Vec::new(),
    })
}

/// Indices of `tasks` in an order that respects `depends_on`; `None` on a cycle.
fn topological_order(tasks: &[TaskSpec]) -> Option<Vec<usize>> {
    let mut done: HashSet<&str> = HashSet::new();
    let mut order = Vec::with_capacity(tasks.len());
    while order.len() < tasks.len() {
        let next = tasks.iter().enumerate().position(|(i, t)| {
            !order.contains(&i) && t.depends_on.iter().all(|d| done.contains(d.as_str()))
        })?;
        done.insert(tasks[next].task_key.as_str());
        order.push(next);
    }
    Some(order)
}

impl Jobs {
    pub fn new() -> Self {
        Jobs {
            next_id: 1000,
            ..Jobs::default()
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The run an idempotency token already started, if any.
    pub fn idempotent_run(&self, scope: &str, token: &str) -> Option<u64> {
        self.idempotency.get(&format!("{scope}:{token}")).copied()
    }

    /// Records a new run; returns its id. The caller spawns [`drive`].
    pub fn create_run(
        &mut self,
        submission: Submission,
        job_id: Option<u64>,
        overriding_parameters: Option<Value>,
        now: u64,
    ) -> (u64, u64) {
        let run_id = self.next_id();
        let (job_id, run_type, number_in_job) = match job_id {
            Some(job_id) => {
                let number = self
                    .jobs
                    .get_mut(&job_id)
                    .map(|job| {
                        job.runs_started += 1;
                        job.runs_started
                    })
                    .unwrap_or(1);
                (job_id, RunType::Job, number)
            }
            // A one-time run belongs to a hidden job of its own.
            None => (self.next_id(), RunType::Submit, run_id),
        };
        let tasks = submission
            .tasks
            .into_iter()
            .map(|spec| TaskRun {
                run_id: self.next_id(),
                spec,
                state: State::pending(),
                timing: Timing::new(now),
                outcome: None,
            })
            .collect::<Vec<_>>();
        for task in &tasks {
            self.task_parent.insert(task.run_id, run_id);
        }
        if let Some(token) = &submission.idempotency_token {
            let scope = if run_type == RunType::Job {
                "run-now"
            } else {
                "submit"
            };
            self.idempotency.insert(format!("{scope}:{token}"), run_id);
        }
        self.runs.insert(
            run_id,
            Run {
                run_id,
                job_id,
                number_in_job,
                run_name: submission.run_name,
                run_type,
                single_task: submission.single_task,
                tasks,
                state: State::pending(),
                timing: Timing::new(now),
                timeout_seconds: submission.timeout_seconds,
                idempotency_token: submission.idempotency_token,
                overriding_parameters,
                job_parameters: submission.job_parameters,
                cancel: Arc::new(Notify::new()),
            },
        );
        (run_id, number_in_job)
    }

    pub fn run_count(&self) -> usize {
        self.runs.len()
    }

    pub fn run(&self, run_id: u64) -> Option<&Run> {
        self.runs.get(&run_id)
    }

    fn unknown_run(run_id: u64) -> ApiError {
        ApiError::invalid(format!("Run {run_id} does not exist."))
    }

    /// `runs/get`: a parent run, or a task run (rendered on its own).
    pub fn get_run(&self, run_id: u64, base_url: &str, creator: &str) -> ApiResult<Value> {
        if let Some(run) = self.runs.get(&run_id) {
            return Ok(render_run(run, base_url, creator));
        }
        let parent = self
            .task_parent
            .get(&run_id)
            .and_then(|p| self.runs.get(p))
            .ok_or_else(|| Self::unknown_run(run_id))?;
        let task = parent
            .tasks
            .iter()
            .find(|t| t.run_id == run_id)
            .ok_or_else(|| Self::unknown_run(run_id))?;
        Ok(render_task_as_run(parent, task, base_url, creator))
    }

    /// `runs/get-output`.
    pub fn get_output(&self, run_id: u64, base_url: &str, creator: &str) -> ApiResult<Value> {
        let (parent, task) = if let Some(run) = self.runs.get(&run_id) {
            if !run.single_task {
                return Err(ApiError::invalid(
                    "Retrieving the output of runs with multiple tasks is not supported. \
                     Please retrieve the output of each individual task run instead.",
                ));
            }
            let task = run.tasks.first().ok_or_else(|| Self::unknown_run(run_id))?;
            (run, task)
        } else {
            let parent = self
                .task_parent
                .get(&run_id)
                .and_then(|p| self.runs.get(p))
                .ok_or_else(|| Self::unknown_run(run_id))?;
            let task = parent
                .tasks
                .iter()
                .find(|t| t.run_id == run_id)
                .ok_or_else(|| Self::unknown_run(run_id))?;
            (parent, task)
        };
        let metadata = if parent.single_task && parent.run_id == run_id {
            render_run(parent, base_url, creator)
        } else {
            render_task_as_run(parent, task, base_url, creator)
        };
        let mut out = Map::new();
        out.insert("metadata".into(), metadata);
        if let Some(outcome) = &task.outcome {
            if matches!(task.spec.kind, TaskKind::Notebook { .. }) {
                let mut notebook_output = Map::new();
                if let Some(result) = &outcome.result {
                    let (text, truncated) = truncate(result, MAX_RESULT_BYTES);
                    notebook_output.insert("result".into(), json!(text));
                    notebook_output.insert("truncated".into(), json!(truncated));
                }
                out.insert("notebook_output".into(), Value::Object(notebook_output));
            }
            if let Some(logs) = &outcome.logs {
                out.insert("logs".into(), json!(logs));
                out.insert("logs_truncated".into(), json!(false));
            }
            if let Some(error) = &outcome.error {
                out.insert("error".into(), json!(error));
            }
            if let Some(trace) = &outcome.error_trace {
                out.insert("error_trace".into(), json!(trace));
            }
        }
        Ok(Value::Object(out))
    }

    /// `runs/cancel`: asynchronous; a finished run is left as it is.
    pub fn cancel(&self, run_id: u64) -> ApiResult<()> {
        let run = self
            .runs
            .get(&run_id)
            .or_else(|| self.task_parent.get(&run_id).and_then(|p| self.runs.get(p)))
            .ok_or_else(|| Self::unknown_run(run_id))?;
        if !run.state.life.is_final() {
            run.cancel.notify_one();
        }
        Ok(())
    }

    pub fn list_runs(&self, filter: &RunFilter, base_url: &str, creator: &str) -> Value {
        let matching: Vec<&Run> = self
            .runs
            .values()
            .rev()
            .filter(|r| filter.job_id.is_none_or(|j| r.job_id == j))
            .filter(|r| !filter.active_only || !r.state.life.is_final())
            .filter(|r| !filter.completed_only || r.state.life.is_final())
            .collect();
        let runs: Vec<Value> = matching
            .iter()
            .skip(filter.offset)
            .take(filter.limit)
            .map(|r| render_run(r, base_url, creator))
            .collect();
        let has_more = matching.len() > filter.offset + runs.len();
        if runs.is_empty() {
            json!({ "has_more": false })
        } else {
            json!({ "runs": runs, "has_more": has_more })
        }
    }

    pub fn create_job(&mut self, settings: Value, now: u64) -> u64 {
        let job_id = self.next_id();
        self.jobs.insert(
            job_id,
            Job {
                created_time: now,
                settings,
                runs_started: 0,
            },
        );
        job_id
    }

    pub fn job_settings(&self, job_id: u64) -> ApiResult<&Value> {
        self.jobs
            .get(&job_id)
            .map(|j| &j.settings)
            .ok_or_else(|| ApiError::invalid(format!("Job {job_id} does not exist.")))
    }

    pub fn get_job(&self, job_id: u64, creator: &str) -> ApiResult<Value> {
        let job = self
            .jobs
            .get(&job_id)
            .ok_or_else(|| ApiError::invalid(format!("Job {job_id} does not exist.")))?;
        Ok(json!({
            "job_id": job_id,
            "creator_user_name": creator,
            "run_as_user_name": creator,
            "created_time": job.created_time,
            "settings": job.settings,
        }))
    }

    /// `jobs/list`: one page, oldest first, of the jobs whose name is `query.name` (exact,
    /// ignoring case) or of all; settings without tasks unless `expand_tasks`.
    pub fn list_jobs(&self, creator: &str, query: &JobQuery) -> Value {
        let matching: Vec<u64> = self
            .jobs
            .iter()
            .filter(|(_, job)| {
                query.name.as_ref().is_none_or(|name| {
                    job.settings
                        .get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.to_lowercase() == name.to_lowercase())
                })
            })
            .map(|(id, _)| *id)
            .collect();
        let jobs: Vec<Value> = matching
            .iter()
            .skip(query.offset)
            .take(query.limit)
            .filter_map(|id| self.get_job(*id, creator).ok())
            .map(|mut job| {
                if !query.expand_tasks {
                    if let Some(settings) = job["settings"].as_object_mut() {
                        settings.remove("tasks");
                        settings.remove("job_clusters");
                    }
                }
                job
            })
            .collect();
        let has_more = matching.len() > query.offset + jobs.len();
        let mut out = json!({ "has_more": has_more });
        if !jobs.is_empty() {
            out["jobs"] = json!(jobs);
        }
        if has_more {
            out["next_page_token"] = json!(page_token(query.offset + jobs.len()));
        }
        if query.offset > 0 {
            out["prev_page_token"] = json!(page_token(query.offset.saturating_sub(query.limit)));
        }
        out
    }

    /// `jobs/reset`: replaces every setting of an existing job.
    pub fn reset_job(&mut self, job_id: u64, settings: Value) -> ApiResult<()> {
        let job = self
            .jobs
            .get_mut(&job_id)
            .ok_or_else(|| ApiError::invalid(format!("Job {job_id} does not exist.")))?;
        job.settings = settings;
        Ok(())
    }

    pub fn delete_job(&mut self, job_id: u64) -> ApiResult<()> {
        self.jobs
            .remove(&job_id)
            .map(|_| ())
            .ok_or_else(|| ApiError::invalid(format!("Job {job_id} does not exist.")))
    }

    /// Every run, for `/emulator/state`.
    pub fn dump(&self, base_url: &str, creator: &str) -> Value {
        let runs: Vec<Value> = self
            .runs
            .values()
            .map(|run| {
                let mut value = render_run(run, base_url, creator);
                if let Some(obj) = value.as_object_mut() {
                    obj.insert("idempotency_token".into(), json!(run.idempotency_token));
                    obj.insert("timeout_seconds".into(), json!(run.timeout_seconds));
                    let outputs: Vec<Value> = run
                        .tasks
                        .iter()
                        .map(|t| {
                            json!({
                                "task_key": t.spec.task_key,
                                "run_id": t.run_id,
                                "parameters": t.spec.params,
                                "result": t.outcome.as_ref().and_then(|o| o.result.clone()),
                                "error": t.outcome.as_ref().and_then(|o| o.error.clone()),
                            })
                        })
                        .collect();
                    obj.insert("task_outputs".into(), json!(outputs));
                }
                value
            })
            .collect();
        let jobs: Vec<Value> = self
            .jobs
            .iter()
            .map(|(id, job)| json!({"job_id": id, "settings": job.settings}))
            .collect();
        json!({ "runs": runs, "jobs": jobs })
    }
}

fn truncate(text: &str, max: usize) -> (&str, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

fn run_page_url(base_url: &str, job_id: u64, run_id: u64) -> String {
    format!("{base_url}/?o=0#job/{job_id}/run/{run_id}")
}

fn render_task(run: &Run, task: &TaskRun, base_url: &str) -> Map<String, Value> {
    let mut out = task.spec.raw.clone();
    out.insert("task_key".into(), json!(task.spec.task_key));
    out.insert("run_id".into(), json!(task.run_id));
    if let Some(Value::Object(nb)) = out.get_mut("notebook_task") {
        if !task.spec.params.is_empty() {
            nb.insert("base_parameters".into(), json!(task.spec.params));
        }
        nb.entry("source").or_insert(json!("WORKSPACE"));
    }
    let (state, status) = task.state.render();
    out.insert("state".into(), state);
    out.insert("status".into(), status);
    task.timing.fill(&mut out);
    out.insert("attempt_number".into(), json!(0));
    out.insert(
        "run_page_url".into(),
        json!(run_page_url(base_url, run.job_id, task.run_id)),
    );
    if let Some(cluster) = &task.spec.existing_cluster_id {
        out.insert(
            "cluster_instance".into(),
            json!({"cluster_id": cluster, "spark_context_id": format!("{}", 7_000_000 + task.run_id)}),
        );
    }
    out
}

fn render_run(run: &Run, base_url: &str, creator: &str) -> Value {
    let mut out = Map::new();
    out.insert("job_id".into(), json!(run.job_id));
    out.insert("run_id".into(), json!(run.run_id));
    out.insert("number_in_job".into(), json!(run.number_in_job));
    out.insert("original_attempt_run_id".into(), json!(run.run_id));
    out.insert("creator_user_name".into(), json!(creator));
    out.insert("run_name".into(), json!(run.run_name));
    let (state, status) = run.state.render();
    out.insert("state".into(), state);
    out.insert("status".into(), status);
    run.timing.fill(&mut out);
    out.insert(
        "run_page_url".into(),
        json!(run_page_url(base_url, run.job_id, run.run_id)),
    );
    let (run_type, trigger) = match run.run_type {
        RunType::Submit => ("SUBMIT_RUN", "ONE_TIME"),
        RunType::Job => ("JOB_RUN", "ONE_TIME"),
    };
    out.insert("run_type".into(), json!(run_type));
    out.insert("trigger".into(), json!(trigger));
    out.insert(
        "format".into(),
        json!(if run.single_task {
            "SINGLE_TASK"
        } else {
            "MULTI_TASK"
        }),
    );
    out.insert("attempt_number".into(), json!(0));
    if let Some(params) = &run.overriding_parameters {
        out.insert("overriding_parameters".into(), params.clone());
    }
    if !run.job_parameters.is_empty() {
        out.insert("job_parameters".into(), json!(run.job_parameters));
    }
    let tasks: Vec<Value> = run
        .tasks
        .iter()
        .map(|t| Value::Object(render_task(run, t, base_url)))
        .collect();
    out.insert("tasks".into(), json!(tasks));
    Value::Object(out)
}

fn render_task_as_run(run: &Run, task: &TaskRun, base_url: &str, creator: &str) -> Value {
    let mut out = render_task(run, task, base_url);
    out.insert("job_id".into(), json!(run.job_id));
    out.insert("creator_user_name".into(), json!(creator));
    out.insert("run_name".into(), json!(task.spec.task_key));
    out.insert("parent_run_id".into(), json!(run.run_id));
    out.insert("number_in_job".into(), json!(task.run_id));
    out.insert("original_attempt_run_id".into(), json!(task.run_id));
    out.insert(
        "run_type".into(),
        json!(match run.run_type {
            RunType::Submit => "SUBMIT_RUN",
            RunType::Job => "JOB_RUN",
        }),
    );
    out.insert(
        "tasks".into(),
        json!([Value::Object(render_task(run, task, base_url))]),
    );
    Value::Object(out)
}
