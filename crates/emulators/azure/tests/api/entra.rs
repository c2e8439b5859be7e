//! Tokens: each scheme, each error, and the bearer check ARM applies.

use azure_emulator::{Emulator, Options, Scheme, DATABRICKS_RESOURCE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{client, fast, sp_token, token_request, Arm, API};

fn assert_aadsts(
    status: StatusCode,
    body: &Value,
    want_status: StatusCode,
    error: &str,
    code: u64,
) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"][0], code, "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    assert!(description.contains("\r\nTrace ID: "), "{description}");
    assert!(
        description.contains("\r\nCorrelation ID: "),
        "{description}"
    );
    for field in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(body[field].is_string(), "{field} missing in {body}");
    }
}

#[tokio::test]
async fn client_secret_token_has_entra_shape_and_errors_are_faithful() {
    let emu = Emulator::start(fast()).await.unwrap();
    let c = client(&emu);
    let o = emu.options().clone();
    let base = [
        ("client_id", o.client_id.as_str()),
        ("client_secret", o.client_secret.as_str()),
        ("grant_type", "client_credentials"),
        ("scope", "https://management.azure.com/.default"),
    ];
    let (status, body) = token_request(&emu, &c, &o.tenant_id, &base).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 3000);
    assert!(body["ext_expires_in"].is_u64());
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);

    let with = |key: &str, value: &'static str| {
        base.iter()
            .map(|(k, v)| if *k == key { (*k, value) } else { (*k, *v) })
            .collect::<Vec<_>>()
    };
    let (s, b) = token_request(&emu, &c, &o.tenant_id, &with("client_secret", "wrong")).await;
    assert_aadsts(s, &b, StatusCode::UNAUTHORIZED, "invalid_client", 7000215);
    assert!(
        !b.to_string().contains("wrong"),
        "the bad secret must not be echoed"
    );

    let (s, b) = token_request(
        &emu,
        &c,
        &o.tenant_id,
        &with("client_id", "11111111-2222-3333-4444-555555555555"),
    )
    .await;
    assert_aadsts(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        700016,
    );

    let (s, b) = token_request(&emu, &c, "not-my-tenant", &base).await;
    assert_aadsts(s, &b, StatusCode::BAD_REQUEST, "invalid_request", 90002);

    let (s, b) = token_request(
        &emu,
        &c,
        &o.tenant_id,
        &with("scope", "https://management.azure.com/user_impersonation"),
    )
    .await;
    assert_aadsts(s, &b, StatusCode::BAD_REQUEST, "invalid_scope", 1002012);

    let (s, b) = token_request(
        &emu,
        &c,
        &o.tenant_id,
        &with("scope", "https://managment.azure.com/.default"),
    )
    .await;
    assert_aadsts(s, &b, StatusCode::BAD_REQUEST, "invalid_resource", 500011);

    let (s, b) = token_request(&emu, &c, &o.tenant_id, &with("grant_type", "password")).await;
    assert_aadsts(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
        70003,
    );

    let no_grant: Vec<_> = base
        .iter()
        .filter(|(k, _)| *k != "grant_type")
        .copied()
        .collect();
    let (s, b) = token_request(&emu, &c, &o.tenant_id, &no_grant).await;
    assert_aadsts(s, &b, StatusCode::BAD_REQUEST, "invalid_request", 900144);

    let no_secret: Vec<_> = base
        .iter()
        .filter(|(k, _)| *k != "client_secret")
        .copied()
        .collect();
    let (s, b) = token_request(&emu, &c, &o.tenant_id, &no_secret).await;
    assert_aadsts(s, &b, StatusCode::UNAUTHORIZED, "invalid_client", 7000218);

    // Databricks tokens are issuable and recognisable by other emulators.
    let databricks = sp_token(&emu, &c, &format!("{DATABRICKS_RESOURCE}/.default")).await;
    assert_eq!(
        emu.token_audience(&databricks).as_deref(),
        Some(DATABRICKS_RESOURCE)
    );
    assert_eq!(emu.state()["tokensIssued"], 2);
}

async fn oidc(emu: &Emulator, c: &reqwest::Client, token: &str) -> (StatusCode, Value) {
    let r = c
        .post(format!(
            "{}?api-version=7.1&serviceConnectionId=conn-1",
            emu.oidc_request_uri()
        ))
        .bearer_auth(token)
        .header("X-TFS-FedAuthRedirect", "Suppress")
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn workload_identity_federation_exchanges_the_agent_oidc_token() {
    let emu = Emulator::start(fast()).await.unwrap();
    let c = client(&emu);
    let o = emu.options().clone();

    let (s, b) = oidc(&emu, &c, "not-the-system-token").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        b["message"].as_str().unwrap().starts_with("TF400813"),
        "{b}"
    );

    let (s, b) = oidc(&emu, &c, &o.oidc_request_token).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let assertion = b["oidcToken"].as_str().unwrap().to_string();

    let exchange = |assertion: String| {
        let o = o.clone();
        let c = c.clone();
        let emu_url = emu.url();
        async move {
            let r = c
                .post(format!("{emu_url}/{}/oauth2/v2.0/token", o.tenant_id))
                .form(&[
                    ("client_assertion", assertion.as_str()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_id", o.client_id.as_str()),
                    ("grant_type", "client_credentials"),
                    ("scope", "https://management.azure.com/.default"),
                ])
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (s, b) = exchange(assertion).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["access_token"].is_string());

    let (s, b) = exchange("garbage".into()).await;
    assert_aadsts(s, &b, StatusCode::BAD_REQUEST, "invalid_request", 50027);

    // JWT-shaped but not issued here: no federated credential matches.
    let forged = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2V2aWwifQ.sig".to_string();
    let (s, b) = exchange(forged).await;
    assert_aadsts(s, &b, StatusCode::UNAUTHORIZED, "invalid_client", 700211);
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("'https://evil'"),
        "{b}"
    );

    let state = emu.state();
    assert_eq!(state["oidcTokens"][0]["serviceConnectionId"], "conn-1");
    assert!(state["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["grant"] == "client_assertion"));
}

#[tokio::test]
async fn an_expired_oidc_token_is_refused() {
    let emu = Emulator::start(Options {
        oidc_token_lifetime: std::time::Duration::ZERO,
        ..fast()
    })
    .await
    .unwrap();
    let c = client(&emu);
    let o = emu.options().clone();
    let (_, b) = oidc(&emu, &c, &o.oidc_request_token).await;
    let assertion = b["oidcToken"].as_str().unwrap();
    let (s, b) = token_request(
        &emu,
        &c,
        &o.tenant_id,
        &[
            ("client_assertion", assertion),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_id", &o.client_id),
            ("grant_type", "client_credentials"),
            ("scope", "https://management.azure.com/.default"),
        ],
    )
    .await;
    assert_aadsts(s, &b, StatusCode::UNAUTHORIZED, "invalid_client", 700024);
}

#[tokio::test]
async fn managed_identity_endpoints_follow_imds_and_app_service_protocols() {
    let emu = Emulator::start(fast()).await.unwrap();
    let c = client(&emu);
    let o = emu.options().clone();
    let imds = format!(
        "{}?api-version=2018-02-01&resource=https://management.azure.com/",
        emu.managed_identity_endpoint()
    );

    let r = c.get(&imds).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        b["error_description"],
        "Required metadata header not specified"
    );

    let r = c
        .get(&imds)
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    // azure_identity parses expires_on from a string of Unix seconds.
    assert!(
        b["expires_on"].as_str().unwrap().parse::<u64>().is_ok(),
        "{b}"
    );
    assert_eq!(b["resource"], "https://management.azure.com/");
    assert_eq!(b["token_type"], "Bearer");
    let mi_token = b["access_token"].as_str().unwrap().to_string();

    let r = c
        .get(format!("{imds}&client_id=someone-else"))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // App Service style, as azure_identity 1.x sends it with IDENTITY_ENDPOINT/IDENTITY_HEADER.
    let env = emu.service_connection_env("mi-conn", Scheme::ManagedServiceIdentity);
    let get = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let app = format!(
        "{}?api-version=2019-08-01&resource=https://management.azure.com&client_id={}",
        get("IDENTITY_ENDPOINT"),
        o.managed_identity_client_id
    );
    let r = c
        .get(&app)
        .header("metadata", "true")
        .header("x-identity-header", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get(&app)
        .header("metadata", "true")
        .header("x-identity-header", get("IDENTITY_HEADER"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // The managed identity token works against ARM.
    let r = c
        .get(format!(
            "{}/subscriptions/{}/resourcegroups?{API}",
            emu.url(),
            o.subscription_id
        ))
        .bearer_auth(mi_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn arm_checks_bearer_tokens() {
    let arm = Arm::start(fast()).await;
    let path = format!("{}{}/resourcegroups?{API}", arm.emu.url(), arm.sub());
    let code = |r: Value| r["error"]["code"].as_str().unwrap_or_default().to_string();

    let r = arm.client.get(&path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(code(r.json().await.unwrap()), "AuthenticationFailed");

    let r = arm
        .client
        .get(&path)
        .bearer_auth("made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code(r.json().await.unwrap()), "InvalidAuthenticationToken");

    let databricks = sp_token(
        &arm.emu,
        &arm.client,
        &format!("{DATABRICKS_RESOURCE}/.default"),
    )
    .await;
    let r = arm
        .client
        .get(&path)
        .bearer_auth(databricks)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        code(r.json().await.unwrap()),
        "InvalidAuthenticationTokenAudience"
    );

    // The resource id the endpoint data names is accepted as well.
    let core = sp_token(
        &arm.emu,
        &arm.client,
        "https://management.core.windows.net//.default",
    )
    .await;
    let r = arm
        .client
        .get(&path)
        .bearer_auth(core)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    assert_eq!(
        arm.call(
            Method::GET,
            &format!("{}/resourcegroups?{API}", arm.sub()),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    arm.emu.expire_tokens();
    let a = arm
        .call(
            Method::GET,
            &format!("{}/resourcegroups?{API}", arm.sub()),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body["error"]["code"], "ExpiredAuthenticationToken");

    let fresh = sp_token(
        &arm.emu,
        &arm.client,
        "https://management.azure.com/.default",
    )
    .await;
    let r = arm
        .client
        .get(format!("{}{}/resourcegroups", arm.emu.url(), arm.sub()))
        .bearer_auth(fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code(r.json().await.unwrap()), "MissingApiVersionParameter");
}

#[tokio::test]
async fn service_connection_env_follows_the_agent_contract() {
    let emu = Emulator::start(fast()).await.unwrap();
    let id = "1b7e2a9c-0000-4000-8000-00000000abcd";
    // The agent keeps the connection's GUID as it is (lower case) in variable names.
    let key = id;
    let env = emu.service_connection_env(id, Scheme::ServicePrincipal);
    let get = |env: &[(String, String)], k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{k} missing"))
    };
    assert_eq!(
        get(&env, &format!("ENDPOINT_URL_{key}")),
        format!("{}/", emu.url())
    );
    assert_eq!(
        get(&env, &format!("ENDPOINT_AUTH_SCHEME_{key}")),
        "ServicePrincipal"
    );
    let auth: Value = serde_json::from_str(&get(&env, &format!("ENDPOINT_AUTH_{key}"))).unwrap();
    assert_eq!(auth["scheme"], "ServicePrincipal");
    assert_eq!(
        auth["parameters"]["serviceprincipalkey"],
        emu.options().client_secret
    );
    assert_eq!(
        get(
            &env,
            &format!("ENDPOINT_AUTH_PARAMETER_{key}_SERVICEPRINCIPALID")
        ),
        emu.options().client_id
    );
    assert_eq!(
        get(&env, &format!("ENDPOINT_AUTH_PARAMETER_{key}_TENANTID")),
        emu.options().tenant_id
    );
    let data: Value = serde_json::from_str(&get(&env, &format!("ENDPOINT_DATA_{key}"))).unwrap();
    assert_eq!(data["environmentAuthorityUrl"], format!("{}/", emu.url()));
    assert_eq!(data["environment"], "AzureCloud");
    assert_eq!(
        get(&env, &format!("ENDPOINT_DATA_{key}_SUBSCRIPTIONID")),
        emu.options().subscription_id
    );
    assert_eq!(
        get(
            &env,
            &format!("ENDPOINT_DATA_{key}_ACTIVEDIRECTORYSERVICEENDPOINTRESOURCEID")
        ),
        "https://management.core.windows.net/"
    );

    let env = emu.service_connection_env(id, Scheme::WorkloadIdentityFederation);
    assert_eq!(
        get(&env, &format!("ENDPOINT_AUTH_SCHEME_{key}")),
        "WorkloadIdentityFederation"
    );
    assert!(!env.iter().any(|(k, _)| k.ends_with("_SERVICEPRINCIPALKEY")));
    assert_eq!(get(&env, "SYSTEM_OIDCREQUESTURI"), emu.oidc_request_uri());
    assert_eq!(
        get(
            &env,
            "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN"
        ),
        emu.options().oidc_request_token
    );

    let env = emu.service_connection_env(id, Scheme::ManagedServiceIdentity);
    assert_eq!(
        get(&env, &format!("ENDPOINT_DATA_{key}_MSICLIENTID")),
        emu.options().managed_identity_client_id
    );
}
