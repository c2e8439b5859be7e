//! Entra ID's v2 token endpoint with the client credentials grant:
//! `POST {authority}{tenant}/oauth2/v2.0/token`, form `client_id`, `scope`,
//! `grant_type=client_credentials` and either `client_secret` or `client_assertion` (+ its
//! type), and what its `AADSTS` errors mean for a service connection.

use std::time::SystemTime;

use task_sdk::http::{Method, Request};
use task_sdk::{HttpClient, Replay};
use url::Url;

use super::response::{first_line, parse_entra_error, parse_token, truncate};
use super::{scrub, AccessToken, AuthError};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the client proves who it is.
pub(crate) enum ClientProof<'a> {
    Secret(&'a str),
    /// A JWT, here the OIDC token of workload identity federation.
    Assertion(&'a str),
}

/// `{authority}{tenant}/oauth2/v2.0/token`; the tenant is one escaped path segment, and an
/// authority with a path (Azure Stack's `…/adfs/`) keeps it.
pub(crate) fn token_url(authority: &Url, tenant: &str) -> Url {
    let mut url = authority.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments
            .pop_if_empty()
            .extend([tenant, "oauth2", "v2.0", "token"]);
    }
    url.set_query(None);
    url
}

/// Asks for a token for `scope`. Token requests are idempotent, so the one retry policy may
/// repeat them (`Replay::Safe`).
pub(crate) async fn request_token(
    http: &HttpClient,
    url: &Url,
    client_id: &str,
    scope: &str,
    proof: ClientProof<'_>,
    cx: &Context<'_>,
) -> Result<AccessToken, AuthError> {
    let mut form = vec![
        ("client_id", client_id),
        ("scope", scope),
        ("grant_type", "client_credentials"),
    ];
    let own_secret = match proof {
        ClientProof::Secret(secret) => {
            form.push(("client_secret", secret));
            secret
        }
        ClientProof::Assertion(assertion) => {
            form.push(("client_assertion", assertion));
            form.push(("client_assertion_type", JWT_BEARER));
            assertion
        }
    };
    let request = Request::from_url(Method::POST, url.clone())
        .header("accept", "application/json")
        .form(&form);
    let response =
        http.send(request, Replay::Safe)
            .await
            .map_err(|source| AuthError::Transport {
                connection: cx.connection.to_owned(),
                source,
            })?;
    let status = response.status();
    let body = response.text();
    if !status.is_success() {
        return Err(rejection(status.as_u16(), &body, cx, &[own_secret]));
    }
    let token = parse_token(&body, SystemTime::now()).map_err(|detail| AuthError::BadResponse {
        connection: cx.connection.to_owned(),
        what: "Entra ID's token endpoint",
        detail: detail.into(),
    })?;
    task_sdk::secrets::register(&token.token);
    Ok(token)
}

/// Entra ID's refusal as an [`AuthError`]: [`AuthError::Rejected`] with advice for its
/// `AADSTS` code when the body is Entra's, else the status and the body's first line.
/// `own` secrets (and registered ones) never reach the text.
pub(crate) fn rejection(status: u16, body: &str, cx: &Context<'_>, own: &[&str]) -> AuthError {
    match parse_entra_error(body) {
        Some(e) => {
            let error = if status >= 500 && e.code.is_none() {
                // Entra ID's own trouble, after the retry policy gave up.
                "unavailable"
            } else {
                e.error.as_str()
            };
            AuthError::Rejected {
                connection: cx.connection.to_owned(),
                code: e.code,
                advice: advice(e.code, error, cx),
                description: scrub(&e.description, own),
            }
        }
        None => AuthError::Request {
            connection: cx.connection.to_owned(),
            detail: format!(
                "Entra ID's token endpoint answered HTTP {status}{}",
                match truncate(&first_line(body), 200) {
                    line if line.is_empty() => String::new(),
                    line => format!(": {}", scrub(&line, own)),
                }
            ),
        },
    }
}

/// What [`advice`] knows about the failed request.
pub struct Context<'a> {
    pub connection: &'a str,
    pub tenant: &'a str,
    pub scheme: &'a str,
    pub scope: &'a str,
}

/// What to do about an Entra ID error, by `AADSTS` code (else by OAuth `error`): the codes
/// users of service connections meet, each summarised in one sentence naming the connection.
pub fn advice(code: Option<u32>, error: &str, cx: &Context<'_>) -> String {
    let c = cx.connection;
    let t = cx.tenant;
    match code {
        Some(7000215) => format!(
            "the client secret of service connection '{c}' is invalid or expired: renew it in the app registration (Certificates & secrets; use the secret's value, not its id) and update the connection"
        ),
        Some(7000222) => format!(
            "the client secret of service connection '{c}' has expired: renew it in the app registration (Certificates & secrets) and update the connection, or convert the connection to workload identity federation, which has no secret to expire"
        ),
        Some(700016) => format!(
            "the service principal (application) id of service connection '{c}' was not found in tenant '{t}': check the connection's service principal id and tenant id, and that the app registration still exists"
        ),
        Some(90002) | Some(90023) | Some(900023) | Some(90013) => format!(
            "tenant '{t}' of service connection '{c}' was not found in this cloud: check the connection's tenant id and environment"
        ),
        Some(700211) => format!(
            "the app registration of service connection '{c}' has no federated credential with the issuer Azure DevOps presented: add one (or fix its issuer) using the issuer and subject shown on the connection's details page (workloadIdentityFederationIssuer/Subject)"
        ),
        Some(700213) => format!(
            "the app registration of service connection '{c}' has no federated credential with the subject Azure DevOps presented: the subject must be the one shown on the connection's details page (sc://<organization>/<project>/<connection name>), which changes when the organization, project or connection is renamed"
        ),
        Some(700212) => format!(
            "the federated credential of service connection '{c}' expects another audience: set it to api://AzureADTokenExchange in the app registration"
        ),
        Some(700024) | Some(700027) => format!(
            "the OIDC token Azure DevOps issued for service connection '{c}' was not accepted as a client assertion (expired or not yet valid): check the agent machine's clock and run again"
        ),
        Some(7000112) | Some(7000114) => format!(
            "the application of service connection '{c}' is disabled in tenant '{t}': enable the enterprise application or use another connection"
        ),
        Some(500011) | Some(500014) => format!(
            "the resource for scope '{}' is not available in tenant '{t}' for service connection '{c}' (not registered or disabled there)",
            cx.scope
        ),
        Some(1002012) | Some(70011) => format!(
            "Entra ID rejected the scope '{}' requested for service connection '{c}': check the connection's environment (the resource id of its cloud)",
            cx.scope
        ),
        Some(53003) | Some(53000) | Some(53001) => format!(
            "a conditional access policy of tenant '{t}' blocks service connection '{c}': ask the tenant's administrator to exclude the service principal or allow the agent's network"
        ),
        _ if error == "unavailable" || error == "temporarily_unavailable" => format!(
            "Entra ID could not issue a token for service connection '{c}' right now (it kept failing until the retry budget ran out): run again later"
        ),
        _ => {
            let what = if error.is_empty() { "the token request" } else { error };
            format!(
                "Entra ID refused {what} for service connection '{c}' ({}): check the connection's settings",
                cx.scheme
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> Context<'static> {
        Context {
            connection: "conn-1",
            tenant: "t1",
            scheme: "service principal (client secret)",
            scope: "https://management.azure.com/.default",
        }
    }

    fn entra_body(code: u32, error: &str, text: &str) -> String {
        serde_json::json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: 1\r\nCorrelation ID: 2\r\nTimestamp: 2025-11-21 10:00:00Z"),
            "error_codes": [code],
        })
        .to_string()
    }

    /// Each mapped code: the HTTP status and body Entra ID sends, the advice's opening.
    const CASES: &[(u32, u16, &str, &str)] = &[
        (7000215, 401, "invalid_client", "the client secret of service connection 'conn-1' is invalid or expired: renew it"),
        (7000222, 401, "invalid_client", "the client secret of service connection 'conn-1' has expired: renew it"),
        (700016, 400, "unauthorized_client", "the service principal (application) id of service connection 'conn-1' was not found in tenant 't1'"),
        (90002, 400, "invalid_request", "tenant 't1' of service connection 'conn-1' was not found in this cloud"),
        (700211, 401, "invalid_client", "the app registration of service connection 'conn-1' has no federated credential with the issuer"),
        (700213, 401, "invalid_client", "the app registration of service connection 'conn-1' has no federated credential with the subject"),
        (700212, 401, "invalid_client", "the federated credential of service connection 'conn-1' expects another audience"),
        (700024, 401, "invalid_client", "the OIDC token Azure DevOps issued for service connection 'conn-1' was not accepted"),
        (7000112, 401, "unauthorized_client", "the application of service connection 'conn-1' is disabled in tenant 't1'"),
        (500011, 400, "invalid_resource", "the resource for scope 'https://management.azure.com/.default' is not available in tenant 't1'"),
        (1002012, 400, "invalid_scope", "Entra ID rejected the scope 'https://management.azure.com/.default'"),
        (53003, 400, "access_denied", "a conditional access policy of tenant 't1' blocks service connection 'conn-1'"),
    ];

    #[test]
    fn every_mapped_code_gets_its_advice_and_first_line() {
        for &(code, status, error, advice_start) in CASES {
            let body = entra_body(code, error, "What Entra says.");
            match rejection(status, &body, &cx(), &[]) {
                AuthError::Rejected {
                    connection,
                    code: got,
                    advice,
                    description,
                } => {
                    assert_eq!(connection, "conn-1");
                    assert_eq!(got, Some(code));
                    assert!(advice.starts_with(advice_start), "{code}: {advice}");
                    assert_eq!(description, format!("AADSTS{code}: What Entra says."));
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_codes_name_the_oauth_error_and_the_scheme() {
        let e = rejection(400, &entra_body(1, "weird_error", "x"), &cx(), &[]);
        let text = e.to_string();
        assert!(
            text.starts_with("Entra ID refused weird_error for service connection 'conn-1' (service principal (client secret)): check the connection's settings"),
            "{text}"
        );
        assert!(text.ends_with("(Entra ID: AADSTS1: x)"), "{text}");
    }

    #[test]
    fn server_trouble_says_to_run_again_later() {
        let e = rejection(
            503,
            r#"{"error":"temporarily_unavailable","error_description":"busy"}"#,
            &cx(),
            &[],
        );
        assert!(e.to_string().contains("run again later"), "{e}");
    }

    #[test]
    fn bodies_that_are_not_entra_errors_show_the_status() {
        let e = rejection(
            502,
            "<html><body>Bad gateway from proxy</body></html>\nmore",
            &cx(),
            &[],
        );
        assert!(matches!(e, AuthError::Request { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "cannot get a token for service connection 'conn-1': Entra ID's token endpoint answered HTTP 502: <html><body>Bad gateway from proxy</body></html>"
        );
        let e = rejection(404, "", &cx(), &[]);
        assert!(e.to_string().ends_with("answered HTTP 404"), "{e}");
    }

    #[test]
    fn an_echoed_secret_is_masked() {
        let body = entra_body(7000215, "invalid_client", "Secret 'sec-ret-42' is wrong.");
        let text = rejection(401, &body, &cx(), &["sec-ret-42"]).to_string();
        assert!(
            !text.contains("sec-ret-42") && text.contains("***"),
            "{text}"
        );
    }

    #[test]
    fn token_urls_keep_the_authority_path_and_escape_the_tenant() {
        let url = |a: &str, t: &str| token_url(&Url::parse(a).unwrap(), t).to_string();
        assert_eq!(
            url("https://login.microsoftonline.com/", "t1"),
            "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
        );
        assert_eq!(
            url("https://login.local/adfs/", "adfs"),
            "https://login.local/adfs/adfs/oauth2/v2.0/token"
        );
        assert_eq!(
            url("https://login.microsoftonline.us", "a/b?c"),
            "https://login.microsoftonline.us/a%2Fb%3Fc/oauth2/v2.0/token"
        );
    }
}
