//! `upload`: a file or folder to `container/prefix`, incremental (a blob whose size and
//! Content-MD5 match the file is skipped), a bounded number of files at a time, files larger
//! than [`BLOCK_SIZE`] as staged blocks (so memory stays at `concurrency` blocks), content
//! type by extension, metadata, and `overwrite: false` (an existing blob is kept and the
//! write is conditional, so a blob that appears meanwhile is not replaced either).

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
use crate::store::{describe, error_code, Store};

/// Files up to this size go in one request; larger ones in blocks of this size.
pub const BLOCK_SIZE: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Options {
    pub overwrite: bool,
    pub incremental: bool,
    pub metadata: Vec<(String, String)>,
    pub concurrency: usize,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Uploaded,
    Unchanged,
    /// `overwrite: false` and the blob exists.
    Kept,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub uploaded: usize,
    pub unchanged: usize,
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
    let remote: HashMap<String, (u64, Option<Vec<u8>>)> =
        if options.incremental || !options.overwrite {
            store
                .list(prefix)
                .await?
                .into_iter()
                .map(|r| (r.name, (r.size, r.md5)))
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
            let existing = remote.get(&file.name).cloned();
            async move {
                let result = one(store, &file, existing, options).await;
                match &result {
                    Ok(Fate::Uploaded) => {
                        out::info(&format!("uploaded  {} ({} bytes)", file.name, file.size))
                    }
                    Ok(Fate::Unchanged) => out::info(&format!("unchanged {}", file.name)),
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
            Ok(Fate::Unchanged) => summary.unchanged += 1,
            Ok(Fate::Kept) => summary.kept += 1,
            Err(e) => failures.push(format!("{}: {e}", file.path.display())),
        }
    }
    out::info(&format!(
        "Uploaded {} file(s), {} bytes; {} unchanged; {} kept; {} failed; {:.1} s",
        summary.uploaded,
        summary.bytes,
        summary.unchanged,
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

async fn one(
    store: &Store,
    file: &Local,
    existing: Option<(u64, Option<Vec<u8>>)>,
    options: &Options,
) -> Result<Fate, String> {
    if let Some((size, md5)) = &existing {
        if !options.overwrite {
            return Ok(Fate::Kept);
        }
        if options.incremental && *size == file.size {
            if let Some(md5) = md5 {
                let local = blocking(file.path.clone(), |p| files::md5_of(&p)).await?;
                if &local == md5 {
                    return Ok(Fate::Unchanged);
                }
            }
        }
    }
    let blob = store.blob(&file.name).block_blob_client();
    let content_type = files::content_type(&file.name).to_owned();
    let metadata: Option<HashMap<String, String>> =
        (!options.metadata.is_empty()).then(|| options.metadata.iter().cloned().collect());
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
