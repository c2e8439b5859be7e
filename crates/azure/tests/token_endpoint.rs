//! The credential against a scripted loopback Entra ID (axum): every mapped `AADSTS` error as
//! Entra ID sends it, expiry handling and the cache, and the retry policy on token requests.
//! The emulator (tests/emulator) covers the happy paths and the errors it produces itself.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;
use azure::{AuthError, Credential};
use serde_json::json;
use task_sdk::{Agent, HttpClient, RetryPolicy};

const CONN: &str = "27182818-2845-9045-2353-602874713526";
const TENANT: &str = "0c0c0c0c-1111-2222-3333-444444444444";
const CLIENT: &str = "a1a1a1a1-b2b2-c3c3-d4d4-e5e5e5e5e5e5";
const SECRET: &str = "scripted-client-secret-31337";
const SYSTEM_TOKEN: &str = "scripted-system-token-2718";
const SCOPE: &str = "https://management.azure.com/.default";

/// What the server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: String,
}

impl Seen {
    fn form(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

#[derive(Default)]
struct Script {
    /// Answers in order; the last one repeats.
    answers: Vec<(u16, String)>,
    seen: Vec<Seen>,
}

#[derive(Clone)]
struct Server {
    url: String,
    script: Arc<Mutex<Script>>,
}

impl Server {
    async fn start(answers: Vec<(u16, String)>) -> Server {
        let script = Arc::new(Mutex::new(Script {
            answers,
            seen: Vec::new(),
        }));
        let app = Router::new().fallback(answer).with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server { url, script }
    }

    fn seen(&self) -> Vec<Seen> {
        self.script.lock().unwrap().seen.clone()
    }
}

async fn answer(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let mut script = script.lock().unwrap();
    let n = script.seen.len();
    script.seen.push(Seen {
        method,
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let (status, body) = script
        .answers
        .get(n)
        .or(script.answers.last())
        .cloned()
        .unwrap_or((500, String::new()));
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json; charset=utf-8")],
        body,
    )
}

/// Entra ID's error body, as it sends it (escaped CR LF before the trace lines).
fn entra_error(code: u32, error: &str, text: &str) -> String {
    json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: 5a5a\r\nCorrelation ID: 6b6b\r\nTimestamp: 2025-11-21 10:00:00Z"),
        "error_codes": [code],
        "timestamp": "2025-11-21 10:00:00Z",
        "trace_id": "5a5a",
        "correlation_id": "6b6b",
        "error_uri": "https://login.microsoftonline.com/error?code=1",
    })
    .to_string()
}

fn token_answer(token: &str, expires_in: serde_json::Value) -> String {
    json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": token}).to_string()
}

/// An agent snapshot with connection `CONN` whose authority is `server`.
fn agent(server: &Server, federated: bool) -> Agent {
    let mut auth = json!({"tenantid": TENANT, "serviceprincipalid": CLIENT});
    let scheme = if federated {
        "WorkloadIdentityFederation"
    } else {
        auth["serviceprincipalkey"] = json!(SECRET);
        auth["authenticationType"] = json!("spnKey");
        "ServicePrincipal"
    };
    let authority = format!("{}/", server.url);
    let data = json!({"environment": "AzureCloud", "environmentAuthorityUrl": authority, "subscriptionId": "s"});
    let mut vars = vec![
        (format!("ENDPOINT_URL_{CONN}"), authority.clone()),
        (
            format!("ENDPOINT_AUTH_{CONN}"),
            json!({"parameters": auth, "scheme": scheme}).to_string(),
        ),
        (format!("ENDPOINT_DATA_{CONN}"), data.to_string()),
    ];
    if federated {
        vars.extend([
            (
                "ENDPOINT_AUTH_SYSTEMVSSCONNECTION".to_owned(),
                json!({"parameters": {"AccessToken": SYSTEM_TOKEN}, "scheme": "OAuth"}).to_string(),
            ),
            (
                "ENDPOINT_URL_SYSTEMVSSCONNECTION".to_owned(),
                authority.clone(),
            ),
            (
                "SYSTEM_OIDCREQUESTURI".to_owned(),
                format!("{}/oidc", server.url),
            ),
        ]);
    }
    Agent::from_vars(vars)
}

fn http() -> HttpClient {
    HttpClient::new(
        task_sdk::http::Client::new(&Default::default()).unwrap(),
        RetryPolicy::default().with_budget(Duration::from_secs(5)),
    )
}

fn credential(server: &Server, federated: bool) -> Credential {
    let agent = agent(server, federated);
    let conn = agent.azure_rm(CONN).expect("connection");
    Credential::from_agent(&agent, &conn, &http()).expect("credential")
}

/// Each mapped code with the status Entra ID sends and the advice's opening words.
const MAPPED: &[(u32, u16, &str, &str)] = &[
    (7000215, 401, "invalid_client", "the client secret of service connection '27182818-2845-9045-2353-602874713526' is invalid or expired: renew it in the app registration"),
    (7000222, 401, "invalid_client", "the client secret of service connection '27182818-2845-9045-2353-602874713526' has expired"),
    (700016, 400, "unauthorized_client", "the service principal (application) id of service connection '27182818-2845-9045-2353-602874713526' was not found in tenant '0c0c0c0c-1111-2222-3333-444444444444'"),
    (90002, 400, "invalid_request", "tenant '0c0c0c0c-1111-2222-3333-444444444444' of service connection"),
    (700211, 401, "invalid_client", "the app registration of service connection '27182818-2845-9045-2353-602874713526' has no federated credential with the issuer"),
    (700213, 401, "invalid_client", "the app registration of service connection '27182818-2845-9045-2353-602874713526' has no federated credential with the subject"),
    (700024, 401, "invalid_client", "the OIDC token Azure DevOps issued for service connection '27182818-2845-9045-2353-602874713526' was not accepted"),
    (1002012, 400, "invalid_scope", "Entra ID rejected the scope 'https://management.azure.com/.default'"),
    (500011, 400, "invalid_resource", "the resource for scope 'https://management.azure.com/.default' is not available"),
    (7000112, 401, "unauthorized_client", "the application of service connection"),
    (53003, 400, "access_denied", "a conditional access policy of tenant '0c0c0c0c-1111-2222-3333-444444444444'"),
];

#[tokio::test]
async fn every_mapped_entra_error_reaches_the_caller_with_advice() {
    for &(code, status, error, advice_start) in MAPPED {
        // The secret is echoed in the text on purpose: it must not come back out.
        let body = entra_error(code, error, &format!("Refused (sent '{SECRET}')."));
        let server = Server::start(vec![(status, body)]).await;
        let e = credential(&server, false).token(SCOPE).await.unwrap_err();
        let text = e.to_string();
        match &e {
            AuthError::Rejected {
                connection,
                code: got,
                advice,
                description,
            } => {
                assert_eq!(connection, CONN);
                assert_eq!(*got, Some(code));
                assert!(advice.starts_with(advice_start), "{code}: {advice}");
                assert_eq!(description, &format!("AADSTS{code}: Refused (sent '***')."));
            }
            other => panic!("{code}: {other:?}"),
        }
        assert!(
            !text.contains(SECRET) && !format!("{e:?}").contains(SECRET),
            "{text}"
        );
        assert!(!text.contains("Trace ID"), "{text}");
        // 4xx answers are final: one request.
        assert_eq!(server.seen().len(), 1, "{code}");
    }
}

#[tokio::test]
async fn the_secret_request_is_the_client_credentials_grant() {
    let server = Server::start(vec![(200, token_answer("tok-sp-1", json!(3599)))]).await;
    let before = SystemTime::now();
    let token = credential(&server, false).token(SCOPE).await.unwrap();
    assert_eq!(token.token, "tok-sp-1");
    let life = token.expires_on.duration_since(before).unwrap();
    assert!(
        life > Duration::from_secs(3590) && life <= Duration::from_secs(3600),
        "{life:?}"
    );
    let seen = server.seen();
    let r = &seen[0];
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.path, format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(r.form("client_id").as_deref(), Some(CLIENT));
    assert_eq!(r.form("client_secret").as_deref(), Some(SECRET));
    assert_eq!(r.form("grant_type").as_deref(), Some("client_credentials"));
    assert_eq!(r.form("scope").as_deref(), Some(SCOPE));
    assert_eq!(r.form("client_assertion"), None);
    // Registered as a secret before anyone could print it.
    assert_eq!(task_sdk::secrets::mask("x tok-sp-1 y"), "x *** y");
}

#[tokio::test]
async fn federation_sends_the_oidc_token_as_the_assertion() {
    let server = Server::start(vec![
        (200, json!({"oidcToken": "oidc.jwt.scripted"}).to_string()),
        (200, token_answer("tok-wif-1", json!("3599"))),
    ])
    .await;
    let token = credential(&server, true).token(SCOPE).await.unwrap();
    assert_eq!(token.token, "tok-wif-1");
    let seen = server.seen();
    let oidc = &seen[0];
    assert_eq!(
        (oidc.method.as_str(), oidc.path.as_str()),
        ("POST", "/oidc")
    );
    assert_eq!(
        oidc.query,
        format!("api-version=7.1&serviceConnectionId={CONN}")
    );
    assert_eq!(
        oidc.headers.get("authorization").unwrap(),
        &format!("Bearer {SYSTEM_TOKEN}")
    );
    assert_eq!(
        oidc.headers.get("x-tfs-fedauthredirect").unwrap(),
        "Suppress"
    );
    let t = &seen[1];
    assert_eq!(
        t.form("client_assertion").as_deref(),
        Some("oidc.jwt.scripted")
    );
    assert_eq!(
        t.form("client_assertion_type").as_deref(),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(t.form("client_secret"), None);
    assert_eq!(task_sdk::secrets::mask("oidc.jwt.scripted"), "***");
}

#[tokio::test]
async fn a_federation_refusal_does_not_show_the_assertion() {
    let server = Server::start(vec![
        (200, json!({"oidcToken": "oidc.jwt.refused-one"}).to_string()),
        (
            401,
            entra_error(700213, "invalid_client", "No matching federated identity record found for presented assertion subject 'sc://o/p/c'. Assertion was oidc.jwt.refused-one."),
        ),
    ])
    .await;
    let e = credential(&server, true).token(SCOPE).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("with the subject") && text.contains("sc://o/p/c"),
        "{text}"
    );
    assert!(!text.contains("oidc.jwt.refused-one"), "{text}");
}

#[tokio::test]
async fn tokens_are_cached_until_five_minutes_before_expiry() {
    let server = Server::start(vec![
        (200, token_answer("tok-long", json!(3600))),
        (200, token_answer("tok-new", json!(3600))),
    ])
    .await;
    let cred = credential(&server, false);
    assert_eq!(cred.token(SCOPE).await.unwrap().token, "tok-long");
    assert_eq!(cred.token(SCOPE).await.unwrap().token, "tok-long");
    assert_eq!(server.seen().len(), 1);
    // Another scope is another token.
    assert_eq!(
        cred.token("2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default")
            .await
            .unwrap()
            .token,
        "tok-new"
    );
    assert_eq!(server.seen().len(), 2);
    // refresh() always asks, and what it gets is cached.
    assert_eq!(cred.refresh(SCOPE).await.unwrap().token, "tok-new");
    assert_eq!(cred.token(SCOPE).await.unwrap().token, "tok-new");
    assert_eq!(server.seen().len(), 3);

    // A token with less than five minutes left is not reused (string expires_in, as IMDS).
    let server = Server::start(vec![
        (200, token_answer("tok-short-1", json!("240"))),
        (200, token_answer("tok-short-2", json!("240"))),
    ])
    .await;
    let cred = credential(&server, false);
    assert_eq!(cred.token(SCOPE).await.unwrap().token, "tok-short-1");
    assert_eq!(cred.token(SCOPE).await.unwrap().token, "tok-short-2");
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn concurrent_callers_share_one_request() {
    let server = Server::start(vec![(200, token_answer("tok-shared", json!(3600)))]).await;
    let cred = credential(&server, false);
    let (a, b, c) = tokio::join!(cred.token(SCOPE), cred.token(SCOPE), cred.token(SCOPE));
    assert_eq!(
        [a.unwrap().token, b.unwrap().token, c.unwrap().token],
        ["tok-shared", "tok-shared", "tok-shared"]
    );
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn token_requests_follow_the_one_retry_policy() {
    let server = Server::start(vec![
        (
            503,
            entra_error(
                90033,
                "temporarily_unavailable",
                "A transient error has occurred.",
            ),
        ),
        (429, String::new()),
        (200, token_answer("tok-after-retries", json!(3600))),
    ])
    .await;
    let token = credential(&server, false).token(SCOPE).await.unwrap();
    assert_eq!(token.token, "tok-after-retries");
    assert_eq!(server.seen().len(), 3);

    // When Entra ID stays unavailable past the budget, the answer says to come back later.
    // (A 503 without Retry-After waits about a second: the budget allows one retry or two.)
    let server = Server::start(vec![(
        503,
        json!({"error": "temporarily_unavailable", "error_description": "Service busy.\r\nTrace ID: 1"}).to_string(),
    )])
    .await;
    let agent = agent(&server, false);
    let conn = agent.azure_rm(CONN).unwrap();
    let http = http().with_policy(RetryPolicy::default().with_budget(Duration::from_millis(2500)));
    let e = Credential::from_agent(&agent, &conn, &http)
        .unwrap()
        .token(SCOPE)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("run again later") && text.ends_with("(Entra ID: Service busy.)"),
        "{text}"
    );
    assert!(server.seen().len() >= 2, "retried");
}

#[tokio::test]
async fn answers_that_are_not_entra_json_are_reported_as_such() {
    let server = Server::start(vec![(
        403,
        "<html><head><title>Blocked by proxy</title></head></html>".to_owned(),
    )])
    .await;
    let e = credential(&server, false).token(SCOPE).await.unwrap_err();
    assert!(matches!(e, AuthError::Request { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("answered HTTP 403: <html><head><title>Blocked by proxy"),
        "{e}"
    );

    let server = Server::start(vec![(200, json!({"token_type": "Bearer"}).to_string())]).await;
    let e = credential(&server, false).token(SCOPE).await.unwrap_err();
    assert!(
        matches!(e, AuthError::BadResponse { .. }) && e.to_string().contains("no access_token"),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_http_authority_off_loopback_is_refused() {
    let server = Server::start(vec![]).await;
    let agent = agent(&server, false);
    let mut conn = agent.azure_rm(CONN).unwrap();
    conn.authority_url = "http://login.example.com/".into();
    let e = Credential::from_agent(&agent, &conn, &http()).unwrap_err();
    assert!(matches!(e, AuthError::InvalidSetting { .. }), "{e:?}");
    assert!(e.to_string().contains("https required"), "{e}");
}
