//! Data Factory objects as a deploy writes them: references checked, triggers started and
//! stopped, a started trigger refused to a PUT, a DELETE and a template deployment.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{deployment_body, fast, Arm, ADF_API, API};

#[tokio::test]
async fn references_and_trigger_states_answer_as_data_factory_does() {
    let arm = Arm::start(fast()).await;
    arm.put_rg("rg-t").await;
    let rg = format!("{}/resourceGroups/rg-t", arm.sub());
    let factory = format!("{rg}/providers/Microsoft.DataFactory/factories/adf-t");
    let put = |path: String, body: serde_json::Value| {
        let arm = &arm;
        async move {
            arm.call(Method::PUT, &format!("{path}?{ADF_API}"), Some(body))
                .await
        }
    };
    assert_eq!(
        put(factory.clone(), json!({"location": "westeurope"}))
            .await
            .status,
        StatusCode::OK
    );
    let missing = put(
        format!("{factory}/datasets/ds"),
        json!({"properties": {"type": "Parquet", "linkedServiceName": {"referenceName": "ls_gone", "type": "LinkedServiceReference"}}}),
    )
    .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.body["error"]["code"], "BadRequest");
    assert_eq!(
        missing.body["error"]["message"],
        "The document creation or update failed because of invalid reference 'ls_gone'."
    );
    let state = arm.emu.state();
    assert_eq!(state["adfWrites"], 0, "a refused write is not a write");
    assert_eq!(
        put(
            format!("{factory}/pipelines/p"),
            json!({"properties": {"activities": []}})
        )
        .await
        .status,
        StatusCode::OK
    );
    let trigger = json!({"properties": {"type": "ScheduleTrigger", "runtimeState": "Started",
        "pipelines": [{"pipelineReference": {"referenceName": "p", "type": "PipelineReference"}}],
        "typeProperties": {"recurrence": {"frequency": "Day", "interval": 1}}}});
    let created = put(format!("{factory}/triggers/t"), trigger.clone()).await;
    assert_eq!(created.status, StatusCode::OK);
    assert_eq!(
        created.body["properties"]["runtimeState"], "Stopped",
        "read-only: a new trigger is stopped"
    );
    let start = arm
        .call(
            Method::POST,
            &format!("{factory}/triggers/t/start?{ADF_API}"),
            None,
        )
        .await;
    assert_eq!(start.status, StatusCode::OK);
    let got = arm
        .call(
            Method::GET,
            &format!("{factory}/triggers/t?{ADF_API}"),
            None,
        )
        .await;
    assert_eq!(got.body["properties"]["runtimeState"], "Started");
    let refused = put(format!("{factory}/triggers/t"), trigger.clone()).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.body["error"]["code"], "TriggerEnabledCannotUpdate");
    let delete = arm
        .call(
            Method::DELETE,
            &format!("{factory}/triggers/t?{ADF_API}"),
            None,
        )
        .await;
    assert_eq!(delete.body["error"]["code"], "TriggerEnabledCannotUpdate");
    // A template deployment that changes the started trigger fails the same way.
    let template = json!({"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0", "resources": [{"type": "Microsoft.DataFactory/factories/triggers", "apiVersion": "2018-06-01",
        "name": "adf-t/t", "properties": trigger["properties"]}]});
    let deployment = format!("{rg}/providers/Microsoft.Resources/deployments/d1");
    let (_, done) = arm
        .deploy(&deployment, deployment_body(template.clone(), json!({})))
        .await;
    assert_eq!(done["properties"]["provisioningState"], "Failed");
    let ops = arm
        .call(Method::GET, &format!("{deployment}/operations?{API}"), None)
        .await;
    assert!(
        ops.body.to_string().contains("TriggerEnabledCannotUpdate"),
        "{}",
        ops.body
    );
    let stop = arm
        .call(
            Method::POST,
            &format!("{factory}/triggers/t/stop?{ADF_API}"),
            None,
        )
        .await;
    assert_eq!(stop.status, StatusCode::OK);
    let deployment = format!("{rg}/providers/Microsoft.Resources/deployments/d2");
    let (_, done) = arm
        .deploy(&deployment, deployment_body(template, json!({})))
        .await;
    assert_eq!(
        done["properties"]["provisioningState"], "Succeeded",
        "{done}"
    );
    let got = arm
        .call(
            Method::GET,
            &format!("{factory}/triggers/t?{ADF_API}"),
            None,
        )
        .await;
    assert_eq!(got.body["properties"]["runtimeState"], "Stopped");
    let unknown = arm
        .call(
            Method::POST,
            &format!("{factory}/triggers/nope/start?{ADF_API}"),
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}
