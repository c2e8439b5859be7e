//! task-manifests/databricks/task.json agrees with the code: the `command` picklist is
//! [`databricks_command::COMMANDS`], every visibleRule names inputs and commands that exist
//! (and does not mix `&&` with `||`, which Azure DevOps does not evaluate), and the inputs
//! the commands read are declared.

use serde_json::Value;

const MANIFEST: &str = include_str!("../../../../task-manifests/databricks/task.json");

fn manifest() -> Value {
    serde_json::from_str(MANIFEST).expect("task.json is JSON")
}

fn input_names(m: &Value) -> Vec<String> {
    m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_command_picklist_is_the_commands() {
    let m = manifest();
    let command = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "command")
        .unwrap();
    // serde_json's map is sorted: compare as sets.
    let options: Vec<&str> = command["options"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut commands = databricks_command::COMMANDS.to_vec();
    commands.sort_unstable();
    assert_eq!(options, commands);
}

#[test]
fn visible_rules_name_existing_inputs_and_commands() {
    let m = manifest();
    let names = input_names(&m);
    for input in m["inputs"].as_array().unwrap() {
        let Some(rule) = input["visibleRule"].as_str() else {
            continue;
        };
        assert!(
            !(rule.contains("&&") && rule.contains("||")),
            "{}: {rule}",
            input["name"]
        );
        for clause in rule.split("||").flat_map(|c| c.split("&&")) {
            let (name, value) = clause.split_once('=').expect("name = value");
            let (name, value) = (name.trim().trim_end_matches('!'), value.trim());
            assert!(names.iter().any(|n| n == name), "{}: {rule}", input["name"]);
            if name == "command" {
                assert!(
                    databricks_command::COMMANDS.contains(&value),
                    "{}: {rule}",
                    input["name"]
                );
            }
        }
    }
}

#[test]
fn the_inputs_the_asset_commands_read_are_declared() {
    let names = input_names(&manifest());
    for name in [
        "scope",
        "scopeBackend",
        "keyVaultResourceId",
        "keyVaultDnsName",
        "initialManagePrincipal",
        "secrets",
        "secretVariables",
        "acls",
        "sourcePath",
        "targetPath",
        "overwrite",
        "parallel",
        "cluster",
        "libraries",
        "uploadPath",
        "uploadTarget",
        "uninstallFirst",
        "libraryTimeoutMinutes",
        "gitFolder",
        "branch",
        "tag",
        "commit",
        "repoUrl",
        "gitProvider",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} is not in task.json"
        );
    }
}
