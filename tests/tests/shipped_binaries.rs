//! The binaries the .vsix ships (cargo profile `vsix`, no default features) have no TLS of
//! their own: started directly they cannot reach the https Azure emulator, and started through
//! `launcher.js` they can. This is what makes the second, through-the-launcher pass of the task
//! tests (`AZDO_DATA_TASKS_TEST_LAUNCHER=1`, launcher-testkit) a test of the tunnel.

use std::process::Command;

use azure_emulator::Scheme;
use azure_task_testkit::{Env, Outcome, CONNECTION};

/// deploy-arm's inputs for an empty template in a new resource group.
fn deploy_empty_template(env: &Env) -> Vec<(String, String)> {
    let template = env.write(
        "empty.json",
        r#"{"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
            "contentVersion": "1.0.0.0", "resources": []}"#,
    );
    env.vars(&[
        ("ConnectedServiceName", CONNECTION),
        ("resourceGroupName", "shipped-rg"),
        ("location", "westeurope"),
        ("csmFile", template.to_str().unwrap()),
    ])
}

fn run(mut command: Command, env: &Env) -> Outcome {
    let output = command
        .env_clear()
        .envs(deploy_empty_template(env))
        .current_dir(env.root())
        .output()
        .expect("the task starts");
    Outcome::from_output(output)
}

#[test]
fn the_shipped_build_reaches_https_only_through_the_launcher() {
    let binary = launcher_testkit::shipped_binaries()
        .join(format!("deploy-arm{}", std::env::consts::EXE_SUFFIX));
    let env = Env::new(Scheme::ServicePrincipal);

    let direct = run(Command::new(&binary), &env);
    assert!(direct.failed(), "{}", direct.dump());
    assert!(
        direct.failure().contains("has no TLS of its own"),
        "{}",
        direct.dump()
    );

    let through = run(launcher_testkit::launcher_command("deploy-arm"), &env);
    assert!(through.succeeded(), "{}", through.dump());
    through.assert_no_secret(&env.secrets());
}
