//! The local side: walk the source folder, decide what each file becomes in the workspace.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use ring::digest;
use task_sdk::time::tenths;

/// The largest content the workspace import accepts (decoded bytes).
pub const MAX_IMPORT_BYTES: u64 = 10 * 1024 * 1024;

/// How files are recognised as notebooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detect {
    /// Like the old task (the legacy CLI's `import_dir`), case-insensitively:
    /// `.py .scala .sql .r` → source notebooks, `.ipynb` → Jupyter, `.dbc`, `.html`
    /// archives; every other file is skipped.
    Extension,
    /// A source file is a notebook when its first line is the Databricks header; `.ipynb`
    /// and `.dbc` are notebooks; every other file is deployed as a workspace file.
    Header,
}

impl Detect {
    pub fn parse(value: &str) -> Option<Detect> {
        match value.to_ascii_lowercase().as_str() {
            "extension" | "" => Some(Detect::Extension),
            "header" => Some(Detect::Header),
            _ => None,
        }
    }
}

pub use databricks::{ImportFormat as Kind, Language};

fn language_from_extension(ext: &str) -> Option<Language> {
    match ext.to_ascii_lowercase().as_str() {
        "py" => Some(Language::Python),
        "scala" => Some(Language::Scala),
        "sql" => Some(Language::Sql),
        "r" => Some(Language::R),
        _ => None,
    }
}

/// Whether the workspace shows it as a notebook (name without extension).
pub fn is_notebook(kind: Kind) -> bool {
    !matches!(kind, Kind::Raw)
}

/// How a kind reads in the log.
pub fn describe(kind: Kind) -> String {
    match kind {
        Kind::Source(l) => format!("notebook, {}", l.as_api_str().to_ascii_lowercase()),
        Kind::Jupyter => "notebook, Jupyter".into(),
        Kind::Dbc => "DBC archive".into(),
        Kind::Html => "HTML notebook".into(),
        Kind::Raw => "file".into(),
        other => other.as_api_str().to_owned(),
    }
}

/// A stable name, part of the content hash: the same bytes deployed differently (another
/// detection mode) count as changed.
pub fn tag(kind: Kind) -> String {
    match kind.language() {
        Some(l) => format!("{}:{}", kind.as_api_str(), l.as_api_str()),
        None => kind.as_api_str().to_owned(),
    }
}

/// One file to deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The local file.
    pub local: PathBuf,
    /// Its path under the source folder, with `/`, for messages.
    pub source_rel: String,
    /// Its path under the workspace folder, with `/` (a notebook's without extension).
    pub target_rel: String,
    pub kind: Kind,
    pub size: u64,
    /// SHA-256 of the kind's tag and the content, hex.
    pub hash: String,
}

/// A file or folder that is not deployed, and why. Its workspace paths are protected from
/// the clean option (see [`Skipped::protects`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub source_rel: String,
    pub reason: &'static str,
}

impl Skipped {
    /// Whether the workspace path `target_rel` (relative, `/`-separated) may be what this
    /// entry would have become, or lie under it: the same path, the path without the
    /// extension (a notebook), or anything below either (a folder).
    pub fn protects(&self, target_rel: &str) -> bool {
        let (folder, name) = match self.source_rel.rsplit_once('/') {
            Some((folder, name)) => (Some(folder), name),
            None => (None, self.source_rel.as_str()),
        };
        let stem = match folder {
            Some(folder) => format!("{folder}/{}", strip_extension(name)),
            None => strip_extension(name).to_owned(),
        };
        [self.source_rel.as_str(), stem.as_str()].iter().any(|p| {
            target_rel == *p
                || target_rel
                    .strip_prefix(*p)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

/// The source folder, read.
#[derive(Debug, Default)]
pub struct Scan {
    pub items: Vec<Item>,
    pub skipped: Vec<Skipped>,
    /// Every folder (relative, `/`-separated) that holds at least one item, with its
    /// ancestors.
    pub folders: Vec<String>,
    /// Links to folders that were followed: relative path, where they lead.
    pub followed_links: Vec<(String, PathBuf)>,
}

const INPUT: &str = "input 'Notebooks folder' (notebooksFolderPath)";

/// Why the source cannot be deployed. Every message names the input, the entry (relative to
/// the source folder) and what to do; nothing is uploaded when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{INPUT}: '{0}' does not exist: check the path and that the artifact was downloaded or the repository checked out")]
    Missing(PathBuf),
    #[error("{INPUT}: '{0}' is a file, not a folder: give the folder that holds the notebooks")]
    NotAFolder(PathBuf),
    #[error("{INPUT}: cannot read the {what} '{rel}' ({source}); nothing was uploaded. Make it readable by the agent's user, or move it out of the folder")]
    Unreadable {
        what: &'static str,
        rel: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{INPUT}: '{rel}' is a symbolic link to '{}', which does not exist; nothing was uploaded. Fix the link or remove it", target.display())]
    DanglingLink { rel: String, target: PathBuf },
    #[error("{INPUT}: '{rel}' is a symbolic link that cannot be followed ({source}; a link that leads back to itself?); nothing was uploaded. Fix the link or remove it")]
    BrokenLink {
        rel: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{INPUT}: '{rel}' links to the folder '{}', which contains the link itself: following it would never end; nothing was uploaded. Remove the link or point it elsewhere", target.display())]
    LinkLoop { rel: String, target: PathBuf },
    #[error("{INPUT}: '{rel}' is not a regular file (a named pipe, socket or device) and cannot be deployed; nothing was uploaded. Remove it from the folder")]
    NotRegular { rel: String },
    #[error("{INPUT}: {} name(s) are not valid UTF-8, which workspace paths must be, so these would not be deployed; nothing was uploaded. Rename them (or move them out of the folder):\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    NotUtf8(Vec<String>),
    #[error("{INPUT}: '{folder}' has nothing to deploy{hint}")]
    Empty { folder: PathBuf, hint: String },
    #[error("{} file(s) are over the workspace's 10 MB import limit; nothing was uploaded:\n{}", .0.len(), .0.iter().map(|(p, s)| format!("  {p} ({} MB)", tenths(u128::from(*s), 1_048_576))).collect::<Vec<_>>().join("\n"))]
    TooLarge(Vec<(String, u64)>),
    #[error("these files would land on the same workspace path; rename one of each:\n{}", .0.iter().map(|(a, b, t)| format!("  {a} and {b} → {t}")).collect::<Vec<_>>().join("\n"))]
    Collisions(Vec<(String, String, String)>),
}

/// Reads the source tree. Hidden entries (a name starting with `.`, such as `.git`) are
/// skipped and listed. Symbolic links are followed, to files and to folders, also when they
/// lead outside the source folder (a repository's `notebooks/lib -> ../lib`), as the old task
/// did; a link to a folder that contains it is a loop and an error. Anything that cannot be
/// read, and any name that is not UTF-8 where a file would be deployed, is an error: a run
/// never succeeds having silently left out something it should deploy.
pub fn scan(root: &Path, detect: Detect) -> Result<Scan, ScanError> {
    let meta = fs::metadata(root).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ScanError::Missing(root.to_owned()),
        _ => ScanError::Unreadable {
            what: "folder",
            rel: root.display().to_string(),
            source: e,
        },
    })?;
    if !meta.is_dir() {
        return Err(ScanError::NotAFolder(root.to_owned()));
    }
    let canonical = fs::canonicalize(root).map_err(|e| ScanError::Unreadable {
        what: "folder",
        rel: root.display().to_string(),
        source: e,
    })?;
    let mut walker = Walker {
        detect,
        scan: Scan::default(),
        too_large: Vec::new(),
        not_utf8: Vec::new(),
        chain: vec![canonical],
    };
    walker.walk(root, "")?;
    let Walker {
        mut scan,
        too_large,
        not_utf8,
        ..
    } = walker;
    if !not_utf8.is_empty() {
        return Err(ScanError::NotUtf8(not_utf8));
    }
    if !too_large.is_empty() {
        return Err(ScanError::TooLarge(too_large));
    }
    if scan.items.is_empty() {
        let hint = if scan.skipped.is_empty() {
            " (it is empty)".to_owned()
        } else {
            format!(
                ": {} file(s) skipped, e.g. {} ({}). Notebooks need the extension .py, .scala, .sql, .r, .ipynb, .dbc or .html",
                scan.skipped.len(),
                scan.skipped[0].source_rel,
                scan.skipped[0].reason
            )
        };
        return Err(ScanError::Empty {
            folder: root.to_owned(),
            hint,
        });
    }
    check_collisions(&scan.items)?;
    let mut folders = std::collections::BTreeSet::new();
    for item in &scan.items {
        let mut rel = item.target_rel.as_str();
        while let Some((parent, _)) = rel.rsplit_once('/') {
            folders.insert(parent.to_owned());
            rel = parent;
        }
    }
    scan.folders = folders.into_iter().collect();
    scan.items.sort_by(|a, b| a.target_rel.cmp(&b.target_rel));
    Ok(scan)
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_owned()
    } else {
        format!("{rel}/{name}")
    }
}

/// Whether a file of this name would be deployed (so a name the task cannot use is an error,
/// not a skip).
fn deployable_name(name: &str, detect: Detect) -> bool {
    match detect {
        Detect::Header => true,
        Detect::Extension => extension(name).is_some_and(|e| {
            language_from_extension(e).is_some()
                || ["ipynb", "dbc", "html"].contains(&e.to_ascii_lowercase().as_str())
        }),
    }
}

struct Walker {
    detect: Detect,
    scan: Scan,
    too_large: Vec<(String, u64)>,
    not_utf8: Vec<String>,
    /// The canonical paths of the folders being walked, outermost first: a link to one of
    /// them, or to a folder above one, would loop.
    chain: Vec<PathBuf>,
}

impl Walker {
    fn walk(&mut self, dir: &Path, rel: &str) -> Result<(), ScanError> {
        let unreadable = |source| ScanError::Unreadable {
            what: "folder",
            rel: if rel.is_empty() {
                dir.display().to_string()
            } else {
                rel.to_owned()
            },
            source,
        };
        let mut entries: Vec<_> = fs::read_dir(dir)
            .map_err(unreadable)?
            .collect::<Result<_, _>>()
            .map_err(unreadable)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            self.entry(&entry, rel)?;
        }
        Ok(())
    }

    fn entry(&mut self, entry: &fs::DirEntry, rel: &str) -> Result<(), ScanError> {
        let path = entry.path();
        let os_name = entry.file_name();
        let lossy = os_name.to_string_lossy();
        let source_rel = join(rel, &lossy);
        if lossy.starts_with('.') {
            self.scan.skipped.push(Skipped {
                source_rel,
                reason: "hidden",
            });
            return Ok(());
        }
        let link = entry
            .file_type()
            .map_err(|source| ScanError::Unreadable {
                what: "entry",
                rel: source_rel.clone(),
                source,
            })?
            .is_symlink();
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if link && e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ScanError::DanglingLink {
                    target: fs::read_link(&path).unwrap_or_default(),
                    rel: source_rel,
                })
            }
            Err(source) if link => {
                return Err(ScanError::BrokenLink {
                    rel: source_rel,
                    source,
                })
            }
            Err(source) => {
                return Err(ScanError::Unreadable {
                    what: "entry",
                    rel: source_rel,
                    source,
                })
            }
        };
        let Some(name) = os_name.to_str() else {
            if meta.is_dir() || deployable_name(&lossy, self.detect) {
                self.not_utf8
                    .push(format!("{:?}", Path::new(rel).join(&os_name)));
            } else {
                self.scan.skipped.push(Skipped {
                    source_rel,
                    reason: "not a notebook extension",
                });
            }
            return Ok(());
        };
        if meta.is_dir() {
            let canonical = if link {
                let target = fs::canonicalize(&path).map_err(|source| ScanError::BrokenLink {
                    rel: source_rel.clone(),
                    source,
                })?;
                if self
                    .chain
                    .iter()
                    .any(|walking| walking.starts_with(&target))
                {
                    return Err(ScanError::LinkLoop {
                        rel: source_rel,
                        target,
                    });
                }
                self.scan
                    .followed_links
                    .push((source_rel.clone(), target.clone()));
                target
            } else {
                self.chain
                    .last()
                    .map_or_else(|| path.clone(), |p| p.join(name))
            };
            self.chain.push(canonical);
            let walked = self.walk(&path, &source_rel);
            self.chain.pop();
            return walked;
        }
        if !meta.is_file() {
            if deployable_name(name, self.detect) {
                return Err(ScanError::NotRegular { rel: source_rel });
            }
            self.scan.skipped.push(Skipped {
                source_rel,
                reason: "not a regular file",
            });
            return Ok(());
        }
        let unreadable = |source| ScanError::Unreadable {
            what: "file",
            rel: source_rel.clone(),
            source,
        };
        let Some(kind) = classify(&path, name, self.detect).map_err(unreadable)? else {
            self.scan.skipped.push(Skipped {
                source_rel,
                reason: "not a notebook extension",
            });
            return Ok(());
        };
        if meta.len() > MAX_IMPORT_BYTES {
            self.too_large.push((source_rel, meta.len()));
            return Ok(());
        }
        let target_name = if is_notebook(kind) {
            strip_extension(name)
        } else {
            name
        };
        let hash = hash_file(&path, kind).map_err(unreadable)?;
        self.scan.items.push(Item {
            local: path,
            target_rel: join(rel, target_name),
            source_rel,
            kind,
            size: meta.len(),
            hash,
        });
        Ok(())
    }
}

fn extension(name: &str) -> Option<&str> {
    let dot = name.rfind('.')?;
    (dot > 0).then(|| &name[dot + 1..])
}

fn strip_extension(name: &str) -> &str {
    match extension(name) {
        Some(ext) => &name[..name.len() - ext.len() - 1],
        None => name,
    }
}

/// What a file becomes; `None` when it is skipped.
fn classify(path: &Path, name: &str, detect: Detect) -> std::io::Result<Option<Kind>> {
    let ext = extension(name).map(str::to_ascii_lowercase);
    let kind = match (ext.as_deref(), detect) {
        (Some("ipynb"), _) => Some(Kind::Jupyter),
        (Some("dbc"), _) => Some(Kind::Dbc),
        (Some("html"), Detect::Extension) => Some(Kind::Html),
        (Some(e), Detect::Extension) => language_from_extension(e).map(Kind::Source),
        (None, Detect::Extension) => None,
        (e, Detect::Header) => match e.and_then(language_from_extension) {
            Some(language) if starts_with_header(path, language)? => Some(Kind::Source(language)),
            _ => Some(Kind::Raw),
        },
    };
    Ok(kind)
}

fn starts_with_header(path: &Path, language: Language) -> std::io::Result<bool> {
    let mut head = [0u8; 64];
    let mut file = fs::File::open(path)?;
    let mut read = 0;
    while read < head.len() {
        let n = file.read(&mut head[read..])?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let head = &head[..read];
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).unwrap_or_default().trim_end();
    Ok(line == language.notebook_header())
}

fn hash_file(path: &Path, kind: Kind) -> std::io::Result<String> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(tag(kind).as_bytes());
    ctx.update(b"\n");
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(databricks_task_common::hex(ctx.finish().as_ref()))
}

/// Two items on one workspace path, or an item where another needs a folder.
fn check_collisions(items: &[Item]) -> Result<(), ScanError> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let mut collisions = Vec::new();
    for item in items {
        if let Some(other) = seen.insert(&item.target_rel, &item.source_rel) {
            collisions.push((
                other.to_owned(),
                item.source_rel.clone(),
                item.target_rel.clone(),
            ));
        }
    }
    for item in items {
        let mut rel = item.target_rel.as_str();
        while let Some((parent, _)) = rel.rsplit_once('/') {
            if let Some(other) = seen.get(parent) {
                collisions.push((
                    other.to_string(),
                    item.source_rel.clone(),
                    parent.to_owned(),
                ));
            }
            rel = parent;
        }
    }
    if collisions.is_empty() {
        Ok(())
    } else {
        Err(ScanError::Collisions(collisions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, content) in files {
            let path = dir.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        dir
    }

    fn targets(scan: &Scan) -> Vec<(String, Kind)> {
        scan.items
            .iter()
            .map(|i| (i.target_rel.clone(), i.kind))
            .collect()
    }

    #[test]
    fn extension_mode_maps_like_the_old_task_case_insensitively() {
        let dir = tree(&[
            ("a.py", "print(1)"),
            ("sub/B.SQL", "select 1"),
            ("sub/deeper/c.Scala", "val x = 1"),
            ("sub/d.R", "x <- 1"),
            ("nb.ipynb", "{}"),
            ("arch.dbc", "zip"),
            ("page.html", "<html>"),
            ("README.md", "# readme"),
            (".git/config", "x"),
        ]);
        let scan = scan(dir.path(), Detect::Extension).unwrap();
        assert_eq!(
            targets(&scan),
            vec![
                ("a".into(), Kind::Source(Language::Python)),
                ("arch".into(), Kind::Dbc),
                ("nb".into(), Kind::Jupyter),
                ("page".into(), Kind::Html),
                ("sub/B".into(), Kind::Source(Language::Sql)),
                ("sub/d".into(), Kind::Source(Language::R)),
                ("sub/deeper/c".into(), Kind::Source(Language::Scala)),
            ]
        );
        let skipped: Vec<_> = scan.skipped.iter().map(|s| s.source_rel.as_str()).collect();
        assert_eq!(skipped, vec![".git", "README.md"]);
        assert_eq!(scan.folders, vec!["sub", "sub/deeper"]);
    }

    #[test]
    fn header_mode_deploys_plain_modules_as_files() {
        let dir = tree(&[
            ("nb.py", "# Databricks notebook source\nprint(1)"),
            ("bom.sql", "\u{feff}-- Databricks notebook source\nselect 1"),
            ("lib/util.py", "def f(): pass"),
            ("conf.yaml", "a: 1"),
        ]);
        let scan = scan(dir.path(), Detect::Header).unwrap();
        assert_eq!(
            targets(&scan),
            vec![
                ("bom".into(), Kind::Source(Language::Sql)),
                ("conf.yaml".into(), Kind::Raw),
                ("lib/util.py".into(), Kind::Raw),
                ("nb".into(), Kind::Source(Language::Python)),
            ]
        );
    }

    #[test]
    fn the_hash_covers_content_and_kind() {
        let dir = tree(&[
            ("a.py", "print(1)"),
            ("b.py", "print(1)"),
            ("c.py", "print(2)"),
        ]);
        let ext = scan(dir.path(), Detect::Extension).unwrap();
        assert_eq!(ext.items[0].hash, ext.items[1].hash);
        assert_ne!(ext.items[0].hash, ext.items[2].hash);
        let hdr = scan(dir.path(), Detect::Header).unwrap();
        assert_ne!(ext.items[0].hash, hdr.items[0].hash);
    }

    #[test]
    fn clear_errors_for_missing_empty_colliding_and_large() {
        let dir = tree(&[]);
        let missing = dir.path().join("nope");
        assert!(matches!(
            scan(&missing, Detect::Extension),
            Err(ScanError::Missing(_))
        ));
        let e = scan(dir.path(), Detect::Extension).unwrap_err().to_string();
        assert!(e.contains("nothing to deploy (it is empty)"), "{e}");

        let only_md = tree(&[("README.md", "x")]);
        let e = scan(only_md.path(), Detect::Extension)
            .unwrap_err()
            .to_string();
        assert!(e.contains("README.md (not a notebook extension)"), "{e}");

        let clash = tree(&[
            ("a.py", "1"),
            ("a.sql", "2"),
            ("x.py", "3"),
            ("x/y.py", "4"),
        ]);
        let e = scan(clash.path(), Detect::Extension)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.py and a.sql → a"), "{e}");
        assert!(e.contains("x.py and x/y.py → x"), "{e}");

        let big = tree(&[("small.py", "1")]);
        let f = fs::File::create(big.path().join("big.py")).unwrap();
        f.set_len(MAX_IMPORT_BYTES + 1).unwrap();
        let e = scan(big.path(), Detect::Extension).unwrap_err().to_string();
        assert!(
            e.contains("big.py (10.0 MB)") && e.contains("nothing was uploaded"),
            "{e}"
        );
    }
}
