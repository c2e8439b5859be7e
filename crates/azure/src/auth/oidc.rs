//! Workload identity federation's client assertion: an OIDC token the agent's server issues for
//! the service connection (agent-contract.md §2).

use std::fmt;

use serde_json::Value;
use task_sdk::http::{Method, Request};
use task_sdk::{HttpClient, Replay};
use url::Url;

use super::response::truncate;
use super::{scrub, AuthError};

/// Requests the OIDC token with task-sdk's client (retry policy, proxy, CA) before every
/// Entra ID token request: these tokens live only minutes.
#[derive(Clone)]
pub struct OidcAssertion {
    pub(crate) connection: String,
    pub(crate) uri: Url,
    pub(crate) system_access_token: String,
    pub(crate) http: HttpClient,
}

impl fmt::Debug for OidcAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcAssertion")
            .field("connection", &self.connection)
            .field("uri", &self.uri.as_str())
            .finish()
    }
}

impl OidcAssertion {
    /// Requests the OIDC token: `POST {uri}?api-version=7.1&serviceConnectionId={id}` with
    /// `SYSTEMVSSCONNECTION`'s token and `X-TFS-FedAuthRedirect: Suppress` (a 401 instead of a
    /// redirect to a sign-in page). The token is registered as a secret.
    pub async fn request(&self) -> Result<String, AuthError> {
        let mut url = self.uri.clone();
        url.query_pairs_mut()
            .append_pair("api-version", "7.1")
            .append_pair("serviceConnectionId", &self.connection);
        let request = Request::from_url(Method::POST, url)
            .bearer_auth(&self.system_access_token)
            .header("X-TFS-FedAuthRedirect", "Suppress")
            .header("content-type", "application/json")
            .body("{}");
        // Asking for a token twice is harmless.
        let response = self
            .http
            .send(request, Replay::Safe)
            .await
            .map_err(|source| AuthError::Transport {
                connection: self.connection.clone(),
                source,
            })?;
        let status = response.status();
        let body = response.text();
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| truncate(&body, 300));
            let hint = match status.as_u16() {
                401 | 403 => ": check that the pipeline is authorized to use this service connection and that the job's access token is valid",
                404 => ": the agent's OIDC endpoint does not exist (Azure DevOps Server before 2022.1 has none); use a service principal secret there",
                _ => "",
            };
            let message = scrub(&message, &[&self.system_access_token]);
            return Err(AuthError::OidcRequest {
                connection: self.connection.clone(),
                status: status.as_u16(),
                detail: format!("{message}{hint}"),
            });
        }
        let token = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("oidcToken")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AuthError::BadResponse {
                connection: self.connection.clone(),
                what: "the agent's OIDC endpoint",
                detail: "no oidcToken in the answer".into(),
            })?;
        task_sdk::secrets::register(&token);
        Ok(token)
    }
}
