//! The task's library run in-process, for a timeout of seconds (the input counts minutes).

use azure_task_testkit as common;

use std::time::Duration;

use azure_emulator::{Options, Scheme, SeedFactory, SeedPipeline};
use common::{Env, CONNECTION};
use run_adf_pipeline::Inputs;
use serde_json::json;
use task_sdk::CancelSignal;
use task_sdk::{Agent, TaskContext, TaskInfo};

const INFO: TaskInfo = TaskInfo {
    name: "runadfpipeline",
    version: "0.0.0-test",
    manifest: include_str!("../../../../task-manifests/runadfpipeline/task.json"),
};

#[test]
fn a_timeout_cancels_the_run() {
    let env = Env::with_options(
        Scheme::ServicePrincipal,
        Options {
            adf_queued_polls: 100_000,
            factories: vec![SeedFactory {
                resource_group: "rg".into(),
                location: "westeurope".into(),
                name: "adf".into(),
                pipelines: vec![SeedPipeline {
                    name: "slow".into(),
                    properties: json!({"activities": [{"name": "Wait", "type": "Wait", "typeProperties": {"waitTimeInSeconds": 1}}]}),
                }],
            }],
            ..Options::default()
        },
    );
    let agent = Agent::from_vars(env.vars(&[
        ("ConnectedServiceName", CONNECTION),
        ("resourceGroupName", "rg"),
        ("dataFactoryName", "adf"),
        ("pipelineName", "slow"),
        ("pollIntervalSeconds", "1"),
    ]));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = runtime
        .block_on(async move {
            let ctx = TaskContext { agent, info: INFO };
            let mut inputs = Inputs::from_agent(&ctx.agent)?;
            inputs.timeout = Some(Duration::from_secs(3));
            let http = ctx.http_client()?;
            run_adf_pipeline::run_with(&ctx.agent, &inputs, http, &CancelSignal::never()).await
        })
        .unwrap_err();
    let message = error.message();
    assert!(
        message.contains("did not finish within 3 s")
            && message.contains("cancellation was requested"),
        "{message}"
    );
    let run = &env.emulator.state()["pipelineRuns"][0];
    assert!(
        run["status"] == "Canceling" || run["status"] == "Cancelled",
        "{run}"
    );
}
