//! Service principal secret, workload identity federation and managed identity (App Service
//! style, from the agent snapshot) against the emulator's Entra ID, OIDC and managed identity
//! endpoints.

use azure::{databricks_token, AuthError, Credential, DATABRICKS_RESOURCE};
use azure_emulator::Scheme;

use crate::common::*;

fn grants(emu: &azure_emulator::Emulator) -> Vec<String> {
    emu.state()["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["grant"].as_str().unwrap().to_owned())
        .collect()
}

async fn arm_works(c: &Clients) {
    assert!(!c
        .arm
        .resource_group_exists(&c.subscription, "rg-auth")
        .await
        .unwrap());
    c.arm
        .create_resource_group(&c.subscription, "rg-auth", "westeurope")
        .await
        .unwrap();
    assert!(c
        .arm
        .resource_group_exists(&c.subscription, "rg-auth")
        .await
        .unwrap());
}

#[tokio::test]
async fn service_principal_secret() {
    let emu = start(fast()).await;
    let c = clients(&emu, Scheme::ServicePrincipal);
    arm_works(&c).await;
    assert_eq!(grants(&emu), vec!["client_secret"]);
    // One token served three calls.
    assert_eq!(emu.state()["tokensIssued"], 1);
}

#[tokio::test]
async fn workload_identity_federation() {
    let emu = start(fast()).await;
    let c = clients(&emu, Scheme::WorkloadIdentityFederation);
    arm_works(&c).await;
    assert_eq!(grants(&emu), vec!["client_assertion"]);
    let state = emu.state();
    assert_eq!(state["oidcTokensIssued"], 1);
    assert_eq!(state["oidcTokens"][0]["serviceConnectionId"], CONN);
}

#[tokio::test]
async fn databricks_token_has_the_databricks_audience() {
    let emu = start(fast()).await;
    for scheme in [Scheme::ServicePrincipal, Scheme::WorkloadIdentityFederation] {
        let c = clients(&emu, scheme);
        let token = databricks_token(&c.credential).await.unwrap();
        assert_eq!(
            emu.token_audience(&token.token).as_deref(),
            Some(DATABRICKS_RESOURCE),
            "{scheme:?}"
        );
    }
}

#[tokio::test]
async fn a_wrong_secret_says_to_renew_it_without_showing_it() {
    let emu = start(fast()).await;
    let wrong = "wrong-secret-value-4711";
    let agent = agent_with(&emu, Scheme::ServicePrincipal, |vars| {
        replace_everywhere(vars, &emu.options().client_secret, wrong)
    });
    let conn = connection(&agent);
    let cred = Credential::from_agent(&agent, &conn, &http(&emu)).unwrap();
    let e = cred.token(&azure::arm_scope(&conn)).await.unwrap_err();
    assert!(
        matches!(
            e,
            AuthError::Rejected {
                code: Some(7000215),
                ..
            }
        ),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("the client secret of service connection '{CONN}' is invalid or expired: renew it in the app registration")),
        "{text}"
    );
    assert!(text.contains("AADSTS7000215"), "{text}");
    assert!(
        !text.contains(wrong) && !text.contains(&emu.options().client_secret),
        "{text}"
    );
    assert!(!format!("{e:?}").contains(wrong));
}

#[tokio::test]
async fn a_wrong_tenant_and_an_unknown_app_are_named() {
    let emu = start(fast()).await;
    let agent = agent_with(&emu, Scheme::ServicePrincipal, |vars| {
        replace_everywhere(
            vars,
            &emu.options().tenant_id,
            "11111111-2222-3333-4444-555555555555",
        )
    });
    let conn = connection(&agent);
    let e = Credential::from_agent(&agent, &conn, &http(&emu))
        .unwrap()
        .token(&azure::arm_scope(&conn))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("tenant '11111111-2222-3333-4444-555555555555' of service connection"),
        "{e}"
    );

    let agent = agent_with(&emu, Scheme::ServicePrincipal, |vars| {
        replace_everywhere(
            vars,
            &emu.options().client_id,
            "99999999-0000-0000-0000-000000000000",
        )
    });
    let conn = connection(&agent);
    let e = Credential::from_agent(&agent, &conn, &http(&emu))
        .unwrap()
        .token(&azure::arm_scope(&conn))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("service principal (application) id of service connection"),
        "{e}"
    );
}

#[tokio::test]
async fn a_refused_oidc_request_names_the_connection_without_the_token() {
    let emu = start(fast()).await;
    let bad = "bad-system-access-token-99";
    let agent = agent_with(&emu, Scheme::WorkloadIdentityFederation, |vars| {
        replace_everywhere(vars, &emu.options().oidc_request_token, bad)
    });
    let conn = connection(&agent);
    let e = Credential::from_agent(&agent, &conn, &http(&emu))
        .unwrap()
        .token(&azure::arm_scope(&conn))
        .await
        .unwrap_err();
    assert!(
        matches!(e, AuthError::OidcRequest { status: 401, .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains(CONN) && text.contains("authorized to use this service connection"),
        "{text}"
    );
    assert!(!text.contains(bad), "{text}");
}

#[tokio::test]
async fn federation_without_the_agent_oidc_settings_is_explained() {
    let emu = start(fast()).await;
    let agent = agent_with(&emu, Scheme::WorkloadIdentityFederation, |vars| {
        vars.retain(|(k, _)| k != "SYSTEM_OIDCREQUESTURI")
    });
    let conn = connection(&agent);
    let e = Credential::from_agent(&agent, &conn, &http(&emu)).unwrap_err();
    assert!(e.to_string().contains("System.OidcRequestUri"), "{e}");
}

#[tokio::test]
async fn certificate_connections_get_a_clear_error() {
    let emu = start(fast()).await;
    let agent = agent_with(&emu, Scheme::ServicePrincipal, |vars| {
        let key = CONN.to_uppercase();
        vars.retain(|(k, _)| k != &format!("ENDPOINT_AUTH_{key}"));
        set(vars, "_AUTHENTICATIONTYPE", "spnCertificate");
        vars.push((
            format!("ENDPOINT_AUTH_PARAMETER_{key}_SERVICEPRINCIPALCERTIFICATE"),
            "-----BEGIN PRIVATE KEY-----\nMIIkey\n-----END PRIVATE KEY-----".into(),
        ));
    });
    let conn = connection(&agent);
    let e = Credential::from_agent(&agent, &conn, &http(&emu)).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, AuthError::CertificateNotSupported { .. }));
    assert!(
        text.contains(CONN)
            && text.contains("client secret")
            && text.contains("workload identity federation"),
        "{text}"
    );
    assert!(!text.contains("MIIkey"));
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once() {
    let emu = start(fast()).await;
    let c = clients(&emu, Scheme::ServicePrincipal);
    arm_works(&c).await;
    emu.expire_tokens();
    // The cached token now answers 401 ExpiredAuthenticationToken; the client gets a new one.
    assert!(c
        .arm
        .resource_group_exists(&c.subscription, "rg-auth")
        .await
        .unwrap());
    assert_eq!(emu.state()["tokensIssued"], 2);
    // And keeps using the new one.
    assert!(c
        .arm
        .resource_group_exists(&c.subscription, "rg-auth")
        .await
        .unwrap());
    assert_eq!(emu.state()["tokensIssued"], 2);
    // A JSON answer (PUT) carries ExpiredAuthenticationToken in its body.
    emu.expire_tokens();
    c.arm
        .create_resource_group(&c.subscription, "rg-auth-2", "westeurope")
        .await
        .unwrap();
    assert_eq!(emu.state()["tokensIssued"], 3);
}

#[tokio::test]
async fn auth_failures_reach_arm_callers_whole() {
    let emu = start(fast()).await;
    let wrong = "another-wrong-secret-0815";
    let agent = agent_with(&emu, Scheme::ServicePrincipal, |vars| {
        replace_everywhere(vars, &emu.options().client_secret, wrong)
    });
    let conn = connection(&agent);
    let http = http(&emu);
    let cred = Credential::from_agent(&agent, &conn, &http).unwrap();
    let arm = azure::Arm::new(&conn, cred, http).unwrap();
    let e = arm
        .resource_group_exists(conn.subscription_id.as_deref().unwrap(), "rg")
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, azure::ArmError::Auth(_)), "{e:?}");
    assert!(text.contains("renew it in the app registration"), "{text}");
    assert!(!text.contains(wrong), "{text}");
}

#[tokio::test]
async fn managed_identity_through_the_app_service_endpoint_of_the_agent_snapshot() {
    let emu = start(fast()).await;
    // Nothing is read from the process environment: the snapshot carries IDENTITY_*.
    assert!(std::env::var_os("IDENTITY_ENDPOINT").is_none());
    let c = clients(&emu, Scheme::ManagedServiceIdentity);
    assert!(!c
        .arm
        .resource_group_exists(&c.subscription, "rg-mi")
        .await
        .unwrap());
    c.arm
        .create_resource_group(&c.subscription, "rg-mi", "westeurope")
        .await
        .unwrap();
    let state = emu.state();
    assert_eq!(state["tokens"][0]["grant"], "managed_identity");
    assert_eq!(
        state["tokens"][0]["subject"].as_str(),
        Some(emu.options().managed_identity_client_id.as_str())
    );
    assert_eq!(state["tokensIssued"], 1);
    let token = databricks_token(&c.credential).await.unwrap();
    assert_eq!(
        emu.token_audience(&token.token).as_deref(),
        Some(DATABRICKS_RESOURCE)
    );
    // An expired token is replaced.
    emu.expire_tokens();
    assert!(c
        .arm
        .resource_group_exists(&c.subscription, "rg-mi")
        .await
        .unwrap());
    assert_eq!(emu.state()["tokensIssued"], 3);
}

#[tokio::test]
async fn managed_identity_requests_bypass_the_agent_proxy() {
    let emu = start(fast()).await;
    // A proxy nobody listens on: any request sent through it fails.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let agent = agent_with(&emu, Scheme::ManagedServiceIdentity, |vars| {
        vars.push(("AGENT_PROXYURL".into(), proxy.clone()));
    });
    let conn = connection(&agent);
    let token = Credential::from_agent(&agent, &conn, &http(&emu))
        .unwrap()
        .token(&azure::arm_scope(&conn))
        .await
        .unwrap();
    assert!(emu.token_audience(&token.token).is_some());
}

#[tokio::test]
async fn managed_identity_errors_name_the_connection_without_the_header() {
    let emu = start(fast()).await;
    // A client id the endpoint does not know.
    let agent = agent_with(&emu, Scheme::ManagedServiceIdentity, |vars| {
        let id = emu.options().managed_identity_client_id.clone();
        replace_everywhere(vars, &id, "00000000-0000-0000-0000-00000000dead");
    });
    let conn = connection(&agent);
    let cred = Credential::from_agent(&agent, &conn, &http(&emu)).unwrap();
    let e = cred.token(&azure::arm_scope(&conn)).await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, AuthError::ManagedIdentity { status: 400, .. }),
        "{e:?}"
    );
    assert!(
        text.contains(CONN)
            && text.contains("Identity not found")
            && text.contains("names an identity assigned to it"),
        "{text}"
    );
    assert!(!text.contains(&emu.options().identity_header), "{text}");

    // A wrong IDENTITY_HEADER.
    let agent = agent_with(&emu, Scheme::ManagedServiceIdentity, |vars| {
        set(vars, "IDENTITY_HEADER", "wrong-identity-header-77");
    });
    let conn = connection(&agent);
    let e = Credential::from_agent(&agent, &conn, &http(&emu))
        .unwrap()
        .token(&azure::arm_scope(&conn))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, AuthError::ManagedIdentity { status: 401, .. }),
        "{e:?}"
    );
    assert!(!text.contains("wrong-identity-header-77"), "{text}");
}
