//! Routes a request to its handler. ARM paths are case-insensitive and deep, so the emulator
//! matches path segments itself instead of declaring axum routes.

use std::sync::Arc;

use axum::{
    body::{to_bytes, Body},
    extract::State,
    http::{Method, Request, StatusCode},
    response::{IntoResponse, Response},
};

use emulator_faults::{Action as FaultAction, ConnectionKill, DropMode, Rule};
use serde_json::{json as json_value, Value};

use crate::{
    arm, entra,
    http::{json, Reply, Req},
    links, Shared,
};

const MAX_BODY: usize = 32 * 1024 * 1024;

pub async fn serve(State(shared): State<Arc<Shared>>, request: Request<Body>) -> Response {
    if !shared.opts.latency.is_zero() {
        tokio::time::sleep(shared.opts.latency).await;
    }
    let path = request.uri().path();
    let is_emulator_api = path.eq_ignore_ascii_case("/emulator/state")
        || path.eq_ignore_ascii_case("/emulator/faults");
    let fault = if is_emulator_api {
        None
    } else {
        shared
            .faults
            .check(request.method().as_str(), path)
            .or_else(|| throttle(&shared, request.method(), path))
    };
    let kill = ConnectionKill::of(&request);
    match (fault, kill) {
        (
            Some(FaultAction::Status {
                status,
                retry_after_secs,
            }),
            _,
        ) => fault_reply(status, retry_after_secs).into_response(),
        (Some(FaultAction::Drop(mode)), Some(kill)) => {
            if mode == DropMode::After {
                // The request takes effect; its answer is lost.
                drop(handle(&shared, request).await);
            }
            match kill.close().await {}
        }
        _ => handle(&shared, request).await,
    }
}

/// ARM's write throttling: a write to a subscription's resources when its bucket is empty is
/// answered 429 with the wait for the next token.
fn throttle(shared: &Shared, method: &Method, path: &str) -> Option<FaultAction> {
    let bucket = shared.writes.as_ref()?;
    let write = matches!(
        *method,
        Method::PUT | Method::PATCH | Method::POST | Method::DELETE
    );
    let subscription = path
        .get(..15)
        .is_some_and(|p| p.eq_ignore_ascii_case("/subscriptions/"));
    if !write || !subscription {
        return None;
    }
    let taken = bucket
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take(std::time::Instant::now());
    let retry_after_secs = taken.err()?;
    shared.lock().writes_throttled += 1;
    Some(FaultAction::Status {
        status: 429,
        retry_after_secs: Some(retry_after_secs),
    })
}

/// A status fault as ARM answers it: the error envelope, `Retry-After` when the rule has one.
fn fault_reply(status: u16, retry_after_secs: Option<u64>) -> Reply {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let (code, message) = match status {
        StatusCode::TOO_MANY_REQUESTS => (
            "SubscriptionRequestsThrottled",
            "Number of requests for subscription exceeded the limit. Please try again after the time in the Retry-After header.",
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please try again later.",
        ),
        StatusCode::INTERNAL_SERVER_ERROR => (
            "InternalServerError",
            "Encountered internal server error. Please try again.",
        ),
        StatusCode::BAD_GATEWAY => ("BadGateway", "The gateway did not receive a response in time."),
        StatusCode::GATEWAY_TIMEOUT => ("GatewayTimeout", "The gateway did not receive a response within the specified time period."),
        _ => (status.canonical_reason().unwrap_or("Error"), "The emulator's fault rule answered this request."),
    };
    let mut reply = crate::http::arm_error(status, code, message);
    if let Some(secs) = retry_after_secs {
        reply = reply.header("Retry-After", secs.to_string());
    }
    reply
}

async fn handle(shared: &Shared, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let mut req = Req::new(
        parts.method,
        parts.uri.path(),
        parts.uri.query(),
        parts.headers,
        body,
    );
    shared.lock().requests += 1;
    // A deployment with linked templates is planned again after each document it needs has
    // been fetched (outside the state lock); planning changes nothing until it succeeds.
    loop {
        let mut reply = route(shared, &req);
        let Some(uri) = reply.fetch.take() else {
            return reply.into_response();
        };
        if req.links.len() >= links::MAX_FETCHES || req.links.get(&uri).is_some() {
            return links::content_link_error(&uri).reply().into_response();
        }
        let doc = links::fetch(&uri, &shared.ca_path).await;
        req.links.insert(uri, doc);
    }
}

fn route(shared: &Shared, req: &Req) -> Reply {
    let n = req.segs.len();
    let is = |i: usize, lit: &str| req.seg_is(i, lit);
    let method = &req.method;
    if n == 2 && is(0, "emulator") && is(1, "state") && method == Method::GET {
        return json(StatusCode::OK, shared.lock().snapshot());
    }
    if n == 2 && is(0, "emulator") && is(1, "faults") {
        return faults(shared, req);
    }
    if n == 4 && is(1, "oauth2") && is(2, "v2.0") && is(3, "token") && method == Method::POST {
        return entra::token(shared, req);
    }
    if n == 4 && is(1, "v2.0") && is(2, ".well-known") && is(3, "openid-configuration") {
        return entra::openid_configuration(shared, &req.segs[0]);
    }
    if n == 3 && is(0, "common") && is(1, "discovery") && is(2, "instance") {
        return entra::instance_discovery(shared);
    }
    if n == 1 && is(0, "oidc") && method == Method::POST {
        return entra::oidc(shared, req);
    }
    if n == 4
        && is(0, "metadata")
        && is(1, "identity")
        && is(2, "oauth2")
        && is(3, "token")
        && method == Method::GET
    {
        return entra::managed_identity(shared, req, false);
    }
    if n == 2 && is(0, "msi") && is(1, "token") && method == Method::GET {
        return entra::managed_identity(shared, req, true);
    }
    if is(0, "subscriptions") || (is(0, "providers") && is(1, "Microsoft.Management")) {
        return arm::handle(shared, req);
    }
    crate::http::arm_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("The emulator does not serve '{} {}'.", req.method, req.path),
    )
}

/// `GET /emulator/faults` lists the active rules, `POST` adds one (or an array of them),
/// `DELETE` clears them all.
fn faults(shared: &Shared, req: &Req) -> Reply {
    match req.method {
        Method::GET => json(StatusCode::OK, shared.faults.to_json()),
        Method::DELETE => {
            shared.faults.clear();
            json(StatusCode::OK, shared.faults.to_json())
        }
        Method::POST => {
            let body = match req.json() {
                Ok(body) => body,
                Err(reply) => return reply,
            };
            let items = match body {
                Value::Array(items) => items,
                one => vec![one],
            };
            let rules: Result<Vec<Rule>, String> = items.iter().map(Rule::from_json).collect();
            match rules {
                Ok(rules) => {
                    rules.into_iter().for_each(|r| shared.faults.add(r));
                    json(StatusCode::OK, shared.faults.to_json())
                }
                Err(message) => json(
                    StatusCode::BAD_REQUEST,
                    json_value!({"error": {"code": "InvalidFaultRule", "message": message}}),
                ),
            }
        }
        _ => crate::http::arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "/emulator/faults answers GET, POST and DELETE.",
        ),
    }
}
