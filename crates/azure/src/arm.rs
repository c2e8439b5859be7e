//! Azure Resource Manager template deployments (api-version 2021-04-01) at resource group,
//! subscription and management group scope: resource groups, validate, deploy and wait
//! (following `Azure-AsyncOperation`/`Location` and honouring `Retry-After`), deployment
//! operations (paged by `nextLink`), what-if and cancel.
//!
//! Every request carries a bearer token for the connection's ARM audience; a 401
//! `ExpiredAuthenticationToken` refreshes it once. URLs the service hands back
//! (`Azure-AsyncOperation`, `Location`, `nextLink`) are followed only on ARM's own origin, so
//! the token is never sent elsewhere.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use task_sdk::http::{Method, StatusCode};
use task_sdk::{AzureRmConnection, HttpClient, Replay, SendError};
use url::Url;

use crate::auth::{arm_scope, AuthError, Credential};
use crate::error_tree::ArmErrorTree;
use crate::rest::{Answer, Bearer, RestError};

/// The ARM api-version of every call.
pub const API_VERSION: &str = "2021-04-01";

/// Where a deployment runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    ResourceGroup { subscription: String, group: String },
    Subscription { subscription: String },
    ManagementGroup { group: String },
}

impl Scope {
    /// The path segments of the scope, e.g. `["subscriptions", "s", "resourcegroups", "rg"]`.
    fn segments(&self) -> Vec<&str> {
        match self {
            Scope::ResourceGroup {
                subscription,
                group,
            } => vec!["subscriptions", subscription, "resourcegroups", group],
            Scope::Subscription { subscription } => vec!["subscriptions", subscription],
            Scope::ManagementGroup { group } => vec![
                "providers",
                "Microsoft.Management",
                "managementGroups",
                group,
            ],
        }
    }

    /// Whether deployments at this scope need a top-level `location`.
    pub fn needs_location(&self) -> bool {
        !matches!(self, Scope::ResourceGroup { .. })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::ResourceGroup {
                subscription,
                group,
            } => write!(f, "resource group '{group}' (subscription {subscription})"),
            Scope::Subscription { subscription } => write!(f, "subscription {subscription}"),
            Scope::ManagementGroup { group } => write!(f, "management group '{group}'"),
        }
    }
}

/// ARM's deployment modes (`Validation` is the task's mode, not ARM's: it validates with
/// `Incremental`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentMode {
    Incremental,
    /// Deletes resources of the resource group that the template does not name.
    Complete,
}

impl DeploymentMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentMode::Incremental => "Incremental",
            DeploymentMode::Complete => "Complete",
        }
    }
}

/// The template: inline JSON, or a URL ARM downloads (`templateLink`).
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateSource {
    Inline(Value),
    Link(String),
}

/// The parameters: none, the inline `parameters` object (`{"name": {"value": …}}`), or a URL
/// ARM downloads (`parametersLink`).
#[derive(Debug, Clone, PartialEq)]
pub enum ParametersSource {
    None,
    Inline(Value),
    Link(String),
}

/// What validate, deploy and what-if send.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRequest {
    pub template: TemplateSource,
    pub parameters: ParametersSource,
    pub mode: DeploymentMode,
    /// Where the deployment's metadata lives; required at subscription and management group
    /// scope, not sent at resource group scope.
    pub location: Option<String>,
}

impl DeploymentRequest {
    /// An inline template with an inline `parameters` object, no location.
    pub fn inline(template: Value, parameters: Value, mode: DeploymentMode) -> DeploymentRequest {
        DeploymentRequest {
            template: TemplateSource::Inline(template),
            parameters: ParametersSource::Inline(parameters),
            mode,
            location: None,
        }
    }

    pub fn with_location(mut self, location: impl Into<String>) -> DeploymentRequest {
        self.location = Some(location.into());
        self
    }

    /// The request body at `scope`: `{"properties": {template|templateLink,
    /// parameters|parametersLink, mode}, "location"?}`.
    pub fn body(&self, scope: &Scope) -> Value {
        let mut properties = json!({ "mode": self.mode.as_str() });
        match &self.template {
            TemplateSource::Inline(t) => properties["template"] = t.clone(),
            TemplateSource::Link(uri) => properties["templateLink"] = json!({ "uri": uri }),
        }
        match &self.parameters {
            ParametersSource::None => {}
            ParametersSource::Inline(p) => properties["parameters"] = p.clone(),
            ParametersSource::Link(uri) => properties["parametersLink"] = json!({ "uri": uri }),
        }
        let mut body = json!({ "properties": properties });
        if scope.needs_location() {
            if let Some(location) = &self.location {
                body["location"] = json!(location);
            }
        }
        body
    }
}

/// A deployment's `provisioningState`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvisioningState {
    Accepted,
    Running,
    Succeeded,
    Failed,
    Canceled,
    /// Any other state ARM may report (`Deleting`, `Waiting`, …); not terminal.
    Other(String),
}

impl ProvisioningState {
    pub fn parse(text: &str) -> ProvisioningState {
        match text.to_ascii_lowercase().as_str() {
            "accepted" => ProvisioningState::Accepted,
            "running" | "inprogress" => ProvisioningState::Running,
            "succeeded" => ProvisioningState::Succeeded,
            "failed" => ProvisioningState::Failed,
            "canceled" | "cancelled" => ProvisioningState::Canceled,
            _ => ProvisioningState::Other(text.to_owned()),
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            ProvisioningState::Succeeded | ProvisioningState::Failed | ProvisioningState::Canceled
        )
    }
}

impl fmt::Display for ProvisioningState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProvisioningState::Accepted => "Accepted",
            ProvisioningState::Running => "Running",
            ProvisioningState::Succeeded => "Succeeded",
            ProvisioningState::Failed => "Failed",
            ProvisioningState::Canceled => "Canceled",
            ProvisioningState::Other(s) => s,
        })
    }
}

/// A deployment as `GET …/deployments/{name}` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub id: String,
    pub name: String,
    pub provisioning_state: ProvisioningState,
    /// `properties.outputs`: `{"name": {"type": "String", "value": …}}`.
    pub outputs: Option<Value>,
    /// `properties.error` of a failed deployment.
    pub error: Option<ArmErrorTree>,
    pub correlation_id: Option<String>,
    pub timestamp: Option<String>,
    pub duration: Option<String>,
    pub output_resources: Vec<String>,
}

impl Deployment {
    pub fn succeeded(&self) -> bool {
        self.provisioning_state == ProvisioningState::Succeeded
    }

    fn from_json(v: &Value) -> Deployment {
        let p = v.get("properties").unwrap_or(&Value::Null);
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Deployment {
            id: text(v, "id").unwrap_or_default(),
            name: text(v, "name").unwrap_or_default(),
            provisioning_state: ProvisioningState::parse(
                p.get("provisioningState")
                    .and_then(Value::as_str)
                    .unwrap_or("Accepted"),
            ),
            outputs: p.get("outputs").filter(|o| !o.is_null()).cloned(),
            error: p.get("error").and_then(ArmErrorTree::from_body),
            correlation_id: text(p, "correlationId"),
            timestamp: text(p, "timestamp"),
            duration: text(p, "duration"),
            output_resources: p
                .get("outputResources")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// A deployment ARM accepted, with where to follow it.
#[derive(Debug, Clone)]
pub struct StartedDeployment {
    pub scope: Scope,
    pub name: String,
    /// The deployment as the PUT answered (usually `Accepted`).
    pub deployment: Deployment,
    async_operation: Option<Url>,
    location: Option<Url>,
    retry_after: Option<Duration>,
}

impl StartedDeployment {
    /// The `Azure-AsyncOperation` URL, if ARM gave one.
    pub fn async_operation_url(&self) -> Option<&Url> {
        self.async_operation.as_ref()
    }
}

/// How to wait for a long-running operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOptions {
    /// Give up (and cancel a deployment) after this long; `None`: wait as long as it takes.
    pub timeout: Option<Duration>,
    /// The wait between polls when the answer has no `Retry-After` (the Microsoft task: 15 s).
    pub default_interval: Duration,
    /// The shortest wait between polls, whatever `Retry-After` says (a `Retry-After: 0`
    /// must not turn into a tight loop).
    pub min_interval: Duration,
    /// The longest wait between polls, whatever `Retry-After` says.
    pub max_interval: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            timeout: None,
            default_interval: Duration::from_secs(15),
            min_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(60),
        }
    }
}

impl WaitOptions {
    fn interval(&self, retry_after: Option<Duration>) -> Duration {
        retry_after
            .unwrap_or(self.default_interval)
            .clamp(self.min_interval, self.max_interval.max(self.min_interval))
    }
}

/// One deployment operation (`GET …/deployments/{name}/operations`).
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub operation_id: String,
    /// `Create`, `Read`, `EvaluateDeploymentOutput`, …
    pub provisioning_operation: Option<String>,
    pub provisioning_state: String,
    /// The resource provider's HTTP status name (`OK`, `Created`, `BadRequest`, `Conflict`).
    pub status_code: Option<String>,
    pub resource_type: Option<String>,
    pub resource_name: Option<String>,
    pub resource_id: Option<String>,
    /// `statusMessage.error` of a failed operation.
    pub error: Option<ArmErrorTree>,
    pub timestamp: Option<String>,
    pub duration: Option<String>,
}

impl Operation {
    pub fn failed(&self) -> bool {
        self.provisioning_state.eq_ignore_ascii_case("Failed")
    }

    fn from_json(v: &Value) -> Operation {
        let p = v.get("properties").unwrap_or(&Value::Null);
        let target = p.get("targetResource").unwrap_or(&Value::Null);
        let text = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let error = match p.get("statusMessage") {
            Some(Value::String(s)) if !s.is_empty() => {
                // Some providers put a JSON document in a string.
                serde_json::from_str::<Value>(s)
                    .ok()
                    .and_then(|v| ArmErrorTree::from_body(&v))
                    .or_else(|| Some(ArmErrorTree::leaf("", s.clone())))
            }
            Some(m @ Value::Object(_)) => m
                .get("error")
                .and_then(ArmErrorTree::from_body)
                .or_else(|| ArmErrorTree::from_body(m)),
            _ => None,
        };
        Operation {
            operation_id: text(v, "operationId").unwrap_or_default(),
            provisioning_operation: text(p, "provisioningOperation"),
            provisioning_state: text(p, "provisioningState").unwrap_or_default(),
            status_code: text(p, "statusCode"),
            resource_type: text(target, "resourceType"),
            resource_name: text(target, "resourceName"),
            resource_id: text(target, "id"),
            error,
            timestamp: text(p, "timestamp"),
            duration: text(p, "duration"),
        }
    }
}

/// What-if's change types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeType {
    Create,
    Delete,
    Ignore,
    Deploy,
    NoChange,
    Modify,
    Unsupported,
    Other(String),
}

impl ChangeType {
    fn parse(text: &str) -> ChangeType {
        match text {
            "Create" => ChangeType::Create,
            "Delete" => ChangeType::Delete,
            "Ignore" => ChangeType::Ignore,
            "Deploy" => ChangeType::Deploy,
            "NoChange" => ChangeType::NoChange,
            "Modify" => ChangeType::Modify,
            "Unsupported" => ChangeType::Unsupported,
            other => ChangeType::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ChangeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeType::Create => "Create",
            ChangeType::Delete => "Delete",
            ChangeType::Ignore => "Ignore",
            ChangeType::Deploy => "Deploy",
            ChangeType::NoChange => "NoChange",
            ChangeType::Modify => "Modify",
            ChangeType::Unsupported => "Unsupported",
            ChangeType::Other(s) => s,
        })
    }
}

/// One property-level difference of a `Modify` (or `Deploy`) change.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyChange {
    pub path: String,
    /// `Create`, `Delete`, `Modify`, `Array`, `NoEffect`.
    pub property_change_type: String,
    #[serde(default)]
    pub before: Option<Value>,
    #[serde(default)]
    pub after: Option<Value>,
    /// The element changes of an `Array` change.
    #[serde(default)]
    pub children: Vec<PropertyChange>,
}

/// One resource's predicted change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub resource_id: String,
    pub change_type: ChangeType,
    pub delta: Vec<PropertyChange>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub unsupported_reason: Option<String>,
}

/// The result of what-if.
#[derive(Debug, Clone, PartialEq)]
pub struct WhatIfResult {
    pub changes: Vec<Change>,
}

impl WhatIfResult {
    fn from_json(v: &Value) -> WhatIfResult {
        let changes = v
            .pointer("/properties/changes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|c| Change {
                        resource_id: c
                            .get("resourceId")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        change_type: ChangeType::parse(
                            c.get("changeType").and_then(Value::as_str).unwrap_or(""),
                        ),
                        delta: c
                            .get("delta")
                            .cloned()
                            .and_then(|d| serde_json::from_value(d).ok())
                            .unwrap_or_default(),
                        before: c.get("before").filter(|b| !b.is_null()).cloned(),
                        after: c.get("after").filter(|a| !a.is_null()).cloned(),
                        unsupported_reason: c
                            .get("unsupportedReason")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default();
        WhatIfResult { changes }
    }
}

/// What became of the cancellation a timeout or a pipeline cancel requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Requested,
    /// ARM refused (the deployment finished meanwhile, typically): its message.
    Refused(String),
}

impl fmt::Display for CancelOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelOutcome::Requested => f.write_str("its cancellation was requested"),
            CancelOutcome::Refused(m) => write!(f, "cancelling it failed: {m}"),
        }
    }
}

/// Why an ARM call failed. `Display` of [`ArmError::Api`] includes ARM's whole error tree.
#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{action}: {source}")]
    Transport {
        action: String,
        #[source]
        source: SendError,
    },
    #[error("{action} failed (HTTP {status}):\n{tree}")]
    Api {
        action: String,
        status: u16,
        tree: Box<ArmErrorTree>,
    },
    #[error("{action}: unexpected answer (HTTP {status}): {detail}")]
    Unexpected {
        action: String,
        status: u16,
        detail: String,
    },
    #[error("deployment '{name}' did not finish within {} s; {cancel}", timeout.as_secs())]
    TimedOut {
        name: String,
        timeout: Duration,
        cancel: CancelOutcome,
    },
    #[error("deployment '{name}' was stopped because the pipeline was cancelled; {cancel}")]
    Cancelled { name: String, cancel: CancelOutcome },
    #[error("{action} did not finish within {} s", timeout.as_secs())]
    WaitTimedOut { action: String, timeout: Duration },
    #[error("the Azure Resource Manager URL '{url}' of service connection '{connection}' is not valid: edit the service connection")]
    BadBaseUrl { connection: String, url: String },
}

impl ArmError {
    /// ARM's error tree, for [`ArmError::Api`].
    pub fn tree(&self) -> Option<&ArmErrorTree> {
        match self {
            ArmError::Api { tree, .. } => Some(tree),
            _ => None,
        }
    }

    /// ARM's top-level error code, for [`ArmError::Api`].
    pub fn code(&self) -> Option<&str> {
        self.tree().map(|t| t.code.as_str())
    }

    fn from_rest(action: &str, e: RestError) -> ArmError {
        match e {
            RestError::Auth(a) => ArmError::Auth(a),
            RestError::Send(source) => ArmError::Transport {
                action: action.to_owned(),
                source,
            },
        }
    }

    fn from_answer(action: &str, answer: &Answer) -> ArmError {
        let tree = answer
            .json()
            .as_ref()
            .and_then(ArmErrorTree::from_body)
            .unwrap_or_else(|| {
                let body = answer.body.trim();
                ArmErrorTree::leaf(
                    answer.status.canonical_reason().unwrap_or("Error"),
                    if body.is_empty() {
                        "(no error body)".to_owned()
                    } else {
                        body.chars().take(500).collect()
                    },
                )
            });
        ArmError::Api {
            action: action.to_owned(),
            status: answer.status.as_u16(),
            tree: Box::new(tree),
        }
    }

    fn unexpected(action: &str, answer: &Answer, detail: impl Into<String>) -> ArmError {
        ArmError::Unexpected {
            action: action.to_owned(),
            status: answer.status.as_u16(),
            detail: detail.into(),
        }
    }
}

/// The ARM client of one service connection.
#[derive(Debug, Clone)]
pub struct Arm {
    base: Url,
    rest: Bearer,
}

/// How a wait ended early.
enum Interrupt {
    Timeout,
    Cancelled,
}

impl Arm {
    /// The client for the connection's ARM endpoint (`ENDPOINT_URL_<id>`) with tokens for its
    /// audience ([`arm_scope`]).
    pub fn new(
        conn: &AzureRmConnection,
        credential: Credential,
        http: HttpClient,
    ) -> Result<Arm, ArmError> {
        let base = Url::parse(&conn.resource_manager_url).map_err(|_| ArmError::BadBaseUrl {
            connection: conn.id.clone(),
            url: conn.resource_manager_url.clone(),
        })?;
        Ok(Arm::with_base(base, credential, http, arm_scope(conn)))
    }

    /// A client for an explicit base URL and token scope.
    pub fn with_base(
        base: Url,
        credential: Credential,
        http: HttpClient,
        token_scope: String,
    ) -> Arm {
        Arm {
            base,
            rest: Bearer {
                http,
                credential,
                scope: token_scope,
            },
        }
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url.query_pairs_mut()
            .clear()
            .append_pair("api-version", API_VERSION);
        url
    }

    fn deployment_url(&self, scope: &Scope, name: &str, action: Option<&str>) -> Url {
        let mut segments = scope.segments();
        segments.extend(["providers", "Microsoft.Resources", "deployments", name]);
        segments.extend(action);
        self.url(&segments)
    }

    /// A URL the service handed back, accepted only on ARM's own origin.
    fn followed(&self, action: &str, answer: &Answer, link: &str) -> Result<Url, ArmError> {
        let url = Url::parse(link)
            .or_else(|_| self.base.join(link))
            .map_err(|_| ArmError::unexpected(action, answer, format!("invalid URL '{link}'")))?;
        if url.origin() != self.base.origin() {
            return Err(ArmError::unexpected(
                action,
                answer,
                format!(
                    "refusing to follow '{}' outside the connection's ARM endpoint '{}'",
                    url.origin().ascii_serialization(),
                    self.base.origin().ascii_serialization()
                ),
            ));
        }
        Ok(url)
    }

    async fn call(
        &self,
        action: &str,
        method: Method,
        url: Url,
        body: Option<&Value>,
        replay: Replay,
    ) -> Result<Answer, ArmError> {
        self.rest
            .call(method, url, body, replay)
            .await
            .map_err(|e| ArmError::from_rest(action, e))
    }

    /// `HEAD /subscriptions/{sub}/resourcegroups/{rg}`: 204 exists, 404 not.
    pub async fn resource_group_exists(
        &self,
        subscription: &str,
        group: &str,
    ) -> Result<bool, ArmError> {
        let action = format!("checking resource group '{group}'");
        let url = self.url(&["subscriptions", subscription, "resourcegroups", group]);
        let answer = self
            .call(&action, Method::HEAD, url, None, Replay::ByMethod)
            .await?;
        match answer.status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(ArmError::from_answer(&action, &answer)),
        }
    }

    /// `PUT /subscriptions/{sub}/resourcegroups/{rg}` with `{"location": …}`.
    pub async fn create_resource_group(
        &self,
        subscription: &str,
        group: &str,
        location: &str,
    ) -> Result<(), ArmError> {
        let action = format!("creating resource group '{group}' in '{location}'");
        let url = self.url(&["subscriptions", subscription, "resourcegroups", group]);
        let body = json!({ "location": location });
        let answer = self
            .call(&action, Method::PUT, url, Some(&body), Replay::ByMethod)
            .await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(ArmError::from_answer(&action, &answer))
        }
    }

    /// `DELETE /subscriptions/{sub}/resourcegroups/{rg}`, then follows `Location` until done.
    pub async fn delete_resource_group(
        &self,
        subscription: &str,
        group: &str,
        wait: &WaitOptions,
    ) -> Result<(), ArmError> {
        let action = format!("deleting resource group '{group}'");
        let url = self.url(&["subscriptions", subscription, "resourcegroups", group]);
        let answer = self
            .call(&action, Method::DELETE, url, None, Replay::ByMethod)
            .await?;
        match answer.status {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            StatusCode::ACCEPTED => self
                .follow_location(&action, answer, wait)
                .await
                .map(|_| ()),
            _ => Err(ArmError::from_answer(&action, &answer)),
        }
    }

    /// Polls a `Location` URL while it answers 202; returns the final answer's JSON (or
    /// `Null` for an empty body).
    async fn follow_location(
        &self,
        action: &str,
        first: Answer,
        wait: &WaitOptions,
    ) -> Result<Value, ArmError> {
        let deadline = wait.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut answer = first;
        loop {
            let link = answer
                .header("location")
                .ok_or_else(|| {
                    ArmError::unexpected(action, &answer, "202 without a Location header")
                })?
                .to_owned();
            let url = self.followed(action, &answer, &link)?;
            let pause = wait.interval(answer.retry_after());
            if let Some(deadline) = deadline {
                if tokio::time::Instant::now() + pause > deadline {
                    return Err(ArmError::WaitTimedOut {
                        action: action.to_owned(),
                        timeout: wait.timeout.unwrap_or_default(),
                    });
                }
            }
            tokio::time::sleep(pause).await;
            answer = self
                .call(action, Method::GET, url, None, Replay::ByMethod)
                .await?;
            match answer.status {
                StatusCode::ACCEPTED => continue,
                s if s.is_success() => {
                    let value = answer.json().unwrap_or(Value::Null);
                    if let Some(error) = value.get("error").and_then(ArmErrorTree::from_body) {
                        return Err(ArmError::Api {
                            action: action.to_owned(),
                            status: answer.status.as_u16(),
                            tree: Box::new(error),
                        });
                    }
                    return Ok(value);
                }
                _ => return Err(ArmError::from_answer(action, &answer)),
            }
        }
    }

    /// `POST …/deployments/{name}/validate`: `Ok` when ARM finds the deployment valid, else
    /// [`ArmError::Api`] with ARM's error (`InvalidTemplate`, `InvalidTemplateDeployment` with
    /// policy violations, …).
    pub async fn validate(
        &self,
        scope: &Scope,
        name: &str,
        request: &DeploymentRequest,
    ) -> Result<(), ArmError> {
        let action = format!("validating deployment '{name}' at {scope}");
        let url = self.deployment_url(scope, name, Some("validate"));
        let body = request.body(scope);
        let answer = self
            .call(&action, Method::POST, url, Some(&body), Replay::Safe)
            .await?;
        match answer.status {
            StatusCode::ACCEPTED => {
                // Newer ARM versions validate asynchronously.
                let wait = WaitOptions {
                    timeout: Some(Duration::from_secs(1800)),
                    ..WaitOptions::default()
                };
                self.follow_location(&action, answer, &wait).await?;
                Ok(())
            }
            s if s.is_success() => match answer
                .json()
                .as_ref()
                .and_then(|v| v.get("error"))
                .and_then(ArmErrorTree::from_body)
            {
                Some(tree) => Err(ArmError::Api {
                    action,
                    status: s.as_u16(),
                    tree: Box::new(tree),
                }),
                None => Ok(()),
            },
            _ => Err(ArmError::from_answer(&action, &answer)),
        }
    }

    /// `PUT …/deployments/{name}`: starts the deployment. Follow it with
    /// [`Arm::wait_deployment`].
    ///
    /// The PUT carries a fresh `x-ms-correlation-request-id`, which ARM records as the
    /// deployment's `correlationId`. A PUT is replayed after a lost answer (the retry policy),
    /// and if the lost one had started the deployment, ARM answers the replay 409
    /// `DeploymentActive`: the deployment is then read, and followed when it carries this PUT's
    /// correlation id, so a lost answer neither starts a second deployment nor fails the task.
    pub async fn deploy(
        &self,
        scope: &Scope,
        name: &str,
        request: &DeploymentRequest,
    ) -> Result<StartedDeployment, ArmError> {
        let action = format!("starting deployment '{name}' at {scope}");
        let url = self.deployment_url(scope, name, None);
        let body = request.body(scope);
        let correlation = correlation_id();
        let answer = self
            .rest
            .call_with(
                Method::PUT,
                url,
                Some(&body),
                Replay::ByMethod,
                &[("x-ms-correlation-request-id", &correlation)],
            )
            .await
            .map_err(|e| ArmError::from_rest(&action, e))?;
        if answer.status == StatusCode::CONFLICT
            && answer.error_code().as_deref() == Some("DeploymentActive")
        {
            let existing = self.get_deployment(scope, name).await?;
            if existing.correlation_id.as_deref() == Some(correlation.as_str()) {
                tracing::info!(
                    "the answer to starting deployment '{name}' was lost; it is running: following it"
                );
                return Ok(StartedDeployment {
                    scope: scope.clone(),
                    name: name.to_owned(),
                    deployment: existing,
                    async_operation: None,
                    location: None,
                    retry_after: answer.retry_after(),
                });
            }
        }
        if !answer.status.is_success() {
            return Err(ArmError::from_answer(&action, &answer));
        }
        let json = answer
            .json()
            .ok_or_else(|| ArmError::unexpected(&action, &answer, "the answer is not JSON"))?;
        let async_operation = match answer.header("azure-asyncoperation") {
            Some(link) => Some(self.followed(&action, &answer, link)?),
            None => None,
        };
        let location = match answer.header("location") {
            Some(link) => Some(self.followed(&action, &answer, link)?),
            None => None,
        };
        Ok(StartedDeployment {
            scope: scope.clone(),
            name: name.to_owned(),
            deployment: Deployment::from_json(&json),
            async_operation,
            location,
            retry_after: answer.retry_after(),
        })
    }

    /// Waits for a started deployment to finish: polls its `Azure-AsyncOperation` URL (else its
    /// `Location`, else the deployment itself) while it is `Accepted`/`Running`, sleeping
    /// `Retry-After`; then reads the deployment. Returns it whatever its final state (check
    /// [`Deployment::succeeded`]; list its operations on failure). On `timeout`, or when
    /// `cancel` resolves (pipeline cancelled), requests cancellation of the deployment and
    /// returns [`ArmError::TimedOut`] / [`ArmError::Cancelled`].
    pub async fn wait_deployment(
        &self,
        started: &StartedDeployment,
        wait: &WaitOptions,
        cancel: impl Future<Output = ()>,
    ) -> Result<Deployment, ArmError> {
        let mut cancel = std::pin::pin!(cancel);
        let deadline = wait.timeout.map(|t| tokio::time::Instant::now() + t);
        let action = format!("waiting for deployment '{}'", started.name);
        let mut state = started.deployment.provisioning_state.clone();
        if state.is_terminal() {
            return self.get_deployment(&started.scope, &started.name).await;
        }
        let mut pause = wait.interval(started.retry_after);
        loop {
            let interrupt = {
                let sleep = tokio::time::sleep(pause);
                let timeout = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = sleep => None,
                    _ = timeout => Some(Interrupt::Timeout),
                    _ = cancel.as_mut() => Some(Interrupt::Cancelled),
                }
            };
            if let Some(interrupt) = interrupt {
                return Err(self.interrupted(started, interrupt, wait).await);
            }
            let (now, retry_after) = self.poll_deployment(&action, started).await?;
            if now != state {
                tracing::info!("deployment '{}' is {now}", started.name);
                state = now;
            }
            if state.is_terminal() {
                return self.get_deployment(&started.scope, &started.name).await;
            }
            pause = wait.interval(retry_after);
        }
    }

    /// One poll: the state the async operation (or deployment) reports, and its `Retry-After`.
    async fn poll_deployment(
        &self,
        action: &str,
        started: &StartedDeployment,
    ) -> Result<(ProvisioningState, Option<Duration>), ArmError> {
        if let Some(url) = &started.async_operation {
            let answer = self
                .call(action, Method::GET, url.clone(), None, Replay::ByMethod)
                .await?;
            if answer.status == StatusCode::ACCEPTED {
                return Ok((ProvisioningState::Running, answer.retry_after()));
            }
            if !answer.status.is_success() {
                return Err(ArmError::from_answer(action, &answer));
            }
            let status = answer
                .json()
                .and_then(|v| v.get("status").and_then(Value::as_str).map(str::to_owned))
                .ok_or_else(|| {
                    ArmError::unexpected(
                        action,
                        &answer,
                        "no status in the async operation's answer",
                    )
                })?;
            return Ok((ProvisioningState::parse(&status), answer.retry_after()));
        }
        if let Some(url) = &started.location {
            let answer = self
                .call(action, Method::GET, url.clone(), None, Replay::ByMethod)
                .await?;
            return match answer.status {
                StatusCode::ACCEPTED => Ok((ProvisioningState::Running, answer.retry_after())),
                s if s.is_success() => Ok((ProvisioningState::Succeeded, None)),
                // A failed deployment's Location answers with its error; the deployment says more.
                _ => Ok((ProvisioningState::Failed, None)),
            };
        }
        let d = self.get_deployment(&started.scope, &started.name).await?;
        Ok((d.provisioning_state, None))
    }

    async fn interrupted(
        &self,
        started: &StartedDeployment,
        interrupt: Interrupt,
        wait: &WaitOptions,
    ) -> ArmError {
        let cancel = match self.cancel(&started.scope, &started.name).await {
            Ok(()) => CancelOutcome::Requested,
            Err(e) => CancelOutcome::Refused(e.to_string().replace('\n', " ")),
        };
        match interrupt {
            Interrupt::Timeout => ArmError::TimedOut {
                name: started.name.clone(),
                timeout: wait.timeout.unwrap_or_default(),
                cancel,
            },
            Interrupt::Cancelled => ArmError::Cancelled {
                name: started.name.clone(),
                cancel,
            },
        }
    }

    /// `GET …/deployments/{name}`.
    pub async fn get_deployment(&self, scope: &Scope, name: &str) -> Result<Deployment, ArmError> {
        let action = format!("reading deployment '{name}' at {scope}");
        let url = self.deployment_url(scope, name, None);
        let answer = self
            .call(&action, Method::GET, url, None, Replay::ByMethod)
            .await?;
        if !answer.status.is_success() {
            return Err(ArmError::from_answer(&action, &answer));
        }
        let json = answer
            .json()
            .ok_or_else(|| ArmError::unexpected(&action, &answer, "the answer is not JSON"))?;
        Ok(Deployment::from_json(&json))
    }

    /// `GET …/deployments/{name}/operations`, every page (`nextLink`).
    pub async fn list_operations(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Vec<Operation>, ArmError> {
        let action = format!("listing the operations of deployment '{name}'");
        let mut url = self.deployment_url(scope, name, Some("operations"));
        let mut operations = Vec::new();
        // A bound on pages, in case a service keeps handing back the same link.
        for _ in 0..1000 {
            let answer = self
                .call(&action, Method::GET, url, None, Replay::ByMethod)
                .await?;
            if !answer.status.is_success() {
                return Err(ArmError::from_answer(&action, &answer));
            }
            let json = answer
                .json()
                .ok_or_else(|| ArmError::unexpected(&action, &answer, "the answer is not JSON"))?;
            if let Some(values) = json.get("value").and_then(Value::as_array) {
                operations.extend(values.iter().map(Operation::from_json));
            }
            match json
                .get("nextLink")
                .and_then(Value::as_str)
                .filter(|l| !l.is_empty())
            {
                Some(link) => url = self.followed(&action, &answer, link)?,
                None => return Ok(operations),
            }
        }
        Ok(operations)
    }

    /// `POST …/deployments/{name}/whatIf` (result format `FullResourcePayloads`), following
    /// `Location` until the result is ready.
    pub async fn what_if(
        &self,
        scope: &Scope,
        name: &str,
        request: &DeploymentRequest,
        wait: &WaitOptions,
    ) -> Result<WhatIfResult, ArmError> {
        let action = format!("what-if of deployment '{name}' at {scope}");
        let url = self.deployment_url(scope, name, Some("whatIf"));
        let mut body = request.body(scope);
        body["properties"]["whatIfSettings"] = json!({ "resultFormat": "FullResourcePayloads" });
        let answer = self
            .call(&action, Method::POST, url, Some(&body), Replay::Safe)
            .await?;
        let result = match answer.status {
            StatusCode::ACCEPTED => self.follow_location(&action, answer, wait).await?,
            s if s.is_success() => answer.json().unwrap_or(Value::Null),
            _ => return Err(ArmError::from_answer(&action, &answer)),
        };
        if let Some(tree) = result.get("error").and_then(ArmErrorTree::from_body) {
            return Err(ArmError::Api {
                action,
                status: 200,
                tree: Box::new(tree),
            });
        }
        Ok(WhatIfResult::from_json(&result))
    }

    /// `POST …/deployments/{name}/cancel` (only `Accepted`/`Running` deployments can be).
    pub async fn cancel(&self, scope: &Scope, name: &str) -> Result<(), ArmError> {
        let action = format!("cancelling deployment '{name}'");
        let url = self.deployment_url(scope, name, Some("cancel"));
        let answer = self
            .call(&action, Method::POST, url, None, Replay::Safe)
            .await?;
        if answer.status.is_success() {
            tracing::info!("requested cancellation of deployment '{name}'");
            Ok(())
        } else {
            Err(ArmError::from_answer(&action, &answer))
        }
    }
}

/// A random GUID for `x-ms-correlation-request-id`.
fn correlation_id() -> String {
    let (a, b) = (fastrand::u64(..), fastrand::u64(..));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_per_scope() {
        let rg = Scope::ResourceGroup {
            subscription: "s".into(),
            group: "rg".into(),
        };
        let sub = Scope::Subscription {
            subscription: "s".into(),
        };
        let r = DeploymentRequest::inline(
            json!({"a": 1}),
            json!({"p": {"value": 1}}),
            DeploymentMode::Complete,
        )
        .with_location("westeurope");
        assert_eq!(
            r.body(&rg),
            json!({"properties": {"mode": "Complete", "template": {"a": 1}, "parameters": {"p": {"value": 1}}}})
        );
        assert_eq!(r.body(&sub)["location"], json!("westeurope"));
        let linked = DeploymentRequest {
            template: TemplateSource::Link("https://x/t.json".into()),
            parameters: ParametersSource::Link("https://x/p.json".into()),
            mode: DeploymentMode::Incremental,
            location: None,
        };
        assert_eq!(
            linked.body(&rg),
            json!({"properties": {"mode": "Incremental", "templateLink": {"uri": "https://x/t.json"}, "parametersLink": {"uri": "https://x/p.json"}}})
        );
    }

    #[test]
    fn operation_errors_from_status_message() {
        let op = Operation::from_json(&json!({"operationId": "1", "properties": {
            "provisioningState": "Failed", "statusCode": "BadRequest",
            "statusMessage": {"status": "Failed", "error": {"code": "InvalidX", "message": "bad x"}},
            "targetResource": {"id": "/x", "resourceType": "Microsoft.Storage/storageAccounts", "resourceName": "st1"}}}));
        assert!(op.failed());
        assert_eq!(op.error.unwrap().code, "InvalidX");
        assert_eq!(op.resource_name.as_deref(), Some("st1"));
        let op = Operation::from_json(
            &json!({"properties": {"provisioningState": "Failed", "statusMessage": "plain text"}}),
        );
        assert_eq!(op.error.unwrap().message, "plain text");
    }
}
