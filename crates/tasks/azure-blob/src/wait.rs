//! `waitFor`: polls until a blob exists, or at least `min_count` blobs exist under a prefix,
//! or the timeout passes ("the ingestion result has landed").

use std::time::{Duration, Instant};

use task_sdk::{out, CancelSignal, TaskError};

use crate::store::Store;

/// What to wait for.
#[derive(Debug, Clone)]
pub enum Target {
    Blob(String),
    Prefix { prefix: String, count: usize },
}

/// Returns how many blobs matched once the condition holds.
pub async fn wait(
    store: &Store,
    target: &Target,
    timeout: Duration,
    poll: Duration,
    cancel: &CancelSignal,
) -> Result<usize, TaskError> {
    let started = Instant::now();
    let what = match target {
        Target::Blob(name) => format!("blob {}", store.blob_url(name)),
        Target::Prefix { prefix, count } => {
            format!("{count} blob(s) under {}", store.blob_url(prefix))
        }
    };
    out::info(&format!("Waiting up to {} s for {what}", timeout.as_secs()));
    let mut container_checked = false;
    loop {
        let found = match target {
            Target::Blob(name) => {
                let exists = store
                    .blob(name)
                    .exists()
                    .await
                    .map_err(|e| store.error(e, "check the blob"))?;
                usize::from(exists)
            }
            Target::Prefix { prefix, .. } => store.list(prefix).await?.len(),
        };
        let wanted = match target {
            Target::Blob(_) => 1,
            Target::Prefix { count, .. } => *count,
        };
        if found >= wanted {
            out::info(&format!(
                "Found {what} after {:.0} s",
                started.elapsed().as_secs_f64()
            ));
            return Ok(found);
        }
        if !container_checked {
            // A missing container is a mistake far more often than data yet to come.
            if !store.exists().await? {
                return Err(TaskError::new(format!(
                    "container '{}' does not exist: check the 'container' input",
                    store.name
                )));
            }
            container_checked = true;
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            return Err(TaskError::new(format!(
                "timed out after {} s waiting for {what} (found {found}); raise 'timeoutSeconds' or check what should have written it",
                timeout.as_secs()
            )));
        }
        let nap = poll.min(timeout - elapsed);
        tokio::select! {
            _ = tokio::time::sleep(nap) => {}
            _ = cancel.cancelled() => return Err(TaskError::new("cancelled while waiting")),
        }
    }
}
