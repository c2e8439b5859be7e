//! putSecrets, uploadFiles, installLibraries and updateGitFolder as the agent runs the
//! databricks binary, against the emulator: the work, and each failure path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use databricks_emulator::{Emulator, GitRemote, Options, DEFAULT_CLUSTER_ID};
use databricks_task_common::testing::{Job, StepRun};
use serde_json::Value;
use task_sdk::TaskResult;

const BIN: &str = env!("CARGO_BIN_EXE_databricks");
const TOKEN: &str = "dapi-assets-test-0123456789";
const VOLUME: &str = "main.raw.landing";

fn start(opts: Options) -> Emulator {
    Emulator::start_blocking(Options {
        tokens: vec![TOKEN.to_owned()],
        volumes: vec![VOLUME.to_owned()],
        cluster_start_delay: Duration::from_millis(200),
        library_install_delay: Duration::from_millis(150),
        python: Some(PathBuf::new()),
        ..opts
    })
    .expect("the emulator starts")
}

fn job(emu: &Emulator) -> Job {
    let mut job = Job::new();
    job.set_variable("Databricks.Host", &emu.url(), false);
    job.set_variable("Databricks.Token", TOKEN, true);
    job
}

fn databricks(job: &mut Job, inputs: &[(&str, &str)]) -> StepRun {
    let run = job.run(Path::new(BIN), inputs);
    run.assert_no_secret(TOKEN);
    run
}

fn errors(run: &StepRun) -> String {
    run.errors().join("\n")
}

fn succeeded(run: &StepRun) {
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
}

fn failed(run: &StepRun) -> String {
    assert_eq!(run.result(), TaskResult::Failed, "{}", run.log());
    errors(run)
}

fn stores(emu: &Emulator) -> Value {
    emu.state()["stores"].clone()
}

// ---- putSecrets ------------------------------------------------------------------------------

#[test]
fn put_secrets_creates_the_scope_puts_values_and_acls_without_showing_them() {
    let emu = start(Options::default());
    let mut job = job(&emu);
    job.set_variable("sqlPassword", "Sql-P@ss-9f2c", true);
    // The agent expands `$(storageKey)` into the input; the value arrives in the environment.
    let lines = "# app secrets\nstorage-key=Stor4ge+Key/9==\nDB.user = etl_user_prod\n";
    let inputs = [
        ("command", "putSecrets"),
        ("scope", "etl-prod"),
        ("secrets", lines),
        ("secretVariables", r#"{"db-password": "sqlPassword"}"#),
        ("acls", "data-engineers=READ\nops@example.com=manage"),
    ];
    let run = databricks(&mut job, &inputs);
    succeeded(&run);
    for value in ["Stor4ge+Key/9==", "etl_user_prod", "Sql-P@ss-9f2c"] {
        run.assert_no_secret(value);
    }
    assert!(
        run.stdout.contains("created scope 'etl-prod'"),
        "{}",
        run.log()
    );
    assert_eq!(
        emu.secret_value("etl-prod", "storage-key").unwrap(),
        b"Stor4ge+Key/9=="
    );
    assert_eq!(
        emu.secret_value("etl-prod", "DB.user").unwrap(),
        b"etl_user_prod"
    );
    assert_eq!(
        emu.secret_value("etl-prod", "db-password").unwrap(),
        b"Sql-P@ss-9f2c"
    );
    let scope = &stores(&emu)["secret_scopes"][0];
    assert_eq!(scope["acls"]["data-engineers"], "READ");
    assert_eq!(scope["acls"]["ops@example.com"], "MANAGE");
    // Again: the scope exists (any case), values are replaced.
    let run = databricks(
        &mut job,
        &[
            ("command", "putSecrets"),
            ("scope", "ETL-prod"),
            ("secrets", "storage-key=rotated-value-2"),
        ],
    );
    succeeded(&run);
    assert!(
        run.stdout.contains("scope 'etl-prod' exists"),
        "{}",
        run.log()
    );
    assert_eq!(
        emu.secret_value("etl-prod", "storage-key").unwrap(),
        b"rotated-value-2"
    );
}

#[test]
fn put_secrets_refuses_bad_input_before_changing_anything() {
    let emu = start(Options::default());
    let mut job = job(&emu);
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[("scope", "etl prod"), ("secrets", "k=value-1")], "the scope name 'etl prod' contains ' '"),
        (&[("scope", "etl"), ("secrets", "api-key=\nother=value-2")], "secret 'api-key' (line 1 of 'secrets') is empty"),
        (&[("scope", "etl"), ("secrets", "api-key=$(apiKey)")], "is '$(apiKey)' as written: the pipeline has no variable 'apiKey'"),
        (&[("scope", "etl"), ("secretVariables", r#"{"pw": "notDefined"}"#)], "secret 'pw' (variable 'notDefined' in 'secretVariables'): the pipeline has no variable 'notDefined'"),
        (&[("scope", "etl"), ("acls", "team=OWNER")], "permission 'OWNER' is not READ, WRITE or MANAGE"),
        (
            &[("scope", "kv"), ("scopeBackend", "azureKeyVault"), ("keyVaultResourceId", "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/etl-kv")],
            "needs a Microsoft Entra ID token, not a personal access token",
        ),
    ];
    for (inputs, expected) in cases {
        let mut all = vec![("command", "putSecrets")];
        all.extend_from_slice(inputs);
        let run = databricks(&mut job, &all);
        let e = failed(&run);
        assert!(e.contains(expected), "{expected}\n---\n{e}");
        run.assert_no_secret("value-2");
    }
    assert_eq!(
        stores(&emu)["secret_scopes"],
        serde_json::json!([]),
        "no scope was created"
    );
    assert_eq!(emu.request_count("secrets/scopes/create"), 0);
}

#[test]
fn a_key_vault_backed_scope_is_created_with_the_connections_entra_token() {
    const CONNECTION: &str = "6f1c2a4e-8b3d-4e5f-9a7b-0c1d2e3f4a5b";
    let azure = std::sync::Arc::new(
        azure_emulator::Emulator::start_blocking(azure_emulator::Options::default())
            .expect("the Azure emulator starts"),
    );
    let issuer = azure.clone();
    // Databricks accepts exactly the Azure emulator's tokens for the Databricks resource.
    let emu = start(Options {
        tokens: Vec::new(),
        token_check: Some(databricks_emulator::TokenCheck::new(move |token| {
            issuer
                .token_audience(token)
                .is_some_and(|a| a.trim_end_matches('/') == azure_emulator::DATABRICKS_RESOURCE)
        })),
        ..Options::default()
    });
    let mut job = Job::new();
    job.env
        .extend(azure.service_connection_env(CONNECTION, azure_emulator::Scheme::ServicePrincipal));
    job.env
        .variable("Agent.CAInfo", &azure.ca_pem_path().display().to_string());
    let vault = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/etl-kv";
    let url = emu.url();
    let run = job.run(
        Path::new(BIN),
        &[
            ("command", "putSecrets"),
            ("url", &url),
            ("azureSubscription", CONNECTION),
            ("scope", "kv-etl"),
            ("scopeBackend", "azureKeyVault"),
            ("keyVaultResourceId", vault),
            ("acls", "users=READ"),
        ],
    );
    succeeded(&run);
    assert!(
        run.stdout.contains(
            "created scope 'kv-etl' (backed by the key vault https://etl-kv.vault.azure.net/)"
        ),
        "{}",
        run.log()
    );
    let scope = &stores(&emu)["secret_scopes"][0];
    assert_eq!(scope["backend_type"], "AZURE_KEYVAULT");
    assert_eq!(scope["acls"]["users"], "READ");
    // Secrets go into the vault, not through Databricks.
    let run = job.run(
        Path::new(BIN),
        &[
            ("command", "putSecrets"),
            ("url", &url),
            ("azureSubscription", CONNECTION),
            ("scope", "kv-etl"),
            ("secrets", "k=some-value-1"),
        ],
    );
    assert!(failed(&run)
        .contains("is backed by an Azure Key Vault, which is read-only through Databricks"));
}

// ---- uploadFiles -----------------------------------------------------------------------------

fn tree(job: &Job, files: &[(&str, &[u8])]) -> PathBuf {
    let root = job.dir().join("s").join("upload");
    for (rel, content) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    root
}

#[test]
fn upload_to_a_volume_is_incremental() {
    let emu = start(Options::default());
    let mut job = job(&emu);
    let src = tree(
        &job,
        &[
            ("a.csv", b"id\n1\n"),
            ("nested/deep/b.json", b"{}"),
            ("c #1.txt", b"odd name"),
        ],
    );
    let src = src.to_string_lossy().into_owned();
    let target = "/Volumes/main/raw/landing/in";
    let upload = |job: &mut Job| {
        databricks(
            job,
            &[
                ("command", "uploadFiles"),
                ("sourcePath", &src),
                ("targetPath", target),
            ],
        )
    };
    let run = upload(&mut job);
    succeeded(&run);
    assert_eq!(run.variable("uploadedFiles").as_deref(), Some("3"));
    assert_eq!(
        emu.volume_file(&format!("{target}/nested/deep/b.json"))
            .unwrap(),
        b"{}"
    );
    assert_eq!(
        emu.volume_file(&format!("{target}/c #1.txt")).unwrap(),
        b"odd name"
    );
    let manifest = emu
        .volume_file(&format!("{target}/.databricks-upload-manifest.json"))
        .unwrap();
    assert!(String::from_utf8_lossy(&manifest).contains("sha256"));
    // Nothing changed: nothing is sent again.
    let puts = emu.request_count("fs/files");
    let run = upload(&mut job);
    succeeded(&run);
    assert!(
        run.stdout.contains("0 uploaded (0 bytes), 3 unchanged"),
        "{}",
        run.log()
    );
    // The manifest is read; no file is sent or looked at one by one.
    assert_eq!(emu.request_count("fs/files") - puts, 1);
    // The volume check, then one listing per folder (in/ and in/nested/deep/).
    let dirs = emu.request_count("fs/directories");
    let run = upload(&mut job);
    succeeded(&run);
    assert_eq!(emu.request_count("fs/directories") - dirs, 3);
    // One file changes (same size!), one is new.
    std::fs::write(Path::new(&src).join("a.csv"), b"id\n2\n").unwrap();
    std::fs::write(Path::new(&src).join("new.txt"), b"new").unwrap();
    let run = upload(&mut job);
    succeeded(&run);
    assert!(
        run.stdout.contains("2 uploaded (8 bytes), 2 unchanged"),
        "{}",
        run.log()
    );
    assert_eq!(
        emu.volume_file(&format!("{target}/a.csv")).unwrap(),
        b"id\n2\n"
    );
    // skipExisting leaves a changed file alone.
    std::fs::write(Path::new(&src).join("a.csv"), b"id\n3\n").unwrap();
    let run = databricks(
        &mut job,
        &[
            ("command", "uploadFiles"),
            ("sourcePath", &src),
            ("targetPath", target),
            ("overwrite", "skipExisting"),
        ],
    );
    succeeded(&run);
    assert_eq!(
        emu.volume_file(&format!("{target}/a.csv")).unwrap(),
        b"id\n2\n"
    );
}

#[test]
fn upload_to_a_missing_volume_says_what_to_create() {
    let emu = start(Options::default());
    let mut job = job(&emu);
    let src = tree(&job, &[("a.csv", b"x")])
        .to_string_lossy()
        .into_owned();
    let run = databricks(
        &mut job,
        &[
            ("command", "uploadFiles"),
            ("sourcePath", &src),
            ("targetPath", "/Volumes/main/raw/missing/in"),
        ],
    );
    let e = failed(&run);
    assert!(
        e.contains("the volume main.raw.missing does not exist")
            && e.contains("CREATE VOLUME main.raw.missing"),
        "{e}"
    );
    let run = databricks(
        &mut job,
        &[
            ("command", "uploadFiles"),
            ("sourcePath", &src),
            ("targetPath", "s3://bucket/x"),
        ],
    );
    assert!(failed(&run).contains("input 'targetPath' is 's3://bucket/x'"));
}

#[test]
fn upload_to_dbfs_streams_files_over_the_put_limit() {
    let emu = start(Options::default());
    let mut job = job(&emu);
    let big: Vec<u8> = (0..(2 * 1024 * 1024 + 123))
        .map(|i| (i % 251) as u8)
        .collect();
    let src = tree(&job, &[("big.bin", &big), ("small.txt", b"small")])
        .to_string_lossy()
        .into_owned();
    let run = databricks(
        &mut job,
        &[
            ("command", "uploadFiles"),
            ("sourcePath", &src),
            ("targetPath", "dbfs:/FileStore/drop"),
        ],
    );
    succeeded(&run);
    assert_eq!(emu.dbfs_file("dbfs:/FileStore/drop/big.bin").unwrap(), big);
    assert_eq!(
        emu.dbfs_file("/FileStore/drop/small.txt").unwrap(),
        b"small"
    );
    assert_eq!(emu.request_count("dbfs/add-block"), 3, "three 1 MB blocks");
    assert_eq!(emu.request_count("dbfs/close"), 1);
    // small file and the manifest: one put each
    assert_eq!(emu.request_count("dbfs/put"), 2);
    let run = databricks(
        &mut job,
        &[
            ("command", "uploadFiles"),
            ("sourcePath", &src),
            ("targetPath", "dbfs:/FileStore/drop"),
        ],
    );
    succeeded(&run);
    assert!(
        run.stdout.contains("0 uploaded (0 bytes), 2 unchanged"),
        "{}",
        run.log()
    );
}

#[test]
fn upload_workspace_files_as_files_not_notebooks() {
    let emu = start(Options::default());
    let mut job = job(&emu);
    let src = tree(
        &job,
        &[
            ("job.py", b"# Databricks notebook source\nprint(1)\n"),
            ("conf/settings.yml", b"a: 1\n"),
        ],
    );
    let run = databricks(
        &mut job,
        &[
            ("command", "uploadFiles"),
            ("sourcePath", &src.to_string_lossy()),
            ("targetPath", "/Workspace/Shared/app"),
        ],
    );
    succeeded(&run);
    let ws = emu.state()["workspace"].clone();
    let kind = |p: &str| {
        ws.as_array()
            .unwrap()
            .iter()
            .find(|o| o["path"] == p)
            .map(|o| o["object_type"].clone())
    };
    assert_eq!(kind("/Shared/app/job.py"), Some("FILE".into()));
    assert_eq!(kind("/Shared/app/conf/settings.yml"), Some("FILE".into()));
    let run = databricks(
        &mut job,
        &[
            ("command", "uploadFiles"),
            ("sourcePath", &src.to_string_lossy()),
            ("targetPath", "/Workspace/Shared/app"),
        ],
    );
    succeeded(&run);
    assert!(
        run.stdout.contains("0 uploaded (0 bytes), 2 unchanged"),
        "{}",
        run.log()
    );
    let big = vec![b'x'; 10 * 1024 * 1024 + 1];
    let src = tree(&job, &[("huge.bin", &big)]);
    let run = databricks(
        &mut job,
        &[
            ("command", "uploadFiles"),
            ("sourcePath", &src.join("huge.bin").to_string_lossy()),
            ("targetPath", "/Workspace/Shared/app"),
        ],
    );
    assert!(
        failed(&run).contains("upload large files to a volume"),
        "{}",
        run.log()
    );
}

// ---- installLibraries ------------------------------------------------------------------------

fn statuses(emu: &Emulator) -> Vec<String> {
    stores(emu)["libraries"][DEFAULT_CLUSTER_ID]
        .as_array()
        .map(|a| a.iter().map(|l| l.to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn install_libraries_uploads_waits_and_reports_failures() {
    let emu = start(Options {
        failing_libraries: vec!["no-such-package".into()],
        ..Options::default()
    });
    let mut job = job(&emu);
    let dist = tree(&job, &[("etl_lib-1.0.0-py3-none-any.whl", b"PK wheel 1.0")]);
    let run = databricks(
        &mut job,
        &[
            ("command", "installLibraries"),
            ("cluster", DEFAULT_CLUSTER_ID),
            ("libraries", "pypi:requests==2.32.3\nmaven:com.acme:etl:1.0"),
            ("uploadPath", &dist.to_string_lossy()),
            ("uploadTarget", "/Volumes/main/raw/landing/libs"),
        ],
    );
    succeeded(&run);
    assert!(
        run.stdout.contains("3 libraries installed"),
        "{}",
        run.log()
    );
    assert!(emu
        .volume_file("/Volumes/main/raw/landing/libs/etl_lib-1.0.0-py3-none-any.whl")
        .is_some());
    // A failing package and a wheel that is not there: both named with the library's error.
    let run = databricks(
        &mut job,
        &[
            ("command", "installLibraries"),
            ("cluster", &format!("emulator-{DEFAULT_CLUSTER_ID}")),
            (
                "libraries",
                "pypi:no-such-package\n/Volumes/main/raw/landing/libs/missing-2.0-py3-none-any.whl",
            ),
        ],
    );
    let e = failed(&run);
    assert!(e.contains("2 of 2 libraries did not install"), "{e}");
    assert!(
        e.contains("PyPI no-such-package is FAILED")
            && e.contains("No matching distribution found for no-such-package"),
        "{e}"
    );
    assert!(
        e.contains("missing-2.0-py3-none-any.whl (No such file or directory)"),
        "{e}"
    );
    // Bad lines are refused before anything is sent.
    let installs = emu.request_count("libraries/install");
    let run = databricks(
        &mut job,
        &[
            ("command", "installLibraries"),
            ("cluster", DEFAULT_CLUSTER_ID),
            ("libraries", "./dist/x.whl"),
        ],
    );
    assert!(failed(&run).contains("line 1: './dist/x.whl' is not a path the cluster can read"));
    assert_eq!(emu.request_count("libraries/install"), installs);
}

#[test]
fn uninstall_first_removes_the_old_version_and_restarts() {
    let emu = start(Options::default());
    let mut job = job(&emu);
    let v1 = tree(&job, &[("v1/etl_lib-1.0.0-py3-none-any.whl", b"1.0")]).join("v1");
    let install = |job: &mut Job, dir: &Path, uninstall: &str| {
        databricks(
            job,
            &[
                ("command", "installLibraries"),
                ("cluster", DEFAULT_CLUSTER_ID),
                ("uploadPath", &dir.to_string_lossy()),
                ("uploadTarget", "dbfs:/libs"),
                ("uninstallFirst", uninstall),
            ],
        )
    };
    succeeded(&install(&mut job, &v1, "false"));
    let v2 = tree(&job, &[("v2/etl_lib-1.1.0-py3-none-any.whl", b"1.1")]).join("v2");
    let run = install(&mut job, &v2, "true");
    succeeded(&run);
    assert!(
        run.stdout
            .contains("uninstalling wheel dbfs:/libs/etl_lib-1.0.0-py3-none-any.whl"),
        "{}",
        run.log()
    );
    assert!(run.stdout.contains("restarting cluster"), "{}", run.log());
    assert_eq!(emu.request_count("clusters/restart"), 1);
    // Once the restart is done only 1.1 is left.
    let libs = statuses(&emu);
    assert_eq!(libs.len(), 1, "{libs:?}");
    assert!(libs[0].contains("etl_lib-1.1.0"), "{libs:?}");
}

// ---- updateGitFolder -------------------------------------------------------------------------

const URL: &str = "https://github.com/acme/etl.git";

fn remote(main: &str) -> GitRemote {
    GitRemote {
        url: URL.into(),
        branches: [
            ("main".into(), main.into()),
            ("release".into(), "b".repeat(40)),
        ]
        .into(),
        tags: [("v1.0".into(), "c".repeat(40))].into(),
    }
}

#[test]
fn update_git_folder_creates_checks_out_and_reports_heads() {
    let emu = start(Options {
        git_remotes: vec![remote(&"a".repeat(40))],
        ..Options::default()
    });
    let mut job = job(&emu);
    let folder = "/Workspace/Repos/ci/etl";
    let run = databricks(
        &mut job,
        &[
            ("command", "updateGitFolder"),
            ("gitFolder", folder),
            ("branch", "main"),
        ],
    );
    assert!(
        failed(&run).contains("there is no Git folder at /Workspace/Repos/ci/etl: give 'repoUrl'")
    );
    // A token in the URL would be stored with the folder and printed: refused, unquoted.
    let run = databricks(
        &mut job,
        &[
            ("command", "updateGitFolder"),
            ("gitFolder", folder),
            ("branch", "main"),
            (
                "repoUrl",
                "https://ci:s3cr3t-pat-value@github.com/acme/etl.git",
            ),
        ],
    );
    let error = failed(&run);
    assert!(
        error.contains("input 'repoUrl' carries a password"),
        "{error}"
    );
    assert!(!run.log().contains("s3cr3t-pat-value"), "{}", run.log());
    let run = databricks(
        &mut job,
        &[
            ("command", "updateGitFolder"),
            ("gitFolder", folder),
            ("branch", "release"),
            ("repoUrl", URL),
        ],
    );
    succeeded(&run);
    assert!(
        run.stdout.contains(
            "created Git folder /Repos/ci/etl from https://github.com/acme/etl.git (gitHub)"
        ),
        "{}",
        run.log()
    );
    assert!(
        run.stdout
            .contains("branch main at aaaaaaaaaa -> branch release at bbbbbbbbbb"),
        "{}",
        run.log()
    );
    assert_eq!(run.variable("headCommit"), Some("b".repeat(40)));
    // A push moves main; the folder follows it.
    emu.set_git_remote(remote(&"d".repeat(40)));
    let id = run.variable("repoId").unwrap();
    let run = databricks(
        &mut job,
        &[
            ("command", "updateGitFolder"),
            ("gitFolder", &id),
            ("branch", "main"),
        ],
    );
    succeeded(&run);
    assert_eq!(run.variable("previousHeadCommit"), Some("b".repeat(40)));
    assert_eq!(run.variable("headCommit"), Some("d".repeat(40)));
    let run = databricks(
        &mut job,
        &[
            ("command", "updateGitFolder"),
            ("gitFolder", folder),
            ("tag", "v1.0"),
        ],
    );
    succeeded(&run);
    assert!(
        run.stdout.contains("-> detached head at cccccccccc"),
        "{}",
        run.log()
    );
    // Unknown branch: the service's refusal, and the folder stays where it was.
    let run = databricks(
        &mut job,
        &[
            ("command", "updateGitFolder"),
            ("gitFolder", folder),
            ("branch", "feature/nope"),
        ],
    );
    let e = failed(&run);
    assert!(e.contains("checking out branch 'feature/nope' in the Git folder /Repos/ci/etl failed (it is still on detached head at cccccccccc)"), "{e}");
    assert!(e.contains("does not exist in the remote repository"), "{e}");
    let run = databricks(
        &mut job,
        &[
            ("command", "updateGitFolder"),
            ("gitFolder", folder),
            ("commit", "0123abc"),
        ],
    );
    assert!(failed(&run).contains("checks out branches and tags only"));
    let run = databricks(
        &mut job,
        &[
            ("command", "updateGitFolder"),
            ("gitFolder", "999"),
            ("branch", "main"),
        ],
    );
    assert!(failed(&run).contains("no Git folder has the id 999"));
}

#[test]
fn libraries_for_a_terminated_cluster_are_queued_with_a_warning() {
    let emu = start(Options {
        clusters: Vec::new(),
        terminated_clusters: vec!["0101-000000-stopped".into()],
        ..Options::default()
    });
    let mut job = job(&emu);
    let run = databricks(
        &mut job,
        &[
            ("command", "installLibraries"),
            ("cluster", "0101-000000-stopped"),
            ("libraries", "pypi:requests"),
        ],
    );
    succeeded(&run);
    let warnings = run.warnings().join("\n");
    assert!(
        warnings.contains("is TERMINATED: the libraries install when it starts"),
        "{}",
        run.log()
    );
    assert_eq!(emu.request_count("libraries/install"), 1);
    assert_eq!(
        emu.request_count("libraries/cluster-status"),
        0,
        "not waited for"
    );
}
