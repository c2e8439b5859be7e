//! `azp-local --emulators` links the emulators as the real services are: a Data Factory
//! `DatabricksNotebook` activity whose linked service (managed identity) points at
//! `$(DATABRICKS_URL)` runs the notebook on the Databricks emulator, and its exit value is the
//! activity's `runOutput` for later activities.

use e2e::{repo_root, run};

const PIPELINE: &str = r#"
steps:
- task: configuredatabricks@0
  inputs:
    url: $(DATABRICKS_URL)
    token: $(DATABRICKS_TOKEN)
- task: deploynotebooks@0
  inputs:
    notebooksFolderPath: $(Build.SourcesDirectory)/tests/factories/linked-databricks/notebooks
    workspaceFolder: /Shared/linked
- task: deployarm@0
  inputs:
    azureSubscription: $(AZURE_RM_CONNECTION)
    resourceGroupName: linked-rg
    location: westeurope
    csmFile: $(Build.SourcesDirectory)/tests/factories/linked-databricks/factory.json
    overrideParameters: >-
      -AzureDatabricks_properties_typeProperties_domain "$(DATABRICKS_URL)"
      -AzureDatabricks_properties_typeProperties_existingClusterId "$(DATABRICKS_CLUSTER_ID)"
- task: runadfpipeline@0
  displayName: Notebook doubles 3
  inputs:
    azureSubscription: $(AZURE_RM_CONNECTION)
    resourceGroupName: linked-rg
    dataFactoryName: linked-adf
    pipelineName: double-check
    pipelineParameters: '{"rows": "3", "expected": "6"}'
    pollIntervalSeconds: 1
- task: runadfpipeline@0
  displayName: Wrong expectation
  continueOnError: true
  inputs:
    azureSubscription: $(AZURE_RM_CONNECTION)
    resourceGroupName: linked-rg
    dataFactoryName: linked-adf
    pipelineName: double-check
    pipelineParameters: '{"rows": "4", "expected": "7"}'
    pollIntervalSeconds: 1
"#;

#[test]
fn a_factory_runs_its_notebook_on_the_databricks_emulator() {
    e2e::ensure_tasks_built();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-pipelines.yml");
    std::fs::write(&file, PIPELINE).unwrap();
    let root = repo_root();
    let r = run(&[
        "run",
        file.to_str().unwrap(),
        "--emulators",
        "--sources-dir",
        root.to_str().unwrap(),
    ]);
    // The notebook ran with the pipeline's parameter and its exit value reached the check.
    assert_eq!(
        r.result_of("Notebook doubles 3"),
        Some("Succeeded"),
        "{}",
        r.all()
    );
    assert_eq!(
        r.result_of("Wrong expectation"),
        Some("SucceededWithIssues"),
        "{}",
        r.all()
    );
    assert!(
        r.stdout
            .contains(r#"unexpected runOutput: {"by":"notebook","rows":8}"#),
        "the second run's notebook output is in the Fail activity's message: {}",
        r.stdout
    );
    assert!(!r.stdout.contains("not executed"), "{}", r.stdout);
}
