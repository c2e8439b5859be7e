//! Jobs API 2.2: one-time notebook runs, jobs (create, list, get, reset, delete, run-now),
//! run state and output.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::Call;
use crate::{Error, Workspace};

/// The `task_key` of the single notebook task in runs this client submits and jobs it creates.
pub const SUBMIT_TASK_KEY: &str = "notebook";

/// Longest idempotency token the Jobs API accepts.
const MAX_IDEMPOTENCY_TOKEN: usize = 64;

/// A run id (of a whole run, or of one task of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub u64);

/// A job id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for JobId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse().map(JobId)
    }
}

impl std::str::FromStr for RunId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse().map(RunId)
    }
}

/// Where a notebook task runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Compute {
    /// An existing all-purpose cluster, by id (started by the service if it is terminated).
    ExistingCluster(String),
    /// A job cluster created for the run: the `new_cluster` object of the API as given
    /// (`spark_version`, `node_type_id`, `num_workers`, …).
    NewCluster(Value),
    /// Serverless compute (no cluster field at all).
    Serverless,
}

impl Compute {
    fn apply(&self, task: &mut serde_json::Map<String, Value>) {
        match self {
            Compute::ExistingCluster(id) => {
                task.insert("existing_cluster_id".into(), json!(id));
            }
            Compute::NewCluster(spec) => {
                task.insert("new_cluster".into(), spec.clone());
            }
            Compute::Serverless => {}
        }
    }
}

/// A one-time run of one notebook (`runs/submit`).
#[derive(Debug, Clone, PartialEq)]
pub struct SubmitRun {
    /// Shown in the Databricks UI.
    pub run_name: String,
    /// Absolute workspace path of the notebook, without extension.
    pub notebook_path: String,
    /// Widget values (`dbutils.widgets.get`).
    pub base_parameters: BTreeMap<String, String>,
    pub compute: Compute,
    /// The service cancels the run after this long; `None` (or 0) = no limit.
    pub timeout_seconds: Option<u64>,
    /// At most 64 characters. A second submit with the same token returns the first run
    /// instead of starting another, which is what makes replaying a submit safe.
    pub idempotency_token: Option<String>,
}

/// A job with one notebook task (`jobs/create`).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateJob {
    pub name: String,
    pub notebook_path: String,
    pub base_parameters: BTreeMap<String, String>,
    pub compute: Compute,
    pub timeout_seconds: Option<u64>,
    /// `None`: the service's default (1).
    pub max_concurrent_runs: Option<u32>,
}

fn notebook_task(
    notebook_path: &str,
    base_parameters: &BTreeMap<String, String>,
    compute: &Compute,
) -> Value {
    let mut task = serde_json::Map::new();
    task.insert("task_key".into(), json!(SUBMIT_TASK_KEY));
    task.insert(
        "notebook_task".into(),
        json!({
            "notebook_path": notebook_path,
            "base_parameters": base_parameters,
            "source": "WORKSPACE",
        }),
    );
    compute.apply(&mut task);
    Value::Object(task)
}

/// Declares an enum of API words with an `Other` catch-all, parsed from and shown as the word.
macro_rules! api_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this client does not know yet.
            Other(String),
        }

        impl $name {
            /// The API's word.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $word,)*
                    $name::Other(s) => s,
                }
            }

            /// Parses the API's word; unknown words become `Other`.
            pub fn parse(s: &str) -> $name {
                match s {
                    $($word => $name::$variant,)*
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($name::parse(&<String as ::serde::Deserialize>::deserialize(d)?))
            }
        }
    };
}
pub(crate) use api_enum;

api_enum! {
    /// Where a run is in its life (`life_cycle_state`).
    LifeCycleState {
        Queued = "QUEUED",
        Pending = "PENDING",
        Running = "RUNNING",
        Terminating = "TERMINATING",
        Terminated = "TERMINATED",
        Skipped = "SKIPPED",
        InternalError = "INTERNAL_ERROR",
        Blocked = "BLOCKED",
        WaitingForRetry = "WAITING_FOR_RETRY",
    }
}

impl LifeCycleState {
    /// `TERMINATED`, `SKIPPED`, `INTERNAL_ERROR`: the run will not change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            LifeCycleState::Terminated | LifeCycleState::Skipped | LifeCycleState::InternalError
        )
    }
}

api_enum! {
    /// How a finished run ended (`result_state`).
    ResultState {
        Success = "SUCCESS",
        Failed = "FAILED",
        TimedOut = "TIMEDOUT",
        Canceled = "CANCELED",
        MaximumConcurrentRunsReached = "MAXIMUM_CONCURRENT_RUNS_REACHED",
        Excluded = "EXCLUDED",
        SuccessWithFailures = "SUCCESS_WITH_FAILURES",
        UpstreamFailed = "UPSTREAM_FAILED",
        UpstreamCanceled = "UPSTREAM_CANCELED",
        Disabled = "DISABLED",
    }
}

impl ResultState {
    /// `SUCCESS` (and `SUCCESS_WITH_FAILURES`, where every failed task was allowed to fail).
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            ResultState::Success | ResultState::SuccessWithFailures
        )
    }
}

/// A run's (or task run's) `state`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RunState {
    pub life_cycle_state: LifeCycleState,
    /// Only once the run is terminal.
    #[serde(default)]
    pub result_state: Option<ResultState>,
    #[serde(default)]
    pub state_message: String,
    #[serde(default)]
    pub user_cancelled_or_timedout: bool,
}

impl RunState {
    pub fn is_terminal(&self) -> bool {
        self.life_cycle_state.is_terminal()
    }

    /// Terminal with a successful result.
    pub fn is_success(&self) -> bool {
        self.is_terminal()
            && self
                .result_state
                .as_ref()
                .is_some_and(ResultState::is_success)
    }
}

/// One task of a run, with its own run id (the one [`Workspace::get_run_output`] takes).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TaskRun {
    pub run_id: RunId,
    #[serde(default)]
    pub task_key: String,
    pub state: RunState,
    #[serde(default)]
    pub run_page_url: Option<String>,
    /// Milliseconds since the Unix epoch; 0 until started.
    #[serde(default)]
    pub start_time: u64,
    #[serde(default)]
    pub end_time: u64,
    #[serde(default)]
    pub attempt_number: u32,
}

/// A run (`runs/get`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Run {
    pub run_id: RunId,
    #[serde(default)]
    pub job_id: Option<JobId>,
    #[serde(default)]
    pub number_in_job: Option<u64>,
    #[serde(default)]
    pub run_name: Option<String>,
    pub state: RunState,
    #[serde(default)]
    pub run_page_url: Option<String>,
    #[serde(default)]
    pub creator_user_name: Option<String>,
    /// Milliseconds since the Unix epoch; 0 until started.
    #[serde(default)]
    pub start_time: u64,
    /// 0 until finished.
    #[serde(default)]
    pub end_time: u64,
    #[serde(default)]
    pub tasks: Vec<TaskRun>,
}

impl Run {
    /// The task run whose output to read: the one with `task_key`, or the only one.
    pub fn task(&self, task_key: &str) -> Option<&TaskRun> {
        self.tasks
            .iter()
            .find(|t| t.task_key == task_key)
            .or(if self.tasks.len() == 1 {
                self.tasks.first()
            } else {
                None
            })
    }
}

/// What a notebook returned with `dbutils.notebook.exit(…)`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct NotebookOutput {
    #[serde(default)]
    pub result: Option<String>,
    /// Whether `result` was cut at the service's limit (5 MB).
    #[serde(default)]
    pub truncated: bool,
}

/// A task run's output (`runs/get-output`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct RunOutput {
    #[serde(default)]
    pub notebook_output: Option<NotebookOutput>,
    /// The error message of a failed run.
    #[serde(default)]
    pub error: Option<String>,
    /// The stack trace of a failed run.
    #[serde(default)]
    pub error_trace: Option<String>,
    /// Driver log tail, for task types that have one.
    #[serde(default)]
    pub logs: Option<String>,
    #[serde(default)]
    pub logs_truncated: bool,
}

/// A job's settings and parameters for `run-now`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunNow {
    pub job_id: JobId,
    /// Job-level parameters (`job_parameters`), for jobs that define `parameters`.
    pub job_parameters: BTreeMap<String, String>,
    /// Widget values of the job's notebook tasks (`notebook_params`).
    pub notebook_params: BTreeMap<String, String>,
    /// Arguments of the job's Python tasks (`python_params`); `None` keeps the job's own.
    pub python_params: Option<Vec<String>>,
    /// At most 64 characters: a second request with the same token returns the first run.
    pub idempotency_token: Option<String>,
}

/// A job (`jobs/get`, or an entry of `jobs/list`): its id and settings as the API has them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Job {
    pub job_id: JobId,
    #[serde(default)]
    pub settings: Value,
    #[serde(default)]
    pub created_time: u64,
    #[serde(default)]
    pub creator_user_name: Option<String>,
    #[serde(default)]
    next_page_token: Option<String>,
}

impl Job {
    /// The job's name (`settings.name`), empty when it has none.
    pub fn name(&self) -> &str {
        self.settings
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The job's tags (`settings.tags`).
    pub fn tags(&self) -> BTreeMap<String, String> {
        self.settings
            .get("tags")
            .and_then(Value::as_object)
            .map(|tags| {
                tags.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct JobPage {
    #[serde(default)]
    jobs: Vec<Job>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct RunIdAnswer {
    run_id: RunId,
}

#[derive(Deserialize)]
struct JobIdAnswer {
    job_id: JobId,
}

fn check_token(token: Option<&str>) -> Result<(), Error> {
    match token {
        Some(t) if t.is_empty() || t.chars().count() > MAX_IDEMPOTENCY_TOKEN => Err(Error::InvalidRequest(format!(
            "an idempotency token must have 1 to {MAX_IDEMPOTENCY_TOKEN} characters, this one has {}",
            t.chars().count()
        ))),
        _ => Ok(()),
    }
}

impl Workspace {
    /// Starts a one-time run of a notebook (`POST /api/2.2/jobs/runs/submit`) with one task
    /// keyed [`SUBMIT_TASK_KEY`]. With an idempotency token the submit is replayed after
    /// ambiguous failures (the service returns the run the first attempt started); without one
    /// it is retried only when the service refused it (429, no connection), so a run is never
    /// started twice.
    pub async fn submit_run(&self, req: &SubmitRun) -> Result<RunId, Error> {
        check_token(req.idempotency_token.as_deref())?;
        let mut body = json!({
            "run_name": req.run_name,
            "tasks": [notebook_task(&req.notebook_path, &req.base_parameters, &req.compute)],
        });
        if let Some(t) = req.timeout_seconds.filter(|t| *t > 0) {
            body["timeout_seconds"] = json!(t);
        }
        if let Some(token) = &req.idempotency_token {
            body["idempotency_token"] = json!(token);
        }
        let mut call = Call::post("/api/2.2/jobs/runs/submit", body);
        if req.idempotency_token.is_some() {
            call = call.replay_safe();
        }
        Ok(self.send::<RunIdAnswer>(call).await?.run_id)
    }

    /// A run and its tasks (`GET /api/2.2/jobs/runs/get`). An unknown id gives the API's 400
    /// `INVALID_PARAMETER_VALUE` ([`Error::is_not_found`] is true).
    pub async fn get_run(&self, run_id: RunId) -> Result<Run, Error> {
        let call = Call::get("/api/2.2/jobs/runs/get").query("run_id", run_id.to_string());
        self.send(call).await
    }

    /// The output of one task run (`GET /api/2.2/jobs/runs/get-output`): pass a
    /// [`TaskRun::run_id`], not the id of a multi-task run.
    pub async fn get_run_output(&self, task_run_id: RunId) -> Result<RunOutput, Error> {
        let call =
            Call::get("/api/2.2/jobs/runs/get-output").query("run_id", task_run_id.to_string());
        self.send(call).await
    }

    /// Asks the service to cancel a run (`POST /api/2.2/jobs/runs/cancel`); it ends later,
    /// with result `CANCELED`. Cancelling a finished run is not an error. Replayed after
    /// ambiguous failures.
    pub async fn cancel_run(&self, run_id: RunId) -> Result<(), Error> {
        let call =
            Call::post("/api/2.2/jobs/runs/cancel", json!({ "run_id": run_id })).replay_safe();
        self.send::<Value>(call).await.map(|_| ())
    }

    /// Creates a job with one notebook task (`POST /api/2.2/jobs/create`). Not replayed after
    /// ambiguous failures (a repeat would create a second job).
    pub async fn create_job(&self, job: &CreateJob) -> Result<JobId, Error> {
        let mut body = json!({
            "name": job.name,
            "tasks": [notebook_task(&job.notebook_path, &job.base_parameters, &job.compute)],
        });
        if let Some(t) = job.timeout_seconds.filter(|t| *t > 0) {
            body["timeout_seconds"] = json!(t);
        }
        if let Some(m) = job.max_concurrent_runs {
            body["max_concurrent_runs"] = json!(m);
        }
        Ok(self
            .send::<JobIdAnswer>(Call::post("/api/2.2/jobs/create", body))
            .await?
            .job_id)
    }

    /// Runs a job now (`POST /api/2.2/jobs/run-now`). With an idempotency token (≤ 64
    /// characters) the call is replayed after ambiguous failures without starting a second
    /// run.
    pub async fn run_now(&self, req: &RunNow) -> Result<RunId, Error> {
        check_token(req.idempotency_token.as_deref())?;
        let mut body = json!({ "job_id": req.job_id });
        if !req.job_parameters.is_empty() {
            body["job_parameters"] = json!(req.job_parameters);
        }
        if !req.notebook_params.is_empty() {
            body["notebook_params"] = json!(req.notebook_params);
        }
        if let Some(params) = &req.python_params {
            body["python_params"] = json!(params);
        }
        if let Some(token) = &req.idempotency_token {
            body["idempotency_token"] = json!(token);
        }
        let mut call = Call::post("/api/2.2/jobs/run-now", body);
        if req.idempotency_token.is_some() {
            call = call.replay_safe();
        }
        Ok(self.send::<RunIdAnswer>(call).await?.run_id)
    }

    /// The jobs of the workspace (`GET /api/2.2/jobs/list`, every page), or only those named
    /// `name` (the API matches the exact name, ignoring case). Settings come without tasks:
    /// [`Workspace::get_job`] has them.
    pub async fn list_jobs(&self, name: Option<&str>) -> Result<Vec<Job>, Error> {
        let mut all: Vec<Job> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut call = Call::get("/api/2.2/jobs/list").query("limit", "100");
            if let Some(name) = name {
                call = call.query("name", name);
            }
            if let Some(t) = &token {
                call = call.query("page_token", t.clone());
            }
            let page: JobPage = self.send(call).await?;
            all.extend(page.jobs);
            match page
                .next_page_token
                .filter(|t| !t.is_empty() && page.has_more)
            {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => return Ok(all),
            }
        }
    }

    /// A job with its full settings (`GET /api/2.2/jobs/get`; the tasks and job clusters of
    /// a large job come in pages, which are joined here).
    pub async fn get_job(&self, job_id: JobId) -> Result<Job, Error> {
        let mut job: Job = self
            .send(Call::get("/api/2.2/jobs/get").query("job_id", job_id.to_string()))
            .await?;
        let mut token = job.next_page_token.take();
        while let Some(t) = token.filter(|t| !t.is_empty()) {
            let mut page: Job = self
                .send(
                    Call::get("/api/2.2/jobs/get")
                        .query("job_id", job_id.to_string())
                        .query("page_token", t.clone()),
                )
                .await?;
            for key in ["tasks", "job_clusters", "environments", "parameters"] {
                if let Some(Value::Array(more)) = page.settings.get_mut(key).map(Value::take) {
                    if let Some(Value::Array(list)) = job.settings.get_mut(key) {
                        list.extend(more);
                    }
                }
            }
            token = page.next_page_token.filter(|next| *next != t);
        }
        Ok(job)
    }

    /// Creates a job from its settings as the Jobs API 2.2 takes them (`POST jobs/create`).
    /// Not replayed after ambiguous failures (a repeat would create a second job).
    pub async fn create_job_with(&self, settings: &Value) -> Result<JobId, Error> {
        Ok(self
            .send::<JobIdAnswer>(Call::post("/api/2.2/jobs/create", settings.clone()))
            .await?
            .job_id)
    }

    /// Replaces every setting of a job (`POST jobs/reset`). Replayed after ambiguous
    /// failures: setting the same settings twice is harmless.
    pub async fn reset_job(&self, job_id: JobId, settings: &Value) -> Result<(), Error> {
        let body = json!({ "job_id": job_id, "new_settings": settings });
        self.send::<Value>(Call::post("/api/2.2/jobs/reset", body).replay_safe())
            .await
            .map(|_| ())
    }

    /// Deletes a job (`POST jobs/delete`).
    pub async fn delete_job(&self, job_id: JobId) -> Result<(), Error> {
        let body = json!({ "job_id": job_id });
        self.send::<Value>(Call::post("/api/2.2/jobs/delete", body))
            .await
            .map(|_| ())
    }

    /// Polls a run until it is terminal and returns it. `on_change` sees the first state and
    /// every change of life cycle state, result or message (for progress lines). The interval
    /// starts small and doubles up to the workspace's maximum (10 s unless
    /// [`Workspace::with_poll_interval`] changed it). Each poll has the retry policy's budget
    /// for throttling and outages. `timeout` (`None`: none) gives [`Error::TimedOut`]; the run
    /// is not cancelled.
    pub async fn wait_run(
        &self,
        run_id: RunId,
        timeout: Option<Duration>,
        mut on_change: impl FnMut(&Run),
    ) -> Result<Run, Error> {
        let started = Instant::now();
        let poll = self.poll();
        let mut interval = poll.first;
        let mut last: Option<RunState> = None;
        loop {
            let run = self.get_run(run_id).await?;
            if last.as_ref() != Some(&run.state) {
                on_change(&run);
                last = Some(run.state.clone());
            }
            if run.state.is_terminal() {
                return Ok(run);
            }
            let mut wait = interval;
            if let Some(limit) = timeout {
                let elapsed = started.elapsed();
                if elapsed >= limit {
                    return Err(Error::TimedOut {
                        what: format!(
                            "run {run_id} finishing (last state {})",
                            run.state.life_cycle_state
                        ),
                        waited: elapsed,
                    });
                }
                wait = wait.min(limit - elapsed);
            }
            tokio::time::sleep(wait).await;
            interval = (interval * 2).min(poll.max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_known_and_unknown_words() {
        let s: RunState = serde_json::from_str(
            r#"{"life_cycle_state":"TERMINATED","result_state":"SUCCESS_WITH_FAILURES","state_message":""}"#,
        )
        .unwrap();
        assert!(s.is_terminal() && s.is_success());
        let s: RunState = serde_json::from_str(r#"{"life_cycle_state":"HIBERNATING"}"#).unwrap();
        assert_eq!(
            s.life_cycle_state,
            LifeCycleState::Other("HIBERNATING".into())
        );
        assert_eq!(s.life_cycle_state.to_string(), "HIBERNATING");
        assert!(!s.is_terminal() && !s.is_success());
        assert!(
            LifeCycleState::InternalError.is_terminal() && LifeCycleState::Skipped.is_terminal()
        );
        assert!(
            !LifeCycleState::Queued.is_terminal() && !LifeCycleState::WaitingForRetry.is_terminal()
        );
    }

    #[test]
    fn submit_body_has_one_notebook_task() {
        let task = notebook_task(
            "/Shared/nb",
            &BTreeMap::from([("k".to_string(), "v".to_string())]),
            &Compute::ExistingCluster("c1".into()),
        );
        assert_eq!(
            task,
            json!({"task_key": "notebook", "existing_cluster_id": "c1",
                   "notebook_task": {"notebook_path": "/Shared/nb", "base_parameters": {"k": "v"}, "source": "WORKSPACE"}})
        );
        assert!(notebook_task("/x", &BTreeMap::new(), &Compute::Serverless)
            .get("existing_cluster_id")
            .is_none());
    }
}
