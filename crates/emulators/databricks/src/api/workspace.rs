//! Workspace API 2.0 handlers: decode, call the tree, encode.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};

use super::{json_body, App, Query};
use crate::error::{ApiError, ApiResult};
use crate::notebook::{Format, Language};
use crate::workspace::{ImportRequest, MAX_IMPORT_BYTES};

/// Standard alphabet; padding optional, as clients differ.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

fn parse_format(value: Option<&str>) -> ApiResult<Format> {
    match value {
        None | Some("") => Ok(Format::Source),
        Some(s) => Format::parse(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid format: {s}. Expected one of AUTO, DBC, HTML, JUPYTER, RAW, R_MARKDOWN, SOURCE."
            ))
        }),
    }
}

fn parse_language(value: Option<&str>) -> ApiResult<Option<Language>> {
    match value {
        None | Some("") => Ok(None),
        Some(s) => Language::parse(s).map(Some).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid language: {s}. Expected one of PYTHON, R, SCALA, SQL."
            ))
        }),
    }
}

fn parse_bool(value: Option<&str>) -> bool {
    matches!(value, Some("true" | "True" | "TRUE" | "1"))
}

fn required_path(path: Option<String>) -> ApiResult<String> {
    path.filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::invalid("Path cannot be empty."))
}

/// `POST /api/2.0/workspace/import`: JSON with base64 content, or multipart form data.
pub async fn import(State(shared): App, request: Request) -> ApiResult<Json<Value>> {
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let import = if is_multipart {
        from_multipart(request).await?
    } else {
        let body = Bytes::from_request(request, &())
            .await
            .map_err(|e| ApiError::malformed(e.body_text()))?;
        from_json(&json_body(&body)?)?
    };
    let now = crate::now_ms();
    let mut workspace = shared
        .workspace
        .lock()
        .map_err(|_| ApiError::invalid("workspace lock poisoned"))?;
    workspace.import(import, now)?;
    Ok(Json(json!({})))
}

fn from_json(body: &Value) -> ApiResult<ImportRequest> {
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    let content = match text("content") {
        Some(encoded) => BASE64
            .decode(encoded.trim())
            .map_err(|e| ApiError::malformed(format!("The content is not valid base64: {e}")))?,
        None => Vec::new(),
    };
    Ok(ImportRequest {
        path: required_path(text("path").map(str::to_string))?,
        format: parse_format(text("format"))?,
        language: parse_language(text("language"))?,
        overwrite: body
            .get("overwrite")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        content,
    })
}

async fn from_multipart(request: Request) -> ApiResult<ImportRequest> {
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::malformed(e.body_text()))?;
    let (mut path, mut format, mut language, mut overwrite, mut content) =
        (None, None, None, None, Vec::new());
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::malformed(e.body_text()))?
    {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::malformed(e.body_text()))?;
        let text = || String::from_utf8_lossy(&bytes).trim().to_string();
        match name.as_str() {
            "path" => path = Some(text()),
            "format" => format = Some(text()),
            "language" => language = Some(text()),
            "overwrite" => overwrite = Some(text()),
            "content" => content = bytes.to_vec(),
            _ => {}
        }
    }
    Ok(ImportRequest {
        path: required_path(path)?,
        format: parse_format(format.as_deref())?,
        language: parse_language(language.as_deref())?,
        overwrite: parse_bool(overwrite.as_deref()),
        content,
    })
}

/// `GET /api/2.0/workspace/export`.
pub async fn export(State(shared): App, query: Query) -> ApiResult<Response> {
    let path = required_path(query.get("path").cloned())?;
    let format = parse_format(query.get("format").map(String::as_str))?;
    let direct = parse_bool(query.get("direct_download").map(String::as_str));
    let exported = shared
        .workspace
        .lock()
        .map_err(|_| ApiError::invalid("workspace lock poisoned"))?
        .export(&path, format)?;
    if direct {
        return Ok((
            [(header::CONTENT_TYPE, "application/octet-stream")],
            exported.bytes,
        )
            .into_response());
    }
    if exported.bytes.len() > MAX_IMPORT_BYTES {
        // Wording of the databricks CLI's recorded answer.
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "MAX_NOTEBOOK_SIZE_EXCEEDED",
            "Notebook size exceeds maximum allowed size",
        ));
    }
    let mut body = json!({ "content": BASE64.encode(&exported.bytes) });
    if let Some(file_type) = exported.file_type {
        body["file_type"] = json!(file_type);
    }
    Ok(Json(body).into_response())
}

/// `GET /api/2.0/workspace/list`.
pub async fn list(State(shared): App, query: Query) -> ApiResult<Json<Value>> {
    let path = required_path(query.get("path").cloned())?;
    let workspace = shared
        .workspace
        .lock()
        .map_err(|_| ApiError::invalid("workspace lock poisoned"))?;
    Ok(Json(workspace.list(&path)?))
}

/// `GET /api/2.0/workspace/get-status`.
pub async fn get_status(State(shared): App, query: Query) -> ApiResult<Json<Value>> {
    let path = required_path(query.get("path").cloned())?;
    let workspace = shared
        .workspace
        .lock()
        .map_err(|_| ApiError::invalid("workspace lock poisoned"))?;
    Ok(Json(workspace.get_status(&path)?))
}

/// `POST /api/2.0/workspace/mkdirs`.
pub async fn mkdirs(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let path = required_path(body.get("path").and_then(Value::as_str).map(str::to_string))?;
    shared
        .workspace
        .lock()
        .map_err(|_| ApiError::invalid("workspace lock poisoned"))?
        .mkdirs(&path, crate::now_ms())?;
    Ok(Json(json!({})))
}

/// `POST /api/2.0/workspace/delete`.
pub async fn delete(State(shared): App, body: Bytes) -> ApiResult<Json<Value>> {
    let body = json_body(&body)?;
    let path = required_path(body.get("path").and_then(Value::as_str).map(str::to_string))?;
    let recursive = body
        .get("recursive")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    shared
        .workspace
        .lock()
        .map_err(|_| ApiError::invalid("workspace lock poisoned"))?
        .delete(&path, recursive)?;
    Ok(Json(json!({})))
}
