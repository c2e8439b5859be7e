//! `wait-execution`: the waitexecution task's binary.

use task_sdk::TaskInfo;

const INFO: TaskInfo = TaskInfo {
    name: "waitexecution",
    version: env!("CARGO_PKG_VERSION"),
    manifest: include_str!("../../../../task-manifests/waitexecution/task.json"),
};

fn main() -> std::process::ExitCode {
    task_sdk::run(INFO, wait_execution::run)
}
