//! Staging for linked templates (`artifactsStorageAccount`), the Visual Studio / quickstart
//! convention: the template's folder is uploaded (azureblob's incremental upload) to a
//! container, and the template gets `_artifactsLocation` (the folder's URL, ending in `/`)
//! and `_artifactsLocationSasToken` (`?` + a read-only, container-scoped user delegation SAS
//! that expires soon after the deployment's timeout). The SAS is registered as a secret
//! before anything could print it. Values the user set for these parameters win.

use std::path::Path;
use std::time::{Duration, SystemTime};

use azure::Credential;
use azure_blob::auth::Account;
use azure_blob::delegation::{self, SasSpec};
use azure_blob::store::Store;
use azure_blob::transport::Auth;
use azure_blob::upload;
use serde_json::{json, Map, Value};
use task_sdk::{out, AzureRmConnection, HttpClient, TaskError};

use crate::inputs::Artifacts;

/// The parameter that receives the staged folder's URL.
pub const LOCATION: &str = "_artifactsLocation";
/// The parameter that receives `?` + the SAS.
pub const SAS_TOKEN: &str = "_artifactsLocationSasToken";

/// How long the SAS lives without a deployment timeout: what Visual Studio's script uses.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(4 * 3600);
/// Added to the deployment's timeout: the upload and validation come before it.
const MARGIN: Duration = Duration::from_secs(30 * 60);
/// The key and SAS start a little in the past: clocks differ.
const SKEW: Duration = Duration::from_secs(5 * 60);
/// Files uploaded at a time.
const CONCURRENCY: usize = 8;

/// How long the SAS lives for a deployment `timeout`: the timeout plus a margin, or
/// [`DEFAULT_LIFETIME`], never more than the service's limit for a user delegation key.
pub fn sas_lifetime(timeout: Option<Duration>) -> Duration {
    let wanted = timeout.map_or(DEFAULT_LIFETIME, |t| t + MARGIN);
    wanted.min(delegation::MAX_KEY_LIFETIME - SKEW - Duration::from_secs(60))
}

/// The name the template declares for `wanted` (ARM matches parameter names ignoring case).
fn declared<'t>(template: &'t Value, wanted: &str) -> Option<&'t str> {
    template
        .get("parameters")?
        .as_object()?
        .keys()
        .find(|k| k.eq_ignore_ascii_case(wanted))
        .map(String::as_str)
}

/// A parameter's value the user set (parameters file or overrides), if it is a non-empty
/// string.
fn user_value<'p>(parameters: &'p Map<String, Value>, name: &str) -> Option<&'p str> {
    parameters
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.get("value"))
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
}

/// Whether staging applies: the template declares `_artifactsLocation`. Otherwise a warning
/// says why nothing is staged.
pub fn applies(template: &Value) -> bool {
    if declared(template, LOCATION).is_some() {
        return true;
    }
    out::warning(&format!(
        "input 'artifactsStorageAccount' is set, but the template declares no '{LOCATION}' parameter, so it cannot use staged files: nothing was staged. Add the '{LOCATION}' and '{SAS_TOKEN}' parameters (the quickstart convention) to link templates from the template's folder, or remove the input."
    ));
    false
}

/// The blob service URL of `artifactsStorageAccount`: an account name (on the connection's
/// cloud), or a URL (another cloud, a private endpoint, an emulator).
fn service_url(account: &str, conn: &AzureRmConnection) -> Result<url::Url, TaskError> {
    if account.contains("://") {
        return azure_blob::auth::service_url(account, "input 'artifactsStorageAccount'");
    }
    if !(3..=24).contains(&account.len())
        || !account
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(TaskError::new(format!(
            "input 'artifactsStorageAccount' is '{account}', which is not a storage account name (3-24 lowercase letters and digits) or a blob service URL"
        )));
    }
    let suffix = azure_blob::auth::storage_suffix(&conn.environment).ok_or_else(|| {
        TaskError::new(format!(
            "the service connection's cloud '{}' has no known storage suffix: give the account's blob service URL in 'artifactsStorageAccount'",
            conn.environment
        ))
    })?;
    azure_blob::auth::service_url(
        &format!("https://{account}.blob.{suffix}"),
        "the staging account's URL",
    )
}

/// What staging produced.
#[derive(Debug, Clone)]
pub struct Staged {
    /// The folder's URL with a trailing `/` (no credentials).
    pub location: String,
    /// `?` + the SAS: a secret, registered.
    pub sas_token: String,
}

/// Uploads the template's folder and makes the SAS. Nothing in Azure Resource Manager has
/// changed when this fails.
#[allow(clippy::too_many_arguments)]
pub async fn stage(
    artifacts: &Artifacts,
    template_path: &Path,
    default_prefix: &str,
    timeout: Option<Duration>,
    conn: &AzureRmConnection,
    credential: Credential,
    http: &HttpClient,
) -> Result<Staged, TaskError> {
    let service_url = service_url(&artifacts.account, conn)?;
    let account_name = delegation::account_name(&service_url).ok_or_else(|| {
        TaskError::new(format!(
            "input 'artifactsStorageAccount': cannot tell the account's name from '{service_url}': give a URL like https://<account>.blob.core.windows.net"
        ))
    })?;
    let account = Account {
        service_url: service_url.clone(),
        auth: Auth::Entra(credential),
    };
    let store = Store::new(&account, &artifacts.container, http)?;
    let prefix = artifacts
        .prefix
        .clone()
        .unwrap_or_else(|| default_prefix.to_owned());
    let folder = template_path.parent().unwrap_or(Path::new("."));
    let files = azure_blob::files::scan(folder, &prefix).map_err(|e| {
        TaskError::new(format!(
            "cannot read the template's folder '{}' to stage it: {e}",
            folder.display()
        ))
    })?;
    out::info(&format!(
        "Staging the template's folder '{}' ({} file(s)) for linked templates in storage account '{account_name}', container '{}', folder '{prefix}/'.",
        folder.display(),
        files.len(),
        artifacts.container
    ));
    let staging_failed = |e: TaskError| {
        TaskError::new(format!(
            "staging the linked templates failed; nothing was deployed: {}",
            e.message()
        ))
    };
    // Created only when missing: a role on an existing container is enough then.
    if !store.exists().await.map_err(staging_failed)?
        && store.create().await.map_err(staging_failed)?
    {
        out::info(&format!("Created container '{}'.", artifacts.container));
    }
    let options = upload::Options {
        overwrite: true,
        incremental: true,
        checksum: false,
        metadata: Vec::new(),
        concurrency: CONCURRENCY,
    };
    upload::upload(&store, files, &prefix, &options)
        .await
        .map_err(staging_failed)?;

    let now = SystemTime::now();
    let start = now - SKEW;
    let expiry = now + sas_lifetime(timeout);
    let key = delegation::user_delegation_key(&account, http, start, expiry)
        .await
        .map_err(staging_failed)?;
    let sas = delegation::container_sas(
        &key,
        &SasSpec {
            account: &account_name,
            container: &artifacts.container,
            permissions: "r",
            start,
            expiry,
            https_only: service_url.scheme() == "https",
        },
    )?;
    let sas_token = format!("?{sas}");
    task_sdk::secrets::register(&sas_token);
    let location = format!("{}/{prefix}/", store.url.as_str().trim_end_matches('/'));
    out::info(&format!(
        "Azure Resource Manager reads the staged files at {location} with a read-only SAS valid until {}.",
        azure_blob::auth::iso8601(expiry)
    ));
    Ok(Staged {
        location,
        sas_token,
    })
}

/// Sets `_artifactsLocation` and `_artifactsLocationSasToken` in `parameters`, unless the
/// user set them (then theirs win, and the log says so).
pub fn apply(template: &Value, parameters: &mut Map<String, Value>, staged: &Staged) {
    let values = [
        (LOCATION, staged.location.as_str()),
        (SAS_TOKEN, staged.sas_token.as_str()),
    ];
    for (wanted, value) in values {
        let Some(name) = declared(template, wanted) else {
            out::warning(&format!(
                "the template declares '{LOCATION}' but not '{SAS_TOKEN}': the staged files are private, so its links will fail unless they carry a SAS of their own. Declare '{SAS_TOKEN}' (type securestring) and append it to each link."
            ));
            continue;
        };
        if let Some(theirs) = user_value(parameters, name) {
            if name.eq_ignore_ascii_case(SAS_TOKEN) {
                task_sdk::secrets::register(theirs);
            }
            out::info(&format!(
                "Parameter '{name}' is set by the parameters file or overrideParameters: that value is used, not the staged one."
            ));
            continue;
        }
        // The parameters file may spell the name differently: replace its entry.
        parameters.retain(|k, _| !k.eq_ignore_ascii_case(name));
        parameters.insert(name.to_owned(), json!({ "value": value }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_follow_the_timeout_and_stop_at_the_service_limit() {
        assert_eq!(sas_lifetime(None), Duration::from_secs(4 * 3600));
        assert_eq!(
            sas_lifetime(Some(Duration::from_secs(600))),
            Duration::from_secs(600 + 1800)
        );
        assert!(
            sas_lifetime(Some(Duration::from_secs(30 * 86_400))) < delegation::MAX_KEY_LIFETIME
        );
    }

    #[test]
    fn staged_values_fill_the_declared_parameters_unless_the_user_set_them() {
        let template = json!({"parameters": {
            "_ArtifactsLocation": {"type": "string"},
            "_artifactsLocationSasToken": {"type": "securestring"}
        }});
        let staged = Staged {
            location: "https://a.blob.core.windows.net/c/p/".into(),
            sas_token: "?sv=1&sig=x".into(),
        };
        let mut params = Map::new();
        params.insert("_artifactsLocation".into(), json!({"value": ""}));
        apply(&template, &mut params, &staged);
        assert_eq!(
            Value::Object(params.clone()),
            json!({
                "_ArtifactsLocation": {"value": "https://a.blob.core.windows.net/c/p/"},
                "_artifactsLocationSasToken": {"value": "?sv=1&sig=x"}
            })
        );
        let mut theirs = Map::new();
        theirs.insert(
            "_artifactsLocationSasToken".into(),
            json!({"value": "?sv=mine"}),
        );
        apply(&template, &mut theirs, &staged);
        assert_eq!(
            theirs["_artifactsLocationSasToken"],
            json!({"value": "?sv=mine"})
        );
        assert_eq!(
            theirs["_ArtifactsLocation"],
            json!({"value": "https://a.blob.core.windows.net/c/p/"})
        );
        assert!(applies(&template));
        assert!(!applies(&json!({"parameters": {"x": {"type": "string"}}})));
    }
}
