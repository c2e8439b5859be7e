//! ARM deployments against the emulator: each scope, validation errors, a failing resource,
//! policy denial, operations paging, what-if, cancel on timeout and on pipeline cancellation.

use std::time::Duration;

use azure::{
    ArmError, CancelOutcome, ChangeType, DeploymentMode, DeploymentRequest, ParametersSource,
    ProvisioningState, Scope, TemplateSource, WaitOptions,
};
use azure_emulator::{Options, Scheme};
use serde_json::{json, Value};

use crate::common::*;

fn storage_template() -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "name": {"type": "string"},
            "sku": {"type": "string", "defaultValue": "Standard_LRS"},
            "count": {"type": "int", "defaultValue": 1}
        },
        "variables": {"prefix": "data"},
        "resources": [
            {"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01", "name": "[parameters('name')]",
             "location": "westeurope", "sku": {"name": "[parameters('sku')]"}, "kind": "StorageV2", "properties": {}}
        ],
        "outputs": {
            "accountName": {"type": "string", "value": "[concat(variables('prefix'), '-', parameters('name'))]"},
            "count": {"type": "int", "value": "[parameters('count')]"}
        }
    })
}

fn wait() -> WaitOptions {
    WaitOptions {
        timeout: Some(Duration::from_secs(30)),
        default_interval: Duration::from_millis(50),
        min_interval: Duration::ZERO,
        ..WaitOptions::default()
    }
}

fn never() -> std::future::Pending<()> {
    std::future::pending()
}

fn rg_scope(c: &Clients, group: &str) -> Scope {
    Scope::ResourceGroup {
        subscription: c.subscription.clone(),
        group: group.into(),
    }
}

#[tokio::test]
async fn resource_group_scope_validate_deploy_wait_outputs() {
    let emu = start(fast()).await;
    let c = clients(&emu, Scheme::ServicePrincipal);
    c.arm
        .create_resource_group(&c.subscription, "rg1", "westeurope")
        .await
        .unwrap();
    let scope = rg_scope(&c, "rg1");
    let request = DeploymentRequest::inline(
        storage_template(),
        json!({"name": {"value": "st1"}, "count": {"value": 3}}),
        DeploymentMode::Incremental,
    );
    c.arm.validate(&scope, "dep-1", &request).await.unwrap();
    let started = c.arm.deploy(&scope, "dep-1", &request).await.unwrap();
    assert!(started.async_operation_url().is_some());
    assert_eq!(
        started.deployment.provisioning_state,
        ProvisioningState::Accepted
    );
    let done = c
        .arm
        .wait_deployment(&started, &wait(), never())
        .await
        .unwrap();
    assert!(done.succeeded(), "{done:?}");
    let outputs = done.outputs.unwrap();
    assert_eq!(outputs["accountName"]["value"], "data-st1");
    assert_eq!(outputs["count"]["value"], 3);
    assert_eq!(done.output_resources.len(), 1);
    let ops = c.arm.list_operations(&scope, "dep-1").await.unwrap();
    assert!(
        ops.iter().any(|o| o.resource_name.as_deref() == Some("st1")
            && o.status_code.as_deref() == Some("Created")),
        "{ops:?}"
    );
    assert_eq!(
        c.arm
            .get_deployment(&scope, "dep-1")
            .await
            .unwrap()
            .provisioning_state,
        ProvisioningState::Succeeded
    );
}

#[tokio::test]
async fn subscription_and_management_group_scopes() {
    let emu = start(fast()).await;
    let c = clients(&emu, Scheme::WorkloadIdentityFederation);
    let template = json!({
        "$schema": "https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {"rgName": {"type": "string"}},
        "resources": [{"type": "Microsoft.Resources/resourceGroups", "apiVersion": "2021-04-01", "name": "[parameters('rgName')]", "location": "northeurope", "properties": {}}],
        "outputs": {"rg": {"type": "string", "value": "[parameters('rgName')]"}}
    });
    let sub = Scope::Subscription {
        subscription: c.subscription.clone(),
    };
    let request = DeploymentRequest::inline(
        template,
        json!({"rgName": {"value": "rg-from-sub"}}),
        DeploymentMode::Incremental,
    )
    .with_location("westeurope");
    c.arm.validate(&sub, "sub-dep", &request).await.unwrap();
    let started = c.arm.deploy(&sub, "sub-dep", &request).await.unwrap();
    let done = c
        .arm
        .wait_deployment(&started, &wait(), never())
        .await
        .unwrap();
    assert!(done.succeeded(), "{done:?}");
    assert!(c
        .arm
        .resource_group_exists(&c.subscription, "rg-from-sub")
        .await
        .unwrap());

    // Without a location, ARM refuses subscription-scope deployments.
    let mut no_location = request.clone();
    no_location.location = None;
    let e = c
        .arm
        .validate(&sub, "sub-dep-2", &no_location)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("LocationRequired"), "{e}");

    let mg = Scope::ManagementGroup {
        group: emu.options().management_group_id.clone(),
    };
    let template = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-08-01/managementGroupDeploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [{"type": "Microsoft.Authorization/policyDefinitions", "apiVersion": "2021-06-01", "name": "deny-x", "properties": {"policyType": "Custom"}}],
        "outputs": {"ok": {"type": "bool", "value": true}}
    });
    let request = DeploymentRequest::inline(template, json!({}), DeploymentMode::Incremental)
        .with_location("westeurope");
    c.arm.validate(&mg, "mg-dep", &request).await.unwrap();
    let started = c.arm.deploy(&mg, "mg-dep", &request).await.unwrap();
    let done = c
        .arm
        .wait_deployment(&started, &wait(), never())
        .await
        .unwrap();
    assert!(done.succeeded(), "{done:?}");
    assert_eq!(done.outputs.unwrap()["ok"]["value"], true);
    assert!(
        done.id
            .starts_with("/providers/Microsoft.Management/managementGroups/"),
        "{}",
        done.id
    );
}

#[tokio::test]
async fn validation_errors_carry_arm_codes() {
    let emu = start(fast()).await;
    let c = clients(&emu, Scheme::ServicePrincipal);
    c.arm
        .create_resource_group(&c.subscription, "rgv", "westeurope")
        .await
        .unwrap();
    let scope = rg_scope(&c, "rgv");
    let missing =
        DeploymentRequest::inline(storage_template(), json!({}), DeploymentMode::Incremental);
    let e = c.arm.validate(&scope, "v", &missing).await.unwrap_err();
    assert!(matches!(e, ArmError::Api { status: 400, .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with("validating deployment 'v' at resource group 'rgv'"),
        "{text}"
    );
    assert!(text.contains("name"), "{text}");

    // A missing resource group is ARM's ResourceGroupNotFound.
    let e = c
        .arm
        .validate(&rg_scope(&c, "ghost"), "v", &missing)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceGroupNotFound"), "{e}");

    // A link the emulator cannot fetch (it fetches loopback addresses only): the error still
    // comes through whole.
    let linked = DeploymentRequest {
        template: TemplateSource::Link("https://example.invalid/t.json".into()),
        parameters: ParametersSource::None,
        mode: DeploymentMode::Incremental,
        location: None,
    };
    let e = c.arm.validate(&scope, "v", &linked).await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidContentLink"), "{e}");
}

fn failing_template() -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [
            {"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2023-04-01", "name": "vnet", "location": "westeurope", "properties": {}},
            {"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2023-04-01", "name": "pip", "location": "westeurope",
             "properties": {"emulatorFailure": {"code": "SkuNotAvailable", "message": "The requested SKU is not available in this region.", "statusCode": "Conflict"}}},
            {"type": "Microsoft.Compute/disks", "apiVersion": "2023-04-02", "name": "disk", "location": "westeurope", "properties": {}}
        ]
    })
}

#[tokio::test]
async fn a_failing_resource_shows_in_the_error_tree_and_its_operation() {
    let emu = start(fast()).await;
    let c = clients(&emu, Scheme::ServicePrincipal);
    c.arm
        .create_resource_group(&c.subscription, "rgf", "westeurope")
        .await
        .unwrap();
    let scope = rg_scope(&c, "rgf");
    let request =
        DeploymentRequest::inline(failing_template(), json!({}), DeploymentMode::Incremental);
    c.arm.validate(&scope, "fails", &request).await.unwrap();
    let started = c.arm.deploy(&scope, "fails", &request).await.unwrap();
    let done = c
        .arm
        .wait_deployment(&started, &wait(), never())
        .await
        .unwrap();
    assert_eq!(done.provisioning_state, ProvisioningState::Failed);
    let tree = done.error.unwrap();
    let rendered = tree.render();
    assert!(rendered.starts_with("DeploymentFailed: "), "{rendered}");
    assert!(
        rendered
            .contains("\n  SkuNotAvailable: The requested SKU is not available in this region."),
        "{rendered}"
    );

    let ops = c.arm.list_operations(&scope, "fails").await.unwrap();
    let failed: Vec<_> = ops.iter().filter(|o| o.failed()).collect();
    assert_eq!(failed.len(), 1, "{ops:?}");
    let op = failed[0];
    assert_eq!(
        op.resource_type.as_deref(),
        Some("Microsoft.Network/publicIPAddresses")
    );
    assert_eq!(op.resource_name.as_deref(), Some("pip"));
    assert_eq!(op.status_code.as_deref(), Some("Conflict"));
    assert_eq!(op.error.as_ref().unwrap().code, "SkuNotAvailable");
    // The disk after the failure was never deployed.
    assert!(!ops
        .iter()
        .any(|o| o.resource_name.as_deref() == Some("disk")));
}

#[tokio::test]
async fn operations_are_read_across_pages() {
    let emu = start(Options {
        operations_page_size: 2,
        ..fast()
    })
    .await;
    let c = clients(&emu, Scheme::ServicePrincipal);
    c.arm
        .create_resource_group(&c.subscription, "rgp", "westeurope")
        .await
        .unwrap();
    let resources: Vec<Value> = (0..5)
        .map(|i| json!({"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01", "name": format!("st{i}"), "location": "westeurope", "properties": {}}))
        .collect();
    let template = json!({"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", "contentVersion": "1.0.0.0", "resources": resources});
    let scope = rg_scope(&c, "rgp");
    let request = DeploymentRequest::inline(template, json!({}), DeploymentMode::Incremental);
    let started = c.arm.deploy(&scope, "paged", &request).await.unwrap();
    assert!(c
        .arm
        .wait_deployment(&started, &wait(), never())
        .await
        .unwrap()
        .succeeded());
    let ops = c.arm.list_operations(&scope, "paged").await.unwrap();
    let mut names: Vec<_> = ops.iter().filter_map(|o| o.resource_name.clone()).collect();
    names.sort();
    assert_eq!(names, vec!["st0", "st1", "st2", "st3", "st4"]);
}

#[tokio::test]
async fn a_deny_policy_names_the_assignment() {
    let emu = start(fast()).await;
    let c = clients(&emu, Scheme::ServicePrincipal);
    c.arm
        .create_resource_group(&c.subscription, "rgpol", "westeurope")
        .await
        .unwrap();
    let template = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [{"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2023-04-01", "name": "pip", "location": "westeurope",
            "properties": {"emulatorFailure": {"code": "RequestDisallowedByPolicy", "message": "Resource 'pip' was disallowed by policy.", "policyAssignment": "deny-public-ip", "policyDefinition": "no-public-ips"}}}]
    });
    let scope = rg_scope(&c, "rgpol");
    let request = DeploymentRequest::inline(template, json!({}), DeploymentMode::Incremental);
    let e = c.arm.validate(&scope, "pol", &request).await.unwrap_err();
    let tree = e.tree().unwrap();
    assert_eq!(tree.code, "InvalidTemplateDeployment");
    assert_eq!(
        tree.policy_assignments(),
        vec!["deny-public-ip".to_string()]
    );
    let text = e.to_string();
    assert!(
        text.contains("  RequestDisallowedByPolicy: Resource 'pip' was disallowed by policy."),
        "{text}"
    );
    assert!(
        text.contains("denied by policy assignment 'deny-public-ip' (policy 'no-public-ips')"),
        "{text}"
    );
    // The PUT is refused the same way.
    let e = c.arm.deploy(&scope, "pol", &request).await.unwrap_err();
    assert_eq!(
        e.tree().unwrap().policy_assignments(),
        vec!["deny-public-ip".to_string()]
    );
}

#[tokio::test]
async fn what_if_reports_create_modify_and_ignore() {
    let emu = start(fast()).await;
    let c = clients(&emu, Scheme::ServicePrincipal);
    c.arm
        .create_resource_group(&c.subscription, "rgw", "westeurope")
        .await
        .unwrap();
    let scope = rg_scope(&c, "rgw");
    let first = DeploymentRequest::inline(
        storage_template(),
        json!({"name": {"value": "st1"}}),
        DeploymentMode::Incremental,
    );
    let started = c.arm.deploy(&scope, "first", &first).await.unwrap();
    assert!(c
        .arm
        .wait_deployment(&started, &wait(), never())
        .await
        .unwrap()
        .succeeded());

    let mut template = storage_template();
    template["resources"].as_array_mut().unwrap().push(json!({"type": "Microsoft.Compute/disks", "apiVersion": "2023-04-02", "name": "disk1", "location": "westeurope", "properties": {"diskSizeGB": 32}}));
    let second = DeploymentRequest::inline(
        template,
        json!({"name": {"value": "st1"}, "sku": {"value": "Premium_LRS"}}),
        DeploymentMode::Incremental,
    );
    let result = c
        .arm
        .what_if(&scope, "second", &second, &wait())
        .await
        .unwrap();
    let modify = result
        .changes
        .iter()
        .find(|ch| ch.resource_id.ends_with("/storageAccounts/st1"))
        .expect("st1 change");
    assert_eq!(modify.change_type, ChangeType::Modify);
    let sku = modify
        .delta
        .iter()
        .find(|d| d.path == "sku.name")
        .expect("sku delta");
    assert_eq!(sku.property_change_type, "Modify");
    assert_eq!(sku.before, Some(json!("Standard_LRS")));
    assert_eq!(sku.after, Some(json!("Premium_LRS")));
    let create = result
        .changes
        .iter()
        .find(|ch| ch.resource_id.ends_with("/disks/disk1"))
        .expect("disk change");
    assert_eq!(create.change_type, ChangeType::Create);

    // Complete mode predicts the deletion of what the template no longer names.
    let only_disk = json!({"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", "contentVersion": "1.0.0.0",
        "resources": [{"type": "Microsoft.Compute/disks", "apiVersion": "2023-04-02", "name": "disk1", "location": "westeurope", "properties": {}}]});
    let complete = DeploymentRequest::inline(only_disk, json!({}), DeploymentMode::Complete);
    let result = c
        .arm
        .what_if(&scope, "third", &complete, &wait())
        .await
        .unwrap();
    let st1 = result
        .changes
        .iter()
        .find(|ch| {
            ch.resource_id
                .to_lowercase()
                .ends_with("/storageaccounts/st1")
        })
        .expect("st1");
    assert_eq!(st1.change_type, ChangeType::Delete);
}

#[tokio::test]
async fn a_timeout_cancels_the_deployment() {
    let emu = start(Options {
        operation_steps: 10_000,
        async_retry_after_secs: 1,
        ..Options::default()
    })
    .await;
    let c = clients(&emu, Scheme::ServicePrincipal);
    c.arm
        .create_resource_group(&c.subscription, "rgt", "westeurope")
        .await
        .unwrap();
    let scope = rg_scope(&c, "rgt");
    let request = DeploymentRequest::inline(
        storage_template(),
        json!({"name": {"value": "st1"}}),
        DeploymentMode::Incremental,
    );
    let started = c.arm.deploy(&scope, "slow", &request).await.unwrap();
    let opts = WaitOptions {
        timeout: Some(Duration::from_millis(1500)),
        ..WaitOptions::default()
    };
    let began = std::time::Instant::now();
    let e = c
        .arm
        .wait_deployment(&started, &opts, never())
        .await
        .unwrap_err();
    assert!(began.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(
            e,
            ArmError::TimedOut {
                cancel: CancelOutcome::Requested,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("did not finish within 1 s; its cancellation was requested"),
        "{e}"
    );
    assert_eq!(
        c.arm
            .get_deployment(&scope, "slow")
            .await
            .unwrap()
            .provisioning_state,
        ProvisioningState::Canceled
    );
}

#[tokio::test]
async fn pipeline_cancellation_cancels_the_deployment() {
    let emu = start(Options {
        operation_steps: 10_000,
        async_retry_after_secs: 1,
        ..Options::default()
    })
    .await;
    let c = clients(&emu, Scheme::ServicePrincipal);
    c.arm
        .create_resource_group(&c.subscription, "rgc", "westeurope")
        .await
        .unwrap();
    let scope = rg_scope(&c, "rgc");
    let request = DeploymentRequest::inline(
        storage_template(),
        json!({"name": {"value": "st1"}}),
        DeploymentMode::Incremental,
    );
    let started = c.arm.deploy(&scope, "cancelled", &request).await.unwrap();
    let signal = tokio::time::sleep(Duration::from_millis(300));
    let e = c
        .arm
        .wait_deployment(&started, &WaitOptions::default(), signal)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ArmError::Cancelled {
                cancel: CancelOutcome::Requested,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        c.arm
            .get_deployment(&scope, "cancelled")
            .await
            .unwrap()
            .provisioning_state,
        ProvisioningState::Canceled
    );
    // Cancelling a finished deployment is refused by ARM, and said so.
    let e = c.arm.cancel(&scope, "cancelled").await.unwrap_err();
    assert_eq!(e.code(), Some("DeploymentCannotBeCancelled"));
}

#[tokio::test]
async fn resource_group_delete_waits_for_the_async_operation() {
    let emu = start(fast()).await;
    let c = clients(&emu, Scheme::ServicePrincipal);
    c.arm
        .create_resource_group(&c.subscription, "rgdel", "westeurope")
        .await
        .unwrap();
    c.arm
        .delete_resource_group(&c.subscription, "rgdel", &wait())
        .await
        .unwrap();
    assert!(!c
        .arm
        .resource_group_exists(&c.subscription, "rgdel")
        .await
        .unwrap());
    let e = c
        .arm
        .delete_resource_group(&c.subscription, "rgdel", &wait())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceGroupNotFound"), "{e}");
}

#[tokio::test]
async fn a_lost_put_answer_is_followed_but_another_clients_deployment_is_not_adopted() {
    let emu = start(fast()).await;
    let c = clients(&emu, Scheme::ServicePrincipal);
    c.arm
        .create_resource_group(&c.subscription, "rg-lost", "westeurope")
        .await
        .unwrap();
    let scope = rg_scope(&c, "rg-lost");
    let request = DeploymentRequest::inline(
        storage_template(),
        json!({"name": {"value": "stlost"}}),
        DeploymentMode::Incremental,
    );
    emu.add_fault(
        "PUT /subscriptions/*/deployments/* drop-after times=1"
            .parse()
            .unwrap(),
    );
    let started = c.arm.deploy(&scope, "dep-lost", &request).await.unwrap();
    let done = c
        .arm
        .wait_deployment(&started, &wait(), never())
        .await
        .unwrap();
    assert!(done.succeeded(), "{done:?}");
    assert_eq!(emu.state()["deploymentsStarted"], 1);

    // A deployment of the same name that another client started is still running: that is a
    // conflict, not this client's lost answer.
    let first = c.arm.deploy(&scope, "dep-busy", &request).await.unwrap();
    assert_eq!(
        first.deployment.provisioning_state,
        ProvisioningState::Accepted
    );
    let second = c
        .arm
        .deploy(&scope, "dep-busy", &request)
        .await
        .unwrap_err();
    assert!(second.to_string().contains("DeploymentActive"), "{second}");
    assert_eq!(emu.state()["deploymentsStarted"], 2);
}
