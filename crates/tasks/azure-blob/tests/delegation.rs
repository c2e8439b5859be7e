//! User delegation SAS against real Azurite (`--oauth basic` over https): a key got with the
//! service connection's Entra token, and the SAS signed with it, are accepted for reading the
//! container's blobs and refused for anything else, by Azurite's own checks.

use azure_task_testkit as common;

use std::time::{Duration, SystemTime};

use azure_blob::auth::Account;
use azure_blob::delegation::{self, SasSpec};
use azure_blob::store::Store;
use azure_blob::transport::Auth;
use azure_emulator::Scheme;
use common::azurite::{Azurite, ACCOUNT};
use common::{Env, CONNECTION};
use task_sdk::http::{HttpSettings, Method, Request};
use task_sdk::{Agent, HttpClient, Replay, RetryPolicy};

#[test]
fn a_user_delegation_sas_reads_its_container_and_nothing_else() {
    let env = Env::new(Scheme::ServicePrincipal);
    let azurite = Azurite::start_oauth(&env.emulator);
    env.write("stage/nested/t.json", "{\"resources\": []}");
    let agent = Agent::from_vars(env.vars(&[]));
    let settings = HttpSettings {
        ca_file: Some(env.emulator.ca_pem_path().to_owned()),
        ..HttpSettings::default()
    };
    let http = HttpClient::new(
        task_sdk::http::Client::new(&settings).unwrap(),
        RetryPolicy::default(),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let conn = agent.azure_rm(CONNECTION).unwrap();
        let credential = azure::Credential::from_agent(&agent, &conn, &http).unwrap();
        let account = Account {
            service_url: azure_blob::auth::service_url(&azurite.blob_endpoint(), "test").unwrap(),
            auth: Auth::Entra(credential),
        };
        for container in ["staged", "other"] {
            let store = Store::new(&account, container, &http).unwrap();
            assert!(store.create().await.unwrap());
            let files = azure_blob::files::scan(&env.root().join("stage"), "p").unwrap();
            let options = azure_blob::upload::Options {
                overwrite: true,
                incremental: true,
                checksum: false,
                metadata: Vec::new(),
                concurrency: 2,
            };
            azure_blob::upload::upload(&store, files, "p", &options)
                .await
                .unwrap();
        }
        let now = SystemTime::now();
        let (start, expiry) = (
            now - Duration::from_secs(300),
            now + Duration::from_secs(3600),
        );
        let key = delegation::user_delegation_key(&account, &http, start, expiry)
            .await
            .unwrap();
        assert_eq!(key.signed_service, "b");
        let sas = delegation::container_sas(
            &key,
            &SasSpec {
                account: ACCOUNT,
                container: "staged",
                permissions: "r",
                start,
                expiry,
                https_only: true,
            },
        )
        .unwrap();
        let status = |method: Method, container: &str, query: &str| {
            let url = format!(
                "{}/{container}/p/nested/t.json?{query}",
                azurite.blob_endpoint()
            );
            let mut request = Request::from_url(method, url::Url::parse(&url).unwrap())
                .header("x-ms-version", "2021-08-06");
            if method == Method::PUT {
                request = request
                    .header("x-ms-blob-type", "BlockBlob")
                    .body(b"{}".to_vec());
            }
            let http = http.clone();
            async move {
                http.send(request, Replay::Safe)
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        // Reads in its container; no writes; no other container; no tampering.
        assert_eq!(status(Method::GET, "staged", &sas).await, 200);
        assert_eq!(status(Method::PUT, "staged", &sas).await, 403);
        assert_eq!(status(Method::GET, "other", &sas).await, 403);
        let tampered = sas.replace("sp=r", "sp=rw");
        assert_eq!(status(Method::GET, "staged", &tampered).await, 403);
        // Without a SAS the container is private.
        assert_ne!(status(Method::GET, "staged", "").await, 200);
    });
}
