//! Jobs API: the run state machine, Python execution, outputs, errors.

mod common;

use std::time::Duration;

use common::{options, start};
use databricks_emulator::{Options, RunFault};
use serde_json::json;

const PARAMS_NOTEBOOK: &str = "# Databricks notebook source\n\
dbutils.widgets.text(\"greeting\", \"hello\")\n\
name = dbutils.widgets.get(\"name\")\n\
\n# COMMAND ----------\n\n\
# MAGIC %md\n# MAGIC a markdown cell is a no-op\n\
\n# COMMAND ----------\n\n\
dbutils.notebook.exit(f\"{dbutils.widgets.get('greeting')} {getArgument('name')}\")\n\
raise RuntimeError('not reached')\n";

#[tokio::test]
async fn run_moves_through_the_life_cycle() {
    let (_emu, c) = start(Options {
        python: Some("".into()),
        non_python_run_delay: Duration::from_millis(300),
        // Long enough for a 10 ms poll to see TERMINATING on a busy machine.
        run_terminating: Duration::from_millis(200),
        ..options()
    })
    .await;
    c.import_python("/Shared/nb", "x = 1\n").await;
    let run_id = c.submit_notebook("/Shared/nb", json!({}), json!({})).await;
    let mut seen = Vec::new();
    loop {
        let run = c.run(run_id).await;
        let life = run["state"]["life_cycle_state"]
            .as_str()
            .unwrap()
            .to_string();
        if seen.last() != Some(&life) {
            seen.push(life.clone());
        }
        if life == "TERMINATED" {
            assert_eq!(run["state"]["result_state"], "SUCCESS");
            assert_eq!(run["status"]["state"], "TERMINATED");
            assert_eq!(run["status"]["termination_details"]["code"], "SUCCESS");
            assert!(run["end_time"].as_u64().unwrap() >= run["start_time"].as_u64().unwrap());
            assert!(run["setup_duration"].as_u64().unwrap() >= 100);
            assert!(run["execution_duration"].as_u64().unwrap() >= 250);
            assert_eq!(
                run["run_page_url"],
                format!("{}/?o=0#job/{}/run/{run_id}", c.base, run["job_id"])
            );
            let task = &run["tasks"][0];
            assert_ne!(task["run_id"], run["run_id"]);
            assert_eq!(task["state"]["result_state"], "SUCCESS");
            assert_eq!(task["task_key"], "main");
            break;
        }
        assert!(
            run["state"].get("result_state").is_none(),
            "no result before the end: {run}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        seen,
        vec!["PENDING", "RUNNING", "TERMINATING", "TERMINATED"]
    );
}

#[tokio::test]
async fn python_notebook_runs_with_parameters_and_exit_value() {
    let (emu, c) = start(options()).await;
    assert!(
        emu.executes_python(),
        "python3 must be on PATH for this test"
    );
    c.import_python("/Shared/params", PARAMS_NOTEBOOK).await;
    let run_id = c
        .submit_notebook("/Shared/params", json!({"name": "world"}), json!({}))
        .await;
    let run = c.wait(run_id).await;
    assert_eq!(run["state"]["result_state"], "SUCCESS", "{run}");
    let task_run = run["tasks"][0]["run_id"].as_u64().unwrap();
    let (s, out) = c.output(task_run).await;
    assert_eq!(s, 200);
    assert_eq!(out["notebook_output"]["result"], "hello world");
    assert_eq!(out["notebook_output"]["truncated"], false);
    assert_eq!(out["metadata"]["run_id"], task_run);

    let (s, b) = c.output(run_id).await;
    assert_eq!(
        (s, b["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE"))
    );
    assert!(b["message"]
        .as_str()
        .unwrap()
        .starts_with("Retrieving the output of runs with multiple tasks is not supported"));
}

#[tokio::test]
async fn python_exception_fails_the_run_with_error_and_trace() {
    let (_emu, c) = start(options()).await;
    c.import_python(
        "/Shared/bad",
        "# Databricks notebook source\nvalue = {}\n\n# COMMAND ----------\n\nvalue['missing']\n",
    )
    .await;
    let run_id = c.submit_notebook("/Shared/bad", json!({}), json!({})).await;
    let run = c.wait(run_id).await;
    assert_eq!(run["state"]["result_state"], "FAILED");
    assert_eq!(
        run["state"]["state_message"],
        "Task main failed with message: Workload failed, see run output for details."
    );
    assert_eq!(
        run["status"]["termination_details"]["code"],
        "RUN_EXECUTION_ERROR"
    );
    let (_, out) = c.output(run["tasks"][0]["run_id"].as_u64().unwrap()).await;
    assert_eq!(out["error"], "KeyError: 'missing'");
    let trace = out["error_trace"].as_str().unwrap();
    assert!(trace.starts_with("Traceback"), "{trace}");
    assert!(
        trace.contains("<command-2>") && trace.contains("value['missing']"),
        "{trace}"
    );
    assert!(
        !trace.contains("_emulator_runner"),
        "runner frames are hidden: {trace}"
    );

    // A widget that is neither passed nor defined fails like dbutils does.
    c.import_python("/Shared/nowidget", "dbutils.widgets.get('nope')\n")
        .await;
    let run = c
        .wait(
            c.submit_notebook("/Shared/nowidget", json!({}), json!({}))
                .await,
        )
        .await;
    let (_, out) = c.output(run["tasks"][0]["run_id"].as_u64().unwrap()).await;
    assert_eq!(
        out["error"],
        "InputWidgetNotDefined: No input widget named nope is defined"
    );
}

#[tokio::test]
async fn missing_notebook_fails_the_run() {
    let (_emu, c) = start(options()).await;
    let run = c
        .wait(
            c.submit_notebook("/Shared/none", json!({}), json!({}))
                .await,
        )
        .await;
    assert_eq!(run["state"]["life_cycle_state"], "TERMINATED");
    assert_eq!(run["state"]["result_state"], "FAILED");
    let message = run["tasks"][0]["state"]["state_message"].as_str().unwrap();
    assert!(
        message.starts_with("Unable to access the notebook \"/Shared/none\"."),
        "{message}"
    );
}

#[tokio::test]
async fn non_python_notebooks_succeed_after_the_delay() {
    let (_emu, c) = start(options()).await;
    let (s, _) = c
        .post("/api/2.0/workspace/import", json!({"path": "/Shared/q", "format": "SOURCE", "language": "SQL", "content": common::b64("select 1")}))
        .await;
    assert_eq!(s, 200);
    let run = c
        .wait(c.submit_notebook("/Shared/q", json!({}), json!({})).await)
        .await;
    assert_eq!(run["state"]["result_state"], "SUCCESS");
}

#[tokio::test]
async fn unknown_ids_are_400_invalid_parameter_value() {
    let (_emu, c) = start(options()).await;
    for (path, key, message) in [
        (
            "/api/2.1/jobs/runs/get",
            "run_id",
            "Run 424242 does not exist.",
        ),
        (
            "/api/2.2/jobs/runs/get-output",
            "run_id",
            "Run 424242 does not exist.",
        ),
        ("/api/2.2/jobs/get", "job_id", "Job 424242 does not exist."),
        (
            "/api/2.1/clusters/get",
            "cluster_id",
            "Cluster 424242 does not exist",
        ),
    ] {
        let (s, b) = c.get(path, &[(key, "424242")]).await;
        assert_eq!(s, 400, "{path}");
        assert_eq!(b["error_code"], "INVALID_PARAMETER_VALUE");
        assert_eq!(b["message"], message);
    }
    let (s, b) = c
        .post("/api/2.2/jobs/runs/cancel", json!({"run_id": 424242}))
        .await;
    assert_eq!(
        (s, b["message"].as_str()),
        (400, Some("Run 424242 does not exist."))
    );
    let (s, b) = c
        .post("/api/2.2/jobs/runs/submit", json!({"tasks": [{"task_key": "t", "existing_cluster_id": "nope", "notebook_task": {"notebook_path": "/x"}}]}))
        .await;
    assert_eq!(
        (s, b["message"].as_str()),
        (400, Some("Cluster nope does not exist"))
    );
    let (s, _) = c
        .post("/api/2.2/jobs/runs/submit", json!({"run_name": "no tasks"}))
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn cancel_and_timeouts() {
    let (_emu, c) = start(options()).await;
    c.import_python("/Shared/slow", "import time\ntime.sleep(20)\n")
        .await;
    let run_id = c
        .submit_notebook("/Shared/slow", json!({}), json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(c.run(run_id).await["state"]["life_cycle_state"], "RUNNING");
    let (s, _) = c
        .post("/api/2.2/jobs/runs/cancel", json!({"run_id": run_id}))
        .await;
    assert_eq!(s, 200);
    let run = c.wait(run_id).await;
    assert_eq!(run["state"]["result_state"], "CANCELED");
    assert_eq!(run["tasks"][0]["state"]["result_state"], "CANCELED");
    assert_eq!(run["state"]["user_cancelled_or_timedout"], true);
    // Cancelling a finished run changes nothing.
    assert_eq!(
        c.post("/api/2.2/jobs/runs/cancel", json!({"run_id": run_id}))
            .await
            .0,
        200
    );

    let run_id = c
        .submit_notebook("/Shared/slow", json!({}), json!({"timeout_seconds": 1}))
        .await;
    let started = std::time::Instant::now();
    let run = c.wait(run_id).await;
    assert_eq!(run["state"]["result_state"], "TIMEDOUT");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn idempotency_token_returns_the_same_run() {
    let (emu, c) = start(options()).await;
    c.import_python("/Shared/nb", "x = 1\n").await;
    let token = json!({"idempotency_token": "deploy-42"});
    let first = c
        .submit_notebook("/Shared/nb", json!({}), token.clone())
        .await;
    let second = c.submit_notebook("/Shared/nb", json!({}), token).await;
    assert_eq!(first, second);
    assert_eq!(emu.run_count(), 1);
    let other = c
        .submit_notebook(
            "/Shared/nb",
            json!({}),
            json!({"idempotency_token": "deploy-43"}),
        )
        .await;
    assert_ne!(first, other);
    let (s, _) = c
        .post("/api/2.2/jobs/runs/submit", json!({"idempotency_token": "x".repeat(65), "tasks": [{"task_key": "a", "notebook_task": {"notebook_path": "/Shared/nb"}}]}))
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn jobs_create_get_and_run_now_override_parameters() {
    let (_emu, c) = start(options()).await;
    c.import_python(
        "/Shared/echo",
        "dbutils.notebook.exit(dbutils.widgets.get('p'))\n",
    )
    .await;
    let (s, created) = c
        .post(
            "/api/2.1/jobs/create",
            json!({"name": "echo", "tasks": [{"task_key": "echo", "existing_cluster_id": databricks_emulator::DEFAULT_CLUSTER_ID,
                   "notebook_task": {"notebook_path": "/Shared/echo", "base_parameters": {"p": "base", "q": "kept"}}}]}),
        )
        .await;
    assert_eq!(s, 200);
    let job_id = created["job_id"].as_u64().unwrap();
    let (_, job) = c
        .get("/api/2.1/jobs/get", &[("job_id", &job_id.to_string())])
        .await;
    assert_eq!(job["settings"]["name"], "echo");

    for (params, expected) in [(json!({}), "base"), (json!({"p": "override"}), "override")] {
        let (s, started) = c
            .post(
                "/api/2.1/jobs/run-now",
                json!({"job_id": job_id, "notebook_params": params}),
            )
            .await;
        assert_eq!(s, 200);
        let run = c.wait(started["run_id"].as_u64().unwrap()).await;
        assert_eq!(run["job_id"], job_id);
        assert_eq!(run["run_type"], "JOB_RUN");
        assert_eq!(run["number_in_job"], started["number_in_job"]);
        let task = &run["tasks"][0];
        assert_eq!(task["notebook_task"]["base_parameters"]["q"], "kept");
        let (_, out) = c.output(task["run_id"].as_u64().unwrap()).await;
        assert_eq!(out["notebook_output"]["result"], expected);
    }
    let (s, b) = c
        .post("/api/2.1/jobs/run-now", json!({"job_id": 999}))
        .await;
    assert_eq!(
        (s, b["message"].as_str()),
        (400, Some("Job 999 does not exist."))
    );
}

#[tokio::test]
async fn dependent_tasks_run_in_order_and_skip_after_a_failure() {
    let (_emu, c) = start(options()).await;
    c.import_python("/Shared/ok", "x = 1\n").await;
    c.import_python("/Shared/fail", "raise ValueError('boom')\n")
        .await;
    let (_, b) = c
        .post(
            "/api/2.2/jobs/runs/submit",
            json!({"tasks": [
                {"task_key": "second", "depends_on": [{"task_key": "first"}], "notebook_task": {"notebook_path": "/Shared/ok"}},
                {"task_key": "first", "notebook_task": {"notebook_path": "/Shared/fail"}},
            ]}),
        )
        .await;
    let run = c.wait(b["run_id"].as_u64().unwrap()).await;
    assert_eq!(run["state"]["result_state"], "FAILED");
    assert_eq!(run["tasks"][1]["state"]["result_state"], "FAILED");
    assert_eq!(run["tasks"][0]["state"]["result_state"], "UPSTREAM_FAILED");
    let (_, out) = c.output(run["tasks"][1]["run_id"].as_u64().unwrap()).await;
    assert_eq!(out["error"], "ValueError: boom");
}

#[tokio::test]
async fn legacy_single_task_output_is_on_the_parent_run() {
    let (_emu, c) = start(options()).await;
    c.import_python("/Shared/exit", "dbutils.notebook.exit('done')\n")
        .await;
    let (s, b) = c
        .post("/api/2.0/jobs/runs/submit", json!({"run_name": "legacy", "existing_cluster_id": databricks_emulator::DEFAULT_CLUSTER_ID, "notebook_task": {"notebook_path": "/Shared/exit"}}))
        .await;
    assert_eq!(s, 200, "{b}");
    let run_id = b["run_id"].as_u64().unwrap();
    c.wait(run_id).await;
    let (s, out) = c.output(run_id).await;
    assert_eq!(s, 200);
    assert_eq!(out["notebook_output"]["result"], "done");
}

#[tokio::test]
async fn run_faults_force_failure_timeout_and_internal_error() {
    for (fault, life, result) in [
        (RunFault::Fail, "TERMINATED", Some("FAILED")),
        (RunFault::Timeout, "TERMINATED", Some("TIMEDOUT")),
        (RunFault::InternalError, "INTERNAL_ERROR", None),
    ] {
        let (_emu, c) = start(Options {
            run_fault: Some(fault),
            ..options()
        })
        .await;
        c.import_python("/Shared/nb", "x = 1\n").await;
        let run = c
            .wait(c.submit_notebook("/Shared/nb", json!({}), json!({})).await)
            .await;
        assert_eq!(run["state"]["life_cycle_state"], life, "{fault:?}");
        assert_eq!(run["state"]["result_state"].as_str(), result, "{fault:?}");
    }
}

#[tokio::test]
async fn clusters_get_start_and_runs_on_terminated_clusters() {
    let (_emu, c) = start(Options {
        terminated_clusters: vec!["cold".into()],
        cluster_start_delay: Duration::from_millis(300),
        ..options()
    })
    .await;
    let (s, b) = c
        .get(
            "/api/2.0/clusters/get",
            &[("cluster_id", databricks_emulator::DEFAULT_CLUSTER_ID)],
        )
        .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("RUNNING")));
    let (s, b) = c
        .post(
            "/api/2.1/clusters/start",
            json!({"cluster_id": databricks_emulator::DEFAULT_CLUSTER_ID}),
        )
        .await;
    assert_eq!((s, b["error_code"].as_str()), (400, Some("INVALID_STATE")));
    assert_eq!(
        b["message"],
        format!(
            "Cluster {} is in unexpected state Running.",
            databricks_emulator::DEFAULT_CLUSTER_ID
        )
    );
    let (s, b) = c
        .post("/api/2.1/clusters/start", json!({"cluster_id": "missing"}))
        .await;
    assert_eq!(
        (s, b["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE"))
    );

    // A run on a terminated cluster starts it and waits.
    c.import_python("/Shared/nb", "x = 1\n").await;
    let (_, b) = c
        .post("/api/2.2/jobs/runs/submit", json!({"tasks": [{"task_key": "t", "existing_cluster_id": "cold", "notebook_task": {"notebook_path": "/Shared/nb"}}]}))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        c.get("/api/2.1/clusters/get", &[("cluster_id", "cold")])
            .await
            .1["state"],
        "PENDING"
    );
    let run = c.wait(b["run_id"].as_u64().unwrap()).await;
    assert_eq!(run["state"]["result_state"], "SUCCESS");
    assert!(run["setup_duration"].as_u64().unwrap() >= 250);
    assert_eq!(
        c.get("/api/2.1/clusters/get", &[("cluster_id", "cold")])
            .await
            .1["state"],
        "RUNNING"
    );
}
