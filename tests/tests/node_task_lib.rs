//! A task written with the real `azure-pipelines-task-lib` from npm (tests/node) runs under
//! azp-local with the agent's outcome: getInput, a secret variable, getEndpointUrl,
//! setVariable and setResult all behave as on an agent.
//!
//! Needs `npm ci` in tests/node; the test runs it when node_modules is missing.

use std::process::Command;

use e2e::{repo_root, run_pipeline, Run};

fn ensure_task_lib() {
    let dir = repo_root().join("tests").join("node");
    if dir
        .join("node_modules")
        .join("azure-pipelines-task-lib")
        .is_dir()
    {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .output()
        .expect("npm is needed to install azure-pipelines-task-lib for this test");
    assert!(
        out.status.success(),
        "npm ci in tests/node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_node_task(mode: &str) -> (Run, tempfile::TempDir) {
    ensure_task_lib();
    let vars = tempfile::tempdir().unwrap();
    let vars_file = vars.path().join("vars.yml");
    std::fs::write(
        &vars_file,
        "secrets:\n  apiKey: key-1234567\nendpoints:\n  7a7a7a7a-0000-4000-8000-000000000001:\n    name: my-arm\n    url: https://arm.example/\n    scheme: ServicePrincipal\n    auth: {serviceprincipalid: app, serviceprincipalkey: spn-key-value, tenantid: t}\n",
    )
    .unwrap();
    let yaml = format!(
        "steps:\n- task: nodetask@1\n  name: node\n  inputs:\n    greeting: '  hello  '\n    azureSubscription: my-arm\n    verbose: 'TRUE'\n    mode: {mode}\n- script: echo \"fromNode=$(fromNode) secret=$(nodeSecret) out=$(node.nodeOut)\"\n  condition: always()\n"
    );
    let tests_dir = repo_root().join("tests");
    let (run, _d) = run_pipeline(
        &yaml,
        &[
            "--vars",
            vars_file.to_str().unwrap(),
            "--tasks-dir",
            tests_dir.to_str().unwrap(),
        ],
    );
    (run, vars)
}

#[test]
fn task_lib_task_gets_inputs_secrets_and_endpoints_and_sets_variables() {
    let (r, _d) = run_node_task("succeed");
    assert_eq!(r.code, 0, "{}", r.all());
    let out = &r.stdout;
    assert!(
        out.contains("greeting=hello\n") || out.contains("greeting=hello"),
        "trimmed input: {out}"
    );
    assert!(out.contains("verbose=true"), "{out}");
    assert!(
        out.contains("apiKey length=11 apiKey=***"),
        "the secret variable reached the vault and is masked: {out}"
    );
    assert!(out.contains("secret env gone=true"), "{out}");
    assert!(
        out.contains("endpoint=https://arm.example/ key=***"),
        "{out}"
    );
    assert!(
        out.contains("printing ***"),
        "a secret set by the task is masked at once: {out}"
    );
    assert!(
        out.contains("fromNode=hello-from-node secret=*** out=output-value"),
        "{out}"
    );
    assert!(
        !r.all().contains("key-1234567")
            && !r.all().contains("spn-key-value")
            && !r.all().contains("node-made-secret")
    );
    assert_eq!(r.result_of("Node task says"), Some("Succeeded"));
}

#[test]
fn task_lib_set_result_decides_the_outcome() {
    let (r, _d) = run_node_task("issues");
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        r.result_of("Node task says"),
        Some("SucceededWithIssues"),
        "{}",
        r.stdout
    );
    let (r, _d) = run_node_task("fail");
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(
        r.result_of("Node task says"),
        Some("Failed"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("##[error]failed on purpose"),
        "{}",
        r.stdout
    );
}
