//! Test support: run a task binary as the extension ships it.
//!
//! The .vsix carries binaries built without TLS (`--no-default-features`, cargo profile
//! `vsix`), started by `node launcher.js`, whose loopback tunnel is their only TLS
//! (docs/tls-tunnel.md). Development and test builds have rustls inside. So that what ships is
//! what is tested, the task crates' end-to-end tests start every task binary through
//! [`command`]: normally that is the binary cargo built for the test, but with
//! `AZDO_DATA_TASKS_TEST_LAUNCHER=1` (scripts/test sets it for a second pass) it is
//! `node <task folder>/launcher.js` with the shipped build of the same binary in the folder's
//! `bin/<platform>/`. The same tests then run once with in-process TLS and once through the
//! tunnel. Not shipped: a dev-dependency only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// When set to `1`, [`command`] runs the shipped build through the launcher.
pub const SWITCH: &str = "AZDO_DATA_TASKS_TEST_LAUNCHER";

/// The cargo profile scripts/package.sh builds the packaged binaries with (Cargo.toml): the
/// release settings, in its own folder, so `target/release` keeps the development builds.
pub const PROFILE: &str = "vsix";

/// The task crates' packages: between them they build every task folder's binary (most one,
/// named like the package; `databricks-command` builds `databricks` and `start-cluster`).
pub const TASK_PACKAGES: &[&str] = &[
    "configure-databricks",
    "deploy-notebooks",
    "execute-notebook",
    "wait-execution",
    "deploy-arm",
    "run-adf-pipeline",
    "databricks-command",
    "azure-blob",
    "deploy-adf",
];

/// Whether this test process runs task binaries through the launcher ([`SWITCH`]).
pub fn through_launcher() -> bool {
    match std::env::var(SWITCH) {
        Ok(v) if v == "1" => true,
        Ok(v) if v.is_empty() || v == "0" => false,
        Ok(v) => panic!("{SWITCH} must be 1 or 0, not {v:?}"),
        Err(_) => false,
    }
}

/// The repository root (this crate is crates/tasks/launcher-testkit).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(3)
        .expect("crates/tasks/launcher-testkit has a repository root")
        .to_path_buf()
}

/// The cargo target dir this test runs from: CARGO_TARGET_DIR, else the folder above the
/// test's profile folder (`<target>/<profile>/deps/<test>`).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            repo_root().join(dir)
        };
    }
    let exe = std::env::current_exe().expect("the test's path");
    exe.ancestors()
        .nth(3)
        .expect("<target>/<profile>/deps/<test>")
        .to_path_buf()
}

/// Builds every task binary as scripts/package.sh does (profile `vsix`, no default features,
/// so no TLS inside; the same packages, so the same artifacts and no second build) once per
/// test process, and returns the folder holding them: `<target>/vsix`.
pub fn shipped_binaries() -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        clear_cargo_test_env(&mut cmd);
        cmd.args([
            "build",
            "--locked",
            "--no-default-features",
            "--profile",
            PROFILE,
        ])
        .env("CARGO_TARGET_DIR", target_dir())
        .current_dir(repo_root());
        for p in TASK_PACKAGES {
            cmd.args(["-p", p]);
        }
        let out = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "cargo build --profile {PROFILE} --no-default-features failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    target_dir().join(PROFILE)
}

/// Removes what cargo sets for a test process (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, …) from a
/// command that runs cargo: build scripts that watch such a variable (ring's watches
/// `CARGO_MANIFEST_DIR`) would otherwise see a change from every test crate and rebuild the
/// whole vsix build each time. `CARGO_HOME` and `CARGO_TARGET_DIR` stay.
pub fn clear_cargo_test_env(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_") && name != "CARGO_HOME" && name != "CARGO_TARGET_DIR" {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// This machine's bin/ folder name in Node's terms (`process.platform-process.arch`).
pub fn node_platform() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{os}-{arch}")
}

/// The command that starts the task binary `binary` (a path whose file name is the binary's
/// name) the way this test pass runs tasks: the binary itself, or, with [`SWITCH`],
/// `node launcher.js` in a task folder holding the shipped build of that binary. The caller
/// sets the environment (the launcher passes it on, with the tunnel's two variables added).
pub fn command(binary: &Path) -> Command {
    if !through_launcher() {
        return Command::new(binary);
    }
    let name = binary
        .file_stem()
        .and_then(|n| n.to_str())
        .unwrap_or_else(|| panic!("{} names no binary", binary.display()));
    launcher_command(name)
}

/// `node <task folder>/launcher.js` for the shipped build of the task binary `binary` (a name
/// one of [`TASK_PACKAGES`] builds), whatever the switch says.
pub fn launcher_command(binary: &str) -> Command {
    let mut cmd = Command::new(node());
    cmd.arg(task_folder(binary).join("launcher.js"));
    cmd
}

/// Node, found on this process's PATH once: the tasks' environments are cleared, and a
/// command without PATH would look for it in the C library's default path only.
fn node() -> PathBuf {
    static NODE: OnceLock<PathBuf> = OnceLock::new();
    NODE.get_or_init(|| {
        let name = format!("node{}", std::env::consts::EXE_SUFFIX);
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|dir| dir.join(&name))
            .find(|candidate| candidate.is_file())
            .unwrap_or_else(|| panic!("running a task through launcher.js needs node on PATH"))
    })
    .clone()
}

/// A task folder laid out as scripts/package.sh stages one (launcher.js, launcher.json,
/// bin/<platform>/<binary>) for the shipped build of `binary`, under
/// `<target>/launcher-tasks/`. Written once per process; the content is the same for every
/// process, and each file is replaced whole, so parallel test processes may share it.
pub fn task_folder(binary: &str) -> PathBuf {
    static FOLDERS: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut folders = FOLDERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = folders.get(binary) {
        return dir.clone();
    }
    let shipped = shipped_binaries().join(format!("{binary}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        shipped.is_file(),
        "{binary} is not a binary of the task packages ({TASK_PACKAGES:?})"
    );
    let dir = target_dir().join("launcher-tasks").join(binary);
    let bin = dir.join("bin").join(node_platform());
    std::fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let launcher = std::fs::read(repo_root().join("launcher").join("launcher.js"))
        .expect("launcher/launcher.js");
    replace(&dir.join("launcher.js"), &launcher);
    replace(
        &dir.join("launcher.json"),
        format!("{{\"binary\":\"{binary}\"}}\n").as_bytes(),
    );
    let bytes = std::fs::read(&shipped).unwrap_or_else(|e| panic!("{}: {e}", shipped.display()));
    replace(&bin.join(shipped.file_name().expect("a file name")), &bytes);
    folders.insert(binary.to_owned(), dir.clone());
    dir
}

/// Writes `file` whole through a rename, so a reader never sees half of it. No mode bits: the
/// launcher sets them, as it does on an agent (a .vsix keeps none).
fn replace(file: &Path, content: &[u8]) {
    let name = file.file_name().expect("a file name").to_string_lossy();
    let temp = file.with_file_name(format!("{name}.{}.tmp", std::process::id()));
    std::fs::write(&temp, content).unwrap_or_else(|e| panic!("{}: {e}", temp.display()));
    std::fs::rename(&temp, file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
}
