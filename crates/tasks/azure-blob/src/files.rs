//! Local files: walking a folder into blob names (with each file's size and modification
//! time, for upload's quick check), MD5 of a file, content types by extension.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

/// A local file and the blob name it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub path: PathBuf,
    pub name: String,
    pub size: u64,
    /// The modification time in nanoseconds since the Unix epoch, read when the folder was
    /// scanned (before the file is read, so a later edit gives a newer time); `None` where
    /// the file system has none.
    pub modified_ns: Option<i128>,
}

/// A file's modification time in nanoseconds since the Unix epoch (negative before it).
pub fn modified_ns(meta: &std::fs::Metadata) -> Option<i128> {
    let time = meta.modified().ok()?;
    Some(match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    })
}

/// `prefix` + `relative`, with exactly one `/` between them.
pub fn join(prefix: &str, relative: &str) -> String {
    let prefix = prefix.trim_start_matches('/');
    if prefix.is_empty() {
        relative.to_owned()
    } else if prefix.ends_with('/') {
        format!("{prefix}{relative}")
    } else {
        format!("{prefix}/{relative}")
    }
}

/// The files of `source` (a file, or a folder walked recursively) with their blob names
/// under `prefix`, sorted by name.
pub fn scan(source: &Path, prefix: &str) -> std::io::Result<Vec<Local>> {
    let mut out = Vec::new();
    let meta = std::fs::metadata(source)?;
    if meta.is_file() {
        let file = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(Local {
            path: source.to_owned(),
            name: join(prefix, &file),
            size: meta.len(),
            modified_ns: modified_ns(&meta),
        });
        return Ok(out);
    }
    let mut stack = vec![source.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() || (kind.is_symlink() && path.is_dir()) {
                stack.push(path);
            } else if path.is_file() {
                let relative = path
                    .strip_prefix(source)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let meta = std::fs::metadata(&path)?;
                out.push(Local {
                    name: join(prefix, &relative),
                    path,
                    size: meta.len(),
                    modified_ns: modified_ns(&meta),
                });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The MD5 of a file, read in 1 MiB pieces.
pub fn md5_of(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Md5::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().to_vec())
}

/// The MD5 of bytes.
pub fn md5_bytes(bytes: &[u8]) -> Vec<u8> {
    Md5::digest(bytes).to_vec()
}

/// The content type for a file name, by extension: the types data pipelines and static sites
/// move; anything else is `application/octet-stream`.
pub fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "txt" | "log" => "text/plain",
        "json" => "application/json",
        "jsonl" | "ndjson" => "application/x-ndjson",
        "xml" => "application/xml",
        "yaml" | "yml" => "application/yaml",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "md" => "text/markdown",
        "parquet" => "application/vnd.apache.parquet",
        "avro" => "application/avro",
        "orc" => "application/octet-stream",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "py" => "text/x-python",
        "sql" => "application/sql",
        "ipynb" => "application/x-ipynb+json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_join_with_one_slash() {
        assert_eq!(join("", "a.csv"), "a.csv");
        assert_eq!(join("in", "a.csv"), "in/a.csv");
        assert_eq!(join("/in/", "x/a.csv"), "in/x/a.csv");
    }

    #[test]
    fn folders_scan_recursively_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        std::fs::write(dir.path().join("b/c/z.json"), "{}").unwrap();
        std::fs::write(dir.path().join("a.csv"), "x,y").unwrap();
        let files = scan(dir.path(), "raw").unwrap();
        let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["raw/a.csv", "raw/b/c/z.json"]);
        assert_eq!(files[0].size, 3);
        // The time as set, to the nanosecond.
        let when = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 123_456_789);
        std::fs::File::options()
            .write(true)
            .open(dir.path().join("a.csv"))
            .unwrap()
            .set_modified(when)
            .unwrap();
        let files = scan(dir.path(), "raw").unwrap();
        assert_eq!(files[0].modified_ns, Some(1_700_000_000_123_456_789));
        let one = scan(&dir.path().join("a.csv"), "").unwrap();
        assert_eq!(one[0].name, "a.csv");
    }

    #[test]
    fn types_by_extension() {
        assert_eq!(content_type("x/DATA.CSV"), "text/csv");
        assert_eq!(content_type("a.parquet"), "application/vnd.apache.parquet");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(md5_bytes(b"").len(), 16);
    }
}
