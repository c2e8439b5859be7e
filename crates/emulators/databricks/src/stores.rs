//! The state behind the secrets, files (volumes, DBFS), libraries and repos endpoints, each
//! behind its own lock so that uploads to a volume do not wait on a library status.

use std::sync::{Mutex, MutexGuard};

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::files::{Dbfs, Volumes};
use crate::libraries::Libraries;
use crate::repos::{GitRemote, Repos};
use crate::secrets::Secrets;

#[derive(Debug)]
pub struct Stores {
    pub secrets: Mutex<Secrets>,
    pub volumes: Mutex<Volumes>,
    pub dbfs: Mutex<Dbfs>,
    pub libraries: Mutex<Libraries>,
    pub repos: Mutex<Repos>,
}

/// Locks `m`, answering 500 if a handler panicked while holding it.
pub fn lock<T>(m: &Mutex<T>) -> ApiResult<MutexGuard<'_, T>> {
    m.lock().map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "emulator state lock poisoned",
        )
    })
}

impl Stores {
    pub fn new(volumes: &[String], remotes: &[GitRemote]) -> std::io::Result<Stores> {
        let volumes = Volumes::new(volumes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.message))?;
        Ok(Stores {
            secrets: Mutex::new(Secrets::default()),
            volumes: Mutex::new(volumes),
            dbfs: Mutex::new(Dbfs::default()),
            libraries: Mutex::new(Libraries::default()),
            repos: Mutex::new(Repos::new(remotes)),
        })
    }

    pub fn dump(&self) -> Value {
        let d = |v: ApiResult<Value>| v.unwrap_or(Value::Null);
        json!({
            "secret_scopes": d(lock(&self.secrets).map(|s| s.dump())),
            "volumes": d(lock(&self.volumes).map(|s| s.dump())),
            "dbfs": d(lock(&self.dbfs).map(|s| s.dump())),
            "libraries": d(lock(&self.libraries).map(|s| s.dump())),
            "repos": d(lock(&self.repos).map(|s| s.dump())),
        })
    }
}
