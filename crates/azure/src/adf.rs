//! Data Factory pipeline runs (api-version 2018-06-01): create a run, read it, list its
//! activity runs, cancel it, and wait for it through `Queued`, `InProgress` and `Canceling`
//! (unlike the seed's script, a queued run is not a failure).
//!
//! Calls go to the connection's ARM endpoint with the ARM token (same `rest` layer as
//! [`crate::arm`]).

use std::fmt;
use std::future::Future;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use task_sdk::http::Method;
use task_sdk::{AzureRmConnection, HttpClient, Replay, SendError};
use url::Url;

use crate::auth::{arm_scope, AuthError, Credential};
use crate::rest::{Answer, Bearer, RestError};

/// The Data Factory api-version of every call.
pub const API_VERSION: &str = "2018-06-01";

/// A data factory: subscription, resource group, name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactoryRef {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
}

impl fmt::Display for FactoryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "data factory '{}' (resource group '{}')",
            self.name, self.resource_group
        )
    }
}

/// A pipeline run's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId(pub String);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A pipeline run's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStatus {
    Queued,
    InProgress,
    Succeeded,
    Failed,
    Canceling,
    Cancelled,
    Other(String),
}

impl RunStatus {
    pub fn parse(text: &str) -> RunStatus {
        match text.to_ascii_lowercase().as_str() {
            "queued" => RunStatus::Queued,
            "inprogress" => RunStatus::InProgress,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "canceling" | "cancelling" => RunStatus::Canceling,
            "cancelled" | "canceled" => RunStatus::Cancelled,
            _ => RunStatus::Other(text.to_owned()),
        }
    }

    /// Succeeded, Failed and Cancelled are final; everything else (unknown states included)
    /// is waited through.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunStatus::Queued => "Queued",
            RunStatus::InProgress => "InProgress",
            RunStatus::Succeeded => "Succeeded",
            RunStatus::Failed => "Failed",
            RunStatus::Canceling => "Canceling",
            RunStatus::Cancelled => "Cancelled",
            RunStatus::Other(s) => s,
        })
    }
}

/// `GET …/pipelineruns/{runId}`.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRun {
    pub run_id: RunId,
    pub pipeline_name: String,
    pub status: RunStatus,
    pub message: String,
    pub run_start: Option<String>,
    pub run_end: Option<String>,
    pub duration_ms: Option<u64>,
}

impl PipelineRun {
    fn from_json(v: &Value, run_id: &RunId) -> PipelineRun {
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        PipelineRun {
            run_id: text("runId").map(RunId).unwrap_or_else(|| run_id.clone()),
            pipeline_name: text("pipelineName").unwrap_or_default(),
            status: RunStatus::parse(&text("status").unwrap_or_default()),
            message: text("message").unwrap_or_default(),
            run_start: text("runStart"),
            run_end: text("runEnd"),
            duration_ms: v.get("durationInMs").and_then(Value::as_u64),
        }
    }
}

/// An activity's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityError {
    pub error_code: String,
    pub message: String,
    /// `UserError`, `SystemError`, …
    pub failure_type: String,
}

/// One activity run (`queryActivityruns`).
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRun {
    pub name: String,
    pub activity_type: String,
    pub status: String,
    /// Present when the service reported an error code or message.
    pub error: Option<ActivityError>,
    pub duration_ms: Option<u64>,
}

impl ActivityRun {
    pub fn failed(&self) -> bool {
        self.status.eq_ignore_ascii_case("Failed")
    }

    fn from_json(v: &Value) -> ActivityRun {
        let text = |v: &Value, k: &str| match v.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let error = v.get("error").filter(|e| e.is_object()).and_then(|e| {
            let error = ActivityError {
                error_code: text(e, "errorCode"),
                message: text(e, "message"),
                failure_type: text(e, "failureType"),
            };
            (!error.error_code.is_empty() || !error.message.is_empty()).then_some(error)
        });
        ActivityRun {
            name: text(v, "activityName"),
            activity_type: text(v, "activityType"),
            status: text(v, "status"),
            error,
            duration_ms: v.get("durationInMs").and_then(Value::as_u64),
        }
    }
}

/// How to wait for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunWaitOptions {
    pub poll_interval: Duration,
    /// Cancel the run and fail after this long; `None`: no limit.
    pub timeout: Option<Duration>,
}

impl Default for RunWaitOptions {
    fn default() -> Self {
        RunWaitOptions {
            poll_interval: Duration::from_secs(15),
            timeout: None,
        }
    }
}

/// Why a Data Factory call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdfError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{action}: {source}")]
    Transport {
        action: String,
        #[source]
        source: SendError,
    },
    #[error("{action} failed (HTTP {status}): {code}: {message}")]
    Api {
        action: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{action}: unexpected answer (HTTP {status}): {detail}")]
    Unexpected {
        action: String,
        status: u16,
        detail: String,
    },
    #[error("pipeline run {run_id} did not finish within {} s; {cancel}", timeout.as_secs())]
    TimedOut {
        run_id: RunId,
        timeout: Duration,
        cancel: String,
    },
    #[error("pipeline run {run_id} was stopped because the pipeline was cancelled; {cancel}")]
    Cancelled { run_id: RunId, cancel: String },
    #[error("{action}: {detail}. Whether the run started is unknown: check the factory's pipeline runs (Monitor) before starting it again")]
    RunOutcomeUnknown { action: String, detail: String },
    #[error("the Azure Resource Manager URL '{url}' of service connection '{connection}' is not valid: edit the service connection")]
    BadBaseUrl { connection: String, url: String },
}

impl AdfError {
    fn from_rest(action: &str, e: RestError) -> AdfError {
        match e {
            RestError::Auth(a) => AdfError::Auth(a),
            RestError::Send(source) => AdfError::Transport {
                action: action.to_owned(),
                source,
            },
        }
    }

    pub(crate) fn from_answer(action: &str, answer: &Answer) -> AdfError {
        let json = answer.json().unwrap_or(Value::Null);
        let error = json.get("error").unwrap_or(&json);
        let text = |k: &str| {
            error
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (mut code, mut message) = (text("code"), text("message"));
        if code.is_empty() {
            code = answer
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_owned();
        }
        if message.is_empty() {
            message = answer.body.trim().chars().take(500).collect();
        }
        AdfError::Api {
            action: action.to_owned(),
            status: answer.status.as_u16(),
            code,
            message,
        }
    }
}

/// The Data Factory client of one service connection.
#[derive(Debug, Clone)]
pub struct DataFactory {
    base: Url,
    rest: Bearer,
}

impl DataFactory {
    /// The client for the connection's ARM endpoint with ARM tokens.
    pub fn new(
        conn: &AzureRmConnection,
        credential: Credential,
        http: HttpClient,
    ) -> Result<DataFactory, AdfError> {
        let base = Url::parse(&conn.resource_manager_url).map_err(|_| AdfError::BadBaseUrl {
            connection: conn.id.clone(),
            url: conn.resource_manager_url.clone(),
        })?;
        Ok(DataFactory::with_base(
            base,
            credential,
            http,
            arm_scope(conn),
        ))
    }

    /// A client for an explicit base URL and token scope.
    pub fn with_base(
        base: Url,
        credential: Credential,
        http: HttpClient,
        token_scope: String,
    ) -> DataFactory {
        DataFactory {
            base,
            rest: Bearer {
                http,
                credential,
                scope: token_scope,
            },
        }
    }

    pub(crate) fn url(&self, factory: &FactoryRef, tail: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend([
                "subscriptions",
                &factory.subscription,
                "resourceGroups",
                &factory.resource_group,
                "providers",
                "Microsoft.DataFactory",
                "factories",
                &factory.name,
            ]);
            path.extend(tail);
        }
        {
            let mut q = url.query_pairs_mut();
            q.clear().append_pair("api-version", API_VERSION);
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        url
    }

    pub(crate) async fn call(
        &self,
        action: &str,
        method: Method,
        url: Url,
        body: Option<&Value>,
        replay: Replay,
    ) -> Result<Answer, AdfError> {
        let answer = self
            .rest
            .call(method, url, body, replay)
            .await
            .map_err(|e| AdfError::from_rest(action, e))?;
        if answer.status.is_success() {
            Ok(answer)
        } else {
            Err(AdfError::from_answer(action, &answer))
        }
    }

    /// `POST …/pipelines/{pipeline}/createRun` with the parameters object as the body.
    ///
    /// `createRun` is not idempotent and Data Factory takes no idempotency key, so the POST is
    /// never replayed blindly. When its outcome is unknown (a 5xx or 408, or a connection lost
    /// after the request was sent) the run it may have started is looked up with
    /// `queryPipelineRuns`: a manual run of this pipeline, with these parameters, started since
    /// just before the POST and not among the runs listed before it (one query before every
    /// POST). One such run is adopted;
    /// none means the request did not take effect and it is sent again (within the retry
    /// policy's budget, after its back-off); several fail with [`AdfError::RunOutcomeUnknown`].
    pub async fn create_run(
        &self,
        factory: &FactoryRef,
        pipeline: &str,
        parameters: &Value,
    ) -> Result<RunId, AdfError> {
        let action = format!("starting pipeline '{pipeline}' of {factory}");
        let url = self.url(factory, &["pipelines", pipeline, "createRun"], &[]);
        let body = if parameters.is_null() {
            json!({})
        } else {
            parameters.clone()
        };
        let policy = self.rest.http.policy().clone();
        // Runs started before this lower bound are never ours; it allows for a clock skew
        // between this agent and Data Factory.
        let since = SystemTime::now()
            .checked_sub(CLOCK_SKEW)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        // The runs already there, so that a run found after a lost answer is known to be new.
        // A failure here is not the user's problem yet: it only matters after a lost answer.
        let existing: Result<Vec<String>, AdfError> = self
            .started_runs(factory, pipeline, since)
            .await
            .map(|runs| runs.iter().filter_map(run_id_text).collect());
        let began = tokio::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // Only 429 and a connection that could not be opened are replayed by the policy.
            let sent = self
                .rest
                .call(Method::POST, url.clone(), Some(&body), Replay::ByMethod)
                .await;
            let (failure, retry_after) = match sent {
                Ok(answer) if answer.status.is_success() => return run_id_of(&action, &answer),
                Ok(answer) if outcome_unknown(answer.status) => {
                    let retry_after = answer.retry_after();
                    (AdfError::from_answer(&action, &answer), retry_after)
                }
                Ok(answer) => return Err(AdfError::from_answer(&action, &answer)),
                Err(RestError::Send(
                    e @ (SendError::Timeout { .. } | SendError::Transport { .. }),
                )) => (AdfError::from_rest(&action, RestError::Send(e)), None),
                Err(e) => return Err(AdfError::from_rest(&action, e)),
            };
            tracing::warn!("{failure}; checking whether the run started anyway");
            let wait = policy.delay(
                attempt,
                task_sdk::retry::Outcome::TransportFailed,
                None,
                SystemTime::now(),
                0.5,
            );
            let wait = retry_after.map_or(wait, |r| r.max(wait));
            tokio::time::sleep(wait).await;
            let before = match &existing {
                Ok(before) => before,
                Err(e) => {
                    return Err(AdfError::RunOutcomeUnknown {
                        action,
                        detail: format!("{failure}; the runs before it could not be listed: {e}"),
                    })
                }
            };
            let runs = self
                .started_runs(factory, pipeline, since)
                .await
                .map_err(|e| AdfError::RunOutcomeUnknown {
                    action: action.clone(),
                    detail: format!("{failure}; looking the run up failed: {e}"),
                })?;
            let ours: Vec<&Value> = runs
                .iter()
                .filter(|r| {
                    let id = run_id_text(r).unwrap_or_default();
                    !before.contains(&id) && is_our_run(r, pipeline, &body, since)
                })
                .collect();
            match ours.as_slice() {
                [run] => {
                    let id = run["runId"].as_str().unwrap_or_default().to_owned();
                    tracing::warn!(
                        "{action}: the answer was lost, but run {id} with these parameters started just now: following it"
                    );
                    return Ok(RunId(id));
                }
                // Not started: send it again while the retry budget lasts.
                [] if began.elapsed() < policy.budget => {}
                [] => return Err(failure),
                several => {
                    let ids: Vec<&str> =
                        several.iter().filter_map(|r| r["runId"].as_str()).collect();
                    return Err(AdfError::RunOutcomeUnknown {
                        action,
                        detail: format!(
                            "{failure}; runs {} of this pipeline with these parameters started meanwhile and none can be told apart as this one",
                            ids.join(", ")
                        ),
                    });
                }
            }
        }
    }

    /// Runs of `pipeline` updated since `since` (`queryPipelineRuns` filtered by pipeline
    /// name, every page).
    async fn started_runs(
        &self,
        factory: &FactoryRef,
        pipeline: &str,
        since: SystemTime,
    ) -> Result<Vec<Value>, AdfError> {
        let action = format!("listing the runs of pipeline '{pipeline}'");
        let mut runs = Vec::new();
        let mut continuation: Option<String> = None;
        for _ in 0..100 {
            let url = self.url(factory, &["queryPipelineRuns"], &[]);
            let mut body = json!({
                "lastUpdatedAfter": crate::time::rfc3339(since),
                "lastUpdatedBefore": crate::time::rfc3339(SystemTime::now() + CLOCK_SKEW),
                "filters": [{"operand": "PipelineName", "operator": "Equals", "values": [pipeline]}],
            });
            if let Some(token) = &continuation {
                body["continuationToken"] = json!(token);
            }
            // A query changes nothing: safe to replay.
            let answer = self
                .call(&action, Method::POST, url, Some(&body), Replay::Safe)
                .await?;
            let json = answer.json().unwrap_or(Value::Null);
            if let Some(values) = json.get("value").and_then(Value::as_array) {
                runs.extend(values.iter().cloned());
            }
            continuation = json
                .get("continuationToken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if continuation.is_none() {
                break;
            }
        }
        Ok(runs)
    }

    /// `GET …/pipelineruns/{runId}`.
    pub async fn get_run(
        &self,
        factory: &FactoryRef,
        run_id: &RunId,
    ) -> Result<PipelineRun, AdfError> {
        let action = format!("reading pipeline run {run_id}");
        let url = self.url(factory, &["pipelineruns", &run_id.0], &[]);
        let answer = self
            .call(&action, Method::GET, url, None, Replay::ByMethod)
            .await?;
        let json = answer.json().ok_or_else(|| AdfError::Unexpected {
            action,
            status: answer.status.as_u16(),
            detail: "the answer is not JSON".into(),
        })?;
        Ok(PipelineRun::from_json(&json, run_id))
    }

    /// `POST …/pipelineruns/{runId}/queryActivityruns` for activity runs updated between
    /// `updated_after` and `updated_before`, every page (`continuationToken`).
    pub async fn query_activity_runs(
        &self,
        factory: &FactoryRef,
        run_id: &RunId,
        updated_after: SystemTime,
        updated_before: SystemTime,
    ) -> Result<Vec<ActivityRun>, AdfError> {
        let action = format!("listing the activity runs of pipeline run {run_id}");
        let mut runs = Vec::new();
        let mut continuation: Option<String> = None;
        for _ in 0..1000 {
            let url = self.url(
                factory,
                &["pipelineruns", &run_id.0, "queryActivityruns"],
                &[],
            );
            let mut body = json!({
                "lastUpdatedAfter": crate::time::rfc3339(updated_after),
                "lastUpdatedBefore": crate::time::rfc3339(updated_before),
            });
            if let Some(token) = &continuation {
                body["continuationToken"] = json!(token);
            }
            let answer = self
                .call(&action, Method::POST, url, Some(&body), Replay::Safe)
                .await?;
            let json = answer.json().unwrap_or(Value::Null);
            if let Some(values) = json.get("value").and_then(Value::as_array) {
                runs.extend(values.iter().map(ActivityRun::from_json));
            }
            continuation = json
                .get("continuationToken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if continuation.is_none() {
                break;
            }
        }
        Ok(runs)
    }

    /// `POST …/pipelineruns/{runId}/cancel?isRecursive=…`.
    pub async fn cancel(
        &self,
        factory: &FactoryRef,
        run_id: &RunId,
        recursive: bool,
    ) -> Result<(), AdfError> {
        let action = format!("cancelling pipeline run {run_id}");
        let recursive = if recursive { "true" } else { "false" };
        let url = self.url(
            factory,
            &["pipelineruns", &run_id.0, "cancel"],
            &[("isRecursive", recursive)],
        );
        self.call(&action, Method::POST, url, None, Replay::Safe)
            .await?;
        tracing::info!("requested cancellation of pipeline run {run_id}");
        Ok(())
    }

    /// Polls the run until it is Succeeded, Failed or Cancelled, calling `on_status` whenever
    /// its status changes. On `timeout`, or when `cancel` resolves (pipeline cancelled), cancels
    /// the run (recursively) and returns [`AdfError::TimedOut`] / [`AdfError::Cancelled`].
    pub async fn wait_run(
        &self,
        factory: &FactoryRef,
        run_id: &RunId,
        wait: &RunWaitOptions,
        cancel: impl Future<Output = ()>,
        mut on_status: impl FnMut(&PipelineRun),
    ) -> Result<PipelineRun, AdfError> {
        let mut cancel = std::pin::pin!(cancel);
        let deadline = wait.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut last: Option<RunStatus> = None;
        loop {
            let run = self.get_run(factory, run_id).await?;
            if last.as_ref() != Some(&run.status) {
                on_status(&run);
                last = Some(run.status.clone());
            }
            if run.status.is_terminal() {
                return Ok(run);
            }
            let timeout = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let timed_out = tokio::select! {
                _ = tokio::time::sleep(wait.poll_interval) => continue,
                _ = timeout => true,
                _ = cancel.as_mut() => false,
            };
            let outcome = match self.cancel(factory, run_id, true).await {
                Ok(()) => "its cancellation was requested".to_owned(),
                Err(e) => format!("cancelling it failed: {e}"),
            };
            return Err(if timed_out {
                AdfError::TimedOut {
                    run_id: run_id.clone(),
                    timeout: wait.timeout.unwrap_or_default(),
                    cancel: outcome,
                }
            } else {
                AdfError::Cancelled {
                    run_id: run_id.clone(),
                    cancel: outcome,
                }
            });
        }
    }
}

/// How far this agent's clock may be from Data Factory's when runs are looked up.
const CLOCK_SKEW: Duration = Duration::from_secs(600);

/// Statuses after which a `createRun` may or may not have started a run.
fn outcome_unknown(status: task_sdk::http::StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 500 | 502 | 503 | 504)
}

fn run_id_text(run: &Value) -> Option<String> {
    run.get("runId").and_then(Value::as_str).map(str::to_owned)
}

fn run_id_of(action: &str, answer: &Answer) -> Result<RunId, AdfError> {
    answer
        .json()
        .and_then(|v| v.get("runId").and_then(Value::as_str).map(str::to_owned))
        .filter(|id| !id.is_empty())
        .map(RunId)
        .ok_or_else(|| AdfError::Unexpected {
            action: action.to_owned(),
            status: answer.status.as_u16(),
            detail: "no runId in the answer".into(),
        })
}

/// Whether `run` (a `queryPipelineRuns` entry) could be the one a `createRun` of `pipeline` with
/// `parameters` started after `since`: started by hand (not a trigger or a parent pipeline),
/// not before `since`, with every parameter sent. Data Factory reports parameter values as
/// strings (JSON text for arrays and objects) and adds the pipeline's defaults.
fn is_our_run(run: &Value, pipeline: &str, parameters: &Value, since: SystemTime) -> bool {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let same_pipeline = text(run, "pipelineName").is_some_and(|p| p.eq_ignore_ascii_case(pipeline));
    let manual = run
        .get("invokedBy")
        .and_then(|i| text(i, "invokedByType"))
        .is_none_or(|t| t.eq_ignore_ascii_case("Manual"));
    // RFC 3339 UTC timestamps compare as text to the second.
    let since = crate::time::rfc3339(since);
    let recent = text(run, "runStart")
        .is_none_or(|start| !start.ends_with('Z') || start.get(..19) >= since.get(..19));
    let reported = run.get("parameters").cloned().unwrap_or(Value::Null);
    let same_parameters = parameters
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, sent)| match reported.get(k) {
            Some(Value::String(s)) => match sent {
                Value::String(sent) => s == sent,
                other => serde_json::from_str::<Value>(s).is_ok_and(|v| v == *other),
            },
            Some(other) => other == sent,
            None => false,
        });
    same_pipeline && manual && recent && same_parameters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_errors_only_when_present() {
        let ok = ActivityRun::from_json(
            &json!({"activityName": "a", "activityType": "Copy", "status": "Succeeded",
            "error": {"errorCode": "", "message": "", "failureType": "", "target": "a"}}),
        );
        assert!(ok.error.is_none());
        let bad = ActivityRun::from_json(
            &json!({"activityName": "b", "activityType": "Fail", "status": "Failed",
            "error": {"errorCode": "2200", "message": "boom", "failureType": "UserError"}}),
        );
        assert!(bad.failed());
        assert_eq!(
            bad.error.unwrap(),
            ActivityError {
                error_code: "2200".into(),
                message: "boom".into(),
                failure_type: "UserError".into()
            }
        );
    }

    #[test]
    fn a_run_is_ours_only_with_our_pipeline_parameters_trigger_and_time() {
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = crate::time::rfc3339(since + Duration::from_secs(1));
        let run = json!({"runId": "r", "pipelineName": "Ingest", "runStart": at,
            "invokedBy": {"invokedByType": "Manual"},
            "parameters": {"file": "a.csv", "rows": "5", "cfg": "{\"k\": [1]}", "default": "x"}});
        let sent = json!({"file": "a.csv", "rows": 5, "cfg": {"k": [1]}});
        assert!(is_our_run(&run, "ingest", &sent, since));
        assert!(is_our_run(&run, "ingest", &json!({}), since));
        assert!(!is_our_run(&run, "other", &sent, since));
        assert!(!is_our_run(
            &run,
            "ingest",
            &json!({"file": "b.csv"}),
            since
        ));
        assert!(!is_our_run(&run, "ingest", &json!({"missing": "x"}), since));
        let mut triggered = run.clone();
        triggered["invokedBy"]["invokedByType"] = json!("ScheduleTrigger");
        assert!(!is_our_run(&triggered, "ingest", &sent, since));
        let later = since + Duration::from_secs(60);
        assert!(
            !is_our_run(&run, "ingest", &sent, later),
            "started before the POST"
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(RunStatus::parse("InProgress"), RunStatus::InProgress);
        assert!(!RunStatus::parse("Queued").is_terminal());
        assert!(!RunStatus::parse("Canceling").is_terminal());
        assert!(RunStatus::parse("Cancelled").is_terminal());
        assert_eq!(RunStatus::parse("Weird"), RunStatus::Other("Weird".into()));
    }
}
