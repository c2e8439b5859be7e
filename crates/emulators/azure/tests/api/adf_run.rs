//! Pipeline runs execute their activities: dependency conditions and Data Factory's leaf rule,
//! variables and expressions, control flow, child pipelines, Databricks notebooks on an
//! in-process Databricks emulator, and activities the emulator does not execute.

use azure_emulator::Options;
use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{fast, Arm, ADF_API};

const RG: &str = "rg-run";
const DBX_TOKEN: &str = "dapi-adf-emulator-test";

async fn factory(opts: Options) -> (Arm, String) {
    let arm = Arm::start(opts).await;
    arm.put_rg(RG).await;
    let factory = format!(
        "{}/resourceGroups/{RG}/providers/Microsoft.DataFactory/factories/df-run",
        arm.sub()
    );
    let put = arm
        .call(
            Method::PUT,
            &format!("{factory}?{ADF_API}"),
            Some(json!({"location": "westeurope"})),
        )
        .await;
    assert!(put.status.is_success(), "{}", put.body);
    (arm, factory)
}

async fn put(arm: &Arm, factory: &str, kind: &str, name: &str, properties: Value) {
    let a = arm
        .call(
            Method::PUT,
            &format!("{factory}/{kind}/{name}?{ADF_API}"),
            Some(json!({"properties": properties})),
        )
        .await;
    assert!(a.status.is_success(), "{kind}/{name}: {}", a.body);
}

/// Runs a pipeline to its end: the run and its activity runs by name.
async fn run(arm: &Arm, factory: &str, pipeline: &str, parameters: Value) -> (Value, Vec<Value>) {
    let created = arm
        .call(
            Method::POST,
            &format!("{factory}/pipelines/{pipeline}/createRun?{ADF_API}"),
            Some(parameters),
        )
        .await;
    assert!(created.status.is_success(), "{}", created.body);
    let run_id = created.body["runId"].as_str().unwrap().to_string();
    for _ in 0..800 {
        let a = arm
            .call(
                Method::GET,
                &format!("{factory}/pipelineruns/{run_id}?{ADF_API}"),
                None,
            )
            .await;
        if matches!(
            a.body["status"].as_str(),
            Some("Succeeded" | "Failed" | "Cancelled")
        ) {
            let q = arm
                .call(
                    Method::POST,
                    &format!("{factory}/pipelineruns/{run_id}/queryActivityruns?{ADF_API}"),
                    Some(json!({"lastUpdatedAfter": "2020-01-01T00:00:00Z", "lastUpdatedBefore": "2100-01-01T00:00:00Z"})),
                )
                .await;
            return (a.body, q.body["value"].as_array().unwrap().clone());
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("run {run_id} of {pipeline} never finished");
}

fn find<'a>(runs: &'a [Value], name: &str) -> &'a Value {
    runs.iter()
        .find(|r| r["activityName"] == name)
        .unwrap_or_else(|| panic!("no activity run of {name}: {runs:#?}"))
}

fn names(runs: &[Value]) -> Vec<&str> {
    runs.iter()
        .map(|r| r["activityName"].as_str().unwrap())
        .collect()
}

fn dep(activity: &str, condition: &str) -> Value {
    json!([{"activity": activity, "dependencyConditions": [condition]}])
}

fn fail(name: &str) -> Value {
    json!({"name": name, "type": "Fail", "typeProperties": {"message": "boom", "errorCode": "500"}})
}

fn set(name: &str, depends: Value, value: Value) -> Value {
    json!({"name": name, "type": "SetVariable", "dependsOn": depends, "typeProperties": {"variableName": "v", "value": value}})
}

#[tokio::test]
async fn dependency_conditions_and_the_leaf_rule_decide_the_run() {
    let (arm, f) = factory(fast()).await;
    let vars = json!({"v": {"type": "String"}});
    // Try-catch: the failure is handled, the run succeeds.
    put(&arm, &f, "pipelines", "trycatch", json!({"variables": vars, "activities": [fail("A"), set("B", dep("A", "Failed"), json!("caught"))]})).await;
    // Do-if-else: the failure path ran, but the skipped leaf's parent failed: the run fails.
    put(&arm, &f, "pipelines", "ifelse", json!({"variables": vars, "activities": [fail("A"),
        set("B", dep("A", "Succeeded"), json!("ok")), set("C", dep("A", "Failed"), json!("handled"))]})).await;
    // Completed runs after a failure; Skipped runs only after a skipped activity.
    put(&arm, &f, "pipelines", "completed", json!({"variables": vars, "activities": [fail("A"),
        set("B", dep("A", "Completed"), json!("after")), set("C", dep("B", "Skipped"), json!("never")),
        set("D", dep("A", "Succeeded"), json!("never")), set("E", dep("D", "Skipped"), json!("skipped-path"))]})).await;

    let (body, runs) = run(&arm, &f, "trycatch", json!({})).await;
    assert_eq!(body["status"], "Succeeded", "{body}");
    assert_eq!(find(&runs, "A")["status"], "Failed");
    assert_eq!(find(&runs, "A")["error"]["message"], "boom");
    assert_eq!(find(&runs, "B")["output"]["value"], "caught");

    let (body, runs) = run(&arm, &f, "ifelse", json!({})).await;
    assert_eq!(body["status"], "Failed");
    assert_eq!(body["message"], "Operation on target A failed: boom");
    assert_eq!(
        names(&runs),
        ["A", "C"],
        "a skipped activity has no activity run"
    );

    let (body, runs) = run(&arm, &f, "completed", json!({})).await;
    assert_eq!(names(&runs), ["A", "B", "E"]);
    assert_eq!(
        body["status"], "Succeeded",
        "leaves C (skipped: B succeeded) and E succeeded: {body}"
    );
}

#[tokio::test]
async fn variables_expressions_and_control_flow_execute() {
    let (arm, f) = factory(fast()).await;
    put(&arm, &f, "pipelines", "flow", json!({
        "parameters": {"name": {"type": "String"}, "count": {"type": "Int", "defaultValue": 2}},
        "variables": {"greeting": {"type": "String"}, "seen": {"type": "Array"}, "parallel": {"type": "Array", "defaultValue": []}},
        "activities": [
            {"name": "Greet", "type": "SetVariable", "typeProperties": {"variableName": "greeting",
                "value": {"value": "@concat('hello ', pipeline().parameters.name, ' #', string(add(int(pipeline().parameters.count), 1)))", "type": "Expression"}}},
            {"name": "Loop", "type": "ForEach", "dependsOn": dep("Greet", "Succeeded"), "typeProperties": {
                "isSequential": true, "items": {"value": "@createArray('a', 'b', 'c')", "type": "Expression"},
                "activities": [{"name": "Add", "type": "AppendVariable", "typeProperties": {"variableName": "seen", "value": "@{item()}-@{variables('greeting')}"}}]}},
            {"name": "Batched", "type": "ForEach", "dependsOn": dep("Loop", "Succeeded"), "typeProperties": {
                "batchCount": 2, "items": {"value": "@split('1,2,3', ',')", "type": "Expression"},
                "activities": [
                    {"name": "Pause", "type": "Wait", "typeProperties": {"waitTimeInSeconds": 0}},
                    {"name": "AddP", "type": "AppendVariable", "dependsOn": dep("Pause", "Succeeded"), "typeProperties": {"variableName": "parallel", "value": "@int(item())"}}]}},
            {"name": "Check", "type": "IfCondition", "dependsOn": dep("Batched", "Succeeded"), "typeProperties": {
                "expression": {"value": "@equals(length(variables('seen')), 3)", "type": "Expression"},
                "ifTrueActivities": [{"name": "Yes", "type": "SetVariable", "typeProperties": {"variableName": "greeting", "value": "@if(contains(variables('seen'), 'b-hello x #3'), 'found', 'missing')"}}],
                "ifFalseActivities": [fail("No")]}},
            {"name": "Stop", "type": "Fail", "dependsOn": dep("Check", "Succeeded"), "typeProperties": {
                "message": {"value": "@{variables('greeting')} in @{pipeline().Pipeline} run @{pipeline().RunId}: @{string(variables('parallel'))}", "type": "Expression"},
                "errorCode": "@string(pipeline().parameters.count)"}}
        ]})).await;

    let (body, runs) = run(&arm, &f, "flow", json!({"name": "x"})).await;
    let run_id = body["runId"].as_str().unwrap();
    assert_eq!(find(&runs, "Greet")["output"]["value"], "hello x #3");
    assert_eq!(
        runs.iter().filter(|r| r["activityName"] == "Add").count(),
        3
    );
    assert_eq!(find(&runs, "Yes")["output"]["value"], "found");
    let stop = find(&runs, "Stop");
    assert_eq!(stop["status"], "Failed");
    assert_eq!(stop["error"]["errorCode"], "2");
    let message = stop["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("found in flow run {run_id}: [")),
        "{message}"
    );
    for n in ["1", "2", "3"] {
        assert!(
            message.contains(n),
            "every batched iteration appended: {message}"
        );
    }
    assert_eq!(body["status"], "Failed");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("Operation on target Stop failed: found in flow"));
    assert_eq!(
        find(&runs, "Greet")["input"]["value"],
        "hello x #3",
        "input shows evaluated properties"
    );

    // An expression error fails its activity with a message that names the problem.
    put(
        &arm,
        &f,
        "pipelines",
        "bad",
        json!({"variables": {"v": {"type": "String"}},
        "activities": [set("S", json!([]), json!("@variables('undeclared')"))]}),
    )
    .await;
    let (body, runs) = run(&arm, &f, "bad", json!({})).await;
    assert_eq!(body["status"], "Failed");
    assert!(find(&runs, "S")["error"]["message"]
        .as_str()
        .unwrap()
        .contains("'undeclared'"));
}

#[tokio::test]
async fn execute_pipeline_starts_a_child_run_and_waits_for_it() {
    let (arm, f) = factory(fast()).await;
    put(&arm, &f, "pipelines", "child", json!({"parameters": {"what": {"type": "String"}},
        "activities": [{"name": "Check", "type": "IfCondition", "typeProperties": {
            "expression": {"value": "@equals(pipeline().parameters.what, 'good')", "type": "Expression"},
            "ifFalseActivities": [{"name": "Refuse", "type": "Fail", "typeProperties": {"message": "@concat('bad input: ', pipeline().parameters.what)", "errorCode": "400"}}]}}]})).await;
    put(&arm, &f, "pipelines", "parent", json!({"parameters": {"what": {"type": "String"}},
        "activities": [{"name": "RunChild", "type": "ExecutePipeline", "typeProperties": {
            "pipeline": {"referenceName": "child", "type": "PipelineReference"}, "waitOnCompletion": true,
            "parameters": {"what": "@pipeline().parameters.what"}}}]})).await;

    let (body, runs) = run(&arm, &f, "parent", json!({"what": "good"})).await;
    assert_eq!(body["status"], "Succeeded", "{body}");
    let child_id = find(&runs, "RunChild")["output"]["pipelineRunId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(child_id, body["runId"].as_str().unwrap());
    let child = arm
        .call(
            Method::GET,
            &format!("{f}/pipelineruns/{child_id}?{ADF_API}"),
            None,
        )
        .await;
    assert_eq!(child.body["pipelineName"], "child");
    assert_eq!(child.body["parameters"]["what"], "good");
    assert_eq!(child.body["runGroupId"], body["runGroupId"]);
    assert_eq!(child.body["invokedBy"]["invokedByType"], "PipelineActivity");
    assert_eq!(child.body["invokedBy"]["pipelineRunId"], body["runId"]);

    let (body, runs) = run(&arm, &f, "parent", json!({"what": "evil"})).await;
    assert_eq!(body["status"], "Failed");
    let error = find(&runs, "RunChild")["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("bad input: evil"), "{error}");
}

fn notebook(source: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(format!("# Databricks notebook source\n{source}"))
}

#[tokio::test]
async fn databricks_notebooks_run_on_the_linked_workspace_and_other_activities_are_noted() {
    let dbx = databricks_emulator::Emulator::start(databricks_emulator::Options {
        tokens: vec![DBX_TOKEN.into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    for (path, source) in [
        ("/Shared/echo", "import json\ndbutils.widgets.text('file', '')\nf = dbutils.widgets.get('file')\ndbutils.notebook.exit(json.dumps({'rows': len(f), 'file': f}))\n"),
        ("/Shared/broken", "raise FileNotFoundError('no such data file: ' + dbutils.widgets.get('file'))\n"),
    ] {
        let r = http
            .post(format!("{}/api/2.0/workspace/import", dbx.url()))
            .bearer_auth(DBX_TOKEN)
            .json(&json!({"path": path, "format": "SOURCE", "language": "PYTHON", "content": notebook(source), "overwrite": true}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    let (arm, f) = factory(fast()).await;
    put(
        &arm,
        &f,
        "linkedservices",
        "Dbx",
        json!({"type": "AzureDatabricks", "typeProperties": {
        "domain": dbx.url(), "accessToken": {"type": "SecureString", "value": DBX_TOKEN},
        "existingClusterId": databricks_emulator::DEFAULT_CLUSTER_ID}}),
    )
    .await;
    put(&arm, &f, "pipelines", "notebooks", json!({"parameters": {"file": {"type": "String"}, "path": {"type": "String"}},
        "variables": {"v": {"type": "String"}},
        "activities": [
            {"name": "CopyRaw", "type": "Copy", "typeProperties": {}},
            {"name": "Prepare", "type": "DatabricksNotebook", "dependsOn": dep("CopyRaw", "Succeeded"),
             "linkedServiceName": {"referenceName": "Dbx", "type": "LinkedServiceReference"},
             "typeProperties": {"notebookPath": "@pipeline().parameters.path", "baseParameters": {"file": {"value": "@pipeline().parameters.file", "type": "Expression"}}}},
            set("Rows", dep("Prepare", "Succeeded"), json!("@{activity('Prepare').output.runOutput.rows} rows of @{activity('Prepare').output.runOutput.file}"))]})).await;

    let (body, runs) = run(
        &arm,
        &f,
        "notebooks",
        json!({"file": "drivers.csv", "path": "/Shared/echo"}),
    )
    .await;
    assert_eq!(body["status"], "Succeeded", "{body} {runs:#?}");
    assert_eq!(
        find(&runs, "CopyRaw")["output"]["emulator"],
        "not executed: Copy activities are not emulated"
    );
    let prepare = find(&runs, "Prepare");
    assert_eq!(prepare["input"]["baseParameters"]["file"], "drivers.csv");
    assert_eq!(
        prepare["output"]["runOutput"],
        json!({"rows": 11, "file": "drivers.csv"})
    );
    assert_eq!(
        find(&runs, "Rows")["output"]["value"],
        "11 rows of drivers.csv"
    );
    assert_eq!(dbx.run_count(), 1);

    let (body, runs) = run(
        &arm,
        &f,
        "notebooks",
        json!({"file": "missing.csv", "path": "/Shared/broken"}),
    )
    .await;
    assert_eq!(body["status"], "Failed");
    let prepare = find(&runs, "Prepare");
    assert_eq!(prepare["status"], "Failed");
    let error = prepare["error"]["message"].as_str().unwrap();
    assert!(error.contains("no such data file: missing.csv"), "{error}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("no such data file: missing.csv"));
    assert!(
        !format!("{runs:?}{body}").contains(DBX_TOKEN),
        "the access token never shows"
    );

    // --adf-strict: what the emulator cannot execute fails instead of passing unnoticed.
    let (strict, sf) = factory(Options {
        adf_strict: true,
        ..fast()
    })
    .await;
    put(
        &strict,
        &sf,
        "pipelines",
        "copy",
        json!({"activities": [{"name": "CopyRaw", "type": "Copy", "typeProperties": {}}]}),
    )
    .await;
    let (body, runs) = run(&strict, &sf, "copy", json!({})).await;
    assert_eq!(body["status"], "Failed");
    assert!(find(&runs, "CopyRaw")["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--adf-strict"));
}
