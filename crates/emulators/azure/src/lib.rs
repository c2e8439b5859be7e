//! A local emulator of the Azure services our tasks talk to: Entra ID token endpoints, Azure
//! Resource Manager template deployments, and Data Factory pipeline runs. Tests start it
//! in-process on a free loopback port; `azp-local` and benchmarks use the `azure-emulator`
//! binary.
//!
//! It is **not** Azure: no real authentication (tokens are unsigned JWT-shaped strings checked
//! against the emulator's own table), no resource providers (resources are stored as the
//! template wrote them), no `copy` loops, no inline nested templates (only linked ones are
//! expanded, see below), and time advances by polling rather than by the clock. What it does reproduce faithfully is what
//! a client must handle: request shapes, status codes, async-operation headers, error bodies
//! (Entra `AADSTS…`, ARM `InvalidTemplate`/`DeploymentFailed` trees, Data Factory errors) and
//! paging.
//!
//! # Serving
//!
//! HTTPS only, with a CA generated at start ([`Emulator::ca_pem`], [`Emulator::ca_pem_path`]):
//! Azure SDK credentials refuse non-HTTPS authority hosts. The ARM base URL, the authority host
//! and the managed identity endpoints are all [`Emulator::url`].
//!
//! | what | path |
//! | --- | --- |
//! | Entra token (v2) | `POST /{tenant}/oauth2/v2.0/token` (client secret or client assertion) |
//! | agent OIDC token (workload identity federation) | `POST /oidc?api-version=7.1&serviceConnectionId=…` |
//! | managed identity, IMDS style | `GET /metadata/identity/oauth2/token?api-version=…&resource=…`, header `Metadata: true` |
//! | managed identity, App Service style | `GET /msi/token?…`, header `X-IDENTITY-HEADER` (Azure SDKs and our `azure` crate use it when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set) |
//! | ARM | `/subscriptions/…`, `/providers/Microsoft.Management/managementGroups/…` (deployment operations also at `…/resourcegroups/{rg}/deployments/{name}/operations`, the path the SDKs use) |
//! | Data Factory objects | `…/providers/Microsoft.DataFactory/factories/{f}[/{type}/{name}]`: PUT answers 200 with the object's own name and an etag (a factory adds `provisioningState`, `createTime`, `version`); GET, list, DELETE |
//! | emulator state (not an Azure API, no auth) | `GET /emulator/state` |
//! | fault rules (not an Azure API, no auth) | `GET`, `POST`, `DELETE /emulator/faults` |
//!
//! # Time
//!
//! Long-running operations advance when polled: a deployment is `Accepted` when created,
//! `Running` after the first poll (of its `Azure-AsyncOperation` URL or of the deployment) and
//! done on poll [`Options::operation_steps`]. What-if and resource-group deletion answer 202 on
//! their `Location` until the same number of polls. A Data Factory run is `Queued` for
//! [`Options::adf_queued_polls`] polls, `InProgress` for at least [`Options::adf_in_progress_polls`]
//! and until its activities finished executing (they run from creation, see `adf_run`: control
//! flow, variables, expressions, child pipelines, Databricks notebooks on a local workspace;
//! other activity types succeed with a note in their output, or fail with
//! [`Options::adf_strict`]).
//!
//! # Linked templates
//!
//! `templateLink`/`parametersLink` of a deployment, and of a `Microsoft.Resources/deployments`
//! resource in a template, are fetched with a plain GET (a SAS in the URI is the only
//! credential) from **loopback addresses only** (http, or https trusting the emulator's CA:
//! Azurite in tests); any other link, or a fetch that fails (404, 403 of a bad SAS), is ARM's
//! `400 InvalidContentLink` at validation. A linked resource becomes a deployment of its own,
//! named after the resource, in the same scope, with `deployment().properties.templateLink.uri`
//! set; it runs to the end before the next resource, and its failure fails the parent with
//! the nested `DeploymentFailed` tree. What-if and `Complete` mode see the linked resources.
//!
//! # Deterministic failures
//!
//! - A template resource whose evaluated `properties` hold
//!   `"emulatorFailure": {"code": "…", "message": "…", "statusCode": "BadRequest", "details": […], "additionalInfo": […]}`
//!   fails: the deployment ends `Failed` with `error {code: DeploymentFailed, details: [{code, message, …}]}`,
//!   its operation shows `provisioningState: Failed`, `statusCode`, `statusMessage.error` and
//!   `targetResource`; resources after it are not deployed.
//! - With `"code": "RequestDisallowedByPolicy"` (optionally `"policyAssignment"` and
//!   `"policyDefinition"` names) the failure happens at preflight, as a deny policy does: validate
//!   and PUT answer 400 `InvalidTemplateDeployment` with a `RequestDisallowedByPolicy` detail whose
//!   `additionalInfo[{type: PolicyViolation}]` names the policy assignment.
//! - A Data Factory activity whose `typeProperties` hold
//!   `"emulatorFailure": {"errorCode", "message", "failureType"}`, or a `Fail` activity, fails the
//!   run with that error; the run parameter `emulatorFail` = `true` fails the first activity.
//!
//! # Faults
//!
//! [`Options::faults`] (the binary's `--fault`) and `POST /emulator/faults` set
//! [`emulator_faults`] rules: a matching request gets an error status with ARM's error body
//! (`429 SubscriptionRequestsThrottled`, `503 ServiceUnavailable`, … with `Retry-After`) or its
//! connection closed unanswered, before or after the request took effect. The emulator state's
//! `deploymentsStarted` and `pipelineRuns` show what took effect.
//!
//! Error codes and messages were taken from the Azure SDKs and from errors users reported; a few
//! the emulator could not confirm are marked in the code (cancel of a finished deployment or
//! run, an unknown ADF pipeline).

mod adf;
mod adf_run;
mod arm;
mod clock;
mod entra;
mod expr;
mod http;
mod links;
mod router;
mod state;
mod template;
mod tls;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use serde_json::{json, Value};
use task_sdk::agent_env::ServiceConnection;
use tokio::sync::{oneshot, watch};

pub use emulator_faults::{Action as FaultAction, DropMode, Rule as FaultRule};
pub use entra::DATABRICKS_RESOURCE;

/// Configuration; [`Options::default`] holds fixed test values.
#[derive(Debug, Clone)]
pub struct Options {
    /// The tenant the token endpoint accepts.
    pub tenant_id: String,
    /// The service principal's client id (also the app of the federated credential).
    pub client_id: String,
    pub client_secret: String,
    pub subscription_id: String,
    pub subscription_name: String,
    pub management_group_id: String,
    /// The `SYSTEMVSSCONNECTION` access token the OIDC endpoint accepts.
    pub oidc_request_token: String,
    /// The client id of the managed identity.
    pub managed_identity_client_id: String,
    /// The App Service managed identity secret (`IDENTITY_HEADER`).
    pub identity_header: String,
    /// Added before every response.
    pub latency: Duration,
    /// `Retry-After` on async operations, in seconds.
    pub async_retry_after_secs: u64,
    /// Polls before an async operation completes (0: deployments complete on PUT).
    pub operation_steps: u32,
    pub adf_queued_polls: u32,
    pub adf_in_progress_polls: u32,
    /// Activities the emulator cannot execute (Copy, Lookup, …) fail instead of succeeding
    /// with a note in their output (`--adf-strict`).
    pub adf_strict: bool,
    /// Lifetime of issued access tokens.
    pub token_lifetime: Duration,
    /// Lifetime of OIDC tokens from the emulated agent server.
    pub oidc_token_lifetime: Duration,
    /// Deployment operations per page (`nextLink` beyond).
    pub operations_page_size: usize,
    /// Data factories that exist from the start.
    pub factories: Vec<SeedFactory>,
    /// Where to write the CA PEM; `None`: a file in the temp directory, removed on drop.
    pub ca_out: Option<PathBuf>,
    /// 0: any free port.
    pub port: u16,
    /// Fault rules active from the start (more can be set at run time through
    /// `POST /emulator/faults`).
    pub faults: Vec<FaultRule>,
    /// Azure Resource Manager's throttling of a subscription's writes (PUT, PATCH, POST,
    /// DELETE): 429 `SubscriptionRequestsThrottled` with `Retry-After` once the bucket is
    /// empty. `None`: unlimited.
    pub arm_write_limit: Option<WriteLimit>,
}

/// A token bucket of `burst` writes refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriteLimit {
    pub burst: u32,
    pub per_second: f64,
}

impl WriteLimit {
    /// ARM's documented default per subscription and region since its 2024 regional
    /// throttling: a bucket of 200 writes refilled at 10 a second.
    pub const ARM: WriteLimit = WriteLimit {
        burst: 200,
        per_second: 10.0,
    };
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "8f2b9c4e-1d3a-4f5b-9e6c-7a8b9c0d1e2f".into(),
            client_secret: "emulator-client-secret".into(),
            subscription_id: "00000000-1111-2222-3333-444444444444".into(),
            subscription_name: "Emulated Subscription".into(),
            management_group_id: "emulator-mg".into(),
            oidc_request_token: "emulator-system-access-token".into(),
            managed_identity_client_id: "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b".into(),
            identity_header: "emulator-identity-header".into(),
            latency: Duration::ZERO,
            async_retry_after_secs: 1,
            operation_steps: 2,
            adf_queued_polls: 1,
            adf_in_progress_polls: 1,
            adf_strict: false,
            token_lifetime: Duration::from_secs(3600),
            oidc_token_lifetime: Duration::from_secs(600),
            operations_page_size: 2,
            factories: Vec::new(),
            ca_out: None,
            port: 0,
            faults: Vec::new(),
            arm_write_limit: None,
        }
    }
}

/// A data factory present from the start, with its pipelines.
#[derive(Debug, Clone)]
pub struct SeedFactory {
    /// Created (in `location`) if it does not exist.
    pub resource_group: String,
    pub location: String,
    pub name: String,
    pub pipelines: Vec<SeedPipeline>,
}

/// A pipeline: `properties` as in a template (`activities`, `parameters`).
#[derive(Debug, Clone)]
pub struct SeedPipeline {
    pub name: String,
    pub properties: Value,
}

/// How the AzureRM service connection authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    ServicePrincipal,
    WorkloadIdentityFederation,
    ManagedServiceIdentity,
}

/// What the handlers share.
pub(crate) struct Shared {
    /// The emulator itself, for pipeline runs that execute in their own tasks.
    pub me: std::sync::Weak<Shared>,
    pub opts: Options,
    pub url: String,
    /// The CA's PEM file: linked documents are fetched trusting it.
    pub ca_path: PathBuf,
    state: Mutex<state::State>,
    /// Fault rules (`--fault`, `/emulator/faults`); they have their own lock.
    pub faults: emulator_faults::Rules,
    /// The subscription's write bucket ([`Options::arm_write_limit`]).
    pub writes: Option<Mutex<emulator_faults::TokenBucket>>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, state::State> {
        // A handler that panicked left the state as consistent as any other moment: keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running emulator; dropping it stops the server.
pub struct Emulator {
    url: String,
    ca_pem: String,
    ca_path: PathBuf,
    leaf: (String, String),
    remove_ca_dir: Option<PathBuf>,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Started {
    url: String,
    ca_pem: String,
    ca_path: PathBuf,
    leaf: (String, String),
    remove_ca_dir: Option<PathBuf>,
    shared: Arc<Shared>,
}

async fn launch(
    opts: Options,
    shutdown: oneshot::Receiver<()>,
) -> std::io::Result<(Started, impl std::future::Future<Output = ()>)> {
    let certificates = tls::generate()?;
    let tcp = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], opts.port))).await?;
    let port = tcp.local_addr()?.port();
    let url = format!("https://127.0.0.1:{port}");
    let (ca_path, remove_ca_dir) = match &opts.ca_out {
        Some(path) => (path.clone(), None),
        None => {
            let dir = std::env::temp_dir().join(format!(
                "azure-emulator-{}-{}",
                std::process::id(),
                clock::random_token(8)
            ));
            std::fs::create_dir_all(&dir)?;
            (dir.join("ca.pem"), Some(dir))
        }
    };
    std::fs::write(&ca_path, &certificates.ca_pem)?;

    let shared = Arc::new_cyclic(|me| Shared {
        me: me.clone(),
        opts: opts.clone(),
        url: url.clone(),
        ca_path: ca_path.clone(),
        state: Mutex::new(state::State::default()),
        faults: emulator_faults::Rules::new(opts.faults.clone()),
        writes: opts
            .arm_write_limit
            .map(|l| Mutex::new(emulator_faults::TokenBucket::new(l.burst, l.per_second))),
    });
    seed(&shared);
    let listener = tls::TlsListener::new(tcp, certificates.server_config)?;
    let app = axum::Router::new()
        .fallback(router::serve)
        .with_state(shared.clone());
    let server = async move {
        // Our own accept loop (not axum::serve): a fault rule may close a connection unanswered.
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut listener = listener;
        let accept = async {
            loop {
                let (io, _) = axum::serve::Listener::accept(&mut listener).await;
                let mut stop = stop_rx.clone();
                let stopped = async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                };
                tokio::spawn(emulator_faults::serve_connection(io, app.clone(), stopped));
            }
        };
        tokio::select! {
            _ = accept => {}
            _ = shutdown => {}
        }
        let _ = stop_tx.send(true);
    };
    Ok((
        Started {
            url,
            ca_pem: certificates.ca_pem,
            ca_path,
            leaf: (certificates.leaf_pem, certificates.leaf_key_pem),
            remove_ca_dir,
            shared,
        },
        server,
    ))
}

fn seed(shared: &Shared) {
    let mut state = shared.lock();
    for f in &shared.opts.factories {
        let rg_key = f.resource_group.to_ascii_lowercase();
        state.resource_groups.entry(rg_key).or_insert_with(|| {
            arm::resource_group_json(shared, &f.resource_group, &f.location, None)
        });
        let factory_id = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.DataFactory/factories/{}",
            shared.opts.subscription_id, f.resource_group, f.name
        );
        let factory_type = "Microsoft.DataFactory/factories";
        let factory = adf::stored(
            &factory_id,
            factory_type,
            &json!({"location": f.location}),
            None,
        );
        state
            .resources
            .insert(factory_id.to_ascii_lowercase(), factory);
        for p in &f.pipelines {
            let id = format!("{factory_id}/pipelines/{}", p.name);
            let pipeline = adf::stored(
                &id,
                "Microsoft.DataFactory/factories/pipelines",
                &json!({"properties": p.properties}),
                None,
            );
            state.resources.insert(id.to_ascii_lowercase(), pipeline);
        }
    }
}

impl Emulator {
    fn from_started(
        s: Started,
        shutdown: oneshot::Sender<()>,
        thread: Option<std::thread::JoinHandle<()>>,
    ) -> Self {
        Self {
            url: s.url,
            ca_pem: s.ca_pem,
            ca_path: s.ca_path,
            leaf: s.leaf,
            remove_ca_dir: s.remove_ca_dir,
            shared: s.shared,
            shutdown: Some(shutdown),
            thread,
        }
    }

    /// Starts the emulator on the current Tokio runtime, bound to 127.0.0.1.
    pub async fn start(opts: Options) -> std::io::Result<Emulator> {
        let (tx, rx) = oneshot::channel();
        let (started, server) = launch(opts, rx).await?;
        tokio::spawn(server);
        Ok(Self::from_started(started, tx, None))
    }

    /// Starts the emulator on its own thread and runtime, for synchronous callers.
    pub fn start_blocking(opts: Options) -> std::io::Result<Emulator> {
        let (tx, rx) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("azure-emulator".into())
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
                    match launch(opts, rx).await {
                        Ok((started, server)) => {
                            let _ = ready_tx.send(Ok(started));
                            server.await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })?;
        let started = ready_rx.recv().map_err(|_| {
            std::io::Error::other("the emulator thread stopped before it started")
        })??;
        Ok(Self::from_started(started, tx, Some(thread)))
    }

    /// `https://127.0.0.1:PORT`: the ARM base URL and the authority host.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The CA certificate's PEM file, for `AGENT_CAINFO`.
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_path
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The emulator's server certificate for `127.0.0.1`/`localhost` and its private key
    /// (PEM), signed by [`Emulator::ca_pem`]: for another loopback server in a test that
    /// clients should trust through the same CA (Azurite over https).
    pub fn server_certificate_pem(&self) -> (&str, &str) {
        (&self.leaf.0, &self.leaf.1)
    }

    /// What `SYSTEM_OIDCREQUESTURI` should be.
    pub fn oidc_request_uri(&self) -> String {
        format!("{}/oidc", self.url)
    }

    /// The IMDS-style managed identity endpoint (needs `Metadata: true`).
    pub fn managed_identity_endpoint(&self) -> String {
        format!("{}/metadata/identity/oauth2/token", self.url)
    }

    /// The App Service-style managed identity endpoint (`IDENTITY_ENDPOINT`; needs
    /// `X-IDENTITY-HEADER` = [`Options::identity_header`]).
    pub fn app_service_identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.url)
    }

    /// The same document as `GET /emulator/state`.
    pub fn state(&self) -> Value {
        self.shared.lock().snapshot()
    }

    /// The options the emulator runs with.
    /// The fault rules still active, with what is left of their offset and times.
    pub fn fault_rules(&self) -> Vec<FaultRule> {
        self.shared.faults.active()
    }

    /// Adds a fault rule, as `POST /emulator/faults` does.
    pub fn add_fault(&self, rule: FaultRule) {
        self.shared.faults.add(rule);
    }

    pub fn options(&self) -> &Options {
        &self.shared.opts
    }

    /// Expires every access token issued so far (to test refresh on `ExpiredAuthenticationToken`).
    pub fn expire_tokens(&self) {
        let mut state = self.shared.lock();
        for t in state.tokens.values_mut() {
            t.expires_at = 0;
        }
    }

    /// The audience of a valid (issued, unexpired) access token; for emulators that accept
    /// Entra tokens, such as Databricks with [`DATABRICKS_RESOURCE`].
    pub fn token_audience(&self, token: &str) -> Option<String> {
        let state = self.shared.lock();
        state
            .tokens
            .get(token)
            .filter(|t| t.expires_at > clock::now_secs())
            .map(|t| t.audience.clone())
    }

    /// The `ENDPOINT_*` environment the agent exports for an AzureRM service connection `id`
    /// pointing at this emulator (agent-contract.md §2). Workload identity federation adds the
    /// `SYSTEMVSSCONNECTION` endpoint and `SYSTEM_OIDCREQUESTURI`; managed identity adds
    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, the App Service protocol's way to reach a
    /// managed identity endpoint other than the fixed IMDS address.
    pub fn service_connection_env(&self, id: &str, scheme: Scheme) -> Vec<(String, String)> {
        let o = &self.shared.opts;
        let (scheme_name, parameters) = match scheme {
            Scheme::ServicePrincipal => (
                "ServicePrincipal",
                json!({
                    "authenticationType": "spnKey",
                    "serviceprincipalid": o.client_id,
                    "serviceprincipalkey": o.client_secret,
                    "tenantid": o.tenant_id,
                }),
            ),
            Scheme::WorkloadIdentityFederation => (
                "WorkloadIdentityFederation",
                json!({
                    "serviceprincipalid": o.client_id,
                    "tenantid": o.tenant_id,
                    "workloadIdentityFederationIssuer": format!("https://vstoken.dev.azure.com/{}", o.tenant_id),
                    "workloadIdentityFederationSubject": format!("sc://emulator/emulator/{id}"),
                }),
            ),
            Scheme::ManagedServiceIdentity => {
                ("ManagedServiceIdentity", json!({"tenantid": o.tenant_id}))
            }
        };
        let authority = format!("{}/", self.url);
        let mut data = json!({
            "subscriptionId": o.subscription_id,
            "subscriptionName": o.subscription_name,
            "environment": "AzureCloud",
            "scopeLevel": "Subscription",
            "creationMode": "Manual",
            "environmentUrl": authority,
            "resourceManagerUrl": authority,
            "environmentAuthorityUrl": authority,
            "activeDirectoryAuthority": authority,
            "activeDirectoryServiceEndpointResourceId": "https://management.core.windows.net/",
            "managementGroupId": o.management_group_id,
        });
        if scheme == Scheme::ManagedServiceIdentity {
            data["msiclientId"] = json!(o.managed_identity_client_id);
        }
        // The agent's shape, from task-sdk's builder (the one every local run uses).
        let strings = |v: &serde_json::Value| -> BTreeMap<String, String> {
            v.as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        };
        let mut env = ServiceConnection {
            id: id.to_owned(),
            url: authority.clone(),
            scheme: scheme_name.to_owned(),
            auth: strings(&parameters),
            data: strings(&data),
        }
        .env();
        match scheme {
            Scheme::WorkloadIdentityFederation => {
                env.extend(
                    ServiceConnection::system(&format!("{}/", self.url), &o.oidc_request_token)
                        .env(),
                );
                env.extend([("SYSTEM_OIDCREQUESTURI".to_string(), self.oidc_request_uri())]);
            }
            Scheme::ManagedServiceIdentity => {
                env.extend([
                    (
                        "IDENTITY_ENDPOINT".to_string(),
                        self.app_service_identity_endpoint(),
                    ),
                    ("IDENTITY_HEADER".to_string(), o.identity_header.clone()),
                ]);
            }
            Scheme::ServicePrincipal => {}
        }
        env
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(dir) = self.remove_ca_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
