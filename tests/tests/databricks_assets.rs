//! databricks@0's putSecrets, uploadFiles, installLibraries and updateGitFolder, end to end: a
//! pipeline run by azp-local against its emulators, from the task folders in task-manifests/.

use e2e::run;

const PIPELINE: &str = r#"
variables:
  EMPTY_VALUE: ''

steps:
- task: configuredatabricks@0
  displayName: 'Configure Databricks'
  inputs:
    url: '$(DATABRICKS_URL)'
    token: '$(DATABRICKS_TOKEN)'

- task: databricks@0
  displayName: 'Put secrets'
  inputs:
    command: putSecrets
    scope: 'ci-app'
    secrets: |
      api-token=$(DATABRICKS_TOKEN)
    acls: 'users=READ'

- task: databricks@0
  displayName: 'Put an empty secret'
  continueOnError: true
  inputs:
    command: putSecrets
    scope: 'ci-app'
    secrets: 'empty-one=$(EMPTY_VALUE)'

- task: databricks@0
  displayName: 'Upload data'
  inputs:
    command: uploadFiles
    sourcePath: '$(Build.SourcesDirectory)/data'
    targetPath: '$(DATABRICKS_VOLUME)/landing'

- task: databricks@0
  displayName: 'Upload data again'
  inputs:
    command: uploadFiles
    sourcePath: '$(Build.SourcesDirectory)/data'
    targetPath: '$(DATABRICKS_VOLUME)/landing'

- task: databricks@0
  displayName: 'Upload to a missing volume'
  continueOnError: true
  inputs:
    command: uploadFiles
    sourcePath: '$(Build.SourcesDirectory)/data'
    targetPath: '/Volumes/main/default/nope/landing'

- task: databricks@0
  displayName: 'Install libraries'
  inputs:
    command: installLibraries
    cluster: $(DATABRICKS_CLUSTER_ID)
    uploadPath: '$(Build.SourcesDirectory)/dist'
    uploadTarget: '$(DATABRICKS_VOLUME)/libs'
    libraries: |
      pypi:requests==2.32.3
    uninstallFirst: true

- task: databricks@0
  displayName: 'Install a missing wheel'
  continueOnError: true
  inputs:
    command: installLibraries
    cluster: $(DATABRICKS_CLUSTER_ID)
    libraries: '$(DATABRICKS_VOLUME)/libs/missing-0.1-py3-none-any.whl'

- task: databricks@0
  displayName: 'Git folder'
  inputs:
    command: updateGitFolder
    gitFolder: '/Workspace/Repos/ci/etl'
    repoUrl: 'https://github.com/acme/etl.git'
    branch: main

- task: databricks@0
  displayName: 'Git folder to an unknown branch'
  continueOnError: true
  inputs:
    command: updateGitFolder
    gitFolder: '/Workspace/Repos/ci/etl'
    branch: 'no-such-branch'
"#;

#[test]
fn asset_commands_run_through_azp_local_against_the_emulators() {
    e2e::ensure_tasks_built();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("data/2026")).unwrap();
    std::fs::create_dir_all(root.join("dist")).unwrap();
    std::fs::write(root.join("data/2026/sales.csv"), "id,amount\n1,9.5\n").unwrap();
    std::fs::write(root.join("data/readme.txt"), "landing data\n").unwrap();
    std::fs::write(
        root.join("dist/etl_lib-0.3.0-py3-none-any.whl"),
        "PK not really",
    )
    .unwrap();
    std::fs::write(root.join("azure-pipelines.yml"), PIPELINE).unwrap();
    let pipeline = root.join("azure-pipelines.yml");
    let r = run(&[
        "run",
        pipeline.to_str().unwrap(),
        "--emulators",
        "--sources-dir",
        root.to_str().unwrap(),
    ]);
    let out = r.all();
    for step in [
        "Configure Databricks",
        "Put secrets",
        "Upload data",
        "Upload data again",
        "Install libraries",
        "Git folder",
    ] {
        assert_eq!(r.result_of(step), Some("Succeeded"), "{step}: {out}");
    }
    for step in [
        "Put an empty secret",
        "Upload to a missing volume",
        "Install a missing wheel",
        "Git folder to an unknown branch",
    ] {
        assert_ne!(r.result_of(step), Some("Succeeded"), "{step}: {out}");
    }
    for text in [
        "created scope 'ci-app'",
        "put secret 'api-token'",
        "granted READ on scope 'ci-app' to users",
        "secret 'empty-one' (line 1 of 'secrets') is empty",
        "2 uploaded (",
        "0 uploaded (0 bytes), 2 unchanged",
        "the volume main.default.nope does not exist",
        "2 libraries installed",
        "missing-0.1-py3-none-any.whl (No such file or directory)",
        "created Git folder /Repos/ci/etl from https://github.com/acme/etl.git (gitHub)",
        "checking out branch 'no-such-branch' in the Git folder /Repos/ci/etl failed",
    ] {
        assert!(out.contains(text), "{text}: {out}");
    }
    assert!(!out.contains("dapi"), "no token in the log: {out}");
    assert_eq!(
        r.code, 0,
        "continueOnError steps do not fail the run: {out}"
    );
}
