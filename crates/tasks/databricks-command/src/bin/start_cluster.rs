//! `start-cluster`: the startcluster task's binary, the old extension's task by name and
//! input (`clusterid`), on the code of the databricks task's `startCluster` command.

use task_sdk::TaskInfo;

const INFO: TaskInfo = TaskInfo {
    name: "startcluster",
    version: env!("CARGO_PKG_VERSION"),
    manifest: include_str!("../../../../../task-manifests/startcluster/task.json"),
};

fn main() -> std::process::ExitCode {
    task_sdk::run(INFO, databricks_command::run_start_cluster)
}
