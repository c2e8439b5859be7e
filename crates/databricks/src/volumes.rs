//! The Files API on Unity Catalog volumes (`/Volumes/<catalog>/<schema>/<volume>/…`): upload,
//! metadata, directories. The API keeps no content hash; metadata is size and modification
//! time only.

use task_sdk::http::Method;

use crate::client::Call;
use crate::{Error, Workspace};

/// Size and modification stamp of a remote file, as the storage reports them. `modified` is
/// opaque (an HTTP date, or milliseconds): compared for equality, never parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub size: u64,
    pub modified: String,
}

/// Percent-encodes each segment of an absolute path for use in a URL path (keeps `/`).
pub(crate) fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `catalog.schema.volume` of a `/Volumes/…` path, if it has one.
pub fn volume_of(path: &str) -> Option<String> {
    let mut parts = path.strip_prefix("/Volumes/")?.split('/');
    let (c, s, v) = (parts.next()?, parts.next()?, parts.next()?);
    (!c.is_empty() && !s.is_empty() && !v.is_empty()).then(|| format!("{c}.{s}.{v}"))
}

/// The error of a Files API call about `path`, with what to do for the usual cases.
fn files_error(path: &str, error: Error) -> Error {
    match &error {
        Error::Api { status: 404, .. } => {
            let volume = volume_of(path).unwrap_or_else(|| "?".into());
            Error::InvalidRequest(format!(
                "the volume {volume} of {path} does not exist (or you may not use it): create it first (CREATE VOLUME {volume}) or fix the path"
            ))
        }
        Error::Api { status: 409, .. } => Error::AlreadyExists {
            path: path.to_owned(),
        },
        _ => error,
    }
}

impl Workspace {
    /// Uploads `content` to a volume path; parents are created by the service. Without
    /// `overwrite`, an existing file is [`Error::AlreadyExists`]; a missing volume is a message
    /// saying which volume to create.
    pub async fn upload_volume_file(
        &self,
        path: &str,
        content: Vec<u8>,
        overwrite: bool,
    ) -> Result<(), Error> {
        let call = Call::new(
            Method::PUT,
            format!("/api/2.0/fs/files{}", encode_path(path)),
        )
        .query("overwrite", overwrite.to_string())
        .raw_body(content);
        self.exchange(&call)
            .await
            .map(drop)
            .map_err(|e| files_error(path, e))
    }

    /// The content of a file in a volume; `None` when there is none.
    pub async fn download_volume_file(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let call = Call::new(
            Method::GET,
            format!("/api/2.0/fs/files{}", encode_path(path)),
        );
        match self.exchange(&call).await {
            Ok(answer) => Ok(Some(answer.into_bytes())),
            Err(Error::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The files directly in a volume directory: name → size (sub-directories left out);
    /// `None` when the directory does not exist.
    pub async fn list_volume_files(&self, path: &str) -> Result<Option<Vec<(String, u64)>>, Error> {
        #[derive(serde::Deserialize)]
        struct Entry {
            #[serde(default)]
            name: String,
            #[serde(default)]
            is_directory: bool,
            #[serde(default)]
            file_size: u64,
        }
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            contents: Vec<Entry>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let mut files = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut call = Call::new(
                Method::GET,
                format!("/api/2.0/fs/directories{}", encode_path(path)),
            );
            if let Some(t) = &token {
                call = call.query("page_token", t.clone());
            }
            let page: Page = match self.send(call).await {
                Ok(p) => p,
                Err(Error::Api { status: 404, .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            files.extend(
                page.contents
                    .into_iter()
                    .filter(|e| !e.is_directory)
                    .map(|e| (e.name, e.file_size)),
            );
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(Some(files)),
            }
        }
    }

    /// Size and last-modified of a file in a volume; `None` when there is none.
    pub async fn volume_file_metadata(&self, path: &str) -> Result<Option<RemoteFile>, Error> {
        let call = Call::new(
            Method::HEAD,
            format!("/api/2.0/fs/files{}", encode_path(path)),
        );
        match self.exchange(&call).await {
            Ok(answer) => Ok(Some(RemoteFile {
                size: answer
                    .header("content-length")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0),
                modified: answer
                    .header("last-modified")
                    .unwrap_or_default()
                    .to_owned(),
            })),
            // HEAD answers carry no body: a 404 is a bare status.
            Err(Error::UnexpectedBody { status: 404, .. })
            | Err(Error::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether a directory exists in a volume (the volume root counts). A missing volume is
    /// `false`.
    pub async fn volume_directory_exists(&self, path: &str) -> Result<bool, Error> {
        let call = Call::new(
            Method::HEAD,
            format!("/api/2.0/fs/directories{}", encode_path(path)),
        );
        match self.exchange(&call).await {
            Ok(_) => Ok(true),
            Err(Error::UnexpectedBody { status: 404, .. })
            | Err(Error::Api { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            encode_path("/Volumes/m/s/v/a b#c?.txt"),
            "/Volumes/m/s/v/a%20b%23c%3F.txt"
        );
        assert_eq!(
            volume_of("/Volumes/main/raw/landing/x/y"),
            Some("main.raw.landing".into())
        );
        assert_eq!(volume_of("/Volumes/main/raw"), None);
    }
}
