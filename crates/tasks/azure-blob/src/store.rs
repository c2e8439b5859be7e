//! One container through the official SDK (`azure_storage_blob`): listing with sizes,
//! Content-MD5 and metadata (one listing, no request per blob), existence, creation, and errors turned into messages a user can act on
//! (never quoting a URL, which may carry a SAS).

use azure_core::error::ErrorKind;
use azure_core::http::StatusCode;
use std::collections::HashMap;

use azure_storage_blob::models::{BlobContainerClientListBlobsOptions, ListBlobsIncludeItem};
use azure_storage_blob::{BlobClient, BlobContainerClient, BlobContainerClientOptions};
use futures::TryStreamExt as _;
use task_sdk::{HttpClient, TaskError};

use crate::auth::Account;
use crate::transport;

/// A blob as listed: name, size, the Content-MD5 stored with it (if any) and its metadata
/// (names lowercased: Azure compares them without case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub name: String,
    pub size: u64,
    pub md5: Option<Vec<u8>>,
    pub metadata: HashMap<String, String>,
}

/// A container of an account.
pub struct Store {
    client: BlobContainerClient,
    pub name: String,
    /// The container's URL, without credentials: safe to print.
    pub url: url::Url,
}

impl Store {
    pub fn new(account: &Account, container: &str, http: &HttpClient) -> Result<Store, TaskError> {
        let url = account.container_url(container);
        let options = BlobContainerClientOptions {
            client_options: transport::client_options(http, account.auth.clone()),
            ..Default::default()
        };
        let client = BlobContainerClient::new(url.clone(), None, Some(options))
            .map_err(|e| TaskError::new(format!("cannot set up the blob client: {e}")))?;
        Ok(Store {
            client,
            name: container.to_owned(),
            url,
        })
    }

    pub fn blob(&self, name: &str) -> BlobClient {
        self.client.blob_client(name)
    }

    /// A blob's URL without credentials.
    pub fn blob_url(&self, name: &str) -> String {
        format!("{}/{}", self.url.as_str().trim_end_matches('/'), name)
    }

    pub async fn exists(&self) -> Result<bool, TaskError> {
        self.client
            .exists()
            .await
            .map_err(|e| self.error(e, "check the container"))
    }

    /// Creates the container; one that already exists is fine.
    pub async fn create(&self) -> Result<bool, TaskError> {
        match self.client.create(None).await {
            Ok(_) => Ok(true),
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => Ok(false),
            Err(e) => Err(self.error(e, "create the container")),
        }
    }

    /// Every blob whose name starts with `prefix`, with its metadata (`include=metadata`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<Remote>, TaskError> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: (!prefix.is_empty()).then(|| prefix.to_owned()),
            include: Some(vec![ListBlobsIncludeItem::Metadata]),
            ..Default::default()
        };
        let mut pager = self
            .client
            .list_blobs(Some(options))
            .map_err(|e| self.error(e, "list the blobs"))?;
        let mut blobs = Vec::new();
        while let Some(item) = pager
            .try_next()
            .await
            .map_err(|e| self.error(e, "list the blobs"))?
        {
            let Some(name) = item.name else { continue };
            let properties = item.properties.unwrap_or_default();
            blobs.push(Remote {
                name,
                size: properties.content_length.unwrap_or(0),
                md5: properties.content_md5.filter(|m| !m.is_empty()),
                metadata: item
                    .metadata
                    .and_then(|m| m.values)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect(),
            });
        }
        Ok(blobs)
    }

    /// A message for a failed call: what was being done, where, and what to do.
    pub fn error(&self, error: azure_core::Error, doing: &str) -> TaskError {
        TaskError::new(describe(&error, doing, &self.name))
    }
}

/// The storage error code of a failed call, if the service sent one.
pub fn error_code(error: &azure_core::Error) -> Option<String> {
    match error.kind() {
        ErrorKind::HttpResponse { error_code, .. } => error_code.clone(),
        _ => None,
    }
}

/// Renders an SDK error without the request URL (it may carry a SAS).
pub fn describe(error: &azure_core::Error, doing: &str, container: &str) -> String {
    let code = error_code(error);
    match (error.http_status(), code.as_deref()) {
        (_, Some("ContainerNotFound")) => format!(
            "cannot {doing}: container '{container}' does not exist; create it first or set 'createContainer: true' on an upload"
        ),
        (_, Some("BlobNotFound")) => format!("cannot {doing}: the blob does not exist in container '{container}'"),
        // Azure answers AuthenticationFailed to a bad signature or an expired SAS; Azurite
        // answers AuthorizationFailure to both.
        (_, Some(c @ ("AuthenticationFailed" | "AuthorizationFailure"))) => format!(
            "cannot {doing}: the storage account refused the credentials ({c}): check the account key, connection string or SAS, that the SAS has not expired and grants this permission, and any firewall on the account"
        ),
        (_, Some("AuthorizationPermissionMismatch")) => format!(
            "cannot {doing}: the identity is not allowed to do this (AuthorizationPermissionMismatch): grant the service connection's identity 'Storage Blob Data Contributor' (or Reader to read) on the account or container"
        ),
        (_, Some("InvalidAuthenticationInfo")) => format!(
            "cannot {doing}: the storage account rejected the token (InvalidAuthenticationInfo): check the service connection"
        ),
        (Some(status), code) => format!(
            "cannot {doing} (container '{container}'): HTTP {}{}",
            u16::from(status),
            code.map(|c| format!(" ({c})")).unwrap_or_default()
        ),
        (None, _) => match error.kind() {
            ErrorKind::Credential => format!("cannot {doing}: no token for Azure Storage: {error}"),
            _ => format!("cannot {doing} (container '{container}'): {error}"),
        },
    }
}
