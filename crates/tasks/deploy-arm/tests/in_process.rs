//! The task's library run in-process, for what a process test cannot do quickly: a timeout of
//! seconds (the input counts minutes), and cancellation before the deployment starts.

use azure_task_testkit as common;

use std::time::Duration;

use azure_emulator::{Options, Scheme};
use common::{Env, CONNECTION};
use deploy_arm::inputs::Inputs;
use serde_json::json;
use task_sdk::CancelSignal;
use task_sdk::{Agent, TaskContext, TaskError, TaskInfo};

const INFO: TaskInfo = TaskInfo {
    name: "deployarm",
    version: "0.0.0-test",
    manifest: include_str!("../../../../task-manifests/deployarm/task.json"),
};

fn template() -> String {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [{"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01", "name": "stslow",
            "location": "westeurope", "properties": {}}]
    })
    .to_string()
}

fn run(env: &Env, timeout: Option<Duration>, already_cancelled: bool) -> Result<(), TaskError> {
    let agent = Agent::from_vars(env.vars(&[
        ("ConnectedServiceName", CONNECTION),
        ("resourceGroupName", "rg-slow"),
        ("location", "westeurope"),
        ("csmFile", "template.json"),
        ("deploymentName", "slow"),
    ]));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let ctx = TaskContext { agent, info: INFO };
        let mut inputs = Inputs::from_agent(&ctx.agent)?;
        inputs.timeout = timeout;
        let http = ctx.http_client()?;
        let cancel = if already_cancelled {
            // A signal that fires at once.
            CancelSignal::spawn(async {}).await
        } else {
            CancelSignal::never()
        };
        deploy_arm::deploy::run_with(&ctx.agent, &inputs, http, &cancel).await
    })
}

fn slow() -> Env {
    let env = Env::with_options(
        Scheme::ServicePrincipal,
        Options {
            operation_steps: 100_000,
            async_retry_after_secs: 1,
            ..Options::default()
        },
    );
    env.write("template.json", template());
    env
}

#[test]
fn a_timeout_cancels_the_deployment() {
    let env = slow();
    let error = run(&env, Some(Duration::from_secs(3)), false).unwrap_err();
    let message = error.message();
    assert!(message.contains("did not finish within 3 s"), "{message}");
    assert!(message.contains("cancellation was requested"), "{message}");
    let state = env.emulator.state();
    assert_eq!(
        state["deployments"][0]["properties"]["provisioningState"], "Canceled",
        "{state}"
    );
}

#[test]
fn cancellation_before_the_deployment_starts_deploys_nothing() {
    let env = slow();
    let error = run(&env, None, true).unwrap_err();
    assert!(
        error.message().contains("nothing was deployed"),
        "{}",
        error.message()
    );
    assert!(env.emulator.state()["deployments"]
        .as_array()
        .unwrap()
        .is_empty());
}
