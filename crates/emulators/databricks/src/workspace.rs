//! The workspace tree: directories, notebooks and files, with the Workspace API's rules.
//!
//! Pure data and rules; the HTTP layer (`api::workspace`) only decodes requests.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::notebook::{self, Format, Language};

/// Largest content the import endpoint accepts (decoded bytes), and export returns as JSON.
pub const MAX_IMPORT_BYTES: usize = 10 * 1024 * 1024;

/// Content up to this size is shown in `/emulator/state`.
const STATE_CONTENT_LIMIT: usize = 4096;

#[derive(Debug, Clone)]
pub enum Content {
    Directory,
    Notebook {
        language: Language,
        /// Source without the header line.
        body: String,
        /// The bytes as imported when the format cannot be rebuilt from the body (DBC, HTML).
        original: Option<(Format, Vec<u8>)>,
    },
    File {
        data: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
pub struct Node {
    pub content: Content,
    pub object_id: u64,
    pub created_at: u64,
    pub modified_at: u64,
}

impl Node {
    fn object_type(&self) -> &'static str {
        match self.content {
            Content::Directory => "DIRECTORY",
            Content::Notebook { .. } => "NOTEBOOK",
            Content::File { .. } => "FILE",
        }
    }

    fn size(&self) -> Option<usize> {
        match &self.content {
            Content::Directory => None,
            Content::Notebook { body, original, .. } => Some(
                original
                    .as_ref()
                    .map_or(body.len(), |(_, bytes)| bytes.len()),
            ),
            Content::File { data } => Some(data.len()),
        }
    }

    /// The `ObjectInfo` the API returns.
    pub fn object_info(&self, path: &str) -> Value {
        let mut info = Map::new();
        info.insert("object_type".into(), json!(self.object_type()));
        info.insert("path".into(), json!(path));
        info.insert("object_id".into(), json!(self.object_id));
        info.insert("resource_id".into(), json!(self.object_id.to_string()));
        if let Content::Notebook { language, .. } = &self.content {
            info.insert("language".into(), json!(language.as_str()));
        }
        if !matches!(self.content, Content::Directory) {
            info.insert("created_at".into(), json!(self.created_at));
            info.insert("modified_at".into(), json!(self.modified_at));
        }
        if let (Content::File { .. }, Some(size)) = (&self.content, self.size()) {
            info.insert("size".into(), json!(size));
        }
        Value::Object(info)
    }
}

/// One import request, already decoded from JSON or multipart.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub path: String,
    pub format: Format,
    pub language: Option<Language>,
    pub overwrite: bool,
    pub content: Vec<u8>,
}

/// What export hands back.
#[derive(Debug, Clone)]
pub struct Exported {
    pub bytes: Vec<u8>,
    pub file_type: Option<String>,
}

#[derive(Debug)]
pub struct Workspace {
    nodes: BTreeMap<String, Node>,
    next_id: u64,
}

/// Checks and canonicalises a workspace path: absolute, no empty or dot segments,
/// no trailing slash, the optional `/Workspace` mount prefix removed.
pub fn normalize(path: &str) -> ApiResult<String> {
    if path.is_empty() {
        return Err(ApiError::invalid("Path cannot be empty."));
    }
    if !path.starts_with('/') {
        return Err(ApiError::invalid(format!(
            "Path ({path}) must be absolute."
        )));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" => {}
            "." | ".." => {
                return Err(ApiError::invalid(format!(
                    "Path ({path}) must not contain '.' or '..' segments."
                )))
            }
            other => parts.push(other),
        }
    }
    if parts.first() == Some(&"Workspace") {
        parts.remove(0);
    }
    Ok(format!("/{}", parts.join("/")))
}

fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

fn child_prefix(path: &str) -> String {
    if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    }
}

fn extension_of(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let dot = name.rfind('.')?;
    (dot > 0).then(|| &name[dot + 1..])
}

fn strip_extension(path: &str) -> &str {
    match extension_of(path) {
        Some(ext) => &path[..path.len() - ext.len() - 1],
        None => path,
    }
}

impl Workspace {
    /// A workspace with the folders every real one has.
    pub fn new(user_name: &str, now: u64) -> Self {
        let mut ws = Workspace {
            nodes: BTreeMap::new(),
            next_id: 1_000_000_000_000_000,
        };
        for dir in ["/", "/Shared", "/Users", "/Repos"] {
            ws.insert(dir.to_string(), Content::Directory, now);
        }
        ws.insert(format!("/Users/{user_name}"), Content::Directory, now);
        ws
    }

    fn insert(&mut self, path: String, content: Content, now: u64) {
        self.next_id += 1;
        let node = Node {
            content,
            object_id: self.next_id,
            created_at: now,
            modified_at: now,
        };
        self.nodes.insert(path, node);
    }

    #[cfg(test)]
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    fn children<'a>(&'a self, path: &str) -> impl Iterator<Item = (&'a String, &'a Node)> + 'a {
        let prefix = child_prefix(path);
        let len = prefix.len();
        self.nodes
            .range(prefix.clone()..)
            .take_while(move |(p, _)| p.starts_with(&prefix))
            .filter(move |(p, _)| p.len() > len && !p[len..].contains('/'))
    }

    fn has_children(&self, path: &str) -> bool {
        self.children(path).next().is_some()
    }

    pub fn get_status(&self, path: &str) -> ApiResult<Value> {
        let canonical = normalize(path)?;
        self.nodes
            .get(&canonical)
            .map(|node| node.object_info(&canonical))
            .ok_or_else(|| ApiError::path_not_found(path))
    }

    /// Lists a directory; an empty one answers `{}` like the real service.
    pub fn list(&self, path: &str) -> ApiResult<Value> {
        let canonical = normalize(path)?;
        let node = self
            .nodes
            .get(&canonical)
            .ok_or_else(|| ApiError::path_not_found(path))?;
        let objects: Vec<Value> = match node.content {
            Content::Directory => self
                .children(&canonical)
                .map(|(p, n)| n.object_info(p))
                .collect(),
            // Listing a notebook or file answers that one object.
            _ => vec![node.object_info(&canonical)],
        };
        if objects.is_empty() {
            Ok(json!({}))
        } else {
            Ok(json!({ "objects": objects }))
        }
    }

    /// `mkdir -p`; fails when a non-directory sits on the way.
    pub fn mkdirs(&mut self, path: &str, now: u64) -> ApiResult<()> {
        let canonical = normalize(path)?;
        let mut current = String::new();
        let segments: Vec<&str> = canonical.split('/').filter(|s| !s.is_empty()).collect();
        let mut to_create = Vec::new();
        for segment in segments {
            current.push('/');
            current.push_str(segment);
            match self.nodes.get(&current) {
                Some(node) if matches!(node.content, Content::Directory) => {}
                Some(_) => {
                    // Wording of the real service as the databricks CLI matches it.
                    return Err(ApiError::already_exists(format!(
                        "Cannot create directory {canonical} because {current} is an existing file."
                    )));
                }
                None => to_create.push(current.clone()),
            }
        }
        for dir in to_create {
            self.insert(dir, Content::Directory, now);
        }
        Ok(())
    }

    pub fn import(&mut self, request: ImportRequest, now: u64) -> ApiResult<String> {
        let canonical = normalize(&request.path)?;
        if canonical == "/" {
            return Err(ApiError::already_exists("Path (/) already exists."));
        }
        if request.content.len() > MAX_IMPORT_BYTES {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "MAX_NOTEBOOK_SIZE_EXCEEDED",
                format!(
                    "File size imported is ({} bytes), exceeded max size ({} bytes)",
                    request.content.len(),
                    MAX_IMPORT_BYTES
                ),
            ));
        }
        let (target, content) = decide_content(&canonical, &request)?;
        if request.format == Format::Dbc && request.overwrite {
            return Err(ApiError::invalid(
                "Overwrite is not supported for the DBC format.",
            ));
        }
        if let Some(parent) = parent_of(&target) {
            let parent_is_dir = self
                .nodes
                .get(parent)
                .is_some_and(|n| matches!(n.content, Content::Directory));
            if !parent_is_dir {
                // The databricks CLI's test server words it so; unverified against the real service.
                return Err(ApiError::new(
                    axum::http::StatusCode::NOT_FOUND,
                    "RESOURCE_DOES_NOT_EXIST",
                    format!("The parent folder ({parent}) does not exist."),
                ));
            }
        }
        match self.nodes.get_mut(&target) {
            Some(existing) => {
                if !request.overwrite || matches!(existing.content, Content::Directory) {
                    return Err(ApiError::already_exists(format!(
                        "Path ({target}) already exists."
                    )));
                }
                existing.content = content;
                existing.modified_at = now;
            }
            None => self.insert(target.clone(), content, now),
        }
        Ok(target)
    }

    pub fn export(&self, path: &str, format: Format) -> ApiResult<Exported> {
        let canonical = normalize(path)?;
        let node = self
            .nodes
            .get(&canonical)
            .ok_or_else(|| ApiError::path_not_found(path))?;
        let name = canonical.rsplit('/').next().unwrap_or("");
        match &node.content {
            Content::Directory => Err(ApiError::invalid(format!(
                "Exporting the directory ({canonical}) as an archive is not supported by this emulator."
            ))),
            Content::File { data } => match format {
                Format::Source | Format::Raw | Format::Auto => Ok(Exported {
                    bytes: data.clone(),
                    file_type: extension_of(&canonical).map(str::to_string),
                }),
                other => Err(ApiError::invalid(format!(
                    "The file ({canonical}) cannot be exported in the {} format.",
                    other.as_str()
                ))),
            },
            Content::Notebook {
                language,
                body,
                original,
            } => {
                if let Some((original_format, bytes)) = original {
                    if *original_format == format {
                        return Ok(Exported {
                            bytes: bytes.clone(),
                            file_type: Some(file_type_of(format, *language).to_string()),
                        });
                    }
                }
                let bytes = match format {
                    Format::Source | Format::Auto | Format::Raw | Format::RMarkdown => {
                        notebook::to_source(body, *language).into_bytes()
                    }
                    Format::Jupyter => {
                        let doc = notebook::to_jupyter(body, *language, name);
                        serde_json::to_vec_pretty(&doc).unwrap_or_default()
                    }
                    Format::Html => notebook::to_html(body, name).into_bytes(),
                    Format::Dbc => {
                        return Err(ApiError::invalid(format!(
                            "Exporting ({canonical}) as DBC is only supported by this emulator for notebooks imported as DBC."
                        )))
                    }
                };
                Ok(Exported {
                    bytes,
                    file_type: Some(file_type_of(format, *language).to_string()),
                })
            }
        }
    }

    pub fn delete(&mut self, path: &str, recursive: bool) -> ApiResult<()> {
        let canonical = normalize(path)?;
        let node = self
            .nodes
            .get(&canonical)
            .ok_or_else(|| ApiError::path_not_found(path))?;
        let is_dir = matches!(node.content, Content::Directory);
        if canonical == "/" {
            return Err(ApiError::invalid("The root folder cannot be deleted."));
        }
        if is_dir && self.has_children(&canonical) {
            if !recursive {
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "DIRECTORY_NOT_EMPTY",
                    format!("Folder ({canonical}) is not empty"),
                ));
            }
            let prefix = child_prefix(&canonical);
            let doomed: Vec<String> = self
                .nodes
                .range(prefix.clone()..)
                .take_while(|(p, _)| p.starts_with(&prefix))
                .map(|(p, _)| p.clone())
                .collect();
            for p in doomed {
                self.nodes.remove(&p);
            }
        }
        self.nodes.remove(&canonical);
        Ok(())
    }

    /// Language and body of the notebook at `path`, for the run executor.
    pub fn notebook(&self, path: &str) -> Option<(Language, String)> {
        let canonical = normalize(path).ok()?;
        match &self.nodes.get(&canonical)?.content {
            Content::Notebook { language, body, .. } => Some((*language, body.clone())),
            _ => None,
        }
    }

    /// Bytes of the file at `path`, for `spark_python_task`.
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        let canonical = normalize(path).ok()?;
        match &self.nodes.get(&canonical)?.content {
            Content::File { data } => Some(data.clone()),
            _ => None,
        }
    }

    /// Tree dump for `/emulator/state`.
    pub fn dump(&self) -> Value {
        let objects: Vec<Value> = self
            .nodes
            .iter()
            .map(|(path, node)| {
                let mut info = node.object_info(path);
                if let Some(obj) = info.as_object_mut() {
                    if let Some(size) = node.size() {
                        obj.insert("size".into(), json!(size));
                    }
                    let small = match &node.content {
                        Content::Notebook { body, .. } if body.len() <= STATE_CONTENT_LIMIT => {
                            Some(body.clone())
                        }
                        Content::File { data } if data.len() <= STATE_CONTENT_LIMIT => {
                            std::str::from_utf8(data).ok().map(str::to_string)
                        }
                        _ => None,
                    };
                    if let Some(text) = small {
                        obj.insert("content".into(), json!(text));
                    }
                }
                info
            })
            .collect();
        json!(objects)
    }
}

fn file_type_of(format: Format, language: Language) -> &'static str {
    match format {
        Format::Jupyter => "ipynb",
        Format::Html => "html",
        Format::Dbc => "dbc",
        Format::RMarkdown => "Rmd",
        _ => language.extension(),
    }
}

/// Decides what an import creates and where (AUTO strips a notebook's extension).
fn decide_content(path: &str, request: &ImportRequest) -> ApiResult<(String, Content)> {
    let notebook = |language, body| Content::Notebook {
        language,
        body,
        original: None,
    };
    match request.format {
        Format::Source => {
            let language = request.language.ok_or_else(|| {
                ApiError::invalid("The zip file may not be valid or may be an unsupported version.")
            })?;
            let body = notebook::body_from_source(&request.content, language);
            Ok((path.to_string(), notebook(language, body)))
        }
        Format::Jupyter => {
            let (language, body) = notebook::from_jupyter(&request.content, request.language)
                .ok_or_else(|| {
                    ApiError::invalid("Unable to parse the content as a Jupyter notebook.")
                })?;
            Ok((path.to_string(), notebook(language, body)))
        }
        Format::RMarkdown => {
            let body = String::from_utf8_lossy(&request.content).into_owned();
            Ok((path.to_string(), notebook(Language::R, body)))
        }
        Format::Html | Format::Dbc => {
            let language = request.language.unwrap_or(Language::Python);
            Ok((
                path.to_string(),
                Content::Notebook {
                    language,
                    body: String::new(),
                    original: Some((request.format, request.content.clone())),
                },
            ))
        }
        Format::Raw => Ok((
            path.to_string(),
            Content::File {
                data: request.content.clone(),
            },
        )),
        Format::Auto => {
            let ext = extension_of(path);
            if ext == Some("ipynb") {
                if let Some((language, body)) =
                    notebook::from_jupyter(&request.content, request.language)
                {
                    return Ok((strip_extension(path).to_string(), notebook(language, body)));
                }
            }
            if let Some(language) = ext.and_then(Language::from_extension) {
                if notebook::has_header(&request.content, language) {
                    let body = notebook::body_from_source(&request.content, language);
                    return Ok((strip_extension(path).to_string(), notebook(language, body)));
                }
            }
            Ok((
                path.to_string(),
                Content::File {
                    data: request.content.clone(),
                },
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(
        path: &str,
        format: Format,
        language: Option<Language>,
        content: &str,
    ) -> ImportRequest {
        ImportRequest {
            path: path.into(),
            format,
            language,
            overwrite: false,
            content: content.as_bytes().to_vec(),
        }
    }

    #[test]
    fn normalize_rules() {
        assert_eq!(normalize("/a//b/").unwrap(), "/a/b");
        assert_eq!(normalize("/Workspace/Shared/x").unwrap(), "/Shared/x");
        assert_eq!(normalize("/").unwrap(), "/");
        assert!(normalize("relative").is_err());
        assert!(normalize("/a/../b").is_err());
        assert!(normalize("").is_err());
    }

    #[test]
    fn auto_strips_extension_only_for_notebooks() {
        let mut ws = Workspace::new("u", 0);
        let nb = import(
            "/Shared/nb.py",
            Format::Auto,
            None,
            "# Databricks notebook source\nx=1\n",
        );
        assert_eq!(ws.import(nb, 1).unwrap(), "/Shared/nb");
        let file = import("/Shared/mod.py", Format::Auto, None, "x=1\n");
        assert_eq!(ws.import(file, 1).unwrap(), "/Shared/mod.py");
        let sql = import(
            "/Shared/q.sql",
            Format::Auto,
            None,
            "-- Databricks notebook source\nselect 1\n",
        );
        assert_eq!(ws.import(sql, 1).unwrap(), "/Shared/q");
        assert_eq!(ws.get_status("/Shared/q").unwrap()["language"], "SQL");
        assert_eq!(
            ws.get_status("/Shared/mod.py").unwrap()["object_type"],
            "FILE"
        );
    }

    #[test]
    fn mkdirs_over_file_fails() {
        let mut ws = Workspace::new("u", 0);
        ws.import(import("/Shared/f", Format::Raw, None, "x"), 1)
            .unwrap();
        let err = ws.mkdirs("/Shared/f/sub", 2).unwrap_err();
        assert_eq!(err.error_code, "RESOURCE_ALREADY_EXISTS");
        ws.mkdirs("/Shared/a/b/c", 2).unwrap();
        ws.mkdirs("/Shared/a/b/c", 2).unwrap();
        assert_eq!(
            ws.get_status("/Shared/a/b").unwrap()["object_type"],
            "DIRECTORY"
        );
    }

    #[test]
    fn delete_rules() {
        let mut ws = Workspace::new("u", 0);
        ws.mkdirs("/Shared/d/e", 0).unwrap();
        ws.import(import("/Shared/d/e/f", Format::Raw, None, "x"), 1)
            .unwrap();
        ws.mkdirs("/Shared/dd", 0).unwrap();
        assert_eq!(
            ws.delete("/Shared/d", false).unwrap_err().error_code,
            "DIRECTORY_NOT_EMPTY"
        );
        ws.delete("/Shared/d", true).unwrap();
        assert!(ws.get("/Shared/d/e/f").is_none());
        assert!(
            ws.get("/Shared/dd").is_some(),
            "a sibling sharing the prefix survives"
        );
        assert_eq!(ws.delete("/Shared/d", true).unwrap_err().status, 404);
    }
}
