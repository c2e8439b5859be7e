//! ARM: resource groups, deployments at three scopes, validation, polling, paging, what-if,
//! cancel, failures.

use azure_emulator::Options;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{deployment_body, fast, Arm, API};

fn storage_template() -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "prefix": {"type": "string"},
            "count": {"type": "int", "defaultValue": 2},
            "sku": {"type": "string", "defaultValue": "Standard_LRS", "allowedValues": ["Standard_LRS", "Standard_GRS"]},
            "adminPassword": {"type": "securestring"}
        },
        "variables": {"accountName": "[concat(parameters('prefix'), 'sa')]"},
        "resources": [
            {
                "type": "Microsoft.Storage/storageAccounts",
                "apiVersion": "2023-01-01",
                "name": "[variables('accountName')]",
                "location": "[resourceGroup().location]",
                "sku": {"name": "[parameters('sku')]"},
                "properties": {"supportsHttpsTrafficOnly": true, "copies": "[parameters('count')]"}
            },
            {
                "type": "Microsoft.Web/serverfarms",
                "apiVersion": "2022-09-01",
                "name": "[concat(parameters('prefix'), '-plan')]",
                "location": "[resourceGroup().location]",
                "properties": {"reserved": true}
            },
            {
                "type": "Microsoft.KeyVault/vaults",
                "apiVersion": "2023-02-01",
                "name": "[concat(parameters('prefix'), '-kv')]",
                "location": "[resourceGroup().location]",
                "properties": {"tenantId": "[subscription().tenantId]"}
            }
        ],
        "outputs": {
            "accountName": {"type": "string", "value": "[variables('accountName')]"},
            "location": {"type": "string", "value": "[resourceGroup().location]"},
            "secret": {"type": "securestring", "value": "[parameters('adminPassword')]"},
            "later": {"type": "string", "value": "[reference('x').outputs.y]"}
        }
    })
}

fn storage_parameters() -> Value {
    json!({"prefix": {"value": "demo"}, "adminPassword": {"value": "p@ss"}})
}

#[tokio::test]
async fn resource_group_lifecycle() {
    let arm = Arm::start(fast()).await;
    let rg = format!("{}/resourcegroups/rg-life?{API}", arm.sub());
    assert_eq!(
        arm.call(Method::HEAD, &rg, None).await.status,
        StatusCode::NOT_FOUND
    );
    let a = arm.call(Method::GET, &rg, None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body["error"]["code"], "ResourceGroupNotFound");

    let missing_location = arm.call(Method::PUT, &rg, Some(json!({}))).await;
    assert_eq!(missing_location.status, StatusCode::BAD_REQUEST);

    let created = arm
        .call(Method::PUT, &rg, Some(json!({"location": "westeurope"})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["name"], "rg-life");
    assert_eq!(created.body["properties"]["provisioningState"], "Succeeded");
    assert!(created.body["id"]
        .as_str()
        .unwrap()
        .ends_with("/resourceGroups/rg-life"));
    let again = arm
        .call(Method::PUT, &rg, Some(json!({"location": "westeurope"})))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    let moved = arm
        .call(Method::PUT, &rg, Some(json!({"location": "eastus"})))
        .await;
    assert_eq!(moved.status, StatusCode::CONFLICT);
    // ARM paths are case-insensitive.
    let head = arm
        .call(
            Method::HEAD,
            &format!("{}/resourceGroups/RG-LIFE?{API}", arm.sub()),
            None,
        )
        .await;
    assert_eq!(head.status, StatusCode::NO_CONTENT);

    let deleted = arm.call(Method::DELETE, &rg, None).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    let (accepted, done) = arm.follow(&deleted.header("location")).await;
    assert_eq!(accepted, 1, "one 202 before the second poll completes");
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(
        arm.call(Method::HEAD, &rg, None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn resource_group_deployment_polls_to_success_with_outputs_and_paged_operations() {
    let arm = Arm::start(fast()).await;
    arm.put_rg("rg1").await;
    let dep = format!(
        "{}/resourcegroups/rg1/providers/Microsoft.Resources/deployments/dep1",
        arm.sub()
    );

    let validate = arm
        .call(
            Method::POST,
            &format!("{dep}/validate?{API}"),
            Some(deployment_body(storage_template(), storage_parameters())),
        )
        .await;
    assert_eq!(validate.status, StatusCode::OK, "{}", validate.body);
    assert_eq!(
        validate.body["properties"]["validatedResources"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        arm.emu.state()["resources"].as_array().unwrap().len(),
        0,
        "validate deploys nothing"
    );

    let (seen, deployment) = arm
        .deploy(
            &dep,
            deployment_body(storage_template(), storage_parameters()),
        )
        .await;
    assert_eq!(seen, ["Running", "Succeeded"]);
    let p = &deployment["properties"];
    assert_eq!(p["provisioningState"], "Succeeded");
    assert_eq!(
        p["outputs"]["accountName"],
        json!({"type": "String", "value": "demosa"})
    );
    assert_eq!(p["outputs"]["location"]["value"], "westeurope");
    assert_eq!(p["outputs"]["secret"], json!({"type": "SecureString"}));
    assert_eq!(p["outputs"]["later"]["value"], "[reference('x').outputs.y]");
    assert_eq!(p["parameters"]["count"], json!({"type": "Int", "value": 2}));
    assert_eq!(
        p["parameters"]["adminPassword"],
        json!({"type": "SecureString"})
    );
    assert!(p["duration"].as_str().unwrap().starts_with("PT"));
    assert!(p["correlationId"].is_string() && p["timestamp"].is_string());

    let state = arm.emu.state();
    let sa = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Microsoft.Storage/storageAccounts")
        .expect("storage account stored")
        .clone();
    assert_eq!(sa["name"], "demosa");
    assert_eq!(sa["location"], "westeurope");
    assert_eq!(sa["properties"]["copies"], 2);
    // Plain GET by id.
    let got = arm
        .call(
            Method::GET,
            &format!("{}?api-version=2023-01-01", sa["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["sku"]["name"], "Standard_LRS");

    // 3 resources + output evaluation = 4 operations, 2 per page.
    let mut url = format!("{dep}/operations?{API}");
    let mut operations = Vec::new();
    let mut pages = 0;
    loop {
        let page = arm.call(Method::GET, &url, None).await;
        assert_eq!(page.status, StatusCode::OK);
        pages += 1;
        operations.extend(page.body["value"].as_array().unwrap().iter().cloned());
        match page.body["nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(operations.len(), 4);
    let created: Vec<&Value> = operations
        .iter()
        .filter(|o| o["properties"]["statusCode"] == "Created")
        .collect();
    assert_eq!(created.len(), 3);
    assert_eq!(
        created[0]["properties"]["targetResource"]["resourceName"],
        "demosa"
    );

    let list = arm
        .call(
            Method::GET,
            &format!(
                "{}/resourcegroups/rg1/providers/Microsoft.Resources/deployments?{API}",
                arm.sub()
            ),
            None,
        )
        .await;
    assert_eq!(
        list.body["value"].as_array().unwrap().len(),
        1,
        "{}",
        list.body
    );
    assert_eq!(list.body["value"][0]["name"], "dep1");

    // Re-deploying updates in place: statusCode OK.
    let put = arm
        .call(
            Method::PUT,
            &format!("{dep}?{API}"),
            Some(deployment_body(storage_template(), storage_parameters())),
        )
        .await;
    assert_eq!(
        put.status,
        StatusCode::OK,
        "replacing a finished deployment"
    );
}

#[tokio::test]
async fn subscription_and_management_group_scopes() {
    let arm = Arm::start(fast()).await;
    let template = json!({
        "$schema": "https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {"rgName": {"type": "string"}},
        "resources": [{
            "type": "Microsoft.Resources/resourceGroups",
            "apiVersion": "2021-04-01",
            "name": "[parameters('rgName')]",
            "location": "northeurope"
        }],
        "outputs": {"sub": {"type": "string", "value": "[subscription().subscriptionId]"}}
    });
    let dep = format!(
        "{}/providers/Microsoft.Resources/deployments/sub-dep",
        arm.sub()
    );
    let no_location = arm
        .call(
            Method::PUT,
            &format!("{dep}?{API}"),
            Some(deployment_body(
                template.clone(),
                json!({"rgName": {"value": "made-by-template"}}),
            )),
        )
        .await;
    assert_eq!(no_location.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_location.body["error"]["code"], "LocationRequired");

    let mut body = deployment_body(template, json!({"rgName": {"value": "made-by-template"}}));
    body["location"] = json!("westeurope");
    let (seen, d) = arm.deploy(&dep, body).await;
    assert_eq!(seen.last().unwrap(), "Succeeded");
    assert_eq!(d["location"], "westeurope");
    assert_eq!(
        d["properties"]["outputs"]["sub"]["value"],
        arm.emu.options().subscription_id
    );
    let rg = arm
        .call(
            Method::GET,
            &format!("{}/resourcegroups/made-by-template?{API}", arm.sub()),
            None,
        )
        .await;
    assert_eq!(rg.status, StatusCode::OK);
    assert_eq!(rg.body["location"], "northeurope");

    let mg_template = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-08-01/managementGroupDeploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [{
            "type": "Microsoft.Authorization/policyDefinitions",
            "apiVersion": "2021-06-01",
            "name": "deny-public-ip",
            "properties": {"policyType": "Custom", "mode": "All"}
        }]
    });
    let mg_dep = format!(
        "{}/providers/Microsoft.Resources/deployments/mg-dep",
        arm.mg()
    );
    let mut body = deployment_body(mg_template, json!({}));
    body["location"] = json!("westeurope");
    let (_, d) = arm.deploy(&mg_dep, body).await;
    assert_eq!(d["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        d["properties"]["outputResources"][0]["id"],
        format!(
            "{}/providers/Microsoft.Authorization/policyDefinitions/deny-public-ip",
            arm.mg()
        )
    );
    let other_mg = arm
        .call(Method::GET, &format!("/providers/Microsoft.Management/managementGroups/nope/providers/Microsoft.Resources/deployments/x?{API}"), None)
        .await;
    assert_eq!(other_mg.status, StatusCode::NOT_FOUND);
}

async fn validation_error(arm: &Arm, parameters: Value) -> Value {
    let dep = format!(
        "{}/resourcegroups/rgv/providers/Microsoft.Resources/deployments/v",
        arm.sub()
    );
    let a = arm
        .call(
            Method::POST,
            &format!("{dep}/validate?{API}"),
            Some(deployment_body(storage_template(), parameters.clone())),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    // PUT refuses the same template synchronously, creating nothing.
    let put = arm
        .call(
            Method::PUT,
            &format!("{dep}?{API}"),
            Some(deployment_body(storage_template(), parameters)),
        )
        .await;
    assert_eq!(put.status, StatusCode::BAD_REQUEST);
    assert_eq!(put.body, a.body);
    a.body["error"].clone()
}

#[tokio::test]
async fn validation_errors_use_arm_codes_and_messages() {
    let arm = Arm::start(fast()).await;
    arm.put_rg("rgv").await;

    let e = validation_error(&arm, json!({"adminPassword": {"value": "x"}})).await;
    assert_eq!(e["code"], "InvalidTemplate");
    let m = e["message"].as_str().unwrap();
    assert!(m.starts_with("Deployment template validation failed: 'The value for the template parameter 'prefix' at line '1' and column '"), "{m}");
    assert!(m.ends_with("is not provided. Please see https://aka.ms/arm-create-parameter-file for usage details.'."), "{m}");
    assert_eq!(e["additionalInfo"][0]["type"], "TemplateViolation");
    assert_eq!(
        e["additionalInfo"][0]["info"]["path"],
        "properties.template.parameters.prefix"
    );

    let e = validation_error(
        &arm,
        json!({"prefix": {"value": "a"}, "adminPassword": {"value": "x"}, "extra": {"value": 1}}),
    )
    .await;
    let m = e["message"].as_str().unwrap();
    assert!(m.contains("'The template parameters 'extra' in the parameters file are not valid; they are not present in the original template and can therefore not be provided at deployment time. The only supported parameters for this template are 'adminPassword, count, prefix, sku'."), "{m}");

    let e = validation_error(
        &arm,
        json!({"prefix": {"value": "a"}, "adminPassword": {"value": "x"}, "count": {"value": "5"}}),
    )
    .await;
    let m = e["message"].as_str().unwrap();
    assert!(
        m.contains(
            "Template parameter JToken type is not valid. Expected 'Integer'. Actual 'String'."
        ),
        "{m}"
    );

    let e = validation_error(&arm, json!({"prefix": {"value": "a"}, "adminPassword": {"value": "x"}, "sku": {"value": "Premium"}})).await;
    let m = e["message"].as_str().unwrap();
    assert!(
        m.contains("The provided value 'Premium' for the template parameter 'sku'"),
        "{m}"
    );
    assert!(
        m.contains("allowed value(s): 'Standard_LRS,Standard_GRS'"),
        "{m}"
    );

    // A Key Vault reference satisfies a secure parameter.
    let dep = format!(
        "{}/resourcegroups/rgv/providers/Microsoft.Resources/deployments/kv",
        arm.sub()
    );
    let kv = json!({"prefix": {"value": "a"}, "adminPassword": {"reference": {
        "keyVault": {"id": "/subscriptions/x/resourceGroups/y/providers/Microsoft.KeyVault/vaults/z"},
        "secretName": "admin"}}});
    let a = arm
        .call(
            Method::POST,
            &format!("{dep}/validate?{API}"),
            Some(deployment_body(storage_template(), kv)),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    // A reference to an undeclared parameter is a template error.
    let mut broken = storage_template();
    broken["resources"][1]["name"] = json!("[parameters('nope')]");
    let a = arm
        .call(
            Method::POST,
            &format!("{dep}/validate?{API}"),
            Some(deployment_body(broken, storage_parameters())),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("The template parameter 'nope' is not found"),
        "{}",
        a.body
    );

    // Missing resource group.
    let a = arm
        .call(
            Method::PUT,
            &format!(
                "{}/resourcegroups/ghost/providers/Microsoft.Resources/deployments/d?{API}",
                arm.sub()
            ),
            Some(deployment_body(storage_template(), storage_parameters())),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body["error"]["code"], "ResourceGroupNotFound");
}

fn failing_template(code: &str) -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [
            {"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2023-04-01", "name": "vnet", "location": "westeurope", "properties": {}},
            {"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2023-04-01", "name": "pip", "location": "westeurope",
             "properties": {"emulatorFailure": {"code": code, "message": "The requested SKU is not available in this region.", "policyAssignment": "deny-public-ip"}}},
            {"type": "Microsoft.Compute/disks", "apiVersion": "2023-04-02", "name": "disk", "location": "westeurope", "properties": {}}
        ]
    })
}

#[tokio::test]
async fn a_failing_resource_fails_the_deployment_with_a_nested_error_and_a_failed_operation() {
    let arm = Arm::start(fast()).await;
    arm.put_rg("rgf").await;
    let dep = format!(
        "{}/resourcegroups/rgf/providers/Microsoft.Resources/deployments/fails",
        arm.sub()
    );
    let (seen, d) = arm
        .deploy(
            &dep,
            deployment_body(failing_template("SkuNotAvailable"), json!({})),
        )
        .await;
    assert_eq!(seen, ["Running", "Failed"]);
    let error = &d["properties"]["error"];
    assert_eq!(d["properties"]["provisioningState"], "Failed");
    assert_eq!(error["code"], "DeploymentFailed");
    assert_eq!(error["details"][0]["code"], "SkuNotAvailable");
    assert!(d["properties"].get("outputs").is_none());

    let ops = arm
        .call(
            Method::GET,
            &format!("{dep}/operations?{API}&$top=10"),
            None,
        )
        .await;
    let all = ops.body["value"].as_array().unwrap();
    let failed = all
        .iter()
        .find(|o| o["properties"]["provisioningState"] == "Failed")
        .expect("a failed operation");
    assert_eq!(failed["properties"]["statusCode"], "BadRequest");
    assert_eq!(
        failed["properties"]["statusMessage"]["error"]["code"],
        "SkuNotAvailable"
    );
    assert_eq!(
        failed["properties"]["targetResource"]["resourceType"],
        "Microsoft.Network/publicIPAddresses"
    );
    assert_eq!(
        failed["properties"]["targetResource"]["resourceName"],
        "pip"
    );
    let state = arm.emu.state();
    let types: Vec<&str> = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["vnet"],
        "resources after the failure are not deployed"
    );
}

#[tokio::test]
async fn a_deny_policy_fails_preflight_naming_the_assignment() {
    let arm = Arm::start(fast()).await;
    arm.put_rg("rgp").await;
    let dep = format!(
        "{}/resourcegroups/rgp/providers/Microsoft.Resources/deployments/policy",
        arm.sub()
    );
    let a = arm
        .call(
            Method::POST,
            &format!("{dep}/validate?{API}"),
            Some(deployment_body(
                failing_template("RequestDisallowedByPolicy"),
                json!({}),
            )),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let e = &a.body["error"];
    assert_eq!(e["code"], "InvalidTemplateDeployment");
    assert_eq!(e["details"][0]["code"], "RequestDisallowedByPolicy");
    assert_eq!(e["details"][0]["target"], "pip");
    let info = &e["details"][0]["additionalInfo"][0];
    assert_eq!(info["type"], "PolicyViolation");
    assert_eq!(info["info"]["policyAssignmentName"], "deny-public-ip");
    assert!(info["info"]["policyAssignmentId"]
        .as_str()
        .unwrap()
        .ends_with("/policyAssignments/deny-public-ip"));
}

#[tokio::test]
async fn what_if_reports_changes_against_stored_resources() {
    let arm = Arm::start(fast()).await;
    arm.put_rg("rgw").await;
    let base = format!(
        "{}/resourcegroups/rgw/providers/Microsoft.Resources/deployments",
        arm.sub()
    );
    arm.deploy(
        &format!("{base}/first"),
        deployment_body(storage_template(), storage_parameters()),
    )
    .await;
    // Something deployed outside the template.
    let stray = format!("{}/resourcegroups/rgw/providers/Microsoft.Insights/components/stray?api-version=2020-02-02", arm.sub());
    assert_eq!(
        arm.call(
            Method::PUT,
            &stray,
            Some(json!({"location": "westeurope", "properties": {}}))
        )
        .await
        .status,
        StatusCode::CREATED
    );

    let mut template = storage_template();
    template["resources"][0]["properties"]["supportsHttpsTrafficOnly"] = json!(false);
    template["resources"].as_array_mut().unwrap().remove(2);
    template["resources"].as_array_mut().unwrap().push(json!({
        "type": "Microsoft.Web/sites", "apiVersion": "2022-09-01", "name": "demo-app", "location": "westeurope", "properties": {}
    }));
    let mut body = deployment_body(template, storage_parameters());
    body["properties"]["mode"] = json!("Complete");
    body["properties"]["whatIfSettings"] = json!({"resultFormat": "FullResourcePayloads"});
    let a = arm
        .call(
            Method::POST,
            &format!("{base}/second/whatIf?{API}"),
            Some(body),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    assert_eq!(a.header("retry-after"), "0");
    let (accepted, done) = arm.follow(&a.header("location")).await;
    assert_eq!(accepted, 1);
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(done.body["status"], "Succeeded");
    let changes = done.body["properties"]["changes"].as_array().unwrap();
    let kind = |suffix: &str| {
        changes
            .iter()
            .find(|c| c["resourceId"].as_str().unwrap().ends_with(suffix))
            .unwrap_or_else(|| panic!("no change for {suffix}: {changes:?}"))
            .clone()
    };
    let modify = kind("/storageAccounts/demosa");
    assert_eq!(modify["changeType"], "Modify");
    assert_eq!(
        modify["delta"],
        json!([{"path": "properties.supportsHttpsTrafficOnly", "propertyChangeType": "Modify", "before": true, "after": false}])
    );
    assert_eq!(kind("/serverfarms/demo-plan")["changeType"], "NoChange");
    assert_eq!(kind("/sites/demo-app")["changeType"], "Create");
    assert_eq!(kind("/vaults/demo-kv")["changeType"], "Delete");
    assert_eq!(kind("/components/stray")["changeType"], "Delete");
    assert_eq!(
        arm.emu.state()["resources"].as_array().unwrap().len(),
        4,
        "what-if changes nothing"
    );
}

#[tokio::test]
async fn complete_mode_deletes_what_the_template_does_not_name() {
    let arm = Arm::start(Options {
        operation_steps: 0,
        ..fast()
    })
    .await;
    arm.put_rg("rgc").await;
    let base = format!(
        "{}/resourcegroups/rgc/providers/Microsoft.Resources/deployments",
        arm.sub()
    );
    let put = arm
        .call(
            Method::PUT,
            &format!("{base}/one?{API}"),
            Some(deployment_body(storage_template(), storage_parameters())),
        )
        .await;
    assert_eq!(
        put.body["properties"]["provisioningState"], "Succeeded",
        "0 steps completes on PUT"
    );
    let mut template = storage_template();
    template["resources"].as_array_mut().unwrap().truncate(1);
    let mut body = deployment_body(template, storage_parameters());
    body["properties"]["mode"] = json!("Complete");
    let put = arm
        .call(Method::PUT, &format!("{base}/two?{API}"), Some(body))
        .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let names: Vec<String> = arm.emu.state()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["demosa"]);
}

#[tokio::test]
async fn cancel_stops_a_running_deployment_only() {
    let arm = Arm::start(Options {
        operation_steps: 5,
        ..fast()
    })
    .await;
    arm.put_rg("rgx").await;
    let dep = format!(
        "{}/resourcegroups/rgx/providers/Microsoft.Resources/deployments/long",
        arm.sub()
    );
    let put = arm
        .call(
            Method::PUT,
            &format!("{dep}?{API}"),
            Some(deployment_body(storage_template(), storage_parameters())),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let poll = arm
        .call(Method::GET, &put.header("azure-asyncoperation"), None)
        .await;
    assert_eq!(poll.body["status"], "Running");

    let again = arm
        .call(
            Method::PUT,
            &format!("{dep}?{API}"),
            Some(deployment_body(storage_template(), storage_parameters())),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["error"]["code"], "DeploymentActive");

    let cancel = arm
        .call(Method::POST, &format!("{dep}/cancel?{API}"), None)
        .await;
    assert_eq!(cancel.status, StatusCode::NO_CONTENT);
    let d = arm.call(Method::GET, &format!("{dep}?{API}"), None).await;
    assert_eq!(d.body["properties"]["provisioningState"], "Canceled");
    let poll = arm
        .call(Method::GET, &put.header("azure-asyncoperation"), None)
        .await;
    assert_eq!(poll.body["status"], "Canceled");
    assert!(arm.emu.state()["resources"].as_array().unwrap().is_empty());

    let twice = arm
        .call(Method::POST, &format!("{dep}/cancel?{API}"), None)
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    let unknown = arm
        .call(
            Method::POST,
            &format!(
                "{}/resourcegroups/rgx/providers/Microsoft.Resources/deployments/nope/cancel?{API}",
                arm.sub()
            ),
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body["error"]["code"], "DeploymentNotFound");
}
