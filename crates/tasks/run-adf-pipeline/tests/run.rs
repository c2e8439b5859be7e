//! The `run-adf-pipeline` binary run as the agent runs it, against the Azure emulator.

use azure_task_testkit as common;

use std::time::Duration;

use azure_emulator::{Options, Scheme, SeedFactory, SeedPipeline};
use common::{Env, Outcome, CONNECTION};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_run-adf-pipeline");
const RG: &str = "rg-data";
const FACTORY: &str = "devops-ds-adf";

/// The example's pipeline (examples/data-ingestion/adf), as a deployment would leave it.
fn example_pipeline() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../examples/data-ingestion/adf/ARMTemplateForFactory.json");
    let template: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let resource = template["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Microsoft.DataFactory/factories/pipelines")
        .unwrap()
        .clone();
    let mut properties = resource["properties"].clone();
    properties["variables"]["data_file_name"]["defaultValue"] =
        json!("driver_prediction_train.csv");
    properties["parameters"] = json!({"data_file_name": {"type": "String", "defaultValue": "driver_prediction_train.csv"}});
    // The seeded factory has no Databricks linked service (the emulator would fail the notebook
    // activity as Data Factory does); this test is about run parameters, so the run sets the
    // pipeline's variable from its parameter instead.
    properties["activities"] = json!([{"name": "UseFile", "type": "SetVariable", "typeProperties": {
        "variableName": "data_file_name", "value": "@pipeline().parameters.data_file_name"}}]);
    properties
}

fn failing_pipeline() -> Value {
    json!({
        "activities": [
            {"name": "CopyRaw", "type": "Copy", "typeProperties": {}},
            {"name": "PrepareData", "type": "DatabricksNotebook", "dependsOn": [{"activity": "CopyRaw", "dependencyConditions": ["Succeeded"]}],
             "typeProperties": {"notebookPath": "/Shared/devops-ds/data-ingestion",
                "emulatorFailure": {"errorCode": "3204", "message": "Notebook failed: FileNotFoundError: driver_prediction_train.csv", "failureType": "UserError"}}}
        ]
    })
}

fn options(queued: u32, in_progress: u32) -> Options {
    Options {
        adf_queued_polls: queued,
        adf_in_progress_polls: in_progress,
        factories: vec![SeedFactory {
            resource_group: RG.into(),
            location: "westeurope".into(),
            name: FACTORY.into(),
            pipelines: vec![
                SeedPipeline {
                    name: "data-ingestion-pipeline".into(),
                    properties: example_pipeline(),
                },
                SeedPipeline {
                    name: "failing-pipeline".into(),
                    properties: failing_pipeline(),
                },
            ],
        }],
        ..Options::default()
    }
}

fn inputs<'a>(pipeline: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("ConnectedServiceName", CONNECTION),
        ("resourceGroupName", RG),
        ("dataFactoryName", FACTORY),
        ("pipelineName", pipeline),
        ("pollIntervalSeconds", "1"),
    ];
    v.extend_from_slice(extra);
    v
}

fn runs(env: &Env) -> Vec<Value> {
    env.emulator.state()["pipelineRuns"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn runs_with_parameters_under_every_auth_scheme() {
    for scheme in [
        Scheme::ServicePrincipal,
        Scheme::WorkloadIdentityFederation,
        Scheme::ManagedServiceIdentity,
    ] {
        let env = Env::with_options(scheme, options(1, 1));
        let out = env.run(
            BIN,
            &inputs(
                "data-ingestion-pipeline",
                &[("pipelineParameters", r#"{"data_file_name": "qa.csv"}"#)],
            ),
        );
        assert!(out.succeeded(), "{scheme:?}: {}", out.dump());
        out.assert_no_secret(&env.secrets());
        let all = runs(&env);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0]["parameters"]["data_file_name"], "qa.csv");
        assert_eq!(all[0]["status"], "Succeeded");
        let (run_id, _, is_output) = out.variable("runId").unwrap();
        assert_eq!(run_id, all[0]["runId"].as_str().unwrap());
        assert!(is_output);
        assert_eq!(out.variable("runStatus").unwrap().0, "Succeeded");
    }
}

#[test]
fn a_queued_then_failed_run_shows_each_failed_activity() {
    let env = Env::with_options(Scheme::ServicePrincipal, options(2, 1));
    // The factory name by its alias, as a pipeline might write it.
    let out = env.run(
        BIN,
        &[
            ("ConnectedServiceName", CONNECTION),
            ("resourceGroupName", RG),
            ("factoryName", FACTORY),
            ("pipelineName", "failing-pipeline"),
            ("pollIntervalSeconds", "1"),
        ],
    );
    assert!(out.failed(), "{}", out.dump());
    out.assert_no_secret(&env.secrets());
    let log = out.log();
    let queued = log
        .find("is Queued")
        .expect("the queued state is reported, not failed");
    let in_progress = log.find("is InProgress").expect("then in progress");
    let failed = log.find("is Failed").expect("then failed");
    assert!(queued < in_progress && in_progress < failed, "{log}");
    assert!(
        log.contains("Activity 'PrepareData' (DatabricksNotebook) failed with error 3204, UserError:\n    Notebook failed: FileNotFoundError: driver_prediction_train.csv"),
        "{log}"
    );
    assert!(
        !log.contains("Activity 'CopyRaw'"),
        "only failed activities: {log}"
    );
    let failure = out.failure();
    assert!(
        failure.contains("ended Failed")
            && failure.contains("3204")
            && failure.contains("FileNotFoundError"),
        "{failure}"
    );
    assert!(out.variable("runId").is_some());
    assert_eq!(out.variable("runStatus").unwrap().0, "Failed");
}

#[test]
fn the_emulator_fail_parameter_fails_the_first_activity() {
    let env = Env::with_options(Scheme::ServicePrincipal, options(0, 1));
    let out = env.run(
        BIN,
        &inputs(
            "data-ingestion-pipeline",
            &[("pipelineParameters", r#"{"emulatorFail": true}"#)],
        ),
    );
    assert!(out.failed(), "{}", out.dump());
    assert!(
        out.log()
            .contains("Activity 'UseFile' (SetVariable) failed"),
        "{}",
        out.log()
    );
}

#[test]
fn without_waiting_the_task_only_starts_the_run() {
    let env = Env::with_options(Scheme::ServicePrincipal, options(5, 5));
    let out = env.run(
        BIN,
        &inputs("data-ingestion-pipeline", &[("waitForCompletion", "false")]),
    );
    assert!(out.succeeded(), "{}", out.dump());
    let all = runs(&env);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["status"], "Queued");
    assert_eq!(
        out.variable("runId").unwrap().0,
        all[0]["runId"].as_str().unwrap()
    );
}

#[test]
fn unknown_pipeline_and_bad_parameters_fail_clearly() {
    let env = Env::with_options(Scheme::ServicePrincipal, options(0, 0));
    let out = env.run(BIN, &inputs("no-such-pipeline", &[]));
    assert!(out.failed(), "{}", out.dump());
    assert!(
        out.failure().contains(
            "input 'Pipeline' (pipelineName): data factory 'devops-ds-adf' has no pipeline 'no-such-pipeline'"
        ) && out.failure().contains("published"),
        "{}",
        out.failure()
    );
    // An unknown factory, or resource group, is named by its input too.
    let mut wrong_factory = inputs("data-ingestion-pipeline", &[]);
    wrong_factory[2] = ("dataFactoryName", "no-such-adf");
    let out = env.run(BIN, &wrong_factory);
    assert!(
        out.failed()
            && out.failure().contains(
                "input 'Data factory' (dataFactoryName): resource group 'rg-data' has no data factory 'no-such-adf'"
            )
            && out.failure().contains("Check the name"),
        "{}",
        out.dump()
    );
    let mut wrong_group = inputs("data-ingestion-pipeline", &[]);
    wrong_group[1] = ("resourceGroupName", "rg-nope");
    let out = env.run(BIN, &wrong_group);
    assert!(
        out.failed()
            && out
                .failure()
                .contains("input 'Resource group' (resourceGroupName): subscription '")
            && out.failure().contains("has no resource group 'rg-nope'"),
        "{}",
        out.dump()
    );
    let out = env.run(
        BIN,
        &inputs(
            "data-ingestion-pipeline",
            &[("pipelineParameters", "[\"a\"]")],
        ),
    );
    assert!(
        out.failed() && out.failure().contains("must be a JSON object"),
        "{}",
        out.dump()
    );
    assert!(runs(&env).is_empty());
}

#[test]
fn sigterm_cancels_the_run() {
    let env = Env::with_options(Scheme::ServicePrincipal, options(100_000, 1));
    let child = env.spawn(BIN, &inputs("data-ingestion-pipeline", &[]));
    let out = Outcome::terminated_after(child, "is Queued", Duration::from_millis(1200));
    assert!(out.failed(), "{}", out.dump());
    assert!(out.failure().contains("cancel"), "{}", out.failure());
    let all = runs(&env);
    let status = all[0]["status"].as_str().unwrap();
    assert!(status == "Canceling" || status == "Cancelled", "{status}");
}
