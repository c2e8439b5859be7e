//! `download`: every blob under a prefix into a folder (incremental: a file whose size and MD5
//! match the blob's Content-MD5 is left alone), or one blob into a file. Each blob is written
//! to a temporary file beside its target and renamed when complete and checked, so a failed
//! download never leaves a half-written file under the real name.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::StreamExt as _;
use task_sdk::{out, TaskError};

use crate::files;
use crate::store::{describe, Remote, Store};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub downloaded: usize,
    pub unchanged: usize,
    pub bytes: u64,
}

/// The local path of `name` under `destination`, refusing names that would climb out of it.
pub fn local_path(destination: &Path, prefix: &str, name: &str) -> Result<PathBuf, String> {
    let relative = name
        .strip_prefix(prefix)
        .unwrap_or(name)
        .trim_start_matches('/');
    let mut path = destination.to_owned();
    for part in relative.split('/').filter(|p| !p.is_empty()) {
        // One plain component on this platform: on Windows, `C:x` or `a:b` would name another
        // drive or a stream, which `push` would follow out of the destination.
        let plain = matches!(
            Path::new(part).components().collect::<Vec<_>>().as_slice(),
            [std::path::Component::Normal(_)]
        );
        if !plain || part == ".." || part == "." || part.contains('\\') {
            return Err(format!(
                "blob '{name}' has a name that cannot be a local path"
            ));
        }
        path.push(part);
    }
    Ok(path)
}

/// Downloads blobs under `prefix` into `destination`.
pub async fn prefix(
    store: &Store,
    prefix: &str,
    destination: &Path,
    incremental: bool,
    concurrency: usize,
) -> Result<Summary, TaskError> {
    let started = Instant::now();
    let blobs = store.list(prefix).await?;
    if blobs.is_empty() {
        if !store.exists().await? {
            return Err(TaskError::new(format!(
                "container '{}' does not exist: check the 'container' input",
                store.name
            )));
        }
        out::warning(&format!(
            "no blobs under '{prefix}' in container '{}': nothing to download",
            store.name
        ));
    }
    out::group(&format!(
        "Downloading {} blob(s) from {}",
        blobs.len(),
        store.blob_url(prefix)
    ));
    let results: Vec<(Remote, Result<bool, String>)> = futures::stream::iter(blobs)
        .map(|blob| async move {
            let result = match local_path(destination, prefix, &blob.name) {
                Ok(path) => one(store, &blob, &path, incremental).await,
                Err(e) => Err(e),
            };
            match &result {
                Ok(true) => out::info(&format!("downloaded {} ({} bytes)", blob.name, blob.size)),
                Ok(false) => out::info(&format!("unchanged  {}", blob.name)),
                Err(e) => out::info(&format!("FAILED     {}: {e}", blob.name)),
            }
            (blob, result)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    out::end_group();
    let mut summary = Summary::default();
    let mut failures = Vec::new();
    for (blob, result) in results {
        match result {
            Ok(true) => {
                summary.downloaded += 1;
                summary.bytes += blob.size;
            }
            Ok(false) => summary.unchanged += 1,
            Err(e) => failures.push(format!("{}: {e}", blob.name)),
        }
    }
    out::info(&format!(
        "Downloaded {} blob(s), {} bytes; {} unchanged; {} failed; {:.1} s",
        summary.downloaded,
        summary.bytes,
        summary.unchanged,
        failures.len(),
        started.elapsed().as_secs_f64()
    ));
    if !failures.is_empty() {
        failures.sort();
        return Err(TaskError::new(format!(
            "{} blob(s) were not downloaded: {}",
            failures.len(),
            failures.join("; ")
        )));
    }
    Ok(summary)
}

/// Downloads one blob to `file`.
pub async fn blob(store: &Store, name: &str, file: &Path) -> Result<u64, TaskError> {
    let target = if file.is_dir() {
        file.join(name.rsplit('/').next().unwrap_or(name))
    } else {
        file.to_owned()
    };
    let remote = Remote {
        name: name.to_owned(),
        size: 0,
        md5: None,
        metadata: Default::default(),
    };
    let size = fetch(store, &remote, &target)
        .await
        .map_err(TaskError::new)?;
    out::info(&format!(
        "Downloaded {} ({size} bytes) to {}",
        store.blob_url(name),
        target.display()
    ));
    Ok(size)
}

async fn one(store: &Store, blob: &Remote, path: &Path, incremental: bool) -> Result<bool, String> {
    if incremental {
        if let (Some(md5), Ok(meta)) = (&blob.md5, std::fs::metadata(path)) {
            let local = crate::upload::blocking(path.to_owned(), |p| files::md5_of(&p)).await;
            if meta.len() == blob.size && local.ok().as_ref() == Some(md5) {
                return Ok(false);
            }
        }
    }
    fetch(store, blob, path).await?;
    Ok(true)
}

/// Streams the blob into a temporary file, checks its MD5 when the blob has one, renames.
async fn fetch(store: &Store, blob: &Remote, path: &Path) -> Result<u64, String> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create '{}': {e}", parent.display()))?;
    let response = store
        .blob(&blob.name)
        .download(None)
        .await
        .map_err(|e| describe(&e, &format!("download blob '{}'", blob.name), &store.name))?;
    let expected = response
        .properties
        .content_md5
        .clone()
        .or_else(|| blob.md5.clone());
    let mut temp = PartFile::create_in(parent)?;
    let mut hasher = <md5::Md5 as md5::Digest>::new();
    let mut size = 0u64;
    let mut body = response.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk
            .map_err(|e| describe(&e, &format!("download blob '{}'", blob.name), &store.name))?;
        md5::Digest::update(&mut hasher, &chunk);
        size += chunk.len() as u64;
        temp.write_all(&chunk)?;
    }
    temp.flush()?;
    if let Some(expected) = expected.filter(|m| !m.is_empty()) {
        if md5::Digest::finalize(hasher).to_vec() != expected {
            return Err(format!(
                "blob '{}' arrived corrupted (its MD5 does not match its Content-MD5)",
                blob.name
            ));
        }
    }
    temp.persist(path)?;
    Ok(size)
}

/// A download's temporary `.part` file beside its target, removed unless it is renamed into
/// place: a failed or interrupted download leaves neither a partial file nor a stray `.part`.
struct PartFile {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl PartFile {
    fn create_in(dir: &Path) -> Result<PartFile, String> {
        for _ in 0..8 {
            let path = dir.join(format!(".azureblob-{:016x}.part", fastrand::u64(..)));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(PartFile {
                        path,
                        file: Some(file),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("cannot write in '{}': {e}", dir.display())),
            }
        }
        Err(format!(
            "cannot create a temporary file in '{}'",
            dir.display()
        ))
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), String> {
        let file = self.file.as_mut().expect("open until persisted");
        file.write_all(bytes)
            .map_err(|e| format!("cannot write '{}': {e}", self.path.display()))
    }

    fn flush(&mut self) -> Result<(), String> {
        let file = self.file.as_mut().expect("open until persisted");
        file.flush()
            .map_err(|e| format!("cannot write '{}': {e}", self.path.display()))
    }

    /// Closes the file and renames it to `target`.
    fn persist(mut self, target: &Path) -> Result<(), String> {
        drop(self.file.take());
        std::fs::rename(&self.path, target)
            .map_err(|e| format!("cannot write '{}': {e}", target.display()))?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_stay_inside_the_destination() {
        let d = Path::new("/d");
        assert_eq!(
            local_path(d, "out/", "out/a/b.csv").unwrap(),
            Path::new("/d/a/b.csv")
        );
        assert!(local_path(d, "", "../etc/passwd").is_err());
        assert!(local_path(d, "", "a/./b").is_err());
        // A drive or stream name is a path of its own on Windows, a plain name elsewhere.
        assert_eq!(local_path(d, "", "a/C:x").is_err(), cfg!(windows));
    }

    #[test]
    fn a_part_file_is_removed_unless_persisted() {
        let dir = std::env::temp_dir().join(format!("azureblob-part-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let entries = || std::fs::read_dir(&dir).unwrap().count();
        let mut abandoned = PartFile::create_in(&dir).unwrap();
        abandoned.write_all(b"half").unwrap();
        assert_eq!(entries(), 1);
        drop(abandoned);
        assert_eq!(entries(), 0, "a failed download leaves no .part file");
        let mut done = PartFile::create_in(&dir).unwrap();
        done.write_all(b"whole").unwrap();
        done.persist(&dir.join("file.csv")).unwrap();
        assert_eq!(std::fs::read(dir.join("file.csv")).unwrap(), b"whole");
        assert_eq!(entries(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
