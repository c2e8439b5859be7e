//! `--emulators`: the Databricks and Azure emulators started in-process, Azurite (the Azure
//! Storage emulator, a Node package) as a child process when node and the package are present,
//! and the variables and service connection a pipeline uses to reach them.
//!
//! The emulators are linked as the real services are: the Databricks emulator accepts the
//! Entra ID tokens the Azure emulator issues for the Azure Databricks resource, so a Data
//! Factory `DatabricksNotebook` activity whose linked service points at `$(DATABRICKS_URL)`
//! with managed identity authentication runs its notebook there.

use std::sync::{Arc, Weak};

use crate::endpoints::Endpoint;
use crate::varsfile::VarValue;

/// The id of the emulated AzureRM service connection (`$(AZURE_RM_CONNECTION)`).
pub const AZURE_RM_CONNECTION_ID: &str = "6f1c2a4e-8b3d-4e5f-9a7b-0c1d2e3f4a5b";
/// Its name, which YAML may use instead of the id.
pub const AZURE_RM_CONNECTION_NAME: &str = "azure-emulator";
/// The Unity Catalog volume the Databricks emulator has (`$(DATABRICKS_VOLUME)`).
pub const VOLUME: &str = "main.default.files";

pub struct Emulators {
    pub databricks: databricks_emulator::Emulator,
    pub azure: Arc<azure_emulator::Emulator>,
    pub variables: Vec<(String, VarValue)>,
    pub endpoint: Endpoint,
    pub azurite: Option<Azurite>,
}

/// Azurite's blob service, stopped with azp-local.
pub struct Azurite {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Azurite's well-known development account and key (published by Microsoft; not a secret,
/// but the key and the connection string are marked secret as real ones would be).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// `node_modules/azurite/dist/src/blob/main.js` in the current folder or above it.
fn azurite_script() -> Option<std::path::PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|d| d.join("node_modules/azurite/dist/src/blob/main.js"))
        .find(|p| p.is_file())
}

/// Starts Azurite's blob service on a free loopback port, or says why not (it is optional:
/// only pipelines using blob storage need it).
fn start_azurite() -> Result<(Azurite, u16), String> {
    let script = azurite_script().ok_or(
        "the npm package 'azurite' is not installed here (run `npm ci` at the repository's top)",
    )?;
    let dir = std::env::temp_dir().join(format!("azp-local-azurite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = std::process::Command::new("node")
        .arg(&script)
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        .arg("--location")
        .arg(&dir)
        .args([
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
            "--disableTelemetry",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run node: {e}"))?;
    let azurite = Azurite { child, dir };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            return Err("Azurite did not start listening within 30 s".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok((azurite, port))
}

/// Accepts what Azure Databricks accepts besides its own tokens: unexpired Entra ID access
/// tokens for the Azure Databricks resource, here those the Azure emulator issued (to a
/// service connection, or to a factory's managed identity). Weak: the check must not keep the
/// Azure emulator running after azp-local drops it.
fn entra_tokens_of(azure: Weak<azure_emulator::Emulator>) -> databricks_emulator::TokenCheck {
    databricks_emulator::TokenCheck::new(move |token| {
        azure
            .upgrade()
            .and_then(|azure| azure.token_audience(token))
            .is_some_and(|audience| {
                audience.trim_end_matches('/') == azure_emulator::DATABRICKS_RESOURCE
            })
    })
}

fn var(name: &str, value: impl Into<String>, secret: bool) -> (String, VarValue) {
    (
        name.to_owned(),
        VarValue {
            value: value.into(),
            secret,
        },
    )
}

pub fn start() -> Result<Emulators, String> {
    // Azurite first: notebooks on the Databricks emulator reach the development account there.
    let (azurite, blob_endpoint) = match start_azurite() {
        Ok((azurite, port)) => (
            Some(azurite),
            Some(format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}")),
        ),
        Err(why) => {
            eprintln!("azp-local: Azurite not started, AZURE_STORAGE_* not defined: {why}");
            (None, None)
        }
    };
    let azure = Arc::new(
        azure_emulator::Emulator::start_blocking(azure_emulator::Options {
            // A Data Factory run shows each state once instead of lingering: local runs are for
            // seeing the pipeline work, not for waiting.
            adf_queued_polls: 0,
            adf_in_progress_polls: 1,
            ..Default::default()
        })
        .map_err(|e| format!("cannot start the Azure emulator: {e}"))?,
    );
    let token = format!("dapi{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let databricks = databricks_emulator::Emulator::start_blocking(databricks_emulator::Options {
        tokens: vec![token.clone()],
        token_check: Some(entra_tokens_of(Arc::downgrade(&azure))),
        // A volume for uploadFiles and library files (`$(DATABRICKS_VOLUME)`).
        volumes: vec![VOLUME.to_owned()],
        // dbutils.fs on wasbs://…@devstoreaccount1.blob.core.windows.net reaches Azurite.
        blob_endpoints: blob_endpoint
            .iter()
            .map(|e| (AZURITE_ACCOUNT.to_owned(), e.clone()))
            .collect(),
        ..Default::default()
    })
    .map_err(|e| format!("cannot start the Databricks emulator: {e}"))?;
    let env = azure.service_connection_env(
        AZURE_RM_CONNECTION_ID,
        azure_emulator::Scheme::ServicePrincipal,
    );
    let endpoint = Endpoint::from_env(AZURE_RM_CONNECTION_ID, Some(AZURE_RM_CONNECTION_NAME), &env)
        .ok_or("the Azure emulator gave no service connection")?;
    let o = azure.options();
    let mut variables = vec![
        var("DATABRICKS_URL", databricks.url(), false),
        var("DATABRICKS_TOKEN", token, true),
        var(
            "DATABRICKS_CLUSTER_ID",
            databricks_emulator::DEFAULT_CLUSTER_ID,
            false,
        ),
        var(
            "DATABRICKS_VOLUME",
            format!("/Volumes/{}", VOLUME.replace('.', "/")),
            false,
        ),
        var("AZURE_RM_CONNECTION", AZURE_RM_CONNECTION_ID, false),
        var("AZURE_EMULATOR_URL", azure.url(), false),
        var("AZURE_SUBSCRIPTION_ID", o.subscription_id.clone(), false),
        var("AZURE_TENANT_ID", o.tenant_id.clone(), false),
        var(
            "Agent.CAInfo",
            azure.ca_pem_path().display().to_string(),
            false,
        ),
    ];
    if let Some(endpoint) = &blob_endpoint {
        variables.extend([
            var("AZURE_STORAGE_ACCOUNT", AZURITE_ACCOUNT, false),
            var("AZURE_STORAGE_BLOB_ENDPOINT", endpoint.clone(), false),
            var("AZURE_STORAGE_KEY", AZURITE_KEY, true),
            var(
                "AZURE_STORAGE_CONNECTION_STRING",
                format!("DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"),
                true,
            ),
        ]);
    }
    Ok(Emulators {
        databricks,
        azure,
        variables,
        endpoint,
        azurite,
    })
}
