//! Entra ID: the v2 token endpoint (client secret and client assertion), the agent server's OIDC
//! endpoint used by workload identity federation, managed identity endpoints (IMDS and App
//! Service styles), and the bearer-token check the ARM handlers use.

use axum::http::StatusCode;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::{json, Value};

use crate::{
    clock,
    http::{arm_error, json as json_reply, Reply, Req},
    state::{IssuedToken, OidcToken, State},
    Shared,
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The Azure Databricks first-party application: tokens for it authenticate to Databricks.
pub const DATABRICKS_RESOURCE: &str = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d";
/// Audiences ARM accepts (with or without the trailing slash).
const ARM_AUDIENCES: [&str; 2] = [
    "https://management.azure.com",
    "https://management.core.windows.net",
];

/// Resources the emulated tenant knows; others get AADSTS500011.
pub const KNOWN_RESOURCES: &[&str] = &[
    "https://management.azure.com",
    "https://management.core.windows.net",
    DATABRICKS_RESOURCE,
    "https://vault.azure.net",
    "https://storage.azure.com",
    "https://graph.microsoft.com",
    "https://database.windows.net",
    "https://datafactory.azure.net",
];

fn normalize(resource: &str) -> &str {
    resource.trim_end_matches('/')
}

fn known_resource(resource: &str) -> bool {
    let r = normalize(resource);
    KNOWN_RESOURCES.iter().any(|k| k.eq_ignore_ascii_case(r))
}

/// An Entra ID error body, with the trace/correlation ids and timestamp the real service adds.
fn entra_error(shared: &Shared, status: StatusCode, error: &str, code: u32, text: &str) -> Reply {
    let now = clock::now_ms();
    let trace = clock::guid();
    let correlation = clock::guid();
    let ts = clock::entra(now);
    json_reply(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {ts}"),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("{}/error?code={code}", shared.url),
        }),
    )
}

fn jwt(payload: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(payload.to_string());
    // The "signature" makes each token unique; nothing verifies it but this emulator's table.
    format!("{header}.{body}.{}", clock::random_token(43))
}

/// Decodes the payload of a JWT-shaped string.
fn jwt_payload(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

pub(crate) fn issue_access_token(
    shared: &Shared,
    state: &mut State,
    audience: &str,
    subject: &str,
    grant: &'static str,
) -> (String, u64) {
    let now = clock::now_secs();
    let lifetime = shared.opts.token_lifetime.as_secs();
    let expires_at = now + lifetime;
    let token = jwt(&json!({
        "aud": audience,
        "iss": format!("https://sts.windows.net/{}/", shared.opts.tenant_id),
        "tid": shared.opts.tenant_id,
        "appid": subject,
        "azp": subject,
        "oid": subject,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": expires_at,
        "ver": "1.0",
    }));
    state.tokens.insert(
        token.clone(),
        IssuedToken {
            audience: audience.to_string(),
            expires_at,
            subject: subject.to_string(),
            grant,
        },
    );
    state.tokens_issued += 1;
    (token, lifetime)
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub fn token(shared: &Shared, req: &Req) -> Reply {
    let tenant = req.segs.first().map(String::as_str).unwrap_or_default();
    let form = req.form();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let missing = |name: &str| {
        entra_error(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: '{name}'."),
        )
    };
    if !tenant.eq_ignore_ascii_case(&shared.opts.tenant_id) {
        return entra_error(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."),
        );
    }
    let Some(grant_type) = field("grant_type") else {
        return missing("grant_type");
    };
    if grant_type != "client_credentials" {
        return entra_error(
            shared,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant_type}'."),
        );
    }
    let Some(client_id) = field("client_id") else {
        return missing("client_id");
    };
    if !client_id.eq_ignore_ascii_case(&shared.opts.client_id) {
        return entra_error(
            shared,
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."),
        );
    }
    let Some(scope) = field("scope") else {
        return missing("scope");
    };
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let resource = match scopes.as_slice() {
        [one] => match one.strip_suffix("/.default") {
            Some(resource) => resource,
            None => {
                return entra_error(
                    shared,
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    1002012,
                    &format!("The provided value for scope {one} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
                )
            }
        },
        _ => {
            return entra_error(
                shared,
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                70011,
                &format!("The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid. Client credential flows must have exactly one scope with /.default suffixed to the resource identifier."),
            )
        }
    };

    let mut state = shared.lock();
    let grant = if let Some(secret) = field("client_secret") {
        if secret != shared.opts.client_secret {
            return entra_error(
                shared,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
            );
        }
        "client_secret"
    } else if let Some(assertion) = field("client_assertion") {
        if field("client_assertion_type") != Some(JWT_BEARER) {
            return entra_error(
                shared,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                7000219,
                &format!("'client_assertion_type' must be '{JWT_BEARER}' when 'client_assertion' is sent."),
            );
        }
        let Some(payload) = jwt_payload(assertion) else {
            return entra_error(
                shared,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                50027,
                "JWT token is invalid or malformed.",
            );
        };
        let Some(issued) = state.oidc_tokens.get(assertion) else {
            let issuer = payload.get("iss").and_then(Value::as_str).unwrap_or("");
            return entra_error(
                shared,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                700211,
                &format!("No matching federated identity record found for presented assertion issuer '{issuer}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"),
            );
        };
        let now = clock::now_secs();
        if issued.expires_at <= now {
            return entra_error(
                shared,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                700024,
                &format!(
                    "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                    clock::iso(now * 1000),
                    clock::iso(issued.issued_at * 1000),
                    clock::iso(issued.expires_at * 1000)
                ),
            );
        }
        "client_assertion"
    } else {
        return entra_error(
            shared,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    };
    if !known_resource(resource) {
        return entra_error(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            &format!("The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."),
        );
    }
    let (token, lifetime) = issue_access_token(shared, &mut state, resource, client_id, grant);
    json_reply(
        StatusCode::OK,
        json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }),
    )
}

/// The agent server's "access denied" body (an Azure DevOps exception envelope).
fn devops_error(status: StatusCode, type_key: &str, message: &str) -> Reply {
    json_reply(
        status,
        json!({
            "$id": "1",
            "innerException": null,
            "message": message,
            "typeName": format!("Microsoft.TeamFoundation.Framework.Server.{type_key}, Microsoft.TeamFoundation.Framework.Server"),
            "typeKey": type_key,
            "errorCode": 0,
            "eventId": 3000,
        }),
    )
}

/// `POST /oidc?api-version=7.1&serviceConnectionId=<id>`: the agent server's OIDC token endpoint.
pub fn oidc(shared: &Shared, req: &Req) -> Reply {
    let expected = format!("Bearer {}", shared.opts.oidc_request_token);
    if req.header("authorization") != Some(expected.as_str()) {
        return devops_error(
            StatusCode::UNAUTHORIZED,
            "UnauthorizedRequestException",
            "TF400813: The user '' is not authorized to access this resource.",
        );
    }
    let Some(connection) = req.query("serviceConnectionId").filter(|s| !s.is_empty()) else {
        return devops_error(
            StatusCode::BAD_REQUEST,
            "ArgumentNullException",
            "Value cannot be null.\r\nParameter name: serviceConnectionId",
        );
    };
    if req.query("api-version").is_none() {
        return devops_error(
            StatusCode::BAD_REQUEST,
            "VssVersionNotSpecifiedException",
            "The API version for this request is not specified.",
        );
    }
    let now = clock::now_secs();
    let expires_at = now + shared.opts.oidc_token_lifetime.as_secs();
    let issuer = format!("https://vstoken.dev.azure.com/{}", shared.opts.tenant_id);
    let subject = format!("sc://emulator/emulator/{connection}");
    let token = jwt(&json!({
        "iss": issuer,
        "sub": subject,
        "aud": "api://AzureADTokenExchange",
        "iat": now,
        "nbf": now,
        "exp": expires_at,
    }));
    let mut state = shared.lock();
    state.oidc_tokens.insert(
        token.clone(),
        OidcToken {
            service_connection_id: connection.to_string(),
            issuer,
            subject,
            issued_at: now,
            expires_at,
        },
    );
    state.oidc_tokens_issued += 1;
    json_reply(StatusCode::OK, json!({ "oidcToken": token }))
}

fn msi_error(status: StatusCode, error: &str, description: &str) -> Reply {
    json_reply(
        status,
        json!({"error": error, "error_description": description}),
    )
}

/// Managed identity tokens. `app_service` selects the App Service protocol
/// (`IDENTITY_ENDPOINT` + `X-IDENTITY-HEADER`, which Azure SDKs and our `azure` crate use when
/// those variables are set); otherwise the IMDS protocol (`Metadata: true`).
pub fn managed_identity(shared: &Shared, req: &Req, app_service: bool) -> Reply {
    if app_service {
        match req.header("x-identity-header") {
            None => {
                return msi_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Required header X-IDENTITY-HEADER not specified",
                )
            }
            Some(h) if h != shared.opts.identity_header => {
                return msi_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized_client",
                    "The X-IDENTITY-HEADER value is not valid",
                )
            }
            Some(_) => {}
        }
    } else if !req
        .header("metadata")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return msi_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required metadata header not specified",
        );
    }
    if req.query("api-version").is_none() {
        return msi_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        );
    }
    let Some(resource) = req.query("resource").filter(|r| !r.is_empty()) else {
        return msi_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'resource' is missing",
        );
    };
    let identity = &shared.opts.managed_identity_client_id;
    if let Some(client_id) = req.query("client_id") {
        if !client_id.eq_ignore_ascii_case(identity) {
            return msi_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Identity not found",
            );
        }
    }
    if req.query("object_id").is_some()
        || req.query("msi_res_id").is_some()
        || req.query("mi_res_id").is_some()
    {
        return msi_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Identity not found",
        );
    }
    if !known_resource(resource) {
        return msi_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            &format!("AADSTS500011: The resource principal named {resource} was not found in the tenant named {}.", shared.opts.tenant_id),
        );
    }
    let mut state = shared.lock();
    let (token, lifetime) =
        issue_access_token(shared, &mut state, resource, identity, "managed_identity");
    let now = clock::now_secs();
    json_reply(
        StatusCode::OK,
        json!({
            "access_token": token,
            "client_id": identity,
            "expires_in": lifetime.to_string(),
            "expires_on": (now + lifetime).to_string(),
            "ext_expires_in": lifetime.to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    )
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`, for MSAL-style clients.
pub fn openid_configuration(shared: &Shared, tenant: &str) -> Reply {
    let base = format!("{}/{tenant}", shared.url);
    json_reply(
        StatusCode::OK,
        json!({
            "token_endpoint": format!("{base}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{base}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{base}/v2.0"),
            "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
            "tenant_region_scope": "EU",
        }),
    )
}

/// `GET /common/discovery/instance`: MSAL's instance discovery.
pub fn instance_discovery(shared: &Shared) -> Reply {
    let host = shared.url.trim_start_matches("https://").to_string();
    json_reply(
        StatusCode::OK,
        json!({
            "tenant_discovery_endpoint": format!("{}/{}/v2.0/.well-known/openid-configuration", shared.url, shared.opts.tenant_id),
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }),
    )
}

/// Checks an ARM request's bearer token: present, issued here, unexpired, for ARM's audience.
pub fn check_arm_bearer(shared: &Shared, req: &Req) -> Result<(), Reply> {
    let unauthorized = |code: &str, message: &str| {
        arm_error(StatusCode::UNAUTHORIZED, code, message).header(
            "WWW-Authenticate",
            format!(
                "Bearer authorization_uri=\"{}/{}\", error=\"invalid_token\", error_description=\"{message}\"",
                shared.url, shared.opts.tenant_id
            ),
        )
    };
    let Some(header) = req.header("authorization") else {
        return Err(unauthorized(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ));
    };
    let Some(token) = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Err(unauthorized(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        ));
    };
    let state = shared.lock();
    let Some(issued) = state.tokens.get(token) else {
        return Err(unauthorized(
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        ));
    };
    let now = clock::now_secs();
    if issued.expires_at <= now {
        return Err(unauthorized(
            "ExpiredAuthenticationToken",
            &format!(
                "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                clock::iso(issued.expires_at * 1000),
                clock::iso(now * 1000)
            ),
        ));
    }
    let audience = normalize(&issued.audience);
    if !ARM_AUDIENCES
        .iter()
        .any(|a| a.eq_ignore_ascii_case(audience))
    {
        return Err(unauthorized(
            "InvalidAuthenticationTokenAudience",
            &format!(
                "The access token has been obtained for wrong audience or resource '{}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'.",
                issued.audience
            ),
        ));
    }
    Ok(())
}
