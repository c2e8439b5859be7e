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

    fn from_answer(action: &str, answer: &Answer) -> AdfError {
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

    fn url(&self, factory: &FactoryRef, tail: &[&str], query: &[(&str, &str)]) -> Url {
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

    async fn call(
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
        // Not replayed after a server error: a second POST would start a second run.
        let answer = self
            .call(&action, Method::POST, url, Some(&body), Replay::ByMethod)
            .await?;
        answer
            .json()
            .and_then(|v| v.get("runId").and_then(Value::as_str).map(str::to_owned))
            .filter(|id| !id.is_empty())
            .map(RunId)
            .ok_or_else(|| AdfError::Unexpected {
                action,
                status: answer.status.as_u16(),
                detail: "no runId in the answer".into(),
            })
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
    fn statuses() {
        assert_eq!(RunStatus::parse("InProgress"), RunStatus::InProgress);
        assert!(!RunStatus::parse("Queued").is_terminal());
        assert!(!RunStatus::parse("Canceling").is_terminal());
        assert!(RunStatus::parse("Cancelled").is_terminal());
        assert_eq!(RunStatus::parse("Weird"), RunStatus::Other("Weird".into()));
    }
}
