//! Everything the emulator remembers, behind one mutex. Handlers lock it, compute, and
//! unlock before any await, so there is no lock ordering to get wrong.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::{adf::PipelineRun, arm::Deployment};

/// An access token this emulator issued.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The resource the token is for, as requested (scope without `/.default`).
    pub audience: String,
    pub expires_at: u64,
    /// Client id of the service principal or managed identity.
    pub subject: String,
    /// `client_secret`, `client_assertion` or `managed_identity`.
    pub grant: &'static str,
}

/// An OIDC token handed out by the emulated agent server (workload identity federation).
#[derive(Debug, Clone)]
pub struct OidcToken {
    pub service_connection_id: String,
    pub issuer: String,
    pub subject: String,
    pub issued_at: u64,
    pub expires_at: u64,
}

/// A long-running operation polled through `Location` (what-if, resource group deletion).
#[derive(Debug, Clone)]
pub struct PolledResult {
    pub polls: u32,
    pub steps: u32,
    pub result: Value,
}

#[derive(Default)]
pub struct State {
    pub tokens: HashMap<String, IssuedToken>,
    pub tokens_issued: u64,
    pub oidc_tokens: HashMap<String, OidcToken>,
    pub oidc_tokens_issued: u64,
    /// Key: lower-cased resource group name.
    pub resource_groups: BTreeMap<String, Value>,
    /// Key: lower-cased resource id.
    pub resources: BTreeMap<String, Value>,
    /// Key: lower-cased deployment id.
    pub deployments: BTreeMap<String, Deployment>,
    /// Key: the operation id in an `Azure-AsyncOperation` URL → lower-cased deployment id.
    pub deployment_operations: HashMap<String, String>,
    /// Key: the operation id in a `Location` URL.
    pub polled_results: HashMap<String, PolledResult>,
    /// Key: run id.
    pub runs: BTreeMap<String, PipelineRun>,
    pub requests: u64,
    /// Deployment PUTs that started a deployment (a replaced one counts again), so a test can
    /// tell that a retry did not start a second one.
    pub deployments_started: u64,
    /// Writes to Data Factory objects (PUT, DELETE, trigger start/stop), so a test can tell
    /// that a deploy wrote nothing.
    pub adf_writes: u64,
    /// Writes answered 429 by [`crate::Options::arm_write_limit`].
    pub writes_throttled: u64,
}

impl State {
    /// The `GET /emulator/state` document.
    pub fn snapshot(&self) -> Value {
        json!({
            "requests": self.requests,
            "deploymentsStarted": self.deployments_started,
            "adfWrites": self.adf_writes,
            "writesThrottled": self.writes_throttled,
            "tokensIssued": self.tokens_issued,
            "oidcTokensIssued": self.oidc_tokens_issued,
            // Who got which token; the token strings themselves are secrets and stay out.
            "tokens": self.tokens.values().map(|t| json!({
                "audience": t.audience,
                "subject": t.subject,
                "grant": t.grant,
                "expiresOn": t.expires_at,
            })).collect::<Vec<_>>(),
            "oidcTokens": self.oidc_tokens.values().map(|t| json!({
                "serviceConnectionId": t.service_connection_id,
                "issuer": t.issuer,
                "subject": t.subject,
            })).collect::<Vec<_>>(),
            "resourceGroups": self.resource_groups.values().collect::<Vec<_>>(),
            "resources": self.resources.values().collect::<Vec<_>>(),
            "deployments": self.deployments.values().map(Deployment::to_json).collect::<Vec<_>>(),
            "pipelineRuns": self.runs.values().map(PipelineRun::to_json).collect::<Vec<_>>(),
        })
    }
}
