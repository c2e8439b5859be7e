//! The client under injected faults: throttling (429 with Retry-After), 503s and dropped
//! connections. Every call must still succeed within its budget, and no run may start twice.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{http, options, TOKEN};
use databricks::{
    Auth, Compute, Error, ExportFormat, ImportFormat, Language, SubmitRun, Workspace,
};
use databricks_emulator::{DropMode, Emulator, Options, DEFAULT_CLUSTER_ID};

const NB: &str = "# Databricks notebook source\nname = dbutils.widgets.get(\"name\")\n\n# COMMAND ----------\n\ndbutils.notebook.exit(name.upper())\n";

fn workspace(emu: &Emulator, budget: Duration) -> Workspace {
    Workspace::new(&emu.url(), Auth::Token(TOKEN.into()), http(budget))
        .unwrap()
        .with_poll_interval(Duration::from_millis(20), Duration::from_millis(100))
}

fn submit(path: &str, token: Option<&str>) -> SubmitRun {
    SubmitRun {
        run_name: "faulty".into(),
        notebook_path: path.into(),
        base_parameters: [("name".to_string(), "ok".to_string())].into(),
        compute: Compute::ExistingCluster(DEFAULT_CLUSTER_ID.into()),
        timeout_seconds: None,
        idempotency_token: token.map(str::to_owned),
    }
}

/// A deployment and a run, as the tasks do them, through every kind of fault at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_and_a_run_succeed_through_throttling_503s_and_drops() {
    let emu = Emulator::start(Options {
        rate_limits: HashMap::from([("import".to_string(), 20), ("runs/get".to_string(), 10)]),
        fail_503_fraction: 0.15,
        drop_fraction: 0.15,
        drop_mode: DropMode::After,
        seed: 11,
        ..options()
    })
    .await
    .unwrap();
    let budget = Duration::from_secs(30);
    let ws = workspace(&emu, budget);
    let started = Instant::now();

    let mut deploys = tokio::task::JoinSet::new();
    for folder in 0..4 {
        let ws = ws.clone();
        deploys.spawn(async move {
            let dir = format!("/Shared/deploy/f{folder}");
            ws.mkdirs(&dir).await?;
            for n in 0..10 {
                let source = format!("{NB}# {folder}-{n}\n");
                ws.import(
                    &format!("{dir}/nb{n}"),
                    source.as_bytes(),
                    ImportFormat::Source(Language::Python),
                    true,
                )
                .await?;
            }
            Ok::<(), Error>(())
        });
    }
    while let Some(done) = deploys.join_next().await {
        done.unwrap().unwrap();
    }
    let walked = ws.walk("/Shared/deploy").await.unwrap();
    assert_eq!(walked.len(), 44, "4 folders and 40 notebooks");
    let text = ws
        .export("/Shared/deploy/f3/nb9", ExportFormat::Source)
        .await
        .unwrap();
    assert!(String::from_utf8(text).unwrap().contains("# 3-9"));

    let run_id = ws
        .submit_run(&submit("/Shared/deploy/f0/nb0", Some("pipeline-77-job-1")))
        .await
        .unwrap();
    let run = ws
        .wait_run(run_id, Some(Duration::from_secs(60)), |_| {})
        .await
        .unwrap();
    assert!(run.state.is_success(), "{run:?}");
    let output = ws.get_run_output(run.tasks[0].run_id).await.unwrap();
    assert_eq!(
        output.notebook_output.unwrap().result.as_deref(),
        Some("OK")
    );
    assert_eq!(
        emu.run_count(),
        1,
        "exactly one run: {}",
        emu.state()["runs"]
    );

    // The faults did happen: more requests reached the server than calls were made.
    assert!(
        emu.request_count("import") > 40,
        "import requests: {}",
        emu.request_count("import")
    );
    assert!(started.elapsed() < budget, "took {:?}", started.elapsed());
}

/// A submit whose answer is lost after the run started: replayed with its idempotency token,
/// it gives the same run; there is exactly one run in the emulator.
#[tokio::test]
async fn a_dropped_answer_to_an_idempotent_submit_starts_one_run() {
    let mut replayed = 0;
    for seed in 0..12 {
        let emu = Emulator::start(Options {
            drop_fraction: 0.5,
            drop_mode: DropMode::After,
            seed,
            python: Some("".into()),
            ..options()
        })
        .await
        .unwrap();
        let ws = workspace(&emu, Duration::from_secs(20));
        let run_id = ws
            .submit_run(&submit("/Shared/any", Some(&format!("token-{seed}"))))
            .await
            .unwrap();
        assert_eq!(emu.run_count(), 1, "seed {seed}");
        if emu.request_count("runs/submit") > 1 {
            replayed += 1;
        }
        let state = emu.state();
        let runs = state["runs"].as_array().expect("runs");
        assert_eq!(runs.len(), 1, "seed {seed}: {runs:?}");
        assert_eq!(
            runs[0]["run_id"].as_u64(),
            Some(run_id.0),
            "seed {seed}: {runs:?}"
        );
    }
    assert!(
        replayed >= 3,
        "the first answer was dropped for only {replayed} seeds"
    );
}

/// Without an idempotency token, a submit whose answer is lost is not replayed: the caller
/// gets a transport error, and the one run it started is the only one.
#[tokio::test]
async fn a_submit_without_token_is_never_replayed() {
    let emu = Emulator::start(Options {
        drop_fraction: 1.0,
        drop_mode: DropMode::After,
        python: Some("".into()),
        ..options()
    })
    .await
    .unwrap();
    let ws = workspace(&emu, Duration::from_secs(5));
    let e = ws
        .submit_run(&submit("/Shared/any", None))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert_eq!(emu.request_count("runs/submit"), 1);
    assert_eq!(emu.run_count(), 1);
}

/// 429 with Retry-After is honoured for every call, including a non-overwriting import
/// (the server refused it, so it never took effect).
#[tokio::test]
async fn throttled_calls_wait_and_succeed() {
    let emu = Emulator::start(Options {
        rate_limits: HashMap::from([("import".to_string(), 3), ("mkdirs".to_string(), 1)]),
        ..options()
    })
    .await
    .unwrap();
    let ws = workspace(&emu, Duration::from_secs(20));
    let started = Instant::now();
    ws.mkdirs("/Shared/t").await.unwrap();
    ws.mkdirs("/Shared/t").await.unwrap();
    for n in 0..5 {
        ws.import(
            &format!("/Shared/t/nb{n}"),
            NB.as_bytes(),
            ImportFormat::Source(Language::Python),
            false,
        )
        .await
        .unwrap();
    }
    assert_eq!(ws.list("/Shared/t").await.unwrap().len(), 5);
    assert!(emu.request_count("import") > 5 && emu.request_count("mkdirs") > 2);
    // Retry-After is whole seconds: at least one wait happened.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// 503s past the budget: the last answer is reported, typed, with the service's words.
#[tokio::test]
async fn an_outage_longer_than_the_budget_is_reported() {
    let emu = Emulator::start(Options {
        fail_503_fraction: 1.0,
        ..options()
    })
    .await
    .unwrap();
    let ws = workspace(&emu, Duration::from_millis(600));
    let started = Instant::now();
    let e = ws.list("/Shared").await.unwrap_err();
    assert!(
        matches!(&e, Error::Api { status: 503, error_code, .. } if error_code == "TEMPORARILY_UNAVAILABLE"),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        emu.request_count("list") >= 2,
        "retried: {}",
        emu.request_count("list")
    );
}
