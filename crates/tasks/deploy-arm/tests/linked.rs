//! Linked templates (`artifactsStorageAccount`): the template's folder staged to Azurite with
//! the service connection's Entra token, a user delegation SAS from Azurite, and the Azure
//! emulator fetching the linked template from Azurite with that SAS.
//!
//! What real Azurite checks here (`--oauth basic` over https, with the emulator's server
//! certificate): the bearer token's issuer, audience and lifetime on every upload and on
//! `Get User Delegation Key`; the user delegation SAS's signature (over the documented
//! string-to-sign), its expiry, its read permission and its container scope when the emulator
//! fetches the linked template. It does not check the token's signature or RBAC: a fake
//! storage endpoint answering 403 stands in for a missing role.

use azure_task_testkit as common;

use std::net::TcpListener;
use std::sync::atomic::Ordering;

use azure_emulator::Scheme;
use common::azurite::{with_refusing_endpoint, Azurite};
use common::{Env, Outcome, CONNECTION};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_deploy-arm");
const RG: &str = "rg-linked";

/// The quickstart convention: a main template linking `nested/storage.json` from
/// `_artifactsLocation` with `_artifactsLocationSasToken` appended.
fn main_template() -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "_artifactsLocation": {"type": "string", "defaultValue": "[deployment().properties.templateLink.uri]"},
            "_artifactsLocationSasToken": {"type": "securestring", "defaultValue": ""},
            "name": {"type": "string"}
        },
        "resources": [{
            "type": "Microsoft.Resources/deployments",
            "apiVersion": "2021-04-01",
            "name": "storage",
            "properties": {
                "mode": "Incremental",
                "templateLink": {
                    "uri": "[uri(parameters('_artifactsLocation'), concat('nested/storage.json', parameters('_artifactsLocationSasToken')))]",
                    "contentVersion": "1.0.0.0"
                },
                "parameters": {"accountName": {"value": "[parameters('name')]"}}
            }
        }],
        "outputs": {"linked": {"type": "string", "value": "[parameters('name')]"}}
    })
}

fn nested_template() -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {"accountName": {"type": "string"}},
        "resources": [{
            "type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01",
            "name": "[parameters('accountName')]", "location": "westeurope",
            "kind": "StorageV2", "sku": {"name": "Standard_LRS"}, "properties": {}
        }]
    })
}

fn write_templates(env: &Env) {
    env.write("deploy/azuredeploy.json", main_template().to_string());
    env.write("deploy/nested/storage.json", nested_template().to_string());
}

fn inputs<'a>(account: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("ConnectedServiceName", CONNECTION),
        ("resourceGroupName", RG),
        ("location", "westeurope"),
        ("csmFile", "deploy/azuredeploy.json"),
        ("overrideParameters", "-name stlinked1"),
        ("artifactsStorageAccount", account),
    ];
    v.extend_from_slice(extra);
    v
}

fn count(log: &str, word: &str) -> usize {
    log.lines()
        .filter(|l| l.trim_start().starts_with(word))
        .count()
}

/// No secret outside `task.setsecret`: the connection's, everything the task registered, and
/// nothing shaped like a SAS signature.
fn assert_clean(env: &Env, out: &Outcome) {
    let mut secrets = env.secrets();
    secrets.extend(
        out.commands
            .iter()
            .filter(|c| c.name() == "task.setsecret")
            .map(|c| c.data.clone()),
    );
    out.assert_no_secret(&secrets);
    for line in out.stdout.lines().chain(out.stderr.lines()) {
        if line.starts_with("##vso[task.setsecret]") {
            continue;
        }
        assert!(
            !line.contains("sig=") && !line.contains("skoid="),
            "a SAS appears in the output: {line}"
        );
    }
}

fn deployments(env: &Env) -> Vec<Value> {
    env.emulator.state()["deployments"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn linked_templates_are_staged_deployed_and_restaged_incrementally() {
    let env = Env::new(Scheme::ServicePrincipal);
    let azurite = Azurite::start_oauth(&env.emulator);
    write_templates(&env);
    let account = azurite.blob_endpoint();
    let run = inputs(&account, &[("artifactsPrefix", "builds/1")]);

    let out = env.run(BIN, &run);
    assert!(out.succeeded(), "{}", out.dump());
    assert_clean(&env, &out);
    let log = out.log();
    assert!(
        log.contains("Created container 'rg-linked-stageartifacts'"),
        "{log}"
    );
    assert_eq!(count(&log, "uploaded "), 2, "{log}");
    assert!(
        log.contains(&format!(
            "{account}/rg-linked-stageartifacts/builds/1/ with a read-only SAS"
        )),
        "{log}"
    );
    // The linked template ran as a deployment of its own, and its resource exists.
    let all = deployments(&env);
    let nested = all
        .iter()
        .find(|d| d["name"] == "storage")
        .expect("the linked deployment");
    assert_eq!(nested["properties"]["provisioningState"], "Succeeded");
    assert!(env.emulator.state()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "stlinked1" && r["type"] == "Microsoft.Storage/storageAccounts"));
    // The SAS went to ARM as a securestring: the deployment does not echo it.
    let main = all.iter().find(|d| d["name"] != "storage").unwrap();
    assert_eq!(
        main["properties"]["parameters"]["_artifactsLocationSasToken"],
        json!({"type": "SecureString"})
    );
    // Storage calls carried tokens for Azure Storage from the service connection.
    assert!(env.emulator.state()["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["audience"]
            .as_str()
            .is_some_and(|a| a.starts_with("https://storage.azure.com"))));

    // Again: nothing changed, nothing is uploaded again.
    let again = env.run(BIN, &run);
    assert!(again.succeeded(), "{}", again.dump());
    assert_clean(&env, &again);
    let log = again.log();
    assert_eq!(count(&log, "unchanged "), 2, "{log}");
    assert_eq!(count(&log, "uploaded "), 0, "{log}");
    assert!(!log.contains("Created container"), "{log}");
}

#[test]
fn the_users_sas_token_wins_and_a_refused_link_fails_before_deploying() {
    let env = Env::new(Scheme::ServicePrincipal);
    let azurite = Azurite::start_oauth(&env.emulator);
    write_templates(&env);
    let account = azurite.blob_endpoint();
    // A token of the user's that Azurite refuses: the emulator cannot fetch the linked
    // template with it, as ARM could not.
    let theirs = "?sv=2021-08-06&sr=c&sp=r&se=2099-01-01T00%3A00%3A00Z&sig=NotTheRightSignature0000000000000000000000%3D";
    let overrides = format!("-name stlinked2 -_artifactsLocationSasToken \"{theirs}\"");
    let out = env.run(
        BIN,
        &inputs(&account, &[("overrideParameters", &overrides)]),
    );
    assert!(out.failed(), "{}", out.dump());
    assert_clean(&env, &out);
    let log = out.log();
    assert!(
        log.contains("Parameter '_artifactsLocationSasToken' is set by the parameters file or overrideParameters: that value is used"),
        "{log}"
    );
    let failure = out.failure();
    assert!(failure.contains("InvalidContentLink"), "{}", out.dump());
    assert!(!failure.contains("NotTheRightSignature"), "{failure}");
    assert_eq!(env.emulator.state()["deploymentsStarted"], 0);
    // The default folder is per run: the deployment's (generated) name.
    assert!(log.contains("folder 'azuredeploy-"), "{log}");
}

#[test]
fn without_the_input_nothing_is_staged_and_without_the_parameter_a_warning_says_why() {
    let env = Env::new(Scheme::ServicePrincipal);
    env.write(
        "plain/template.json",
        json!({
            "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
            "contentVersion": "1.0.0.0",
            "parameters": {"name": {"type": "string"}},
            "resources": []
        })
        .to_string(),
    );
    let plain = |extra: &[(&str, &str)]| {
        let mut v = vec![
            ("ConnectedServiceName", CONNECTION),
            ("resourceGroupName", RG),
            ("location", "westeurope"),
            ("csmFile", "plain/template.json"),
            ("overrideParameters", "-name x"),
        ];
        v.extend_from_slice(extra);
        env.run(BIN, &v)
    };
    let out = plain(&[]);
    assert!(out.succeeded(), "{}", out.dump());
    assert!(!out.log().contains("Staging"), "{}", out.log());
    // Given an account the template cannot use: a warning, nothing staged (the account is
    // not even contacted: this one does not exist), the deployment as usual.
    let out = plain(&[(
        "artifactsStorageAccount",
        "http://127.0.0.1:1/devstoreaccount1",
    )]);
    assert!(out.succeeded(), "{}", out.dump());
    let warning = out
        .commands
        .iter()
        .find(|c| c.name() == "task.logissue" && c.property("type") == Some("warning"))
        .map(|c| c.data.clone())
        .unwrap_or_default();
    assert!(
        warning.contains("declares no '_artifactsLocation' parameter"),
        "{}",
        out.dump()
    );
}

#[test]
fn an_unreachable_account_fails_before_anything_changes_in_azure() {
    let env = Env::new(Scheme::ServicePrincipal);
    write_templates(&env);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let account = format!("http://127.0.0.1:{port}/devstoreaccount1");
    let out = env.run(BIN, &inputs(&account, &[]));
    assert!(out.failed(), "{}", out.dump());
    assert_clean(&env, &out);
    assert!(
        out.failure()
            .contains("staging the linked templates failed; nothing was deployed"),
        "{}",
        out.dump()
    );
    let state = env.emulator.state();
    assert_eq!(state["deploymentsStarted"], 0);
    assert_eq!(
        state["resourceGroups"].as_array().unwrap().len(),
        0,
        "the resource group is not created"
    );
    // A template at the top of the working directory would stage all of it.
    env.write("top.json", main_template().to_string());
    let mut top = inputs(&account, &[]);
    top[3] = ("csmFile", "top.json");
    let out = env.run(BIN, &top);
    assert!(out.failed(), "{}", out.dump());
    assert!(
        out.failure()
            .contains("would upload the whole working directory"),
        "{}",
        out.dump()
    );
    // A name that is neither an account name nor a URL.
    let out = env.run(BIN, &inputs("My_Account", &[]));
    assert!(out.failed(), "{}", out.dump());
    assert!(
        out.failure().contains("not a storage account name"),
        "{}",
        out.dump()
    );
}

#[test]
fn a_missing_role_gives_advice_before_the_deployment() {
    // A storage endpoint that refuses the identity, as Azure Storage does without a data role.
    let env = Env::new(Scheme::ServicePrincipal);
    write_templates(&env);
    let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not authorized to perform this operation using this permission.</Message></Error>";
    let refusal = format!("HTTP/1.1 403 This request is not authorized to perform this operation using this permission.\r\nx-ms-error-code: AuthorizationPermissionMismatch\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
    let (out, refused) = with_refusing_endpoint(&refusal, |endpoint, refused| {
        let out = env.run(BIN, &inputs(&format!("{endpoint}/acc"), &[]));
        (out, refused.load(Ordering::SeqCst))
    });
    assert!(out.failed(), "{}", out.dump());
    assert_clean(&env, &out);
    let failure = out.failure();
    assert!(
        failure.contains("AuthorizationPermissionMismatch")
            && failure.contains("Storage Blob Data Contributor"),
        "{}",
        out.dump()
    );
    assert!(refused >= 1);
    assert_eq!(env.emulator.state()["deploymentsStarted"], 0);
}
