//! Shared helpers: a client that trusts the emulator's CA, tokens, ARM calls and polling.

use azure_emulator::{Emulator, Options};
use reqwest::{header::HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

pub const API: &str = "api-version=2021-04-01";
pub const ADF_API: &str = "api-version=2018-06-01";

/// Options for fast tests: no Retry-After wait, two polls per operation.
pub fn fast() -> Options {
    Options {
        async_retry_after_secs: 0,
        operation_steps: 2,
        ..Options::default()
    }
}

pub fn client(emu: &Emulator) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).expect("CA PEM parses");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("client builds")
}

pub async fn token_request(
    emu: &Emulator,
    client: &reqwest::Client,
    tenant: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let response = client
        .post(format!("{}/{tenant}/oauth2/v2.0/token", emu.url()))
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A service-principal token for `scope`.
pub async fn sp_token(emu: &Emulator, client: &reqwest::Client, scope: &str) -> String {
    let o = emu.options();
    let (status, body) = token_request(
        emu,
        client,
        &o.tenant_id,
        &[
            ("client_id", &o.client_id),
            ("client_secret", &o.client_secret),
            ("grant_type", "client_credentials"),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// An authenticated ARM client.
pub struct Arm {
    pub emu: Emulator,
    pub client: reqwest::Client,
    pub token: String,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| {
                panic!(
                    "header {name} missing; status {} body {}",
                    self.status, self.body
                )
            })
            .to_string()
    }
}

impl Arm {
    pub async fn start(opts: Options) -> Arm {
        let emu = Emulator::start(opts).await.expect("emulator starts");
        let client = client(&emu);
        let token = sp_token(&emu, &client, "https://management.azure.com/.default").await;
        Arm { emu, client, token }
    }

    pub fn sub(&self) -> String {
        format!("/subscriptions/{}", self.emu.options().subscription_id)
    }

    pub fn mg(&self) -> String {
        format!(
            "/providers/Microsoft.Management/managementGroups/{}",
            self.emu.options().management_group_id
        )
    }

    /// `path` is relative to the emulator; an absolute URL is used as is.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let url = if path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.emu.url())
        };
        let mut request = self.client.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("ARM request");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn put_rg(&self, name: &str) {
        let a = self
            .call(
                Method::PUT,
                &format!("{}/resourcegroups/{name}?{API}", self.sub()),
                Some(json!({"location": "westeurope"})),
            )
            .await;
        assert!(a.status.is_success(), "{}", a.body);
    }

    /// PUTs a deployment and polls its async-operation URL to the end; returns the statuses seen
    /// and the final deployment.
    pub async fn deploy(&self, deployment_path: &str, body: Value) -> (Vec<String>, Value) {
        let put = self
            .call(Method::PUT, &format!("{deployment_path}?{API}"), Some(body))
            .await;
        assert_eq!(put.status, StatusCode::CREATED, "{}", put.body);
        assert_eq!(put.body["properties"]["provisioningState"], "Accepted");
        assert_eq!(put.header("retry-after"), "0");
        let status_url = put.header("azure-asyncoperation");
        let mut seen = Vec::new();
        for _ in 0..20 {
            let poll = self.call(Method::GET, &status_url, None).await;
            assert_eq!(poll.status, StatusCode::OK, "{}", poll.body);
            let status = poll.body["status"].as_str().unwrap().to_string();
            seen.push(status.clone());
            if !matches!(status.as_str(), "Accepted" | "Running") {
                break;
            }
        }
        let get = self
            .call(Method::GET, &format!("{deployment_path}?{API}"), None)
            .await;
        assert_eq!(get.status, StatusCode::OK);
        (seen, get.body)
    }

    /// Follows a `Location` until it stops answering 202.
    pub async fn follow(&self, location: &str) -> (u32, Answer) {
        let mut accepted = 0;
        loop {
            let a = self.call(Method::GET, location, None).await;
            if a.status != StatusCode::ACCEPTED {
                return (accepted, a);
            }
            accepted += 1;
            assert!(accepted < 20, "operation never finished");
        }
    }
}

pub fn deployment_body(template: Value, parameters: Value) -> Value {
    json!({"properties": {"template": template, "parameters": parameters, "mode": "Incremental"}})
}
