//! Workspace API 2.0: notebooks, files and folders.

use std::fmt;

use base64::Engine;
use serde::{Deserialize, Deserializer};
use serde_json::json;

use crate::client::Call;
use crate::{Error, Workspace};

/// Largest content the Workspace API imports or exports (10 MB, `MAX_NOTEBOOK_SIZE_EXCEEDED`).
pub const MAX_IMPORT_BYTES: usize = 10 * 1024 * 1024;

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A notebook language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    Python,
    Scala,
    Sql,
    R,
}

impl Language {
    /// The API's name: `PYTHON`, `SCALA`, `SQL`, `R`.
    pub fn as_api_str(self) -> &'static str {
        match self {
            Language::Python => "PYTHON",
            Language::Scala => "SCALA",
            Language::Sql => "SQL",
            Language::R => "R",
        }
    }

    /// Parses the API's name (case-insensitive).
    pub fn from_api_str(s: &str) -> Option<Language> {
        match s.to_ascii_uppercase().as_str() {
            "PYTHON" => Some(Language::Python),
            "SCALA" => Some(Language::Scala),
            "SQL" => Some(Language::Sql),
            "R" => Some(Language::R),
            _ => None,
        }
    }

    /// The source file extension, with its dot: `.py`, `.scala`, `.sql`, `.r`.
    pub fn extension(self) -> &'static str {
        match self {
            Language::Python => ".py",
            Language::Scala => ".scala",
            Language::Sql => ".sql",
            Language::R => ".r",
        }
    }

    /// The first line of a notebook exported as source: `# Databricks notebook source`
    /// (Python, R), `// Databricks notebook source` (Scala), `-- Databricks notebook source` (SQL).
    pub fn notebook_header(self) -> &'static str {
        match self {
            Language::Python | Language::R => "# Databricks notebook source",
            Language::Scala => "// Databricks notebook source",
            Language::Sql => "-- Databricks notebook source",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_api_str())
    }
}

/// How content given to [`Workspace::import`] is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportFormat {
    /// Notebook source in the given language (`.py`, `.scala`, `.sql`, `.r`).
    Source(Language),
    /// A Jupyter notebook (`.ipynb`).
    Jupyter,
    /// A Databricks archive (`.dbc`): may hold a folder of notebooks. Never overwrites.
    Dbc,
    /// A notebook exported as HTML.
    Html,
    /// The service decides from the path's extension and the content's header, and strips the
    /// extension when it imports a notebook.
    Auto,
    /// A workspace file (not a notebook), stored as given.
    Raw,
    /// An R Markdown file.
    RMarkdown,
}

impl ImportFormat {
    /// The API's `format` value.
    pub fn as_api_str(self) -> &'static str {
        match self {
            ImportFormat::Source(_) => "SOURCE",
            ImportFormat::Jupyter => "JUPYTER",
            ImportFormat::Dbc => "DBC",
            ImportFormat::Html => "HTML",
            ImportFormat::Auto => "AUTO",
            ImportFormat::Raw => "RAW",
            ImportFormat::RMarkdown => "R_MARKDOWN",
        }
    }

    /// The `language` sent with the import (`SOURCE` requires one).
    pub fn language(self) -> Option<Language> {
        match self {
            ImportFormat::Source(l) => Some(l),
            _ => None,
        }
    }
}

/// The largest export answer accepted, past the HTTP client's 32 MiB default
/// (`task_sdk::http::DEFAULT_MAX_BODY`): the service refuses notebooks over 10 MB, but a
/// folder's DBC archive or an HTML export with results can be larger, and base64 adds a
/// third on the way.
pub const EXPORT_MAX_BODY: usize = 64 * 1024 * 1024;

/// The form [`Workspace::export`] gives an object in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    /// Notebook source with the Databricks header; a file's bytes as they are.
    Source,
    Html,
    Jupyter,
    /// A Databricks archive (also of a folder).
    Dbc,
    /// The service picks (source for notebooks, raw for files).
    Auto,
    /// A workspace file's bytes.
    Raw,
    RMarkdown,
}

impl ExportFormat {
    /// The API's `format` value.
    pub fn as_api_str(self) -> &'static str {
        match self {
            ExportFormat::Source => "SOURCE",
            ExportFormat::Html => "HTML",
            ExportFormat::Jupyter => "JUPYTER",
            ExportFormat::Dbc => "DBC",
            ExportFormat::Auto => "AUTO",
            ExportFormat::Raw => "RAW",
            ExportFormat::RMarkdown => "R_MARKDOWN",
        }
    }
}

/// What a workspace object is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectType {
    Notebook,
    Directory,
    File,
    Library,
    Repo,
    Dashboard,
    /// A type this client does not know yet.
    Other(String),
}

impl ObjectType {
    fn parse(s: &str) -> ObjectType {
        match s {
            "NOTEBOOK" => ObjectType::Notebook,
            "DIRECTORY" => ObjectType::Directory,
            "FILE" => ObjectType::File,
            "LIBRARY" => ObjectType::Library,
            "REPO" => ObjectType::Repo,
            "DASHBOARD" => ObjectType::Dashboard,
            other => ObjectType::Other(other.to_owned()),
        }
    }

    /// Whether objects of this type can have children (a folder or a repo).
    pub fn is_container(&self) -> bool {
        matches!(self, ObjectType::Directory | ObjectType::Repo)
    }
}

impl<'de> Deserialize<'de> for ObjectType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ObjectType::parse(&String::deserialize(d)?))
    }
}

/// One object of the workspace tree (`ObjectInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ObjectInfo {
    pub object_type: ObjectType,
    pub path: String,
    /// For notebooks.
    #[serde(default, deserialize_with = "lenient_language")]
    pub language: Option<Language>,
    #[serde(default)]
    pub object_id: Option<i64>,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub created_at: Option<i64>,
    #[serde(default)]
    pub modified_at: Option<i64>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub resource_id: Option<String>,
}

fn lenient_language<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Language>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.and_then(|s| Language::from_api_str(&s)))
}

/// Who the token belongs to (SCIM `Me`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CurrentUser {
    #[serde(rename = "userName", default)]
    pub user_name: String,
    #[serde(rename = "displayName", default)]
    pub display_name: Option<String>,
}

#[derive(Deserialize)]
struct ListAnswer {
    #[serde(default)]
    objects: Vec<ObjectInfo>,
}

#[derive(Deserialize)]
struct ExportAnswer {
    #[serde(default)]
    content: String,
}

/// The folder holding `path` (`/` for a top-level object).
fn parent_folder(path: &str) -> &str {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((parent, _)) => parent,
    }
}

/// How many `list` calls [`Workspace::walk`] keeps in flight.
const WALK_CONCURRENCY: usize = 8;

impl Workspace {
    /// Imports `content` at `path` (`POST /api/2.0/workspace/import`, JSON with base64
    /// content). The parent folder must exist (call [`Workspace::mkdirs`] first).
    ///
    /// - With `overwrite`, the import is idempotent and is replayed after ambiguous failures
    ///   (a dropped answer, a 503). Without it, only refused requests (429, no connection)
    ///   are retried, and an existing object gives [`Error::AlreadyExists`].
    /// - [`ImportFormat::Dbc`] does not support overwrite: with `overwrite`, whatever is at
    ///   `path` is deleted first (recursively; its permissions go with it), then imported.
    /// - Content over [`MAX_IMPORT_BYTES`] gives [`Error::TooLarge`] without a request.
    /// - A missing parent folder gives [`Error::NotFound`] naming that folder.
    pub async fn import(
        &self,
        path: &str,
        content: &[u8],
        format: ImportFormat,
        overwrite: bool,
    ) -> Result<(), Error> {
        if content.len() > MAX_IMPORT_BYTES {
            return Err(Error::TooLarge {
                path: path.to_owned(),
                size: content.len() as u64,
            });
        }
        let mut send_overwrite = overwrite;
        if format == ImportFormat::Dbc && overwrite {
            match self.delete(path, true).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
            send_overwrite = false;
        }
        let mut body = json!({
            "path": path,
            "format": format.as_api_str(),
            "content": BASE64.encode(content),
            "overwrite": send_overwrite,
        });
        if let Some(language) = format.language() {
            body["language"] = json!(language.as_api_str());
        }
        let mut call = Call::post("/api/2.0/workspace/import", body).about(path);
        if send_overwrite {
            call = call.replay_safe();
        }
        let result: Result<serde_json::Value, Error> = self.send(call).await;
        match result {
            Ok(_) => Ok(()),
            // The only path an import can miss is its parent folder.
            Err(Error::NotFound { .. }) => Err(Error::NotFound {
                path: parent_folder(path).to_owned(),
            }),
            Err(Error::TooLarge { path, .. }) => Err(Error::TooLarge {
                path,
                size: content.len() as u64,
            }),
            Err(e) => Err(e),
        }
    }

    /// Creates `path` and its missing parents, like `mkdir -p`; succeeds when the folder
    /// exists. A notebook or file on the way gives [`Error::AlreadyExists`]. Idempotent, so
    /// replayed after ambiguous failures.
    pub async fn mkdirs(&self, path: &str) -> Result<(), Error> {
        let call = Call::post("/api/2.0/workspace/mkdirs", json!({ "path": path }))
            .about(path)
            .replay_safe();
        self.send::<serde_json::Value>(call).await.map(|_| ())
    }

    /// The direct children of the folder `path` (an empty folder gives an empty list; the
    /// service may answer `{}` for it). A missing folder gives [`Error::NotFound`].
    pub async fn list(&self, path: &str) -> Result<Vec<ObjectInfo>, Error> {
        let call = Call::get("/api/2.0/workspace/list")
            .query("path", path)
            .about(path);
        Ok(self.send::<ListAnswer>(call).await?.objects)
    }

    /// Every object under `path`, at any depth (not `path` itself), folders before their
    /// contents, sorted by path. Lists up to 8 folders at a time. A folder deleted while the
    /// walk runs is skipped.
    pub async fn walk(&self, path: &str) -> Result<Vec<ObjectInfo>, Error> {
        let mut found = Vec::new();
        let mut pending = vec![path.to_owned()];
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < WALK_CONCURRENCY {
                let Some(folder) = pending.pop() else { break };
                let ws = self.clone();
                let is_root = folder == path;
                running.spawn(async move {
                    match ws.list(&folder).await {
                        Ok(objects) => Ok(objects),
                        // Gone since its parent was listed: nothing to walk.
                        Err(e) if !is_root && e.is_not_found() => Ok(Vec::new()),
                        Err(e) => Err(e),
                    }
                });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let objects = match joined {
                Ok(result) => result?,
                Err(join_error) => {
                    return Err(Error::InvalidRequest(format!(
                        "listing {path} stopped: {join_error}"
                    )))
                }
            };
            for object in objects {
                if object.object_type.is_container() {
                    pending.push(object.path.clone());
                }
                found.push(object);
            }
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    /// The object at `path`, or `None` when nothing is there.
    pub async fn get_status(&self, path: &str) -> Result<Option<ObjectInfo>, Error> {
        let call = Call::get("/api/2.0/workspace/get-status")
            .query("path", path)
            .about(path);
        match self.send::<ObjectInfo>(call).await {
            Ok(info) => Ok(Some(info)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The content of the object at `path` in `format`. A missing path gives
    /// [`Error::NotFound`]; an object over 10 MB gives [`Error::TooLarge`].
    pub async fn export(&self, path: &str, format: ExportFormat) -> Result<Vec<u8>, Error> {
        let call = Call::get("/api/2.0/workspace/export")
            .query("path", path)
            .query("format", format.as_api_str())
            .about(path)
            .max_response_body(EXPORT_MAX_BODY);
        let answer: ExportAnswer = self.send(call).await?;
        BASE64
            .decode(answer.content.trim())
            .map_err(|e| Error::Decode {
                host: self.host().to_owned(),
                call: format!("export of {path}"),
                detail: format!("the content is not base64: {e}"),
            })
    }

    /// Deletes the object at `path`; a non-empty folder needs `recursive` (otherwise
    /// `DIRECTORY_NOT_EMPTY`). A missing path gives [`Error::NotFound`]. Replayed after
    /// ambiguous failures (deleting twice is harmless), so a caller that only wants the path
    /// gone should treat `NotFound` as success: it may follow a first attempt that worked.
    pub async fn delete(&self, path: &str, recursive: bool) -> Result<(), Error> {
        let call = Call::post(
            "/api/2.0/workspace/delete",
            json!({ "path": path, "recursive": recursive }),
        )
        .about(path)
        .replay_safe();
        self.send::<serde_json::Value>(call).await.map(|_| ())
    }

    /// Checks that the token is accepted, with the cheapest call any valid token may make
    /// (`GET /api/2.0/preview/scim/v2/Me`), and says whose it is. A refused token gives
    /// [`Error::Auth`]; a wrong URL gives [`Error::Transport`] (`is_dns()`) or
    /// [`Error::UnexpectedBody`].
    pub async fn check_credentials(&self) -> Result<CurrentUser, Error> {
        self.send(Call::get("/api/2.0/preview/scim/v2/Me")).await
    }
}
