//! Data Factory runs against the emulator: queued → in progress → failed with activity
//! errors, success with parameters, cancel on timeout and on pipeline cancellation.

use std::time::{Duration, SystemTime};

use azure::{AdfError, FactoryRef, RunStatus, RunWaitOptions};
use azure_emulator::{Options, Scheme, SeedFactory, SeedPipeline};
use serde_json::json;

use crate::common::*;

fn factory_options(queued: u32, in_progress: u32) -> Options {
    Options {
        adf_queued_polls: queued,
        adf_in_progress_polls: in_progress,
        factories: vec![SeedFactory {
            resource_group: "rg-adf".into(),
            location: "westeurope".into(),
            name: "df1".into(),
            pipelines: vec![
                SeedPipeline {
                    name: "ingest".into(),
                    properties: json!({
                        "parameters": {"date": {"type": "String", "defaultValue": "2024-01-01"}},
                        "activities": [
                            {"name": "CopyRaw", "type": "Copy", "typeProperties": {}},
                            {"name": "Transform", "type": "DatabricksNotebook", "typeProperties": {"notebookPath": "/x",
                                "emulatorFailure": {"errorCode": "3204", "message": "Notebook raised: bad input", "failureType": "UserError"}}},
                            {"name": "Publish", "type": "Copy", "typeProperties": {}}
                        ]
                    }),
                },
                SeedPipeline {
                    name: "ok".into(),
                    properties: json!({"parameters": {"date": {"type": "String"}}, "activities": [{"name": "Copy", "type": "Copy", "typeProperties": {}}]}),
                },
            ],
        }],
        ..fast()
    }
}

fn factory(c: &Clients) -> FactoryRef {
    FactoryRef {
        subscription: c.subscription.clone(),
        resource_group: "rg-adf".into(),
        name: "df1".into(),
    }
}

fn quick() -> RunWaitOptions {
    RunWaitOptions {
        poll_interval: Duration::from_millis(20),
        timeout: Some(Duration::from_secs(30)),
    }
}

#[tokio::test]
async fn a_queued_run_is_waited_for_then_fails_with_activity_errors() {
    let emu = start(factory_options(2, 1)).await;
    let c = clients(&emu, Scheme::ServicePrincipal);
    let f = factory(&c);
    let started = SystemTime::now();
    let run_id = c
        .adf
        .create_run(&f, "ingest", &json!({"date": "2024-05-01"}))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let run = c
        .adf
        .wait_run(&f, &run_id, &quick(), std::future::pending(), |r| {
            seen.push(r.status.clone())
        })
        .await
        .unwrap();
    assert_eq!(
        seen,
        vec![RunStatus::Queued, RunStatus::InProgress, RunStatus::Failed]
    );
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.message.contains("Notebook raised: bad input"),
        "{}",
        run.message
    );
    assert!(run.run_end.is_some() && run.duration_ms.is_some());
    let activities = c
        .adf
        .query_activity_runs(
            &f,
            &run_id,
            started - Duration::from_secs(60),
            SystemTime::now() + Duration::from_secs(60),
        )
        .await
        .unwrap();
    let failed: Vec<_> = activities.iter().filter(|a| a.failed()).collect();
    assert_eq!(failed.len(), 1, "{activities:?}");
    assert_eq!(failed[0].name, "Transform");
    assert_eq!(failed[0].activity_type, "DatabricksNotebook");
    let error = failed[0].error.as_ref().unwrap();
    assert_eq!(
        (
            error.error_code.as_str(),
            error.message.as_str(),
            error.failure_type.as_str()
        ),
        ("3204", "Notebook raised: bad input", "UserError")
    );
    assert!(activities
        .iter()
        .find(|a| a.name == "CopyRaw")
        .unwrap()
        .error
        .is_none());
}

#[tokio::test]
async fn a_run_with_parameters_succeeds() {
    let emu = start(factory_options(1, 1)).await;
    let c = clients(&emu, Scheme::WorkloadIdentityFederation);
    let f = factory(&c);
    let run_id = c
        .adf
        .create_run(&f, "ok", &json!({"date": "2024-06-01"}))
        .await
        .unwrap();
    let run = c
        .adf
        .wait_run(&f, &run_id, &quick(), std::future::pending(), |_| {})
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.pipeline_name, "ok");
    let stored = &emu.state()["pipelineRuns"][0];
    assert_eq!(stored["parameters"]["date"], "2024-06-01");
    // A missing required parameter is the service's error, named.
    let e = c.adf.create_run(&f, "ok", &json!({})).await.unwrap_err();
    assert!(matches!(e, AdfError::Api { status: 400, .. }), "{e:?}");
    assert!(e.to_string().contains("'date'"), "{e}");
    let e = c.adf.create_run(&f, "ghost", &json!({})).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("starting pipeline 'ghost' of data factory 'df1'"),
        "{e}"
    );
}

#[tokio::test]
async fn timeout_and_pipeline_cancellation_cancel_the_run() {
    let emu = start(factory_options(1, 1_000_000)).await;
    let c = clients(&emu, Scheme::ServicePrincipal);
    let f = factory(&c);
    let run_id = c
        .adf
        .create_run(&f, "ok", &json!({"date": "x"}))
        .await
        .unwrap();
    let opts = RunWaitOptions {
        poll_interval: Duration::from_millis(50),
        timeout: Some(Duration::from_millis(400)),
    };
    let e = c
        .adf
        .wait_run(&f, &run_id, &opts, std::future::pending(), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, AdfError::TimedOut { .. }), "{e:?}");
    assert!(
        e.to_string().contains("its cancellation was requested"),
        "{e}"
    );
    // The run goes Canceling → Cancelled.
    let run = c
        .adf
        .wait_run(&f, &run_id, &quick(), std::future::pending(), |_| {})
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);

    let run_id = c
        .adf
        .create_run(&f, "ok", &json!({"date": "y"}))
        .await
        .unwrap();
    let signal = tokio::time::sleep(Duration::from_millis(200));
    let e = c
        .adf
        .wait_run(&f, &run_id, &quick(), signal, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, AdfError::Cancelled { .. }), "{e:?}");
    let e = c.adf.cancel(&f, &run_id, true).await;
    // Still Canceling until polled: a second cancel is accepted.
    assert!(e.is_ok(), "{e:?}");
}
