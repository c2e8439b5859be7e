//! `deploy-arm` against an Azure Resource Manager that throttles, fails and loses answers
//! (the emulator's fault rules): the deployment completes, and exactly one is started.

use azure_task_testkit::{Env, Outcome, CONNECTION};

use azure_emulator::{FaultRule, Options, Scheme};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_deploy-arm");

fn rules(texts: &[&str]) -> Vec<FaultRule> {
    texts
        .iter()
        .map(|t| t.parse().expect("the rule parses"))
        .collect()
}

/// Deploys a one-resource template with these fault rules; the deployment finishes on poll
/// `steps`.
fn deploy(faults: &[&str], steps: u32) -> (Env, Outcome) {
    let env = Env::with_options(
        Scheme::ServicePrincipal,
        Options {
            async_retry_after_secs: 0,
            operation_steps: steps,
            faults: rules(faults),
            ..Options::default()
        },
    );
    env.write(
        "template.json",
        json!({
            "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
            "contentVersion": "1.0.0.0",
            "parameters": {"name": {"type": "string", "defaultValue": "stfaults"}},
            "resources": [{"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01",
                "name": "[parameters('name')]", "location": "westeurope", "kind": "StorageV2",
                "sku": {"name": "Standard_LRS"}, "properties": {}}],
            "outputs": {"name": {"type": "string", "value": "[parameters('name')]"}}
        })
        .to_string(),
    );
    let out = env.run(
        BIN,
        &[
            ("ConnectedServiceName", CONNECTION),
            ("resourceGroupName", "rg-faults"),
            ("location", "westeurope"),
            ("csmFile", "template.json"),
            ("deploymentName", "faults-1"),
            ("deploymentOutputs", "out"),
        ],
    );
    (env, out)
}

fn started(env: &Env) -> u64 {
    env.emulator.state()["deploymentsStarted"].as_u64().unwrap()
}

#[test]
fn completes_under_a_429_503_storm_with_one_deployment() {
    let (env, out) = deploy(
        &[
            "HEAD /subscriptions/*/resourcegroups/* 503 times=1",
            "PUT /subscriptions/*/resourcegroups/* 429 times=1",
            "POST /subscriptions/*/validate 503 times=1",
            "PUT /subscriptions/*/deployments/* 503 times=1",
            "PUT /subscriptions/*/deployments/* 429 offset=1 times=1",
            "GET /subscriptions/*/operationStatuses/* 500 times=1",
            "GET /subscriptions/*/deployments/faults-1 503 times=1",
        ],
        2,
    );
    assert!(out.succeeded(), "{}", out.dump());
    out.assert_no_secret(&env.secrets());
    assert_eq!(started(&env), 1);
    let state = env.emulator.state();
    assert_eq!(
        state["deployments"][0]["properties"]["provisioningState"],
        "Succeeded"
    );
    assert_eq!(out.variable("out.name.value").unwrap().0, "\"stfaults\"");
    // Every rule fired: the storm really happened.
    assert_eq!(faults_left(&env), 0, "{:?}", env.emulator.fault_rules());
}

/// Rules that have not fired all their times yet.
fn faults_left(env: &Env) -> usize {
    env.emulator.fault_rules().len()
}

#[test]
fn a_lost_answer_to_the_deployment_put_starts_no_second_deployment() {
    // The PUT starts the deployment, its answer is lost; the replayed PUT meets the running
    // deployment (409 DeploymentActive), which carries this PUT's correlation id. (One step:
    // reading it finishes it, so the test need not wait out the 15 s default poll interval.)
    let (env, out) = deploy(
        &["PUT /subscriptions/*/deployments/* drop-after times=1"],
        1,
    );
    assert!(out.succeeded(), "{}", out.dump());
    assert_eq!(started(&env), 1);
    assert_eq!(faults_left(&env), 0);
    assert!(out.log().contains("was lost"), "{}", out.log());

    // Lost before it reached ARM: the replay starts it, once.
    let (env, out) = deploy(
        &["PUT /subscriptions/*/deployments/* drop-before times=1"],
        1,
    );
    assert!(out.succeeded(), "{}", out.dump());
    assert_eq!(started(&env), 1);
}
