//! The task's own library against Azurite, for tests that look past the binary's log: a
//! container's [`Store`] reached with an account SAS signed by the development key.

use std::time::{Duration, SystemTime};

use azure_blob::{auth, store::Store, transport::Auth};
use azure_task_testkit::azurite::{Azurite, ACCOUNT, KEY};

/// A current-thread runtime, as the task runs.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `container` of the development account, its requests retried for at most 3 s.
pub fn store(azurite: &Azurite, container: &str) -> Store {
    let client = task_sdk::http::client(&task_sdk::http::HttpSettings::default()).unwrap();
    let http = task_sdk::HttpClient::new(
        client,
        task_sdk::RetryPolicy::default().with_budget(Duration::from_secs(3)),
    );
    let sas = auth::account_sas(ACCOUNT, KEY, SystemTime::now(), Duration::from_secs(600)).unwrap();
    let account = auth::Account {
        service_url: auth::service_url(&azurite.blob_endpoint(), "endpoint").unwrap(),
        auth: Auth::Sas(sas),
    };
    Store::new(&account, container, &http).unwrap()
}
