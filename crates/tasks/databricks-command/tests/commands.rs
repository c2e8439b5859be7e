//! The databricks and start-cluster binaries run as the agent runs them, against the
//! emulator: each command's work and its failure paths.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use databricks::{ImportFormat, Language};
use databricks_emulator::{Emulator, Options, DEFAULT_CLUSTER_ID};
use databricks_task_common::testing::{with_workspace, Job, StepRun};
use serde_json::{json, Value};
use task_sdk::TaskResult;

const BIN: &str = env!("CARGO_BIN_EXE_databricks");
const START_CLUSTER: &str = env!("CARGO_BIN_EXE_start-cluster");
const TOKEN: &str = "dapi-command-test-0123456789";

const GREET: &str = "# Databricks notebook source\ndbutils.notebook.exit('hello ' + getArgument('who', 'nobody'))\n";
const FAIL: &str = "# Databricks notebook source\nraise ValueError('expected 10 rows, got 3')\n";

fn start(opts: Options) -> Emulator {
    Emulator::start_blocking(Options {
        tokens: vec![TOKEN.to_owned()],
        cluster_start_delay: Duration::from_millis(300),
        ..opts
    })
    .expect("the emulator starts")
}

fn job(emu: &Emulator) -> Job {
    let mut job = Job::new();
    job.set_variable("Databricks.Host", &emu.url(), false);
    job.set_variable("Databricks.Token", TOKEN, true);
    job
}

fn step(job: &mut Job, bin: &str, inputs: &[(&str, &str)]) -> StepRun {
    let run = job.run(Path::new(bin), inputs);
    run.assert_no_secret(TOKEN);
    run
}

fn databricks(job: &mut Job, inputs: &[(&str, &str)]) -> StepRun {
    step(job, BIN, inputs)
}

/// Puts notebooks and creates jobs through the client; returns the job ids.
fn arrange(emu: &Emulator, notebooks: &[(&str, &str)], jobs: &[Value]) -> Vec<u64> {
    with_workspace(&emu.url(), TOKEN, |ws| async move {
        ws.mkdirs("/Shared/t").await.unwrap();
        for (path, source) in notebooks {
            ws.import(
                path,
                source.as_bytes(),
                ImportFormat::Source(Language::Python),
                true,
            )
            .await
            .unwrap();
        }
        let mut ids = Vec::new();
        for settings in jobs {
            ids.push(ws.create_job_with(settings).await.unwrap().0);
        }
        ids
    })
}

fn notebook_job(name: &str, notebook: &str) -> Value {
    json!({
        "name": name,
        "tasks": [{
            "task_key": "main",
            "existing_cluster_id": DEFAULT_CLUSTER_ID,
            "notebook_task": {"notebook_path": notebook, "base_parameters": {"who": "base"}},
        }],
    })
}

fn errors(run: &StepRun) -> String {
    run.errors().join("\n")
}

#[test]
fn unknown_command_lists_the_commands() {
    let emu = start(Options::default());
    let mut job = job(&emu);
    let run = databricks(&mut job, &[("command", "launchRocket")]);
    assert_eq!(run.result(), TaskResult::Failed, "{}", run.log());
    let e = errors(&run);
    assert!(e.contains("'launchRocket'"), "{e}");
    for c in [
        "runJob",
        "deployJobs",
        "startCluster",
        "waitCluster",
        "restartCluster",
    ] {
        assert!(e.contains(c), "{e}");
    }
    assert_eq!(
        emu.state()["request_counts"],
        json!({}),
        "nothing was called"
    );
}

#[test]
fn run_job_by_name_waits_and_reports_the_exit_value() {
    let emu = start(Options::default());
    let ids = arrange(
        &emu,
        &[("/Shared/t/greet", GREET)],
        &[notebook_job("nightly", "/Shared/t/greet")],
    );
    let mut job = job(&emu);
    let inputs = [
        ("command", "runJob"),
        ("job", "nightly"),
        ("notebookParams", r#"{"who": "pipeline"}"#),
        ("maxPollIntervalSeconds", "1"),
    ];
    let run = databricks(&mut job, &inputs);
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    assert_eq!(
        run.variable("notebookResult").as_deref(),
        Some("hello pipeline")
    );
    let vars = run.variables();
    let run_id = vars["Databricks.RunId"].0.clone();
    assert_eq!(vars["AZDO_DATABRICKS_RUNID"].0, run_id);
    assert!(
        run.stdout.contains(&format!(
            "Started Databricks run {run_id} of job {} ('nightly'): http",
            ids[0]
        )),
        "{}",
        run.log()
    );
    assert!(run.stdout.contains("Run page: http"), "{}", run.log());
    let state = emu.state();
    let runs = state["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["job_id"], json!(ids[0]));
    assert_eq!(
        runs[0]["overriding_parameters"]["notebook_params"]["who"],
        "pipeline"
    );
    assert!(
        runs[0]["idempotency_token"]
            .as_str()
            .is_some_and(|t| t.len() == 64),
        "{}",
        runs[0]
    );
}

#[test]
fn run_job_by_id_with_job_parameters_without_waiting() {
    let emu = start(Options::default());
    let mut settings = notebook_job("params", "/Shared/t/greet");
    settings["parameters"] = json!([{"name": "who", "default": "default"}]);
    let ids = arrange(&emu, &[("/Shared/t/greet", GREET)], &[settings]);
    let mut job = job(&emu);
    let id = ids[0].to_string();
    let run = databricks(
        &mut job,
        &[
            ("command", "runJob"),
            ("job", &id),
            ("jobParameters", r#"{"who": "job-level"}"#),
            ("wait", "false"),
        ],
    );
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    assert!(
        run.variable("resultState").is_none(),
        "did not wait: {}",
        run.log()
    );
    // waitexecution's variable is set: the wait can be a later step (here: runs/get).
    let run_id: u64 = run
        .variable("AZDO_DATABRICKS_RUNID")
        .unwrap()
        .parse()
        .unwrap();
    let finished = with_workspace(&emu.url(), TOKEN, |ws| async move {
        ws.wait_run(
            databricks::RunId(run_id),
            Some(Duration::from_secs(60)),
            |_| {},
        )
        .await
        .unwrap()
    });
    assert!(finished.state.is_success(), "{finished:?}");
    let state = emu.state();
    let outputs = &state["runs"][0]["task_outputs"][0];
    assert_eq!(outputs["result"], "hello job-level", "{outputs}");
}

#[test]
fn run_job_names_matching_zero_or_two_jobs_are_errors_that_list_them() {
    let emu = start(Options::default());
    let ids = arrange(
        &emu,
        &[("/Shared/t/greet", GREET)],
        &[
            notebook_job("twin", "/Shared/t/greet"),
            notebook_job("twin", "/Shared/t/greet"),
            notebook_job("single", "/Shared/t/greet"),
            notebook_job("SINGLE", "/Shared/t/greet"),
        ],
    );
    let mut job = job(&emu);
    let run = databricks(&mut job, &[("command", "runJob"), ("job", "twin")]);
    assert_eq!(run.result(), TaskResult::Failed);
    let e = errors(&run);
    assert!(
        e.contains("2 jobs are named 'twin'")
            && e.contains(&ids[0].to_string())
            && e.contains(&ids[1].to_string()),
        "{e}"
    );
    let run = databricks(&mut job, &[("command", "runJob"), ("job", "nope")]);
    let e = errors(&run);
    assert!(
        e.contains("no job of the workspace") && e.contains("'single'"),
        "{e}"
    );
    let run = databricks(&mut job, &[("command", "runJob"), ("job", "424242")]);
    assert!(
        errors(&run).contains("job 424242 does not exist"),
        "{}",
        run.log()
    );
    let run = databricks(
        &mut job,
        &[
            ("command", "runJob"),
            ("job", "single"),
            ("jobParameters", "{"),
            ("wait", "false"),
        ],
    );
    assert!(
        errors(&run).contains("(jobParameters) is not valid JSON"),
        "{}",
        run.log()
    );
    assert_eq!(emu.run_count(), 0);
    // The API's name filter ignores case; the exact spelling wins.
    let run = databricks(
        &mut job,
        &[("command", "runJob"), ("job", "single"), ("wait", "false")],
    );
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    assert_eq!(emu.state()["runs"][0]["job_id"], json!(ids[2]));
}

#[test]
fn a_failing_job_run_fails_the_task_with_the_error() {
    let emu = start(Options::default());
    arrange(
        &emu,
        &[("/Shared/t/fail", FAIL)],
        &[notebook_job("broken", "/Shared/t/fail")],
    );
    let mut job = job(&emu);
    let run = databricks(
        &mut job,
        &[
            ("command", "runJob"),
            ("job", "broken"),
            ("maxPollIntervalSeconds", "1"),
        ],
    );
    assert_eq!(run.result(), TaskResult::Failed, "{}", run.log());
    let e = errors(&run);
    assert!(
        e.contains("ended FAILED") && e.contains("ValueError: expected 10 rows, got 3"),
        "{e}"
    );
    assert!(
        run.stdout.contains("Traceback"),
        "the trace is in the log: {}",
        run.log()
    );
    assert_eq!(run.variable("resultState").as_deref(), Some("FAILED"));
}

#[test]
fn the_same_step_retried_starts_one_run() {
    let emu = start(Options::default());
    arrange(
        &emu,
        &[("/Shared/t/greet", GREET)],
        &[notebook_job("once", "/Shared/t/greet")],
    );
    let mut job = job(&emu);
    // The same task instance (the agent's retry of a step) twice.
    job.set_variable("System.TaskInstanceId", "fixed-step", false);
    let inputs = [("command", "runJob"), ("job", "once"), ("wait", "false")];
    let first = job
        .command(Path::new(BIN), &inputs)
        .env("SYSTEM_TASKINSTANCEID", "fixed-step")
        .output()
        .unwrap();
    let second = job
        .command(Path::new(BIN), &inputs)
        .env("SYSTEM_TASKINSTANCEID", "fixed-step")
        .output()
        .unwrap();
    assert!(first.status.success() && second.status.success());
    assert_eq!(emu.run_count(), 1);
}

fn write(dir: &Path, name: &str, value: &Value) {
    std::fs::write(dir.join(name), serde_json::to_string_pretty(value).unwrap()).unwrap();
}

fn job_names(emu: &Emulator) -> BTreeMap<String, u64> {
    emu.state()["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["settings"]["name"].as_str().unwrap().to_owned(),
                j["job_id"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn deploy_jobs_creates_resets_leaves_and_deletes_in_scope() {
    let emu = start(Options::default());
    let pre = arrange(
        &emu,
        &[],
        &[
            notebook_job("etl-old", "/Shared/t/a"),
            notebook_job("other-team", "/Shared/t/a"),
            notebook_job("etl-changed", "/Shared/t/a"),
        ],
    );
    let mut job = job(&emu);
    job.set_variable("ENV", "prod", false);
    let dir = job.dir().join("jobs");
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    write(&dir, "a.json", &notebook_job("etl-$(ENV)", "/Shared/t/a"));
    write(
        &dir.join("nested"),
        "b.json",
        &json!({"job_id": 1, "settings": notebook_job("etl-changed", "/Shared/t/b")}),
    );
    let jobs_path = dir.to_string_lossy().into_owned();
    let inputs = |extra: &[(&'static str, &'static str)]| {
        let mut v = vec![("command", "deployJobs"), ("jobsPath", jobs_path.as_str())];
        v.extend_from_slice(extra);
        v
    };

    // A dry run plans and changes nothing.
    let before = job_names(&emu);
    let run = databricks(
        &mut job,
        &inputs(&[
            ("dryRun", "true"),
            ("deleteMissing", "true"),
            ("deletePrefix", "etl-"),
        ]),
    );
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    for line in [
        "create 'etl-prod'",
        &format!("reset 'etl-changed' (job {}): tasks", pre[2]),
        &format!("delete 'etl-old' (job {})", pre[0]),
        "nothing was changed",
    ] {
        assert!(run.stdout.contains(line), "{line}: {}", run.log());
    }
    assert!(!run.stdout.contains("other-team"), "{}", run.log());
    assert_eq!(job_names(&emu), before);

    // Deleting needs a limit.
    let run = databricks(&mut job, &inputs(&[("deleteMissing", "true")]));
    assert!(errors(&run).contains("needs a limit"), "{}", run.log());

    let run = databricks(
        &mut job,
        &inputs(&[("deleteMissing", "true"), ("deletePrefix", "etl-")]),
    );
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    let after = job_names(&emu);
    assert_eq!(
        after.keys().cloned().collect::<Vec<_>>(),
        vec!["etl-changed", "etl-prod", "other-team"]
    );
    assert_eq!(after["etl-changed"], pre[2], "reset keeps the job id");
    let state = emu.state();
    let changed = state["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_id"] == json!(pre[2]))
        .unwrap()
        .clone();
    assert_eq!(
        changed["settings"]["tasks"][0]["notebook_task"]["notebook_path"],
        "/Shared/t/b"
    );
    let ids: Value = serde_json::from_str(&run.variable("jobIds").unwrap()).unwrap();
    assert_eq!(ids["etl-prod"], json!(after["etl-prod"]));

    // Again: nothing to do.
    let resets = emu.request_count("jobs/reset");
    let run = databricks(&mut job, &inputs(&[]));
    assert!(
        run.stdout
            .contains("0 created, 0 reset, 2 unchanged, 0 deleted"),
        "{}",
        run.log()
    );
    assert_eq!(emu.request_count("jobs/reset"), resets);
}

#[test]
fn deploy_jobs_refuses_bad_definitions_before_changing_anything() {
    let emu = start(Options::default());
    let mut job = job(&emu);
    let dir = job.dir().join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    write(
        &dir,
        "a.json",
        &notebook_job("x-$(UNDEFINED_VAR)", "/Shared/t/a"),
    );
    let path = dir.to_string_lossy().into_owned();
    let run = databricks(&mut job, &[("command", "deployJobs"), ("jobsPath", &path)]);
    assert!(
        errors(&run).contains("$(UNDEFINED_VAR) is not a pipeline variable"),
        "{}",
        run.log()
    );
    write(&dir, "a.json", &notebook_job("dup", "/Shared/t/a"));
    write(&dir, "b.json", &notebook_job("dup", "/Shared/t/a"));
    let run = databricks(&mut job, &[("command", "deployJobs"), ("jobsPath", &path)]);
    assert!(
        errors(&run).contains("'dup' is defined twice"),
        "{}",
        run.log()
    );
    // A definition the service refuses: the error, and what was done before it.
    std::fs::remove_file(dir.join("b.json")).unwrap();
    write(&dir, "c.json", &json!({"name": "no-tasks-here"}));
    let run = databricks(&mut job, &[("command", "deployJobs"), ("jobsPath", &path)]);
    let e = errors(&run);
    assert!(
        e.contains("creating job 'no-tasks-here'")
            && e.contains("created 'dup'")
            && e.contains("No job was deleted"),
        "{e}"
    );
}

#[test]
fn start_cluster_starts_a_terminated_cluster_by_name_and_reports_events() {
    let emu = start(Options {
        terminated_clusters: vec!["0000-000000-stopped".into()],
        cluster_names: [("0000-000000-stopped".to_owned(), "etl-cluster".to_owned())].into(),
        ..Options::default()
    });
    let mut job = job(&emu);
    let run = databricks(
        &mut job,
        &[("command", "startCluster"), ("cluster", "etl-cluster")],
    );
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    for text in [
        "TERMINATED: Inactive cluster terminated",
        "starting it",
        "PENDING",
        "event STARTING",
        "event RUNNING",
        "is RUNNING",
    ] {
        assert!(run.stdout.contains(text), "{text}: {}", run.log());
    }
    assert_eq!(
        run.variable("clusterId").as_deref(),
        Some("0000-000000-stopped")
    );
    // Already running: left alone.
    let starts = emu.request_count("clusters/start");
    let run = step(
        &mut job,
        START_CLUSTER,
        &[("clusterid", "0000-000000-stopped")],
    );
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    assert!(
        run.stdout.contains("already RUNNING: left as it is"),
        "{}",
        run.log()
    );
    assert_eq!(emu.request_count("clusters/start"), starts);
}

#[test]
fn a_cluster_that_fails_to_start_fails_with_the_termination_reason() {
    let emu = start(Options {
        terminated_clusters: vec!["0000-000000-quota".into()],
        failing_clusters: vec!["0000-000000-quota".into()],
        ..Options::default()
    });
    let mut job = job(&emu);
    // The old task's step, unchanged.
    let run = step(
        &mut job,
        START_CLUSTER,
        &[("clusterid", "0000-000000-quota")],
    );
    assert_eq!(run.result(), TaskResult::Failed, "{}", run.log());
    let e = errors(&run);
    assert!(
        e.contains("did not start: it is TERMINATED")
            && e.contains("CLOUD_PROVIDER_LAUNCH_FAILURE (CLOUD_FAILURE)")
            && e.contains("QuotaExceeded"),
        "{e}"
    );
    assert!(
        run.stdout
            .contains("event TERMINATING: CLOUD_PROVIDER_LAUNCH_FAILURE"),
        "{}",
        run.log()
    );
    // waitCluster does not start a terminated cluster.
    let run = databricks(
        &mut job,
        &[("command", "waitCluster"), ("cluster", "0000-000000-quota")],
    );
    let e = errors(&run);
    assert!(
        e.contains("waitCluster does not start clusters")
            && e.contains("CLOUD_PROVIDER_LAUNCH_FAILURE"),
        "{e}"
    );
}

#[test]
fn restart_and_cluster_names_that_do_not_identify_one_cluster() {
    let emu = start(Options {
        clusters: vec![
            DEFAULT_CLUSTER_ID.into(),
            "0000-000000-twin-a".into(),
            "0000-000000-twin-b".into(),
        ],
        cluster_names: [
            ("0000-000000-twin-a".to_owned(), "shared".to_owned()),
            ("0000-000000-twin-b".to_owned(), "shared".to_owned()),
        ]
        .into(),
        ..Options::default()
    });
    let mut job = job(&emu);
    let run = databricks(
        &mut job,
        &[
            ("command", "restartCluster"),
            ("cluster", DEFAULT_CLUSTER_ID),
        ],
    );
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    for text in [
        "restarting cluster",
        "RESTARTING",
        "event RESTARTING",
        "is RUNNING",
    ] {
        assert!(run.stdout.contains(text), "{text}: {}", run.log());
    }
    assert_eq!(emu.request_count("clusters/restart"), 1);
    let run = databricks(
        &mut job,
        &[("command", "startCluster"), ("cluster", "shared")],
    );
    let e = errors(&run);
    assert!(
        e.contains("2 clusters are named 'shared'")
            && e.contains("0000-000000-twin-a, 0000-000000-twin-b"),
        "{e}"
    );
    let run = databricks(&mut job, &[("command", "waitCluster"), ("cluster", "nope")]);
    let e = errors(&run);
    assert!(
        e.contains("no cluster of the workspace") && e.contains("'shared' (0000-000000-twin-a)"),
        "{e}"
    );
}

#[test]
fn cancelling_the_pipeline_cancels_the_job_run() {
    use std::io::{BufRead, BufReader};
    // A Scala notebook is not executed by the emulator: it runs for the configured delay.
    let emu = start(Options {
        non_python_run_delay: Duration::from_secs(120),
        ..Options::default()
    });
    with_workspace(&emu.url(), TOKEN, |ws| async move {
        ws.mkdirs("/Shared/t").await.unwrap();
        ws.import(
            "/Shared/t/long",
            b"// Databricks notebook source\nThread.sleep(1000000)\n",
            ImportFormat::Source(Language::Scala),
            true,
        )
        .await
        .unwrap();
        ws.create_job_with(&notebook_job("long", "/Shared/t/long"))
            .await
            .unwrap();
    });
    let mut job = job(&emu);
    let mut child = job.spawn(
        Path::new(BIN),
        &[
            ("command", "runJob"),
            ("job", "long"),
            ("maxPollIntervalSeconds", "1"),
        ],
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
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
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    assert!(!child.wait().unwrap().success(), "{seen}");
    assert!(
        seen.contains("the pipeline was cancelled: cancelled Databricks run"),
        "{seen}"
    );
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
