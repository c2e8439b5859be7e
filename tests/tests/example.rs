//! The README's main command: the seed's data-ingestion pipeline (examples/data-ingestion)
//! runs green against the emulators (the input staged to Azurite, the Data Factory pipeline
//! running the data-preparation notebook on the Databricks emulator, which writes the output
//! blob that the test notebook checks), and a broken variant (bad data that the test notebook
//! rejects) exits non-zero with the notebook's error in the log.

use azure_task_testkit::azurite::KEY as STORAGE_KEY;
use e2e::{repo_root, run};

/// Nothing secret in the log: the Databricks token, the storage key and its connection string.
fn assert_no_secrets(r: &e2e::Run) {
    assert!(!r.stdout.contains("dapi"), "{}", r.stdout);
    assert!(!r.all().contains(STORAGE_KEY), "{}", r.all());
    assert!(!r.all().contains(&STORAGE_KEY[..20]), "{}", r.all());
}

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
        "Deploy_to_Databricks / deploy / Put the storage key in the secret scope",
        "Integration_test_job / Stage input data",
        "Integration_test_job / Execute ADF Pipeline",
        "Integration_test_job / Check the prepared data landed",
        "Integration_test_job / Wait until the testing is done",
    ] {
        assert_eq!(r.result_of(step), Some("Succeeded"), "{step}: {}", r.stdout);
    }
    assert!(
        r.stdout.contains("OK: 10 rows"),
        "the test notebook's exit value: {}",
        r.stdout
    );
    // The prepared blob is what the pipeline's notebook wrote: there was no other writer.
    assert!(
        r.stdout.contains("Found blob http://127.0.0.1:")
            && r.stdout
                .contains("/devstoreaccount1/prepared-data/ingestion/driver_prediction_bin.csv"),
        "{}",
        r.stdout
    );
    // The scope's name is not a secret (only the key in it is).
    assert!(
        r.stdout.contains("created scope 'devops-ds'"),
        "{}",
        r.stdout
    );
    assert_no_secrets(&r);
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
    // The pipeline itself ran: the bad rows went through data preparation.
    assert_eq!(
        r.result_of("Execute ADF Pipeline"),
        Some("Succeeded"),
        "{}",
        r.stdout
    );
    assert_no_secrets(&r);
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
