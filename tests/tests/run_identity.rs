//! Every `azp-local run` is a new run to the tasks: a new plan, build, job and task instance,
//! so an idempotency token built from them (executenotebook's `runs/submit`) never hands a
//! second run the first run's result.

use e2e::{repo_root, run};

const PIPELINE: &str = r###"
steps:
- task: configuredatabricks@0
  inputs:
    url: '$(DATABRICKS_URL)'
    token: '$(DATABRICKS_TOKEN)'
    writeDatabricksCfg: false
- task: deploynotebooks@0
  inputs:
    notebooksFolderPath: '$(Build.SourcesDirectory)/notebooks'
    workspaceFolder: '/Shared/identity'
- task: executenotebook@0
  inputs:
    notebookPath: '/Shared/identity/check'
    existingClusterId: '$(DATABRICKS_CLUSTER_ID)'
- task: waitexecution@0
  displayName: 'Wait for the check'
- script: echo "ids $(System.PlanId) $(Build.BuildId) $(Build.BuildNumber) $(System.JobId) $(System.JobAttempt) $(System.TaskInstanceId)"
  displayName: show ids
"###;

const GOOD: &str = "# Databricks notebook source\nprint('all good')\n";
const BROKEN: &str =
    "# Databricks notebook source\nraise AssertionError('the check notebook is broken now')\n";

/// The `ids …` line a run printed, split into its six values.
fn ids(stdout: &str) -> Vec<String> {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("ids ") && !l.contains("$("))
        .unwrap_or_else(|| panic!("no ids line in:\n{stdout}"));
    line.split_whitespace().skip(1).map(str::to_owned).collect()
}

#[test]
fn a_second_run_against_the_same_workspace_runs_the_notebook_again() {
    e2e::ensure_tasks_built();
    let token = "dapi-run-identity-test";
    let emulator = databricks_emulator::Emulator::start_blocking(databricks_emulator::Options {
        tokens: vec![token.into()],
        ..Default::default()
    })
    .expect("the Databricks emulator starts");
    let sources = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::create_dir(sources.path().join("notebooks")).unwrap();
    let notebook = sources.path().join("notebooks").join("check.py");
    let pipeline = sources.path().join("azure-pipelines.yml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    let url = format!("DATABRICKS_URL={}", emulator.url());
    let tasks = repo_root().join("task-manifests");
    let run_once = |extra: &[&str]| {
        let mut args = vec![
            "run",
            pipeline.to_str().unwrap(),
            "--sources-dir",
            sources.path().to_str().unwrap(),
            "--tasks-dir",
            tasks.to_str().unwrap(),
            "--var",
            &url,
            "--secret",
            "DATABRICKS_TOKEN=dapi-run-identity-test",
            "--var",
            "DATABRICKS_CLUSTER_ID=0000-000000-emulator",
        ];
        args.extend_from_slice(extra);
        e2e::run_cmd(
            e2e::azp_local()
                .args(&args)
                .env("XDG_STATE_HOME", state.path()),
        )
    };

    std::fs::write(&notebook, GOOD).unwrap();
    let first = run_once(&[]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert_eq!(first.result_of("Wait for the check"), Some("Succeeded"));
    let first_ids = ids(&first.stdout);

    std::fs::write(&notebook, BROKEN).unwrap();
    let second = run_once(&[]);
    assert_eq!(
        second.code,
        1,
        "the broken notebook must fail the run:\n{}",
        second.all()
    );
    assert_eq!(
        second.result_of("Wait for the check"),
        Some("Failed"),
        "{}",
        second.stdout
    );
    assert!(
        second.stdout.contains("the check notebook is broken now"),
        "the notebook's error is in the log:\n{}",
        second.stdout
    );

    // A third run, as a re-run: attempt 2.
    std::fs::write(&notebook, GOOD).unwrap();
    let third = run_once(&["--attempt", "2"]);
    assert_eq!(third.code, 0, "{}", third.all());
    let third_ids = ids(&third.stdout);

    // plan, build id, build number, job, attempt, task instance
    assert_eq!(first_ids.len(), 6, "{first_ids:?}");
    assert_ne!(first_ids[0], third_ids[0], "a new plan id per run");
    assert_eq!(first_ids[1], "1", "the first build of this sources folder");
    assert_eq!(third_ids[1], "3", "the build id counts runs: {third_ids:?}");
    assert!(third_ids[2].ends_with(".3"), "{third_ids:?}");
    assert_ne!(first_ids[3], third_ids[3], "a new job id per run");
    assert_eq!(first_ids[4], "1");
    assert_eq!(third_ids[4], "2", "--attempt sets System.JobAttempt");
    assert_ne!(first_ids[5], third_ids[5]);
    for id in [&first_ids[0], &first_ids[3], &first_ids[5]] {
        assert_eq!(id.len(), 36, "GUID-shaped: {id}");
    }
    drop(emulator);
}

#[test]
fn every_job_and_step_gets_its_own_id() {
    let yaml = r###"
jobs:
- job: a
  steps:
  - script: echo "job-a $(System.JobId) step $(System.TaskInstanceId)"
  - script: echo "job-a $(System.JobId) step $(System.TaskInstanceId)"
- job: b
  steps:
  - script: echo "job-b $(System.JobId) step $(System.TaskInstanceId)"
"###;
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-pipelines.yml");
    std::fs::write(&file, yaml).unwrap();
    let r = e2e::run_cmd(
        e2e::azp_local()
            .args(["run", file.to_str().unwrap()])
            .env("XDG_STATE_HOME", state.path()),
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let lines: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("job-"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    assert_eq!(lines[0][1], lines[1][1], "one job id within a job");
    assert_ne!(lines[0][1], lines[2][1], "each job its own id");
    assert_ne!(
        lines[0][3], lines[1][3],
        "each step its own task instance id"
    );
    let _ = run;
}
