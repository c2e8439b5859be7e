//! The `deploy-arm` binary run as the agent runs it, against the Azure emulator.

use azure_task_testkit as common;

use std::time::Duration;

use azure_emulator::{Options, Scheme};
use common::{Env, Outcome, CONNECTION};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_deploy-arm");
const RG: &str = "rg-data";

fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../examples/data-ingestion/adf")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A template with one parameter of each type, echoed as outputs.
fn typed_template() -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "s": {"type": "string", "defaultValue": "d"},
            "i": {"type": "int", "defaultValue": 1},
            "b": {"type": "bool", "defaultValue": false},
            "a": {"type": "array", "defaultValue": []},
            "o": {"type": "object", "defaultValue": {}},
        },
        "resources": [],
        "outputs": {
            "s": {"type": "string", "value": "[parameters('s')]"},
            "i": {"type": "int", "value": "[parameters('i')]"},
            "b": {"type": "bool", "value": "[parameters('b')]"},
            "a": {"type": "array", "value": "[parameters('a')]"},
            "o": {"type": "object", "value": "[parameters('o')]"},
        }
    })
}

fn storage_template(fail: Option<Value>) -> Value {
    let mut properties = json!({"supportsHttpsTrafficOnly": true, "tier": "[parameters('tier')]"});
    if let Some(f) = fail {
        properties["emulatorFailure"] = f;
    }
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {"name": {"type": "string"}, "tier": {"type": "string", "defaultValue": "Hot"}},
        "resources": [
            {"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01", "name": "[parameters('name')]",
             "location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}, "properties": properties},
            {"type": "Microsoft.Web/serverfarms", "apiVersion": "2022-03-01", "name": "[concat(parameters('name'), '-plan')]",
             "location": "westeurope", "properties": {}}
        ],
        "outputs": {"accountName": {"type": "string", "value": "[parameters('name')]"}}
    })
}

fn resources(env: &Env) -> Vec<Value> {
    env.emulator.state()["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn resource_named<'a>(all: &'a [Value], name: &str) -> Option<&'a Value> {
    all.iter().find(|r| r["name"].as_str() == Some(name))
}

fn rg_inputs<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("ConnectedServiceName", CONNECTION),
        ("resourceGroupName", RG),
        ("location", "westeurope"),
        ("csmFile", "template.json"),
    ];
    v.extend_from_slice(extra);
    v
}

fn check_clean(env: &Env, out: &Outcome) {
    out.assert_no_secret(&env.secrets());
}

#[test]
fn seed_step_with_v2_inputs_deploys_the_data_factory() {
    let env = Env::new(Scheme::ServicePrincipal);
    env.write(
        "adf-pipelines/ARMTemplateForFactory.json",
        example("ARMTemplateForFactory.json"),
    );
    env.write(
        "adf-pipelines/ARMTemplateParametersForFactory.json",
        example("ARMTemplateParametersForFactory.json"),
    );
    let template = env.root().join("adf-pipelines/ARMTemplateForFactory.json");
    let parameters = env
        .root()
        .join("adf-pipelines/ARMTemplateParametersForFactory.json");
    // The seed's inputs, as the agent exports them (filePath inputs made absolute).
    let out = env.run(
        BIN,
        &[
            ("ConnectedServiceName", CONNECTION),
            ("resourceGroupName", RG),
            ("location", "westeurope"),
            ("csmFile", template.to_str().unwrap()),
            ("csmParametersFile", parameters.to_str().unwrap()),
            ("overrideParameters", r#"-data-ingestion-pipeline_properties_variables_data_file_name_defaultValue "qa_driver_data.csv""#),
            ("deploymentOutputs", "adf"),
        ],
    );
    assert!(out.succeeded(), "{}", out.dump());
    check_clean(&env, &out);
    let state = env.emulator.state();
    assert!(
        state["resourceGroups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == RG),
        "the resource group was created"
    );
    let all = resources(&env);
    let pipeline =
        resource_named(&all, "data-ingestion-pipeline").expect("the pipeline is deployed");
    assert_eq!(
        pipeline["properties"]["variables"]["data_file_name"]["defaultValue"],
        "qa_driver_data.csv"
    );
    assert!(
        resource_named(&all, "devops-ds-adf").is_some(),
        "the factory is deployed"
    );
    assert_eq!(
        out.variable("adf.dataFileName.value").unwrap().0,
        "\"qa_driver_data.csv\""
    );
    assert_eq!(
        out.variable("adf.factoryName.value").unwrap().0,
        "\"devops-ds-adf\""
    );
    let whole: Value = serde_json::from_str(&out.variable("adf").unwrap().0).unwrap();
    assert_eq!(whole["dataFileName"]["value"], "qa_driver_data.csv");
    let (name, _, is_output) = out.variable("deploymentName").unwrap();
    assert!(
        name.starts_with("ARMTemplateForFactory-")
            && name.len() == "ARMTemplateForFactory-20240229-134507-ab12".len(),
        "{name}"
    );
    assert!(is_output);
    assert!(
        out.log().contains("Successfully deployed the template"),
        "{}",
        out.log()
    );
}

#[test]
fn every_auth_scheme_deploys() {
    for scheme in [
        Scheme::ServicePrincipal,
        Scheme::WorkloadIdentityFederation,
        Scheme::ManagedServiceIdentity,
    ] {
        let env = Env::new(scheme);
        env.write("template.json", storage_template(None).to_string());
        let out = env.run(
            BIN,
            &rg_inputs(&[
                ("overrideParameters", "-name stscheme"),
                ("deploymentName", "auth-test"),
            ]),
        );
        assert!(out.succeeded(), "{scheme:?}: {}", out.dump());
        check_clean(&env, &out);
        assert!(
            resource_named(&resources(&env), "stscheme").is_some(),
            "{scheme:?}"
        );
        let grants: Vec<String> = env.emulator.state()["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["grant"].as_str().unwrap_or_default().to_owned())
            .collect();
        let expected = match scheme {
            Scheme::ServicePrincipal => "client_secret",
            Scheme::WorkloadIdentityFederation => "client_assertion",
            Scheme::ManagedServiceIdentity => "managed_identity",
        };
        assert!(
            grants.iter().any(|g| g == expected),
            "{scheme:?}: {grants:?}"
        );
    }
}

#[test]
fn override_vectors_of_the_spec_reach_arm_typed() {
    let env = Env::new(Scheme::ServicePrincipal);
    env.write("template.json", typed_template().to_string());
    let cases: &[(&str, Value)] = &[
        (
            "-s hello -i 5 -b true",
            json!({"s": "hello", "i": 5, "b": true}),
        ),
        (
            r#"-s "value with spaces" -i "5""#,
            json!({"s": "value with spaces", "i": 5}),
        ),
        ("-s 'single quoted'", json!({"s": "'single quoted'"})),
        (
            r#"-a ["a","b"] -o {"k":"v"}"#,
            json!({"a": ["a", "b"], "o": {"k": "v"}}),
        ),
        (r#"-b "true""#, json!({"b": true})),
        (r#"-s "line\nbreak""#, json!({"s": "line\nbreak"})),
    ];
    for (i, (overrides, expected)) in cases.iter().enumerate() {
        let name = format!("vector-{i}");
        let out = env.run(
            BIN,
            &rg_inputs(&[
                ("overrideParameters", overrides),
                ("deploymentName", &name),
                ("deploymentOutputs", "o"),
                ("useWithoutJSON", "true"),
            ]),
        );
        assert!(out.succeeded(), "{overrides}: {}", out.dump());
        let outputs: Value = serde_json::from_str(&out.variable("o").unwrap().0).unwrap();
        for (k, v) in expected.as_object().unwrap() {
            assert_eq!(&outputs[k]["value"], v, "{overrides}: output {k}");
        }
        // What ARM received, as the emulator echoes the parameters.
        let deployment = env.emulator.state()["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name.as_str())
            .cloned()
            .unwrap();
        for (k, v) in expected.as_object().unwrap() {
            assert_eq!(
                &deployment["properties"]["parameters"][k]["value"], v,
                "{overrides}: parameter {k}"
            );
        }
    }
    // useWithoutJSON: a string output is the bare value.
    let out = env.run(
        BIN,
        &rg_inputs(&[
            ("overrideParameters", "-s hello"),
            ("deploymentOutputs", "o"),
            ("useWithoutJSON", "true"),
        ]),
    );
    assert_eq!(out.variable("o.s.value").unwrap().0, "hello");
}

#[test]
fn override_mistakes_fail_before_anything_is_deployed() {
    let env = Env::new(Scheme::ServicePrincipal);
    env.write("template.json", typed_template().to_string());
    let cases = [
        ("-b True", "parameter 'b' is of type 'bool'"),
        ("-nope 1", "declares no parameter 'nope'"),
        ("-S x", "did you mean 's'"),
        (r#"-s "unclosed"#, "never closed"),
        ("-a [1, 2", "bracket '['"),
        ("-s a b", "the value 'b' has no parameter name"),
        ("-i 1.5", "parameter 'i' is of type 'int'"),
    ];
    for (overrides, expected) in cases {
        let out = env.run(BIN, &rg_inputs(&[("overrideParameters", overrides)]));
        assert!(out.failed(), "{overrides}: {}", out.dump());
        assert!(
            out.failure().contains(expected),
            "{overrides}: {}",
            out.failure()
        );
    }
    assert!(
        env.emulator.state()["deployments"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was deployed"
    );
}

#[test]
fn a_failing_resource_shows_its_operation_error() {
    let env = Env::new(Scheme::ServicePrincipal);
    let failure = json!({"code": "StorageAccountAlreadyTaken", "message": "The storage account named stfail is already taken.", "statusCode": "Conflict"});
    env.write("template.json", storage_template(Some(failure)).to_string());
    let out = env.run(
        BIN,
        &rg_inputs(&[
            ("overrideParameters", "-name stfail"),
            ("deploymentName", "failing"),
        ]),
    );
    assert!(out.failed(), "{}", out.dump());
    check_clean(&env, &out);
    let log = out.log();
    assert!(log.contains("DeploymentFailed"), "{log}");
    assert!(
        log.contains("Microsoft.Storage/storageAccounts 'stfail' failed (Conflict)"),
        "{log}"
    );
    assert!(
        log.contains(
            "StorageAccountAlreadyTaken: The storage account named stfail is already taken."
        ),
        "{log}"
    );
    let failure = out.failure();
    assert!(
        failure.contains("Failed operations") && failure.contains("StorageAccountAlreadyTaken"),
        "{failure}"
    );
}

#[test]
fn a_policy_denial_names_the_assignment() {
    let env = Env::new(Scheme::ServicePrincipal);
    let failure = json!({"code": "RequestDisallowedByPolicy", "message": "Resource 'stpolicy' was disallowed by policy.",
        "policyAssignment": "Deny public storage", "policyDefinition": "Storage accounts should restrict network access"});
    env.write("template.json", storage_template(Some(failure)).to_string());
    let out = env.run(BIN, &rg_inputs(&[("overrideParameters", "-name stpolicy")]));
    assert!(out.failed(), "{}", out.dump());
    let failure = out.failure();
    assert!(failure.contains("RequestDisallowedByPolicy"), "{failure}");
    assert!(failure.contains("Deny public storage"), "{failure}");
    assert!(resources(&env).is_empty());
}

#[test]
fn validation_mode_only_validates() {
    let env = Env::new(Scheme::ServicePrincipal);
    env.write("template.json", storage_template(None).to_string());
    let out = env.run(
        BIN,
        &rg_inputs(&[
            ("overrideParameters", "-name stvalid"),
            ("deploymentMode", "Validation"),
        ]),
    );
    assert!(out.succeeded(), "{}", out.dump());
    assert!(
        out.log().contains("validation was completed successfully"),
        "{}",
        out.log()
    );
    assert!(resources(&env).is_empty(), "nothing deployed");
    assert!(env.emulator.state()["deployments"]
        .as_array()
        .unwrap()
        .is_empty());
    // A missing required parameter fails validation with ARM's error.
    let out = env.run(BIN, &rg_inputs(&[("deploymentMode", "Validation")]));
    assert!(out.failed(), "{}", out.dump());
    assert!(
        out.failure().contains("template validation failed"),
        "{}",
        out.failure()
    );
    assert!(out.failure().contains("name"), "{}", out.failure());
}

#[test]
fn what_if_prints_changes_and_a_summary_without_deploying() {
    let env = Env::new(Scheme::ServicePrincipal);
    env.write("template.json", storage_template(None).to_string());
    let out = env.run(
        BIN,
        &rg_inputs(&[
            ("overrideParameters", "-name stwhatif"),
            ("deploymentName", "first"),
        ]),
    );
    assert!(out.succeeded(), "{}", out.dump());
    let before = resources(&env);
    let out = env.run(
        BIN,
        &rg_inputs(&[
            ("overrideParameters", "-name stwhatif -tier Cool"),
            ("deploymentMode", "WhatIf"),
            ("deploymentName", "preview"),
        ]),
    );
    assert!(out.succeeded(), "{}", out.dump());
    check_clean(&env, &out);
    let log = out.log();
    assert!(
        log.contains("~ Modify")
            && log.contains("Microsoft.Storage/storageAccounts")
            && log.contains("stwhatif"),
        "{log}"
    );
    assert!(
        log.contains("properties.tier: \"Hot\" => \"Cool\""),
        "{log}"
    );
    assert!(
        log.contains("0 to create, 1 to modify, 0 to delete, 1 unchanged"),
        "{log}"
    );
    let summary = out
        .commands
        .iter()
        .find(|c| c.name() == "task.uploadsummary")
        .expect("a summary");
    let markdown = std::fs::read_to_string(&summary.data).unwrap();
    assert!(
        markdown.contains("| ~ Modify | `Microsoft.Storage/storageAccounts` | `stwhatif` |"),
        "{markdown}"
    );
    assert_eq!(resources(&env), before, "what-if changes nothing");
    // Complete mode would delete what the template no longer names.
    let out = env.run(
        BIN,
        &rg_inputs(&[
            ("overrideParameters", "-name stnew"),
            ("deploymentMode", "WhatIf"),
            ("whatIfDeploymentMode", "Complete"),
        ]),
    );
    assert!(out.succeeded(), "{}", out.dump());
    let log = out.log();
    assert!(
        log.contains("2 to create, 0 to modify, 2 to delete"),
        "{log}"
    );
    assert!(
        log.contains("- Delete") && log.contains("stwhatif-plan"),
        "{log}"
    );
    assert_eq!(resources(&env), before, "what-if changes nothing");
    // A new resource shows as Create.
    let out = env.run(
        BIN,
        &rg_inputs(&[
            ("overrideParameters", "-name stother"),
            ("deploymentMode", "WhatIf"),
        ]),
    );
    assert!(
        out.succeeded() && out.log().contains("+ Create"),
        "{}",
        out.dump()
    );
}

#[test]
fn complete_mode_deletes_what_the_template_does_not_name() {
    let env = Env::new(Scheme::ServicePrincipal);
    env.write("template.json", storage_template(None).to_string());
    assert!(env
        .run(BIN, &rg_inputs(&[("overrideParameters", "-name stone")]))
        .succeeded());
    let out = env.run(
        BIN,
        &rg_inputs(&[
            ("overrideParameters", "-name sttwo"),
            ("deploymentMode", "Complete"),
        ]),
    );
    assert!(out.succeeded(), "{}", out.dump());
    let all = resources(&env);
    assert!(resource_named(&all, "sttwo").is_some());
    assert!(
        resource_named(&all, "stone").is_none(),
        "Complete mode removed stone: {all:?}"
    );
}

#[test]
fn subscription_and_management_group_scopes() {
    let env = Env::new(Scheme::ServicePrincipal);
    env.write(
        "sub.json",
        json!({
            "$schema": "https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#",
            "contentVersion": "1.0.0.0",
            "parameters": {"rgName": {"type": "string"}},
            "resources": [{"type": "Microsoft.Resources/resourceGroups", "apiVersion": "2022-09-01", "name": "[parameters('rgName')]", "location": "northeurope", "properties": {}}],
            "outputs": {"rg": {"type": "string", "value": "[parameters('rgName')]"}}
        })
        .to_string(),
    );
    let out = env.run(
        BIN,
        &[
            ("ConnectedServiceName", CONNECTION),
            ("deploymentScope", "Subscription"),
            ("location", "northeurope"),
            ("csmFile", "sub.json"),
            ("overrideParameters", "-rgName rg-from-sub"),
            ("deploymentOutputs", "sub"),
        ],
    );
    assert!(out.succeeded(), "{}", out.dump());
    assert_eq!(out.variable("sub.rg.value").unwrap().0, "\"rg-from-sub\"");
    assert!(env.emulator.state()["deployments"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("/subscriptions/"));

    env.write(
        "mg.json",
        json!({
            "$schema": "https://schema.management.azure.com/schemas/2019-08-01/managementGroupDeploymentTemplate.json#",
            "contentVersion": "1.0.0.0",
            "resources": [{"type": "Microsoft.Authorization/policyDefinitions", "apiVersion": "2021-06-01", "name": "audit-tags", "properties": {"mode": "All"}}],
            "outputs": {"ok": {"type": "bool", "value": true}}
        })
        .to_string(),
    );
    let out = env.run(
        BIN,
        &[
            ("ConnectedServiceName", CONNECTION),
            ("deploymentScope", "Management Group"),
            ("location", "westeurope"),
            ("csmFile", "mg.json"),
            ("deploymentOutputs", "mg"),
        ],
    );
    assert!(out.succeeded(), "{}", out.dump());
    assert_eq!(out.variable("mg.ok.value").unwrap().0, "true");
    let ids: Vec<String> = env.emulator.state()["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        ids.iter()
            .any(|id| id
                .starts_with("/providers/Microsoft.Management/managementGroups/emulator-mg/")),
        "{ids:?}"
    );
    // Validation and what-if at these scopes too.
    let out = env.run(
        BIN,
        &[
            ("ConnectedServiceName", CONNECTION),
            ("deploymentScope", "Subscription"),
            ("location", "northeurope"),
            ("csmFile", "sub.json"),
            ("overrideParameters", "-rgName rg-preview"),
            ("deploymentMode", "WhatIf"),
        ],
    );
    assert!(out.succeeded(), "{}", out.dump());
    assert!(
        out.log().contains("+ Create") && out.log().contains("rg-preview"),
        "{}",
        out.log()
    );
    let out = env.run(
        BIN,
        &[
            ("ConnectedServiceName", CONNECTION),
            ("deploymentScope", "Management Group"),
            ("location", "westeurope"),
            ("csmFile", "mg.json"),
            ("deploymentMode", "Validation"),
        ],
    );
    assert!(
        out.succeeded() && out.log().contains("validation was completed successfully"),
        "{}",
        out.dump()
    );
    let groups: Vec<Value> = env.emulator.state()["resourceGroups"]
        .as_array()
        .cloned()
        .unwrap();
    assert!(
        !groups.iter().any(|g| g["name"] == "rg-preview"),
        "what-if created nothing"
    );
    // Complete mode is refused outside resource groups.
    let out = env.run(
        BIN,
        &[
            ("ConnectedServiceName", CONNECTION),
            ("deploymentScope", "Subscription"),
            ("location", "x"),
            ("csmFile", "sub.json"),
            ("deploymentMode", "Complete"),
        ],
    );
    assert!(
        out.failed()
            && out
                .failure()
                .contains("only supported at resource group scope"),
        "{}",
        out.dump()
    );
}

#[test]
fn delete_resource_group() {
    let env = Env::new(Scheme::ServicePrincipal);
    env.write("template.json", storage_template(None).to_string());
    assert!(env
        .run(BIN, &rg_inputs(&[("overrideParameters", "-name stdel")]))
        .succeeded());
    let out = env.run(
        BIN,
        &[
            ("ConnectedServiceName", CONNECTION),
            ("resourceGroupName", RG),
            ("action", "DeleteRG"),
        ],
    );
    assert!(out.succeeded(), "{}", out.dump());
    assert!(env.emulator.state()["resourceGroups"]
        .as_array()
        .unwrap()
        .is_empty());
    // Deleting again: nothing to delete is not an error.
    let out = env.run(
        BIN,
        &[
            ("ConnectedServiceName", CONNECTION),
            ("resourceGroupName", RG),
            ("action", "DeleteRG"),
        ],
    );
    assert!(
        out.succeeded() && out.log().contains("nothing to delete"),
        "{}",
        out.dump()
    );
}

#[test]
fn files_patterns_encodings_and_comments() {
    let env = Env::new(Scheme::ServicePrincipal);
    // UTF-16LE with a byte order mark, and comments.
    let text = format!("// generated\n/* block */\n{}", storage_template(None));
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
    env.write("infra/main.template.json", bytes);
    let mut params = vec![0xEF, 0xBB, 0xBF];
    params.extend_from_slice(
        b"{\n  // the account\n  \"parameters\": {\"name\": {\"value\": \"stfiles\"}, \"tier\": {\"value\": \"Cool\", \"metadata\": {\"x\": 1}}}\n}",
    );
    env.write("infra/main.parameters.json", params);
    let out = env.run(
        BIN,
        &rg_inputs(&[
            ("csmFile", "**/*.template.json"),
            ("csmParametersFile", "infra/*.parameters.json"),
        ]),
    );
    assert!(out.succeeded(), "{}", out.dump());
    let all = resources(&env);
    assert_eq!(
        resource_named(&all, "stfiles").unwrap()["properties"]["tier"],
        "Cool"
    );
    // The generated name comes from the template's file name.
    assert!(out
        .variable("deploymentName")
        .unwrap()
        .0
        .starts_with("main-"));
    // A pattern matching two files fails, listing them.
    let out = env.run(BIN, &rg_inputs(&[("csmFile", "infra/*.json")]));
    assert!(out.failed(), "{}", out.dump());
    let f = out.failure();
    assert!(
        f.contains("matches 2 files")
            && f.contains("main.parameters.json")
            && f.contains("main.template.json"),
        "{f}"
    );
    let out = env.run(BIN, &rg_inputs(&[("csmFile", "missing/*.json")]));
    assert!(
        out.failed()
            && out
                .failure()
                .contains("no file matches the template pattern"),
        "{}",
        out.dump()
    );
    // A given name is validated.
    let out = env.run(
        BIN,
        &rg_inputs(&[
            ("csmFile", "**/*.template.json"),
            ("deploymentName", "bad name"),
        ]),
    );
    assert!(
        out.failed() && out.failure().contains("the deployment name 'bad name'"),
        "{}",
        out.dump()
    );
}

#[test]
fn key_vault_references_pass_through() {
    let env = Env::new(Scheme::ServicePrincipal);
    env.write("template.json", storage_template(None).to_string());
    env.write(
        "params.json",
        json!({"parameters": {
            "name": {"value": "stkv"},
            "tier": {"reference": {"keyVault": {"id": "/subscriptions/x/resourceGroups/kv/providers/Microsoft.KeyVault/vaults/v"}, "secretName": "tier"}}
        }})
        .to_string(),
    );
    // The emulator resolves a reference to a stand-in value: only a reference sent as such
    // gets it.
    let out = env.run(
        BIN,
        &rg_inputs(&[
            ("csmParametersFile", "params.json"),
            ("deploymentName", "kv"),
        ]),
    );
    assert!(out.succeeded(), "{}", out.dump());
    assert_eq!(
        resource_named(&resources(&env), "stkv").unwrap()["properties"]["tier"],
        "emulated-keyvault-secret:tier"
    );
    // An override replaces the reference whole.
    let out = env.run(
        BIN,
        &rg_inputs(&[
            ("csmParametersFile", "params.json"),
            ("overrideParameters", "-tier Premium"),
            ("deploymentName", "kv2"),
        ]),
    );
    assert!(out.succeeded(), "{}", out.dump());
    assert_eq!(
        resource_named(&resources(&env), "stkv").unwrap()["properties"]["tier"],
        "Premium"
    );
}

#[test]
fn template_links_are_sent_as_links_and_sas_tokens_stay_masked() {
    let env = Env::new(Scheme::ServicePrincipal);
    let out = env.run(
        BIN,
        &[
            ("ConnectedServiceName", CONNECTION),
            ("resourceGroupName", RG),
            ("location", "westeurope"),
            ("templateLocation", "URL of the file"),
            (
                "csmFileLink",
                "https://templates.example/azuredeploy.json?sv=2022&sig=VerySecretSasSignature",
            ),
            (
                "csmParametersFileLink",
                "https://templates.example/azuredeploy.parameters.json?sig=VerySecretSasSignature",
            ),
        ],
    );
    // The emulator cannot download links: ARM's InvalidContentLink shows the link was sent.
    assert!(out.failed(), "{}", out.dump());
    assert!(
        out.failure().contains("InvalidContentLink"),
        "{}",
        out.failure()
    );
    assert!(out
        .variable("deploymentName")
        .unwrap()
        .0
        .starts_with("azuredeploy-"));
    let mut secrets = env.secrets();
    secrets.push("VerySecretSasSignature".into());
    out.assert_no_secret(&secrets);
}

#[test]
fn sigterm_cancels_the_running_deployment() {
    let options = Options {
        operation_steps: 10_000,
        async_retry_after_secs: 1,
        ..Options::default()
    };
    let env = Env::with_options(Scheme::ServicePrincipal, options);
    env.write("template.json", storage_template(None).to_string());
    let child = env.spawn(
        BIN,
        &rg_inputs(&[
            ("overrideParameters", "-name stcancel"),
            ("deploymentName", "to-cancel"),
        ]),
    );
    // Let one poll happen, then cancel as the agent does.
    let out =
        Outcome::terminated_after(child, "Waiting for deployment", Duration::from_millis(1500));
    assert!(out.failed(), "{}", out.dump());
    assert!(out.failure().contains("cancel"), "{}", out.failure());
    let deployment = env.emulator.state()["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "to-cancel")
        .cloned()
        .unwrap();
    assert_eq!(
        deployment["properties"]["provisioningState"], "Canceled",
        "{deployment}"
    );
}

/// Serves `body` for any GET on a loopback port, for `requests` requests.
fn serve(body: String, requests: usize) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    url
}

#[test]
fn template_links_with_overrides_are_downloaded_to_type_them() {
    let env = Env::new(Scheme::ServicePrincipal);
    let template = serve(storage_template(None).to_string(), 4);
    let link = format!("{template}/azuredeploy.json?sig=AnotherSecretSignature");
    let inputs = |overrides: &'static str| -> Vec<(&str, &str)> {
        vec![
            ("ConnectedServiceName", CONNECTION),
            ("resourceGroupName", RG),
            ("location", "westeurope"),
            ("templateLocation", "URL of the file"),
            ("csmFileLink", link.as_str()),
            ("overrideParameters", overrides),
        ]
    };
    // The override's name is checked against the downloaded template.
    let out = env.run(BIN, &inputs("-nope 1"));
    assert!(
        out.failed()
            && out
                .failure()
                .contains("declares no parameter 'nope'; it declares: name, tier"),
        "{}",
        out.dump()
    );
    // A good override: the link goes to ARM with the parameters inline (the emulator fetches
    // loopback links itself, as ARM fetches public ones).
    let out = env.run(BIN, &inputs("-name stlink"));
    assert!(out.succeeded(), "{}", out.dump());
    assert!(resource_named(&resources(&env), "stlink").is_some());
    let mut secrets = env.secrets();
    secrets.push("AnotherSecretSignature".into());
    out.assert_no_secret(&secrets);
}

/// Answers `GET /moved…` with a redirect to `location` and anything else with `body`.
fn serve_redirecting(body: String, location: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let answer = if head.starts_with("GET /moved") {
                format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    url
}

#[test]
fn template_links_follow_redirects_but_never_to_plain_http() {
    let env = Env::new(Scheme::ServicePrincipal);
    let run = |server: &str| {
        let link = format!("{server}/moved/azuredeploy.json?sig=RedirectedSignature");
        env.run(
            BIN,
            &[
                ("ConnectedServiceName", CONNECTION),
                ("resourceGroupName", RG),
                ("location", "westeurope"),
                ("templateLocation", "URL of the file"),
                ("csmFileLink", link.as_str()),
                ("overrideParameters", "-nope 1"),
            ],
        )
    };
    // A relative redirect on the same (loopback) server: the template behind it is read.
    let out = run(&serve_redirecting(
        storage_template(None).to_string(),
        "/real/azuredeploy.json?sig=RealSignature",
    ));
    assert!(
        out.failed()
            && out
                .failure()
                .contains("declares no parameter 'nope'; it declares: name, tier"),
        "{}",
        out.dump()
    );
    // A redirect to plain http on another host is refused, and says so.
    let out = run(&serve_redirecting(
        storage_template(None).to_string(),
        "http://templates.example.test/azuredeploy.json",
    ));
    assert!(
        out.failed() && out.failure().contains("redirects to a plain-http address"),
        "{}",
        out.dump()
    );
    let mut secrets = env.secrets();
    secrets.extend(["RedirectedSignature".into(), "RealSignature".into()]);
    out.assert_no_secret(&secrets);
}

/// Template and parameters files, links and overrides that cannot be used are named by their
/// input, with what to write or check, and nothing is deployed.
#[test]
fn unusable_files_links_and_placeholders_name_the_input() {
    let env = Env::new(Scheme::ServicePrincipal);
    env.write("template.json", storage_template(None).to_string());
    env.write("infra/a.json", "{}");
    let fails = |inputs: &[(&str, &str)], expected: &[&str]| {
        let out = env.run(BIN, &rg_inputs(inputs));
        assert!(out.failed(), "{inputs:?}: {}", out.dump());
        let f = out.failure();
        for e in expected {
            assert!(f.contains(e), "{inputs:?}: expected '{e}' in: {f}");
        }
        check_clean(&env, &out);
    };

    // A parameters entry without its {"value": …} wrapper (the Microsoft task drops it).
    env.write(
        "params.json",
        json!({"parameters": {"name": "stplain", "tier": {"value": "Cool"}}}).to_string(),
    );
    fails(
        &[("csmParametersFile", "params.json")],
        &[
            "input 'Template parameters' (csmParametersFile): in the parameters file '",
            "params.json', the entry 'name' has no {\"value\": …} wrapper",
            "\"name\": {\"value\": …}",
            "\"reference\": {\"keyVault\"",
        ],
    );

    // Service principal placeholders without addSpnToEnvironment are not sent as text.
    fails(
        &[("overrideParameters", "-name $servicePrincipalKey")],
        &[
            "parameter 'name' is set to $servicePrincipalKey",
            "(addSpnToEnvironment: true)",
        ],
    );

    // Patterns that find nothing, a folder, or something that is not a file.
    fails(
        &[("csmFile", "missing/*.json")],
        &[
            "input 'Template' (csmFile): no file matches the template pattern 'missing/*.json'",
            "artifact was downloaded",
        ],
    );
    fails(
        &[("csmParametersFile", "nothing.json")],
        &["input 'Template parameters' (csmParametersFile): no file matches"],
    );
    fails(
        &[("csmFile", "infra")],
        &[
            "input 'Template' (csmFile): the template pattern 'infra' matches the folder",
            "the folder holds a.json",
        ],
    );
    #[cfg(unix)]
    {
        let _socket = std::os::unix::net::UnixListener::bind(env.root().join("sock.json")).unwrap();
        fails(
            &[("csmFile", "sock.json")],
            &["input 'Template' (csmFile)", "is not a regular file"],
        );
    }
    // A file that cannot be read, also by root: /proc/self/mem at offset 0 gives EIO.
    #[cfg(target_os = "linux")]
    {
        std::os::unix::fs::symlink("/proc/self/mem", env.root().join("mem.json")).unwrap();
        fails(
            &[("csmFile", "mem.json")],
            &[
                "input 'Template' (csmFile): cannot read the template",
                "make it readable",
            ],
        );
    }

    // Links: one the agent cannot download (overrides need its content), one ARM cannot.
    let link_inputs = |link: &'static str, overrides: &'static str| {
        vec![
            ("ConnectedServiceName", CONNECTION),
            ("resourceGroupName", RG),
            ("location", "westeurope"),
            ("templateLocation", "URL of the file"),
            ("csmFileLink", link),
            ("overrideParameters", overrides),
        ]
    };
    let out = env.run(
        BIN,
        &link_inputs(
            "http://127.0.0.1:9/template.json?sig=SasSecret",
            "-name st1",
        ),
    );
    assert!(out.failed(), "{}", out.dump());
    assert!(
        out.failure().contains(
            "input 'Template link' (csmFileLink): cannot download the template from 'http://127.0.0.1:9/template.json'"
        ) && !out.failure().contains("SasSecret"),
        "{}",
        out.failure()
    );
    let out = env.run(
        BIN,
        &link_inputs("https://private.example/template.json", ""),
    );
    assert!(out.failed(), "{}", out.dump());
    assert!(
        out.failure().contains("InvalidContentLink")
            && out
                .failure()
                .contains("check the input 'Template link' (csmFileLink)")
            && out.failure().contains("reachable from Azure"),
        "{}",
        out.failure()
    );
    assert!(
        env.emulator.state()["deployments"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was deployed"
    );
}

#[test]
fn service_principal_placeholders_with_add_spn_to_environment() {
    let env = Env::new(Scheme::ServicePrincipal);
    env.write("template.json", typed_template().to_string());
    let out = env.run(
        BIN,
        &rg_inputs(&[
            ("overrideParameters", "-s $servicePrincipalId"),
            ("addSpnToEnvironment", "true"),
            ("deploymentOutputs", "o"),
            ("useWithoutJSON", "true"),
        ]),
    );
    assert!(out.succeeded(), "{}", out.dump());
    assert_eq!(
        out.variable("o.s.value").unwrap().0,
        env.emulator.options().client_id
    );
    check_clean(&env, &out);
}
