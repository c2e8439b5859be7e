//! Managed identity tokens from the agent machine's endpoint:
//!
//! - App Service style (App Service, Functions, Container Apps) when the agent snapshot has
//!   `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`:
//!   `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=…[&client_id=…]`, header
//!   `X-IDENTITY-HEADER`;
//! - else IMDS (VMs, scale sets):
//!   `GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=…[&client_id=…]`,
//!   header `Metadata: true`.
//!
//! Both endpoints are on the machine itself, so they are asked with a client that has no
//! proxy (an agent's proxy cannot reach them) and a short retry budget (a machine without a
//! managed identity should fail in seconds, not after five minutes).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use task_sdk::http::{HttpSettings, HttpSetupError, Method, Request};
use task_sdk::{Agent, HttpClient, Replay, SendError};
use url::Url;

use super::response::{managed_identity_error, parse_token};
use super::{scrub, AccessToken, AuthError};

/// IMDS's token endpoint: a fixed link-local address on every Azure VM.
pub(crate) const IMDS_TOKEN_URL: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// At most this long retrying a managed identity endpoint (the task's policy otherwise).
const RETRY_BUDGET: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which protocol, where.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    AppService { url: Url, header: String },
    Imds { url: Url },
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::AppService { url, .. } => write!(f, "AppService({url})"),
            Endpoint::Imds { url } => write!(f, "Imds({url})"),
        }
    }
}

impl Endpoint {
    /// App Service style when the agent snapshot has both variables, else IMDS.
    pub(crate) fn from_agent(agent: Option<&Agent>) -> Result<Endpoint, (&'static str, String)> {
        let var = |name: &str| {
            agent
                .and_then(|a| a.env(name))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        match (var("IDENTITY_ENDPOINT"), var("IDENTITY_HEADER")) {
            (Some(endpoint), Some(header)) => {
                let url = Url::parse(endpoint)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or(("IDENTITY_ENDPOINT", endpoint.to_owned()))?;
                task_sdk::secrets::register(header);
                Ok(Endpoint::AppService {
                    url,
                    header: header.to_owned(),
                })
            }
            _ => Ok(Endpoint::Imds {
                url: Url::parse(IMDS_TOKEN_URL).expect("a valid constant URL"),
            }),
        }
    }
}

/// The client for the machine's endpoint: the task's settings (CA from `Agent.CAInfo`,
/// timeouts) without the proxy, and the task's retry policy with a shorter budget.
pub(crate) fn client(
    agent: Option<&Agent>,
    task_http: &HttpClient,
) -> Result<HttpClient, HttpSetupError> {
    let version = env!("CARGO_PKG_VERSION");
    let mut settings = match agent {
        Some(agent) => task_sdk::http::settings_from_agent(agent, "managed-identity", version)?,
        None => HttpSettings {
            proxy: None,
            ca_file: None::<PathBuf>,
            user_agent: task_sdk::http::user_agent("managed-identity", version),
            timeout: Duration::from_secs(60),
            connect_timeout: CONNECT_TIMEOUT,
            launcher_tunnel: None,
            ..HttpSettings::default()
        },
    };
    settings.proxy = None;
    settings.connect_timeout = settings.connect_timeout.min(CONNECT_TIMEOUT);
    let policy = task_http.policy().clone();
    let budget = policy.budget.min(RETRY_BUDGET);
    Ok(HttpClient::new(
        task_sdk::http::client(&settings)?,
        policy.with_budget(budget),
    ))
}

/// A managed identity: which one (`client_id` of a user-assigned identity, else the
/// system-assigned one), and where to ask.
#[derive(Clone)]
pub(crate) struct ManagedIdentity {
    pub client_id: Option<String>,
    pub endpoint: Endpoint,
    pub http: HttpClient,
}

impl ManagedIdentity {
    /// A token for `scope`; the endpoints take a resource, which is the scope without its
    /// `/.default`.
    pub(crate) async fn token(
        &self,
        scope: &str,
        connection: &str,
    ) -> Result<AccessToken, AuthError> {
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        let (url, api_version, header) = match &self.endpoint {
            Endpoint::AppService { url, header } => {
                (url, "2019-08-01", ("X-IDENTITY-HEADER", header.as_str()))
            }
            Endpoint::Imds { url } => (url, "2018-02-01", ("Metadata", "true")),
        };
        let mut url = url.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("api-version", api_version)
                .append_pair("resource", resource);
            if let Some(id) = &self.client_id {
                query.append_pair("client_id", id);
            }
        }
        let request = Request::from_url(Method::GET, url)
            .header(header.0, header.1)
            .header("accept", "application/json");
        let response = self
            .http
            .send(request, Replay::Safe)
            .await
            .map_err(|e| self.unreachable(e, connection))?;
        let status = response.status();
        let body = response.text();
        if !status.is_success() {
            let detail = scrub(&managed_identity_error(&body), &self.own_secrets());
            let hint = if status.as_u16() == 404
                || [
                    "Identity not found",
                    "identity has not been assigned",
                    "Unable to load",
                ]
                .iter()
                .any(|s| detail.contains(s))
            {
                " and that the connection's client id names an identity assigned to it"
            } else {
                ""
            };
            return Err(AuthError::ManagedIdentity {
                connection: connection.to_owned(),
                status: status.as_u16(),
                detail,
                hint,
            });
        }
        let token =
            parse_token(&body, SystemTime::now()).map_err(|detail| AuthError::BadResponse {
                connection: connection.to_owned(),
                what: "the managed identity endpoint",
                detail: detail.into(),
            })?;
        task_sdk::secrets::register(&token.token);
        Ok(token)
    }

    fn own_secrets(&self) -> Vec<&str> {
        match &self.endpoint {
            Endpoint::AppService { header, .. } => vec![header.as_str()],
            Endpoint::Imds { .. } => vec![],
        }
    }

    fn unreachable(&self, e: SendError, connection: &str) -> AuthError {
        match &self.endpoint {
            Endpoint::Imds { .. } => AuthError::Request {
                connection: connection.to_owned(),
                detail: format!(
                    "the Azure Instance Metadata Service (169.254.169.254) did not answer ({e}): a managed identity connection works only on an agent that runs on an Azure VM or scale set with a managed identity assigned"
                ),
            },
            Endpoint::AppService { .. } => AuthError::Transport {
                connection: connection.to_owned(),
                source: e,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_emulator::{Emulator, Options};
    use task_sdk::RetryPolicy;

    fn emulator_http(emu: &Emulator) -> HttpClient {
        let settings = HttpSettings {
            proxy: None,
            ca_file: Some(emu.ca_pem_path().to_path_buf()),
            user_agent: "azure-unit-tests".into(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            launcher_tunnel: None,
            ..HttpSettings::default()
        };
        HttpClient::new(
            task_sdk::http::client(&settings).unwrap(),
            RetryPolicy::default().with_budget(Duration::from_secs(2)),
        )
    }

    /// A client without proxy or extra CA.
    fn plain(budget: Duration) -> HttpClient {
        HttpClient::new(
            task_sdk::http::Client::new(&Default::default()).unwrap(),
            RetryPolicy::default().with_budget(budget),
        )
    }

    fn agent(vars: &[(&str, &str)]) -> Agent {
        Agent::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn the_endpoint_comes_from_the_agent_snapshot() {
        assert_eq!(
            Endpoint::from_agent(None).unwrap(),
            Endpoint::Imds {
                url: Url::parse(IMDS_TOKEN_URL).unwrap()
            }
        );
        // One of the two is not enough: Azure Arc sets IDENTITY_ENDPOINT alone.
        let a = agent(&[("IDENTITY_ENDPOINT", "http://localhost:40342/x")]);
        assert!(matches!(
            Endpoint::from_agent(Some(&a)).unwrap(),
            Endpoint::Imds { .. }
        ));
        let a = agent(&[
            ("IDENTITY_ENDPOINT", "http://localhost:8081/msi/token"),
            ("IDENTITY_HEADER", "hdr-secret-5150"),
        ]);
        assert_eq!(
            Endpoint::from_agent(Some(&a)).unwrap(),
            Endpoint::AppService {
                url: Url::parse("http://localhost:8081/msi/token").unwrap(),
                header: "hdr-secret-5150".into()
            }
        );
        assert_eq!(task_sdk::secrets::mask("hdr-secret-5150"), "***");
        let a = agent(&[("IDENTITY_ENDPOINT", "not a url"), ("IDENTITY_HEADER", "h")]);
        assert_eq!(
            Endpoint::from_agent(Some(&a)).unwrap_err(),
            ("IDENTITY_ENDPOINT", "not a url".to_owned())
        );
    }

    #[test]
    fn the_client_has_a_short_budget() {
        let task = plain(Duration::from_secs(300));
        assert_eq!(client(None, &task).unwrap().policy().budget, RETRY_BUDGET);
        let task = task.with_policy(RetryPolicy::default().with_budget(Duration::from_secs(3)));
        assert_eq!(
            client(None, &task).unwrap().policy().budget,
            Duration::from_secs(3)
        );
    }

    #[tokio::test]
    async fn imds_protocol_against_the_emulator() {
        let emu = Emulator::start(Options::default()).await.unwrap();
        let identity = emu.options().managed_identity_client_id.clone();
        let mi = ManagedIdentity {
            client_id: Some(identity.clone()),
            endpoint: Endpoint::Imds {
                url: Url::parse(&emu.managed_identity_endpoint()).unwrap(),
            },
            http: emulator_http(&emu),
        };
        let before = SystemTime::now();
        let t = mi
            .token("https://management.azure.com/.default", "c1")
            .await
            .unwrap();
        assert_eq!(
            emu.token_audience(&t.token).as_deref(),
            Some("https://management.azure.com")
        );
        // The emulator's tokens live an hour.
        let life = t.expires_on.duration_since(before).unwrap();
        assert!(
            life > Duration::from_secs(3590) && life <= Duration::from_secs(3601),
            "{life:?}"
        );
        assert_eq!(
            emu.state()["tokens"][0]["subject"].as_str(),
            Some(identity.as_str())
        );

        let unknown = ManagedIdentity {
            client_id: Some("00000000-0000-0000-0000-00000000dead".into()),
            ..mi.clone()
        };
        let e = unknown
            .token("https://management.azure.com/.default", "c1")
            .await
            .unwrap_err();
        assert!(
            matches!(e, AuthError::ManagedIdentity { status: 400, .. }),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains("'c1'")
                && text.contains("Identity not found")
                && text.contains("names an identity assigned to it"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_imds_says_where_managed_identities_work() {
        // A loopback port nobody listens on stands in for a machine without IMDS.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mi = ManagedIdentity {
            client_id: None,
            endpoint: Endpoint::Imds {
                url: Url::parse(&format!(
                    "http://127.0.0.1:{port}/metadata/identity/oauth2/token"
                ))
                .unwrap(),
            },
            http: plain(Duration::from_millis(300)),
        };
        let e = mi
            .token("https://management.azure.com/.default", "c1")
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("169.254.169.254") && text.contains("Azure VM"),
            "{text}"
        );
    }
}
