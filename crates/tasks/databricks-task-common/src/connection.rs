//! Which workspace a task talks to, with which credentials, and how failures are explained.
//!
//! Order: the task's own `url` / `token` inputs; else the job variables `configuredatabricks`
//! set ([`HOST_VARIABLE`], [`TOKEN_VARIABLE`], and [`TOKEN_EXPIRES_VARIABLE`] for an Entra ID
//! token). The variable names map to the environment names `DATABRICKS_HOST` and
//! `DATABRICKS_TOKEN` that the Databricks CLI reads, so a pipeline that already defines those
//! variables works without the configure step too.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use databricks::{Auth, Error, TokenSource, Workspace};
use task_sdk::{out, Agent, HttpClient, TaskError};

/// The job variable holding the workspace URL (environment: `DATABRICKS_HOST`).
pub const HOST_VARIABLE: &str = "Databricks.Host";
/// The secret job variable holding the token (environment: `SECRET_DATABRICKS_TOKEN`).
pub const TOKEN_VARIABLE: &str = "Databricks.Token";
/// When the token expires, in seconds since the Unix epoch; set only for Entra ID tokens.
pub const TOKEN_EXPIRES_VARIABLE: &str = "Databricks.TokenExpiresOn";

/// Warn when a token from the configure step has less than this left.
const EXPIRY_WARNING: Duration = Duration::from_secs(5 * 60);

/// What kind of credential a connection carries, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialKind {
    /// A token given to this task (its `token` input).
    TokenInput,
    /// A personal access token from the job variable set by configure (or by the pipeline).
    TokenVariable,
    /// An Entra ID token from the job variables set by configure, valid until `expires_on`.
    EntraVariable { expires_on: SystemTime },
    /// An Entra ID token this task obtains itself from an Azure service connection.
    EntraConnection { connection: String },
}

/// A resolved connection. `Debug` never shows the token.
#[derive(Debug, Clone)]
pub struct Connection {
    /// `scheme://host[:port]`, normalised.
    pub host: String,
    pub auth: Auth,
    pub kind: CredentialKind,
}

/// Hosts people paste by mistake, and what they are.
const NOT_WORKSPACES: &[(&str, &str)] = &[
    ("portal.azure.com", "the Azure portal"),
    ("management.azure.com", "Azure Resource Manager"),
    (
        "accounts.azuredatabricks.net",
        "the Databricks account console",
    ),
    (
        "accounts.cloud.databricks.com",
        "the Databricks account console",
    ),
    (
        "login.microsoftonline.com",
        "the Microsoft Entra ID login service",
    ),
    ("dev.azure.com", "Azure DevOps"),
];

/// Checks and normalises a workspace URL (https, or http on loopback; see
/// [`databricks::normalize_host`]) and refuses well-known hosts that are not workspaces.
pub fn workspace_url(raw: &str) -> Result<String, TaskError> {
    let host = databricks::normalize_host(raw)?;
    let name = host
        .split("://")
        .nth(1)
        .unwrap_or_default()
        .split(':')
        .next()
        .unwrap_or_default();
    if let Some((_, what)) = NOT_WORKSPACES
        .iter()
        .find(|(h, _)| name == *h || name.ends_with(&format!(".{h}")))
    {
        return Err(TaskError::new(format!(
            "'{host}' is {what}, not a Databricks workspace URL: give the workspace URL shown on the workspace's Overview page in the Azure portal, e.g. https://adb-1234567890123456.7.azuredatabricks.net"
        )));
    }
    Ok(host)
}

/// A time for messages: UTC, to the second.
pub fn format_utc(t: SystemTime) -> String {
    task_sdk::time::UtcTime::from(t).readable()
}

const NO_CONNECTION: &str = "no Databricks workspace to talk to: add the Configure Databricks task (configuredatabricks) before this one in the same job, or fill in this task's Connection inputs (Workspace URL and Access token)";

/// The input naming an AzureRM service connection.
pub const SERVICE_CONNECTION_INPUT: &str = "azureSubscription";

/// The Entra ID credential of the service connection named by `azureSubscription`, if any.
pub fn entra_credential(
    agent: &Agent,
    http: &HttpClient,
) -> Result<Option<azure::Credential>, TaskError> {
    let Some(id) = agent.input(SERVICE_CONNECTION_INPUT) else {
        return Ok(None);
    };
    let conn = agent.azure_rm(&id)?;
    Ok(Some(azure::Credential::from_agent(agent, &conn, http)?))
}

/// Entra ID tokens for Azure Databricks from a service connection, refreshed before they
/// expire (the credential caches them), so a long wait never outlives its token.
struct EntraSource(azure::Credential);

impl TokenSource for EntraSource {
    fn token(&self) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move {
            azure::databricks_token(&self.0)
                .await
                .map(|t| t.token)
                .map_err(|e| e.to_string())
        })
    }
}

impl Connection {
    /// The connection a later task uses: its inputs override what configure set.
    pub fn resolve(agent: &Agent, http: &HttpClient) -> Result<Connection, TaskError> {
        Self::resolve_at(agent, http, SystemTime::now())
    }

    /// As [`Connection::resolve`], at a given time (tests).
    pub fn resolve_at(
        agent: &Agent,
        http: &HttpClient,
        now: SystemTime,
    ) -> Result<Connection, TaskError> {
        let host_input = agent.input("url");
        let raw_host = host_input
            .clone()
            .or_else(|| agent.variable(HOST_VARIABLE))
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| TaskError::new(NO_CONNECTION))?;
        let host = workspace_url(&raw_host)?;
        if agent.input("token").is_some() && agent.input(SERVICE_CONNECTION_INPUT).is_some() {
            return Err(TaskError::new(
                "both 'Access token' (token) and 'Azure service connection' (azureSubscription) are set: keep only one",
            ));
        }
        if let Some(credential) = entra_credential(agent, http)? {
            return Ok(Connection {
                host,
                kind: CredentialKind::EntraConnection {
                    connection: credential.connection_id().to_owned(),
                },
                auth: Auth::Source(Arc::new(EntraSource(credential))),
            });
        }
        if let Some(token) = agent.input("token") {
            task_sdk::secrets::register(&token);
            return Ok(Connection {
                host,
                auth: Auth::Token(token),
                kind: CredentialKind::TokenInput,
            });
        }
        let Some(token) = agent
            .variable(TOKEN_VARIABLE)
            .filter(|t| !t.trim().is_empty())
        else {
            return Err(TaskError::new(if host_input.is_some() {
                "input 'Workspace URL' (url) is set but there is no token: fill in 'Access token' (token), or run Configure Databricks earlier in the job"
                    .to_owned()
            } else {
                format!("the job variable {HOST_VARIABLE} is set but {TOKEN_VARIABLE} is not: run Configure Databricks earlier in the job, or fill in this task's Access token (token)")
            }));
        };
        task_sdk::secrets::register(&token);
        // `checked_add`: the variable can be set by anyone; an absurd value must not panic.
        let kind = match agent
            .variable(TOKEN_EXPIRES_VARIABLE)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
        {
            Some(expires_on) => {
                check_expiry(expires_on, now)?;
                CredentialKind::EntraVariable { expires_on }
            }
            None => CredentialKind::TokenVariable,
        };
        Ok(Connection {
            host,
            auth: Auth::Token(token),
            kind,
        })
    }

    /// A client for this connection.
    pub fn workspace(&self, http: HttpClient) -> Result<Workspace, TaskError> {
        Workspace::new(&self.host, self.auth.clone(), http).map_err(|e| explain(self, e))
    }

    /// Where the credential came from, for messages.
    pub fn describe_credential(&self) -> String {
        match &self.kind {
            CredentialKind::TokenInput => "the token given to this task".into(),
            CredentialKind::TokenVariable => {
                format!("the token in the job variable {TOKEN_VARIABLE} (set by Configure Databricks or the pipeline)")
            }
            CredentialKind::EntraVariable { expires_on } => format!(
                "the Microsoft Entra ID token Configure Databricks obtained (valid until {})",
                format_utc(*expires_on)
            ),
            CredentialKind::EntraConnection { connection } => {
                format!("a Microsoft Entra ID token from the service connection '{connection}'")
            }
        }
    }
}

fn check_expiry(expires_on: SystemTime, now: SystemTime) -> Result<(), TaskError> {
    match expires_on.duration_since(now) {
        Err(ago) => Err(TaskError::new(format!(
            "the Microsoft Entra ID token that Configure Databricks obtained expired at {} ({} min ago; these tokens last about an hour): run Configure Databricks again just before this step, or give this task the Azure service connection (input azureSubscription) so it gets its own token",
            format_utc(expires_on),
            ago.duration().as_secs().div_ceil(60)
        ))),
        Ok(left) if left < EXPIRY_WARNING => {
            out::warning(&format!(
                "the Microsoft Entra ID token from Configure Databricks expires at {} (in {} s); a long step may fail with an authentication error. Give this task the Azure service connection (input azureSubscription) to get a fresh token",
                format_utc(expires_on),
                left.as_secs()
            ));
            Ok(())
        }
        Ok(_) => Ok(()),
    }
}

/// Turns a client error into the task's message, adding what only the task knows: where the
/// token came from, and what to do about it.
pub fn explain(conn: &Connection, error: Error) -> TaskError {
    match &error {
        Error::Auth { .. } => {
            let hint = match &conn.kind {
                CredentialKind::EntraVariable { expires_on } => format!(
                    ". The token is the Microsoft Entra ID token Configure Databricks obtained, valid until {}: if it expired, run Configure Databricks again just before this step, or give this task the Azure service connection (input azureSubscription)",
                    format_utc(*expires_on)
                ),
                _ => format!(" (used {})", conn.describe_credential()),
            };
            TaskError::new(format!("{error}{hint}"))
        }
        Error::Forbidden { .. } => TaskError::new(format!(
            "{error} (used {})",
            conn.describe_credential()
        )),
        Error::Transport(send) if send.is_dns() => TaskError::new(format!(
            "the workspace host in '{}' does not resolve (DNS lookup failed): check the workspace URL for typos; on a self-hosted agent, check its DNS and proxy settings",
            conn.host
        )),
        _ => TaskError::from(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(vars: &[(&str, &str)]) -> Agent {
        Agent::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn http() -> HttpClient {
        let settings = task_sdk::http::settings_from_agent(&Agent::default(), "t", "0").unwrap();
        HttpClient::new(
            task_sdk::http::client(&settings).unwrap(),
            task_sdk::RetryPolicy::default(),
        )
    }

    fn resolve(a: &Agent) -> Result<Connection, TaskError> {
        Connection::resolve(a, &http())
    }

    #[test]
    fn inputs_override_variables() {
        let a = agent(&[
            ("INPUT_URL", "https://adb-2.azuredatabricks.net/?o=2"),
            ("INPUT_TOKEN", "dapi-input-token"),
            ("DATABRICKS_HOST", "https://adb-1.azuredatabricks.net"),
            ("SECRET_DATABRICKS_TOKEN", "dapi-variable-token"),
        ]);
        let c = resolve(&a).unwrap();
        assert_eq!(c.host, "https://adb-2.azuredatabricks.net");
        assert_eq!(c.kind, CredentialKind::TokenInput);
        assert!(matches!(c.auth, Auth::Token(ref t) if t == "dapi-input-token"));
    }

    #[test]
    fn variables_from_configure() {
        let a = agent(&[
            ("DATABRICKS_HOST", "https://adb-1.azuredatabricks.net"),
            ("SECRET_DATABRICKS_TOKEN", "dapi-variable-token"),
        ]);
        let c = resolve(&a).unwrap();
        assert_eq!(c.host, "https://adb-1.azuredatabricks.net");
        assert_eq!(c.kind, CredentialKind::TokenVariable);
    }

    #[test]
    fn missing_connection_says_what_to_do() {
        let e = resolve(&agent(&[])).unwrap_err().to_string();
        assert!(e.contains("Configure Databricks"), "{e}");
        let e = resolve(&agent(&[(
            "INPUT_URL",
            "https://adb-1.azuredatabricks.net",
        )]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("there is no token"), "{e}");
        let e = resolve(&agent(&[
            ("INPUT_URL", "https://portal.azure.com/#home"),
            ("INPUT_TOKEN", "x-token"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("the Azure portal"), "{e}");
    }

    #[test]
    fn an_expired_entra_token_is_named_before_any_call() {
        let vars = [
            ("DATABRICKS_HOST", "https://adb-1.azuredatabricks.net"),
            ("SECRET_DATABRICKS_TOKEN", "eyJ-entra-token"),
            ("DATABRICKS_TOKENEXPIRESON", "1700000000"),
        ];
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 600);
        let e = Connection::resolve_at(&agent(&vars), &http(), now)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("expired at 2023-11-14 22:13:20 UTC (10 min ago"),
            "{e}"
        );
        let before = UNIX_EPOCH + Duration::from_secs(1_700_000_000 - 3600);
        let c = Connection::resolve_at(&agent(&vars), &http(), before).unwrap();
        assert!(matches!(c.kind, CredentialKind::EntraVariable { .. }));
        let absurd = [
            ("DATABRICKS_HOST", "https://adb-1.azuredatabricks.net"),
            ("SECRET_DATABRICKS_TOKEN", "eyJ-entra-token"),
            ("DATABRICKS_TOKENEXPIRESON", "18446744073709551615"),
        ];
        let c = Connection::resolve_at(&agent(&absurd), &http(), before).unwrap();
        assert_eq!(c.kind, CredentialKind::TokenVariable);
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            format_utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29 00:00:00 UTC"
        );
    }
}
