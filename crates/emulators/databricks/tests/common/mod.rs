//! Shared helpers of the emulator's integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use base64::Engine;
use databricks_emulator::{Emulator, Options};
use serde_json::{json, Value};

pub const TOKEN: &str = "dapi-test";

pub fn options() -> Options {
    Options {
        tokens: vec![TOKEN.to_string()],
        non_python_run_delay: Duration::from_millis(50),
        run_pending: Duration::from_millis(150),
        run_terminating: Duration::from_millis(30),
        ..Options::default()
    }
}

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

/// A plain reqwest client. reqwest is built without a default TLS crypto provider in this
/// workspace (tasks pick ring), so the tests install it before building a client.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub async fn start(opts: Options) -> (Emulator, Client) {
    let emulator = Emulator::start(opts).await.expect("emulator starts");
    let client = Client {
        http: http_client(),
        base: emulator.url(),
    };
    (emulator, client)
}

pub fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

pub fn unb64(text: &str) -> String {
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("base64"),
    )
    .expect("utf-8")
}

async fn parse(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

impl Client {
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .query(query)
            .send()
            .await
            .expect("request");
        parse(response).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .expect("request");
        parse(response).await
    }

    pub async fn mkdirs(&self, path: &str) {
        let (status, body) = self
            .post("/api/2.0/workspace/mkdirs", json!({ "path": path }))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    pub async fn import_python(&self, path: &str, source: &str) {
        let (status, body) = self
            .post(
                "/api/2.0/workspace/import",
                json!({"path": path, "format": "SOURCE", "language": "PYTHON", "content": b64(source), "overwrite": true}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Submits a one-task notebook run; returns the parent run id.
    pub async fn submit_notebook(&self, path: &str, params: Value, extra: Value) -> u64 {
        let mut body = json!({
            "run_name": "test",
            "tasks": [{
                "task_key": "main",
                "existing_cluster_id": databricks_emulator::DEFAULT_CLUSTER_ID,
                "notebook_task": {"notebook_path": path, "base_parameters": params},
            }],
        });
        if let (Some(obj), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            obj.extend(extra.clone());
        }
        let (status, body) = self.post("/api/2.2/jobs/runs/submit", body).await;
        assert_eq!(status, 200, "{body}");
        body["run_id"].as_u64().expect("run_id")
    }

    pub async fn run(&self, run_id: u64) -> Value {
        let (status, body) = self
            .get("/api/2.2/jobs/runs/get", &[("run_id", &run_id.to_string())])
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Polls until the run is in a final life cycle state; returns it.
    pub async fn wait(&self, run_id: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let run = self.run(run_id).await;
            let life = run["state"]["life_cycle_state"].as_str().unwrap_or("");
            if matches!(life, "TERMINATED" | "INTERNAL_ERROR" | "SKIPPED") {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {run_id} did not finish: {run}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn output(&self, run_id: u64) -> (u16, Value) {
        self.get(
            "/api/2.2/jobs/runs/get-output",
            &[("run_id", &run_id.to_string())],
        )
        .await
    }
}
