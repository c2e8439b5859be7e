//! The remote side: compare with the workspace, upload what changed, record, clean.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use databricks::{Error, ExportFormat, ImportFormat, ObjectInfo, ObjectType, Workspace};
use databricks_task_common::{explain, Connection};
use futures_util::stream::{self, StreamExt};
use task_sdk::{out, TaskError};
use tokio::sync::OnceCell;

use crate::manifest::{self, Entry, Manifest};
use crate::scan::{self, Detect, Item, Scan, Skipped};

/// What to deploy where, and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: PathBuf,
    /// Absolute workspace folder, normalised (see [`target_folder`]).
    pub target: String,
    pub detect: Detect,
    pub incremental: bool,
    pub clean: bool,
    /// Uploads in flight at once.
    pub concurrency: usize,
}

/// Why an item is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    New,
    Changed,
    EditedInWorkspace,
    MissingInWorkspace,
    NotIncremental,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::New => "new",
            Reason::Changed => "changed",
            Reason::EditedInWorkspace => "edited in the workspace since the last deploy",
            Reason::MissingInWorkspace => "missing in the workspace",
            Reason::NotIncremental => "uploaded",
        }
    }
}

/// What a deploy did.
#[derive(Debug, Default)]
pub struct Report {
    pub uploaded: Vec<(String, Reason)>,
    pub unchanged: Vec<String>,
    pub skipped: Vec<Skipped>,
    pub deleted: Vec<String>,
    /// Source path, reason.
    pub failed: Vec<(String, String)>,
    pub folders_created: usize,
    pub elapsed: Duration,
    /// Why clean did not run, when it was asked for.
    pub clean_skipped: Option<String>,
}

/// Folders the clean option refuses to empty: the root and the folders every workspace has.
const PROTECTED: &[&str] = &["/", "/Users", "/Shared", "/Repos"];

/// Checks the workspace folder input: absolute, no `.`/`..`, `/Workspace` prefix dropped
/// (the API takes both spellings; listings use the short one), no trailing slash.
pub fn target_folder(raw: &str, clean: bool) -> Result<String, TaskError> {
    let raw = raw.trim();
    if !raw.starts_with('/') {
        return Err(TaskError::new(format!(
            "input 'Workspace folder' (workspaceFolder) must be an absolute workspace path such as /Shared/my-project, got '{raw}'"
        )));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" => {}
            "." | ".." => {
                return Err(TaskError::new(format!(
                    "input 'Workspace folder' (workspaceFolder) must not contain '.' or '..', got '{raw}'"
                )))
            }
            p => parts.push(p),
        }
    }
    if parts.first() == Some(&"Workspace") {
        parts.remove(0);
    }
    let folder = format!("/{}", parts.join("/"));
    if clean && PROTECTED.contains(&folder.as_str()) {
        return Err(TaskError::new(format!(
            "the clean option would delete everything under '{folder}' that is not in the source; it is refused for / and the workspace's top-level folders. Deploy to a folder of its own, e.g. {}/my-project",
            if folder == "/" { "/Shared" } else { &folder }
        )));
    }
    Ok(folder)
}

fn join(target: &str, rel: &str) -> String {
    if rel.is_empty() {
        target.to_owned()
    } else if target == "/" {
        format!("/{rel}")
    } else {
        format!("{target}/{rel}")
    }
}

fn parent(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(p, _)| p)
}

fn relative<'a>(target: &str, path: &'a str) -> Option<&'a str> {
    let path = path
        .strip_prefix("/Workspace")
        .filter(|p| p.starts_with('/'))
        .unwrap_or(path);
    if target == "/" {
        return path.strip_prefix('/');
    }
    path.strip_prefix(target)?.strip_prefix('/')
}

/// The workspace as the last deploy left it.
struct Remote {
    /// Whether the target folder exists.
    exists: bool,
    /// Objects under the target by relative path.
    objects: HashMap<String, ObjectInfo>,
    manifest: Option<Manifest>,
    /// What the target is when it is not a folder (listing a notebook answers the notebook).
    target_type: Option<ObjectType>,
}

async fn read_remote(ws: &Workspace, opts: &Options) -> Result<Remote, Error> {
    let manifest_path = join(&opts.target, manifest::FILE_NAME);
    let (walked, exported) = tokio::join!(ws.walk(&opts.target), async {
        if opts.incremental {
            Some(ws.export(&manifest_path, ExportFormat::Raw).await)
        } else {
            None
        }
    });
    let (exists, objects) = match walked {
        Ok(objects) => (true, objects),
        Err(e) if e.is_not_found() => (false, Vec::new()),
        Err(e) => return Err(e),
    };
    let target_type = objects
        .iter()
        .find(|o| {
            !o.object_type.is_container()
                && o.path
                    .strip_prefix("/Workspace")
                    .filter(|p| p.starts_with('/'))
                    .unwrap_or(&o.path)
                    == opts.target
        })
        .map(|o| o.object_type.clone());
    let objects = objects
        .into_iter()
        .filter_map(|o| Some((relative(&opts.target, &o.path)?.to_owned(), o)))
        .collect();
    let manifest = match exported {
        Some(Ok(bytes)) => {
            let parsed = Manifest::parse(&bytes);
            if parsed.is_none() {
                out::warning(&format!(
                    "{manifest_path} is not a deploy manifest this task can read: every file is uploaded this time"
                ));
            }
            parsed
        }
        Some(Err(e)) if e.is_not_found() => None,
        Some(Err(e)) => return Err(e),
        None => None,
    };
    Ok(Remote {
        exists,
        objects,
        manifest,
        target_type,
    })
}

/// Whether the workspace object has the type the item becomes.
fn same_type(item: &Item, object: &ObjectInfo) -> bool {
    match item.kind {
        ImportFormat::Raw => object.object_type == ObjectType::File,
        // An archive may become a folder of notebooks.
        ImportFormat::Dbc => true,
        _ => object.object_type == ObjectType::Notebook,
    }
}

fn decide(item: &Item, remote: &Remote, incremental: bool) -> Option<Reason> {
    if !incremental {
        return Some(Reason::NotIncremental);
    }
    let entry = remote
        .manifest
        .as_ref()
        .and_then(|m| m.entries.get(&item.target_rel));
    let object = remote.objects.get(&item.target_rel);
    match (entry, object) {
        (None, _) => Some(Reason::New),
        (Some(_), None) => Some(Reason::MissingInWorkspace),
        (Some(e), Some(_)) if e.sha256 != item.hash => Some(Reason::Changed),
        (Some(e), Some(o)) if o.modified_at != Some(e.modified_at) || !same_type(item, o) => {
            Some(Reason::EditedInWorkspace)
        }
        _ => None,
    }
}

/// For every folder that must be created, the folder whose `mkdirs` creates it: the first
/// deepest needed folder below it. So each folder is created by exactly one request.
fn mkdirs_plan(needed: &BTreeSet<String>) -> HashMap<String, String> {
    let leaves: Vec<&String> = needed
        .iter()
        .filter(|f| {
            let prefix = format!("{f}/");
            !needed.iter().any(|o| o.starts_with(&prefix))
        })
        .collect();
    needed
        .iter()
        .map(|f| {
            let prefix = format!("{f}/");
            let leaf = leaves
                .iter()
                .find(|l| **l == f || l.starts_with(&prefix))
                .map_or_else(|| f.clone(), |l| (*l).clone());
            (f.clone(), leaf)
        })
        .collect()
}

/// How an object that is not a folder reads in a message.
fn a_kind(object_type: &ObjectType) -> String {
    match object_type {
        ObjectType::Notebook => "a notebook".into(),
        ObjectType::File => "a file".into(),
        ObjectType::Library => "a library".into(),
        ObjectType::Dashboard => "a dashboard".into(),
        ObjectType::Directory | ObjectType::Repo => "a folder".into(),
        ObjectType::Other(t) => format!("an object of type {t}"),
    }
}

/// The target itself is a notebook (or file): the workspace folder input names it.
fn target_not_a_folder(target: &str, object_type: &ObjectType) -> TaskError {
    TaskError::new(format!(
        "input 'Workspace folder' (workspaceFolder): '{target}' is {} in the workspace, not a folder; nothing was uploaded. Give the folder to deploy into (e.g. {}-notebooks), or delete or rename that {} first",
        a_kind(object_type),
        target.trim_end_matches('/'),
        a_kind(object_type).trim_start_matches("a ").trim_start_matches("an "),
    ))
}

/// Why `mkdirs(leaf)` said "already exists": the first object on the way from the target
/// (or above it) to `leaf` that is not a folder, named with what to do.
async fn explain_mkdirs(ws: &Workspace, target: &str, leaf: &str, error: Error) -> String {
    let mut path = String::new();
    for segment in leaf.split('/').filter(|s| !s.is_empty()) {
        path.push('/');
        path.push_str(segment);
        let Ok(Some(object)) = ws.get_status(&path).await else {
            continue;
        };
        if object.object_type.is_container() {
            continue;
        }
        let kind = a_kind(&object.object_type);
        return match relative(target, &path) {
            Some(rel) => format!(
                "'{path}' is {kind} in the workspace, where the source has the folder '{rel}': delete or rename {kind} in the workspace, or rename the source folder"
            ),
            None => format!(
                "input 'Workspace folder' (workspaceFolder): '{path}' is {kind} in the workspace, not a folder: choose another workspace folder, or delete or rename {kind}"
            ),
        };
    }
    format!("creating the folder {leaf} failed: {error}")
}

/// Shows progress every 5 %.
struct Progress {
    total: usize,
    done: usize,
    shown: usize,
}

impl Progress {
    fn step(&mut self) {
        self.done += 1;
        let percent = self.done * 100 / self.total.max(1);
        if percent / 5 > self.shown / 5 || self.done == self.total {
            self.shown = percent;
            out::progress(
                percent.min(100) as u8,
                &format!("{} of {} uploaded", self.done, self.total),
            );
        }
    }
}

/// Deploys `scan` (already read and checked) to the workspace.
pub async fn deploy(
    ws: &Workspace,
    conn: &Connection,
    opts: &Options,
    scan: Scan,
) -> Result<Report, TaskError> {
    let started = Instant::now();
    let mut report = Report {
        skipped: scan.skipped.clone(),
        ..Report::default()
    };
    let needs_remote = opts.incremental || opts.clean;
    let remote = if needs_remote {
        match read_remote(ws, opts).await {
            Ok(remote) => remote,
            Err(e) => {
                // A service that refuses to list a notebook (instead of answering it) still
                // gets the target named for what it is.
                if let Ok(Some(o)) = ws.get_status(&opts.target).await {
                    if !o.object_type.is_container() {
                        return Err(target_not_a_folder(&opts.target, &o.object_type));
                    }
                }
                let e = explain(conn, e);
                return Err(TaskError::new(format!(
                    "reading the workspace folder {}: {e}",
                    opts.target
                )));
            }
        }
    } else {
        // Without a listing, one look at the target: a notebook there is named as such.
        match ws.get_status(&opts.target).await {
            Ok(Some(o)) if !o.object_type.is_container() => {
                return Err(target_not_a_folder(&opts.target, &o.object_type))
            }
            Ok(_) => {}
            Err(e) => {
                let e = explain(conn, e);
                return Err(TaskError::new(format!(
                    "reading the workspace folder {}: {e}",
                    opts.target
                )));
            }
        }
        Remote {
            exists: false,
            objects: HashMap::new(),
            manifest: None,
            target_type: None,
        }
    };
    if let Some(object_type) = &remote.target_type {
        return Err(target_not_a_folder(&opts.target, object_type));
    }

    // Decide.
    let mut uploads: Vec<(&Item, Reason)> = Vec::new();
    for item in &scan.items {
        match decide(item, &remote, opts.incremental) {
            Some(reason) => uploads.push((item, reason)),
            None => report.unchanged.push(item.target_rel.clone()),
        }
    }

    // Folders: every parent of an upload that the workspace does not have.
    let mut needed = BTreeSet::new();
    for (item, _) in &uploads {
        let mut rel = parent(&item.target_rel);
        loop {
            let exists = if rel.is_empty() {
                remote.exists
            } else {
                remote
                    .objects
                    .get(rel)
                    .is_some_and(|o| o.object_type.is_container())
            };
            if !exists {
                needed.insert(join(&opts.target, rel));
            }
            if rel.is_empty() {
                break;
            }
            rel = parent(rel);
        }
    }
    // Without a listing, only the target itself is known to be needed, as in the legacy
    // flow; its subfolders are created by their deepest descendant's mkdirs.
    let plan = mkdirs_plan(&needed);
    let cells: HashMap<String, Arc<OnceCell<Result<(), String>>>> = plan
        .values()
        .map(|leaf| (leaf.clone(), Arc::new(OnceCell::new())))
        .collect();
    report.folders_created = cells.len();

    if !report.unchanged.is_empty() {
        out::group(&format!(
            "Unchanged: {} file(s) not uploaded",
            report.unchanged.len()
        ));
        for rel in &report.unchanged {
            out::info(&format!("  {}", join(&opts.target, rel)));
        }
        out::end_group();
    }

    // Upload.
    let mut modified: BTreeMap<String, i64> = BTreeMap::new();
    if !uploads.is_empty() {
        out::group(&format!(
            "Uploading {} file(s) to {} ({} at a time)",
            uploads.len(),
            opts.target,
            opts.concurrency
        ));
        let mut progress = Progress {
            total: uploads.len(),
            done: 0,
            shown: 0,
        };
        let target = &opts.target;
        let plan = &plan;
        let cells = &cells;
        let mut results = stream::iter(uploads.iter().copied())
            .map(|(item, reason)| async move {
                let folder = join(target, parent(&item.target_rel));
                if let Some(leaf) = plan.get(&folder) {
                    if let Some(cell) = cells.get(leaf) {
                        let created = cell
                            .get_or_init(|| async {
                                match ws.mkdirs(leaf).await {
                                    Ok(()) => Ok(()),
                                    Err(e @ Error::AlreadyExists { .. }) => {
                                        Err(explain_mkdirs(ws, target, leaf, e).await)
                                    }
                                    Err(e) => {
                                        Err(format!("creating the folder {leaf} failed: {e}"))
                                    }
                                }
                            })
                            .await;
                        if let Err(e) = created {
                            return (item, reason, Err(e.clone()));
                        }
                    }
                }
                let content = match tokio::fs::read(&item.local).await {
                    Ok(c) => c,
                    Err(e) => return (item, reason, Err(format!("cannot read the file: {e}"))),
                };
                let path = join(target, &item.target_rel);
                let result = ws
                    .import(&path, &content, item.kind, true)
                    .await
                    .map_err(|e| e.to_string());
                (item, reason, result)
            })
            .buffer_unordered(opts.concurrency.max(1));
        while let Some((item, reason, result)) = results.next().await {
            progress.step();
            let path = join(&opts.target, &item.target_rel);
            match result {
                Ok(()) => {
                    out::info(&format!(
                        "  {} → {path} ({}; {})",
                        item.source_rel,
                        scan::describe(item.kind),
                        reason.as_str()
                    ));
                    report.uploaded.push((item.source_rel.clone(), reason));
                }
                Err(e) => {
                    out::info(&format!("  FAILED {} → {path}: {e}", item.source_rel));
                    report.failed.push((item.source_rel.clone(), e));
                }
            }
        }
        drop(results);
        out::end_group();

        // The workspace's modified_at of what was uploaded, for the manifest: one listing per
        // folder that got uploads (fewer calls than one status per file).
        if opts.incremental {
            let folders: BTreeSet<String> = uploads
                .iter()
                .filter(|(i, _)| report.uploaded.iter().any(|(s, _)| *s == i.source_rel))
                .map(|(i, _)| join(&opts.target, parent(&i.target_rel)))
                .collect();
            let listed: Vec<Result<Vec<ObjectInfo>, Error>> = stream::iter(folders)
                .map(|f| async move { ws.list(&f).await })
                .buffer_unordered(opts.concurrency.max(1))
                .collect()
                .await;
            for objects in listed {
                match objects {
                    Ok(objects) => {
                        for o in objects {
                            if let (Some(rel), Some(at)) = (relative(&opts.target, &o.path), o.modified_at) {
                                modified.insert(rel.to_owned(), at);
                            }
                        }
                    }
                    Err(e) => out::warning(&format!(
                        "could not read back the uploaded files' timestamps ({e}); they will be uploaded again next time"
                    )),
                }
            }
        }
    }

    // Record what is deployed now.
    if opts.incremental {
        let uploaded: BTreeSet<&str> = report.uploaded.iter().map(|(s, _)| s.as_str()).collect();
        let mut entries = BTreeMap::new();
        for item in &scan.items {
            let at = if uploaded.contains(item.source_rel.as_str()) {
                modified.get(&item.target_rel).copied()
            } else if report.unchanged.contains(&item.target_rel) {
                remote
                    .manifest
                    .as_ref()
                    .and_then(|m| m.entries.get(&item.target_rel))
                    .map(|e| e.modified_at)
            } else {
                None
            };
            if let Some(modified_at) = at {
                entries.insert(
                    item.target_rel.clone(),
                    Entry {
                        sha256: item.hash.clone(),
                        modified_at,
                    },
                );
            }
        }
        let manifest = Manifest::new(entries);
        if remote.manifest.as_ref().map(|m| &m.entries) != Some(&manifest.entries) {
            let path = join(&opts.target, manifest::FILE_NAME);
            let written = async {
                if !remote.exists && report.uploaded.is_empty() {
                    ws.mkdirs(&opts.target).await?;
                }
                ws.import(&path, &manifest.to_bytes(), ImportFormat::Raw, true)
                    .await
            };
            if let Err(e) = written.await {
                out::warning(&format!(
                    "could not write the deploy manifest {path} ({e}): the next deploy uploads every file again"
                ));
            }
        }
    }

    // Clean, only when everything else worked.
    if opts.clean {
        if report.failed.is_empty() {
            clean(ws, opts, &scan, &remote, &mut report).await?;
        } else {
            report.clean_skipped = Some("some uploads failed".into());
            out::warning("clean skipped: some uploads failed, so nothing was deleted");
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// What clean does with the workspace objects (relative paths) that the source does not have.
#[derive(Debug, Default, PartialEq, Eq)]
struct CleanPlan<'a> {
    /// The topmost such object of each branch (a folder goes with its content).
    delete: Vec<&'a str>,
    /// Objects the scan skipped in the source (hidden, not a notebook, ...): never deleted,
    /// since the source may well have them.
    kept: Vec<&'a str>,
}

/// Sorts out what clean deletes. What a `.dbc` archive imported (a folder of notebooks)
/// counts as in the source; so does anything a skipped source entry may have become, and the
/// folders above it.
fn not_in_source<'a>(
    items: &[Item],
    skipped: &[Skipped],
    objects: impl Iterator<Item = &'a str>,
) -> CleanPlan<'a> {
    let mut keep: BTreeSet<&str> = BTreeSet::new();
    keep.insert(manifest::FILE_NAME);
    for item in items {
        let mut rel = item.target_rel.as_str();
        keep.insert(rel);
        while !parent(rel).is_empty() {
            rel = parent(rel);
            keep.insert(rel);
        }
    }
    let archives: Vec<String> = items
        .iter()
        .filter(|i| i.kind == ImportFormat::Dbc)
        .map(|i| format!("{}/", i.target_rel))
        .collect();
    let mut extra: Vec<&str> = objects
        .filter(|rel| !keep.contains(rel) && !archives.iter().any(|a| rel.starts_with(a)))
        .collect();
    extra.sort_unstable();
    let (kept, extra): (Vec<&str>, Vec<&str>) = extra
        .into_iter()
        .partition(|rel| skipped.iter().any(|s| s.protects(rel)));
    // A folder above something kept stays too.
    let holds_kept = |rel: &str| {
        let prefix = format!("{rel}/");
        kept.iter().any(|k| k.starts_with(&prefix))
    };
    let mut plan = CleanPlan::default();
    for rel in extra {
        if holds_kept(rel) {
            continue;
        }
        if !plan
            .delete
            .iter()
            .any(|t| rel.starts_with(&format!("{t}/")))
        {
            plan.delete.push(rel);
        }
    }
    plan.kept = kept;
    plan
}

/// Deletes what the workspace has under the target that the source does not: the topmost
/// such object of each branch (a folder goes with its content).
async fn clean(
    ws: &Workspace,
    opts: &Options,
    scan: &Scan,
    remote: &Remote,
    report: &mut Report,
) -> Result<(), TaskError> {
    let plan = not_in_source(
        &scan.items,
        &scan.skipped,
        remote.objects.keys().map(String::as_str),
    );
    if !plan.kept.is_empty() {
        out::group(&format!(
            "Kept: {} item(s) not deployed but skipped in the source, so not deleted",
            plan.kept.len()
        ));
        for rel in &plan.kept {
            out::info(&format!("  {}", join(&opts.target, rel)));
        }
        out::end_group();
    }
    let topmost = plan.delete;
    if topmost.is_empty() {
        return Ok(());
    }
    out::group(&format!(
        "Deleting {} item(s) not in the source",
        topmost.len()
    ));
    let results: Vec<(&str, Result<(), Error>)> = stream::iter(topmost)
        .map(|rel| async move {
            let path = join(&opts.target, rel);
            let result = match ws.delete(&path, true).await {
                Err(e) if e.is_not_found() => Ok(()),
                other => other,
            };
            (rel, result)
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut failures = Vec::new();
    for (rel, result) in results {
        let path = join(&opts.target, rel);
        match result {
            Ok(()) => {
                out::info(&format!("  deleted {path}"));
                report.deleted.push(path);
            }
            Err(e) => {
                out::info(&format!("  FAILED to delete {path}: {e}"));
                failures.push(format!("{path}: {e}"));
            }
        }
    }
    out::end_group();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(TaskError::new(format!(
            "every file was deployed, but {} item(s) could not be deleted by the clean option:\n  {}",
            failures.len(),
            failures.join("\n  ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_folder_rules() {
        assert_eq!(target_folder("/Shared/x/", false).unwrap(), "/Shared/x");
        assert_eq!(
            target_folder("/Workspace/Shared/x", true).unwrap(),
            "/Shared/x"
        );
        assert_eq!(target_folder("//Shared//x", false).unwrap(), "/Shared/x");
        assert!(target_folder("Shared/x", false)
            .unwrap_err()
            .to_string()
            .contains("absolute"));
        assert!(target_folder("/Shared/../x", false).is_err());
        assert!(target_folder("/", true)
            .unwrap_err()
            .to_string()
            .contains("refused"));
        assert!(target_folder("/Workspace", true).is_err());
        assert!(target_folder("/Shared", true).is_err());
        assert_eq!(target_folder("/", false).unwrap(), "/");
    }

    #[test]
    fn each_needed_folder_is_created_by_one_deepest_mkdirs() {
        let needed: BTreeSet<String> = ["/t", "/t/a", "/t/a/b", "/t/a/c", "/t/d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let plan = mkdirs_plan(&needed);
        assert_eq!(plan["/t/a/b"], "/t/a/b");
        assert_eq!(plan["/t/a/c"], "/t/a/c");
        assert_eq!(plan["/t/a"], "/t/a/b");
        assert_eq!(plan["/t"], "/t/a/b");
        assert_eq!(plan["/t/d"], "/t/d");
        let distinct: BTreeSet<&String> = plan.values().collect();
        assert_eq!(distinct.len(), 3);
    }

    #[test]
    fn clean_keeps_the_source_and_what_an_archive_imported() {
        let item = |rel: &str, kind| Item {
            local: PathBuf::new(),
            source_rel: rel.to_owned(),
            target_rel: rel.to_owned(),
            kind,
            size: 0,
            hash: String::new(),
        };
        let items = [
            item("a/nb", ImportFormat::Source(databricks::Language::Python)),
            item("arch", ImportFormat::Dbc),
        ];
        let objects = [
            "a",
            "a/nb",
            "a/old",
            "gone",
            "gone/x",
            "arch",
            "arch/inner",
            "arch/inner/nb",
            "archive2",
            manifest::FILE_NAME,
        ];
        assert_eq!(
            not_in_source(&items, &[], objects.into_iter()).delete,
            vec!["a/old", "archive2", "gone"]
        );
    }

    #[test]
    fn clean_never_deletes_what_the_scan_skipped() {
        let items = [Item {
            local: PathBuf::new(),
            source_rel: "a/nb.py".into(),
            target_rel: "a/nb".into(),
            kind: ImportFormat::Source(databricks::Language::Python),
            size: 0,
            hash: String::new(),
        }];
        let skipped = |rel: &str| Skipped {
            source_rel: rel.into(),
            reason: "hidden",
        };
        let skipped = [skipped(".cfg"), skipped("docs/v1.2/notes.md")];
        let objects = [
            "a",
            "a/nb",
            ".cfg",
            ".cfg/x",
            "docs",
            "docs/v1.2",
            "docs/v1.2/notes",
            "docs/v1.2/notes.md",
            "docs/v1.2/old",
            "docs/v1",
            "gone",
        ];
        let plan = not_in_source(&items, &skipped, objects.into_iter());
        assert_eq!(plan.delete, vec!["docs/v1", "docs/v1.2/old", "gone"]);
        assert_eq!(
            plan.kept,
            vec![".cfg", ".cfg/x", "docs/v1.2/notes", "docs/v1.2/notes.md"]
        );
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative("/t", "/t/a/b"), Some("a/b"));
        assert_eq!(relative("/t", "/Workspace/t/a"), Some("a"));
        assert_eq!(relative("/t", "/tt/a"), None);
        assert_eq!(relative("/", "/a"), Some("a"));
    }
}
