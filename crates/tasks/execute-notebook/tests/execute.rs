//! The executenotebook binary run as the agent runs it, against the emulator.

use std::path::Path;
use std::time::Duration;

use databricks_emulator::{DropMode, Emulator, Options, DEFAULT_CLUSTER_ID};
use databricks_task_common::testing::{with_workspace, Job, StepRun};
use task_sdk::TaskResult;

const BIN: &str = env!("CARGO_BIN_EXE_execute-notebook");
const TOKEN: &str = "dapi-execute-test-0123456789";
const NOTEBOOK: &str =
    "# Databricks notebook source\ndbutils.notebook.exit(getArgument('x', 'none'))\n";

fn start(opts: Options) -> Emulator {
    Emulator::start_blocking(Options {
        tokens: vec![TOKEN.to_owned()],
        ..opts
    })
    .expect("the emulator starts")
}

/// Puts a notebook in the workspace through the client.
fn put_notebook(emu: &Emulator, path: &str) {
    with_workspace(&emu.url(), TOKEN, |ws| async move {
        ws.mkdirs("/Shared/t").await.unwrap();
        ws.import(
            path,
            NOTEBOOK.as_bytes(),
            databricks::ImportFormat::Source(databricks::Language::Python),
            true,
        )
        .await
        .unwrap();
    });
}

fn job(emu: &Emulator) -> Job {
    let mut job = Job::new();
    job.set_variable("Databricks.Host", &emu.url(), false);
    job.set_variable("Databricks.Token", TOKEN, true);
    job
}

fn execute(job: &mut Job, inputs: &[(&str, &str)]) -> StepRun {
    let run = job.run(Path::new(BIN), inputs);
    run.assert_no_secret(TOKEN);
    run
}

#[test]
fn waits_in_the_same_step_when_asked() {
    let emu = start(Options::default());
    put_notebook(&emu, "/Shared/t/nb");
    let mut job = job(&emu);
    let run = execute(
        &mut job,
        &[
            ("notebookPath", "/Shared/t/nb"),
            ("existingClusterId", DEFAULT_CLUSTER_ID),
            ("executionParams", r#"{\"x\":\"escaped-form\"}"#),
            ("waitForCompletion", "true"),
            ("maxPollIntervalSeconds", "1"),
        ],
    );
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    assert_eq!(
        run.variable("notebookResult").as_deref(),
        Some("escaped-form")
    );
    let vars = run.variables();
    let id = &vars["AZDO_DATABRICKS_RUNID"];
    assert!(
        !id.2,
        "AZDO_DATABRICKS_RUNID is a job variable, not an output"
    );
    assert_eq!(vars["runId"].0, id.0);
    assert!(
        run.stdout.contains(&format!(
            "Started Databricks run {} of /Shared/t/nb: http",
            id.0
        )),
        "{}",
        run.log()
    );
}

#[test]
fn a_retried_submit_after_a_dropped_answer_starts_one_run() {
    // Half the answers are lost after the request took effect. Faults are seeded: try seeds
    // until one loses a submit answer; every seed must end with exactly one run.
    let mut lost_a_submit = false;
    for seed in 1..=12 {
        let emu = start(Options {
            drop_fraction: 0.5,
            drop_mode: DropMode::After,
            seed,
            ..Options::default()
        });
        put_notebook(&emu, "/Shared/t/nb");
        let mut job = job(&emu);
        job.set_variable("AzdoDataTasks.RetryBudgetSeconds", "60", false);
        let run = execute(
            &mut job,
            &[
                ("notebookPath", "/Shared/t/nb"),
                ("existingClusterId", DEFAULT_CLUSTER_ID),
            ],
        );
        assert_eq!(
            run.result(),
            TaskResult::Succeeded,
            "seed {seed}: {}",
            run.log()
        );
        assert_eq!(emu.run_count(), 1, "seed {seed}: {}", run.log());
        if emu.request_count("runs/submit") >= 2 {
            lost_a_submit = true;
            break;
        }
    }
    assert!(
        lost_a_submit,
        "no seed lost a submit answer: the test proves nothing"
    );
}

#[test]
fn the_same_step_submitted_twice_is_one_run_another_attempt_is_another() {
    let emu = start(Options {
        non_python_run_delay: Duration::from_millis(50),
        ..Options::default()
    });
    put_notebook(&emu, "/Shared/t/nb");
    let mut job = job(&emu);
    let inputs = [
        ("notebookPath", "/Shared/t/nb"),
        ("existingClusterId", DEFAULT_CLUSTER_ID),
    ];
    // The agent retrying the same task instance (retryCountOnTaskFailure keeps the id).
    let mut first = job.command(Path::new(BIN), &inputs);
    first.env("SYSTEM_TASKINSTANCEID", "same-instance");
    let mut second = job.command(Path::new(BIN), &inputs);
    second.env("SYSTEM_TASKINSTANCEID", "same-instance");
    assert!(first.output().unwrap().status.success());
    assert!(second.output().unwrap().status.success());
    assert_eq!(emu.run_count(), 1);
    job.set_variable("System.JobAttempt", "2", false);
    let mut third = job.command(Path::new(BIN), &inputs);
    third.env("SYSTEM_TASKINSTANCEID", "same-instance");
    assert!(third.output().unwrap().status.success());
    assert_eq!(emu.run_count(), 2);
}

#[test]
fn failure_modes_have_their_messages() {
    let emu = start(Options::default());
    put_notebook(&emu, "/Shared/t/nb");
    let mut job = job(&emu);
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("notebookPath", "/Shared/t/missing"),
                ("existingClusterId", DEFAULT_CLUSTER_ID),
            ],
            "notebook /Shared/t/missing not found in the workspace",
        ),
        (
            &[
                ("notebookPath", "/Shared/t"),
                ("existingClusterId", DEFAULT_CLUSTER_ID),
            ],
            "is a directory in the workspace",
        ),
        (
            &[
                ("notebookPath", "Shared/t/nb"),
                ("existingClusterId", DEFAULT_CLUSTER_ID),
            ],
            "must be an absolute workspace path",
        ),
        (
            &[("notebookPath", "/Shared/t/nb")],
            "no compute for the run",
        ),
        (
            &[
                ("notebookPath", "/Shared/t/nb"),
                ("existingClusterId", "c"),
                ("serverless", "true"),
            ],
            "more than one compute is set",
        ),
        (
            &[
                ("notebookPath", "/Shared/t/nb"),
                ("existingClusterId", DEFAULT_CLUSTER_ID),
                ("executionParams", "{a: 1}"),
            ],
            "is not valid JSON",
        ),
        (
            &[
                ("notebookPath", "/Shared/t/nb"),
                ("existingClusterId", DEFAULT_CLUSTER_ID),
                ("executionParams", r#"{"a": null}"#),
            ],
            "the value of 'a' is null",
        ),
        (
            &[
                ("notebookPath", "/Shared/t/nb"),
                ("existingClusterId", "no-such-cluster"),
            ],
            "starting a run of /Shared/t/nb failed",
        ),
    ];
    for (inputs, needle) in cases {
        let run = execute(&mut job, inputs);
        assert_eq!(run.result(), TaskResult::Failed, "{}", run.log());
        assert!(
            run.errors()[0].contains(needle),
            "expected '{needle}': {}",
            run.log()
        );
    }
    assert_eq!(emu.run_count(), 0);
}
