//! `execute-notebook`: the executenotebook task's binary.

use task_sdk::TaskInfo;

const INFO: TaskInfo = TaskInfo {
    name: "executenotebook",
    version: env!("CARGO_PKG_VERSION"),
    manifest: include_str!("../../../../task-manifests/executenotebook/task.json"),
};

fn main() -> std::process::ExitCode {
    task_sdk::run(INFO, execute_notebook::run)
}
