//! HTTP layer: routes, the gate (faults, auth, counting) and shared helpers.

mod clusters;
mod jobs;
mod stores;
mod workspace;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::faults::{DropMode, Verdict};
use crate::Shared;
use emulator_faults::{ConnectionKill, Rule};

type App = State<Arc<Shared>>;

/// Import bodies carry up to 10 MB base64-encoded; accept more so the size check can answer.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

pub fn router(shared: Arc<Shared>) -> Router {
    let mut api = Router::new()
        .route("/api/2.0/workspace/import", post(workspace::import))
        .route("/api/2.0/workspace/export", get(workspace::export))
        .route("/api/2.0/workspace/list", get(workspace::list))
        .route("/api/2.0/workspace/get-status", get(workspace::get_status))
        .route("/api/2.0/workspace/mkdirs", post(workspace::mkdirs))
        .route("/api/2.0/workspace/delete", post(workspace::delete))
        .route("/api/2.0/preview/scim/v2/Me", get(me));
    for version in ["2.0", "2.1", "2.2"] {
        let p = |rest: &str| format!("/api/{version}/jobs/{rest}");
        api = api
            .route(&p("runs/submit"), post(jobs::submit))
            .route(&p("runs/get"), get(jobs::get_run))
            .route(&p("runs/get-output"), get(jobs::get_output))
            .route(&p("runs/cancel"), post(jobs::cancel))
            .route(&p("runs/list"), get(jobs::list_runs))
            .route(&p("create"), post(jobs::create))
            .route(&p("get"), get(jobs::get_job))
            .route(&p("list"), get(jobs::list_jobs))
            .route(&p("delete"), post(jobs::delete_job))
            .route(&p("reset"), post(jobs::reset_job))
            .route(&p("run-now"), post(jobs::run_now));
    }
    for version in ["2.0", "2.1"] {
        let p = |rest: &str| format!("/api/{version}/clusters/{rest}");
        api = api
            .route(&p("get"), get(clusters::get))
            .route(&p("start"), post(clusters::start))
            .route(&p("restart"), post(clusters::restart))
            .route(&p("events"), post(clusters::events))
            .route(&p("list"), get(clusters::list));
    }
    api = stores::routes(api);
    api.route("/emulator/state", get(state))
        .route(
            "/emulator/faults",
            get(list_faults)
                .post(add_faults)
                .merge(delete(clear_faults)),
        )
        .route("/.well-known/databricks-config", get(not_found))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), gate))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

/// Short and long endpoint keys of a path: `/api/2.0/workspace/import` →
/// ("import", "workspace/import"); `/api/2.2/jobs/runs/get` → ("runs/get", "jobs/runs/get").
pub fn endpoint_keys(path: &str) -> (String, String) {
    let Some(rest) = path.strip_prefix("/api/") else {
        return (path.to_string(), path.to_string());
    };
    let long = rest.split_once('/').map_or(rest, |(_, r)| r);
    // Paths that carry a file path or an id are counted per endpoint, not per object.
    let long = ["fs/files/", "fs/directories/", "repos/"]
        .iter()
        .find(|p| long.starts_with(*p))
        .map_or(long, |p| p.trim_end_matches('/'));
    let short = long
        .strip_prefix("workspace/")
        .or_else(|| {
            long.strip_prefix("jobs/")
                .filter(|r| r.starts_with("runs/"))
        })
        .unwrap_or(long);
    (short.to_string(), long.to_string())
}

/// Every API request passes here: count, latency, faults, then authentication.
async fn gate(State(shared): App, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/emulator/") || path.starts_with("/.well-known/") {
        return next.run(request).await;
    }
    let (short, long) = endpoint_keys(&path);
    shared.count(&short);
    let latency = shared.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let kill = ConnectionKill::of(&request);
    let method = request.method().as_str().to_owned();
    match shared
        .faults
        .judge(&method, &path, &[short.as_str(), long.as_str()])
    {
        Verdict::Serve => {}
        Verdict::Status {
            status,
            retry_after_secs,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let code = match status {
                StatusCode::TOO_MANY_REQUESTS => "REQUEST_LIMIT_EXCEEDED",
                StatusCode::SERVICE_UNAVAILABLE => "TEMPORARILY_UNAVAILABLE",
                StatusCode::BAD_REQUEST => "BAD_REQUEST",
                StatusCode::NOT_FOUND => "NOT_FOUND",
                StatusCode::CONFLICT => "RESOURCE_CONFLICT",
                _ => "INTERNAL_ERROR",
            };
            let mut response = ApiError::new(
                status,
                code,
                format!("The emulator's fault rule answered {method} {path} with {status}."),
            )
            .into_response();
            if let Some(secs) = retry_after_secs {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            return response;
        }
        Verdict::RateLimited { retry_after_secs } => {
            let error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "REQUEST_LIMIT_EXCEEDED",
                "Too many requests. Please wait a moment and try again. If the issue persists, consider adjusting your request frequency or reaching out to support for assistance.",
            );
            let mut response = error.into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return response;
        }
        Verdict::Unavailable => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "TEMPORARILY_UNAVAILABLE",
                format!(
                    "The service at {path} is temporarily unavailable. Please try again later."
                ),
            )
            .into_response();
        }
        Verdict::Drop(mode) => {
            if let Some(kill) = kill {
                if mode == DropMode::After {
                    // Let the request take effect, then lose the answer.
                    let _ = authorized(&shared, request, next).await;
                }
                match kill.close().await {}
            }
        }
    }
    authorized(&shared, request, next).await
}

async fn authorized(shared: &Shared, request: Request, next: Next) -> Response {
    if let Err(error) = authenticate(shared, &request) {
        let mut response = error.clone().into_response();
        if error.status == StatusCode::FORBIDDEN {
            // The real gateway repeats the reason in this header (databricks-sdk-go#873).
            response.headers_mut().insert(
                "x-databricks-reason-phrase",
                HeaderValue::from_static("Invalid access token."),
            );
        }
        return response;
    }
    next.run(request).await
}

/// Bearer-token check: [`crate::Options::tokens`], then [`crate::Options::token_check`].
///
/// Bodies as the real service sends them: no or non-bearer credentials → 401 with
/// "Credential was not sent or was of an unsupported type for this API." (quoted in
/// many public reports); a bearer token that is not valid → 403 PERMISSION_DENIED
/// "Invalid access token." (databricks/cli acceptance/workspace/jobs/create-error).
fn authenticate(shared: &Shared, request: &Request) -> ApiResult<()> {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Credential was not sent or was of an unsupported type for this API.",
        ));
    };
    let opts = &shared.opts;
    let open = opts.tokens.is_empty() && opts.token_check.is_none();
    let listed = opts.tokens.iter().any(|t| t == token);
    let checked = || opts.token_check.as_ref().is_some_and(|c| c.accepts(token));
    if open || listed || checked() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "Invalid access token.",
        ))
    }
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ENDPOINT_NOT_FOUND",
        format!("No API found for '{method} {}'", uri.path()),
    )
}

async fn state(State(shared): App) -> Json<Value> {
    Json(shared.state())
}

/// `GET /emulator/faults`: the fault rules still active.
async fn list_faults(State(shared): App) -> Json<Value> {
    Json(shared.faults.rules.to_json())
}

/// `POST /emulator/faults`: adds a rule (or an array of rules) in [`Rule::from_json`]'s form.
async fn add_faults(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let items = match json_body(&body)? {
        Value::Array(items) => items,
        one => vec![one],
    };
    let rules = items
        .iter()
        .map(Rule::from_json)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::invalid)?;
    rules.into_iter().for_each(|r| shared.faults.rules.add(r));
    Ok(Json(shared.faults.rules.to_json()))
}

/// `DELETE /emulator/faults`: removes every rule.
async fn clear_faults(State(shared): App) -> Json<Value> {
    shared.faults.rules.clear();
    Json(shared.faults.rules.to_json())
}

async fn me(State(shared): App) -> Json<Value> {
    let user = &shared.opts.user_name;
    Json(json!({
        "id": "1000000000000001",
        "userName": user,
        "displayName": user,
        "active": true,
        "emails": [{"value": user, "type": "work", "primary": true}],
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    }))
}

/// Parses a JSON request body.
fn json_body(body: &Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::malformed(format!(
            "Invalid JSON given in the body of the request - {e}"
        ))
    })
}

type Query = axum::extract::Query<HashMap<String, String>>;

/// A required unsigned integer from the query string or a JSON body.
fn id_param(value: Option<&Value>, query: Option<&String>, name: &str) -> ApiResult<u64> {
    let parsed = match (value, query) {
        (Some(Value::Number(n)), _) => n.as_u64(),
        (Some(Value::String(s)), _) => s.parse().ok(),
        (None, Some(s)) => s.parse().ok(),
        _ => None,
    };
    match (parsed, value.is_some() || query.is_some()) {
        (Some(id), _) => Ok(id),
        (None, false) => Err(ApiError::invalid(format!("Missing required field: {name}"))),
        (None, true) => Err(ApiError::invalid(format!("Invalid value for {name}."))),
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint_keys;

    #[test]
    fn keys() {
        assert_eq!(
            endpoint_keys("/api/2.0/workspace/import"),
            ("import".into(), "workspace/import".into())
        );
        assert_eq!(
            endpoint_keys("/api/2.2/jobs/runs/get"),
            ("runs/get".into(), "jobs/runs/get".into())
        );
        assert_eq!(
            endpoint_keys("/api/2.1/jobs/create"),
            ("jobs/create".into(), "jobs/create".into())
        );
        assert_eq!(
            endpoint_keys("/api/2.1/clusters/get"),
            ("clusters/get".into(), "clusters/get".into())
        );
        assert_eq!(
            endpoint_keys("/api/2.0/fs/files/Volumes/m/s/v/a.txt"),
            ("fs/files".into(), "fs/files".into())
        );
        assert_eq!(
            endpoint_keys("/api/2.0/repos/42"),
            ("repos".into(), "repos".into())
        );
    }
}
