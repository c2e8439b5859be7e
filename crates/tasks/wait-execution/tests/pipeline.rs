//! The seed pipeline's four steps in sequence, and waitexecution's endings, run as the agent
//! runs them against the emulator.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use databricks_emulator::{Emulator, Options, RunFault, DEFAULT_CLUSTER_ID};
use databricks_task_common::testing::{sibling_binary, Job, StepRun};
use serde_json::Value;
use task_sdk::TaskResult;

const WAIT: &str = env!("CARGO_BIN_EXE_wait-execution");
const TOKEN: &str = "dapi-pipeline-test-0123456789";

fn emulator(fault: Option<RunFault>, non_python_delay: Duration) -> Emulator {
    Emulator::start_blocking(Options {
        tokens: vec![TOKEN.to_owned()],
        run_fault: fault,
        non_python_run_delay: non_python_delay,
        ..Options::default()
    })
    .expect("the emulator starts")
}

struct Binaries {
    configure: PathBuf,
    deploy: PathBuf,
    execute: PathBuf,
}

fn binaries() -> Binaries {
    Binaries {
        configure: sibling_binary("configure-databricks"),
        deploy: sibling_binary("deploy-notebooks"),
        execute: sibling_binary("execute-notebook"),
    }
}

const INGESTION_TEST: &str = r#"# Databricks notebook source
name = getArgument("bin_file_name")
assert name.endswith(".csv"), f"unexpected file name {name}"

# COMMAND ----------
dbutils.notebook.exit(f"checked {name}")
"#;

const FAILING: &str = r#"# Databricks notebook source
def check(rows):
    raise ValueError(f"expected 10 rows, got {rows}")

check(3)
"#;

/// The seed's variables, and its steps up to executenotebook, with `$(…)` expanded as the
/// agent does. Returns the job with AZDO_DATABRICKS_RUNID set.
fn run_seed_until_execute(
    emu: &Emulator,
    bins: &Binaries,
    notebook: &str,
    name: &str,
) -> (Job, Vec<StepRun>) {
    let mut job = Job::new();
    job.set_variable("DATABRICKS_URL", &emu.url(), false);
    job.set_variable("DATABRICKS_TOKEN", TOKEN, true);
    job.set_variable("DATABRICKS_CLUSTER_ID", DEFAULT_CLUSTER_ID, false);
    let artifact = job.dir().join("p").join("di-notebooks");
    std::fs::create_dir_all(&artifact).unwrap();
    std::fs::write(artifact.join(format!("{name}.py")), notebook).unwrap();
    let mut steps = Vec::new();
    steps.push(job.run(&bins.configure, &[("url", &emu.url()), ("token", TOKEN)]));
    steps.push(job.run(
        &bins.deploy,
        &[
            ("notebooksFolderPath", &artifact.to_string_lossy()),
            ("workspaceFolder", "/Shared/devops-ds"),
        ],
    ));
    steps.push(job.run(
        &bins.execute,
        &[
            ("notebookPath", &format!("/Shared/devops-ds/{name}")),
            ("existingClusterId", DEFAULT_CLUSTER_ID),
            (
                "executionParams",
                r#"{"bin_file_name":"driver_prediction_train.csv"}"#,
            ),
        ],
    ));
    for step in &steps {
        assert_eq!(step.result(), TaskResult::Succeeded, "{}", step.log());
    }
    (job, steps)
}

#[test]
fn the_seed_pipeline_runs_unchanged() {
    let emu = emulator(None, Duration::from_millis(200));
    let bins = binaries();
    let (mut job, mut steps) =
        run_seed_until_execute(&emu, &bins, INGESTION_TEST, "test-data-ingestion");
    let wait = job.run(Path::new(WAIT), &[]);
    assert_eq!(wait.result(), TaskResult::Succeeded, "{}", wait.log());
    steps.push(wait.clone());

    let state = emu.state();
    let nb = state["workspace"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["path"] == "/Shared/devops-ds/test-data-ingestion")
        .expect("the notebook was deployed");
    assert_eq!(nb["object_type"], "NOTEBOOK");
    assert_eq!(nb["language"], "PYTHON");
    let runs = state["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run_text = runs[0].to_string();
    assert!(
        run_text.contains(r#""bin_file_name":"driver_prediction_train.csv""#),
        "{run_text}"
    );
    assert!(run_text.contains(DEFAULT_CLUSTER_ID), "{run_text}");
    assert!(
        state["jobs"].as_array().is_none_or(|j| j.is_empty()),
        "no job may be left behind"
    );

    let run_id = steps[2]
        .variable("AZDO_DATABRICKS_RUNID")
        .expect("the run id");
    assert!(steps[2]
        .variable("runPageUrl")
        .is_some_and(|u| u.contains(&run_id)));
    assert_eq!(
        wait.variable("notebookResult").as_deref(),
        Some("checked driver_prediction_train.csv")
    );
    assert_eq!(wait.variable("resultState").as_deref(), Some("SUCCESS"));
    assert!(
        wait.stdout
            .contains("Notebook exit value: checked driver_prediction_train.csv"),
        "{}",
        wait.log()
    );
    // State changes only: no line repeats.
    let states: Vec<&str> = wait
        .plain_lines()
        .into_iter()
        .filter(|l| l.starts_with('['))
        .collect();
    let mut dedup = states.clone();
    dedup.dedup_by_key(|l| l.split("] ").nth(1).unwrap_or_default().to_owned());
    assert_eq!(states.len(), dedup.len(), "{}", wait.log());
    for step in &steps {
        step.assert_no_secret(TOKEN);
    }
}

#[test]
fn a_failing_notebook_fails_the_wait_with_error_and_trace() {
    let emu = emulator(None, Duration::from_millis(200));
    let bins = binaries();
    let (mut job, _) = run_seed_until_execute(&emu, &bins, FAILING, "failing");
    let wait = job.run(Path::new(WAIT), &[]);
    assert_eq!(wait.result(), TaskResult::Failed, "{}", wait.log());
    let error = &wait.errors()[0];
    assert!(error.contains("ended FAILED"), "{error}");
    assert!(
        error.contains("ValueError: expected 10 rows, got 3"),
        "{error}"
    );
    assert!(error.contains("Run page: http://127.0.0.1"), "{error}");
    // The trace is in a collapsible group.
    let out = &wait.stdout;
    let group = out.find("##[group]Error of task").expect("an error group");
    let end = out[group..].find("##[endgroup]").expect("the group ends") + group;
    assert!(out[group..end].contains("check(3)"), "{out}");
    assert_eq!(wait.variable("resultState").as_deref(), Some("FAILED"));
}

#[test]
fn timedout_and_internal_error_fail() {
    for (fault, word) in [
        (RunFault::Timeout, "TIMEDOUT"),
        (RunFault::InternalError, "INTERNAL_ERROR"),
    ] {
        let emu = emulator(Some(fault), Duration::from_millis(200));
        let bins = binaries();
        let (mut job, _) = run_seed_until_execute(&emu, &bins, INGESTION_TEST, "nb");
        let wait = job.run(Path::new(WAIT), &[]);
        assert_eq!(wait.result(), TaskResult::Failed, "{}", wait.log());
        assert!(
            wait.errors()[0].contains(&format!("ended {word}")),
            "{}",
            wait.log()
        );
    }
}

#[test]
fn sigterm_cancels_the_databricks_run() {
    // A Scala notebook is not executed by the emulator: it runs for the configured delay.
    let emu = emulator(None, Duration::from_secs(120));
    let bins = binaries();
    let mut job = Job::new();
    job.set_variable("Databricks.Host", &emu.url(), false);
    job.set_variable("Databricks.Token", TOKEN, true);
    let src = job.dir().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("long.scala"),
        "// Databricks notebook source\nThread.sleep(1000000)\n",
    )
    .unwrap();
    let deploy = job.run(
        &bins.deploy,
        &[
            ("notebooksFolderPath", &src.to_string_lossy()),
            ("workspaceFolder", "/Shared/long"),
        ],
    );
    assert_eq!(deploy.result(), TaskResult::Succeeded, "{}", deploy.log());
    let exec = job.run(
        &bins.execute,
        &[
            ("notebookPath", "/Shared/long/long"),
            ("existingClusterId", DEFAULT_CLUSTER_ID),
        ],
    );
    assert_eq!(exec.result(), TaskResult::Succeeded, "{}", exec.log());

    let mut child = job.spawn(Path::new(WAIT), &[("maxPollIntervalSeconds", "1")]);
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("RUNNING") {
            break;
        }
    }
    assert!(seen.contains("RUNNING"), "{seen}");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let exit = child.wait().unwrap();
    assert!(!exit.success(), "{seen}");
    assert!(
        seen.contains("the pipeline was cancelled: cancelled Databricks run"),
        "{seen}"
    );

    // The run ends CANCELED in the workspace.
    let mut state = Value::Null;
    for _ in 0..50 {
        state = emu.state()["runs"][0]["state"].clone();
        if state["result_state"] == "CANCELED" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(state["result_state"], "CANCELED", "{state}");
}

#[test]
fn no_run_id_says_what_to_do() {
    let mut job = Job::new();
    let wait = job.run(Path::new(WAIT), &[]);
    assert_eq!(wait.result(), TaskResult::Failed);
    assert!(
        wait.errors()[0].contains("add Execute Databricks notebook"),
        "{}",
        wait.log()
    );
    let wait = job.run(Path::new(WAIT), &[("runId", "abc")]);
    assert!(
        wait.errors()[0].contains("must be a Databricks run id"),
        "{}",
        wait.log()
    );
}

#[test]
fn an_unknown_run_is_named() {
    let emu = emulator(None, Duration::from_millis(200));
    let mut job = Job::new();
    job.set_variable("Databricks.Host", &emu.url(), false);
    job.set_variable("Databricks.Token", TOKEN, true);
    job.set_variable("AZDO_DATABRICKS_RUNID", "424242", false);
    let wait = job.run(Path::new(WAIT), &[]);
    assert_eq!(wait.result(), TaskResult::Failed, "{}", wait.log());
    assert!(
        wait.errors()[0].contains("run 424242 does not exist"),
        "{}",
        wait.log()
    );
}
