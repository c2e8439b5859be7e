//! Handlers of the Secrets, Files (volumes), DBFS, Libraries and Repos APIs, and the
//! emulator's admin calls that declare volumes and Git remotes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

use super::{json_body, App, Query};
use crate::error::{ApiError, ApiResult};
use crate::files::http_date;
use crate::libraries::ClusterView;
use crate::repos::GitRemote;
use crate::secrets::Backend;
use crate::stores::lock;
use crate::Shared;

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Adds every route of this module.
pub fn routes(router: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    let s = |rest: &str| format!("/api/2.0/secrets/{rest}");
    let d = |rest: &str| format!("/api/2.0/dbfs/{rest}");
    router
        .route(&s("scopes/create"), post(create_scope))
        .route(&s("scopes/list"), get(list_scopes))
        .route(&s("scopes/delete"), post(delete_scope))
        .route(&s("put"), post(put_secret))
        .route(&s("list"), get(list_secrets))
        .route(&s("delete"), post(delete_secret))
        .route(&s("acls/put"), post(put_acl))
        .route(&s("acls/get"), get(get_acl))
        .route(&s("acls/list"), get(list_acls))
        .route(&s("acls/delete"), post(delete_acl))
        .route(
            "/api/2.0/fs/files/{*path}",
            put(put_file)
                .get(get_file)
                .head(head_file)
                .delete(delete_file),
        )
        .route(
            "/api/2.0/fs/directories/{*path}",
            put(put_dir).get(list_dir).head(head_dir),
        )
        .route(&d("put"), post(dbfs_put))
        .route(&d("create"), post(dbfs_create))
        .route(&d("add-block"), post(dbfs_add_block))
        .route(&d("close"), post(dbfs_close))
        .route(&d("get-status"), get(dbfs_get_status))
        .route(&d("mkdirs"), post(dbfs_mkdirs))
        .route(&d("list"), get(dbfs_list))
        .route(&d("read"), get(dbfs_read))
        .route(&d("delete"), post(dbfs_delete))
        .route(&d("move"), post(dbfs_move))
        .route("/api/2.0/libraries/install", post(install))
        .route("/api/2.0/libraries/uninstall", post(uninstall))
        .route("/api/2.0/libraries/cluster-status", get(cluster_status))
        .route("/api/2.0/repos", post(create_repo).get(list_repos))
        .route(
            "/api/2.0/repos/{id}",
            get(get_repo).patch(update_repo).delete(delete_repo),
        )
        .route("/emulator/volumes", post(declare_volume))
        .route("/emulator/git-remotes", post(declare_remote))
}

fn text<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

fn required<'a>(body: &'a Value, key: &str) -> ApiResult<&'a str> {
    text(body, key)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::invalid(format!("Missing required field: {key}")))
}

fn query_required<'a>(query: &'a Query, key: &str) -> ApiResult<&'a str> {
    query
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::invalid(format!("Missing required field: {key}")))
}

fn ok() -> Json<Value> {
    Json(json!({}))
}

/// Whether the request carries a Microsoft Entra ID token (a JWT) rather than a personal
/// access token.
fn is_entra_token(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.starts_with("eyJ") && t.split('.').count() == 3)
}

// ---- Secrets -------------------------------------------------------------------------------

async fn create_scope(
    State(shared): App,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let scope = text(&body, "scope").unwrap_or_default();
    let backend = match text(&body, "scope_backend_type").unwrap_or("DATABRICKS") {
        "DATABRICKS" => Backend::Databricks,
        "AZURE_KEYVAULT" => {
            let kv = body.get("backend_azure_keyvault");
            let field = |k: &str| kv.and_then(|v| text(v, k)).unwrap_or_default().to_owned();
            Backend::AzureKeyVault {
                resource_id: field("resource_id"),
                dns_name: field("dns_name"),
            }
        }
        other => {
            return Err(ApiError::invalid(format!(
                "Invalid scope_backend_type {other}: expected DATABRICKS or AZURE_KEYVAULT."
            )))
        }
    };
    lock(&shared.stores.secrets)?.create_scope(
        scope,
        backend,
        text(&body, "initial_manage_principal"),
        &shared.opts.user_name,
        is_entra_token(&headers),
    )?;
    Ok(ok())
}

async fn list_scopes(State(shared): App) -> ApiResult<Json<Value>> {
    Ok(Json(lock(&shared.stores.secrets)?.list_scopes()))
}

async fn delete_scope(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    lock(&shared.stores.secrets)?.delete_scope(required(&body, "scope")?)?;
    Ok(ok())
}

async fn put_secret(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let scope = required(&body, "scope")?;
    let key = text(&body, "key").unwrap_or_default();
    let value = match (text(&body, "string_value"), text(&body, "bytes_value")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "Only one of string_value and bytes_value can be given.",
            ))
        }
        (Some(s), None) => s.as_bytes().to_vec(),
        (None, Some(b)) => BASE64
            .decode(b)
            .map_err(|_| ApiError::invalid("bytes_value is not valid base64."))?,
        (None, None) => {
            return Err(ApiError::invalid(
                "Either string_value or bytes_value must be given.",
            ))
        }
    };
    lock(&shared.stores.secrets)?.put(scope, key, value, crate::now_ms())?;
    Ok(ok())
}

async fn list_secrets(State(shared): App, query: Query) -> ApiResult<Json<Value>> {
    let scope = query_required(&query, "scope")?;
    Ok(Json(lock(&shared.stores.secrets)?.list(scope)?))
}

async fn delete_secret(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    lock(&shared.stores.secrets)?.delete(required(&body, "scope")?, required(&body, "key")?)?;
    Ok(ok())
}

async fn put_acl(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    lock(&shared.stores.secrets)?.put_acl(
        required(&body, "scope")?,
        required(&body, "principal")?,
        required(&body, "permission")?,
    )?;
    Ok(ok())
}

async fn get_acl(State(shared): App, query: Query) -> ApiResult<Json<Value>> {
    let secrets = lock(&shared.stores.secrets)?;
    Ok(Json(secrets.get_acl(
        query_required(&query, "scope")?,
        query_required(&query, "principal")?,
    )?))
}

async fn list_acls(State(shared): App, query: Query) -> ApiResult<Json<Value>> {
    Ok(Json(
        lock(&shared.stores.secrets)?.list_acls(query_required(&query, "scope")?)?,
    ))
}

async fn delete_acl(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    lock(&shared.stores.secrets)?
        .delete_acl(required(&body, "scope")?, required(&body, "principal")?)?;
    Ok(ok())
}

// ---- Files API (volumes) ---------------------------------------------------------------------

fn abs(path: &str) -> String {
    format!("/{}", path.trim_start_matches('/'))
}

fn flag(query: &Query, key: &str) -> bool {
    matches!(
        query.get(key).map(String::as_str),
        Some("true" | "True" | "1")
    )
}

async fn put_file(
    State(shared): App,
    Path(path): Path<String>,
    query: Query,
    body: Bytes,
) -> ApiResult<StatusCode> {
    lock(&shared.stores.volumes)?.put(
        &abs(&path),
        body.to_vec(),
        flag(&query, "overwrite"),
        crate::now_ms(),
    )?;
    Ok(StatusCode::NO_CONTENT)
}

fn file_headers(len: usize, modified_ms: u64) -> [(header::HeaderName, HeaderValue); 3] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        ),
        (header::CONTENT_LENGTH, HeaderValue::from(len)),
        (
            header::LAST_MODIFIED,
            HeaderValue::from_str(&http_date(modified_ms)).unwrap_or(HeaderValue::from_static("")),
        ),
    ]
}

async fn get_file(State(shared): App, Path(path): Path<String>) -> ApiResult<Response> {
    let volumes = lock(&shared.stores.volumes)?;
    let f = volumes.get(&abs(&path))?;
    Ok((file_headers(f.data.len(), f.modified_ms), f.data.clone()).into_response())
}

/// HEAD answers carry no body: errors are the bare status.
async fn head_file(State(shared): App, Path(path): Path<String>) -> Response {
    let Ok(volumes) = lock(&shared.stores.volumes) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match volumes.get(&abs(&path)) {
        Ok(f) => (file_headers(f.data.len(), f.modified_ms), ()).into_response(),
        Err(e) => e.status.into_response(),
    }
}

async fn delete_file(State(shared): App, Path(path): Path<String>) -> ApiResult<StatusCode> {
    lock(&shared.stores.volumes)?.delete(&abs(&path))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_dir(State(shared): App, Path(path): Path<String>) -> ApiResult<StatusCode> {
    lock(&shared.stores.volumes)?.mkdirs(&abs(&path))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_dir(State(shared): App, Path(path): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(lock(&shared.stores.volumes)?.list(&abs(&path))?))
}

async fn head_dir(State(shared): App, Path(path): Path<String>) -> StatusCode {
    match lock(&shared.stores.volumes).map(|v| v.is_dir(&abs(&path))) {
        Ok(Ok(true)) => StatusCode::OK,
        Ok(Ok(false)) => StatusCode::NOT_FOUND,
        Ok(Err(e)) => e.status,
        Err(e) => e.status,
    }
}

// ---- DBFS ----------------------------------------------------------------------------------

fn decode(body: &Value, key: &str) -> ApiResult<Vec<u8>> {
    BASE64
        .decode(text(body, key).unwrap_or_default())
        .map_err(|_| ApiError::invalid(format!("{key} is not valid base64.")))
}

fn handle_of(body: &Value) -> ApiResult<u64> {
    body.get("handle")
        .and_then(Value::as_u64)
        .ok_or_else(|| ApiError::invalid("Missing required field: handle"))
}

async fn dbfs_put(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let path = required(&body, "path")?;
    let data = decode(&body, "contents")?;
    let overwrite = body
        .get("overwrite")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    lock(&shared.stores.dbfs)?.put(path, data, overwrite, crate::now_ms())?;
    Ok(ok())
}

async fn dbfs_create(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let overwrite = body
        .get("overwrite")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let handle = lock(&shared.stores.dbfs)?.create(required(&body, "path")?, overwrite)?;
    Ok(Json(json!({ "handle": handle })))
}

async fn dbfs_add_block(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let data = decode(&body, "data")?;
    lock(&shared.stores.dbfs)?.add_block(handle_of(&body)?, &data)?;
    Ok(ok())
}

async fn dbfs_close(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    lock(&shared.stores.dbfs)?.close(handle_of(&body)?, crate::now_ms())?;
    Ok(ok())
}

async fn dbfs_get_status(State(shared): App, query: Query) -> ApiResult<Json<Value>> {
    Ok(Json(
        lock(&shared.stores.dbfs)?.get_status(query_required(&query, "path")?)?,
    ))
}

async fn dbfs_mkdirs(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    lock(&shared.stores.dbfs)?.mkdirs(required(&body, "path")?)?;
    Ok(ok())
}

async fn dbfs_list(State(shared): App, query: Query) -> ApiResult<Json<Value>> {
    Ok(Json(
        lock(&shared.stores.dbfs)?.list(query_required(&query, "path")?)?,
    ))
}

async fn dbfs_move(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    lock(&shared.stores.dbfs)?.rename(
        required(&body, "source_path")?,
        required(&body, "destination_path")?,
    )?;
    Ok(ok())
}

async fn dbfs_read(State(shared): App, query: Query) -> ApiResult<Json<Value>> {
    let number = |k: &str, default: usize| -> ApiResult<usize> {
        query.get(k).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| ApiError::invalid(format!("Invalid value for {k}.")))
        })
    };
    let dbfs = lock(&shared.stores.dbfs)?;
    let data = dbfs.read(
        query_required(&query, "path")?,
        number("offset", 0)?,
        number("length", crate::files::DBFS_MAX_BLOCK_BYTES)?,
    )?;
    Ok(Json(
        json!({"bytes_read": data.len(), "data": BASE64.encode(data)}),
    ))
}

async fn dbfs_delete(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let recursive = body
        .get("recursive")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    lock(&shared.stores.dbfs)?.delete(required(&body, "path")?, recursive)?;
    Ok(ok())
}

// ---- Libraries -----------------------------------------------------------------------------

/// The cluster as the libraries state machine sees it; an unknown cluster is the Clusters
/// API's error.
fn cluster_view(shared: &Shared, cluster_id: &str) -> ApiResult<ClusterView> {
    let info = shared
        .clusters
        .lock()
        .map_err(|_| ApiError::invalid("clusters lock poisoned"))?
        .get(cluster_id)?;
    Ok(ClusterView {
        running: info["state"] == "RUNNING",
        start_time_ms: info["last_restarted_time"]
            .as_u64()
            .or_else(|| info["start_time"].as_u64())
            .unwrap_or(0),
    })
}

fn libraries_of(body: &Value) -> ApiResult<&Vec<Value>> {
    body.get("libraries")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid("Missing required field: libraries"))
}

async fn install(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let cluster_id = required(&body, "cluster_id")?;
    cluster_view(&shared, cluster_id)?;
    lock(&shared.stores.libraries)?.install(cluster_id, libraries_of(&body)?)?;
    Ok(ok())
}

async fn uninstall(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let cluster_id = required(&body, "cluster_id")?;
    cluster_view(&shared, cluster_id)?;
    lock(&shared.stores.libraries)?.uninstall(cluster_id, libraries_of(&body)?, crate::now_ms())?;
    Ok(ok())
}

/// Whether a library's file is where it says: a volume, the workspace or DBFS.
fn file_exists(shared: &Shared, path: &str) -> bool {
    if path.starts_with("/Volumes/") {
        lock(&shared.stores.volumes).is_ok_and(|v| v.exists(path))
    } else if path.starts_with("dbfs:/") {
        lock(&shared.stores.dbfs).is_ok_and(|d| d.exists(path))
    } else {
        let Ok(p) = crate::workspace::normalize(path) else {
            return false;
        };
        shared
            .workspace
            .lock()
            .is_ok_and(|ws| ws.file(&p).is_some())
    }
}

async fn cluster_status(State(shared): App, query: Query) -> ApiResult<Json<Value>> {
    let cluster_id = query_required(&query, "cluster_id")?;
    let view = cluster_view(&shared, cluster_id)?;
    // Which files exist is read before the libraries lock is taken (one lock at a time).
    let files: Vec<(String, bool)> = {
        let libs = lock(&shared.stores.libraries)?;
        libs.files(cluster_id)
            .into_iter()
            .map(|f| {
                let exists = file_exists(&shared, &f);
                (f, exists)
            })
            .collect()
    };
    let mut libs = lock(&shared.stores.libraries)?;
    Ok(Json(libs.status(
        cluster_id,
        view,
        shared.opts.library_install_delay,
        &shared.opts.failing_libraries,
        |p| files.iter().any(|(f, e)| f == p && *e),
    )))
}

// ---- Repos ---------------------------------------------------------------------------------

fn repo_id(id: &str) -> ApiResult<u64> {
    id.parse()
        .map_err(|_| ApiError::invalid(format!("Invalid repo id {id}.")))
}

async fn create_repo(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let info = lock(&shared.stores.repos)?.create(
        text(&body, "url").unwrap_or_default(),
        required(&body, "provider")?,
        text(&body, "path"),
        &shared.opts.user_name,
    )?;
    Ok(Json(info))
}

async fn list_repos(State(shared): App, query: Query) -> ApiResult<Json<Value>> {
    Ok(Json(
        lock(&shared.stores.repos)?.list(query.get("path_prefix").map(String::as_str)),
    ))
}

async fn get_repo(State(shared): App, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(lock(&shared.stores.repos)?.get(repo_id(&id)?)?))
}

async fn update_repo(
    State(shared): App,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let info = lock(&shared.stores.repos)?.update(
        repo_id(&id)?,
        text(&body, "branch"),
        text(&body, "tag"),
    )?;
    Ok(Json(info))
}

async fn delete_repo(State(shared): App, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    lock(&shared.stores.repos)?.delete(repo_id(&id)?)?;
    Ok(ok())
}

// ---- Emulator admin --------------------------------------------------------------------------

/// `POST /emulator/volumes {"name": "catalog.schema.volume"}`: creates a volume.
async fn declare_volume(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let root = lock(&shared.stores.volumes)?.declare(required(&body, "name")?)?;
    Ok(Json(json!({ "path": root })))
}

/// `POST /emulator/git-remotes {"url", "branches": {name: commit}, "tags": {…}}`: declares
/// a remote or moves its refs.
async fn declare_remote(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let remote: GitRemote = serde_json::from_slice(&body)
        .map_err(|e| ApiError::malformed(format!("Invalid remote: {e}")))?;
    if remote.url.is_empty() {
        return Err(ApiError::invalid("Missing required field: url"));
    }
    lock(&shared.stores.repos)?.declare(remote);
    Ok(ok())
}
