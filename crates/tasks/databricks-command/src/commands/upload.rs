//! `uploadFiles`: a file or a folder to a Unity Catalog volume (`/Volumes/…`, Files API),
//! workspace files (`/Workspace/…`, imported as RAW files, never as notebooks) or DBFS
//! (`dbfs:/…`: one `put` up to 1 MB, else a stream of 1 MB blocks).
//!
//! Incremental by default (`overwrite: ifChanged`): none of the three stores keeps a content
//! hash, so the task keeps one. After an upload it writes [`MANIFEST`] in the target folder:
//! each file's size and SHA-256 as uploaded. A file is skipped when its local SHA-256 and
//! size equal the manifest's and the remote file still has that size (one listing per folder,
//! not a request per file); anything else is uploaded. A remote edit that keeps the size is not noticed: use
//! `overwrite: always` to force. `skipExisting` never replaces a remote file.
//!
//! Uploads run `parallel` at a time (default 5, as the Databricks CLI does: the Files API
//! allows 10 concurrent requests per workspace). Files that uploaded are recorded in the
//! manifest even when others failed, so a re-run resumes; the step then fails naming them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use databricks::{volume_of, Error, ImportFormat, Workspace, MAX_IMPORT_BYTES};
use databricks_task_common::sha256_hex;
use serde_json::{json, Value};
use task_sdk::{out, TaskError};

use crate::Cx;

/// The manifest of an incremental upload, in the target folder.
pub const MANIFEST: &str = ".databricks-upload-manifest.json";

const DEFAULT_PARALLEL: i64 = 5;

/// Where files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/Volumes/<catalog>/<schema>/<volume>[/…]`.
    Volume(String),
    /// A workspace folder, without the `/Workspace` prefix.
    Workspace(String),
    /// A DBFS folder, without `dbfs:`.
    Dbfs(String),
}

impl Target {
    /// Reads the `targetPath` input.
    pub fn parse(input: &str, given: &str) -> Result<Target, TaskError> {
        let p = given.trim().trim_end_matches('/');
        let bad = |why: &str| {
            TaskError::new(format!(
                "input '{input}' is '{given}': {why}; use /Volumes/<catalog>/<schema>/<volume>/<folder> (a Unity Catalog volume), /Workspace/<folder> (workspace files) or dbfs:/<folder> (DBFS)"
            ))
        };
        if p.split('/').any(|s| s == "." || s == "..") {
            return Err(bad("'.' and '..' are not allowed"));
        }
        if p.starts_with("/Volumes/") {
            if volume_of(&format!("{p}/")).is_none() {
                return Err(bad(
                    "a volume path names the catalog, the schema and the volume",
                ));
            }
            Ok(Target::Volume(p.to_owned()))
        } else if let Some(rest) = p.strip_prefix("/Workspace") {
            if !rest.starts_with('/') || rest.len() < 2 {
                return Err(bad("name a folder under /Workspace"));
            }
            Ok(Target::Workspace(rest.to_owned()))
        } else if let Some(rest) = given.trim().strip_prefix("dbfs:") {
            let rest = rest.trim_end_matches('/');
            if !rest.starts_with('/') {
                return Err(bad("a DBFS path is dbfs:/<folder>"));
            }
            Ok(Target::Dbfs(if rest.is_empty() {
                "/".into()
            } else {
                rest.into()
            }))
        } else {
            Err(bad("this is not a path the task can upload to"))
        }
    }

    fn root(&self) -> &str {
        match self {
            Target::Volume(p) | Target::Workspace(p) | Target::Dbfs(p) => p,
        }
    }

    /// The remote path of `rel` (a `/`-separated relative path).
    fn join(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root().trim_end_matches('/'))
    }

    /// The path as the user writes it.
    pub fn display(&self, path: &str) -> String {
        match self {
            Target::Volume(_) => path.to_owned(),
            Target::Workspace(_) => format!("/Workspace{path}"),
            Target::Dbfs(_) => format!("dbfs:{path}"),
        }
    }
}

/// What to do with a file that exists remotely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// Upload new and changed files (by the manifest), replacing changed ones.
    IfChanged,
    /// Upload every file, replacing what is there.
    Always,
    /// Upload only files that do not exist remotely.
    SkipExisting,
}

impl Overwrite {
    fn parse(value: Option<String>) -> Result<Overwrite, TaskError> {
        match value.as_deref().map(str::trim).unwrap_or("") {
            "" | "ifChanged" => Ok(Overwrite::IfChanged),
            "always" => Ok(Overwrite::Always),
            "skipExisting" => Ok(Overwrite::SkipExisting),
            other => Err(TaskError::new(format!(
                "input 'overwrite' is '{other}': use ifChanged, always or skipExisting"
            ))),
        }
    }
}

/// A local file to upload: its `/`-separated path relative to the source, and where it is.
#[derive(Debug, Clone)]
struct LocalFile {
    rel: String,
    path: PathBuf,
    size: u64,
}

/// The files of `source` (a file, or a folder walked recursively; `.git` folders skipped).
fn scan(source: &Path) -> Result<Vec<LocalFile>, TaskError> {
    let meta = std::fs::metadata(source).map_err(|e| {
        TaskError::new(format!(
            "input 'sourcePath': {} cannot be read ({e})",
            source.display()
        ))
    })?;
    if meta.is_file() {
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok(vec![LocalFile {
            rel: name,
            path: source.to_owned(),
            size: meta.len(),
        }]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![(source.to_owned(), String::new())];
    while let Some((dir, prefix)) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| TaskError::new(format!("{} cannot be read: {e}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| TaskError::new(format!("{}: {e}", dir.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let meta = std::fs::metadata(entry.path())
                .map_err(|e| TaskError::new(format!("{}: {e}", entry.path().display())))?;
            if meta.is_dir() {
                if name != ".git" {
                    dirs.push((entry.path(), rel));
                }
            } else if name != MANIFEST {
                files.push(LocalFile {
                    rel,
                    path: entry.path(),
                    size: meta.len(),
                });
            }
        }
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(files)
}

/// A manifest entry: what was uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    size: u64,
    sha256: String,
}

fn parse_manifest(bytes: &[u8]) -> BTreeMap<String, Entry> {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return BTreeMap::new();
    };
    value["files"]
        .as_object()
        .map(|files| {
            files
                .iter()
                .filter_map(|(rel, e)| {
                    Some((
                        rel.clone(),
                        Entry {
                            size: e["size"].as_u64()?,
                            sha256: e["sha256"].as_str()?.to_owned(),
                        },
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn render_manifest(entries: &BTreeMap<String, Entry>) -> Vec<u8> {
    let files: serde_json::Map<String, Value> = entries
        .iter()
        .map(|(rel, e)| (rel.clone(), json!({"size": e.size, "sha256": e.sha256})))
        .collect();
    let doc = json!({
        "about": "Written by the databricks task (uploadFiles) to skip unchanged files; safe to delete.",
        "version": 1,
        "files": files,
    });
    serde_json::to_vec_pretty(&doc).unwrap_or_default()
}

/// What happened to one file, with its manifest entry (or why it failed).
type FileResult = Result<(Outcome, Option<Entry>), String>;

/// What happened to one file.
enum Outcome {
    Uploaded { requests: u32 },
    Unchanged,
    Existed,
}

/// The files in one remote folder: full remote path → size (a missing folder: none).
async fn list_sizes(
    ws: &Workspace,
    target: &Target,
    dir: &str,
) -> Result<Vec<(String, u64)>, Error> {
    let in_dir = |name: &str| format!("{}/{name}", dir.trim_end_matches('/'));
    let listed = match target {
        Target::Volume(_) => ws.list_volume_files(dir).await?,
        Target::Dbfs(_) => ws.list_dbfs_files(dir).await?,
        Target::Workspace(_) => match ws.list(dir).await {
            Ok(objects) => Some(
                objects
                    .into_iter()
                    .filter_map(|o| {
                        let name = o.path.rsplit('/').next()?.to_owned();
                        Some((name, o.size?))
                    })
                    .collect(),
            ),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        },
    };
    Ok(listed
        .unwrap_or_default()
        .into_iter()
        .map(|(name, size)| (in_dir(&name), size))
        .collect())
}

/// Sizes of the remote files in the folders of `files`: one listing per folder (`parallel`
/// at a time) instead of one request per file.
async fn remote_sizes(
    ws: &Workspace,
    target: &Target,
    files: &[&LocalFile],
    parallel: usize,
) -> Result<HashMap<String, u64>, String> {
    let dirs: BTreeSet<String> = files
        .iter()
        .filter_map(|f| {
            target
                .join(&f.rel)
                .rsplit_once('/')
                .map(|(d, _)| d.to_owned())
        })
        .map(|d| if d.is_empty() { "/".to_owned() } else { d })
        .collect();
    let queue = Arc::new(Mutex::new(dirs.into_iter().collect::<VecDeque<_>>()));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..parallel {
        let (queue, ws, target) = (queue.clone(), ws.clone(), target.clone());
        workers.spawn(async move {
            let mut found = Vec::new();
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(dir) = next else { break };
                let listed = list_sizes(&ws, &target, &dir)
                    .await
                    .map_err(|e| format!("listing {}: {e}", target.display(&dir)))?;
                found.extend(listed);
            }
            Ok::<_, String>(found)
        });
    }
    let mut sizes = HashMap::new();
    while let Some(joined) = workers.join_next().await {
        let found = joined.map_err(|e| format!("a listing worker failed: {e}"))??;
        sizes.extend(found);
    }
    Ok(sizes)
}

async fn read_remote(
    ws: &Workspace,
    target: &Target,
    path: &str,
) -> Result<Option<Vec<u8>>, Error> {
    match target {
        Target::Volume(_) => ws.download_volume_file(path).await,
        Target::Dbfs(_) => ws.read_dbfs_file(path).await,
        Target::Workspace(_) => match ws.export(path, databricks::ExportFormat::Auto).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        },
    }
}

/// Uploads `content` to `path`; `Ok(false)` when it exists and `overwrite` is off.
async fn put(
    ws: &Workspace,
    target: &Target,
    path: &str,
    content: Vec<u8>,
    overwrite: bool,
) -> Result<Option<u32>, Error> {
    let result = match target {
        Target::Volume(_) => ws
            .upload_volume_file(path, content, overwrite)
            .await
            .map(|()| 1),
        Target::Dbfs(_) => ws.upload_dbfs_file(path, &content, overwrite).await,
        Target::Workspace(_) => ws
            .import(path, &content, ImportFormat::Raw, overwrite)
            .await
            .map(|()| 1),
    };
    match result {
        Ok(n) => Ok(Some(n)),
        Err(Error::AlreadyExists { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One file: decide, then upload. Returns the outcome and the manifest entry.
async fn one(
    ws: &Workspace,
    target: &Target,
    file: &LocalFile,
    mode: Overwrite,
    known: Option<&Entry>,
    remote_size: Option<u64>,
) -> FileResult {
    let content = std::fs::read(&file.path)
        .map_err(|e| format!("cannot read {}: {e}", file.path.display()))?;
    let entry = Entry {
        size: content.len() as u64,
        sha256: sha256_hex(&content),
    };
    let remote = target.join(&file.rel);
    let explain = |e: Error| format!("{}: {e}", target.display(&remote));
    if mode == Overwrite::IfChanged && known == Some(&entry) && remote_size == Some(entry.size) {
        return Ok((Outcome::Unchanged, Some(entry)));
    }
    match put(
        ws,
        target,
        &remote,
        content,
        mode != Overwrite::SkipExisting,
    )
    .await
    {
        Ok(Some(requests)) => Ok((Outcome::Uploaded { requests }, Some(entry))),
        Ok(None) => Ok((Outcome::Existed, None)),
        Err(e) => Err(explain(e)),
    }
}

/// Checks that the target can take files before any is sent: the volume exists; the
/// workspace folders exist (they are created).
async fn prepare(cx: &Cx<'_>, target: &Target, files: &[LocalFile]) -> Result<(), TaskError> {
    match target {
        Target::Volume(root) => {
            let volume = volume_of(&format!("{root}/")).unwrap_or_default();
            let volume_root = format!("/Volumes/{}", volume.replace('.', "/"));
            let exists = cx
                .ws
                .volume_directory_exists(&volume_root)
                .await
                .map_err(|e| cx.explain(e))?;
            if !exists {
                return Err(TaskError::new(format!(
                    "the volume {volume} does not exist (or this identity may not use it): create it first, e.g. CREATE VOLUME {volume} in SQL, or databricks volumes create; then grant WRITE VOLUME on it"
                )));
            }
        }
        Target::Workspace(_) => {
            if let Some(big) = files.iter().find(|f| f.size > MAX_IMPORT_BYTES as u64) {
                return Err(TaskError::new(format!(
                    "{} is {} bytes; workspace files are imported through the Workspace API, which takes at most {MAX_IMPORT_BYTES} bytes (10 MB) per file: upload large files to a volume (/Volumes/…) instead",
                    big.path.display(),
                    big.size
                )));
            }
            let mut dirs = BTreeSet::new();
            for f in files {
                let remote = target.join(&f.rel);
                if let Some((dir, _)) = remote.rsplit_once('/') {
                    dirs.insert(if dir.is_empty() {
                        "/".to_owned()
                    } else {
                        dir.to_owned()
                    });
                }
            }
            // mkdirs is `mkdir -p`: only the deepest folders are needed.
            let leaves: Vec<&String> = dirs
                .iter()
                .filter(|d| !dirs.iter().any(|o| o.starts_with(&format!("{d}/"))))
                .collect();
            for dir in leaves {
                cx.ws.mkdirs(dir).await.map_err(|e| cx.explain(e))?;
            }
        }
        Target::Dbfs(_) => {}
    }
    Ok(())
}

/// Counts of a finished upload.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub uploaded: usize,
    pub unchanged: usize,
    pub existed: usize,
    pub bytes: u64,
    pub requests: u64,
}

/// Uploads `source` (file or folder) to `target`. `Err` lists the files that failed (the
/// others are in the manifest).
pub async fn upload(
    cx: &Cx<'_>,
    source: &Path,
    target: &Target,
    mode: Overwrite,
    parallel: usize,
) -> Result<Summary, TaskError> {
    let files = scan(source)?;
    if files.is_empty() {
        return Err(TaskError::new(format!(
            "input 'sourcePath': {} holds no files",
            source.display()
        )));
    }
    prepare(cx, target, &files).await?;
    let manifest_path = target.join(MANIFEST);
    let known = if mode == Overwrite::IfChanged {
        read_remote(&cx.ws, target, &manifest_path)
            .await
            .map_err(|e| cx.explain(e))?
            .map(|b| parse_manifest(&b))
            .unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    // The remote sizes matter only for files the manifest knows.
    let listed: Vec<&LocalFile> = files
        .iter()
        .filter(|f| known.contains_key(&f.rel))
        .collect();
    let sizes = if listed.is_empty() {
        HashMap::new()
    } else {
        remote_sizes(&cx.ws, target, &listed, parallel)
            .await
            .map_err(TaskError::new)?
    };
    let total = files.len();
    out::info(&format!(
        "{total} file(s) from {} to {} ({} at a time)",
        source.display(),
        target.display(target.root()),
        parallel
    ));
    let queue = Arc::new(Mutex::new(files.into_iter().collect::<VecDeque<_>>()));
    let known = Arc::new(known);
    let sizes = Arc::new(sizes);
    let results: Arc<Mutex<Vec<(LocalFile, FileResult)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..parallel.min(total) {
        let (queue, known, results, sizes) =
            (queue.clone(), known.clone(), results.clone(), sizes.clone());
        let (ws, target) = (cx.ws.clone(), target.clone());
        workers.spawn(async move {
            loop {
                let next = queue.lock().map(|mut q| q.pop_front()).ok().flatten();
                let Some(file) = next else { break };
                let remote_size = sizes.get(&target.join(&file.rel)).copied();
                let result =
                    one(&ws, &target, &file, mode, known.get(&file.rel), remote_size).await;
                match &result {
                    Ok((Outcome::Uploaded { .. }, _)) => {
                        out::info(&format!("uploaded {} ({} bytes)", file.rel, file.size))
                    }
                    Ok((Outcome::Unchanged, _)) => out::info(&format!("unchanged {}", file.rel)),
                    Ok((Outcome::Existed, _)) => {
                        out::info(&format!("exists, left as it is: {}", file.rel))
                    }
                    Err(e) => out::info(&format!("FAILED {}: {e}", file.rel)),
                }
                if let Ok(mut r) = results.lock() {
                    r.push((file, result));
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let results = std::mem::take(
        &mut *results
            .lock()
            .map_err(|_| TaskError::new("an upload worker failed"))?,
    );
    let mut summary = Summary::default();
    let mut entries = BTreeMap::new();
    let mut failed = Vec::new();
    for (file, result) in results {
        match result {
            Ok((outcome, entry)) => {
                match outcome {
                    Outcome::Uploaded { requests } => {
                        summary.uploaded += 1;
                        summary.bytes += file.size;
                        summary.requests += u64::from(requests);
                    }
                    Outcome::Unchanged => summary.unchanged += 1,
                    Outcome::Existed => summary.existed += 1,
                }
                if let Some(entry) = entry {
                    entries.insert(file.rel, entry);
                }
            }
            Err(e) => failed.push(e),
        }
    }
    if mode != Overwrite::SkipExisting && (summary.uploaded > 0 || known.len() != entries.len()) {
        // Files that failed are left out, so the next run sends them again.
        put(
            &cx.ws,
            target,
            &manifest_path,
            render_manifest(&entries),
            true,
        )
        .await
        .map_err(|e| {
            TaskError::new(format!(
                "writing the upload manifest {}: {}",
                target.display(&manifest_path),
                cx.explain(e).message()
            ))
        })?;
    }
    out::info(&format!(
        "{} uploaded ({} bytes), {} unchanged, {} left as they were, {} failed",
        summary.uploaded,
        summary.bytes,
        summary.unchanged,
        summary.existed,
        failed.len()
    ));
    out::set_output("uploadedFiles", &summary.uploaded.to_string(), false);
    if !failed.is_empty() {
        failed.sort();
        let shown: Vec<&String> = failed.iter().take(10).collect();
        return Err(TaskError::new(format!(
            "{} of {total} file(s) failed to upload (the others are uploaded and recorded; a re-run sends only what is missing): {}{}",
            failed.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; "),
            if failed.len() > shown.len() { format!("; and {} more", failed.len() - shown.len()) } else { String::new() }
        )));
    }
    Ok(summary)
}

/// The `parallel` input.
pub fn parallel(cx: &Cx<'_>) -> Result<usize, TaskError> {
    Ok(cx
        .agent
        .int_input_in("parallel", 1..=16)?
        .unwrap_or(DEFAULT_PARALLEL) as usize)
}

pub async fn run(cx: &Cx<'_>) -> Result<(), TaskError> {
    let source = cx.agent.path_input("sourcePath")?.ok_or_else(|| {
        TaskError::new("input 'sourcePath' is required: the file or folder to upload")
    })?;
    let target = Target::parse("targetPath", &cx.agent.required_input("targetPath")?)?;
    let mode = Overwrite::parse(cx.agent.input("overwrite"))?;
    upload(cx, &source, &target, mode, parallel(cx)?)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("t", "/Volumes/main/raw/landing/in/").unwrap(),
            Target::Volume("/Volumes/main/raw/landing/in".into())
        );
        assert_eq!(
            Target::parse("t", "/Workspace/Shared/libs").unwrap(),
            Target::Workspace("/Shared/libs".into())
        );
        assert_eq!(
            Target::parse("t", "dbfs:/FileStore/x").unwrap(),
            Target::Dbfs("/FileStore/x".into())
        );
        for bad in [
            "/Volumes/main/raw",
            "/Shared/x",
            "s3://b/k",
            "/Workspace",
            "/Volumes/a/b/c/../d",
        ] {
            let e = Target::parse("targetPath", bad)
                .unwrap_err()
                .message()
                .to_owned();
            assert!(
                e.contains("targetPath") && e.contains("/Volumes/<catalog>"),
                "{bad}: {e}"
            );
        }
        let t = Target::Dbfs("/".into());
        assert_eq!(t.join("a.txt"), "/a.txt");
        assert_eq!(t.display(&t.join("a.txt")), "dbfs:/a.txt");
    }

    #[test]
    fn manifest_round_trip() {
        let mut m = BTreeMap::new();
        m.insert(
            "a/b.txt".to_owned(),
            Entry {
                size: 3,
                sha256: "ab".into(),
            },
        );
        assert_eq!(parse_manifest(&render_manifest(&m)), m);
        assert!(parse_manifest(b"not json").is_empty());
    }

    #[test]
    fn scan_walks_folders_and_skips_git() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub/.git")).unwrap();
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("sub/b.bin"), "bb").unwrap();
        std::fs::write(dir.path().join("sub/.git/HEAD"), "x").unwrap();
        let files = scan(dir.path()).unwrap();
        let rels: Vec<&str> = files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["a.txt", "sub/b.bin"]);
        assert_eq!(scan(&dir.path().join("a.txt")).unwrap()[0].rel, "a.txt");
    }
}
