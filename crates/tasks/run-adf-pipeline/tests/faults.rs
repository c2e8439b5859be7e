//! `run-adf-pipeline` against a Data Factory that throttles, fails and loses answers (the
//! emulator's fault rules): the run completes, and exactly one run is created, because
//! `createRun` is never replayed blindly.

use azure_task_testkit::{Env, Outcome, CONNECTION};

use azure_emulator::{FaultRule, Options, Scheme, SeedFactory, SeedPipeline};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_run-adf-pipeline");
const RG: &str = "rg-data";
const FACTORY: &str = "faults-adf";

fn run(faults: &[&str]) -> (Env, Outcome) {
    let env = Env::with_options(
        Scheme::ServicePrincipal,
        Options {
            faults: faults
                .iter()
                .map(|t| t.parse::<FaultRule>().unwrap())
                .collect(),
            factories: vec![SeedFactory {
                resource_group: RG.into(),
                location: "westeurope".into(),
                name: FACTORY.into(),
                pipelines: vec![SeedPipeline {
                    name: "ingest".into(),
                    properties: json!({
                        "parameters": {"file": {"type": "String"}, "rows": {"type": "Int", "defaultValue": 10}},
                        "activities": [{"name": "Wait1", "type": "Wait", "typeProperties": {"waitTimeInSeconds": 1}}],
                    }),
                }],
            }],
            ..Options::default()
        },
    );
    let out = env.run(
        BIN,
        &[
            ("ConnectedServiceName", CONNECTION),
            ("resourceGroupName", RG),
            ("dataFactoryName", FACTORY),
            ("pipelineName", "ingest"),
            ("pipelineParameters", r#"{"file": "a.csv", "rows": 5}"#),
            ("pollIntervalSeconds", "1"),
        ],
    );
    (env, out)
}

fn runs(env: &Env) -> Vec<Value> {
    env.emulator.state()["pipelineRuns"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The one run there is, checked against what the task reported.
fn the_one_run(env: &Env, out: &Outcome) -> Value {
    assert!(out.succeeded(), "{}", out.dump());
    out.assert_no_secret(&env.secrets());
    let all = runs(env);
    assert_eq!(all.len(), 1, "exactly one run: {all:#?}");
    assert_eq!(
        out.variable("runId").unwrap().0,
        all[0]["runId"].as_str().unwrap()
    );
    assert_eq!(all[0]["status"], "Succeeded");
    assert!(
        env.emulator.fault_rules().is_empty(),
        "every rule fired: {:?}",
        env.emulator.fault_rules()
    );
    all[0].clone()
}

#[test]
fn completes_under_a_429_503_storm_with_one_run() {
    let (env, out) = run(&[
        "POST /subscriptions/*/queryPipelineRuns 503 times=1",
        "POST /subscriptions/*/createRun 429 times=1",
        "POST /subscriptions/*/createRun 503 offset=1 times=1",
        "GET /subscriptions/*/pipelineruns/* 503 times=1",
        "GET /subscriptions/*/pipelineruns/* 429 offset=2 times=1",
    ]);
    let run = the_one_run(&env, &out);
    assert_eq!(run["parameters"], json!({"file": "a.csv", "rows": "5"}));
}

#[test]
fn a_lost_answer_to_create_run_is_found_not_repeated() {
    // The run is created, its answer lost: the task finds it instead of starting another.
    let (env, out) = run(&["POST /subscriptions/*/createRun drop-after times=1"]);
    the_one_run(&env, &out);
    assert!(out.log().contains("the answer was lost"), "{}", out.log());
}

#[test]
fn a_create_run_lost_before_it_arrived_is_sent_again_once() {
    let (env, out) = run(&["POST /subscriptions/*/createRun drop-before times=1"]);
    the_one_run(&env, &out);
}

#[test]
fn a_lost_answer_that_cannot_be_looked_up_fails_clearly_and_starts_nothing_more() {
    let (env, out) = run(&[
        "POST /subscriptions/*/createRun drop-after times=1",
        // The list taken before the POST is answered; every look-up after it fails.
        "POST /subscriptions/*/queryPipelineRuns 503 offset=1",
    ]);
    assert!(out.failed(), "{}", out.dump());
    let failure = out.failure();
    assert!(
        failure.contains("Whether the run started is unknown"),
        "{failure}"
    );
    assert!(failure.contains("Monitor"), "{failure}");
    assert_eq!(runs(&env).len(), 1, "no second run");
}
