//! Clusters API handlers (2.0 and 2.1 paths).

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::{json_body, App, Query};
use crate::error::{ApiError, ApiResult};

fn cluster_id(value: Option<&str>) -> ApiResult<String> {
    value
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ApiError::invalid("Missing required field: cluster_id"))
}

fn lock(shared: &crate::Shared) -> ApiResult<std::sync::MutexGuard<'_, crate::clusters::Clusters>> {
    shared
        .clusters
        .lock()
        .map_err(|_| ApiError::invalid("clusters lock poisoned"))
}

pub async fn get(State(shared): App, query: Query) -> ApiResult<Json<Value>> {
    let id = cluster_id(query.get("cluster_id").map(String::as_str))?;
    Ok(Json(lock(&shared)?.get(&id)?))
}

pub async fn start(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let id = cluster_id(body.get("cluster_id").and_then(Value::as_str))?;
    lock(&shared)?.start(&id, crate::now_ms())?;
    Ok(Json(json!({})))
}

pub async fn list(State(shared): App) -> ApiResult<Json<Value>> {
    Ok(Json(lock(&shared)?.list()))
}
