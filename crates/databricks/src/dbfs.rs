//! DBFS API 2.0: upload (a single `put` up to 1 MB, else a stream of `create`, `add-block`
//! of 1 MB, `close`), status, mkdirs, delete.

use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use crate::client::Call;
use crate::volumes::RemoteFile;
use crate::{Error, Workspace};

/// The most content one `put` (decoded) or one `add-block` may carry.
pub const DBFS_MAX_BLOCK_BYTES: usize = 1024 * 1024;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The API path of a `dbfs:/…` or `/…` path.
pub fn dbfs_api_path(path: &str) -> &str {
    path.strip_prefix("dbfs:").unwrap_or(path)
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    is_dir: bool,
    #[serde(default)]
    file_size: u64,
    #[serde(default)]
    modification_time: u64,
}

#[derive(Deserialize)]
struct Handle {
    handle: u64,
}

impl Workspace {
    /// Uploads `content` to DBFS: one `put` up to [`DBFS_MAX_BLOCK_BYTES`], else a stream of
    /// 1 MB blocks. Without `overwrite` an existing file is [`Error::AlreadyExists`]. A stream
    /// that fails half-way leaves no truncated file and, when overwriting, the old file as it
    /// was: the new content is streamed next to it and renamed into place once complete.
    /// Returns the number of requests made.
    pub async fn upload_dbfs_file(
        &self,
        path: &str,
        content: &[u8],
        overwrite: bool,
    ) -> Result<u32, Error> {
        let api_path = dbfs_api_path(path);
        if content.len() <= DBFS_MAX_BLOCK_BYTES {
            let body = json!({ "path": api_path, "contents": B64.encode(content), "overwrite": overwrite });
            let subject = format!("dbfs:{api_path}");
            let call = Call::post("/api/2.0/dbfs/put", body).about(&subject);
            let call = if overwrite { call.replay_safe() } else { call };
            self.send::<serde_json::Value>(call).await?;
            return Ok(1);
        }
        if !overwrite {
            return self.stream_dbfs_file(api_path, content).await;
        }
        let staging = format!("{api_path}.uploading-{}", unique_suffix());
        let streamed = self.stream_dbfs_file(&staging, content).await?;
        Ok(streamed + self.replace_dbfs_file(&staging, api_path).await?)
    }

    /// `create`, `add-block`s, `close` to a path that must not exist yet; on failure the
    /// partial file (ours: `create` claimed a free path) is deleted, best effort.
    async fn stream_dbfs_file(&self, api_path: &str, content: &[u8]) -> Result<u32, Error> {
        let body = json!({ "path": api_path, "overwrite": false });
        let subject = format!("dbfs:{api_path}");
        let handle: Handle = self
            .send(Call::post("/api/2.0/dbfs/create", body).about(&subject))
            .await?;
        let mut requests = 1;
        let streamed = async {
            for block in content.chunks(DBFS_MAX_BLOCK_BYTES) {
                let body = json!({ "handle": handle.handle, "data": B64.encode(block) });
                self.send::<serde_json::Value>(Call::post("/api/2.0/dbfs/add-block", body))
                    .await?;
                requests += 1;
            }
            let body = json!({ "handle": handle.handle });
            self.send::<serde_json::Value>(Call::post("/api/2.0/dbfs/close", body))
                .await?;
            requests += 1;
            Ok::<(), Error>(())
        }
        .await;
        if let Err(error) = streamed {
            let _ = self.delete_dbfs_path(api_path).await;
            return Err(error);
        }
        Ok(requests)
    }

    /// Puts the complete file at `staging` in the place of `target`: the old file is moved
    /// aside, the new one renamed in, the old one deleted. If the rename fails, the old file
    /// is moved back and `staging` deleted, so `target` is never lost.
    async fn replace_dbfs_file(&self, staging: &str, target: &str) -> Result<u32, Error> {
        let aside = format!("{staging}.previous");
        let mut requests = 1;
        let existed = match self.dbfs_file_metadata(target).await {
            Ok(meta) => meta.is_some(),
            Err(error) => {
                let _ = self.delete_dbfs_path(staging).await;
                return Err(error);
            }
        };
        if existed {
            if let Err(error) = self.move_dbfs_path(target, &aside).await {
                let _ = self.delete_dbfs_path(staging).await;
                return Err(error);
            }
            requests += 1;
        }
        if let Err(error) = self.move_dbfs_path(staging, target).await {
            if existed {
                let _ = self.move_dbfs_path(&aside, target).await;
            }
            let _ = self.delete_dbfs_path(staging).await;
            return Err(error);
        }
        requests += 1;
        if existed {
            // The new file is in place; an old copy left over is only clutter.
            let _ = self.delete_dbfs_path(&aside).await;
            requests += 1;
        }
        Ok(requests)
    }

    async fn move_dbfs_path(&self, source: &str, destination: &str) -> Result<(), Error> {
        let body = json!({ "source_path": source, "destination_path": destination });
        let subject = format!("dbfs:{destination}");
        let call = Call::post("/api/2.0/dbfs/move", body).about(&subject);
        self.send::<serde_json::Value>(call).await.map(drop)
    }

    async fn delete_dbfs_path(&self, api_path: &str) -> Result<(), Error> {
        let body = json!({ "path": api_path, "recursive": false });
        self.send::<serde_json::Value>(Call::post("/api/2.0/dbfs/delete", body))
            .await
            .map(drop)
    }

    /// Size and modification time of a DBFS file; `None` when nothing (or a directory) is there.
    pub async fn dbfs_file_metadata(&self, path: &str) -> Result<Option<RemoteFile>, Error> {
        let call = Call::get("/api/2.0/dbfs/get-status").query("path", dbfs_api_path(path));
        match self.send::<Status>(call).await {
            Ok(s) if s.is_dir => Ok(None),
            Ok(s) => Ok(Some(RemoteFile {
                size: s.file_size,
                modified: s.modification_time.to_string(),
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The content of a DBFS file, read 1 MB at a time; `None` when there is none.
    pub async fn read_dbfs_file(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        #[derive(Deserialize)]
        struct Read {
            #[serde(default)]
            bytes_read: usize,
            #[serde(default)]
            data: String,
        }
        let mut content = Vec::new();
        loop {
            let call = Call::get("/api/2.0/dbfs/read")
                .query("path", dbfs_api_path(path))
                .query("offset", content.len().to_string())
                .query("length", DBFS_MAX_BLOCK_BYTES.to_string());
            let read: Read = match self.send(call).await {
                Ok(r) => r,
                Err(e) if e.is_not_found() && content.is_empty() => return Ok(None),
                Err(e) => return Err(e),
            };
            if read.bytes_read == 0 {
                return Ok(Some(content));
            }
            let block = B64
                .decode(read.data.as_bytes())
                .map_err(|e| Error::Decode {
                    host: self.host().to_owned(),
                    call: "GET /api/2.0/dbfs/read".into(),
                    detail: e.to_string(),
                })?;
            content.extend_from_slice(&block);
            if read.bytes_read < DBFS_MAX_BLOCK_BYTES {
                return Ok(Some(content));
            }
        }
    }

    /// The files directly in a DBFS directory: name → size (sub-directories left out);
    /// `None` when the directory does not exist.
    pub async fn list_dbfs_files(&self, path: &str) -> Result<Option<Vec<(String, u64)>>, Error> {
        #[derive(Deserialize)]
        struct Entry {
            path: String,
            #[serde(default)]
            is_dir: bool,
            #[serde(default)]
            file_size: u64,
        }
        #[derive(Deserialize)]
        struct Listing {
            #[serde(default)]
            files: Vec<Entry>,
        }
        let call = Call::get("/api/2.0/dbfs/list").query("path", dbfs_api_path(path));
        match self.send::<Listing>(call).await {
            Ok(l) => Ok(Some(
                l.files
                    .into_iter()
                    .filter(|e| !e.is_dir)
                    .map(|e| {
                        let name = e.path.rsplit('/').next().unwrap_or_default().to_owned();
                        (name, e.file_size)
                    })
                    .collect(),
            )),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a DBFS directory and its parents (succeeds when it exists).
    pub async fn dbfs_mkdirs(&self, path: &str) -> Result<(), Error> {
        let body = json!({ "path": dbfs_api_path(path) });
        self.send::<serde_json::Value>(Call::post("/api/2.0/dbfs/mkdirs", body).replay_safe())
            .await
            .map(drop)
    }
}

/// A suffix no other upload uses at the same time: this process and the current time.
fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}
