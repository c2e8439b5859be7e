//! Entra ID access tokens from an AzureRM service connection: one code path per scheme, each a
//! plain HTTP request sent with task-sdk's [`HttpClient`] (the agent's proxy and
//! `AGENT_CAINFO`, and the one retry policy of every task).
//!
//! | scheme | request |
//! | --- | --- |
//! | service principal + secret | `POST {authority}{tenant}/oauth2/v2.0/token`, form `client_id`, `client_secret`, `grant_type=client_credentials`, `scope` |
//! | workload identity federation | [`OidcAssertion`]: `POST $SYSTEM_OIDCREQUESTURI?api-version=7.1&serviceConnectionId={id}` with `SYSTEMVSSCONNECTION`'s token and `X-TFS-FedAuthRedirect: Suppress` → `oidcToken`; then the same token request with `client_assertion` (+ `client_assertion_type=…jwt-bearer`) |
//! | managed identity | App Service style (`GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=…`, `X-IDENTITY-HEADER`) when the agent snapshot has `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, else IMDS (`GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=…`, `Metadata: true`); both without the agent's proxy |
//! | service principal + certificate | not supported: a clear error (use a secret or workload identity federation) |
//!
//! The authority is the connection's (`environmentAuthorityUrl`, else the named cloud's), so
//! sovereign clouds, Azure Stack and the emulator need no special case. Tokens are cached per
//! scope and replaced five minutes before they expire (or at once by [`Credential::refresh`]).
//! Every token is registered with [`task_sdk::secrets::register`] as soon as it is received,
//! and so is the OIDC assertion. Errors name the connection and say what to do: Entra ID's
//! error body (`error`, `error_description`, `error_codes`) is read, its `AADSTS` code
//! summarised (see [`advice`]) and its description cut to the first line; nothing we sent is
//! echoed and server text is masked.
//!
//! # Why not azure_identity
//!
//! This crate used the official `azure_identity` 1.0 / `azure_core` 1.1 credentials until they
//! were measured against these requests ([`AZURE_IDENTITY_MEASUREMENT`]): on top of a binary
//! that already parses the connection, one token costs 224 KB through azure_identity and
//! 128 KB here, error mapping and cache included. Every one of our six task binaries needs
//! Entra ID tokens, on five platforms, inside a .vsix with a 25 MiB limit (20 MiB target), so
//! the ~160 KB per binary saved against the crate this replaced is ~4.8 MB uncompressed across the package.
//! Besides size: azure_identity 1.0 fails to deserialize real Entra ID error bodies (their
//! `error_description` holds escaped `\r\n`), losing the HTTP status and code; it reads
//! managed identity settings only from the process environment, not the agent snapshot; and
//! it retries with azure_core's policy instead of the one every other request of a task uses.

mod entra;
mod managed_identity;
mod oidc;
mod response;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use task_sdk::{Agent, AzureAuth, AzureRmConnection, HttpClient, SendError};
use url::Url;

pub use entra::{advice, Context};
pub use oidc::OidcAssertion;

use entra::ClientProof;
use managed_identity::{Endpoint, ManagedIdentity};

/// What getting tokens costs in binary size, measured on this workspace (module doc).
pub const AZURE_IDENTITY_MEASUREMENT: &str = "x86_64 Linux release binaries (opt-level z, fat LTO, codegen-units 1, panic abort, stripped; reqwest with the workspace's features), 2026-11-21: task-sdk's client and one request 1,881,024 bytes; plus the agent snapshot and a parsed AzureRM connection 1,949,680; plus one token through azure_identity 1.0 / azure_core 1.1 credentials for the three schemes 2,173,880 (+224,200); plus one token through this crate's Credential (the three schemes, Entra ID error mapping, per-scope cache, proxy-free managed identity client) 2,077,440 (+127,760). Saving: 96 KB per binary against bare azure_identity, about 160 KB against the azure_identity-based crate it replaced (which measured 65 KB over bare azure_identity with its OIDC request and error mapping).";

/// The Azure Databricks first-party application; a token for it authenticates to Databricks.
pub const DATABRICKS_RESOURCE: &str = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d";

/// A cached token is replaced this long before it expires, so that no request carries a token
/// that expires on the way.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// An access token and when it stops working. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub expires_on: SystemTime,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"***")
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

impl AccessToken {
    /// Whether the token is still good for a while at `now` (beyond [`REFRESH_MARGIN`]).
    fn fresh_at(&self, now: SystemTime) -> bool {
        now.checked_add(REFRESH_MARGIN)
            .is_some_and(|limit| self.expires_on > limit)
    }
}

/// Why no token could be obtained. Every message names the service connection and says what
/// to do; none contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("service connection '{connection}' uses a service principal certificate, which these tasks do not support yet: edit the connection to use a client secret, or better, convert it to workload identity federation")]
    CertificateNotSupported { connection: String },
    #[error("service connection '{connection}' uses workload identity federation, but {missing}: run the task on an Azure Pipelines agent (3.227 or later) in a job that can request OIDC tokens")]
    OidcUnavailable {
        connection: String,
        missing: &'static str,
    },
    #[error("Azure DevOps refused the OIDC token request for service connection '{connection}' (HTTP {status}): {detail}")]
    OidcRequest {
        connection: String,
        status: u16,
        detail: String,
    },
    /// Entra ID refused the token request; `advice` says what to do, `description` is Entra's
    /// first line (e.g. `AADSTS7000215: Invalid client secret provided…`).
    #[error("{advice} (Entra ID: {description})")]
    Rejected {
        connection: String,
        code: Option<u32>,
        advice: String,
        description: String,
    },
    #[error("the managed identity endpoint refused a token for service connection '{connection}' (HTTP {status}): {detail}. Check that the agent runs on an Azure resource with a managed identity{hint}")]
    ManagedIdentity {
        connection: String,
        status: u16,
        detail: String,
        hint: &'static str,
    },
    #[error("cannot get a token for service connection '{connection}': {source}")]
    Transport {
        connection: String,
        #[source]
        source: SendError,
    },
    #[error("cannot get a token for service connection '{connection}': {detail}")]
    Request { connection: String, detail: String },
    #[error("unexpected answer from {what} for service connection '{connection}': {detail}")]
    BadResponse {
        connection: String,
        what: &'static str,
        detail: String,
    },
    #[error("service connection '{connection}' has an invalid {field} '{value}': edit the service connection")]
    InvalidSetting {
        connection: String,
        field: &'static str,
        value: String,
    },
    #[error("no subscription: set the input 'Subscription' ({input}), or use a service connection with a subscription (connection '{connection}' has none)")]
    NoSubscription {
        connection: String,
        input: &'static str,
    },
}

/// The token scope for ARM: the connection's resource id (audience) + `/.default`, with one
/// slash between them whether or not the resource id ends with one.
pub fn arm_scope(conn: &AzureRmConnection) -> String {
    scope_for(&conn.resource_id)
}

fn scope_for(resource: &str) -> String {
    format!("{}/.default", resource.trim_end_matches('/'))
}

/// A token for Azure Databricks (scope `2ff814a6-…/.default`), for configuredatabricks's
/// service-connection mode.
pub async fn databricks_token(cred: &Credential) -> Result<AccessToken, AuthError> {
    cred.token(&scope_for(DATABRICKS_RESOURCE)).await
}

/// How the connection authenticates, with what its requests need.
enum Method {
    Secret {
        client_id: String,
        secret: String,
    },
    Federated {
        client_id: String,
        assertion: OidcAssertion,
    },
    ManagedIdentity(ManagedIdentity),
}

impl Method {
    fn scheme(&self) -> &'static str {
        match self {
            Method::Secret { .. } => "service principal (client secret)",
            Method::Federated { .. } => "workload identity federation",
            Method::ManagedIdentity(_) => "managed identity",
        }
    }
}

struct Inner {
    connection: String,
    tenant_id: String,
    /// `{authority}{tenant}/oauth2/v2.0/token`.
    token_url: Url,
    method: Method,
    http: HttpClient,
    /// Tokens by scope. Held while a token is fetched, so concurrent callers wait for one
    /// request instead of each sending their own.
    cache: tokio::sync::Mutex<HashMap<String, AccessToken>>,
}

/// Tokens for one AzureRM service connection, cached per scope until five minutes before
/// they expire. Cheap to clone (shared).
#[derive(Clone)]
pub struct Credential {
    inner: Arc<Inner>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("connection", &self.inner.connection)
            .field("scheme", &self.inner.method.scheme())
            .finish()
    }
}

impl Credential {
    /// The credential for `conn`, sending with `http`. Without the agent snapshot a managed
    /// identity can only be IMDS's: use [`Credential::from_agent`] to honour App Service's
    /// `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` and the agent's CA for them.
    pub fn from_connection(
        conn: &AzureRmConnection,
        http: &HttpClient,
    ) -> Result<Credential, AuthError> {
        Credential::build(None, conn, http)
    }

    /// The credential for `conn` as the task runs it: a managed identity's endpoint comes
    /// from the agent snapshot (`IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, else IMDS). The
    /// OIDC request URI and `SYSTEMVSSCONNECTION` token of workload identity federation are
    /// already in `conn`.
    pub fn from_agent(
        agent: &Agent,
        conn: &AzureRmConnection,
        http: &HttpClient,
    ) -> Result<Credential, AuthError> {
        Credential::build(Some(agent), conn, http)
    }

    /// For a task that works in one subscription: that subscription (the value of its
    /// optional input `input`, else the connection's) and the connection's credential as
    /// [`Credential::from_agent`] makes it.
    pub fn for_subscription(
        agent: &Agent,
        conn: &AzureRmConnection,
        subscription: Option<&str>,
        input: &'static str,
        http: &HttpClient,
    ) -> Result<(String, Credential), AuthError> {
        let subscription = subscription
            .map(str::to_owned)
            .or_else(|| conn.subscription_id.clone())
            .ok_or_else(|| AuthError::NoSubscription {
                connection: conn.id.clone(),
                input,
            })?;
        Ok((subscription, Credential::from_agent(agent, conn, http)?))
    }

    fn build(
        agent: Option<&Agent>,
        conn: &AzureRmConnection,
        http: &HttpClient,
    ) -> Result<Credential, AuthError> {
        let connection = conn.id.clone();
        let invalid = |field: &'static str, value: &str| AuthError::InvalidSetting {
            connection: connection.clone(),
            field,
            value: value.to_owned(),
        };
        let method = match &conn.auth {
            AzureAuth::ServicePrincipalSecret { client_id, secret } => {
                task_sdk::secrets::register(secret);
                Method::Secret {
                    client_id: client_id.clone(),
                    secret: secret.clone(),
                }
            }
            AzureAuth::ServicePrincipalCertificate { .. } => {
                return Err(AuthError::CertificateNotSupported { connection })
            }
            AzureAuth::WorkloadIdentityFederation {
                client_id,
                oidc_request_uri,
                system_access_token,
            } => {
                let uri = oidc_request_uri
                    .as_deref()
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| AuthError::OidcUnavailable {
                        connection: connection.clone(),
                        missing: "the agent did not provide System.OidcRequestUri",
                    })?;
                let system_access_token = system_access_token
                    .clone()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| AuthError::OidcUnavailable {
                        connection: connection.clone(),
                        missing: "the agent did not provide the SYSTEMVSSCONNECTION access token",
                    })?;
                task_sdk::secrets::register(&system_access_token);
                let uri = Url::parse(uri).map_err(|_| invalid("System.OidcRequestUri", uri))?;
                Method::Federated {
                    client_id: client_id.clone(),
                    assertion: OidcAssertion {
                        connection: connection.clone(),
                        uri,
                        system_access_token,
                        http: http.clone(),
                    },
                }
            }
            AzureAuth::ManagedIdentity { client_id } => {
                let endpoint =
                    Endpoint::from_agent(agent).map_err(|(field, value)| invalid(field, &value))?;
                let mi_http =
                    managed_identity::client(agent, http).map_err(|e| AuthError::Request {
                        connection: connection.clone(),
                        detail: e.to_string(),
                    })?;
                Method::ManagedIdentity(ManagedIdentity {
                    client_id: client_id.clone().filter(|c| !c.trim().is_empty()),
                    endpoint,
                    http: mi_http,
                })
            }
        };
        let authority = Url::parse(&conn.authority_url)
            .ok()
            .filter(task_sdk::http::is_secure_or_loopback)
            .ok_or_else(|| {
                invalid(
                    "authority URL (environmentAuthorityUrl; https required)",
                    &conn.authority_url,
                )
            })?;
        Ok(Credential {
            inner: Arc::new(Inner {
                token_url: entra::token_url(&authority, &conn.tenant_id),
                connection,
                tenant_id: conn.tenant_id.clone(),
                method,
                http: http.clone(),
                cache: tokio::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The service connection's id, for messages.
    pub fn connection_id(&self) -> &str {
        &self.inner.connection
    }

    /// A token for `scope` (e.g. `https://management.azure.com/.default`), cached until five
    /// minutes before it expires.
    pub async fn token(&self, scope: &str) -> Result<AccessToken, AuthError> {
        let mut cache = self.inner.cache.lock().await;
        if let Some(token) = cache.get(scope) {
            if token.fresh_at(SystemTime::now()) {
                return Ok(token.clone());
            }
        }
        let token = self.fetch(scope).await?;
        cache.insert(scope.to_owned(), token.clone());
        Ok(token)
    }

    /// A new token for `scope`, bypassing the cache (after a service answered
    /// `ExpiredAuthenticationToken` for the cached one).
    pub async fn refresh(&self, scope: &str) -> Result<AccessToken, AuthError> {
        let mut cache = self.inner.cache.lock().await;
        let token = self.fetch(scope).await?;
        cache.insert(scope.to_owned(), token.clone());
        Ok(token)
    }

    async fn fetch(&self, scope: &str) -> Result<AccessToken, AuthError> {
        let inner = &*self.inner;
        let cx = Context {
            connection: &inner.connection,
            tenant: &inner.tenant_id,
            scheme: inner.method.scheme(),
            scope,
        };
        let token = match &inner.method {
            Method::Secret { client_id, secret } => {
                let proof = ClientProof::Secret(secret);
                entra::request_token(&inner.http, &inner.token_url, client_id, scope, proof, &cx)
                    .await
            }
            Method::Federated {
                client_id,
                assertion,
            } => {
                let jwt = assertion.request().await?;
                let proof = ClientProof::Assertion(&jwt);
                entra::request_token(&inner.http, &inner.token_url, client_id, scope, proof, &cx)
                    .await
            }
            Method::ManagedIdentity(mi) => mi.token(scope, &inner.connection).await,
        }?;
        tracing::debug!(
            "got a token for scope {scope} of service connection '{}' ({})",
            inner.connection,
            inner.method.scheme()
        );
        Ok(token)
    }
}

/// Masks registered secrets and `own` ones.
fn scrub(text: &str, own: &[&str]) -> String {
    let mut out = task_sdk::secrets::mask(text);
    for secret in own {
        if secret.len() >= 3 {
            out = out.replace(secret, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_have_one_slash() {
        assert_eq!(
            scope_for("https://management.core.windows.net/"),
            "https://management.core.windows.net/.default"
        );
        assert_eq!(
            scope_for("https://management.azure.com"),
            "https://management.azure.com/.default"
        );
        assert_eq!(
            scope_for(DATABRICKS_RESOURCE),
            "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default"
        );
    }

    #[test]
    fn debug_hides_tokens() {
        let t = AccessToken {
            token: "tok-secret-1".into(),
            expires_on: SystemTime::UNIX_EPOCH,
        };
        assert!(!format!("{t:?}").contains("tok-secret-1"));
    }

    #[test]
    fn tokens_are_replaced_five_minutes_before_they_expire() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let expiring = |secs| AccessToken {
            token: "t".into(),
            expires_on: now + Duration::from_secs(secs),
        };
        assert!(expiring(3600).fresh_at(now));
        assert!(expiring(301).fresh_at(now));
        assert!(!expiring(300).fresh_at(now));
        assert!(!expiring(0).fresh_at(now));
    }

    #[test]
    fn authorities_must_be_https_except_on_loopback() {
        let ok = |u: &str| task_sdk::http::is_secure_or_loopback(&Url::parse(u).unwrap());
        assert!(ok("https://login.microsoftonline.com/"));
        assert!(ok("http://127.0.0.1:8443/"));
        assert!(ok("http://localhost:1/"));
        assert!(ok("http://[::1]:1/"));
        assert!(!ok("http://login.microsoftonline.com/"));
        assert!(!ok("ftp://127.0.0.1/"));
    }

    #[test]
    fn scrub_masks_own_secrets() {
        assert_eq!(
            scrub("bad value my-own-secret here", &["my-own-secret"]),
            "bad value *** here"
        );
    }
}
