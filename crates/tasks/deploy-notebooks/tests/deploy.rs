//! The deploynotebooks binary run as the agent runs it, against the emulator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use databricks_emulator::{Emulator, Options};
use databricks_task_common::testing::{with_workspace, Job, StepRun};
use task_sdk::TaskResult;

const BIN: &str = env!("CARGO_BIN_EXE_deploy-notebooks");
const TOKEN: &str = "dapi-deploy-test-0123456789";

fn emulator() -> Emulator {
    Emulator::start_blocking(Options {
        tokens: vec![TOKEN.to_owned()],
        python: Some(Default::default()),
        ..Options::default()
    })
    .expect("the emulator starts")
}

fn job(emu: &Emulator) -> Job {
    let mut job = Job::new();
    job.set_variable("Databricks.Host", &emu.url(), false);
    job.set_variable("Databricks.Token", TOKEN, true);
    job
}

fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (rel, content) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

fn source(job: &Job, files: &[(&str, &str)]) -> PathBuf {
    let root = job.dir().join("s").join("notebooks");
    write_tree(&root, files);
    root
}

/// Workspace objects under `prefix`: path → (type, language, content).
fn objects(emu: &Emulator, prefix: &str) -> BTreeMap<String, (String, String, String)> {
    let state = emu.state();
    state["workspace"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| {
            let path = o["path"].as_str()?;
            path.starts_with(prefix).then(|| {
                let text = |k: &str| o[k].as_str().unwrap_or_default().to_owned();
                (
                    path.to_owned(),
                    (text("object_type"), text("language"), text("content")),
                )
            })
        })
        .collect()
}

fn deploy(job: &mut Job, src: &Path, target: &str, extra: &[(&str, &str)]) -> StepRun {
    let src = src.to_string_lossy().into_owned();
    let mut inputs = vec![
        ("notebooksFolderPath", src.as_str()),
        ("workspaceFolder", target),
    ];
    inputs.extend_from_slice(extra);
    let run = job.run(Path::new(BIN), &inputs);
    run.assert_no_secret(TOKEN);
    run
}

const TREE: &[(&str, &str)] = &[
    (
        "ingest.py",
        "# Databricks notebook source\nprint('ingest')\n",
    ),
    ("etl/Transform.SQL", "select 1"),
    ("etl/deep/er/model.scala", "val x = 1"),
    ("etl/report.r", "x <- 1"),
    (
        "nb/explore.ipynb",
        r#"{"cells":[],"metadata":{},"nbformat":4,"nbformat_minor":5}"#,
    ),
    ("README.md", "# not deployed"),
    (".git/HEAD", "ref: refs/heads/main"),
];

#[test]
fn full_deploy_then_unchanged_redeploy_then_changes() {
    let emu = emulator();
    let mut job = job(&emu);
    let src = source(&job, TREE);
    let run = deploy(&mut job, &src, "/Shared/devops-ds", &[]);
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());

    let objs = objects(&emu, "/Shared/devops-ds/");
    let kind = |p: &str| objs.get(p).map(|(t, l, _)| (t.as_str(), l.as_str()));
    assert_eq!(
        kind("/Shared/devops-ds/ingest"),
        Some(("NOTEBOOK", "PYTHON"))
    );
    assert_eq!(
        kind("/Shared/devops-ds/etl/Transform"),
        Some(("NOTEBOOK", "SQL"))
    );
    assert_eq!(
        kind("/Shared/devops-ds/etl/deep/er/model"),
        Some(("NOTEBOOK", "SCALA"))
    );
    assert_eq!(
        kind("/Shared/devops-ds/etl/report"),
        Some(("NOTEBOOK", "R"))
    );
    assert_eq!(
        kind("/Shared/devops-ds/nb/explore"),
        Some(("NOTEBOOK", "PYTHON"))
    );
    assert_eq!(
        kind("/Shared/devops-ds/.azdo-deploy-manifest.json"),
        Some(("FILE", ""))
    );
    assert!(
        !objs
            .keys()
            .any(|p| p.contains("README") || p.contains(".git/")),
        "{objs:?}"
    );
    assert_eq!(run.variable("uploadedCount").as_deref(), Some("5"));
    // Skipped files are listed.
    assert!(
        run.stdout.contains("README.md (not a notebook extension)"),
        "{}",
        run.log()
    );
    assert!(run.stdout.contains(".git (hidden)"), "{}", run.log());
    // Each folder created once: the deepest ones only (etl/deep/er creates etl and etl/deep).
    assert_eq!(emu.request_count("mkdirs"), 2, "{}", run.log());
    // Progress and a summary.
    assert!(run.commands.iter().any(|c| c.name() == "task.setprogress"));
    let summary = run
        .commands
        .iter()
        .find(|c| c.name() == "task.uploadsummary")
        .map(|c| c.data.clone())
        .expect("a summary");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("| 5 | 0 | 0 | 0 | 2 |"), "{md}");

    // A fresh agent (no local state) redeploys nothing.
    let imports = emu.request_count("import");
    let mut fresh = self::job(&emu);
    let src2 = source(&fresh, TREE);
    let run = deploy(&mut fresh, &src2, "/Shared/devops-ds", &[]);
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    assert_eq!(
        run.variable("uploadedCount").as_deref(),
        Some("0"),
        "{}",
        run.log()
    );
    assert_eq!(run.variable("unchangedCount").as_deref(), Some("5"));
    assert_eq!(
        emu.request_count("import"),
        imports,
        "nothing may be imported"
    );

    // One changed file is uploaded; a notebook edited in the workspace is overwritten.
    write_tree(&src2, &[("etl/report.r", "x <- 2")]);
    edit_in_workspace(
        &emu,
        "/Shared/devops-ds/ingest",
        "# Databricks notebook source\nprint('edited')\n",
    );
    let run = deploy(&mut fresh, &src2, "/Shared/devops-ds", &[]);
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    assert_eq!(
        run.variable("uploadedCount").as_deref(),
        Some("2"),
        "{}",
        run.log()
    );
    assert!(
        run.stdout
            .contains("etl/report.r → /Shared/devops-ds/etl/report (notebook, r; changed)"),
        "{}",
        run.log()
    );
    assert!(run.stdout.contains("ingest.py → /Shared/devops-ds/ingest (notebook, python; edited in the workspace since the last deploy)"), "{}", run.log());
    let objs = objects(&emu, "/Shared/devops-ds/");
    assert!(
        objs["/Shared/devops-ds/ingest"]
            .2
            .contains("print('ingest')"),
        "{objs:?}"
    );
}

/// Changes a notebook the way a user would, through the API.
fn edit_in_workspace(emu: &Emulator, path: &str, content: &str) {
    std::thread::sleep(std::time::Duration::from_millis(5));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let settings =
            task_sdk::http::settings_from_agent(&task_sdk::Agent::default(), "test", "0").unwrap();
        let http = task_sdk::HttpClient::new(
            task_sdk::http::client(&settings).unwrap(),
            Default::default(),
        );
        let ws =
            databricks::Workspace::new(&emu.url(), databricks::Auth::Token(TOKEN.into()), http)
                .unwrap();
        ws.import(
            path,
            content.as_bytes(),
            databricks::ImportFormat::Source(databricks::Language::Python),
            true,
        )
        .await
        .unwrap();
    });
}

#[test]
fn clean_removes_what_the_source_lost_only_after_success() {
    let emu = emulator();
    let mut job = job(&emu);
    let src = source(
        &job,
        &[
            ("a.py", "1"),
            ("old/b.py", "2"),
            ("keep/c.py", "3"),
            ("keep/gone.py", "4"),
        ],
    );
    let run = deploy(&mut job, &src, "/Shared/clean", &[]);
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    std::fs::remove_dir_all(src.join("old")).unwrap();
    std::fs::remove_file(src.join("keep/gone.py")).unwrap();

    // A failing upload: a folder sits where a notebook must go. Nothing is deleted.
    write_tree(&src, &[("blocked.py", "5")]);
    mkdirs(&emu, "/Shared/clean/blocked");
    let run = deploy(&mut job, &src, "/Shared/clean", &[("clean", "true")]);
    assert_eq!(run.result(), TaskResult::Failed, "{}", run.log());
    let error = &run.errors()[0];
    assert!(
        error.contains("1 of 1 upload(s) failed; the others stay deployed and nothing was deleted"),
        "{error}"
    );
    assert!(error.contains("blocked.py: "), "{error}");
    assert!(objects(&emu, "/Shared/clean/").contains_key("/Shared/clean/old/b"));

    // Once everything uploads, clean removes the rest (folders whole).
    std::fs::remove_file(src.join("blocked.py")).unwrap();
    let run = deploy(&mut job, &src, "/Shared/clean", &[("clean", "true")]);
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    let objs = objects(&emu, "/Shared/clean/");
    let paths: Vec<&str> = objs.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        vec![
            "/Shared/clean/.azdo-deploy-manifest.json",
            "/Shared/clean/a",
            "/Shared/clean/keep",
            "/Shared/clean/keep/c"
        ]
    );
    assert_eq!(
        run.variable("deletedCount").as_deref(),
        Some("3"),
        "{}",
        run.log()
    );
}

fn mkdirs(emu: &Emulator, path: &str) {
    with_workspace(&emu.url(), TOKEN, |ws| async move {
        ws.mkdirs(path).await.unwrap()
    });
}

#[test]
fn header_mode_deploys_other_files_as_workspace_files() {
    let emu = emulator();
    let mut job = job(&emu);
    let src = source(
        &job,
        &[
            ("nb.py", "# Databricks notebook source\nprint(1)\n"),
            ("lib/util.py", "def f():\n    return 1\n"),
            ("conf/app.yaml", "a: 1\n"),
        ],
    );
    let run = deploy(
        &mut job,
        &src,
        "/Shared/hdr",
        &[("detectNotebooks", "header")],
    );
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    let objs = objects(&emu, "/Shared/hdr/");
    assert_eq!(objs["/Shared/hdr/nb"].0, "NOTEBOOK");
    assert_eq!(objs["/Shared/hdr/lib/util.py"].0, "FILE");
    assert_eq!(
        objs["/Shared/hdr/conf/app.yaml"],
        ("FILE".into(), String::new(), "a: 1\n".into())
    );
}

#[test]
fn bad_inputs_fail_before_any_upload() {
    let emu = emulator();
    let mut job = job(&emu);
    let src = source(&job, &[("a.py", "1")]);
    let big = src.join("huge.py");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(11 * 1024 * 1024)
        .unwrap();
    let run = deploy(&mut job, &src, "/Shared/x", &[]);
    assert_eq!(run.result(), TaskResult::Failed, "{}", run.log());
    assert!(
        run.errors()[0].contains("huge.py (11.0 MB)"),
        "{}",
        run.log()
    );
    assert!(run.errors()[0].contains("nothing was uploaded"));
    std::fs::remove_file(&big).unwrap();

    let run = deploy(&mut job, &src, "Shared/x", &[]);
    assert!(
        run.errors()[0].contains("must be an absolute workspace path"),
        "{}",
        run.log()
    );
    let run = deploy(&mut job, &src, "/", &[("clean", "true")]);
    assert!(
        run.errors()[0].contains("refused for / and the workspace's top-level folders"),
        "{}",
        run.log()
    );
    let run = deploy(&mut job, &src.join("missing"), "/Shared/x", &[]);
    assert!(run.errors()[0].contains("does not exist"), "{}", run.log());
    let empty = job.dir().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let run = deploy(&mut job, &empty, "/Shared/x", &[]);
    assert!(
        run.errors()[0].contains("has nothing to deploy (it is empty)"),
        "{}",
        run.log()
    );
    assert_eq!(emu.request_count("import"), 0);
}

#[test]
fn without_a_connection_the_message_says_to_configure() {
    let mut job = Job::new();
    let src = source(&job, &[("a.py", "1")]);
    let run = deploy(&mut job, &src, "/Shared/x", &[]);
    assert_eq!(run.result(), TaskResult::Failed);
    assert!(
        run.errors()[0].contains("add the Configure Databricks task"),
        "{}",
        run.log()
    );
}

/// Objects under `prefix`, as a sorted list of paths.
fn paths(emu: &Emulator, prefix: &str) -> Vec<String> {
    objects(emu, prefix).into_keys().collect()
}

#[cfg(unix)]
#[test]
fn clean_follows_folder_links_and_never_deletes_what_the_scan_skipped() {
    use std::os::unix::fs::symlink;
    let emu = emulator();
    let mut job = job(&emu);
    let src = source(
        &job,
        &[
            ("a.py", "1"),
            ("README.md", "# docs"),
            (".cfg/settings.py", "x = 1"),
        ],
    );
    // A folder shared with other projects, linked into the source from outside it.
    write_tree(&job.dir().join("s"), &[("lib/util.py", "def f(): pass")]);
    symlink("../lib", src.join("lib")).unwrap();
    // What the workspace already holds: a copy of the hidden folder and of the README (the
    // source has them, the task skips them), and something the source really lost.
    mkdirs(&emu, "/Shared/c/.cfg");
    mkdirs(&emu, "/Shared/c/stale");
    with_workspace(&emu.url(), TOKEN, |ws| async move {
        ws.import(
            "/Shared/c/README.md",
            b"# docs",
            databricks::ImportFormat::Raw,
            true,
        )
        .await
        .unwrap()
    });

    let run = deploy(&mut job, &src, "/Shared/c", &[("clean", "true")]);
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    assert_eq!(
        paths(&emu, "/Shared/c/"),
        vec![
            "/Shared/c/.azdo-deploy-manifest.json",
            "/Shared/c/.cfg",
            "/Shared/c/README.md",
            "/Shared/c/a",
            "/Shared/c/lib",
            "/Shared/c/lib/util",
        ],
        "{}",
        run.log()
    );
    assert_eq!(run.variable("deletedCount").as_deref(), Some("1"));
    assert!(
        run.stdout.contains("Following the link lib to the folder"),
        "{}",
        run.log()
    );
    assert!(
        run.stdout.contains("  /Shared/c/README.md"),
        "{}",
        run.log()
    );

    // A second run with the link still there deletes nothing.
    let run = deploy(&mut job, &src, "/Shared/c", &[("clean", "true")]);
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    assert_eq!(run.variable("deletedCount").as_deref(), Some("0"));
    assert!(paths(&emu, "/Shared/c/").contains(&"/Shared/c/lib/util".to_owned()));
}

#[cfg(unix)]
#[test]
fn links_that_loop_or_lead_nowhere_fail_naming_the_input_and_the_link() {
    use std::os::unix::fs::symlink;
    let emu = emulator();
    let mut job = job(&emu);
    let src = source(&job, &[("a.py", "1"), ("etl/b.py", "2")]);
    let expect_failure = |job: &mut Job, expected: &[&str]| {
        let run = deploy(job, &src, "/Shared/links", &[("clean", "true")]);
        assert_eq!(run.result(), TaskResult::Failed, "{}", run.log());
        let error = &run.errors()[0];
        assert!(error.contains("(notebooksFolderPath)"), "{error}");
        assert!(error.contains("nothing was uploaded"), "{error}");
        for e in expected {
            assert!(error.contains(e), "{e}: {error}");
        }
    };

    // A link to a folder above it.
    symlink("..", src.join("etl/up")).unwrap();
    expect_failure(
        &mut job,
        &["'etl/up' links to the folder", "Remove the link"],
    );
    std::fs::remove_file(src.join("etl/up")).unwrap();

    // A link to nothing.
    symlink("gone.py", src.join("etl/dangling.py")).unwrap();
    expect_failure(
        &mut job,
        &[
            "'etl/dangling.py' is a symbolic link to 'gone.py', which does not exist",
            "Fix the link or remove it",
        ],
    );
    std::fs::remove_file(src.join("etl/dangling.py")).unwrap();

    // Links that point at each other.
    symlink("y.py", src.join("x.py")).unwrap();
    symlink("x.py", src.join("y.py")).unwrap();
    expect_failure(
        &mut job,
        &["'x.py' is a symbolic link that cannot be followed"],
    );
    assert_eq!(emu.request_count("import"), 0);
    assert_eq!(emu.request_count("delete"), 0);
}

#[cfg(target_os = "linux")]
#[test]
fn unreadable_entries_and_non_utf8_names_fail_before_any_upload() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    let emu = emulator();
    let mut job = job(&emu);
    let src = source(&job, &[("a.py", "1")]);
    let expect_failure = |job: &mut Job, expected: &[&str]| {
        let run = deploy(job, &src, "/Shared/bad", &[]);
        assert_eq!(run.result(), TaskResult::Failed, "{}", run.log());
        let error = &run.errors()[0];
        assert!(error.contains("(notebooksFolderPath)"), "{error}");
        assert!(error.contains("nothing was uploaded"), "{error}");
        for e in expected {
            assert!(error.contains(e), "{e}: {error}");
        }
    };

    // A notebook whose name the workspace cannot hold.
    let latin1 = src.join(std::ffi::OsStr::from_bytes(b"caf\xe9.py"));
    std::fs::write(&latin1, "1").unwrap();
    expect_failure(
        &mut job,
        &["are not valid UTF-8", "\"caf\\xE9.py\"", "Rename them"],
    );
    std::fs::remove_file(&latin1).unwrap();
    // Not a notebook anyway: skipped, the run goes on.
    let other = src.join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
    std::fs::write(&other, "1").unwrap();
    let run = deploy(&mut job, &src, "/Shared/ok", &[]);
    assert_eq!(run.result(), TaskResult::Succeeded, "{}", run.log());
    std::fs::remove_file(&other).unwrap();

    // A socket named like a notebook: opening it would not give content.
    let socket = std::os::unix::net::UnixListener::bind(src.join("sock.py")).unwrap();
    expect_failure(&mut job, &["'sock.py' is not a regular file"]);
    drop(socket);
    std::fs::remove_file(src.join("sock.py")).unwrap();

    // A file whose read fails, for root too: /proc/self/mem at offset 0 gives EIO.
    symlink("/proc/self/mem", src.join("mem.py")).unwrap();
    expect_failure(
        &mut job,
        &["cannot read the file 'mem.py'", "Make it readable"],
    );
    std::fs::remove_file(src.join("mem.py")).unwrap();

    // A folder without permissions stops only a user that is not root (root reads anyway).
    let probe = job.dir().join("owner-probe");
    std::fs::write(&probe, "").unwrap();
    if std::fs::metadata(&probe).unwrap().uid() != 0 {
        let locked = src.join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        expect_failure(&mut job, &["cannot read the folder 'locked'"]);
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert_eq!(
        emu.request_count("import"),
        2,
        "only the /Shared/ok run uploaded"
    );
}

#[test]
fn a_notebook_where_a_folder_is_needed_is_named_as_such() {
    let emu = emulator();
    let mut job = job(&emu);
    let src = source(&job, &[("a.py", "1"), ("etl/b.py", "2")]);
    with_workspace(&emu.url(), TOKEN, |ws| async move {
        let python = databricks::ImportFormat::Source(databricks::Language::Python);
        ws.import("/Shared/nb", b"print(1)", python, true)
            .await
            .unwrap();
        ws.mkdirs("/Shared/t").await.unwrap();
        ws.import("/Shared/t/etl", b"print(2)", python, true)
            .await
            .unwrap();
    });
    // The workspace folder input names a notebook, with and without the incremental listing.
    for incremental in ["true", "false"] {
        let run = deploy(
            &mut job,
            &src,
            "/Shared/nb",
            &[("incremental", incremental)],
        );
        assert_eq!(run.result(), TaskResult::Failed, "{}", run.log());
        let error = &run.errors()[0];
        assert!(
            error.contains("input 'Workspace folder' (workspaceFolder): '/Shared/nb' is a notebook in the workspace, not a folder")
                && error.contains("delete or rename that notebook"),
            "{error}"
        );
        assert!(!error.contains("already exists"), "{error}");
    }
    assert_eq!(emu.request_count("import"), 2, "nothing was uploaded");

    // A notebook where the source has a folder.
    let run = deploy(&mut job, &src, "/Shared/t", &[]);
    assert_eq!(run.result(), TaskResult::Failed, "{}", run.log());
    let error = &run.errors()[0];
    assert!(
        error.contains("etl/b.py: '/Shared/t/etl' is a notebook in the workspace, where the source has the folder 'etl'"),
        "{error}"
    );
    assert!(!error.contains("already exists"), "{error}");
}
