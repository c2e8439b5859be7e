//! The `azureblob` task: upload, download, delete and wait for blobs in Azure Storage, on
//! Microsoft's official `azure_storage_blob` SDK with task-http as its transport (one HTTP
//! stack, one retry policy; see [`transport`]).
//!
//! It is not a blob client of its own: the SDK makes the requests. Modules:
//! - [`inputs`]: typed inputs;
//! - [`auth`]: the account's URL and credentials (service connection, connection string, SAS);
//! - [`transport`]: task-http as azure_core's `HttpClient`, and the authentication policy;
//! - [`store`]: one container through the SDK, and error messages;
//! - [`files`]: local files, MD5, content types;
//! - [`delegation`]: user delegation keys and SAS (used by deployarm to stage linked templates);
//! - [`upload`], [`download`], [`delete`], [`wait`]: the commands.

pub mod auth;
pub mod delegation;
pub mod delete;
pub mod download;
pub mod files;
pub mod inputs;
pub mod store;
pub mod transport;
pub mod upload;
pub mod wait;

use std::time::{Duration, SystemTime};

use task_sdk::{out, Agent, CancelSignal, HttpClient, TaskError};

use auth::Account;
use inputs::{AuthKind, Command, Inputs};
use store::Store;
use transport::Auth;

/// How long an account SAS made from a connection string's key lives.
const KEY_SAS_LIFETIME: Duration = Duration::from_secs(4 * 3600);

/// The account's URL and credentials from the inputs; every secret registered for masking
/// before anything could print it.
pub fn account(agent: &Agent, inputs: &Inputs, http: &HttpClient) -> Result<Account, TaskError> {
    let endpoint_input = agent.input("blobEndpoint");
    match inputs.auth {
        AuthKind::ServiceConnection => {
            let id = agent.input("azureSubscription").ok_or_else(|| {
                TaskError::new("input 'azureSubscription' is required: the AzureRM service connection (or set authenticationType to connectionString or sasToken)")
            })?;
            let conn = agent.azure_rm(&id)?;
            let service_url = match endpoint_input {
                Some(url) => auth::service_url(&url, "input 'blobEndpoint'")?,
                None => {
                    let account = storage_account(agent)?;
                    let suffix = auth::storage_suffix(&conn.environment).ok_or_else(|| {
                        TaskError::new(format!(
                            "the service connection's cloud '{}' has no known storage suffix: give the account's blob URL in 'blobEndpoint'",
                            conn.environment
                        ))
                    })?;
                    auth::service_url(
                        &format!("https://{account}.blob.{suffix}"),
                        "the account URL",
                    )?
                }
            };
            let credential = azure::Credential::from_agent(agent, &conn, http)?;
            Ok(Account {
                service_url,
                auth: Auth::Entra(credential),
            })
        }
        AuthKind::ConnectionString => {
            let text = agent.input("connectionString").ok_or_else(|| {
                TaskError::new("input 'connectionString' is required for authenticationType connectionString: pass it from a secret variable")
            })?;
            task_sdk::secrets::register(&text);
            let cs = auth::parse_connection_string(&text)?;
            if let Some(key) = &cs.key {
                task_sdk::secrets::register(key);
            }
            let sas = match (&cs.sas, &cs.key, &cs.account) {
                (Some(sas), _, _) => sas.clone(),
                (None, Some(key), Some(account)) => {
                    auth::account_sas(account, key, SystemTime::now(), KEY_SAS_LIFETIME)?
                }
                _ => {
                    unreachable!("parse_connection_string requires a key with an account, or a SAS")
                }
            };
            register_sas(&sas);
            let service_url = match endpoint_input {
                Some(url) => auth::service_url(&url, "input 'blobEndpoint'")?,
                None => cs.blob_endpoint,
            };
            Ok(Account {
                service_url,
                auth: Auth::Sas(sas),
            })
        }
        AuthKind::Sas => {
            let text = agent.input("sasToken").ok_or_else(|| {
                TaskError::new("input 'sasToken' is required for authenticationType sasToken: pass it from a secret variable")
            })?;
            task_sdk::secrets::register(&text);
            let sas = auth::normalise_sas(&text)?;
            register_sas(&sas);
            let service_url = match endpoint_input {
                Some(url) => auth::service_url(&url, "input 'blobEndpoint'")?,
                None => {
                    let account = storage_account(agent)?;
                    auth::service_url(
                        &format!("https://{account}.blob.core.windows.net"),
                        "the account URL",
                    )?
                }
            };
            Ok(Account {
                service_url,
                auth: Auth::Sas(sas),
            })
        }
    }
}

/// A SAS, and its signature alone (it shows up percent-decoded in places).
fn register_sas(sas: &str) {
    task_sdk::secrets::register(sas);
    for pair in url::form_urlencoded::parse(sas.as_bytes()) {
        if pair.0 == "sig" {
            task_sdk::secrets::register(&pair.1);
        }
    }
}

fn storage_account(agent: &Agent) -> Result<String, TaskError> {
    let account = agent.input("storageAccount").ok_or_else(|| {
        TaskError::new("input 'storageAccount' is required: the storage account's name (or give 'blobEndpoint')")
    })?;
    let account = account.trim().to_owned();
    if !(3..=24).contains(&account.len())
        || !account
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(TaskError::new(format!(
            "input 'storageAccount' is '{account}', which is not a storage account name: 3-24 lowercase letters and digits"
        )));
    }
    Ok(account)
}

/// The whole task.
pub async fn run(agent: &Agent, http: HttpClient, cancel: &CancelSignal) -> Result<(), TaskError> {
    let inputs = Inputs::from_agent(agent)?;
    let account = account(agent, &inputs, &http)?;
    let store = Store::new(&account, &inputs.container, &http)?;
    match inputs.command {
        Command::Upload => {
            let source = inputs.source.as_deref().expect("read for upload");
            let files = files::scan(source, &inputs.prefix).map_err(|e| {
                TaskError::new(format!(
                    "cannot read 'sourcePath' '{}': {e}",
                    source.display()
                ))
            })?;
            if inputs.create_container && store.create().await? {
                out::info(&format!("Created container '{}'", store.name));
            } else if !store.exists().await? {
                return Err(TaskError::new(format!(
                    "container '{}' does not exist: create it first or set 'createContainer: true'",
                    store.name
                )));
            }
            let options = upload::Options {
                overwrite: inputs.overwrite,
                incremental: inputs.incremental,
                checksum: inputs.checksum,
                metadata: inputs.metadata.clone(),
                concurrency: inputs.concurrency,
            };
            let count = files.len();
            upload::upload(&store, files, &inputs.prefix, &options).await?;
            out::set_output("BlobCount", &count.to_string(), false);
            out::set_output("BlobPrefixUrl", &store.blob_url(&inputs.prefix), false);
        }
        Command::Download => {
            let destination = inputs.destination.as_deref().expect("read for download");
            match &inputs.blob {
                Some(name) => {
                    download::blob(&store, name, destination).await?;
                }
                None => {
                    download::prefix(
                        &store,
                        &inputs.prefix,
                        destination,
                        inputs.incremental,
                        inputs.concurrency,
                    )
                    .await?;
                }
            }
        }
        Command::Delete => {
            let n = delete::delete(
                &store,
                &inputs.prefix,
                inputs.dry_run,
                inputs.delete_whole_container,
                inputs.concurrency,
            )
            .await?;
            out::set_output("BlobCount", &n.to_string(), false);
        }
        Command::WaitFor => {
            let target = match &inputs.blob {
                Some(name) => wait::Target::Blob(name.clone()),
                None => wait::Target::Prefix {
                    prefix: inputs.prefix.clone(),
                    count: inputs.min_count,
                },
            };
            let n = wait::wait(&store, &target, inputs.timeout, inputs.poll, cancel).await?;
            out::set_output("BlobCount", &n.to_string(), false);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(cloud: &str, extra: &[(&str, &str)]) -> Agent {
        let mut vars = vec![
            ("ENDPOINT_URL_C".to_owned(), "https://management.usgovcloudapi.net/".to_owned()),
            (
                "ENDPOINT_AUTH_C".to_owned(),
                r#"{"scheme":"ServicePrincipal","parameters":{"authenticationType":"spnKey","serviceprincipalid":"id","serviceprincipalkey":"k","tenantid":"t"}}"#.to_owned(),
            ),
            ("ENDPOINT_DATA_C".to_owned(), format!(r#"{{"environment":"{cloud}","subscriptionId":"s","environmentAuthorityUrl":"https://login.example.org/"}}"#)),
            ("INPUT_AZURESUBSCRIPTION".to_owned(), "C".to_owned()),
            ("INPUT_CONTAINER".to_owned(), "raw".to_owned()),
            ("INPUT_COMMAND".to_owned(), "waitFor".to_owned()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Agent::from_vars(vars)
    }

    fn http() -> HttpClient {
        let client = task_sdk::http::client(&task_sdk::http::HttpSettings::default()).unwrap();
        HttpClient::new(client, task_sdk::RetryPolicy::default())
    }

    #[test]
    fn service_connection_accounts_use_the_clouds_storage_suffix() {
        let a = agent("AzureUSGovernment", &[("INPUT_STORAGEACCOUNT", "mydata")]);
        let inputs = Inputs::from_agent(&a).unwrap();
        let found = account(&a, &inputs, &http()).unwrap();
        assert_eq!(
            found.service_url.as_str(),
            "https://mydata.blob.core.usgovcloudapi.net/"
        );
        assert_eq!(
            found.container_url("raw").as_str(),
            "https://mydata.blob.core.usgovcloudapi.net/raw"
        );
        assert!(matches!(found.auth, Auth::Entra(_)));

        let bad = agent("AzureCloud", &[("INPUT_STORAGEACCOUNT", "My_Data")]);
        let inputs = Inputs::from_agent(&bad).unwrap();
        let err = account(&bad, &inputs, &http()).unwrap_err();
        assert!(
            err.message().contains("not a storage account name"),
            "{}",
            err.message()
        );

        let stack = agent("AzureStack", &[("INPUT_STORAGEACCOUNT", "mydata")]);
        let inputs = Inputs::from_agent(&stack).unwrap();
        let err = account(&stack, &inputs, &http()).unwrap_err();
        assert!(err.message().contains("blobEndpoint"), "{}", err.message());
    }

    #[test]
    fn plain_http_is_refused_except_to_loopback() {
        assert!(auth::service_url("http://example.com/acc", "input 'blobEndpoint'").is_err());
        assert!(auth::service_url("http://127.0.0.1:1/acc", "input 'blobEndpoint'").is_ok());
    }
}
