//! The `deployarm` task binary: reads the agent's environment and runs [`deploy_arm::deploy::run`].

use std::process::ExitCode;

use task_sdk::CancelSignal;
use task_sdk::{TaskContext, TaskInfo};

const INFO: TaskInfo = TaskInfo {
    name: "deployarm",
    version: env!("CARGO_PKG_VERSION"),
    manifest: include_str!("../../../../task-manifests/deployarm/task.json"),
};

fn main() -> ExitCode {
    task_sdk::run(INFO, |ctx: TaskContext| async move {
        let cancel = CancelSignal::install().await;
        let http = ctx.http_client()?;
        deploy_arm::deploy::run(&ctx.agent, http, &cancel).await
    })
}
