//! Clusters API handlers (2.0 and 2.1 paths): get, list, start, restart, events.

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

pub async fn restart(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let id = cluster_id(body.get("cluster_id").and_then(Value::as_str))?;
    lock(&shared)?.restart(&id)?;
    Ok(Json(json!({})))
}

/// `POST clusters/events`: newest first unless `order` is `ASC`; `limit` 1–500 (default 50).
pub async fn events(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let id = cluster_id(body.get("cluster_id").and_then(Value::as_str))?;
    let limit = match body.get("limit") {
        None | Some(Value::Null) => 50,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=500) => n as usize,
            _ => return Err(ApiError::invalid("The limit must be between 1 and 500.")),
        },
    };
    let ascending = match body.get("order").and_then(Value::as_str) {
        None | Some("DESC") => false,
        Some("ASC") => true,
        Some(other) => {
            return Err(ApiError::malformed(format!(
                "Could not parse request object: Unknown order {other}"
            )))
        }
    };
    let query = crate::clusters::EventQuery {
        start_time: body.get("start_time").and_then(Value::as_u64),
        end_time: body.get("end_time").and_then(Value::as_u64),
        ascending,
        event_types: body.get("event_types").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        }),
        offset: body.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize,
        limit,
    };
    Ok(Json(lock(&shared)?.events(&id, &query)?))
}
