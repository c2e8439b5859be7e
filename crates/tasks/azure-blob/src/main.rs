//! The `azureblob` task binary: reads the agent's environment and runs [`azure_blob::run`].

use std::process::ExitCode;

use task_sdk::{CancelSignal, TaskContext, TaskInfo};

const INFO: TaskInfo = TaskInfo {
    name: "azureblob",
    version: env!("CARGO_PKG_VERSION"),
    manifest: include_str!("../../../../task-manifests/azureblob/task.json"),
};

fn main() -> ExitCode {
    task_sdk::run(INFO, |ctx: TaskContext| async move {
        let cancel = CancelSignal::install().await;
        let http = ctx.http_client()?;
        azure_blob::run(&ctx.agent, http, &cancel).await
    })
}
