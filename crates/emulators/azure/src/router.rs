//! Routes a request to its handler. ARM paths are case-insensitive and deep, so the emulator
//! matches path segments itself instead of declaring axum routes.

use std::sync::Arc;

use axum::{
    body::{to_bytes, Body},
    extract::State,
    http::{Method, Request, StatusCode},
    response::{IntoResponse, Response},
};

use crate::{
    arm, entra,
    http::{json, Reply, Req},
    Shared,
};

const MAX_BODY: usize = 32 * 1024 * 1024;

pub async fn serve(State(shared): State<Arc<Shared>>, request: Request<Body>) -> Response {
    if !shared.opts.latency.is_zero() {
        tokio::time::sleep(shared.opts.latency).await;
    }
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let req = Req::new(
        parts.method,
        parts.uri.path(),
        parts.uri.query(),
        parts.headers,
        body,
    );
    shared.lock().requests += 1;
    route(&shared, &req).into_response()
}

fn route(shared: &Shared, req: &Req) -> Reply {
    let n = req.segs.len();
    let is = |i: usize, lit: &str| req.seg_is(i, lit);
    let method = &req.method;
    if n == 2 && is(0, "emulator") && is(1, "state") && method == Method::GET {
        return json(StatusCode::OK, shared.lock().snapshot());
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
