//! Shared setup of the client's integration tests: an HTTP client with a quick retry policy
//! and an emulator workspace.
#![allow(dead_code)]

use std::time::Duration;

use databricks::{Auth, Workspace};
use databricks_emulator::{Emulator, Options};
use task_sdk::{HttpClient, RetryPolicy};

pub const TOKEN: &str = "dapi-client-test-0123456789";

/// The task's HTTP client with waits scaled down so fault tests stay quick; `budget` is the
/// total retry budget of one call.
pub fn http(budget: Duration) -> HttpClient {
    let client = task_sdk::http::Client::new(&task_sdk::http::HttpSettings {
        timeout: Duration::from_secs(20),
        ..Default::default()
    })
    .expect("client");
    HttpClient::new(
        client,
        RetryPolicy {
            budget,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            default_retry_after: Duration::from_millis(50),
            retry_after_jitter: Duration::from_millis(20),
        },
    )
}

pub fn options() -> Options {
    Options {
        tokens: vec![TOKEN.to_string()],
        non_python_run_delay: Duration::from_millis(50),
        run_pending: Duration::from_millis(50),
        run_terminating: Duration::from_millis(20),
        cluster_start_delay: Duration::from_millis(200),
        ..Options::default()
    }
}

pub async fn start(opts: Options) -> (Emulator, Workspace) {
    let emulator = Emulator::start(opts).await.expect("emulator starts");
    let ws = Workspace::new(
        &emulator.url(),
        Auth::Token(TOKEN.into()),
        http(Duration::from_secs(30)),
    )
    .expect("workspace")
    .with_poll_interval(Duration::from_millis(20), Duration::from_millis(100));
    (emulator, ws)
}

/// Fails the test if a token shows up in an error's message or debug form.
pub fn assert_no_token(error: &databricks::Error) {
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(TOKEN), "token leaked: {shown}");
}
