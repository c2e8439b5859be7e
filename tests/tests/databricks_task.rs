//! The databricks@0 task's commands and the old startcluster@0 step, end to end: a pipeline
//! run by azp-local against its emulators, from the task folders in task-manifests/.

use e2e::run;

const GREET: &str = "# Databricks notebook source\ndbutils.notebook.exit('hello ' + getArgument('who', 'nobody'))\n";
const FAIL: &str = "# Databricks notebook source\nraise ValueError('expected 10 rows, got 3')\n";

const PIPELINE: &str = r#"
variables:
  ENV: ci

steps:
- task: configuredatabricks@0
  displayName: 'Configure Databricks'
  inputs:
    url: '$(DATABRICKS_URL)'
    token: '$(DATABRICKS_TOKEN)'

- task: deploynotebooks@0
  displayName: 'Deploy notebooks'
  inputs:
    notebooksFolderPath: '$(Build.SourcesDirectory)/notebooks'
    workspaceFolder: '/Shared/ci'

- task: databricks@0
  displayName: 'Plan jobs'
  inputs:
    command: deployJobs
    jobsPath: '$(Build.SourcesDirectory)/jobs'
    dryRun: true

- task: databricks@0
  displayName: 'Deploy jobs'
  inputs:
    command: deployJobs
    jobsPath: '$(Build.SourcesDirectory)/jobs'
    deleteMissing: true
    deletePrefix: '$(ENV)-'

- task: databricks@0
  displayName: 'Run job'
  inputs:
    command: runJob
    job: '$(ENV)-greet'
    notebookParams: '{"who": "azp-local"}'
    maxPollIntervalSeconds: 1

- script: echo "run $(Databricks.RunId) = $(AZDO_DATABRICKS_RUNID)"
  displayName: 'Read the run id'

- task: databricks@0
  displayName: 'Start a run'
  inputs:
    command: runJob
    job: '$(ENV)-greet'
    wait: false

- task: waitexecution@0
  displayName: 'Wait for it'

- task: databricks@0
  displayName: 'Run the failing job'
  continueOnError: true
  inputs:
    command: runJob
    job: '$(ENV)-broken'
    maxPollIntervalSeconds: 1

- task: startcluster@0
  displayName: 'Start cluster (old step)'
  inputs:
    clusterid: $(DATABRICKS_CLUSTER_ID)

- task: databricks@0
  displayName: 'Restart cluster'
  inputs:
    command: restartCluster
    cluster: $(DATABRICKS_CLUSTER_ID)

- task: databricks@0
  displayName: 'Wait for cluster'
  inputs:
    command: waitCluster
    cluster: 'emulator-$(DATABRICKS_CLUSTER_ID)'

- task: databricks@0
  displayName: 'Unknown command'
  continueOnError: true
  inputs:
    command: launchRocket
"#;

fn job(name: &str, notebook: &str) -> String {
    format!(
        r#"{{"name": "$(ENV)-{name}", "tasks": [{{"task_key": "main", "existing_cluster_id": "$(DATABRICKS_CLUSTER_ID)", "notebook_task": {{"notebook_path": "/Shared/ci/{notebook}"}}}}]}}"#
    )
}

#[test]
fn every_command_runs_through_azp_local_against_the_emulators() {
    e2e::ensure_tasks_built();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("notebooks")).unwrap();
    std::fs::create_dir_all(root.join("jobs")).unwrap();
    std::fs::write(root.join("notebooks/greet.py"), GREET).unwrap();
    std::fs::write(root.join("notebooks/fail.py"), FAIL).unwrap();
    std::fs::write(root.join("jobs/greet.json"), job("greet", "greet")).unwrap();
    std::fs::write(root.join("jobs/broken.json"), job("broken", "fail")).unwrap();
    std::fs::write(root.join("azure-pipelines.yml"), PIPELINE).unwrap();
    let pipeline = root.join("azure-pipelines.yml");
    let r = run(&[
        "run",
        pipeline.to_str().unwrap(),
        "--emulators",
        "--sources-dir",
        root.to_str().unwrap(),
    ]);
    let out = r.all();
    for step in [
        "Configure Databricks",
        "Deploy notebooks",
        "Plan jobs",
        "Deploy jobs",
        "Run job",
        "Read the run id",
        "Start a run",
        "Wait for it",
        "Start cluster (old step)",
        "Restart cluster",
        "Wait for cluster",
    ] {
        assert_eq!(r.result_of(step), Some("Succeeded"), "{step}: {out}");
    }
    for step in ["Run the failing job", "Unknown command"] {
        assert_ne!(r.result_of(step), Some("Succeeded"), "{step}: {out}");
    }
    for text in [
        "create 'ci-greet'",
        "jobs: 2 created, 0 reset, 0 unchanged, 0 deleted",
        "Notebook exit value: hello azp-local",
        "ValueError: expected 10 rows, got 3",
        "already RUNNING: left as it is",
        "event RESTARTING",
        "'launchRocket', which is not a command of this task",
    ] {
        assert!(out.contains(text), "{text}: {out}");
    }
    // The run id reached a later step through both variables.
    let line = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("run ") && l.contains(" = "))
        .unwrap_or_else(|| panic!("the script's line: {out}"));
    let (a, b) = line
        .trim()
        .trim_start_matches("run ")
        .split_once(" = ")
        .unwrap();
    assert!(a.parse::<u64>().is_ok() && a == b, "{line}");
    assert_eq!(
        r.code, 0,
        "continueOnError steps do not fail the run: {out}"
    );
}
