//! `configure-databricks`: the configuredatabricks task's binary.

use task_sdk::TaskInfo;

const INFO: TaskInfo = TaskInfo {
    name: "configuredatabricks",
    version: env!("CARGO_PKG_VERSION"),
    manifest: include_str!("../../../../task-manifests/configuredatabricks/task.json"),
};

fn main() -> std::process::ExitCode {
    task_sdk::run(INFO, configure_databricks::run)
}
