//! A local emulator of a Databricks workspace, for tests, benchmarks and `azp-local`.
//!
//! It serves the parts of the REST API our tasks use — Workspace 2.0 (import,
//! export, list, get-status, mkdirs, delete), Jobs 2.1/2.2 (runs/submit, runs/get,
//! runs/get-output, runs/cancel, runs/list, jobs/create, jobs/get, jobs/list, jobs/reset,
//! jobs/delete, jobs/run-now), Clusters (get, list, start, restart, events), Secrets (scopes,
//! secrets, ACLs), the Files API on declared Unity Catalog volumes, DBFS (put, streams, status),
//! Libraries (install, uninstall, cluster-status), Repos and SCIM
//! `Me` — with the real status codes and `{"error_code", "message"}` bodies. Python notebooks run for real in a
//! `python3` subprocess with a small `dbutils` (widgets, `notebook.exit`, `secrets` from the
//! workspace's scopes, shown `[REDACTED]` in output, and `fs` `cp`/`ls`/`rm`/`head` on
//! `file:/` and `wasbs://` paths with `spark.conf` account keys, see
//! [`Options::blob_endpoints`]); other languages succeed after a delay. Fault injection (latency, per-endpoint rate limits, 503s, dropped
//! connections, failing or timing-out runs) is seeded and deterministic.
//!
//! It is not Databricks: no Spark, no clusters that compute, no permissions (ACLs are
//! stored, not enforced), no Git (remotes are declared refs), no archives (DBC/HTML imports
//! are stored and returned as they came), no `%run`. `GET /emulator/state` (not part of the
//! real API) dumps everything; `GET`/`POST`/`DELETE /emulator/faults` list, add and clear
//! fault rules ([`FaultRule`]).
//!
//! # Authentication
//!
//! Every API request needs `Authorization: Bearer <token>`. A token is accepted when it is one
//! of [`Options::tokens`] or when [`Options::token_check`] says yes; with neither set, any
//! non-empty token is. `token_check` is how a test accepts Microsoft Entra ID tokens: pass a
//! closure that asks the Azure emulator whether it issued the token for the Azure Databricks
//! resource, so a token for another audience, or a made-up one, gets the real 403.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let emulator = databricks_emulator::Emulator::start(Default::default()).await?;
//! println!("{}", emulator.url());
//! # Ok(()) }
//! ```

mod api;
mod clusters;
mod error;
mod executor;
mod faults;
mod files;
mod jobs;
mod libraries;
mod notebook;
mod repos;
mod secrets;
mod server;
mod stores;
mod workspace;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

pub use emulator_faults::Rule as FaultRule;
pub use error::ApiError;
pub use faults::DropMode;
pub use jobs::RunFault;
pub use repos::GitRemote;

/// The cluster every emulator has unless `Options::clusters` says otherwise.
pub const DEFAULT_CLUSTER_ID: &str = "0000-000000-emulator";

/// How the emulator behaves. `Options::default()` is a quiet, fast workspace.
#[derive(Debug, Clone)]
pub struct Options {
    /// Accepted bearer tokens. Empty (and no [`Options::token_check`]): any non-empty bearer
    /// token is accepted.
    pub tokens: Vec<String>,
    /// Accepts further bearer tokens, in addition to [`Options::tokens`] (see the crate doc).
    pub token_check: Option<TokenCheck>,
    /// Port to bind on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Added to every API request before it is answered.
    pub latency: Duration,
    /// Requests per second per endpoint key ("import", "runs/submit", "runs/get", …;
    /// the long form "workspace/import" works too). Over the limit: 429 with Retry-After.
    pub rate_limits: HashMap<String, u32>,
    /// Fraction of API requests answered 503 TEMPORARILY_UNAVAILABLE.
    pub fail_503_fraction: f64,
    /// Fraction of API requests whose connection is closed without an answer.
    pub drop_fraction: f64,
    /// Whether a dropped request is processed first.
    pub drop_mode: DropMode,
    /// Seed of the generator behind every random fault.
    pub seed: u64,
    /// Fault rules (`METHOD /path` → a status or a dropped connection), checked before the
    /// random faults; more can be set at run time through `POST /emulator/faults`.
    pub fault_rules: Vec<FaultRule>,
    /// How long a task that is not run for real (non-Python, no interpreter) takes.
    pub non_python_run_delay: Duration,
    /// How long a run stays PENDING (cluster setup) before it runs.
    pub run_pending: Duration,
    /// How long a run stays TERMINATING.
    pub run_terminating: Duration,
    /// Python interpreter: `None` looks up `python3` on PATH, `Some("")` disables execution.
    pub python: Option<PathBuf>,
    /// Clusters that exist and are RUNNING.
    pub clusters: Vec<String>,
    /// Clusters that exist and are TERMINATED (a run on one starts it).
    pub terminated_clusters: Vec<String>,
    /// How long a starting cluster stays PENDING (and a restarting one RESTARTING).
    pub cluster_start_delay: Duration,
    /// Cluster names by id (default: `emulator-<id>`); two ids may share a name.
    pub cluster_names: HashMap<String, String>,
    /// Clusters whose start fails: PENDING, then TERMINATED with a cloud-provider
    /// `termination_reason` (a quota refusal).
    pub failing_clusters: Vec<String>,
    /// Force every run to fail, time out or hit an internal error.
    pub run_fault: Option<RunFault>,
    /// The user the token belongs to (SCIM Me, creator_user_name, /Users/<name>).
    pub user_name: String,
    /// Unity Catalog volumes that exist, as `catalog.schema.volume`.
    pub volumes: Vec<String>,
    /// Libraries whose installation fails: PyPI package names (with or without a version),
    /// Maven coordinates or library file paths.
    pub failing_libraries: Vec<String>,
    /// How long a library takes from the cluster running to INSTALLED or FAILED.
    pub library_install_delay: Duration,
    /// Git remotes Git folders can be created from (others have one branch, `main`).
    pub git_remotes: Vec<GitRemote>,
    /// Blob service endpoints by storage account, for notebooks' `dbutils.fs` on
    /// `wasbs://<container>@<account>.blob.core.windows.net/…` (e.g. `devstoreaccount1` →
    /// Azurite's `http://127.0.0.1:10000/devstoreaccount1`). Other accounts are reached at
    /// `https://<account>.blob.core.windows.net`.
    pub blob_endpoints: BTreeMap<String, String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tokens: Vec::new(),
            token_check: None,
            port: 0,
            latency: Duration::ZERO,
            rate_limits: HashMap::new(),
            fail_503_fraction: 0.0,
            drop_fraction: 0.0,
            drop_mode: DropMode::Before,
            seed: 0,
            fault_rules: Vec::new(),
            non_python_run_delay: Duration::from_millis(200),
            run_pending: Duration::from_millis(100),
            run_terminating: Duration::from_millis(50),
            python: None,
            clusters: vec![DEFAULT_CLUSTER_ID.to_string()],
            terminated_clusters: Vec::new(),
            cluster_start_delay: Duration::from_millis(500),
            cluster_names: HashMap::new(),
            failing_clusters: Vec::new(),
            run_fault: None,
            user_name: "emulator@example.com".to_string(),
            volumes: Vec::new(),
            failing_libraries: Vec::new(),
            library_install_delay: Duration::from_millis(300),
            git_remotes: Vec::new(),
            blob_endpoints: BTreeMap::new(),
        }
    }
}

/// Decides whether a bearer token is valid, beyond the fixed [`Options::tokens`]; for tokens
/// another emulator issues (Entra ID), which are not known when the emulator starts.
#[derive(Clone)]
pub struct TokenCheck(Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl TokenCheck {
    /// `accepts(token)` is true when `token` is valid.
    pub fn new(accepts: impl Fn(&str) -> bool + Send + Sync + 'static) -> TokenCheck {
        TokenCheck(Arc::new(accepts))
    }

    /// Whether the check accepts `token`.
    pub fn accepts(&self, token: &str) -> bool {
        (self.0)(token)
    }
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCheck(..)")
    }
}

/// Milliseconds since the Unix epoch (the API's timestamps).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Resolves once the emulator is told to stop.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send: drop it here, not in the caller.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// State shared by the server, the handlers and the run drivers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub opts: Options,
    pub base_url: String,
    pub workspace: Mutex<workspace::Workspace>,
    pub jobs: Mutex<jobs::Jobs>,
    pub clusters: Mutex<clusters::Clusters>,
    /// Secrets, volumes, DBFS, libraries and repos.
    pub stores: stores::Stores,
    pub counts: Mutex<BTreeMap<String, u64>>,
    pub faults: faults::Faults,
    pub executor: Option<executor::Executor>,
    pub shutdown: watch::Receiver<bool>,
    /// Owns the temp folder of run files; removed when the last reference goes.
    _workdir: executor::WorkDir,
}

impl Shared {
    /// Runs `f` with the jobs lock held (never across an await).
    pub fn with_jobs<T>(&self, f: impl FnOnce(&mut jobs::Jobs) -> T) -> T {
        let mut guard = self
            .jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    pub fn count(&self, key: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(key.to_string()).or_insert(0) += 1;
    }

    pub fn state(&self) -> Value {
        let workspace = self
            .workspace
            .lock()
            .map(|ws| ws.dump())
            .unwrap_or(Value::Null);
        let jobs = self.with_jobs(|jobs| jobs.dump(&self.base_url, &self.opts.user_name));
        let clusters = self
            .clusters
            .lock()
            .map(|mut c| c.dump())
            .unwrap_or(Value::Null);
        let counts = self.counts.lock().map(|c| json!(*c)).unwrap_or(Value::Null);
        json!({
            "workspace": workspace,
            "runs": jobs["runs"],
            "jobs": jobs["jobs"],
            "clusters": clusters,
            "request_counts": counts,
            "stores": self.stores.dump(),
        })
    }
}

/// A running emulator. Dropping it stops the server and removes its temp files.
#[derive(Debug)]
pub struct Emulator {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn launch(opts: Options, shutdown: watch::Receiver<bool>) -> io::Result<Arc<Shared>> {
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], opts.port))).await?;
    let port = listener.local_addr()?.port();
    let base_url = format!("http://127.0.0.1:{port}");
    let workdir = executor::WorkDir::create()?;
    let python = match &opts.python {
        None => executor::find_python(),
        Some(path) if path.as_os_str().is_empty() => None,
        Some(path) => Some(path.clone()),
    };
    let executor = match python {
        Some(python) => Some(executor::Executor::new(
            python,
            workdir.path(),
            opts.blob_endpoints.clone(),
        )?),
        None => None,
    };
    let now = now_ms();
    let shared = Arc::new(Shared {
        faults: faults::Faults::new(
            opts.latency,
            &opts.rate_limits,
            opts.fail_503_fraction,
            opts.drop_fraction,
            opts.drop_mode,
            opts.seed,
            opts.fault_rules.clone(),
        ),
        workspace: Mutex::new(workspace::Workspace::new(&opts.user_name, now)),
        jobs: Mutex::new(jobs::Jobs::new()),
        clusters: Mutex::new(clusters::Clusters::new(clusters::Setup {
            running: &opts.clusters,
            terminated: &opts.terminated_clusters,
            names: &opts.cluster_names,
            failing: &opts.failing_clusters,
            start_delay: opts.cluster_start_delay,
            creator: &opts.user_name,
            now_ms: now,
        })),
        counts: Mutex::new(BTreeMap::new()),
        stores: stores::Stores::new(&opts.volumes, &opts.git_remotes)?,
        executor,
        shutdown: shutdown.clone(),
        base_url,
        opts,
        _workdir: workdir,
    });
    tokio::spawn(server::serve(listener, shared.clone(), shutdown));
    Ok(shared)
}

impl Emulator {
    /// Binds 127.0.0.1 and serves on the current Tokio runtime.
    pub async fn start(opts: Options) -> io::Result<Emulator> {
        let (stop, shutdown) = watch::channel(false);
        let shared = launch(opts, shutdown).await?;
        Ok(Emulator {
            shared,
            stop,
            thread: None,
        })
    }

    /// Starts on a dedicated thread with its own multi-thread runtime, for
    /// synchronous callers. Dropping the emulator stops the thread.
    pub fn start_blocking(opts: Options) -> io::Result<Emulator> {
        let (stop, shutdown) = watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("databricks-emulator".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let mut wait = shutdown.clone();
                    match launch(opts, shutdown).await {
                        Ok(shared) => {
                            let _ = ready_tx.send(Ok(shared));
                            let _ = wait.wait_for(|stop| *stop).await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(2));
            })?;
        let shared = ready_rx
            .recv()
            .map_err(|_| io::Error::other("the emulator thread ended before it started"))??;
        Ok(Emulator {
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Everything the emulator holds, as `GET /emulator/state` answers it.
    pub fn state(&self) -> Value {
        self.shared.state()
    }

    /// How many requests reached `endpoint` (a key such as "import" or "runs/submit"),
    /// whatever their outcome.
    pub fn request_count(&self, endpoint: &str) -> u64 {
        self.shared
            .counts
            .lock()
            .map(|c| c.get(endpoint).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Number of runs started (parent runs; idempotent resubmissions do not count).
    pub fn run_count(&self) -> usize {
        self.shared.with_jobs(|jobs| jobs.run_count())
    }

    /// The value of a secret, for tests (the API never returns values).
    pub fn secret_value(&self, scope: &str, key: &str) -> Option<Vec<u8>> {
        stores::lock(&self.shared.stores.secrets)
            .ok()?
            .value(scope, key)
    }

    /// The content of a file in a volume (`/Volumes/…`), for tests.
    pub fn volume_file(&self, path: &str) -> Option<Vec<u8>> {
        let volumes = stores::lock(&self.shared.stores.volumes).ok()?;
        volumes.get(path).ok().map(|f| f.data.clone())
    }

    /// The content of a DBFS file (`dbfs:/…` or `/…`), for tests.
    pub fn dbfs_file(&self, path: &str) -> Option<Vec<u8>> {
        let dbfs = stores::lock(&self.shared.stores.dbfs).ok()?;
        dbfs.file(path).map(|f| f.data.clone())
    }

    /// Declares the Git remote `remote` or moves its refs (what a push does).
    pub fn set_git_remote(&self, remote: GitRemote) {
        if let Ok(mut repos) = stores::lock(&self.shared.stores.repos) {
            repos.declare(remote);
        }
    }

    /// Whether Python notebooks are executed for real.
    pub fn executes_python(&self) -> bool {
        self.shared.executor.is_some()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
