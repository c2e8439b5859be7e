//! The README's main command: the seed's data-ingestion pipeline (examples/data-ingestion)
//! runs green against the emulators, and a broken variant (bad data that the test notebook
//! rejects) exits non-zero with the notebook's error in the log.

use e2e::{repo_root, run};

fn run_example(extra: &[&str]) -> e2e::Run {
    e2e::ensure_tasks_built();
    let root = repo_root();
    let mut args = vec![
        "run",
        "examples/data-ingestion/azure-pipelines.yml",
        "--vars",
        "examples/data-ingestion/vars.yml",
        "--emulators",
        "--sources-dir",
        root.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn data_ingestion_pipeline_is_green_on_the_emulators() {
    let r = run_example(&[]);
    assert_eq!(r.code, 0, "{}", r.all());
    for step in [
        "CI / CI_Job / Run unit tests",
        "CI / CI_Job / Publish Pipeline Artifact: di-notebooks",
        // Deployment jobs show their lifecycle hook.
        "Deploy_to_Databricks / deploy / Deploy (copy) data processing notebook",
        "Deploy_to_ADF / deploy / Deploy ADF resources",
        "Integration_test_job / Stage input data",
        "Integration_test_job / Execute ADF Pipeline",
        "Integration_test_job / Fetch the staged input",
        "Integration_test_job / Wait until the testing is done",
    ] {
        assert_eq!(r.result_of(step), Some("Succeeded"), "{step}: {}", r.stdout);
    }
    assert!(
        r.stdout.contains("OK: 10 rows"),
        "the test notebook's exit value: {}",
        r.stdout
    );
    // The emulator's token is a secret.
    assert!(!r.stdout.contains("dapi"), "{}", r.stdout);
}

#[test]
fn broken_data_fails_the_pipeline_with_the_notebook_error() {
    let r = run_example(&["--var", "DATA_FILE_NAME=driver_prediction_bad.csv"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(
        r.result_of("Wait until the testing is done"),
        Some("Failed"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("AssertionError: 2 of 4 rows have no valid age bin (drivers 2002, 2003)"),
        "{}",
        r.stdout
    );
}

#[test]
fn example_pipeline_validates() {
    let r = run(&[
        "check",
        "examples/data-ingestion/azure-pipelines.yml",
        "--vars",
        "examples/data-ingestion/vars.yml",
        "--emulators",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
}
