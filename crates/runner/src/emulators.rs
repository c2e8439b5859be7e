//! `--emulators`: the Databricks and Azure emulators started in-process, and the variables
//! and service connection a pipeline uses to reach them.

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
    pub azure: azure_emulator::Emulator,
    pub variables: Vec<(String, VarValue)>,
    pub endpoint: Endpoint,
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
    let token = format!("dapi{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let databricks = databricks_emulator::Emulator::start_blocking(databricks_emulator::Options {
        tokens: vec![token.clone()],
        // A volume for uploadFiles and library files (`$(DATABRICKS_VOLUME)`).
        volumes: vec![VOLUME.to_owned()],
        ..Default::default()
    })
    .map_err(|e| format!("cannot start the Databricks emulator: {e}"))?;
    let azure = azure_emulator::Emulator::start_blocking(azure_emulator::Options {
        // A Data Factory run shows each state once instead of lingering: local runs are for
        // seeing the pipeline work, not for waiting.
        adf_queued_polls: 0,
        adf_in_progress_polls: 1,
        ..Default::default()
    })
    .map_err(|e| format!("cannot start the Azure emulator: {e}"))?;
    let env = azure.service_connection_env(
        AZURE_RM_CONNECTION_ID,
        azure_emulator::Scheme::ServicePrincipal,
    );
    let endpoint = Endpoint::from_env(AZURE_RM_CONNECTION_ID, Some(AZURE_RM_CONNECTION_NAME), &env)
        .ok_or("the Azure emulator gave no service connection")?;
    let o = azure.options();
    let variables = vec![
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
    Ok(Emulators {
        databricks,
        azure,
        variables,
        endpoint,
    })
}
