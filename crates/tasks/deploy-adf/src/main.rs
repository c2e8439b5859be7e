//! The `deployadf` task binary: reads the agent's environment and runs [`deploy_adf::run`].

use std::process::ExitCode;

use task_sdk::{TaskContext, TaskInfo};

const INFO: TaskInfo = TaskInfo {
    name: "deployadf",
    version: env!("CARGO_PKG_VERSION"),
    manifest: include_str!("../../../../task-manifests/deployadf/task.json"),
};

fn main() -> ExitCode {
    task_sdk::run(INFO, |ctx: TaskContext| async move {
        let http = ctx.http_client()?;
        deploy_adf::run(&ctx.agent, http).await
    })
}
