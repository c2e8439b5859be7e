//! Jobs and Clusters calls against the emulator: runs with outputs and errors, cancel,
//! idempotent submits, jobs, clusters.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{options, start};
use databricks::{
    ClusterState, Compute, CreateJob, Error, ImportFormat, Language, LifeCycleState, ResultState,
    RunId, RunNow, SubmitRun, Workspace, SUBMIT_TASK_KEY,
};
use databricks_emulator::{Options, DEFAULT_CLUSTER_ID};

const GREET: &str = "# Databricks notebook source\n\
dbutils.widgets.text(\"name\", \"nobody\")\n\
name = dbutils.widgets.get(\"name\")\n\
\n# COMMAND ----------\n\n\
dbutils.notebook.exit(f\"hello {name}\")\n";

const FAILS: &str = "# Databricks notebook source\n\
def check(value):\n    raise ValueError(f\"bad input: {value}\")\n\
\n# COMMAND ----------\n\n\
check(dbutils.widgets.get(\"file\"))\n";

const SLOW: &str = "# Databricks notebook source\nimport time\ntime.sleep(30)\n";

async fn deploy(ws: &Workspace, name: &str, source: &str) -> String {
    ws.mkdirs("/Shared/jobs").await.unwrap();
    let path = format!("/Shared/jobs/{name}");
    ws.import(
        &path,
        source.as_bytes(),
        ImportFormat::Source(Language::Python),
        true,
    )
    .await
    .unwrap();
    path
}

fn submit(path: &str, params: &[(&str, &str)]) -> SubmitRun {
    SubmitRun {
        run_name: "client test".into(),
        notebook_path: path.into(),
        base_parameters: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        compute: Compute::ExistingCluster(DEFAULT_CLUSTER_ID.into()),
        timeout_seconds: None,
        idempotency_token: None,
    }
}

#[tokio::test]
async fn a_run_goes_through_its_life_cycle_and_returns_its_output() {
    let (emu, ws) = start(options()).await;
    assert!(emu.executes_python(), "python3 is needed for this test");
    let path = deploy(&ws, "greet", GREET).await;
    let run_id = ws
        .submit_run(&submit(&path, &[("name", "world")]))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let run = ws
        .wait_run(run_id, Some(Duration::from_secs(60)), |r| {
            seen.push(r.state.life_cycle_state.clone())
        })
        .await
        .unwrap();
    assert_eq!(seen.first(), Some(&LifeCycleState::Pending), "{seen:?}");
    assert_eq!(seen.last(), Some(&LifeCycleState::Terminated), "{seen:?}");
    assert!(run.state.is_success(), "{run:?}");
    assert_eq!(run.state.result_state, Some(ResultState::Success));
    assert_eq!(run.run_id, run_id);
    assert!(
        run.run_page_url
            .as_deref()
            .unwrap_or("")
            .starts_with(&emu.url()),
        "{run:?}"
    );
    assert!(
        run.start_time > 0 && run.end_time >= run.start_time,
        "{run:?}"
    );
    let task = run.task(SUBMIT_TASK_KEY).expect("the notebook task");
    assert_ne!(task.run_id, run_id);
    assert!(task.state.is_success());
    let output = ws.get_run_output(task.run_id).await.unwrap();
    let notebook = output.notebook_output.expect("notebook output");
    assert_eq!(notebook.result.as_deref(), Some("hello world"));
    assert!(!notebook.truncated);
    assert_eq!(output.error, None);
}

#[tokio::test]
async fn a_failing_run_gives_its_error_and_trace() {
    let (_emu, ws) = start(options()).await;
    let path = deploy(&ws, "fails", FAILS).await;
    let run_id = ws
        .submit_run(&submit(&path, &[("file", "x.bin")]))
        .await
        .unwrap();
    let run = ws
        .wait_run(run_id, Some(Duration::from_secs(60)), |_| {})
        .await
        .unwrap();
    assert_eq!(run.state.life_cycle_state, LifeCycleState::Terminated);
    assert_eq!(run.state.result_state, Some(ResultState::Failed));
    assert!(!run.state.is_success());
    let output = ws
        .get_run_output(run.task(SUBMIT_TASK_KEY).unwrap().run_id)
        .await
        .unwrap();
    let error = output.error.expect("error");
    assert!(
        error.contains("ValueError") && error.contains("bad input: x.bin"),
        "{error}"
    );
    let trace = output.error_trace.expect("trace");
    assert!(
        trace.contains("check") && trace.contains("bad input: x.bin"),
        "{trace}"
    );
}

#[tokio::test]
async fn cancel_a_running_run_and_time_one_out() {
    let (_emu, ws) = start(options()).await;
    let path = deploy(&ws, "slow", SLOW).await;
    let run_id = ws.submit_run(&submit(&path, &[])).await.unwrap();
    // Wait until it runs, then cancel.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ws.get_run(run_id).await.unwrap().state.life_cycle_state != LifeCycleState::Running {
        assert!(std::time::Instant::now() < deadline, "never RUNNING");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ws.cancel_run(run_id).await.unwrap();
    let run = ws
        .wait_run(run_id, Some(Duration::from_secs(20)), |_| {})
        .await
        .unwrap();
    assert_eq!(run.state.result_state, Some(ResultState::Canceled));
    assert!(run.state.user_cancelled_or_timedout);
    ws.cancel_run(run_id).await.unwrap(); // a finished run: nothing to do, no error

    let mut timed = submit(&path, &[]);
    timed.timeout_seconds = Some(1);
    let run_id = ws.submit_run(&timed).await.unwrap();
    let run = ws
        .wait_run(run_id, Some(Duration::from_secs(20)), |_| {})
        .await
        .unwrap();
    assert_eq!(run.state.result_state, Some(ResultState::TimedOut));

    // Our own wait limit: TimedOut, and the run goes on.
    let run_id = ws.submit_run(&submit(&path, &[])).await.unwrap();
    let e = ws
        .wait_run(run_id, Some(Duration::from_millis(300)), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, Error::TimedOut { .. }), "{e:?}");
    assert!(e.to_string().contains(&format!("run {run_id}")), "{e}");
    ws.cancel_run(run_id).await.unwrap();
}

#[tokio::test]
async fn unknown_ids_and_bad_tokens() {
    let (_emu, ws) = start(options()).await;
    let e = ws.get_run(RunId(424242)).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert!(e.to_string().contains("424242"), "{e}");
    let e = ws.get_cluster("no-such-cluster").await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    let mut long = submit("/Shared/x", &[]);
    long.idempotency_token = Some("t".repeat(65));
    assert!(matches!(
        ws.submit_run(&long).await,
        Err(Error::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn the_same_idempotency_token_gives_the_same_run() {
    let (emu, ws) = start(Options {
        python: Some("".into()),
        ..options()
    })
    .await;
    let path = deploy(&ws, "nb", GREET).await;
    let mut req = submit(&path, &[]);
    req.idempotency_token = Some("build-42-attempt-1".into());
    let first = ws.submit_run(&req).await.unwrap();
    let second = ws.submit_run(&req).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(emu.run_count(), 1);
}

#[tokio::test]
async fn jobs_run_now_with_notebook_params() {
    let (_emu, ws) = start(options()).await;
    let path = deploy(&ws, "greet", GREET).await;
    let job_id = ws
        .create_job(&CreateJob {
            name: "greeter".into(),
            notebook_path: path,
            base_parameters: BTreeMap::from([("name".to_string(), "base".to_string())]),
            compute: Compute::ExistingCluster(DEFAULT_CLUSTER_ID.into()),
            timeout_seconds: Some(600),
            max_concurrent_runs: Some(2),
        })
        .await
        .unwrap();
    let request = RunNow {
        job_id,
        notebook_params: BTreeMap::from([("name".to_string(), "override".to_string())]),
        idempotency_token: Some("job-token-1".into()),
        ..RunNow::default()
    };
    let run_id = ws.run_now(&request).await.unwrap();
    assert_eq!(ws.run_now(&request).await.unwrap(), run_id);
    let run = ws
        .wait_run(run_id, Some(Duration::from_secs(60)), |_| {})
        .await
        .unwrap();
    assert_eq!(run.job_id, Some(job_id));
    let output = ws
        .get_run_output(run.task(SUBMIT_TASK_KEY).unwrap().run_id)
        .await
        .unwrap();
    assert_eq!(
        output.notebook_output.unwrap().result.as_deref(),
        Some("hello override")
    );
}

#[tokio::test]
async fn serverless_and_new_cluster_submits_are_accepted() {
    let (_emu, ws) = start(Options {
        python: Some("".into()),
        ..options()
    })
    .await;
    let path = deploy(&ws, "nb", GREET).await;
    for compute in [
        Compute::Serverless,
        Compute::NewCluster(
            serde_json::json!({"spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_DS3_v2", "num_workers": 1}),
        ),
    ] {
        let mut req = submit(&path, &[]);
        req.compute = compute;
        let run_id = ws.submit_run(&req).await.unwrap();
        let run = ws
            .wait_run(run_id, Some(Duration::from_secs(30)), |_| {})
            .await
            .unwrap();
        assert!(run.state.is_success(), "{run:?}");
    }
}

#[tokio::test]
async fn clusters_start_and_wait() {
    let (_emu, ws) = start(Options {
        terminated_clusters: vec!["0000-000000-stopped".into()],
        ..options()
    })
    .await;
    let running = ws.get_cluster(DEFAULT_CLUSTER_ID).await.unwrap();
    assert_eq!(running.state, ClusterState::Running);
    // Starting a running cluster is a success (the API says INVALID_STATE).
    ws.start_cluster(DEFAULT_CLUSTER_ID).await.unwrap();

    assert_eq!(
        ws.get_cluster("0000-000000-stopped").await.unwrap().state,
        ClusterState::Terminated
    );
    let cluster = ws
        .wait_cluster_running("0000-000000-stopped", Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(cluster.state, ClusterState::Running);
    assert_eq!(cluster.cluster_id, "0000-000000-stopped");
    // Starting it again while it runs: still fine.
    ws.start_cluster("0000-000000-stopped").await.unwrap();
}

#[tokio::test]
async fn a_pending_cluster_counts_as_started_and_waits_time_out() {
    let (_emu, ws) = start(Options {
        terminated_clusters: vec!["c-slow".into()],
        cluster_start_delay: Duration::from_secs(30),
        ..options()
    })
    .await;
    ws.start_cluster("c-slow").await.unwrap();
    assert_eq!(
        ws.get_cluster("c-slow").await.unwrap().state,
        ClusterState::Pending
    );
    ws.start_cluster("c-slow").await.unwrap();
    let e = ws
        .wait_cluster_running("c-slow", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::TimedOut { .. }), "{e:?}");
    assert!(
        e.to_string().contains("c-slow") && e.to_string().contains("PENDING"),
        "{e}"
    );
}

#[tokio::test]
async fn jobs_are_listed_over_pages_by_name_and_reset() {
    let (_emu, ws) = start(options()).await;
    let settings = |name: &str, path: &str| {
        serde_json::json!({
            "name": name,
            "tasks": [{"task_key": "main", "existing_cluster_id": DEFAULT_CLUSTER_ID,
                       "notebook_task": {"notebook_path": path}}],
        })
    };
    let mut ids = Vec::new();
    for i in 0..130 {
        ids.push(
            ws.create_job_with(&settings(&format!("job-{i:03}"), "/a"))
                .await
                .unwrap(),
        );
    }
    // 130 jobs take two pages of 100.
    let all = ws.list_jobs(None).await.unwrap();
    assert_eq!(
        all.iter().map(|j| j.job_id).collect::<Vec<_>>(),
        ids,
        "every job once, in order"
    );
    let named = ws.list_jobs(Some("JOB-042")).await.unwrap();
    assert_eq!(named.len(), 1);
    assert_eq!(named[0].name(), "job-042");
    ws.reset_job(ids[42], &settings("job-042", "/b"))
        .await
        .unwrap();
    let job = ws.get_job(ids[42]).await.unwrap();
    assert_eq!(
        job.settings["tasks"][0]["notebook_task"]["notebook_path"],
        "/b"
    );
    ws.delete_job(ids[42]).await.unwrap();
    let e = ws.get_job(ids[42]).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[tokio::test]
async fn clusters_restart_report_events_and_failed_starts() {
    let (_emu, ws) = start(Options {
        terminated_clusters: vec!["0000-000000-quota".into()],
        failing_clusters: vec!["0000-000000-quota".into()],
        ..options()
    })
    .await;
    let e = ws.restart_cluster("0000-000000-quota").await.unwrap_err();
    assert_eq!(e.error_code(), Some("INVALID_STATE"), "{e}");
    let mut seen = Vec::new();
    let e = ws
        .wait_cluster("0000-000000-quota", Duration::from_secs(20), true, |p| {
            seen.push(format!("{p:?}"))
        })
        .await
        .unwrap_err();
    match &e {
        Error::ClusterNotRunning { state, reason, .. } => {
            assert_eq!(*state, ClusterState::Terminated);
            assert_eq!(
                reason.as_ref().unwrap().code,
                "CLOUD_PROVIDER_LAUNCH_FAILURE"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("QuotaExceeded"), "{e}");
    assert!(
        seen.iter().any(|s| s.contains("StartRequested")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|s| s.contains("TERMINATING")), "{seen:?}");

    ws.restart_cluster(DEFAULT_CLUSTER_ID).await.unwrap();
    let cluster = ws
        .wait_cluster(DEFAULT_CLUSTER_ID, Duration::from_secs(20), false, |_| {})
        .await
        .unwrap();
    assert_eq!(cluster.state, ClusterState::Running);
    let kinds: Vec<String> = ws
        .cluster_events(DEFAULT_CLUSTER_ID, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec!["RESTARTING", "RUNNING"]);
    let names: Vec<String> = ws
        .list_clusters()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.cluster_id)
        .collect();
    assert_eq!(names, vec![DEFAULT_CLUSTER_ID, "0000-000000-quota"]);
}
