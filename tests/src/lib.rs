//! Shared helpers for the end-to-end tests: build and run `azp-local` (and the task
//! binaries it starts) the way a user does, and read what it printed.
//!
//! Not a test framework: just enough to spawn the real binaries with a clean environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// tests/conformance: the task fixtures.
pub fn conformance_dir() -> PathBuf {
    repo_root().join("tests").join("conformance")
}

/// The folder of the test's own profile (target/debug or target/release).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// The task binaries the example pipeline runs.
const TASK_PACKAGES: &[&str] = &[
    "configure-databricks",
    "deploy-notebooks",
    "execute-notebook",
    "wait-execution",
    "deploy-arm",
    "run-adf-pipeline",
    "deploy-adf",
];

fn cargo_build(packages: &[&str]) -> Result<(), String> {
    let release = profile_dir().file_name().is_some_and(|n| n == "release");
    cargo_build_with(packages, if release { &["--release"] } else { &[] })
}

fn cargo_build_with(packages: &[&str], flags: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--bins")
        .args(flags)
        .current_dir(repo_root());
    for p in packages {
        cmd.args(["-p", p]);
    }
    let out = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "cargo build {packages:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Builds azp-local once per test process: it belongs to another package, so Cargo does not
/// build it for this one.
pub fn ensure_built() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = BUILT.get_or_init(|| cargo_build(&["runner"])) {
        panic!("{e}");
    }
}

/// Builds the task binaries (for pipelines that use this extension's tasks).
pub fn ensure_tasks_built() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = BUILT.get_or_init(|| cargo_build(TASK_PACKAGES)) {
        panic!("{e}");
    }
}

/// Builds the task binaries as scripts/package.sh builds them for the .vsix (release, without
/// default features: no TLS inside, https through the launcher's tunnel) and returns the
/// folder that holds them.
pub fn release_tasks_built() -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        cargo_build_with(
            TASK_PACKAGES,
            &["--release", "--locked", "--no-default-features"],
        )
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    profile_dir()
        .parent()
        .expect("target/<profile> has a parent")
        .join("release")
}

/// The azp-local binary, built.
pub fn azp_local_path() -> PathBuf {
    ensure_built();
    profile_dir().join("azp-local")
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout and stderr together, for searching.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// The final table's row of a step (by a part of its path).
    pub fn row(&self, step: &str) -> Option<&str> {
        let table = self.stdout.rsplit_once("\nResult ").map(|(_, t)| t)?;
        table.lines().find(|l| l.contains(step))
    }

    /// The result column of a step's row.
    pub fn result_of(&self, step: &str) -> Option<&str> {
        self.row(step).and_then(|r| r.split_whitespace().next())
    }
}

/// A command for azp-local with a predictable environment: no colours, no inherited agent
/// variables, task folders from tests/conformance plus the repository's task-manifests.
pub fn azp_local() -> Command {
    // Tasks may write to HOME (configuredatabricks writes ~/.databrickscfg): keep the tests'
    // writes out of the real one.
    let home = std::env::temp_dir().join("azp-local-e2e-home");
    let _ = std::fs::create_dir_all(&home);
    let mut cmd = Command::new(azp_local_path());
    cmd.env("HOME", &home)
        .env("NO_COLOR", "1")
        .env_remove("AZP_LOCAL_TASKS")
        .stdin(Stdio::null())
        .current_dir(repo_root());
    for (k, _) in std::env::vars() {
        if k.starts_with("INPUT_") || k.starts_with("SECRET_") || k.starts_with("ENDPOINT_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs azp-local with `args` and waits.
pub fn run(args: &[&str]) -> Run {
    run_cmd(azp_local().args(args))
}

pub fn run_cmd(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("azp-local runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes `yaml` to a temporary folder and runs it with the conformance tasks available.
pub fn run_pipeline(yaml: &str, extra: &[&str]) -> (Run, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("azure-pipelines.yml");
    std::fs::write(&file, yaml).expect("write pipeline");
    let conformance = conformance_dir();
    let mut args: Vec<&str> = vec![
        "run",
        file.to_str().expect("utf-8 path"),
        "--tasks-dir",
        conformance.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let run = run(&args);
    (run, dir)
}

/// Runs one conformance task through `azp-local task`.
pub fn run_task(name: &str, args: &[&str]) -> Run {
    let folder = conformance_dir().join(name);
    let mut all: Vec<&str> = vec!["task", folder.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    run(&all)
}
