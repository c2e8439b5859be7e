//! Runs Python notebooks and files for real in a `python3` subprocess.
//!
//! The runner script (`runner.py`, embedded) splits cells, provides a small
//! `dbutils` (widgets, `notebook.exit`, `secrets`, and `fs` with `spark.conf` from
//! `storage.py`) and reports the exit value or the exception as JSON. The workspace's
//! secrets and the accounts' blob endpoints reach it on stdin, never in a file. Working
//! files live in a folder the emulator owns.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

const RUNNER_SOURCE: &str = include_str!("runner.py");
/// Imported by the runner as `_emulator_storage`.
const STORAGE_SOURCE: &str = include_str!("storage.py");

/// Stdout kept for `logs` of a Python file task (the real service keeps the last 5 MB).
const MAX_LOG_BYTES: usize = 5 * 1024 * 1024;

/// What to run.
#[derive(Debug, Clone)]
pub enum Program {
    Notebook { body: String },
    PythonFile { source: Vec<u8>, args: Vec<String> },
}

/// How a run of a program ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// `dbutils.notebook.exit` value.
    pub result: Option<String>,
    /// The exception line, e.g. `ZeroDivisionError: division by zero`.
    pub error: Option<String>,
    pub error_trace: Option<String>,
    /// Stdout of a Python file task.
    pub logs: Option<String>,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }
}

#[derive(Debug, Deserialize)]
struct RunnerReport {
    result: Option<String>,
    error: Option<String>,
    error_trace: Option<String>,
}

/// A temp folder removed on drop.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    pub fn create() -> io::Result<WorkDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = format!(
            "databricks-emulator-{}-{}-{}",
            std::process::id(),
            crate::now_ms(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&path)?;
        Ok(WorkDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Finds `python3` on PATH.
pub fn find_python() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("python3"))
        .find(|candidate| candidate.is_file())
}

/// Secret values by scope (as created) and key: what `dbutils.secrets` reads.
pub type SecretValues = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// The Python executor: interpreter plus the folder holding the runner and run files.
#[derive(Debug)]
pub struct Executor {
    python: PathBuf,
    dir: PathBuf,
    runner: PathBuf,
    blob_endpoints: BTreeMap<String, String>,
}

impl Executor {
    pub fn new(
        python: PathBuf,
        dir: &Path,
        blob_endpoints: BTreeMap<String, String>,
    ) -> io::Result<Executor> {
        let runner = dir.join("_emulator_runner.py");
        std::fs::write(&runner, RUNNER_SOURCE)?;
        std::fs::write(dir.join("_emulator_storage.py"), STORAGE_SOURCE)?;
        Ok(Executor {
            python,
            dir: dir.to_path_buf(),
            runner,
            blob_endpoints,
        })
    }

    /// Runs `program` with `params` as widget values and `secrets` for `dbutils.secrets`.
    /// Dropping the future kills the process.
    pub async fn run(
        &self,
        run_id: u64,
        program: &Program,
        params: &BTreeMap<String, String>,
        secrets: &SecretValues,
    ) -> Outcome {
        let run_dir = self.dir.join(format!("run-{run_id}"));
        let outcome = self.run_in(&run_dir, program, params, secrets).await;
        let _ = tokio::fs::remove_dir_all(&run_dir).await;
        match outcome {
            Ok(outcome) => outcome,
            Err(e) => Outcome {
                error: Some(format!("The emulator could not run Python: {e}")),
                ..Outcome::default()
            },
        }
    }

    async fn run_in(
        &self,
        run_dir: &Path,
        program: &Program,
        params: &BTreeMap<String, String>,
        secrets: &SecretValues,
    ) -> io::Result<Outcome> {
        tokio::fs::create_dir_all(run_dir).await?;
        let program_path = run_dir.join("program.py");
        let params_path = run_dir.join("params.json");
        let out_path = run_dir.join("outcome.json");
        let (mode, args): (&str, &[String]) = match program {
            Program::Notebook { body } => {
                tokio::fs::write(&program_path, body).await?;
                ("notebook", &[])
            }
            Program::PythonFile { source, args } => {
                tokio::fs::write(&program_path, source).await?;
                ("file", args)
            }
        };
        let params_json = serde_json::to_vec(params).map_err(io::Error::other)?;
        tokio::fs::write(&params_path, params_json).await?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let secrets: BTreeMap<&String, BTreeMap<&String, String>> = secrets
            .iter()
            .map(|(scope, keys)| {
                (
                    scope,
                    keys.iter().map(|(k, v)| (k, b64.encode(v))).collect(),
                )
            })
            .collect();
        let context =
            json!({"secrets": secrets, "blob_endpoints": self.blob_endpoints}).to_string();
        let mut child = tokio::process::Command::new(&self.python)
            .arg(&self.runner)
            .arg(mode)
            .arg(&program_path)
            .arg(&params_path)
            .arg(&out_path)
            .args(args)
            .current_dir(run_dir)
            .env("PYTHONIOENCODING", "utf-8")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take();
        // Written while the output is read, so that neither pipe can fill up and block.
        let feed = async move {
            if let Some(mut stdin) = stdin {
                // A program that exits without reading is not an error of the emulator.
                let _ = stdin.write_all(context.as_bytes()).await;
            }
        };
        let (_, output) = tokio::join!(feed, child.wait_with_output());
        let output = output?;
        let report = tokio::fs::read(&out_path)
            .await
            .ok()
            .and_then(|bytes| serde_json::from_slice::<RunnerReport>(&bytes).ok());
        let Some(report) = report else {
            // The interpreter died before reporting (crash, os._exit, bad interpreter).
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: String = stderr
                .chars()
                .rev()
                .take(4000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Ok(Outcome {
                error: Some(format!(
                    "Python exited with {} before the notebook finished",
                    output.status
                )),
                error_trace: Some(tail),
                ..Outcome::default()
            });
        };
        let logs = match program {
            Program::PythonFile { .. } => {
                let out = &output.stdout;
                let start = out.len().saturating_sub(MAX_LOG_BYTES);
                Some(String::from_utf8_lossy(&out[start..]).into_owned())
            }
            Program::Notebook { .. } => None,
        };
        Ok(Outcome {
            result: report.result,
            error: report.error,
            error_trace: report.error_trace,
            logs,
        })
    }
}
