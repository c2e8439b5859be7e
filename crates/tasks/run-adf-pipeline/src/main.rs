//! The `runadfpipeline` task binary: reads the agent's environment and runs
//! [`run_adf_pipeline::run`].

use std::process::ExitCode;

use task_sdk::CancelSignal;
use task_sdk::{TaskContext, TaskInfo};

const INFO: TaskInfo = TaskInfo {
    name: "runadfpipeline",
    version: env!("CARGO_PKG_VERSION"),
    manifest: include_str!("../../../../task-manifests/runadfpipeline/task.json"),
};

fn main() -> ExitCode {
    task_sdk::run(INFO, |ctx: TaskContext| async move {
        let cancel = CancelSignal::install().await;
        let http = ctx.http_client()?;
        run_adf_pipeline::run(&ctx.agent, http, &cancel).await
    })
}
