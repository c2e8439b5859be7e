//! The local side: walk the source folder, decide what each file becomes in the workspace.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use ring::digest;

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

/// A file that is not deployed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub source_rel: String,
    pub reason: &'static str,
}

/// The source folder, read.
#[derive(Debug, Default)]
pub struct Scan {
    pub items: Vec<Item>,
    pub skipped: Vec<Skipped>,
    /// Every folder (relative, `/`-separated) that holds at least one item, with its
    /// ancestors.
    pub folders: Vec<String>,
}

/// Why the source cannot be deployed.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("input 'Notebooks folder' (notebooksFolderPath): '{0}' does not exist: check the path and that the artifact was downloaded or the repository checked out")]
    Missing(PathBuf),
    #[error("input 'Notebooks folder' (notebooksFolderPath): '{0}' is a file, not a folder: give the folder that holds the notebooks")]
    NotAFolder(PathBuf),
    #[error("cannot read '{path}': {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "input 'Notebooks folder' (notebooksFolderPath): '{folder}' has nothing to deploy{hint}"
    )]
    Empty { folder: PathBuf, hint: String },
    #[error("{} file(s) are over the workspace's 10 MB import limit; nothing was uploaded:\n{}", .0.len(), .0.iter().map(|(p, s)| format!("  {p} ({:.1} MB)", *s as f64 / 1_048_576.0)).collect::<Vec<_>>().join("\n"))]
    TooLarge(Vec<(String, u64)>),
    #[error("these files would land on the same workspace path; rename one of each:\n{}", .0.iter().map(|(a, b, t)| format!("  {a} and {b} → {t}")).collect::<Vec<_>>().join("\n"))]
    Collisions(Vec<(String, String, String)>),
}

/// Reads the source tree. Hidden entries (a name starting with `.`, such as `.git`) are
/// skipped and listed; symbolic links to files are followed, to folders skipped.
pub fn scan(root: &Path, detect: Detect) -> Result<Scan, ScanError> {
    let meta = fs::metadata(root).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ScanError::Missing(root.to_owned()),
        _ => ScanError::Io {
            path: root.to_owned(),
            source: e,
        },
    })?;
    if !meta.is_dir() {
        return Err(ScanError::NotAFolder(root.to_owned()));
    }
    let mut scan = Scan::default();
    let mut too_large = Vec::new();
    walk(root, "", detect, &mut scan, &mut too_large)?;
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

fn walk(
    dir: &Path,
    rel: &str,
    detect: Detect,
    scan: &mut Scan,
    too_large: &mut Vec<(String, u64)>,
) -> Result<(), ScanError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ScanError::Io { path, source }
    };
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            scan.skipped.push(Skipped {
                source_rel: join(rel, &entry.file_name().to_string_lossy()),
                reason: "the name is not valid UTF-8",
            });
            continue;
        };
        let source_rel = join(rel, &name);
        if name.starts_with('.') {
            scan.skipped.push(Skipped {
                source_rel,
                reason: "hidden",
            });
            continue;
        }
        let link = entry.file_type().map_err(io(&path))?.is_symlink();
        let meta = fs::metadata(&path).map_err(io(&path))?;
        if meta.is_dir() {
            if link {
                scan.skipped.push(Skipped {
                    source_rel,
                    reason: "a link to a folder",
                });
                continue;
            }
            walk(&path, &source_rel, detect, scan, too_large)?;
            continue;
        }
        if !meta.is_file() {
            continue;
        }
        let Some(kind) = classify(&path, &name, detect).map_err(io(&path))? else {
            scan.skipped.push(Skipped {
                source_rel,
                reason: "not a notebook extension",
            });
            continue;
        };
        if meta.len() > MAX_IMPORT_BYTES {
            too_large.push((source_rel, meta.len()));
            continue;
        }
        let target_name = if is_notebook(kind) {
            strip_extension(&name)
        } else {
            &name
        };
        let hash = hash_file(&path, kind).map_err(io(&path))?;
        scan.items.push(Item {
            local: path,
            target_rel: join(rel, target_name),
            source_rel,
            kind,
            size: meta.len(),
            hash,
        });
    }
    Ok(())
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
