//! Data Factory runs: queued → in progress → result, activity errors, cancel.

use azure_emulator::{Options, SeedFactory, SeedPipeline};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{deployment_body, fast, Arm, ADF_API, API};

fn factory_template() -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {"factoryName": {"type": "string"}},
        "resources": [
            {"type": "Microsoft.DataFactory/factories", "apiVersion": "2018-06-01", "name": "[parameters('factoryName')]",
             "location": "[resourceGroup().location]", "properties": {}},
            {"type": "Microsoft.DataFactory/factories/pipelines", "apiVersion": "2018-06-01",
             "name": "[concat(parameters('factoryName'), '/ingest')]",
             "properties": {
                "parameters": {"date": {"type": "String", "defaultValue": "2024-01-01"}},
                "activities": [
                    {"name": "CopyRaw", "type": "Copy", "typeProperties": {}},
                    {"name": "Transform", "type": "DatabricksNotebook", "dependsOn": [{"activity": "CopyRaw", "dependencyConditions": ["Succeeded"]}],
                     "typeProperties": {"notebookPath": "/x", "emulatorFailure": {"errorCode": "3204", "message": "Notebook raised: bad input", "failureType": "UserError"}}},
                    {"name": "Publish", "type": "Copy", "dependsOn": [{"activity": "Transform", "dependencyConditions": ["Succeeded"]}], "typeProperties": {}}
                ]
             }}
        ]
    })
}

async fn poll_run(arm: &Arm, run_url: &str) -> (Vec<String>, Value) {
    let mut seen: Vec<String> = Vec::new();
    // Activities really execute (a Wait waits): poll until the run ends, noting each change.
    for _ in 0..400 {
        let a = arm.call(Method::GET, run_url, None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let status = a.body["status"].as_str().unwrap().to_string();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        if matches!(status.as_str(), "Succeeded" | "Failed" | "Cancelled") {
            return (seen, a.body);
        }
    }
    panic!("run never finished: {seen:?}");
}

#[tokio::test]
async fn a_deployed_pipeline_runs_queued_then_fails_with_the_activity_error() {
    let arm = Arm::start(Options {
        adf_queued_polls: 2,
        ..fast()
    })
    .await;
    arm.put_rg("rg-adf").await;
    let dep = format!(
        "{}/resourcegroups/rg-adf/providers/Microsoft.Resources/deployments/adf",
        arm.sub()
    );
    let (_, d) = arm
        .deploy(
            &dep,
            deployment_body(factory_template(), json!({"factoryName": {"value": "df1"}})),
        )
        .await;
    assert_eq!(d["properties"]["provisioningState"], "Succeeded", "{d}");

    let factory = format!(
        "{}/resourceGroups/rg-adf/providers/Microsoft.DataFactory/factories/df1",
        arm.sub()
    );
    let run = arm
        .call(
            Method::POST,
            &format!("{factory}/pipelines/ingest/createRun?{ADF_API}"),
            Some(json!({"date": "2024-05-01"})),
        )
        .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.body);
    let run_id = run.body["runId"].as_str().unwrap().to_string();
    let run_url = format!("{factory}/pipelineruns/{run_id}?{ADF_API}");
    let (seen, body) = poll_run(&arm, &run_url).await;
    assert_eq!(seen, ["Queued", "InProgress", "Failed"]);
    assert_eq!(body["pipelineName"], "ingest");
    assert_eq!(body["parameters"]["date"], "2024-05-01");
    assert_eq!(
        body["message"],
        "Operation on target Transform failed: Notebook raised: bad input"
    );
    assert!(body["runStart"].is_string() && body["runEnd"].is_string());
    assert!(body["durationInMs"].is_u64());

    let q = arm
        .call(Method::POST, &format!("{factory}/pipelineruns/{run_id}/queryActivityruns?{ADF_API}"),
              Some(json!({"lastUpdatedAfter": "2020-01-01T00:00:00Z", "lastUpdatedBefore": "2100-01-01T00:00:00Z"})))
        .await;
    let activities = q.body["value"].as_array().unwrap();
    assert_eq!(activities.len(), 2, "Publish never ran: {activities:?}");
    assert_eq!(activities[0]["activityName"], "CopyRaw");
    assert_eq!(activities[0]["status"], "Succeeded");
    assert_eq!(activities[1]["activityName"], "Transform");
    assert_eq!(activities[1]["activityType"], "DatabricksNotebook");
    assert_eq!(activities[1]["status"], "Failed");
    assert_eq!(activities[1]["error"]["errorCode"], "3204");
    assert_eq!(activities[1]["error"]["failureType"], "UserError");
    assert!(
        activities[1]["activityRunStart"].is_string()
            && activities[1]["activityRunEnd"].is_string()
    );

    let unknown = arm
        .call(
            Method::POST,
            &format!("{factory}/pipelines/nope/createRun?{ADF_API}"),
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nope"));
    let no_factory = arm
        .call(Method::POST, &format!("{}/resourceGroups/rg-adf/providers/Microsoft.DataFactory/factories/df2/pipelines/ingest/createRun?{ADF_API}", arm.sub()), None)
        .await;
    assert_eq!(no_factory.status, StatusCode::NOT_FOUND);
    assert_eq!(no_factory.body["error"]["code"], "ResourceNotFound");
    let _ = API;
}

fn seeded() -> Options {
    Options {
        adf_queued_polls: 1,
        factories: vec![SeedFactory {
            resource_group: "rg-seed".into(),
            location: "westeurope".into(),
            name: "df-seed".into(),
            pipelines: vec![SeedPipeline {
                name: "daily".into(),
                properties: json!({
                    "parameters": {"target": {"type": "String"}},
                    "activities": [{"name": "Wait1", "type": "Wait", "typeProperties": {"waitTimeInSeconds": 1}}]
                }),
            }],
        }],
        ..fast()
    }
}

#[tokio::test]
async fn a_seeded_pipeline_succeeds_fails_on_request_and_cancels() {
    let arm = Arm::start(seeded()).await;
    let factory = format!(
        "{}/resourceGroups/rg-seed/providers/Microsoft.DataFactory/factories/df-seed",
        arm.sub()
    );
    let create = |body: Value| {
        let url = format!("{factory}/pipelines/daily/createRun?{ADF_API}");
        let arm = &arm;
        async move { arm.call(Method::POST, &url, Some(body)).await }
    };

    let missing = create(json!({})).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("'target'"));

    let ok = create(json!({"target": "lake"})).await;
    let run_url = format!(
        "{factory}/pipelineruns/{}?{ADF_API}",
        ok.body["runId"].as_str().unwrap()
    );
    let (seen, body) = poll_run(&arm, &run_url).await;
    assert_eq!(seen, ["Queued", "InProgress", "Succeeded"]);
    assert_eq!(body["message"], "");

    let failing = create(json!({"target": "lake", "emulatorFail": true})).await;
    let run_id = failing.body["runId"].as_str().unwrap().to_string();
    let (_, body) = poll_run(&arm, &format!("{factory}/pipelineruns/{run_id}?{ADF_API}")).await;
    assert_eq!(body["status"], "Failed");
    let q = arm
        .call(
            Method::POST,
            &format!("{factory}/pipelineruns/{run_id}/queryActivityruns?{ADF_API}"),
            Some(json!({"lastUpdatedAfter": "2020-01-01T00:00:00Z", "lastUpdatedBefore": "2100-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(q.body["value"][0]["error"]["errorCode"], "EmulatorFailure");

    let long = create(json!({"target": "lake"})).await;
    let run_id = long.body["runId"].as_str().unwrap().to_string();
    let run_url = format!("{factory}/pipelineruns/{run_id}?{ADF_API}");
    let first = arm.call(Method::GET, &run_url, None).await;
    assert_eq!(first.body["status"], "Queued");
    let cancel = arm
        .call(
            Method::POST,
            &format!("{factory}/pipelineruns/{run_id}/cancel?isRecursive=true&{ADF_API}"),
            None,
        )
        .await;
    assert_eq!(cancel.status, StatusCode::OK);
    let (seen, body) = poll_run(&arm, &run_url).await;
    assert_eq!(seen, ["Canceling", "Cancelled"]);
    assert!(body["runEnd"].is_string());
    let again = arm
        .call(
            Method::POST,
            &format!("{factory}/pipelineruns/{run_id}/cancel?isRecursive=true&{ADF_API}"),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);

    let in_progress = create(json!({"target": "lake"})).await;
    let run_id = in_progress.body["runId"].as_str().unwrap().to_string();
    let run_url = format!("{factory}/pipelineruns/{run_id}?{ADF_API}");
    arm.call(Method::GET, &run_url, None).await;
    assert_eq!(
        arm.call(Method::GET, &run_url, None).await.body["status"],
        "InProgress"
    );
    arm.call(
        Method::POST,
        &format!("{factory}/pipelineruns/{run_id}/cancel?isRecursive=true&{ADF_API}"),
        None,
    )
    .await;
    assert_eq!(
        arm.call(Method::GET, &run_url, None).await.body["status"],
        "Canceling"
    );
    assert_eq!(
        arm.call(Method::GET, &run_url, None).await.body["status"],
        "Cancelled"
    );
    let q = arm
        .call(
            Method::POST,
            &format!("{factory}/pipelineruns/{run_id}/queryActivityruns?{ADF_API}"),
            Some(json!({"lastUpdatedAfter": "2020-01-01T00:00:00Z", "lastUpdatedBefore": "2100-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(q.body["value"][0]["status"], "Cancelled");

    let unknown_run = arm
        .call(
            Method::GET,
            &format!("{factory}/pipelineruns/00000000-0000-0000-0000-000000000000?{ADF_API}"),
            None,
        )
        .await;
    assert_eq!(unknown_run.status, StatusCode::NOT_FOUND);
    assert_eq!(arm.emu.state()["pipelineRuns"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn factories_and_pipelines_answer_as_data_factory_does() {
    let arm = Arm::start(fast()).await;
    arm.put_rg("rg-objects").await;
    let factory = format!(
        "{}/resourceGroups/rg-objects/providers/Microsoft.DataFactory/factories/objs",
        arm.sub()
    );
    // A factory's object needs its factory.
    let orphan = arm
        .call(
            Method::PUT,
            &format!("{factory}/pipelines/p?{ADF_API}"),
            Some(json!({"properties": {"activities": []}})),
        )
        .await;
    assert_eq!(orphan.status, StatusCode::NOT_FOUND);
    let mut etags = Vec::new();
    for _ in 0..2 {
        let put = arm
            .call(
                Method::PUT,
                &format!("{factory}?{ADF_API}"),
                Some(json!({"location": "westeurope", "properties": {}})),
            )
            .await;
        // 200 on create and on update, never 201.
        assert_eq!(put.status, StatusCode::OK, "{}", put.body);
        let p = &put.body["properties"];
        assert_eq!(p["provisioningState"], "Succeeded");
        assert_eq!(p["version"], "2018-06-01");
        assert!(p["createTime"].is_string());
        etags.push((put.body["eTag"].clone(), p["createTime"].clone()));
    }
    assert_ne!(etags[0].0, etags[1].0, "a new etag on every write");
    assert_eq!(etags[0].1, etags[1].1, "createTime stays");
    let pipeline = arm
        .call(
            Method::PUT,
            &format!("{factory}/pipelines/ingest?{ADF_API}"),
            Some(json!({"properties": {"activities": [{"name": "W", "type": "Wait", "typeProperties": {"waitTimeInSeconds": 1}}]}})),
        )
        .await;
    assert_eq!(pipeline.status, StatusCode::OK);
    assert_eq!(
        pipeline.body["name"], "ingest",
        "its own name, not factory/name"
    );
    assert!(pipeline.body["etag"].is_string());
    let list = arm
        .call(Method::GET, &format!("{factory}/pipelines?{ADF_API}"), None)
        .await;
    assert_eq!(list.body["value"][0]["name"], "ingest");
    let factories = arm
        .call(
            Method::GET,
            &format!(
                "{}/resourceGroups/rg-objects/providers/Microsoft.DataFactory/factories?{ADF_API}",
                arm.sub()
            ),
            None,
        )
        .await;
    assert_eq!(
        factories.body["value"].as_array().map(Vec::len),
        Some(1),
        "the factory, not its pipeline: {}",
        factories.body
    );
}
