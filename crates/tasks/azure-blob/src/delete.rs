//! `delete`: every blob under a prefix, or only a list of them with `dryRun`. An empty prefix
//! would empty the container: it is refused unless `deleteWholeContainer: true`.

use futures::StreamExt as _;
use task_sdk::{out, TaskError};

use crate::store::{describe, Store};

pub async fn delete(
    store: &Store,
    prefix: &str,
    dry_run: bool,
    whole_container: bool,
    concurrency: usize,
) -> Result<usize, TaskError> {
    if prefix.is_empty() && !whole_container {
        return Err(TaskError::new(
            "input 'prefix' is empty, which would delete every blob in the container: give a prefix, or set 'deleteWholeContainer: true' if that is what you want",
        ));
    }
    if !store.exists().await? {
        return Err(TaskError::new(format!(
            "container '{}' does not exist: check the 'container' input",
            store.name
        )));
    }
    let blobs = store.list(prefix).await?;
    let verb = if dry_run { "Would delete" } else { "Deleting" };
    out::group(&format!(
        "{verb} {} blob(s) under {}",
        blobs.len(),
        store.blob_url(prefix)
    ));
    if dry_run {
        for b in &blobs {
            out::info(&format!("would delete {} ({} bytes)", b.name, b.size));
        }
        out::end_group();
        out::info(&format!(
            "Dry run: {} blob(s) would be deleted; nothing was deleted",
            blobs.len()
        ));
        return Ok(blobs.len());
    }
    let results: Vec<Result<(), String>> = futures::stream::iter(blobs)
        .map(|b| async move {
            match store.blob(&b.name).delete(None).await {
                Ok(_) => {
                    out::info(&format!("deleted {}", b.name));
                    Ok(())
                }
                // Gone already (another run, a lifecycle rule): the goal is met.
                Err(e) if e.http_status() == Some(azure_core::http::StatusCode::NotFound) => Ok(()),
                Err(e) => Err(format!(
                    "{}: {}",
                    b.name,
                    describe(&e, "delete the blob", &store.name)
                )),
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    out::end_group();
    let deleted = results.iter().filter(|r| r.is_ok()).count();
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    out::info(&format!(
        "Deleted {deleted} blob(s); {} failed",
        failures.len()
    ));
    if deleted == 0 && failures.is_empty() {
        out::warning(&format!(
            "no blobs under '{prefix}' in container '{}'",
            store.name
        ));
    }
    if !failures.is_empty() {
        return Err(TaskError::new(format!(
            "{} blob(s) were not deleted: {}",
            failures.len(),
            failures.join("; ")
        )));
    }
    Ok(deleted)
}
