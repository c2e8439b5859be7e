//! A Databricks REST client: the Workspace, Jobs, Clusters, Secrets, Files, DBFS, Libraries and
//! Repos calls our pipeline tasks make.
//!
//! One [`Workspace`] per workspace URL and credential. Every request goes through
//! task-sdk's [`HttpClient`](task_sdk::HttpClient), so proxy, CA, user agent and the one retry
//! policy (429/503 with `Retry-After`, back-off, a total budget) are the same as for every other
//! call a task makes. Calls that change state are replayed after an ambiguous failure only when
//! replaying is harmless (an overwriting import, a submit with an idempotency token, mkdirs,
//! cancel, …); see each method.
//!
//! Errors are typed ([`Error`]): the `{"error_code", "message"}` envelope is decoded, plain
//! text, HTML and empty bodies are summarised (never dumped), 401/403 become actionable
//! authentication messages, and no token ever appears in an error or a log line.
//!
//! Entry points, all on [`Workspace`]:
//! - workspace: `import`, `mkdirs`, `list`, `walk`, `get_status`, `export`, `delete`,
//!   `check_credentials`;
//! - jobs: `submit_run`, `get_run`, `wait_run`, `get_run_output`, `cancel_run`, `create_job`,
//!   `run_now` (a submit carrying an idempotency token is safe to replay);
//! - jobs by definition: `list_jobs` (optionally by name), `get_job`, `create_job_with`,
//!   `reset_job`, `delete_job`;
//! - clusters: `get_cluster`, `list_clusters`, `start_cluster`, `restart_cluster`,
//!   `cluster_events`, `wait_cluster` / `wait_cluster_running`;
//! - secrets: `list_secret_scopes`, `create_secret_scope`, `put_secret`, `list_secret_keys`,
//!   `put_secret_acl`, `list_secret_acls`; names checked by [`check_secret_name`];
//! - volumes (Files API): `upload_volume_file`, `volume_file_metadata`,
//!   `volume_directory_exists`; DBFS: `upload_dbfs_file` (put or 1 MB block stream),
//!   `dbfs_file_metadata`, `dbfs_mkdirs`;
//! - libraries: `install_libraries`, `uninstall_libraries`, `library_statuses`;
//! - Git folders: `get_repo`, `find_repo_by_path`, `create_repo`, `update_repo`;
//! - local files: [`import_format_for_file`], [`has_notebook_header`], [`notebook_language`].
//!
//! It is not a task: it reads no inputs and prints nothing (tasks register secrets and report).
//! It does not obtain tokens: [`Auth`] takes a personal access token or an Entra ID access token
//! for the Azure Databricks resource (`2ff814a6-3304-4ab8-85cb-cd0e6f879c1d`) however it was
//! got, or a [`TokenSource`] that refreshes one for long waits.
//!
//! ```no_run
//! # async fn demo(http: task_sdk::HttpClient) -> Result<(), databricks::Error> {
//! use databricks::{Auth, ImportFormat, Language, Workspace};
//! let ws = Workspace::new("https://adb-1234.5.azuredatabricks.net", Auth::Token("dapi…".into()), http)?;
//! ws.mkdirs("/Shared/etl").await?;
//! ws.import("/Shared/etl/ingest", b"# Databricks notebook source\nprint(1)\n",
//!           ImportFormat::Source(Language::Python), true).await?;
//! # Ok(()) }
//! ```

mod auth;
mod client;
mod clusters;
mod dbfs;
mod error;
pub mod files;
mod host;
mod jobs;
mod libraries;
mod repos;
mod secrets;
mod volumes;
mod workspace;

pub use auth::{Auth, TokenSource, AZURE_DATABRICKS_RESOURCE_ID};
pub use client::Workspace;
pub use clusters::{Cluster, ClusterEvent, ClusterProgress, ClusterState, TerminationReason};
pub use dbfs::{dbfs_api_path, DBFS_MAX_BLOCK_BYTES};
pub use error::Error;
pub use files::{has_notebook_header, import_format_for_file, notebook_language, FileImport};
pub use host::normalize_host;
pub use jobs::{
    Compute, CreateJob, Job, JobId, LifeCycleState, NotebookOutput, ResultState, Run, RunId,
    RunNow, RunOutput, RunState, SubmitRun, TaskRun, SUBMIT_TASK_KEY,
};
pub use libraries::{Library, LibraryStatus};
pub use repos::{provider_for_url, GitRef, Repo, GIT_PROVIDERS};
pub use secrets::{
    check_secret_name, AclPermission, ScopeBackend, SecretScope, MAX_SECRET_NAME_CHARS,
    MAX_SECRET_VALUE_BYTES,
};
pub use volumes::{volume_of, RemoteFile};
pub use workspace::{
    CurrentUser, ExportFormat, ImportFormat, Language, ObjectInfo, ObjectType, EXPORT_MAX_BODY,
    MAX_IMPORT_BYTES,
};

/// Milliseconds since the Unix epoch (the API's timestamps).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
