//! `deploy-notebooks`: the deploynotebooks task's binary.

use task_sdk::TaskInfo;

const INFO: TaskInfo = TaskInfo {
    name: "deploynotebooks",
    version: env!("CARGO_PKG_VERSION"),
    manifest: include_str!("../../../../task-manifests/deploynotebooks/task.json"),
};

fn main() -> std::process::ExitCode {
    task_sdk::run(INFO, deploy_notebooks::run)
}
