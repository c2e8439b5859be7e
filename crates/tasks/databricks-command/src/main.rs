//! `databricks`: the databricks task's binary (one `command` input, see the library).

use task_sdk::TaskInfo;

const INFO: TaskInfo = TaskInfo {
    name: "databricks",
    version: env!("CARGO_PKG_VERSION"),
    manifest: include_str!("../../../../task-manifests/databricks/task.json"),
};

fn main() -> std::process::ExitCode {
    task_sdk::run(INFO, databricks_command::run)
}
