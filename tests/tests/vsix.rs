//! Packaging (issue "Packaging"): the .vsix that scripts/package.sh builds works from a plain
//! unzip. The test packages the task binaries, unzips the .vsix with Python's zipfile (which,
//! like the agent's download, keeps no Unix mode bits), and runs every task from the unzipped
//! folders through its launcher (`node launcher.js`) with azp-local against the emulators.
//!
//! The binaries are the release builds package.sh makes: without TLS of their own, so every
//! https call (the Azure emulator serves only https) goes through the launcher's TLS tunnel,
//! which this test therefore proves. Needs bash, node, python3 and tfx-cli (package.sh runs
//! `npm ci` at the repository root when it is missing).
#![cfg(unix)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::{azp_local, repo_root, run_cmd, shipped_tasks_built};
use launcher_testkit::node_platform;

/// The Marketplace's size limit for an extension package.
const SIZE_LIMIT: u64 = 26_214_400;

/// Task folder (= contribution name) -> the binary its launcher runs.
const TASKS: &[(&str, &str)] = &[
    ("configuredatabricks", "configure-databricks"),
    ("deploynotebooks", "deploy-notebooks"),
    ("executenotebook", "execute-notebook"),
    ("waitexecution", "wait-execution"),
    ("deployarm", "deploy-arm"),
    ("runadfpipeline", "run-adf-pipeline"),
    ("databricks", "databricks"),
    ("startcluster", "start-cluster"),
    ("azureblob", "azure-blob"),
    ("deployadf", "deploy-adf"),
];

/// The fixture pipeline's display names, one step per task.
const STEPS: &[&str] = &[
    "Configure Databricks",
    "Deploy notebooks",
    "Execute notebook",
    "Wait for the notebook",
    "Deploy ARM template",
    "Stop Data Factory triggers",
    "Run ADF pipeline",
    "Start cluster",
    "Databricks command",
    "Upload to blob storage",
];

/// Lays the task binaries, built as package.sh builds them (no TLS inside), out the way
/// `package.sh --prebuilt` reads them: `<dir>/<platform>/<binary>`.
fn prebuilt_binaries(dir: &Path) {
    let release = shipped_tasks_built();
    let platform_dir = dir.join(node_platform());
    std::fs::create_dir_all(&platform_dir).unwrap();
    for (_, binary) in TASKS {
        let from = release.join(binary);
        std::fs::copy(&from, platform_dir.join(binary))
            .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

/// What package.sh printed and the .vsix it wrote.
struct Packaged {
    vsix: PathBuf,
    stderr: String,
}

/// Runs scripts/package.sh: on `prebuilt` binaries, or building them itself when `None`.
/// Its staging folder lives under the cargo target dir `target_dir`; with --prebuilt a
/// scratch folder keeps this run's staging private (nothing is compiled there).
fn package(prebuilt: Option<&Path>, out: &Path, target_dir: &Path, compress: &str) -> Packaged {
    let root = repo_root();
    let mut command = Command::new("bash");
    // As from a shell: package.sh's cargo build then shares the test kit's artifacts.
    launcher_testkit::clear_cargo_test_env(&mut command);
    command.arg(root.join("scripts").join("package.sh"));
    if let Some(prebuilt) = prebuilt {
        command.arg("--prebuilt").arg(prebuilt);
    }
    let result = command
        .arg("--out")
        .arg(out)
        .args(["--compress", compress])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(&root)
        .output()
        .expect("bash runs scripts/package.sh");
    let stdout = String::from_utf8_lossy(&result.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert!(
        result.status.success(),
        "package.sh failed:\n{stdout}\n{stderr}"
    );
    let vsix = PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("package.sh prints the .vsix path"),
    );
    assert!(vsix.is_file(), "no {}: {stdout}\n{stderr}", vsix.display());
    Packaged { vsix, stderr }
}

/// Unzips with Python's zipfile: no Unix mode bits, as on a fresh agent.
fn unzip(vsix: &Path, into: &Path) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])",
        ])
        .arg(vsix)
        .arg(into)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "unzip failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The task folders of an unzipped package (folders holding task.json), with the binary
/// each one's launcher.json names.
fn task_folders(root: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("task.json").is_file() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join("launcher.json"))
                .unwrap_or_else(|e| panic!("{name}/launcher.json: {e}")),
        )
        .unwrap();
        assert!(
            dir.join("launcher.js").is_file(),
            "{name}/launcher.js missing"
        );
        let binary = config["binary"].as_str().expect("launcher.json binary");
        found.insert(name, binary.to_string());
    }
    found
}

fn is_executable(file: &Path) -> bool {
    std::fs::metadata(file)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// How the binaries are stored in the package (package.sh `--compress`).
#[derive(Clone, Copy, PartialEq)]
enum Storage {
    /// `--compress always`: `<binary>.br`, which the launcher expands on first run.
    Brotli,
    /// `--compress never`: the plain binary, which the launcher makes executable.
    Plain,
}

/// Packages, unzips into a fresh folder and runs tests/vsix/azure-pipelines.yml (every
/// task once) from the unzipped folders against the emulators.
fn package_unzip_and_run(storage: Storage) {
    let work = tempfile::tempdir().unwrap();
    let prebuilt = work.path().join("prebuilt");
    prebuilt_binaries(&prebuilt);

    // 1. Package.
    let compress = match storage {
        Storage::Brotli => "always",
        Storage::Plain => "never",
    };
    let packaged = package(
        Some(&prebuilt),
        &work.path().join("out"),
        &work.path().join("target"),
        compress,
    );
    assert!(
        !packaged.stderr.contains("check failed"),
        "{}",
        packaged.stderr
    );
    assert_eq!(
        packaged.stderr.contains("compressing binaries with brotli"),
        storage == Storage::Brotli,
        "{}",
        packaged.stderr
    );
    let size = std::fs::metadata(&packaged.vsix).unwrap().len();
    assert!(size <= SIZE_LIMIT, "{size} bytes");
    assert!(
        packaged.stderr.contains(&format!("{size} bytes (")),
        "package.sh reports the size: {}",
        packaged.stderr
    );

    // 2. A fresh folder holding nothing but the unzipped package.
    let unzipped = work.path().join("unzipped");
    std::fs::create_dir(&unzipped).unwrap();
    unzip(&packaged.vsix, &unzipped);
    let tasks = task_folders(&unzipped);
    // The Marketplace page is the users' overview, not the contributors' README.
    assert_eq!(
        std::fs::read_to_string(unzipped.join("overview.md")).expect("overview.md in the package"),
        std::fs::read_to_string(repo_root().join("overview.md")).unwrap()
    );
    assert!(
        !unzipped.join("README.md").exists(),
        "README.md is packaged"
    );
    let expected: BTreeMap<String, String> = TASKS
        .iter()
        .map(|(f, b)| (f.to_string(), b.to_string()))
        .collect();
    assert_eq!(tasks, expected, "task folders in the package");
    let platform = node_platform();
    let binary_of = |folder: &str, binary: &str| {
        unzipped
            .join(folder)
            .join("bin")
            .join(&platform)
            .join(binary)
    };
    for (folder, binary) in &tasks {
        let plain = binary_of(folder, binary);
        let packed = plain.with_file_name(format!("{binary}.br"));
        let stored = match storage {
            Storage::Brotli => {
                assert!(
                    !plain.exists(),
                    "{} is packaged uncompressed",
                    plain.display()
                );
                packed
            }
            Storage::Plain => {
                assert!(
                    !packed.exists(),
                    "{} is packaged compressed",
                    packed.display()
                );
                plain
            }
        };
        assert!(stored.is_file(), "{} missing", stored.display());
        assert!(
            !is_executable(&stored),
            "the unzip must not keep mode bits, or this test proves nothing: {}",
            stored.display()
        );
    }

    // 3. Every task, from the unzipped folders, against the emulators.
    let root = repo_root();
    let pipeline = root.join("tests").join("vsix").join("azure-pipelines.yml");
    let run = run_cmd(
        azp_local()
            .arg("run")
            .arg(&pipeline)
            .arg("--emulators")
            .arg("--tasks-dir")
            .arg(&unzipped)
            .arg("--sources-dir")
            .arg(&root),
    );
    assert_eq!(run.code, 0, "{}", run.all());
    for step in STEPS {
        assert_eq!(
            run.result_of(step),
            Some("Succeeded"),
            "{step}: {}",
            run.stdout
        );
    }
    for folder in tasks.keys() {
        // The runner names the folder it ran each task from: the unzipped one, not
        // the repository's task-manifests.
        let line = format!("Task {folder} 0.x ({})", unzipped.join(folder).display());
        assert!(run.stdout.contains(&line), "{line}: {}", run.stdout);
    }
    assert!(
        run.stdout
            .contains("Notebook exit value: greetings from the unzipped vsix"),
        "{}",
        run.stdout
    );
    // Only the launcher expands `.br` and sets mode bits: each binary went through it.
    for (folder, binary) in &tasks {
        let plain = binary_of(folder, binary);
        assert!(
            is_executable(&plain),
            "the launcher did not leave an executable {}",
            plain.display()
        );
    }
    // The emulators' Databricks token and service principal key are secrets.
    let all = run.all();
    assert!(!all.contains("dapi"), "{all}");
    assert!(!all.contains("emulator-client-secret"), "{all}");
}

#[test]
fn every_task_runs_from_a_plain_unzip_with_brotli_binaries() {
    package_unzip_and_run(Storage::Brotli);
}

#[test]
fn every_task_runs_from_a_plain_unzip_with_plain_binaries() {
    package_unzip_and_run(Storage::Plain);
}

/// What a file is now: its bytes and modification time, or `None` when it does not exist.
fn snapshot(file: &Path) -> Option<(std::time::SystemTime, Vec<u8>)> {
    let modified = std::fs::metadata(file).ok()?.modified().unwrap();
    Some((modified, std::fs::read(file).unwrap()))
}

/// package.sh building its own binaries (no --prebuilt) puts them in the `vsix` profile's
/// folder: the development builds in target/release, which have TLS inside, stay as they were
/// (or absent), and the package holds the `vsix` builds.
#[test]
fn packaging_leaves_the_release_builds_alone() {
    // Built first, so package.sh's own cargo build finds nothing to do.
    let shipped = shipped_tasks_built();
    let target = launcher_testkit::target_dir();
    let release = target.join("release");
    let before: Vec<_> = TASKS
        .iter()
        .map(|(_, binary)| snapshot(&release.join(binary)))
        .collect();

    let work = tempfile::tempdir().unwrap();
    let packaged = package(None, &work.path().join("out"), &target, "never");

    for ((_, binary), before) in TASKS.iter().zip(before) {
        let file = release.join(binary);
        let after = snapshot(&file);
        assert!(
            after == before,
            "package.sh changed {} (existed before: {}, after: {})",
            file.display(),
            before.is_some(),
            after.is_some()
        );
    }
    let unzipped = work.path().join("unzipped");
    unzip(&packaged.vsix, &unzipped);
    for (folder, binary) in TASKS {
        let packed = unzipped
            .join(folder)
            .join("bin")
            .join(node_platform())
            .join(binary);
        assert!(
            std::fs::read(&packed).unwrap() == std::fs::read(shipped.join(binary)).unwrap(),
            "{} is not the vsix profile's build",
            packed.display()
        );
    }
}
