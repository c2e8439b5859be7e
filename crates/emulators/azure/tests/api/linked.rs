//! Linked templates: `Microsoft.Resources/deployments` resources with `templateLink` (and
//! `parametersLink`) fetched from a loopback file server and deployed as deployments of their
//! own; top-level links too; ARM's `InvalidContentLink` when a link cannot be fetched.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{deployment_body, fast, Arm, API};

/// A loopback HTTP server of fixed documents (path → body); any other path is 404. Counts
/// requests per path.
struct Files {
    base: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

fn serve(files: Vec<(&str, Value)>) -> Files {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let docs: HashMap<String, String> = files
        .into_iter()
        .map(|(p, v)| (p.to_owned(), v.to_string()))
        .collect();
    let hits = Arc::new(Mutex::new(HashMap::new()));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if stream.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head);
            let target = head.split(' ').nth(1).unwrap_or("/").to_owned();
            let path = target.split('?').next().unwrap_or("/").to_owned();
            *counted.lock().unwrap().entry(target).or_insert(0) += 1;
            let (status, body) = match docs.get(&path) {
                Some(b) => ("200 OK", b.clone()),
                None => ("404 The specified blob does not exist.", String::new()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Files { base, hits }
}

fn nested_storage() -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {"accountName": {"type": "string"}, "fail": {"type": "bool", "defaultValue": false}},
        "resources": [{
            "type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01",
            "name": "[parameters('accountName')]", "location": "westeurope",
            "properties": {"linkedFrom": "[deployment().properties.templateLink.uri]",
                           "emulatorFailure": "[if(parameters('fail'), createObject('code', 'StorageAccountAlreadyTaken', 'message', 'The storage account named x is already taken.'), null())]"}
        }]
    })
}

fn main_template() -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "_artifactsLocation": {"type": "string"},
            "_artifactsLocationSasToken": {"type": "securestring", "defaultValue": ""},
            "fail": {"type": "bool", "defaultValue": false}
        },
        "resources": [
            {"type": "Microsoft.Web/serverfarms", "apiVersion": "2022-09-01", "name": "plan1", "location": "westeurope", "properties": {}},
            {
                "type": "Microsoft.Resources/deployments", "apiVersion": "2021-04-01", "name": "linkedStorage",
                "properties": {
                    "mode": "Incremental",
                    "templateLink": {"uri": "[uri(parameters('_artifactsLocation'), concat('nested/storage.json', parameters('_artifactsLocationSasToken')))]"},
                    "parameters": {"accountName": {"value": "stnested"}, "fail": {"value": "[parameters('fail')]"}}
                }
            }
        ]
    })
}

fn rg_deployment(arm: &Arm, name: &str) -> String {
    format!(
        "{}/resourcegroups/rg1/providers/Microsoft.Resources/deployments/{name}",
        arm.sub()
    )
}

#[tokio::test]
async fn a_linked_template_is_fetched_with_its_sas_and_deployed_as_its_own_deployment() {
    let files = serve(vec![("/c/run/nested/storage.json", nested_storage())]);
    let arm = Arm::start(fast()).await;
    arm.put_rg("rg1").await;
    let parameters = json!({
        "_artifactsLocation": {"value": format!("{}/c/run/", files.base)},
        "_artifactsLocationSasToken": {"value": "?sv=1&sig=abc"}
    });
    let body = deployment_body(main_template(), parameters.clone());

    // Validation fetches the link (with the SAS) and validates the linked template too.
    let v = arm
        .call(
            Method::POST,
            &format!("{}/validate?{API}", rg_deployment(&arm, "main")),
            Some(body.clone()),
        )
        .await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.body);
    assert!(files.hits.lock().unwrap()["/c/run/nested/storage.json?sv=1&sig=abc"] >= 1);

    let (_, done) = arm.deploy(&rg_deployment(&arm, "main"), body).await;
    assert_eq!(
        done["properties"]["provisioningState"], "Succeeded",
        "{done}"
    );
    let nested = arm
        .call(
            Method::GET,
            &format!("{}?{API}", rg_deployment(&arm, "linkedStorage")),
            None,
        )
        .await;
    assert_eq!(nested.status, StatusCode::OK, "{}", nested.body);
    assert_eq!(nested.body["properties"]["provisioningState"], "Succeeded");
    let account = arm
        .call(
            Method::GET,
            &format!(
                "{}/resourcegroups/rg1/providers/Microsoft.Storage/storageAccounts/stnested?{API}",
                arm.sub()
            ),
            None,
        )
        .await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    // deployment() in the linked template shows its link.
    assert_eq!(
        account.body["properties"]["linkedFrom"],
        format!("{}/c/run/nested/storage.json?sv=1&sig=abc", files.base)
    );
    // The parent's operations name the nested deployment.
    let ops = arm
        .call(
            Method::GET,
            &format!("{}/operations?{API}&$top=10", rg_deployment(&arm, "main")),
            None,
        )
        .await;
    assert!(
        ops.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["properties"]["targetResource"]["resourceType"]
                == "Microsoft.Resources/deployments"),
        "{}",
        ops.body
    );

    // What-if previews the linked template's resources, not the deployment resource.
    let w = arm
        .call(
            Method::POST,
            &format!("{}/whatIf?{API}", rg_deployment(&arm, "main2")),
            Some(deployment_body(main_template(), parameters)),
        )
        .await;
    assert_eq!(w.status, StatusCode::ACCEPTED, "{}", w.body);
    let (_, result) = arm.follow(&w.header("location")).await;
    let changes = result.body["properties"]["changes"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        changes.iter().any(|c| c["resourceId"]
            .as_str()
            .unwrap()
            .ends_with("/storageAccounts/stnested")
            && c["changeType"] == "NoChange"),
        "{changes:?}"
    );
    assert!(
        !changes.iter().any(|c| c["resourceId"]
            .as_str()
            .unwrap()
            .contains("Microsoft.Resources/deployments")),
        "{changes:?}"
    );
}

#[tokio::test]
async fn links_that_cannot_be_fetched_fail_validation_with_invalid_content_link() {
    let files = serve(vec![]);
    let arm = Arm::start(fast()).await;
    arm.put_rg("rg1").await;
    for base in [
        format!("{}/c/missing/", files.base),
        "https://example.com/c/".to_owned(),
    ] {
        let body = deployment_body(
            main_template(),
            json!({"_artifactsLocation": {"value": base}}),
        );
        let put = arm
            .call(
                Method::PUT,
                &format!("{}?{API}", rg_deployment(&arm, "main")),
                Some(body),
            )
            .await;
        assert_eq!(put.status, StatusCode::BAD_REQUEST, "{}", put.body);
        assert_eq!(
            put.body["error"]["code"], "InvalidContentLink",
            "{}",
            put.body
        );
        let message = put.body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!(
                "Unable to download deployment content from '{base}nested/storage.json'"
            )),
            "{message}"
        );
    }
    // Nothing was started, and example.com was not contacted (loopback only).
    assert_eq!(arm.emu.state()["deploymentsStarted"], 0);
}

#[tokio::test]
async fn a_failed_linked_deployment_fails_its_parent_with_the_nested_error() {
    let files = serve(vec![("/c/nested/storage.json", nested_storage())]);
    let arm = Arm::start(fast()).await;
    arm.put_rg("rg1").await;
    let body = deployment_body(
        main_template(),
        json!({"_artifactsLocation": {"value": format!("{}/c/", files.base)}, "fail": {"value": true}}),
    );
    let (_, done) = arm.deploy(&rg_deployment(&arm, "main"), body).await;
    assert_eq!(done["properties"]["provisioningState"], "Failed", "{done}");
    let error = &done["properties"]["error"];
    assert_eq!(error["code"], "DeploymentFailed");
    assert_eq!(error["details"][0]["code"], "DeploymentFailed", "{error}");
    assert_eq!(
        error["details"][0]["details"][0]["code"], "StorageAccountAlreadyTaken",
        "{error}"
    );
    let nested = arm
        .call(
            Method::GET,
            &format!("{}?{API}", rg_deployment(&arm, "linkedStorage")),
            None,
        )
        .await;
    assert_eq!(nested.body["properties"]["provisioningState"], "Failed");
}

#[tokio::test]
async fn top_level_template_and_parameters_links_are_fetched() {
    let files = serve(vec![
        ("/t/storage.json", nested_storage()),
        (
            "/t/storage.parameters.json",
            json!({"parameters": {"accountName": {"value": "sttoplevel"}}}),
        ),
    ]);
    let arm = Arm::start(fast()).await;
    arm.put_rg("rg1").await;
    let body = json!({"properties": {
        "templateLink": {"uri": format!("{}/t/storage.json", files.base)},
        "parametersLink": {"uri": format!("{}/t/storage.parameters.json", files.base)},
        "mode": "Incremental"
    }});
    let (_, done) = arm.deploy(&rg_deployment(&arm, "top"), body).await;
    assert_eq!(
        done["properties"]["provisioningState"], "Succeeded",
        "{done}"
    );
    let all = arm.emu.state()["resources"].as_array().unwrap().clone();
    let account = all
        .iter()
        .find(|r| r["name"] == "sttoplevel")
        .expect("deployed");
    // deployment() of a linked deployment shows its link: the quickstart default of
    // `_artifactsLocation`.
    assert_eq!(
        account["properties"]["linkedFrom"],
        format!("{}/t/storage.json", files.base)
    );
}
