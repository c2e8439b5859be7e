//! `upload`: a file or folder to `container/prefix`, incremental, a bounded number of files at
//! a time, files larger than [`BLOCK_SIZE`] as staged blocks (so memory stays at
//! `concurrency` blocks), content type by extension, metadata, and `overwrite: false` (an
//! existing blob is kept and the write is conditional, so a blob that appears meanwhile is not
//! replaced either).
//!
//! Incremental, as rsync, azcopy sync and `az storage blob sync` decide: every blob records its
//! source file's size and modification time in metadata ([`SOURCE_SIZE`], [`SOURCE_MTIME`]);
//! a file whose size and time equal the blob's record is skipped without being read. Any other
//! file of the blob's size is hashed and skipped when its MD5 equals the blob's Content-MD5 (a
//! fresh checkout gives every file a new time, not new content). `checksum: true` always
//! hashes. The blind spot of the quick check: an edit that keeps both the size and the
//! modification time (a tool that sets the time back).

use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;
use std::time::Instant;

use azure_core::http::{RequestContent, StatusCode};
use azure_storage_blob::models::{
    BlockBlobClientCommitBlockListOptions, BlockBlobClientUploadOptions, BlockLookupList,
};
use futures::StreamExt as _;
use md5::{Digest, Md5};
use task_sdk::{out, TaskError};

use crate::files::{self, Local};
use crate::store::{describe, error_code, Remote, Store};

/// Files up to this size go in one request; larger ones in blocks of this size.
pub const BLOCK_SIZE: usize = 8 * 1024 * 1024;

/// Blob metadata: the size in bytes of the file the blob was uploaded from.
pub const SOURCE_SIZE: &str = "azdo_src_size";
/// Blob metadata: that file's modification time, in nanoseconds since the Unix epoch.
pub const SOURCE_MTIME: &str = "azdo_src_mtime";

#[derive(Debug, Clone)]
pub struct Options {
    pub overwrite: bool,
    pub incremental: bool,
    /// Always compare MD5 (never skip by size and modification time alone), like rsync -c.
    pub checksum: bool,
    pub metadata: Vec<(String, String)>,
    pub concurrency: usize,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Uploaded,
    /// Skipped: the blob records the file's size and modification time.
    SameSizeAndTime,
    /// Skipped: the file was read and its MD5 equals the blob's Content-MD5.
    SameMd5,
    /// `overwrite: false` and the blob exists.
    Kept,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub uploaded: usize,
    /// Skipped, all told; `hashed` of them after reading the file.
    pub unchanged: usize,
    pub hashed: usize,
    pub kept: usize,
    pub bytes: u64,
}

/// Uploads `files`. Every file is tried; the error lists the ones that failed.
pub async fn upload(
    store: &Store,
    files: Vec<Local>,
    prefix: &str,
    options: &Options,
) -> Result<Summary, TaskError> {
    let started = Instant::now();
    // One listing (with metadata) for the whole prefix: no request per file to decide.
    let remote: HashMap<String, Remote> = if options.incremental || !options.overwrite {
        store
            .list(prefix)
            .await?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect()
    } else {
        HashMap::new()
    };
    out::group(&format!(
        "Uploading {} file(s) to {}",
        files.len(),
        store.blob_url(prefix)
    ));
    let results: Vec<(Local, Result<Fate, String>)> = futures::stream::iter(files)
        .map(|file| {
            let existing = remote.get(&file.name);
            async move {
                let result = one(store, &file, existing, options).await;
                match &result {
                    Ok(Fate::Uploaded) => {
                        out::info(&format!("uploaded  {} ({} bytes)", file.name, file.size))
                    }
                    Ok(Fate::SameSizeAndTime) => out::info(&format!("unchanged {}", file.name)),
                    Ok(Fate::SameMd5) => out::info(&format!("unchanged {} (same MD5)", file.name)),
                    Ok(Fate::Kept) => out::info(&format!(
                        "kept      {} (exists; overwrite is false)",
                        file.name
                    )),
                    Err(e) => out::info(&format!("FAILED    {}: {e}", file.name)),
                }
                (file, result)
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    out::end_group();
    let mut summary = Summary::default();
    let mut failures = Vec::new();
    for (file, result) in results {
        match result {
            Ok(Fate::Uploaded) => {
                summary.uploaded += 1;
                summary.bytes += file.size;
            }
            Ok(Fate::SameSizeAndTime) => summary.unchanged += 1,
            Ok(Fate::SameMd5) => {
                summary.unchanged += 1;
                summary.hashed += 1;
            }
            Ok(Fate::Kept) => summary.kept += 1,
            Err(e) => failures.push(format!("{}: {e}", file.path.display())),
        }
    }
    out::info(&format!(
        "Uploaded {} file(s), {} bytes; {} unchanged ({} by size and time, {} by MD5); {} kept; {} failed; {:.1} s",
        summary.uploaded,
        summary.bytes,
        summary.unchanged,
        summary.unchanged - summary.hashed,
        summary.hashed,
        summary.kept,
        failures.len(),
        started.elapsed().as_secs_f64()
    ));
    if !failures.is_empty() {
        failures.sort();
        return Err(TaskError::new(format!(
            "{} file(s) were not uploaded: {}",
            failures.len(),
            failures.join("; ")
        )));
    }
    Ok(summary)
}

/// Runs file reading and hashing off the runtime's thread (tasks run a current-thread
/// runtime): several files hash at once on the blocking pool while requests are in flight.
pub(crate) async fn blocking<T: Send + 'static>(
    path: std::path::PathBuf,
    work: impl FnOnce(std::path::PathBuf) -> std::io::Result<T> + Send + 'static,
) -> Result<T, String> {
    let shown = path.clone();
    match tokio::task::spawn_blocking(move || work(path)).await {
        Ok(result) => result.map_err(|e| read_error(&shown, e)),
        Err(e) => Err(format!("cannot read '{}': {e}", shown.display())),
    }
}

fn read_error(path: &Path, e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!(
            "'{}' vanished during the upload (deleted or moved while the task ran)",
            path.display()
        )
    } else {
        format!("cannot read '{}': {e}", path.display())
    }
}

/// Whether the blob records this very file: its size and modification time as scanned.
fn same_size_and_time(blob: &Remote, file: &Local) -> bool {
    let Some(modified) = file.modified_ns else {
        return false;
    };
    blob.size == file.size
        && blob.metadata.get(SOURCE_SIZE) == Some(&file.size.to_string())
        && blob.metadata.get(SOURCE_MTIME) == Some(&modified.to_string())
}

/// The blob's metadata: the user's, and the source file's size and time for the quick check.
fn metadata_for(file: &Local, options: &Options) -> HashMap<String, String> {
    let mut metadata: HashMap<String, String> = options.metadata.iter().cloned().collect();
    if let Some(modified) = file.modified_ns {
        metadata.insert(SOURCE_SIZE.to_owned(), file.size.to_string());
        metadata.insert(SOURCE_MTIME.to_owned(), modified.to_string());
    }
    metadata
}

async fn one(
    store: &Store,
    file: &Local,
    existing: Option<&Remote>,
    options: &Options,
) -> Result<Fate, String> {
    if let Some(blob) = existing {
        if !options.overwrite {
            return Ok(Fate::Kept);
        }
        if options.incremental && blob.size == file.size {
            if !options.checksum && same_size_and_time(blob, file) {
                return Ok(Fate::SameSizeAndTime);
            }
            if let Some(md5) = &blob.md5 {
                let local = blocking(file.path.clone(), |p| files::md5_of(&p)).await?;
                if &local == md5 {
                    return Ok(Fate::SameMd5);
                }
            }
        }
    }
    let blob = store.blob(&file.name).block_blob_client();
    let content_type = files::content_type(&file.name).to_owned();
    let metadata = Some(metadata_for(file, options)).filter(|m| !m.is_empty());
    let if_none_match = (!options.overwrite).then(|| "*".to_owned().into());
    let fail = |e: azure_core::Error| -> String {
        if !options.overwrite
            && (e.http_status() == Some(StatusCode::Conflict)
                || error_code(&e).as_deref() == Some("BlobAlreadyExists"))
        {
            return "the blob appeared while uploading and overwrite is false".into();
        }
        describe(&e, "upload", &store.name)
    };
    if file.size as usize <= BLOCK_SIZE {
        let (bytes, md5) = blocking(file.path.clone(), |p| {
            let bytes = std::fs::read(&p)?;
            let md5 = files::md5_bytes(&bytes);
            Ok((bytes, md5))
        })
        .await?;
        let upload = BlockBlobClientUploadOptions {
            blob_content_md5: Some(md5),
            blob_content_type: Some(content_type),
            metadata,
            if_none_match,
            parallel: std::num::NonZero::new(1),
            partition_size: std::num::NonZero::new(BLOCK_SIZE.max(bytes.len()) as u64),
            ..Default::default()
        };
        blob.upload(RequestContent::from(bytes), Some(upload))
            .await
            .map_err(fail)?;
        return Ok(Fate::Uploaded);
    }
    // Blocks, read one at a time; the whole file's MD5 goes with the block list.
    let reader = std::fs::File::open(&file.path).map_err(|e| read_error(&file.path, e))?;
    let mut state = Some((reader, Md5::new()));
    let mut ids = Vec::new();
    let mut index = 0u32;
    loop {
        let (mut reader, mut hasher) = state.take().expect("put back after each block");
        let (reader, hasher, chunk) = blocking(file.path.clone(), move |_| {
            let mut chunk = Vec::with_capacity(BLOCK_SIZE);
            (&mut reader)
                .take(BLOCK_SIZE as u64)
                .read_to_end(&mut chunk)?;
            hasher.update(&chunk);
            Ok((reader, hasher, chunk))
        })
        .await?;
        state = Some((reader, hasher));
        if chunk.is_empty() {
            break;
        }
        // Fixed-length ids, as the service requires within one blob.
        let id = format!("block-{index:08}").into_bytes();
        let len = chunk.len() as u64;
        blob.stage_block(&id, len, RequestContent::from(chunk), None)
            .await
            .map_err(fail)?;
        ids.push(id);
        index += 1;
    }
    let list = BlockLookupList {
        latest: Some(ids),
        ..Default::default()
    };
    let (_, hasher) = state.expect("put back after the last block");
    let commit = BlockBlobClientCommitBlockListOptions {
        blob_content_md5: Some(hasher.finalize().to_vec()),
        blob_content_type: Some(content_type),
        metadata,
        if_none_match,
        ..Default::default()
    };
    let list =
        RequestContent::try_from(list).map_err(|e| format!("cannot write the block list: {e}"))?;
    blob.commit_block_list(list, Some(commit))
        .await
        .map_err(fail)?;
    Ok(Fate::Uploaded)
}
