//! File stores outside the workspace tree: Unity Catalog volumes (Files API) and DBFS.
//!
//! Volumes must be declared ([`crate::Options::volumes`], `POST /emulator/volumes`): a path
//! under an undeclared volume answers 404 as the service does for a volume that was never
//! created. Inside a volume, parents are created implicitly (as the Files API does). DBFS keeps
//! the `put` limit (1 MB of decoded content) and the streaming handles (`create`, `add-block`
//! ≤ 1 MB, `close`; a handle idle for 10 minutes is gone).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};

/// Largest decoded `contents` of a DBFS `put`, and of one `add-block`.
pub const DBFS_MAX_BLOCK_BYTES: usize = 1024 * 1024;
/// How long a DBFS stream handle lives without a call.
pub const DBFS_HANDLE_IDLE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct StoredFile {
    pub data: Vec<u8>,
    pub modified_ms: u64,
}

/// A tree of files and directories keyed by absolute path (no trailing slash).
#[derive(Debug, Default)]
struct Tree {
    files: BTreeMap<String, StoredFile>,
    dirs: BTreeSet<String>,
}

impl Tree {
    fn add_parents(&mut self, path: &str, stop_at: &str) {
        let mut dir = parent(path);
        while let Some(d) = dir {
            if d.len() <= stop_at.len() {
                break;
            }
            self.dirs.insert(d.to_owned());
            dir = parent(d);
        }
    }

    fn children(&self, dir: &str) -> Vec<(String, Option<&StoredFile>)> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let direct = |p: &&String| p.starts_with(&prefix) && !p[prefix.len()..].contains('/');
        let mut out: Vec<(String, Option<&StoredFile>)> = self
            .dirs
            .iter()
            .filter(direct)
            .map(|p| (p.clone(), None))
            .collect();
        out.extend(
            self.files
                .iter()
                .filter(|(p, _)| direct(p))
                .map(|(p, f)| (p.clone(), Some(f))),
        );
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

fn parent(path: &str) -> Option<&str> {
    let i = path.rfind('/')?;
    (i > 0).then(|| &path[..i])
}

/// Checks an absolute path: no empty, `.` or `..` segments; returns it without a trailing slash.
fn clean(path: &str) -> ApiResult<String> {
    if !path.starts_with('/') {
        return Err(ApiError::invalid(format!("Path {path} must be absolute.")));
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed
        .split('/')
        .skip(1)
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(ApiError::invalid(format!(
            "Path {path} is not a valid path."
        )));
    }
    Ok(trimmed.to_owned())
}

fn files_not_found(message: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
}

/// HTTP date (RFC 9110 IMF-fixdate) of a Unix time in milliseconds.
pub fn http_date(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Unity Catalog volumes behind the Files API (`/Volumes/<catalog>/<schema>/<volume>/…`).
#[derive(Debug, Default)]
pub struct Volumes {
    /// `/Volumes/c/s/v`, lower-cased (Unity Catalog names are case-insensitive).
    declared: BTreeSet<String>,
    tree: Tree,
}

impl Volumes {
    pub fn new(names: &[String]) -> ApiResult<Volumes> {
        let mut v = Volumes::default();
        for name in names {
            v.declare(name)?;
        }
        Ok(v)
    }

    /// Declares `catalog.schema.volume` (or `/Volumes/catalog/schema/volume`).
    pub fn declare(&mut self, name: &str) -> ApiResult<String> {
        let parts: Vec<&str> = if let Some(p) = name.strip_prefix("/Volumes/") {
            p.trim_end_matches('/').split('/').collect()
        } else {
            name.split('.').collect()
        };
        if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(ApiError::invalid(format!(
                "'{name}' is not a volume name: expected catalog.schema.volume"
            )));
        }
        let root = format!("/Volumes/{}", parts.join("/"));
        self.declared.insert(root.to_lowercase());
        Ok(root)
    }

    /// The volume root of `path`, checked to be declared.
    fn volume_of(&self, path: &str) -> ApiResult<String> {
        let parts: Vec<&str> = path.split('/').collect();
        // ["", "Volumes", c, s, v, ...]
        if parts.get(1) != Some(&"Volumes") || parts.len() < 5 {
            return Err(ApiError::invalid(format!(
                "Invalid path {path}: the Files API accepts paths of the form /Volumes/<catalog>/<schema>/<volume>/<path>."
            )));
        }
        let root = parts[..5].join("/");
        if !self.declared.contains(&root.to_lowercase()) {
            return Err(files_not_found(format!(
                "Volume '{}.{}.{}' does not exist.",
                parts[2], parts[3], parts[4]
            )));
        }
        Ok(root)
    }

    pub fn put(&mut self, path: &str, data: Vec<u8>, overwrite: bool, now: u64) -> ApiResult<()> {
        let path = clean(path)?;
        let root = self.volume_of(&path)?;
        if path == root || self.tree.dirs.contains(&path) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "ALREADY_EXISTS",
                format!("The given path {path} points to an existing directory."),
            ));
        }
        if let Some(p) = self.file_on_the_way(&path) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "ALREADY_EXISTS",
                format!("The parent {p} of {path} is a file."),
            ));
        }
        if !overwrite && self.tree.files.contains_key(&path) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "ALREADY_EXISTS",
                format!("The file being created already exists: {path}."),
            ));
        }
        self.tree.add_parents(&path, &root);
        self.tree.files.insert(
            path,
            StoredFile {
                data,
                modified_ms: now,
            },
        );
        Ok(())
    }

    fn file_on_the_way(&self, path: &str) -> Option<String> {
        let mut dir = parent(path);
        while let Some(d) = dir {
            if self.tree.files.contains_key(d) {
                return Some(d.to_owned());
            }
            dir = parent(d);
        }
        None
    }

    pub fn get(&self, path: &str) -> ApiResult<&StoredFile> {
        let path = clean(path)?;
        self.volume_of(&path)?;
        self.tree
            .files
            .get(&path)
            .ok_or_else(|| files_not_found(format!("The file {path} does not exist.")))
    }

    pub fn delete(&mut self, path: &str) -> ApiResult<()> {
        let path = clean(path)?;
        self.volume_of(&path)?;
        self.tree
            .files
            .remove(&path)
            .map(|_| ())
            .ok_or_else(|| files_not_found(format!("The file {path} does not exist.")))
    }

    pub fn is_dir(&self, path: &str) -> ApiResult<bool> {
        let path = clean(path)?;
        let root = self.volume_of(&path)?;
        Ok(path == root || self.tree.dirs.contains(&path))
    }

    pub fn mkdirs(&mut self, path: &str) -> ApiResult<()> {
        let path = clean(path)?;
        let root = self.volume_of(&path)?;
        if self.tree.files.contains_key(&path) || self.file_on_the_way(&path).is_some() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "ALREADY_EXISTS",
                "The given path points to an existing file. This API does not support operations on files.",
            ));
        }
        if path != root {
            self.tree.dirs.insert(path.clone());
            self.tree.add_parents(&path, &root);
        }
        Ok(())
    }

    pub fn list(&self, path: &str) -> ApiResult<Value> {
        if !self.is_dir(path)? {
            return Err(files_not_found(format!(
                "The directory {path} does not exist."
            )));
        }
        let path = clean(path)?;
        let contents: Vec<Value> = self
            .tree
            .children(&path)
            .into_iter()
            .map(|(p, f)| {
                let name = p.rsplit('/').next().unwrap_or_default().to_owned();
                match f {
                    None => json!({"path": format!("{p}/"), "is_directory": true, "name": name}),
                    Some(f) => json!({
                        "path": p, "is_directory": false, "name": name,
                        "file_size": f.data.len(), "last_modified": f.modified_ms,
                    }),
                }
            })
            .collect();
        Ok(json!({ "contents": contents }))
    }

    pub fn exists(&self, path: &str) -> bool {
        self.get(path).is_ok()
    }

    pub fn dump(&self) -> Value {
        json!({
            "volumes": self.declared,
            "files": self.tree.files.iter().map(|(p, f)| (p.clone(), json!(f.data.len()))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

/// A DBFS path without its `dbfs:` scheme.
pub fn dbfs_path(path: &str) -> ApiResult<String> {
    let p = path.strip_prefix("dbfs:").unwrap_or(path);
    if p.is_empty() {
        return Err(ApiError::invalid("Path cannot be empty."));
    }
    clean(p)
}

fn dbfs_not_found(path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        format!("No file or directory exists on path dbfs:{path}."),
    )
}

#[derive(Debug)]
struct Handle {
    path: String,
    data: Vec<u8>,
    last_used: Instant,
}

/// DBFS: the legacy file system API with its block limit and stream handles.
#[derive(Debug, Default)]
pub struct Dbfs {
    tree: Tree,
    handles: HashMap<u64, Handle>,
    next_handle: u64,
}

impl Dbfs {
    fn check_writable(&self, path: &str, overwrite: bool) -> ApiResult<()> {
        if path == "/"
            || self.tree.dirs.contains(path)
            || (!overwrite && self.tree.files.contains_key(path))
        {
            return Err(ApiError::already_exists(format!(
                "A file or directory already exists at the input path dbfs:{path}."
            )));
        }
        let mut dir = parent(path);
        while let Some(d) = dir {
            if self.tree.files.contains_key(d) {
                return Err(ApiError::already_exists(format!(
                    "Cannot create dbfs:{path}: dbfs:{d} is a file."
                )));
            }
            dir = parent(d);
        }
        Ok(())
    }

    fn store(&mut self, path: String, data: Vec<u8>, now: u64) {
        self.tree.add_parents(&path, "");
        self.tree.files.insert(
            path,
            StoredFile {
                data,
                modified_ms: now,
            },
        );
    }

    pub fn put(&mut self, path: &str, data: Vec<u8>, overwrite: bool, now: u64) -> ApiResult<()> {
        let path = dbfs_path(path)?;
        if data.len() > DBFS_MAX_BLOCK_BYTES {
            return Err(max_block(data.len()));
        }
        self.check_writable(&path, overwrite)?;
        self.store(path, data, now);
        Ok(())
    }

    pub fn create(&mut self, path: &str, overwrite: bool) -> ApiResult<u64> {
        let path = dbfs_path(path)?;
        self.expire();
        self.check_writable(&path, overwrite)?;
        self.next_handle += 1;
        self.handles.insert(
            self.next_handle,
            Handle {
                path,
                data: Vec::new(),
                last_used: Instant::now(),
            },
        );
        Ok(self.next_handle)
    }

    fn expire(&mut self) {
        self.handles
            .retain(|_, h| h.last_used.elapsed() < DBFS_HANDLE_IDLE);
    }

    fn handle(&mut self, handle: u64) -> ApiResult<&mut Handle> {
        self.expire();
        self.handles.get_mut(&handle).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "RESOURCE_DOES_NOT_EXIST",
                format!("The handle {handle} does not exist (closed, or idle for more than 10 minutes)."),
            )
        })
    }

    pub fn add_block(&mut self, handle: u64, data: &[u8]) -> ApiResult<()> {
        if data.len() > DBFS_MAX_BLOCK_BYTES {
            return Err(max_block(data.len()));
        }
        let h = self.handle(handle)?;
        h.data.extend_from_slice(data);
        h.last_used = Instant::now();
        Ok(())
    }

    pub fn close(&mut self, handle: u64, now: u64) -> ApiResult<()> {
        self.handle(handle)?;
        let h = self.handles.remove(&handle).expect("checked above");
        self.store(h.path, h.data, now);
        Ok(())
    }

    pub fn get_status(&self, path: &str) -> ApiResult<Value> {
        let path = dbfs_path(path)?;
        if path == "/" || self.tree.dirs.contains(&path) {
            return Ok(
                json!({"path": path, "is_dir": true, "file_size": 0, "modification_time": 0}),
            );
        }
        let f = self
            .tree
            .files
            .get(&path)
            .ok_or_else(|| dbfs_not_found(&path))?;
        Ok(
            json!({"path": path, "is_dir": false, "file_size": f.data.len(), "modification_time": f.modified_ms}),
        )
    }

    pub fn mkdirs(&mut self, path: &str) -> ApiResult<()> {
        let path = dbfs_path(path)?;
        if self.tree.files.contains_key(&path) {
            return Err(ApiError::already_exists(format!(
                "A file or directory already exists at the input path dbfs:{path}."
            )));
        }
        if path != "/" {
            self.tree.dirs.insert(path.clone());
            self.tree.add_parents(&path, "");
        }
        Ok(())
    }

    pub fn list(&self, path: &str) -> ApiResult<Value> {
        let path = dbfs_path(path)?;
        if self.tree.files.contains_key(&path) {
            return Ok(json!({"files": [self.get_status(&path)?]}));
        }
        if path != "/" && !self.tree.dirs.contains(&path) {
            return Err(dbfs_not_found(&path));
        }
        let files: Vec<Value> = self
            .tree
            .children(if path == "/" { "" } else { &path })
            .into_iter()
            .map(|(p, f)| match f {
                None => json!({"path": p, "is_dir": true, "file_size": 0, "modification_time": 0}),
                Some(f) => json!({"path": p, "is_dir": false, "file_size": f.data.len(), "modification_time": f.modified_ms}),
            })
            .collect();
        Ok(if files.is_empty() {
            json!({})
        } else {
            json!({ "files": files })
        })
    }

    pub fn read(&self, path: &str, offset: usize, length: usize) -> ApiResult<&[u8]> {
        let path = dbfs_path(path)?;
        if length > DBFS_MAX_BLOCK_BYTES {
            return Err(max_block(length));
        }
        let f = self
            .tree
            .files
            .get(&path)
            .ok_or_else(|| dbfs_not_found(&path))?;
        let start = offset.min(f.data.len());
        let end = (start + length).min(f.data.len());
        Ok(&f.data[start..end])
    }

    pub fn delete(&mut self, path: &str, recursive: bool) -> ApiResult<()> {
        let path = dbfs_path(path)?;
        if self.tree.files.remove(&path).is_some() {
            return Ok(());
        }
        if !self.tree.dirs.contains(&path) {
            // Deleting what is not there succeeds on DBFS.
            return Ok(());
        }
        let prefix = format!("{path}/");
        let has_children = self.tree.files.keys().any(|p| p.starts_with(&prefix))
            || self.tree.dirs.iter().any(|p| p.starts_with(&prefix));
        if has_children && !recursive {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "IO_ERROR",
                format!("Directory dbfs:{path} is not empty: delete it with recursive=true."),
            ));
        }
        self.tree.files.retain(|p, _| !p.starts_with(&prefix));
        self.tree
            .dirs
            .retain(|p| !p.starts_with(&prefix) && *p != path);
        Ok(())
    }

    /// `dbfs/move`: renames a file, or a directory with everything under it. The destination
    /// must not exist; its parent folders are created.
    pub fn rename(&mut self, source: &str, destination: &str) -> ApiResult<()> {
        let (source, destination) = (dbfs_path(source)?, dbfs_path(destination)?);
        let is_dir = source != "/" && self.tree.dirs.contains(&source);
        if !is_dir && !self.tree.files.contains_key(&source) {
            return Err(dbfs_not_found(&source));
        }
        if destination == "/"
            || self.tree.dirs.contains(&destination)
            || self.tree.files.contains_key(&destination)
        {
            return Err(ApiError::already_exists(format!(
                "A file or directory already exists at the destination path dbfs:{destination}."
            )));
        }
        if destination.starts_with(&format!("{source}/")) {
            return Err(ApiError::invalid(format!(
                "Cannot move dbfs:{source} into itself (dbfs:{destination})."
            )));
        }
        self.check_writable(&destination, false)?;
        if let Some(file) = self.tree.files.remove(&source) {
            self.tree.add_parents(&destination, "");
            self.tree.files.insert(destination, file);
            return Ok(());
        }
        let prefix = format!("{source}/");
        let moved = |p: &str| format!("{destination}/{}", &p[prefix.len()..]);
        let files: Vec<String> = self
            .tree
            .files
            .keys()
            .filter(|p| p.starts_with(&prefix))
            .cloned()
            .collect();
        for p in files {
            let file = self.tree.files.remove(&p).expect("listed above");
            self.tree.files.insert(moved(&p), file);
        }
        let dirs: Vec<String> = self
            .tree
            .dirs
            .iter()
            .filter(|p| p.starts_with(&prefix))
            .cloned()
            .collect();
        for p in dirs {
            self.tree.dirs.remove(&p);
            self.tree.dirs.insert(moved(&p));
        }
        self.tree.dirs.remove(&source);
        self.tree.dirs.insert(destination.clone());
        self.tree.add_parents(&destination, "");
        Ok(())
    }

    pub fn exists(&self, path: &str) -> bool {
        self.file(path).is_some()
    }

    pub fn file(&self, path: &str) -> Option<&StoredFile> {
        self.tree.files.get(&dbfs_path(path).ok()?)
    }

    pub fn dump(&self) -> Value {
        json!({
            "files": self.tree.files.iter().map(|(p, f)| (p.clone(), json!(f.data.len()))).collect::<serde_json::Map<_, _>>(),
            "open_handles": self.handles.len(),
        })
    }
}

fn max_block(len: usize) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "MAX_BLOCK_SIZE_EXCEEDED",
        format!("The block of {len} bytes is over the limit of {DBFS_MAX_BLOCK_BYTES} bytes: use the streaming calls (create, add-block, close) for larger files."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(1_445_412_480_000),
            "Wed, 21 Oct 2015 07:28:00 GMT"
        );
        assert_eq!(http_date(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn volumes_must_be_declared_and_overwrite_is_explicit() {
        let mut v = Volumes::new(&["main.raw.landing".into()]).unwrap();
        let e = v
            .put("/Volumes/main/raw/other/a.txt", b"x".to_vec(), false, 1)
            .unwrap_err();
        assert_eq!(
            (e.status, e.error_code),
            (StatusCode::NOT_FOUND, "NOT_FOUND")
        );
        assert!(e.message.contains("main.raw.other"), "{}", e.message);
        v.put("/Volumes/main/raw/landing/d/a.txt", b"x".to_vec(), false, 1)
            .unwrap();
        assert!(v.is_dir("/Volumes/main/raw/landing/d").unwrap());
        let e = v
            .put("/Volumes/main/raw/landing/d/a.txt", b"y".to_vec(), false, 2)
            .unwrap_err();
        assert_eq!(e.status, StatusCode::CONFLICT);
        v.put("/Volumes/main/raw/landing/d/a.txt", b"y".to_vec(), true, 2)
            .unwrap();
        assert_eq!(
            v.get("/Volumes/main/raw/landing/d/a.txt").unwrap().data,
            b"y"
        );
        let listed = v.list("/Volumes/main/raw/landing").unwrap();
        assert_eq!(listed["contents"][0]["is_directory"], true);
    }

    #[test]
    fn dbfs_limits_and_streams() {
        let mut d = Dbfs::default();
        let big = vec![0u8; DBFS_MAX_BLOCK_BYTES + 1];
        let e = d
            .put("dbfs:/FileStore/big.bin", big.clone(), true, 1)
            .unwrap_err();
        assert_eq!(e.error_code, "MAX_BLOCK_SIZE_EXCEEDED");
        let h = d.create("dbfs:/FileStore/big.bin", false).unwrap();
        d.add_block(h, &big[..DBFS_MAX_BLOCK_BYTES]).unwrap();
        d.add_block(h, &big[DBFS_MAX_BLOCK_BYTES..]).unwrap();
        assert!(!d.exists("/FileStore/big.bin"));
        d.close(h, 5).unwrap();
        assert_eq!(
            d.get_status("/FileStore/big.bin").unwrap()["file_size"],
            DBFS_MAX_BLOCK_BYTES + 1
        );
        assert_eq!(
            d.close(h, 6).unwrap_err().error_code,
            "RESOURCE_DOES_NOT_EXIST"
        );
        let e = d.create("/FileStore/big.bin", false).unwrap_err();
        assert_eq!(e.error_code, "RESOURCE_ALREADY_EXISTS");
        assert_eq!(
            d.get_status("/nope").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(d.get_status("/FileStore").unwrap()["is_dir"], true);
    }

    #[test]
    fn dbfs_move_renames_files_and_folders_but_never_over_something() {
        let mut d = Dbfs::default();
        d.put("/a/x.txt", b"x".to_vec(), false, 1).unwrap();
        d.put("/a/sub/y.txt", b"y".to_vec(), false, 1).unwrap();
        d.put("/b.txt", b"b".to_vec(), false, 1).unwrap();
        let code = |e: ApiError| e.error_code;
        assert_eq!(
            code(d.rename("/b.txt", "/a/x.txt").unwrap_err()),
            "RESOURCE_ALREADY_EXISTS"
        );
        assert_eq!(
            code(d.rename("/none", "/c").unwrap_err()),
            "RESOURCE_DOES_NOT_EXIST"
        );
        assert_eq!(
            code(d.rename("/a", "/a/inside").unwrap_err()),
            "INVALID_PARAMETER_VALUE"
        );
        d.rename("/b.txt", "/new/b.txt").unwrap();
        assert!(d.exists("/new/b.txt") && !d.exists("/b.txt"));
        d.rename("/a", "/z").unwrap();
        assert_eq!(d.file("/z/sub/y.txt").unwrap().data, b"y");
        assert_eq!(
            code(d.get_status("/a").unwrap_err()),
            "RESOURCE_DOES_NOT_EXIST"
        );
        assert_eq!(d.get_status("/z/sub").unwrap()["is_dir"], true);
    }
}
