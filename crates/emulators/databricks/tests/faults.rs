//! Authentication and fault injection: latency, rate limits, 503s, dropped connections.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{b64, options, start};
use databricks_emulator::{DropMode, Emulator, Options, TokenCheck};
use serde_json::json;

#[tokio::test]
async fn authentication_errors_match_the_service() {
    let (_emu, c) = start(options()).await;
    let url = format!("{}/api/2.0/workspace/get-status?path=/", c.base);
    let r = c.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        b["message"],
        "Credential was not sent or was of an unsupported type for this API."
    );
    let r = c.http.get(&url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["x-databricks-reason-phrase"],
        "Invalid access token."
    );
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (b["error_code"].as_str(), b["message"].as_str()),
        (Some("PERMISSION_DENIED"), Some("Invalid access token."))
    );
    let r = c
        .http
        .get(&url)
        .basic_auth("u", Some("p"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // No auth needed here, and it is a 404 like on a workspace without host metadata.
    let r = c
        .http
        .get(format!("{}/.well-known/databricks-config", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (s, b) = c.get("/api/2.0/no/such/api", &[]).await;
    assert_eq!(
        (s, b["error_code"].as_str()),
        (404, Some("ENDPOINT_NOT_FOUND"))
    );
    let (s, me) = c.get("/api/2.0/preview/scim/v2/Me", &[]).await;
    assert_eq!(
        (s, me["userName"].as_str()),
        (200, Some("emulator@example.com"))
    );
}

/// `token_check` accepts tokens beyond the list; with no list, only what it accepts.
#[tokio::test]
async fn a_token_check_adds_to_the_listed_tokens() {
    let status = |c: &common::Client, token: &'static str| {
        let request = c
            .http
            .get(format!("{}/api/2.0/preview/scim/v2/Me", c.base))
            .bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let check = TokenCheck::new(|t| t.starts_with("eyJ-issued-"));
    let (_emu, c) = start(Options {
        token_check: Some(check.clone()),
        ..options()
    })
    .await;
    assert_eq!(status(&c, common::TOKEN).await, 200);
    assert_eq!(status(&c, "eyJ-issued-1").await, 200);
    assert_eq!(status(&c, "eyJ-made-up").await, 403);

    let (_emu, c) = start(Options {
        tokens: Vec::new(),
        token_check: Some(check),
        ..options()
    })
    .await;
    assert_eq!(status(&c, "eyJ-issued-2").await, 200);
    assert_eq!(status(&c, "anything").await, 403);
    let r = c
        .http
        .get(format!("{}/api/2.0/workspace/get-status?path=/", c.base))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(b["message"], "Invalid access token.");
}

#[tokio::test]
async fn latency_is_added_to_every_request() {
    let (_emu, c) = start(Options {
        latency: Duration::from_millis(150),
        ..options()
    })
    .await;
    let started = Instant::now();
    c.get("/api/2.0/workspace/get-status", &[("path", "/")])
        .await;
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let limits = HashMap::from([("import".to_string(), 2u32)]);
    let (emu, c) = start(Options {
        rate_limits: limits,
        ..options()
    })
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..6 {
        let r = c
            .http
            .post(format!("{}/api/2.0/workspace/import", c.base))
            .bearer_auth(common::TOKEN)
            .json(&json!({"path": format!("/Shared/n{i}"), "format": "RAW", "content": b64("x")}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let b: serde_json::Value = r.json().await.unwrap();
            assert_eq!(b["error_code"], "REQUEST_LIMIT_EXCEEDED");
        }
    }
    // A burst of 2, then one token per 500 ms: the quick requests after the burst are refused.
    assert_eq!(&statuses[..2], &[200; 2]);
    assert!(
        statuses[2..].iter().filter(|s| **s == 429).count() >= 2,
        "{statuses:?}"
    );
    assert_eq!(retry_after.as_deref(), Some("1"));
    // Other endpoints are not limited, and the bucket refills.
    assert_eq!(
        c.get("/api/2.0/workspace/list", &[("path", "/Shared")])
            .await
            .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _) = c
        .post(
            "/api/2.0/workspace/import",
            json!({"path": "/Shared/later", "format": "RAW", "content": b64("x")}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(emu.request_count("import"), 7);
}

#[tokio::test]
async fn fraction_of_503s() {
    let (_emu, c) = start(Options {
        fail_503_fraction: 1.0,
        ..options()
    })
    .await;
    let (s, b) = c.get("/api/2.2/jobs/runs/get", &[("run_id", "1")]).await;
    assert_eq!(
        (s, b["error_code"].as_str()),
        (503, Some("TEMPORARILY_UNAVAILABLE"))
    );
    let (_emu, c) = start(Options {
        fail_503_fraction: 0.5,
        seed: 3,
        ..options()
    })
    .await;
    let mut count = 0;
    for _ in 0..40 {
        if c.get("/api/2.0/workspace/list", &[("path", "/")]).await.0 == 503 {
            count += 1;
        }
    }
    assert!((8..=32).contains(&count), "about half fail: {count}");
}

#[tokio::test]
async fn dropped_before_processing_changes_nothing() {
    let (emu, c) = start(Options {
        drop_fraction: 1.0,
        drop_mode: DropMode::Before,
        ..options()
    })
    .await;
    let r = c
        .http
        .post(format!("{}/api/2.0/workspace/mkdirs", c.base))
        .bearer_auth(common::TOKEN)
        .json(&json!({"path": "/Shared/dropped"}))
        .send()
        .await;
    assert!(r.is_err(), "the connection closes without an answer");
    let state = emu.state();
    assert!(!state["workspace"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["path"] == "/Shared/dropped"));
}

/// The interesting case: the submit takes effect, the answer is lost, the client
/// retries with the same idempotency token and must not start a second run.
#[tokio::test]
async fn dropped_after_processing_plus_idempotent_retry_starts_one_run() {
    let emu = Emulator::start(Options {
        drop_fraction: 1.0,
        drop_mode: DropMode::After,
        ..options()
    })
    .await
    .unwrap();
    let http = common::http_client();
    let body = json!({"idempotency_token": "retry-me", "tasks": [{"task_key": "t", "notebook_task": {"notebook_path": "/Shared/x"}}]});
    for _ in 0..3 {
        let r = http
            .post(format!("{}/api/2.2/jobs/runs/submit", emu.url()))
            .bearer_auth(common::TOKEN)
            .json(&body)
            .send()
            .await;
        assert!(r.is_err());
    }
    assert_eq!(emu.run_count(), 1);
    assert_eq!(emu.request_count("runs/submit"), 3);
}

#[test]
fn blocking_start_serves_sync_callers_and_stops_on_drop() {
    let emu = Emulator::start_blocking(options()).unwrap();
    let url = emu.url();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "GET /emulator/state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(emu);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "stopped listening"
    );
}

#[tokio::test]
async fn fault_rules_answer_statuses_and_drop_after_the_work_was_done() {
    let (emu, c) = start(Options {
        fault_rules: vec![
            "POST /api/2.0/workspace/mkdirs 503 retry-after=4 offset=1 times=1"
                .parse()
                .unwrap(),
        ],
        ..options()
    })
    .await;
    let mkdirs = |path: &'static str| c.post("/api/2.0/workspace/mkdirs", json!({"path": path}));
    assert_eq!(mkdirs("/a").await.0, 200);
    let r = c
        .http
        .post(format!("{}/api/2.0/workspace/mkdirs", c.base))
        .bearer_auth(common::TOKEN)
        .json(&json!({"path": "/b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "4");
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(b["error_code"], "TEMPORARILY_UNAVAILABLE");
    assert_eq!(mkdirs("/c").await.0, 200);

    // At run time: the next import takes effect, but its answer is lost.
    let (s, listed) = c
        .post(
            "/emulator/faults",
            json!({"pattern": "POST /api/2.0/workspace/import", "drop": "after", "times": 1}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(listed["rules"][0]["drop"], "after");
    let lost = c
        .http
        .post(format!("{}/api/2.0/workspace/import", c.base))
        .bearer_auth(common::TOKEN)
        .json(&json!({"path": "/c/n", "format": "RAW", "content": b64("x")}))
        .send()
        .await;
    assert!(lost.is_err(), "{lost:?}");
    let (s, _) = c
        .get("/api/2.0/workspace/get-status", &[("path", "/c/n")])
        .await;
    assert_eq!(s, 200, "the import took effect");
    let (s, _) = c
        .post(
            "/emulator/faults",
            json!({"pattern": "GET /x", "drop": "later"}),
        )
        .await;
    assert_eq!(s, 400);
    let cleared = c
        .http
        .delete(format!("{}/emulator/faults", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    assert_eq!(emu.request_count("mkdirs"), 3);
}
